package worker

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/sandbox"
)

// With Redis gone the worker is not ready (and /readyz says why), however
// valid its certificates.
func TestReadyzWithoutRedis(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.New(sandbox.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	files, err := sb.PKI().WriteFiles(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	// An address nothing listens on: a port just freed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg := config.Default(config.ProfileSandbox)
	cfg.Redis.Addr, cfg.Redis.DialTimeout = addr, time.Second
	cfg.TLS.ClientCert, cfg.TLS.ClientKey, cfg.TLS.CABundle = files.ClientCert, files.ClientKey, files.CA
	w, err := New(Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.rdb.Close() })
	rec := httptest.NewRecorder()
	w.readyz(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var rd Readiness
	if err := json.NewDecoder(rec.Body).Decode(&rd); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || rd.Status != "not_ready" || rd.Redis == "ok" || rd.Redis == "" {
		t.Fatalf("readyz without Redis: %d %+v", rec.Code, rd)
	}
	// Only the certificates configured are listed: no M2M signing pair here.
	if len(rd.Certificates) != 1 || rd.Certificates[0].Cert != "tls.client_cert" || rd.Certificates[0].State != CertOK {
		t.Fatalf("certificates %+v", rd.Certificates)
	}
}
