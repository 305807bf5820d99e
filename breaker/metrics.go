package breaker

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Metrics exports the breakers' states and counts. A nil *Metrics exports
// nothing. One Metrics may serve several Fleets of a process.
type Metrics struct {
	state       *prometheus.GaugeVec
	changes     *prometheus.CounterVec
	trips       *prometheus.CounterVec
	refused     *prometheus.CounterVec
	window      *prometheus.GaugeVec
	redisErrors prometheus.Counter
}

// NewMetrics creates the breaker metrics and registers them with reg (nil:
// not registered). It panics if they are registered already, like
// prometheus.MustRegister.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "gatewayq", Subsystem: "breaker", Name: "state",
			Help: "Fleet breaker state as this process knows it: 0 closed, 1 half-open, 2 open.",
		}, []string{"key"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gatewayq", Subsystem: "breaker", Name: "state_changes_total",
			Help: "Breaker state changes seen by this process, by the state entered.",
		}, []string{"key", "to"}),
		trips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gatewayq", Subsystem: "breaker", Name: "trips_total",
			Help: "Times this process's own counts tripped the breaker.",
		}, []string{"key"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gatewayq", Subsystem: "breaker", Name: "refused_total",
			Help: "Calls refused because the breaker was open or every half-open probe slot was taken.",
		}, []string{"key"}),
		window: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "gatewayq", Subsystem: "breaker", Name: "window_calls",
			Help: "This process's calls in the breaker's rolling window, by outcome (in_flight: allowed, not yet reported).",
		}, []string{"key", "outcome"}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "gatewayq", Subsystem: "breaker", Name: "redis_errors_total",
			Help: "Failed Redis calls; while Redis fails each process runs its breakers alone.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.state, m.changes, m.trips, m.refused, m.window, m.redisErrors)
	}
	return m
}

func (m *Metrics) redisError() {
	if m != nil {
		m.redisErrors.Inc()
	}
}

// keyMetrics are one key's series, resolved once so the hot path does no
// label look-ups. A nil *keyMetrics exports nothing.
type keyMetrics struct {
	m                                   *Metrics
	key                                 string
	state                               prometheus.Gauge
	trips, refusals                     prometheus.Counter
	success, failure, excluded, pending prometheus.Gauge
}

func (m *Metrics) forKey(key string) *keyMetrics {
	if m == nil {
		return nil
	}
	return &keyMetrics{
		m:        m,
		key:      key,
		state:    m.state.WithLabelValues(key),
		trips:    m.trips.WithLabelValues(key),
		refusals: m.refused.WithLabelValues(key),
		success:  m.window.WithLabelValues(key, "success"),
		failure:  m.window.WithLabelValues(key, "failure"),
		excluded: m.window.WithLabelValues(key, "excluded"),
		pending:  m.window.WithLabelValues(key, "in_flight"),
	}
}

func (k *keyMetrics) setState(s State) {
	if k != nil {
		k.state.Set(float64(s))
	}
}

func (k *keyMetrics) changed(to State) {
	if k != nil {
		k.m.changes.WithLabelValues(k.key, to.String()).Inc()
	}
}

func (k *keyMetrics) tripped() {
	if k != nil {
		k.trips.Inc()
	}
}

func (k *keyMetrics) refused() {
	if k != nil {
		k.refusals.Inc()
	}
}

func (k *keyMetrics) setCounts(c gobreaker.Counts) {
	if k == nil {
		return
	}
	k.success.Set(float64(c.TotalSuccesses))
	k.failure.Set(float64(c.TotalFailures))
	k.excluded.Set(float64(c.TotalExclusions))
	done := c.TotalSuccesses + c.TotalFailures + c.TotalExclusions
	if c.Requests > done {
		k.pending.Set(float64(c.Requests - done))
	} else {
		k.pending.Set(0)
	}
}
