package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/commonops/commonops"
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
}

// queryRow runs sql as one write, grouped with concurrent ones, and scans
// its row with scan. key names the row it locks first (see above). It
// returns scan's error (pgx.ErrNoRows included).
func (s *Store) queryRow(ctx context.Context, key, sql string, args []any, scan func(pgx.Row) error) error {
	w := &write{ctx: ctx, key: key, sql: sql, args: args, scan: scan, done: make(chan error, 1)}
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
		s.sendGroup(group)
		clear(group)
	}
}

// sendGroup writes group in one implicit transaction and tells each caller
// its result. Writes whose callers gave up before the group was sent are
// dropped; a group of one goes as a plain statement.
func (s *Store) sendGroup(group []*write) {
	live := group[:0:0]
	for _, w := range group {
		if err := w.ctx.Err(); err != nil {
			w.done <- err
			continue
		}
		live = append(live, w)
	}
	if len(live) == 1 {
		s.sendAlone(live[0])
		return
	}
	if len(live) == 0 {
		return
	}
	slices.SortStableFunc(live, func(a, b *write) int { return strings.Compare(a.key, b.key) })
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	b := &pgx.Batch{}
	for _, w := range live {
		b.Queue(w.sql, w.args...)
	}
	br := s.pool.SendBatch(ctx, b)
	errs := make([]error, len(live))
	var failed error
	for i, w := range live {
		errs[i] = w.scan(br.QueryRow())
		if errs[i] != nil && !errors.Is(errs[i], pgx.ErrNoRows) && failed == nil {
			failed = errs[i]
		}
	}
	if err := br.Close(); err != nil && failed == nil {
		failed = err
	}
	switch {
	case failed == nil:
		for i, w := range live {
			w.done <- errs[i]
		}
	case rolledBack(failed):
		for _, w := range live {
			s.sendAlone(w)
		}
	default:
		for _, w := range live {
			w.done <- fmt.Errorf("write in a group of %d: %w", len(live), failed)
		}
	}
}

// sendAlone runs one write as its own statement, on its caller's context.
func (s *Store) sendAlone(w *write) {
	w.done <- w.scan(s.pool.QueryRow(w.ctx, w.sql, w.args...))
}

// rolledBack reports whether err is the server refusing a statement (so
// the transaction it was in was rolled back) rather than a failure that
// leaves the commit's outcome unknown: a broken connection, or a session
// ended (FATAL) by the server.
func rolledBack(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Severity == "ERROR"
}
