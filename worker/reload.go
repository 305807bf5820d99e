package worker

import (
	"errors"

	"github.com/gatewayq/gatewayq/config"
)

// Reload applies what can change without a restart from cfg, a config
// loaded afresh (cmd/worker does on SIGHUP): the ingest listener's API
// keys, certificate and client CAs, and the health listener's certificate.
// Everything else in cfg takes effect at the next start. An error leaves
// what is in use as it was.
func (w *Worker) Reload(cfg *config.Config) error {
	if err := cfg.ValidateFor(config.RoleWorker); err != nil {
		return err
	}
	// The health certificate is loaded first and applied last, so that a
	// refusal, of either, changes nothing.
	hc, err := loadHealthCert(cfg.Worker)
	if err != nil {
		return err
	}
	if (hc == nil) != (w.healthCert.Load() == nil) {
		return errors.New("worker.health_cert: the health listener turns TLS on or off only at a restart")
	}
	if err := w.reloadIngest(cfg); err != nil {
		return err
	}
	if hc != nil {
		w.healthCert.Store(hc)
	}
	return nil
}

func (w *Worker) reloadIngest(cfg *config.Config) error {
	switch {
	case w.ingest == nil && cfg.Ingest.Enabled:
		return errors.New("ingest.enabled: the ingest listener starts only with the worker: restart it")
	case w.ingest == nil:
		return nil
	case !cfg.Ingest.Enabled:
		return errors.New("ingest.enabled: the ingest listener stops only with the worker: restart it")
	}
	return w.ingest.Reload(cfg.Ingest)
}
