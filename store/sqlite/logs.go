package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/commonops/commonops"
)

// AppendLogs adds log lines to a task of tenant. With attempt set and not
// the task's current attempt, it writes nothing and answers ECONFLICT.
func (s *Store) AppendLogs(ctx context.Context, tenant, taskID string, attempt *int, logs []commonops.LogEntry) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		t, err := loadTask(ctx, tx, tenant, taskID)
		if err != nil {
			return err
		}
		if attempt != nil && *attempt != t.Attempt {
			return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("stale attempt %d: task %s is on attempt %d", *attempt, taskID, t.Attempt), Task: t}
		}
		now := s.now()
		for _, l := range logs {
			at := l.Attempt
			if attempt != nil {
				at = *attempt
			}
			created := l.CreatedAt
			if created.IsZero() {
				created = now
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO task_logs (tenant_id, task_id, attempt, level, message, details, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
				t.TenantID, t.ID, at, string(l.Level), l.Message, nullJSON(l.Details), micros(created)); err != nil {
				return fmt.Errorf("insert log: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append logs of task %s: %w", taskID, err)
	}
	return nil
}

// ListLogs returns a page of a task's logs, oldest first, and the total.
func (s *Store) ListLogs(ctx context.Context, f commonops.LogFilter) ([]commonops.LogEntry, int, error) {
	page, size := pageBounds(f.Page, f.PageSize)
	cond, args := "task_id = ? AND tenant_id = ?", []any{f.TaskID, f.TenantID}
	if f.Level != "" {
		cond, args = cond+" AND level = ?", append(args, string(f.Level))
	}
	logs := []commonops.LogEntry{}
	var total int
	err := s.readBounded(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := loadTask(ctx, tx, f.TenantID, f.TaskID); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM task_logs WHERE "+cond, args...).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, "SELECT id, tenant_id, task_id, attempt, level, message, details, created_at FROM task_logs WHERE "+cond+" ORDER BY id LIMIT ? OFFSET ?",
			append(args, size, (page-1)*size)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				l       commonops.LogEntry
				level   string
				details sql.NullString
				created int64
			)
			if err := rows.Scan(&l.ID, &l.TenantID, &l.TaskID, &l.Attempt, &level, &l.Message, &details, &created); err != nil {
				return err
			}
			l.Level, l.CreatedAt = commonops.LogLevel(level), fromMicros(created)
			if details.Valid {
				l.Details = json.RawMessage(details.String)
			}
			logs = append(logs, l)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list logs of task %s: %w", f.TaskID, err)
	}
	return logs, total, nil
}

// ListEvents returns a task's events with id > afterID, oldest first; a
// limit of 0 or less means commonops.PageSizeMax.
func (s *Store) ListEvents(ctx context.Context, tenant, taskID string, afterID int64, limit int) ([]commonops.Event, error) {
	if limit <= 0 {
		limit = commonops.PageSizeMax
	}
	events := []commonops.Event{}
	err := s.readBounded(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := loadTask(ctx, tx, tenant, taskID); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, "SELECT "+eventColumns+" FROM task_events WHERE task_id = ? AND tenant_id = ? AND id > ? ORDER BY id LIMIT ?",
			taskID, tenant, afterID, limit)
		if err != nil {
			return err
		}
		events, err = appendEvents(events, rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list events of task %s: %w", taskID, err)
	}
	return events, nil
}
