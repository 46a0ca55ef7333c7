package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/internal/tracing"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/worker"
)

// A run started by an event continues the event's trace: the processor's
// context carries the event's traceparent, and so does the outbox row of the
// run's outcome.
func TestRunContinuesEventTrace(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	s := testdb.SQLite(t)
	svc := newService(t, s, 10*time.Second)
	var (
		mu     sync.Mutex
		traced = map[string]bool{} // task id -> the processor saw tp
	)
	reg := worker.NewRegistry()
	reg.Register("noop", "*", worker.ProcessorFunc(func(ctx context.Context, j worker.Job) error {
		mu.Lock()
		traced[j.Task().ID] = commonops.TraceParent(ctx) == tp
		mu.Unlock()
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := startPool(t, ctx, svc, reg, func(c *worker.Config) { c.PollInterval = time.Hour })

	// The poller may win the claim of a task created while it runs a round;
	// try until the event's claim ran one.
	var id string
	for range 5 {
		task := create(t, svc, commonops.CreateInput{TaskType: "noop", EntityType: "demo"})
		if err := pool.HandleEvent(commonops.WithTraceParent(ctx, tp), commonops.TopicCreated, task); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, svc, task.ID, commonops.StatusCompleted, 10*time.Second)
		mu.Lock()
		ok := traced[task.ID]
		mu.Unlock()
		if ok {
			id = task.ID
			break
		}
	}
	if id == "" {
		t.Fatalf("no run started by the event saw the event's traceparent in its context")
	}

	var got []string
	if _, err := s.DeliverOutbox(ctx, 100, func(_ context.Context, msgs []outbox.Message) (int, error) {
		for _, m := range msgs {
			if m.Topic == commonops.TopicCompleted && m.TaskID == id {
				got = append(got, m.TraceParent)
			}
		}
		return len(msgs), nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != tp {
		t.Fatalf("traceparent of the completed event: got %q, want [%s]", got, tp)
	}
}

// A run the poller claimed is the child of the poll round's claim span,
// which names the tasks it claimed; a round that claims nothing records no
// span.
func TestPollClaimSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracing.Enable(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample())))
	t.Cleanup(func() { tracing.Enable(nil) })
	s := testdb.SQLite(t)
	svc := newService(t, s, 10*time.Second)
	reg := worker.NewRegistry()
	reg.Register("noop", "*", worker.ProcessorFunc(func(context.Context, worker.Job) error { return nil }))
	// Created before the pool runs: no event reaches it, the poller claims it.
	task := create(t, svc, commonops.CreateInput{TaskType: "noop", EntityType: "demo"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startPool(t, ctx, svc, reg, func(c *worker.Config) { c.PollInterval = 20 * time.Millisecond })
	waitStatus(t, svc, task.ID, commonops.StatusCompleted, 10*time.Second)
	time.Sleep(100 * time.Millisecond) // several empty rounds

	var claims, runs []sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		switch sp.Name() {
		case "claim":
			claims = append(claims, sp)
		case "run noop":
			runs = append(runs, sp)
		}
	}
	if len(claims) != 1 || len(runs) != 1 {
		t.Fatalf("got %d claim spans and %d run spans, want 1 each (empty rounds record none)", len(claims), len(runs))
	}
	var source string
	var ids []string
	for _, kv := range claims[0].Attributes() {
		switch kv.Key {
		case "commonops.claim.source":
			source = kv.Value.AsString()
		case "commonops.task.ids":
			ids = kv.Value.AsStringSlice()
		}
	}
	if source != "poll" || len(ids) != 1 || ids[0] != task.ID {
		t.Errorf("claim span: source %q, task ids %q; want poll, [%s]", source, ids, task.ID)
	}
	if got, want := runs[0].Parent().SpanID(), claims[0].SpanContext().SpanID(); got != want {
		t.Errorf("parent of the run: got span %s, want the claim %s", got, want)
	}
	if claims[0].StartTime().After(runs[0].StartTime()) || claims[0].EndTime().Before(claims[0].StartTime()) {
		t.Errorf("claim span %v–%v, run started %v", claims[0].StartTime(), claims[0].EndTime(), runs[0].StartTime())
	}
}
