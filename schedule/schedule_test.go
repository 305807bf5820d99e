package schedule

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	gqbatch "github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/internal/syncbuf"
	"github.com/gatewayq/gatewayq/jobfile"
	"github.com/gatewayq/gatewayq/tasks"
)

var nightly = config.ScheduledBatch{Name: "nightly", Cron: "30 1 * * *"}

// TestExactlyOnceAcrossWorkers races schedulers, each with its own Redis
// and asynq clients as separate worker processes would have, over one
// occurrence: exactly one runs it, and the queue holds each line once.
func TestExactlyOnceAcrossWorkers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nightly)
	const lines, workers = 300, 8
	writeJobs(t, e.dir, "nightly-2026-11-25.jsonl", 0, lines)
	at := time.Date(2026, 11, 25, 1, 30, 2, 0, auckland(t))

	var scheds []*Scheduler
	for range workers {
		scheds = append(scheds, e.scheduler(t, newFakeClock(at)))
	}
	ctx := testCtx(t)
	race := func() []Run {
		var (
			mu    sync.Mutex
			runs  []Run
			wg    sync.WaitGroup
			start = make(chan struct{})
		)
		for _, s := range scheds {
			wg.Go(func() {
				<-start
				rs, err := s.RunDue(ctx)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				runs = append(runs, rs...)
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		return runs
	}

	runs := race()
	if len(runs) != 1 {
		t.Fatalf("%d runs of one occurrence, want 1: %+v", len(runs), runs)
	}
	r := runs[0]
	if r.Outcome != OutcomeDone || r.Enqueued != lines || r.Duplicates != 0 || r.Attempt != 1 || r.Batch != "nightly-2026-11-25" {
		t.Errorf("run = %+v", r)
	}
	if ids := e.queued(t, config.QueueBulk); len(ids) != lines {
		t.Errorf("%d tasks queued, want %d (one per line)", len(ids), lines)
	}
	recs := e.runs(t, "nightly")
	if len(recs) != 1 || recs[0].Outcome != OutcomeDone || recs[0].Enqueued != lines || recs[0].Owner != r.Owner ||
		!recs[0].Occurrence.Equal(time.Date(2026, 11, 25, 1, 30, 0, 0, auckland(t))) || recs[0].Finished.IsZero() {
		t.Errorf("records = %+v", recs)
	}

	// The same occurrence seen again, by every worker, later that night.
	for _, s := range scheds {
		s.clock.(*fakeClock).Set(at.Add(3 * time.Hour))
	}
	if again := race(); len(again) != 0 {
		t.Errorf("a done occurrence ran again: %+v", again)
	}
	if n := len(e.queued(t, config.QueueBulk)); n != lines {
		t.Errorf("%d tasks queued after the second pass, want %d", n, lines)
	}
}

// TestTakeoverAfterCrash: the winner enqueued part of the file and died
// (its claim stays, with no done marker, until the lease expires). Another
// worker takes over and re-runs the whole file: the jobs already queued
// come back as duplicates, and the queue holds each line once.
func TestTakeoverAfterCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nightly)
	e.cfg.Lease = time.Second // expires quickly: the test waits for it
	const lines, before = 40, 15
	path := writeJobs(t, e.dir, "nightly-2026-11-25.jsonl", 0, lines)
	at := time.Date(2026, 11, 25, 1, 30, 0, 0, auckland(t))
	ctx := testCtx(t)

	// The crashed worker: it claimed, recorded its start, enqueued the
	// first lines under the occurrence's batch ID, and was killed.
	dead := e.scheduler(t, newFakeClock(at), func(o *Options) { o.Owner = "dead-worker" })
	if res, err := dead.store.claim(ctx, "nightly", at, "dead-worker/1"); err != nil || res != 1 {
		t.Fatalf("claim = %v, %v", res, err)
	}
	if err := dead.store.started(ctx, &Run{Name: "nightly", Occurrence: at, Batch: "nightly-2026-11-25", File: path,
		Owner: "dead-worker", Attempt: 1, Outcome: OutcomeRunning, Started: at}); err != nil {
		t.Fatal(err)
	}
	rep, err := jobfile.Enqueue(ctx, strings.NewReader(strings.Join(firstLines(t, path, before), "\n")), dead.enq,
		jobfile.EnqueueOptions{Batch: "nightly-2026-11-25"})
	if err != nil || rep.Enqueued != before {
		t.Fatalf("partial enqueue: %+v, %v", rep, err)
	}

	live := e.scheduler(t, newFakeClock(at.Add(time.Minute)))
	if runs, err := live.RunDue(ctx); err != nil || len(runs) != 0 {
		t.Fatalf("ran while the dead worker's lease was live: %+v, %v", runs, err)
	}
	if recs := e.runs(t, "nightly"); len(recs) != 1 || recs[0].Outcome != OutcomeRunning || recs[0].Stale {
		t.Fatalf("records while leased = %+v", recs)
	}

	waitGone(t, e.r.Client, newKeys(e.r.Prefix, "nightly").claim(at))
	if recs := e.runs(t, "nightly"); len(recs) != 1 || !recs[0].Stale {
		t.Errorf("a running record whose lease expired should be stale: %+v", recs)
	}

	runs, err := live.RunDue(ctx)
	if err != nil || len(runs) != 1 {
		t.Fatalf("takeover: %+v, %v", runs, err)
	}
	r := runs[0]
	if r.Attempt != 2 || r.Outcome != OutcomeDone || r.Lines != lines || r.Enqueued != lines-before || r.Duplicates != before {
		t.Errorf("takeover run = %+v", r)
	}
	if ids := e.queued(t, config.QueueBulk); len(ids) != lines {
		t.Errorf("%d tasks queued, want %d: a takeover must not enqueue twice", len(ids), lines)
	}
	if recs := e.runs(t, "nightly"); len(recs) != 1 || recs[0].Attempt != 2 || recs[0].Owner != live.Owner() || recs[0].Stale {
		t.Errorf("records after takeover = %+v", recs)
	}
}

