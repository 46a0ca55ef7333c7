package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/logtest"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
)

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	body := `{"taskType":"import","entityType":"product","params":{"a":1}}`
	first := e.do("POST", tasksPath, body, "Idempotency-Key", "order-42").want(t, http.StatusCreated)
	if first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("got Idempotent-Replayed on the first answer")
	}
	// The same body, differently spaced, is the same request.
	again := e.do("POST", tasksPath, "{ \"taskType\": \"import\",\n \"entityType\": \"product\", \"params\": {\"a\": 1} }", "Idempotency-Key", "order-42").want(t, http.StatusCreated)
	if got := again.header.Get("Idempotent-Replayed"); got != "true" {
		t.Fatalf("got Idempotent-Replayed %q, want true", got)
	}
	if !bytes.Equal(again.body, first.body) {
		t.Fatalf("replay got %s, want %s", again.body, first.body)
	}
	// Another tenant's key space is its own.
	other := e.do("POST", tasksPath, body, "Idempotency-Key", "order-42", "X-Tenant-Id", "acme").want(t, http.StatusCreated)
	if other.header.Get("Idempotent-Replayed") != "" || bytes.Equal(other.body, first.body) {
		t.Fatalf("got a replay across tenants: %s", other.body)
	}
	var page listPage
	e.do("GET", tasksPath, nil).want(t, http.StatusOK).decode(t, &page)
	if page.Total != 1 {
		t.Fatalf("got %d tasks of tenant default, want 1", page.Total)
	}
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		a := []string{"X-Tenant-Id", "tenant-a"}
		b := []string{"X-Tenant-Id", "tenant-b"}
		task := e.create(simple, a...)
		for _, c := range []struct{ method, path, body string }{
			{"GET", taskPath(task.ID), ""},
			{"POST", taskPath(task.ID, "/cancel"), ""},
			{"POST", taskPath(task.ID, "/claim"), `{"workerId":"w"}`},
			{"PATCH", taskPath(task.ID, "/progress"), `{}`},
			{"GET", taskPath(task.ID, "/events"), ""},
			{"GET", taskPath(task.ID, "/logs"), ""},
			{"POST", taskPath(task.ID, "/logs"), `{"logs":[{"message":"x"}]}`},
			{"DELETE", taskPath(task.ID), ""},
		} {
			var body any
			if c.body != "" {
				body = c.body
			}
			e.do(c.method, c.path, body, b...).want(t, http.StatusNotFound)
		}
		var page listPage
		e.do("GET", tasksPath, nil, b...).want(t, http.StatusOK).decode(t, &page)
		if page.Total != 0 || len(page.Tasks) != 0 {
			t.Fatalf("tenant-b lists %d tasks, want 0", page.Total)
		}
		got := e.do("GET", taskPath(task.ID), nil, a...).want(t, http.StatusOK).task(t)
		if got.Status != commonops.StatusPending || got.Version != task.Version || got.TenantID != "tenant-a" {
			t.Fatalf("got %s version %d tenant %q, want the untouched pending task of tenant-a", got.Status, got.Version, got.TenantID)
		}
	})
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	imp := e.create(map[string]any{"taskType": "import", "entityType": "product", "priority": 5}, "X-User-Id", "alice")
	exp := e.create(map[string]any{"taskType": "export", "entityType": "order", "fileName": "orders-may.csv"}, "X-User-Id", "bob")
	canc := e.create(map[string]any{"taskType": "import", "entityType": "order"})
	e.do("POST", taskPath(canc.ID, "/cancel"), nil).want(t, http.StatusOK)

	ids := func(query string) []string {
		t.Helper()
		var page listPage
		e.do("GET", tasksPath+query, nil).want(t, http.StatusOK).decode(t, &page)
		var out []string
		for _, task := range page.Tasks {
			out = append(out, task.ID)
		}
		return out
	}
	today := imp.CreatedAt.Format("2006-01-02")
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"?taskType=import&sort=createdAt", []string{imp.ID, canc.ID}},
		{"?entityType=order&sort=createdAt:asc", []string{exp.ID, canc.ID}},
		{"?status=pending,%20cancelled&sort=-createdAt", []string{canc.ID, exp.ID, imp.ID}},
		{"?status=cancelled", []string{canc.ID}},
		{"?requestedBy=bob", []string{exp.ID}},
		{"?search=ORDERS-MAY", []string{exp.ID}},
		{"?sort=-priority&pageSize=1", []string{imp.ID}},
		{"?sort=createdAt&pageSize=2&page=2", []string{canc.ID}},
		{"?startDate=" + today + "&endDate=" + today + "&sort=createdAt", []string{imp.ID, exp.ID, canc.ID}},
		{"?endDate=" + today[:4] + "-01-01", nil},
	} {
		if got := ids(c.query); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, want %v", c.query, got, c.want)
		}
	}
	var page listPage
	e.do("GET", tasksPath+"?pageSize=2", nil).want(t, http.StatusOK).decode(t, &page)
	if page.Total != 3 || page.Page != 1 || page.PageSize != 2 || len(page.Tasks) != 2 {
		t.Fatalf("got total %d page %d pageSize %d len %d, want 3 1 2 2", page.Total, page.Page, page.PageSize, len(page.Tasks))
	}
}

