package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/prom"
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
	// ConcurrencyDefault is how many tasks a pool runs at once unless told
	// otherwise: most tasks wait on I/O (databases, storage, other
	// services), so it is not tied to the number of CPUs; cap heavy task
	// types with Config.TypeConcurrency.
	ConcurrencyDefault = 32
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
	// Concurrency is how many tasks run at once. Defaults to
	// ConcurrencyDefault (32).
	Concurrency int
	// TypeConcurrency caps the running tasks of a taskType; a type absent
	// from the map is capped only by Concurrency. Defaults to no caps.
	TypeConcurrency map[string]int
	// PollInterval is the fallback poller's period. Defaults to 2s.
	PollInterval time.Duration
	// HeartbeatInterval is how often a running task's lease is renewed.
	// Defaults to a third of the Service's lease (10s for the default 30s).
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
	cfg       Config
	svc       *operations.Service
	objects   objectstore.Store
	log       *slog.Logger
	lease     time.Duration
	heartbeat time.Duration
	metrics   *poolMetrics
	life      startstop.Lifecycle // the poller, then the drain of a stopping pool

	mu       sync.Mutex
	claiming bool
	running  map[string]*run // by task id
	perType  map[string]int
	busy     int            // slots taken, including reservations
	handling sync.WaitGroup // HandleEvent calls holding a reservation

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
	lease := cfg.Service.Lease
	if lease <= 0 {
		lease = operations.LeaseDefault
	}
	hb := cfg.HeartbeatInterval
	if hb <= 0 {
		hb = lease / 3
	}
	return &Pool{
		cfg:       cfg,
		svc:       cfg.Service,
		objects:   cfg.Objects,
		log:       cfg.Logger.With("worker", cfg.WorkerID),
		lease:     lease,
		heartbeat: hb,
		metrics:   newPoolMetrics(cfg.Registerer),
		running:   make(map[string]*run),
		perType:   make(map[string]int),
		wake:      make(chan struct{}, 1),
	}
}

// WorkerID is the name this pool claims tasks under.
func (p *Pool) WorkerID() string { return p.cfg.WorkerID }

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
// cancels those still running and waits for them: their tasks go back to
// pending without counting a retry (Service.Release), for another worker.
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
		<-done
	}
	p.stopJobs(ErrShutdown)
}

// Running reports how many tasks the pool is running now.
func (p *Pool) Running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.running)
}

// HandleEvent is the pub/sub entry point (Dapr subscriber, embedded bus).
// On a created or retried event it tries to claim the task when this pool
// runs its kind and has a free slot; a task someone else holds, one that is
// not runnable, or a full pool answer nil (the poller finds it later). On a
// cancelled event it stops the task's processor once the store confirms the
// running attempt may no longer write (see confirmCancel). An error means
// the store could not be reached: the caller should redeliver.
func (p *Pool) HandleEvent(ctx context.Context, topic string, task *commonops.Task) error {
	if task == nil || task.ID == "" {
		return nil
	}
	switch topic {
	case commonops.TopicCancelled:
		return p.confirmCancel(ctx, task)
	case commonops.TopicCreated, commonops.TopicRetried:
	default:
		return nil
	}
	proc, ok := p.cfg.Registry.Lookup(task.TaskType, task.EntityType)
	if !ok || p.runsNewer(task) {
		return nil
	}
	if !p.reserve(task.TaskType) {
		// No slot: the pool is full, or a poll round holds the free slots
		// while it queries, too early to see this task. Ask for another
		// round after it, which costs nothing when the pool is full.
		p.nudge()
		return nil
	}
	defer p.handling.Done()
	// As in claimFree, the claim outlives the delivery's context.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	t, err := p.svc.Claim(cctx, task.TenantID, task.ID, p.cfg.WorkerID, 0)
	cancel()
	if err != nil {
		p.release(task.TaskType)
		switch commonops.ErrorCode(err) {
		case commonops.ECONFLICT, commonops.ENOTFOUND, commonops.EINVALID:
			return nil
		}
		return fmt.Errorf("claim task %s: %w", task.ID, err)
	}
	p.metrics.claims.WithLabelValues("event").Inc()
	// The run continues the trace of the event that started it.
	p.launch(t, proc, commonops.TraceParent(ctx))
	return nil
}

// runsNewer reports whether this pool already runs an attempt of ev's task
// newer than ev: the poller claimed it before its event came.
func (p *Pool) runsNewer(ev *commonops.Task) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.running[ev.ID]
	return r != nil && r.task.Attempt > ev.Attempt
}

