package startstop_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commonops/commonops/internal/startstop"
)

// wait fails the test when ch is not closed within a second.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatalf("%s: got nothing after 1s, want it done", what)
	}
}

// blocker is a run that signals its start and returns when its context ends.
type blocker struct {
	runs    atomic.Int32
	started chan struct{}
	ended   chan struct{}
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}, 10), ended: make(chan struct{}, 10)}
}

func (b *blocker) run(ctx context.Context) {
	b.runs.Add(1)
	b.started <- struct{}{}
	<-ctx.Done()
	b.ended <- struct{}{}
}

func TestStartReturnsAtOnceAndStopWaits(t *testing.T) {
	t.Parallel()
	var l startstop.Lifecycle
	b := newBlocker()
	if !l.Start(context.Background(), b.run) {
		t.Fatal("Start: got false, want true on a fresh Lifecycle")
	}
	<-b.started
	l.Stop()
	select {
	case <-b.ended:
	default:
		t.Fatal("Stop returned before the run did")
	}
}

func TestStartTwiceRunsOnce(t *testing.T) {
	t.Parallel()
	var l startstop.Lifecycle
	b := newBlocker()
	l.Start(context.Background(), b.run)
	if l.Start(context.Background(), b.run) {
		t.Fatal("second Start: got true, want false while running")
	}
	<-b.started
	l.Stop()
	if got := b.runs.Load(); got != 1 {
		t.Fatalf("runs: got %d, want 1", got)
	}
}

func TestStopWithoutStartAndTwice(t *testing.T) {
	t.Parallel()
	var l startstop.Lifecycle
	done := make(chan struct{})
	go func() {
		l.Stop()
		l.Stop()
		close(done)
	}()
	wait(t, done, "Stop without Start")

	b := newBlocker()
	l.Start(context.Background(), b.run)
	l.Stop()
	stopped := make(chan struct{})
	go func() { l.Stop(); close(stopped) }()
	wait(t, stopped, "second Stop")
}

func TestRestartAfterStop(t *testing.T) {
	t.Parallel()
	var l startstop.Lifecycle
	b := newBlocker()
	l.Start(context.Background(), b.run)
	l.Stop()
	if !l.Start(context.Background(), b.run) {
		t.Fatal("Start after Stop: got false, want true")
	}
	<-b.started
	<-b.started
	l.Stop()
	if got := b.runs.Load(); got != 2 {
		t.Fatalf("runs: got %d, want 2", got)
	}
}

func TestParentContextEndsTheRun(t *testing.T) {
	t.Parallel()
	var l startstop.Lifecycle
	b := newBlocker()
	ctx, cancel := context.WithCancel(context.Background())
	l.Start(ctx, b.run)
	<-b.started
	cancel()
	ended := make(chan struct{})
	go func() { <-b.ended; close(ended) }()
	wait(t, ended, "run after its parent context ended")

	// The run ended on its own: Start is still a no-op until Stop.
	if l.Start(context.Background(), b.run) {
		t.Fatal("Start after the parent ended, before Stop: got true, want false")
	}
	l.Stop()
	if !l.Start(context.Background(), b.run) {
		t.Fatal("Start after Stop: got false, want true")
	}
	l.Stop()
}

func TestStartInitSetsUpBeforeTheRun(t *testing.T) {
	t.Parallel()
	var l startstop.Lifecycle
	var mu sync.Mutex
	ready := false
	sawReady := make(chan bool, 1)

	runCtx, stopped, ok := l.StartInit(context.Background())
	if !ok {
		t.Fatal("StartInit: got ok=false, want true on a fresh Lifecycle")
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	go func() {
		defer stopped()
		mu.Lock()
		sawReady <- ready
		mu.Unlock()
		<-runCtx.Done()
	}()
	if _, _, ok := l.StartInit(context.Background()); ok {
		t.Fatal("second StartInit: got ok=true, want false while running")
	}
	if !<-sawReady {
		t.Fatal("run: got ready=false, want the set-up state")
	}
	l.Stop()
	if runCtx.Err() == nil {
		t.Fatal("run context after Stop: got live, want cancelled")
	}
}

// TestConcurrentStartStop lets -race check the locking: every run that
// began is stopped, and none outlives the last Stop.
func TestConcurrentStartStop(t *testing.T) {
	t.Parallel()
	var l startstop.Lifecycle
	var live atomic.Int32
	run := func(ctx context.Context) {
		live.Add(1)
		<-ctx.Done()
		live.Add(-1)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				l.Start(context.Background(), run)
				l.Stop()
			}
		})
	}
	wg.Wait()
	l.Stop()
	if got := live.Load(); got != 0 {
		t.Fatalf("runs alive after the last Stop: got %d, want 0", got)
	}
}
