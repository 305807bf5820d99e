package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/worker"
)

func sandboxKey(k *tasks.NaturalKey) sandbox.NaturalKey {
	return sandbox.NaturalKey{Identifier: k.Identifier, AccountType: k.AccountType, PeriodEndDate: k.PeriodEndDate, MajorFormType: k.MajorFormType, PayDayDate: k.PayDayDate}
}

// checkFiledOnce asserts the end state reconciliation promises: each return
// filed exactly once at the sandbox, nothing ever refused as a duplicate,
// and the ledger holding the sandbox's submission key for each.
func checkFiledOnce(t *testing.T, s *stack, jobs []*tasks.Job) (reconciled int) {
	t.Helper()
	st := s.sb.Stats()
	if st.DuplicateFilings != 0 || st.DuplicateAttempts != 0 {
		t.Fatalf("duplicates: %d filings, %d Files refused as already filed (a File was sent for a filed return)", st.DuplicateFilings, st.DuplicateAttempts)
	}
	l := ledger.New(s.r.Client, s.cfg.Redis.KeyPrefix)
	for _, j := range jobs {
		k := sandboxKey(j.Key)
		if n := st.Originals[k.String()]; n != 1 {
			t.Errorf("%s: %d originals at the sandbox, want 1", k, n)
			continue
		}
		filings := s.sb.Filings(k)
		e, err := l.Get(context.Background(), tasks.LedgerKey(j))
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		if e.State != ledger.StateFiled || e.SubmissionKey != filings[0].SubmissionKey {
			t.Errorf("%s: ledger %s with submission key %q, sandbox filed %q", k, e.State, e.SubmissionKey, filings[0].SubmissionKey)
		}
		if e.Reconciled {
			reconciled++
			info, err := s.insp.GetTaskInfo(s.queue(), j.ID())
			if err != nil {
				t.Fatal(err)
			}
			var out tasks.Outcome
			if err := json.Unmarshal(info.Result, &out); err != nil || out.Class != "ok" || !strings.HasPrefix(out.Reason, "filed (reconciled)") || out.SubmissionKey != e.SubmissionKey {
				t.Errorf("%s: outcome %+v (%v), want ok, filed (reconciled), submission key %s", k, out, err, e.SubmissionKey)
			}
		}
	}
	return reconciled
}

// TestLostResponsesAreReconciledNeverResent: the sandbox files a share of
// the Files and then loses or withholds the answer. Each such File is
// marked uncertain, comes back, is reconciled (RetrieveStatus, then
// RetrieveReturn compared with what was sent) and completes as filed;
// none is sent twice and none is parked.
func TestLostResponsesAreReconciledNeverResent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults sandbox.Faults
	}{
		{"filed, then the response lost", sandbox.Faults{LoseResponse: 0.3}},
		{"filed, then the response withheld past the deadline", sandbox.Faults{HangAfterCommit: 0.2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, sandbox.Options{Faults: tc.faults, FaultSeed: 7}, demo.Options{})
			s.cfg.Gateway.CallTimeout = 500 * time.Millisecond
			s.cfg.Worker.ShutdownTimeout = 30 * time.Second
			// Withheld answers count for the breaker; a short open period
			// keeps the test quick.
			s.cfg.Breaker.OpenFor = time.Second
			jobs := s.returns(t, 30)
			s.enqueueAll(t, jobs)
			s.runWorker(t)
			qi := s.waitFor(t, 2*time.Minute, "all filed", func(qi *asynq.QueueInfo) bool { return qi.Completed+qi.Archived == len(jobs) })
			if qi.Archived != 0 {
				t.Fatalf("%d jobs parked", qi.Archived)
			}
			st := s.sb.Stats()
			if st.LostResponses == 0 {
				t.Fatal("no answer was lost: the test proves nothing")
			}
			if got := st.Calls["returns/File"]; got != int64(len(jobs)) {
				t.Fatalf("%d File calls for %d returns: a File was re-sent", got, len(jobs))
			}
			reconciled := checkFiledOnce(t, s, jobs)
			// Every lost answer is reconciled; on a loaded machine a slow
			// answer can also miss the short call deadline and be
			// reconciled the same way.
			if int64(reconciled) < st.LostResponses {
				t.Fatalf("%d reconciled as filed, %d answers lost", reconciled, st.LostResponses)
			}
			t.Logf("%d answers lost, %d reconciled, %d RetrieveStatus and %d RetrieveReturn calls",
				st.LostResponses, reconciled, st.Calls["returns/RetrieveStatus"], st.Calls["returns/RetrieveReturn"])
		})
	}
}