// confirmCancel handles a cancelled event. The event is only a hint: it may
// be late (redelivered after a retry and a new claim) or forged by anyone
// reaching the subscriber. So the running attempt is stopped only when the
// store, read with the run's own tenant, says that attempt may no longer
// write: the task was cancelled or ended, or moved to another attempt. An
// event about an attempt older than the running one is ignored.
func (p *Pool) confirmCancel(ctx context.Context, ev *commonops.Task) error {
	p.mu.Lock()
	r := p.running[ev.ID]
	p.mu.Unlock()
	if r == nil || ev.Attempt < r.task.Attempt {
		return nil
	}
	cur, err := p.svc.Get(ctx, r.task.TenantID, r.task.ID)
	switch {
	case commonops.ErrorCode(err) == commonops.ENOTFOUND:
		r.cancel(ErrLeaseLost) // deleted under us: nothing left to write to
		return nil
	case err != nil:
		return fmt.Errorf("check cancel of task %s: %w", ev.ID, err)
	}
	attempt := r.task.Attempt
	if cur.CheckAttempt(&attempt) == nil {
		return nil // the running attempt still holds the task
	}
	if cur.Status == commonops.StatusCancelled {
		r.cancel(ErrTaskCancelled)
	} else {
		r.cancel(ErrLeaseLost)
	}
	return nil
}

// reserve takes a slot for a task of taskType, if the pool is claiming and
// both the pool and the type have room. A caller that got the slot holds
// p.handling until it launched the task or released the slot.
func (p *Pool) reserve(taskType string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.claiming || p.busy >= p.cfg.Concurrency {
		return false
	}
	if c, ok := p.cfg.TypeConcurrency[taskType]; ok && c > 0 && p.perType[taskType] >= c {
		return false
	}
	p.busy++
	p.perType[taskType]++
	p.handling.Add(1)
	return true
}

func (p *Pool) release(taskType string) {
	p.mu.Lock()
	p.busy--
	p.perType[taskType]--
	p.mu.Unlock()
	p.nudge()
}

// nudge asks the poller for a claim round now, without blocking.
func (p *Pool) nudge() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// claimTimeout bounds one claim call, which Stop does not cancel.
const claimTimeout = 10 * time.Second

// pollRetryDelay is how soon the poller tries again after a failed claim
// round, rather than waiting for the next PollInterval.
const pollRetryDelay = time.Second

// claimPlan decides what the poller may claim now: the kinds and how many,
// such that no type cap can be exceeded whatever the store returns.
func (p *Pool) claimPlan() ([]commonops.Kind, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	limit := p.cfg.Concurrency - p.busy
	if !p.claiming || limit <= 0 {
		return nil, 0
	}
	remaining := func(tt string) (int, bool) {
		c, ok := p.cfg.TypeConcurrency[tt]
		if !ok || c <= 0 {
			return 0, false
		}
		return c - p.perType[tt], true
	}
	var kinds []commonops.Kind
	wildcard := false
	for _, k := range p.cfg.Registry.Kinds() {
		if k.TaskType == "*" {
			wildcard = true
			continue
		}
		if r, capped := remaining(k.TaskType); capped {
			if r <= 0 {
				continue
			}
			limit = min(limit, r)
		}
		kinds = append(kinds, k)
	}
	if wildcard {
		// A wildcard taskType may return any type: claim with it only while
		// every capped type has room, and no more than the tightest room.
		ok := true
		for tt := range p.cfg.TypeConcurrency {
			if r, capped := remaining(tt); capped {
				if r <= 0 {
					ok = false
					break
				}
				limit = min(limit, r)
			}
		}
		if ok {
			for _, k := range p.cfg.Registry.Kinds() {
				if k.TaskType == "*" {
					kinds = append(kinds, k)
				}
			}
		}
	}
	if len(kinds) == 0 {
		// An empty kind list would claim every task: claim nothing instead.
		return nil, 0
	}
	p.busy += limit // reserved until the claim returns
	return kinds, limit
}

// poll is the fallback poller: every PollInterval, and whenever a slot
// frees, it claims runnable tasks for the free slots.
func (p *Pool) poll(ctx context.Context) {
	tick := time.NewTicker(p.cfg.PollInterval)
	defer tick.Stop()
	for {
		p.claimFree(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.wake:
		}
	}
}

