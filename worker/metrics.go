package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops/internal/prom"
)

type poolMetrics struct {
	tasks    *prometheus.CounterVec
	claims   *prometheus.CounterVec
	running  prometheus.Gauge
	duration *prometheus.HistogramVec
	// lateEvents counts created and retried events that came later than
	// LateEvent after their task's change, leaving the claim to the poller.
	lateEvents prometheus.Counter
	// eventDelay is the time from a task's change to its created or
	// retried event reaching the pool.
	eventDelay prometheus.Histogram
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
		lateEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commonops_worker_late_events_total",
			Help: "Created and retried events delivered more than worker.LateEvent after their task's change; the poller claims for them.",
		}),
		eventDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "commonops_worker_event_delay_seconds",
			Help:    "Time from a task's change to its created or retried event reaching the built-in worker: the commit, the relay and the broker (and the replicas' clocks apart).",
			Buckets: []float64{.0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1, 2, 4},
		}),
	}
	if reg != nil {
		m.tasks = prom.Register(reg, m.tasks)
		m.claims = prom.Register(reg, m.claims)
		m.running = prom.Register(reg, m.running)
		m.duration = prom.Register(reg, m.duration)
		m.lateEvents = prom.Register(reg, m.lateEvents)
		m.eventDelay = prom.Register(reg, m.eventDelay)
	}
	return m
}
