package sqlite

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
)

var usesFairClaim = regexp.MustCompile(`INDEX tasks_fair_claim\b`)

// TestClaimReadsTheReadyIndex explains the claim's reads of tasks (the
// loose scan of the pairs and each pair's candidates) and wants each served
// by tasks_fair_claim, whose predicate leaves out the pending tasks that
// await their files: a query whose terms stopped implying the index's
// predicate would fall back to another index and step over them.
func TestClaimReadsTheReadyIndex(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{Path: MemoryPath})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	now := micros(time.Now())
	cand, kargs := claimCandidatesSQL([]commonops.Kind{{TaskType: "import", EntityType: "*"}})
	for _, c := range []struct {
		name  string
		query string
		args  []any
	}{
		{"first pair", pairsFirstSQL, nil},
		{"next pair", pairsNextSQL, []any{"t", "import"}},
		{"candidates", cand, append(append([]any{"t", "import", now}, kargs...), 4)},
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
		if got := strings.Join(plan, "; "); !usesFairClaim.MatchString(got) {
			t.Errorf("%s: got plan %q, want tasks_fair_claim", c.name, got)
		}
	}
}
