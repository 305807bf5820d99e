// Command demo shows gatewayq's whole path on one machine: an embedded
// Redis (or the one given), the built-in IR gateway sandbox over real TLS,
// two workers, and a few hundred GST and payday returns plus M2M account
// look-ups. It ends with a summary: filed, failed by cause, throughput,
// gateway calls, throttled calls and duplicate filings.
//
//	go run ./cmd/demo            # human-readable
//	go run ./cmd/demo --json     # one JSON object
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/gatewayq/gatewayq/demo"
)

func main() {
	var o demo.Options
	asJSON := flag.Bool("json", false, "print the summary as one JSON object")
	verbose := flag.Bool("v", false, "log what the workers and the sandbox do")
	flag.StringVar(&o.RedisAddr, "redis", os.Getenv("GATEWAYQ_REDIS_ADDR"), "Redis address (default: an embedded in-process Redis)")
	flag.StringVar(&o.QueuePrefix, "queue-prefix", "demo:", "prefix of the demo's queue names, to keep a shared Redis tidy")
	flag.IntVar(&o.Returns, "returns", 300, "GST and payday returns to file")
	flag.IntVar(&o.Accounts, "accounts", 40, "account look-ups over the REST API (M2M)")
	flag.IntVar(&o.Workers, "workers", 2, "workers to run")
	flag.Float64Var(&o.RateRPS, "rate", 80, "gateway calls per second allowed to the whole fleet of workers")
	flag.Float64Var(&o.SandboxRPS, "sandbox-rps", 100, "the sandbox's throttle per client certificate (requests/s)")
	flag.DurationVar(&o.Latency, "latency", 0, "sandbox latency per call (default 30ms)")
	flag.Parse()

	if *verbose {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if !*asJSON {
		o.Progress = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sum, err := demo.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(sum)
		return
	}
	sum.Print(os.Stdout)
}
