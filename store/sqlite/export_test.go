package sqlite

import (
	"context"
	"database/sql"
)

// ReadForTest runs query, whose single value it discards, the way the
// store's bounded reads run theirs.
func (s *Store) ReadForTest(ctx context.Context, query string) error {
	return s.readBounded(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var v any
		return tx.QueryRowContext(ctx, query).Scan(&v)
	})
}
