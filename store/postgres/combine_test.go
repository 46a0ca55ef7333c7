package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/postgres"
)

// groupTable makes a table g (k int primary key) in a fresh store's schema.
func groupTable(t *testing.T) *postgres.Store {
	t.Helper()
	s := openIn(t, newSchema(t))
	if _, err := s.Pool().Exec(context.Background(), "CREATE TABLE g (k int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	return s
}

// insertK inserts k into g and reads back the id of the transaction that
// wrote it into xid.
func insertK(key string, k int, xid *int64) postgres.GroupWrite {
	return postgres.GroupWrite{
		Key: key, SQL: "INSERT INTO g (k) VALUES ($1) RETURNING txid_current()", Args: []any{k},
		Scan: func(r pgx.Row) error { return r.Scan(xid) },
	}
}

// wantKeys checks that g holds exactly want.
func wantKeys(t *testing.T, s *postgres.Store, want ...int) {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), "SELECT k FROM g ORDER BY k")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
}

func TestWriteGroupIsOneTransaction(t *testing.T) {
	t.Parallel()
	s := groupTable(t)
	xids := make([]int64, 3)
	var missing int
	errs := s.SendGroup(context.Background(), []postgres.GroupWrite{
		insertK("a", 1, &xids[0]),
		{Key: "b", SQL: "SELECT k FROM g WHERE k = 99", Scan: func(r pgx.Row) error { return r.Scan(&missing) }},
		insertK("c", 3, &xids[2]),
	})
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("inserts: %v, %v", errs[0], errs[2])
	}
	// A statement that finds no row is an answer, not a failure of the group.
	if !errors.Is(errs[1], pgx.ErrNoRows) {
		t.Errorf("select of a missing row: %v, want pgx.ErrNoRows", errs[1])
	}
	if xids[0] == 0 || xids[0] != xids[2] {
		t.Errorf("transaction ids %v: want the group's statements in one transaction", xids)
	}
	wantKeys(t, s, 1, 3)
}

func TestWriteGroupFailureFailsOnlyItsWrite(t *testing.T) {
	t.Parallel()
	s := groupTable(t)
	if _, err := s.Pool().Exec(context.Background(), "INSERT INTO g VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	xids := make([]int64, 3)
	errs := s.SendGroup(context.Background(), []postgres.GroupWrite{
		insertK("a", 1, &xids[0]), insertK("b", 2, &xids[1]), insertK("c", 3, &xids[2]),
	})
	var pe *pgconn.PgError
	if !errors.As(errs[1], &pe) || pe.Code != "23505" {
		t.Errorf("duplicate insert: %v, want a unique violation", errs[1])
	}
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("the other writes failed with it: %v, %v", errs[0], errs[2])
	}
	// Sent again alone, each in a transaction of its own.
	if xids[0] == xids[2] {
		t.Errorf("transaction ids %v: want the rest resent alone", xids)
	}
	wantKeys(t, s, 1, 2, 3)
}

func TestWriteGroupSkipsCallersThatGaveUp(t *testing.T) {
	t.Parallel()
	s := groupTable(t)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	xids := make([]int64, 3)
	w := insertK("b", 2, &xids[1])
	w.Ctx = gone
	errs := s.SendGroup(context.Background(), []postgres.GroupWrite{insertK("a", 1, &xids[0]), w, insertK("c", 3, &xids[2])})
	if !errors.Is(errs[1], context.Canceled) {
		t.Errorf("write of a cancelled caller: %v, want context.Canceled", errs[1])
	}
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("inserts: %v, %v", errs[0], errs[2])
	}
	wantKeys(t, s, 1, 3) // the cancelled write did not run
}

// A group's statements lock rows in key order, whatever order they came in.
func TestWriteGroupRunsInKeyOrder(t *testing.T) {
	t.Parallel()
	s := groupTable(t)
	if _, err := s.Pool().Exec(context.Background(), "CREATE SEQUENCE seq"); err != nil {
		t.Fatal(err)
	}
	order := map[string]*int64{"c": new(int64), "a": new(int64), "b": new(int64)}
	var ws []postgres.GroupWrite
	for _, k := range []string{"c", "a", "b"} {
		ws = append(ws, postgres.GroupWrite{Key: k, SQL: "SELECT nextval('seq')", Scan: func(r pgx.Row) error { return r.Scan(order[k]) }})
	}
	for i, err := range s.SendGroup(context.Background(), ws) {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if got := []int64{*order["a"], *order["b"], *order["c"]}; !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("sequence values of a, b, c: %v, want [1 2 3]", got)
	}
}

