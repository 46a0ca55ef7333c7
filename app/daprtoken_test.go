package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/internal/daprtest"
	"github.com/commonops/commonops/operations"
)

// TestDaprTokensBothWays runs a worker against a real daprd that requires
// DAPR_API_TOKEN of its app and sends APP_API_TOKEN on each delivery, with
// the poller off: a task completes only if the publish carried the one
// token and the delivery the other, so the event made the whole trip.
func TestDaprTokensBothWays(t *testing.T) {
	t.Parallel()
	const apiToken, appToken = "dapr-api-token-9f2c", "app-api-token-31d7"
	port := daprtest.FreePort(t)
	a, err := app.New(context.Background(), app.Config{
		DatabaseURL: databaseURL(t, "postgres"), Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		PubSub: app.PubSubDapr, DaprURL: fmt.Sprintf("http://127.0.0.1:%d", port), DaprAppAddr: "127.0.0.1:0",
		DaprAPIToken: apiToken, DaprAppToken: appToken, PollInterval: time.Hour, Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	daprtest.Start(t, appPort(t, a), daprtest.HTTPPort(port), daprtest.APIToken(apiToken), daprtest.AppToken(appToken))

	runNoop(t, a, "the event did not make the trip through the token-guarded sidecar")
}

// runNoop creates a noop task in a and waits up to 20s for it to complete;
// failing, it reports why it would not. It returns the task's id.
func runNoop(t *testing.T, a *app.App, why string) string {
	t.Helper()
	ctx := context.Background()
	c, _, err := a.Service().Create(ctx, operations.CreateRequest{TenantID: commonops.DefaultTenant,
		Input: commonops.CreateInput{TaskType: "noop", EntityType: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := a.Service().Get(ctx, commonops.DefaultTenant, c.Task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == commonops.StatusCompleted {
			return c.Task.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("got the task %s 20s after its create, want completed (%s)", got.Status, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
