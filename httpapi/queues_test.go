package httpapi

import (
	"net/http"
	"testing"

	"github.com/commonops/commonops/store"
)

func TestQueues(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		e.create(map[string]any{"taskType": "export", "entityType": "product"})
		held := e.claim(e.create(simple).ID)
		e.create(simple, "X-Tenant-Id", "acme")
		var got queueReport
		e.do("GET", prefix+"/queues", nil).want(t, http.StatusOK).decode(t, &got)
		if got.BucketSeconds != 300 || len(got.Queues) != 2 || len(got.Leases) != 1 {
			t.Fatalf("queues: got %+v, want 5-minute buckets, two task types and one lease", got)
		}
		exp, imp := got.Queues[0], got.Queues[1]
		if exp.TaskType != "export" || exp.Pending != 1 || exp.OldestWaitingSeconds == nil || *exp.OldestWaitingSeconds < 0 || len(exp.Completed) != 12 {
			t.Fatalf("export queue: got %+v, want one pending task with an age and 12 buckets", exp)
		}
		if imp.TaskType != "import" || imp.Pending != 0 || imp.Running != 1 || imp.OldestWaitingSeconds != nil {
			t.Fatalf("import queue: got %+v, want one running task and no waiting age (the other tenant's is not counted)", imp)
		}
		if l := got.Leases[0]; l.TaskID != held.ID || l.WorkerID != "w1" || l.Attempt != 1 || l.ExpiresAt.IsZero() {
			t.Fatalf("lease: got %+v, want worker w1's lease of %s", l, held.ID)
		}
	})
}