// A caller's scan that fails (here: a number into a time) fails that caller
// alone; the group committed.
func TestWriteGroupScanErrorFailsOnlyItsCaller(t *testing.T) {
	t.Parallel()
	s := groupTable(t)
	xids := make([]int64, 3)
	var when time.Time
	bad := insertK("b", 2, &xids[1])
	bad.Scan = func(r pgx.Row) error { return r.Scan(&when) }
	errs := s.SendGroup(context.Background(), []postgres.GroupWrite{insertK("a", 1, &xids[0]), bad, insertK("c", 3, &xids[2])})
	if errs[1] == nil {
		t.Error("scan of a number into a time: no error")
	}
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("the other writes failed with it: %v, %v", errs[0], errs[2])
	}
	if xids[0] == 0 || xids[0] != xids[2] {
		t.Errorf("transaction ids %v: want one transaction", xids)
	}
	wantKeys(t, s, 1, 2, 3)
}

// A group refused when it commits (a deferred constraint) wrote nothing;
// its writes are sent again alone.
func TestWriteGroupRefusedAtCommit(t *testing.T) {
	t.Parallel()
	s := openIn(t, newSchema(t))
	if _, err := s.Pool().Exec(context.Background(), "CREATE TABLE g (k int, UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)"); err != nil {
		t.Fatal(err)
	}
	xids := make([]int64, 3)
	errs := s.SendGroup(context.Background(), []postgres.GroupWrite{insertK("a", 1, &xids[0]), insertK("b", 1, &xids[1]), insertK("c", 3, &xids[2])})
	// Resent side by side: either insert of 1 may be the one refused.
	var pe *pgconn.PgError
	dup := errs[0]
	if dup == nil {
		dup = errs[1]
	}
	if (errs[0] == nil) == (errs[1] == nil) || !errors.As(dup, &pe) || pe.Code != "23505" || errs[2] != nil {
		t.Fatalf("got %v, want one of the first two refused as a duplicate, the rest nil", errs)
	}
	wantKeys(t, s, 1, 3)
}

// A write whose arguments cannot be encoded stops its batch before anything
// is sent; the others are sent alone.
func TestWriteGroupUnencodableArgument(t *testing.T) {
	t.Parallel()
	s := groupTable(t)
	xids := make([]int64, 3)
	bad := insertK("b", 2, &xids[1])
	bad.Args = []any{make(chan int)}
	errs := s.SendGroup(context.Background(), []postgres.GroupWrite{insertK("a", 1, &xids[0]), bad, insertK("c", 3, &xids[2])})
	if errs[1] == nil || errs[0] != nil || errs[2] != nil {
		t.Fatalf("got %v, want nil, an encoding error, nil", errs)
	}
	wantKeys(t, s, 1, 3)
}