func (p *Pool) claimFree(ctx context.Context) {
	for ctx.Err() == nil {
		kinds, limit := p.claimPlan()
		if limit == 0 {
			return
		}
		// Not cut short by Stop: a claim the database committed must reach
		// us, or its tasks wait for their leases to lapse.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
		tasks, err := p.svc.ClaimNext(cctx, p.cfg.WorkerID, kinds, limit)
		cancel()
		p.mu.Lock()
		p.busy -= limit
		p.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("poll for tasks failed", "err", err, "retryIn", pollRetryDelay.String())
				time.AfterFunc(pollRetryDelay, p.nudge)
			}
			return
		}
		for _, t := range tasks {
			proc, ok := p.cfg.Registry.Lookup(t.TaskType, t.EntityType)
			p.mu.Lock()
			p.busy++
			p.perType[t.TaskType]++
			p.mu.Unlock()
			if !ok { // registry changed under us; let the lease lapse is worse: fail fast
				p.launch(t, ProcessorFunc(func(context.Context, Job) error {
					return fmt.Errorf("no processor registered for (%s, %s)", t.TaskType, t.EntityType)
				}), "")
				continue
			}
			p.metrics.claims.WithLabelValues("poll").Inc()
			p.launch(t, proc, "")
		}
		if len(tasks) < limit {
			return
		}
	}
}

// launch runs a claimed task in its own goroutine; its slot is already
// reserved.
func (p *Pool) launch(t *commonops.Task, proc Processor, traceParent string) {
	p.mu.Lock()
	ctx, cancel := context.WithCancelCause(commonops.WithTraceParent(p.jobsCtx, traceParent))
	r := &run{task: t, cancel: cancel}
	// A run of an earlier attempt may still be returning: the newest attempt
	// is the one events and Running see.
	p.running[t.ID] = r
	p.jobs.Add(1)
	p.mu.Unlock()
	p.metrics.running.Inc()
	go func() {
		defer p.jobs.Done()
		defer p.metrics.running.Dec()
		defer p.release(t.TaskType)
		defer func() {
			p.mu.Lock()
			if p.running[t.ID] == r { // not a newer attempt launched since
				delete(p.running, t.ID)
			}
			p.mu.Unlock()
			cancel(nil)
		}()
		p.execute(ctx, cancel, t, proc)
	}()
}

// execute runs one attempt: processor, heartbeat, reporter, and the final
// write of its outcome.
func (p *Pool) execute(ctx context.Context, cancel context.CancelCauseFunc, t *commonops.Task, proc Processor) {
	start := time.Now()
	log := p.log.With("task", t.ID, "taskType", t.TaskType, "entityType", t.EntityType, "attempt", t.Attempt)
	j := newJob(p, t, cancel, log)
	j.base = commonops.WithTraceParent(p.base, commonops.TraceParent(ctx))
	hbDone := make(chan struct{})
	hbStop := make(chan struct{})
	go func() {
		defer close(hbDone)
		p.heartbeatLoop(ctx, hbStop, j)
	}()
	j.rep.start()

	err := safeProcess(ctx, proc, j)

	close(hbStop)
	<-hbDone
	j.rep.stop()
	j.abortOpenWriters()
	outcome := p.finish(ctx, j, err, log)
	p.metrics.tasks.WithLabelValues(t.TaskType, outcome).Inc()
	p.metrics.duration.WithLabelValues(t.TaskType).Observe(time.Since(start).Seconds())
}

// storableText makes s, which came from a processor, text the store
// accepts: bad UTF-8 replaced, NULs removed, then cut to at most n bytes
// without splitting a character.
func storableText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	return commonops.Truncate(s, n)
}

func safeProcess(ctx context.Context, proc Processor, j Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: debug.Stack()}
		}
	}()
	return proc.Process(ctx, j)
}

type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("processor panicked: %v", e.value) }

// Outcomes counted in commonops_worker_tasks_total.
const (
	outcomeCompleted = "completed"
	outcomeFailed    = "failed"
	outcomePanicked  = "panicked"
	outcomeCancelled = "cancelled"
	outcomeLeaseLost = "lease_lost"
	outcomeAbandoned = "abandoned"
	outcomeReleased  = "released"
)

