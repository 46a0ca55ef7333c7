package maintenance_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/maintenance"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
)

// quietLog drops the runners' logs.
var quietLog = slog.New(slog.DiscardHandler)

const tenant = commonops.DefaultTenant

// clock is a settable clock shared by the Service and the Runner.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

type env struct {
	svc    *operations.Service
	objs   *objectstore.Local
	clock  *clock
	runner *maintenance.Runner
	reg    *prometheus.Registry
}

// newEnv returns a Service and a Runner on s sharing an injected clock that
// starts at the real now (the store dates leadership with its own clock).
func newEnv(t *testing.T, s store.Store, mod func(*maintenance.Config)) *env {
	t.Helper()
	objs, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: t.TempDir(), Secret: []byte("maintenance-test-secret-0123456"), BaseURL: "http://files.invalid"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { objs.Close() })
	c := &clock{now: time.Now().UTC().Truncate(time.Millisecond)}
	svc := &operations.Service{Store: s, Objects: objs, Now: c.Now, Rand: func() float64 { return 0 }}
	reg := prometheus.NewRegistry()
	cfg := maintenance.Config{Service: svc, Now: c.Now, Logger: quietLog, Registerer: reg, Holder: "h-" + t.Name()}
	if mod != nil {
		mod(&cfg)
	}
	return &env{svc: svc, objs: objs, clock: c, runner: maintenance.New(cfg), reg: reg}
}

func (e *env) create(t *testing.T, in commonops.CreateInput) *commonops.Task {
	t.Helper()
	c, _, err := e.svc.Create(context.Background(), operations.CreateRequest{TenantID: tenant, Requester: "test", Input: in})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return c.Task
}

func (e *env) get(t *testing.T, id string) *commonops.Task {
	t.Helper()
	task, err := e.svc.Get(context.Background(), tenant, id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return task
}

func (e *env) tick(t *testing.T) {
	t.Helper()
	lead, err := e.runner.Tick(context.Background())
	if err != nil {
		t.Fatalf("tick: %v", err)
	}
	if !lead {
		t.Fatal("tick: got follower, want leader")
	}
}

func (e *env) count(job string) float64 {
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "commonops_maintenance_tasks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "job" && l.GetValue() == job {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func ptr[T any](v T) *T { return &v }

func TestPromoteOnTime(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		e := newEnv(t, s, nil)
		at := e.clock.Now().Add(time.Hour)
		task := e.create(t, commonops.CreateInput{TaskType: "report", EntityType: "x", ScheduledAt: &at})
		if task.Status != commonops.StatusScheduled {
			t.Fatalf("got status %s, want scheduled", task.Status)
		}
		e.clock.Set(at.Add(-time.Second))
		e.tick(t)
		if got := e.get(t, task.ID).Status; got != commonops.StatusScheduled {
			t.Fatalf("a second early: got %s, want scheduled", got)
		}
		e.clock.Set(at)
		e.tick(t)
		if got := e.get(t, task.ID).Status; got != commonops.StatusPending {
			t.Fatalf("on time: got %s, want pending", got)
		}
		if got := e.count(maintenance.JobPromote); got != 1 {
			t.Fatalf("got promote count %v, want 1", got)
		}
	})
}

func TestRescueLapsedLease(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		e := newEnv(t, s, nil)
		retry := e.create(t, commonops.CreateInput{TaskType: "a", EntityType: "x", MaxRetries: ptr(1)})
		last := e.create(t, commonops.CreateInput{TaskType: "a", EntityType: "x", MaxRetries: ptr(0)})
		for _, id := range []string{retry.ID, last.ID} {
			if _, err := e.svc.Claim(context.Background(), tenant, id, "gone", 10); err != nil {
				t.Fatal(err)
			}
		}
		e.clock.Set(e.clock.Now().Add(9 * time.Second))
		e.tick(t)
		if got := e.get(t, retry.ID).Status; got != commonops.StatusProcessing {
			t.Fatalf("before the lease ends: got %s, want processing", got)
		}
		e.clock.Set(e.clock.Now().Add(2 * time.Second))
		e.tick(t)
		if got := e.get(t, retry.ID); got.Status != commonops.StatusPending || got.RetryCount != 1 || got.AvailableAt == nil {
			t.Fatalf("retries left: got %s retryCount %d availableAt %v, want pending 1 set", got.Status, got.RetryCount, got.AvailableAt)
		}
		if got := e.get(t, last.ID); got.Status != commonops.StatusFailed || !strings.Contains(*got.ErrorMessage, "lease") {
			t.Fatalf("no retries left: got %s (%v), want failed with a lease message", got.Status, got.ErrorMessage)
		}
	})
}

