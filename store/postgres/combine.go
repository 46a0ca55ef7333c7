package postgres

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/prom"
	"github.com/commonops/commonops/internal/tracing"
)

// Group commit of single-statement writes.
//
// Each statement sent on its own is a transaction of its own: a round trip,
// a backend woken, a commit record and a WAL flush to wait for. Under load
// that overhead is most of the cost of a small write. The store's hot writes
// (create, claim by key, a worker's report on the task it holds) are single
// statements, so the store sends the ones that arrive together as one
// pipelined batch, which PostgreSQL runs as one implicit transaction: one
// round trip, one commit, one flush for the group. A caller still returns
// only once its statement has committed (or failed).
//
// Writes are handed to a few flushers over an unbuffered channel: a flusher
// takes the first write that comes and then every write already waiting,
// up to maxGroup. An idle store sends a write at once, alone; a busy one
// groups by itself while earlier groups are in flight, without a timer.
//
// A group takes the row locks of all its statements and holds them until it
// commits, so its statements run in the order of their keys (the task id or
// idempotency key they write): two groups that meet on the same rows, in
// this replica or another, then lock them in the same order and never
// deadlock.
//
// A statement that waits for a row lock holds its whole group back. The rows
// grouped writes lock are otherwise only locked by short writes (UpdateTask
// holds its row across a callback that does no I/O), so that wait is short;
// groupTimeout is the backstop.
//
// A write may need the flow lock of a task's type (lockTask, see flowLock)
// before its statement: a claim of a limited type. The group takes the
// locks of all its writes first, in one statement, in type order, before
// any row lock; a write sent alone takes its lock in a transaction of its
// own. A group that waits for a flow lock holds no row lock, and one that
// holds flow locks waits only for rows (which holders of flow locks never
// wait for one another to release in a cycle), so flow locks add no
// deadlock. Each statement of the group runs on a snapshot taken after the
// locks, so it sees every claim committed under them.
//
// A statement that fails aborts its group's transaction, so nothing of the
// group was written; each of the group's writes is then sent again on its
// own, and one write's error is never another's. A group whose outcome is
// unknown (the connection broke) reports the error to every caller, as a
// lone statement would.
const (
	// flushers is how many groups can be in flight at once: while one is
	// at the server, the next fills.
	flushers = 2
	// maxGroup bounds a group's statements.
	maxGroup = 64
	// groupTimeout bounds a group's round trip. Callers' contexts do not:
	// a group serves many callers, and a write handed over is seen through.
	groupTimeout = 30 * time.Second
)

// write is one statement handed to the flushers. key orders it in its
// group. scan reads the statement's one row, or returns pgx.ErrNoRows; it
// may be called twice when the write is sent again alone.
type write struct {
	ctx  context.Context
	key  string
	sql  string
	args []any
	scan func(pgx.Row) error
	done chan error
	// lockTask: the task whose type's flow lock the statement needs first;
	// empty for none.
	lockTask string
}

// queryRow runs sql as one write, grouped with concurrent ones, and scans
// its row with scan. key names the row it locks (see above). It returns
// scan's error (pgx.ErrNoRows included). sql must be one statement that
// writes at most the row named by key and controls no transaction.
//
// With tracing on, a traced ctx gets a span for the write, from its hand-over
// to the flushers to its answer (the group's commit included).
func (s *Store) queryRow(ctx context.Context, key, sql string, args []any, scan func(pgx.Row) error) (err error) {
	return s.queryRowLocked(ctx, key, "", sql, args, scan)
}

// queryRowLocked is queryRow for a statement that needs the flow lock of
// task lockTask's type first (none when empty).
func (s *Store) queryRowLocked(ctx context.Context, key, lockTask, sql string, args []any, scan func(pgx.Row) error) (err error) {
	if tracing.Enabled() {
		ctx = startStatement(ctx, sql)
		defer func() { endStatement(ctx, err) }()
	}
	w := &write{ctx: ctx, key: key, sql: sql, args: args, scan: scan, done: make(chan error, 1), lockTask: lockTask}
	select {
	case s.writes <- w:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "the store is closed"}
	}
	return <-w.done
}

// flush hands groups of writes to the server until the store closes.
func (s *Store) flush() {
	defer s.wg.Done()
	group := make([]*write, 0, maxGroup)
	m := pgtype.NewMap() // this goroutine's alone: a Map is not safe for concurrent use
	for {
		select {
		case w := <-s.writes:
			group = append(group[:0], w)
		case <-s.closed:
			return
		}
	more:
		for len(group) < maxGroup {
			select {
			case w := <-s.writes:
				group = append(group, w)
			default:
				break more
			}
		}
		s.sendGroup(group, m)
		clear(group)
	}
}

