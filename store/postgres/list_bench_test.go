package postgres_test

import (
	"context"
	"testing"

	"github.com/commonops/commonops"
)

// searchSchema holds its own copy of the 1,000,000 seeded tasks, so the
// search index its benchmark measures is built on a schema of its own.
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
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
		})
	}
}
