package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/postgres"
)

// claimBacklog, claimRounds and maxRowsPerClaim size TestClaimNextReadsByIndex:
// a backlog of one tenant that a plan walking it would show (in a single
// claim of the claimRounds, against the rows all of them may read), enough
// claims for the generic plan, and the rows a claim of claimLimit tasks of
// two tenants may read (the pairs' index probes, the candidates, the running
// tasks, the rows it locks and updates, and their index entries).
const (
	claimBacklog    = 5000
	claimRounds     = 20
	claimLimit      = 4
	maxRowsPerClaim = 100
)

// TestClaimNextReadsByIndex queues claimBacklog tasks of tenant "big", then
// a few of tenant "small", and claims claimRounds times: each claim reads
// about as many rows as it claims, not the backlog. Plans that joined the
// picked ids to tasks by a sequential scan, or took small's tasks from an
// index ordered by age alone (walking past big's), read thousands.
//
// It runs twice: on an analysed table, and on a table never analysed whose
// claim statement was first planned while the table was empty, as on a
// newly deployed service (the claim runs on its generic plan, made once per
// connection). There the plan found the picked tasks by walking every
// pending task in tasks_fair_claim_idx, which the planner guessed held one
// row: 1,349 rows read for a claim of one task behind a backlog of as many.
func TestClaimNextReadsByIndex(t *testing.T) {
	t.Parallel()
	for _, analysed := range []bool{true, false} {
		name := "never analysed, planned empty"
		if analysed {
			name = "analysed"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			claimReadsByIndex(t, analysed)
		})
	}
}

func claimReadsByIndex(t *testing.T, analyse bool) {
	s := openWith(t, newSchema(t), 1)
	ctx := context.Background()
	exec(t, s, "ALTER TABLE tasks SET (autovacuum_enabled = false)")
	if !analyse {
		got, err := s.ClaimNext(ctx, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Limit: claimLimit,
			Kinds: []commonops.Kind{{TaskType: "import", EntityType: "*"}}})
		if err != nil || len(got) != 0 {
			t.Fatalf("claim on an empty table: %d tasks, %v", len(got), err)
		}
	}
	parallel(t, claimBacklog, func(int) error {
		task, ch := newTask(t, "big", commonops.CreateInput{TaskType: "import", EntityType: "product"})
		_, err := s.CreateTask(ctx, task, ch, nil)
		return err
	})
	for range claimRounds * claimLimit / 2 {
		task, ch := newTask(t, "small", commonops.CreateInput{TaskType: "import", EntityType: "product"})
		if _, err := s.CreateTask(ctx, task, ch, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
	}
	if analyse {
		exec(t, s, "ANALYZE tasks")
	}

	small := 0
	claimImports(t, s, func(_ int, task *commonops.Task) {
		if task.TenantID == "small" {
			small++
		}
	})
	if want := claimRounds * claimLimit / 2; small != want {
		t.Errorf("small's tasks claimed: got %d, want %d (half of every claim)", small, want)
	}
}

// claimImports claims imports claimRounds times, claimLimit at a time,
// hands each claimed task to each, and holds every table's and index's
// rows read to maxRowsPerClaim a claim (logged under -v).
func claimImports(t *testing.T, s *postgres.Store, each func(claim int, task *commonops.Task)) {
	t.Helper()
	ctx := context.Background()
	before := rowsRead(t, s)
	for i := range claimRounds {
		got, err := s.ClaimNext(ctx, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Limit: claimLimit,
			Kinds: []commonops.Kind{{TaskType: "import", EntityType: "*"}}})
		if err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		if len(got) != claimLimit {
			t.Fatalf("claim %d: got %d tasks, want %d", i, len(got), claimLimit)
		}
		for _, task := range got {
			each(i, task)
		}
	}
	after := waitRowsRead(t, s, before, claimRounds*claimLimit)
	for _, r := range after.minus(before) {
		perClaim := float64(r.rows) / claimRounds
		if r.rows > 0 {
			t.Logf("%.1f rows read per claim by %s", perClaim, r.what)
		}
		if perClaim > maxRowsPerClaim {
			t.Errorf("got %.1f rows read per claim by %s, want at most %d", perClaim, r.what, maxRowsPerClaim)
		}
	}
}

// notReady sizes TestClaimNextPastAwaitingUploads and
// TestClaimNextPastBackoffs: imports that may not run yet (awaiting their
// files, or backing off) ahead of the runnable tasks of the same tenant and
// type.
const notReady = 5000

