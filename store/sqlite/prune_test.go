package sqlite_test

import (
	"context"
	"testing"

	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store/storetest"
)

func TestMigrationPrunesOrphanDeliveries(t *testing.T) {
	t.Parallel()
	s := testdb.SQLiteStore(t)
	storetest.OrphanDeliveriesPruned(t, s, func(ctx context.Context, id string) error {
		_, err := s.DB().ExecContext(ctx, "DELETE FROM tasks WHERE id = ?", id)
		return err
	}, func(ctx context.Context) error {
		if _, err := s.DB().ExecContext(ctx, "DELETE FROM schema_migrations WHERE name LIKE '%_prune_webhook_deliveries.sql'"); err != nil {
			return err
		}
		return s.Migrate(ctx)
	})
}
