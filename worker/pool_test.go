package worker_test

import (
	"context"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/maintenance"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/worker"
)

func TestConcurrentClaimsOneWinner(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		svc := newService(t, s, 30*time.Second)
		task := create(t, svc, commonops.CreateInput{TaskType: "import", EntityType: "product"})
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := svc.Claim(context.Background(), tenant, task.ID, "w"+string(rune('a'+i)), 0)
				switch {
				case err == nil:
					wins.Add(1)
				case operations.IsConflict(err):
					conflicts.Add(1)
				default:
					t.Errorf("claim: got error %v, want nil or a conflict", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != 19 {
			t.Fatalf("got %d wins and %d conflicts, want 1 and 19", wins.Load(), conflicts.Load())
		}
		if got := get(t, svc, task.ID); got.Status != commonops.StatusProcessing || got.Attempt != 1 {
			t.Fatalf("got status %s attempt %d, want processing attempt 1", got.Status, got.Attempt)
		}
	})
}

// TestPoolRunsTask covers the happy path: input, output, logs, many
// throttled reports, and that the final state is never lost.
func TestPoolRunsTask(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		svc := newService(t, s, 30*time.Second)
		const n = 500
		reg := worker.NewRegistry()
		reg.Register("count", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			in, err := job.Input(ctx)
			if err != nil {
				return err
			}
			b, err := io.ReadAll(in)
			in.Close()
			if err != nil {
				return err
			}
			job.Report(worker.Update{TotalItems: ptr(int64(n))})
			for i := 1; i <= n; i++ {
				job.Report(worker.Update{ProcessedItems: ptr(int64(i)), SuccessItems: ptr(int64(i))})
				if i%100 == 0 {
					job.Log(commonops.LogInfo, "hundred done", map[string]int{"i": i})
				}
			}
			out, err := job.Output(ctx, "result.txt", "text/plain")
			if err != nil {
				return err
			}
			if _, err := io.WriteString(out, strings.ToUpper(string(b))); err != nil {
				return err
			}
			return out.Close()
		}))
		// A long report interval: only the final write can carry the last counts.
		startPool(t, context.Background(), svc, reg, func(c *worker.Config) { c.ReportInterval = time.Hour })

		c, _, err := svc.Create(context.Background(), operations.CreateRequest{TenantID: tenant, Input: commonops.CreateInput{TaskType: "count", EntityType: "line", FileName: ptr("in.txt")}})
		if err != nil {
			t.Fatal(err)
		}
		w, err := svc.Objects.Create(context.Background(), objectstore.InputKey(c.Task.ID, "in.txt"), "text/plain")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "hello")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.ConfirmUpload(context.Background(), tenant, c.Task.ID); err != nil {
			t.Fatal(err)
		}
		done := waitStatus(t, svc, c.Task.ID, commonops.StatusCompleted, 10*time.Second)
		if done.ProcessedItems != n || done.SuccessItems != n || deref(done.TotalItems) != int64(n) || done.Progress != 100 {
			t.Errorf("got processed %d success %d total %v progress %v, want %d %d %d 100", done.ProcessedItems, done.SuccessItems, deref(done.TotalItems), done.Progress, n, n, n)
		}
		if deref(done.OutputFileName) != "result.txt" {
			t.Errorf("got outputFileName %v, want result.txt", deref(done.OutputFileName))
		}
		r, err := svc.Objects.Open(context.Background(), objectstore.OutputKey(done.ID, "result.txt"))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if string(got) != "HELLO" {
			t.Errorf("got output %q, want HELLO", got)
		}
		logs, total, err := svc.Logs(context.Background(), commonops.LogFilter{TenantID: tenant, TaskID: done.ID, Page: 1, PageSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		if total != n/100 || len(logs) != n/100 || logs[0].Attempt != 1 {
			t.Errorf("got %d logs (total %d), want %d of attempt 1", len(logs), total, n/100)
		}
	})
}

