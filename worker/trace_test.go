package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
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
