package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/worker"
)

// TestReclaimWhileOldRunStops has the pool claim a task again while its
// cancelled previous attempt is still returning: the old run's clean-up must
// not forget the new one (which a cancelled event must still reach).
func TestReclaimWhileOldRunStops(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		svc := newService(t, s, 30*time.Second)
		runs := make(chan attemptRun, 4)
		slowStop := make(chan struct{})
		reg := worker.NewRegistry()
		reg.Register("long", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			r := attemptRun{attempt: job.Task().Attempt, ctx: ctx, finish: make(chan struct{})}
			runs <- r
			if r.attempt == 1 {
				<-slowStop // ignores its context until the test lets it go
				return ctx.Err()
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-r.finish:
				return nil
			}
		}))
		metrics := prometheus.NewRegistry()
		pool := startPool(t, ctx, svc, reg, func(c *worker.Config) { c.Registerer = metrics })
		task := create(t, svc, commonops.CreateInput{TaskType: "long", EntityType: "x", MaxRetries: ptr(3)})
		first := recvRun(t, runs)
		cancelled, err := svc.Cancel(ctx, tenant, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := pool.HandleEvent(ctx, commonops.TopicCancelled, cancelled); err != nil {
			t.Fatal(err)
		}
		waitDone(t, first.ctx, "cancel of attempt 1")
		if _, err := svc.Retry(ctx, tenant, task.ID, false); err != nil {
			t.Fatal(err)
		}
		second := recvRun(t, runs)
		if second.attempt != 2 {
			t.Fatalf("got attempt %d, want 2", second.attempt)
		}
		close(slowStop)
		waitFor(t, "attempt 1 to be cleaned up", 5*time.Second, func() bool { return gauge(t, metrics, "commonops_worker_running") == 1 })
		if got := pool.Running(); got != 1 {
			t.Fatalf("after attempt 1 ended: got Running %d, want 1 (attempt 2)", got)
		}
		again, err := svc.Cancel(ctx, tenant, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := pool.HandleEvent(ctx, commonops.TopicCancelled, again); err != nil {
			t.Fatal(err)
		}
		if second.ctx.Err() == nil {
			t.Fatal("cancelled event of attempt 2: got processor running, want it stopped")
		}
	})
}

// gauge reads an unlabelled gauge from reg.
func gauge(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