// TestClaimNextPastAwaitingUploads queues notReady imports that wait
// for their files, then claimRounds × claimLimit runnable imports of the
// same tenant and type, and claims them all: each claim reads about as many
// rows as it claims. When tasks_fair_claim_idx held every pending task, the
// claim stepped over the waiting imports on each call (5,009 index entries
// a claim). The queue statistics, read per partial index, still count the
// waiting imports as pending.
func TestClaimNextPastAwaitingUploads(t *testing.T) {
	t.Parallel()
	s := openWith(t, newSchema(t), 4)
	ctx := context.Background()
	exec(t, s, "ALTER TABLE tasks SET (autovacuum_enabled = false)")
	file := "in.csv"
	parallel(t, notReady, func(int) error {
		task, ch := newTask(t, "big", commonops.CreateInput{TaskType: "import", EntityType: "product", FileName: &file})
		_, err := s.CreateTask(ctx, task, ch, nil)
		return err
	})
	for range claimRounds * claimLimit {
		task, ch := newTask(t, "big", commonops.CreateInput{TaskType: "import", EntityType: "product"})
		if _, err := s.CreateTask(ctx, task, ch, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
	}
	exec(t, s, "ANALYZE tasks")

	claimImports(t, s, func(i int, task *commonops.Task) {
		if task.UploadStatus == commonops.UploadAwaiting {
			t.Fatalf("claim %d: got task %s, which awaits its upload", i, task.ID)
		}
	})

	st, err := s.QueueStats(ctx, store.QueueQuery{Now: time.Now()})
	if err != nil {
		t.Fatalf("queue stats: %v", err)
	}
	if len(st.Queues) != 1 || st.Queues[0].Pending != notReady || st.Queues[0].Running != claimRounds*claimLimit ||
		!st.Queues[0].OldestWaiting.IsZero() {
		t.Errorf("queue stats: got %+v, want import with %d pending (awaiting their files, so none waiting to be claimed) and %d running",
			st.Queues, notReady, claimRounds*claimLimit)
	}
}

// TestClaimNextPastBackoffs queues notReady imports backing off for
// an hour, then claimRounds × claimLimit runnable imports of the same tenant
// and type, half never tried and half whose backoff is over, and claims
// them all: each claim reads about as many rows as it claims, and never a
// task still backing off. When tasks_fair_claim_idx held every pending
// task, the claim stepped over the backing-off imports on each call (5,009
// index entries a claim). The tasks are stored in their backoff, not
// updated into it, so no dead row versions are left in the indexes for the
// claims to step over while another test's transaction keeps them.
func TestClaimNextPastBackoffs(t *testing.T) {
	t.Parallel()
	s := openWith(t, newSchema(t), 4)
	ctx := context.Background()
	exec(t, s, "ALTER TABLE tasks SET (autovacuum_enabled = false)")
	backingOff := func(until time.Time) error {
		task, ch := newTask(t, "big", commonops.CreateInput{TaskType: "import", EntityType: "product"})
		task.RetryCount, task.AvailableAt = 1, &until
		_, err := s.CreateTask(ctx, task, ch, nil)
		return err
	}
	parallel(t, notReady, func(int) error { return backingOff(time.Now().Add(time.Hour)) })
	for i := range claimRounds * claimLimit {
		var err error
		if i%2 == 0 {
			task, ch := newTask(t, "big", commonops.CreateInput{TaskType: "import", EntityType: "product"})
			_, err = s.CreateTask(ctx, task, ch, nil)
		} else {
			err = backingOff(time.Now().Add(-time.Minute))
		}
		if err != nil {
			t.Fatalf("create: %v", err)
		}
	}
	exec(t, s, "ANALYZE tasks")

	retries := 0
	claimImports(t, s, func(i int, task *commonops.Task) {
		if task.RetryCount > 0 {
			retries++
		}
	})
	if want := claimRounds * claimLimit / 2; retries != want {
		t.Errorf("retries claimed: got %d, want %d (every one whose backoff is over)", retries, want)
	}

	st, err := s.QueueStats(ctx, store.QueueQuery{Now: time.Now()})
	if err != nil {
		t.Fatalf("queue stats: %v", err)
	}
	if len(st.Queues) != 1 || st.Queues[0].Pending != notReady || !st.Queues[0].OldestWaiting.IsZero() {
		t.Errorf("queue stats: got %+v, want import with %d pending (backing off, so none waiting to be claimed)", st.Queues, notReady)
	}
}
