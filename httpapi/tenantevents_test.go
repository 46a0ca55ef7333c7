package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// tenantEventsPath is GET /events.
const tenantEventsPath = prefix + "/events"

// openTenantStream opens the tenant's event stream with query q (nil for
// none) and Last-Event-ID last ("" for none).
func (e *env) openTenantStream(ctx context.Context, q url.Values, last string, headers ...string) (<-chan sseEvent, *http.Response) {
	e.t.Helper()
	return e.openSSE(ctx, tenantEventsPath+"?"+q.Encode(), last, headers...)
}

// tenantPage is GET /events?q as JSON: the events' ids.
func (e *env) tenantPage(q url.Values, headers ...string) []commonops.Event {
	e.t.Helper()
	var page eventsPage
	e.do("GET", tenantEventsPath+"?"+q.Encode(), nil, headers...).want(e.t, http.StatusOK).decode(e.t, &page)
	return page.Events
}

// receive reads n task events from events within ctx and returns them.
func receive(t *testing.T, ctx context.Context, events <-chan sseEvent, n int) []commonops.Event {
	t.Helper()
	var got []commonops.Event
	for len(got) < n {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended after %d events, want %d", len(got), n)
			}
			if ev.event != "" {
				t.Fatalf("got a %q event after %d events, want task events", ev.event, len(got))
			}
			var e commonops.Event
			if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
				t.Fatalf("event data %q: %v", ev.data, err)
			}
			if strconv.FormatInt(e.ID, 10) != ev.id {
				t.Fatalf("got id: %s for event %d, want the event id", ev.id, e.ID)
			}
			got = append(got, e)
		case <-ctx.Done():
			t.Fatalf("got %d events, want %d before the deadline", len(got), n)
		}
	}
	return got
}

func ids(events []commonops.Event) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// TestTenantEventStreamLiveAndFiltered follows the tenant's events while
// several tasks change, unfiltered and by task type, entity type and
// status: each stream gets exactly what the JSON form lists for its filter,
// in id order, with the task's kind and status.
func TestTenantEventStreamLiveAndFiltered(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		before := e.create(simple) // replayed: ?after=0
		filters := []url.Values{
			{},
			{"taskType": {"export"}},
			{"entityType": {"order"}},
			{"status": {"processing,cancelled"}},
			{"taskType": {"export"}, "status": {"pending"}},
		}
		streams := make([]<-chan sseEvent, len(filters))
		for i, q := range filters {
			events, resp := e.openTenantStream(ctx, q, "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("stream %v: got status %d, want 200", q, resp.StatusCode)
			}
			streams[i] = events
		}
		ex := e.create(map[string]any{"taskType": "export", "entityType": "order"})
		im := e.create(map[string]any{"taskType": "import", "entityType": "order"})
		e.claim(ex.ID)
		e.do("POST", taskPath(im.ID, "/cancel"), nil).want(t, http.StatusOK)
		e.claim(before.ID)
		for i, q := range filters {
			want := e.tenantPage(q)
			got := receive(t, ctx, streams[i], len(want))
			if !slices.Equal(ids(got), ids(want)) {
				t.Errorf("stream %v: got ids %v, want %v", q, ids(got), ids(want))
			}
			for _, ev := range got {
				if !slices.Contains([]string{before.ID, ex.ID, im.ID}, ev.TaskID) || ev.TaskType == "" || ev.EntityType == "" || !ev.Status.Valid() {
					t.Errorf("stream %v: got event %+v, want one of the tasks with its kind and status", q, ev)
				}
			}
		}
		wantCounts := []int{6, 2, 4, 3, 1} // all; export; order; processing or cancelled; export and pending
		for i, q := range filters {
			if n := len(e.tenantPage(q)); n != wantCounts[i] {
				t.Errorf("GET /events?%s: got %d events, want %d", q.Encode(), n, wantCounts[i])
			}
		}
		// A bad filter is 422 naming it, before any stream opens.
		e.do("GET", tenantEventsPath+"?status=running", nil, "Accept", "text/event-stream").want(t, http.StatusUnprocessableEntity)
	})
}

// TestTenantEventStreamResumesWithoutLossOrRepeat makes 60 changes across
// three tasks while a client follows the tenant, dropping the connection
// every 7 events and coming back with Last-Event-ID: it receives the
// tenant's history, each event once, in order.
func TestTenantEventStreamResumesWithoutLossOrRepeat(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		tasks := []commonops.Task{e.create(simple), e.create(simple), e.create(simple)}
		for _, tk := range tasks {
			e.claim(tk.ID)
		}
		const changes = 60
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for n := range changes {
				if err := note(st, tasks[n%3].ID, n); err != nil {
					t.Error(err)
					return
				}
				if n%10 == 0 {
					time.Sleep(5 * time.Millisecond) // let some arrive live, some on replay
				}
			}
		}()
		const total = changes + 6 // created and started of each task, the notes
		var got []int64
		last := ""
		for conn := 0; len(got) < total; conn++ {
			if conn > 100 {
				t.Fatalf("got %d of %d events after %d connections", len(got), total, conn)
			}
			cctx, drop := context.WithCancel(ctx)
			events, resp := e.openTenantStream(cctx, nil, last)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("stream %d: got status %d, want 200", conn, resp.StatusCode)
			}
			for _, ev := range receive(t, ctx, events, min(7, total-len(got))) {
				got, last = append(got, ev.ID), strconv.FormatInt(ev.ID, 10)
			}
			drop()
			resp.Body.Close()
		}
		<-done
		want := ids(e.tenantPage(nil))
		if len(want) != total {
			t.Fatalf("history: got %d events, want %d", len(want), total)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("streamed ids across reconnects:\ngot  %v\nwant %v", got, want)
		}
	})
}

