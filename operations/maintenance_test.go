package operations_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
)

const maintTenant = commonops.DefaultTenant

// clock is a settable clock for the Service.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

type env struct {
	svc  *operations.Service
	objs *objectstore.Local
	t0   time.Time // the clock's time, at which tasks are created
}

func newEnv(t *testing.T, s store.Store) *env {
	t.Helper()
	objs, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: t.TempDir(), Secret: []byte("operations-test-secret-012345678"), BaseURL: "http://files.invalid"})
	if err != nil {
		t.Fatalf("new local object store: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	c := &clock{now: time.Now().UTC().Truncate(time.Millisecond)}
	svc := &operations.Service{Store: s, Objects: objs, Now: c.Now, Rand: func() float64 { return 0 }}
	return &env{svc: svc, objs: objs, t0: c.now}
}

func (e *env) create(t *testing.T, in commonops.CreateInput) *commonops.Task {
	t.Helper()
	c, _, err := e.svc.Create(context.Background(), operations.CreateRequest{TenantID: maintTenant, Requester: "test", Input: in})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return c.Task
}

func (e *env) get(t *testing.T, id string) *commonops.Task {
	t.Helper()
	task, err := e.svc.Get(context.Background(), maintTenant, id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return task
}

// upload puts the input file of task in the object store, as a client would.
func (e *env) upload(t *testing.T, task *commonops.Task) {
	t.Helper()
	w, err := e.objs.Create(context.Background(), objectstore.InputKey(task.ID, *task.FileName), "text/csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("a,b\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func ref(task *commonops.Task) operations.TaskRef {
	return operations.TaskRef{TenantID: task.TenantID, ID: task.ID}
}

// wantCode fails the test unless err has the domain code want ("" for nil).
func wantCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	if got := commonops.ErrorCode(err); got != want {
		t.Fatalf("%s: got error %v (code %q), want code %q", what, err, got, want)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		svc  operations.Service
		want operations.Defaults
	}{
		{
			name: "zero service",
			want: operations.Defaults{
				Lease: operations.LeaseDefault, URLExpiry: objectstore.URLExpiryDefault, UploadGrace: operations.UploadGraceDefault,
				BackoffBase: commonops.BackoffBase, BackoffMax: commonops.BackoffMax,
			},
		},
		{
			name: "fields set",
			svc:  operations.Service{Lease: time.Minute, URLExpiry: time.Hour, UploadGrace: 2 * time.Minute, BackoffBase: time.Millisecond, BackoffMax: time.Second},
			want: operations.Defaults{Lease: time.Minute, URLExpiry: time.Hour, UploadGrace: 2 * time.Minute, BackoffBase: time.Millisecond, BackoffMax: time.Second},
		},
		{
			name: "url expiry capped",
			svc:  operations.Service{URLExpiry: objectstore.URLExpiryMax + time.Hour},
			want: operations.Defaults{
				Lease: operations.LeaseDefault, URLExpiry: objectstore.URLExpiryMax, UploadGrace: operations.UploadGraceDefault,
				BackoffBase: commonops.BackoffBase, BackoffMax: commonops.BackoffMax,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.svc.Defaults(); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSweepPagesInIDOrder(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		e := newEnv(t, s)
		ctx := context.Background()
		later := e.t0.Add(time.Hour)
		var ids []string
		for range 3 {
			ids = append(ids, e.create(t, commonops.CreateInput{TaskType: "import", EntityType: "x", ScheduledAt: &later}).ID)
		}
		e.create(t, commonops.CreateInput{TaskType: "import", EntityType: "x"}) // pending: not swept

		f := operations.SweepFilter{Statuses: []commonops.Status{commonops.StatusScheduled}, Limit: 2}
		first, err := e.svc.Sweep(ctx, f)
		if err != nil {
			t.Fatalf("sweep: %v", err)
		}
		f.AfterID = first[len(first)-1].ID
		second, err := e.svc.Sweep(ctx, f)
		if err != nil {
			t.Fatalf("sweep after %s: %v", f.AfterID, err)
		}
		var got []string
		for _, r := range append(first, second...) {
			if r.TenantID != maintTenant {
				t.Errorf("ref %s: got tenant %q, want %q", r.ID, r.TenantID, maintTenant)
			}
			got = append(got, r.ID)
		}
		if len(first) != 2 || len(got) != 3 || got[0] != ids[0] || got[1] != ids[1] || got[2] != ids[2] {
			t.Fatalf("got pages %v then %v, want %v in pages of 2", got[:len(first)], got[len(first):], ids)
		}
	})
}

func TestPromote(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		e := newEnv(t, s)
		ctx := context.Background()
		at := e.t0.Add(time.Hour)
		task := e.create(t, commonops.CreateInput{TaskType: "import", EntityType: "x", ScheduledAt: &at})

		_, err := e.svc.Promote(ctx, ref(task), at.Add(-time.Second))
		wantCode(t, "promote before its time", err, commonops.ECONFLICT)
		got, err := e.svc.Promote(ctx, ref(task), at)
		wantCode(t, "promote on time", err, "")
		if got.Status != commonops.StatusPending {
			t.Fatalf("after promote: got status %s, want pending", got.Status)
		}
		_, err = e.svc.Promote(ctx, ref(task), at)
		wantCode(t, "promote again", err, commonops.ECONFLICT)
	})
}

func TestRescueLease(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		for _, tc := range []struct {
			name        string
			maxRetries  int
			wantStatus  commonops.Status
			wantRetries int
		}{
			{name: "retries left", maxRetries: 1, wantStatus: commonops.StatusPending, wantRetries: 1},
			{name: "retries spent", maxRetries: 0, wantStatus: commonops.StatusFailed, wantRetries: 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, s)
				ctx := context.Background()
				task := e.create(t, commonops.CreateInput{TaskType: "import", EntityType: "x", MaxRetries: ptr(tc.maxRetries)})
				if _, err := e.svc.Claim(ctx, maintTenant, task.ID, "w1", 1); err != nil {
					t.Fatalf("claim: %v", err)
				}
				_, err := e.svc.RescueLease(ctx, ref(task), e.t0)
				wantCode(t, "rescue a live lease", err, commonops.ECONFLICT)

				now := e.t0.Add(2 * time.Second)
				got, err := e.svc.RescueLease(ctx, ref(task), now)
				wantCode(t, "rescue a lapsed lease", err, "")
				if got.Status != tc.wantStatus || got.RetryCount != tc.wantRetries || got.LeaseOwner != nil {
					t.Fatalf("after rescue: got status %s retryCount %d leaseOwner %v, want %s %d none", got.Status, got.RetryCount, got.LeaseOwner, tc.wantStatus, tc.wantRetries)
				}
				if tc.wantStatus == commonops.StatusPending {
					want := now.Add(e.svc.RetryDelay(0))
					if got.AvailableAt == nil || !got.AvailableAt.Equal(want) {
						t.Fatalf("after rescue: got availableAt %v, want %v (the retry backoff)", got.AvailableAt, want)
					}
				}
			})
		}
	})
}