// finish records the attempt's outcome. It writes nothing when the task was
// cancelled, the lease was lost, or the pool was killed (Start's ctx done).
func (p *Pool) finish(ctx context.Context, j *job, err error, log *slog.Logger) string {
	cause := context.Cause(ctx)
	switch {
	case p.base.Err() != nil:
		log.Warn("pool halted while the task ran; its lease will lapse")
		return outcomeAbandoned
	case errors.Is(cause, ErrTaskCancelled):
		log.Info("task cancelled; processor stopped")
		return outcomeCancelled
	case errors.Is(cause, ErrLeaseLost):
		log.Warn("lease lost; the attempt's result is dropped")
		return outcomeLeaseLost
	}
	wctx := j.base // not cancelled by Stop: the final write must land
	if err == nil {
		if ferr := j.rep.finalize(wctx, commonops.StatusCompleted, "", false); ferr != nil {
			return p.finishFailed(j, ferr, log)
		}
		log.Debug("task completed")
		return outcomeCompleted
	}
	outcome := outcomeFailed
	msg, permanent := "", IsPermanent(err)
	var pe *panicError
	panicked := errors.As(err, &pe)
	if errors.Is(cause, ErrShutdown) && errors.Is(err, context.Canceled) && !permanent && !panicked {
		// Stopped by us, not failed by the processor: no retry is used up. A
		// processor error that merely came back after the stop is a failure.
		return p.handBack(wctx, j, log)
	}
	switch {
	case panicked:
		outcome = outcomePanicked
		msg = pe.Error()
		log.Error("processor panicked", "panic", fmt.Sprint(pe.value), "stack", string(pe.stack))
	default:
		msg = err.Error()
	}
	msg = storableText(msg, commonops.MaxMessageLen)
	if ferr := j.rep.finalize(wctx, commonops.StatusFailed, msg, permanent); ferr != nil {
		p.finishFailed(j, ferr, log)
		return outcome
	}
	log.Info("attempt failed", "err", msg, "permanent", permanent)
	return outcome
}

// handBack sends the attempt's last progress and logs, then returns its task
// to pending without counting a retry: the pool stopped it.
func (p *Pool) handBack(ctx context.Context, j *job, log *slog.Logger) string {
	if err := j.rep.flush(ctx, nil); err != nil && !operations.IsConflict(err) {
		log.Warn("last progress report before handing the task back failed", "err", err)
	}
	t := j.task
	err := retryTransient(ctx, func() error {
		_, err := p.svc.Release(ctx, t.TenantID, t.ID, t.Attempt)
		return err
	})
	if err != nil {
		return p.finishFailed(j, err, log)
	}
	log.Info("worker stopping; task handed back to pending")
	return outcomeReleased
}

func (p *Pool) finishFailed(j *job, err error, log *slog.Logger) string {
	if operations.IsConflict(err) {
		log.Info("final write refused; the task moved on", "err", err)
		return outcomeLeaseLost
	}
	log.Error("could not record the task's outcome; its lease will lapse", "err", err)
	return outcomeAbandoned
}

// heartbeatLoop renews the lease every HeartbeatInterval; a conflict means
// the task was cancelled or the lease lost, and cancels the processor.
func (p *Pool) heartbeatLoop(ctx context.Context, stop <-chan struct{}, j *job) {
	tick := time.NewTicker(p.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t, err := p.svc.Heartbeat(p.base, j.task.TenantID, j.task.ID, j.task.Attempt)
		switch {
		case err == nil:
			j.saved(t)
		case j.conflict(err):
			return
		case p.base.Err() == nil:
			j.log.Warn("heartbeat failed", "err", err)
		}
	}
}

type poolMetrics struct {
	tasks    *prometheus.CounterVec
	claims   *prometheus.CounterVec
	running  prometheus.Gauge
	duration *prometheus.HistogramVec
}

func newPoolMetrics(reg prometheus.Registerer) *poolMetrics {
	m := &poolMetrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commonops_worker_tasks_total",
			Help: "Attempts run by the built-in worker, by task type and outcome.",
		}, []string{"task_type", "outcome"}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commonops_worker_claims_total",
			Help: "Tasks claimed by the built-in worker, by source (event or poll).",
		}, []string{"source"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commonops_worker_running",
			Help: "Tasks the built-in worker runs now.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "commonops_worker_task_duration_seconds",
			Help:    "Time from claim to recorded outcome of an attempt.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}, []string{"task_type"}),
	}
	if reg != nil {
		m.tasks = prom.Register(reg, m.tasks)
		m.claims = prom.Register(reg, m.claims)
		m.running = prom.Register(reg, m.running)
		m.duration = prom.Register(reg, m.duration)
	}
	return m
}
