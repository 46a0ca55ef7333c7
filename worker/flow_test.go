package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/worker"
)

// TestFlowLimitAcrossPools races three pools, each with its own Service
// (as three replicas would) and 4 slots, over 24 imports limited to 3 for
// every tenant together: the tasks all complete and at no time do more
// than 3 run.
func TestFlowLimitAcrossPools(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		const limit = 3
		admin := newService(t, s, 30*time.Second)
		if _, err := admin.SetFlowLimit(context.Background(), operations.FlowScope{All: true, TaskType: "import"}, ptr(limit)); err == nil {
			t.Fatalf("limit of a type with no task yet: got nil error, want EINVALID")
		}
		var ids []string
		for range 24 {
			ids = append(ids, create(t, admin, commonops.CreateInput{TaskType: "import", EntityType: "x"}).ID)
		}
		if _, err := admin.SetFlowLimit(context.Background(), operations.FlowScope{TenantID: tenant, All: true, TaskType: "import"}, ptr(limit)); err != nil {
			t.Fatalf("SetFlowLimit: %v", err)
		}
		var running, peak atomic.Int32
		reg := worker.NewRegistry()
		reg.Register("*", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(20 * time.Millisecond) // hold the slot while the others claim
			running.Add(-1)
			return nil
		}))
		for range 3 {
			startPool(t, context.Background(), newService(t, s, 30*time.Second), reg, func(c *worker.Config) { c.Concurrency = 4 })
		}
		for _, id := range ids {
			waitStatus(t, admin, id, commonops.StatusCompleted, 30*time.Second)
		}
		if got := peak.Load(); got < 1 || got > limit {
			t.Fatalf("most imports running at once across the pools: got %d, want 1 to %d", got, limit)
		}
	})
}
