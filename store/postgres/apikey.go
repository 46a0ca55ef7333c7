package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/auth"
)

const apiKeyColumns = `id, tenant_id, name, key_hash, roles, task_types, platform_admin,
	created_by, created_at, expires_at, revoked_at, last_used_at`

// CreateAPIKey stores k; a taken id or hash is ECONFLICT.
func (s *Store) CreateAPIKey(ctx context.Context, k *auth.APIKey) error {
	var roles []string
	for _, r := range k.Roles {
		roles = append(roles, string(r))
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		k.ID, k.Tenant, k.Name, k.Hash, roles, k.TaskTypes, k.PlatformAdmin,
		k.CreatedBy, dbTime(k.CreatedAt), optTime(k.ExpiresAt), optTime(k.RevokedAt), optTime(k.LastUsedAt))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == codeUniqueViolation {
		return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("API key %s already exists", k.ID), Err: err}
	}
	if err != nil {
		return interpretError(fmt.Errorf("create API key %s: %w", k.ID, err))
	}
	return nil
}

// GetAPIKeyByHash returns the key of hash, or ENOTFOUND.
func (s *Store) GetAPIKeyByHash(ctx context.Context, hash string) (*auth.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE key_hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, commonops.Errorf(commonops.ENOTFOUND, "no such API key")
	}
	if err != nil {
		return nil, interpretError(fmt.Errorf("get API key: %w", err))
	}
	return k, nil
}

// ListAPIKeys returns tenant's keys, newest first.
func (s *Store) ListAPIKeys(ctx context.Context, tenant string) ([]*auth.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id`, tenant)
	if err != nil {
		return nil, interpretError(fmt.Errorf("list API keys: %w", err))
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*auth.APIKey, error) { return scanAPIKey(r) })
	if err != nil {
		return nil, interpretError(fmt.Errorf("list API keys: %w", err))
	}
	return keys, nil
}

// RevokeAPIKey revokes tenant's key id at now, keeping an earlier
// revocation.
func (s *Store) RevokeAPIKey(ctx context.Context, tenant, id string, now time.Time) (*auth.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3)
		WHERE tenant_id = $1 AND id = $2 RETURNING `+apiKeyColumns, tenant, id, dbTime(now)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, commonops.Errorf(commonops.ENOTFOUND, "API key %s not found", id)
	}
	if err != nil {
		return nil, interpretError(fmt.Errorf("revoke API key %s: %w", id, err))
	}
	return k, nil
}

// TouchAPIKeys records last-used times in one statement.
func (s *Store) TouchAPIKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids, times := make([]string, 0, len(used)), make([]time.Time, 0, len(used))
	for id, t := range used {
		ids, times = append(ids, id), append(times, dbTime(t))
	}
	_, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = u.at
		FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
		WHERE api_keys.id = u.id AND (last_used_at IS NULL OR last_used_at < u.at)`, ids, times)
	if err != nil {
		return interpretError(fmt.Errorf("touch API keys: %w", err))
	}
	return nil
}

func scanAPIKey(r pgx.Row) (*auth.APIKey, error) {
	var k auth.APIKey
	var roles []string
	if err := r.Scan(&k.ID, &k.Tenant, &k.Name, &k.Hash, &roles, &k.TaskTypes, &k.PlatformAdmin,
		&k.CreatedBy, &k.CreatedAt, &k.ExpiresAt, &k.RevokedAt, &k.LastUsedAt); err != nil {
		return nil, err
	}
	for _, r := range roles {
		k.Roles = append(k.Roles, auth.Role(r))
	}
	if len(k.TaskTypes) == 0 {
		k.TaskTypes = nil
	}
	k.CreatedAt = k.CreatedAt.UTC()
	for _, p := range []**time.Time{&k.ExpiresAt, &k.RevokedAt, &k.LastUsedAt} {
		if *p != nil {
			v := (**p).UTC()
			*p = &v
		}
	}
	return &k, nil
}

// optTime is an optional time as PostgreSQL stores it.
func optTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dbTime(*t)
	return &v
}