// TestEventStream follows a task live over Server-Sent Events: it replays
// the history, pushes new events as they happen and ends once the task is
// terminal.
func TestEventStream(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		task := e.create(simple)

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+taskPath(task.ID, "/events"), nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
			t.Fatalf("got %d %q, want 200 text/event-stream", resp.StatusCode, ct)
		}
		events := make(chan sseEvent)
		go readSSE(resp.Body, events)

		first := <-events
		var ev commonops.Event
		if err := json.Unmarshal([]byte(first.data), &ev); err != nil || ev.EventType != commonops.EventCreated || first.id != fmt.Sprint(ev.ID) {
			t.Fatalf("got first event %+v (%v), want created with its id", first, err)
		}
		// Now changes happen while the stream is open.
		e.claim(task.ID)
		e.do("PATCH", taskPath(task.ID, "/progress"), map[string]any{"status": "completed"}).want(t, http.StatusOK)
		var types []string
		lastID := first.id
		for ev := range events {
			if ev.event == "end" {
				if ev.data != `{"status":"completed"}` {
					t.Fatalf("got end data %s, want the completed status", ev.data)
				}
				break
			}
			var got commonops.Event
			if err := json.Unmarshal([]byte(ev.data), &got); err != nil {
				t.Fatalf("decode %q: %v", ev.data, err)
			}
			types = append(types, got.EventType)
			lastID = ev.id
		}
		if want := []string{commonops.EventStarted, commonops.EventCompleted}; !containsInOrder(types, want) {
			t.Fatalf("got live events %v, want %v", types, want)
		}
		if _, ok := <-events; ok {
			t.Fatalf("the stream went on after its end event")
		}

		// Resuming after the last event replays nothing and ends at once.
		req, _ = http.NewRequestWithContext(ctx, "GET", e.srv.URL+taskPath(task.ID, "/events"), nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Last-Event-ID", lastID)
		resp2, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatalf("reopen stream: %v", err)
		}
		defer resp2.Body.Close()
		rest := make(chan sseEvent)
		go readSSE(resp2.Body, rest)
		if ev := <-rest; ev.event != "end" {
			t.Fatalf("got %+v after Last-Event-ID %s, want only the end event", ev, lastID)
		}
	})
}

type sseEvent struct{ id, event, data string }

// readSSE parses a Server-Sent Events stream into events (comments and
// retry lines skipped) and closes the channel when the stream ends.
func readSSE(r io.Reader, out chan<- sseEvent) {
	defer close(out)
	data, _ := io.ReadAll(iotest.OneByteReader(&lineFlusher{r: r, out: out}))
	_ = data
}

// lineFlusher emits each complete event as soon as its blank line arrives.
type lineFlusher struct {
	r   io.Reader
	out chan<- sseEvent
	buf []byte
	cur sseEvent
}

func (l *lineFlusher) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.buf = append(l.buf, p[:n]...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		switch {
		case line == "":
			if l.cur != (sseEvent{}) {
				l.out <- l.cur
			}
			l.cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			l.cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			l.cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			l.cur.data = line[6:]
		}
	}
	return n, err
}

