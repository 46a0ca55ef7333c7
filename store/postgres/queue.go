package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops/store"
)

// The queue statistics read five partial indexes, so their cost follows
// the work in flight and the last window's completions, not the history:
// tasks_fair_claim_idx and tasks_retry_claim_idx (pending, input ready,
// without or with an available_at), tasks_pending_upload_idx (pending,
// awaiting the upload), tasks_running_idx (processing) and
// tasks_completed_idx (ended). Each part of queueNowSQL states one index's
// predicate as written in its migration. $1 is the tenant, ” for every
// tenant.
const (
	queueNowSQL = `SELECT task_type, sum(pending)::bigint, sum(running)::bigint, min(oldest) FROM (
	SELECT task_type, count(*) AS pending, 0 AS running,
		min(updated_at) FILTER (WHERE NOT cancel_requested) AS oldest
	FROM tasks WHERE ` + freshWhere + ` AND ($1 = '' OR tenant_id = $1)
	GROUP BY task_type
	UNION ALL
	SELECT task_type, count(*), 0,
		min(greatest(updated_at, available_at)) FILTER (WHERE NOT cancel_requested AND available_at <= $2)
	FROM tasks WHERE ` + retryWhere + ` AND ($1 = '' OR tenant_id = $1)
	GROUP BY task_type
	UNION ALL
	SELECT task_type, count(*), 0, NULL
	FROM tasks WHERE status = 'pending' AND upload_status IN ('awaiting', 'expired') AND ($1 = '' OR tenant_id = $1)
	GROUP BY task_type
	UNION ALL
	SELECT task_type, 0, count(*), NULL
	FROM tasks WHERE status = 'processing' AND ($1 = '' OR tenant_id = $1)
	GROUP BY task_type
) AS q
GROUP BY task_type`
	queueHistorySQL = `SELECT task_type, status,
	floor(extract(epoch FROM completed_at - $2::timestamptz) * 1000000 / $4)::int, count(*)
FROM tasks WHERE status IN ('completed', 'failed') AND completed_at >= $2 AND completed_at < $3
	AND ($1 = '' OR tenant_id = $1)
GROUP BY 1, 2, 3`
	queueLeasesSQL = `SELECT id, task_type, entity_type, lease_owner, attempt, lease_expires_at
FROM tasks WHERE status = 'processing' AND lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL
	AND ($1 = '' OR tenant_id = $1)
ORDER BY lease_expires_at, id LIMIT $2`
)

// QueueStats measures the queues of q.TenantID (every tenant when empty).
func (s *Store) QueueStats(ctx context.Context, q store.QueueQuery) (store.QueueStats, error) {
	st := store.QueueStats{Queues: []store.Queue{}, Leases: []store.Lease{}}
	buckets := q.Buckets()
	err := s.read(ctx, func(b *pgx.Batch) {
		b.Queue(queueNowSQL, q.TenantID, q.Now)
		if buckets > 0 {
			b.Queue(queueHistorySQL, q.TenantID, q.Since, q.Now, q.Bucket.Microseconds())
		}
		if q.LeaseLimit > 0 {
			b.Queue(queueLeasesSQL, q.TenantID, q.LeaseLimit)
		}
	}, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		var taskType string
		var pending, running int
		var oldest *time.Time
		_, err = pgx.ForEachRow(rows, []any{&taskType, &pending, &running, &oldest}, func() error {
			e := q.Queue(&st.Queues, taskType)
			e.Pending, e.Running = pending, running
			if oldest != nil {
				e.OldestWaiting = oldest.UTC()
			}
			return nil
		})
		if err != nil {
			return err
		}
		if buckets > 0 {
			if rows, err = br.Query(); err != nil {
				return err
			}
			var status string
			var bucket, n int
			_, err = pgx.ForEachRow(rows, []any{&taskType, &status, &bucket, &n}, func() error {
				if bucket < 0 || bucket >= buckets {
					return nil
				}
				e := q.Queue(&st.Queues, taskType)
				if status == "completed" {
					e.Completed[bucket] += n
				} else {
					e.Failed[bucket] += n
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if q.LeaseLimit > 0 {
			if rows, err = br.Query(); err != nil {
				return err
			}
			var l store.Lease
			_, err = pgx.ForEachRow(rows, []any{&l.TaskID, &l.TaskType, &l.EntityType, &l.WorkerID, &l.Attempt, &l.ExpiresAt}, func() error {
				l.ExpiresAt = l.ExpiresAt.UTC()
				st.Leases = append(st.Leases, l)
				return nil
			})
			return err
		}
		return nil
	})
	if err != nil {
		return store.QueueStats{}, fmt.Errorf("queue stats of tenant %q: %w", q.TenantID, err)
	}
	return st, nil
}