func TestFailUnclaimed(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		e := newEnv(t, s, func(c *maintenance.Config) { c.UnclaimedTimeout = 10 * time.Minute })
		orphan := e.create(t, commonops.CreateInput{TaskType: "nobody-runs-this", EntityType: "x"})
		waiting := e.create(t, commonops.CreateInput{TaskType: "nobody-runs-this", EntityType: "x", FileName: ptr("in.csv")})
		paused := e.create(t, commonops.CreateInput{TaskType: "held", EntityType: "x"})
		limited := e.create(t, commonops.CreateInput{TaskType: "limited", EntityType: "x"})
		for tt, fn := range map[string]func(*commonops.FlowControl) error{
			"held":    func(fc *commonops.FlowControl) error { fc.Paused = true; return nil },
			"limited": func(fc *commonops.FlowControl) error { fc.Limit = 1; return nil },
		} {
			if _, err := s.UpdateFlowControl(context.Background(), "", tt, e.clock.Now(), fn); err != nil {
				t.Fatal(err)
			}
		}
		start := e.clock.Now()
		e.clock.Set(start.Add(9 * time.Minute))
		e.tick(t)
		if got := e.get(t, orphan.ID).Status; got != commonops.StatusPending {
			t.Fatalf("after 9m: got %s, want pending", got)
		}
		e.clock.Set(start.Add(10*time.Minute + time.Second))
		e.tick(t)
		got := e.get(t, orphan.ID)
		if got.Status != commonops.StatusFailed || !strings.Contains(*got.ErrorMessage, "no worker claimed") {
			t.Fatalf("after 10m: got %s (%v), want failed as unclaimed", got.Status, got.ErrorMessage)
		}
		// A queue held back on purpose is not one nobody serves.
		for _, tk := range []*commonops.Task{paused, limited} {
			if got := e.get(t, tk.ID).Status; got != commonops.StatusPending {
				t.Fatalf("task of held-back type %s after 10m: got %s, want pending", tk.TaskType, got)
			}
		}
		// A task waiting for its upload is the upload expiry's business.
		if w := e.get(t, waiting.ID); w.ErrorMessage != nil && strings.Contains(*w.ErrorMessage, "no worker claimed") {
			t.Fatalf("task awaiting its upload was failed as unclaimed")
		}
	})
}

func TestUploadSweepAndExpiry(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		e := newEnv(t, s, nil)
		arrived := e.create(t, commonops.CreateInput{TaskType: "import", EntityType: "x", FileName: ptr("in.csv")})
		never := e.create(t, commonops.CreateInput{TaskType: "import", EntityType: "x", FileName: ptr("in.csv")})
		w, err := e.objs.Create(context.Background(), objectstore.InputKey(arrived.ID, "in.csv"), "text/csv")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "sku\n1\n")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		e.tick(t)
		if got := e.get(t, arrived.ID).UploadStatus; got != commonops.UploadUploaded {
			t.Fatalf("object present: got upload %s, want uploaded", got)
		}
		if got := e.get(t, never.ID).UploadStatus; got != commonops.UploadAwaiting {
			t.Fatalf("object absent: got upload %s, want awaiting", got)
		}
		e.clock.Set(never.UploadExpiresAt.Add(operations.UploadGraceDefault + time.Second))
		e.tick(t)
		got := e.get(t, never.ID)
		if got.Status != commonops.StatusFailed || got.UploadStatus != commonops.UploadExpired {
			t.Fatalf("after expiry: got %s/%s, want failed/expired", got.Status, got.UploadStatus)
		}
	})
}

