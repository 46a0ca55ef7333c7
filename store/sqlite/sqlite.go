// Package sqlite is the embedded store driver: store.Store on one SQLite file
// through the pure-Go modernc.org/sqlite driver (no cgo).
//
// The database runs in WAL mode with foreign keys on. Writes are serialised
// through one writer connection whose transactions start with BEGIN
// IMMEDIATE, so a read-modify-write never loses a race and never fails on
// lock upgrade; reads use a small pool of their own. Times are stored as
// INTEGER unix microseconds in UTC, so ordering and comparisons are exact and
// a stored time reads back as PostgreSQL would return it (microseconds).
//
// The SQLite store is made for one process: the outbox relay is serialised
// in-process, and OutboxSignal fires only for commits of this process.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Defaults of Config.
const (
	// BusyTimeoutDefault is how long a statement waits for a lock.
	BusyTimeoutDefault = 5 * time.Second
	// MaxReadersDefault bounds the read connections of a file database.
	MaxReadersDefault = 4
)

// MemoryPath opens a private in-memory database (one connection, gone at Close).
const MemoryPath = ":memory:"

// Config configures Open.
type Config struct {
	// Path is the database file (created if missing), or MemoryPath.
	Path string
	// BusyTimeout is how long a statement waits for a lock another process
	// holds before the store answers EUNAVAILABLE. Defaults to 5s.
	BusyTimeout time.Duration
	// MaxReaders bounds the read connections. Defaults to 4.
	MaxReaders int
	// DeletePublished makes DeliverOutbox delete the rows it published
	// instead of marking them sent for PruneOutbox to delete later (the task
	// history stays in task_events either way). Defaults to false.
	DeletePublished bool
	// Topics, when not nil, are the only topics whose changes write an
	// outbox row: those the configured bus delivers to a subscriber (the
	// embedded bus: commonops.WorkerTopics). A change of another topic
	// still records its event and webhook deliveries. Defaults to every
	// topic.
	Topics []string
	// HeaderPayload makes an outbox row carry the task's header
	// (commonops.Task.AppendHeaderJSON) instead of the whole task, unless
	// the change also notifies webhooks: for a bus whose subscribers only
	// learn which task changed and read the store for the rest (the
	// embedded bus's worker). Defaults to false: the whole task, as Dapr
	// publishes it.
	HeaderPayload bool
	// ReadTimeout bounds each of the reads the API serves (GetTask,
	// ListTasks, ListLogs, ListEvents), waiting for a connection included,
	// through a context deadline: the driver interrupts the statement
	// (sqlite3_interrupt), and the read fails with store.ReadTimeoutError
	// (503). A negative value disables it. Defaults to
	// store.ReadTimeoutDefault (5s).
	ReadTimeout time.Duration
}

// Store implements store.Store on SQLite. Use Open to get one.
type Store struct {
	writer *sql.DB // one connection: every write transaction
	reader *sql.DB // read-only pool; the writer itself for :memory:

	signal     chan struct{}
	commits    store.Signals // see CommitSignal
	deliveries store.Signals // see DeliverySignal
	deliverMu  sync.Mutex    // one DeliverOutbox at a time (rows are not lockable in SQLite)
	now        func() time.Time
	// deletePublished: see Config.DeletePublished.
	deletePublished bool
	// topics: see Config.Topics.
	topics store.Topics
	// headerPayload: see Config.HeaderPayload.
	headerPayload bool
	// readTimeout: see Config.ReadTimeout; 0 when disabled.
	readTimeout time.Duration
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at cfg.Path and applies
// pending migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, commonops.Errorf(commonops.EINVALID, "sqlite: a database path is required")
	}
	if cfg.BusyTimeout <= 0 {
		cfg.BusyTimeout = BusyTimeoutDefault
	}
	if cfg.MaxReaders <= 0 {
		cfg.MaxReaders = MaxReadersDefault
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", cfg.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	memory := cfg.Path == MemoryPath
	if !memory {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	wq := url.Values{}
	for k, v := range q {
		wq[k] = v
	}
	wq.Set("_txlock", "immediate")

	writer, err := openDB(cfg.Path + "?" + wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	s := &Store{writer: writer, reader: writer, signal: make(chan struct{}, 1), now: time.Now, deletePublished: cfg.DeletePublished, topics: store.NewTopics(cfg.Topics), headerPayload: cfg.HeaderPayload}
	switch {
	case cfg.ReadTimeout == 0:
		s.readTimeout = store.ReadTimeoutDefault
	case cfg.ReadTimeout > 0:
		s.readTimeout = cfg.ReadTimeout
	}
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, interpretError(err))
	}
	if err := s.Migrate(ctx); err != nil {
		writer.Close()
		return nil, err
	}
	if !memory {
		rq := url.Values{}
		for k, v := range q {
			rq[k] = v
		}
		rq.Add("_pragma", "query_only(1)")
		reader, err := openDB(cfg.Path + "?" + rq.Encode())
		if err != nil {
			writer.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
		}
		reader.SetMaxOpenConns(cfg.MaxReaders)
		reader.SetMaxIdleConns(cfg.MaxReaders)
		s.reader = reader
	}
	return s, nil
}

