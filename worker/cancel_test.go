package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/worker"
)

// attemptRun is one processor call seen by a test: its attempt, its context
// and a channel that lets it return nil.
type attemptRun struct {
	attempt int
	ctx     context.Context
	finish  chan struct{}
}

// recvRun waits for the next processor call.
func recvRun(t testing.TB, runs <-chan attemptRun) attemptRun {
	t.Helper()
	select {
	case r := <-runs:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no attempt started within 5s")
		return attemptRun{}
	}
}

func waitDone(t testing.TB, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: processor context still live 5s later", what)
	}
}

// TestCancelEventNeedsTheStore delivers cancelled events the store does not
// back: a forged one about the running attempt (from any tenant), and a late
// redelivery of a real one after the task was retried and claimed again.
// Neither may stop the processor; the real one must.
func TestCancelEventNeedsTheStore(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		svc := newService(t, s, 30*time.Second)
		runs := make(chan attemptRun, 4)
		reg := worker.NewRegistry()
		reg.Register("long", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			r := attemptRun{attempt: job.Task().Attempt, ctx: ctx, finish: make(chan struct{})}
			runs <- r
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-r.finish:
				return nil
			}
		}))
		pool := startPool(t, ctx, svc, reg, nil)
		task := create(t, svc, commonops.CreateInput{TaskType: "long", EntityType: "x", MaxRetries: ptr(3)})
		first := recvRun(t, runs)

		forged := get(t, svc, task.ID)
		forged.Status, forged.CancelRequested = commonops.StatusCancelled, true
		for _, tenantID := range []string{tenant, "someone-else"} {
			forged.TenantID = tenantID
			if err := pool.HandleEvent(ctx, commonops.TopicCancelled, forged); err != nil {
				t.Fatalf("forged event of tenant %q: got error %v, want nil", tenantID, err)
			}
			if first.ctx.Err() != nil {
				t.Fatalf("forged event of tenant %q: got processor stopped (cause %v), want it running", tenantID, context.Cause(first.ctx))
			}
		}

		cancelled, err := svc.Cancel(ctx, tenant, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := pool.HandleEvent(ctx, commonops.TopicCancelled, cancelled); err != nil {
			t.Fatal(err)
		}
		waitDone(t, first.ctx, "real cancelled event")
		waitFor(t, "the pool to finish attempt 1", 5*time.Second, func() bool { return pool.Running() == 0 })

		if _, err := svc.Retry(ctx, tenant, task.ID, false); err != nil {
			t.Fatal(err)
		}
		second := recvRun(t, runs)
		if err := pool.HandleEvent(ctx, commonops.TopicCancelled, cancelled); err != nil {
			t.Fatalf("late event: got error %v, want nil", err)
		}
		if second.ctx.Err() != nil {
			t.Fatalf("late event of attempt %d: got attempt %d stopped (cause %v), want it running", cancelled.Attempt, second.attempt, context.Cause(second.ctx))
		}
		close(second.finish)
		final := waitStatus(t, svc, task.ID, commonops.StatusCompleted, 5*time.Second)
		if final.Attempt != 2 {
			t.Fatalf("got attempt %d, want 2", final.Attempt)
		}
	})
}
