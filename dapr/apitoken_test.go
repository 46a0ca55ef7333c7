package dapr_test

import (
	"context"
	"testing"
	"time"

	"github.com/commonops/commonops/dapr"
	"github.com/commonops/commonops/internal/daprtest"
	"github.com/commonops/commonops/outbox"
)

// TestPublisherSendsAPIToken publishes to a real daprd started with
// DAPR_API_TOKEN: without the token the sidecar refuses the publish, with
// it the publish and the health check go through.
func TestPublisherSendsAPIToken(t *testing.T) {
	t.Parallel()
	const token = "dapr-api-token-5b1e0c7d"
	sc := daprtest.Start(t, 0, daprtest.InMemory(), daprtest.APIToken(token))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg := outbox.Message{ID: 1, TaskID: "t1", Topic: "task.created", Payload: []byte(`{"id":"t1"}`), CreatedAt: time.Now()}

	without := dapr.NewPublisher(dapr.PublisherConfig{BaseURL: sc.BaseURL})
	if n, err := without.Publish(ctx, []outbox.Message{msg}); err == nil || n != 0 {
		t.Fatalf("publish without the token: got %d published (err %v), want a refusal", n, err)
	}
	for _, bulk := range []bool{false, true} {
		with := dapr.NewPublisher(dapr.PublisherConfig{BaseURL: sc.BaseURL, APIToken: token, Bulk: bulk})
		if n, err := with.Publish(ctx, []outbox.Message{msg}); err != nil || n != 1 {
			t.Fatalf("publish (bulk %v) with the token: got %d published (err %v), want 1", bulk, n, err)
		}
		if err := with.Check(ctx); err != nil {
			t.Fatalf("health check with the token: %v", err)
		}
	}
}
