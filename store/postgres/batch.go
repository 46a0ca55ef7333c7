package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// batchExtra are the columns a batch item carries beside its task's: its
// change (see changeCTEs) and its idempotency key (see createSQL).
var batchExtra = []column{
	{"ev_type", "text"}, {"ev_data", "json"}, {"ev_at", "timestamptz"},
	{"topic", "text"}, {"payload", "json"}, {"tp", "text"},
	{"k_tenant", "text"}, {"k_key", "text"}, {"k_hash", "text"},
	{"k_status", "integer"}, {"k_response", "json"}, {"k_at", "timestamptz"},
	{"ord", "integer"},
}

// createBatchSQL is createSQL for many tasks in one statement: each
// parameter is the array of one column over the batch, unnested into the
// rows i. The keys are inserted first, then the tasks whose key was free
// (or that have none), then the events and outbox rows of the tasks
// inserted, in batch order. It returns the ids of the tasks inserted and
// the count of outbox rows.
var createBatchSQL = func() string {
	cols := append(append([]column{}, taskColumnList...), batchExtra...)
	arrays := make([]string, len(cols))
	names := make([]string, len(cols))
	for i, c := range cols {
		arrays[i] = fmt.Sprintf("$%d::%s[]", i+1, c.typ)
		names[i] = c.name
	}
	return fmt.Sprintf(`WITH i AS (
	SELECT * FROM unnest(%s) AS i (%s)
),
k AS (
	INSERT INTO idempotency_keys (tenant_id, key, request_hash, task_id, status_code, response, created_at)
	SELECT k_tenant, k_key, k_hash, id, k_status, k_response, k_at FROM i WHERE k_key IS NOT NULL
	ON CONFLICT DO NOTHING
	RETURNING task_id
),
t AS (
	INSERT INTO tasks (%[3]s)
	SELECT %[3]s FROM i WHERE k_key IS NULL OR id IN (SELECT task_id FROM k)
	ORDER BY ord
	RETURNING id
),
e AS (
	INSERT INTO task_events (tenant_id, task_id, task_type, entity_type, status, requested_by, event_type, event_data, created_at)
	SELECT tenant_id, id, task_type, entity_type, status, requested_by, ev_type, ev_data, ev_at
	FROM i WHERE ev_type <> '' AND id IN (SELECT id FROM t)
	ORDER BY ord
),
o AS (
	INSERT INTO outbox (tenant_id, task_id, topic, payload, traceparent)
	SELECT tenant_id, id, topic, payload, tp
	FROM i WHERE topic <> '' AND id IN (SELECT id FROM t)
	ORDER BY ord
	RETURNING 1
)
SELECT ARRAY(SELECT id FROM t), (SELECT count(*) FROM o)`, strings.Join(arrays, ", "), strings.Join(names, ", "), taskColumns)
}()

// CreateTasks inserts a batch of tasks with their events, outbox rows and
// idempotency keys in one statement (one round trip, one commit), then
// reads the stored records of the keys that were taken.
func (s *Store) CreateTasks(ctx context.Context, batch []store.NewTask) ([]*store.Idempotency, error) {
	priors := make([]*store.Idempotency, len(batch))
	if len(batch) == 0 {
		return priors, nil
	}
	if !slices.ContainsFunc(batch, func(it store.NewTask) bool { return it.Idem != nil }) {
		return priors, s.copyTasks(ctx, batch)
	}
	keys := make(map[[2]string]int, len(batch))
	cols := make([][]any, nTaskCols+len(batchExtra))
	for c := range cols {
		cols[c] = make([]any, len(batch))
	}
	for n, it := range batch {
		t := it.Task
		normalize(t)
		args := taskArgs(t)
		cargs, err := s.changeArgs(ctx, t, it.Change)
		if err != nil {
			return nil, err
		}
		args = append(args, cargs...)
		if k := it.Idem; k != nil {
			tenant := cmp.Or(k.TenantID, t.TenantID)
			if first, ok := keys[[2]string{tenant, k.Key}]; ok {
				return nil, commonops.Errorf(commonops.EINVALID, "items %d and %d of the batch have the same idempotency key", first, n)
			}
			keys[[2]string{tenant, k.Key}] = n
			created := cmp.Or(k.CreatedAt, t.CreatedAt)
			args = append(args, tenant, k.Key, k.RequestHash, k.StatusCode, jsonArg(k.Response, "null"), dbTime(created))
		} else {
			args = append(args, nil, nil, nil, nil, nil, nil)
		}
		args = append(args, n)
		for c, v := range args {
			cols[c][n] = v
		}
	}
	args := make([]any, len(cols))
	for c := range cols {
		args[c] = cols[c]
	}
	var inserted []string
	var written int
	err := retry(ctx, func() error {
		err := s.pool.QueryRow(ctx, createBatchSQL, args...).Scan(&inserted, &written)
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
	} else if len(inserted) > 0 {
		s.commits.Signal()
	}
	if len(inserted) == len(batch) {
		return priors, nil
	}
	done := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		done[id] = true
	}
	var redo []int
	for n, it := range batch {
		if done[it.Task.ID] {
			continue
		}
		if it.Idem == nil {
			return nil, fmt.Errorf("create %d tasks: task %s was not inserted", len(batch), it.Task.ID)
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

// Column names of the COPYs of copyTasks.
var (
	copyTaskColumns   = columnNames(taskColumnList)
	copyEventColumns  = []string{"tenant_id", "task_id", "task_type", "entity_type", "status", "requested_by", "event_type", "event_data", "created_at"}
	copyOutboxColumns = []string{"tenant_id", "task_id", "topic", "payload", "traceparent"}
)

// copyTasks creates a batch without idempotency keys, so that every task is
// written or none: it COPYs the tasks, then their events, then their outbox
// rows (in batch order, which is the order the relay publishes them), in
// one transaction. COPY writes a page of rows at a time, where the
// statement of createBatchSQL writes each row on its own; the keys' batch
// needs that statement to insert only the tasks whose key was free.
func (s *Store) copyTasks(ctx context.Context, batch []store.NewTask) error {
	tasks := make([][]any, len(batch))
	events := make([][]any, 0, len(batch))
	msgs := make([][]any, 0, len(batch))
	for n, it := range batch {
		t := it.Task
		normalize(t)
		tasks[n] = taskArgs(t)
		c, err := s.changeArgs(ctx, t, it.Change)
		if err != nil {
			return err
		}
		// c: event type, event data, event time, topic, payload, traceparent.
		if c[0] != "" {
			events = append(events, []any{t.TenantID, t.ID, t.TaskType, t.EntityType, string(t.Status), t.RequestedBy, c[0], c[1], c[2]})
		}
		if c[3] != "" {
			msgs = append(msgs, []any{t.TenantID, t.ID, c[3], c[4], c[5]})
		}
	}
	err := retry(ctx, func() error {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"tasks"}, copyTaskColumns, pgx.CopyFromRows(tasks)); err != nil {
				return err
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"task_events"}, copyEventColumns, pgx.CopyFromRows(events)); err != nil {
				return err
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, copyOutboxColumns, pgx.CopyFromRows(msgs))
			return err
		})
		if isCode(err, codeUniqueViolation) {
			return &commonops.Error{Code: commonops.ECONFLICT, Message: "a task of the batch already exists", Err: err}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create %d tasks: %w", len(batch), err)
	}
	if len(msgs) > 0 {
		s.outboxWritten()
	} else {
		s.commits.Signal()
	}
	return nil
}
