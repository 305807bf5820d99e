package redrive_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/auth"
	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/failures"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/sandboxtest"
	"github.com/gatewayq/gatewayq/jobfile"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/redrive"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/worker"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// stack is a sandbox, a Redis prefix, a worker config against them, and
// the parts a re-drive uses.
type stack struct {
	r       *redistest.Redis
	sb      *sandbox.Sandbox
	cfg     *config.Config
	rdb     *redis.Client
	insp    *asynq.Inspector
	enq     *tasks.Enqueuer
	tokens  *auth.Store
	rd      *redrive.Redriver
	batches *batch.Store
	index   *failures.Index
	ledger  *ledger.Ledger
}

const tokenSet = "ts-rd"

func newStack(t *testing.T) *stack {
	t.Helper()
	r := redistest.New(t)
	sb, cfg := sandboxtest.Start(t, r, sandbox.Options{}, demo.Options{})
	s := &stack{r: r, sb: sb, cfg: cfg, rdb: redis.NewClient(worker.RedisOptions(cfg.Redis))}
	t.Cleanup(func() { _ = s.rdb.Close() })
	var err error
	if s.tokens, err = worker.TokenStore(cfg, s.rdb); err != nil {
		t.Fatal(err)
	}
	ac := asynq.NewClient(worker.AsynqRedis(cfg.Redis))
	s.insp = asynq.NewInspector(worker.AsynqRedis(cfg.Redis))
	t.Cleanup(func() { _ = ac.Close(); _ = s.insp.Close() })
	s.enq = tasks.NewEnqueuer(ac, worker.EnqueueOptions(cfg))
	s.rd = redrive.New(redrive.Config{Redis: s.rdb, KeyPrefix: r.Prefix, QueuePrefix: r.Prefix, Inspector: s.insp, Enqueuer: s.enq})
	s.batches = batch.New(s.rdb, r.Prefix, batch.Options{})
	s.index = failures.New(s.rdb, r.Prefix, failures.Options{})
	s.ledger = ledger.New(s.rdb, r.Prefix)
	s.consent(t, "rd-user")
	return s
}

// consent stores the job's token set for a myIR user: what an operator's
// fix of a permission amounts to, seen from gatewayq.
func (s *stack) consent(t *testing.T, user string) {
	t.Helper()
	ts := auth.TokenSet{ID: tokenSet, AccessToken: s.sb.IssueToken(user, time.Hour), Expiry: time.Now().Add(time.Hour), Endpoint: gatewayclient.EndpointCloud, User: user}
	if err := s.tokens.Put(context.Background(), ts); err != nil {
		t.Fatal(err)
	}
}

