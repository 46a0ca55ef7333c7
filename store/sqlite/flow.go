package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// ListFlowControls returns every flow control, by task type then tenant.
func (s *Store) ListFlowControls(ctx context.Context) ([]commonops.FlowControl, error) {
	var fcs []commonops.FlowControl
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		fcs, err = listFlowControls(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list flow controls: %w", err)
	}
	return fcs, nil
}

func listFlowControls(ctx context.Context, q querier) ([]commonops.FlowControl, error) {
	rows, err := q.QueryContext(ctx, `SELECT tenant_id, task_type, COALESCE(max_running, 0), paused, updated_at
		FROM flow_controls ORDER BY task_type, tenant_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	fcs := []commonops.FlowControl{}
	for rows.Next() {
		var fc commonops.FlowControl
		var updated int64
		if err := rows.Scan(&fc.TenantID, &fc.TaskType, &fc.Limit, &fc.Paused, &updated); err != nil {
			return nil, err
		}
		fc.UpdatedAt = fromMicros(updated)
		fcs = append(fcs, fc)
	}
	return fcs, rows.Err()
}

// UpdateFlowControl changes one flow control in a write transaction, so a
// limit changes between two claims, never during one.
func (s *Store) UpdateFlowControl(ctx context.Context, tenant, taskType string, now time.Time, fn func(*commonops.FlowControl) error) (commonops.FlowControl, error) {
	var out commonops.FlowControl
	var fnErr error
	err := s.write(ctx, func(tx *sql.Tx) error {
		fc := commonops.FlowControl{TenantID: tenant, TaskType: taskType}
		var updated int64
		err := tx.QueryRowContext(ctx, `SELECT COALESCE(max_running, 0), paused, updated_at FROM flow_controls
			WHERE task_type = ? AND tenant_id = ?`, taskType, tenant).Scan(&fc.Limit, &fc.Paused, &updated)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err == nil {
			fc.UpdatedAt = fromMicros(updated)
		}
		if fnErr = fn(&fc); fnErr != nil {
			return fnErr
		}
		fc.TenantID, fc.TaskType, fc.UpdatedAt = tenant, taskType, truncTime(now)
		if fc.None() {
			_, err = tx.ExecContext(ctx, `DELETE FROM flow_controls WHERE task_type = ? AND tenant_id = ?`, taskType, tenant)
		} else {
			var limit any
			if fc.Limit > 0 {
				limit = fc.Limit
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO flow_controls (tenant_id, task_type, max_running, paused, updated_at)
				VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (task_type, tenant_id) DO UPDATE
				SET max_running = excluded.max_running, paused = excluded.paused, updated_at = excluded.updated_at`,
				tenant, taskType, limit, boolInt(fc.Paused), micros(fc.UpdatedAt))
		}
		out = fc
		return err
	})
	if fnErr != nil {
		return commonops.FlowControl{}, fnErr
	}
	if err != nil {
		return commonops.FlowControl{}, fmt.Errorf("update flow control %s/%s: %w", tenant, taskType, err)
	}
	return out, nil
}

// flow is what a claim reads of the flow: the controls and the running
// tasks by tenant and task type.
type flow struct {
	controls []commonops.FlowControl
	running  map[[2]string]int
}

func loadFlow(ctx context.Context, q querier) (*flow, error) {
	fcs, err := listFlowControls(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read flow controls: %w", err)
	}
	rows, err := q.QueryContext(ctx, `SELECT tenant_id, task_type, count(*) FROM tasks WHERE status = 'processing' GROUP BY tenant_id, task_type`)
	if err != nil {
		return nil, fmt.Errorf("count running tasks: %w", err)
	}
	defer rows.Close()
	f := &flow{controls: fcs, running: map[[2]string]int{}}
	for rows.Next() {
		var tenant, taskType string
		var n int
		if err := rows.Scan(&tenant, &taskType, &n); err != nil {
			return nil, err
		}
		f.running[[2]string{tenant, taskType}] = n
	}
	return f, rows.Err()
}

// runningOf counts the running tasks of tenant ("" for every tenant) and
// taskType ("" for every type).
func (f *flow) runningOf(tenant, taskType string) int {
	n := 0
	for k, c := range f.running {
		if (tenant == "" || k[0] == tenant) && (taskType == "" || k[1] == taskType) {
			n += c
		}
	}
	return n
}

