package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/postgres"
)

// planTasks and planOps are the sizes of TestPlansOnUnanalysedTables: a
// fresh database's first minutes, and enough executions of each statement
// for PostgreSQL to switch it to a generic plan (after five).
// The first planEarly tasks are created and looked up before the others,
// more than five times each way, so that the statements may settle on
// plans made while the table held a few rows, as on a service's first
// requests.
const (
	planTasks = 5000
	planOps   = 1000
	planEarly = 10
)

// maxRowsPerOp bounds the rows (heap tuples scanned and index entries
// returned) one lookup by id may read: the task, its few history rows and
// logs, and the index entries that point at them. A plan that walks a
// tenant's tasks reads thousands.
const maxRowsPerOp = 12

// TestPlansOnUnanalysedTables runs the statements that look a task up by id
// on a database that was never analysed (the state of a fresh deployment
// until autoanalyze first runs), after planTasks creates, planOps times
// each, and checks that each read about as many rows as it returns: its
// plans find the task by its id whatever the statistics say. It then
// checks the GET's prepared statement itself: its plan, as cached on the
// connection that ran it, and forced generic and custom.
func TestPlansOnUnanalysedTables(t *testing.T) {
	t.Parallel()
	// One connection: every statement is prepared once, on it, and goes
	// through its five custom plans before PostgreSQL may go generic.
	s := openWith(t, newSchema(t), 1)
	ctx := context.Background()
	for _, table := range []string{"tasks", "task_events", "task_logs", "outbox", "idempotency_keys"} {
		exec(t, s, "ALTER TABLE "+table+" SET (autovacuum_enabled = false)")
	}

	tasks := make([]*commonops.Task, planTasks)
	create := func(from, to int) {
		parallel(t, to-from, func(i int) error {
			task, ch := newTask(t, "acme", commonops.CreateInput{TaskType: "import", EntityType: "product"})
			tasks[from+i] = task
			_, err := s.CreateTask(ctx, task, ch, nil)
			return err
		})
	}
	create(0, planEarly)
	claimed := make([]*commonops.Task, planTasks)
	attempt := 1
	steps := []struct {
		name string
		op   func(i int) error
	}{
		{"get", func(i int) error {
			_, err := s.GetTask(ctx, "acme", tasks[i].ID)
			return err
		}},
		{"claim by id", func(i int) error {
			c, err := s.ClaimTask(ctx, "acme", tasks[i].ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute})
			claimed[i] = c
			return err
		}},
		{"progress (UpdateTaskFrom)", func(i int) error {
			done := int64(1)
			c, err := s.UpdateTaskFrom(ctx, claimed[i], func(x *commonops.Task) (commonops.Change, error) {
				return x.ApplyProgress(commonops.Progress{Attempt: &attempt, ProcessedItems: &done}, time.Minute, 0, time.Now())
			})
			claimed[i] = c
			return err
		}},
		{"update by id (UpdateTask)", func(i int) error {
			_, err := s.UpdateTask(ctx, "acme", tasks[i].ID, func(x *commonops.Task) (commonops.Change, error) {
				return x.Heartbeat(&attempt, time.Minute, time.Now())
			})
			return err
		}},
		{"append logs", func(i int) error {
			return s.AppendLogs(ctx, "acme", tasks[i].ID, &attempt, []commonops.LogEntry{{Level: commonops.LogInfo, Message: "line"}})
		}},
		{"list events", func(i int) error {
			_, err := s.ListEvents(ctx, "acme", tasks[i].ID, 0, 0)
			return err
		}},
		{"list logs", func(i int) error {
			_, _, err := s.ListLogs(ctx, commonops.LogFilter{TenantID: "acme", TaskID: tasks[i].ID})
			return err
		}},
	}
	for _, step := range steps {
		for i := range planEarly {
			if err := step.op(i); err != nil {
				t.Fatalf("%s %d (early): %v", step.name, i, err)
			}
		}
	}
	create(planEarly, planTasks)
	var analysed bool
	if err := s.Pool().QueryRow(ctx, `SELECT bool_or(last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)
		FROM pg_stat_user_tables WHERE schemaname = current_schema()`).Scan(&analysed); err != nil {
		t.Fatalf("read analyse times: %v", err)
	}
	if analysed {
		t.Fatal("got analysed tables, want none analysed: the test needs a database without statistics")
	}
	for _, step := range steps {
		before := rowsRead(t, s)
		for i := planEarly; i < planEarly+planOps; i++ {
			if err := step.op(i); err != nil {
				t.Fatalf("%s %d: %v", step.name, i, err)
			}
		}
		after := waitRowsRead(t, s, before, planOps)
		for _, r := range after.minus(before) {
			if perOp := float64(r.rows) / planOps; perOp > maxRowsPerOp {
				t.Errorf("%s: got %.1f rows read per call by %s, want at most %d", step.name, perOp, r.what, maxRowsPerOp)
			}
		}
	}

	c, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	defer c.Release()
	var name string
	var generic, custom int
	if err := c.QueryRow(ctx, "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
		postgres.GetTaskSQL).Scan(&name, &generic, &custom); err != nil {
		t.Fatalf("find the GET's prepared statement: %v", err)
	}
	t.Logf("GET: %d generic plans, %d custom plans", generic, custom)
	for _, mode := range []string{"auto", "force_generic_plan", "force_custom_plan"} {
		if _, err := c.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
			t.Fatalf("set plan_cache_mode: %v", err)
		}
		var plan []byte
		q := fmt.Sprintf("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE %s(%s, 'acme')", pgx.Identifier{name}.Sanitize(), quote(tasks[planEarly+planOps].ID))
		if err := c.QueryRow(ctx, q).Scan(&plan); err != nil {
			t.Fatalf("explain the GET (%s): %v", mode, err)
		}
		for _, n := range scans(t, plan, "tasks") {
			if !strings.HasPrefix(n.Cond, "(id = ") || n.Read() > 1 {
				t.Errorf("GET (%s): got %s on tasks by %s, condition %q, filter %q, %d rows read; want the task found by its id alone",
					mode, n.Type, n.Index, n.Cond, n.Filter, n.Read())
			}
		}
	}
	if _, err := c.Exec(ctx, "RESET plan_cache_mode"); err != nil {
		t.Fatalf("reset plan_cache_mode: %v", err)
	}
}

