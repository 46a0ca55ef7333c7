package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops/operations"
)

// QueueMetricsTimeout bounds the query behind the queue gauges on each
// scrape: past it the scrape goes on without them.
const QueueMetricsTimeout = 2 * time.Second

// queueCollector exposes every tenant's queues as gauges measured on each
// scrape (operations.Service.QueueGauges reads partial indexes of the
// unfinished tasks, so a scrape costs what is in flight, not the history).
// A task type with nothing pending or processing has no samples.
type queueCollector struct {
	svc                      *operations.Service
	log                      *slog.Logger
	pending, running, oldest *prometheus.Desc
}

func newQueueCollector(svc *operations.Service, log *slog.Logger) *queueCollector {
	labels := []string{"task_type"}
	return &queueCollector{
		svc: svc, log: log,
		pending: prometheus.NewDesc("commonops_queue_pending", "Pending tasks (waiting for a worker, a retry's backoff or their input file), every tenant's, by task type.", labels, nil),
		running: prometheus.NewDesc("commonops_queue_running", "Processing tasks, every tenant's, by task type.", labels, nil),
		oldest:  prometheus.NewDesc("commonops_queue_oldest_waiting_seconds", "How long the longest-waiting claimable task of the type has waited since its last state change or the end of its backoff; 0 when none.", labels, nil),
	}
}

// Describe sends the three gauges' descriptions.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.running
	ch <- c.oldest
}

// Collect measures the queues, within QueueMetricsTimeout.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), QueueMetricsTimeout)
	defer cancel()
	now, queues, err := c.svc.QueueGauges(ctx)
	if err != nil {
		c.log.Warn("queue metrics not measured", "error", err)
		return
	}
	for _, q := range queues {
		age := 0.0
		if !q.OldestWaiting.IsZero() {
			age = max(now.Sub(q.OldestWaiting).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(q.Pending), q.TaskType)
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(q.Running), q.TaskType)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, q.TaskType)
	}
}
