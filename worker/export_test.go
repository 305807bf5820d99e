package worker

import "github.com/prometheus/client_golang/prometheus"

// Registry is what w's /metrics serves, for tests that need every metric
// it describes, not only those with a value yet.
func Registry(w *Worker) *prometheus.Registry { return w.reg }
