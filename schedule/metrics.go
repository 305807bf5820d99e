package schedule

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayq/gatewayq/internal/promreg"
)

// Metrics are the scheduler's Prometheus metrics. A nil *Metrics records
// nothing. Only the worker that ran an occurrence counts it, so sum (or
// max) them across the fleet.
type Metrics struct {
	runs *prometheus.CounterVec
	jobs *prometheus.CounterVec
	last *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered). Registering twice with one registry reuses the collectors
// already there.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "gatewayq", "schedule"
	return &Metrics{
		runs: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "runs_total",
			Help: "Runs of scheduled batches by this process, by batch name and outcome (done, rejected, missing, failed, stopped, lost).",
		}, []string{"schedule", "outcome"})),
		jobs: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "jobs_total",
			Help: "Job lines of scheduled batches handled by this process, by batch name and result (enqueued, duplicate, rejected).",
		}, []string{"schedule", "result"})),
		last: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "last_occurrence_timestamp_seconds",
			Help: "Scheduled time of the last occurrence this process ran, by batch name and outcome: alert when the done one falls a day behind.",
		}, []string{"schedule", "outcome"})),
	}
}

func (m *Metrics) record(r *Run) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(r.Name, string(r.Outcome)).Inc()
	if r.Outcome != OutcomeLost {
		m.last.WithLabelValues(r.Name, string(r.Outcome)).Set(float64(r.Occurrence.Unix()))
	}
	m.jobs.WithLabelValues(r.Name, "enqueued").Add(float64(r.Enqueued))
	m.jobs.WithLabelValues(r.Name, "duplicate").Add(float64(r.Duplicates))
	m.jobs.WithLabelValues(r.Name, "rejected").Add(float64(r.Rejected))
}
