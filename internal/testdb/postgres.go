package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/postgres"
)

// DefaultPostgresURL is the test database used when
// COMMONOPS_TEST_DATABASE_URL is not set (and the tests do not run with
// -short).
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// skipPostgres is why a test that needs PostgreSQL skips under -short.
const skipPostgres = "needs PostgreSQL (COMMONOPS_TEST_DATABASE_URL); run scripts/test.sh, or go test without -short"

// PostgresMaxConns bounds each test store's pool, so many parallel tests
// stay within the server's connection limit.
const PostgresMaxConns = 4

// PostgresURL returns the test database's URL: COMMONOPS_TEST_DATABASE_URL,
// or DefaultPostgresURL. Under -short it skips t instead, so go test -short
// never needs PostgreSQL; without -short it never skips, and a database that
// is not there fails the test that uses it.
func PostgresURL(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip(skipPostgres)
	}
	if u := os.Getenv("COMMONOPS_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// Postgres opens a migrated PostgreSQL store in a fresh schema of its own
// and, when the test ends, closes it and drops the schema. Under -short it
// skips t (see PostgresURL).
func Postgres(t testing.TB) store.Store {
	t.Helper()
	return PostgresStore(t)
}

// PostgresStore is Postgres returning the concrete driver, for tests that
// need its extras (Pool).
func PostgresStore(t testing.TB) *postgres.Store {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random schema name: %v", err)
	}
	schema := "t_" + hex.EncodeToString(b[:])
	url := PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Registered first, so it runs after the store is closed.
	t.Cleanup(func() { dropSchema(t, url, schema) })
	s, err := postgres.Open(ctx, postgres.Config{URL: url, Schema: schema, MaxConns: PostgresMaxConns})
	if err != nil {
		t.Fatalf("open postgres test store (schema %s at %s): %v\n"+
			"The tests need PostgreSQL: set COMMONOPS_TEST_DATABASE_URL or run scripts/test.sh; go test -short skips them.", schema, url, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close postgres test store: %v", err)
		}
	})
	return s
}

func dropSchema(t testing.TB, url, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("drop test schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("drop test schema %s: %v", schema, err)
	}
}
