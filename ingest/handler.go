// Package ingest is gatewayq's HTTP ingest API for event triggers: other
// services of the DSP (a payslip was approved, an employee started) post
// jobs over HTTPS, and find out how they went.
//
//	POST /v1/jobs[?queue=realtime|bulk|redrive]   one job, or a list of them
//	GET  /v1/jobs/{id}[?queue=...]                 a job's state and result
//
// # Posting jobs
//
// The body (Content-Type: application/json) is one job object, in the
// format of a line of a bulk file (see the README), or a list of them: a
// JSON array, or {"jobs": [...]}. Jobs go on the realtime queue unless
// ?queue= says otherwise.
//
// Every job is validated (IR's XSD included) before any is enqueued: if one
// job of a list is invalid, none is enqueued, and the answer (422) names
// each invalid job by its index in the list with its bad fields. A producer
// fixes them and posts the list again; nothing is ever half-accepted for
// bad input.
//
// The task ID derives from the job (operation, natural key, body), so
// posting a job again is harmless: the answer names the existing job, with
// its current state and "duplicate": true, whichever queue it is on. Posts
// of one job that arrive at once (a webhook retried before its first
// delivery was answered, on another queue even) are taken one at a time,
// fleet-wide, through a short claim on the job's ID in Redis: one is
// accepted, the others answer the job it made.
//
//   - 202 Accepted: at least one job of the request was enqueued now. For
//     one job the body is {"id", "queue", "state", "duplicate": false,
//     "ref"} and Location is its GET URL; for a list, {"jobs": [{"index",
//     "id", "queue", "state", "duplicate", "ref"}...], "accepted",
//     "duplicates"}.
//   - 200 OK: every job of the request already existed: the same bodies,
//     with "duplicate": true and each existing job's state.
//   - 400 malformed JSON (with the byte "offset"), an empty list, an unknown
//     queue; 413 a body over the size limit or a list over the job limit;
//     415 a Content-Type other than application/json; 422 invalid jobs.
//   - 503 the queues (Redis) could not be reached. Jobs of a list enqueued
//     before the failure are listed in "jobs"; posting the whole request
//     again is safe, as they come back as duplicates.
//
// # Looking jobs up
//
// GET /v1/jobs/{id} (the ID as returned; its "/" may be sent as is or as
// %2F) answers 200 with a jobstatus.Status: the asynq state, retries, last
// error, the worker's outcome (IR's status code, gateway ID and submission
// key) and for a File its filing-ledger entry; 404 if no queue holds it
// (finished jobs are kept for worker.result_retention).
//
// # Authentication
//
// Every request is authenticated, by an API key ("Authorization: Bearer
// <key>" or "X-API-Key: <key>") compared in constant time against every
// configured key, or by a client certificate the listener verified against
// its client CAs (Options.ClientCerts). A Handler with neither is refused.
// A failure answers 401 with WWW-Authenticate. Logs name the caller by its
// key's name or its certificate's common name, never the key. Keys, the
// listener's certificate and the client CAs can be replaced while serving
// (Handler.SetKeys, Server.Reload; a worker reloads on SIGHUP).
//
// Every error answers JSON: {"error": "...", ...}. Request bodies are
// never logged: job IDs are.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/jobstatus"
	"github.com/gatewayq/gatewayq/tasks"
)

// Enqueuer puts jobs on the queues; *tasks.Enqueuer is one.
type Enqueuer interface {
	EnqueuePrepared(ctx context.Context, p *tasks.Prepared, queue string, opts ...asynq.Option) (tasks.Enqueued, error)
}

// Finder looks jobs up; *jobstatus.Finder is one. It answers
// jobstatus.ErrNotFound for a job no queue searched holds.
type Finder interface {
	Find(ctx context.Context, id string, queues ...string) (*jobstatus.Status, error)
}

var (
	_ Enqueuer = (*tasks.Enqueuer)(nil)
	_ Finder   = (*jobstatus.Finder)(nil)
)

// Defaults of Options.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxJobs      = 100
	DefaultTimeout      = 30 * time.Second
)

// ErrNoAuth is returned by New for a Handler that would let anyone in.
var ErrNoAuth = errors.New("ingest: no API keys and client certificates not accepted: every caller must be authenticated")