func TestEventsJSON(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	task := e.create(simple)
	e.do("POST", taskPath(task.ID, "/cancel"), nil).want(t, http.StatusOK)
	var all eventsPage
	e.do("GET", taskPath(task.ID, "/events"), nil).want(t, http.StatusOK).decode(t, &all)
	if len(all.Events) != 2 {
		t.Fatalf("got %d events, want 2 (created, cancelled)", len(all.Events))
	}
	var after eventsPage
	e.do("GET", taskPath(task.ID, fmt.Sprintf("/events?after=%d", all.Events[0].ID)), nil).want(t, http.StatusOK).decode(t, &after)
	if len(after.Events) != 1 || after.Events[0].EventType != commonops.EventCancelled {
		t.Fatalf("got %+v after the first event, want the cancelled event", after.Events)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	var pubsubErr error
	var mu sync.Mutex
	ready := errors.New("warming up")
	e := sqliteEnv(t, func(c *Config) {
		c.Checks = map[string]func(context.Context) error{"pubsub": func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			return pubsubErr
		}}
		c.Ready = func(context.Context) error { mu.Lock(); defer mu.Unlock(); return ready }
	})
	var h healthBody
	e.do("GET", prefix+"/health", nil).want(t, http.StatusOK).decode(t, &h)
	for _, name := range []string{"database", "storage", "pubsub"} {
		if h.Checks[name].Status != checkOK {
			t.Errorf("check %s: got %+v, want ok", name, h.Checks[name])
		}
	}
	mu.Lock()
	pubsubErr = commonops.Errorf(commonops.EUNAVAILABLE, "sidecar not answering")
	mu.Unlock()
	e.do("GET", prefix+"/health", nil).want(t, http.StatusServiceUnavailable).decode(t, &h)
	if h.Status != "unavailable" || h.Checks["pubsub"].Status != checkDown || h.Checks["pubsub"].Error != "sidecar not answering" || h.Checks["database"].Status != checkOK {
		t.Fatalf("got %+v, want pubsub down with its message, database ok", h)
	}
	e.do("GET", "/healthz", nil).want(t, http.StatusOK)
	e.do("GET", "/readyz", nil).want(t, http.StatusServiceUnavailable).decode(t, &h)
	if h.Checks["ready"].Status != checkDown || h.Checks["database"].Status != checkOK {
		t.Fatalf("got %+v, want ready down, database ok", h)
	}
	mu.Lock()
	ready = nil
	mu.Unlock()
	e.do("GET", "/readyz", nil).want(t, http.StatusOK)
}

// TestHealthTimeout checks that a hanging dependency is reported down
// instead of hanging the probe. The timeout is long enough for the
// database's ping to answer on a loaded machine, which the test also
// checks, so only the hanging check times out.
func TestHealthTimeout(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t, func(c *Config) {
		c.CheckTimeout = time.Second
		c.Checks = map[string]func(context.Context) error{"pubsub": func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}
	})
	var h healthBody
	e.do("GET", prefix+"/health", nil).want(t, http.StatusServiceUnavailable).decode(t, &h)
	if h.Checks["pubsub"].Error != "no answer within 1s" || h.Checks["database"].Status != checkOK {
		t.Fatalf("got %+v, want pubsub timed out and database ok", h.Checks)
	}
}

// TestPanicRecovered checks that a panicking handler answers a generic 500
// problem, with no stack trace, and that the panic is logged.
func TestPanicRecovered(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	e := sqliteEnv(t, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		c.Files = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom in handler") })
	})
	r := e.do("PUT", "/files/tasks/x", "{}").want(t, http.StatusInternalServerError)
	p := r.problem(t)
	if p.Type != problemBase+"internal" || strings.Contains(string(r.body), "boom") || strings.Contains(string(r.body), "goroutine") {
		t.Fatalf("got %s, want a generic internal problem", r.body)
	}
	if got := logs.String(); !strings.Contains(got, "boom in handler") || !strings.Contains(got, p.RequestID) {
		t.Fatalf("got log %s, want the panic with request id %s", got, p.RequestID)
	}
	// The server goes on serving.
	e.do("GET", "/healthz", nil).want(t, http.StatusOK)
}

