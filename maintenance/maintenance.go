// Package maintenance runs the periodic jobs that keep commonops healthy
// (DESIGN.md §7): promote scheduled tasks, rescue lapsed leases, find and
// expire uploads, fail tasks no worker claims, delete old terminal tasks
// with their files, and prune the outbox. Exactly one replica runs them: the
// leader elected through the store (on SQLite, the one process always
// leads).
package maintenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/prom"
	"github.com/commonops/commonops/internal/startstop"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
)

// LeadershipName is the name of the leadership the runners compete for.
const LeadershipName = "maintenance"

// Runner defaults.
const (
	LeaderTTLDefault           = 15 * time.Second
	IntervalDefault            = time.Second
	UploadSweepIntervalDefault = 2 * time.Second
	BatchSizeDefault           = 100
	UnclaimedTimeoutDefault    = 10 * time.Minute
	RetentionCompletedDefault  = 30 * 24 * time.Hour
	RetentionFailedDefault     = 90 * 24 * time.Hour
	RetentionCancelledDefault  = 30 * 24 * time.Hour
	OutboxRetentionDefault     = 24 * time.Hour
)

// Job names, the label of commonops_maintenance_tasks_total.
const (
	JobPromote       = "promote"
	JobRescue        = "rescue_lease"
	JobConfirmUpload = "confirm_upload"
	JobExpireUpload  = "expire_upload"
	JobUnclaimed     = "fail_unclaimed"
	JobRetention     = "retention"
	JobPruneOutbox   = "prune_outbox"
)

// Config configures a Runner. Zero fields take their defaults.
type Config struct {
	// Service applies the task changes that have a use case (confirm
	// upload, delete). Required.
	Service *operations.Service
	// Store finds candidates and applies the other transitions. Defaults to
	// Service.Store.
	Store store.Store
	// Objects holds the task files. Defaults to Service.Objects.
	Objects objectstore.Store
	// Holder names this replica in the leadership table. Defaults to
	// hostname-pid-random.
	Holder string
	// LeaderTTL is how long leadership lasts without renewal: the time a
	// dead leader's successor waits. Defaults to 15s.
	LeaderTTL time.Duration
	// Interval is the tick of the jobs and of the leadership check.
	// Defaults to 1s.
	Interval time.Duration
	// UploadSweepInterval is how often tasks awaiting an upload are checked
	// for their object. Defaults to 2s.
	UploadSweepInterval time.Duration
	// BatchSize bounds the tasks each job handles per tick. Defaults to 100.
	BatchSize int
	// UnclaimedTimeout is how long a runnable pending task may wait for a
	// worker before it fails, counted from its last change. Defaults to 10m.
	UnclaimedTimeout time.Duration
	// RetentionCompleted is how long completed tasks are kept. Defaults to
	// 30 days.
	RetentionCompleted time.Duration
	// RetentionFailed is how long failed tasks are kept. Defaults to 90 days.
	RetentionFailed time.Duration
	// RetentionCancelled is how long cancelled tasks are kept. Defaults to
	// 30 days.
	RetentionCancelled time.Duration
	// OutboxRetention is how long published outbox rows are kept. Defaults
	// to 24h.
	OutboxRetention time.Duration
	// Now is the clock of the jobs' cut-offs. Defaults to time.Now.
	Now func() time.Time
	// Logger receives what the jobs did. Defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the runner's metrics. Defaults to none.
	Registerer prometheus.Registerer
}

// Runner runs the maintenance jobs while it holds the leadership.
type Runner struct {
	cfg     Config
	store   store.Store
	svc     *operations.Service
	log     *slog.Logger
	metrics *runnerMetrics
	life    startstop.Lifecycle

	mu         sync.Mutex
	leader     bool
	lastUpload time.Time
	cursors    map[string]string // sweep name -> last task id seen (store.SweepFilter.AfterID)
}

