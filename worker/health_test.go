package worker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/syncbuf"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/worker"
)

// sandboxPKI writes a sandbox PKI (its certificates valid for a year).
func sandboxPKI(t *testing.T) sandbox.PKIFiles {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	files, err := sb.PKI().WriteFiles(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// clientCert writes a self-signed client certificate valid from notBefore
// to notAfter, with its key (owner-only), and returns their paths.
func clientCert(t *testing.T, notBefore, notAfter time.Time) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "0123456789abcdef0123456789abcdef.irdgws.example.test"},
		NotBefore:    notBefore, NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// healthConfig is a worker config on the test's Redis presenting the
// sandbox PKI's certificates. No gateway is called.
func healthConfig(r *redistest.Redis, files sandbox.PKIFiles) *config.Config {
	cfg := config.Default(config.ProfileSandbox)
	cfg.Redis.Addr, cfg.Redis.KeyPrefix, cfg.Redis.QueuePrefix = r.Addr, r.Prefix, r.Prefix
	cfg.TLS.ClientCert, cfg.TLS.ClientKey, cfg.TLS.CABundle = files.ClientCert, files.ClientKey, files.CA
	cfg.M2M.SigningKey, cfg.M2M.SigningCert = files.SigningKey, files.SigningCert
	cfg.M2M.Issuer, cfg.M2M.Algorithm = "gatewayq-sandbox", "ES256"
	cfg.Worker.HealthAddr = "127.0.0.1:0"
	cfg.Worker.Concurrency = 2
	return cfg
}

// run starts w and returns its health address; the worker stops when the
// test ends.
func run(t *testing.T, w *worker.Worker) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.Run(ctx); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for w.HealthAddr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("health endpoint never came up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return w.HealthAddr()
}

func readyz(t *testing.T, addr string) (int, worker.Readiness) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var rd worker.Readiness
	if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, rd
}

// scrape returns the text of w's /metrics.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	return scrapeURL(t, http.DefaultClient, "http://"+addr+"/metrics")
}

// scrapeURL reads a /metrics page through c.
func scrapeURL(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", resp.StatusCode, b)
	}
	return string(b)
}

