// Package worker is the built-in worker (DESIGN.md §6): a Pool claims tasks
// on events and through a fallback poller, runs them with the processors of
// its Registry, keeps their leases and records their outcome, all through
// operations.Service, so it follows the same rules as remote workers.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/startstop"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
)

// Pool defaults.
const (
	// PollIntervalDefault is how often the fallback poller looks for
	// runnable tasks when no event arrived.
	PollIntervalDefault = 2 * time.Second
	// ReportIntervalDefault is the least time between two progress writes of
	// one task.
	ReportIntervalDefault = 250 * time.Millisecond
	// StopTimeoutDefault is how long Stop lets running tasks finish before
	// cancelling them.
	StopTimeoutDefault = 30 * time.Second
	// StopGrace is how long Stop waits, after cancelling the tasks still
	// running at StopTimeout, for their processors to return. A processor
	// that ignores its context longer has its task handed back without it,
	// so Stop takes at most StopTimeout + StopGrace (plus the hand-back
	// writes) whatever the processors do.
	StopGrace = 500 * time.Millisecond
	// ConcurrencyDefault is how many tasks a pool runs at once unless told
	// otherwise: most tasks wait on I/O (databases, storage, other
	// services), so it is not tied to the number of CPUs; cap heavy task
	// types with Config.TypeConcurrency.
	ConcurrencyDefault = 32
	// HeartbeatsPerLease is how many heartbeats a lease lasts by default: a
	// running task's lease survives a missed heartbeat or two.
	HeartbeatsPerLease = 3
)

// Config configures a Pool. Zero fields take their defaults.
type Config struct {
	// Service applies every task change, so the built-in worker follows the
	// same rules as remote workers. Required.
	Service *operations.Service
	// Objects holds the task files. Defaults to Service.Objects.
	Objects objectstore.Store
	// Registry holds the processors this pool runs. Required.
	Registry *Registry
	// WorkerID names this worker in leases. Defaults to hostname-pid.
	WorkerID string
	// Concurrency is how many processors run at once. A task's slot frees
	// when its processor returns, before its outcome is written. Defaults
	// to ConcurrencyDefault (32).
	Concurrency int
	// TypeConcurrency caps the running tasks of a taskType; a type absent
	// from the map is capped only by Concurrency. Defaults to no caps.
	TypeConcurrency map[string]int
	// PollInterval is the fallback poller's period. Defaults to 2s.
	PollInterval time.Duration
	// HeartbeatInterval is how often a running task's lease is renewed.
	// Defaults to the Service's lease over HeartbeatsPerLease (10s for the
	// default 30s).
	HeartbeatInterval time.Duration
	// ReportInterval is the least time between two progress flushes of one
	// task. Defaults to 250ms.
	ReportInterval time.Duration
	// StopTimeout is the grace Stop gives running tasks before cancelling
	// them. Defaults to 30s.
	StopTimeout time.Duration
	// Logger receives the pool's logs. Defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the pool's metrics. Defaults to none.
	Registerer prometheus.Registerer
}

// Causes of a running task's context cancellation.
var (
	// ErrTaskCancelled is the context cause when the task was cancelled.
	ErrTaskCancelled = errors.New("task cancelled")
	// ErrLeaseLost is the context cause when the worker lost the task's
	// lease (it lapsed and the task moved on without this attempt).
	ErrLeaseLost = errors.New("lease lost")
	// ErrShutdown is the context cause when the pool stopped before the task
	// finished.
	ErrShutdown = errors.New("worker shutting down")
)

// Pool runs tasks with the registered processors: it claims them on events
// (HandleEvent) and through a fallback poller, keeps their leases, reports
// their progress and records their outcome.
type Pool struct {
	cfg     Config
	svc     *operations.Service
	objects objectstore.Store
	log     *slog.Logger
	metrics *poolMetrics
	life    startstop.Lifecycle // the poller, then the drain of a stopping pool

	mu       sync.Mutex
	claiming bool
	running  map[string]*run // by task id
	perType  map[string]int
	busy     int            // slots taken, including reservations
	handling sync.WaitGroup // HandleEvent calls holding a reservation
	// round is closed when the poll round in flight gives back the slots
	// it holds while it queries; nil between rounds.
	round chan struct{}
	// backlog: runnable tasks are likely waiting that no event will bring
	// again (an event found every slot taken or its type held back by a
	// flow control, or the poller's last round filled every slot it asked
	// for). Events then leave the claiming to the poller, which takes the
	// tasks in the tenants' fair turns (see HandleEvent), and a freed slot
	// wakes it. A round clears it as it starts and sets it again if it
	// fills. Without a backlog, tasks start from their events and finished
	// ones do not wake the poller.
	backlog bool

	base     context.Context // Start's ctx: writes die with it
	stopJobs context.CancelCauseFunc
	jobsCtx  context.Context
	wake     chan struct{}
	jobs     sync.WaitGroup
}