// sendGroup writes group in one implicit transaction and tells each caller
// its result. Writes whose callers gave up before the group was sent are
// dropped; a group of one goes as a plain statement. The statements' rows
// are copied out and scanned (with m) only once the group has committed,
// so a caller's scan that fails fails that caller alone.
func (s *Store) sendGroup(group []*write, m *pgtype.Map) {
	live := group[:0:0]
	for _, w := range group {
		if err := w.ctx.Err(); err != nil {
			w.done <- err
			continue
		}
		live = append(live, w)
	}
	if len(live) > 0 {
		s.m.groupSize.Observe(float64(len(live)))
	}
	switch len(live) {
	case 0:
		return
	case 1:
		s.sendAlone(live[0])
		return
	}
	slices.SortStableFunc(live, func(a, b *write) int { return strings.Compare(a.key, b.key) })
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	b := &pgx.Batch{}
	var lockTasks []string
	for _, w := range live {
		if w.lockTask != "" {
			lockTasks = append(lockTasks, w.lockTask)
		}
	}
	if lockTasks != nil {
		b.Queue(lockTaskTypesSQL, lockTasks)
	}
	for _, w := range live {
		b.Queue(w.sql, w.args...)
	}
	br := s.pool.SendBatch(ctx, b)
	answers := make([]*answer, len(live))
	var failed error
	if lockTasks != nil {
		_, failed = br.Exec()
	}
	for i := range live {
		if failed != nil {
			break
		}
		rows, err := br.Query()
		if err == nil {
			answers[i], err = readAnswer(rows, m)
		}
		if err != nil {
			failed = err
			break
		}
	}
	if err := br.Close(); failed == nil {
		failed = err
	}
	switch {
	case failed == nil:
		for i, w := range live {
			w.done <- w.scan(answers[i])
		}
	case rolledBack(failed):
		s.m.resent.Inc()
		// Sent again alone, side by side: each is one statement on one
		// row, so they cannot deadlock one another.
		for _, w := range live {
			s.wg.Add(1) // the flusher's own count keeps Close waiting meanwhile
			go func() {
				defer s.wg.Done()
				s.sendAlone(w)
			}()
		}
	default:
		for _, w := range live {
			w.done <- fmt.Errorf("write in a group of %d: %w", len(live), failed)
		}
	}
}

// metrics of the write groups.
type metrics struct {
	groupSize prometheus.Histogram
	resent    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		groupSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "commonops_db_write_group_size",
			Help:    "Writes per PostgreSQL write group (create, claim by key, worker report; see group commit): 1 when sent alone.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, maxGroup},
		}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commonops_db_write_groups_resent_total",
			Help: "PostgreSQL write groups refused as a whole (one write failed) whose writes were sent again one by one.",
		}),
	}
	if reg != nil {
		m.groupSize = prom.Register(reg, m.groupSize)
		m.resent = prom.Register(reg, m.resent)
	}
	return m
}

// sendAlone runs one write as its own statement, on its caller's context;
// a write that needs a flow lock, in a transaction of its own after the
// lock (BEGIN, the lock, the statement and COMMIT in one batch).
func (s *Store) sendAlone(w *write) {
	if w.lockTask == "" {
		w.done <- w.scan(s.pool.QueryRow(w.ctx, w.sql, w.args...))
		return
	}
	w.done <- func() error {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(lockTaskTypesSQL, []string{w.lockTask})
		b.Queue(w.sql, w.args...)
		b.Queue("COMMIT")
		br := s.pool.SendBatch(w.ctx, b)
		defer br.Close()
		for range 2 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if err := w.scan(br.QueryRow()); err != nil {
			return err
		}
		return br.Close()
	}()
}

// answer is a statement's first row, copied out of its batch: a pgx.Row
// that scans with the flusher's type map.
type answer struct {
	m      *pgtype.Map
	found  bool
	fields []pgconn.FieldDescription
	values [][]byte
}

func (a *answer) Scan(dest ...any) error {
	if !a.found {
		return pgx.ErrNoRows
	}
	return pgx.ScanRow(a.m, a.fields, a.values, dest...)
}

// readAnswer copies the first row of rows and returns the statement's
// error.
func readAnswer(rows pgx.Rows, m *pgtype.Map) (*answer, error) {
	defer rows.Close()
	a := &answer{m: m}
	if rows.Next() {
		a.found = true
		a.fields = slices.Clone(rows.FieldDescriptions())
		for _, v := range rows.RawValues() {
			a.values = append(a.values, bytes.Clone(v)) // nil (NULL) stays nil
		}
	}
	rows.Close()
	return a, rows.Err()
}

// rolledBack reports whether err left nothing of the group written: the
// server refused a statement (so the transaction it was in was rolled
// back), or the batch failed before it was sent. Other failures (a broken
// connection, a session the server ended) leave the commit's outcome
// unknown.
func rolledBack(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return cmp.Or(pe.SeverityUnlocalized, pe.Severity) == "ERROR"
	}
	var pre pgx.ErrPreprocessingBatch
	return errors.As(err, &pre)
}