// sample returns the value of the series line starting with prefix.
func sample(t *testing.T, metrics, prefix string) float64 {
	t.Helper()
	for line := range strings.Lines(metrics) {
		if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no series %s in /metrics", prefix)
	return 0
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	files := sandboxPKI(t)
	now := time.Now()
	tests := []struct {
		name       string
		notBefore  time.Time
		notAfter   time.Time // zero: the sandbox's client certificate
		wantCode   int
		wantStatus string
		wantState  string // of tls.client_cert
		wantWarn   bool
	}{
		{name: "sandbox certificates: ready", wantCode: http.StatusOK, wantStatus: "ready", wantState: worker.CertOK},
		{name: "client certificate expiring in 10 days: ready with a warning", notBefore: now.Add(-time.Hour), notAfter: now.Add(10 * 24 * time.Hour),
			wantCode: http.StatusOK, wantStatus: "ready", wantState: worker.CertExpiring, wantWarn: true},
		{name: "client certificate expired: not ready", notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(-time.Hour),
			wantCode: http.StatusServiceUnavailable, wantStatus: "not_ready", wantState: worker.CertExpired},
		{name: "client certificate not valid yet: not ready", notBefore: now.Add(24 * time.Hour), notAfter: now.Add(400 * 24 * time.Hour),
			wantCode: http.StatusServiceUnavailable, wantStatus: "not_ready", wantState: worker.CertNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := redistest.New(t)
			cfg := healthConfig(r, files)
			if !tt.notAfter.IsZero() {
				cfg.TLS.ClientCert, cfg.TLS.ClientKey = clientCert(t, tt.notBefore, tt.notAfter)
			}
			logs := &syncbuf.Buffer{}
			w, err := worker.New(worker.Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			addr := run(t, w)
			for range 2 { // the second answer is the same, and logs nothing new
				code, rd := readyz(t, addr)
				if code != tt.wantCode || rd.Status != tt.wantStatus || rd.Redis != "ok" {
					t.Fatalf("readyz: %d %+v", code, rd)
				}
				if len(rd.Certificates) != 2 || rd.Certificates[0].Cert != "tls.client_cert" || rd.Certificates[1].Cert != "m2m.signing_cert" {
					t.Fatalf("certificates %+v, want tls.client_cert and m2m.signing_cert", rd.Certificates)
				}
				c := rd.Certificates[0]
				if c.State != tt.wantState || c.Path != cfg.TLS.ClientCert || c.Subject == "" {
					t.Errorf("client certificate %+v, want state %s", c, tt.wantState)
				}
				if m := rd.Certificates[1]; m.State != worker.CertOK || m.ExpiresIn < 300*24*3600 {
					t.Errorf("signing certificate %+v, want ok for about a year", m)
				}
				if got := len(rd.Warnings) == 1 && strings.Contains(rd.Warnings[0], "tls.client_cert") && strings.Contains(rd.Warnings[0], "expires in 10 days"); got != tt.wantWarn {
					t.Errorf("warnings %q, want a warning about tls.client_cert: %v", rd.Warnings, tt.wantWarn)
				}
			}

			// The expiry gauge, in seconds, negative once expired.
			left := sample(t, scrape(t, addr), `gatewayq_certificate_expiry_seconds{cert="tls.client_cert"}`)
			want := time.Until(tt.notAfter).Seconds()
			if tt.notAfter.IsZero() {
				want = (365 * 24 * time.Hour).Seconds()
			}
			if left > want+1 || left < want-2*3600 {
				t.Errorf("gatewayq_certificate_expiry_seconds = %v, want about %v", left, want)
			}

			// One log line however often it is asked.
			warned := strings.Count(logs.String(), "certificate expires soon")
			failed := strings.Count(logs.String(), "certificate expired") + strings.Count(logs.String(), "certificate not valid yet")
			switch tt.wantState {
			case worker.CertExpiring:
				if warned != 1 || failed != 0 {
					t.Errorf("%d expiry warnings, %d errors logged; want one warning:\n%s", warned, failed, logs)
				}
			case worker.CertExpired, worker.CertNotYetValid:
				if warned != 0 || failed != 1 {
					t.Errorf("%d expiry warnings, %d errors logged; want one error:\n%s", warned, failed, logs)
				}
			default:
				if warned+failed != 0 {
					t.Errorf("certificate problems logged for valid certificates:\n%s", logs)
				}
			}
		})
	}
}

// /healthz stays a liveness probe: an expired certificate makes the worker
// unready, not dead.
func TestHealthzIgnoresCertificates(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	cfg := healthConfig(r, sandboxPKI(t))
	cfg.TLS.ClientCert, cfg.TLS.ClientKey = clientCert(t, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	w, err := worker.New(worker.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	addr := run(t, w)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz with an expired certificate: %d, want 200", resp.StatusCode)
	}
	if code, _ := readyz(t, addr); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with an expired certificate: %d, want 503", code)
	}
}

// TestAdminOnlyTakesNoJobs: an admin-only worker serves its listeners but
// never runs a job, and is not one of asynq's servers for its queues.
func TestAdminOnlyTakesNoJobs(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	cfg := healthConfig(r, sandboxPKI(t))
	cfg.Worker.AdminOnly = true
	w, err := worker.New(worker.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	addr := run(t, w)
	if code, rd := readyz(t, addr); code != http.StatusOK {
		t.Fatalf("/readyz %d %+v", code, rd)
	}
	_ = scrape(t, addr)

	client := asynq.NewClient(worker.AsynqRedis(cfg.Redis))
	defer client.Close()
	q := tasks.QueueName(cfg.Redis.QueuePrefix, tasks.QueueRealtime)
	if _, err := client.Enqueue(asynq.NewTask(tasks.TypeGatewayCall, []byte(`{}`), asynq.Queue(q), asynq.TaskID("admin-only"))); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(worker.AsynqRedis(cfg.Redis))
	defer insp.Close()
	// A job-taking worker would have taken the task within a second
	// (it polls every 100 ms) and registered within its heartbeat.
	time.Sleep(6 * time.Second)
	info, err := insp.GetTaskInfo(q, "admin-only")
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("task %+v, %v; want it still pending", info, err)
	}
	servers, err := insp.Servers()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if _, ok := s.Queues[q]; ok {
			t.Fatalf("an asynq server serves %s: %+v", q, s)
		}
	}
}
