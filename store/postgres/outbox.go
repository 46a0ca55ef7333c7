package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/outbox"
)

// Reconnection backoff of the LISTEN connection.
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)

const lockOutboxSQL = `SELECT id, tenant_id, task_id, topic, payload, created_at, attempts, coalesce(traceparent, '')
FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`

// DeliverOutbox locks up to limit unsent rows (oldest first, skipping rows
// another relay holds), calls publish while holding them, marks the first n
// it reports sent and counts an attempt on every row handed over (the rest
// stay unsent). It returns how many it marked, and publish's error.
func (s *Store) DeliverOutbox(ctx context.Context, limit int, publish func(context.Context, []outbox.Message) (int, error)) (int, error) {
	if limit <= 0 {
		return 0, commonops.Invalid(commonops.FieldError{Field: "limit", Message: "must be positive"})
	}
	tc, err := s.acquire(ctx)
	if err != nil {
		return 0, interpretError(fmt.Errorf("deliver outbox: %w", err))
	}
	defer tc.release()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockOutboxSQL, limit)
	br := tc.c.SendBatch(ctx, b)
	var msgs []outbox.Message
	_, err = br.Exec()
	if err == nil {
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			msgs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (outbox.Message, error) {
				var m outbox.Message
				var payload []byte
				err := r.Scan(&m.ID, &m.TenantID, &m.TaskID, &m.Topic, &payload, &m.CreatedAt, &m.Attempts, &m.TraceParent)
				m.Payload, m.CreatedAt = rawJSON(payload), m.CreatedAt.UTC()
				return m, err
			})
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, interpretError(fmt.Errorf("lock outbox rows: %w", err))
	}
	if len(msgs) == 0 {
		_, err := tc.c.Exec(ctx, "COMMIT")
		return 0, interpretError(err)
	}

	n, perr := publish(ctx, msgs)
	n = min(max(n, 0), len(msgs))
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	b = &pgx.Batch{}
	switch {
	case n == 0:
	case s.deletePublished:
		b.Queue("DELETE FROM outbox WHERE id = ANY($1)", ids[:n])
	default:
		b.Queue("UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1)", ids[:n])
	}
	if n < len(ids) {
		b.Queue("UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1)", ids[n:])
	}
	b.Queue("COMMIT")
	// Marking must not be lost to a caller's cancelled context: the events
	// were published.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := tc.c.SendBatch(mctx, b).Close(); err != nil {
		return 0, interpretError(fmt.Errorf("mark %d outbox rows sent: %w", n, err))
	}
	if perr != nil {
		return n, fmt.Errorf("publish %d outbox rows: %w", len(msgs)-n, perr)
	}
	return n, nil
}

// OutboxStats reports the unsent backlog and its oldest row's creation time
// (zero when empty).
func (s *Store) OutboxStats(ctx context.Context) (int, time.Time, error) {
	var backlog int
	var oldest *time.Time
	err := s.pool.QueryRow(ctx, "SELECT count(*), min(created_at) FROM outbox WHERE sent_at IS NULL").Scan(&backlog, &oldest)
	if err != nil {
		return 0, time.Time{}, interpretError(fmt.Errorf("outbox stats: %w", err))
	}
	if oldest == nil {
		return backlog, time.Time{}, nil
	}
	return backlog, oldest.UTC(), nil
}

