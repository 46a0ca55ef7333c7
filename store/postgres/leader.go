package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// tryLeadSQL takes the lease when it is free or expired, or renews it for
// its holder; both judged by the database clock, so replicas with skewed
// clocks agree.
const tryLeadSQL = `INSERT INTO leaders (name, holder, expires_at)
VALUES ($1, $2, now() + $3::bigint * interval '1 microsecond')
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leaders.holder = excluded.holder OR leaders.expires_at <= now()
RETURNING holder`

// TryLead takes or renews the named leadership for holder until now+ttl
// (database time) and reports whether holder leads.
func (s *Store) TryLead(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var got string
	err := s.pool.QueryRow(ctx, tryLeadSQL, name, holder, ttl.Microseconds()).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, interpretError(fmt.Errorf("try lead %s: %w", name, err))
	}
	return got == holder, nil
}

// Resign gives up the named leadership if holder has it.
func (s *Store) Resign(ctx context.Context, name, holder string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM leaders WHERE name = $1 AND holder = $2", name, holder); err != nil {
		return interpretError(fmt.Errorf("resign %s: %w", name, err))
	}
	return nil
}
