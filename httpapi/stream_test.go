package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// openStream opens the event stream of task id with Last-Event-ID last
// ("" for none) and returns its events and the response.
func (e *env) openStream(ctx context.Context, id, last string, headers ...string) (<-chan sseEvent, *http.Response) {
	e.t.Helper()
	return e.openSSE(ctx, taskPath(id, "/events"), last, headers...)
}

// openSSE opens the event stream at path with Last-Event-ID last ("" for
// none) and returns its events and the response.
func (e *env) openSSE(ctx context.Context, path, last string, headers ...string) (<-chan sseEvent, *http.Response) {
	e.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("open stream: %v", err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	events := make(chan sseEvent)
	if resp.StatusCode == http.StatusOK {
		go readSSE(resp.Body, events)
	}
	return events, resp
}

// note records a change on task id straight in the store: an event whose
// data counts n, as many as a test needs, without the progress throttle.
func note(st store.Store, id string, n int) error {
	_, err := st.UpdateTask(context.Background(), commonops.DefaultTenant, id, func(x *commonops.Task) (commonops.Change, error) {
		x.ProcessedItems = int64(n)
		return commonops.Change{Event: commonops.EventProgress, Data: map[string]any{"n": n}}, nil
	})
	if err != nil {
		return fmt.Errorf("record event %d: %w", n, err)
	}
	return nil
}

// TestEventStreamResumesWithoutLossOrRepeat changes a task while a client
// follows it, drops the connection every few events and comes back with
// Last-Event-ID: what it receives is the task's history, each event once,
// in order, ending with the end event.
func TestEventStreamResumesWithoutLossOrRepeat(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		task := e.create(simple)
		e.claim(task.ID)
		const changes = 60
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for n := range changes {
				if err := note(st, task.ID, n); err != nil {
					t.Error(err)
					return
				}
				if n%10 == 0 {
					time.Sleep(5 * time.Millisecond) // let some arrive live, some on replay
				}
			}
			_, err := st.UpdateTask(ctx, commonops.DefaultTenant, task.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Cancel(time.Now()) })
			if err != nil {
				t.Errorf("cancel: %v", err)
			}
		}()

		var got []int64
		last, ended := "", false
		for conn := 0; !ended; conn++ {
			if conn > 100 {
				t.Fatalf("still no end event after %d connections (got %d events)", conn, len(got))
			}
			cctx, drop := context.WithCancel(ctx)
			events, resp := e.openStream(cctx, task.ID, last)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("stream %d: got status %d, want 200", conn, resp.StatusCode)
			}
			for read := 0; read < 7; read++ { // drop the connection after 7 events
				ev, ok := <-events
				if !ok {
					t.Fatalf("stream %d ended without an end event", conn)
				}
				if ev.event == "end" {
					if ev.data != `{"status":"cancelled"}` {
						t.Errorf("end: got %s, want the cancelled status", ev.data)
					}
					ended = true
					break
				}
				id, err := strconv.ParseInt(ev.id, 10, 64)
				if err != nil || ev.event != "" {
					t.Fatalf("got event %+v, want a task event with an id", ev)
				}
				got, last = append(got, id), ev.id
			}
			drop()
			resp.Body.Close()
		}
		<-done

		var all eventsPage
		e.do("GET", taskPath(task.ID, "/events"), nil).want(t, http.StatusOK).decode(t, &all)
		var want []int64
		for _, ev := range all.Events {
			want = append(want, ev.ID)
		}
		if len(want) != changes+3 { // created, started, the notes, cancelled
			t.Fatalf("history: got %d events, want %d", len(want), changes+3)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("streamed ids across reconnects:\ngot  %v\nwant %v", got, want)
		}
	})
}

