package worker

import (
	"errors"
	"log/slog"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

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
	var queues []string
	for _, q := range config.QueueNames() {
		queues = append(queues, tasks.QueueName(cfg.Redis.QueuePrefix, q))
	}
	reg.MustRegister(queueCollector{insp: insp, queues: queues, log: log.With("component", "metrics")})
	reg.MustRegister(ledger.NewCollector(l, log.With("component", "metrics")))

	ceiling := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gatewayq", Subsystem: "ratelimit", Name: "ceiling_rate",
		Help: "Configured rate in permits per second (limits.cloud_rps, limits.desktop_rps): the ceiling gatewayq_ratelimit_effective_rate adapts under, by limit key.",
	}, []string{"key"})
	ceiling.WithLabelValues(keys[gatewayclient.EndpointCloud]).Set(cfg.Limits.CloudRPS)
	ceiling.WithLabelValues(keys[gatewayclient.EndpointDesktop]).Set(cfg.Limits.DesktopRPS)
	reg.MustRegister(ceiling)
}

// queueCollector exports asynq's queue metrics (the names, labels and
// help of asynq/x/metrics' collector: asynq_queue_size,
// asynq_tasks_enqueued_total{state}, asynq_queue_latency_seconds, ...) for
// gatewayq's queues only. asynq's own collector reads every queue in the
// Redis, where redis.queue_prefix lets several environments share one, and
// drops every series of a scrape when any queue is deleted while it reads
// them. This one asks for its own queues by name, and a queue not created
// yet (nothing enqueued on it) is simply not exported. It is an unchecked
// collector (Describe sends nothing), so building the worker reaches no
// Redis.
type queueCollector struct {
	insp   *asynq.Inspector
	queues []string
	log    *slog.Logger
}

var (
	qmTasks = prometheus.NewDesc("asynq_tasks_enqueued_total",
		"Number of tasks enqueued; broken down by queue and state.", []string{"queue", "state"}, nil)
	qmSize = prometheus.NewDesc("asynq_queue_size",
		"Number of tasks in a queue", []string{"queue"}, nil)
	qmLatency = prometheus.NewDesc("asynq_queue_latency_seconds",
		"Number of seconds the oldest pending task is waiting in pending state to be processed.", []string{"queue"}, nil)
	qmMemory = prometheus.NewDesc("asynq_queue_memory_usage_approx_bytes",
		"Number of memory used by a given queue (approximated number by sampling).", []string{"queue"}, nil)
	qmProcessed = prometheus.NewDesc("asynq_tasks_processed_total",
		"Number of tasks processed (both succeeded and failed); broken down by queue", []string{"queue"}, nil)
	qmFailed = prometheus.NewDesc("asynq_tasks_failed_total",
		"Number of tasks failed; broken down by queue", []string{"queue"}, nil)
	qmPaused = prometheus.NewDesc("asynq_queue_paused_total",
		"Number of queues paused", []string{"queue"}, nil)
)

func (queueCollector) Describe(chan<- *prometheus.Desc) {}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, q := range c.queues {
		info, err := c.insp.GetQueueInfo(q)
		if errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			c.log.Warn("queue metrics not exported in this scrape", "queue", q, "err", err)
			continue
		}
		for state, n := range map[string]int{"active": info.Active, "pending": info.Pending, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed} {
			gauge(qmTasks, float64(n), q, state)
		}
		gauge(qmSize, float64(info.Size), q)
		gauge(qmLatency, info.Latency.Seconds(), q)
		gauge(qmMemory, float64(info.MemoryUsage), q)
		ch <- prometheus.MustNewConstMetric(qmProcessed, prometheus.CounterValue, float64(info.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(qmFailed, prometheus.CounterValue, float64(info.FailedTotal), q)
		paused := 0.0
		if info.Paused {
			paused = 1
		}
		gauge(qmPaused, paused, q)
	}
}
