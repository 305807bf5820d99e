package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/schedule"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/worker"
)

// TestScheduledBatch runs two workers with a batch due every minute: on
// start, the latest occurrence (under a minute old) is run by one of them,
// and the queue holds each line of the file once.
func TestScheduledBatch(t *testing.T) {
	t.Parallel()
	files := sandboxPKI(t)
	r := redistest.New(t)
	const lines = 20
	dir := t.TempDir()
	var b strings.Builder
	for n := range lines {
		fmt.Fprintf(&b, `{"service":"account","operation":"list","auth":{"mode":"m2m"},"body":"{\"CustomerID\":\"%09d\"}"}`+"\n", 100_000_000+n)
	}
	if err := os.WriteFile(filepath.Join(dir, "jobs.jsonl"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := healthConfig(r, files)
	// No worker takes the bulk queue, so the test can count the batch.
	cfg.Worker.Queues = config.Queues{config.QueueRealtime: 1}
	cfg.Schedule.Batches = config.ScheduledBatches{{Name: "every-minute", Cron: "* * * * *", Dir: dir, File: "jobs.jsonl"}}

	var addrs []string
	for range 2 {
		w, err := worker.New(worker.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, run(t, w))
	}

	// A run a minute later (if the test spans one) finds every job a
	// duplicate; over all runs, each line is enqueued once.
	deadline := time.Now().Add(time.Minute)
	var runs []schedule.Run
	for {
		var err error
		runs, err = schedule.Runs(context.Background(), r.Client, r.Prefix, "every-minute", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) > 0 && runs[len(runs)-1].Outcome == schedule.OutcomeDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no done run: %+v", runs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	enqueued := 0
	for _, run := range runs {
		enqueued += run.Enqueued
	}
	if first := runs[len(runs)-1]; first.Enqueued != lines || first.Queue != config.QueueBulk || enqueued != lines {
		t.Errorf("runs = %+v", runs)
	}
	insp := asynq.NewInspector(worker.AsynqRedis(cfg.Redis))
	defer insp.Close()
	info, err := insp.GetQueueInfo(tasks.QueueName(cfg.Redis.QueuePrefix, config.QueueBulk))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != lines {
		t.Errorf("%d tasks queued, want %d", info.Size, lines)
	}
	done := 0.0
	for _, addr := range addrs {
		m := scrape(t, addr)
		if strings.Contains(m, `gatewayq_schedule_runs_total{outcome="done",schedule="every-minute"}`) {
			done += sample(t, m, `gatewayq_schedule_runs_total{outcome="done",schedule="every-minute"}`)
		}
	}
	if int(done) != len(runs) {
		t.Errorf("the workers count %v done runs, the records %d", done, len(runs))
	}
}
