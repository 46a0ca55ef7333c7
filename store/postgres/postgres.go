// Package postgres is the PostgreSQL driver of the commonops store, built on
// pgx/v5 and its pool. It is the production store: every role of every
// replica shares one database, so claims use FOR NO KEY UPDATE SKIP
// LOCKED, the outbox wakes relays in all replicas through LISTEN/NOTIFY, and
// leadership is a lease row judged by the database clock.
//
// Migrations are embedded (migrations/NNNN_name.sql), forward-only and
// applied at Open; replicas starting together serialise on an advisory lock.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/tracing"
	"github.com/commonops/commonops/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// MinMaxConns is the least pool size Open uses when Config.MaxConns is zero.
const MinMaxConns = 16

// notifyChannel is the LISTEN/NOTIFY channel of committed outbox rows. The
// payload is the schema that wrote them, so stores in other schemas of the
// same database ignore them.
const notifyChannel = "commonops_outbox"

// retryLimit bounds the attempts of a transaction that lost a
// serialization, deadlock or optimistic race.
const retryLimit = 10

// Config says where the store lives.
type Config struct {
	// URL is a PostgreSQL connection string (URL or key=value form).
	URL string
	// Schema, when set, is created if missing and used as the search_path
	// of every pooled connection (tests isolate themselves in their own).
	// Defaults to the server's search_path (normally public).
	Schema string
	// MaxConns bounds the pool. The hot single-statement writes share
	// transactions (see combine.go) and need few connections (8 and 32
	// connections create the same 3,900-4,900 tasks/s from 32 HTTP clients
	// here); reads, explicit transactions and the LISTEN connection take
	// the rest. Without it, a pool_max_conns parameter in URL applies.
	// Defaults to 4 × CPUs, at least MinMaxConns.
	MaxConns int32
	// DeletePublished makes DeliverOutbox delete the rows it published
	// instead of marking them sent for PruneOutbox to delete later: a
	// published row is then written once less, which a busy queue feels
	// (the task history stays in task_events either way). Defaults to false.
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
	// Registerer, when set, registers the store's metrics (its write
	// groups, see combine.go). Defaults to none.
	Registerer prometheus.Registerer
	// ReadTimeout bounds each statement of the reads the API serves
	// (GetTask, ListTasks, ListLogs, ListEvents) on the server, through
	// SET LOCAL statement_timeout (whole milliseconds, at least 1): the
	// server stops the work, and the read fails with
	// store.ReadTimeoutError (503). A negative value disables it.
	// Defaults to store.ReadTimeoutDefault (5s).
	ReadTimeout time.Duration
	// WarmConns is how many connections (at most the pool's size) Open
	// opens and warms before it returns, and the pool then keeps open:
	// PostgreSQL loads the catalog entries of the tables a backend uses
	// (each table and each of its indexes) on the backend's first
	// statements, several milliseconds of its CPU, so a pool that opened
	// its connections on demand spent the first seconds of a burst on
	// that. Every connection opened later is warmed as it opens. Defaults
	// to 0: connections open on demand, unwarmed.
	WarmConns int32
}

// warmSQL has a new backend plan a lookup on each table the hot paths use,
// which loads the catalog entries of the table and of all its indexes.
const warmSQL = `EXPLAIN SELECT * FROM tasks WHERE id = '' AND tenant_id = '';
EXPLAIN SELECT * FROM task_events WHERE task_id = '';
EXPLAIN SELECT * FROM outbox WHERE id = 0;
EXPLAIN SELECT * FROM idempotency_keys WHERE tenant_id = '';
EXPLAIN SELECT * FROM flow_controls WHERE tenant_id = '';
EXPLAIN SELECT * FROM task_logs WHERE task_id = '';
EXPLAIN SELECT * FROM webhook_subscriptions WHERE tenant_id = '';
EXPLAIN SELECT * FROM api_keys WHERE id = ''`

