package ingest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/ingest"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/syncbuf"
	"github.com/gatewayq/gatewayq/jobstatus"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/worker"
)

// ingestFiles writes the listener's certificate, key and client CA into a
// fresh directory and returns an enabled ingest section naming them.
func ingestFiles(t *testing.T) config.Ingest {
	t.Helper()
	dir := t.TempDir()
	c := config.Default(config.ProfileSandbox).Ingest
	c.Enabled = true
	c.Addr = "127.0.0.1:0"
	c.Cert = writeFile(t, dir, "server.crt", pki().serverPE.cert, 0o644)
	c.Key = writeFile(t, dir, "server.key", pki().serverPE.key, 0o600)
	c.ClientCA = writeFile(t, dir, "clients-ca.pem", pki().caPEM, 0o644)
	return c
}

// startFromConfig serves c's ingest API, built by FromConfig, on a fresh
// Redis prefix until the test ends.
func startFromConfig(t *testing.T, c config.Ingest) (*ingest.Server, *env) {
	t.Helper()
	r, ac, insp := queues(t)
	logs := &syncbuf.Buffer{}
	s, err := ingest.FromConfig(c, ingest.Deps{
		Enqueuer: tasks.NewEnqueuer(ac, tasks.EnqueueOptions{QueuePrefix: r.Prefix}),
		Finder:   jobstatus.New(insp, jobstatus.Options{QueuePrefix: r.Prefix}),
		Redis:    r.Client, KeyPrefix: r.Prefix,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s)
	return s, &env{t: t, r: r, base: "https://" + s.Addr(), insp: insp, logs: logs}
}

func TestFromConfig(t *testing.T) {
	t.Parallel()

	t.Run("serves what the section says", func(t *testing.T) {
		t.Parallel()
		c := ingestFiles(t)
		c.APIKeys = "payroll:" + payrollKey + "\nhr:" + hrKey
		s, e := startFromConfig(t, c)
		if res := e.post("/v1/jobs", mustJSON(t, gstJob(t, 1))); res.code != http.StatusAccepted {
			t.Errorf("API key: %d %s", res.code, res.body)
		}
		good := pki().client
		if res, err := e.request(client(&good), http.MethodGet, ingest.JobPath(taskID(t, gstJob(t, 1))), nil); err != nil || res.code != http.StatusOK {
			t.Errorf("client certificate: %d %s %v", res.code, res.body, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.request(client(nil), http.MethodGet, "/v1/jobs/x", nil, "X-API-Key", payrollKey); err == nil {
			t.Error("still serving after Shutdown")
		}
	})

	t.Run("refuses bad files, naming the setting", func(t *testing.T) {
		t.Parallel()
		rdb := redis.NewClient(&redis.Options{})
		defer rdb.Close()
		deps := ingest.Deps{Enqueuer: &tasks.Enqueuer{}, Finder: &jobstatus.Finder{}, Redis: rdb}
		for _, tt := range []struct {
			name, field string
			mutate      func(c *config.Ingest)
		}{
			{"key readable by others", "ingest.key", func(c *config.Ingest) {
				c.Key = writeFile(t, t.TempDir(), "open.key", pki().serverPE.key, 0o644)
			}},
			{"certificate missing", "ingest.cert", func(c *config.Ingest) { c.Cert = c.Cert + ".missing" }},
			{"client CA not PEM", "ingest.client_ca", func(c *config.Ingest) {
				c.ClientCA = writeFile(t, t.TempDir(), "ca.pem", []byte("not a certificate"), 0o644)
			}},
			{"bad API key", "ingest.api_keys", func(c *config.Ingest) { c.APIKeys = "payroll:short" }},
		} {
			c := ingestFiles(t)
			tt.mutate(&c)
			_, err := ingest.FromConfig(c, deps)
			if err == nil || !strings.HasPrefix(err.Error(), tt.field) {
				t.Errorf("%s: %v, want an error naming %s", tt.name, err, tt.field)
			}
		}
		c := ingestFiles(t)
		c.ClientCA = ""
		if _, err := ingest.FromConfig(c, deps); !errors.Is(err, ingest.ErrNoAuth) {
			t.Errorf("no keys, no client CA: %v, want ErrNoAuth", err)
		}
	})
}

// Reload rotates the API keys and the listener's certificate without a
// restart, and refuses, keeping what is in use, a section it cannot take.
func TestReload(t *testing.T) {
	t.Parallel()
	c := ingestFiles(t)
	c.APIKeys = "payroll:" + payrollKey
	s, e := startFromConfig(t, c)
	logs := e.logs
	postWith := func(key string) int {
		t.Helper()
		res, err := e.request(client(nil), http.MethodPost, "/v1/jobs", mustJSON(t, gstJob(t, 1)), "Content-Type", "application/json", "X-API-Key", key)
		if err != nil {
			t.Fatal(err)
		}
		return res.code
	}
	// served says which certificate a new connection gets, and that it
	// still speaks HTTP/2.
	served := func() *x509.Certificate {
		t.Helper()
		conn, err := tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: pki().caPool, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		st := conn.ConnectionState()
		if st.NegotiatedProtocol != "h2" {
			t.Errorf("negotiated %q, want h2", st.NegotiatedProtocol)
		}
		return st.PeerCertificates[0]
	}
	first, next := mustPair(pki().serverPE).Leaf, mustPair(pki().serverPE2).Leaf
	if got := served(); !got.Equal(first) {
		t.Fatalf("serving certificate serial %s, want the first (%s)", got.SerialNumber, first.SerialNumber)
	}
	if code := postWith(payrollKey); code != http.StatusAccepted {
		t.Fatalf("payroll key before the reload: %d", code)
	}

	// Rotate: the hr key replaces payroll's, and the next certificate the first.
	rotated := c
	rotated.APIKeys = "hr:" + hrKey
	rotated.Cert = writeFile(t, t.TempDir(), "next.crt", pki().serverPE2.cert, 0o644)
	rotated.Key = writeFile(t, t.TempDir(), "next.key", pki().serverPE2.key, 0o600)
	if err := s.Reload(rotated); err != nil {
		t.Fatal(err)
	}
	if code := postWith(payrollKey); code != http.StatusUnauthorized {
		t.Errorf("dropped payroll key after the reload: %d, want 401", code)
	}
	if code := postWith(hrKey); code != http.StatusOK { // the job posted before: a duplicate
		t.Errorf("hr key after the reload: %d, want 200", code)
	}
	if got := served(); !got.Equal(next) {
		t.Errorf("serving certificate serial %s after the reload, want the next (%s)", got.SerialNumber, next.SerialNumber)
	}
	if strings.Contains(logs.String(), hrKey) || !strings.Contains(logs.String(), "reloaded") {
		t.Errorf("reload log:\n%s", logs)
	}

	// Refused, keeping the hr key and the next certificate.
	noCA := rotated
	noCA.ClientCA = ""
	badKey := rotated
	badKey.APIKeys = "hr:short"
	missingCert := rotated
	missingCert.Cert += ".missing"
	for name, tt := range map[string]struct {
		c    config.Ingest
		want string
	}{
		"client CAs dropped": {noCA, "restart"},
		"a bad key":          {badKey, "ingest.api_keys"},
		"a missing cert":     {missingCert, "ingest.cert"},
	} {
		err := s.Reload(tt.c)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), hrKey) {
			t.Errorf("%s: Reload = %v, want an error about %s", name, err, tt.want)
		}
	}
	if code := postWith(hrKey); code != http.StatusOK {
		t.Errorf("hr key after refused reloads: %d", code)
	}
	if got := served(); !got.Equal(next) {
		t.Errorf("certificate after refused reloads: serial %s", got.SerialNumber)
	}
}

// A worker with ingest.enabled serves the API from Run until its context
// ends, and enqueues on the worker's own queues.
func TestWorkerServesIngest(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	cfg := config.Default(config.ProfileSandbox)
	cfg.Redis.Addr = r.Addr
	cfg.Redis.KeyPrefix = r.Prefix
	cfg.Redis.QueuePrefix = r.Prefix
	cfg.Worker.HealthAddr = "127.0.0.1:0"
	// The worker serves redrive only, so the job posted on realtime stays
	// pending for the test to see.
	cfg.Worker.Queues = config.Queues{config.QueueRedrive: 1}
	cfg.Endpoints.Cloud.MutualTLS = false // no IR client certificate here
	cfg.Ingest = ingestFiles(t)
	cfg.Ingest.APIKeys = "payroll:" + payrollKey
	if err := cfg.ValidateFor(config.RoleEnqueue); err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(&syncbuf.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if w.IngestAddr() != "" {
		t.Error("listening before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("worker did not stop")
		}
	}
	defer stop()

	deadline := time.Now().Add(30 * time.Second)
	for w.IngestAddr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("ingest API never listened")
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr})
	defer insp.Close()
	e := &env{t: t, r: r, base: "https://" + w.IngestAddr(), insp: insp, logs: &syncbuf.Buffer{}}
	job := gstJob(t, 9)
	if res := e.post("/v1/jobs", mustJSON(t, job)); res.code != http.StatusAccepted {
		t.Fatalf("post: %d %s", res.code, res.body)
	}
	if n := e.tasksOn("realtime"); n != 1 {
		t.Errorf("%d tasks on the worker's realtime queue, want 1", n)
	}
	if res := e.get(ingest.JobPath(taskID(t, job))); res.code != http.StatusOK {
		t.Errorf("get: %d %s", res.code, res.body)
	}
	// The batch route the worker adds: a recorded batch's counts, 404 for
	// another.
	tj, err := tasks.Decode(mustJSON(t, job))
	if err != nil {
		t.Fatal(err)
	}
	if err := tj.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := batch.New(r.Client, r.Prefix, batch.Options{}).Record(context.Background(), "b-ingest",
		[]batch.Member{batch.MemberOf(1, tj, tasks.Enqueued{ID: tj.ID(), Queue: tasks.QueueName(r.Prefix, tasks.QueueRealtime)})}); err != nil {
		t.Fatal(err)
	}
	if res := e.get(worker.BatchPathPrefix + "b-ingest"); res.code != http.StatusOK || !strings.Contains(string(res.body), `"jobs":1`) || !strings.Contains(string(res.body), `"pending":1`) {
		t.Errorf("batch status: %d %s", res.code, res.body)
	}
	if res := e.get(worker.BatchPathPrefix + "b-other"); res.code != http.StatusNotFound {
		t.Errorf("unknown batch: %d %s", res.code, res.body)
	}
	// The listener's certificate is in the worker's expiry metric.
	metrics, err := http.Get("http://" + w.HealthAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if !strings.Contains(string(mb), `gatewayq_certificate_expiry_seconds{cert="ingest.cert"}`) {
		t.Error("/metrics has no expiry for ingest.cert")
	}
	// What cmd/worker does on SIGHUP: the keys change without a restart;
	// turning the listener off does not.
	rotated := *cfg
	rotated.Ingest.APIKeys = "hr:" + hrKey
	if err := w.Reload(&rotated); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if res := e.post("/v1/jobs", mustJSON(t, job)); res.code != http.StatusUnauthorized {
		t.Errorf("the dropped key after Reload: %d, want 401", res.code)
	}
	off := rotated
	off.Ingest.Enabled = false
	if err := w.Reload(&off); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("Reload turning ingest off: %v, want a refusal", err)
	}

	stop()
	if _, err := e.request(client(nil), http.MethodGet, "/v1/jobs/x", nil, "X-API-Key", payrollKey); err == nil {
		t.Error("ingest API still serving after the worker stopped")
	}
}

