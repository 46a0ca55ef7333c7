package operations_test

import (
	"context"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
)

// TestAwaitingWorker checks that Get and List say awaitingWorker, with
// since and waitedSeconds, once a runnable task has waited unclaimed for
// AwaitingWorkerAfterDefault, and not before, nor for a task still waiting
// for its upload, nor once a worker claimed it.
func TestAwaitingWorker(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		c := &clock{now: time.Now().UTC().Truncate(time.Second)}
		t0 := c.now
		svc := newEnv(t, s).svc
		svc.Now = c.Now
		mk := func(in commonops.CreateInput) *commonops.Task {
			t.Helper()
			cr, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: maintTenant, Requester: "test", Input: in})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			return cr.Task
		}
		nobody := mk(commonops.CreateInput{TaskType: "nobody", EntityType: "x"})
		upload := mk(commonops.CreateInput{TaskType: "nobody", EntityType: "x", FileName: ptr("in.csv")})
		claimed := mk(commonops.CreateInput{TaskType: "served", EntityType: "x"})
		get := func(id string) *commonops.Task {
			t.Helper()
			got, err := svc.Get(ctx, maintTenant, id)
			if err != nil {
				t.Fatalf("get %s: %v", id, err)
			}
			return got
		}

		c.mu.Lock()
		c.now = t0.Add(operations.AwaitingWorkerAfterDefault - time.Second)
		c.mu.Unlock()
		if got := get(nobody.ID).AwaitingWorker; got != nil {
			t.Fatalf("after 9s: got awaitingWorker %+v, want null", got)
		}
		if _, err := svc.Claim(ctx, maintTenant, claimed.ID, "w1", 0); err != nil {
			t.Fatalf("claim: %v", err)
		}

		c.mu.Lock()
		c.now = t0.Add(42 * time.Second)
		c.mu.Unlock()
		want := commonops.AwaitingWorker{Since: nobody.UpdatedAt, WaitedSeconds: 42}
		if got := get(nobody.ID).AwaitingWorker; got == nil || !got.Since.Equal(want.Since) || got.WaitedSeconds != want.WaitedSeconds {
			t.Fatalf("after 42s: got awaitingWorker %+v, want %+v", got, want)
		}
		if got := get(upload.ID).AwaitingWorker; got != nil {
			t.Errorf("task awaiting its upload: got awaitingWorker %+v, want null", got)
		}
		if got := get(claimed.ID).AwaitingWorker; got != nil {
			t.Errorf("claimed task: got awaitingWorker %+v, want null", got)
		}
		list, _, err := svc.List(ctx, commonops.ListFilter{TenantID: maintTenant, PageSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range list {
			if (task.ID == nobody.ID) != (task.AwaitingWorker != nil) {
				t.Errorf("list: task %s (%s) got awaitingWorker %+v", task.ID, task.TaskType, task.AwaitingWorker)
			}
		}
	})
}