// TestMissingFile: logged, counted, recorded as missing, not retried.
func TestMissingFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nightly)
	at := time.Date(2026, 11, 25, 2, 0, 0, 0, auckland(t))
	reg := prometheus.NewRegistry()
	var logs syncbuf.Buffer
	s := e.scheduler(t, newFakeClock(at), func(o *Options) {
		o.Metrics = NewMetrics(reg)
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	ctx := testCtx(t)

	runs, err := s.RunDue(ctx)
	if err != nil || len(runs) != 1 || runs[0].Outcome != OutcomeMissing {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	if !strings.Contains(runs[0].Error, "nightly-2026-11-25.jsonl") {
		t.Errorf("error does not name the file: %q", runs[0].Error)
	}
	if got := counter(t, reg, "gatewayq_schedule_runs_total", "nightly", "missing"); got != 1 {
		t.Errorf("runs_total{outcome=missing} = %v", got)
	}
	if !strings.Contains(logs.String(), "job file missing") {
		t.Errorf("not logged: %s", logs.String())
	}
	if recs := e.runs(t, "nightly"); len(recs) != 1 || recs[0].Outcome != OutcomeMissing {
		t.Errorf("records = %+v", recs)
	}

	// The file turning up later does not make the fleet run it: a missing
	// file is an operator's call (enqueue bulk with the batch ID).
	writeJobs(t, e.dir, "nightly-2026-11-25.jsonl", 0, 3)
	other := e.scheduler(t, newFakeClock(at.Add(time.Hour)))
	if runs, err := other.RunDue(ctx); err != nil || len(runs) != 0 {
		t.Errorf("missing occurrence ran again: %+v, %v", runs, err)
	}
}

// TestCatchUp: a fleet back after an outage runs only the latest missed
// occurrence, and only when it is within the catch-up window.
func TestCatchUp(t *testing.T) {
	t.Parallel()
	hourly := config.ScheduledBatch{Name: "hourly", Cron: "0 * * * *", File: "hourly-{date}.jsonl"}
	e := newEnv(t, nightly, hourly)
	writeJobs(t, e.dir, "nightly-2026-11-24.jsonl", 0, 5)
	writeJobs(t, e.dir, "nightly-2026-11-25.jsonl", 100, 107)
	writeJobs(t, e.dir, "hourly-2026-11-25.jsonl", 200, 202)
	nz := auckland(t)
	ctx := testCtx(t)

	// 07:40: 01:30 is 6h10m ago, past the 6h window; the hourly batch's
	// latest occurrence (07:00) runs, none of the six before it.
	late := e.scheduler(t, newFakeClock(time.Date(2026, 11, 25, 7, 40, 0, 0, nz)))
	runs, err := late.RunDue(ctx)
	if err != nil || len(runs) != 1 || runs[0].Name != "hourly" || runs[0].Batch != "hourly-2026-11-25T0700" ||
		!runs[0].Occurrence.Equal(time.Date(2026, 11, 25, 7, 0, 0, 0, nz)) {
		t.Fatalf("runs at 07:40 = %+v, %v", runs, err)
	}

	// 05:00 on a fresh day's Redis view: the nightly 01:30 is 3.5h old and
	// runs, with the 25th's file; the 24th's occurrence never does.
	e2 := newEnv(t, nightly)
	writeJobs(t, e2.dir, "nightly-2026-11-24.jsonl", 0, 5)
	writeJobs(t, e2.dir, "nightly-2026-11-25.jsonl", 100, 107)
	s := e2.scheduler(t, newFakeClock(time.Date(2026, 11, 25, 5, 0, 0, 0, nz)))
	runs, err = s.RunDue(ctx)
	if err != nil || len(runs) != 1 || runs[0].Batch != "nightly-2026-11-25" || runs[0].Enqueued != 7 {
		t.Fatalf("runs at 05:00 = %+v, %v", runs, err)
	}
	if recs := e2.runs(t, "nightly"); len(recs) != 1 {
		t.Errorf("older occurrences were recorded: %+v", recs)
	}
}

// TestRunLoop runs four schedulers' loops with fake clocks: nothing
// happens until the clocks reach 01:30, then exactly one enqueues.
func TestRunLoop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nightly)
	const lines = 25
	writeJobs(t, e.dir, "nightly-2026-11-25.jsonl", 0, lines)
	nz := auckland(t)
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg) // shared: the sum over the fleet

	ctx, cancel := context.WithCancel(testCtx(t))
	var clocks []*fakeClock
	var wg sync.WaitGroup
	for range 4 {
		c := newFakeClock(time.Date(2026, 11, 25, 1, 29, 0, 0, nz))
		clocks = append(clocks, c)
		s := e.scheduler(t, c, func(o *Options) { o.Metrics = metrics })
		wg.Go(func() { s.Run(ctx) })
	}
	for _, c := range clocks {
		c.waitForWaiter(t)
	}
	if recs := e.runs(t, "nightly"); len(recs) != 0 {
		t.Fatalf("ran before 01:30: %+v", recs)
	}
	for _, c := range clocks {
		c.Set(time.Date(2026, 11, 25, 1, 30, 0, 0, nz))
	}
	deadline := time.Now().Add(time.Minute)
	for {
		recs := e.runs(t, "nightly")
		if len(recs) == 1 && recs[0].Outcome == OutcomeDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no done run: %+v", recs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Let every loop make its pass at 01:30 before counting.
	for _, c := range clocks {
		c.waitForWaiter(t)
	}
	cancel()
	wg.Wait()
	if got := counter(t, reg, "gatewayq_schedule_runs_total", "nightly", "done"); got != 1 {
		t.Errorf("runs_total{outcome=done} over the fleet = %v, want 1", got)
	}
	if ids := e.queued(t, config.QueueBulk); len(ids) != lines {
		t.Errorf("%d tasks queued, want %d", len(ids), lines)
	}
}