func TestRequestIDAndAccessLog(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	e := sqliteEnv(t, func(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
	r := e.do("GET", tasksPath, nil, "X-Request-Id", "req-123", "X-Tenant-Id", "acme").want(t, http.StatusOK)
	if got := r.header.Get("X-Request-Id"); got != "req-123" {
		t.Fatalf("got X-Request-Id %q, want req-123", got)
	}
	generated := e.do("GET", "/healthz", nil).header.Get("X-Request-Id")
	if len(generated) != 32 {
		t.Fatalf("got generated request id %q, want 32 hex characters", generated)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if rec["request_id"] == "req-123" {
			found = true
			if rec["method"] != "GET" || rec["path"] != tasksPath || rec["status"] != float64(200) || rec["tenant"] != "acme" || rec["route"] != "GET "+tasksPath {
				t.Fatalf("got access log %v, want method, path, status, tenant and route", rec)
			}
			if _, ok := rec["duration_ms"].(float64); !ok {
				t.Fatalf("got access log %v, want duration_ms", rec)
			}
		}
	}
	if !found {
		t.Fatalf("no access log line for req-123 in %s", logs.String())
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := sqliteEnv(t, func(c *Config) { c.Registerer = reg })
	task := e.create(simple)
	e.do("GET", taskPath(task.ID), nil).want(t, http.StatusOK)
	e.do("GET", taskPath("nope"), nil).want(t, http.StatusBadRequest)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	counts := map[string]float64{}
	var histograms int
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "commonops_http_requests_total":
				counts[labels["route"]+" "+labels["status"]] += m.GetCounter().GetValue()
			case "commonops_http_request_duration_seconds":
				histograms += int(m.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]float64{"POST " + tasksPath + " 201": 1, "GET " + tasksPath + "/{id} 200": 1, "GET " + tasksPath + "/{id} 400": 1}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("got %v requests for %q, want %v (all: %v)", counts[k], k, v, counts)
		}
	}
	if histograms != 3 {
		t.Errorf("got %d duration samples, want 3", histograms)
	}
	// A second server on the same registry shares the metrics.
	sqliteEnv(t, func(c *Config) { c.Registerer = reg })
}

func TestChunkedBodyOverLimit(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	body := `{"taskType":"import","entityType":"product","params":{"pad":"` + strings.Repeat("x", 4096) + `"}}`
	// A reader without a length makes the client send it chunked, so only
	// the limit while reading can catch it.
	req, _ := http.NewRequest("POST", e.srv.URL+tasksPath, io.MultiReader(strings.NewReader(body)))
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d, want 413", resp.StatusCode)
	}
	var page listPage
	e.do("GET", tasksPath, nil).want(t, http.StatusOK).decode(t, &page)
	if page.Total != 0 {
		t.Fatalf("got %d tasks, want none", page.Total)
	}
}

func TestUnconfiguredMounts(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	for _, path := range []string{"/metrics"} {
		if p := e.do("GET", path, nil).want(t, http.StatusNotFound).problem(t); !strings.Contains(p.Detail, "not enabled") {
			t.Errorf("%s: got detail %q, want not enabled", path, p.Detail)
		}
	}
	// Dapr deliveries have their own listener (app): the API takes none.
	e.do("POST", "/dapr/events/operations.task.created", "{}").want(t, http.StatusNotFound)
	e.do("GET", "/dapr/subscribe", nil).want(t, http.StatusNotFound)
}

var _ = operations.FileOutput

// TestPanicAfterHeaders checks that a handler panicking mid-answer aborts
// the connection rather than passing a truncated answer off as complete.
func TestPanicAfterHeaders(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t, func(c *Config) {
		c.Files = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("partial"))
			http.NewResponseController(w).Flush()
			panic("boom mid-answer")
		})
	})
	resp, err := e.srv.Client().Get(e.srv.URL + "/files/x")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatalf("got a complete body, want the connection aborted")
	}
}
