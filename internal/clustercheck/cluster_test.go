package clustercheck

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/auth"
	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/breaker"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/failures"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/ingest"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/sandboxtest"
	"github.com/gatewayq/gatewayq/internal/syncbuf"
	"github.com/gatewayq/gatewayq/jobstatus"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/ratelimit"
	"github.com/gatewayq/gatewayq/reaper"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/schedule"
	"github.com/gatewayq/gatewayq/tasks"
)

// workerEnv, set, makes the test binary the asynq worker the reaper part
// kills: it takes one job and holds it until it is killed.
const workerEnv = "GATEWAYQ_CLUSTERCHECK_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		runDoomedWorker()
		return
	}
	os.Exit(m.Run())
}

func runDoomedWorker() {
	addrs := strings.Split(os.Getenv("CLUSTERCHECK_ADDRS"), ",")
	queue, started := os.Getenv("CLUSTERCHECK_QUEUE"), os.Getenv("CLUSTERCHECK_STARTED")
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	srv := asynq.NewServer(asynq.RedisClusterClientOpt{Addrs: addrs}, asynq.Config{
		Concurrency: 1, Queues: map[string]int{queue: 1}, LogLevel: asynq.FatalLevel,
	})
	err := srv.Run(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		rdb.SAdd(context.Background(), started, id)
		<-ctx.Done() // until killed
		return ctx.Err()
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "clustercheck worker:", err)
		os.Exit(1)
	}
}

// TestOwnScriptsRunOnRedisCluster runs every Lua script and multi-key
// command of the library packages on a three-master Redis Cluster, through
// the packages' public APIs, and checks that each does its job there.
func TestOwnScriptsRunOnRedisCluster(t *testing.T) {
	c := redistest.Cluster(t)
	prefix := "cc-" + randHex(4) + ":"
	for _, part := range []struct {
		name string
		run  func(*testing.T, *redis.ClusterClient, string)
	}{
		{"ledger", testLedger},
		{"ratelimit", testRatelimit},
		{"breaker", testBreaker},
		{"auth", testAuth},
		{"failures", testFailures},
		{"schedule", testScheduleAndBatch},
		{"batch", testBatch},
		{"reaper", testReaper},
		{"ingest", testIngest},
	} {
		t.Run(part.name, func(t *testing.T) {
			t.Parallel()
			part.run(t, c, prefix+part.name+":")
		})
	}
}

