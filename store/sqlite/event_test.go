package sqlite_test

import (
	"context"
	"testing"

	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store/storetest"
)

func TestMigrationFillsEventKinds(t *testing.T) {
	t.Parallel()
	s := testdb.SQLiteStore(t)
	storetest.EventKindsBackfill(t, s, func(ctx context.Context) error {
		for _, q := range []string{
			"DROP INDEX task_events_tenant",
			"ALTER TABLE task_events DROP COLUMN task_type",
			"ALTER TABLE task_events DROP COLUMN entity_type",
			"ALTER TABLE task_events DROP COLUMN status",
			"ALTER TABLE task_events DROP COLUMN requested_by",
			"DELETE FROM schema_migrations WHERE name LIKE '%_task_event_kinds.sql'",
		} {
			if _, err := s.DB().ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return s.Migrate(ctx)
	})
}