// TestStopAndLostClaim covers the two ways a run ends early: the worker
// shutting down (claim released, another worker takes over at once) and
// the claim taken from it (the run stops, leaving the record to the
// other worker).
func TestStopAndLostClaim(t *testing.T) {
	t.Parallel()
	const lines, first = 30, 10
	at := time.Date(2026, 11, 25, 1, 30, 0, 0, auckland(t))

	// stuckOpen gives the first lines of the real file, then blocks until
	// the run's context ends, as a slow network file system would.
	stuckOpen := func(path string) func(context.Context, string) (io.ReadCloser, error) {
		return func(ctx context.Context, p string) (io.ReadCloser, error) {
			head := strings.Join(firstLines(t, path, first), "\n") + "\n"
			return io.NopCloser(io.MultiReader(strings.NewReader(head), ctxReader{ctx})), nil
		}
	}

	t.Run("shutdown releases the claim", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nightly)
		path := writeJobs(t, e.dir, "nightly-2026-11-25.jsonl", 0, lines)
		stopping := e.scheduler(t, newFakeClock(at), func(o *Options) { o.Open = stuckOpen(path) })
		ctx, cancel := context.WithCancel(testCtx(t))
		done := make(chan []Run)
		go func() {
			runs, _ := stopping.RunDue(ctx)
			done <- runs
		}()
		waitQueued(t, e, first)
		cancel()
		runs := <-done
		if len(runs) != 1 || runs[0].Outcome != OutcomeStopped || runs[0].Enqueued != first {
			t.Fatalf("stopped run = %+v", runs)
		}
		// No waiting for the lease: the claim was released.
		other := e.scheduler(t, newFakeClock(at.Add(time.Second)))
		runs, err := other.RunDue(testCtx(t))
		if err != nil || len(runs) != 1 || runs[0].Attempt != 2 || runs[0].Enqueued != lines-first || runs[0].Duplicates != first {
			t.Fatalf("takeover = %+v, %v", runs, err)
		}
		if n := len(e.queued(t, config.QueueBulk)); n != lines {
			t.Errorf("%d tasks queued, want %d", n, lines)
		}
	})

	t.Run("a claim taken over stops the run", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nightly)
		e.cfg.Lease = time.Second // renewed every third of a second
		path := writeJobs(t, e.dir, "nightly-2026-11-25.jsonl", 0, lines)
		reg := prometheus.NewRegistry()
		s := e.scheduler(t, newFakeClock(at), func(o *Options) {
			o.Open = stuckOpen(path)
			o.Metrics = NewMetrics(reg)
		})
		ctx := testCtx(t)
		done := make(chan []Run)
		go func() {
			runs, _ := s.RunDue(ctx)
			done <- runs
		}()
		waitQueued(t, e, first)
		claim := newKeys(e.r.Prefix, "nightly").claim(at)
		if err := e.r.Client.Set(ctx, claim, "another-worker/1", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		runs := <-done
		if len(runs) != 1 || runs[0].Outcome != OutcomeLost {
			t.Fatalf("run = %+v", runs)
		}
		if v, _ := e.r.Client.Get(ctx, claim).Result(); v != "another-worker/1" {
			t.Errorf("the other worker's claim was touched: %q", v)
		}
		if n, _ := e.r.Client.Exists(ctx, newKeys(e.r.Prefix, "nightly").done(at)).Result(); n != 0 {
			t.Error("a lost run marked the occurrence done")
		}
		if recs := e.runs(t, "nightly"); len(recs) != 1 || recs[0].Outcome != OutcomeRunning {
			t.Errorf("records = %+v", recs)
		}
		if got := counter(t, reg, "gatewayq_schedule_runs_total", "nightly", "lost"); got != 1 {
			t.Errorf("runs_total{outcome=lost} = %v", got)
		}
	})
}

