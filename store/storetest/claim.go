package storetest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

func claimNext(t *testing.T, s store.Store, p store.ClaimParams) []*commonops.Task {
	t.Helper()
	if p.WorkerID == "" {
		p.WorkerID = "w"
	}
	if p.Lease == 0 {
		p.Lease = time.Minute
	}
	got, err := s.ClaimNext(context.Background(), p)
	if err != nil {
		t.Fatalf("ClaimNext: %v", err)
	}
	return got
}

var claimTests = []test{
	{"ClaimsAndRecords", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		drain(t, s)
		got := claimNext(t, s, store.ClaimParams{WorkerID: "worker-7", Lease: 30 * time.Second, Limit: 5, Now: at(10)})
		if len(got) != 1 {
			t.Fatalf("claimed: got %d, want 1", len(got))
		}
		c := got[0]
		if c.ID != tk.ID || c.Status != commonops.StatusProcessing || c.Attempt != 1 || c.LeaseOwner == nil || *c.LeaseOwner != "worker-7" || !c.LeaseExpiresAt.Equal(at(40)) || !c.StartedAt.Equal(at(10)) {
			t.Fatalf("claimed task: got %s %s attempt %d owner %v lease %v, want processing attempt 1 by worker-7 until %v", c.ID, c.Status, c.Attempt, c.LeaseOwner, c.LeaseExpiresAt, at(40))
		}
		equalTask(t, "GetTask of the claimed task", get(t, s, tenantA, tk.ID), c)
		if evs := events(t, s, tenantA, tk.ID); !slices.Equal(evs, []string{commonops.EventCreated, commonops.EventStarted}) {
			t.Fatalf("events: got %v, want created, started", evs)
		}
		if got := topics(drain(t, s)); len(got) != 0 {
			t.Fatalf("outbox: got %v, want nothing (a claim is not published)", got)
		}
		if again := claimNext(t, s, store.ClaimParams{Limit: 5, Now: at(11)}); len(again) != 0 {
			t.Fatalf("second claim: got %d tasks, want 0", len(again))
		}
	}},
	{"PriorityThenOldest", func(t *testing.T, s store.Store) {
		low := create(t, s, tenantA, at(0), commonops.CreateInput{Priority: ptr(-5)})
		oldHigh := create(t, s, tenantB, at(1), commonops.CreateInput{Priority: ptr(10)})
		newHigh := create(t, s, tenantA, at(2), commonops.CreateInput{Priority: ptr(10)})
		mid := create(t, s, tenantB, at(3), commonops.CreateInput{})
		var got []string
		for range 5 {
			for _, c := range claimNext(t, s, store.ClaimParams{Limit: 1, Now: at(10)}) {
				got = append(got, c.ID)
			}
		}
		if want := []string{oldHigh.ID, newHigh.ID, mid.ID, low.ID}; !slices.Equal(got, want) {
			t.Fatalf("claim order: got %v, want %v", got, want)
		}
	}},
	{"Limit", func(t *testing.T, s store.Store) {
		for i := range 5 {
			create(t, s, tenantA, at(i), commonops.CreateInput{})
		}
		if got := claimNext(t, s, store.ClaimParams{Limit: 3, Now: at(10)}); len(got) != 3 {
			t.Fatalf("first claim: got %d, want 3", len(got))
		}
		if got := claimNext(t, s, store.ClaimParams{Limit: 3, Now: at(10)}); len(got) != 2 {
			t.Fatalf("second claim: got %d, want 2", len(got))
		}
	}},
	{"Kinds", func(t *testing.T, s store.Store) {
		// Each case's claims are handed back through lease expiry, so the
		// tasks need retries to spare.
		importProduct := create(t, s, tenantA, at(0), commonops.CreateInput{TaskType: "import", EntityType: "product", MaxRetries: ptr(100)})
		importOrder := create(t, s, tenantA, at(1), commonops.CreateInput{TaskType: "import", EntityType: "order", MaxRetries: ptr(100)})
		exportProduct := create(t, s, tenantA, at(2), commonops.CreateInput{TaskType: "export", EntityType: "product", MaxRetries: ptr(100)})
		cases := []struct {
			name  string
			kinds []store.Kind
			want  []*commonops.Task
		}{
			{"exact", []store.Kind{{TaskType: "import", EntityType: "order"}}, []*commonops.Task{importOrder}},
			{"any entity", []store.Kind{{TaskType: "import", EntityType: "*"}}, []*commonops.Task{importProduct, importOrder}},
			{"any task type", []store.Kind{{TaskType: "*", EntityType: "product"}}, []*commonops.Task{importProduct, exportProduct}},
			{"two kinds", []store.Kind{{TaskType: "export", EntityType: "product"}, {TaskType: "import", EntityType: "order"}}, []*commonops.Task{importOrder, exportProduct}},
			{"no match", []store.Kind{{TaskType: "delete", EntityType: "*"}}, nil},
			{"wildcard", []store.Kind{{TaskType: "nothing", EntityType: "x"}, {TaskType: "*", EntityType: "*"}}, []*commonops.Task{importProduct, importOrder, exportProduct}},
			{"empty is every task", nil, []*commonops.Task{importProduct, importOrder, exportProduct}},
		}
		for _, c := range cases {
			got := claimNext(t, s, store.ClaimParams{Limit: 10, Now: at(10), Kinds: c.kinds})
			if g, w := sortedIDs(got...), sortedIDs(c.want...); !slices.Equal(g, w) {
				t.Errorf("%s: got %v, want %v", c.name, g, w)
			}
			for _, tk := range got {
				update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
					x.LeaseExpiresAt = ptr(at(10))
					return x.ExpireLease(0, at(10))
				})
			}
		}
	}},
	{"SkipsNotRunnable", func(t *testing.T, s store.Store) {
		awaiting := create(t, s, tenantA, at(0), commonops.CreateInput{FileName: ptr("in.csv")})
		scheduled := create(t, s, tenantA, at(0), commonops.CreateInput{ScheduledAt: ptr(at(3600))})
		cancelled := cancel(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{}), at(1))
		backoff := create(t, s, tenantA, at(0), commonops.CreateInput{})
		claim(t, s, backoff, at(1))
		update(t, s, tenantA, backoff.ID, func(x *commonops.Task) (commonops.Change, error) {
			return x.FailAttempt("transient", false, time.Minute, at(2)), nil
		})
		expired := create(t, s, tenantA, at(0), commonops.CreateInput{FileName: ptr("late.csv")})
		update(t, s, tenantA, expired.ID, func(x *commonops.Task) (commonops.Change, error) { return x.ExpireUpload(at(3)) })
		_ = scheduled
		_ = cancelled
		if got := claimNext(t, s, store.ClaimParams{Limit: 10, Now: at(10)}); len(got) != 0 {
			t.Fatalf("claim before backoff ends: got %v, want none", ids(got))
		}
		got := claimNext(t, s, store.ClaimParams{Limit: 10, Now: at(62)})
		if g := ids(got); !slices.Equal(g, []string{backoff.ID}) {
			t.Fatalf("claim at backoff end: got %v, want [%s]", g, backoff.ID)
		}
		if got[0].Attempt != 2 {
			t.Fatalf("attempt: got %d, want 2", got[0].Attempt)
		}
		update(t, s, tenantA, awaiting.ID, func(x *commonops.Task) (commonops.Change, error) { return x.ConfirmUpload(at(63)) })
		if g := ids(claimNext(t, s, store.ClaimParams{Limit: 10, Now: at(64)})); !slices.Equal(g, []string{awaiting.ID}) {
			t.Fatalf("claim after upload: got %v, want [%s]", g, awaiting.ID)
		}
	}},
	{"ConcurrentClaimersNeverShare", func(t *testing.T, s store.Store) {
		const tasks, claimers = 30, 6
		for i := range tasks {
			create(t, s, tenantA, at(i), commonops.CreateInput{})
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		seen := map[string]int{}
		for w := range claimers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := s.ClaimNext(context.Background(), store.ClaimParams{WorkerID: string(rune('a' + w)), Lease: time.Minute, Limit: 2, Now: at(100)})
					if err != nil {
						t.Errorf("ClaimNext: %v", err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, tk := range got {
						seen[tk.ID]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != tasks {
			t.Fatalf("claimed tasks: got %d, want %d", len(seen), tasks)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("task %s: claimed %d times, want once", id, n)
			}
			if got := get(t, s, tenantA, id); got.Attempt != 1 {
				t.Fatalf("task %s: got attempt %d, want 1", id, got.Attempt)
			}
		}
	}},
}

func refIDs(refs []store.TaskRef) []string {
	out := []string{}
	for _, r := range refs {
		out = append(out, r.ID)
	}
	slices.Sort(out)
	return out
}

var sweepTests = []test{
	{"Filters", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		pending := create(t, s, tenantA, at(0), commonops.CreateInput{})
		scheduled := create(t, s, tenantB, at(1), commonops.CreateInput{ScheduledAt: ptr(at(100))})
		awaiting, ch := newTask(t, tenantA, at(2), commonops.CreateInput{FileName: ptr("x.csv")})
		awaiting.UploadExpiresAt = ptr(at(50))
		if _, err := s.CreateTask(ctx, awaiting, ch, nil); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
		processing := claim(t, s, create(t, s, tenantB, at(3), commonops.CreateInput{}), at(4)) // lease until at(64)
		done := complete(t, s, create(t, s, tenantA, at(5), commonops.CreateInput{}), at(6))

		cases := []struct {
			name   string
			filter store.SweepFilter
			want   []*commonops.Task
		}{
			{"all", store.SweepFilter{}, []*commonops.Task{pending, scheduled, awaiting, processing, done}},
			{"statuses", store.SweepFilter{Statuses: []commonops.Status{commonops.StatusPending, commonops.StatusCompleted}}, []*commonops.Task{pending, awaiting, done}},
			{"upload status", store.SweepFilter{UploadStatus: commonops.UploadAwaiting}, []*commonops.Task{awaiting}},
			{"scheduled before, inclusive", store.SweepFilter{Statuses: []commonops.Status{commonops.StatusScheduled}, ScheduledBefore: ptr(at(100))}, []*commonops.Task{scheduled}},
			{"scheduled not yet", store.SweepFilter{ScheduledBefore: ptr(at(99))}, nil},
			{"lease expired", store.SweepFilter{LeaseExpiredBefore: ptr(at(64))}, []*commonops.Task{processing}},
			{"lease not expired", store.SweepFilter{LeaseExpiredBefore: ptr(at(63))}, nil},
			{"upload expired", store.SweepFilter{UploadExpiredBefore: ptr(at(50))}, []*commonops.Task{awaiting}},
			{"upload not expired", store.SweepFilter{UploadExpiredBefore: ptr(at(49))}, nil},
			{"created before", store.SweepFilter{CreatedBefore: ptr(at(1))}, []*commonops.Task{pending, scheduled}},
			{"updated before", store.SweepFilter{Statuses: []commonops.Status{commonops.StatusPending}, UpdatedBefore: ptr(at(1))}, []*commonops.Task{pending}},
			{"completed before", store.SweepFilter{CompletedBefore: ptr(at(6))}, []*commonops.Task{done}},
			{"completed not yet", store.SweepFilter{CompletedBefore: ptr(at(5))}, nil},
			{"combined", store.SweepFilter{Statuses: []commonops.Status{commonops.StatusPending}, CreatedBefore: ptr(at(2)), UploadStatus: commonops.UploadNone}, []*commonops.Task{pending}},
		}
		for _, c := range cases {
			c.filter.Limit = 100
			refs, err := s.Sweep(ctx, c.filter)
			if err != nil {
				t.Fatalf("%s: Sweep: %v", c.name, err)
			}
			if g, w := refIDs(refs), sortedIDs(c.want...); !slices.Equal(g, w) {
				t.Errorf("%s: got %v, want %v", c.name, g, w)
			}
			for _, r := range refs {
				if tk := get(t, s, r.TenantID, r.ID); tk.TenantID != r.TenantID {
					t.Errorf("%s: ref %v names tenant %q, task has %q", c.name, r, r.TenantID, tk.TenantID)
				}
			}
		}
	}},
	{"Limit", func(t *testing.T, s store.Store) {
		for i := range 5 {
			create(t, s, tenantA, at(i), commonops.CreateInput{})
		}
		refs, err := s.Sweep(context.Background(), store.SweepFilter{Limit: 2})
		if err != nil || len(refs) != 2 {
			t.Fatalf("Sweep with limit 2: got %d refs, err %v; want 2", len(refs), err)
		}
		_, err = s.Sweep(context.Background(), store.SweepFilter{})
		wantCode(t, "Sweep without a limit", err, commonops.EINVALID)
	}},
	{"UploadStatusesAndAvailable", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		plain := create(t, s, tenantA, at(0), commonops.CreateInput{})
		awaiting := create(t, s, tenantB, at(1), commonops.CreateInput{FileName: ptr("x.csv")})
		uploaded := create(t, s, tenantA, at(2), commonops.CreateInput{FileName: ptr("y.csv")})
		update(t, s, tenantA, uploaded.ID, func(x *commonops.Task) (commonops.Change, error) { return x.ConfirmUpload(at(3)) })
		backoff := claim(t, s, create(t, s, tenantB, at(3), commonops.CreateInput{MaxRetries: ptr(1)}), at(4)) // lease until at(64)
		update(t, s, tenantB, backoff.ID, func(x *commonops.Task) (commonops.Change, error) {
			return x.ExpireLease(10*time.Second, at(64)) // pending, available at(74)
		})
		pending := []commonops.Status{commonops.StatusPending}
		cases := []struct {
			name   string
			filter store.SweepFilter
			want   []*commonops.Task
		}{
			{"upload statuses", store.SweepFilter{UploadStatuses: []commonops.UploadStatus{commonops.UploadNone, commonops.UploadUploaded}}, []*commonops.Task{plain, uploaded, backoff}},
			{"one upload status", store.SweepFilter{UploadStatuses: []commonops.UploadStatus{commonops.UploadAwaiting}}, []*commonops.Task{awaiting}},
			{"available before, null counts", store.SweepFilter{Statuses: pending, AvailableBefore: ptr(at(73))}, []*commonops.Task{plain, awaiting, uploaded}},
			{"available before, inclusive", store.SweepFilter{Statuses: pending, AvailableBefore: ptr(at(74))}, []*commonops.Task{plain, awaiting, uploaded, backoff}},
			{"combined", store.SweepFilter{Statuses: pending, AvailableBefore: ptr(at(73)), UploadStatuses: []commonops.UploadStatus{commonops.UploadNone, commonops.UploadUploaded}}, []*commonops.Task{plain, uploaded}},
		}
		for _, c := range cases {
			c.filter.Limit = 100
			refs, err := s.Sweep(ctx, c.filter)
			if err != nil {
				t.Fatalf("%s: Sweep: %v", c.name, err)
			}
			if g, w := refIDs(refs), sortedIDs(c.want...); !slices.Equal(g, w) {
				t.Errorf("%s: got %v, want %v", c.name, g, w)
			}
		}
	}},
	{"Paging", func(t *testing.T, s store.Store) {
		// Pages of 3 after the previous page's last id visit every matching
		// task exactly once, in id order, across tenants, even when the
		// cursor's own task is deleted between pages or a task stops
		// matching; a short page ends the pass.
		ctx := context.Background()
		want := map[string]bool{}
		for i := range 11 {
			tenant := tenantA
			if i%2 == 1 {
				tenant = tenantB
			}
			tk := create(t, s, tenant, at(i), commonops.CreateInput{})
			want[tk.ID] = true
		}
		for i := range 3 { // not matching: cancelled
			cancel(t, s, create(t, s, tenantA, at(20+i), commonops.CreateInput{}), at(30))
		}
		filter := store.SweepFilter{Statuses: []commonops.Status{commonops.StatusPending}, Limit: 3}
		seen := map[string]int{}
		var order []string
		pages := 0
		for {
			refs, err := s.Sweep(ctx, filter)
			if err != nil {
				t.Fatalf("page %d: Sweep: %v", pages, err)
			}
			pages++
			if pages > 10 {
				t.Fatalf("got more than 10 pages of 3 for 11 tasks; cursor does not advance")
			}
			for _, r := range refs {
				seen[r.ID]++
				order = append(order, r.ID)
			}
			if len(refs) < filter.Limit {
				break
			}
			last := refs[len(refs)-1]
			filter.AfterID = last.ID
			if pages == 1 {
				// The cursor is a value: deleting its task does not lose the place.
				cancel(t, s, get(t, s, last.TenantID, last.ID), at(31))
				if _, err := s.DeleteTask(ctx, last.TenantID, last.ID); err != nil {
					t.Fatalf("DeleteTask: %v", err)
				}
			}
		}
		if pages != 4 {
			t.Errorf("got %d pages, want 4 (3+3+3+2)", pages)
		}
		for id := range want {
			if seen[id] != 1 {
				t.Errorf("task %s: got visited %d times, want once", id, seen[id])
			}
		}
		if len(seen) != len(want) {
			t.Errorf("got %d distinct tasks, want %d (only the pending ones)", len(seen), len(want))
		}
		if !slices.IsSorted(order) {
			t.Errorf("got visit order %v, want ascending ids", order)
		}
		// A task that stops matching mid-pass is not visited; a new pass
		// starts over from the first.
		refs, err := s.Sweep(ctx, store.SweepFilter{Statuses: []commonops.Status{commonops.StatusPending}, Limit: 3})
		if err != nil || len(refs) != 3 {
			t.Fatalf("new pass: got %d refs, err %v; want 3", len(refs), err)
		}
		cancel(t, s, get(t, s, refs[1].TenantID, refs[1].ID), at(32))
		next, err := s.Sweep(ctx, store.SweepFilter{Statuses: []commonops.Status{commonops.StatusPending}, AfterID: refs[0].ID, Limit: 1})
		if err != nil || len(next) != 1 || next[0].ID != refs[2].ID {
			t.Fatalf("after a task stopped matching: got %v, err %v; want [%s]", refIDs(next), err, refs[2].ID)
		}
	}},
}
