package worker

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/gatewayclient"
)

// CertWarnBefore is how long before one of the worker's certificates
// expires /readyz starts warning about it (a log line, a warning in its
// answer). IR enrols a new client certificate by hand, so a month's notice.
const CertWarnBefore = 30 * 24 * time.Hour

// Certificate states in /readyz's answer.
const (
	CertOK          = "ok"
	CertExpiring    = "expiring" // within CertWarnBefore of its expiry: still ready, with a warning
	CertExpired     = "expired"  // not ready
	CertNotYetValid = "not_yet_valid"
)

// certificate is one certificate the worker loaded and watches for expiry.
type certificate struct {
	field     string // the config field naming it: tls.client_cert, m2m.signing_cert
	path      string
	subject   string
	notBefore time.Time
	notAfter  time.Time
	logged    atomic.Int32 // the most serious state already logged (see level)
}

func level(state string) int32 {
	switch state {
	case CertExpiring:
		return 1
	case CertExpired, CertNotYetValid:
		return 2
	}
	return 0
}

// firstSeen records that the certificate was found in state st, and
// reports whether that is the first time it was found in st or worse.
func (c *certificate) firstSeen(st string) bool {
	lv := level(st)
	for {
		old := c.logged.Load()
		if lv <= old {
			return false
		}
		if c.logged.CompareAndSwap(old, lv) {
			return true
		}
	}
}

func (c *certificate) state(now time.Time) string {
	switch {
	case now.Before(c.notBefore):
		return CertNotYetValid
	case !now.Before(c.notAfter):
		return CertExpired
	case c.notAfter.Sub(now) <= CertWarnBefore:
		return CertExpiring
	}
	return CertOK
}

// loadCertificates returns the certificates the worker presents: the TLS
// client certificate the gateway client loaded (tls.client_cert) and the
// M2M signing certificate (m2m.signing_cert).
func loadCertificates(cfg *config.Config, copts gatewayclient.Options) ([]*certificate, error) {
	var certs []*certificate
	if c := copts.ClientCertificate; c != nil && len(c.Certificate) > 0 {
		leaf := c.Leaf
		if leaf == nil {
			var err error
			if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				return nil, fmt.Errorf("tls.client_cert: %w", err)
			}
		}
		certs = append(certs, newCertificate("tls.client_cert", cfg.TLS.ClientCert, leaf))
	}
	if cfg.M2M.SigningCert != "" {
		leaf, err := readCertificate(cfg.M2M.SigningCert)
		if err != nil {
			return nil, fmt.Errorf("m2m.signing_cert: %w", err)
		}
		certs = append(certs, newCertificate("m2m.signing_cert", cfg.M2M.SigningCert, leaf))
	}
	return certs, nil
}

func newCertificate(field, path string, leaf *x509.Certificate) *certificate {
	return &certificate{field: field, path: path, subject: leaf.Subject.CommonName, notBefore: leaf.NotBefore, notAfter: leaf.NotAfter}
}

// readCertificate parses the first PEM certificate in path.
func readCertificate(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("%s holds no PEM certificate", path)
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// certCollector exports gatewayq_certificate_expiry_seconds{cert}: the time
// left before each certificate expires, negative once it has.
type certCollector struct {
	certs []*certificate
	// listeners, when set, gives the listeners' own certificates as they
	// are now (a reload can replace them): exported, but not part of
	// readiness, since an expired ingest or health certificate stops no
	// filing.
	listeners func() []*certificate
	desc      *prometheus.Desc
}

func newCertCollector(certs []*certificate) *certCollector {
	return &certCollector{certs: certs, desc: prometheus.NewDesc("gatewayq_certificate_expiry_seconds",
		"Seconds until the certificate expires (negative once expired), by the config field naming it (tls.client_cert, m2m.signing_cert, ingest.cert, worker.health_cert).",
		[]string{"cert"}, nil)}
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	certs := c.certs
	if c.listeners != nil {
		certs = append(slices.Clip(certs), c.listeners()...)
	}
	for _, cert := range certs {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, cert.notAfter.Sub(now).Seconds(), cert.field)
	}
}

