package webui_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"image/png"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/auth"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/sandboxtest"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/webui"
	"github.com/gatewayq/gatewayq/worker"
)

// update makes TestMonitoringInBrowser write its screenshot into the
// repository (screenshotPath) rather than a temporary directory:
//
//	go test ./webui -run TestMonitoringInBrowser -update
var update = flag.Bool("update", false, "write the monitoring UI screenshot to "+screenshotPath)

// screenshotPath is the committed screenshot, relative to this package.
const screenshotPath = "../docs/screenshots/monitoring.png"

// chromium is Debian's Chromium (scripts/test.sh installs it);
// CHROMIUM_PATH overrides it on other systems.
func chromium() string {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// TestMonitoringInBrowser runs the whole thing an operator sees: a real
// worker with the monitoring UI enabled files returns against the sandbox,
// which refuses one for want of delegation; headless Chromium, driven by
// Playwright (browsertest/monitoring.mjs), is refused without credentials,
// logs in, finds the queue, opens its archived jobs and sees the failure
// and IR's reason, and saves a screenshot. A missing Chromium, node or
// Playwright fails the test: scripts/test.sh installs all three.
func TestMonitoringInBrowser(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed to drive the browser (run scripts/test.sh, or install Debian's nodejs): %v", err)
	}
	if _, err := os.Stat(chromium()); err != nil {
		t.Fatalf("Chromium is needed (run scripts/test.sh, or apt-get install chromium; CHROMIUM_PATH names another): %v", err)
	}
	if _, err := os.Stat("browsertest/node_modules/playwright-core"); err != nil {
		t.Fatalf("Playwright is needed (run scripts/test.sh, or npm ci in webui/browsertest): %v", err)
	}

	s := newStack(t)
	user, password := "operator", randomText(t)
	s.cfg.Monitoring = config.Monitoring{Enabled: true, Username: user, Password: password, ReadOnly: true}
	if err := s.cfg.ValidateFor(config.RoleWorker); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	w, err := worker.New(worker.Options{Config: s.cfg, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})

	failed := s.fileReturns(t)
	addr := waitHealthAddr(t, w)
	base := "http://" + addr + webui.RootPath

	shot := filepath.Join(t.TempDir(), "monitoring.png")
	if *update {
		shot = screenshotPath
		if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	abs, err := filepath.Abs(shot)
	if err != nil {
		t.Fatal(err)
	}
	nctx, ncancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer ncancel()
	cmd := exec.CommandContext(nctx, node, "monitoring.mjs")
	cmd.Dir = "browsertest"
	cmd.Env = append(os.Environ(),
		"GQ_BASE_URL="+base, "GQ_USER="+user, "GQ_PASSWORD="+password,
		"GQ_QUEUE="+s.queue(), "GQ_ERROR="+failed.LastErr,
		"GQ_SCREENSHOT="+abs, "GQ_CHROMIUM="+chromium())
	out, err := cmd.CombinedOutput()
	t.Logf("browser:\n%s", out)
	if err != nil {
		t.Fatalf("browser run failed: %v", err)
	}

	f, err := os.Open(abs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", abs, err)
	}
	if img.Width != 1400 || img.Height != 900 {
		t.Errorf("screenshot is %dx%d, want the 1400x900 viewport", img.Width, img.Height)
	}
	t.Logf("screenshot: %s", abs)

	logMu.Lock()
	defer logMu.Unlock()
	if bytes.Contains(logs.Bytes(), []byte(password)) {
		t.Error("the worker logged the monitoring password")
	}
	if !bytes.Contains(logs.Bytes(), []byte(base+"/")) {
		t.Errorf("the worker did not log the UI's URL:\n%s", logs.String())
	}
}

// stack is Redis, the sandbox, and a worker config pointing at both.
type stack struct {
	r    *redistest.Redis
	sb   *sandbox.Sandbox
	cfg  *config.Config
	insp *asynq.Inspector
}

func newStack(t *testing.T) *stack {
	t.Helper()
	r := redistest.New(t)
	// The queue prefix shows in the UI, so it is short rather than the
	// test's own key prefix; the queues are deleted when the test ends.
	var b [4]byte
	_, _ = rand.Read(b[:])
	qp := "webui-" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() { r.DeletePrefix(t, qp) })
	sb, cfg := sandboxtest.Start(t, r, sandbox.Options{}, demo.Options{QueuePrefix: qp, Concurrency: 4})
	insp := asynq.NewInspector(worker.AsynqRedis(cfg.Redis))
	t.Cleanup(func() { _ = insp.Close() })
	return &stack{r: r, sb: sb, cfg: cfg, insp: insp}
}

func (s *stack) queue() string { return tasks.QueueName(s.cfg.Redis.QueuePrefix, tasks.QueueBulk) }

// fileReturns enqueues a few returns, one of them for an identifier the
// user may not act for, waits until the worker is through them, and
// returns the archived (failed) one.
func (s *stack) fileReturns(t *testing.T) *asynq.TaskInfo {
	t.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(worker.RedisOptions(s.cfg.Redis))
	defer rdb.Close()
	store, err := worker.TokenStore(s.cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	ts := auth.TokenSet{ID: "ts-webui", AccessToken: s.sb.IssueToken("webui-user", time.Hour), Expiry: time.Now().Add(time.Hour),
		Endpoint: gatewayclient.EndpointCloud, User: "webui-user"}
	if err := store.Put(ctx, ts); err != nil {
		t.Fatal(err)
	}
	batch, denials, err := demo.Generate(demo.GenerateOptions{Returns: 3, TokenSets: []string{ts.ID}, Seed: 1, BatchID: "gst-2026-09", DenyEvery: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(denials) == 0 {
		t.Fatal("the generated batch has no return the sandbox refuses")
	}
	for _, d := range denials {
		s.sb.Deny("webui-user", d.Identifier, d.AccountType)
	}
	ac := asynq.NewClient(worker.AsynqRedis(s.cfg.Redis))
	defer ac.Close()
	enq := tasks.NewEnqueuer(ac, worker.EnqueueOptions(s.cfg))
	enqueued := 0
	for _, j := range batch.Jobs {
		if _, err := enq.Enqueue(ctx, j, tasks.QueueBulk); err != nil {
			if errors.Is(err, tasks.ErrInvalidJob) {
				continue // the batch holds a few bad payloads on purpose
			}
			t.Fatal(err)
		}
		enqueued++
	}

	deadline := time.Now().Add(45 * time.Second)
	for {
		qi, err := s.insp.GetQueueInfo(s.queue())
		if err == nil && qi.Archived >= 1 && qi.Archived+qi.Completed == enqueued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not get through %d jobs in time (queue %+v, %v)", enqueued, qi, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	archived, err := s.insp.ListArchivedTasks(s.queue())
	if err != nil || len(archived) == 0 {
		t.Fatalf("archived tasks: %v, %v", archived, err)
	}
	if archived[0].LastErr == "" {
		t.Fatalf("the archived task has no error: %+v", archived[0])
	}
	return archived[0]
}

func waitHealthAddr(t *testing.T, w *worker.Worker) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for w.HealthAddr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("the worker's health listener never came up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return w.HealthAddr()
}

func randomText(t *testing.T) string {
	t.Helper()
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// lockedWriter lets the worker's goroutines and the test share a buffer.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