// TestFailedRunIsRetried: a file that cannot be read is a failed run; its
// claim is left to expire, and then the occurrence runs again.
func TestFailedRunIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nightly)
	e.cfg.Lease = time.Second
	at := time.Date(2026, 11, 25, 1, 30, 0, 0, auckland(t))
	path := writeJobs(t, e.dir, "nightly-2026-11-25.jsonl", 0, 5)
	broken := e.scheduler(t, newFakeClock(at), func(o *Options) {
		o.Open = func(context.Context, string) (io.ReadCloser, error) { return nil, os.ErrPermission }
	})
	ctx := testCtx(t)
	runs, err := broken.RunDue(ctx)
	if err != nil || len(runs) != 1 || runs[0].Outcome != OutcomeFailed {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	if runs, _ := broken.RunDue(ctx); len(runs) != 0 {
		t.Fatalf("retried before the lease expired: %+v", runs)
	}
	waitGone(t, e.r.Client, newKeys(e.r.Prefix, "nightly").claim(at))
	fixed := e.scheduler(t, newFakeClock(at.Add(2*time.Minute)))
	runs, err = fixed.RunDue(ctx)
	if err != nil || len(runs) != 1 || runs[0].Outcome != OutcomeDone || runs[0].Attempt != 2 || runs[0].Enqueued != 5 {
		t.Fatalf("retry = %+v, %v (file %s)", runs, err, path)
	}
}

