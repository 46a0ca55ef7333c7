package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
	return []any{sc.ID, sc.TenantID, sc.Cron, sc.TimeZone, string(tpl), string(sc.Overlap), string(sc.MissedRuns), sc.Paused,
		optTime(sc.NextRunAt), optTime(sc.LastRunAt), sc.LastTaskID, sc.CreatedBy, dbTime(sc.CreatedAt), dbTime(sc.UpdatedAt), sc.Version}, nil
}

func scanSchedule(r pgx.Row) (*commonops.Schedule, error) {
	var sc commonops.Schedule
	var tpl []byte
	var overlap, missed string
	if err := r.Scan(&sc.ID, &sc.TenantID, &sc.Cron, &sc.TimeZone, &tpl, &overlap, &missed, &sc.Paused,
		&sc.NextRunAt, &sc.LastRunAt, &sc.LastTaskID, &sc.CreatedBy, &sc.CreatedAt, &sc.UpdatedAt, &sc.Version); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(tpl, &sc.Template); err != nil {
		return nil, fmt.Errorf("decode template of schedule %s: %w", sc.ID, err)
	}
	sc.Overlap, sc.MissedRuns = commonops.Overlap(overlap), commonops.MissedRuns(missed)
	sc.CreatedAt, sc.UpdatedAt = sc.CreatedAt.UTC(), sc.UpdatedAt.UTC()
	for _, p := range []**time.Time{&sc.NextRunAt, &sc.LastRunAt} {
		if *p != nil {
			v := (**p).UTC()
			*p = &v
		}
	}
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
	_, err = s.pool.Exec(ctx, `INSERT INTO schedules (`+scheduleColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`, args...)
	if isCode(err, codeUniqueViolation) {
		return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("schedule %s already exists", sc.ID), Err: err}
	}
	if err != nil {
		return interpretError(fmt.Errorf("create schedule %s: %w", sc.ID, err))
	}
	return nil
}

// GetSchedule returns tenant's schedule id, or ENOTFOUND.
func (s *Store) GetSchedule(ctx context.Context, tenant, id string) (*commonops.Schedule, error) {
	sc, err := scanSchedule(s.pool.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE tenant_id = $1 AND id = $2`, tenant, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, scheduleNotFound(id)
	}
	if err != nil {
		return nil, interpretError(fmt.Errorf("get schedule %s: %w", id, err))
	}
	return sc, nil
}

// ListSchedules returns a page of tenant's schedules in id order.
func (s *Store) ListSchedules(ctx context.Context, tenant, afterID string, limit int) ([]*commonops.Schedule, error) {
	return s.schedules(ctx, "list schedules", `SELECT `+scheduleColumns+` FROM schedules
		WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3`, tenant, afterID, limit)
}

// DueSchedules returns the unpaused schedules due by now, earliest first.
func (s *Store) DueSchedules(ctx context.Context, now time.Time, limit int) ([]*commonops.Schedule, error) {
	return s.schedules(ctx, "due schedules", `SELECT `+scheduleColumns+` FROM schedules
		WHERE NOT paused AND next_run_at <= $1 ORDER BY next_run_at, id LIMIT $2`, dbTime(now), limit)
}

func (s *Store) schedules(ctx context.Context, what, query string, args ...any) ([]*commonops.Schedule, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, interpretError(fmt.Errorf("%s: %w", what, err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*commonops.Schedule, error) { return scanSchedule(r) })
	if err != nil {
		return nil, interpretError(fmt.Errorf("%s: %w", what, err))
	}
	return list, nil
}

