package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/commonops/commonops/store"
)

// The queue statistics. queueNowSQL scans tasks (SQLite plans no partial
// index for its status IN list; the embedded store serves one process);
// the history and the leases are meant for tasks_terminal_completed and
// tasks_lease_expiry. Times are microseconds; ?1 is the tenant, ” for
// every tenant.
const (
	queueNowSQL = `SELECT task_type,
	sum(status = 'pending'), sum(status = 'processing'),
	min(CASE WHEN status = 'pending' AND NOT cancel_requested AND upload_status NOT IN ('awaiting', 'expired')
		AND (available_at IS NULL OR available_at <= ?2)
		THEN max(updated_at, coalesce(available_at, updated_at)) END)
FROM tasks WHERE status IN ('pending', 'processing') AND (?1 = '' OR tenant_id = ?1)
GROUP BY task_type`
	queueHistorySQL = `SELECT task_type, status, (completed_at - ?2) / ?4, count(*)
FROM tasks WHERE status IN ('completed', 'failed') AND completed_at >= ?2 AND completed_at < ?3
	AND (?1 = '' OR tenant_id = ?1)
GROUP BY 1, 2, 3`
	queueLeasesSQL = `SELECT id, task_type, entity_type, lease_owner, attempt, lease_expires_at
FROM tasks WHERE status = 'processing' AND lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL
	AND (?1 = '' OR tenant_id = ?1)
ORDER BY lease_expires_at, id LIMIT ?2`
)

// QueueStats measures the queues of q.TenantID (every tenant when empty).
func (s *Store) QueueStats(ctx context.Context, q store.QueueQuery) (store.QueueStats, error) {
	st := store.QueueStats{Queues: []store.Queue{}, Leases: []store.Lease{}}
	buckets := q.Buckets()
	err := s.readBounded(ctx, func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, queueNowSQL, q.TenantID, micros(q.Now))
		if err != nil {
			return err
		}
		for rows.Next() {
			var taskType string
			var pending, running int
			var oldest sql.NullInt64
			if err := rows.Scan(&taskType, &pending, &running, &oldest); err != nil {
				rows.Close()
				return err
			}
			e := q.Queue(&st.Queues, taskType)
			e.Pending, e.Running = pending, running
			if oldest.Valid {
				e.OldestWaiting = fromMicros(oldest.Int64)
			}
		}
		if err := closeRows(rows); err != nil {
			return err
		}
		if buckets > 0 {
			rows, err := tx.QueryContext(ctx, queueHistorySQL, q.TenantID, micros(q.Since), micros(q.Now), q.Bucket.Microseconds())
			if err != nil {
				return err
			}
			for rows.Next() {
				var taskType, status string
				var bucket, n int
				if err := rows.Scan(&taskType, &status, &bucket, &n); err != nil {
					rows.Close()
					return err
				}
				if bucket < 0 || bucket >= buckets {
					continue
				}
				e := q.Queue(&st.Queues, taskType)
				if status == "completed" {
					e.Completed[bucket] += n
				} else {
					e.Failed[bucket] += n
				}
			}
			if err := closeRows(rows); err != nil {
				return err
			}
		}
		if q.LeaseLimit > 0 {
			rows, err := tx.QueryContext(ctx, queueLeasesSQL, q.TenantID, q.LeaseLimit)
			if err != nil {
				return err
			}
			for rows.Next() {
				var l store.Lease
				var expires int64
				if err := rows.Scan(&l.TaskID, &l.TaskType, &l.EntityType, &l.WorkerID, &l.Attempt, &expires); err != nil {
					rows.Close()
					return err
				}
				l.ExpiresAt = fromMicros(expires)
				st.Leases = append(st.Leases, l)
			}
			return closeRows(rows)
		}
		return nil
	})
	if err != nil {
		return store.QueueStats{}, fmt.Errorf("queue stats of tenant %q: %w", q.TenantID, err)
	}
	return st, nil
}

// closeRows closes rows and returns the error that ended their iteration.
func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}
