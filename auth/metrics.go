package auth

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count the token-set refreshes this process makes as the holder of
// a set's refresh lock (a caller that waits for another holder's refresh
// counts nothing). A nil *Metrics records nothing.
type Metrics struct {
	refreshes *prometheus.CounterVec
}

// Refresh outcomes, the values of gatewayq_token_refreshes_total's outcome
// label.
const (
	RefreshRefreshed  = "refreshed"  // IR issued a new set and it was stored
	RefreshDead       = "dead"       // IR refused the refresh token: the set needs the user's consent again
	RefreshFailed     = "failed"     // the OAuth call or Redis failed; the next holder validates before presenting
	RefreshSuperseded = "superseded" // another worker or a new consent moved the set on first; nothing stored
)

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered). It panics if they are registered already, like
// prometheus.MustRegister. Every outcome starts at zero.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gatewayq", Subsystem: "token", Name: "refreshes_total",
		Help: "OAuth token-set refreshes this process made, by outcome: refreshed, dead, failed, superseded.",
	}, []string{"outcome"})}
	for _, o := range []string{RefreshRefreshed, RefreshDead, RefreshFailed, RefreshSuperseded} {
		m.refreshes.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.refreshes)
	}
	return m
}

// SetMetrics makes the store count its refreshes in m (nil: not counted).
// Call before the store is used.
func (s *Store) SetMetrics(m *Metrics) { s.metrics = m }

// refreshed records the outcome of one refreshLocked.
func (m *Metrics) refreshed(err error) {
	if m == nil {
		return
	}
	m.refreshes.WithLabelValues(refreshOutcome(err)).Inc()
}

func refreshOutcome(err error) string {
	switch {
	case err == nil:
		return RefreshRefreshed
	case errors.Is(err, ErrNeedsConsent):
		return RefreshDead
	case errors.Is(err, errRetry):
		return RefreshSuperseded
	}
	return RefreshFailed
}
