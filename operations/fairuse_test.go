package operations_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// TestFairUseFavoursTheNewcomer: a tenant that has just run 8 tasks
// yields the next slots to one that arrives with 3, where running tasks
// alone would alternate; 10 half-lives later the use has faded and the
// turns alternate again. Both stores.
func TestFairUseFavoursTheNewcomer(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		var clk atomic.Int64
		clk.Store(now.UnixNano())
		svc = onClock(svc, &clk)
		off := *svc
		off.FairHalfLife = -1
		add := func(tenant string, n int) {
			for range n {
				if _, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: tenant, Requester: "r", Input: commonops.CreateInput{TaskType: "noop", EntityType: "x"}}); err != nil {
					t.Fatalf("Create for %s: %v", tenant, err)
				}
			}
		}
		claimCounts := func(svc *operations.Service, limit int) map[string]int {
			t.Helper()
			claimed, err := svc.ClaimNext(ctx, "w", nil, limit)
			if err != nil {
				t.Fatalf("ClaimNext: %v", err)
			}
			c := map[string]int{}
			for _, tk := range claimed {
				c[tk.TenantID]++
				if _, err := svc.Progress(ctx, tk.TenantID, tk.ID, commonops.Progress{Attempt: ptr(1), Status: ptr(commonops.StatusCompleted)}); err != nil {
					t.Fatalf("complete %s: %v", tk.ID, err)
				}
			}
			return c
		}
		add("busy", 30)
		if c := claimCounts(svc, 8); c["busy"] != 8 {
			t.Fatalf("first claim: got %v, want 8 of busy", c)
		}
		add("new", 4)
		// Running tasks alone (the memory off, on a copy of the service
		// that never claimed): the two alternate.
		if c := claimCounts(&off, 2); c["busy"] != 1 || c["new"] != 1 {
			t.Fatalf("claim with the memory off: got %v, want 1 each", c)
		}
		// busy's 8 claims put it 8 turns behind new, whose 3 remaining
		// tasks all go first.
		if c := claimCounts(svc, 4); c["new"] != 3 || c["busy"] != 1 {
			t.Fatalf("claim after busy's 8: got %v, want new's 3 and 1 of busy", c)
		}
		clk.Add(int64(10 * operations.FairHalfLifeDefault))
		add("new", 2)
		// busy's use (8+1) and new's (3) have faded to almost nothing.
		if c := claimCounts(svc, 2); c["busy"] != 1 || c["new"] != 1 {
			t.Fatalf("claim 10 half-lives later: got %v, want 1 each", c)
		}
	})
}