// New returns a runner; Start sets it going.
func New(cfg Config) *Runner {
	if cfg.Service == nil {
		panic("maintenance: New needs a Service")
	}
	if cfg.Store == nil {
		cfg.Store = cfg.Service.Store
	}
	if cfg.Objects == nil {
		cfg.Objects = cfg.Service.Objects
	}
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		cfg.Holder = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
	}
	setDefault(&cfg.LeaderTTL, LeaderTTLDefault)
	setDefault(&cfg.Interval, IntervalDefault)
	setDefault(&cfg.UploadSweepInterval, UploadSweepIntervalDefault)
	setDefault(&cfg.UnclaimedTimeout, UnclaimedTimeoutDefault)
	setDefault(&cfg.RetentionCompleted, RetentionCompletedDefault)
	setDefault(&cfg.RetentionFailed, RetentionFailedDefault)
	setDefault(&cfg.RetentionCancelled, RetentionCancelledDefault)
	setDefault(&cfg.OutboxRetention, OutboxRetentionDefault)
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = BatchSizeDefault
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Runner{
		cfg:     cfg,
		store:   cfg.Store,
		svc:     cfg.Service,
		log:     cfg.Logger.With("component", "maintenance", "holder", cfg.Holder),
		metrics: newRunnerMetrics(cfg.Registerer),
		cursors: map[string]string{},
	}
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Holder is the name this runner leads under.
func (r *Runner) Holder() string { return r.cfg.Holder }

// Leader reports whether the runner held the leadership at its last check.
func (r *Runner) Leader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

// Start runs a tick every Interval until ctx ends or Stop; it returns at
// once and does nothing on a running runner.
func (r *Runner) Start(ctx context.Context) { r.life.Start(ctx, r.loop) }

// Stop ends the loop, waits for the tick in progress and gives up the
// leadership so another replica takes over at its next tick.
func (r *Runner) Stop() { r.life.Stop() }

func (r *Runner) loop(ctx context.Context) {
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		if _, err := r.Tick(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("maintenance tick failed", "err", err)
		}
		select {
		case <-ctx.Done():
			r.resign()
			return
		case <-tick.C:
		}
	}
}

