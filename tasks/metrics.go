package tasks

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayq/gatewayq/gatewayclient"
)

// Metrics are the handler's Prometheus metrics: every gateway call by
// operation and class, its latency, calls in flight, jobs by outcome and
// reconciliations by decision. A nil *Metrics records nothing, so a Handler
// works without them. Recording costs no Redis round trip.
type Metrics struct {
	calls     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	inFlight  prometheus.Gauge
	jobs      *prometheus.CounterVec
	parked    *prometheus.CounterVec
	reconcile *prometheus.CounterVec
}

// Job outcomes, the values of gatewayq_jobs_total's outcome label.
const (
	JobDone      = "done"      // finished: IR's answer is the job's result
	JobRetry     = "retry"     // failed for now; asynq retries it (throttling and outages without spending its budget)
	JobSnoozed   = "snoozed"   // delayed (rate limit, breaker, ledger busy) without counting as a failure
	JobReconcile = "reconcile" // a File whose outcome is unknown; back soon to be reconciled with IR
	JobParked    = "parked"    // archived for an operator
)

// Reconciliation decisions, the values of
// gatewayq_reconciliations_total's decision label.
const (
	ReconcileNotFiled  = "not_filed" // IR has nothing (or not this amendment): the File is sent
	ReconcileFiled     = "filed"     // IR holds the return as we sent it: done
	ReconcileDifferent = "different" // IR holds a different return for the period: parked
	ReconcileFailed    = "failed"    // a reconciliation call failed; retried later, nothing sent
	ReconcileParked    = "parked"    // cannot be reconciled automatically: parked for an operator
	ReconcileDeferred  = "deferred"  // snoozed (rate limit, breaker, ledger changed) before deciding
)

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered). It panics if they are registered already, like
// prometheus.MustRegister. The outcome, decision and class labels start at
// zero, so a dashboard's rate() sees a series before its first event.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns = "gatewayq"
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "gateway", Name: "calls_total",
			Help: "Gateway calls made (File, reconciliation look-ups, REST calls), by service, operation and outcome class.",
		}, []string{"service", "operation", "class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "gateway", Name: "call_duration_seconds",
			Help:    "Duration of gateway calls, from the request to IR's answer or the call deadline, by service and operation.",
			Buckets: []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120},
		}, []string{"service", "operation"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "gateway", Name: "calls_in_flight",
			Help: "Gateway calls this process has sent and not yet had answered.",
		}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "jobs_total",
			Help: "Job attempts by outcome: done, retry, snoozed, reconcile, parked.",
		}, []string{"outcome"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "jobs_parked_total",
			Help: "Jobs archived for an operator, by the class of what stopped them.",
		}, []string{"class"}),
		reconcile: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "reconciliations_total",
			Help: "Reconciliations of Files with an unknown outcome, by decision: not_filed, filed, different, failed, parked, deferred.",
		}, []string{"decision"}),
	}
	for _, o := range []string{JobDone, JobRetry, JobSnoozed, JobReconcile, JobParked} {
		m.jobs.WithLabelValues(o)
	}
	for _, c := range []gatewayclient.Class{gatewayclient.ClassInvalid, gatewayclient.ClassPermission, gatewayclient.ClassConfig,
		gatewayclient.ClassAuth, gatewayclient.ClassAlreadyFiled, gatewayclient.ClassUncertain} {
		m.parked.WithLabelValues(c.String())
	}
	for _, d := range []string{ReconcileNotFiled, ReconcileFiled, ReconcileDifferent, ReconcileFailed, ReconcileParked, ReconcileDeferred} {
		m.reconcile.WithLabelValues(d)
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.latency, m.inFlight, m.jobs, m.parked, m.reconcile)
	}
	return m
}

// callStarted counts a call going out; the returned func records its end.
func (m *Metrics) callStarted() func(service gatewayclient.Service, op string, err error, elapsed time.Duration) {
	if m == nil {
		return func(gatewayclient.Service, string, error, time.Duration) {}
	}
	m.inFlight.Inc()
	return func(service gatewayclient.Service, op string, err error, elapsed time.Duration) {
		m.inFlight.Dec()
		m.calls.WithLabelValues(string(service), op, gatewayclient.ClassOf(err).String()).Inc()
		m.latency.WithLabelValues(string(service), op).Observe(elapsed.Seconds())
	}
}

// job records what a job attempt's error (ProcessTask's result) means.
func (m *Metrics) job(err error) {
	if m == nil {
		return
	}
	outcome := JobOutcome(err)
	m.jobs.WithLabelValues(outcome).Inc()
	var pe *ParkedError
	if outcome == JobParked && errors.As(err, &pe) {
		m.parked.WithLabelValues(pe.Class.String()).Inc()
	}
}

// JobOutcome names what ProcessTask's result err means for the job: one of
// JobDone, JobRetry, JobSnoozed, JobReconcile, JobParked.
func JobOutcome(err error) string {
	var (
		se *SnoozeError
		re *ReconcileError
		pe *ParkedError
	)
	switch {
	case err == nil:
		return JobDone
	case errors.As(err, &pe):
		return JobParked
	case errors.As(err, &se):
		return JobSnoozed
	case errors.As(err, &re):
		return JobReconcile
	}
	return JobRetry
}

// reconciled records a reconciliation's decision from reconcile's result.
func (m *Metrics) reconciled(done bool, err error) {
	if m == nil {
		return
	}
	m.reconcile.WithLabelValues(reconcileDecision(done, err)).Inc()
}

func reconcileDecision(done bool, err error) string {
	var (
		se *SnoozeError
		pe *ParkedError
	)
	switch {
	case !done:
		return ReconcileNotFiled
	case err == nil:
		return ReconcileFiled
	case errors.As(err, &pe):
		if pe.Class == gatewayclient.ClassAlreadyFiled {
			return ReconcileDifferent
		}
		return ReconcileParked
	case errors.As(err, &se):
		return ReconcileDeferred
	}
	return ReconcileFailed
}
