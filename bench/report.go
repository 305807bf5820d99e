package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Print writes the report as tables a person can read.
func (r *Report) Print(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "gatewayq benchmark (%s) — %d CPUs, %s, %s, Redis %s, %d worker processes, %.0fs\n\n",
		map[bool]string{true: "--quick", false: "full"}[r.Quick], m.CPUs, m.OS, m.GoVersion, m.Redis, m.Procs, r.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if f := r.FleetRate; f != nil {
		fmt.Fprintf(tw, "fleet-rate\tR = %.0f req/s, %d jobs\t\t\t\n", f.LimitRPS, f.Jobs)
		fmt.Fprintf(tw, "  limiter\tachieved / R\t429s\tp50 job\tp99 job\n")
		fmt.Fprintf(tw, "  gatewayq (fleet, Redis)\t%.3f\t%d\t%.0f ms\t%.0f ms\n", f.AchievedRatio, f.Throttled, f.P50MS, f.P99MS)
		fmt.Fprintf(tw, "  naive x/time/rate at R each\t%.3f\t%d\t%.0f ms\t%.0f ms\n", f.NaiveRatio, f.NaiveThrottled, f.NaiveP50MS, f.NaiveP99MS)
		fmt.Fprintf(tw, "  static R/P each\t%.3f\t%d\t%.0f ms\t%.0f ms\n", f.StaticRatio, f.StaticThrottled, f.StaticP50MS, f.StaticP99MS)
		fmt.Fprintln(tw, "\t\t\t\t")
	}
	if a := r.Adapt; a != nil {
		fmt.Fprintf(tw, "adapt\tR = %.0f → %.0f → %.0f req/s, %.0fs phases\t\t\t\n", a.LimitRPS, a.LimitRPS/2, a.LimitRPS, a.PhaseSeconds)
		fmt.Fprintf(tw, "  settled under R/2 after\t%.1f s\t\t\t\n", a.SettleSeconds)
		fmt.Fprintf(tw, "  429s during the change\t%d\t\t\t\n", a.ThrottledDuringChange)
		fmt.Fprintf(tw, "  429s after settling\t%d (%.2f%% of calls)\t\t\t\n", a.ThrottledAfterSettle, 100*a.ThrottledAfterSettleRatio)
		fmt.Fprintf(tw, "  rate after settling / (R/2)\t%.3f\t\t\t\n", a.HalfRateRatio)
		fmt.Fprintf(tw, "  back to 90%% of R after\t%.1f s\t\t\t\n", a.RecoverySeconds)
		fmt.Fprintln(tw, "\t\t\t\t")
	}
	if o := r.Outage; o != nil {
		fmt.Fprintf(tw, "outage\t503 for %.0fs mid-batch, %d jobs\t\t\t\n", o.OutageSeconds, o.Jobs)
		fmt.Fprintf(tw, "  breaker opened after\t%.2f s\t\t\t\n", o.TripSeconds)
		fmt.Fprintf(tw, "  every process stopped\t%.2f s after the trip\t\t\t\n", o.StopSeconds)
		fmt.Fprintf(tw, "  calls while open (probes)\t%d\t\t\t\n", o.CallsWhileOpen)
		fmt.Fprintf(tw, "  archived / retries spent\t%d / %d\t\t\t\n", o.Archived, o.RetriesSpent)
		fmt.Fprintf(tw, "  completed\t%d of %d, %.1f s after the outage\t\t\t\n", o.Completed, o.Jobs, o.CompletedSecondsAfterOutage)
		fmt.Fprintln(tw, "\t\t\t\t")
	}
	if o := r.Overhead; o != nil {
		fmt.Fprintf(tw, "overhead\tinstant, unlimited sandbox, %d jobs\t\t\t\n", o.Jobs)
		fmt.Fprintf(tw, "  gatewayq whole path\t%.0f jobs/s\t%.1f Redis cmds/job\t\t\n", o.OursJobsPerS, o.RedisCommandsPerJob)
		fmt.Fprintf(tw, "  bare asynq + same HTTPS call\t%.0f jobs/s\t%.1f Redis cmds/job\t\t\n", o.BareJobsPerS, o.BareRedisCmdsPerJob)
		fmt.Fprintf(tw, "  ratio\t%.3f\t\t\t\n", o.Ratio)
		fmt.Fprintln(tw, "\t\t\t\t")
	}
	if e := r.Enqueue; e != nil {
		fmt.Fprintf(tw, "enqueue\t%d returns, %.0f MB file\t\t\t\n", e.Jobs, e.FileMB)
		fmt.Fprintf(tw, "  enqueue bulk's path (validated, ledger, batch)\t%.0f jobs/s, %.1f s, heap +%.0f MB\t\t\t\n", e.OursJobsPerS, e.OursSeconds, e.PeakHeapMB)
		fmt.Fprintf(tw, "  same work, one Enqueue at a time\t%.0f jobs/s (first %d lines)\t\t\t\n", e.OneByOneJobsPerS, e.SampleJobs)
		fmt.Fprintf(tw, "  bare asynq Enqueue, no validation\t%.0f jobs/s (first %d lines)\t\t\t\n", e.BareJobsPerS, e.SampleJobs)
		fmt.Fprintf(tw, "  ours / one at a time\t%.2f\t\t\t\n", e.Speedup)
		fmt.Fprintln(tw, "\t\t\t\t")
	}
	if c := r.Chaos; c != nil {
		fmt.Fprintf(tw, "chaos\t%d returns, %d token sets, %.0fs\t\t\t\n", c.Jobs, c.TokenSets, c.Seconds)
		fmt.Fprintf(tw, "  faults\t%d lost responses, %d hung after commit, %d SIGKILLs, %d token expiries (%d refusals)\t\t\t\n", c.LostResponses, c.HungAfterCommit, c.Kills, c.TokenExpiries, c.AuthRefusals)
		fmt.Fprintf(tw, "  filed exactly once\t%d (%d learned by reconciliation)\t\t\t\n", c.FiledOnce, c.Reconciled)
		fmt.Fprintf(tw, "  filed twice / lost\t%d / %d\t\t\t\n", c.DuplicateFilings, c.Lost)
		fmt.Fprintf(tw, "  refreshes / reused refresh tokens\t%d / %d\t\t\t\n", c.Refreshes, c.RefreshReuse)
		fmt.Fprintf(tw, "  parked (wrong reason)\t%d (%d) %v\t\t\t\n", c.Parked, c.ParkedWrong, c.ParkedByClass)
	}
	_ = tw.Flush()
}