func (r *Runner) resign() {
	r.mu.Lock()
	was := r.leader
	r.leader = false
	r.mu.Unlock()
	r.metrics.leader.Set(0)
	if !was {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.store.Resign(ctx, LeadershipName, r.cfg.Holder); err != nil {
		r.log.Warn("resign leadership", "err", err)
	}
}

// Tick checks the leadership and, as leader, runs every job once. It
// reports whether this runner leads. Start calls it every Interval; tests
// call it directly with an injected clock.
func (r *Runner) Tick(ctx context.Context) (bool, error) {
	lead, err := r.store.TryLead(ctx, LeadershipName, r.cfg.Holder, r.cfg.LeaderTTL)
	if err != nil {
		lead = false
	}
	r.mu.Lock()
	was := r.leader
	r.leader = lead
	r.mu.Unlock()
	if lead != was {
		r.log.Info("maintenance leadership changed", "leader", lead)
	}
	if lead {
		r.metrics.leader.Set(1)
	} else {
		r.metrics.leader.Set(0)
	}
	if err != nil {
		return false, fmt.Errorf("try lead: %w", err)
	}
	if !lead {
		return false, nil
	}
	now := r.cfg.Now().UTC()
	var errs []error
	run := func(job string, f func(context.Context, time.Time) (int, error)) {
		if ctx.Err() != nil {
			return
		}
		n, err := f(ctx, now)
		if n > 0 {
			r.metrics.tasks.WithLabelValues(job).Add(float64(n))
			r.log.Info("maintenance job done", "job", job, "count", n)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", job, err))
		}
	}
	run(JobPromote, r.promote)
	run(JobRescue, r.rescue)
	r.mu.Lock()
	wall := time.Now() // the sweep's period is wall time, whatever the jobs' clock
	uploads := wall.Sub(r.lastUpload) >= r.cfg.UploadSweepInterval
	if uploads {
		r.lastUpload = wall
	}
	r.mu.Unlock()
	if uploads {
		run(JobConfirmUpload, r.confirmUploads)
	}
	run(JobExpireUpload, r.expireUploads)
	run(JobUnclaimed, r.failUnclaimed)
	run(JobRetention, r.retention)
	run(JobPruneOutbox, r.pruneOutbox)
	return true, errors.Join(errs...)
}

// each applies apply to one batch of the tasks f selects; a task someone
// else moved meanwhile or that is not ready yet (conflict) or deleted (not
// found) is skipped. It returns how many apply changed.
//
// Batches page through the candidates across ticks: each starts after the
// last task the previous batch of the same sweep (named by key) handed out,
// and a short batch sends the next one back to the start. So tasks a job
// keeps skipping (an upload that never comes) cannot fill every batch and
// starve the ones behind them; a task waits at most one pass over the
// candidates.
func (r *Runner) each(ctx context.Context, key string, f store.SweepFilter, apply func(context.Context, store.TaskRef) error) (int, error) {
	f.Limit = r.cfg.BatchSize
	r.mu.Lock()
	f.AfterID = r.cursors[key]
	r.mu.Unlock()
	refs, err := r.store.Sweep(ctx, f)
	if err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	n := 0
	var errs []error
	for _, ref := range refs {
		err := apply(ctx, ref)
		switch commonops.ErrorCode(err) {
		case "":
			n++
		case commonops.ECONFLICT, commonops.ENOTFOUND:
		default:
			errs = append(errs, fmt.Errorf("task %s: %w", ref.ID, err))
		}
	}
	// Page on past a full batch only when it left tasks behind (they would
	// fill the next batch again); when every task was handled they no longer
	// match, and starting over serves the oldest candidates first, including
	// old tasks that became due after the cursor had passed them.
	next := ""
	if len(refs) == f.Limit && n < len(refs) {
		next = refs[len(refs)-1].ID
	}
	r.mu.Lock()
	r.cursors[key] = next
	r.mu.Unlock()
	return n, errors.Join(errs...)
}

func (r *Runner) update(ctx context.Context, ref store.TaskRef, fn func(*commonops.Task) (commonops.Change, error)) error {
	_, err := r.store.UpdateTask(ctx, ref.TenantID, ref.ID, fn)
	return err
}

func (r *Runner) promote(ctx context.Context, now time.Time) (int, error) {
	return r.each(ctx, JobPromote, store.SweepFilter{Statuses: []commonops.Status{commonops.StatusScheduled}, ScheduledBefore: &now},
		func(ctx context.Context, ref store.TaskRef) error {
			return r.update(ctx, ref, func(t *commonops.Task) (commonops.Change, error) { return t.Promote(now) })
		})
}

func (r *Runner) rescue(ctx context.Context, now time.Time) (int, error) {
	return r.each(ctx, JobRescue, store.SweepFilter{Statuses: []commonops.Status{commonops.StatusProcessing}, LeaseExpiredBefore: &now},
		func(ctx context.Context, ref store.TaskRef) error {
			return r.update(ctx, ref, func(t *commonops.Task) (commonops.Change, error) {
				return t.ExpireLease(r.svc.RetryDelay(t.RetryCount), now)
			})
		})
}

var waitingStatuses = []commonops.Status{commonops.StatusScheduled, commonops.StatusPending}

// confirmUploads confirms tasks whose input object arrived without the
// client calling upload-complete.
func (r *Runner) confirmUploads(ctx context.Context, now time.Time) (int, error) {
	return r.each(ctx, JobConfirmUpload, store.SweepFilter{Statuses: waitingStatuses, UploadStatus: commonops.UploadAwaiting},
		func(ctx context.Context, ref store.TaskRef) error {
			_, err := r.svc.ConfirmUpload(ctx, ref.TenantID, ref.ID)
			return err
		})
}

func (r *Runner) uploadGrace() time.Duration {
	if r.svc.UploadGrace > 0 {
		return r.svc.UploadGrace
	}
	return operations.UploadGraceDefault
}

// expireUploads fails tasks whose upload URL expired more than the grace
// ago without the object arriving (a last look confirms late arrivals).
func (r *Runner) expireUploads(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.Add(-r.uploadGrace())
	return r.each(ctx, JobExpireUpload, store.SweepFilter{Statuses: waitingStatuses, UploadStatus: commonops.UploadAwaiting, UploadExpiredBefore: &cutoff},
		func(ctx context.Context, ref store.TaskRef) error {
			if _, err := r.svc.ConfirmUpload(ctx, ref.TenantID, ref.ID); err == nil {
				return commonops.Errorf(commonops.ECONFLICT, "upload arrived after all") // not counted as expired
			} else if !operations.IsConflict(err) {
				return err
			}
			return r.update(ctx, ref, func(t *commonops.Task) (commonops.Change, error) { return t.ExpireUpload(now) })
		})
}

// runnableUploads are the upload statuses of a task a worker may claim.
var runnableUploads = []commonops.UploadStatus{commonops.UploadNone, commonops.UploadUploaded}

// failUnclaimed fails runnable pending tasks that no worker took within
// UnclaimedTimeout of their last change (or of the end of their backoff).
// Tasks waiting for their upload or backing off are left out by the sweep
// itself; the checks in the update catch the ones that changed since.
func (r *Runner) failUnclaimed(ctx context.Context, now time.Time) (int, error) {
	wait := r.cfg.UnclaimedTimeout
	cutoff := now.Add(-wait)
	f := store.SweepFilter{
		Statuses:        []commonops.Status{commonops.StatusPending},
		UploadStatuses:  runnableUploads,
		UpdatedBefore:   &cutoff,
		AvailableBefore: &cutoff,
	}
	return r.each(ctx, JobUnclaimed, f,
		func(ctx context.Context, ref store.TaskRef) error {
			return r.update(ctx, ref, func(t *commonops.Task) (commonops.Change, error) {
				switch {
				case t.UploadStatus == commonops.UploadAwaiting || t.UploadStatus == commonops.UploadExpired:
					return commonops.Change{}, commonops.Errorf(commonops.ECONFLICT, "task %s waits for its upload", t.ID)
				case t.UpdatedAt.After(cutoff):
					return commonops.Change{}, commonops.Errorf(commonops.ECONFLICT, "task %s changed since the sweep", t.ID)
				case t.AvailableAt != nil && t.AvailableAt.After(cutoff):
					return commonops.Change{}, commonops.Errorf(commonops.ECONFLICT, "task %s backs off until %s", t.ID, t.AvailableAt)
				}
				return t.FailUnclaimed(wait, now)
			})
		})
}

// retention deletes terminal tasks older than their status's retention,
// with their logs, events and files.
func (r *Runner) retention(ctx context.Context, now time.Time) (int, error) {
	total := 0
	var errs []error
	for _, rule := range []struct {
		status commonops.Status
		keep   time.Duration
	}{
		{commonops.StatusCompleted, r.cfg.RetentionCompleted},
		{commonops.StatusFailed, r.cfg.RetentionFailed},
		{commonops.StatusCancelled, r.cfg.RetentionCancelled},
	} {
		cutoff := now.Add(-rule.keep)
		n, err := r.each(ctx, JobRetention+"/"+string(rule.status), store.SweepFilter{Statuses: []commonops.Status{rule.status}, CompletedBefore: &cutoff},
			func(ctx context.Context, ref store.TaskRef) error { return r.svc.Delete(ctx, ref.TenantID, ref.ID) })
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rule.status, err))
		}
	}
	return total, errors.Join(errs...)
}

func (r *Runner) pruneOutbox(ctx context.Context, now time.Time) (int, error) {
	n, err := r.store.PruneOutbox(ctx, now.Add(-r.cfg.OutboxRetention), r.cfg.BatchSize)
	if err != nil {
		return n, fmt.Errorf("prune outbox: %w", err)
	}
	return n, nil
}

type runnerMetrics struct {
	tasks  *prometheus.CounterVec
	leader prometheus.Gauge
}

func newRunnerMetrics(reg prometheus.Registerer) *runnerMetrics {
	m := &runnerMetrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commonops_maintenance_tasks_total",
			Help: "Tasks (or outbox rows) each maintenance job changed.",
		}, []string{"job"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commonops_maintenance_leader",
			Help: "1 while this replica leads the maintenance jobs.",
		}),
	}
	if reg != nil {
		m.tasks = prom.Register(reg, m.tasks)
		m.leader = prom.Register(reg, m.leader)
	}
	return m
}
