// Package outbox relays committed outbox rows to a pub/sub publisher.
//
// Every task change writes its event to the outbox table in the same
// transaction as the task row (docs/design.md §2), so nothing is published that was
// not committed. The Relay is the other half of that promise: it drains the
// unsent rows, oldest first, in bounded batches, and marks them sent only once
// the publisher has accepted them, so nothing committed is left unpublished.
// Delivery is at least once: a relay that crashes between publish and mark
// publishes the rows again, and consumers dedupe on the message id.
//
// Several relays may run against one PostgreSQL database (one per replica):
// the store locks the rows it hands out with FOR UPDATE SKIP LOCKED, so no
// row is published by two relays at once. Pruning sent rows is the
// maintenance role's job.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/prom"
	"github.com/commonops/commonops/internal/startstop"
	"github.com/commonops/commonops/internal/tracing"
)

// Publisher sends outbox messages to pub/sub. Publish returns how many of
// msgs, in order, were published: the relay marks exactly that prefix sent and
// offers the rest again later. A non-nil error with n < len(msgs) makes the
// relay back off.
type Publisher interface {
	Publish(ctx context.Context, msgs []Message) (int, error)
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, msgs []Message) (int, error)

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, msgs []Message) (int, error) {
	return f(ctx, msgs)
}

// Source is the outbox table as the relay needs it; store.Store provides it.
type Source interface {
	// DeliverOutbox locks up to limit unsent rows, oldest first, calls
	// publish with them and marks sent (or deletes) the first n it reports.
	DeliverOutbox(ctx context.Context, limit int, publish func(context.Context, []Message) (int, error)) (int, error)
	// OutboxStats reports the unsent backlog and its oldest row's time.
	OutboxStats(ctx context.Context) (backlog int, oldest time.Time, err error)
	// OutboxSignal receives after a transaction that wrote outbox rows commits.
	OutboxSignal() <-chan struct{}
}

// Defaults of Config.
const (
	BatchSizeDefault     = 500
	PollIntervalDefault  = time.Second
	BackoffMinDefault    = 100 * time.Millisecond
	BackoffMaxDefault    = 30 * time.Second
	StatsIntervalDefault = 5 * time.Second
	// DatabaseBackoffMaxDefault caps the wait after a failure of the
	// database (not of the publisher): publishing must resume within about
	// a second of the database coming back, however long it was away.
	DatabaseBackoffMaxDefault = time.Second
)

