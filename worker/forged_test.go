package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/worker"
)

// TestForgedEventRunsNothing: an event is only a hint. A delivery whose
// payload names another task type (a forged or stale
// operations.task.created) must not run the stored task with the
// processor of the type it claims, nor claim it at all: here an export,
// which this pool does not run, announced as a noop. One naming another
// tenant finds nothing.
func TestForgedEventRunsNothing(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		svc := newService(t, s, 30*time.Second)
		var noops atomic.Int32
		reg := worker.NewRegistry()
		reg.Register("noop", "*", worker.ProcessorFunc(func(context.Context, worker.Job) error { noops.Add(1); return nil }))
		pool := startPool(t, ctx, svc, reg, func(c *worker.Config) { c.PollInterval = time.Hour })
		task := create(t, svc, commonops.CreateInput{TaskType: "export", EntityType: "product"})

		forged := task.Clone()
		forged.TaskType = "noop"
		if err := pool.HandleEvent(ctx, commonops.TopicCreated, forged); err != nil {
			t.Fatalf("HandleEvent of the forged type: %v", err)
		}
		otherTenant := task.Clone()
		otherTenant.TenantID = "mallory"
		if err := pool.HandleEvent(ctx, commonops.TopicCreated, otherTenant); err != nil {
			t.Fatalf("HandleEvent of another tenant: %v", err)
		}
		if got := get(t, svc, task.ID); got.Status != commonops.StatusPending || got.Attempt != 0 {
			t.Fatalf("after the forged events: got %s on attempt %d, want pending and never claimed", got.Status, got.Attempt)
		}
		if n := noops.Load(); n != 0 {
			t.Fatalf("noop runs by forged events: got %d, want 0", n)
		}

		// The pool still runs what the store says is a noop.
		real := create(t, svc, commonops.CreateInput{TaskType: "noop", EntityType: "product"})
		if err := pool.HandleEvent(ctx, commonops.TopicCreated, real); err != nil {
			t.Fatalf("HandleEvent of a genuine event: %v", err)
		}
		waitStatus(t, svc, real.ID, commonops.StatusCompleted, 5*time.Second)
		if got := get(t, svc, task.ID); got.Status != commonops.StatusPending {
			t.Fatalf("the export: got %s, want still pending", got.Status)
		}
	})
}
