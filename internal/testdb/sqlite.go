// Package testdb gives tests a fresh, isolated store on each driver:
// SQLite in a temporary file and PostgreSQL in a schema of its own, both
// removed when the test ends.
//
// Under -short the PostgreSQL helpers skip the test (go test -short needs no
// database server); without -short they never skip: a database that cannot
// be reached fails the test, so a CI run cannot silently leave PostgreSQL
// out.
package testdb

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/sqlite"
)

// SQLite opens a migrated SQLite store in a file under t.TempDir() and
// closes it when the test ends.
func SQLite(t testing.TB) store.Store {
	t.Helper()
	return SQLiteStore(t)
}

// SQLiteStore is SQLite returning the concrete driver, for tests that need
// its extras (DB, Migrate).
func SQLiteStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "commonops.db")})
	if err != nil {
		t.Fatalf("open sqlite test store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close sqlite test store: %v", err)
		}
	})
	return s
}
