package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

const scheduleColumns = `id, tenant_id, cron, time_zone, template, overlap, missed_runs, paused,
	next_run_at, last_run_at, last_task_id, created_by, created_at, updated_at, version`

func scheduleArgs(sc *commonops.Schedule) ([]any, error) {
	tpl, err := json.Marshal(sc.Template)
	if err != nil {
		return nil, fmt.Errorf("encode template of schedule %s: %w", sc.ID, err)
	}
	return []any{sc.ID, sc.TenantID, sc.Cron, sc.TimeZone, string(tpl), string(sc.Overlap), string(sc.MissedRuns), boolInt(sc.Paused),
		optMicros(sc.NextRunAt), optMicros(sc.LastRunAt), nullString(sc.LastTaskID), sc.CreatedBy, micros(sc.CreatedAt), micros(sc.UpdatedAt), sc.Version}, nil
}

func scanSchedule(r rowScanner) (*commonops.Schedule, error) {
	var sc commonops.Schedule
	var tpl, overlap, missed string
	var paused int
	var next, last sql.NullInt64
	var lastTask sql.NullString
	var created, updated int64
	if err := r.Scan(&sc.ID, &sc.TenantID, &sc.Cron, &sc.TimeZone, &tpl, &overlap, &missed, &paused,
		&next, &last, &lastTask, &sc.CreatedBy, &created, &updated, &sc.Version); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(tpl), &sc.Template); err != nil {
		return nil, fmt.Errorf("decode template of schedule %s: %w", sc.ID, err)
	}
	sc.Overlap, sc.MissedRuns, sc.Paused = commonops.Overlap(overlap), commonops.MissedRuns(missed), paused != 0
	sc.NextRunAt, sc.LastRunAt, sc.LastTaskID = optTime(next), optTime(last), strPtr(lastTask)
	sc.CreatedAt, sc.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &sc, nil
}

func scheduleNotFound(id string) error {
	return commonops.Errorf(commonops.ENOTFOUND, "schedule %s not found", id)
}

// CreateSchedule stores sc; a taken id is ECONFLICT.
func (s *Store) CreateSchedule(ctx context.Context, sc *commonops.Schedule) error {
	args, err := scheduleArgs(sc)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO schedules (`+scheduleColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
		return err
	})
	if isUniqueViolation(err) {
		return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("schedule %s already exists", sc.ID), Err: err}
	}
	if err != nil {
		return fmt.Errorf("create schedule %s: %w", sc.ID, err)
	}
	return nil
}

func loadSchedule(ctx context.Context, q querier, tenant, id string) (*commonops.Schedule, error) {
	sc, err := scanSchedule(q.QueryRowContext(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE tenant_id = ? AND id = ?`, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, scheduleNotFound(id)
	}
	return sc, err
}

// GetSchedule returns tenant's schedule id, or ENOTFOUND.
func (s *Store) GetSchedule(ctx context.Context, tenant, id string) (*commonops.Schedule, error) {
	var sc *commonops.Schedule
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		sc, err = loadSchedule(ctx, tx, tenant, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get schedule %s: %w", id, err)
	}
	return sc, nil
}

// ListSchedules returns a page of tenant's schedules in id order.
func (s *Store) ListSchedules(ctx context.Context, tenant, afterID string, limit int) ([]*commonops.Schedule, error) {
	return s.schedules(ctx, "list schedules", `SELECT `+scheduleColumns+` FROM schedules
		WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`, tenant, afterID, limit)
}

// DueSchedules returns the unpaused schedules due by now, earliest first.
func (s *Store) DueSchedules(ctx context.Context, now time.Time, limit int) ([]*commonops.Schedule, error) {
	return s.schedules(ctx, "due schedules", `SELECT `+scheduleColumns+` FROM schedules
		WHERE paused = 0 AND next_run_at <= ? ORDER BY next_run_at, id LIMIT ?`, micros(now), limit)
}