// TestKilledWorkerRescued kills a pool mid-task (its context is cancelled:
// nothing more is written), lets maintenance rescue the task after the
// lease, has a second pool complete it, and checks the zombie's late write
// is refused.
func TestKilledWorkerRescued(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		const lease = time.Second
		svc := newService(t, s, lease)
		started := make(chan struct{}, 1)
		blocking := worker.NewRegistry()
		blocking.Register("slow", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}))
		killCtx, kill := context.WithCancel(context.Background())
		zombie := startPool(t, killCtx, svc, blocking, nil)

		task := create(t, svc, commonops.CreateInput{TaskType: "slow", EntityType: "x"})
		<-started
		kill()
		killedAt := time.Now()
		waitFor(t, "the killed pool to halt", 5*time.Second, func() bool { return zombie.Running() == 0 })

		m := maintenance.New(maintenance.Config{Service: svc, Interval: 50 * time.Millisecond, LeaderTTL: 2 * time.Second, Logger: quiet(t)})
		m.Start(context.Background())
		t.Cleanup(m.Stop)
		done := worker.NewRegistry()
		done.Register("slow", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error { return nil }))
		startPool(t, context.Background(), svc, done, nil)

		final := waitStatus(t, svc, task.ID, commonops.StatusCompleted, lease+10*time.Second)
		detected := time.Since(killedAt)
		t.Logf("dead worker: task re-run and completed %s after the kill (lease %s, goal <= lease+5s)", detected.Round(time.Millisecond), lease)
		if final.Attempt != 2 || final.RetryCount != 1 {
			t.Errorf("got attempt %d retryCount %d, want 2 and 1", final.Attempt, final.RetryCount)
		}
		var expired bool
		for _, e := range events(t, svc, task.ID) {
			expired = expired || e.EventType == commonops.EventLeaseExpired
		}
		if !expired {
			t.Errorf("got no %s event, want one", commonops.EventLeaseExpired)
		}
		_, err := svc.Progress(context.Background(), tenant, task.ID, commonops.Progress{Attempt: ptr(1), ProcessedItems: ptr(int64(5))})
		if commonops.ErrorCode(err) != commonops.ECONFLICT {
			t.Fatalf("zombie progress: got %v, want a conflict", err)
		}
		if got := get(t, svc, task.ID); got.Status != commonops.StatusCompleted || got.ProcessedItems != 0 {
			t.Fatalf("after zombie write: got status %s processed %d, want completed and 0", got.Status, got.ProcessedItems)
		}
	})
}

// TestCancelStopsProcessor cancels a running task, delivers the cancelled
// event as the bus would, and checks the processor returns at once and the
// task is not retried.
func TestCancelStopsProcessor(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		for _, viaEvent := range []bool{true, false} {
			name := "event"
			if !viaEvent {
				name = "heartbeat"
			}
			t.Run(name, func(t *testing.T) {
				svc := newService(t, s, 30*time.Second)
				started := make(chan struct{}, 1)
				stopped := make(chan time.Time, 1)
				var causeSeen atomic.Value
				reg := worker.NewRegistry()
				reg.Register("long", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
					started <- struct{}{}
					<-ctx.Done()
					causeSeen.Store(context.Cause(ctx)) // before the test hears of the stop
					stopped <- time.Now()
					return ctx.Err()
				}))
				pool := startPool(t, context.Background(), svc, reg, func(c *worker.Config) { c.HeartbeatInterval = 100 * time.Millisecond })
				task := create(t, svc, commonops.CreateInput{TaskType: "long", EntityType: "x", MaxRetries: ptr(3)})
				<-started
				at := time.Now()
				cancelled, err := svc.Cancel(context.Background(), tenant, task.ID)
				if err != nil {
					t.Fatal(err)
				}
				if viaEvent {
					if err := pool.HandleEvent(context.Background(), commonops.TopicCancelled, cancelled); err != nil {
						t.Fatal(err)
					}
				}
				var stop time.Time
				select {
				case stop = <-stopped:
				case <-time.After(5 * time.Second):
					t.Fatal("processor still running 5s after the cancel")
				}
				t.Logf("cancel to processor stop (%s): %s", name, stop.Sub(at))
				if c, _ := causeSeen.Load().(error); !errors.Is(c, worker.ErrTaskCancelled) {
					t.Errorf("got context cause %v, want ErrTaskCancelled", c)
				}
				waitFor(t, "the pool to finish the task", 5*time.Second, func() bool { return pool.Running() == 0 })
				got := get(t, svc, task.ID)
				if got.Status != commonops.StatusCancelled || got.RetryCount != 0 || got.Attempt != 1 {
					t.Fatalf("got status %s retryCount %d attempt %d, want cancelled 0 1", got.Status, got.RetryCount, got.Attempt)
				}
			})
		}
	})
}

// TestRetriesBackOff fails every attempt: the delay before each retry grows
// and the task fails for good after maxRetries retries.
func TestRetriesBackOff(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		svc := newService(t, s, 30*time.Second)
		var calls atomic.Int32
		reg := worker.NewRegistry()
		reg.Register("flaky", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			calls.Add(1)
			return errors.New("upstream said no")
		}))
		startPool(t, context.Background(), svc, reg, nil)
		task := create(t, svc, commonops.CreateInput{TaskType: "flaky", EntityType: "x", MaxRetries: ptr(3)})
		final := waitStatus(t, svc, task.ID, commonops.StatusFailed, 10*time.Second)
		if calls.Load() != 4 || final.RetryCount != 3 || final.Attempt != 4 {
			t.Fatalf("got %d runs, retryCount %d, attempt %d; want 4, 3, 4", calls.Load(), final.RetryCount, final.Attempt)
		}
		if deref(final.ErrorMessage) != "upstream said no" {
			t.Errorf("got errorMessage %v, want the processor's error", deref(final.ErrorMessage))
		}
		var delays []time.Duration
		for _, e := range events(t, svc, task.ID) {
			if e.EventType != commonops.EventRetryScheduled {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, eventData(t, e)["availableAt"].(string))
			if err != nil {
				t.Fatal(err)
			}
			delays = append(delays, at.Sub(e.CreatedAt))
		}
		if len(delays) != 3 {
			t.Fatalf("got %d retry_scheduled events, want 3", len(delays))
		}
		if !sort.SliceIsSorted(delays, func(i, j int) bool { return delays[i] < delays[j] }) || delays[0] >= delays[1] || delays[1] >= delays[2] {
			t.Fatalf("got backoff delays %v, want strictly growing", delays)
		}
		if delays[0] < 40*time.Millisecond {
			t.Fatalf("got first backoff %v, want about 50ms (base 100ms x jitter 0.5)", delays[0])
		}
	})
}

