package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/failures"
	"github.com/gatewayq/gatewayq/redrive"
	"github.com/gatewayq/gatewayq/tasks"
)

// filterFlags are the flags `failed` and `redrive` share.
type filterFlags struct {
	queue, batch, class, code, identifier, task, since, until string
	all                                                       bool // failed: every state; redrive: allow an empty filter
}

func (ff *filterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&ff.queue, "queue", "", "`queue` the job failed on: realtime, bulk or redrive")
	fs.StringVar(&ff.batch, "batch", "", "batch `ID`")
	fs.StringVar(&ff.class, "class", "", "failure `class`: invalid, permission, config, auth, already_filed, uncertain, retry_later, ...")
	fs.StringVar(&ff.code, "code", "", "IR's status `code` (4, 131) or REST/SOAP code (EV1022)")
	fs.StringVar(&ff.identifier, "identifier", "", "the return's `identifier` (IRD number)")
	fs.StringVar(&ff.task, "task", "", "one task `ID`")
	fs.StringVar(&ff.since, "since", "", "failed at or after `TIME`: RFC 3339, a date (2026-11-25, UTC) or a duration ago (12h)")
	fs.StringVar(&ff.until, "until", "", "failed at or before `TIME` (as --since)")
}

// filter builds the failures.Filter, with the queue's prefixed name.
func (ff *filterFlags) filter(prefix string, now time.Time) (failures.Filter, error) {
	f := failures.Filter{Batch: ff.batch, Class: ff.class, Code: ff.code, Identifier: ff.identifier, TaskID: ff.task}
	if ff.queue != "" {
		if err := tasks.CheckQueue(ff.queue); err != nil {
			return f, err
		}
		f.Queue = tasks.QueueName(prefix, ff.queue)
	}
	var err error
	if f.Since, err = parseWhen(ff.since, now); err != nil {
		return f, fmt.Errorf("--since: %w", err)
	}
	if f.Until, err = parseWhen(ff.until, now); err != nil {
		return f, fmt.Errorf("--until: %w", err)
	}
	return f, nil
}

// parseWhen reads a time as RFC 3339, a UTC date, or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time, a date (2006-01-02) or a duration (12h)", s)
}

// redriver builds a Redriver over the session; close what it returns when
// done.
func (s *session) redriver(now func() time.Time) (*redrive.Redriver, func()) {
	rdb := s.rdb()
	insp := asynq.NewInspector(s.redis)
	enq, client := s.enqueuer()
	r := redrive.New(redrive.Config{Redis: rdb, KeyPrefix: s.cfg.Redis.KeyPrefix, QueuePrefix: s.prefix,
		Inspector: insp, Enqueuer: enq, Retention: s.cfg.Worker.ReportRetention, Now: now})
	return r, func() { _ = client.Close(); _ = insp.Close(); _ = rdb.Close() }
}

const failedHelp = `Lists failed jobs — parked for an operator, or out of retries — from the
failure index the workers keep (and asynq's archive, for any the index
missed), oldest first, with counts per cause. Filters combine (AND).
Without --all only failures not yet re-driven are listed.
`