// testLedger: the transition script (entry and its shard's stats hash),
// Get, and Stats' pipeline over every shard's hash.
func testLedger(t *testing.T, c *redis.ClusterClient, prefix string) {
	ctx := testCtx(t)
	l := ledger.New(c, prefix)
	const n = 24 // spread over many of the 32 shards, so over every master
	key := func(i int) string { return fmt.Sprintf("%09d/GST/2026-03-31", 100_000_000+i) }
	want := map[ledger.State]int64{}
	for i := range n {
		k, task := key(i), fmt.Sprintf("task-%d", i)
		if e, err := l.Queued(ctx, k, task, "h1"); err != nil || e.State != ledger.StateQueued {
			t.Fatalf("Queued %s = %+v, %v", k, e, err)
		}
		if e, err := l.BeginSend(ctx, k, task, "h1"); err != nil || e.State != ledger.StateSending || e.Attempts != 1 {
			t.Fatalf("BeginSend %s = %+v, %v", k, e, err)
		}
		if _, err := l.BeginSend(ctx, k, "another-task", "h1"); !errors.Is(err, ledger.ErrMustReconcile) {
			t.Fatalf("second BeginSend %s = %v, want ErrMustReconcile", k, err)
		}
		var (
			e     ledger.Entry
			err   error
			final ledger.State
		)
		switch i % 4 {
		case 0:
			e, err = l.Filed(ctx, k, task, ledger.Filing{GatewayID: fmt.Sprintf("g-%d", i), SubmissionKey: fmt.Sprintf("s-%d", i)})
			final = ledger.StateFiled
		case 1:
			e, err = l.Rejected(ctx, k, task, ledger.Rejection{Class: "invalid", Code: "4", Message: "bad return"})
			final = ledger.StateRejected
		case 2:
			e, err = l.Uncertain(ctx, k, task, "timeout")
			final = ledger.StateUncertain
		case 3:
			e, err = l.Release(ctx, k, task)
			final = ledger.StateQueued
		}
		if err != nil || e.State != final {
			t.Fatalf("%s to %s = %+v, %v", k, final, e, err)
		}
		want[final]++
	}
	for i := range n {
		e, err := l.Get(ctx, key(i))
		if err != nil || e.Key != key(i) || e.Attempts != 1 {
			t.Fatalf("Get %s = %+v, %v", key(i), e, err)
		}
		if i%4 == 0 && (e.State != ledger.StateFiled || e.GatewayID != fmt.Sprintf("g-%d", i)) {
			t.Errorf("Get %s = %+v, want filed with its gateway ID", key(i), e)
		}
	}
	if _, err := l.Queued(ctx, key(0), "again", "h2"); !errors.Is(err, ledger.ErrFiled) {
		t.Errorf("Queued of a filed entry = %v, want ErrFiled", err)
	}
	seen, err := l.Get(ctx, key(2))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := l.Reopen(ctx, key(2), "reconciler", seen); err != nil || e.State != ledger.StateQueued {
		t.Fatalf("Reopen = %+v, %v", e, err)
	}
	want[ledger.StateUncertain]--
	want[ledger.StateQueued]++
	if _, err := l.Get(ctx, "no-such-entry"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Get of a missing entry = %v, want ErrNotFound", err)
	}

	st, err := l.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []ledger.State{ledger.StateQueued, ledger.StateSending, ledger.StateFiled, ledger.StateRejected, ledger.StateUncertain} {
		if st.Entries[s] != want[s] {
			t.Errorf("Stats: %d entries %s, want %d (all: %v)", st.Entries[s], s, want[s], st.Entries)
		}
	}
	for tr, w := range map[ledger.Transition]int64{
		{From: "", To: ledger.StateQueued}:                       n,
		{From: ledger.StateQueued, To: ledger.StateSending}:      n,
		{From: ledger.StateSending, To: ledger.StateFiled}:       n / 4,
		{From: ledger.StateSending, To: ledger.StateQueued}:      n / 4,
		{From: ledger.StateUncertain, To: ledger.StateQueued}:    1,
		{From: ledger.StateSending, To: ledger.StateUncertain}:   n / 4,
		{From: ledger.StateSending, To: ledger.StateRejected}:    n / 4,
		{From: ledger.StateRejected, To: ledger.StateRejected}:   0,
		{From: ledger.StateFiled, To: ledger.StateFiled}:         0,
		{From: ledger.StateUncertain, To: ledger.StateUncertain}: 0,
	} {
		if st.Transitions[tr] != w {
			t.Errorf("Stats: %d transitions %s, want %d (all: %v)", st.Transitions[tr], tr, w, st.Transitions)
		}
	}
}

