package sqlite_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/sqlite"
	"github.com/commonops/commonops/store/storetest"
)

func openTimeout(t *testing.T, timeout time.Duration) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: sqlite.MemoryPath, ReadTimeout: timeout})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestReadTimeout holds the only connection of an in-memory store in a
// write transaction, so each read waits for it until its deadline.
func TestReadTimeout(t *testing.T) {
	storetest.RunReadTimeout(t,
		func(t *testing.T, timeout time.Duration) store.Store { return openTimeout(t, timeout) },
		func(t *testing.T, s store.Store) func() {
			tx, err := s.(*sqlite.Store).DB().BeginTx(context.Background(), &sql.TxOptions{})
			if err != nil {
				t.Fatalf("begin: %v", err)
			}
			return func() { _ = tx.Rollback() }
		})
}

// TestReadTimeoutInterrupts proves that a statement running past the read
// timeout is interrupted, not left to finish: this one never would.
func TestReadTimeoutInterrupts(t *testing.T) {
	const timeout = 100 * time.Millisecond
	s := openTimeout(t, timeout)
	start := time.Now()
	err := s.ReadForTest(context.Background(), "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")
	if took := time.Since(start); took > timeout+time.Second {
		t.Errorf("the read failed after %v, want soon after %v", took, timeout)
	}
	if commonops.ErrorCode(err) != commonops.EUNAVAILABLE {
		t.Fatalf("got %v, want the read timeout's EUNAVAILABLE", err)
	}
}
