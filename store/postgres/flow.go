package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
)

// flowLock is the advisory lock of a task type's limits, taken for the
// rest of the transaction by every claim of a limited type (and by
// UpdateFlowControl) before the statement that counts its running tasks:
// claims of one limited type, in any replica, then count one after
// another, each statement seeing the claims committed before it (READ
// COMMITTED takes its snapshot when the statement starts, after the lock).
const flowLock = "pg_advisory_xact_lock(hashtextextended('commonops.flow.' || %s, 0))"

// lockLimitedSQL takes the locks of the limited task types a claim of the
// task types $1 (NULL or '*' in it: any) may start, in type order so that
// two claimers never wait for each other in a cycle.
var lockLimitedSQL = `SELECT count(` + fmt.Sprintf(flowLock, "task_type") + `) FROM (
	SELECT DISTINCT task_type FROM flow_controls
	WHERE max_running IS NOT NULL AND ($1::text[] IS NULL OR '*' = ANY($1::text[]) OR task_type = ANY($1::text[]))
	ORDER BY task_type
) AS f`

// lockTaskTypesSQL takes the locks of the types of tasks $1 (ids), in type
// order, as lockLimitedSQL does.
var lockTaskTypesSQL = `SELECT count(` + fmt.Sprintf(flowLock, "task_type") + `) FROM (
	SELECT DISTINCT task_type FROM tasks WHERE id = ANY($1::text[]) ORDER BY task_type
) AS t`

// ListFlowControls returns every flow control, by task type then tenant.
func (s *Store) ListFlowControls(ctx context.Context) ([]commonops.FlowControl, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, task_type, COALESCE(max_running, 0), paused, updated_at
		FROM flow_controls ORDER BY task_type, tenant_id`)
	if err != nil {
		return nil, interpretError(fmt.Errorf("list flow controls: %w", err))
	}
	fcs, err := pgx.CollectRows(rows, scanFlowControl)
	if err != nil {
		return nil, interpretError(fmt.Errorf("list flow controls: %w", err))
	}
	if fcs == nil {
		fcs = []commonops.FlowControl{}
	}
	return fcs, nil
}

func scanFlowControl(r pgx.CollectableRow) (commonops.FlowControl, error) {
	var fc commonops.FlowControl
	err := r.Scan(&fc.TenantID, &fc.TaskType, &fc.Limit, &fc.Paused, &fc.UpdatedAt)
	fc.UpdatedAt = fc.UpdatedAt.UTC()
	return fc, err
}

// UpdateFlowControl changes one flow control under its type's lock, so a
// limit changes between two claims of the type, never during one.
func (s *Store) UpdateFlowControl(ctx context.Context, tenant, taskType string, now time.Time, fn func(*commonops.FlowControl) error) (commonops.FlowControl, error) {
	var out commonops.FlowControl
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT "+fmt.Sprintf(flowLock, "$1::text"), taskType); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT tenant_id, task_type, COALESCE(max_running, 0), paused, updated_at
			FROM flow_controls WHERE task_type = $1 AND tenant_id = $2`, taskType, tenant)
		if err != nil {
			return err
		}
		fc, err := pgx.CollectExactlyOneRow(rows, scanFlowControl)
		if errors.Is(err, pgx.ErrNoRows) {
			fc, err = commonops.FlowControl{TenantID: tenant, TaskType: taskType}, nil
		}
		if err != nil {
			return err
		}
		if err := fn(&fc); err != nil {
			return fnError{err}
		}
		fc.TenantID, fc.TaskType, fc.UpdatedAt = tenant, taskType, dbTime(now)
		if fc.None() {
			_, err = tx.Exec(ctx, `DELETE FROM flow_controls WHERE task_type = $1 AND tenant_id = $2`, taskType, tenant)
		} else {
			var limit any
			if fc.Limit > 0 {
				limit = fc.Limit
			}
			_, err = tx.Exec(ctx, `INSERT INTO flow_controls (tenant_id, task_type, max_running, paused, updated_at)
				VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (task_type, tenant_id) DO UPDATE
				SET max_running = EXCLUDED.max_running, paused = EXCLUDED.paused, updated_at = EXCLUDED.updated_at`,
				tenant, taskType, limit, fc.Paused, fc.UpdatedAt)
		}
		out = fc
		return err
	})
	var fe fnError
	if errors.As(err, &fe) {
		return commonops.FlowControl{}, fe.err
	}
	if err != nil {
		return commonops.FlowControl{}, interpretError(fmt.Errorf("update flow control %s/%s: %w", tenant, taskType, err))
	}
	return out, nil
}