// TestTenantEventStreamIsolation follows two tenants: the second sees
// nothing of the first's events, live or replayed, and the JSON form
// neither.
func TestTenantEventStreamIsolation(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.create(simple) // the default tenant's, before the stream: not replayed to other
		events, resp := e.openTenantStream(ctx, nil, "", "X-Tenant-Id", "other")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got status %d, want 200", resp.StatusCode)
		}
		for range 3 {
			e.claim(e.create(simple).ID)
		}
		mine := e.create(simple, "X-Tenant-Id", "other")
		got := receive(t, ctx, events, 1)
		if got[0].TaskID != mine.ID {
			t.Fatalf("tenant other: got the event of task %s first, want its own task %s", got[0].TaskID, mine.ID)
		}
		page := e.tenantPage(nil, "X-Tenant-Id", "other")
		if len(page) != 1 || page[0].TaskID != mine.ID {
			t.Fatalf("GET /events of tenant other: got %d events, want its one", len(page))
		}
	})
}

// TestTenantEventStreamSubmitterSeesOwnTasks follows the tenant as a
// submitter and as a viewer through the gateway: the submitter gets only
// the events of the tasks it requested, live and as JSON; the viewer every
// one.
func TestTenantEventStreamSubmitterSeesOwnTasks(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		a := newAuthEnv(t, st)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		alice, bob := gw("t1", "alice", "submitter"), gw("t1", "bob", "submitter")
		viewer := gw("t1", "vera", "viewer")
		own := a.create(simple, alice...)
		sub, resp := a.openTenantStream(ctx, nil, "", alice...)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("submitter: got status %d, want 200", resp.StatusCode)
		}
		all, resp := a.openTenantStream(ctx, nil, "", viewer...)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("viewer: got status %d, want 200", resp.StatusCode)
		}
		other := a.create(simple, bob...)
		a.do("POST", taskPath(other.ID, "/cancel"), nil, bob...).want(t, http.StatusOK)
		a.do("POST", taskPath(own.ID, "/cancel"), nil, alice...).want(t, http.StatusOK)
		got := receive(t, ctx, sub, 2)
		for _, ev := range got {
			if ev.TaskID != own.ID {
				t.Errorf("submitter: got an event of task %s, want only its own %s", ev.TaskID, own.ID)
			}
		}
		if got[1].EventType != commonops.EventCancelled {
			t.Errorf("submitter: got %s second, want its cancelled event", got[1].EventType)
		}
		if seen := receive(t, ctx, all, 4); seen[1].TaskID != other.ID {
			t.Errorf("viewer: got %+v, want every task's events", seen)
		}
		if page := a.tenantPage(nil, alice...); len(page) != 2 || page[0].TaskID != own.ID || page[1].TaskID != own.ID {
			t.Errorf("submitter's JSON: got %+v, want the 2 events of its task", page)
		}
		if page := a.tenantPage(nil, viewer...); len(page) != 4 {
			t.Errorf("viewer's JSON: got %d events, want 4", len(page))
		}
	})
}

// TestTenantEventStreamCaps opens tenant streams, which share the caps of
// task streams, up to the tenant's cap and the server's: one more is 429.
func TestTenantEventStreamCaps(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st, func(c *Config) { c.MaxStreams, c.MaxTenantStreams = 3, 2 })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		task := e.create(simple)
		open := func(status int, headers ...string) {
			t.Helper()
			events, resp := e.openTenantStream(ctx, nil, "", headers...)
			if resp.StatusCode != status {
				t.Fatalf("tenant stream %v: got status %d, want %d", headers, resp.StatusCode, status)
			}
			if status == http.StatusOK {
				if len(headers) == 0 {
					receive(t, ctx, events, 1) // the created event: the stream is counted
				}
				return
			}
			if resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("429: got Retry-After %q, Content-Type %q, want a problem with Retry-After", resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
			}
		}
		open(http.StatusOK)
		if _, resp := e.openStream(ctx, task.ID, ""); resp.StatusCode != http.StatusOK { // a task stream counts too
			t.Fatalf("task stream: got status %d, want 200", resp.StatusCode)
		}
		open(http.StatusTooManyRequests) // the tenant's cap
		open(http.StatusOK, "X-Tenant-Id", "other")
		open(http.StatusTooManyRequests, "X-Tenant-Id", "third") // the server's cap
	})
}

// TestTenantEventStreamSlowReaderGetsResync blocks a tenant stream's writes
// while the tenant records more events than the stream's buffer: once
// unblocked the stream ends with a resync event.
func TestTenantEventStreamSlowReaderGetsResync(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st, func(c *Config) { c.StreamBuffer = 2 })
		task := e.create(simple)
		slowReader(t, e, st, tenantEventsPath, task.ID)
	})
}