type bearer string

func (b bearer) AuthorizationHeader(context.Context) (string, error) {
	return "Bearer " + string(b), nil
}

// TestWorkerKilledMidSendIsReconciled: a worker died between marking a
// File sending and learning its outcome. Its job, run again, asks IR
// before anything else: the return IR has is completed without a second
// File; the return IR never got is sent once.
func TestWorkerKilledMidSendIsReconciled(t *testing.T) {
	t.Parallel()
	s := newStack(t, sandbox.Options{}, demo.Options{})
	jobs := s.returns(t, 2)
	arrived, lost := jobs[0], jobs[1]
	l := ledger.New(s.r.Client, s.cfg.Redis.KeyPrefix)
	// The dead worker marked them sending longer ago than a call may
	// last: a more recent mark could belong to a call still in flight,
	// which reconciliation waits out.
	dead := ledger.New(s.r.Client, s.cfg.Redis.KeyPrefix, ledger.WithClock(func() time.Time { return time.Now().Add(-2 * time.Minute) }))
	ctx := context.Background()
	for _, j := range jobs {
		if err := j.Normalize(); err != nil {
			t.Fatal(err)
		}
		if _, err := dead.BeginSend(ctx, tasks.LedgerKey(j), j.ID(), tasks.BodyHash(j)); err != nil {
			t.Fatal(err)
		}
	}
	// The dead worker's File of the first return reached IR.
	opts, err := worker.ClientOptions(s.cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	c, err := gatewayclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	res, err := c.Do(ctx, gatewayclient.Request{Endpoint: gatewayclient.EndpointCloud, Service: gatewayclient.ServiceReturns, Operation: tasks.OpFile,
		Payload: []byte(arrived.Body), Credentials: bearer(s.sb.IssueToken("e2e-user", time.Hour))})
	if err != nil {
		t.Fatal(err)
	}

	for _, j := range jobs {
		if _, err := s.enq.Enqueue(ctx, j, tasks.QueueBulk); err != nil {
			t.Fatal(err)
		}
	}
	s.runWorker(t)
	qi := s.waitFor(t, time.Minute, "both done", func(qi *asynq.QueueInfo) bool { return qi.Completed+qi.Archived == len(jobs) })
	if qi.Archived != 0 {
		t.Fatalf("%d jobs parked", qi.Archived)
	}
	st := s.sb.Stats()
	if st.Calls["returns/File"] != 2 || st.Calls["returns/RetrieveStatus"] != 2 || st.Calls["returns/RetrieveReturn"] != 1 {
		t.Fatalf("calls %v: want the dead worker's File and one for the lost return, a status for each, one RetrieveReturn", st.Calls)
	}
	if reconciled := checkFiledOnce(t, s, jobs); reconciled != 1 {
		t.Fatalf("%d reconciled, want 1", reconciled)
	}
	e, _ := l.Get(ctx, tasks.LedgerKey(arrived))
	if e.SubmissionKey != res.SubmissionKey || !e.Reconciled {
		t.Fatalf("arrived return: ledger %+v, dead worker's File got %s", e, res.SubmissionKey)
	}
	if e, _ := l.Get(ctx, tasks.LedgerKey(lost)); e.Reconciled || e.GatewayID == "" || e.Attempts != 2 {
		t.Fatalf("lost return: ledger %+v, want filed by a second attempt with IR's gateway ID", e)
	}
}
