package deploytest

import (
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/sandbox"
)

const repoRoot = "../.."

// sandboxPKI writes the PKI the sandbox service would write to /pki.
func sandboxPKI(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	s, err := sandbox.New(sandbox.Options{Dir: dir, ServerNames: []string{"sandbox", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return dir
}

// healthPort is the port of the worker service's health listener.
func healthPort(t *testing.T, doc composeDoc, pkiDir string) string {
	t.Helper()
	cfg := workerConfig(t, "worker", doc.Services["worker"].Environment, pkiDir)
	_, port, err := net.SplitHostPort(cfg.Worker.HealthAddr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestEnvNamesAreSettings: every GATEWAYQ_* name anywhere in
// docker-compose.yml — a service's environment, an interpolation, a
// comment telling the reader what to set — names a real setting.
func TestEnvNamesAreSettings(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`GATEWAYQ_[A-Z0-9_]+`).FindAllString(string(data), -1)
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) < 5 {
		t.Fatalf("found only %v", names)
	}
	for _, n := range names {
		// An empty value counts as unset, but a name that is no setting
		// is refused all the same.
		if _, err := config.Load("", []string{n + "="}); err != nil {
			t.Errorf("docker-compose.yml names %s: %v", n, err)
		}
	}
	// And every service's GATEWAYQ_* values parse.
	for name, svc := range readCompose(t).Services {
		var environ []string
		for k, v := range svc.Environment {
			if strings.HasPrefix(k, "GATEWAYQ_") {
				environ = append(environ, k+"="+interpolation.ReplaceAllString(v, "$3"))
			}
		}
		if _, err := config.Load("", environ); err != nil {
			t.Errorf("service %s: %v", name, err)
		}
	}
}

// TestAdminService: the admin UI is a worker in admin-only mode (it takes
// no jobs) whose listener is published on the host's loopback only,
// configured like the other workers.
func TestAdminService(t *testing.T) {
	t.Parallel()
	doc := readCompose(t)
	a, ok := doc.Services["admin"]
	if !ok {
		t.Fatal("no admin service")
	}
	dir := sandboxPKI(t)
	port := healthPort(t, doc, dir)
	if !slices.Equal(a.Entrypoint, []string{"/usr/local/bin/worker"}) {
		t.Errorf("admin entrypoint %v, want the worker binary", a.Entrypoint)
	}
	if !slices.Contains(a.Ports, "127.0.0.1:8081:"+port) {
		t.Errorf("admin ports %v, want 127.0.0.1:8081:%s (the health listener, on loopback only)", a.Ports, port)
	}
	if !slices.Contains(a.Volumes, "pki:/pki:ro") {
		t.Errorf("admin volumes %v: it reads the sandbox's PKI like the workers", a.Volumes)
	}
	cfg := workerConfig(t, "admin", a.Environment, dir)
	if _, p, _ := net.SplitHostPort(cfg.Worker.HealthAddr); p != port {
		t.Errorf("admin listens on %s, the workers on %s", cfg.Worker.HealthAddr, port)
	}
	if !cfg.Worker.AdminOnly {
		t.Error("the admin service takes jobs: want worker.admin_only (GATEWAYQ_WORKER_ADMIN_ONLY) true")
	}
	if !strings.Contains(strings.Join(a.Healthcheck.Test, " "), ":"+port+"/healthz") {
		t.Errorf("admin healthcheck %v", a.Healthcheck.Test)
	}
	// Every published port (admin, sandbox, Prometheus, Grafana) stays on
	// this host's loopback.
	for name, svc := range doc.Services {
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %s beyond this host", name, p)
			}
		}
	}
}

// prometheusConfig is the part of deploy/prometheus/prometheus.yml the
// checks read.
type prometheusConfig struct {
	ScrapeConfigs []struct {
		JobName     string `yaml:"job_name"`
		MetricsPath string `yaml:"metrics_path"`
		DNSSD       []struct {
			Names []string `yaml:"names"`
			Type  string   `yaml:"type"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
	} `yaml:"scrape_configs"`
}

// TestPrometheusScrapesWorkers: Prometheus finds every worker replica (and
// the admin worker) by DNS and scrapes /metrics on the health port.
func TestPrometheusScrapesWorkers(t *testing.T) {
	t.Parallel()
	doc := readCompose(t)
	p, ok := doc.Services["prometheus"]
	if !ok {
		t.Fatal("no prometheus service")
	}
	if !strings.HasPrefix(p.Image, "prom/prometheus:") {
		t.Errorf("prometheus image %q", p.Image)
	}
	const mount = "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
	if !slices.Contains(p.Volumes, mount) {
		t.Errorf("prometheus volumes %v, want %s", p.Volumes, mount)
	}
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var pc prometheusConfig
	if err := yaml.Unmarshal(data, &pc); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	port := healthPort(t, doc, sandboxPKI(t))
	scraped := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			continue
		}
		for _, d := range sc.DNSSD {
			if (d.Type == "A" || d.Type == "") && d.Port > 0 && port == strconv.Itoa(d.Port) {
				for _, n := range d.Names {
					if _, ok := doc.Services[n]; !ok {
						t.Errorf("prometheus resolves %q, which is no compose service", n)
					}
					scraped[n] = true
				}
			}
		}
	}
	for _, want := range []string{"worker", "admin"} {
		if !scraped[want] {
			t.Errorf("prometheus does not scrape the %s service's /metrics on port %s: %+v", want, port, pc.ScrapeConfigs)
		}
	}
}

// TestGrafanaProvisioning: Grafana's data source is the compose
// Prometheus, and its dashboard provider reads the directory the gatewayq
// dashboard is mounted in.
func TestGrafanaProvisioning(t *testing.T) {
	t.Parallel()
	doc := readCompose(t)
	g, ok := doc.Services["grafana"]
	if !ok {
		t.Fatal("no grafana service")
	}
	mounts := map[string]string{} // container path -> repository path
	for _, v := range g.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], "./") {
			mounts[parts[1]] = parts[0]
		}
	}
	dash, ok := mounts["/etc/grafana/dashboards/gatewayq.json"]
	if !ok || dash != "./deploy/grafana/gatewayq.json" {
		t.Errorf("grafana volumes %v: the dashboard must be mounted from deploy/grafana/gatewayq.json", g.Volumes)
	}
	prov, ok := mounts["/etc/grafana/provisioning"]
	if !ok {
		t.Fatalf("grafana volumes %v: no provisioning directory", g.Volumes)
	}

	var ds struct {
		Datasources []struct {
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(repoRoot, prov, "datasources/prometheus.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("datasources %+v", ds.Datasources)
	}
	u, err := url.Parse(ds.Datasources[0].URL)
	if err != nil || u.Hostname() != "prometheus" || u.Port() != "9090" {
		t.Errorf("datasource URL %q, want the prometheus service on 9090", ds.Datasources[0].URL)
	}

	var dp struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(repoRoot, prov, "dashboards/gatewayq.yml"), &dp)
	if len(dp.Providers) != 1 || dp.Providers[0].Options.Path != path.Dir("/etc/grafana/dashboards/gatewayq.json") {
		t.Errorf("dashboard providers %+v, want one reading /etc/grafana/dashboards", dp.Providers)
	}
}

// TestBindMountsExist: every file or directory docker-compose.yml mounts
// from this repository is in it.
func TestBindMountsExist(t *testing.T) {
	t.Parallel()
	for name, svc := range readCompose(t).Services {
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, "./") || src == "./" {
				continue
			}
			if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, src, err)
			}
		}
	}
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}
