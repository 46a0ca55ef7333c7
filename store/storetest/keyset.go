package storetest

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// keysetFixture stores tenant A's tasks with ties on every sort field and
// nulls in the nullable ones, and returns them as stored.
func keysetFixture(t *testing.T, s store.Store) []*commonops.Task {
	t.Helper()
	mk := func(i int, prio int, in commonops.CreateInput) *commonops.Task {
		in.Priority = ptr(prio)
		return create(t, s, tenantA, at(i), in)
	}
	pending := mk(0, 1, commonops.CreateInput{})
	sched1 := mk(0, 1, commonops.CreateInput{ScheduledAt: ptr(at(7200))})
	sched2 := mk(0, 2, commonops.CreateInput{ScheduledAt: ptr(at(7200)), TaskType: "export"})
	proc1 := mk(1, 2, commonops.CreateInput{})
	proc2 := mk(1, 3, commonops.CreateInput{})
	done1 := mk(2, 3, commonops.CreateInput{TaskType: "export"})
	done2 := mk(2, 0, commonops.CreateInput{})
	failed := mk(3, 0, commonops.CreateInput{})
	cancelled := mk(3, -1, commonops.CreateInput{})
	for _, tk := range []*commonops.Task{proc1, proc2} {
		claim(t, s, tk, at(10))
		update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
			return x.ApplyProgress(commonops.Progress{Progress: ptr(50.0)}, time.Minute, 0, at(11))
		})
	}
	complete(t, s, done1, at(20))
	complete(t, s, done2, at(20))
	fail(t, s, failed, at(20))
	cancel(t, s, cancelled, at(30))
	create(t, s, tenantB, at(0), commonops.CreateInput{})
	var all []*commonops.Task
	for _, tk := range []*commonops.Task{pending, sched1, sched2, proc1, proc2, done1, done2, failed, cancelled} {
		all = append(all, get(t, s, tenantA, tk.ID))
	}
	return all
}

// compareKeys orders two sort keys of commonops.CursorAfter: nulls last
// in either direction, which desc does not reverse.
func compareKeys(a, b any, desc bool) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	var c int
	switch x := a.(type) {
	case time.Time:
		c = x.Compare(b.(time.Time))
	case int:
		c = cmp.Compare(x, b.(int))
	case float64:
		c = cmp.Compare(x, b.(float64))
	case commonops.Status:
		c = strings.Compare(string(x), string(b.(commonops.Status)))
	}
	if desc {
		return -c
	}
	return c
}