// When Redis is down a post answers 503 with Retry-After, and the answer
// does not tell the caller where Redis is.
func TestQueuesUnavailable(t *testing.T) {
	t.Parallel()
	dead := asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: 500 * time.Millisecond}
	ac := asynq.NewClient(dead)
	defer ac.Close()
	insp := asynq.NewInspector(dead)
	defer insp.Close()
	rdb := redis.NewClient(&redis.Options{Addr: dead.Addr, DialTimeout: dead.DialTimeout})
	defer rdb.Close()
	h, err := ingest.New(ingest.Options{
		Enqueuer: tasks.NewEnqueuer(ac, tasks.EnqueueOptions{}),
		Finder:   jobstatus.New(insp, jobstatus.Options{}),
		Redis:    rdb,
		Keys:     testKeys,
		Logger:   slog.New(slog.NewTextHandler(&syncbuf.Buffer{}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = ingest.ServerTLSConfig(pki().server, nil, false)
	srv.StartTLS()
	defer srv.Close()
	e := &env{t: t, base: srv.URL}
	for _, res := range []response{e.post("/v1/jobs", mustJSON(t, []any{gstJob(t, 1)})), e.get("/v1/jobs/x")} {
		var got ingest.ErrorResponse
		res.json(t, &got)
		if res.code != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" || strings.Contains(string(res.body), "127.0.0.1") {
			t.Errorf("%d %v %s", res.code, res.header, res.body)
		}
	}
}
