package testdb_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
)

func TestEachRunsBothDriversIsolated(t *testing.T) {
	var ran []string
	testdb.Each(t, func(t *testing.T, s store.Store) {
		ran = append(ran, t.Name())
		ctx := context.Background()
		if _, total, err := s.ListTasks(ctx, commonops.ListFilter{TenantID: "t"}); err != nil || total != 0 {
			t.Fatalf("fresh store: got %d tasks (err %v), want an empty store", total, err)
		}
		tk, ch, err := commonops.NewTask(uuid.NewString(), "t", "u", commonops.CreateInput{TaskType: "a", EntityType: "b"}, commonops.Limits{}, time.Now())
		if err != nil {
			t.Fatalf("NewTask: %v", err)
		}
		if _, err := s.CreateTask(ctx, tk, ch, nil); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
		if _, err := s.GetTask(ctx, "t", tk.ID); err != nil {
			t.Fatalf("GetTask: %v", err)
		}
	})
	want := []string{t.Name() + "/sqlite", t.Name() + "/postgres"}
	if testing.Short() {
		want = want[:1] // the postgres half skips; the sqlite half still runs
	}
	if !slices.Equal(ran, want) {
		t.Fatalf("subtests: got %v, want %v", ran, want)
	}
}

func TestPostgresDropsItsSchema(t *testing.T) {
	url := testdb.PostgresURL(t) // under -short, skip here rather than in the subtest
	var schema string
	t.Run("store", func(t *testing.T) {
		s := testdb.PostgresStore(t)
		if err := s.Pool().QueryRow(context.Background(), "SELECT current_schema()").Scan(&schema); err != nil {
			t.Fatalf("current_schema: %v", err)
		}
	})
	if len(schema) < 3 || schema[:2] != "t_" {
		t.Fatalf("schema: got %q, want t_<random>", schema)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", schema).Scan(&n); err != nil || n != 0 {
		t.Fatalf("schema %s after the test: got %d (err %v), want it dropped", schema, n, err)
	}
}

func TestSQLiteIsFreshEachTime(t *testing.T) {
	t.Parallel()
	a, b := testdb.SQLite(t), testdb.SQLite(t)
	ctx := context.Background()
	tk, ch, err := commonops.NewTask(uuid.NewString(), "t", "u", commonops.CreateInput{TaskType: "a", EntityType: "b"}, commonops.Limits{}, time.Now())
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	if _, err := a.CreateTask(ctx, tk, ch, nil); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	if _, err := b.GetTask(ctx, "t", tk.ID); commonops.ErrorCode(err) != commonops.ENOTFOUND {
		t.Fatalf("GetTask in another store: got %v, want %q", err, commonops.ENOTFOUND)
	}
}
