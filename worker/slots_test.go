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

// TestSlotFreesBeforeOutcomeWrite: a slot is the processor's, not its
// outcome's. With one slot, the next task starts while the finished one's
// completion is still being written, and both complete.
func TestSlotFreesBeforeOutcomeWrite(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		gs := &gateStore{Store: s}
		svc := newService(t, gs, 30*time.Second)
		ran := make(chan string, 2)
		reg := worker.NewRegistry()
		reg.Register("quick", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			ran <- job.Task().ID
			return nil
		}))
		g := gs.armFrom()
		defer func() {
			select {
			case <-g.open:
			default:
				close(g.open)
			}
		}()
		pool := startPool(t, context.Background(), svc, reg, func(c *worker.Config) { c.Concurrency = 1 })

		first := create(t, svc, commonops.CreateInput{TaskType: "quick", EntityType: "x"})
		select {
		case <-g.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("the first task's outcome was not written within 5s")
		}
		if got := <-ran; got != first.ID {
			t.Fatalf("ran %s first, want %s", got, first.ID)
		}
		second := create(t, svc, commonops.CreateInput{TaskType: "quick", EntityType: "x"})
		select {
		case got := <-ran:
			if got != second.ID {
				t.Fatalf("ran %s second, want %s", got, second.ID)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the second task did not start within 5s while the first one's outcome was being written")
		}
		if got := get(t, svc, first.ID).Status; got != commonops.StatusProcessing {
			t.Fatalf("first task while its outcome is held: got status %s, want processing", got)
		}
		close(g.open)
		waitStatus(t, svc, first.ID, commonops.StatusCompleted, 5*time.Second)
		waitStatus(t, svc, second.ID, commonops.StatusCompleted, 5*time.Second)
		waitFor(t, "Running to drop to 0", 5*time.Second, func() bool { return pool.Running() == 0 })
	})
}