// UpdateSchedule applies fn to tenant's schedule id and saves it, guarded
// by its version.
func (s *Store) UpdateSchedule(ctx context.Context, tenant, id string, fn func(*commonops.Schedule) error) (*commonops.Schedule, error) {
	var saved *commonops.Schedule
	err := retry(ctx, func() error {
		cur, err := s.GetSchedule(ctx, tenant, id)
		if err != nil {
			return err
		}
		next := cur.Clone()
		if err := fn(next); err != nil {
			return err
		}
		next.ID, next.TenantID, next.Version = cur.ID, cur.TenantID, cur.Version+1
		args, err := scheduleArgs(next)
		if err != nil {
			return err
		}
		tag, err := s.pool.Exec(ctx, `UPDATE schedules SET cron = $3, time_zone = $4, template = $5, overlap = $6,
			missed_runs = $7, paused = $8, next_run_at = $9, last_run_at = $10, last_task_id = $11, created_by = $12,
			created_at = $13, updated_at = $14, version = $15
			WHERE id = $1 AND tenant_id = $2 AND version = $16`, append(args, cur.Version)...)
		if err != nil {
			return fmt.Errorf("update schedule %s: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return errRetry
		}
		saved, err = s.GetSchedule(ctx, tenant, id)
		return err
	})
	if err != nil {
		return nil, interpretError(err)
	}
	return saved, nil
}

// DeleteSchedule deletes tenant's schedule id.
func (s *Store) DeleteSchedule(ctx context.Context, tenant, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM schedules WHERE tenant_id = $1 AND id = $2`, tenant, id)
	if err != nil {
		return interpretError(fmt.Errorf("delete schedule %s: %w", id, err))
	}
	if tag.RowsAffected() == 0 {
		return scheduleNotFound(id)
	}
	return nil
}

// advanceSQL moves a schedule past the tick $3 when it is still its next
// one; $4 the next tick, $5 the time, $6 the task created (NULL: none).
const advanceSQL = `UPDATE schedules SET next_run_at = $4::timestamptz, last_run_at = $3::timestamptz,
		last_task_id = COALESCE($6::text, last_task_id), updated_at = $5::timestamptz, version = version + 1
	WHERE tenant_id = $1::text AND id = $2::text AND NOT paused AND next_run_at = $3::timestamptz`

// fireSQL advances the schedule ($N+8...: advanceSQL's parameters) and,
// only if it did, inserts the task ($1...$N) with its change's rows: one
// statement, so a concurrent firer's UPDATE waits on the row lock, then
// finds next_run_at moved and inserts nothing.
var fireSQL = func() string {
	k := nTaskCols + nChangeArgs
	adv := advanceSQL
	for i := 6; i >= 1; i-- {
		adv = replaceParam(adv, i, k+i)
	}
	return `WITH s AS (` + adv + ` RETURNING 1
),
t AS (
	INSERT INTO tasks (` + taskColumns + `)
	SELECT ` + placeholders(taskColumnList, 1) + `
	WHERE EXISTS (SELECT 1 FROM s)
	RETURNING ` + srcColumns + `
)` + changeCTEs("t", nTaskCols+1) + `SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM o)`
}()

// replaceParam renames parameter $from to $to in q, whose parameters all
// carry a cast ($n::type).
func replaceParam(q string, from, to int) string {
	return strings.ReplaceAll(q, fmt.Sprintf("$%d::", from), fmt.Sprintf("$%d::", to))
}

// FireSchedule fires f's tick: the schedule moves on and f.Task is created
// in one statement, only if the tick is still the schedule's next.
func (s *Store) FireSchedule(ctx context.Context, f store.ScheduleFire) (bool, error) {
	adv := []any{f.TenantID, f.ID, dbTime(f.Tick), dbTime(f.Next), dbTime(f.Now), nil}
	if f.Task == nil {
		tag, err := s.pool.Exec(ctx, advanceSQL, adv...)
		if err != nil {
			return false, interpretError(fmt.Errorf("fire schedule %s: %w", f.ID, err))
		}
		return tag.RowsAffected() == 1, nil
	}
	normalize(f.Task)
	adv[5] = f.Task.ID
	args := taskArgs(f.Task)
	cargs, err := s.changeArgs(ctx, f.Task, f.Change)
	if err != nil {
		return false, err
	}
	args = append(append(args, cargs...), adv...)
	var fired, written int
	err = retry(ctx, func() error {
		return s.pool.QueryRow(ctx, fireSQL, args...).Scan(&fired, &written)
	})
	if err != nil {
		return false, interpretError(fmt.Errorf("fire schedule %s: %w", f.ID, err))
	}
	if fired == 1 {
		s.committed(f.Change, written)
	}
	return fired == 1, nil
}
