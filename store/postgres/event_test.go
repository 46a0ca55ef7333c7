package postgres_test

import (
	"context"
	"testing"

	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store/storetest"
)

func TestMigrationFillsEventKinds(t *testing.T) {
	t.Parallel()
	s := testdb.PostgresStore(t)
	storetest.EventKindsBackfill(t, s, func(ctx context.Context) error {
		if _, err := s.Pool().Exec(ctx, `DROP INDEX task_events_tenant_idx;
			ALTER TABLE task_events DROP COLUMN task_type, DROP COLUMN entity_type, DROP COLUMN status, DROP COLUMN requested_by;
			DELETE FROM schema_migrations WHERE name LIKE '%_task_event_kinds.sql'`); err != nil {
			return err
		}
		return s.Migrate(ctx)
	})
}
