package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// TryLead takes the named leadership for holder when it is free or lapsed,
// renews it when holder has it, and reports whether holder leads until
// now+ttl.
func (s *Store) TryLead(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var leads bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := s.now()
		if _, err := tx.ExecContext(ctx, `INSERT INTO leaders (name, holder, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			WHERE leaders.holder = excluded.holder OR leaders.expires_at <= ?`,
			name, holder, micros(now.Add(ttl)), micros(now)); err != nil {
			return err
		}
		var cur string
		if err := tx.QueryRowContext(ctx, "SELECT holder FROM leaders WHERE name = ?", name).Scan(&cur); err != nil {
			return err
		}
		leads = cur == holder
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("try lead %s: %w", name, err)
	}
	return leads, nil
}

// Resign gives up holder's leadership of name; it is a no-op for a holder
// that does not lead.
func (s *Store) Resign(ctx context.Context, name, holder string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM leaders WHERE name = ? AND holder = ?", name, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("resign %s: %w", name, err)
	}
	return nil
}
