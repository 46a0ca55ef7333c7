package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/commonops/commonops/store"
)

// usageSQL measures a tenant's figures for the quotas in one statement;
// each count reads at most its bound of index entries, and a figure not
// asked for (bound 0, bytes false) is not read. The heavy task types come
// as a JSON array.
const usageSQL = `SELECT
	(SELECT count(*) FROM (SELECT 1 FROM tasks WHERE tenant_id = ?1 AND created_at > ?2 LIMIT ?3)),
	CASE WHEN ?3 > 0 THEN (SELECT min(created_at) FROM tasks WHERE tenant_id = ?1 AND created_at > ?2) END,
	(SELECT count(*) FROM (SELECT 1 FROM tasks WHERE tenant_id = ?1
		AND status IN ('scheduled', 'pending', 'processing') AND task_type IN (SELECT value FROM json_each(?4)) LIMIT ?5)),
	CASE WHEN ?6 THEN (SELECT coalesce(sum(stored_bytes), 0) FROM tasks WHERE tenant_id = ?1 AND stored_bytes > 0) ELSE 0 END`

// TenantUsage measures what tenant holds, for the quotas.
func (s *Store) TenantUsage(ctx context.Context, tenant string, q store.UsageQuery) (store.Usage, error) {
	heavyUpTo := q.HeavyUpTo
	if len(q.HeavyTypes) == 0 {
		heavyUpTo = 0
	}
	types, err := json.Marshal(append([]string{}, q.HeavyTypes...))
	if err != nil {
		return store.Usage{}, fmt.Errorf("encode heavy types: %w", err)
	}
	var u store.Usage
	var first sql.NullInt64
	err = s.reader.QueryRowContext(ctx, usageSQL, tenant, micros(q.CreatedAfter), max(q.CreatedUpTo, 0), string(types), max(heavyUpTo, 0), boolInt(q.StoredBytes)).
		Scan(&u.Created, &first, &u.Heavy, &u.StoredBytes)
	if err != nil {
		return store.Usage{}, fmt.Errorf("usage of tenant %s: %w", tenant, interpretError(err))
	}
	if first.Valid {
		u.FirstCreated = fromMicros(first.Int64)
	}
	return u, nil
}
