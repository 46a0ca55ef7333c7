// Package startstop is the one Start/Stop lifecycle of commonops' background
// loops (the outbox relay, the worker pool, the maintenance runner), after
// River's startstop package: Start returns at once and does nothing on a
// service already running; Stop cancels the run and waits for it to return,
// and is safe without Start and when called twice. After Stop, Start begins
// a new run.
package startstop

import (
	"context"
	"sync"
)

// Lifecycle runs one background goroutine at a time. The zero value is ready;
// keep it as a field of the service it runs for.
type Lifecycle struct {
	mu      sync.Mutex
	cancel  context.CancelFunc // nil while no run was started
	stopped chan struct{}      // closed when the current run returned
}

// Start runs run in a new goroutine and returns at once. run's context ends
// when ctx ends or Stop is called; run should return soon after. Start
// reports false, and does nothing, when a run was already started and not
// yet stopped.
func (l *Lifecycle) Start(ctx context.Context, run func(ctx context.Context)) bool {
	runCtx, stopped, ok := l.StartInit(ctx)
	if !ok {
		return false
	}
	go func() {
		defer stopped()
		run(runCtx)
	}()
	return true
}

// StartInit is Start for a service that must set up state before its
// goroutine runs and before its own Start returns. When ok, the caller sets
// up, starts its goroutine with runCtx, and calls stopped exactly once when
// that goroutine returns; Stop waits for it. When not ok, a run is already
// going and the caller does nothing.
func (l *Lifecycle) StartInit(ctx context.Context) (runCtx context.Context, stopped func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		return nil, nil, false
	}
	runCtx, l.cancel = context.WithCancel(ctx)
	done := make(chan struct{})
	l.stopped = done
	return runCtx, sync.OnceFunc(func() { close(done) }), true
}

// Stop cancels the run's context and waits until the run returned. Without
// a run (never started, or already stopped) it returns at once. While Stop
// waits, Start is a no-op; a second Stop waits as well.
func (l *Lifecycle) Stop() {
	l.mu.Lock()
	cancel, stopped := l.cancel, l.stopped
	l.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-stopped
	l.mu.Lock()
	if l.stopped == stopped { // not already cleared by a concurrent Stop
		l.cancel, l.stopped = nil, nil
	}
	l.mu.Unlock()
}