func (a *app) failed(ctx context.Context, g *globals, args []string) int {
	fs := a.newFlagSet(g, "failed", "failed [filters] [--all] [--json] [--limit N]", failedHelp)
	var ff filterFlags
	ff.register(fs)
	fs.BoolVar(&ff.all, "all", false, "include failures already re-driven, replaced or resolved")
	var (
		asJSON = fs.Bool("json", false, "print JSON lines, one failure a line")
		limit  = fs.Int("limit", 50, "list at most `N` jobs (the counts cover all); 0: all")
	)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintf(a.stderr, "enqueue failed: unexpected argument %q\n", pos[0])
		fs.Usage()
		return exitError
	}
	s, err := a.connect(g)
	if err != nil {
		return a.fail(err)
	}
	f, err := ff.filter(s.prefix, a.now())
	if err != nil {
		return a.fail(err)
	}
	if ff.all {
		f.States = []failures.State{failures.StateFailed, failures.StateRedriven, failures.StateReplaced, failures.StateResolved}
	}
	r, closeAll := s.redriver(a.now)
	defer closeAll()
	recs, err := r.Failed(ctx, f)
	if err != nil {
		return a.fail(err)
	}
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		for _, rec := range recs {
			if err := enc.Encode(rec); err != nil {
				return a.fail(err)
			}
		}
		return exitOK
	}
	w := a.stdout
	fmt.Fprintf(w, "%d failed jobs (%s)\n", len(recs), f)
	if len(recs) == 0 {
		return exitOK
	}
	fmt.Fprintln(w, "by cause:")
	for _, c := range redrive.Causes(recs) {
		fmt.Fprintf(w, "  %5d  %s\n", c.Count, c.Cause)
	}
	shown := recs
	if *limit > 0 && len(shown) > *limit {
		shown = shown[:*limit]
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FAILED AT\tQUEUE\tCLASS\tCODE\tBATCH\tRETURN / REF\tTASK\tSTATE\tREASON")
	for _, rec := range shown {
		what := rec.Key
		if what == "" {
			what = rec.Ref
		}
		code := rec.Code
		if rec.StatusCode != 0 {
			code = strconv.Itoa(rec.StatusCode)
		}
		reason := rec.Message
		if reason == "" {
			reason = rec.Reason
		}
		state := string(rec.State)
		if rec.FromArchive {
			state += " (archive)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", rec.At.UTC().Format(time.RFC3339), strings.TrimPrefix(rec.Queue, s.prefix),
			rec.Class, dash(code), dash(rec.Batch), dash(what), rec.TaskID, state, clip(reason, 90))
	}
	if err := tw.Flush(); err != nil {
		return a.fail(err)
	}
	if len(shown) < len(recs) {
		fmt.Fprintf(w, "... and %d more (--limit 0 lists all)\n", len(recs)-len(shown))
	}
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clip keeps a reason on one line of a table.
func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

const redriveHelp = `Re-drives failed jobs (as "enqueue failed" lists them, with the same
filters) onto the redrive queue, a few a second (--rate), as fresh tasks
with a full retry budget; the archived copy is deleted once the new task is
queued. Run it with --dry-run first: it says what each job would do.

A File whose outcome is uncertain is reconciled by the worker with IR
before anything is sent; one the filing ledger says is filed is resolved
without a call; one whose uncertainty the ledger cannot vouch for is skipped,
to be reconciled by hand. A job rejected as invalid can be given a corrected
job (--task ID --payload job.json): it is validated, enqueued under its own
task ID and linked to the failed one.

Every re-drive, dry runs too, is recorded (who, when, filter, count, what
became of each job): "enqueue redrive history" lists them, and
"enqueue redrive history RUN_ID" shows one.

A filter is required; --all re-drives every failure.
`

func (a *app) redrive(ctx context.Context, g *globals, args []string) int {
	if sub, rest, ok := a.subcommand(g, args); ok && sub == "history" {
		return a.redriveHistory(ctx, g, rest)
	}
	fs := a.newFlagSet(g, "redrive", "redrive [filters] [--dry-run] [--rate N/s] [--payload FILE] [--who NAME]", redriveHelp)
	var ff filterFlags
	ff.register(fs)
	fs.BoolVar(&ff.all, "all", false, "allow a re-drive with no filter: every failure")
	var (
		dryRun  = fs.Bool("dry-run", false, "say what would be done, move nothing")
		rateStr = fs.String("rate", strconv.Itoa(redrive.DefaultRate)+"/s", "jobs moved per second (`N`, N/s or N/m)")
		payload = fs.String("payload", "", "corrected job `file` (JSON, as submit --file) for the one invalid job selected")
		who     = fs.String("who", a.env("USER"), "who is re-driving, for the audit (default $USER)")
		show    = fs.Int("show", 50, "list at most `N` jobs (the audit keeps all)")
	)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintf(a.stderr, "enqueue redrive: unexpected argument %q\n", pos[0])
		fs.Usage()
		return exitError
	}
	if *who == "" {
		return a.fail(errors.New("--who is required ($USER is not set)"))
	}
	perSecond, err := parseRate(*rateStr)
	if err != nil {
		return a.fail(fmt.Errorf("--rate: %w", err))
	}
	s, err := a.connect(g)
	if err != nil {
		return a.fail(err)
	}
	f, err := ff.filter(s.prefix, a.now())
	if err != nil {
		return a.fail(err)
	}
	opts := redrive.Options{Filter: f, All: ff.all, DryRun: *dryRun, Rate: perSecond, Who: *who}
	if *payload != "" {
		if opts.Payload, err = a.readInput(*payload); err != nil {
			return a.fail(err)
		}
	}
	r, closeAll := s.redriver(a.now)
	defer closeAll()
	run, err := r.Run(ctx, opts)
	if run != nil {
		printRun(a.stdout, run, *show, s.prefix)
	}
	if err != nil {
		if errors.Is(err, redrive.ErrNoFilter) {
			return a.fail(fmt.Errorf("%w (--all)", err))
		}
		return a.fail(err)
	}
	if run.Outcomes[redrive.OutcomeError] > 0 {
		return exitError
	}
	return exitOK
}

