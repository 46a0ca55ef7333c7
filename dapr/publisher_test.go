package dapr_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/dapr"
	"github.com/commonops/commonops/outbox"
)

// TestPublisherReportsLongestSuccessfulPrefix runs the Publisher against a
// stand-in sidecar that refuses one event (a real daprd cannot be told to
// fail one event of a batch): the count is the prefix before it, whatever
// order the concurrent calls finish in.
func TestPublisherReportsLongestSuccessfulPrefix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		refuse string // CloudEvent id the sidecar answers 500
		conc   int
		want   int
	}{
		{"all published", "", 4, 10},
		{"third refused", "3", 4, 2},
		{"first refused", "1", 4, 0},
		{"last refused", "10", 4, 9},
		{"sequential", "6", 1, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			got := map[string]dapr.CloudEvent{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var ce dapr.CloudEvent
				if err := json.NewDecoder(r.Body).Decode(&ce); err != nil {
					t.Errorf("decode event: %v", err)
				}
				if ct := r.Header.Get("Content-Type"); ct != "application/cloudevents+json" {
					t.Errorf("Content-Type: got %q, want application/cloudevents+json", ct)
				}
				if want := "/v1.0/publish/tasks/" + ce.Type; r.URL.Path != want {
					t.Errorf("path: got %s, want %s", r.URL.Path, want)
				}
				if ce.ID == tc.refuse {
					http.Error(w, `{"errorCode":"ERR_PUBSUB_PUBLISH_MESSAGE"}`, http.StatusInternalServerError)
					return
				}
				mu.Lock()
				got[ce.ID] = ce
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			p := dapr.NewPublisher(dapr.PublisherConfig{BaseURL: srv.URL, PubSubName: "tasks", Concurrency: tc.conc})
			var msgs []outbox.Message
			for i := range 10 {
				msgs = append(msgs, taskMessage(t, int64(i+1), commonops.TopicCreated))
			}
			n, err := p.Publish(context.Background(), msgs)
			if n != tc.want {
				t.Errorf("published prefix: got %d, want %d", n, tc.want)
			}
			if (err != nil) != (tc.refuse != "") {
				t.Errorf("error: got %v, want error %v", err, tc.refuse != "")
			}
			if err != nil && commonops.ErrorCode(err) != commonops.EUNAVAILABLE {
				t.Errorf("error code: got %s, want %s", commonops.ErrorCode(err), commonops.EUNAVAILABLE)
			}
			for _, m := range msgs[:n] {
				ce, ok := got[dapr.Envelope(m).ID]
				if !ok {
					t.Fatalf("event %d counted as published but the sidecar never accepted it", m.ID)
				}
				var task commonops.Task
				if err := json.Unmarshal(ce.Data, &task); err != nil || task.ID != m.TaskID {
					t.Errorf("event %d data: got task %q (%v), want %q", m.ID, task.ID, err, m.TaskID)
				}
			}
		})
	}
}

