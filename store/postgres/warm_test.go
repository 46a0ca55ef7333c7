package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store/postgres"
)

// TestWarmConns: Open opens WarmConns connections and has each plan a
// lookup on the hot tables (its last statement, as pg_stat_activity shows
// it), in the store's own schema; a connection the pool opens later is
// warmed as it opens.
func TestWarmConns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := postgres.Open(ctx, postgres.Config{URL: testdb.PostgresURL(t), Schema: newSchema(t), MaxConns: 8, WarmConns: 4})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	// The checks go on a connection of their own, outside the pool.
	check, err := pgx.Connect(ctx, testdb.PostgresURL(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer check.Close(ctx)
	warmed := func(pids []uint32) int {
		t.Helper()
		var n int
		err := check.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE pid = ANY($1) AND query LIKE 'EXPLAIN SELECT * FROM tasks WHERE %'`, pids).Scan(&n)
		if err != nil {
			t.Fatalf("read pg_stat_activity: %v", err)
		}
		return n
	}

	held := s.Pool().AcquireAllIdle(ctx)
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	var pids []uint32
	for _, c := range held {
		pids = append(pids, c.Conn().PgConn().PID())
	}
	if len(pids) < 4 {
		t.Fatalf("after Open: got %d idle connections, want at least 4 (WarmConns)", len(pids))
	}
	if got := warmed(pids); got < 4 {
		t.Fatalf("after Open: got %d of the %d idle connections warmed, want at least 4", got, len(pids))
	}

	// Every idle connection is held: this one is new.
	c, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	defer c.Release()
	if got := warmed([]uint32{c.Conn().PgConn().PID()}); got != 1 {
		t.Fatalf("a connection opened after Open: warmed %d, want 1", got)
	}
}