func (s *Store) schedules(ctx context.Context, what, query string, args ...any) ([]*commonops.Schedule, error) {
	var list []*commonops.Schedule
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			sc, err := scanSchedule(rows)
			if err != nil {
				return err
			}
			list = append(list, sc)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return list, nil
}

// UpdateSchedule applies fn to tenant's schedule id and saves it in one
// write transaction, guarded by its version (another process may have
// fired a tick meanwhile: ECONFLICT).
func (s *Store) UpdateSchedule(ctx context.Context, tenant, id string, fn func(*commonops.Schedule) error) (*commonops.Schedule, error) {
	var saved *commonops.Schedule
	err := s.write(ctx, func(tx *sql.Tx) error {
		cur, err := loadSchedule(ctx, tx, tenant, id)
		if err != nil {
			return err
		}
		next := cur.Clone()
		if err := fn(next); err != nil {
			return err
		}
		next.ID, next.TenantID, next.Version = cur.ID, cur.TenantID, cur.Version+1
		next.CreatedAt, next.UpdatedAt = truncTime(next.CreatedAt), truncTime(next.UpdatedAt)
		next.NextRunAt, next.LastRunAt = truncTimePtr(next.NextRunAt), truncTimePtr(next.LastRunAt)
		args, err := scheduleArgs(next)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE schedules SET cron = ?3, time_zone = ?4, template = ?5, overlap = ?6,
			missed_runs = ?7, paused = ?8, next_run_at = ?9, last_run_at = ?10, last_task_id = ?11, created_by = ?12,
			created_at = ?13, updated_at = ?14, version = ?15
			WHERE id = ?1 AND tenant_id = ?2 AND version = ?16`, append(args, cur.Version)...)
		if err != nil {
			return fmt.Errorf("save schedule: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return commonops.Errorf(commonops.ECONFLICT, "schedule %s was changed by another writer", id)
		}
		saved = next
		return nil
	})
	if err != nil {
		var de *commonops.Error
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, fmt.Errorf("update schedule %s: %w", id, err)
	}
	return saved, nil
}

// DeleteSchedule deletes tenant's schedule id.
func (s *Store) DeleteSchedule(ctx context.Context, tenant, id string) error {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM schedules WHERE tenant_id = ? AND id = ?`, tenant, id)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("delete schedule %s: %w", id, err)
	}
	if n == 0 {
		return scheduleNotFound(id)
	}
	return nil
}

// FireSchedule fires f's tick: in one write transaction the schedule moves
// on, only if the tick is still its next, and then f.Task is created with
// its change's rows.
func (s *Store) FireSchedule(ctx context.Context, f store.ScheduleFire) (bool, error) {
	var taskID any
	if f.Task != nil {
		normalize(f.Task)
		taskID = f.Task.ID
	}
	var fired, wroteOutbox bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		fired = false
		res, err := tx.ExecContext(ctx, `UPDATE schedules SET next_run_at = ?4, last_run_at = ?3,
				last_task_id = COALESCE(?6, last_task_id), updated_at = ?5, version = version + 1
			WHERE tenant_id = ?1 AND id = ?2 AND paused = 0 AND next_run_at = ?3`,
			f.TenantID, f.ID, micros(f.Tick), micros(f.Next), micros(f.Now), taskID)
		if err != nil {
			return fmt.Errorf("advance schedule: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		fired = true
		if f.Task == nil {
			return nil
		}
		if err := insertTask(ctx, tx, f.Task); err != nil {
			return fmt.Errorf("insert task: %w", err)
		}
		wroteOutbox, err = s.recordChange(ctx, tx, f.Task, f.Change)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("fire schedule %s: %w", f.ID, err)
	}
	if wroteOutbox {
		s.notify()
	}
	if fired && f.Task != nil && !f.Change.None() {
		s.commits.Signal()
	}
	return fired, nil
}
