package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

func setFlow(t *testing.T, s store.Store, tenant, taskType string, fn func(*commonops.FlowControl)) commonops.FlowControl {
	t.Helper()
	fc, err := s.UpdateFlowControl(context.Background(), tenant, taskType, at(0), func(fc *commonops.FlowControl) error {
		fn(fc)
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateFlowControl %s/%s: %v", tenant, taskType, err)
	}
	return fc
}

func countBy(tasks []*commonops.Task, key func(*commonops.Task) string) map[string]int {
	m := map[string]int{}
	for _, tk := range tasks {
		m[key(tk)]++
	}
	return m
}

func byTenant(tk *commonops.Task) string { return tk.TenantID }

var flowTests = []test{
	{"StoreListDelete", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		setFlow(t, s, "", "import", func(fc *commonops.FlowControl) { fc.Limit = 4 })
		setFlow(t, s, tenantA, "import", func(fc *commonops.FlowControl) { fc.Paused = true })
		got := setFlow(t, s, tenantA, "import", func(fc *commonops.FlowControl) {
			if !fc.Paused {
				t.Errorf("stored control: got paused false, want true")
			}
			fc.Limit = 2
		})
		if want := (commonops.FlowControl{TenantID: tenantA, TaskType: "import", Limit: 2, Paused: true, UpdatedAt: at(0)}); got != want {
			t.Fatalf("updated: got %+v, want %+v", got, want)
		}
		list, err := s.ListFlowControls(ctx)
		if err != nil {
			t.Fatalf("ListFlowControls: %v", err)
		}
		want := []commonops.FlowControl{{TaskType: "import", Limit: 4, UpdatedAt: at(0)}, got}
		if fmt.Sprint(list) != fmt.Sprint(want) {
			t.Fatalf("list: got %+v, want %+v", list, want)
		}
		setFlow(t, s, tenantA, "import", func(fc *commonops.FlowControl) { *fc = commonops.FlowControl{} })
		if list, _ = s.ListFlowControls(ctx); len(list) != 1 {
			t.Fatalf("after clearing a control: got %+v, want only the all-tenants one", list)
		}
		boom := errors.New("boom")
		if _, err := s.UpdateFlowControl(ctx, "", "import", at(1), func(fc *commonops.FlowControl) error { fc.Limit = 9; return boom }); !errors.Is(err, boom) {
			t.Fatalf("fn's error: got %v, want %v", err, boom)
		}
		if list, _ = s.ListFlowControls(ctx); list[0].Limit != 4 {
			t.Fatalf("after a failed update: got limit %d, want 4", list[0].Limit)
		}
	}},
	{"Pause", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		a := create(t, s, tenantA, at(0), commonops.CreateInput{TaskType: "import"})
		b := create(t, s, tenantB, at(1), commonops.CreateInput{TaskType: "import"})
		e := create(t, s, tenantA, at(2), commonops.CreateInput{TaskType: "export"})
		setFlow(t, s, tenantA, "import", func(fc *commonops.FlowControl) { fc.Paused = true })
		if g := sortedIDs(claimNext(t, s, store.ClaimParams{Limit: 10, Now: at(10)})...); fmt.Sprint(g) != fmt.Sprint(sortedIDs(b, e)) {
			t.Fatalf("claim with tenant A's imports paused: got %v, want %s and %s", g, b.ID, e.ID)
		}
		_, err := s.ClaimTask(ctx, tenantA, a.ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(11)})
		if !errors.Is(err, commonops.ErrHeld) || commonops.ErrorCode(err) != commonops.ECONFLICT {
			t.Fatalf("ClaimTask of a paused task: got %v, want ECONFLICT wrapping ErrHeld", err)
		}
		if got := get(t, s, tenantA, a.ID); got.Status != commonops.StatusPending {
			t.Fatalf("paused task: got %s, want pending", got.Status)
		}
		setFlow(t, s, tenantA, "import", func(fc *commonops.FlowControl) { fc.Paused = false })
		setFlow(t, s, "", "import", func(fc *commonops.FlowControl) { fc.Paused = true })
		if g := claimNext(t, s, store.ClaimParams{Limit: 10, Now: at(12)}); len(g) != 0 {
			t.Fatalf("claim with imports paused for all: got %v, want none", ids(g))
		}
		setFlow(t, s, "", "import", func(fc *commonops.FlowControl) { fc.Paused = false })
		if _, err := s.ClaimTask(ctx, tenantA, a.ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(13)}); err != nil {
			t.Fatalf("ClaimTask after resume: %v", err)
		}
	}},
	{"Limits", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		createBoth(t, s, 6, commonops.CreateInput{TaskType: "import"})
		setFlow(t, s, "", "import", func(fc *commonops.FlowControl) { fc.Limit = 4 })
		setFlow(t, s, tenantA, "import", func(fc *commonops.FlowControl) { fc.Limit = 1 })
		got := claimNext(t, s, store.ClaimParams{Limit: 10, Now: at(10)})
		if c := countBy(got, byTenant); c[tenantA] != 1 || c[tenantB] != 3 {
			t.Fatalf("claimed by tenant: got %v, want 1 of %s (its limit) and 3 of %s (the type's 4)", c, tenantA, tenantB)
		}
		if more := claimNext(t, s, store.ClaimParams{Limit: 10, Now: at(11)}); len(more) != 0 {
			t.Fatalf("claim at the limits: got %v, want none", ids(more))
		}
		pending, _, err := s.ListTasks(ctx, commonops.ListFilter{TenantID: tenantB, Statuses: []commonops.Status{commonops.StatusPending}})
		if err != nil {
			t.Fatalf("ListTasks: %v", err)
		}
		if _, err := s.ClaimTask(ctx, tenantB, pending[0].ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(12)}); !errors.Is(err, commonops.ErrHeld) {
			t.Fatalf("ClaimTask at the limit: got %v, want ErrHeld", err)
		}
		update(t, s, tenantB, got[len(got)-1].ID, func(x *commonops.Task) (commonops.Change, error) {
			return x.ApplyProgress(commonops.Progress{Status: ptr(commonops.StatusCompleted)}, time.Minute, 0, at(13))
		})
		if _, err := s.ClaimTask(ctx, tenantB, pending[0].ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(14)}); err != nil {
			t.Fatalf("ClaimTask once one finished: %v", err)
		}
	}},
	{"LimitsCountDueRetries", func(t *testing.T, s store.Store) {
		// Due retries and fresh tasks of one pair are claimed within the
		// pair's limit together, though the store may read them apart.
		for i := range 2 {
			retryLater(t, s, create(t, s, tenantA, at(i), commonops.CreateInput{TaskType: "import", MaxRetries: ptr(3)}), at(5), time.Second)
			create(t, s, tenantA, at(10+i), commonops.CreateInput{TaskType: "import"})
		}
		setFlow(t, s, tenantA, "import", func(fc *commonops.FlowControl) { fc.Limit = 1 })
		if got := claimNext(t, s, store.ClaimParams{Limit: 10, Now: at(20)}); len(got) != 1 {
			t.Fatalf("claim under a limit of 1: got %v, want one task", ids(got))
		}
	}},
	{"LimitRace", func(t *testing.T, s store.Store) {
		// 8 racers claim (ClaimNext and ClaimTask by turns) 40 imports
		// limited to 3, hold each a moment and complete it: at no time do
		// more than 3 run. running is raised after a claim commits and
		// lowered before its completion is written, so it never counts
		// more than the store holds.
		const n, limit = 40, 3
		var all []*commonops.Task
		for i := range n {
			all = append(all, create(t, s, []string{tenantA, tenantB}[i%2], at(i), commonops.CreateInput{TaskType: "import"}))
		}
		setFlow(t, s, "", "import", func(fc *commonops.FlowControl) { fc.Limit = limit })
		var running, peak, done atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for r := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				for i := 0; done.Load() < n; i++ {
					var got []*commonops.Task
					p := store.ClaimParams{WorkerID: fmt.Sprint("racer-", r), Lease: time.Minute, Limit: 2, Now: at(100)}
					if i%2 == 0 {
						var err error
						if got, err = s.ClaimNext(ctx, p); err != nil {
							errs <- err
							return
						}
					} else {
						tk := all[(r*7+i)%n]
						c, err := s.ClaimTask(ctx, tk.TenantID, tk.ID, p)
						if err == nil {
							got = append(got, c)
						} else if commonops.ErrorCode(err) != commonops.ECONFLICT {
							errs <- err
							return
						}
					}
					for range got {
						now := running.Add(1)
						for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
						}
					}
					time.Sleep(time.Millisecond) // hold the claims a moment
					for _, c := range got {
						running.Add(-1)
						if _, err := s.UpdateTask(ctx, c.TenantID, c.ID, func(x *commonops.Task) (commonops.Change, error) {
							return x.ApplyProgress(commonops.Progress{Status: ptr(commonops.StatusCompleted)}, time.Minute, 0, at(101))
						}); err != nil {
							errs <- err
							return
						}
						done.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if p := peak.Load(); p > limit || p < 1 {
			t.Fatalf("most tasks running at once: got %d, want 1 to %d", p, limit)
		}
	}},
	{"FairShares", func(t *testing.T, s store.Store) {
		for i := range 20 {
			create(t, s, tenantA, at(i), commonops.CreateInput{})
		}
		b1 := create(t, s, tenantB, at(30), commonops.CreateInput{})
		b2 := create(t, s, tenantB, at(31), commonops.CreateInput{})
		var order []string
		for range 4 {
			for _, c := range claimNext(t, s, store.ClaimParams{Limit: 1, Now: at(40)}) {
				order = append(order, c.TenantID)
			}
		}
		if want := []string{tenantA, tenantB, tenantA, tenantB}; fmt.Sprint(order) != fmt.Sprint(want) {
			t.Fatalf("turns with %s queued first: got %v, want %v", tenantA, order, want)
		}
		for _, id := range []string{b1.ID, b2.ID} {
			if got := get(t, s, tenantB, id); got.Status != commonops.StatusProcessing {
				t.Fatalf("task %s of %s: got %s, want processing", id, tenantB, got.Status)
			}
		}
	}},
	{"Weights", func(t *testing.T, s store.Store) {
		createBoth(t, s, 10, commonops.CreateInput{})
		got := claimNext(t, s, store.ClaimParams{Limit: 8, Now: at(20), Weights: map[string]int{tenantA: 3}})
		if c := countBy(got, byTenant); c[tenantA] != 6 || c[tenantB] != 2 {
			t.Fatalf("claimed with %s weighing 3: got %v, want 6 and 2", tenantA, c)
		}
	}},
	{"Usage", func(t *testing.T, s store.Store) {
		createBoth(t, s, 10, commonops.CreateInput{})
		// a's recent use of 4 puts it 4 turns behind b; then they alternate.
		got := claimNext(t, s, store.ClaimParams{Limit: 6, Now: at(20), Usage: map[string]float64{tenantA: 4}})
		if c := countBy(got, byTenant); c[tenantA] != 1 || c[tenantB] != 5 {
			t.Fatalf("claimed with %s's use at 4: got %v, want 1 and 5", tenantA, c)
		}
		// The use is divided by the weight with the running tasks: a runs
		// 1 and weighs 2 with a use of 9.5 (shares (1+9.5+k)/2: 5.75,
		// 6.25, 6.75, ...), b runs 5 (shares 5+k: 6, 7, ...), so a takes 3
		// of the next 4.
		got = claimNext(t, s, store.ClaimParams{Limit: 4, Now: at(20), Weights: map[string]int{tenantA: 2}, Usage: map[string]float64{tenantA: 9.5}})
		if c := countBy(got, byTenant); c[tenantA] != 3 || c[tenantB] != 1 {
			t.Fatalf("claimed with %s weighing 2 and its use at 9.5: got %v, want 3 and 1", tenantA, c)
		}
	}},
}

// createBoth creates n tasks of each of tenantA and tenantB, in turns, the
// i-th pair at at(i).
func createBoth(t *testing.T, s store.Store, n int, in commonops.CreateInput) {
	t.Helper()
	for i := range n {
		create(t, s, tenantA, at(i), in)
		create(t, s, tenantB, at(i), in)
	}
}
