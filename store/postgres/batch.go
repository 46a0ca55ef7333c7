package postgres

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	var kTenant, kKey, kHash, kTask, kResponse []string
	var kStatus []int
	var kAt []time.Time
	for n, it := range batch {
		t := it.Task
		normalize(t)
		c, err := s.changeArgs(ctx, t, it.Change)
		if err != nil {
			return nil, err
		}
		r := &rows[n]
		r.task = taskArgs(t)
		// c: event type, event data, event time, topic, payload, traceparent.
		if c[0] != "" {
			r.event = []any{t.TenantID, t.ID, t.TaskType, t.EntityType, string(t.Status), t.RequestedBy, c[0], c[1], c[2]}
		}
		if c[3] != "" {
			r.msg = []any{t.TenantID, t.ID, c[3], c[4], c[5]}
		}
		k := it.Idem
		if k == nil {
			continue
		}
		tenant := cmp.Or(k.TenantID, t.TenantID)
		if first, ok := keys[[2]string{tenant, k.Key}]; ok {
			return nil, commonops.Errorf(commonops.EINVALID, "items %d and %d of the batch have the same idempotency key", first, n)
		}
		keys[[2]string{tenant, k.Key}] = n
		kTenant, kKey, kHash, kTask = append(kTenant, tenant), append(kKey, k.Key), append(kHash, k.RequestHash), append(kTask, t.ID)
		kStatus, kAt = append(kStatus, k.StatusCode), append(kAt, dbTime(cmp.Or(k.CreatedAt, t.CreatedAt)))
		kResponse = append(kResponse, jsonArg(k.Response, "null").(string))
	}

	var inserted map[string]bool // the keyed items' tasks whose key was free
	var created, written int
	err := retry(ctx, func() error {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			inserted, created, written = nil, 0, 0
			if len(kKey) > 0 {
				ids, err := tx.Query(ctx, takeKeysSQL, kTenant, kKey, kHash, kTask, kStatus, kResponse, kAt)
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
					return err
				}
			}
			created, written = len(tasks), len(msgs)
			return nil
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
