package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
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
	"github.com/gatewayq/gatewayq/worker"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestDemoAgainstRealRedis runs the demo's whole path — enqueue, workers,
// sandbox over mutual TLS, OAuth and M2M — and checks every job ended as
// the batch was built to end.
func TestDemoAgainstRealRedis(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	sum, err := demo.Run(context.Background(), demo.Options{
		RedisAddr: r.Addr, QueuePrefix: r.Prefix, Returns: 60, Accounts: 8, Workers: 2,
		Latency: 5 * time.Millisecond, Timeout: 3 * time.Minute, Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	checkDemo(t, sum)
}

// TestDemoEmbeddedRedis runs the demo the way a newcomer does: no Redis
// address, so on miniredis.
func TestDemoEmbeddedRedis(t *testing.T) {
	t.Parallel()
	sum, err := demo.Run(context.Background(), demo.Options{Returns: 30, Accounts: 4, Latency: 5 * time.Millisecond, Timeout: 3 * time.Minute, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Redis != "embedded (miniredis)" {
		t.Fatalf("Redis = %q", sum.Redis)
	}
	checkDemo(t, sum)
}

func checkDemo(t *testing.T, sum *demo.Summary) {
	t.Helper()
	js, _ := json.MarshalIndent(sum, "", "  ")
	t.Logf("summary:\n%s", js)
	exp := sum.Expected
	if sum.RejectedAtEnqueue != exp["rejected_at_enqueue"] || sum.RejectReasons["payload fails IR's XSD"] != exp["rejected_at_enqueue"] {
		t.Errorf("rejected at enqueue %d (%v), want %d for the XSD", sum.RejectedAtEnqueue, sum.RejectReasons, exp["rejected_at_enqueue"])
	}
	if sum.Enqueued+sum.RejectedAtEnqueue != sum.Jobs {
		t.Errorf("enqueued %d + rejected %d != jobs %d", sum.Enqueued, sum.RejectedAtEnqueue, sum.Jobs)
	}
	if sum.LookedUp != exp["account_lookups"] {
		t.Errorf("looked up %d accounts, want %d", sum.LookedUp, exp["account_lookups"])
	}
	var permission, invalid int
	for cause, n := range sum.FailedByCause {
		switch {
		case len(cause) >= 10 && cause[:10] == "permission":
			permission += n
		case len(cause) >= 7 && cause[:7] == "invalid":
			invalid += n
		default:
			t.Errorf("unexpected failure cause %q (%d)", cause, n)
		}
	}
	if permission != exp["permission"] || invalid != exp["invalid_period"] {
		t.Errorf("failures: permission %d (want %d), invalid %d (want %d)", permission, exp["permission"], invalid, exp["invalid_period"])
	}
	wantFiled := sum.Enqueued - exp["account_lookups"] - exp["permission"] - exp["invalid_period"]
	if sum.Filed != wantFiled {
		t.Errorf("filed %d, want %d", sum.Filed, wantFiled)
	}
	if sum.DuplicateFilings != 0 || sum.DuplicateAttempts != 0 || sum.Throttled != 0 {
		t.Errorf("duplicate filings %d, second sends %d, throttled %d: want 0, 0, 0", sum.DuplicateFilings, sum.DuplicateAttempts, sum.Throttled)
	}
	if sum.GatewayCalls < int64(sum.Enqueued) {
		t.Errorf("gateway calls %d < jobs %d", sum.GatewayCalls, sum.Enqueued)
	}
}

// stack is one sandbox, one Redis prefix and a worker config against them.
type stack struct {
	r     *redistest.Redis
	sb    *sandbox.Sandbox
	cfg   *config.Config
	rdb   redis.UniversalClient
	enq   *tasks.Enqueuer
	insp  *asynq.Inspector
	token string // token set ID of a user with full delegation
}

func newStack(t *testing.T, so sandbox.Options, do demo.Options) *stack {
	t.Helper()
	return newStackWith(t, so, do, nil)
}

// newStackWith is newStack with tweak applied to the config before
// anything connects (nil: none).
func newStackWith(t *testing.T, so sandbox.Options, do demo.Options, tweak func(*config.Config)) *stack {
	t.Helper()
	r := redistest.New(t)
	sb, cfg := sandboxtest.Start(t, r, so, do)
	if tweak != nil {
		tweak(cfg)
	}
	rdb := worker.NewRedis(cfg.Redis)
	t.Cleanup(func() { _ = rdb.Close() })
	store, err := worker.TokenStore(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	ts := auth.TokenSet{ID: "ts-e2e", AccessToken: sb.IssueToken("e2e-user", time.Hour), Expiry: time.Now().Add(time.Hour), Endpoint: gatewayclient.EndpointCloud, User: "e2e-user"}
	if err := store.Put(context.Background(), ts); err != nil {
		t.Fatal(err)
	}
	ac := asynq.NewClient(worker.AsynqRedis(cfg.Redis))
	t.Cleanup(func() { _ = ac.Close() })
	insp := asynq.NewInspector(worker.AsynqRedis(cfg.Redis))
	t.Cleanup(func() { _ = insp.Close() })
	return &stack{r: r, sb: sb, cfg: cfg, rdb: rdb, insp: insp, token: ts.ID,
		enq: tasks.NewEnqueuer(ac, worker.EnqueueOptions(cfg))}
}

// runWorker runs a worker until the returned stop function is called;
// stop waits for Run to return.
func (s *stack) runWorker(t *testing.T) (stop func()) {
	t.Helper()
	stop, _ = s.startWorker(t)
	return stop
}

func (s *stack) startWorker(t *testing.T) (stop func(), w *worker.Worker) {
	t.Helper()
	w, err := worker.New(worker.Options{Config: s.cfg, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.Run(ctx); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop, w
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	s := newStack(t, sandbox.Options{}, demo.Options{})
	stop, w := s.startWorker(t)
	deadline := time.Now().Add(10 * time.Second)
	for w.HealthAddr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("health endpoint never came up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://" + w.HealthAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || body["status"] != "ok" || body["redis"] != "ok" {
		t.Fatalf("healthz: %d %v", resp.StatusCode, body)
	}
	stop()
	if _, err := http.Get("http://" + w.HealthAddr() + "/healthz"); err == nil {
		t.Fatal("health endpoint still answering after the worker stopped")
	}
}

func (s *stack) returns(t *testing.T, n int) []*tasks.Job {
	t.Helper()
	b, _, err := demo.Generate(demo.GenerateOptions{Returns: n, TokenSets: []string{s.token}, Seed: 1, BatchID: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	return b.Jobs
}

// enqueueAll puts jobs on the bulk queue, failing the test on any error.
func (s *stack) enqueueAll(t *testing.T, jobs []*tasks.Job) {
	t.Helper()
	for _, j := range jobs {
		if _, err := s.enq.Enqueue(context.Background(), j, tasks.QueueBulk); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *stack) queue() string { return tasks.QueueName(s.r.Prefix, tasks.QueueBulk) }

// waitFor polls the queue until cond holds or the deadline passes.
func (s *stack) waitFor(t *testing.T, within time.Duration, what string, cond func(*asynq.QueueInfo) bool) *asynq.QueueInfo {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		qi, err := s.insp.GetQueueInfo(s.queue())
		if err == nil && cond(qi) {
			return qi
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s (last queue info %+v, err %v)", what, within, qi, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSameBatchTwiceEnqueuesNothingTwice(t *testing.T) {
	t.Parallel()
	s := newStack(t, sandbox.Options{}, demo.Options{})
	jobs := s.returns(t, 10)
	for round := 0; round < 2; round++ {
		for i, j := range jobs {
			res, err := s.enq.Enqueue(context.Background(), j, tasks.QueueBulk)
			if err != nil {
				t.Fatal(err)
			}
			if res.Duplicate != (round == 1) {
				t.Fatalf("round %d job %d: duplicate = %v", round, i, res.Duplicate)
			}
		}
	}
	stop := s.runWorker(t)
	s.waitFor(t, time.Minute, "all filed", func(qi *asynq.QueueInfo) bool { return qi.Completed == len(jobs) })
	stop()
	if st := s.sb.Stats(); st.DuplicateFilings != 0 || st.Filed != int64(len(jobs)) {
		t.Fatalf("sandbox filed %d (want %d), duplicates %d", st.Filed, len(jobs), st.DuplicateFilings)
	}
	// Results are retained and readable by task ID.
	id := jobs[0].ID()
	info, err := s.insp.GetTaskInfo(s.queue(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out tasks.Outcome
	if err := json.Unmarshal(info.Result, &out); err != nil || out.GatewayID == "" || out.SubmissionKey == "" || out.Class != "ok" {
		t.Fatalf("result of %s: %+v (%v)", id, out, err)
	}
}

// TestGracefulStopFinishesCallsInFlight stops a worker while its calls
// are in the sandbox: they finish and are recorded, none is abandoned.
func TestGracefulStopFinishesCallsInFlight(t *testing.T) {
	t.Parallel()
	s := newStack(t, sandbox.Options{Latency: 1500 * time.Millisecond}, demo.Options{})
	jobs := s.returns(t, 4)
	s.enqueueAll(t, jobs)
	stop := s.runWorker(t)
	s.waitFor(t, 30*time.Second, "jobs active", func(qi *asynq.QueueInfo) bool { return qi.Active == len(jobs) })
	stop() // returns only once the jobs in flight have finished
	qi := s.waitFor(t, 5*time.Second, "completed", func(qi *asynq.QueueInfo) bool { return qi.Completed == len(jobs) })
	if qi.Retry+qi.Pending+qi.Archived != 0 {
		t.Fatalf("after a graceful stop: %+v", qi)
	}
	if st := s.sb.Stats(); st.Filed != int64(len(jobs)) {
		t.Fatalf("sandbox filed %d, want %d", st.Filed, len(jobs))
	}
}

// TestThrottlingKeepsRetryBudget lets the sandbox throttle a worker that
// is allowed far more than the sandbox takes: every job still completes,
// none is archived, and no job spent its retry budget on a 429.
func TestThrottlingKeepsRetryBudget(t *testing.T) {
	t.Parallel()
	s := newStack(t, sandbox.Options{ThrottleRPS: 10, ThrottleBurst: 2}, demo.Options{RateRPS: 1000})
	jobs := s.returns(t, 24)
	s.enqueueAll(t, jobs)
	s.runWorker(t)
	s.waitFor(t, 2*time.Minute, "all filed despite throttling", func(qi *asynq.QueueInfo) bool { return qi.Completed == len(jobs) })
	st := s.sb.Stats()
	if st.Throttled == 0 {
		t.Fatal("the sandbox throttled nothing: the test proves nothing")
	}
	for _, j := range jobs {
		info, err := s.insp.GetTaskInfo(s.queue(), j.ID())
		if err != nil {
			t.Fatal(err)
		}
		if info.Retried != 0 {
			t.Fatalf("task %s spent %d retries on throttling", info.ID, info.Retried)
		}
	}
	if st.DuplicateFilings != 0 || st.Filed != int64(len(jobs)) {
		t.Fatalf("filed %d (want %d), duplicates %d", st.Filed, len(jobs), st.DuplicateFilings)
	}
	t.Logf("throttled %d times, all %d jobs filed once", st.Throttled, len(jobs))
}
