package postgres_test

import (
	"context"
	"testing"

	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store/storetest"
)

func TestMigrationPrunesOrphanDeliveries(t *testing.T) {
	t.Parallel()
	s := testdb.PostgresStore(t)
	storetest.OrphanDeliveriesPruned(t, s, func(ctx context.Context, id string) error {
		_, err := s.Pool().Exec(ctx, "DELETE FROM tasks WHERE id = $1", id)
		return err
	}, func(ctx context.Context) error {
		if _, err := s.Pool().Exec(ctx, "DELETE FROM schema_migrations WHERE name LIKE '%_prune_webhook_deliveries.sql'"); err != nil {
			return err
		}
		return s.Migrate(ctx)
	})
}
