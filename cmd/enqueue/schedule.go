package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/gatewayq/gatewayq/schedule"
)

const scheduleUsage = `Usage: enqueue schedule runs NAME [--limit N]

Lists the recent runs of a scheduled batch (schedule.batches in the
config), newest first: when it was due, what became of it, which worker
ran it, and jobfile's counts. "running (stale)" is a run whose worker died;
another worker takes it over within schedule.catch_up.
`

func (a *app) schedule(ctx context.Context, g *globals, args []string) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(a.stdout, scheduleUsage)
		return exitOK
	}
	sub, rest, ok := a.subcommand(g, args)
	if !ok || sub != "runs" {
		fmt.Fprint(a.stderr, scheduleUsage)
		return exitError
	}
	fs := a.newFlagSet(g, "schedule runs", "schedule runs NAME [--limit N]", "Lists the recent runs of a scheduled batch, newest first.\n")
	limit := fs.Int("limit", 14, "show at most `N` runs (0: all kept)")
	pos, code, ok := parse(fs, rest)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprint(a.stderr, scheduleUsage)
		return exitError
	}
	s, err := a.connect(g)
	if err != nil {
		return a.fail(err)
	}
	rdb := s.rdb()
	defer rdb.Close()
	runs, err := schedule.Runs(ctx, rdb, s.cfg.Redis.KeyPrefix, pos[0], *limit)
	if err != nil {
		return a.fail(err)
	}
	if len(runs) == 0 {
		fmt.Fprintf(a.stdout, "no runs recorded for scheduled batch %q\n", pos[0])
		return exitOK
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OCCURRENCE\tOUTCOME\tATTEMPT\tBATCH\tLINES\tENQUEUED\tDUPLICATES\tREJECTED\tOWNER\tFILE\tERROR")
	for _, r := range runs {
		outcome := string(r.Outcome)
		if r.Stale {
			outcome += " (stale)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", r.Occurrence.Format(time.RFC3339), outcome, r.Attempt, r.Batch,
			r.Lines, r.Enqueued, r.Duplicates, r.Rejected, r.Owner, r.File, r.Error)
	}
	_ = tw.Flush()
	return exitOK
}
