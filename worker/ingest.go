package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/ingest"
	"github.com/gatewayq/gatewayq/jobstatus"
	"github.com/gatewayq/gatewayq/ledger"
)

// newIngest builds the HTTP ingest API when ingest.enabled, nil otherwise.
// It enqueues and looks jobs up through the worker's own Redis client, so
// it opens no connections of its own.
func newIngest(cfg *config.Config, rdb redis.UniversalClient, log *slog.Logger) (*ingest.Server, error) {
	if !cfg.Ingest.Enabled {
		return nil, nil
	}
	enq := Enqueuer(cfg, rdb)
	finder := jobstatus.New(asynq.NewInspectorFromRedisClient(rdb), jobstatus.Options{
		QueuePrefix: cfg.Redis.QueuePrefix,
		Ledger:      ledger.New(rdb, cfg.Redis.KeyPrefix),
	})
	s, err := ingest.FromConfig(cfg.Ingest, ingest.Deps{Enqueuer: enq, Finder: finder, Redis: rdb, KeyPrefix: cfg.Redis.KeyPrefix, Logger: log.With("component", "ingest")})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	s.Handle("GET "+BatchPathPrefix+"{id}", batchStatus(batch.New(rdb, cfg.Redis.KeyPrefix, batch.Options{Retention: cfg.Worker.ReportRetention}), log))
	return s, nil
}

// BatchPathPrefix is where the ingest API answers a batch's progress and
// outcome counts: GET /v1/batches/{id}, what `enqueue batch status`
// prints, as JSON.
const BatchPathPrefix = "/v1/batches/"

// batchStatus answers GET /v1/batches/{id} with batch.Status; 404 for a
// batch never recorded or past its retention, 503 when Redis fails.
func batchStatus(store *batch.Store, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		st, err := store.Status(r.Context(), id)
		switch {
		case errors.Is(err, batch.ErrNotFound):
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "no such batch (batches are kept for worker.report_retention after their last line)", "id": id})
			return
		case err != nil:
			log.Warn("batch status failed", "batch", id, "caller", ingest.Caller(r.Context()), "err", err)
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "batch status unavailable; try again"})
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	})
}

// startIngest binds the ingest listener, if there is one.
func (w *Worker) startIngest() error {
	if w.ingest == nil {
		return nil
	}
	if err := w.ingest.Start(); err != nil {
		return fmt.Errorf("ingest.addr: %w", err)
	}
	return nil
}

// stopIngest stops taking triggers and lets requests in flight finish: a
// list being enqueued is completed rather than cut short.
func (w *Worker) stopIngest() {
	if w.ingest == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ingest.DefaultTimeout+5*time.Second)
	defer cancel()
	_ = w.ingest.Shutdown(ctx)
}

// Ingest is the HTTP ingest API server, nil unless ingest.enabled. Add
// routes to it (Handle) before Run.
func (w *Worker) Ingest() *ingest.Server { return w.ingest }

// IngestAddr is the address the ingest API listens on, once running.
func (w *Worker) IngestAddr() string {
	if w.ingest == nil {
		return ""
	}
	return w.ingest.Addr()
}
