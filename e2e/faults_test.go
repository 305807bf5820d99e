package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/tasks"
)

func archivedOutcomes(t *testing.T, s *stack) []tasks.Outcome {
	t.Helper()
	list, err := s.insp.ListArchivedTasks(s.queue(), asynq.PageSize(1000))
	if err != nil {
		t.Fatal(err)
	}
	var out []tasks.Outcome
	for _, ti := range list {
		var o tasks.Outcome
		if err := json.Unmarshal(ti.Result, &o); err != nil {
			t.Fatalf("archived task %s has no outcome: %v", ti.ID, err)
		}
		out = append(out, o)
	}
	return out
}

// TestHungAndResetFilesAreNeverResent: a File whose call hangs past its
// deadline, or whose connection is reset after the request went out, has
// an uncertain outcome. It is never sent again blindly: the ledger marks it
// uncertain and the job comes back to reconcile with IR first. Here every
// call fails until the first three Files have, so nothing can be learnt;
// then the faults stop and each job asks IR (RetrieveStatus):
//
//   - hang, reset: the sandbox takes these faults before its ledger (see
//     sandbox/faults.go), so IR never processed the File and answers
//     "nothing filed" (104). Sending it again is then safe and right: the
//     File goes out a second time and is filed once.
//   - response lost: the sandbox filed it; reconciliation finds the same
//     return at IR and completes the job without a second File.
//
// Either way no return is filed twice and no File is refused as a
// duplicate (DuplicateAttempts 0).
func TestHungAndResetFilesAreNeverResent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		faults   sandbox.Faults
		resent   bool // IR never processed the first File
		lostResp bool
	}{
		{"hang past the deadline", sandbox.Faults{Hang: 1}, true, false},
		{"connection reset after the request", sandbox.Faults{Reset: 1}, true, false},
		{"filed, then the response lost", sandbox.Faults{LoseResponse: 1}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, sandbox.Options{Faults: tc.faults, FaultSeed: 1}, demo.Options{})
			s.cfg.Gateway.CallTimeout = 500 * time.Millisecond
			s.cfg.Worker.ShutdownTimeout = 30 * time.Second
			s.cfg.Breaker.OpenFor = time.Second
			jobs := s.returns(t, 3)
			s.enqueueAll(t, jobs)
			s.runWorker(t)
			waitSandbox(t, s, 30*time.Second, "every File to fail", func(st sandbox.Stats) bool { return st.Calls["returns/File"] >= int64(len(jobs)) })
			if err := s.sb.SetFaults(sandbox.Faults{}); err != nil {
				t.Fatal(err)
			}
			wantFiled := int64(0)
			if tc.lostResp {
				wantFiled = int64(len(jobs))
			}
			if st := s.sb.Stats(); st.Calls["returns/File"] != int64(len(jobs)) || st.Filed != wantFiled {
				t.Fatalf("before reconciliation: %d File calls, %d filed", st.Calls["returns/File"], st.Filed)
			}
			qi := s.waitFor(t, time.Minute, "all reconciled", func(qi *asynq.QueueInfo) bool { return qi.Completed+qi.Archived == len(jobs) })
			if qi.Archived != 0 {
				for _, o := range archivedOutcomes(t, s) {
					t.Logf("parked: %s %s", o.Class, o.Reason)
				}
				t.Fatalf("%d jobs parked", qi.Archived)
			}
			st := s.sb.Stats()
			wantFiles := int64(len(jobs))
			if tc.resent {
				wantFiles *= 2 // re-sent once each, after IR said nothing was filed
			}
			if got := st.Calls["returns/File"]; got != wantFiles {
				t.Fatalf("the sandbox saw %d File calls for %d returns, want %d", got, len(jobs), wantFiles)
			}
			if st.Calls["returns/RetrieveStatus"] < int64(len(jobs)) {
				t.Fatalf("%d RetrieveStatus calls: a File was re-sent without asking IR", st.Calls["returns/RetrieveStatus"])
			}
			if st.DuplicateFilings != 0 || st.DuplicateAttempts != 0 || st.Filed != int64(len(jobs)) {
				t.Fatalf("filed %d, duplicates: %d filings, %d attempts", st.Filed, st.DuplicateFilings, st.DuplicateAttempts)
			}
			checkFiledOnce(t, s, jobs)
		})
	}
}

// waitSandbox polls the sandbox's counters until cond holds.
func waitSandbox(t *testing.T, s *stack, within time.Duration, what string, cond func(sandbox.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond(s.sb.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s (%+v)", what, within, s.sb.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOutageOpensTheFleetBreaker: the sandbox answers 503 mid-batch; two
// workers stop calling once the breaker opens, no job is archived or
// spends its retry budget, and the batch completes after the outage.
func TestOutageOpensTheFleetBreaker(t *testing.T) {
	t.Parallel()
	s := newStack(t, sandbox.Options{Latency: 5 * time.Millisecond}, demo.Options{RateRPS: 200})
	s.cfg.Breaker.OpenFor = time.Second
	s.cfg.Limits.Mode = config.LimitFleet
	jobs := s.returns(t, 60)
	s.sb.SetOutage(503, 3*time.Second)
	s.enqueueAll(t, jobs)
	s.runWorker(t)
	s.runWorker(t)
	qi := s.waitFor(t, 90*time.Second, "all filed after the outage", func(qi *asynq.QueueInfo) bool { return qi.Completed+qi.Archived == len(jobs) })
	if qi.Archived != 0 {
		t.Fatalf("%d jobs archived by an outage", qi.Archived)
	}
	for _, j := range jobs {
		info, err := s.insp.GetTaskInfo(s.queue(), j.ID())
		if err != nil {
			t.Fatal(err)
		}
		if info.Retried != 0 {
			t.Fatalf("task %s spent %d retries on an outage", info.ID, info.Retried)
		}
	}
	st := s.sb.Stats()
	// Without the breaker every job would hit the outage again and again
	// for three seconds; with it a handful of calls (the trip, then probes)
	// reach the sandbox while it is down.
	if st.Outage == 0 || st.Outage > 40 {
		t.Fatalf("%d calls answered by the outage, want a few (the trip and the probes)", st.Outage)
	}
	if st.Filed != int64(len(jobs)) || st.DuplicateFilings != 0 {
		t.Fatalf("filed %d of %d, duplicates %d", st.Filed, len(jobs), st.DuplicateFilings)
	}
	t.Logf("%d calls met the outage; all %d jobs filed once after it", st.Outage, len(jobs))
}