// startWorker runs a worker until the returned function is called.
func (s *stack) startWorker(t *testing.T) (stop func()) {
	t.Helper()
	w, err := worker.New(worker.Options{Config: s.cfg, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.Run(ctx); err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func (s *stack) queue(q string) string { return tasks.QueueName(s.r.Prefix, q) }

// wait polls queue q until cond holds.
func (s *stack) wait(t *testing.T, q, what string, cond func(*asynq.QueueInfo) bool) *asynq.QueueInfo {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		qi, err := s.insp.GetQueueInfo(s.queue(q))
		if err == nil && cond(qi) {
			return qi
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached (queue %s: %+v, %v)", what, q, qi, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func jsonLines(t *testing.T, jobs []*tasks.Job) string {
	t.Helper()
	var b strings.Builder
	for _, j := range jobs {
		line, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func taskIDs(recs []failures.Record) map[string]bool {
	m := map[string]bool{}
	for _, r := range recs {
		m[r.TaskID] = true
	}
	return m
}

// TestRedriveAgainstSeededFailures seeds the failure index the way
// production does — a batch filed by the real worker against the sandbox,
// some returns refused for delegation (code 4) and some for a period that
// is not a month end (code 131) — then lists failures by each filter, dry
// runs a re-drive, re-drives the permission failures once access is
// granted, replaces an invalid job with a corrected payload, and reads the
// audit.
func TestRedriveAgainstSeededFailures(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := t.Context()

	gen, denials, err := demo.Generate(demo.GenerateOptions{Returns: 40, TokenSets: []string{tokenSet}, Seed: 3, BatchID: "ignored", DenyEvery: 5})
	if err != nil {
		t.Fatal(err)
	}
	deniedIDs := map[string]bool{}
	for _, d := range denials {
		s.sb.Deny("rd-user", d.Identifier, d.AccountType)
		deniedIDs[d.Identifier] = true
	}
	// A denied return may also fail the XSD, and is then refused at
	// enqueue: count what reaches the sandbox.
	denied := 0
	for _, j := range gen.Jobs {
		c := *j
		if _, err := tasks.NewTask(&c); err == nil && c.Key != nil && deniedIDs[c.Key.Identifier] {
			denied++
		}
	}
	if denied == 0 || gen.BadPeriod < 2 || gen.BadSchema == 0 {
		t.Fatalf("the batch provokes too little: %d denied, %+v", denied, gen)
	}
	start := time.Now()
	rep, err := jobfile.Enqueue(ctx, strings.NewReader(jsonLines(t, gen.Jobs)), s.enq, jobfile.EnqueueOptions{Batch: "b-night", Recorder: s.batches})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected != gen.BadSchema {
		t.Fatalf("%d lines refused at enqueue, want %d", rep.Rejected, gen.BadSchema)
	}
	stop := s.startWorker(t)
	s.wait(t, tasks.QueueBulk, "batch finished", func(qi *asynq.QueueInfo) bool { return qi.Completed+qi.Archived == rep.Enqueued })
	stop()
	seeded := time.Now()
	failed := denied + gen.BadPeriod

	st, err := s.batches.Status(ctx, "b-night")
	if err != nil {
		t.Fatal(err)
	}
	if st.Rejected != failed || st.Filed != rep.Enqueued-failed || st.Refused != gen.BadSchema || !st.Complete ||
		st.FailedByClass["permission"] != denied || st.FailedByClass["invalid"] != gen.BadPeriod {
		t.Fatalf("batch status %+v: want %d rejected (%d permission, %d invalid), %d filed, %d refused", st, failed, denied, gen.BadPeriod, rep.Enqueued-failed, gen.BadSchema)
	}

	all, err := s.rd.Failed(ctx, failures.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != failed {
		t.Fatalf("%d failures listed, want %d", len(all), failed)
	}
	var perm, invalid []failures.Record
	for _, r := range all {
		if r.FromArchive || r.Batch != "b-night" || r.Queue != s.queue(tasks.QueueBulk) || r.Key == "" || r.LedgerKey == "" {
			t.Fatalf("record %+v: want it from the index, with its batch, queue and keys", r)
		}
		switch r.Cause() {
		case "permission (code 4)":
			perm = append(perm, r)
		case "invalid (code 131)":
			invalid = append(invalid, r)
		default:
			t.Fatalf("unexpected cause %q: %+v", r.Cause(), r)
		}
	}
	counts := redrive.Causes(all)
	if len(perm) != denied || len(invalid) != gen.BadPeriod || len(counts) != 2 {
		t.Fatalf("causes %+v: want %d permission, %d invalid", counts, denied, gen.BadPeriod)
	}

	parent := t
	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			f    failures.Filter
			want int
		}{
			{"class", failures.Filter{Class: "permission"}, denied},
			{"status code", failures.Filter{Code: "131"}, gen.BadPeriod},
			{"batch", failures.Filter{Batch: "b-night"}, failed},
			{"other batch", failures.Filter{Batch: "b-other"}, 0},
			{"queue", failures.Filter{Queue: s.queue(tasks.QueueBulk)}, failed},
			{"other queue", failures.Filter{Queue: s.queue(tasks.QueueRealtime)}, 0},
			{"identifier", failures.Filter{Identifier: perm[0].Identifier}, 1},
			{"task", failures.Filter{TaskID: invalid[0].TaskID}, 1},
			{"window", failures.Filter{Since: start, Until: seeded}, failed},
			{"before the run", failures.Filter{Until: start}, 0},
			{"class and code disagree", failures.Filter{Class: "permission", Code: "131"}, 0},
		} {
			got, err := s.rd.Failed(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Errorf("%s (%s): %d failures, want %d", tc.name, tc.f, len(got), tc.want)
			}
		}
	})

	t.Run("no filter is refused", func(t *testing.T) {
		if _, err := s.rd.Run(ctx, redrive.Options{Who: "alice"}); !errors.Is(err, redrive.ErrNoFilter) {
			t.Fatalf("re-drive with no filter: %v", err)
		}
	})

	t.Run("dry run moves nothing", func(t *testing.T) {
		before, _ := s.insp.GetQueueInfo(s.queue(tasks.QueueBulk))
		run, err := s.rd.Run(ctx, redrive.Options{Filter: failures.Filter{Class: "permission"}, DryRun: true, Who: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if run.Selected != denied || run.Outcomes["would redrive"] != denied || run.ByCause["permission (code 4)"] != denied || len(run.Jobs) != denied {
			t.Fatalf("dry run %+v", run)
		}
		after, _ := s.insp.GetQueueInfo(s.queue(tasks.QueueBulk))
		if after.Archived != before.Archived {
			t.Fatalf("archived %d -> %d after a dry run", before.Archived, after.Archived)
		}
		if qi, err := s.insp.GetQueueInfo(s.queue(tasks.QueueRedrive)); err == nil && qi.Size > 0 {
			t.Fatalf("%d tasks on the redrive queue after a dry run", qi.Size)
		}
		still, _ := s.rd.Failed(ctx, failures.Filter{Class: "permission"})
		if len(still) != denied {
			t.Fatalf("%d permission failures after a dry run, want %d", len(still), denied)
		}
		got, err := s.rd.GetRun(ctx, run.ID)
		if err != nil || !got.DryRun || got.Who != "alice" || got.State != redrive.RunDone || len(got.Jobs) != denied {
			t.Fatalf("audit of the dry run: %+v, %v", got, err)
		}
	})

	t.Run("re-drive after access is granted", func(t *testing.T) {
		s.consent(t, "rd-user-with-access")
		began := time.Now()
		run, err := s.rd.Run(ctx, redrive.Options{Filter: failures.Filter{Class: "permission", Batch: "b-night"}, Rate: 5, Who: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		// Paced, never all at once: the first job at once, then one every
		// 200 ms (a lower bound: a slow machine only takes longer).
		if took, least := time.Since(began), time.Duration(denied-1)*200*time.Millisecond; took < least {
			t.Fatalf("%d jobs re-driven in %s at 5/s: not paced (want at least %s)", denied, took, least)
		}
		if run.Outcomes[redrive.OutcomeRedriven] != denied {
			t.Fatalf("re-drive %+v, jobs %+v", run, run.Jobs)
		}
		for _, j := range run.Jobs {
			if j.NewQueue != s.queue(tasks.QueueRedrive) || j.NewTaskID != j.TaskID {
				t.Fatalf("job %+v: want it on the redrive queue under its task ID", j)
			}
			if _, err := s.insp.GetTaskInfo(s.queue(tasks.QueueBulk), j.TaskID); !errors.Is(err, asynq.ErrTaskNotFound) {
				t.Fatalf("archived copy of %s still on bulk: %v", j.TaskID, err)
			}
		}
		if left, _ := s.rd.Failed(ctx, failures.Filter{Class: "permission"}); len(left) != 0 {
			t.Fatalf("%d permission failures left after the re-drive", len(left))
		}
		// The same re-drive again finds nothing to do.
		again, err := s.rd.Run(ctx, redrive.Options{Filter: failures.Filter{Class: "permission"}, Who: "bob"})
		if err != nil || again.Selected != 0 {
			t.Fatalf("second re-drive: %+v, %v", again, err)
		}
		s.startWorker(parent) // serves the next subtests too
		s.wait(t, tasks.QueueRedrive, "re-driven jobs filed", func(qi *asynq.QueueInfo) bool { return qi.Completed == denied })
		st, err := s.batches.Status(ctx, "b-night")
		if err != nil {
			t.Fatal(err)
		}
		if st.Filed != rep.Enqueued-gen.BadPeriod || st.Rejected != gen.BadPeriod || st.FailedByClass["permission"] != 0 {
			t.Fatalf("batch after the re-drive: %+v", st)
		}
		if sst := s.sb.Stats(); sst.DuplicateFilings != 0 || sst.DuplicateAttempts != 0 {
			t.Fatalf("sandbox saw duplicates: %+v", sst)
		}
		rec, _ := s.index.Get(ctx, perm[0].TaskID)
		if rec.State != failures.StateRedriven || rec.Settled == nil || rec.Settled.Run != run.ID {
			t.Fatalf("index after the re-drive: %+v", rec)
		}
	})

	t.Run("corrected payload replaces an invalid job", func(t *testing.T) {
		old := invalid[0]
		payload, err := s.index.Payload(ctx, old.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		j, err := tasks.Decode(payload)
		if err != nil {
			t.Fatal(err)
		}
		// IR refused a period end date that is not a month end: the
		// corrected return is for the month's last day.
		bad := j.Key.PeriodEndDate
		day, _ := time.Parse(time.DateOnly, bad)
		fixed := time.Date(day.Year(), day.Month()+1, 0, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
		j.Body, j.Key = strings.ReplaceAll(j.Body, bad, fixed), nil
		corrected, _ := json.Marshal(j)

		if _, err := s.rd.Run(ctx, redrive.Options{Filter: failures.Filter{Class: "invalid"}, Payload: corrected, Who: "carol"}); err == nil {
			t.Fatal("a corrected payload was accepted for several jobs")
		}
		if _, err := s.rd.Run(ctx, redrive.Options{Filter: failures.Filter{TaskID: old.TaskID}, Payload: payload, Who: "carol"}); err == nil {
			t.Fatal("an unchanged payload was accepted as a correction")
		}
		run, err := s.rd.Run(ctx, redrive.Options{Filter: failures.Filter{TaskID: old.TaskID}, Payload: corrected, Who: "carol"})
		if err != nil {
			t.Fatal(err)
		}
		if len(run.Jobs) != 1 || run.Jobs[0].Outcome != redrive.OutcomeReplaced || run.Jobs[0].NewTaskID == old.TaskID || run.Corrected != run.Jobs[0].NewTaskID {
			t.Fatalf("run %+v, jobs %+v", run, run.Jobs)
		}
		newID := run.Jobs[0].NewTaskID
		s.wait(t, tasks.QueueRedrive, "corrected job filed", func(qi *asynq.QueueInfo) bool { return qi.Completed == denied+1 })
		rec, _ := s.index.Get(ctx, old.TaskID)
		if rec.State != failures.StateReplaced || rec.Settled.TaskID != newID {
			t.Fatalf("old record %+v: want replaced, linked to %s", rec, newID)
		}
		var line batch.Line
		_ = s.batches.Report(ctx, "b-night", func(l batch.Line) error {
			if l.TaskID == newID {
				line = l
			}
			return nil
		})
		if line.Outcome != batch.OutcomeFiled || line.SubmissionKey == "" {
			t.Fatalf("report line of the corrected job: %+v", line)
		}
	})

	t.Run("history", func(t *testing.T) {
		runs, err := s.rd.History(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		var whos []string
		for _, r := range runs {
			whos = append(whos, r.Who)
		}
		// Newest first: the correction, the empty second re-drive, the
		// re-drive, the dry run (refused runs are not recorded).
		if strings.Join(whos, " ") != "carol bob bob alice" || !runs[3].DryRun || runs[2].DryRun || runs[2].FilterText != "batch=b-night class=permission" {
			t.Fatalf("history: %v", whos)
		}
	})
}

type bearer string

func (b bearer) AuthorizationHeader(context.Context) (string, error) {
	return "Bearer " + string(b), nil
}

// TestUncertainFilesAreReconciledNeverResent: Files parked with an unknown
// outcome go back through the worker's reconciliation. The one IR got is
// completed without a second File; the one IR never got is sent once; one
// the ledger cannot vouch for is left for a person; one the ledger says is
// filed is resolved without a call; and a task archived behind the
// handler's back (no index record) is found in asynq's archive and
// re-driven.
func TestUncertainFilesAreReconciledNeverResent(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := t.Context()
	gen, _, err := demo.Generate(demo.GenerateOptions{Returns: 5, TokenSets: []string{tokenSet}, Seed: 9, BatchID: "b-unc"})
	if err != nil {
		t.Fatal(err)
	}
	jobs := gen.Jobs
	arrived, lost, unvouched, filed, bare := jobs[0], jobs[1], jobs[2], jobs[3], jobs[4]
	bulk := s.queue(tasks.QueueBulk)
	for _, j := range jobs {
		res, err := s.enq.Enqueue(ctx, j, tasks.QueueBulk)
		if err != nil || res.Duplicate {
			t.Fatal(res, err)
		}
		if err := s.insp.ArchiveTask(bulk, j.ID()); err != nil {
			t.Fatal(err)
		}
		if j == bare {
			continue // archived with no record in the index
		}
		info, err := s.insp.GetTaskInfo(bulk, j.ID())
		if err != nil {
			t.Fatal(err)
		}
		f := tasks.Failure{TaskID: j.ID(), Queue: bulk, Class: "uncertain", Reason: "uncertain outcome", Job: j, Payload: info.Payload, At: time.Now()}
		if err := s.index.RecordFailure(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range []*tasks.Job{arrived, lost} {
		if _, err := s.ledger.BeginSend(ctx, tasks.LedgerKey(j), j.ID(), tasks.BodyHash(j)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ledger.Uncertain(ctx, tasks.LedgerKey(j), j.ID(), "deadline after the request was sent"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ledger.Filed(ctx, tasks.LedgerKey(filed), filed.ID(), ledger.Filing{SubmissionKey: "SK-earlier"}); err != nil {
		t.Fatal(err)
	}
	// The first File reached IR; its answer was lost.
	opts, err := worker.ClientOptions(s.cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	c, err := gatewayclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	if _, err := c.Do(ctx, gatewayclient.Request{Endpoint: gatewayclient.EndpointCloud, Service: gatewayclient.ServiceReturns, Operation: tasks.OpFile,
		Payload: []byte(arrived.Body), Credentials: bearer(s.sb.IssueToken("rd-user", time.Hour))}); err != nil {
		t.Fatal(err)
	}

	want := map[string]string{arrived.ID(): "reconcile", lost.ID(): "reconcile", unvouched.ID(): "skip", filed.ID(): "resolve", bare.ID(): "redrive"}
	filter := failures.Filter{Batch: "b-unc"}
	dry, err := s.rd.Run(ctx, redrive.Options{Filter: filter, DryRun: true, Who: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Selected != len(jobs) {
		t.Fatalf("dry run selected %d, want %d", dry.Selected, len(jobs))
	}
	for _, j := range dry.Jobs {
		if j.Outcome != "would "+want[j.TaskID] {
			t.Errorf("dry run: %s would %s (%s), want %s", j.Key, j.Action, j.Note, want[j.TaskID])
		}
	}
	if _, err := s.index.Get(ctx, bare.ID()); !errors.Is(err, failures.ErrNotFound) {
		t.Fatalf("a dry run wrote the archived task into the index: %v", err)
	}

	run, err := s.rd.Run(ctx, redrive.Options{Filter: filter, Rate: 100, Who: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if run.Outcomes[redrive.OutcomeReconcile] != 2 || run.Outcomes[redrive.OutcomeRedriven] != 1 || run.Outcomes[redrive.OutcomeSkipped] != 1 || run.Outcomes[redrive.OutcomeResolved] != 1 {
		t.Fatalf("outcomes %v: %+v", run.Outcomes, run.Jobs)
	}
	s.startWorker(t)
	s.wait(t, tasks.QueueRedrive, "re-driven Files done", func(qi *asynq.QueueInfo) bool { return qi.Completed == 3 })

	st := s.sb.Stats()
	if st.Calls["returns/File"] != 3 || st.DuplicateAttempts != 0 || st.DuplicateFilings != 0 {
		t.Fatalf("sandbox: %d Files, %d refused as duplicates, %d duplicate filings: want 3 (the lost answer's, the lost return's, the bare one's), 0, 0",
			st.Calls["returns/File"], st.DuplicateAttempts, st.DuplicateFilings)
	}
	if e, _ := s.ledger.Get(ctx, tasks.LedgerKey(arrived)); e.State != ledger.StateFiled || !e.Reconciled {
		t.Errorf("arrived: ledger %+v, want filed by reconciliation", e)
	}
	if e, _ := s.ledger.Get(ctx, tasks.LedgerKey(lost)); e.State != ledger.StateFiled || e.Reconciled || e.GatewayID == "" {
		t.Errorf("lost: ledger %+v, want filed by one new File", e)
	}
	for id, state := range map[string]failures.State{unvouched.ID(): failures.StateFailed, filed.ID(): failures.StateResolved, bare.ID(): failures.StateRedriven, lost.ID(): failures.StateRedriven} {
		if rec, err := s.index.Get(ctx, id); err != nil || rec.State != state {
			t.Errorf("%s: index %+v (%v), want %s", id, rec, err, state)
		}
	}
	if info, err := s.insp.GetTaskInfo(bulk, unvouched.ID()); err != nil || info.State != asynq.TaskStateArchived {
		t.Errorf("the skipped job's archived copy: %+v %v", info, err)
	}
	if _, err := s.insp.GetTaskInfo(bulk, filed.ID()); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("the resolved job's archived copy is still there: %v", err)
	}
}
