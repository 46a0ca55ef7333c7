package dapr_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/dapr"
	"github.com/commonops/commonops/outbox"
)

// TestBroadcastComponentCarriesCancels checks both halves of the routing:
// with a broadcast component the publisher sends cancelled events (single
// and bulk) to it and every other topic to the main component, and the
// subscriber subscribes to cancelled through it; without one, everything
// goes through the main component as before.
func TestBroadcastComponentCarriesCancels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		broadcast string
		want      map[string]string // topic -> component
	}{
		{"off", "", map[string]string{commonops.TopicCreated: "tasks", commonops.TopicRetried: "tasks", commonops.TopicCancelled: "tasks"}},
		{"on", "everyone", map[string]string{commonops.TopicCreated: "tasks", commonops.TopicRetried: "tasks", commonops.TopicCancelled: "everyone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := dapr.NewSubscriber(dapr.SubscriberConfig{PubSubName: "tasks", BroadcastPubSubName: tc.broadcast, Handle: newHandler().Handle})
			for _, sub := range s.Subscriptions() {
				if want := tc.want[sub.Topic]; sub.PubSubName != want {
					t.Errorf("subscription to %s: got component %q, want %q", sub.Topic, sub.PubSubName, want)
				}
			}

			for _, bulk := range []bool{false, true} {
				var mu sync.Mutex
				paths := map[string]bool{}
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					paths[r.URL.Path] = true
					mu.Unlock()
					w.WriteHeader(http.StatusNoContent)
				}))
				p := dapr.NewPublisher(dapr.PublisherConfig{BaseURL: srv.URL, PubSubName: "tasks", BroadcastPubSubName: tc.broadcast, Bulk: bulk})
				msgs := []outbox.Message{
					taskMessage(t, 1, commonops.TopicCreated),
					taskMessage(t, 2, commonops.TopicCancelled),
					taskMessage(t, 3, commonops.TopicRetried),
				}
				if n, err := p.Publish(context.Background(), msgs); n != len(msgs) || err != nil {
					t.Fatalf("Publish (bulk %v): got (%d, %v), want (%d, nil)", bulk, n, err, len(msgs))
				}
				srv.Close()
				prefix := "/v1.0/publish/"
				if bulk {
					prefix = "/v1.0-alpha1/publish/bulk/"
				}
				for topic, comp := range tc.want {
					if want := prefix + comp + "/" + topic; !paths[want] {
						t.Errorf("bulk %v: no publish to %s; got %v", bulk, want, paths)
					}
				}
			}
		})
	}
}