// env looks a variable up in the app's environment.
func (a *app) env(name string) string {
	for _, kv := range a.environ {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// parseRate reads "10", "10/s" or "600/m" as jobs per second.
func parseRate(s string) (float64, error) {
	num, unit, _ := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a positive number of jobs per second (10, 10/s or 600/m)", s)
	}
	switch strings.TrimSpace(unit) {
	case "", "s":
		return n, nil
	case "m":
		return n / 60, nil
	}
	return 0, fmt.Errorf("%q: the unit is s or m", s)
}

func printRun(w io.Writer, run *redrive.Run, show int, prefix string) {
	mode := "re-drive"
	if run.DryRun {
		mode = "dry run"
	}
	fmt.Fprintf(w, "%s %s by %s at %s\n", mode, run.ID, run.Who, run.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "filter:   %s\n", run.FilterText)
	fmt.Fprintf(w, "selected: %d\n", run.Selected)
	if run.Selected == 0 {
		return
	}
	fmt.Fprintln(w, "by cause:")
	for _, c := range run.Causes() {
		fmt.Fprintf(w, "  %5d  %s\n", c.Count, c.Cause)
	}
	jobs := run.Jobs
	if show >= 0 && len(jobs) > show {
		jobs = jobs[:show]
	}
	if len(jobs) > 0 {
		fmt.Fprintln(w, "jobs:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, j := range jobs {
			what := j.Key
			if what == "" {
				what = j.TaskID
			}
			target := ""
			if j.NewQueue != "" {
				target = "-> " + strings.TrimPrefix(j.NewQueue, prefix)
			}
			if j.NewTaskID != "" && j.NewTaskID != j.TaskID {
				target += " " + j.NewTaskID
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", j.Outcome, strings.TrimPrefix(j.Queue, prefix), what, target, j.Note)
		}
		_ = tw.Flush()
		if len(jobs) < len(run.Jobs) {
			fmt.Fprintf(w, "  ... and %d more (enqueue redrive history %s)\n", len(run.Jobs)-len(jobs), run.ID)
		}
	}
	fmt.Fprintln(w, "outcomes:")
	for _, c := range run.OutcomeCounts() {
		fmt.Fprintf(w, "  %5d  %s\n", c.Count, c.Cause)
	}
	switch {
	case run.Err != "":
		fmt.Fprintf(w, "stopped: %s (run the same re-drive again to finish)\n", run.Err)
	case run.DryRun:
		fmt.Fprintln(w, "dry run: nothing was moved; run it again without --dry-run to move them")
	}
}

func (a *app) redriveHistory(ctx context.Context, g *globals, args []string) int {
	fs := a.newFlagSet(g, "redrive history", "redrive history [RUN_ID] [--limit N] [--json]",
		"Lists the recorded re-drives, newest first; with a RUN_ID, that run and every job of it.\n")
	var (
		limit  = fs.Int("limit", 20, "list at most `N` runs (0: all kept)")
		asJSON = fs.Bool("json", false, "print JSON (lines of runs; or the run, then its jobs)")
	)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		fmt.Fprintln(a.stderr, "enqueue redrive history: want at most one RUN_ID")
		return exitError
	}
	s, err := a.connect(g)
	if err != nil {
		return a.fail(err)
	}
	r, closeAll := s.redriver(a.now)
	defer closeAll()
	enc := json.NewEncoder(a.stdout)
	if len(pos) == 1 {
		run, err := r.GetRun(ctx, pos[0])
		if err != nil {
			return a.fail(err)
		}
		if *asJSON {
			if err := enc.Encode(run); err != nil {
				return a.fail(err)
			}
			for _, j := range run.Jobs {
				if err := enc.Encode(j); err != nil {
					return a.fail(err)
				}
			}
			return exitOK
		}
		printRun(a.stdout, run, -1, s.prefix)
		return exitOK
	}
	runs, err := r.History(ctx, *limit)
	if err != nil {
		return a.fail(err)
	}
	if *asJSON {
		for _, run := range runs {
			if err := enc.Encode(run); err != nil {
				return a.fail(err)
			}
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED\tWHO\tDRY RUN\tSELECTED\tOUTCOMES\tSTATE\tFILTER")
	for _, run := range runs {
		var outs []string
		for _, c := range run.OutcomeCounts() {
			outs = append(outs, fmt.Sprintf("%d %s", c.Count, c.Cause))
		}
		dry := "no"
		if run.DryRun {
			dry = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", run.ID, run.StartedAt.Format(time.RFC3339), run.Who, dry, run.Selected,
			dash(strings.Join(outs, ", ")), run.State, run.FilterText)
	}
	if err := tw.Flush(); err != nil {
		return a.fail(err)
	}
	return exitOK
}