// testRatelimit: the acquire script (rate cell and in-flight set), the
// throttle script (decrease, pause) and the effective-rate script.
func testRatelimit(t *testing.T, c *redis.ClusterClient, prefix string) {
	ctx := testCtx(t)
	const key = "cloud:cn-cluster"
	f, err := ratelimit.NewFleet(c, prefix, map[string]ratelimit.Settings{key: {Rate: 5, Burst: 3, MaxInFlight: 2}},
		ratelimit.FleetOptions{Logger: checkedLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	delayed := func(p ratelimit.Priority, reason string) *ratelimit.DelayError {
		t.Helper()
		pm, err := f.Acquire(ctx, key, p, 0)
		var de *ratelimit.DelayError
		if !errors.As(err, &de) || de.Reason != reason {
			pm.Release()
			t.Fatalf("Acquire = %v, want a delay for %q", err, reason)
		}
		return de
	}
	acquire := func() *ratelimit.Permit {
		t.Helper()
		pm, err := f.Acquire(ctx, key, ratelimit.PriorityBulk, 0)
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		return pm
	}
	p1, p2 := acquire(), acquire()
	delayed(ratelimit.PriorityBulk, ratelimit.ReasonInFlight)
	p1.Release()
	p3 := acquire()
	p2.Release()
	p3.Release()
	delayed(ratelimit.PriorityBulk, ratelimit.ReasonRate) // the burst of 3 is spent

	if eff, err := f.Effective(ctx, key); err != nil || eff != 5 {
		t.Fatalf("Effective = %v, %v, want the ceiling 5", eff, err)
	}
	if err := f.Throttled(ctx, key, 0); err != nil {
		t.Fatal(err)
	}
	if eff, err := f.Effective(ctx, key); err != nil || eff < 2.5 || eff > 3 {
		t.Fatalf("Effective after a throttle signal = %v, %v, want about 2.5 (halved)", eff, err)
	}
	if err := f.Throttled(ctx, key, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if de := delayed(ratelimit.PriorityRealtime, ratelimit.ReasonPaused); de.RetryIn < 2*time.Second {
		t.Errorf("paused for %s more, want about 3s", de.RetryIn)
	}
	if f.Degraded() {
		t.Error("the limiter degraded to its local share: a script failed on the cluster")
	}
}

// testBreaker: two processes' breakers share a key through the read,
// trip, probe and resolve scripts (and the scripts' PUBLISH).
func testBreaker(t *testing.T, c *redis.ClusterClient, prefix string) {
	ctx := testCtx(t)
	const key = "gateway:cloud"
	s := breaker.Settings{ConsecutiveFailures: 1, OpenFor: 600 * time.Millisecond, HalfOpenProbes: 1}
	newFleet := func() *breaker.Fleet {
		f, err := breaker.New(c, prefix, s, breaker.Options{Logger: checkedLogger(t), PollInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		return f
	}
	a, b := newFleet(), newFleet()
	fleetState := func() string { return c.HGet(ctx, breaker.StateKey(prefix, key), "state").Val() }

	doneB, err := b.Allow(ctx, key) // b reads the state: closed
	if err != nil {
		t.Fatal(err)
	}
	doneB(nil)
	doneA, err := a.Allow(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	doneA(errors.New("IR is down")) // trips a, and the fleet
	if st := fleetState(); st != "open" {
		t.Fatalf("fleet state %q after a trip, want open", st)
	}
	waitFor(t, 5*time.Second, "the other process sees the breaker open", func() bool { return b.State(key) == breaker.Open })
	if _, err := b.Allow(ctx, key); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("Allow while open = %v, want ErrOpen", err)
	}

	waitFor(t, 5*time.Second, "both processes see the breaker half-open", func() bool {
		return a.State(key) == breaker.HalfOpen && b.State(key) == breaker.HalfOpen
	})
	probe, err := a.Allow(ctx, key) // takes the fleet's only probe slot
	if err != nil {
		t.Fatalf("probe refused: %v", err)
	}
	if _, err := b.Allow(ctx, key); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("a second probe while the fleet's one slot is taken = %v, want ErrOpen", err)
	}
	probe(nil) // the probe succeeded: the fleet closes
	if st := fleetState(); st != "closed" {
		t.Fatalf("fleet state %q after a successful probe, want closed", st)
	}
	waitFor(t, 5*time.Second, "the other process sees the breaker closed", func() bool { return b.State(key) == breaker.Closed })
	done, err := b.Allow(ctx, key)
	if err != nil {
		t.Fatalf("Allow after the fleet closed = %v", err)
	}
	done(nil)
}

// testAuth: the token store's put script and multi-key DEL, and the
// fleet-wide refresh under the lock against the sandbox's OAuth server:
// acquire and store, release after a failed refresh, commit after an
// interrupted one, kill after IR refused the refresh token.
func testAuth(t *testing.T, c *redis.ClusterClient, prefix string) {
	ctx := testCtx(t)
	sb, _ := sandboxtest.Sandbox(t, sandbox.Options{})
	client := sb.OAuthClients()[0]
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: sb.PKI().CertPool(), MinVersion: tls.VersionTLS12},
	}}
	oc := &auth.OAuthClient{BaseURL: sb.DesktopURL(), ClientID: client.ID, ClientSecret: client.Secret, HTTPClient: hc}
	down := *oc
	down.BaseURL = "https://" + closedAddr(t) // refused before anything is presented

	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, checkedWriter(t)), &slog.HandlerOptions{Level: slog.LevelWarn}))
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	newStore := func(oc *auth.OAuthClient) *auth.Store {
		s, err := auth.NewStore(c, prefix, auth.Keyring{Current: "k1", Keys: map[string][]byte{"k1": key}})
		if err != nil {
			t.Fatal(err)
		}
		s.SetOAuth(oc)
		s.SetLogger(log)
		if err := s.SetRefreshPolicy(auth.RefreshPolicy{Timeout: 5 * time.Second, PollInterval: 10 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	store, broken := newStore(oc), newStore(&down)
	const id = "ts-cluster"
	consent := func() auth.TokenSet {
		t.Helper()
		ts, err := oc.ConsentAs(ctx, "alice", sandbox.DefaultOAuthRedirectURI)
		if err != nil {
			t.Fatal(err)
		}
		ts.ID, ts.User, ts.Endpoint, ts.ConsentedAt = id, "alice", gatewayclient.EndpointCloud, time.Now()
		if err := store.Put(ctx, ts); err != nil {
			t.Fatal(err)
		}
		return ts
	}
	presented := func(refreshToken string) int {
		return sb.Stats().RefreshPresentations[sandbox.RefreshTokenKey(refreshToken)]
	}

	ts0 := consent()
	if got, err := store.Get(ctx, id); err != nil || got.AccessToken != ts0.AccessToken {
		t.Fatalf("Get after Put: %v (same access token: %v)", err, got.AccessToken == ts0.AccessToken)
	}

	// A refresh: the lock taken with the marker (acquire), the new set
	// stored and the lock freed (store).
	ts1, err := store.ForceAfter(ctx, id, ts0.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if ts1.AccessToken == ts0.AccessToken || ts1.RefreshToken == ts0.RefreshToken || presented(ts0.RefreshToken) != 1 {
		t.Fatalf("refresh: new access token %v, new refresh token %v, old one presented %d times (want true, true, 1)",
			ts1.AccessToken != ts0.AccessToken, ts1.RefreshToken != ts0.RefreshToken, presented(ts0.RefreshToken))
	}
	if got, err := store.Get(ctx, id); err != nil || got.AccessToken != ts1.AccessToken {
		t.Fatalf("the refreshed set was not stored: %v", err)
	}

	// A holder whose refresh fails without an answer: it frees the lock
	// (release) and leaves the marker. The next holder finds the marker,
	// asks IR whether the token is still good, takes the marker over
	// (commit) and refreshes. Were the lock not freed, the next holder
	// would wait for it far longer than its 5 s.
	if _, err := broken.ForceAfter(ctx, id, ts1.AccessToken); err == nil || errors.Is(err, auth.ErrNeedsConsent) {
		t.Fatalf("refresh through an unreachable OAuth server = %v, want a transient error", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ts2, err := store.ForceAfter(sctx, id, ts1.AccessToken)
	cancel()
	if err != nil {
		t.Fatalf("refresh after an interrupted one: %v", err)
	}
	if ts2.AccessToken == ts1.AccessToken || presented(ts1.RefreshToken) != 1 {
		t.Fatalf("refresh after an interrupted one: new access token %v, the token presented %d times (want true, 1)",
			ts2.AccessToken != ts1.AccessToken, presented(ts1.RefreshToken))
	}
	if !strings.Contains(logs.String(), "an earlier refresh of this token set did not finish") {
		t.Errorf("the second holder did not find the first one's marker; logs:\n%s", logs)
	}

	// IR refuses the refresh token: the set is marked dead (kill), and
	// stays dead for every reader.
	if err := oc.Revoke(ctx, ts2.RefreshToken, "refresh_token"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ForceAfter(ctx, id, ts2.AccessToken); !errors.Is(err, auth.ErrNeedsConsent) {
		t.Fatalf("refresh with a revoked refresh token = %v, want ErrNeedsConsent", err)
	}
	if _, err := store.Fresh(ctx, id); !errors.Is(err, auth.ErrNeedsConsent) {
		t.Fatalf("Fresh of a dead set = %v, want ErrNeedsConsent", err)
	}

	// A new consent revives it (put clears the dead flag and the marker).
	ts3 := consent()
	if got, err := store.Fresh(ctx, id); err != nil || got.AccessToken != ts3.AccessToken {
		t.Fatalf("Fresh after a new consent: %v", err)
	}

	// Delete removes the set's five keys in one DEL.
	if err := store.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Fresh(ctx, id); !errors.Is(err, auth.ErrTokenSetNotFound) {
		t.Fatalf("Fresh after Delete = %v, want ErrTokenSetNotFound", err)
	}
}

// testFailures: the put script (record, payload, trim past the
// retention), the settle script, and the one-slot reads.
func testFailures(t *testing.T, c *redis.ClusterClient, prefix string) {
	ctx := testCtx(t)
	x := failures.New(c, prefix, failures.Options{})
	now := time.Now().UTC().Truncate(time.Millisecond)
	recs := []failures.Record{
		{TaskID: "task-old", Queue: "q", Batch: "b1", Class: "invalid", At: now.Add(-40 * 24 * time.Hour)},
		{TaskID: "task-a", Queue: "q", Batch: "b1", Class: "invalid", StatusCode: 4, Message: "bad return", At: now.Add(-time.Minute)},
		{TaskID: "task-b", Queue: "q", Batch: "b1", Class: "permission", Code: "EV1022", At: now},
	}
	for _, r := range recs {
		if err := x.Put(ctx, r, []byte("payload of "+r.TaskID)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := x.Get(ctx, "task-old"); !errors.Is(err, failures.ErrNotFound) {
		t.Errorf("a record past the retention = %v, want trimmed (ErrNotFound)", err)
	}
	got, err := x.List(ctx, failures.Filter{Batch: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].TaskID != "task-a" || got[1].TaskID != "task-b" || got[0].StatusCode != 4 || got[1].Code != "EV1022" {
		t.Fatalf("List = %+v, want task-a then task-b", got)
	}
	if p, err := x.Payload(ctx, "task-b"); err != nil || string(p) != "payload of task-b" {
		t.Fatalf("Payload = %q, %v", p, err)
	}
	if err := x.Settle(ctx, got[0], failures.StateRedriven, failures.Settlement{Run: "r1", Queue: "redrive", TaskID: "task-a"}); err != nil {
		t.Fatal(err)
	}
	if err := x.Settle(ctx, got[0], failures.StateResolved, failures.Settlement{Run: "r2"}); !errors.Is(err, failures.ErrChanged) {
		t.Errorf("Settle of a record read before another Settle = %v, want ErrChanged", err)
	}
	many, err := x.GetMany(ctx, []string{"task-a", "task-missing", "task-b"})
	if err != nil {
		t.Fatal(err)
	}
	if many[0].State != failures.StateRedriven || many[0].Settled == nil || many[0].Settled.Run != "r1" || many[1].TaskID != "" || many[2].State != failures.StateFailed {
		t.Fatalf("GetMany = %+v", many)
	}
}

// testScheduleAndBatch: the schedule's claim, renew and finish scripts,
// its run record's MULTI/EXEC and Runs' MGET, with the jobs enqueued by
// asynq on the cluster and their batch recorded (batch's Record pipeline)
// and read back (Status, Report).
func testScheduleAndBatch(t *testing.T, c *redis.ClusterClient, prefix string) {
	ctx := testCtx(t)
	dir := t.TempDir()
	const lines = 5
	var b strings.Builder
	for n := range lines {
		fmt.Fprintf(&b, `{"service":"account","operation":"list","auth":{"mode":"m2m"},"body":"{\"CustomerID\":\"%09d\",\"CustomerIDType\":\"IRD\"}"}`+"\n", 100_000_000+n)
	}
	if err := os.WriteFile(filepath.Join(dir, "nightly-2026-11-25.jsonl"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation("Pacific/Auckland")
	if err != nil {
		t.Fatal(err)
	}
	day1 := time.Date(2026, 11, 25, 1, 30, 2, 0, loc)

	cfg := config.Default(config.ProfileSandbox).Schedule
	cfg.Lease = time.Second
	cfg.Batches = config.ScheduledBatches{{Name: "nightly", Cron: "30 1 * * *", Dir: dir}}
	aq := asynq.NewClient(asynq.RedisClusterClientOpt{Addrs: c.Options().Addrs})
	t.Cleanup(func() { _ = aq.Close() })
	enq := tasks.NewEnqueuer(aq, tasks.EnqueueOptions{QueuePrefix: prefix})
	batches := batch.New(c, prefix, batch.Options{})

	// Worker a's file opens slowly: it holds its claim past the lease,
	// renewing it, while worker b tries to claim the same occurrence.
	opened, proceed := make(chan struct{}), make(chan struct{})
	var openOnce sync.Once
	slowOpen := func(ctx context.Context, path string) (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(path, "2026-11-25.jsonl") {
			openOnce.Do(func() { close(opened) })
			select {
			case <-proceed:
			case <-ctx.Done():
				_ = f.Close()
				return nil, context.Cause(ctx)
			}
		}
		return f, nil
	}
	newScheduler := func(owner string, clock *fixedClock, open func(context.Context, string) (io.ReadCloser, error)) *schedule.Scheduler {
		s, err := schedule.New(schedule.Options{Config: cfg, Redis: c, KeyPrefix: prefix, Enqueuer: enq, Clock: clock,
			Logger: checkedLogger(t), Owner: owner, Open: open, Recorder: batches})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	clockA, clockB := &fixedClock{now: day1}, &fixedClock{now: day1}
	a, bw := newScheduler("a", clockA, slowOpen), newScheduler("b", clockB, nil)

	type result struct {
		runs []schedule.Run
		err  error
	}
	resA := make(chan result, 1)
	go func() {
		runs, err := a.RunDue(ctx)
		resA <- result{runs, err}
	}()
	select {
	case <-opened:
	case r := <-resA:
		t.Fatalf("worker a ran without opening its file: %+v, %v", r.runs, r.err)
	case <-ctx.Done():
		t.Fatal("worker a never opened its file")
	}
	time.Sleep(cfg.Lease + cfg.Lease/2) // past the lease: only renewals keep the claim
	if runs, err := bw.RunDue(ctx); err != nil || len(runs) != 0 {
		t.Fatalf("worker b, while a holds the occurrence: runs %+v, %v (want none: a's renewed claim holds it)", runs, err)
	}
	close(proceed)
	r := <-resA
	if r.err != nil || len(r.runs) != 1 {
		t.Fatalf("worker a: runs %+v, %v", r.runs, r.err)
	}
	if run := r.runs[0]; run.Outcome != schedule.OutcomeDone || run.Enqueued != lines || run.Attempt != 1 || run.Batch != "nightly-2026-11-25" {
		t.Fatalf("worker a's run = %+v", run)
	}
	if runs, err := bw.RunDue(ctx); err != nil || len(runs) != 0 {
		t.Fatalf("worker b, after a finished: runs %+v, %v (want none: done)", runs, err)
	}
	clockA.set(day1.Add(24 * time.Hour)) // no file that day
	if runs, err := a.RunDue(ctx); err != nil || len(runs) != 1 || runs[0].Outcome != schedule.OutcomeMissing {
		t.Fatalf("the next day's run = %+v, %v, want missing", runs, err)
	}
	recorded, err := schedule.Runs(ctx, c, prefix, "nightly", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recorded) != 2 || recorded[0].Outcome != schedule.OutcomeMissing || recorded[1].Outcome != schedule.OutcomeDone ||
		recorded[1].Enqueued != lines || recorded[1].Owner != "a" || recorded[1].Finished.IsZero() || recorded[1].Stale {
		t.Fatalf("Runs = %+v, want the missing run, then a's done run", recorded)
	}

	insp := asynq.NewInspector(asynq.RedisClusterClientOpt{Addrs: c.Options().Addrs})
	t.Cleanup(func() { _ = insp.Close() })
	pending, err := insp.ListPendingTasks(tasks.QueueName(prefix, config.QueueBulk))
	if err != nil || len(pending) != lines {
		t.Fatalf("%d tasks pending in asynq on the cluster, want %d: %v", len(pending), lines, err)
	}
	st, err := batches.Status(ctx, "nightly-2026-11-25")
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != lines || st.Jobs != lines || st.Pending != lines || st.Complete {
		t.Fatalf("batch status = %+v, want %d jobs pending", st, lines)
	}
	var report []batch.Line
	if err := batches.Report(ctx, "nightly-2026-11-25", func(l batch.Line) error { report = append(report, l); return nil }); err != nil {
		t.Fatal(err)
	}
	for i, l := range report {
		if l.Line != i+1 || l.Outcome != batch.OutcomePending || l.TaskID == "" {
			t.Errorf("report line %d = %+v, want line %d pending", i, l, i+1)
		}
	}
	if len(report) != lines {
		t.Errorf("report of %d lines, want %d", len(report), lines)
	}
}

// testBatch: a batch's members recorded in one pipeline and read back
// with the ledger's entries and the failure index's records.
func testBatch(t *testing.T, c *redis.ClusterClient, prefix string) {
	ctx := testCtx(t)
	l := ledger.New(c, prefix)
	x := failures.New(c, prefix, failures.Options{})
	bs := batch.New(c, prefix, batch.Options{})
	const id, queue = "manual-1", "q"
	if _, err := l.Filed(ctx, "lk-filed", "t-filed", ledger.Filing{GatewayID: "g-1", SubmissionKey: "s-1"}); err != nil {
		t.Fatal(err)
	}
	if err := x.Put(ctx, failures.Record{TaskID: "t-rejected", Queue: queue, Batch: id, Class: "invalid", StatusCode: 4, Message: "bad return"}, nil); err != nil {
		t.Fatal(err)
	}
	members := []batch.Member{
		{Line: 1, TaskID: "t-filed", Queue: queue, Operation: tasks.OpFile, LedgerKey: "lk-filed"},
		{Line: 2, TaskID: "t-rejected", Queue: queue, Operation: tasks.OpFile},
		{Line: 3, Refused: "line 3: not JSON"},
	}
	if err := bs.Record(ctx, id, members); err != nil {
		t.Fatal(err)
	}
	st, err := bs.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != 3 || st.Jobs != 2 || st.Filed != 1 || st.Rejected != 1 || st.Refused != 1 || !st.Complete || st.FailedByClass["invalid"] != 1 {
		t.Fatalf("batch status = %+v", st)
	}
	var report []batch.Line
	if err := bs.Report(ctx, id, func(l batch.Line) error { report = append(report, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(report) != 3 || report[0].Outcome != batch.OutcomeFiled || report[0].SubmissionKey != "s-1" ||
		report[1].Outcome != batch.OutcomeRejected || report[1].StatusCode != "4" || report[2].Outcome != batch.OutcomeRefused {
		t.Fatalf("report = %+v", report)
	}
	list, err := bs.List(ctx, 0)
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

// testReaper: a worker holding a job is killed; the reaper's requeue
// script puts the job back on asynq's keys on the cluster (and its count
// is kept in a MULTI/EXEC), and a live worker runs it.
func testReaper(t *testing.T, c *redis.ClusterClient, prefix string) {
	ctx := testCtx(t)
	addrs := c.Options().Addrs
	opt := asynq.RedisClusterClientOpt{Addrs: addrs}
	queue, started := prefix+"bulk", prefix+"started"
	client := asynq.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	info, err := client.Enqueue(asynq.NewTask("victim", nil), asynq.Queue(queue), asynq.MaxRetry(3), asynq.Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	stderr := &syncbuf.Buffer{}
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), workerEnv+"=1", "CLUSTERCHECK_ADDRS="+strings.Join(addrs, ","),
		"CLUSTERCHECK_QUEUE="+queue, "CLUSTERCHECK_STARTED="+started)
	child.Stderr = stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = child.Wait()
		close(exited)
	}()
	kill := func() {
		_ = child.Process.Kill()
		<-exited
	}
	t.Cleanup(kill)
	waitFor(t, 30*time.Second, "the doomed worker takes the job", func() bool {
		select {
		case <-exited:
			t.Fatalf("the doomed worker exited on its own: %s", stderr)
		default:
		}
		return c.SIsMember(ctx, started, info.ID).Val()
	})
	kill()
	if ti, err := insp.GetTaskInfo(queue, info.ID); err != nil || ti.State != asynq.TaskStateActive {
		t.Fatalf("the dead worker's job: %+v, %v, want active", ti, err)
	}

	rp := reaper.New(c, insp, reaper.Options{Queues: []string{queue}, KeyPrefix: prefix, StaleAfter: time.Millisecond, Logger: checkedLogger(t)})
	waitFor(t, 30*time.Second, "the reaper puts the job back", func() bool {
		n, err := rp.Reap(ctx)
		if err != nil {
			t.Fatalf("Reap: %v", err)
		}
		return n == 1
	})
	if ti, err := insp.GetTaskInfo(queue, info.ID); err != nil || ti.State != asynq.TaskStatePending {
		t.Fatalf("the job put back: %+v, %v, want pending", ti, err)
	}

	ran := make(chan string, 1)
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 1, Queues: map[string]int{queue: 1}, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		ran <- id
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	select {
	case id := <-ran:
		if id != info.ID {
			t.Fatalf("the live worker ran %s, want %s", id, info.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no live worker ran the job put back")
	}
}

// fixedClock is a schedule.Clock that moves only when the test sets it.
type fixedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After never fires: the test calls RunDue, never Run.
func (c *fixedClock) After(time.Duration) <-chan time.Time { return make(chan time.Time) }

func (c *fixedClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// checkedLogger is a logger of warnings and errors that fails the test for
// every one carrying an error: the packages log the Redis errors they
// survive (a failed renewal, release or count, a limiter or breaker
// degrading) rather than return them.
func checkedLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(checkedWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

var errAttr = regexp.MustCompile(`(^|\s)err=`)

func checkedWriter(t *testing.T) io.Writer {
	buf := &syncbuf.Buffer{}
	t.Cleanup(func() {
		for _, line := range strings.Split(buf.String(), "\n") {
			if errAttr.MatchString(line) {
				t.Errorf("logged a Redis error: %s", line)
			}
		}
	})
	return buf
}

// testIngest: the claim that takes posts of one job one at a time (SET NX
// and its release script), with the look-ups and the enqueue around it.
func testIngest(t *testing.T, c *redis.ClusterClient, prefix string) {
	bt, _, err := demo.Generate(demo.GenerateOptions{Returns: 1, TokenSets: []string{"cc"}})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(bt.Jobs[0])
	if err != nil {
		t.Fatal(err)
	}
	const key = "clustercheck-0123456789abcdef"
	h, err := ingest.New(ingest.Options{
		Enqueuer: tasks.NewEnqueuer(asynq.NewClientFromRedisClient(c), tasks.EnqueueOptions{QueuePrefix: prefix}),
		Finder:   jobstatus.New(asynq.NewInspectorFromRedisClient(c), jobstatus.Options{QueuePrefix: prefix}),
		Redis:    c, KeyPrefix: prefix,
		Keys:   []ingest.Key{{Name: "cc", Secret: key}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	post := func(queue string) ingest.JobResult {
		t.Helper()
		req, err := http.NewRequestWithContext(testCtx(t), http.MethodPost, srv.URL+"/v1/jobs?queue="+queue, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", key)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var jr ingest.JobResult
		if res.StatusCode/100 != 2 || json.Unmarshal(b, &jr) != nil {
			t.Fatalf("post to %s: %d %s", queue, res.StatusCode, b)
		}
		return jr
	}
	first, again := post(tasks.QueueRealtime), post(tasks.QueueBulk)
	if first.Duplicate || !again.Duplicate || again.ID != first.ID || again.Queue != tasks.QueueRealtime {
		t.Fatalf("posts to realtime, then bulk: %+v, then %+v; want one job, on realtime", first, again)
	}
	if n, err := c.Exists(testCtx(t), prefix+"ingest:claim:"+first.ID).Result(); err != nil || n != 0 {
		t.Fatalf("the job's claim was left behind (%d, %v)", n, err)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s: %s never happened", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closedAddr is a local address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
