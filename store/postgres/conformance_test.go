package postgres_test

import (
	"testing"

	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/storetest"
)

// TestConformance runs the store conformance suite on PostgreSQL, each test
// in a fresh schema of its own.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return testdb.Postgres(t) })
}
