package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
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
	{"MatchesClaim", func(t *testing.T, s store.Store) {
		claimMatchesGo(t, s, func(_ string, tk *commonops.Task, p store.ClaimParams) (*commonops.Task, error) {
			got, err := s.ClaimNext(context.Background(), p)
			if err != nil {
				return nil, err
			}
			if len(got) != 1 || got[0].ID != tk.ID {
				return nil, fmt.Errorf("claimed %v, want [%s]", ids(got), tk.ID)
			}
			return got[0], nil
		})
	}},
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
			kinds []commonops.Kind
			want  []*commonops.Task
		}{
			{"exact", []commonops.Kind{{TaskType: "import", EntityType: "order"}}, []*commonops.Task{importOrder}},
			{"any entity", []commonops.Kind{{TaskType: "import", EntityType: "*"}}, []*commonops.Task{importProduct, importOrder}},
			{"any task type", []commonops.Kind{{TaskType: "*", EntityType: "product"}}, []*commonops.Task{importProduct, exportProduct}},
			{"two kinds", []commonops.Kind{{TaskType: "export", EntityType: "product"}, {TaskType: "import", EntityType: "order"}}, []*commonops.Task{importOrder, exportProduct}},
			{"no match", []commonops.Kind{{TaskType: "delete", EntityType: "*"}}, nil},
			{"wildcard", []commonops.Kind{{TaskType: "nothing", EntityType: "x"}, {TaskType: "*", EntityType: "*"}}, []*commonops.Task{importProduct, importOrder, exportProduct}},
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
	{"DueRetriesTakeTheirTurn", func(t *testing.T, s store.Store) {
		// A retry whose backoff is over and a task never tried are claimed
		// in one claim order (priority, then age), though the store may
		// keep them apart.
		retry := func(created time.Time, priority int) *commonops.Task {
			tk := create(t, s, tenantA, created, commonops.CreateInput{Priority: ptr(priority), MaxRetries: ptr(3)})
			claim(t, s, tk, created.Add(time.Second))
			return update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
				return x.FailAttempt("transient", false, time.Second, created.Add(2*time.Second)), nil
			})
		}
		oldRetry := retry(at(0), 0)
		newFresh := create(t, s, tenantA, at(10), commonops.CreateInput{})
		urgentFresh := create(t, s, tenantA, at(20), commonops.CreateInput{Priority: ptr(5)})
		newRetry := retry(at(30), 0)
		var got []string
		for range 4 {
			got = append(got, ids(claimNext(t, s, store.ClaimParams{Limit: 1, Now: at(100)}))...)
		}
		if want := []string{urgentFresh.ID, oldRetry.ID, newFresh.ID, newRetry.ID}; !slices.Equal(got, want) {
			t.Fatalf("claims one at a time: got %v, want %v (priority, then age)", got, want)
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

// claimTaskTests hold ClaimTask to (*commonops.Task).Claim: a driver may
// write the claim its own way (PostgreSQL does it in one SQL statement), so
// each case compares the stored result with the Go method applied to the
// task as it was.
var claimTaskTests = []test{
	{"MatchesClaim", func(t *testing.T, s store.Store) {
		claimMatchesGo(t, s, func(tenant string, tk *commonops.Task, p store.ClaimParams) (*commonops.Task, error) {
			return s.ClaimTask(context.Background(), tenant, tk.ID, p)
		})
	}},
	{"RefusesWhatClaimRefuses", func(t *testing.T, s store.Store) {
		claimed := create(t, s, tenantA, at(0), commonops.CreateInput{})
		claim(t, s, claimed, at(1))
		backoff := create(t, s, tenantA, at(0), commonops.CreateInput{MaxRetries: ptr(3)})
		claim(t, s, backoff, at(1))
		update(t, s, tenantA, backoff.ID, func(x *commonops.Task) (commonops.Change, error) {
			return x.FailAttempt("transient", false, time.Hour, at(2)), nil
		})
		cases := []struct {
			name string
			task *commonops.Task
		}{
			{"processing", claimed},
			{"backing off", backoff},
			{"awaiting upload", create(t, s, tenantA, at(0), commonops.CreateInput{FileName: ptr("in.csv")})},
			{"scheduled", create(t, s, tenantA, at(0), commonops.CreateInput{ScheduledAt: ptr(at(3600))})},
			{"cancelled", cancel(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{}), at(1))},
			{"completed", complete(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{}), at(1))},
		}
		for _, c := range cases {
			before := get(t, s, tenantA, c.task.ID)
			nEvents := len(events(t, s, tenantA, c.task.ID))
			_, err := s.ClaimTask(context.Background(), tenantA, c.task.ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(10)})
			wantCode(t, c.name, err, commonops.ECONFLICT)
			var de *commonops.Error
			if !errors.As(err, &de) || de.Task == nil || de.Task.Version != before.Version {
				t.Fatalf("%s: the conflict should carry the task as stored, got %v", c.name, err)
			}
			equalTask(t, c.name+": unchanged", get(t, s, tenantA, c.task.ID), before)
			if n := len(events(t, s, tenantA, c.task.ID)); n != nEvents {
				t.Fatalf("%s: events: got %d, want %d", c.name, n, nEvents)
			}
		}
		fresh := create(t, s, tenantA, at(0), commonops.CreateInput{})
		_, err := s.ClaimTask(context.Background(), tenantB, fresh.ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(10)})
		wantCode(t, "another tenant's task", err, commonops.ENOTFOUND)
		equalTask(t, "another tenant's task: unchanged", get(t, s, tenantA, fresh.ID), fresh)
		_, err = s.ClaimTask(context.Background(), tenantA, "no-such-task", store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(10)})
		wantCode(t, "unknown task", err, commonops.ENOTFOUND)
	}},
	{"OnlyOfTheNamedKinds", func(t *testing.T, s store.Store) {
		// An event is a hint: the claim it starts names the kind the event
		// says the task is, and a task of another kind is not claimed.
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{TaskType: "export", EntityType: "product"})
		before := get(t, s, tenantA, tk.ID)
		nEvents := len(events(t, s, tenantA, tk.ID))
		for _, kinds := range [][]commonops.Kind{
			{{TaskType: "noop", EntityType: "product"}},
			{{TaskType: "export", EntityType: "order"}},
			{{TaskType: "noop", EntityType: "*"}, {TaskType: "*", EntityType: "order"}},
		} {
			_, err := s.ClaimTask(context.Background(), tenantA, tk.ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(10), Kinds: kinds})
			wantCode(t, fmt.Sprintf("kinds %v", kinds), err, commonops.ECONFLICT)
			if !errors.Is(err, commonops.ErrKindMismatch) {
				t.Fatalf("kinds %v: got %v, want it to wrap ErrKindMismatch", kinds, err)
			}
			equalTask(t, fmt.Sprintf("kinds %v: unchanged", kinds), get(t, s, tenantA, tk.ID), before)
			if n := len(events(t, s, tenantA, tk.ID)); n != nEvents {
				t.Fatalf("kinds %v: events: got %d, want %d", kinds, n, nEvents)
			}
		}
		got, err := s.ClaimTask(context.Background(), tenantA, tk.ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(10),
			Kinds: []commonops.Kind{{TaskType: "noop", EntityType: "*"}, {TaskType: "export", EntityType: "*"}}})
		if err != nil || got.Status != commonops.StatusProcessing {
			t.Fatalf("claim with a matching wildcard kind: got %v, %v; want the task processing", got, err)
		}
	}},
	{"ConcurrentClaimsOneWins", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		const n = 20
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				_, errs[i] = s.ClaimTask(context.Background(), tenantA, tk.ID, store.ClaimParams{WorkerID: fmt.Sprintf("w%d", i), Lease: time.Minute, Now: at(1)})
			})
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch commonops.ErrorCode(err) {
			case "":
				wins++
			case commonops.ECONFLICT:
			default:
				t.Errorf("claim %d: got %v, want success or ECONFLICT", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("got %d winners, want 1", wins)
		}
		if got := get(t, s, tenantA, tk.ID); got.Attempt != 1 || got.Status != commonops.StatusProcessing {
			t.Fatalf("task: got attempt %d status %s, want 1 processing", got.Attempt, got.Status)
		}
		if evs := events(t, s, tenantA, tk.ID); !slices.Equal(evs, []string{commonops.EventCreated, commonops.EventStarted}) {
			t.Fatalf("events: got %v, want one created and one started", evs)
		}
	}},
}

