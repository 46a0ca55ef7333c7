package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
)

// TestMigrationToByteCollation takes a schema back to before migration
// 0019 (the identifier columns in the database's collation, the id pattern
// index back), fills and analyses tasks, and migrates again: the columns
// compare bytes, the pattern index is gone, tasks keeps statistics on the
// changed columns (ALTER TYPE drops them, and lists planned without them
// were ten times slower), an id prefix search reads the primary key, and a
// table that was never analysed stays so.
func TestMigrationToByteCollation(t *testing.T) {
	t.Parallel()
	s := testdb.PostgresStore(t)
	ctx := context.Background()
	pool := s.Pool()
	byteColumns := func() []string {
		rows, _ := pool.Query(ctx, `SELECT table_name || '.' || column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND collation_name = 'C' ORDER BY 1`)
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("columns: %v", err)
		}
		return cols
	}
	migrated := byteColumns()
	for _, c := range []string{"tasks.id", "tasks.tenant_id", "tasks.status", "task_events.task_id", "task_logs.task_id", "idempotency_keys.task_id", "flow_controls.tenant_id"} {
		if !slices.Contains(migrated, c) {
			t.Fatalf("%s is not COLLATE \"C\" after the migrations; byte columns: %v", c, migrated)
		}
	}
	for _, c := range []string{"tasks.message", "tasks.file_name", "tasks.error_message"} {
		if slices.Contains(migrated, c) {
			t.Fatalf("%s, free text, is COLLATE \"C\"", c)
		}
	}

	// Back to before 0019.
	undo := "DELETE FROM schema_migrations WHERE name LIKE '%_byte_collation.sql'; CREATE INDEX tasks_id_pattern_idx ON tasks (id text_pattern_ops);"
	for _, c := range migrated {
		table, column, _ := strings.Cut(c, ".")
		undo += fmt.Sprintf(`ALTER TABLE %s ALTER COLUMN %s TYPE text COLLATE "default";`, table, column)
	}
	if _, err := pool.Exec(ctx, undo); err != nil {
		t.Fatalf("undo 0019: %v", err)
	}
	if got := byteColumns(); len(got) != 0 {
		t.Fatalf("byte columns after the undo: %v", got)
	}

	var tasks []*commonops.Task
	for i := range 200 {
		task, ch := newTask(t, fmt.Sprintf("tenant-%d", i%4), commonops.CreateInput{TaskType: "import", EntityType: "product"})
		if _, err := s.CreateTask(ctx, task, ch, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		tasks = append(tasks, task)
	}
	if _, err := pool.Exec(ctx, "ANALYZE tasks"); err != nil {
		t.Fatalf("analyze: %v", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}

	if got := byteColumns(); !slices.Equal(got, migrated) {
		t.Fatalf("byte columns after migrating again:\n got %v\nwant %v", got, migrated)
	}
	var pattern bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('tasks_id_pattern_idx') IS NOT NULL").Scan(&pattern); err != nil || pattern {
		t.Fatalf("tasks_id_pattern_idx still there (%v, err %v)", pattern, err)
	}
	for _, col := range []string{"id", "tenant_id", "status", "task_type"} {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'tasks' AND attname = $1", col).Scan(&n); err != nil || n != 1 {
			t.Errorf("tasks.%s has %d statistics rows after the migration (err %v), want 1", col, n, err)
		}
	}
	var neverAnalysed float64
	if err := pool.QueryRow(ctx, "SELECT reltuples FROM pg_class WHERE oid = 'flow_controls'::regclass").Scan(&neverAnalysed); err != nil || neverAnalysed != -1 {
		t.Errorf("flow_controls reltuples = %v (err %v), want -1: never analysed, as before the migration", neverAnalysed, err)
	}

	prefix := tasks[7].ID[:13]
	rows, _ := pool.Query(ctx, "EXPLAIN (COSTS off) SELECT id FROM tasks WHERE id LIKE $1", prefix+"%")
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "tasks_pkey") }) {
		t.Errorf("an id prefix does not read tasks_pkey:\n%v", lines)
	}
	got, _, err := s.ListTasks(ctx, commonops.ListFilter{TenantID: tasks[7].TenantID, Search: prefix})
	if err != nil || len(got) != 1 || got[0].ID != tasks[7].ID {
		t.Fatalf("search by id prefix %q: %d tasks, err %v", prefix, len(got), err)
	}
}
