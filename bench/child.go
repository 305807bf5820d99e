package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/worker"
)

// Child modes: the process a benchmark run starts P of.
const (
	ModeOurs = "ours" // the gatewayq worker, configured by GATEWAYQ_* variables
	ModeBare = "bare" // a bare asynq handler making the same HTTPS call
)

// RunChild runs one worker process of the given mode until SIGTERM.
func RunChild(mode string) error {
	cfg, err := config.Load("", os.Environ())
	if err != nil {
		return err
	}
	if err := cfg.ValidateFor(config.RoleWorker); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if path := os.Getenv(envCPUProfile); path != "" {
		// For looking into the overhead scenario: one profile per process.
		f, err := os.Create(fmt.Sprintf("%s.%s.%d", path, mode, os.Getpid()))
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	switch mode {
	case ModeOurs:
		w, err := worker.New(worker.Options{Config: cfg, Logger: log})
		if err != nil {
			return err
		}
		return w.Run(ctx)
	case ModeBare:
		return runBare(ctx, cfg, log)
	}
	return fmt.Errorf("unknown child mode %q", mode)
}

// runBare is the comparison for the overhead scenario: asynq with a
// handler that decodes the job, builds the same SOAP envelope and POSTs it
// over the same mutual TLS with keep-alive, and nothing else: no limiter,
// no breaker, no classification, no result.
func runBare(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	copts, err := worker.ClientOptions(cfg, log)
	if err != nil {
		return err
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*copts.ClientCertificate},
			RootCAs:      copts.RootCAs,
		},
		MaxIdleConnsPerHost: cfg.Worker.Concurrency,
	}
	hc := &http.Client{Transport: tr, Timeout: cfg.Gateway.CallTimeout}
	url := cfg.Endpoints.Cloud.BaseURL + cfg.Endpoints.Cloud.ReturnsPath
	h := asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		j, err := tasks.Decode(t.Payload())
		if err != nil {
			return err
		}
		op, err := gatewayclient.LookupOperation(j.Service, j.Operation)
		if err != nil {
			return err
		}
		env, err := gatewayclient.BuildEnvelope(op, []byte(j.Body))
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(env))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", `application/soap+xml; charset=utf-8; action="`+op.Action+`"`)
		req.Header.Set("Authorization", "Bearer "+os.Getenv(envBareToken))
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	})
	queues := map[string]int{}
	for q, p := range cfg.Worker.Queues {
		queues[tasks.QueueName(cfg.Redis.QueuePrefix, q)] = p
	}
	srv := asynq.NewServer(worker.AsynqRedis(cfg.Redis), asynq.Config{
		Concurrency: cfg.Worker.Concurrency, Queues: queues, ShutdownTimeout: 10 * time.Second, LogLevel: asynq.WarnLevel,
	})
	if err := srv.Start(h); err != nil {
		return err
	}
	<-ctx.Done()
	srv.Shutdown()
	tr.CloseIdleConnections()
	return nil
}

// envBareToken carries the bare handler's access token: the bare handler
// has no token store. Not a GATEWAYQ_ variable, which config would refuse
// as unknown.
const envBareToken = "BENCH_BARE_TOKEN"

// envCPUProfile, when set, makes every worker process write a CPU profile
// to "<value>.<mode>.<pid>".
const envCPUProfile = "BENCH_CPUPROFILE"
