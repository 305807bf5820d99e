// Package promreg registers Prometheus collectors the way every gatewayq
// package wants: idempotently, so that two limiters, schedulers or reapers
// in one process share one set of series instead of failing.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns it, or the collector of the
// same description registered before (so its series are shared). A nil
// reg registers nothing. A conflicting definition under the same name is
// a programming error: it panics.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
