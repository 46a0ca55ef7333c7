package operations_test

import (
	"context"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

func TestQueues(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		create(t, svc, commonops.CreateInput{TaskType: "export"})
		held := claim(t, svc, create(t, svc, commonops.CreateInput{}).ID)
		r, err := svc.Queues(ctx, tenant)
		if err != nil {
			t.Fatalf("Queues: %v", err)
		}
		if !r.Now.Equal(now) || !r.Since.Equal(now.Add(-operations.QueueWindow)) || r.Bucket*operations.QueueBuckets != operations.QueueWindow {
			t.Fatalf("window: got %v to %v by %v, want the last %v to %v", r.Since, r.Now, r.Bucket, operations.QueueWindow, now)
		}
		if len(r.Queues) != 2 || r.Queues[0].TaskType != "export" || r.Queues[0].Pending != 1 || r.Queues[1].Running != 1 || len(r.Queues[1].Completed) != operations.QueueBuckets {
			t.Fatalf("queues: got %+v, want a pending export and a running import with %d buckets", r.Queues, operations.QueueBuckets)
		}
		if len(r.Leases) != 1 || r.Leases[0].TaskID != held.ID || r.Leases[0].WorkerID != "w" {
			t.Fatalf("leases: got %+v, want worker w's lease of %s", r.Leases, held.ID)
		}
		if r, err := svc.Queues(ctx, "another-tenant"); err != nil || len(r.Queues) != 0 || len(r.Leases) != 0 {
			t.Fatalf("another tenant's queues: got %+v, %v; want none", r, err)
		}
		_, err = svc.Queues(operations.WithScope(ctx, operations.Scope{OwnedBy: "alice"}), tenant)
		wantErr(t, err, commonops.EFORBIDDEN, "")
		_, all, err := svc.QueueGauges(ctx)
		if err != nil || len(all) != 2 || all[0].Pending != 1 || !all[0].OldestWaiting.Equal(now) {
			t.Fatalf("gauges: got %+v, %v; want the pending export waiting since %v", all, err, now)
		}
	})
}