// warm runs warmSQL on c (the simple protocol: one round trip).
func warm(ctx context.Context, c *pgx.Conn) error {
	return c.PgConn().Exec(ctx, warmSQL).Close()
}

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	pool   *pgxpool.Pool
	schema string // the schema rows are written to, as the server resolves it
	// deletePublished: see Config.DeletePublished.
	deletePublished bool
	// topics: see Config.Topics.
	topics store.Topics
	// headerPayload: see Config.HeaderPayload.
	headerPayload bool
	// readTimeout: see Config.ReadTimeout; 0 when disabled.
	readTimeout time.Duration

	signal chan struct{} // OutboxSignal: local commits and other replicas' NOTIFYs
	wake   chan struct{} // asks the notifier for one NOTIFY
	// listenPID is the backend of the LISTEN connection, 0 while it is
	// down; heard is set when it receives a notification of this schema;
	// skipped while the notifier has left out a NOTIFY since it last
	// counted no peer (see notifier).
	listenPID atomic.Uint32
	heard     atomic.Bool
	skipped   atomic.Bool
	// commits: see CommitSignal.
	commits store.Signals
	// deliveries: see DeliverySignal.
	deliveries store.Signals
	writes     chan *write // to the flushers (see combine.go)
	// limited: task type → when a claim last found it limited (time.Time);
	// see ClaimTask.
	limited sync.Map
	closed  <-chan struct{}
	m       *metrics
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to cfg.URL, applies pending migrations and starts listening
// for outbox notifications. A database that cannot be reached is
// EUNAVAILABLE.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, &commonops.Error{Code: commonops.EINVALID, Message: "the database URL is invalid", Err: err}
	}
	switch {
	case cfg.MaxConns > 0:
		pc.MaxConns = cfg.MaxConns
	case !strings.Contains(cfg.URL, "pool_max_conns"):
		pc.MaxConns = max(int32(4*runtime.NumCPU()), MinMaxConns)
	}
	if cfg.Schema != "" {
		// Sent in the startup packet: no round trip per connection.
		pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize()
	}
	if tracing.Enabled() {
		pc.ConnConfig.Tracer = queryTracer{}
	}
	warmConns := min(max(cfg.WarmConns, 0), pc.MaxConns)
	var warmed atomic.Bool // the pool's first connections are: warm each new one
	if warmConns > 0 {
		pc.MinConns = warmConns
		pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			if warmed.Load() {
				_ = warm(ctx, c) // a connection that cannot be warmed still serves
			}
			return nil
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, interpretError(fmt.Errorf("connect: %w", err))
	}
	s := &Store{pool: pool, schema: cfg.Schema, deletePublished: cfg.DeletePublished, topics: store.NewTopics(cfg.Topics), headerPayload: cfg.HeaderPayload, signal: make(chan struct{}, 1), wake: make(chan struct{}, 1),
		m: newMetrics(cfg.Registerer)}
	switch {
	case cfg.ReadTimeout == 0:
		s.readTimeout = store.ReadTimeoutDefault
	case cfg.ReadTimeout > 0:
		s.readTimeout = cfg.ReadTimeout
	}
	if err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if s.schema == "" {
		if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&s.schema); err != nil {
			pool.Close()
			return nil, interpretError(fmt.Errorf("read current schema: %w", err))
		}
	}
	// After the migrations, which create the tables warmSQL plans on.
	if err := warmPool(ctx, pool, warmConns); err != nil {
		pool.Close()
		return nil, interpretError(fmt.Errorf("warm %d connections: %w", warmConns, err))
	}
	warmed.Store(true)
	lctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.closed, s.writes = cancel, lctx.Done(), make(chan *write)
	s.wg.Add(2 + flushers)
	go s.listen(lctx, pc.ConnConfig.Copy())
	go s.notifier(lctx)
	for range flushers {
		go s.flush()
	}
	return s, nil
}

// warmPool opens up to n connections of pool side by side (holding them
// all at once, so that each is a different one) and warms each.
func warmPool(ctx context.Context, pool *pgxpool.Pool, n int32) error {
	errs := make([]error, n)
	var acquired, done sync.WaitGroup
	acquired.Add(int(n))
	for i := range n {
		done.Go(func() {
			c, err := pool.Acquire(ctx)
			acquired.Done()
			if err != nil {
				errs[i] = err
				return
			}
			defer c.Release()
			acquired.Wait()
			errs[i] = warm(ctx, c.Conn())
		})
	}
	done.Wait()
	return errors.Join(errs...)
}

