package worker

import (
	"crypto/tls"
	"fmt"

	"github.com/gatewayq/gatewayq/config"
)

// loadHealthCert loads worker.health_cert and worker.health_key; nil when
// the health listener is plain HTTP.
func loadHealthCert(c config.Worker) (*tls.Certificate, error) {
	if c.HealthCert == "" {
		return nil, nil
	}
	if err := config.CheckKeyFile("worker.health_key", c.HealthKey); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(c.HealthCert, c.HealthKey)
	if err != nil {
		return nil, fmt.Errorf("worker.health_cert: %w", err)
	}
	return &cert, nil
}

// healthTLS is the health listener's TLS configuration: each handshake
// takes the certificate of the latest load, so SIGHUP can rotate it.
func (w *Worker) healthTLS() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return w.healthCert.Load(), nil },
	}
}

// healthScheme is how the health listener is reached.
func (w *Worker) healthScheme() string {
	if w.healthCert.Load() != nil {
		return "https"
	}
	return "http"
}
