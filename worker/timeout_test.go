package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/worker"
)

// TestTimeoutCancelsProcessor runs a processor that never ends on a task
// with timeoutSeconds 1: past the deadline its heartbeat is refused, which
// cancels its context, and the maintenance call fails the attempt with a
// timeout error.
func TestTimeoutCancelsProcessor(t *testing.T) {
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
			<-ctx.Done()
			return ctx.Err()
		}))
		startPool(t, ctx, svc, reg, func(c *worker.Config) { c.HeartbeatInterval = 100 * time.Millisecond })
		task := create(t, svc, commonops.CreateInput{TaskType: "long", EntityType: "x", MaxRetries: ptr(0), TimeoutSeconds: ptr(1)})
		run := recvRun(t, runs)
		waitDone(t, run.ctx, "past the deadline")
		got, err := svc.TimeOut(ctx, operations.TaskRef{TenantID: tenant, ID: task.ID}, time.Now())
		if err != nil {
			t.Fatalf("TimeOut: %v", err)
		}
		if got.Status != commonops.StatusFailed || got.ErrorMessage == nil || !strings.HasPrefix(*got.ErrorMessage, commonops.TimeoutPrefix) {
			t.Fatalf("after the timeout: got status %s, error %v, want failed with %q...", got.Status, deref(got.ErrorMessage), commonops.TimeoutPrefix)
		}
	})
}