func TestRejectedLines(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nightly)
	writeJobs(t, e.dir, "nightly-2026-11-25.jsonl", 0, 4, `{"service":"account"}`, "not json")
	// The run's batch is recorded like any bulk enqueue's, for its status
	// and morning report.
	store := gqbatch.New(e.r.Client, e.r.Prefix, gqbatch.Options{})
	s := e.scheduler(t, newFakeClock(time.Date(2026, 11, 25, 1, 31, 0, 0, auckland(t))), func(o *Options) { o.Recorder = store })
	runs, err := s.RunDue(testCtx(t))
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	r := runs[0]
	if r.Outcome != OutcomeRejected || r.Enqueued != 4 || r.Rejected != 2 || len(r.Errors) != 2 || !strings.HasPrefix(r.Errors[0], "line 5: ") {
		t.Errorf("run = %+v", r)
	}
	st, err := store.Status(testCtx(t), r.Batch)
	if err != nil || st.Jobs != 4 || st.Refused != 2 || st.Pending != 4 {
		t.Errorf("batch %s status = %+v, %v: want 4 jobs pending, 2 refused", r.Batch, st, err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	cfg := config.Default(config.ProfileSandbox).Schedule
	cfg.Batches = config.ScheduledBatches{{Name: "nightly", Cron: "30 25 * * *", Dir: "/in"}}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	_, err := New(Options{Config: cfg, Redis: rdb, KeyPrefix: "x:", Enqueuer: tasks.NewEnqueuer(&asynq.Client{}, tasks.EnqueueOptions{})})
	if got := config.Fields(err); !slices.Equal(got, []string{"schedule.batches[0].cron"}) {
		t.Errorf("fields = %q (%v)", got, err)
	}
}

func TestClaimAndRenew(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cfg.Lease = 5 * time.Second
	st := &store{rdb: e.r.Client, prefix: e.r.Prefix, lease: e.cfg.Lease, history: e.cfg.History}
	ctx := testCtx(t)
	at := time.Date(2026, 11, 25, 1, 30, 0, 0, auckland(t))
	k := newKeys(e.r.Prefix, "b")

	if res, err := st.claim(ctx, "b", at, "a"); err != nil || res != 1 {
		t.Fatalf("first claim = %v, %v", res, err)
	}
	if res, _ := st.claim(ctx, "b", at, "b"); res != claimHeld {
		t.Errorf("second claim = %v, want held", res)
	}
	e.r.Client.PExpire(ctx, k.claim(at), time.Second)
	if ok, err := st.renew(ctx, "b", at, "a"); err != nil || !ok {
		t.Errorf("owner's renew = %v, %v", ok, err)
	}
	if ttl := e.r.Client.PTTL(ctx, k.claim(at)).Val(); ttl <= time.Second {
		t.Errorf("renew did not extend the lease: %s left", ttl)
	}
	if ok, _ := st.renew(ctx, "b", at, "b"); ok {
		t.Error("another token renewed the claim")
	}
	e.r.Client.Del(ctx, k.claim(at))
	if res, _ := st.claim(ctx, "b", at, "b"); res != 2 {
		t.Errorf("claim after release = %v, want attempt 2", res)
	}
	r := &Run{Name: "b", Occurrence: at, Outcome: OutcomeDone}
	if mine, err := st.finish(ctx, r, "b", true); err != nil || !mine {
		t.Fatalf("finish = %v, %v", mine, err)
	}
	if res, _ := st.claim(ctx, "b", at, "c"); res != claimDone {
		t.Errorf("claim of a done occurrence = %v", res)
	}
	if ttl := e.r.Client.PTTL(ctx, k.done(at)).Val(); ttl <= e.cfg.CatchUp {
		t.Errorf("done marker lives %s, want about schedule.history", ttl)
	}
}

func TestOccurrences(t *testing.T) {
	t.Parallel()
	nz := auckland(t)
	b, err := newBatch(config.ScheduledBatch{Name: "n", Cron: "30 1 * * *"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		now  time.Time
		want time.Time // zero: none due
	}{
		{time.Date(2026, 11, 25, 1, 30, 0, 0, nz), time.Date(2026, 11, 25, 1, 30, 0, 0, nz)},
		{time.Date(2026, 11, 25, 1, 29, 59, 0, nz), time.Time{}},
		{time.Date(2026, 11, 25, 7, 30, 0, 0, nz), time.Date(2026, 11, 25, 1, 30, 0, 0, nz)},
		{time.Date(2026, 11, 25, 7, 30, 1, 0, nz), time.Time{}},
		// The same instant in UTC gives the same occurrence.
		{time.Date(2026, 11, 24, 12, 45, 0, 0, time.UTC), time.Date(2026, 11, 25, 1, 30, 0, 0, nz)},
	}
	for _, tt := range tests {
		got, ok := b.latest(tt.now, 6*time.Hour)
		if ok != !tt.want.IsZero() || (ok && !got.Equal(tt.want)) {
			t.Errorf("latest(%s) = %s, %v; want %s", tt.now, got, ok, tt.want)
		}
	}
	if id := b.batchID(time.Date(2026, 11, 25, 1, 30, 0, 0, nz)); id != "n-2026-11-25" {
		t.Errorf("batchID = %q", id)
	}
	twice, _ := newBatch(config.ScheduledBatch{Name: "t", Cron: "0 1,13 * * *"})
	if id := twice.batchID(time.Date(2026, 11, 25, 13, 0, 0, 0, nz)); id != "t-2026-11-25T1300" {
		t.Errorf("batchID of a twice-daily batch = %q", id)
	}
}

// counter reads the counter name{schedule, outcome} from reg.
func counter(t *testing.T, reg *prometheus.Registry, name, schedule, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["schedule"] == schedule && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// ctxReader blocks until ctx ends, then fails with its error.
type ctxReader struct{ ctx context.Context }

func (r ctxReader) Read([]byte) (int, error) {
	<-r.ctx.Done()
	return 0, context.Cause(r.ctx)
}

func firstLines(t *testing.T, path string, n int) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(bytes.TrimSpace(b)), "\n")[:n]
}

func waitQueued(t *testing.T, e *env, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for len(e.queued(t, config.QueueBulk)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d tasks queued", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitGone(t *testing.T, rdb *redis.Client, key string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := rdb.Exists(context.Background(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never expired", key)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
