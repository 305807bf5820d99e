package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/schedule"
)

// batchScheduler is the worker's share of the scheduled batches: every
// worker runs one, and for each occurrence one of them enqueues the file.
type batchScheduler struct {
	s     *schedule.Scheduler
	log   *slog.Logger
	names []string
}

// newBatchScheduler builds the scheduler of cfg.Schedule; nil when no
// batch is configured.
func newBatchScheduler(cfg *config.Config, rdb redis.UniversalClient, reg prometheus.Registerer, log *slog.Logger) (*batchScheduler, error) {
	if len(cfg.Schedule.Batches) == 0 {
		return nil, nil
	}
	log = log.With("component", "schedule")
	s, err := schedule.New(schedule.Options{
		Config:    cfg.Schedule,
		Redis:     rdb,
		KeyPrefix: cfg.Redis.KeyPrefix,
		Enqueuer:  Enqueuer(cfg, rdb),
		Logger:    log,
		Metrics:   schedule.NewMetrics(reg),
		Recorder:  batch.New(rdb, cfg.Redis.KeyPrefix, batch.Options{Retention: cfg.Worker.ReportRetention}),
	})
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	b := &batchScheduler{s: s, log: log}
	for _, sb := range cfg.Schedule.Batches {
		b.names = append(b.names, sb.Name)
	}
	return b, nil
}

// start runs the scheduler until ctx ends or stop is called. stop waits
// for a run in progress to stop and release its claim (so another worker
// takes over at once); call it before closing Redis. A nil scheduler starts nothing.
func (b *batchScheduler) start(ctx context.Context) (stop func()) {
	if b == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.s.Run(ctx)
	}()
	b.log.Info("scheduled batches running", "batches", b.names, "owner", b.s.Owner())
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}