func TestRetentionDeletesRowsAndFiles(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		e := newEnv(t, s, nil)
		done := e.create(t, commonops.CreateInput{TaskType: "export", EntityType: "x"})
		claimed, err := e.svc.Claim(ctx, tenant, done.ID, "w", 0)
		if err != nil {
			t.Fatal(err)
		}
		w, err := e.objs.Create(ctx, objectstore.OutputKey(done.ID, "out.csv"), "text/csv")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "x\n")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		completed := commonops.StatusCompleted
		if _, err := e.svc.Progress(ctx, tenant, done.ID, commonops.Progress{Attempt: &claimed.Attempt, Status: &completed, OutputFileName: ptr("out.csv")}); err != nil {
			t.Fatal(err)
		}
		failed := e.create(t, commonops.CreateInput{TaskType: "export", EntityType: "x", MaxRetries: ptr(0)})
		c2, err := e.svc.Claim(ctx, tenant, failed.ID, "w", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.FailAttempt(ctx, tenant, failed.ID, c2.Attempt, "broken", true); err != nil {
			t.Fatal(err)
		}
		cancelled := e.create(t, commonops.CreateInput{TaskType: "export", EntityType: "x"})
		if _, err := e.svc.Cancel(ctx, tenant, cancelled.ID); err != nil {
			t.Fatal(err)
		}
		start := e.clock.Now()

		e.clock.Set(start.Add(29 * 24 * time.Hour))
		e.tick(t)
		for _, id := range []string{done.ID, failed.ID, cancelled.ID} {
			e.get(t, id) // still there
		}
		e.clock.Set(start.Add(31 * 24 * time.Hour))
		e.tick(t)
		for _, id := range []string{done.ID, cancelled.ID} {
			if _, err := e.svc.Get(ctx, tenant, id); commonops.ErrorCode(err) != commonops.ENOTFOUND {
				t.Fatalf("after 31 days: get %s: got %v, want not found", id, err)
			}
		}
		if _, err := e.objs.Stat(ctx, objectstore.OutputKey(done.ID, "out.csv")); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("after 31 days: output file: got %v, want not found", err)
		}
		e.get(t, failed.ID) // failed tasks are kept 90 days
		e.clock.Set(start.Add(91 * 24 * time.Hour))
		e.tick(t)
		if _, err := e.svc.Get(ctx, tenant, failed.ID); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("after 91 days: got %v, want not found", err)
		}
		if got := e.count(maintenance.JobRetention); got != 3 {
			t.Fatalf("got retention count %v, want 3", got)
		}
	})
}

