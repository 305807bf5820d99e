package worker

import (
	"log/slog"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/tasks"
)

// registerFleetMetrics registers what the worker's /metrics exports about
// the fleet as a whole, read from Redis at scrape time: asynq's queue
// metrics (asynq_*) for gatewayq's queues and the filing ledger's counts;
// and the configured rate ceilings the limiter's effective rate adapts
// under. Every worker exports the same fleet-wide values, so dashboards
// aggregate them with max.
func registerFleetMetrics(reg prometheus.Registerer, cfg *config.Config, keys map[gatewayclient.EndpointKind]string, insp *asynq.Inspector, l *ledger.Ledger, log *slog.Logger) {
	queues := map[string]bool{}
	for _, q := range config.QueueNames() {
		queues[tasks.QueueName(cfg.Redis.QueuePrefix, q)] = true
	}
	reg.MustRegister(queueCollector{inner: asynqmetrics.NewQueueMetricsCollector(insp), queues: queues})
	reg.MustRegister(ledger.NewCollector(l, log.With("component", "metrics")))

	ceiling := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gatewayq", Subsystem: "ratelimit", Name: "ceiling_rate",
		Help: "Configured rate in permits per second (limits.cloud_rps, limits.desktop_rps): the ceiling gatewayq_ratelimit_effective_rate adapts under, by limit key.",
	}, []string{"key"})
	ceiling.WithLabelValues(keys[gatewayclient.EndpointCloud]).Set(cfg.Limits.CloudRPS)
	ceiling.WithLabelValues(keys[gatewayclient.EndpointDesktop]).Set(cfg.Limits.DesktopRPS)
	reg.MustRegister(ceiling)
}

// queueCollector is asynq's own queue collector (asynq_queue_size,
// asynq_tasks_enqueued_total{state}, asynq_queue_latency_seconds, ...),
// narrowed to gatewayq's queues: asynq's reports every queue in the Redis,
// and redis.queue_prefix exists so that several environments can share
// one. It is an unchecked collector (Describe sends nothing) because
// asynq's Describe collects, which would reach Redis while the worker is
// being built rather than when it is scraped.
type queueCollector struct {
	inner  prometheus.Collector
	queues map[string]bool
}

func (queueCollector) Describe(chan<- *prometheus.Desc) {}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 64)
	go func() {
		c.inner.Collect(all)
		close(all)
	}()
	for m := range all {
		if c.ours(m) {
			ch <- m
		}
	}
}

// ours reports whether m is about one of gatewayq's queues.
func (c queueCollector) ours(m prometheus.Metric) bool {
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		return false
	}
	for _, lp := range pb.GetLabel() {
		if lp.GetName() == "queue" {
			return c.queues[lp.GetValue()]
		}
	}
	return false
}
