package worker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/worker"
)

// gateStore is a real store whose next UpdateTask or ClaimTask, once armed,
// waits for the test to open the gate (its next UpdateTaskFrom, the
// in-process worker's reports and outcomes, with armFrom); it counts
// ClaimNext calls.
type gateStore struct {
	store.Store
	next       atomic.Pointer[gate]
	nextFrom   atomic.Pointer[gate]
	nextPoll   atomic.Pointer[gate] // holds back the next ClaimNext's answer
	claimNexts atomic.Int32
	claimTasks atomic.Int32
}

type gate struct{ entered, open chan struct{} }

// arm makes the next UpdateTask or ClaimTask wait for the returned gate's
// open.
func (s *gateStore) arm() *gate {
	g := &gate{entered: make(chan struct{}), open: make(chan struct{})}
	s.next.Store(g)
	return g
}

// armFrom makes the next UpdateTaskFrom wait for the returned gate's open.
func (s *gateStore) armFrom() *gate {
	g := &gate{entered: make(chan struct{}), open: make(chan struct{})}
	s.nextFrom.Store(g)
	return g
}

func (s *gateStore) UpdateTaskFrom(ctx context.Context, known *commonops.Task, fn func(*commonops.Task) (commonops.Change, error)) (*commonops.Task, error) {
	if g := s.nextFrom.Swap(nil); g != nil {
		close(g.entered)
		<-g.open
	}
	return s.Store.UpdateTaskFrom(ctx, known, fn)
}

// pass waits at the armed gate, if any, once.
func (s *gateStore) pass() {
	if g := s.next.Swap(nil); g != nil {
		close(g.entered)
		<-g.open
	}
}

func (s *gateStore) UpdateTask(ctx context.Context, tenant, id string, fn func(*commonops.Task) (commonops.Change, error)) (*commonops.Task, error) {
	s.pass()
	return s.Store.UpdateTask(ctx, tenant, id, fn)
}

func (s *gateStore) ClaimTask(ctx context.Context, tenant, id string, p store.ClaimParams) (*commonops.Task, error) {
	defer s.claimTasks.Add(1)
	s.pass()
	return s.Store.ClaimTask(ctx, tenant, id, p)
}

func (s *gateStore) ClaimNext(ctx context.Context, p store.ClaimParams) ([]*commonops.Task, error) {
	defer s.claimNexts.Add(1)
	if g := s.nextPoll.Swap(nil); g != nil {
		// The query runs first: the gate holds its answer back.
		tasks, err := s.Store.ClaimNext(ctx, p)
		close(g.entered)
		<-g.open
		return tasks, err
	}
	return s.Store.ClaimNext(ctx, p)
}

// TestStopWaitsForEventClaim calls Stop while HandleEvent is claiming: Stop
// must wait for that claim and for the task it launches, which runs with a
// live context and completes.
func TestStopWaitsForEventClaim(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		gs := &gateStore{Store: s}
		svc := newService(t, gs, 30*time.Second)
		reg := worker.NewRegistry()
		reg.Register("quick", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			return context.Cause(ctx) // nil unless the pool already stopped it
		}))
		pool := startPool(t, ctx, svc, reg, func(c *worker.Config) { c.PollInterval = time.Hour })
		waitFor(t, "the poller's first round", 5*time.Second, func() bool { return gs.claimNexts.Load() >= 1 })
		task := create(t, svc, commonops.CreateInput{TaskType: "quick", EntityType: "x", MaxRetries: ptr(0)})

		g := gs.arm()
		handled := make(chan error, 1)
		go func() { handled <- pool.HandleEvent(ctx, commonops.TopicCreated, task) }()
		select {
		case <-g.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("HandleEvent did not try to claim within 5s")
		}
		stopped := make(chan struct{})
		go func() { pool.Stop(); close(stopped) }()
		select {
		case <-stopped:
			close(g.open)
			<-handled
			t.Fatal("Stop returned while HandleEvent was still claiming, want it to wait")
		case <-time.After(200 * time.Millisecond):
		}
		close(g.open)
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Fatal("Stop still waiting 10s after the claim went through")
		}
		if err := <-handled; err != nil {
			t.Fatalf("HandleEvent: got %v, want nil", err)
		}
		if got := get(t, svc, task.ID); got.Status != commonops.StatusCompleted || got.Attempt != 1 {
			t.Fatalf("after Stop: got status %s attempt %d (error %v), want completed 1", got.Status, got.Attempt, deref(got.ErrorMessage))
		}
		if got := pool.Running(); got != 0 {
			t.Fatalf("after Stop: got Running %d, want 0", got)
		}
	})
}

// TestStopTimeoutReleasesTasks stops a pool whose processor only returns
// once its context ends: after the grace it is cancelled and its task goes
// back to pending without using a retry.
func TestStopTimeoutReleasesTasks(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		svc := newService(t, s, 30*time.Second)
		started := make(chan struct{}, 1)
		var cause atomic.Value
		reg := worker.NewRegistry()
		reg.Register("stuck", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			job.Log(commonops.LogInfo, "started", nil)
			started <- struct{}{}
			<-ctx.Done()
			cause.Store(context.Cause(ctx))
			return ctx.Err()
		}))
		pool := startPool(t, ctx, svc, reg, func(c *worker.Config) { c.StopTimeout = 100 * time.Millisecond })
		task := create(t, svc, commonops.CreateInput{TaskType: "stuck", EntityType: "x", MaxRetries: ptr(0)})
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("task not started within 5s")
		}
		pool.Stop()
		if c, _ := cause.Load().(error); !errors.Is(c, worker.ErrShutdown) {
			t.Errorf("got context cause %v, want ErrShutdown", c)
		}
		got := get(t, svc, task.ID)
		if got.Status != commonops.StatusPending || got.RetryCount != 0 || got.Attempt != 1 || got.LeaseOwner != nil {
			t.Fatalf("after Stop: got status %s retryCount %d attempt %d leaseOwner %v (error %v), want pending 0 1 none",
				got.Status, got.RetryCount, got.Attempt, deref(got.LeaseOwner), deref(got.ErrorMessage))
		}
		evs := events(t, svc, task.ID)
		if last := evs[len(evs)-1].EventType; last != commonops.EventReleased {
			t.Errorf("got last event %s, want %s", last, commonops.EventReleased)
		}
		logs, _, err := svc.Logs(ctx, commonops.LogFilter{TenantID: tenant, TaskID: task.ID, Page: 1, PageSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) != 1 || logs[0].Message != "started" {
			t.Errorf("got logs %v, want the processor's one line", logs)
		}
	})
}