func TestPermanentErrorNotRetried(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		svc := newService(t, s, 30*time.Second)
		var calls atomic.Int32
		reg := worker.NewRegistry()
		reg.Register("bad", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			calls.Add(1)
			return worker.Permanent(errors.New("column sku missing"))
		}))
		pool := startPool(t, context.Background(), svc, reg, nil)
		task := create(t, svc, commonops.CreateInput{TaskType: "bad", EntityType: "x", MaxRetries: ptr(5)})
		final := waitStatus(t, svc, task.ID, commonops.StatusFailed, 10*time.Second)
		waitFor(t, "the pool to go idle", 5*time.Second, func() bool { return pool.Running() == 0 })
		if calls.Load() != 1 || final.RetryCount != 0 || deref(final.ErrorMessage) != "column sku missing" {
			t.Fatalf("got %d runs, retryCount %d, error %v; want 1, 0, the processor's error", calls.Load(), final.RetryCount, deref(final.ErrorMessage))
		}
	})
}

func TestPanicFailsAttemptPoolSurvives(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		svc := newService(t, s, 30*time.Second)
		reg := worker.NewRegistry()
		reg.Register("boom", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			panic("index out of range [7]")
		}))
		reg.Register("ok", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error { return nil }))
		startPool(t, context.Background(), svc, reg, nil)
		bad := create(t, svc, commonops.CreateInput{TaskType: "boom", EntityType: "x", MaxRetries: ptr(0)})
		final := waitStatus(t, svc, bad.ID, commonops.StatusFailed, 10*time.Second)
		if msg := deref(final.ErrorMessage); msg != "processor panicked: index out of range [7]" {
			t.Errorf("got errorMessage %v, want the panic message", msg)
		}
		good := create(t, svc, commonops.CreateInput{TaskType: "ok", EntityType: "x"})
		waitStatus(t, svc, good.ID, commonops.StatusCompleted, 10*time.Second)
	})
}

// TestTypeConcurrency checks that a per-type cap holds while the pool has
// free slots.
func TestTypeConcurrency(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		svc := newService(t, s, 30*time.Second)
		var running, peak atomic.Int32
		release := make(chan struct{})
		reg := worker.NewRegistry()
		reg.Register("*", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-release
			running.Add(-1)
			return nil
		}))
		pool := startPool(t, context.Background(), svc, reg, func(c *worker.Config) {
			c.Concurrency = 8
			c.TypeConcurrency = map[string]int{"export": 2}
		})
		var ids []string
		for range 5 {
			ids = append(ids, create(t, svc, commonops.CreateInput{TaskType: "export", EntityType: "x"}).ID)
		}
		waitFor(t, "two exports to run", 5*time.Second, func() bool { return pool.Running() == 2 })
		time.Sleep(200 * time.Millisecond) // several poll rounds: none may start a third
		if got := peak.Load(); got != 2 {
			t.Fatalf("got %d exports at once, want the cap of 2", got)
		}
		close(release)
		for _, id := range ids {
			waitStatus(t, svc, id, commonops.StatusCompleted, 10*time.Second)
		}
	})
}

// TestCheckpointSurvivesAttempt saves a checkpoint, fails, and checks the
// next attempt sees it with its counts.
func TestCheckpointSurvivesAttempt(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		svc := newService(t, s, 30*time.Second)
		var seen atomic.Value
		reg := worker.NewRegistry()
		reg.Register("resume", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			task := job.Task()
			if task.Attempt == 1 {
				if err := job.Checkpoint(ctx, map[string]int{"row": 40}, worker.Update{ProcessedItems: ptr(int64(40))}); err != nil {
					return err
				}
				return errors.New("connection reset")
			}
			seen.Store(string(task.Checkpoint) + " " + strconv.FormatInt(task.ProcessedItems, 10))
			return nil
		}))
		startPool(t, context.Background(), svc, reg, nil)
		task := create(t, svc, commonops.CreateInput{TaskType: "resume", EntityType: "x"})
		waitStatus(t, svc, task.ID, commonops.StatusCompleted, 10*time.Second)
		if got := seen.Load(); got != `{"row":40} 40` {
			t.Fatalf("second attempt saw %v, want checkpoint {\"row\":40} and 40 processed", got)
		}
	})
}