// Config tunes a Relay. The zero value is usable.
type Config struct {
	// BatchSize is the most rows locked and published at once. Defaults to 500.
	BatchSize int
	// PollInterval is how often the relay looks for rows when no signal
	// arrives (a signal lost, or rows written by a process that cannot
	// signal). Defaults to 1s.
	PollInterval time.Duration
	// BackoffMin and BackoffMax bound the exponential, jittered wait after a
	// failed publish; signals do not cut it short. Default 100ms and 30s.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// DatabaseBackoffMax caps that wait when the outbox table could not be
	// read or written (the database is down), which costs the database
	// little to retry, instead of the publisher failing. Defaults to 1s.
	DatabaseBackoffMax time.Duration
	// StatsInterval is how often the backlog gauges are refreshed from
	// OutboxStats. Defaults to 5s.
	StatsInterval time.Duration
	// Logger receives publish failures and recoveries. Defaults to slog.Default().
	Logger *slog.Logger
	// Registerer, when set, registers the relay's metrics. Defaults to none.
	Registerer prometheus.Registerer
	// MinAge, when positive, makes the relay a sweeper: it publishes only
	// rows at least this old, looks for them every PollInterval and ignores
	// the signal. A process whose publisher reaches no subscriber runs one,
	// so that rows no other relay took (none runs) do not pile up forever,
	// while a relay that can deliver them gets every fresh row first.
	// Defaults to 0: every row, at once.
	MinAge time.Duration
}

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = BatchSizeDefault
	}
	if c.PollInterval <= 0 {
		c.PollInterval = PollIntervalDefault
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = BackoffMinDefault
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = BackoffMaxDefault
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.DatabaseBackoffMax <= 0 {
		c.DatabaseBackoffMax = DatabaseBackoffMaxDefault
	}
	if c.StatsInterval <= 0 {
		c.StatsInterval = StatsIntervalDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Relay moves committed outbox rows to a Publisher. Start sets it going; Stop
// waits for the loop to end.
type Relay struct {
	store Source
	pub   Publisher
	cfg   Config
	m     *metrics
	life  startstop.Lifecycle
}

// NewRelay returns a relay from s to p; it does nothing until Start.
func NewRelay(s Source, p Publisher, cfg Config) *Relay {
	cfg = cfg.withDefaults()
	return &Relay{store: s, pub: p, cfg: cfg, m: newMetrics(cfg.Registerer)}
}

// Start runs the relay loop in the background until ctx ends or Stop is
// called, and returns at once. Calling Start on a running relay does nothing;
// after Stop, Start runs it again.
func (r *Relay) Start(ctx context.Context) { r.life.Start(ctx, r.run) }

// Stop ends the loop and waits for it; an in-flight publish is cancelled and
// its rows stay unsent (or, if the publisher had already sent them, are sent
// again by the next relay: delivery is at least once).
func (r *Relay) Stop() { r.life.Stop() }

func (r *Relay) run(ctx context.Context) {
	log := r.cfg.Logger
	signal := r.store.OutboxSignal()
	wait := time.NewTimer(0) // drain once at start
	defer wait.Stop()
	stats := time.NewTicker(r.cfg.StatsInterval)
	defer stats.Stop()
	r.refreshStats(ctx)

	failures := 0
	for {
		// Backing off: only the timer (or the end) may wake the loop, so a
		// stream of commits cannot turn a dead publisher into a busy loop.
		var wake <-chan struct{}
		if failures == 0 && r.cfg.MinAge <= 0 {
			wake = signal
		}
		select {
		case <-ctx.Done():
			return
		case <-stats.C:
			r.refreshStats(ctx)
			continue
		case <-wake:
		case <-wait.C:
		}

		_, err := r.Drain(ctx)
		if ctx.Err() != nil {
			return
		}
		next := r.cfg.PollInterval
		if err != nil {
			failures++
			next = r.backoff(failures)
			if !errors.Is(err, errPublish) {
				next = min(next, r.cfg.DatabaseBackoffMax)
			}
			log.Warn("outbox relay: publish failed; backing off", "err", err, "failures", failures, "retry_in", next)
		} else if failures > 0 {
			log.Info("outbox relay: publishing again", "after_failures", failures)
			failures = 0
			r.refreshStats(ctx)
		}
		wait.Reset(next) // Go 1.23+ timers: Reset never leaves a stale tick
	}
}

// errIncomplete is reported when a publisher accepts only part of a batch
// without saying why.
var errIncomplete = errors.New("publisher accepted only part of the batch")

// errPublish marks an error of the publisher, as opposed to the database.
var errPublish = errors.New("publish")

// Drain publishes unsent rows in batches until none is left or a publish
// fails, and returns how many rows it marked sent. The loop calls it on each
// wake-up; tools and tests may call it directly. With Config.MinAge it
// publishes only the rows that old, and locks none unless the oldest
// unsent row is, so a sweeper never holds up a fresh row.
func (r *Relay) Drain(ctx context.Context) (int, error) {
	if r.cfg.MinAge > 0 {
		_, oldest, err := r.store.OutboxStats(ctx)
		if err != nil {
			return 0, fmt.Errorf("outbox stats: %w", err)
		}
		if oldest.IsZero() || time.Since(oldest) < r.cfg.MinAge {
			return 0, nil
		}
	}
	total := 0
	for {
		offered, young := 0, 0
		n, err := r.store.DeliverOutbox(ctx, r.cfg.BatchSize, func(ctx context.Context, msgs []Message) (int, error) {
			offered = len(msgs)
			if r.cfg.MinAge > 0 {
				cutoff := time.Now().Add(-r.cfg.MinAge)
				old := 0
				for old < len(msgs) && !msgs[old].CreatedAt.After(cutoff) {
					old++
				}
				msgs, young = msgs[:old], len(msgs)-old
				if len(msgs) == 0 {
					return 0, nil
				}
			}
			spans := startSpans(ctx, msgs)
			n, err := r.pub.Publish(ctx, msgs)
			endSpans(spans, n, err)
			if n > 0 {
				r.m.published.Add(float64(n))
			}
			if err != nil {
				r.m.errors.Inc()
				err = fmt.Errorf("%w: %w", errPublish, err)
			} else if n < len(msgs) {
				r.m.errors.Inc()
				err = fmt.Errorf("%w: %w", errPublish, errIncomplete)
			}
			return n, err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("deliver outbox: %w", err)
		}
		if young > 0 {
			return total, nil // the rest is not old enough yet
		}
		if n < offered {
			return total, fmt.Errorf("deliver outbox: %w: %w (%d of %d)", errPublish, errIncomplete, n, offered)
		}
		if offered < r.cfg.BatchSize {
			return total, nil
		}
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}

// startSpans starts, with tracing on, one span per message, a child of the
// trace the message was committed under, and hands the span on as the
// message's TraceParent, so the delivery continues from its publish. It
// returns nil with tracing off.
func startSpans(ctx context.Context, msgs []Message) []trace.Span {
	if !tracing.Enabled() {
		return nil
	}
	spans := make([]trace.Span, len(msgs))
	for i := range msgs {
		mctx := commonops.WithTraceParent(ctx, msgs[i].TraceParent)
		mctx, spans[i] = tracing.Start(mctx, "publish "+msgs[i].Topic, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.destination.name", msgs[i].Topic),
				attribute.String("commonops.task.id", msgs[i].TaskID)))
		msgs[i].TraceParent = commonops.TraceParent(mctx)
	}
	return spans
}

// endSpans ends the spans of startSpans: those past the published prefix n
// failed with err.
func endSpans(spans []trace.Span, n int, err error) {
	for i, span := range spans {
		if i < n {
			span.End()
			continue
		}
		if err == nil {
			err = errIncomplete
		}
		tracing.End(span, err)
	}
}

// backoff is the wait after the given number of consecutive failures:
// BackoffMin doubled each time up to BackoffMax, with "equal jitter" (a
// random point in the upper half) so that replicas do not retry in step.
func (r *Relay) backoff(failures int) time.Duration {
	d := r.cfg.BackoffMin
	for i := 1; i < failures && d < r.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, r.cfg.BackoffMax)
	half := d / 2
	return half + rand.N(half+1)
}

func (r *Relay) refreshStats(ctx context.Context) {
	backlog, oldest, err := r.store.OutboxStats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Logger.Warn("outbox relay: read outbox stats", "err", err)
		}
		return
	}
	r.m.backlog.Set(float64(backlog))
	age := 0.0
	if !oldest.IsZero() {
		age = max(time.Since(oldest).Seconds(), 0)
	}
	r.m.oldestAge.Set(age)
}

type metrics struct {
	backlog   prometheus.Gauge
	oldestAge prometheus.Gauge
	published prometheus.Counter
	errors    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commonops_outbox_backlog",
			Help: "Unsent outbox rows, as last read by the relay.",
		}),
		oldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commonops_outbox_oldest_age_seconds",
			Help: "Age of the oldest unsent outbox row (0 when none), as last read by the relay.",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commonops_outbox_published_total",
			Help: "Outbox rows the publisher accepted.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commonops_outbox_publish_errors_total",
			Help: "Failed or partial outbox publish batches.",
		}),
	}
	if reg != nil {
		m.backlog = prom.Register(reg, m.backlog)
		m.oldestAge = prom.Register(reg, m.oldestAge)
		m.published = prom.Register(reg, m.published)
		m.errors = prom.Register(reg, m.errors)
	}
	return m
}
