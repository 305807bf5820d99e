package schedule_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/schedule"
	"github.com/gatewayq/gatewayq/tasks"
)

// Which occurrence runs, from which file, under which batch ID: a fleet
// back at 05:00 (NZDT) after an outage runs that night's 01:30 batch.
func ExampleDue() {
	b := config.ScheduledBatch{Name: "nightly-gst", Cron: "30 1 * * *", Dir: "/data/in", File: "gst-{date}.jsonl"}
	now := time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC) // 05:00 on the 25th in Auckland

	at, ok, err := schedule.Due(b, now, 6*time.Hour)
	if err != nil {
		fmt.Println(err)
		return
	}
	id, _ := schedule.BatchID(b, at)
	fmt.Println(at, ok)
	fmt.Println(id, b.Path(at))

	// At 08:00 the 01:30 occurrence is past the 6h catch-up window.
	_, ok, _ = schedule.Due(b, now.Add(3*time.Hour), 6*time.Hour)
	fmt.Println(ok)
	// Output:
	// 2026-11-25 01:30:00 +1300 NZDT true
	// nightly-gst-2026-11-25 /data/in/gst-2026-11-25.jsonl
	// false
}

// Every worker runs a Scheduler (worker.Worker does, when schedule.batches
// is set); one of them enqueues each occurrence.
func ExampleScheduler_Run() {
	cfg, err := config.Load(os.Getenv("GATEWAYQ_CONFIG"), os.Environ())
	if err != nil {
		fmt.Println(err)
		return
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr})
	defer rdb.Close()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: cfg.Redis.Addr})
	defer client.Close()

	s, err := schedule.New(schedule.Options{
		Config:    cfg.Schedule,
		Redis:     rdb,
		KeyPrefix: cfg.Redis.KeyPrefix,
		Enqueuer:  tasks.NewEnqueuer(client, tasks.EnqueueOptions{QueuePrefix: cfg.Redis.QueuePrefix}),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	s.Run(ctx)

	// What ran lately, for an operator.
	runs, _ := schedule.Runs(context.Background(), rdb, cfg.Redis.KeyPrefix, "nightly-gst", 7)
	for _, r := range runs {
		fmt.Println(r.Occurrence.Format(time.DateTime), r.Outcome, r.Enqueued, r.Duplicates, r.Rejected, r.File)
	}
}