// parallel runs op(0) ... op(n-1) from 16 goroutines and fails t on the
// first error.
func parallel(t *testing.T, n int, op func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range n {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

func exec(t *testing.T, s *postgres.Store, sql string) {
	t.Helper()
	if _, err := s.Pool().Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// readCount is the rows one table or index has given out: heap tuples a
// sequential scan read, or index entries an index scan returned.
type readCount struct {
	what string
	rows int64
}

type readCounts []readCount

func (r readCounts) minus(old readCounts) readCounts {
	was := make(map[string]int64, len(old))
	for _, o := range old {
		was[o.what] = o.rows
	}
	d := make(readCounts, 0, len(r))
	for _, x := range r {
		d = append(d, readCount{x.what, x.rows - was[x.what]})
	}
	return d
}

// rowsRead reads the cumulative statistics of the store's schema.
func rowsRead(t *testing.T, s *postgres.Store) readCounts {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), `
		SELECT 'seq scan of ' || relname, coalesce(seq_tup_read, 0) FROM pg_stat_user_tables WHERE schemaname = current_schema()
		UNION ALL
		SELECT 'index ' || indexrelname, coalesce(idx_tup_read, 0) FROM pg_stat_user_indexes WHERE schemaname = current_schema()`)
	if err != nil {
		t.Fatalf("read statistics: %v", err)
	}
	counts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (readCount, error) {
		var c readCount
		return c, r.Scan(&c.what, &c.rows)
	})
	if err != nil {
		t.Fatalf("read statistics: %v", err)
	}
	return counts
}

// waitRowsRead returns the statistics once they count at least ops more
// rows than before: backends report theirs when idle, at most once a
// second.
func waitRowsRead(t *testing.T, s *postgres.Store, before readCounts, ops int64) readCounts {
	t.Helper()
	total := func(r readCounts) (n int64) {
		for _, x := range r {
			n += x.rows
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := rowsRead(t, s)
		if total(now)-total(before) >= ops {
			time.Sleep(1500 * time.Millisecond) // the rest of the report, if it came in parts
			return rowsRead(t, s)
		}
		if time.Now().After(deadline) {
			t.Fatalf("statistics count %d more rows read after 10s, want at least %d", total(now)-total(before), ops)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// planNode is a node of an EXPLAIN (FORMAT JSON) plan.
type planNode struct {
	Type     string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Index    string     `json:"Index Name"`
	Cond     string     `json:"Index Cond"`
	Filter   string     `json:"Filter"`
	Rows     int64      `json:"Actual Rows"`
	Loops    int64      `json:"Actual Loops"`
	Removed  int64      `json:"Rows Removed by Filter"`
	Plans    []planNode `json:"Plans"`
}

// Read is the rows the node read: those it returned and those its filter
// dropped, over all its loops.
func (n planNode) Read() int64 { return (n.Rows + n.Removed) * max(n.Loops, 1) }

// scans returns the nodes of plan that scan relation.
func scans(t *testing.T, plan []byte, relation string) []planNode {
	t.Helper()
	var top []struct{ Plan planNode }
	if err := json.Unmarshal(plan, &top); err != nil || len(top) != 1 {
		t.Fatalf("decode plan %s: %v", plan, err)
	}
	var found []planNode
	var walk func(planNode)
	walk = func(n planNode) {
		if n.Relation == relation {
			found = append(found, n)
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(top[0].Plan)
	if len(found) == 0 {
		t.Fatalf("got no scan of %s in plan %s", relation, plan)
	}
	return found
}
