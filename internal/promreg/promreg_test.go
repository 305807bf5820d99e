package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterShares(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "x_total", Help: "x"}
	a := Register(reg, prometheus.NewCounter(opts))
	b := Register(reg, prometheus.NewCounter(opts))
	if a != b {
		t.Fatal("second registration did not return the first collector")
	}
	if c := Register[prometheus.Counter](nil, prometheus.NewCounter(opts)); c == nil {
		t.Fatal("nil registry: collector not returned")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a conflicting definition did not panic")
		}
	}()
	Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_total", Help: "other"}))
}
