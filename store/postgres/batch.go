package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// Column names of the COPYs of CreateTasks.
var (
	copyTaskColumns   = columnNames(taskColumnList)
	copyEventColumns  = []string{"tenant_id", "task_id", "task_type", "entity_type", "status", "requested_by", "event_type", "event_data", "created_at"}
	copyOutboxColumns = []string{"tenant_id", "task_id", "topic", "payload", "traceparent"}
)

// takeKeysSQL inserts a batch's idempotency keys, each parameter the array
// of one column over the keyed items, and returns the tasks whose key was
// free. Arrays of one type each, so that it runs over the simple protocol
// too (PgBouncer in transaction mode).
const takeKeysSQL = `INSERT INTO idempotency_keys (tenant_id, key, request_hash, task_id, status_code, response, created_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::integer[], $6::json[], $7::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING task_id`

// batchRows are a batch item's rows: its task's, its event's and its
// outbox row's (nil when its change has none).
type batchRows struct {
	task, event, msg []any
}

// batchKeys are the columns of takeKeysSQL.
type batchKeys struct {
	tenant, key, hash, task, response []string
	status                            []int
	at                                []time.Time
}

// CreateTasks inserts a batch of tasks with their events, outbox rows and
// idempotency keys in one transaction: the keys first (one statement; a
// key already taken inserts nothing), then, with COPY, the tasks whose key
// was free or that have none, their events and their outbox rows, in batch
// order (the order the relay publishes them). COPY writes a page of rows
// per WAL record, where an INSERT writes each row on its own. Then it reads
// the stored records of the keys that were taken.
func (s *Store) CreateTasks(ctx context.Context, batch []store.NewTask) ([]*store.Idempotency, error) {
	priors := make([]*store.Idempotency, len(batch))
	if len(batch) == 0 {
		return priors, nil
	}
	rows := make([]batchRows, len(batch))
	keys := make(map[[2]string]int, len(batch))
	var keyed []int
	for n, it := range batch {
		t := it.Task
		normalize(t)
		c, err := s.changeArgs(ctx, t, it.Change)
		if err != nil {
			return nil, err
		}
		r := &rows[n]
		r.task = taskArgs(t)
		// c: event type, event data, event time, topic, payload,
		// traceparent, queued.
		if c[0] != "" {
			r.event = []any{t.TenantID, t.ID, t.TaskType, t.EntityType, string(t.Status), t.RequestedBy, c[0], c[1], c[2]}
		}
		if c[6].(bool) {
			r.msg = []any{t.TenantID, t.ID, c[3], c[4], c[5]}
		}
		if k := it.Idem; k != nil {
			tenant := cmp.Or(k.TenantID, t.TenantID)
			if first, ok := keys[[2]string{tenant, k.Key}]; ok {
				return nil, commonops.Errorf(commonops.EINVALID, "items %d and %d of the batch have the same idempotency key", first, n)
			}
			keys[[2]string{tenant, k.Key}] = n
			keyed = append(keyed, n)
		}
	}
	// The keys go in (tenant, key) order: batches racing on the same keys
	// then wait for each other's in one order and never deadlock.
	tenantOf := func(n int) string { return cmp.Or(batch[n].Idem.TenantID, batch[n].Task.TenantID) }
	slices.SortFunc(keyed, func(a, b int) int {
		return cmp.Or(cmp.Compare(tenantOf(a), tenantOf(b)), cmp.Compare(batch[a].Idem.Key, batch[b].Idem.Key))
	})
	var k batchKeys
	for _, n := range keyed {
		t, i := batch[n].Task, batch[n].Idem
		k.tenant, k.key, k.hash, k.task = append(k.tenant, tenantOf(n)), append(k.key, i.Key), append(k.hash, i.RequestHash), append(k.task, t.ID)
		k.status, k.at = append(k.status, i.StatusCode), append(k.at, dbTime(cmp.Or(i.CreatedAt, t.CreatedAt)))
		k.response = append(k.response, jsonArg(i.Response, "null").(string))
	}

	var inserted map[string]bool // the keyed items' tasks whose key was free
	var created, written int
	err := retry(ctx, func() error {
		err := s.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
			var err error
			for attempt := 0; ; attempt++ {
				var copyErr bool
				inserted, created, written, copyErr, err = s.writeBatch(ctx, c.Conn(), batch, rows, &k)
				// pgx keeps, per connection, the column types of each
				// COPY's table; a migration that changed one (another
				// replica's) makes the COPY fail until they are read again.
				if err == nil || !copyErr || isCode(err, codeUniqueViolation) || attempt > 0 {
					return err
				}
				if derr := c.Conn().DeallocateAll(ctx); derr != nil {
					return errors.Join(err, derr)
				}
			}
		})
		if isCode(err, codeUniqueViolation) {
			return &commonops.Error{Code: commonops.ECONFLICT, Message: "a task of the batch already exists", Err: err}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create %d tasks: %w", len(batch), err)
	}
	if written > 0 {
		s.outboxWritten()
	} else if created > 0 {
		s.commits.Signal()
	}
	var redo []int
	for n, it := range batch {
		if it.Idem == nil || inserted[it.Task.ID] {
			continue
		}
		p, err := s.getIdempotency(ctx, cmp.Or(it.Idem.TenantID, it.Task.TenantID), it.Idem.Key)
		switch {
		case err == nil:
			priors[n] = p
		case err == pgx.ErrNoRows:
			redo = append(redo, n) // its holder vanished meanwhile: try again
		default:
			return nil, fmt.Errorf("create %d tasks: replay key %q: %w", len(batch), it.Idem.Key, interpretError(err))
		}
	}
	for _, n := range redo {
		p, err := s.CreateTask(ctx, batch[n].Task, batch[n].Change, batch[n].Idem)
		if err != nil {
			return nil, err
		}
		priors[n] = p
	}
	return priors, nil
}

// writeBatch is CreateTasks' transaction on conn: it takes the keys k,
// then COPYs the rows of the items whose key was free or that have none.
// It returns the keyed items' tasks whose key was free, the counts of
// tasks and outbox rows written, and whether it failed in a COPY.
func (s *Store) writeBatch(ctx context.Context, conn *pgx.Conn, batch []store.NewTask, rows []batchRows, k *batchKeys) (inserted map[string]bool, created, written int, copyErr bool, err error) {
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if len(k.key) > 0 {
			ids, err := tx.Query(ctx, takeKeysSQL, k.tenant, k.key, k.hash, k.task, k.status, k.response, k.at)
			if err != nil {
				return err
			}
			taken, err := pgx.CollectRows(ids, pgx.RowTo[string])
			if err != nil {
				return err
			}
			inserted = make(map[string]bool, len(taken))
			for _, id := range taken {
				inserted[id] = true
			}
		}
		var tasks, events, msgs [][]any
		for n, it := range batch {
			if it.Idem != nil && !inserted[it.Task.ID] {
				continue
			}
			r := rows[n]
			tasks = append(tasks, r.task)
			if r.event != nil {
				events = append(events, r.event)
			}
			if r.msg != nil {
				msgs = append(msgs, r.msg)
			}
		}
		for _, c := range []struct {
			table string
			cols  []string
			rows  [][]any
		}{{"tasks", copyTaskColumns, tasks}, {"task_events", copyEventColumns, events}, {"outbox", copyOutboxColumns, msgs}} {
			if len(c.rows) == 0 {
				continue
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
				copyErr = true
				return err
			}
		}
		created, written = len(tasks), len(msgs)
		return nil
	})
	return inserted, created, written, copyErr, err
}
