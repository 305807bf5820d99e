package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/demo"
	"github.com/gatewayq/gatewayq/gatewayclient"
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
// an uncertain outcome. It is parked for reconciliation, never sent again.
func TestHungAndResetFilesAreNeverResent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults sandbox.Faults
	}{
		{"hang past the deadline", sandbox.Faults{Hang: 1}},
		{"connection reset after the request", sandbox.Faults{Reset: 1}},
		{"filed, then the response lost", sandbox.Faults{LoseResponse: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, sandbox.Options{Faults: tc.faults, FaultSeed: 1}, demo.Options{})
			s.cfg.Gateway.CallTimeout = 500 * time.Millisecond
			s.cfg.Worker.ShutdownTimeout = 30 * time.Second
			jobs := s.returns(t, 3)
			for _, j := range jobs {
				if _, err := s.enq.Enqueue(context.Background(), j, tasks.QueueBulk); err != nil {
					t.Fatal(err)
				}
			}
			s.runWorker(t)
			s.waitFor(t, 30*time.Second, "all parked", func(qi *asynq.QueueInfo) bool { return qi.Archived == len(jobs) })
			for _, o := range archivedOutcomes(t, s) {
				if o.Class != gatewayclient.ClassUncertain.String() {
					t.Errorf("parked as %q (%s), want uncertain", o.Class, o.Reason)
				}
			}
			st := s.sb.Stats()
			if got := st.Calls["returns/File"]; got != int64(len(jobs)) {
				t.Fatalf("the sandbox saw %d File calls for %d returns: a File was re-sent", got, len(jobs))
			}
			if st.DuplicateFilings != 0 || st.DuplicateAttempts != 0 {
				t.Fatalf("duplicates: %d filings, %d attempts", st.DuplicateFilings, st.DuplicateAttempts)
			}
		})
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
	for _, j := range jobs {
		if _, err := s.enq.Enqueue(context.Background(), j, tasks.QueueBulk); err != nil {
			t.Fatal(err)
		}
	}
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
