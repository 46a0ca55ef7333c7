package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
)

// appendLogsSQL inserts the lines only if the task exists and, with an
// attempt ($3), is still on that attempt: one round trip, and the task row
// is key-share locked so a concurrent delete cannot slip in between. The
// row is found by id alone and its tenant checked after (as byID).
const appendLogsSQL = `WITH r AS MATERIALIZED (
	SELECT tenant_id, attempt FROM tasks WHERE id = $1 FOR KEY SHARE
),
t AS (SELECT attempt FROM r WHERE tenant_id = $2),
ins AS (
	INSERT INTO task_logs (tenant_id, task_id, attempt, level, message, details, created_at)
	SELECT $2, $1, l.attempt, l.level, l.message, l.details::json, l.created_at
	FROM unnest($4::integer[], $5::text[], $6::text[], $7::text[], $8::timestamptz[]) AS l(attempt, level, message, details, created_at)
	WHERE EXISTS (SELECT 1 FROM t WHERE $3::integer IS NULL OR t.attempt = $3::integer)
	RETURNING 1
)
SELECT (SELECT attempt FROM t)`

// AppendLogs adds log lines to a task in one statement. With attempt set,
// lines from a stale attempt are refused with ECONFLICT (carrying the task).
func (s *Store) AppendLogs(ctx context.Context, tenant, taskID string, attempt *int, logs []commonops.LogEntry) error {
	n := len(logs)
	attempts, levels, messages := make([]int, n), make([]string, n), make([]string, n)
	details, times := make([]*string, n), make([]time.Time, n)
	now := dbTime(time.Now())
	for i, l := range logs {
		attempts[i] = l.Attempt
		if attempt != nil {
			attempts[i] = *attempt
		}
		levels[i], messages[i] = string(l.Level), l.Message
		if d, ok := jsonArg(l.Details, "").(string); ok {
			details[i] = &d
		}
		times[i] = now
		if !l.CreatedAt.IsZero() {
			times[i] = dbTime(l.CreatedAt)
		}
	}
	var current *int
	err := s.pool.QueryRow(ctx, appendLogsSQL, taskID, tenant, attempt, attempts, levels, messages, details, times).Scan(&current)
	if err != nil {
		return interpretError(fmt.Errorf("append logs of task %s: %w", taskID, err))
	}
	if current == nil {
		return notFound(taskID)
	}
	if attempt != nil && *attempt != *current {
		cur, _ := s.GetTask(ctx, tenant, taskID)
		return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("stale attempt %d: task %s is on attempt %d", *attempt, taskID, *current), Task: cur}
	}
	return nil
}

// ListLogs returns a page of a task's logs, oldest first, and the total, in
// one round trip.
func (s *Store) ListLogs(ctx context.Context, f commonops.LogFilter) ([]commonops.LogEntry, int, error) {
	page, size := pageBounds(f.Page, f.PageSize)
	var w where
	w.add("task_id = ?", f.TaskID)
	w.add("tenant_id = ?", f.TenantID)
	if f.Level != "" {
		w.add("level = ?", string(f.Level))
	}
	cond := w.String()
	var total int
	var logs []commonops.LogEntry
	err := s.read(ctx, func(b *pgx.Batch) {
		b.Queue(taskExistsSQL, f.TaskID, f.TenantID)
		b.Queue("SELECT count(*) FROM task_logs WHERE "+cond, w.args...)
		b.Queue(fmt.Sprintf(`SELECT id, tenant_id, task_id, attempt, level, message, details, created_at
		FROM task_logs WHERE %s ORDER BY id LIMIT %d OFFSET %d`, cond, size, (page-1)*size), w.args...)
	}, func(br pgx.BatchResults) error {
		var exists bool
		if err := br.QueryRow().Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return notFound(f.TaskID)
		}
		if err := br.QueryRow().Scan(&total); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		logs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (commonops.LogEntry, error) {
			var l commonops.LogEntry
			var level string
			var details []byte
			err := r.Scan(&l.ID, &l.TenantID, &l.TaskID, &l.Attempt, &level, &l.Message, &details, &l.CreatedAt)
			l.Level, l.Details, l.CreatedAt = commonops.LogLevel(level), rawJSON(details), l.CreatedAt.UTC()
			return l, err
		})
		return err
	})
	if err != nil {
		if commonops.ErrorCode(err) == commonops.ENOTFOUND {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("list logs of task %s: %w", f.TaskID, err)
	}
	if logs == nil {
		logs = []commonops.LogEntry{}
	}
	return logs, total, nil
}

// taskExistsSQL tells ENOTFOUND apart from an empty list.
// The task is found by id alone (as byID).
var taskExistsSQL = fmt.Sprintf(byID, "tenant_id", "") + "SELECT EXISTS (SELECT 1 FROM t WHERE tenant_id = $2)"

// listEventsSQL reads a task's history by task id alone (as byID): with the
// tenant beside it, the planner of an unanalysed table walks the tenant
// index (task_events_tenant_idx) instead of the task's. Task ids are unique
// across tenants, and taskExistsSQL has checked the tenant; the outer
// filter keeps the read to it all the same.
const listEventsSQL = `WITH e AS MATERIALIZED (
	SELECT ` + eventColumns + ` FROM task_events WHERE task_id = $1 AND id > $3 ORDER BY id LIMIT $4
)
SELECT * FROM e WHERE tenant_id = $2 ORDER BY id`

// ListEvents returns a task's events with id > afterID, oldest first (a
// limit of 0 or less means commonops.PageSizeMax), or ENOTFOUND.
func (s *Store) ListEvents(ctx context.Context, tenant, taskID string, afterID int64, limit int) ([]commonops.Event, error) {
	if limit <= 0 {
		limit = commonops.PageSizeMax
	}
	var events []commonops.Event
	err := s.read(ctx, func(b *pgx.Batch) {
		b.Queue(taskExistsSQL, taskID, tenant)
		b.Queue(listEventsSQL, taskID, tenant, afterID, limit)
	}, func(br pgx.BatchResults) error {
		var exists bool
		if err := br.QueryRow().Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return notFound(taskID)
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		events, err = pgx.CollectRows(rows, scanEvent)
		return err
	})
	if err != nil {
		if commonops.ErrorCode(err) == commonops.ENOTFOUND {
			return nil, err
		}
		return nil, fmt.Errorf("list events of task %s: %w", taskID, err)
	}
	if events == nil {
		events = []commonops.Event{}
	}
	return events, nil
}
