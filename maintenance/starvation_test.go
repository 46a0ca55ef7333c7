package maintenance_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/maintenance"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/store"
)

// upload puts the input object of task in the object store, as a client
// that never calls upload-complete would.
func (e *env) upload(t *testing.T, task *commonops.Task) {
	t.Helper()
	w, err := e.objs.Create(context.Background(), objectstore.InputKey(task.ID, *task.FileName), "text/csv")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "sku\n1\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// createAfter creates a task a millisecond after the previous one, so
// creation order is unambiguous, and checks its id sorts after prev's (the
// order sweeps page in).
func (e *env) createAfter(t *testing.T, prev *commonops.Task, in commonops.CreateInput) *commonops.Task {
	t.Helper()
	e.clock.Set(e.clock.Now().Add(time.Millisecond))
	task := e.create(t, in)
	if prev != nil && task.ID <= prev.ID {
		t.Fatalf("task created later has id %s, not after %s", task.ID, prev.ID)
	}
	return task
}

// TestConfirmUploadNotStarved: uploads that never come, created first, fill
// a whole batch; the task behind them whose object is there is still
// confirmed within a pass, and after the pass the sweep starts over.
func TestConfirmUploadNotStarved(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		e := newEnv(t, s, func(c *maintenance.Config) {
			c.BatchSize = 2
			c.UploadSweepInterval = time.Nanosecond // every Tick sweeps uploads
		})
		in := commonops.CreateInput{TaskType: "import", EntityType: "x", FileName: ptr("in.csv")}
		var never []*commonops.Task
		var prev *commonops.Task
		for range 5 {
			prev = e.createAfter(t, prev, in)
			never = append(never, prev)
		}
		arrived := e.createAfter(t, prev, in)
		e.upload(t, arrived)

		ticks := 0
		for e.get(t, arrived.ID).UploadStatus != commonops.UploadUploaded {
			if ticks == 3 { // pages of 2 over 6 candidates
				t.Fatalf("after %d ticks with batches of 2: got upload %s, want uploaded", ticks, e.get(t, arrived.ID).UploadStatus)
			}
			e.tick(t)
			ticks++
		}
		for _, n := range never {
			if got := e.get(t, n.ID).UploadStatus; got != commonops.UploadAwaiting {
				t.Fatalf("task without its object: got upload %s, want awaiting", got)
			}
		}

		// The pass wraps around: an object that arrives for the first task
		// is found once the sweep starts over.
		e.upload(t, never[0])
		for ticks = 0; e.get(t, never[0].ID).UploadStatus != commonops.UploadUploaded; ticks++ {
			if ticks == 4 { // the rest of a pass (at most 3 pages) and the first page
				t.Fatalf("after %d more ticks: got upload %s, want uploaded", ticks, e.get(t, never[0].ID).UploadStatus)
			}
			e.tick(t)
		}
		if got := e.count(maintenance.JobConfirmUpload); got != 2 {
			t.Fatalf("got confirm count %v, want 2", got)
		}
	})
}

// TestFailUnclaimedNotStarved: tasks waiting for an upload or backing off,
// created first, are not even fetched, so one tick with batches of 2 fails
// the unclaimed task behind them.
func TestFailUnclaimedNotStarved(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		e := newEnv(t, s, func(c *maintenance.Config) {
			c.BatchSize = 2
			c.UnclaimedTimeout = 10 * time.Minute
		})
		e.svc.BackoffBase, e.svc.BackoffMax = time.Hour, 2*time.Hour // a rescued task backs off 30m (Rand is 0)
		var prev *commonops.Task
		var backoff, awaiting []*commonops.Task
		for range 2 {
			prev = e.createAfter(t, prev, commonops.CreateInput{TaskType: "a", EntityType: "x", MaxRetries: ptr(1)})
			backoff = append(backoff, prev)
			if _, err := e.svc.Claim(ctx, tenant, prev.ID, "gone", 10); err != nil {
				t.Fatal(err)
			}
		}
		for range 5 {
			prev = e.createAfter(t, prev, commonops.CreateInput{TaskType: "a", EntityType: "x", FileName: ptr("in.csv")})
			awaiting = append(awaiting, prev)
		}
		orphan := e.createAfter(t, prev, commonops.CreateInput{TaskType: "a", EntityType: "x"})

		rescued := e.clock.Now().Add(11 * time.Second)
		e.clock.Set(rescued)
		e.tick(t) // the leases lapse: back to pending, available in 30m
		for _, b := range backoff {
			if got := e.get(t, b.ID); got.Status != commonops.StatusPending || got.AvailableAt == nil || !got.AvailableAt.After(rescued.Add(10*time.Minute)) {
				t.Fatalf("rescued task: got %s available %v, want pending and backing off past the timeout", got.Status, got.AvailableAt)
			}
		}

		e.clock.Set(rescued.Add(10*time.Minute + time.Second))
		e.tick(t)
		if got := e.get(t, orphan.ID).Status; got != commonops.StatusFailed {
			t.Fatalf("unclaimed task behind %d skipped ones, one tick: got %s, want failed", len(backoff)+len(awaiting), got)
		}
		for _, w := range append(backoff, awaiting...) {
			if got := e.get(t, w.ID).Status; got != commonops.StatusPending {
				t.Fatalf("task backing off or awaiting its upload: got %s, want pending", got)
			}
		}
		if got := e.count(maintenance.JobUnclaimed); got != 1 {
			t.Fatalf("got fail_unclaimed count %v, want 1", got)
		}
	})
}
