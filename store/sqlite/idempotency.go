package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

func idemTenant(idem *store.Idempotency, t *commonops.Task) string {
	if idem.TenantID != "" {
		return idem.TenantID
	}
	return t.TenantID
}

// loadIdempotency returns the stored key, or nil when there is none.
func loadIdempotency(ctx context.Context, q querier, tenant, key string) (*store.Idempotency, error) {
	var (
		i         store.Idempotency
		response  string
		createdAt int64
	)
	err := q.QueryRowContext(ctx, "SELECT tenant_id, key, request_hash, task_id, status_code, response, created_at FROM idempotency_keys WHERE tenant_id = ? AND key = ?", tenant, key).
		Scan(&i.TenantID, &i.Key, &i.RequestHash, &i.TaskID, &i.StatusCode, &response, &createdAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load idempotency key: %w", err)
	}
	i.Response = json.RawMessage(response)
	i.CreatedAt = fromMicros(createdAt)
	return &i, nil
}

func insertIdempotency(ctx context.Context, q querier, idem *store.Idempotency, t *commonops.Task) error {
	created := idem.CreatedAt
	if created.IsZero() {
		created = t.CreatedAt
	}
	taskID := idem.TaskID
	if taskID == "" {
		taskID = t.ID
	}
	response := string(idem.Response)
	if response == "" {
		response = "null"
	}
	_, err := q.ExecContext(ctx, "INSERT INTO idempotency_keys (tenant_id, key, request_hash, task_id, status_code, response, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
		idemTenant(idem, t), idem.Key, idem.RequestHash, taskID, idem.StatusCode, response, micros(created))
	if err != nil {
		return fmt.Errorf("insert idempotency key: %w", err)
	}
	return nil
}