// TestBulkPublisherReportsLongestSuccessfulPrefix does the same for the bulk
// API: events of two topics interleaved, in chunks, one entry refused.
func TestBulkPublisherReportsLongestSuccessfulPrefix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		refuse string
		want   int
	}{
		{"all published", "", 250},
		{"one refused", "138", 137},
		{"first refused", "1", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			accepted := map[string]bool{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasPrefix(r.URL.Path, "/v1.0-alpha1/publish/bulk/tasks/operations.task.") {
					t.Errorf("path: got %s, want the bulk API", r.URL.Path)
				}
				var entries []struct {
					EntryID     string          `json:"entryId"`
					Event       dapr.CloudEvent `json:"event"`
					ContentType string          `json:"contentType"`
				}
				if err := json.NewDecoder(r.Body).Decode(&entries); err != nil {
					t.Errorf("decode: %v", err)
				}
				if len(entries) > dapr.BulkEntriesMax {
					t.Errorf("entries in one request: got %d, want <= %d", len(entries), dapr.BulkEntriesMax)
				}
				var failed []map[string]string
				mu.Lock()
				for _, e := range entries {
					if e.ContentType != "application/cloudevents+json" || "/v1.0-alpha1/publish/bulk/tasks/"+e.Event.Type != r.URL.Path {
						t.Errorf("entry %s: content type %q, type %q on %s", e.EntryID, e.ContentType, e.Event.Type, r.URL.Path)
					}
					if e.Event.ID == tc.refuse {
						failed = append(failed, map[string]string{"entryId": e.EntryID, "error": "refused"})
						continue
					}
					accepted[e.Event.ID] = true
				}
				mu.Unlock()
				if failed != nil {
					w.WriteHeader(http.StatusInternalServerError)
					json.NewEncoder(w).Encode(map[string]any{"failedEntries": failed, "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE"})
					return
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			p := dapr.NewPublisher(dapr.PublisherConfig{BaseURL: srv.URL, PubSubName: "tasks", Bulk: true})
			var msgs []outbox.Message
			for i := range 250 {
				topic := commonops.TopicCreated
				if i%3 == 0 {
					topic = commonops.TopicCompleted
				}
				msgs = append(msgs, taskMessage(t, int64(i+1), topic))
			}
			n, err := p.Publish(context.Background(), msgs)
			if n != tc.want || (err != nil) != (tc.refuse != "") {
				t.Errorf("Publish: got (%d, %v), want %d and error %v", n, err, tc.want, tc.refuse != "")
			}
			for _, m := range msgs[:n] {
				if !accepted[dapr.Envelope(m).ID] {
					t.Errorf("event %d counted as published but never accepted", m.ID)
				}
			}
		})
	}
}

func TestDefaultBaseURLHonoursDaprHTTPPort(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ port, want string }{
		{"", "http://127.0.0.1:3500"},
		{"3601", "http://127.0.0.1:3601"},
		{" 3602 ", "http://127.0.0.1:3602"},
	} {
		getenv := func(k string) string {
			if k == "DAPR_HTTP_PORT" {
				return tc.port
			}
			return ""
		}
		if got := dapr.DefaultBaseURL(getenv); got != tc.want {
			t.Errorf("DAPR_HTTP_PORT=%q: got %s, want %s", tc.port, got, tc.want)
		}
	}
}

// TestPublisherPropagatesTraceParent checks that a message's traceparent
// goes out as the publish request's traceparent header and as the
// CloudEvent's traceparent attribute, and that a message without one sends
// neither.
func TestPublisherPropagatesTraceParent(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	type seen struct {
		header string
		raw    map[string]any
	}
	var mu sync.Mutex
	got := map[string]seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var raw map[string]any
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			t.Errorf("decode event: %v", err)
		}
		id, _ := raw["id"].(string)
		mu.Lock()
		got[id] = seen{header: r.Header.Get("traceparent"), raw: raw}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	traced := taskMessage(t, 1, commonops.TopicCreated)
	traced.TraceParent = tp
	plain := taskMessage(t, 2, commonops.TopicCreated)
	p := dapr.NewPublisher(dapr.PublisherConfig{BaseURL: srv.URL})
	if n, err := p.Publish(context.Background(), []outbox.Message{traced, plain}); n != 2 || err != nil {
		t.Fatalf("Publish: got (%d, %v), want (2, nil)", n, err)
	}
	if s := got["1"]; s.header != tp || s.raw["traceparent"] != tp {
		t.Errorf("traced event: got header %q and attribute %v, want both %q", s.header, s.raw["traceparent"], tp)
	}
	s, ok := got["2"]
	if _, has := s.raw["traceparent"]; !ok || s.header != "" || has {
		t.Errorf("untraced event: got header %q and attribute %v (received %v), want neither", s.header, s.raw["traceparent"], ok)
	}
}