// Options configure a Handler.
type Options struct {
	// Enqueuer and Finder reach the queues. Required.
	Enqueuer Enqueuer
	Finder   Finder
	// Redis holds the short claims that make concurrent posts of one job
	// to different queues one task, under KeyPrefix (the workers'
	// redis.key_prefix). Required.
	Redis     redis.UniversalClient
	KeyPrefix string
	// Keys are the producers' API keys.
	Keys []Key
	// ClientCerts accepts a client certificate as authentication. The
	// Handler trusts the request's verified chains, so the server's
	// tls.Config must verify client certificates against the producers' CAs
	// (ServerTLSConfig does).
	ClientCerts bool
	// MaxBodyBytes caps a request body. Zero value: DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxJobs caps the jobs of one request. Zero value: DefaultMaxJobs.
	MaxJobs int
	// Timeout bounds the Redis work of one request. Once validated, a
	// request's jobs are enqueued even if the client hangs up, so that a
	// list is not cut short. Zero value: DefaultTimeout.
	Timeout time.Duration
	// Logger gets one line per request: the caller, the job IDs, never a
	// body or a key. Zero value: slog.Default().
	Logger *slog.Logger
}

// Handler is the ingest API. It is safe for concurrent use.
type Handler struct {
	opts   Options
	keys   atomic.Pointer[keyring] // swapped by SetKeys
	mux    *http.ServeMux
	log    *slog.Logger
	claims claims
}

var _ http.Handler = (*Handler)(nil)

// New returns the ingest API. It refuses options without an Enqueuer, a
// Finder, or a way to authenticate (ErrNoAuth).
func New(opts Options) (*Handler, error) {
	if opts.Enqueuer == nil || opts.Finder == nil || opts.Redis == nil {
		return nil, errors.New("ingest: an Enqueuer, a Finder and a Redis client are required")
	}
	if len(opts.Keys) == 0 && !opts.ClientCerts {
		return nil, ErrNoAuth
	}
	kr, err := newKeyring(opts.Keys)
	if err != nil {
		return nil, err
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxJobs <= 0 {
		opts.MaxJobs = DefaultMaxJobs
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &Handler{opts: opts, mux: http.NewServeMux(), log: opts.Logger,
		claims: claims{rdb: opts.Redis, prefix: opts.KeyPrefix}}
	h.keys.Store(kr)
	// Method-less, or the mux would answer GET /v1/jobs by redirecting to
	// /v1/jobs/ (the look-up route with an empty ID) rather than 405.
	h.mux.HandleFunc("/v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: "method not allowed", Allow: http.MethodPost})
			return
		}
		h.postJobs(w, r)
	})
	h.mux.HandleFunc("GET /v1/jobs/{id...}", h.getJob)
	return h, nil
}

// Handle adds a route, with http.ServeMux's pattern syntax (e.g. "GET
// /v1/batches/{id}"), behind the same authentication; Caller names who
// called. Call it before serving.
func (h *Handler) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// JobPath is the path of a job's GET, its ID escaped.
func JobPath(id string) string { return "/v1/jobs/" + escapeID(id) }

// escapeID escapes an ID for a path. IDs hold ":" and "/" (the natural
// key); "/" is kept, as the route takes the rest of the path.
func escapeID(id string) string {
	parts := strings.Split(id, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// ServeHTTP authenticates the request, then routes it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	caller, refusal := h.authenticate(r)
	if refusal != "" {
		h.log.Warn("ingest: request refused", "reason", refusal, "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatewayq"`)
		writeJSON(w, http.StatusUnauthorized, ErrorResponse{
			Error: "unauthenticated: " + refusal + " (send Authorization: Bearer <key> or X-API-Key: <key>, or a client certificate)",
		})
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), callerKey{}, caller))
	if _, pattern := h.mux.Handler(r); pattern == "" {
		// The mux's own 404 and 405 answer plain text; answer JSON.
		h.mux.ServeHTTP(&errorRewriter{ResponseWriter: w}, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// errorRewriter turns the mux's plain-text 404 and 405 into JSON errors.
type errorRewriter struct {
	http.ResponseWriter
	wrote bool
}

func (e *errorRewriter) WriteHeader(code int) {
	if e.wrote {
		return
	}
	e.wrote = true
	body := ErrorResponse{Error: strings.ToLower(http.StatusText(code))}
	if code == http.StatusMethodNotAllowed {
		body.Allow = e.Header().Get("Allow")
	}
	e.Header().Del("X-Content-Type-Options")
	writeJSON(e.ResponseWriter, code, body)
}

func (e *errorRewriter) Write(b []byte) (int, error) {
	if !e.wrote {
		e.WriteHeader(http.StatusOK)
	}
	return len(b), nil
}

// writeJSON answers v as JSON with code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own response types are written: they always encode.
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
