// Command bench measures gatewayq's fleet-wide limiter and breaker against
// the built-in IR sandbox with real worker processes, side by side with the
// naive alternatives, and prints a table (or, with --json, one JSON object).
//
//	go run ./cmd/bench            # full run, a few minutes
//	go run ./cmd/bench --quick    # each scenario under a minute
//	go run ./cmd/bench --json
//
// It starts its own redis-server unless --redis is given. The worker
// processes are this executable re-run with --child.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gatewayq/gatewayq/bench"
)

func main() {
	child := flag.String("child", "", "internal: run as a worker process of the given mode (ours, bare)")
	var o bench.Options
	asJSON := flag.Bool("json", false, "print the report as one JSON object")
	scenarios := flag.String("scenarios", strings.Join(bench.Scenarios, ","), "comma-separated scenarios to run")
	flag.BoolVar(&o.Quick, "quick", false, "shorter scenarios: each under a minute")
	flag.StringVar(&o.RedisAddr, "redis", "", "Redis address (default: start a private redis-server)")
	flag.IntVar(&o.Procs, "procs", 4, "worker processes (P)")
	flag.IntVar(&o.Concurrency, "concurrency", 8, "jobs each worker process runs at once")
	flag.Float64Var(&o.Rate, "rate", 100, "the sandbox's limit and our configured limit, requests/s (R)")
	flag.DurationVar(&o.Latency, "latency", 0, "sandbox latency per call (default 40ms)")
	flag.Parse()

	if *child != "" {
		if err := bench.RunChild(*child); err != nil {
			fmt.Fprintln(os.Stderr, "bench worker:", err)
			os.Exit(1)
		}
		return
	}
	o.Scenarios = strings.Split(*scenarios, ",")
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, o)
	if rep != nil {
		// A failed run's figures so far are printed too: they show what broke.
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		} else {
			rep.Print(os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
