package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/worker"
)

// workerEnv is the stack's config as GATEWAYQ_* variables, the way an
// operator configures a worker container.
func (s *stack) workerEnv() []string {
	c := s.cfg
	env := map[string]string{
		"profile":                    string(c.Profile),
		"redis.addr":                 c.Redis.Addr,
		"redis.key_prefix":           c.Redis.KeyPrefix,
		"redis.queue_prefix":         c.Redis.QueuePrefix,
		"endpoints.cloud.base_url":   c.Endpoints.Cloud.BaseURL,
		"endpoints.desktop.base_url": c.Endpoints.Desktop.BaseURL,
		"oauth.base_url":             c.OAuth.BaseURL,
		"tls.client_cert":            c.TLS.ClientCert,
		"tls.client_key":             c.TLS.ClientKey,
		"tls.ca_bundle":              c.TLS.CABundle,
		"m2m.signing_key":            c.M2M.SigningKey,
		"m2m.signing_cert":           c.M2M.SigningCert,
		"m2m.issuer":                 c.M2M.Issuer,
		"m2m.algorithm":              c.M2M.Algorithm,
		"tokens.encryption_key":      c.Tokens.EncryptionKey,
		"worker.health_addr":         "127.0.0.1:0",
		"worker.concurrency":         "8",
		"log.format":                 "json",
	}
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		out = append(out, config.EnvName(k)+"="+v)
	}
	return out
}

func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/worker").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/worker: %v\n%s", err, out)
	}
	return bin
}

// TestWorkerBinarySIGTERM runs the real worker binary, configured only by
// environment variables, and stops it with SIGTERM while its calls are in
// the sandbox: it exits 0 after they finish, and every job is filed once.
func TestWorkerBinarySIGTERM(t *testing.T) {
	t.Parallel()
	s := newStack(t, sandbox.Options{Latency: 1500 * time.Millisecond}, demo.Options{})
	jobs := s.returns(t, 3)
	s.enqueueAll(t, jobs)
	cmd := exec.Command(buildWorker(t))
	cmd.Env = s.workerEnv()
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	s.waitFor(t, 30*time.Second, "jobs active in the worker process", func(qi *asynq.QueueInfo) bool { return qi.Active == len(jobs) })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker exited with %v\n%s", err, logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("worker did not stop\n%s", logs.String())
	}
	qi := s.waitFor(t, 5*time.Second, "completed", func(qi *asynq.QueueInfo) bool { return qi.Completed == len(jobs) })
	if qi.Retry+qi.Pending+qi.Archived+qi.Active != 0 {
		t.Fatalf("after SIGTERM: %+v\n%s", qi, logs.String())
	}
	if st := s.sb.Stats(); st.Filed != int64(len(jobs)) || st.DuplicateAttempts != 0 {
		t.Fatalf("sandbox filed %d (want %d), second sends %d", st.Filed, len(jobs), st.DuplicateAttempts)
	}
	for _, secret := range []string{s.cfg.Tokens.EncryptionKey} {
		if strings.Contains(logs.String(), secret) {
			t.Fatal("the worker logged a secret")
		}
	}
	if !strings.Contains(logs.String(), `"msg":"worker stopped"`) {
		t.Fatalf("no orderly stop in the logs:\n%s", logs.String())
	}
}

// TestWorkerBinaryRefusesBadConfig: a world-readable key or a mistyped
// variable is named, and the worker does not start.
func TestWorkerBinaryRefusesBadConfig(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t)
	tests := []struct {
		name  string
		setup func(*stack) []string
		want  []string
	}{
		{"world-readable client key", func(s *stack) []string {
			if err := os.Chmod(s.cfg.TLS.ClientKey, 0o644); err != nil {
				t.Fatal(err)
			}
			return s.workerEnv()
		}, []string{"tls.client_key", "chmod 600"}},
		{"mistyped variable", func(s *stack) []string {
			return append(s.workerEnv(), "GATEWAYQ_WORKER_CONCURENCY=4")
		}, []string{"GATEWAYQ_WORKER_CONCURENCY"}},
		{"verification off outside the sandbox", func(s *stack) []string {
			return append(s.workerEnv(), "GATEWAYQ_PROFILE=production", "GATEWAYQ_TLS_INSECURE_SKIP_VERIFY=true")
		}, []string{"tls.insecure_skip_verify"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, sandbox.Options{}, demo.Options{})
			cmd := exec.Command(bin)
			cmd.Env = tt.setup(s)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("want exit 1, got %v\n%s", err, out)
			}
			for _, want := range tt.want {
				if !strings.Contains(string(out), want) {
					t.Errorf("output does not mention %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestWorkerUnreachableRedis: a worker whose Redis is down says so.
func TestWorkerUnreachableRedis(t *testing.T) {
	t.Parallel()
	s := newStack(t, sandbox.Options{}, demo.Options{})
	cfg := *s.cfg
	cfg.Redis.Addr = "127.0.0.1:1"
	cfg.Redis.DialTimeout = 500 * time.Millisecond
	w, err := worker.New(worker.Options{Config: &cfg, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "redis at 127.0.0.1:1 unreachable") {
		t.Fatalf("err = %v", err)
	}
}
