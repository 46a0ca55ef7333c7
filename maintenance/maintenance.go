// Package maintenance runs the periodic jobs that keep commonops healthy
// (docs/design.md §7): fire due schedules, promote scheduled tasks, rescue lapsed leases, find and
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

	"github.com/commonops/commonops/internal/startstop"
	"github.com/commonops/commonops/operations"
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
	// OutboxRetentionDefault keeps no published outbox row: the store
	// deletes each as it is published (store drivers' DeletePublished), and
	// the prune job finds nothing older than now to delete.
	OutboxRetentionDefault time.Duration = 0
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
	JobSchedules     = "fire_schedule"
	JobTimeout       = "timeout"
)

// Config configures a Runner. Zero fields take their defaults.
type Config struct {
	// Service finds the candidate tasks, applies every change to them and
	// holds the leadership: maintenance reaches the store only through it.
	// Required.
	Service *operations.Service
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
	// OutboxRetention is how long published outbox rows are kept; 0 keeps
	// none, as with a store that deletes rows as it publishes them (the two
	// settings come from one flag, --outbox-retention). Defaults to
	// OutboxRetentionDefault (0).
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
	svc     *operations.Service
	log     *slog.Logger
	metrics *runnerMetrics
	life    startstop.Lifecycle

	mu     sync.Mutex
	leader bool
	// mayLead: the last tick led or failed, so the leadership row may be
	// this runner's (resign).
	mayLead    bool
	lastUpload time.Time
	cursors    map[string]string // sweep name -> last task id seen (operations.SweepFilter.AfterID)
}

// New returns a runner; Start sets it going.
func New(cfg Config) *Runner {
	if cfg.Service == nil {
		panic("maintenance: New needs a Service")
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

// resignTimeout bounds the resign call of a stopping runner, whose own
// context is already done.
const resignTimeout = 5 * time.Second

// resign gives up the leadership, if it may be held, as the loop ends:
// when the last tick led, and also when it failed, as a tick cut short by
// the stop itself does, leaving the runner thinking it does not lead while
// the leadership row may still be its own (and would stand until its TTL).
// A runner whose last tick found another leader has nothing to give up.
func (r *Runner) resign() {
	r.mu.Lock()
	mayLead := r.mayLead
	r.leader, r.mayLead = false, false
	r.mu.Unlock()
	r.metrics.leader.Set(0)
	if !mayLead {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), resignTimeout)
	defer cancel()
	if err := r.svc.Resign(ctx, LeadershipName, r.cfg.Holder); err != nil {
		r.log.Warn("resign leadership", "err", err)
	}
}

// Tick checks the leadership and, as leader, runs every job once. It
// reports whether this runner leads. Start calls it every Interval; tests
// call it directly with an injected clock.
func (r *Runner) Tick(ctx context.Context) (bool, error) {
	// A stop does not cut the leadership statement short: one abandoned
	// mid-flight can still commit on the server after the resign that
	// follows the stop, and its lease would then stand until its TTL.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resignTimeout)
	lead, err := r.svc.TryLead(lctx, LeadershipName, r.cfg.Holder, r.cfg.LeaderTTL)
	cancel()
	if err != nil {
		lead = false
	}
	r.mu.Lock()
	was := r.leader
	r.leader, r.mayLead = lead, lead || err != nil
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
	run(JobSchedules, r.fireSchedules)
	run(JobPromote, r.promote)
	run(JobTimeout, r.timeOut)
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
