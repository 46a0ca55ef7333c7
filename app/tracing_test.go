package app_test

import (
	"fmt"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/internal/daprtest"
	"github.com/commonops/commonops/internal/tracing"
)

// One task created through the API is one trace: the request, the publish
// of its created event, the event's delivery, the claim, the run and,
// through Dapr, the publish of its completed event, each span the child of
// the one before (through the sidecar, the delivery's parent is daprd's own
// span, which continues the publish's trace). The embedded bus publishes
// no completed event: no one here subscribes to it (app.OpenStore). Spans
// are collected in memory; the test does not run in parallel, as tracing
// is switched on for the process.
func TestTraceEndToEnd(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracing.Enable(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample())))
	t.Cleanup(func() { tracing.Enable(nil) })

	base := app.Config{DatabaseURL: databaseURL(t, "postgres"), Addr: "127.0.0.1:0",
		PollInterval: time.Hour, RateLimit: -1, TenantRateLimit: -1,
		QuotaCreatesPerMinute: -1, QuotaConcurrentHeavy: -1, Logger: quiet()}
	t.Run("bus", func(t *testing.T) {
		cfg := base
		cfg.DataDir = t.TempDir()
		checkTrace(t, rec, start(t, cfg), true)
	})
	t.Run("sqlite", func(t *testing.T) {
		cfg := base
		cfg.DataDir = t.TempDir()
		cfg.DatabaseURL = databaseURL(t, "sqlite")
		checkTrace(t, rec, start(t, cfg), true)
	})
	t.Run("dapr", func(t *testing.T) {
		// daprd waits for its app's port before it answers healthy, so the
		// app starts first, pointed at the sidecar's port to come.
		port := daprtest.FreePort(t)
		cfg := base
		cfg.DataDir = t.TempDir()
		cfg.DatabaseURL = databaseURL(t, "postgres")
		cfg.PubSub, cfg.DaprURL, cfg.DaprAppAddr = app.PubSubDapr, fmt.Sprintf("http://127.0.0.1:%d", port), "127.0.0.1:0"
		a := start(t, cfg)
		daprtest.Start(t, appPort(t, a), daprtest.HTTPPort(port), daprtest.Tracing())
		checkTrace(t, rec, a, false)
	})
}

// checkTrace creates noop tasks through a's API until one's trace holds
// every span from the request to the run (through Dapr, to the completed
// event's publish), each the child of the one before. A task the poller
// claims before its event comes (it may, when a poll round holds the free
// slots) runs under the poll round's claim span, in a trace of its own
// (see TestPollClaimSpan in the worker package), so up to five tasks are
// tried; every one must still end with its last span. direct: the
// embedded bus, where the delivery is the publish's child, not a sidecar's
// span's, and no completed event is published.
func checkTrace(t *testing.T, rec *tracetest.SpanRecorder, a *app.App, direct bool) {
	t.Helper()
	names := []string{
		"POST /api/v1/operations/tasks",
		"publish " + commonops.TopicCreated,
		"deliver " + commonops.TopicCreated,
		"claim",
		"run noop",
	}
	if !direct {
		names = append(names, "publish "+commonops.TopicCompleted)
	}
	last := names[len(names)-1]
	var chain []sdktrace.ReadOnlySpan
	for try := 0; try < 5 && chain == nil; try++ {
		id, err := createNoop(a.URL())
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for !published(rec.Ended(), id, last) {
			if time.Now().After(deadline) {
				var got []string
				for _, s := range rec.Ended() {
					got = append(got, s.Name())
				}
				t.Fatalf("task %s: no span %q; ended spans: %q", id, last, got)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if direct {
			// Once the task is completed, a next task's created event is
			// published after any completed event of this one (the relay
			// publishes in outbox order).
			waitFor(t, func() bool {
				tk, err := getTask(a.URL(), id)
				return err == nil && tk.Status == commonops.StatusCompleted
			}, "task "+id+" completed")
			next, err := createNoop(a.URL())
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return published(rec.Ended(), next, "publish "+commonops.TopicCreated) }, "the next task's created event")
			if published(rec.Ended(), id, "publish "+commonops.TopicCompleted) {
				t.Fatalf("task %s: the embedded bus published its completed event, which no one here receives", id)
			}
		}
		chain = taskTrace(rec.Ended(), id, names)
	}
	if chain == nil {
		t.Fatalf("none of five tasks was claimed from its event with the spans %q", names)
	}
	for i := 1; i < len(chain); i++ {
		child, parent := chain[i], chain[i-1]
		if i == 2 && !direct {
			continue // the sidecar's span stands between publish and delivery
		}
		if got, want := child.Parent().SpanID(), parent.SpanContext().SpanID(); got != want {
			t.Errorf("parent of %q: got span %s, want %q (%s)", child.Name(), got, parent.Name(), want)
		}
	}
}

// published reports whether spans hold the span named name of task id.
func published(spans []sdktrace.ReadOnlySpan, id, name string) bool {
	for _, s := range spans {
		if s.Name() == name && attr(s, "commonops.task.id") == id {
			return true
		}
	}
	return false
}

// taskTrace returns the spans named names, in that order, of the trace of
// the create request of task id, or nil while one is missing. The request
// span is the one whose trace holds a publish span of the task.
func taskTrace(spans []sdktrace.ReadOnlySpan, id string, names []string) []sdktrace.ReadOnlySpan {
	var traceID trace.TraceID
	for _, s := range spans {
		if s.Name() == names[1] && attr(s, "commonops.task.id") == id {
			traceID = s.SpanContext().TraceID()
		}
	}
	if !traceID.IsValid() {
		return nil
	}
	chain := make([]sdktrace.ReadOnlySpan, len(names))
	for _, s := range spans {
		if s.SpanContext().TraceID() != traceID {
			continue
		}
		for i, n := range names {
			if s.Name() == n && chain[i] == nil {
				chain[i] = s
			}
		}
	}
	for _, s := range chain {
		if s == nil {
			return nil
		}
	}
	return chain
}

// attr is the string attribute key of s, or "".
func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.AsString()
		}
	}
	return ""
}
