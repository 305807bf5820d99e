package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/auth"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/sandboxtest"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/worker"
)

const dashboardFile = "../deploy/grafana/gatewayq.json"

// dashboardExprs returns every PromQL expression of the Grafana dashboard,
// by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		UID        string  `json:"uid"`
		Title      string  `json:"title"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard without uid or title")
	}
	out := map[string][]string{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			out["variable"] = append(out["variable"], q)
		}
	}
	return out
}

var (
	// Quoted label values and Grafana's $variables are not metric names.
	promQuoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|\$\{?\w+\}?`)
	promIdent  = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// metricNames returns the metric names an expression uses: gatewayq's own
// and asynq's, the namespaces the dashboard reads.
func metricNames(expr string) []string {
	var names []string
	for _, id := range promIdent.FindAllString(promQuoted.ReplaceAllString(expr, ""), -1) {
		if strings.HasPrefix(id, "gatewayq_") || strings.HasPrefix(id, "asynq_") {
			names = append(names, id)
		}
	}
	return names
}

// describedNames are the fully-qualified names of every metric reg
// describes, with a histogram's series suffixes: the metrics that exist
// before their first observation. prometheus.Desc exposes its name only
// in its String form.
func describedNames(reg *prometheus.Registry) map[string]bool {
	ch := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(ch)
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	out := map[string]bool{}
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				out[m[1]+suffix] = true
			}
		}
	}
	return out
}

// exposedNames are the metric names in a /metrics text.
func exposedNames(text string) map[string]bool {
	out := map[string]bool{}
	for line := range strings.Lines(text) {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			out[line[:i]] = true
		}
	}
	return out
}

// TestDashboardUsesExportedMetrics runs a worker against the sandbox, files
// a few returns, and checks that every metric the Grafana dashboard queries
// is one the worker's /metrics exports: in the scrape, or (for a series
// nothing has touched yet, such as throttle signals in a run without
// throttling) described by the worker's registry.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	t.Parallel()
	exprs := dashboardExprs(t)
	if len(exprs) < 10 {
		t.Fatalf("dashboard has %d panels with queries, want the full set", len(exprs))
	}

	r := redistest.New(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sb, cfg := sandboxtest.Start(t, r, sandbox.Options{}, demo.Options{Concurrency: 4})

	rdb := redis.NewClient(worker.RedisOptions(cfg.Redis))
	t.Cleanup(func() { _ = rdb.Close() })
	store, err := worker.TokenStore(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	ts := auth.TokenSet{ID: "ts-dash", AccessToken: sb.IssueToken("dash-user", time.Hour), Expiry: time.Now().Add(time.Hour), Endpoint: gatewayclient.EndpointCloud, User: "dash-user"}
	if err := store.Put(context.Background(), ts); err != nil {
		t.Fatal(err)
	}

	w, err := worker.New(worker.Options{Config: cfg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	addr := run(t, w)

	batch, _, err := demo.Generate(demo.GenerateOptions{Returns: 4, TokenSets: []string{ts.ID}, Seed: 1, BatchID: "dash"})
	if err != nil {
		t.Fatal(err)
	}
	ac := asynq.NewClient(worker.AsynqRedis(cfg.Redis))
	t.Cleanup(func() { _ = ac.Close() })
	enq := tasks.NewEnqueuer(ac, worker.EnqueueOptions(cfg))
	enqueued := 0
	for _, j := range batch.Jobs {
		if _, err := enq.Enqueue(context.Background(), j, tasks.QueueBulk); err == nil {
			enqueued++ // the demo's batch holds a few jobs refused at enqueue by design
		}
	}
	if enqueued == 0 {
		t.Fatal("nothing enqueued")
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	queue := tasks.QueueName(cfg.Redis.QueuePrefix, tasks.QueueBulk)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		qi, err := insp.GetQueueInfo(queue)
		if err == nil && qi.Completed+qi.Archived == enqueued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs not finished within 2 minutes: %+v %v", enqueued, qi, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	text := scrape(t, addr)
	exposed := exposedNames(text)
	described := describedNames(worker.Registry(w))
	for title, list := range exprs {
		for _, e := range list {
			names := metricNames(e)
			if len(names) == 0 {
				t.Errorf("panel %q: %q queries no gatewayq_ or asynq_ metric", title, e)
			}
			for _, n := range names {
				if !exposed[n] && !described[n] {
					t.Errorf("panel %q queries %s, which the worker does not export", title, n)
				}
			}
		}
	}

	// What the run itself must have recorded.
	if v := sample(t, text, `gatewayq_jobs_total{outcome="done"}`); v < 1 {
		t.Errorf("jobs done = %v", v)
	}
	if v := sample(t, text, `gatewayq_gateway_calls_total{class="ok",operation="File",service="returns"}`); v < 1 {
		t.Errorf("File calls ok = %v", v)
	}
	if v := sample(t, text, `gatewayq_ledger_entries{state="filed"}`); v < 1 {
		t.Errorf("ledger entries filed = %v", v)
	}
	if v := sample(t, text, `gatewayq_ledger_entries{state="sending"}`); v != 0 {
		t.Errorf("ledger entries sending = %v after every job finished", v)
	}
	if v := sample(t, text, `gatewayq_ratelimit_ceiling_rate{key="cloud:`+sb.PKI().Clients[0].CN+`"}`); v != cfg.Limits.CloudRPS {
		t.Errorf("cloud ceiling = %v, want %v", v, cfg.Limits.CloudRPS)
	}
	sample(t, text, `asynq_queue_size{queue="`+queue+`"}`)
	// This Redis holds other tests' queues too (other environments'): the
	// worker exports its own only.
	queueLabel := regexp.MustCompile(`^asynq_\w+\{[^}]*queue="([^"]*)"`)
	for line := range strings.Lines(text) {
		if m := queueLabel.FindStringSubmatch(line); m != nil && !strings.HasPrefix(m[1], r.Prefix) {
			t.Errorf("exported another environment's queue: %s", strings.TrimSpace(line))
		}
	}
	for _, want := range []string{"asynq_tasks_enqueued_total", "asynq_queue_latency_seconds", "gatewayq_gateway_call_duration_seconds_bucket",
		"gatewayq_ratelimit_effective_rate", "gatewayq_breaker_state", "gatewayq_certificate_expiry_seconds"} {
		if !exposed[want] {
			t.Errorf("%s not exported after a run", want)
		}
	}
}
