package worker_test

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/syncbuf"
	"github.com/gatewayq/gatewayq/worker"
)

// worker.health_cert: the health listener (and with it /metrics and the
// monitoring UI) speaks TLS only, and Reload rotates its certificate.
func TestHealthListenerOverTLS(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	files := sandboxPKI(t)
	cfg := healthConfig(r, files)
	cfg.Worker.HealthCert, cfg.Worker.HealthKey = files.ServerCert, files.ServerKey
	cfg.Monitoring.Enabled, cfg.Monitoring.Password = true, "correct-horse-battery"
	if err := cfg.ValidateFor(config.RoleWorker); err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(&syncbuf.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	addr := run(t, w)

	ca, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	verified := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	for _, path := range []string{"/healthz", "/metrics", "/monitoring/"} {
		resp, err := verified.Get("https://" + addr + path)
		if err != nil {
			t.Fatalf("%s over TLS: %v", path, err)
		}
		resp.Body.Close()
		want := http.StatusOK
		if path == "/monitoring/" {
			want = http.StatusUnauthorized // no credentials sent
		}
		if resp.StatusCode != want {
			t.Errorf("%s over TLS: %d, want %d", path, resp.StatusCode, want)
		}
		if resp.ProtoMajor != 2 {
			t.Errorf("%s over TLS: %s, want HTTP/2", path, resp.Proto)
		}
	}
	// Plain HTTP gets nothing from it: Go's server answers 400 to it.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP was served")
		}
	}

	served := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // which certificate is served is the question
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	expiry := func() float64 {
		t.Helper()
		return sample(t, scrapeURL(t, verified, "https://"+addr+"/metrics"), `gatewayq_certificate_expiry_seconds{cert="worker.health_cert"}`)
	}
	if left := expiry(); left < 300*24*3600 { // the sandbox's certificates last a year
		t.Errorf("health certificate expires in %.0f s by /metrics, want about a year", left)
	}
	first := served()
	next := *cfg
	next.Worker.HealthCert, next.Worker.HealthKey = clientCert(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err := w.Reload(&next); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	rotated := served()
	if rotated == first {
		t.Errorf("still serving certificate %s after Reload", first)
	}
	if left := expiry(); left > 25*3600 || left < 23*3600 { // the next one lasts a day
		t.Errorf("health certificate expires in %.0f s by /metrics after Reload, want about a day", left)
	}
	plain := *cfg
	plain.Worker.HealthCert, plain.Worker.HealthKey = "", ""
	if err := w.Reload(&plain); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("Reload turning TLS off: %v, want a refusal", err)
	}
	if got := served(); got != rotated {
		t.Errorf("a refused Reload changed the certificate (%s, was %s)", got, rotated)
	}
}
