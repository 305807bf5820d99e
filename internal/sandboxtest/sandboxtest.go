// Package sandboxtest starts the IR sandbox for one test and gives the
// worker configuration that reaches it over the test's own Redis prefix,
// so that end-to-end tests across packages set up the same way.
package sandboxtest

import (
	"testing"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/sandbox"
)

// Sandbox starts a sandbox with so, closed when the test ends, and writes
// its PKI (CA, client certificate and key, JWT signing key) to a
// temporary directory of the test.
func Sandbox(t testing.TB, so sandbox.Options) (*sandbox.Sandbox, sandbox.PKIFiles) {
	t.Helper()
	sb, err := sandbox.New(so)
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	files, err := sb.PKI().WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return sb, files
}

// Start starts a sandbox (see Sandbox) and returns it with a worker config
// for it: the demo's (demo.Config), with r's key prefix, and r's prefix
// as the queue prefix unless do names one. do.RateRPS 0 means 1000 and
// do.Concurrency 0 means 8: tests are not about the limit unless they say.
func Start(t testing.TB, r *redistest.Redis, so sandbox.Options, do demo.Options) (*sandbox.Sandbox, *config.Config) {
	t.Helper()
	sb, files := Sandbox(t, so)
	if do.RateRPS == 0 {
		do.RateRPS = 1000
	}
	if do.Concurrency == 0 {
		do.Concurrency = 8
	}
	if do.QueuePrefix == "" {
		do.QueuePrefix = r.Prefix
	}
	cfg, err := demo.Config(r.Addr, sb, files, do)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Redis.KeyPrefix = r.Prefix
	return sb, cfg
}
