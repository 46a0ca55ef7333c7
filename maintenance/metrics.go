package maintenance

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops/internal/prom"
)

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