// TestEventStreamCaps opens streams up to the per-tenant and per-server
// caps: one more is refused with 429, a problem and Retry-After, and a
// closed stream frees its place.
func TestEventStreamCaps(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t, func(c *Config) { c.MaxStreams, c.MaxTenantStreams = 3, 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := e.create(simple)
	b := e.create(simple, "X-Tenant-Id", "other")
	open := func(id string, status int, headers ...string) (context.CancelFunc, *http.Response) {
		t.Helper()
		sctx, stop := context.WithCancel(ctx)
		events, resp := e.openStream(sctx, id, "", headers...)
		if resp.StatusCode != status {
			t.Fatalf("stream of %s %v: got status %d, want %d", id, headers, resp.StatusCode, status)
		}
		if status == http.StatusOK {
			<-events // the created event: the stream is counted
		}
		return stop, resp
	}
	refused := func(resp *http.Response) {
		t.Helper()
		var p problem
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Status != http.StatusTooManyRequests || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("429 body: got %+v (%v, %s), want a problem with status 429", p, err, resp.Header.Get("Content-Type"))
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Error("429: got no Retry-After, want one")
		}
	}

	stopA1, _ := open(a.ID, http.StatusOK)
	open(a.ID, http.StatusOK)
	_, resp := open(a.ID, http.StatusTooManyRequests) // the tenant's cap
	refused(resp)
	open(b.ID, http.StatusOK, "X-Tenant-Id", "other")
	_, resp = open(b.ID, http.StatusTooManyRequests, "X-Tenant-Id", "other") // the server's cap
	refused(resp)

	stopA1()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sctx, stop := context.WithCancel(ctx)
		_, resp := e.openStream(sctx, a.ID, "")
		if resp.StatusCode == http.StatusOK {
			stop()
			break
		}
		stop()
		if time.Now().After(deadline) {
			t.Fatalf("after closing a stream: got status %d for 10s, want 200", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// blockedWriter is a ResponseWriter whose Write blocks while blocked is
// set: a client that stopped reading, with the socket buffers full.
type blockedWriter struct {
	header http.Header
	mu     sync.Mutex
	body   []byte
	gate   chan struct{} // closed to unblock
	block  bool
	wrote  chan struct{} // receives after each Write
}

func (w *blockedWriter) Header() http.Header { return w.header }
func (w *blockedWriter) WriteHeader(int)     {}
func (w *blockedWriter) Flush()              {}
func (w *blockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	block := w.block
	w.mu.Unlock()
	if block {
		<-w.gate
	}
	w.mu.Lock()
	w.body = append(w.body, p...)
	w.mu.Unlock()
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *blockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.body)
}

// TestEventStreamSlowReaderGetsResync blocks a stream's writes while its
// task records more events than the stream's buffer: once unblocked the
// stream ends with a resync event instead of holding the backlog.
func TestEventStreamSlowReaderGetsResync(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st, func(c *Config) { c.StreamBuffer = 2 })
		task := e.create(simple)
		body := slowReader(t, e, st, taskPath(task.ID, "/events"), task.ID)
		if containsLine(body, "event: end") {
			t.Errorf("got an end event, want resync only")
		}
	})
}

// slowReader opens the stream at path on e (whose Config.StreamBuffer is
// 2), blocks its writes once the first event is out while task records 10
// events, then unblocks them: the stream must end with a resync event. It
// returns what the stream wrote.
func slowReader(t *testing.T, e *env, st store.Store, path, task string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", path, nil)
	req.Header.Set("Accept", "text/event-stream")
	w := &blockedWriter{header: http.Header{}, gate: make(chan struct{}), wrote: make(chan struct{}, 1)}
	served := make(chan struct{})
	go func() { defer close(served); e.srv.Config.Handler.ServeHTTP(w, req) }()
	for !containsLine(w.String(), "data: ") { // the created event
		select {
		case <-w.wrote:
		case <-ctx.Done():
			t.Fatalf("got %q, want the created event", w.String())
		}
	}
	w.mu.Lock()
	w.block = true
	w.mu.Unlock()
	for n := range 10 {
		if err := note(st, task, n); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // the feed delivers while the writer is blocked
	close(w.gate)
	select {
	case <-served:
	case <-ctx.Done():
		t.Fatalf("the stream did not end; got %q", w.String())
	}
	body := w.String()
	if !containsLine(body, "event: resync") {
		t.Fatalf("got %q, want it to end with a resync event", body)
	}
	return body
}

// containsLine reports whether body has a line that starts with prefix.
func containsLine(body, prefix string) bool {
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}