// ClaimNext claims up to p.Limit runnable tasks by the tenants' shares
// within the flow controls, in one write transaction (see store.Store): it
// walks the (tenant, task type) pairs with ready pending tasks by loose
// index scans of tasks_fair_claim and tasks_retry_claim, takes each open
// pair's first runnable tasks, ranks them by share and claims them in that
// order.
func (s *Store) ClaimNext(ctx context.Context, p store.ClaimParams) ([]*commonops.Task, error) {
	now := p.Now
	if now.IsZero() {
		now = s.now()
	}
	now = truncTime(now)
	limit := max(p.Limit, 1)
	freshSQL, retrySQL, kargs := claimCandidatesSQL(p.Kinds)
	order := func(a, b *commonops.Task) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	}
	var claimed []*commonops.Task
	var wroteOutbox bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		claimed, wroteOutbox = nil, false
		f, err := loadFlow(ctx, tx)
		if err != nil {
			return err
		}
		pairs, err := pendingPairs(ctx, tx)
		if err != nil {
			return err
		}
		var cands []*commonops.Task
		for _, pr := range pairs {
			if !kindTypeMatches(p.Kinds, pr[1]) {
				continue
			}
			room, paused := commonops.FlowRoom(f.controls, pr[0], pr[1], f.runningOf)
			if paused || room == 0 {
				continue
			}
			n := limit
			if room > 0 {
				n = min(n, room)
			}
			var pair []*commonops.Task
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{freshSQL, []any{pr[0], pr[1]}},
				{retrySQL, []any{pr[0], pr[1], micros(now)}},
			} {
				rows, err := tx.QueryContext(ctx, q.sql, append(append(q.args, kargs...), n)...)
				if err != nil {
					return err
				}
				ts, err := scanTasks(rows)
				if err != nil {
					return err
				}
				pair = append(pair, ts...)
			}
			slices.SortFunc(pair, order)
			cands = append(cands, pair[:min(len(pair), n)]...)
		}
		slices.SortFunc(cands, order)
		share := make(map[string]float64, len(cands))
		rank := map[string]int{}
		for _, t := range cands {
			rank[t.TenantID]++
			share[t.ID] = (float64(f.runningOf(t.TenantID, "")+rank[t.TenantID]) + p.Usage[t.TenantID]) / float64(max(p.Weights[t.TenantID], 1))
		}
		slices.SortStableFunc(cands, func(a, b *commonops.Task) int { return cmp.Compare(share[a.ID], share[b.ID]) })
		taken := map[string]int{}
		for _, t := range cands {
			if len(claimed) == limit {
				break
			}
			if room, _ := commonops.FlowRoom(f.controls, "", t.TaskType, f.runningOf); room >= 0 && taken[t.TaskType] >= room {
				continue
			}
			old := t.Version
			ch, err := t.Claim(p.WorkerID, p.Lease, now)
			if err != nil {
				continue // not runnable after all (the SQL filter and Runnable agree; this is a guard)
			}
			normalize(t)
			ok, err := saveTask(ctx, tx, t, old)
			if err != nil {
				return fmt.Errorf("save task %s: %w", t.ID, err)
			}
			if !ok {
				continue
			}
			w, err := s.recordChange(ctx, tx, t, ch)
			if err != nil {
				return err
			}
			wroteOutbox = wroteOutbox || w
			taken[t.TaskType]++
			claimed = append(claimed, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim tasks: %w", err)
	}
	if wroteOutbox {
		s.notify()
	}
	if len(claimed) > 0 {
		s.commits.Signal()
	}
	if claimed == nil {
		claimed = []*commonops.Task{}
	}
	return claimed, nil
}

// claimCandidatesSQL selects one (tenant, task type) pair's first runnable
// tasks of kinds: fresh, those not backing off, in claim order from
// tasks_fair_claim; retry, those whose backoff is over, by its end from
// tasks_retry_claim (so a claim never reads a task still backing off).
// The arguments of fresh are the tenant, the task type, kargs and the
// limit; retry takes the time after the task type.
func claimCandidatesSQL(kinds []commonops.Kind) (fresh, retry string, kargs []any) {
	filter, kargs := kindFilter(kinds)
	query := func(where []string, order string) string {
		where = append([]string{"tenant_id = ?", "task_type = ?"}, where...)
		if filter != "" {
			where = append(where, filter)
		}
		return "SELECT " + taskColumns + " FROM tasks WHERE " + strings.Join(where, " AND ") + " ORDER BY " + order + " LIMIT ?"
	}
	return query([]string{freshWhere, "cancel_requested = 0"}, "priority DESC, created_at ASC, id ASC"),
		query([]string{"available_at <= ?", retryWhere, "cancel_requested = 0"}, "available_at ASC, priority DESC, created_at ASC, id ASC"), kargs
}

// readyWhere holds the pending tasks whose input is ready. freshWhere (no
// backoff) is the predicate of tasks_fair_claim and retryWhere (a backoff,
// over or not) that of tasks_retry_claim (migration 0015); their readers
// state them as written here, so that SQLite can use the partial indexes.
const (
	readyWhere = "status = 'pending' AND upload_status NOT IN ('awaiting', 'expired')"
	freshWhere = readyWhere + " AND available_at IS NULL"
	retryWhere = readyWhere + " AND available_at IS NOT NULL"
)

// pairsFirstSQL and pairsNextSQL are a loose index scan's first and next
// seeks, over the pending tasks that where holds.
func pairsFirstSQL(where string) string {
	return `SELECT tenant_id, task_type FROM tasks WHERE ` + where + ` ORDER BY tenant_id, task_type LIMIT 1`
}

func pairsNextSQL(where string) string {
	return `SELECT tenant_id, task_type FROM tasks WHERE ` + where + `
	AND (tenant_id, task_type) > (?, ?) ORDER BY tenant_id, task_type LIMIT 1`
}

// pendingPairs lists the (tenant, task type) pairs with ready pending tasks,
// in order, one index seek each (loose index scans of tasks_fair_claim and
// tasks_retry_claim).
func pendingPairs(ctx context.Context, q querier) ([][2]string, error) {
	var pairs [][2]string
	for _, where := range []string{freshWhere, retryWhere} {
		first, next := pairsFirstSQL(where), pairsNextSQL(where)
		var tenant, taskType string
		err := q.QueryRowContext(ctx, first).Scan(&tenant, &taskType)
		for err == nil {
			pairs = append(pairs, [2]string{tenant, taskType})
			err = q.QueryRowContext(ctx, next, tenant, taskType).Scan(&tenant, &taskType)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("list pending task types: %w", err)
		}
	}
	slices.SortFunc(pairs, func(a, b [2]string) int { return slices.Compare(a[:], b[:]) })
	return slices.Compact(pairs), nil
}

// kindTypeMatches reports whether a claim of kinds may take a task of
// taskType (any when kinds is empty).
func kindTypeMatches(kinds []commonops.Kind, taskType string) bool {
	if len(kinds) == 0 {
		return true
	}
	for _, k := range kinds {
		if k.TaskType == "*" || k.TaskType == taskType {
			return true
		}
	}
	return false
}
