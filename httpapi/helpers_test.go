package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
)

// env is a running API over a real store and a real local object store.
type env struct {
	t   testing.TB
	srv *httptest.Server
	svc *operations.Service
}

// newEnv starts the API on st; edit adjusts the Config before the server is
// built.
func newEnv(t testing.TB, st store.Store, edit ...func(*Config)) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	objects, err := objectstore.NewLocal(objectstore.LocalConfig{
		Dir:     t.TempDir(),
		BaseURL: "http://" + srv.Listener.Addr().String(),
		Logger:  discard,
	})
	if err != nil {
		t.Fatalf("open local object store: %v", err)
	}
	t.Cleanup(func() { objects.Close() })
	svc := &operations.Service{Store: st, Objects: objects}
	done := make(chan struct{}) // ends open streams, and stops the server's own feed
	cfg := Config{Service: svc, Files: objects.Handler(), StreamsDone: done}
	for _, f := range edit {
		f(&cfg)
	}
	srv.Config.Handler = NewServer(cfg)
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) }) // first: Close waits for open streams
	return &env{t: t, srv: srv, svc: svc}
}

var discard = slog.New(slog.DiscardHandler)

// sqliteEnv is an env on a fresh SQLite store, for tests where the driver
// does not matter.
func sqliteEnv(t testing.TB, edit ...func(*Config)) *env {
	t.Helper()
	return newEnv(t, testdb.SQLite(t), edit...)
}

// eachStore runs fn, in parallel subtests, on every store driver.
func eachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	testdb.Each(t, func(t *testing.T, st store.Store) {
		t.Parallel()
		fn(t, st)
	})
}

// response is an answered request.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; body is marshalled unless it is a string or []byte.
// Headers come as name, value pairs.
func (e *env) do(method, path string, body any, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatalf("marshal body: %v", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read %s %s: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// want fails the test unless r has status; it returns r for chaining.
func (r response) want(t testing.TB, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("got status %d, want %d; body: %s", r.status, status, r.body)
	}
	return r
}

// decode unmarshals the body into v.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// task decodes the body as a task.
func (r response) task(t testing.TB) commonops.Task {
	t.Helper()
	var task commonops.Task
	r.decode(t, &task)
	return task
}

// problem decodes the body as a problem, checking its media type.
func (r response) problem(t testing.TB) problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("got Content-Type %q, want application/problem+json; body: %s", ct, r.body)
	}
	var p problem
	r.decode(t, &p)
	if p.Status != r.status {
		t.Fatalf("problem status %d, response status %d", p.Status, r.status)
	}
	return p
}

const tasksPath = prefix + "/tasks"

func taskPath(id string, rest ...string) string { return tasksPath + "/" + id + strings.Join(rest, "") }

// create makes a task of tenant and returns it.
func (e *env) create(body any, headers ...string) commonops.Task {
	e.t.Helper()
	var c operations.Created
	e.do("POST", tasksPath, body, headers...).want(e.t, http.StatusCreated).decode(e.t, &c)
	return *c.Task
}

// claim claims task id for worker "w1".
func (e *env) claim(id string, headers ...string) commonops.Task {
	e.t.Helper()
	return e.do("POST", taskPath(id, "/claim"), map[string]any{"workerId": "w1"}, headers...).want(e.t, http.StatusOK).task(e.t)
}

// simple is the smallest valid create body.
var simple = map[string]any{"taskType": "import", "entityType": "product"}

// as returns e reporting to t, for use inside a subtest.
func (e *env) as(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}
