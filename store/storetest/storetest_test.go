package storetest_test

import (
	"testing"

	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/storetest"
)

// TestPostgres proves the suite against the PostgreSQL driver (SQLite runs it
// in store/sqlite), each test in a schema of its own.
func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return testdb.Postgres(t) })
}