// listenerCerts are the certificates the worker's own listeners present
// now: the ingest API's (ingest.cert) and the health listener's
// (worker.health_cert), when they serve TLS.
func (w *Worker) listenerCerts() []*certificate {
	var cs []*certificate
	if w.ingest != nil {
		if leaf := w.ingest.Certificate(); leaf != nil {
			cs = append(cs, newCertificate("ingest.cert", w.cfg.Ingest.Cert, leaf))
		}
	}
	if hc := w.healthCert.Load(); hc != nil {
		leaf := hc.Leaf
		if leaf == nil {
			leaf, _ = x509.ParseCertificate(hc.Certificate[0])
		}
		if leaf != nil {
			cs = append(cs, newCertificate("worker.health_cert", w.cfg.Worker.HealthCert, leaf))
		}
	}
	return cs
}

// CertStatus is one certificate in /readyz's answer.
type CertStatus struct {
	Cert     string    `json:"cert"` // the config field: tls.client_cert, m2m.signing_cert
	Path     string    `json:"path"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after"`
	// ExpiresIn is the time left, in whole seconds; negative once expired.
	ExpiresIn int64  `json:"expires_in_seconds"`
	State     string `json:"state"` // CertOK, CertExpiring, CertExpired, CertNotYetValid
}

// Readiness is /readyz's answer.
type Readiness struct {
	// Status is "ready" (HTTP 200) or "not_ready" (HTTP 503).
	Status string `json:"status"`
	// Redis is "ok" or why it cannot be reached.
	Redis string `json:"redis"`
	// Stopping is true once the worker has stopped taking jobs.
	Stopping     bool         `json:"stopping,omitempty"`
	Certificates []CertStatus `json:"certificates"`
	// Warnings say what needs attention soon without making the worker
	// unready: a certificate within CertWarnBefore of its expiry.
	Warnings []string `json:"warnings,omitempty"`
}

// checkCertificates reports each certificate's state at now, logging each
// certificate the first time it is found expiring, and again when expired.
func checkCertificates(certs []*certificate, now time.Time, log *slog.Logger) (statuses []CertStatus, warnings []string, ok bool) {
	ok = true
	statuses = []CertStatus{}
	for _, c := range certs {
		st := c.state(now)
		left := c.notAfter.Sub(now)
		statuses = append(statuses, CertStatus{Cert: c.field, Path: c.path, Subject: c.subject, NotAfter: c.notAfter.UTC(),
			ExpiresIn: int64(left / time.Second), State: st})
		attrs := []any{"cert", c.field, "path", c.path, "subject", c.subject, "not_after", c.notAfter.UTC()}
		first := c.firstSeen(st)
		switch st {
		case CertExpiring:
			days := int(math.Ceil(left.Hours() / 24))
			warnings = append(warnings, fmt.Sprintf("%s (%s) expires in %d days, at %s: renew it with IR before then", c.field, c.subject, days, c.notAfter.UTC().Format(time.RFC3339)))
			if first {
				log.Warn("certificate expires soon; renew it", append(attrs, "days_left", days)...)
			}
		case CertExpired:
			ok = false
			if first {
				log.Error("certificate expired: the worker is not ready", attrs...)
			}
		case CertNotYetValid:
			ok = false
			if first {
				log.Error("certificate not valid yet: the worker is not ready", append(attrs, "not_before", c.notBefore.UTC())...)
			}
		}
	}
	return statuses, warnings, ok
}

// readyz answers whether this worker can do its work: Redis reachable,
// its certificates valid, not stopping. /healthz only says the process
// runs and reaches Redis (a liveness probe); readiness is what a deploy
// waits for and what an operator alerts on.
func (w *Worker) readyz(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	rd := Readiness{Status: "ready", Redis: "ok"}
	ready := true
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		rd.Redis, ready = err.Error(), false
	}
	var certsOK bool
	rd.Certificates, rd.Warnings, certsOK = checkCertificates(w.certs, time.Now(), w.log)
	if !certsOK {
		ready = false
	}
	if w.stopping.Load() {
		rd.Stopping, ready = true, false
	}
	code := http.StatusOK
	if !ready {
		rd.Status, code = "not_ready", http.StatusServiceUnavailable
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	_ = json.NewEncoder(rw).Encode(rd)
}
