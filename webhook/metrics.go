package webhook

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/prom"
)

// Outcomes of an attempt, the label of commonops_webhook_attempts_total.
const (
	// OutcomeDelivered is a 2xx: the delivery is done.
	OutcomeDelivered = "delivered"
	// OutcomeRetry is a failed attempt with another one to come.
	OutcomeRetry = "retry"
	// OutcomeFailed is a failed attempt after which the delivery gives up.
	OutcomeFailed = "failed"
)

type metrics struct {
	attempts *prometheus.CounterVec
	latency  prometheus.Histogram
	inFlight prometheus.Gauge
}

// latencyBuckets reach from a local receiver's milliseconds to the retries
// of a day (GiveUpAfter).
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commonops_webhook_attempts_total",
			Help: "Webhook POSTs this process made, by outcome: delivered (2xx), retry (failed, another attempt to come) or failed (failed, the delivery gave up).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "commonops_webhook_delivery_seconds",
			Help:    "Time from a task's terminal status (the commit that wrote the delivery) to the 2xx that delivered it, retries included.",
			Buckets: latencyBuckets,
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commonops_webhook_in_flight",
			Help: "Webhook POSTs this process has in flight.",
		}),
	}
	if reg != nil {
		m.attempts = prom.Register(reg, m.attempts)
		m.latency = prom.Register(reg, m.latency)
		m.inFlight = prom.Register(reg, m.inFlight)
	}
	return m
}

// attempted counts del's last attempt a, which ended at end, as Record
// left del.
func (m *metrics) attempted(del *commonops.Delivery, a commonops.DeliveryAttempt, end time.Time) {
	switch {
	case a.OK:
		m.attempts.WithLabelValues(OutcomeDelivered).Inc()
		m.latency.Observe(max(end.Sub(del.CreatedAt).Seconds(), 0))
	case del.Status == commonops.DeliveryPending:
		m.attempts.WithLabelValues(OutcomeRetry).Inc()
	default:
		m.attempts.WithLabelValues(OutcomeFailed).Inc()
	}
}

// Backlog is the pending deliveries as the backlog gauges read them;
// store.Store provides it.
type Backlog interface {
	DeliveryBacklog(ctx context.Context) (pending int64, oldest time.Time, err error)
}

// BacklogTimeout bounds the query behind the backlog gauges on each
// scrape: past it the scrape goes on without them.
const BacklogTimeout = 2 * time.Second

// BacklogCollector exposes the pending deliveries of every tenant as
// gauges measured on each scrape (the store reads only the pending rows,
// through their partial index): commonops_webhook_pending and
// commonops_webhook_oldest_pending_seconds. Every replica reports the same
// figures, so a dashboard takes their max.
type BacklogCollector struct {
	q               Backlog
	now             func() time.Time
	log             *slog.Logger
	pending, oldest *prometheus.Desc
}

// NewBacklogCollector returns the collector of q's backlog; now is the
// clock (nil: time.Now), log where a failed measure is logged (nil:
// slog.Default()).
func NewBacklogCollector(q Backlog, now func() time.Time, log *slog.Logger) *BacklogCollector {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &BacklogCollector{
		q: q, now: now, log: log,
		pending: prometheus.NewDesc("commonops_webhook_pending", "Webhook deliveries not yet delivered nor given up (due, being sent or waiting for a retry), every tenant's.", nil, nil),
		oldest:  prometheus.NewDesc("commonops_webhook_oldest_pending_seconds", "Age of the oldest pending webhook delivery (since its task's terminal status); 0 when none.", nil, nil),
	}
}

// Describe sends the two gauges' descriptions.
func (c *BacklogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.oldest
}

// Collect measures the backlog, within BacklogTimeout.
func (c *BacklogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), BacklogTimeout)
	defer cancel()
	n, oldest, err := c.q.DeliveryBacklog(ctx)
	if err != nil {
		c.log.Warn("webhook backlog not measured", "error", err)
		return
	}
	age := 0.0
	if !oldest.IsZero() {
		age = max(c.now().Sub(oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
