package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/auth"
)

const apiKeyColumns = `id, tenant_id, name, key_hash, roles, task_types, platform_admin,
	created_by, created_at, expires_at, revoked_at, last_used_at`

// CreateAPIKey stores k; a taken id or hash is ECONFLICT.
func (s *Store) CreateAPIKey(ctx context.Context, k *auth.APIKey) error {
	roles, err := jsonList(k.Roles)
	if err != nil {
		return err
	}
	types, err := jsonList(k.TaskTypes)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.Tenant, k.Name, k.Hash, roles, types, k.PlatformAdmin,
			k.CreatedBy, micros(k.CreatedAt), optMicros(k.ExpiresAt), optMicros(k.RevokedAt), optMicros(k.LastUsedAt))
		return err
	})
	if isUniqueViolation(err) {
		return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("API key %s already exists", k.ID), Err: err}
	}
	if err != nil {
		return fmt.Errorf("create API key %s: %w", k.ID, err)
	}
	return nil
}

// GetAPIKeyByHash returns the key of hash, or ENOTFOUND.
func (s *Store) GetAPIKeyByHash(ctx context.Context, hash string) (*auth.APIKey, error) {
	var k *auth.APIKey
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		k, err = scanAPIKey(tx.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE key_hash = ?`, hash))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, commonops.Errorf(commonops.ENOTFOUND, "no such API key")
	}
	if err != nil {
		return nil, fmt.Errorf("get API key: %w", err)
	}
	return k, nil
}

// ListAPIKeys returns tenant's keys, newest first.
func (s *Store) ListAPIKeys(ctx context.Context, tenant string) ([]*auth.APIKey, error) {
	var keys []*auth.APIKey
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE tenant_id = ? ORDER BY created_at DESC, id`, tenant)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			k, err := scanAPIKey(rows)
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey revokes tenant's key id at now, keeping an earlier
// revocation.
func (s *Store) RevokeAPIKey(ctx context.Context, tenant, id string, now time.Time) (*auth.APIKey, error) {
	var k *auth.APIKey
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		k, err = scanAPIKey(tx.QueryRowContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?)
			WHERE tenant_id = ? AND id = ? RETURNING `+apiKeyColumns, micros(now), tenant, id))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, commonops.Errorf(commonops.ENOTFOUND, "API key %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("revoke API key %s: %w", id, err)
	}
	return k, nil
}

// TouchAPIKeys records last-used times in one transaction.
func (s *Store) TouchAPIKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		for id, at := range used {
			if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ?
				WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`, micros(at), id, micros(at)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("touch API keys: %w", err)
	}
	return nil
}

type rowScanner interface{ Scan(dest ...any) error }

func scanAPIKey(r rowScanner) (*auth.APIKey, error) {
	var (
		k                          auth.APIKey
		roles, types               sql.NullString
		created                    int64
		expires, revoked, lastUsed sql.NullInt64
	)
	if err := r.Scan(&k.ID, &k.Tenant, &k.Name, &k.Hash, &roles, &types, &k.PlatformAdmin,
		&k.CreatedBy, &created, &expires, &revoked, &lastUsed); err != nil {
		return nil, err
	}
	if roles.Valid {
		if err := json.Unmarshal([]byte(roles.String), &k.Roles); err != nil {
			return nil, fmt.Errorf("decode roles of API key %s: %w", k.ID, err)
		}
	}
	if types.Valid {
		if err := json.Unmarshal([]byte(types.String), &k.TaskTypes); err != nil {
			return nil, fmt.Errorf("decode task types of API key %s: %w", k.ID, err)
		}
	}
	k.CreatedAt = fromMicros(created)
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = optTime(expires), optTime(revoked), optTime(lastUsed)
	return &k, nil
}

// jsonList is a list as the api_keys table stores it: a JSON array, or
// NULL when empty.
func jsonList[T any](v []T) (any, error) {
	if len(v) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode list: %w", err)
	}
	return string(b), nil
}

func optMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return micros(*t)
}

func optTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}
