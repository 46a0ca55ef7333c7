package httpapi

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/sqlite"
)

// TestListCursor walks GET /tasks by nextCursor and finds every task once,
// in order, with the page numbers counting on.
func TestListCursor(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		var want []string
		for range 5 {
			want = append(want, e.create(map[string]any{"taskType": "import", "entityType": "product"}).ID)
		}
		slices.Reverse(want) // newest first
		var got []string
		path := tasksPath + "?pageSize=2"
		for page := 1; ; page++ {
			var p listPage
			e.do("GET", path, nil).want(t, http.StatusOK).decode(t, &p)
			if p.Page != page || p.Total != 5 || p.TotalCapped {
				t.Fatalf("page %d: got page %d, total %d (capped %v), want page %d, total 5", page, p.Page, p.Total, p.TotalCapped, page)
			}
			for _, tk := range p.Tasks {
				got = append(got, tk.ID)
			}
			if p.NextCursor == nil {
				if len(p.Tasks) == 2 {
					t.Fatalf("page %d: a full page without nextCursor", page)
				}
				break
			}
			if page > 5 {
				t.Fatalf("no end after %d pages: got %v", page, got)
			}
			path = tasksPath + "?pageSize=2&cursor=" + url.QueryEscape(*p.NextCursor)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("walking by cursor: got %v, want %v", got, want)
		}
	})
}

func TestListTotal(t *testing.T) {
	e := sqliteEnv(t)
	for range 3 {
		e.create(map[string]any{"taskType": "import", "entityType": "product"})
	}
	for _, q := range []string{"", "?total=capped", "?total=exact"} {
		var p listPage
		e.do("GET", tasksPath+q, nil).want(t, http.StatusOK).decode(t, &p)
		if p.Total != 3 || p.TotalCapped || p.NextCursor != nil {
			t.Errorf("GET %s: got total %d, capped %v, next %v; want 3, false, none", q, p.Total, p.TotalCapped, p.NextCursor)
		}
	}
}

// TestListTotalCap counts up to ?totalCap=: a smaller total, capped.
func TestListTotalCap(t *testing.T) {
	e := sqliteEnv(t)
	for range 3 {
		e.create(map[string]any{"taskType": "import", "entityType": "product"})
	}
	cases := []struct {
		query  string
		total  int
		capped bool
	}{
		{"totalCap=2", 2, true},
		{"totalCap=3", 3, false},
		{"totalCap=1&total=capped", 1, true},
		{"totalCap=10000", 3, false},
	}
	for _, c := range cases {
		var p listPage
		e.do("GET", tasksPath+"?"+c.query, nil).want(t, http.StatusOK).decode(t, &p)
		if p.Total != c.total || p.TotalCapped != c.capped || len(p.Tasks) != 3 {
			t.Errorf("GET ?%s: got total %d, capped %v, %d tasks; want %d, %v, 3", c.query, p.Total, p.TotalCapped, len(p.Tasks), c.total, c.capped)
		}
	}
}

func TestListBadCursor(t *testing.T) {
	e := sqliteEnv(t)
	for range 2 {
		e.create(map[string]any{"taskType": "import", "entityType": "product"})
	}
	var p listPage
	e.do("GET", tasksPath+"?pageSize=1", nil).want(t, http.StatusOK).decode(t, &p)
	next := url.QueryEscape(*p.NextCursor)
	cases := []struct{ query, field string }{
		{"cursor=bm90IGEgY3Vyc29y", "cursor"},
		{"cursor=%25%25", "cursor"},
		{"cursor=" + next + "&sort=priority", "cursor"},
		{"cursor=" + next + "&page=2", "page"},
		{"total=some", "total"},
		{"totalCap=0", "totalCap"},
		{"totalCap=10001", "totalCap"},
		{"totalCap=5&total=exact", "totalCap"},
	}
	for _, c := range cases {
		pr := e.do("GET", tasksPath+"?"+c.query, nil).want(t, http.StatusUnprocessableEntity).problem(t)
		if len(pr.Errors) != 1 || pr.Errors[0].Field != c.field {
			t.Errorf("GET ?%s: got errors %+v, want one on %s", c.query, pr.Errors, c.field)
		}
	}
}

// TestListReadTimeout holds the only connection of an in-memory store, so
// the list's read runs out of time: 503 with a detail that says so.
func TestListReadTimeout(t *testing.T) {
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: sqlite.MemoryPath, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, st)
	tx, err := st.DB().BeginTx(context.Background(), &sql.TxOptions{})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback()
	r := e.do("GET", tasksPath+"?search=zzzz", nil).want(t, http.StatusServiceUnavailable)
	if got := r.header.Get("Retry-After"); got == "" {
		t.Errorf("got no Retry-After, want one")
	}
	if pr := r.problem(t); !strings.Contains(pr.Detail, "took longer than 100ms") {
		t.Errorf("got detail %q, want it to say the query took longer than 100ms", pr.Detail)
	}
}