// TestOneLeader runs two runners on one store: exactly one leads, and the
// other takes over when the leader stops.
func TestOneLeader(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		mk := func(holder string) *maintenance.Runner {
			svc := &operations.Service{Store: s}
			// Stop resigns, so the takeover below does not wait for the TTL;
			// a long one keeps a slow tick on a loaded machine from looking
			// like a lapse.
			return maintenance.New(maintenance.Config{Service: svc, Holder: holder, LeaderTTL: 5 * time.Second, Interval: 50 * time.Millisecond, Logger: quietLog})
		}
		a, b := mk("a"), mk("b")
		a.Start(context.Background())
		b.Start(context.Background())
		t.Cleanup(a.Stop)
		t.Cleanup(b.Stop)
		deadline := time.Now().Add(5 * time.Second)
		for !a.Leader() && !b.Leader() {
			if time.Now().After(deadline) {
				t.Fatal("no leader after 5s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Several ticks later there is still exactly one.
		for range 10 {
			time.Sleep(30 * time.Millisecond)
			if a.Leader() == b.Leader() {
				t.Fatalf("got leaders a=%v b=%v, want exactly one", a.Leader(), b.Leader())
			}
		}
		leader, other := a, b
		if b.Leader() {
			leader, other = b, a
		}
		leader.Stop()
		deadline = time.Now().Add(3 * time.Second)
		for !other.Leader() {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not take over within 3s of %s stopping", other.Holder(), leader.Holder())
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestStopResignsAfterAFailedTick: a leader whose last tick failed (as one
// cut short by the stop does) still gives the leadership up when it stops,
// so another runner takes over at once rather than after the TTL.
func TestStopResignsAfterAFailedTick(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		svc := &operations.Service{Store: s}
		a := maintenance.New(maintenance.Config{Service: svc, Holder: "a", LeaderTTL: time.Hour, Interval: time.Hour, Logger: quietLog})
		b := maintenance.New(maintenance.Config{Service: svc, Holder: "b", LeaderTTL: time.Hour, Logger: quietLog})
		if lead, err := a.Tick(context.Background()); err != nil || !lead {
			t.Fatalf("a: got lead=%v err=%v, want leader", lead, err)
		}
		// The loop's first tick runs on a context already done, and fails.
		stopped, cancel := context.WithCancel(context.Background())
		cancel()
		a.Start(stopped)
		a.Stop()
		if lead, err := b.Tick(context.Background()); err != nil || !lead {
			t.Fatalf("b after a stopped: got lead=%v err=%v, want leader (a kept the leadership for its hour-long TTL)", lead, err)
		}
	})
}

// TestTakeoverAfterCrash: a leader that stops ticking without resigning is
// replaced once its TTL runs out.
func TestTakeoverAfterCrash(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		svc := &operations.Service{Store: s}
		// The TTL is long enough that b's first try, right after a's, finds
		// a still leading even on a loaded CI machine (300 ms was not: a
		// race-detector run once took longer between the two ticks).
		const ttl = 2 * time.Second
		a := maintenance.New(maintenance.Config{Service: svc, Holder: "a", LeaderTTL: ttl, Logger: quietLog})
		b := maintenance.New(maintenance.Config{Service: svc, Holder: "b", LeaderTTL: ttl, Logger: quietLog})
		ctx := context.Background()
		if lead, err := a.Tick(ctx); err != nil || !lead {
			t.Fatalf("a: got lead=%v err=%v, want leader", lead, err)
		}
		if lead, err := b.Tick(ctx); err != nil || lead {
			t.Fatalf("b while a leads: got lead=%v err=%v, want follower", lead, err)
		}
		deadline := time.Now().Add(3 * ttl)
		for {
			lead, err := b.Tick(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if lead {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("b did not take over within %s of a's %s TTL", 3*ttl, ttl)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if lead, _ := a.Tick(ctx); lead {
			t.Fatal("a: got leader after b took over, want follower")
		}
	})
}

// A job whose batches are all handled starts over at the oldest candidates:
// an old task that became due while newer ones kept the batches full is
// served at the next tick, not after the cursor has walked past the rest.
func TestOldDueTaskNotStarvedByNewerOnes(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		e := newEnv(t, s, func(c *maintenance.Config) { c.BatchSize = 2 })
		now := e.clock.Now()
		later := now.Add(time.Minute)
		old := e.create(t, commonops.CreateInput{TaskType: "report", EntityType: "x", ScheduledAt: &later})
		soon := now.Add(time.Second)
		var newer []*commonops.Task
		for range 6 {
			newer = append(newer, e.create(t, commonops.CreateInput{TaskType: "report", EntityType: "x", ScheduledAt: &soon}))
		}
		e.clock.Set(soon)
		e.tick(t) // promotes two of the newer ones
		e.clock.Set(later)
		e.tick(t)
		if got := e.get(t, old.ID).Status; got != commonops.StatusPending {
			t.Fatalf("old task one tick after it became due: got %s, want pending", got)
		}
		for range 3 {
			e.tick(t)
		}
		for _, n := range newer {
			if got := e.get(t, n.ID).Status; got != commonops.StatusPending {
				t.Fatalf("newer task %s: got %s, want pending", n.ID, got)
			}
		}
	})
}