func TestExpireUpload(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		e := newEnv(t, s)
		ctx := context.Background()
		lost := e.create(t, commonops.CreateInput{TaskType: "import", EntityType: "x", FileName: ptr("in.csv")})
		late := e.create(t, commonops.CreateInput{TaskType: "import", EntityType: "x", FileName: ptr("in.csv")})
		e.upload(t, late)
		now := e.t0.Add(time.Hour)

		got, err := e.svc.ExpireUpload(ctx, ref(lost), now)
		wantCode(t, "expire a lost upload", err, "")
		if got.Status != commonops.StatusFailed || got.UploadStatus != commonops.UploadExpired {
			t.Fatalf("lost upload: got status %s upload %s, want failed expired", got.Status, got.UploadStatus)
		}

		_, err = e.svc.ExpireUpload(ctx, ref(late), now)
		wantCode(t, "expire an upload that arrived", err, commonops.ECONFLICT)
		if got := e.get(t, late.ID); got.Status != commonops.StatusPending || got.UploadStatus != commonops.UploadUploaded {
			t.Fatalf("late upload: got status %s upload %s, want pending uploaded", got.Status, got.UploadStatus)
		}
	})
}

func TestFailUnclaimed(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		e := newEnv(t, s)
		ctx := context.Background()
		wait := 10 * time.Minute
		runnable := e.create(t, commonops.CreateInput{TaskType: "nobody", EntityType: "x"})
		awaiting := e.create(t, commonops.CreateInput{TaskType: "nobody", EntityType: "x", FileName: ptr("in.csv")})

		_, err := e.svc.FailUnclaimed(ctx, ref(runnable), wait, e.t0.Add(wait/2))
		wantCode(t, "fail a task changed within wait", err, commonops.ECONFLICT)
		_, err = e.svc.FailUnclaimed(ctx, ref(awaiting), wait, e.t0.Add(2*wait))
		wantCode(t, "fail a task awaiting its upload", err, commonops.ECONFLICT)

		got, err := e.svc.FailUnclaimed(ctx, ref(runnable), wait, e.t0.Add(2*wait))
		wantCode(t, "fail an unclaimed task", err, "")
		if got.Status != commonops.StatusFailed || got.RetryCount != 0 {
			t.Fatalf("after fail: got status %s retryCount %d, want failed 0 (no retry)", got.Status, got.RetryCount)
		}
	})
}

func TestLeadership(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		e := newEnv(t, s)
		ctx := context.Background()
		lead := func(holder string) bool {
			t.Helper()
			ok, err := e.svc.TryLead(ctx, "test", holder, time.Minute)
			if err != nil {
				t.Fatalf("try lead %s: %v", holder, err)
			}
			return ok
		}
		if !lead("a") {
			t.Fatal("a, first: got follower, want leader")
		}
		if lead("b") {
			t.Fatal("b while a leads: got leader, want follower")
		}
		if err := e.svc.Resign(ctx, "test", "a"); err != nil {
			t.Fatalf("resign a: %v", err)
		}
		if !lead("b") {
			t.Fatal("b after a resigned: got follower, want leader")
		}
	})
}

func TestPruneOutbox(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		e := newEnv(t, s)
		ctx := context.Background()
		for range 3 {
			e.create(t, commonops.CreateInput{TaskType: "import", EntityType: "x"})
		}
		sent, err := s.DeliverOutbox(ctx, 100, func(_ context.Context, msgs []outbox.Message) (int, error) { return len(msgs), nil })
		if err != nil || sent != 3 {
			t.Fatalf("deliver outbox: got %d, %v, want 3 sent", sent, err)
		}
		if n, err := e.svc.PruneOutbox(ctx, time.Now().Add(-time.Hour), 100); err != nil || n != 0 {
			t.Fatalf("prune rows sent before an hour ago: got %d, %v, want 0", n, err)
		}
		if n, err := e.svc.PruneOutbox(ctx, time.Now().Add(time.Hour), 2); err != nil || n != 2 {
			t.Fatalf("prune with limit 2: got %d, %v, want 2", n, err)
		}
		if n, err := e.svc.PruneOutbox(ctx, time.Now().Add(time.Hour), 100); err != nil || n != 1 {
			t.Fatalf("prune the rest: got %d, %v, want 1", n, err)
		}
	})
}