// DB returns the writer's handle, for tests and tools.
func (s *Store) DB() *sql.DB { return s.writer }

// Close releases the store's connections.
func (s *Store) Close() error {
	var err error
	if s.reader != s.writer {
		err = s.reader.Close()
	}
	return errors.Join(err, s.writer.Close())
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.reader.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", interpretError(err))
	}
	var one int
	if err := s.reader.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite: %w", interpretError(err))
	}
	return nil
}

// Migrate applies the embedded migrations not yet recorded in
// schema_migrations, each in its own transaction, in version order. It is
// safe to call again and from several processes at once.
func (s *Store) Migrate(ctx context.Context) error {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	if _, err := s.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER NOT NULL PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", interpretError(err))
	}
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return fmt.Errorf("migration %s: name must start with a number and '_'", base)
		}
		body, err := migrationFS.ReadFile(name)
		if err != nil {
			return fmt.Errorf("read migration %s: %w", base, err)
		}
		err = s.write(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = ?", version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", version, base, micros(s.now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", base, err)
		}
	}
	return nil
}

// write runs fn in one write transaction (BEGIN IMMEDIATE on the single
// writer connection) and commits it when fn succeeds.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return interpretError(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return interpretError(err)
	}
	if err := tx.Commit(); err != nil {
		return interpretError(err)
	}
	return nil
}

// read runs fn in one read transaction, so its queries see one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return interpretError(err)
	}
	defer tx.Rollback()
	return interpretError(fn(tx))
}

// errReadTimeout is the cause of a bounded read's deadline, which tells it
// from the caller's own deadline or cancellation.
var errReadTimeout = errors.New("read timeout")

// readBounded is read for the reads the API serves: it ends after the read
// timeout, interrupting the running statement (modernc's driver calls
// sqlite3_interrupt when a statement's context is done), and answers
// store.ReadTimeoutError then.
// fn must run its statements with the context it is given.
func (s *Store) readBounded(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if s.readTimeout <= 0 {
		return s.read(ctx, func(tx *sql.Tx) error { return fn(ctx, tx) })
	}
	rctx, cancel := context.WithTimeoutCause(ctx, s.readTimeout, errReadTimeout)
	defer cancel()
	err := s.read(rctx, func(tx *sql.Tx) error { return fn(rctx, tx) })
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(rctx), errReadTimeout) {
		return store.ReadTimeoutError(s.readTimeout, err)
	}
	return err
}

// notify wakes an OutboxSignal reader without blocking.
func (s *Store) notify() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// OutboxSignal receives after a transaction of this store that wrote outbox
// rows commits.
func (s *Store) OutboxSignal() <-chan struct{} { return s.signal }

// interpretError translates driver errors once: domain errors and context
// errors pass as they are, a busy or locked database and a closed handle
// become EUNAVAILABLE, anything else is wrapped unchanged.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	var de *commonops.Error
	if errors.As(err, &de) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "database is closed") {
		return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "the database is closed", Err: err}
	}
	var se *sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3lib.SQLITE_BUSY, sqlite3lib.SQLITE_LOCKED:
			return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "the database is busy; try again", Err: err}
		case sqlite3lib.SQLITE_CANTOPEN, sqlite3lib.SQLITE_IOERR, sqlite3lib.SQLITE_FULL, sqlite3lib.SQLITE_READONLY:
			return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "the database cannot be written", Err: err}
		}
	}
	return err
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY
// constraint failure.
func isUniqueViolation(err error) bool {
	var se *sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3lib.SQLITE_CONSTRAINT_UNIQUE, sqlite3lib.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	case sqlite3lib.SQLITE_CONSTRAINT:
		return strings.Contains(se.Error(), "UNIQUE constraint")
	}
	return false
}

// micros is how a time is stored: unix microseconds, UTC.
func micros(t time.Time) int64 { return t.UnixMicro() }

// nullMicros stores an optional time.
func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

// fromMicros reads a stored time.
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// fromNullMicros reads an optional stored time.
func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// truncTime and truncTimePtr give a time the precision it is stored with.
func truncTime(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

func truncTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := truncTime(*t)
	return &v
}
