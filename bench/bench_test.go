package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/sandbox"
)

func TestSteadyRate(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	bucket := func(i int, ok int64) sandbox.Bucket {
		return sandbox.Bucket{Start: t0.Add(time.Duration(i) * sandbox.DefaultTimelineResolution), Calls: ok, OK: ok}
	}
	tests := []struct {
		name string
		tl   []sandbox.Bucket
		want float64
	}{
		{"empty", nil, 0},
		{"steady 10 a bucket is 100/s", func() (tl []sandbox.Bucket) {
			for i := range 50 {
				tl = append(tl, bucket(i, 10))
			}
			return tl
		}(), 100},
		{"a start-up burst is left out", func() (tl []sandbox.Bucket) {
			tl = append(tl, bucket(0, 40))
			for i := 1; i < 100; i++ {
				tl = append(tl, bucket(i, 5))
			}
			return tl
		}(), 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := steadyRate(tt.tl); got < tt.want*0.97 || got > tt.want*1.03 {
				t.Fatalf("steadyRate = %v, want about %v", got, tt.want)
			}
		})
	}
}

func TestWindowAndPercentile(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	var tl []sandbox.Bucket
	for i := range 20 {
		tl = append(tl, sandbox.Bucket{Start: t0.Add(time.Duration(i) * 100 * time.Millisecond), Calls: 3, OK: 2, Throttled: 1})
	}
	w := window(tl, t0.Add(500*time.Millisecond), t0.Add(time.Second))
	if w.Calls != 15 || w.OK != 10 || w.Throttled != 5 {
		t.Fatalf("window = %+v, want 5 buckets", w)
	}
	if got := percentile([]float64{5, 1, 4, 2, 3}, 50); got != 3 {
		t.Fatalf("p50 = %v", got)
	}
	if got := percentile(nil, 99); got != 0 {
		t.Fatalf("p99 of nothing = %v", got)
	}
}

// TestQuickOverhead runs the overhead scenario end to end, with real
// worker processes, so the benchmark cannot rot unseen.
func TestQuickOverhead(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	self := filepath.Join(t.TempDir(), "bench")
	if out, err := exec.Command("go", "build", "-o", self, "../cmd/bench").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/bench: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Quick: true, RedisAddr: redistest.New(t).Addr, Procs: 2, Scenarios: []string{ScenarioOverhead}, Self: self})
	if err != nil {
		t.Fatal(err)
	}
	o := rep.Overhead
	if o == nil || o.OursJobsPerS <= 0 || o.BareJobsPerS <= 0 || o.Ratio <= 0 {
		t.Fatalf("overhead = %+v", o)
	}
	t.Logf("ours %.0f jobs/s, bare %.0f jobs/s, ratio %.2f (a shared Redis: commands a job not meaningful here)", o.OursJobsPerS, o.BareJobsPerS, o.Ratio)
}

// TestChaos is the chaos scenario, smaller: a batch filed by worker
// processes killed with SIGKILL every two seconds, through lost and hung
// responses and every access token expiring twice, ends with every return
// filed exactly once, nothing lost, no refresh token presented twice, and
// only the parked jobs that ought to be.
func TestChaos(t *testing.T) {
	t.Parallel()
	self := filepath.Join(t.TempDir(), "bench")
	if out, err := exec.Command("go", "build", "-o", self, "../cmd/bench").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/bench: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	shape := ChaosShape{Returns: 240, TokenSets: 6, KillEvery: 2 * time.Second, KillFor: 10 * time.Second, Expiries: []float64{0.3, 0.6}, Timeout: 3 * time.Minute}
	rep, err := Run(ctx, Options{RedisAddr: redistest.New(t).Addr, Procs: 3, Scenarios: []string{ScenarioChaos}, Self: self, chaos: &shape, Progress: t.Output()})
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Chaos
	t.Logf("%+v", *c)
	// The faults happened: otherwise the run proves nothing.
	if c.Kills == 0 || c.LostResponses+c.HungAfterCommit == 0 || c.TokenExpiries != 2 || c.AuthRefusals == 0 || c.Refreshes == 0 {
		t.Fatalf("faults missing: %d kills, %d lost + %d hung responses, %d expiries, %d refusals, %d refreshes", c.Kills, c.LostResponses, c.HungAfterCommit, c.TokenExpiries, c.AuthRefusals, c.Refreshes)
	}
	if c.Reconciled == 0 {
		t.Fatal("no filing was learned by reconciliation, though responses were lost")
	}
	if c.ParkedByClass["permission"] == 0 || c.ParkedByClass["invalid"] == 0 {
		t.Fatalf("parked %v: want refused delegations and bad periods among them", c.ParkedByClass)
	}
	if c.FiledOnce+c.Parked != c.Jobs {
		t.Fatalf("%d filed once + %d parked != %d jobs", c.FiledOnce, c.Parked, c.Jobs)
	}
}

// TestEnqueueScenario runs the bulk-enqueue scenario on a small file, so
// the benchmark cannot rot unseen: every line of the file is enqueued by
// each of the three ways, and the rates are measured.
func TestEnqueueScenario(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{RedisAddr: redistest.New(t).Addr, Scenarios: []string{ScenarioEnqueue}, Self: "unused", enqueueJobs: 1000, Progress: t.Output()})
	if err != nil {
		t.Fatal(err)
	}
	e := rep.Enqueue
	if e == nil || e.Jobs != 1000 || e.SampleJobs != 250 || e.FileMB <= 0 || e.OursJobsPerS <= 0 || e.OneByOneJobsPerS <= 0 || e.BareJobsPerS <= 0 || e.Speedup <= 0 {
		t.Fatalf("enqueue = %+v", e)
	}
}

// TestPrintShowsEveryScenario: the human-readable report has a block for
// each scenario that ran.
func TestPrintShowsEveryScenario(t *testing.T) {
	t.Parallel()
	rep := &Report{
		FleetRate: &FleetRate{LimitRPS: 100, Jobs: 10, AchievedRatio: 1},
		Adapt:     &Adapt{LimitRPS: 100},
		Outage:    &Outage{Jobs: 5},
		Overhead:  &Overhead{Jobs: 7, OursJobsPerS: 900, BareJobsPerS: 1000, Ratio: 0.9},
		Enqueue:   &Enqueue{Jobs: 100000, FileMB: 716, OursJobsPerS: 5907, OursSeconds: 16.9, OneByOneJobsPerS: 2158, BareJobsPerS: 7809, SampleJobs: 20000, Speedup: 2.74},
		Chaos:     &Chaos{Jobs: 3},
	}
	var b strings.Builder
	rep.Print(&b)
	out := b.String()
	for _, want := range []string{"fleet-rate", "adapt", "outage", "overhead", "enqueue", "5907 jobs/s", "2158 jobs/s", "7809 jobs/s", "2.74", "chaos"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
