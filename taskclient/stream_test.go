package taskclient_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/taskclient"
)

// A stream that drops (as a proxy or a restart drops it) and one that is
// told to resync are reopened with Last-Event-ID: every event arrives once,
// in order, and Follow returns the status of the end event. The real server
// drops no stream on demand, so this server plays one that does.
func TestFollowResumes(t *testing.T) {
	t.Parallel()
	const id = "3f6c1a52-8a8e-4a7b-9d55-0e2b2f6a0c11"
	var mu sync.Mutex
	var lastIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/operations/tasks/"+id+"/events" || r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "unexpected "+r.URL.Path, http.StatusNotFound)
			return
		}
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		event := func(eid int, kind string) {
			fmt.Fprintf(w, "id: %d\ndata: {\"id\":%d,\"taskId\":%q,\"eventType\":%q,\"eventData\":{}}\n\n", eid, eid, id, kind)
		}
		fmt.Fprint(w, "retry: 10\n\n")
		switch n {
		case 1: // two events, then the connection drops
			event(1, "created")
			event(2, "started")
		case 2: // a repeat of 2 (ignored), one more, then a resync
			event(2, "started")
			fmt.Fprint(w, ": heartbeat\n\n")
			event(3, "progress")
			fmt.Fprint(w, "event: resync\ndata: {}\n\n")
		default:
			event(4, "failed")
			fmt.Fprint(w, "event: end\ndata: {\"status\":\"failed\"}\n\n")
		}
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	status, err := taskclient.New(srv.URL).Follow(ctx, id, 0, func(e commonops.Event) error {
		got = append(got, fmt.Sprintf("%d:%s", e.ID, e.EventType))
		return nil
	})
	if err != nil || status != commonops.StatusFailed {
		t.Fatalf("got %q, %v, want failed", status, err)
	}
	if want := "[1:created 2:started 3:progress 4:failed]"; fmt.Sprint(got) != want {
		t.Fatalf("events: got %v, want %s", got, want)
	}
	if want := "[ 2 3]"; fmt.Sprint(lastIDs) != want {
		t.Fatalf("Last-Event-ID of each connection: got %q, want %s", lastIDs, want)
	}
}

// A stream the server refuses for good (404) ends Follow at once with the
// problem; one it cannot reach ends after ReconnectLimit attempts.
func TestFollowGivesUp(t *testing.T) {
	t.Parallel()
	var calls int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "0")
		if r.Header.Get("X-Tenant-Id") == "busy" {
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"title":"Too many event streams","status":429,"detail":"busy"}`)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"title":"Not Found","status":404,"detail":"task not found"}`)
	}))
	defer srv.Close()
	ctx := context.Background()
	noop := func(commonops.Event) error { return nil }

	if _, err := taskclient.New(srv.URL).Follow(ctx, "x", 0, noop); err == nil || calls != 1 {
		t.Fatalf("404: got %v after %d calls, want an error after 1", err, calls)
	}
	calls = 0
	if _, err := taskclient.New(srv.URL, taskclient.WithTenant("busy")).Follow(ctx, "x", 0, noop); err == nil || calls != taskclient.ReconnectLimit {
		t.Fatalf("429: got %v after %d calls, want an error after %d", err, calls, taskclient.ReconnectLimit)
	}
}
