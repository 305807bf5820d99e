// Command worker runs a gatewayq worker: it takes jobs from the realtime,
// bulk and redrive queues in Redis and runs them against IR's gateway
// until SIGINT or SIGTERM, then stops taking jobs and lets those in flight
// finish (worker.shutdown_timeout). SIGHUP reloads the ingest listener's
// API keys, certificate and client CAs and the health listener's
// certificate from the config (see Worker.Reload); other settings take
// effect at a restart.
//
//	worker --config gatewayq.yaml
//
// Every setting can also come from GATEWAYQ_* environment variables.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/worker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	configPath := flag.String("config", "", "YAML config file (GATEWAYQ_* environment variables override it)")
	flag.Parse()
	cfg, err := config.Load(*configPath, os.Environ())
	if err != nil {
		return err
	}
	if err := cfg.ValidateFor(config.RoleWorker); err != nil {
		return err
	}
	log := newLogger(cfg.Log)
	log.Info("config loaded", "config", cfg.Redacted())
	w, err := worker.New(worker.Options{Config: cfg, Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go reloadOnHangup(ctx, w, *configPath, log)
	return w.Run(ctx)
}

// reloadOnHangup reloads what can change without a restart (the ingest
// listener's API keys and certificates, the health listener's
// certificate) on every SIGHUP until ctx ends.
func reloadOnHangup(ctx context.Context, w *worker.Worker, configPath string, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := config.Load(configPath, os.Environ())
		if err == nil {
			err = w.Reload(cfg)
		}
		if err != nil {
			log.Error("SIGHUP: reload refused; the keys and certificates in use stay", "err", err)
			continue
		}
		log.Info("SIGHUP: reloaded the ingest listener's keys and certificates and the health listener's certificate; other settings take effect at a restart")
	}
}

func newLogger(c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
