package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/commonops/commonops/store"
)

// usageSQL measures a tenant's figures for the quotas in one statement.
// Each count reads at most its bound of index entries: the creations from
// tasks_tenant_created_idx, the unfinished tasks from
// tasks_tenant_status_created_idx (which includes task_type), the bytes
// from the partial tasks_tenant_stored_idx of the tasks with files. A
// figure not asked for (bound 0, bytes false) is not read.
const usageSQL = `SELECT
	(SELECT count(*) FROM (SELECT 1 FROM tasks WHERE tenant_id = $1 AND created_at > $2 LIMIT $3) c),
	CASE WHEN $3 > 0 THEN (SELECT min(created_at) FROM tasks WHERE tenant_id = $1 AND created_at > $2) END,
	(SELECT count(*) FROM (SELECT 1 FROM tasks WHERE tenant_id = $1
		AND status IN ('scheduled', 'pending', 'processing') AND task_type = ANY($4::text[]) LIMIT $5) h),
	CASE WHEN $6 THEN (SELECT coalesce(sum(stored_bytes), 0) FROM tasks WHERE tenant_id = $1 AND stored_bytes > 0) ELSE 0 END`

// TenantUsage measures what tenant holds, for the quotas.
func (s *Store) TenantUsage(ctx context.Context, tenant string, q store.UsageQuery) (store.Usage, error) {
	var u store.Usage
	var first *time.Time
	heavyUpTo := q.HeavyUpTo
	if len(q.HeavyTypes) == 0 {
		heavyUpTo = 0
	}
	types := q.HeavyTypes
	if types == nil {
		types = []string{}
	}
	err := s.pool.QueryRow(ctx, usageSQL, tenant, q.CreatedAfter, max(q.CreatedUpTo, 0), types, max(heavyUpTo, 0), q.StoredBytes).
		Scan(&u.Created, &first, &u.Heavy, &u.StoredBytes)
	if err != nil {
		return store.Usage{}, fmt.Errorf("usage of tenant %s: %w", tenant, interpretError(err))
	}
	if first != nil {
		u.FirstCreated = first.UTC()
	}
	return u, nil
}
