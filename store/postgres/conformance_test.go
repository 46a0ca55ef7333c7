package postgres_test

import (
	"context"
	"testing"

	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/postgres"
	"github.com/commonops/commonops/store/storetest"
)

// TestConformance runs the store conformance suite on PostgreSQL, each test
// in a fresh schema of its own.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return testdb.Postgres(t) })
}

// TestTopics: a store opened as for the embedded bus writes outbox rows
// for the worker's topics only, with the task's header (storetest.RunTopics).
func TestTopics(t *testing.T) {
	t.Parallel()
	storetest.RunTopics(t, func(t *testing.T, topics []string, header bool) store.Store {
		s, err := postgres.Open(context.Background(), postgres.Config{URL: testdb.PostgresURL(t), Schema: newSchema(t), Topics: topics, HeaderPayload: header})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
