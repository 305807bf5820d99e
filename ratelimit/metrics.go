package ratelimit

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayq/gatewayq/internal/promreg"
)

// Metrics are the limiter's Prometheus metrics. A nil *Metrics records
// nothing, so the limiter works without them.
type Metrics struct {
	granted   *prometheus.CounterVec
	denied    *prometheus.CounterVec
	wait      *prometheus.HistogramVec
	effective *prometheus.GaugeVec
	throttles *prometheus.CounterVec
	degraded  prometheus.Gauge
	inFlight  *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered). Registering twice with one registry reuses the collectors
// already there, so several limiters in one process share them.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "gatewayq", "ratelimit"
	return &Metrics{
		granted: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "permits_granted_total",
			Help: "Permits granted, by limit key and priority.",
		}, []string{"key", "priority"})),
		denied: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "permits_denied_total",
			Help: "Acquire calls that returned a DelayError, by limit key and reason (rate, reserve, in_flight, paused).",
		}, []string{"key", "reason"})),
		wait: promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "wait_seconds",
			Help:    "Time from the start of Acquire to a granted permit, by limit key.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"key"})),
		effective: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "effective_rate",
			Help: "Effective fleet-wide rate in permits per second as last seen by this process, by limit key.",
		}, []string{"key"})),
		throttles: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "throttle_signals_total",
			Help: "Throttle signals (429, 503, ...) reported by this process, by limit key.",
		}, []string{"key"})),
		degraded: promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "degraded",
			Help: "1 while this process limits itself locally because Redis is unreachable.",
		})),
		inFlight: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "in_flight",
			Help: "Permits this process holds and has not released, by limit key.",
		}, []string{"key"})),
	}
}

func (m *Metrics) grant(key string, p Priority, waited time.Duration) {
	if m == nil {
		return
	}
	m.granted.WithLabelValues(key, p.String()).Inc()
	m.wait.WithLabelValues(key).Observe(waited.Seconds())
}

func (m *Metrics) deny(key, reason string) {
	if m == nil {
		return
	}
	m.denied.WithLabelValues(key, reason).Inc()
}

func (m *Metrics) setEffective(key string, rate float64) {
	if m == nil {
		return
	}
	m.effective.WithLabelValues(key).Set(rate)
}

func (m *Metrics) throttle(key string) {
	if m == nil {
		return
	}
	m.throttles.WithLabelValues(key).Inc()
}

func (m *Metrics) setDegraded(on bool) {
	if m == nil {
		return
	}
	if on {
		m.degraded.Set(1)
	} else {
		m.degraded.Set(0)
	}
}

func (m *Metrics) addInFlight(key string, d float64) {
	if m == nil {
		return
	}
	m.inFlight.WithLabelValues(key).Add(d)
}
