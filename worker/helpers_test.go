package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/worker"
)

const tenant = commonops.DefaultTenant

// quiet keeps the pools' logs out of the test output unless -v.
func quiet(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newService returns a Service on s and a fresh local object store, with a
// short lease and short, deterministic backoff (jitter factor 0.5).
func newService(t testing.TB, s store.Store, lease time.Duration) *operations.Service {
	t.Helper()
	objs, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: t.TempDir(), Secret: []byte("worker-test-secret-0123456789abc"), BaseURL: "http://files.invalid"})
	if err != nil {
		t.Fatalf("new local object store: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	return &operations.Service{
		Store: s, Objects: objs, Lease: lease,
		BackoffBase: 100 * time.Millisecond, BackoffMax: 10 * time.Second,
		Rand: func() float64 { return 0 },
	}
}

func create(t testing.TB, svc *operations.Service, in commonops.CreateInput) *commonops.Task {
	t.Helper()
	c, _, err := svc.Create(context.Background(), operations.CreateRequest{TenantID: tenant, Requester: "test", Input: in})
	if err != nil {
		t.Fatalf("create task: %v", err)
	}
	return c.Task
}

func get(t testing.TB, svc *operations.Service, id string) *commonops.Task {
	t.Helper()
	task, err := svc.Get(context.Background(), tenant, id)
	if err != nil {
		t.Fatalf("get task %s: %v", id, err)
	}
	return task
}

// waitStatus polls the task until it has status want, or fails the test
// after timeout.
func waitStatus(t testing.TB, svc *operations.Service, id string, want commonops.Status, timeout time.Duration) *commonops.Task {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		task := get(t, svc, id)
		if task.Status == want {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: got status %s after %s, want %s (error %v)", id, task.Status, timeout, want, deref(task.ErrorMessage))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func ptr[T any](v T) *T { return &v }

// startPool starts a pool with fast polling, stopped when the test ends.
func startPool(t testing.TB, ctx context.Context, svc *operations.Service, reg *worker.Registry, mod func(*worker.Config)) *worker.Pool {
	t.Helper()
	cfg := worker.Config{
		Service: svc, Registry: reg, WorkerID: fmt.Sprintf("w-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano()),
		Concurrency: 4, PollInterval: 20 * time.Millisecond, ReportInterval: 50 * time.Millisecond,
		StopTimeout: 5 * time.Second, Logger: quiet(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	p := worker.NewPool(cfg)
	p.Start(ctx)
	t.Cleanup(p.Stop)
	return p
}

func events(t testing.TB, svc *operations.Service, id string) []commonops.Event {
	t.Helper()
	evs, err := svc.Events(context.Background(), tenant, id, 0, 1000)
	if err != nil {
		t.Fatalf("events of %s: %v", id, err)
	}
	return evs
}

func eventData(t testing.TB, e commonops.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.EventData, &m); err != nil {
		t.Fatalf("decode event data %s: %v", e.EventData, err)
	}
	return m
}