// Pool returns the connection pool, for tests and benchmarks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return interpretError(fmt.Errorf("ping: %w", err))
	}
	return nil
}

// Close stops the listener and closes the pool. It is safe to call twice.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		s.pool.Close()
	})
	return nil
}

// OutboxSignal receives after a transaction that wrote outbox rows commits,
// in this process or in any replica using the same schema.
func (s *Store) OutboxSignal() <-chan struct{} { return s.signal }

// notify wakes a waiting relay and the event feeds of this process without
// ever blocking.
func (s *Store) notify() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
	s.commits.Signal()
}

// committed is called after a commit that recorded ch and wrote
// outboxRows: outbox rows wake the relays (see outboxWritten); an event
// without one (a claim's) wakes only this process's event feeds.
func (s *Store) committed(ch commonops.Change, outboxRows int) {
	if commonops.Notifies(ch.Topic) {
		s.deliveries.Signal()
	}
	switch {
	case outboxRows > 0:
		s.outboxWritten()
	case !ch.None():
		s.commits.Signal()
	}
}

// outboxWritten is called after a commit that wrote outbox rows: it wakes
// the local relay and asks the notifier to tell the other replicas.
func (s *Store) outboxWritten() {
	s.notify()
	s.wakeNotifier()
}

// wakeNotifier asks the notifier for one NOTIFY (see notifier).
func (s *Store) wakeNotifier() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration %q is not named NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Migrate applies the embedded migrations not yet recorded in
// schema_migrations, in order, in one transaction. Concurrent migrators (one
// per replica) take turns on an advisory lock keyed by the schema, so each
// migration runs once.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('commonops.migrate.' || coalesce(nullif($1, ''), current_schema(), '')))", s.schema); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if s.schema != "" {
			ident := pgx.Identifier{s.schema}.Sanitize()
			if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+ident); err != nil {
				return fmt.Errorf("create schema %s: %w", s.schema, err)
			}
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+ident); err != nil {
				return fmt.Errorf("set search_path: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer PRIMARY KEY,
			name text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		rows, err := tx.Query(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		done := make(map[int]bool, len(applied))
		for _, v := range applied {
			done[v] = true
		}
		for _, m := range ms {
			if done[m.version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return fmt.Errorf("record %s: %w", m.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return interpretError(fmt.Errorf("migrate: %w", err))
	}
	return nil
}

// errRetry marks a transaction that should be run again from the start: a
// serialization failure, a deadlock or a lost optimistic race.
var errRetry = errors.New("transaction should be retried")

// PostgreSQL error codes the driver acts on.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeLockNotAvailable     = "55P03"
	codeInvalidTextRep       = "22P02"
	codeQueryCanceled        = "57014" // statement_timeout, or a cancel request (the driver sends none)
)

// interpretError translates a pgx or PostgreSQL error once, at the edge of
// the driver: an unreachable database is EUNAVAILABLE, a transaction worth
// repeating wraps errRetry, and anything else is returned as is (EINTERNAL
// to callers). Domain errors pass through untouched.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	var de *commonops.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == codeSerializationFailure || pe.Code == codeDeadlockDetected || pe.Code == codeLockNotAvailable:
			return fmt.Errorf("%w: %w", errRetry, err)
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutdown, crash, cannot connect now
			pe.Code == "53300": // too many connections
			return unavailable(err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, puddle.ErrClosedPool):
		return unavailable(err)
	}
	var se interface{ SafeToRetry() bool }
	if errors.As(err, &se) && se.SafeToRetry() {
		return unavailable(err)
	}
	return err
}

func unavailable(err error) error {
	return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "the database is unavailable", Err: err}
}

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// retry runs fn until it succeeds, fails for good, or has lost retryLimit
// races in a row.
func retry(ctx context.Context, fn func() error) error {
	var err error
	for i := 0; i < retryLimit; i++ {
		err = interpretError(fn())
		if !errors.Is(err, errRetry) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(time.Duration(i+1) * time.Millisecond)
	}
	return &commonops.Error{Code: commonops.ECONFLICT, Message: "the change kept losing races with concurrent writers; try again", Err: err}
}
