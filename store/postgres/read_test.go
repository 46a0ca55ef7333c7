package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/postgres"
	"github.com/commonops/commonops/store/storetest"
)

func openTimeout(t *testing.T, timeout time.Duration) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{URL: testdb.PostgresURL(t), Schema: newSchema(t), MaxConns: 4, ReadTimeout: timeout})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestReadTimeout holds an ACCESS EXCLUSIVE lock on the tables the reads
// use, from a connection of its own, so each read waits for it until its
// statement timeout. The store has one connection, whose statements the
// suite's first reads prepared.
func TestReadTimeout(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	storetest.RunReadTimeout(t,
		func(t *testing.T, timeout time.Duration) store.Store {
			s, err := postgres.Open(context.Background(), postgres.Config{URL: testdb.PostgresURL(t), Schema: schema, MaxConns: 1, ReadTimeout: timeout})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		func(t *testing.T, _ store.Store) func() {
			ctx := context.Background()
			c, err := pgx.Connect(ctx, testdb.PostgresURL(t))
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			lock := "BEGIN; SET LOCAL search_path TO " + pgx.Identifier{schema}.Sanitize() + "; LOCK TABLE tasks, task_logs, task_events IN ACCESS EXCLUSIVE MODE"
			if _, err := c.Exec(ctx, lock); err != nil {
				t.Fatalf("lock: %v", err)
			}
			return func() {
				if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
					t.Errorf("unlock: %v", err)
				}
				c.Close(ctx)
			}
		})
}

// TestReadTimeoutStopsTheServer proves that the server itself stops a read
// that runs too long: once the read has failed, its statement no longer
// runs in the database (a context deadline alone would have left it
// sleeping there).
func TestReadTimeoutStopsTheServer(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	s := openTimeout(t, timeout)
	ctx := context.Background()
	marker := "commonops-read-timeout-" + newSchema(t)
	start := time.Now()
	err := s.ReadForTest(ctx, "SELECT pg_sleep(30) /* "+marker+" */")
	if took := time.Since(start); took > timeout+time.Second {
		t.Errorf("the read failed after %v, want soon after %v", took, timeout)
	}
	if commonops.ErrorCode(err) != commonops.EUNAVAILABLE {
		t.Fatalf("got %v, want the read timeout's EUNAVAILABLE", err)
	}
	var running int
	if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()", marker).Scan(&running); err != nil {
		t.Fatalf("read pg_stat_activity: %v", err)
	}
	if running != 0 {
		t.Fatalf("got %d statements of the failed read still running, want 0", running)
	}
}
