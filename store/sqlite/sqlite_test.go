package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/sqlite"
	"github.com/commonops/commonops/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return testdb.SQLite(t) })
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), sqlite.Config{Path: sqlite.MemoryPath})
		if err != nil {
			t.Fatalf("open in-memory store: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func countMigrations(t *testing.T, s *sqlite.Store) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow("SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatalf("count migrations: %v", err)
	}
	return n
}

func TestMigrationsAreIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	first, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	applied := countMigrations(t, first)
	if applied < 1 {
		t.Fatalf("applied migrations: got %d, want at least 1", applied)
	}
	tk, ch, err := commonops.NewTask(uuid.NewString(), "t", "u", commonops.CreateInput{TaskType: "a", EntityType: "b"}, commonops.Limits{}, time.Now())
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	if _, err := first.CreateTask(ctx, tk, ch, nil); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	if err := first.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	second, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer second.Close()
	if got := countMigrations(t, second); got != applied {
		t.Fatalf("migrations after reopening: got %d, want %d", got, applied)
	}
	if _, err := second.GetTask(ctx, "t", tk.ID); err != nil {
		t.Fatalf("task after reopening: %v", err)
	}
	var mode string
	if err := second.DB().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode: got %q (err %v), want wal", mode, err)
	}
}

func TestOpenConcurrentlyMigratesOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	errs := make(chan error, 4)
	stores := make(chan *sqlite.Store, 4)
	for range 4 {
		go func() {
			s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
			errs <- err
			stores <- s
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("Open: %v", err)
		}
		s := <-stores
		defer s.Close()
	}
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	var n, distinct int
	if err := s.DB().QueryRow("SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&n, &distinct); err != nil || n != distinct {
		t.Fatalf("schema_migrations: got %d rows for %d versions (err %v), want one row each", n, distinct, err)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "db.sqlite")})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
	_, err = s.GetTask(context.Background(), "t", uuid.NewString())
	if got := commonops.ErrorCode(err); got != commonops.EUNAVAILABLE {
		t.Fatalf("GetTask on a closed store: got %v (code %q), want %q", err, got, commonops.EUNAVAILABLE)
	}
	if err := s.Ping(context.Background()); commonops.ErrorCode(err) != commonops.EUNAVAILABLE {
		t.Fatalf("Ping on a closed store: got %v, want %q", err, commonops.EUNAVAILABLE)
	}
}

func TestOpenRequiresPath(t *testing.T) {
	t.Parallel()
	if _, err := sqlite.Open(context.Background(), sqlite.Config{}); commonops.ErrorCode(err) != commonops.EINVALID {
		t.Fatalf("Open without a path: got %v, want %q", err, commonops.EINVALID)
	}
}

// BenchmarkCreateTask measures task creation (task + event + outbox row, one
// transaction each) on a file database, from parallel goroutines.
func BenchmarkCreateTask(b *testing.B) {
	s := testdb.SQLite(b)
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tk, ch, err := commonops.NewTask(uuid.NewString(), "bench", "u", commonops.CreateInput{TaskType: "import", EntityType: "product", Params: []byte(`{"source":"bench"}`)}, commonops.Limits{}, now)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.CreateTask(ctx, tk, ch, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

func TestLockedDatabaseIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path, BusyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	// Another process (here: another store on the same file) holds the write lock.
	other, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("Open other: %v", err)
	}
	defer other.Close()
	tx, err := other.DB().BeginTx(ctx, nil) // BEGIN IMMEDIATE: takes the write lock now
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback()

	tk, ch, err := commonops.NewTask(uuid.NewString(), "t", "u", commonops.CreateInput{TaskType: "a", EntityType: "b"}, commonops.Limits{}, time.Now())
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	_, err = s.CreateTask(ctx, tk, ch, nil)
	if got := commonops.ErrorCode(err); got != commonops.EUNAVAILABLE {
		t.Fatalf("CreateTask while another writer holds the lock: got %v (code %q), want %q", err, got, commonops.EUNAVAILABLE)
	}
	if _, err := s.GetTask(ctx, "t", tk.ID); commonops.ErrorCode(err) != commonops.ENOTFOUND {
		t.Fatalf("GetTask while locked (WAL readers go on): got %v, want %q", err, commonops.ENOTFOUND)
	}
	tx.Rollback()
	if _, err := s.CreateTask(ctx, tk, ch, nil); err != nil {
		t.Fatalf("CreateTask after the lock is released: %v", err)
	}
}

// With DeletePublished the rows a publish took are deleted, not marked; the
// ones it did not take stay, unsent.
func TestDeletePublished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "c.db"), DeletePublished: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		task, ch, err := commonops.NewTask(uuid.NewString(), "acme", "tester", commonops.CreateInput{TaskType: "export", EntityType: "product"}, commonops.Limits{}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateTask(ctx, task, ch, nil); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeliverOutbox(ctx, 10, func(_ context.Context, msgs []outbox.Message) (int, error) { return 2, nil })
	if err != nil || n != 2 {
		t.Fatalf("DeliverOutbox: got (%d, %v), want (2, nil)", n, err)
	}
	var rows, unsent int
	if err := s.DB().QueryRow("SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL) FROM outbox").Scan(&rows, &unsent); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || unsent != 1 {
		t.Fatalf("outbox rows after publishing 2 of 3: got %d (%d unsent), want 1 (1 unsent)", rows, unsent)
	}
}

// TestTopics: a store opened as for the embedded bus writes outbox rows
// for the worker's topics only, with the task's header (storetest.RunTopics).
func TestTopics(t *testing.T) {
	storetest.RunTopics(t, func(t *testing.T, topics []string, header bool) store.Store {
		s, err := sqlite.Open(context.Background(), sqlite.Config{Path: sqlite.MemoryPath, Topics: topics, HeaderPayload: header})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
