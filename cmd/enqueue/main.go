// Command enqueue is gatewayq's producer and operator CLI: it submits one
// job, streams a bulk file of jobs onto the queues, shows a task's state
// and result, follows a batch and writes its morning report, lists failed
// jobs and re-drives them.
//
//	enqueue submit --file job.json
//	enqueue bulk tonight.jsonl --batch b-2026-11-25
//	enqueue status returns:File:GST/123039858/GST/2017-07-31:9f3c...
//	enqueue batch report b-2026-11-25 --format csv
//	enqueue failed --batch b-2026-11-25
//	enqueue redrive --batch b-2026-11-25 --class permission --dry-run
//
// Run "enqueue -h" for the commands and flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
)

func main() {
	// go-redis logs every failed dial on its own; the CLI reports Redis
	// failures once, with the address and what to do, so mute it.
	redis.SetLogger(&logging.VoidLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	a := &app{
		stdin:   os.Stdin,
		stdout:  os.Stdout,
		stderr:  os.Stderr,
		environ: os.Environ(),
		now:     time.Now,
	}
	code := a.Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