// claimMatchesGo claims tasks in several states through claim and compares
// each stored result, and its started event, with (*commonops.Task).Claim
// applied to the task as it was. Each task has its own task type, so a
// claimer that picks tasks itself (ClaimNext) can be pointed at one.
func claimMatchesGo(t *testing.T, s store.Store, claimer func(tenant string, tk *commonops.Task, p store.ClaimParams) (*commonops.Task, error)) {
	t.Helper()
	fresh := create(t, s, tenantA, at(0), commonops.CreateInput{TaskType: "fresh"})

	// A task with progress and no checkpoint, back to pending after a
	// failed attempt whose backoff has passed: its counts start over.
	retried := create(t, s, tenantA, at(0), commonops.CreateInput{TaskType: "retried", MaxRetries: ptr(3)})
	claim(t, s, retried, at(1))
	update(t, s, tenantA, retried.ID, func(x *commonops.Task) (commonops.Change, error) {
		return x.ApplyProgress(commonops.Progress{TotalItems: ptr[int64](10), ProcessedItems: ptr[int64](4), SuccessItems: ptr[int64](3), FailedItems: ptr[int64](1)}, time.Minute, 0, at(2))
	})
	update(t, s, tenantA, retried.ID, func(x *commonops.Task) (commonops.Change, error) {
		return x.FailAttempt("transient", false, 5*time.Second, at(3)), nil
	})

	// The same with a checkpoint: its counts are kept for the resume.
	resumed := create(t, s, tenantB, at(0), commonops.CreateInput{TaskType: "resumed", MaxRetries: ptr(3)})
	claim(t, s, resumed, at(1))
	update(t, s, tenantB, resumed.ID, func(x *commonops.Task) (commonops.Change, error) {
		return x.ApplyProgress(commonops.Progress{TotalItems: ptr[int64](10), ProcessedItems: ptr[int64](6), SuccessItems: ptr[int64](6), Checkpoint: json.RawMessage(`{"row":6}`)}, time.Minute, 0, at(2))
	})
	update(t, s, tenantB, resumed.ID, func(x *commonops.Task) (commonops.Change, error) {
		return x.FailAttempt("transient", false, 0, at(3)), nil
	})

	for _, c := range []struct {
		name   string
		tenant string
		task   *commonops.Task
	}{
		{"fresh", tenantA, fresh},
		{"retried without checkpoint", tenantA, retried},
		{"retried with checkpoint", tenantB, resumed},
		{"any tenant", "", fresh}, // claimed again after its lease is given back
	} {
		before := get(t, s, c.task.TenantID, c.task.ID)
		if c.tenant == "" {
			before = update(t, s, before.TenantID, before.ID, func(x *commonops.Task) (commonops.Change, error) {
				x.LeaseExpiresAt = ptr(at(20))
				return x.ExpireLease(0, at(20))
			})
		}
		drain(t, s)
		want := before.Clone()
		ch, err := want.Claim("worker-9", 45*time.Second, at(30))
		if err != nil {
			t.Fatalf("%s: Claim in Go: %v", c.name, err)
		}
		got, err := claimer(c.tenant, c.task, store.ClaimParams{WorkerID: "worker-9", Lease: 45 * time.Second, Now: at(30), Limit: 1,
			Kinds: []commonops.Kind{{TaskType: c.task.TaskType, EntityType: "*"}}})
		if err != nil {
			t.Fatalf("%s: claim: %v", c.name, err)
		}
		equalTask(t, c.name+": claimed task", got, want)
		equalTask(t, c.name+": stored task", get(t, s, c.task.TenantID, c.task.ID), want)
		evs, err := s.ListEvents(context.Background(), c.task.TenantID, c.task.ID, 0, 0)
		if err != nil {
			t.Fatalf("ListEvents: %v", err)
		}
		last := evs[len(evs)-1]
		if last.EventType != ch.Event || !last.CreatedAt.Equal(at(30)) {
			t.Fatalf("%s: last event: got %s at %v, want %s at %v", c.name, last.EventType, last.CreatedAt, ch.Event, at(30))
		}
		if g, w := decodeJSON(t, last.EventData), roundTrip(t, ch.Data); !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: event data: got %v, want %v", c.name, g, w)
		}
		if got := topics(drain(t, s)); len(got) != 0 {
			t.Fatalf("%s: outbox: got %v, want nothing (a claim is not published)", c.name, got)
		}
	}
}

// decodeJSON decodes raw into a generic value.
func decodeJSON(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

// roundTrip is v as it reads back from JSON.
func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %v: %v", v, err)
	}
	return decodeJSON(t, b)
}