// sortedBy is tasks in the order a list sorted by sort must return them.
func sortedBy(tasks []*commonops.Task, sort commonops.Sort) []string {
	tasks = slices.Clone(tasks)
	slices.SortFunc(tasks, func(a, b *commonops.Task) int {
		c := compareKeys(commonops.CursorAfter(a, sort, 2).Key, commonops.CursorAfter(b, sort, 2).Key, sort.Desc)
		if c != 0 {
			return c
		}
		if sort.Desc {
			return strings.Compare(b.ID, a.ID)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ids(tasks)
}

// walk reads every page of f by cursor, each cursor through its text form,
// and returns the ids in the order read.
func walk(t *testing.T, s store.Store, f commonops.ListFilter) []string {
	t.Helper()
	var got []string
	for page := 1; ; page++ {
		tasks, _, err := s.ListTasks(context.Background(), f)
		if err != nil {
			t.Fatalf("page %d: ListTasks: %v", page, err)
		}
		got = append(got, ids(tasks)...)
		if len(tasks) < f.PageSize {
			return got
		}
		if page > 50 {
			t.Fatalf("no end after %d pages: got %v", page, got)
		}
		c, err := commonops.ParseCursor(commonops.CursorAfter(tasks[len(tasks)-1], f.SortOrDefault(), page+1).String())
		if err != nil {
			t.Fatalf("page %d: the cursor does not read back: %v", page, err)
		}
		f.After = &c
	}
}

var keysetTests = []test{
	{"EverySortBothWaysEveryPageSize", func(t *testing.T, s store.Store) {
		all := keysetFixture(t, s)
		filters := []struct {
			name string
			f    commonops.ListFilter
			keep func(*commonops.Task) bool
		}{
			{"none", commonops.ListFilter{}, func(*commonops.Task) bool { return true }},
			{"taskType", commonops.ListFilter{TaskType: "import"}, func(x *commonops.Task) bool { return x.TaskType == "import" }},
			{"statuses", commonops.ListFilter{Statuses: []commonops.Status{commonops.StatusCompleted, commonops.StatusScheduled, commonops.StatusPending}},
				func(x *commonops.Task) bool {
					return x.Status == commonops.StatusCompleted || x.Status == commonops.StatusScheduled || x.Status == commonops.StatusPending
				}},
		}
		for _, fl := range filters {
			var want []*commonops.Task
			for _, tk := range all {
				if fl.keep(tk) {
					want = append(want, tk)
				}
			}
			for _, field := range commonops.SortFields {
				for _, desc := range []bool{false, true} {
					sort := commonops.Sort{Field: field, Desc: desc}
					wantIDs := sortedBy(want, sort)
					for _, size := range []int{1, 2, 4} {
						f := fl.f
						f.TenantID, f.Sort, f.PageSize = tenantA, sort, size
						if got := walk(t, s, f); !slices.Equal(got, wantIDs) {
							t.Errorf("filter %s, sort %+v, pages of %d: got %v, want %v", fl.name, sort, size, got, wantIDs)
						}
					}
					f := fl.f
					f.TenantID, f.Sort, f.PageSize = tenantA, sort, commonops.PageSizeMax
					got, _, err := s.ListTasks(context.Background(), f)
					if err != nil {
						t.Fatalf("one page: %v", err)
					}
					if !slices.Equal(ids(got), wantIDs) {
						t.Errorf("filter %s, sort %+v, one page by offset: got %v, want %v", fl.name, sort, ids(got), wantIDs)
					}
				}
			}
		}
	}},
	{"CursorIgnoresPageAndKeepsTotal", func(t *testing.T, s store.Store) {
		all := keysetFixture(t, s)
		want := sortedBy(all, commonops.DefaultSort)
		c := commonops.CursorAfter(all[slices.IndexFunc(all, func(x *commonops.Task) bool { return x.ID == want[2] })], commonops.DefaultSort, 2)
		got, total, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA, After: &c, Page: 3, PageSize: 3})
		if err != nil {
			t.Fatalf("ListTasks after %s: %v", want[2], err)
		}
		if !slices.Equal(ids(got), want[3:6]) || total != len(all) {
			t.Fatalf("after the third task: got %v of %d, want %v of %d", ids(got), total, want[3:6], len(all))
		}
	}},
	{"NewerTasksDoNotShiftTheNextPage", func(t *testing.T, s store.Store) {
		all := keysetFixture(t, s)
		want := sortedBy(all, commonops.DefaultSort)
		first, _, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA, PageSize: 3})
		if err != nil {
			t.Fatalf("first page: %v", err)
		}
		create(t, s, tenantA, at(100), commonops.CreateInput{})
		c := commonops.CursorAfter(first[2], commonops.DefaultSort, 2)
		got, _, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA, PageSize: 3, After: &c})
		if err != nil {
			t.Fatalf("second page: %v", err)
		}
		if !slices.Equal(ids(got), want[3:6]) {
			t.Fatalf("second page after an insert: got %v, want %v", ids(got), want[3:6])
		}
	}},
	{"CursorOfAnotherSortIsInvalid", func(t *testing.T, s store.Store) {
		all := keysetFixture(t, s)
		c := commonops.CursorAfter(all[0], commonops.Sort{Field: "priority"}, 2)
		_, _, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA, After: &c})
		wantCode(t, "ListTasks by createdAt after a priority cursor", err, commonops.EINVALID)
	}},
	{"CountUpTo", func(t *testing.T, s store.Store) {
		all := keysetFixture(t, s)
		for _, c := range []struct{ upTo, want int }{{0, len(all)}, {3, 3}, {len(all), len(all)}, {len(all) + 1, len(all)}} {
			got, total, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA, CountUpTo: c.upTo, PageSize: 5})
			if err != nil {
				t.Fatalf("CountUpTo %d: %v", c.upTo, err)
			}
			if total != c.want || len(got) != 5 {
				t.Errorf("CountUpTo %d: got %d tasks of %d, want 5 of %d", c.upTo, len(got), total, c.want)
			}
		}
	}},
}