// TestEventForTaskAlreadyRunningIsIgnored: when the poller claimed a task
// before its created event came, the event costs no claim attempt.
func TestEventForTaskAlreadyRunningIsIgnored(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		gs := &gateStore{Store: s}
		svc := newService(t, gs, 30*time.Second)
		started, release := make(chan struct{}), make(chan struct{})
		reg := worker.NewRegistry()
		reg.Register("held", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			close(started)
			<-release
			return nil
		}))
		pool := startPool(t, ctx, svc, reg, func(c *worker.Config) { c.PollInterval = 20 * time.Millisecond })
		var once sync.Once
		letGo := func() { once.Do(func() { close(release) }) }
		t.Cleanup(letGo) // before the pool's Stop, should the test fail early
		task := create(t, svc, commonops.CreateInput{TaskType: "held", EntityType: "x"})
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("the poller did not start the task within 5s")
		}
		if err := pool.HandleEvent(ctx, commonops.TopicCreated, task); err != nil {
			t.Fatalf("HandleEvent: %v", err)
		}
		if n := gs.claimTasks.Load(); n != 0 {
			t.Fatalf("ClaimTask calls for a task the pool runs: got %d, want 0", n)
		}
		letGo()
		waitFor(t, "the task to complete", 5*time.Second, func() bool { return get(t, svc, task.ID).Status == commonops.StatusCompleted })
	})
}

// TestEventDuringPollRoundIsNotLost: while a poll round queries, it holds
// the pool's free slots, and an event for a task created too late for that
// query finds none. The event waits for the round to give the slots back
// and starts its task itself (here the poller would otherwise wait an
// hour).
func TestEventDuringPollRoundIsNotLost(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		gs := &gateStore{Store: s}
		g := &gate{entered: make(chan struct{}), open: make(chan struct{})}
		gs.nextPoll.Store(g) // the first round, at Start
		svc := newService(t, gs, 30*time.Second)
		reg := worker.NewRegistry()
		reg.Register("quick", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error { return nil }))
		pool := startPool(t, ctx, svc, reg, func(c *worker.Config) { c.PollInterval = time.Hour })
		var once sync.Once
		t.Cleanup(func() { once.Do(func() { close(g.open) }) }) // before the pool's Stop
		select {
		case <-g.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("the first poll round did not start within 5s")
		}
		task := create(t, svc, commonops.CreateInput{TaskType: "quick", EntityType: "x"})
		handled := make(chan error, 1)
		go func() { handled <- pool.HandleEvent(ctx, commonops.TopicCreated, task) }()
		select {
		case err := <-handled:
			t.Fatalf("HandleEvent returned (%v) while the poll round held every slot; want it to wait for the round", err)
		case <-time.After(100 * time.Millisecond):
		}
		once.Do(func() { close(g.open) })
		if err := <-handled; err != nil {
			t.Fatalf("HandleEvent: %v", err)
		}
		waitFor(t, "the task to complete", 5*time.Second, func() bool { return get(t, svc, task.ID).Status == commonops.StatusCompleted })
		if rounds, claims := gs.claimNexts.Load(), gs.claimTasks.Load(); rounds != 1 || claims != 1 {
			t.Errorf("got %d poll rounds and %d event claims, want 1 and 1: the event, not another round, starts the task", rounds, claims)
		}
	})
}

// TestLateEventLeavesTheClaimToThePoller: an event that comes more than
// worker.LateEvent after its task's change shows the events lag behind the
// tasks; the pool does not claim from it but wakes the poller, which claims
// the task (and whatever else waits behind the late events).
func TestLateEventLeavesTheClaimToThePoller(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		gs := &gateStore{Store: s}
		svc := newService(t, gs, 30*time.Second)
		reg := worker.NewRegistry()
		reg.Register("quick", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error { return nil }))
		pool := startPool(t, ctx, svc, reg, func(c *worker.Config) { c.PollInterval = time.Hour })
		waitFor(t, "the first poll round", 5*time.Second, func() bool { return gs.claimNexts.Load() == 1 })
		task := create(t, svc, commonops.CreateInput{TaskType: "quick", EntityType: "x"})
		late := *task
		late.UpdatedAt = time.Now().Add(-2 * worker.LateEvent)
		if err := pool.HandleEvent(ctx, commonops.TopicCreated, &late); err != nil {
			t.Fatalf("HandleEvent: %v", err)
		}
		waitFor(t, "the task to complete", 5*time.Second, func() bool { return get(t, svc, task.ID).Status == commonops.StatusCompleted })
		if rounds, claims := gs.claimNexts.Load(), gs.claimTasks.Load(); rounds != 2 || claims != 0 {
			t.Errorf("got %d poll rounds and %d event claims, want 2 and 0: the late event wakes the poller instead of claiming", rounds, claims)
		}
	})
}
