package sqlite

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
)

// TestClaimReadsTheReadyIndexes explains the claim's reads of tasks (the
// loose scans of the pairs and each pair's candidates) and wants each
// served by its partial index: tasks_fair_claim for the tasks never backed
// off, tasks_retry_claim for those that did. Their predicates leave out the
// pending tasks that await their files, and the fresh one those backing
// off: a query whose terms stopped implying its index's predicate would
// fall back to another index and step over them.
func TestClaimReadsTheReadyIndexes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{Path: MemoryPath})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	now := micros(time.Now())
	fresh, retry, kargs := claimCandidatesSQL([]commonops.Kind{{TaskType: "import", EntityType: "*"}})
	for _, c := range []struct {
		name  string
		index string
		query string
		args  []any
	}{
		{"first fresh pair", "tasks_fair_claim", pairsFirstSQL(freshWhere), nil},
		{"next fresh pair", "tasks_fair_claim", pairsNextSQL(freshWhere), []any{"t", "import"}},
		{"first retry pair", "tasks_retry_claim", pairsFirstSQL(retryWhere), nil},
		{"next retry pair", "tasks_retry_claim", pairsNextSQL(retryWhere), []any{"t", "import"}},
		{"fresh candidates", "tasks_fair_claim", fresh, append(append([]any{"t", "import"}, kargs...), 4)},
		{"retry candidates", "tasks_retry_claim", retry, append(append([]any{"t", "import", now}, kargs...), 4)},
	} {
		rows, err := s.DB().QueryContext(ctx, "EXPLAIN QUERY PLAN "+c.query, c.args...)
		if err != nil {
			t.Fatalf("%s: explain: %v", c.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatalf("%s: scan: %v", c.name, err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Close(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := strings.Join(plan, "; "); !regexp.MustCompile(`INDEX ` + c.index + `\b`).MatchString(got) {
			t.Errorf("%s: got plan %q, want %s", c.name, got, c.index)
		}
	}
}
