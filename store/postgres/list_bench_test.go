package postgres_test

import (
	"context"
	"testing"

	"github.com/commonops/commonops"
)

// searchSchema holds its own copy of the 1,000,000 seeded tasks, so the
// search index and the keyset reads measured here are those of this
// store's migrations.
const searchSchema = "bench_list_search_1m"

// BenchmarkListSearch reads the first page of a search over 1,000,000 tasks
// of one tenant, the way GET /tasks?search= does: "none" matches no task,
// "rare" a few hundred, "id" is an id prefix.
func BenchmarkListSearch(b *testing.B) {
	s := seedList(b, searchSchema)
	ctx := context.Background()
	cases := []struct {
		name   string
		search string
	}{
		{"none", "zzzz"},
		{"rare", "row 99999"},
		{"id", "3c59dc04"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			f := commonops.ListFilter{TenantID: "bench", Search: c.search}
			for b.Loop() {
				if _, _, err := s.ListTasks(ctx, f); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/list")
		})
	}
}

// BenchmarkListDeep reads a page of 20 of the default order (newest first)
// over 1,000,000 tasks, counting up to the API's cap: the first page, a
// deep page by cursor and the same page by offset; "exact" is the first
// page with the exact count the API used to compute on every page.
func BenchmarkListDeep(b *testing.B) {
	s := seedList(b, searchSchema)
	ctx := context.Background()
	const size, deep = 20, 25_000 // page 25,000: offset 499,980
	capped := commonops.ListFilter{TenantID: "bench", PageSize: size, CountUpTo: commonops.TotalCapDefault + 1}
	// The cursor of the deep page: the position after the last task of the
	// page before it.
	before := capped
	before.Page, before.PageSize = (deep-1)*size, 1
	last, _, err := s.ListTasks(ctx, before)
	if err != nil || len(last) != 1 {
		b.Fatalf("find the deep page's cursor: got %d tasks, err %v", len(last), err)
	}
	cursor := commonops.CursorAfter(last[0], commonops.DefaultSort, deep)
	cases := []struct {
		name string
		f    func() commonops.ListFilter
	}{
		{"page1", func() commonops.ListFilter { return capped }},
		{"page1/exact", func() commonops.ListFilter { f := capped; f.CountUpTo = 0; return f }},
		{"deep/cursor", func() commonops.ListFilter { f := capped; f.After = &cursor; return f }},
		{"deep/offset", func() commonops.ListFilter { f := capped; f.Page = deep; return f }},
	}
	var want string
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			f := c.f()
			for b.Loop() {
				tasks, _, err := s.ListTasks(ctx, f)
				if err != nil {
					b.Fatal(err)
				}
				if len(tasks) != size {
					b.Fatalf("got %d tasks, want %d", len(tasks), size)
				}
				if f.After != nil || f.Page == deep {
					if want == "" {
						want = tasks[0].ID
					} else if tasks[0].ID != want {
						b.Fatalf("the deep page starts at %s, want %s (cursor and offset disagree)", tasks[0].ID, want)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/list")
		})
	}
}