type run struct {
	task   *commonops.Task
	cancel context.CancelCauseFunc
}

// NewPool returns a pool; Start sets it going.
func NewPool(cfg Config) *Pool {
	if cfg.Service == nil || cfg.Registry == nil {
		panic("worker: NewPool needs a Service and a Registry")
	}
	if cfg.Objects == nil {
		cfg.Objects = cfg.Service.Objects
	}
	if cfg.WorkerID == "" {
		host, _ := os.Hostname()
		cfg.WorkerID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = ConcurrencyDefault
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = PollIntervalDefault
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = ReportIntervalDefault
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = StopTimeoutDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = cfg.Service.Defaults().Lease / HeartbeatsPerLease
	}
	return &Pool{
		cfg:     cfg,
		svc:     cfg.Service,
		objects: cfg.Objects,
		log:     cfg.Logger.With("worker", cfg.WorkerID),
		metrics: newPoolMetrics(cfg.Registerer),
		running: make(map[string]*run),
		perType: make(map[string]int),
		wake:    make(chan struct{}, 1),
	}
}

// WorkerID is the name this pool claims tasks under.
func (p *Pool) WorkerID() string { return p.cfg.WorkerID }

// Concurrency is how many tasks the pool runs at once: also how many events
// it can usefully handle at once, each claim needing a free slot.
func (p *Pool) Concurrency() int { return p.cfg.Concurrency }

// Start begins claiming and returns at once; on a running pool it does
// nothing. Cancelling ctx halts the pool abruptly, as a killed process
// would: running processors see their context cancelled and nothing more is
// written (the leases lapse and maintenance rescues the tasks). Use Stop for
// a graceful end.
func (p *Pool) Start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	claimCtx, stopped, ok := p.life.StartInit(ctx)
	if !ok {
		return
	}
	p.claiming = true
	p.base = ctx
	p.jobsCtx, p.stopJobs = context.WithCancelCause(ctx)
	go func() {
		defer stopped()
		p.poll(claimCtx)
		p.drain()
	}()
}

// Stop stops claiming, lets running tasks finish for up to StopTimeout, then
// cancels those still running and waits up to StopGrace for them: their
// tasks go back to pending without counting a retry (Service.Release), for
// another worker. The task of a processor that ignores its cancelled
// context is handed back without waiting for it; whatever that processor
// writes later is refused (the attempt no longer holds the task).
// Stop without Start, or twice, does nothing.
func (p *Pool) Stop() { p.life.Stop() }

// drain ends a run of the pool once the poller returned: no more claims,
// then the running tasks get StopTimeout to finish before they are
// cancelled.
func (p *Pool) drain() {
	p.mu.Lock()
	p.claiming = false
	p.mu.Unlock()
	// No reservation is taken once claiming is off: wait for the event
	// claims already under way, so every task they launch is in jobs.
	p.handling.Wait()

	done := make(chan struct{})
	go func() { p.jobs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(p.cfg.StopTimeout):
		p.log.Warn("stop timeout reached; cancelling running tasks", "running", p.Running())
		p.stopJobs(ErrShutdown)
		select {
		case <-done:
		case <-time.After(StopGrace):
			p.abandonRunning()
		}
	}
	p.stopJobs(ErrShutdown)
}

// abandonRunning hands back the task of every processor still running
// after its cancel and StopGrace, without waiting for it to return.
func (p *Pool) abandonRunning() {
	p.mu.Lock()
	runs := make([]*run, 0, len(p.running))
	for _, r := range p.running {
		runs = append(runs, r)
	}
	p.mu.Unlock()
	for _, r := range runs {
		t := r.task
		log := p.log.With("task", t.ID, "attempt", t.Attempt)
		ctx, cancel := context.WithTimeout(p.base, claimTimeout)
		_, err := p.svc.Release(ctx, t.TenantID, t.ID, t.Attempt)
		cancel()
		switch {
		case err == nil:
			log.Warn("processor ignored its cancellation; task handed back to pending without it")
		case operations.IsConflict(err):
			// It finished, or moved on, between the snapshot and now.
		default:
			log.Error("could not hand back the task of a processor that ignored its cancellation; its lease will lapse", "err", err)
		}
	}
}

// Running reports how many tasks the pool is running now.
func (p *Pool) Running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.running)
}