// The store counts its groups' sizes and the groups it had to resend.
func TestWriteGroupMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s, err := postgres.Open(context.Background(), postgres.Config{URL: testdb.PostgresURL(t), Schema: newSchema(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Pool().Exec(context.Background(), "CREATE TABLE g (k int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	xids := make([]int64, 5)
	s.SendGroup(context.Background(), []postgres.GroupWrite{insertK("a", 1, &xids[0]), insertK("b", 2, &xids[1]), insertK("c", 3, &xids[2])})
	s.SendGroup(context.Background(), []postgres.GroupWrite{insertK("a", 1, &xids[3]), insertK("d", 4, &xids[4])}) // 1 again: resent
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var groups uint64
	var writes, resent float64
	for _, mf := range mfs {
		switch mf.GetName() {
		case "commonops_db_write_group_size":
			h := mf.GetMetric()[0].GetHistogram()
			groups, writes = h.GetSampleCount(), h.GetSampleSum()
		case "commonops_db_write_groups_resent_total":
			resent = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if groups != 2 || writes != 5 || resent != 1 {
		t.Errorf("got %d groups of %v writes, %v resent; want 2 groups of 5 writes, 1 resent", groups, writes, resent)
	}
}

// Writes handed over while others are in flight go out together.
func TestConcurrentWritesFormGroups(t *testing.T) {
	t.Parallel()
	s := openIn(t, newSchema(t))
	const n = 20
	xids := make([]int64, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			// Each statement takes 50 ms: while the first ones run, the
			// rest wait for the flushers.
			errs[i] = s.QueryRow(context.Background(), fmt.Sprint(i), "SELECT txid_current() FROM pg_sleep(0.05)", nil,
				func(r pgx.Row) error { return r.Scan(&xids[i]) })
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	distinct := map[int64]bool{}
	for _, x := range xids {
		distinct[x] = true
	}
	if len(distinct) >= n {
		t.Errorf("%d writes ran in %d transactions: no group formed", n, len(distinct))
	}
	t.Logf("%d writes in %d transactions", n, len(distinct))
}

// Creates and claims from many goroutines go through write groups; each
// caller gets its own answer.
func TestGroupedWritesUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := openIn(t, newSchema(t))
	ctx := context.Background()
	const n = 64
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		task, ch := newTask(t, "acme", commonops.CreateInput{TaskType: "import", EntityType: "product"})
		ids[i] = task.ID
		wg.Go(func() {
			if _, err := s.CreateTask(ctx, task, ch, nil); err != nil {
				errs <- fmt.Errorf("create: %w", err)
			}
		})
	}
	wg.Wait()
	// Each task claimed twice at once: one claim wins, the other is refused.
	won := make([]int, n)
	var mu sync.Mutex
	for i := range 2 * n {
		wg.Go(func() {
			_, err := s.ClaimTask(ctx, "", ids[i%n], store.ClaimParams{WorkerID: fmt.Sprint("w", i), Lease: time.Minute})
			switch {
			case err == nil:
				mu.Lock()
				won[i%n]++
				mu.Unlock()
			case commonops.ErrorCode(err) != commonops.ECONFLICT:
				errs <- fmt.Errorf("claim: %w", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, w := range won {
		if w != 1 {
			t.Errorf("task %s claimed %d times, want once", ids[i], w)
		}
	}
}

// TestWriteGroupTakesFlowLocksFirst holds the flow lock of type import in a
// transaction that inserts a row into g, and sends a group whose first
// write needs that lock: the group waits for the lock, and once the holder
// commits, the write's statement sees the holder's row (its snapshot is
// taken after the lock); the group's other write commits with it.
func TestWriteGroupTakesFlowLocksFirst(t *testing.T) {
	t.Parallel()
	s := groupTable(t)
	ctx := context.Background()
	task, ch := newTask(t, "acme", commonops.CreateInput{TaskType: "import", EntityType: "product"})
	if _, err := s.CreateTask(ctx, task, ch, nil); err != nil {
		t.Fatalf("create: %v", err)
	}
	holder, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	var pid int
	if err := holder.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('commonops.flow.' || 'import', 0))"); err != nil {
		t.Fatalf("take the lock: %v", err)
	}
	if _, err := holder.Exec(ctx, "INSERT INTO g (k) VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	var seen int
	var xid int64
	done := make(chan []error, 1)
	go func() {
		done <- s.SendGroup(ctx, []postgres.GroupWrite{
			{Key: "a", SQL: "SELECT count(*) FROM g", LockTask: task.ID, Scan: func(r pgx.Row) error { return r.Scan(&seen) }},
			insertK("b", 2, &xid),
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := s.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted AND $1 = ANY (pg_blocking_pids(pid)))`, pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case errs := <-done:
			t.Fatalf("group returned %v while the lock was held, want it to wait for the lock", errs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no backend waits for the flow lock after 10s, want the group waiting for it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	errs := <-done
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("group: %v", errs)
	}
	if seen != 1 {
		t.Errorf("rows of g the locked write saw: got %d, want 1 (the lock holder's, committed before the lock was granted)", seen)
	}
	wantKeys(t, s, 1, 2)
}
