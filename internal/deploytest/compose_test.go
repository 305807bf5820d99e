// Package deploytest checks the deployment files at the repository root:
// docker-compose.yml must be valid for Docker Compose, and the
// configuration it gives the workers must pass the worker's own config
// validation against the PKI the sandbox really writes.
package deploytest

import (
	"bytes"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/sandbox"
)

const composeFile = "../../docker-compose.yml"

// composeCommand finds Docker Compose v2: the docker CLI plugin, or the
// standalone docker-compose binary of the same version.
func composeCommand() ([]string, bool) {
	if _, err := exec.LookPath("docker"); err == nil {
		if exec.Command("docker", "compose", "version").Run() == nil {
			return []string{"docker", "compose"}, true
		}
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		out, err := exec.Command("docker-compose", "version", "--short").Output()
		// Compose v1 (Python, end of life, Debian 12's docker-compose)
		// validates an older schema; v2 prints 2.x.y (or "dev" when built
		// from source).
		if err == nil && !strings.HasPrefix(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), "1.") {
			return []string{"docker-compose"}, true
		}
	}
	return nil, false
}

// TestComposeConfig validates docker-compose.yml with Docker Compose
// itself (no Docker engine needed). Without Compose the test fails, so a
// broken file cannot pass unseen; GATEWAYQ_NO_DOCKER=1 skips it on
// machines that cannot have it.
func TestComposeConfig(t *testing.T) {
	t.Parallel()
	cmd, ok := composeCommand()
	if !ok {
		if os.Getenv("GATEWAYQ_NO_DOCKER") == "1" {
			t.Skip("Docker Compose v2 not found and GATEWAYQ_NO_DOCKER=1")
		}
		t.Fatal("Docker Compose v2 not found (neither `docker compose` nor a v2 `docker-compose`): install it, or set GATEWAYQ_NO_DOCKER=1 to skip this check")
	}
	args := append(cmd[1:], "-f", composeFile, "config", "-q")
	c := exec.Command(cmd[0], args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(append(cmd, args...), " "), err, stderr.String())
	}
}

// composeDoc is the part of docker-compose.yml the checks below read.
type composeDoc struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Entrypoint  []string          `yaml:"entrypoint"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		StopGracePeriod string `yaml:"stop_grace_period"`
		Deploy          struct {
			Replicas int `yaml:"replicas"`
		} `yaml:"deploy"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func readCompose(t *testing.T) composeDoc {
	t.Helper()
	data, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc composeDoc
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return doc
}

// interpolation is Compose's ${NAME:-default} (and ${NAME-default}).
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}`)

// workerConfig loads a worker service's environment the way cmd/worker
// does, with the /pki paths pointing at pkiDir, and validates it for the
// worker role.
func workerConfig(t *testing.T, service string, env map[string]string, pkiDir string) *config.Config {
	t.Helper()
	var environ []string
	for k, v := range env {
		v = interpolation.ReplaceAllString(v, "$3") // the file's defaults, not this machine's variables
		if rest, ok := strings.CutPrefix(v, "/pki/"); ok {
			v = filepath.Join(pkiDir, rest)
		}
		environ = append(environ, k+"="+v)
	}
	slices.Sort(environ)
	cfg, err := config.Load("", environ)
	if err != nil {
		t.Fatalf("the %s service's environment does not load:\n%v", service, err)
	}
	if err := cfg.ValidateFor(config.RoleWorker); err != nil {
		t.Fatalf("the %s service's environment is not a valid worker config:\n%v", service, err)
	}
	return cfg
}

// TestWorkerConfig loads the workers' environment from docker-compose.yml
// the way cmd/worker does, with the /pki paths pointing at a PKI the
// sandbox generates here, and validates it for the worker role: every
// variable must name a setting, the URLs and files must be right, the
// private keys owner-only, the key pairs matching.
func TestWorkerConfig(t *testing.T) {
	t.Parallel()
	doc := readCompose(t)
	w, ok := doc.Services["worker"]
	if !ok {
		t.Fatal("no worker service")
	}
	if w.Deploy.Replicas < 2 {
		t.Errorf("worker replicas = %d, want at least 2", w.Deploy.Replicas)
	}
	sb, ok := doc.Services["sandbox"]
	if !ok {
		t.Fatal("no sandbox service")
	}

	// The PKI the sandbox service writes to the shared volume.
	dir := filepath.Join(t.TempDir(), "pki")
	s, err := sandbox.New(sandbox.Options{Dir: dir, ServerNames: []string{"sandbox", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if !slices.Contains(sb.Command, "--dir=/pki") || !slices.Contains(sb.Volumes, "pki:/pki") || !slices.Contains(w.Volumes, "pki:/pki:ro") {
		t.Errorf("the sandbox must write its PKI to the pki volume at /pki and the workers read it there: sandbox %v %v, worker %v", sb.Command, sb.Volumes, w.Volumes)
	}

	cfg := workerConfig(t, "worker", w.Environment, dir)
	if cfg.Profile != config.ProfileSandbox || cfg.Redis.Addr != "redis:6379" {
		t.Errorf("profile %q, redis %q", cfg.Profile, cfg.Redis.Addr)
	}
	if key, err := cfg.Tokens.DecodeKey(); err != nil || len(key) != 32 {
		t.Errorf("the placeholder tokens key must be a usable 32-byte key: %v", err)
	}

	// Every endpoint is the sandbox, whose certificate must name it.
	for _, u := range []string{cfg.Endpoints.Cloud.BaseURL, cfg.Endpoints.Desktop.BaseURL, cfg.OAuth.BaseURL} {
		pu, err := url.Parse(u)
		if err != nil || pu.Hostname() != "sandbox" {
			t.Errorf("endpoint %q: want host sandbox", u)
		}
	}
	if !slices.Contains(sb.Command, "--server-name=sandbox") {
		t.Errorf("the sandbox certificate must name the host the workers call: command %v", sb.Command)
	}

	// The healthcheck probes the worker's health listener.
	_, port, err := net.SplitHostPort(cfg.Worker.HealthAddr)
	if err != nil {
		t.Fatal(err)
	}
	probe := strings.Join(w.Healthcheck.Test, " ")
	if !strings.Contains(probe, ":"+port+"/healthz") {
		t.Errorf("worker healthcheck %q does not probe /healthz on port %s", probe, port)
	}

	// Docker's stop timeout must let a worker finish its calls in flight.
	grace, err := time.ParseDuration(w.StopGracePeriod)
	if err != nil || grace <= cfg.Worker.ShutdownTimeout {
		t.Errorf("stop_grace_period %q must exceed worker.shutdown_timeout (%s)", w.StopGracePeriod, cfg.Worker.ShutdownTimeout)
	}

	if _, ok := doc.Volumes["redis-data"]; !ok {
		t.Error("Redis has no persistent volume")
	}
	if r := doc.Services["redis"]; !slices.Contains(r.Command, "--appendonly") {
		t.Errorf("Redis runs without AOF persistence: %v", r.Command)
	}
}