// PruneOutbox deletes up to limit rows sent before sentBefore, oldest first.
func (s *Store) PruneOutbox(ctx context.Context, sentBefore time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, commonops.Invalid(commonops.FieldError{Field: "limit", Message: "must be positive"})
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE id IN (
		SELECT id FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1 ORDER BY sent_at LIMIT $2)`, sentBefore, limit)
	if err != nil {
		return 0, interpretError(fmt.Errorf("prune outbox: %w", err))
	}
	return int(tag.RowsAffected()), nil
}

// listen holds a dedicated connection that LISTENs for committed outbox rows
// of this schema from any replica (see notifier) and signals OutboxSignal. It reconnects
// with backoff and signals after each (re)connection, since notifications
// sent while it was away are lost. It returns when ctx ends.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	defer s.wg.Done()
	backoff := listenBackoffMin
	for {
		err := s.listenOnce(ctx, cfg, func() { backoff = listenBackoffMin })
		if ctx.Err() != nil {
			return
		}
		_ = err // the pool's own calls report an unreachable database
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

func (s *Store) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	// Listening, holding the schema's listener lock, then saying hello:
	// the other replicas' notifiers count this one from the hello on.
	b := &pgx.Batch{}
	b.Queue("LISTEN " + notifyChannel)
	b.Queue("SELECT pg_advisory_lock_shared($1, $2)", listenerLockClass, listenerLockKey(s.schema))
	b.Queue("SELECT pg_notify($1, $2)", notifyChannel, s.schema)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	s.listenPID.Store(conn.PgConn().PID())
	defer s.listenPID.Store(0)
	connected()
	s.notify()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload == s.schema {
			s.heard.Store(true)
			s.notify()
			if s.skipped.Load() {
				// A peer appeared after a write this process did not
				// announce: count again and announce it now.
				s.wakeNotifier()
			}
		}
	}
}

// The listener lock: every store's LISTEN connection holds it shared,
// under listenerLockClass and its schema's listenerLockKey, for as long as
// it listens; the notifier counts its holders in pg_locks.
const listenerLockClass = 0x636f6f70 // "coop"

func listenerLockKey(schema string) int32 {
	h := fnv.New32a()
	h.Write([]byte(schema))
	return int32(h.Sum32() &^ (1 << 31)) // positive: pg_locks shows it as an oid
}

const peersSQL = `SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND classid = $1::int4::oid AND objid = $2::int4::oid AND objsubid = 2 AND granted AND pid <> $3::int4`

// peerRecheck is how often a writing notifier counts the other
// replicas' listeners again.
const peerRecheck = time.Second

// peers reports whether another store listens on this schema (true when
// it cannot tell).
func (s *Store) peers(ctx context.Context) bool {
	var n int
	err := s.pool.QueryRow(ctx, peersSQL, listenerLockClass, listenerLockKey(s.schema), int32(s.listenPID.Load())).Scan(&n)
	return err != nil || n > 0
}

// notifier sends NOTIFY commonops_outbox (payload: the schema) after commits
// that wrote outbox rows, outside their transactions: the commits that
// happen while one NOTIFY is in flight share the next one. A NOTIFY lost to
// a crash or an error only delays the other replicas until their relay's
// next poll; nothing committed is lost, since the rows are in the outbox.
//
// It sends none while no other store listens on the schema: this process
// wakes its own relay and feeds directly, and a NOTIFY is a transaction
// of its own (one after about every write group: about half of the
// transactions of a lone busy process). It counts the other listeners
// (their listener lock) at most every peerRecheck while writing, and at
// the next write after its listener heard a notification while it counted
// none (a replica's hello, or its first NOTIFY); when that notification
// comes after a write it left out, it counts and notifies at once, so a
// replica that starts hears of every write committed after its hello.
// With peers counted, the NOTIFY goes before the count that is due, not
// after it: the count reads pg_locks, which took 2-5 ms under the
// e2e-split bench's load, and a wake-up must not wait for it.
func (s *Store) notifier(ctx context.Context) {
	defer s.wg.Done()
	var others bool
	var counted time.Time
	notify := func(ctx context.Context) {
		_, _ = s.pool.Exec(ctx, "SELECT pg_notify($1, $2)", notifyChannel, s.schema)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		heard := s.heard.Swap(false)
		if others {
			notify(nctx)
		}
		if (heard && !others) || time.Since(counted) >= peerRecheck {
			had := others
			others, counted = s.peers(nctx), time.Now()
			// Before the NOTIFY: this store's listener hears it too, and
			// must not take it for a newcomer's after a skipped write.
			s.skipped.Store(!others)
			if others && !had {
				notify(nctx) // a peer came: it hears of this write too
			}
		}
		if !others && s.heard.Load() {
			// A notification came while this write was being decided:
			// the listener may have looked at skipped before it was set.
			s.wakeNotifier()
		}
		cancel()
	}
}
