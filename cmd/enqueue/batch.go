package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/internal/termui"
	"github.com/gatewayq/gatewayq/worker"
)

const batchUsage = `Usage: enqueue batch <status|report|list> [flags]

  status ID                      progress and outcome counts of a batch
  report ID [--format csv|json]  one line per job: the morning report
  list                           the most recent batches

Every bulk enqueue records its batch (each job and each refused line, by
line number) for worker.report_retention.
`

// rdb opens a go-redis client on the workers' Redis; close it when done.
func (s *session) rdb() redis.UniversalClient { return worker.NewRedis(s.cfg.Redis) }

// batches returns the batch store under the config's key prefix.
func (s *session) batches(rdb redis.UniversalClient, now func() time.Time) *batch.Store {
	return batch.New(rdb, s.cfg.Redis.KeyPrefix, batch.Options{Retention: s.cfg.Worker.ReportRetention, Now: now})
}

func (a *app) batch(ctx context.Context, g *globals, args []string) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(a.stdout, batchUsage)
		return exitOK
	}
	sub, rest, ok := a.subcommand(g, args)
	if !ok {
		fmt.Fprint(a.stderr, batchUsage)
		return exitError
	}
	switch sub {
	case "status":
		return a.batchStatus(ctx, g, rest)
	case "report":
		return a.batchReport(ctx, g, rest)
	case "list":
		return a.batchList(ctx, g, rest)
	case "help":
		fmt.Fprint(a.stdout, batchUsage)
		return exitOK
	}
	fmt.Fprintf(a.stderr, "enqueue batch: unknown command %q\n\n%s", sub, batchUsage)
	return exitError
}

// subcommand reads the global flags given before a subcommand ("batch
// --redis H status ID") into g, and returns the subcommand and what
// follows it. ok is false when there is none, or the flags before it are
// not global ones (or ask for help).
func (a *app) subcommand(g *globals, args []string) (sub string, rest []string, ok bool) {
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs, a.environ)
	if fs.Parse(args) != nil || fs.NArg() == 0 {
		return "", nil, false
	}
	return fs.Arg(0), fs.Args()[1:], true
}

const batchStatusHelp = `Shows where a batch's jobs stand: still moving (pending, active,
scheduled, retry), filed (the filing ledger says IR holds the return), done
(other operations), rejected by IR, parked, uncertain (may have been filed:
a re-drive reconciles it first), with the failures counted by class.
`

func (a *app) batchStatus(ctx context.Context, g *globals, args []string) int {
	fs := a.newFlagSet(g, "batch status", "batch status ID [--json]", batchStatusHelp)
	asJSON := fs.Bool("json", false, "print the status as JSON (as GET /v1/batches/{id} returns it)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(a.stderr, "enqueue batch status: want one batch ID")
		fs.Usage()
		return exitError
	}
	s, err := a.connect(g)
	if err != nil {
		return a.fail(err)
	}
	rdb := s.rdb()
	defer rdb.Close()
	st, err := s.batches(rdb, a.now).Status(ctx, pos[0])
	if err != nil {
		return a.fail(err)
	}
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return a.fail(err)
		}
		return exitOK
	}
	printBatchStatus(a.stdout, st)
	return exitOK
}

func printBatchStatus(w io.Writer, st batch.Status) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-11s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	line("batch", "%s", st.ID)
	if !st.CreatedAt.IsZero() {
		line("created", "%s", st.CreatedAt.Format(time.RFC3339))
	}
	line("progress", "%s %.1f%% (%d of %d jobs finished)", termui.Bar(st.Finished, st.Jobs, 30), st.Progress, st.Finished, st.Jobs)
	jobs := fmt.Sprintf("%d", st.Jobs)
	if st.Refused > 0 {
		jobs += fmt.Sprintf(" (and %d %s refused at enqueue)", st.Refused, map[bool]string{true: "line", false: "lines"}[st.Refused == 1])
	}
	line("jobs", "%s", jobs)
	line("moving", "%d pending, %d active, %d scheduled, %d retry", st.Pending, st.Active, st.Scheduled, st.Retry)
	line("filed", "%d", st.Filed)
	line("done", "%d", st.Done)
	line("rejected", "%d", st.Rejected)
	line("parked", "%d", st.Parked)
	line("uncertain", "%d", st.Uncertain)
	if st.Unknown > 0 {
		line("unknown", "%d (gone from asynq, unknown to the ledger and the failure index)", st.Unknown)
	}
	if len(st.FailedByClass) > 0 {
		fmt.Fprintln(w, "failed by class:")
		classes := make([]string, 0, len(st.FailedByClass))
		for c := range st.FailedByClass {
			classes = append(classes, c)
		}
		sort.Slice(classes, func(i, j int) bool {
			ci, cj := st.FailedByClass[classes[i]], st.FailedByClass[classes[j]]
			return ci > cj || ci == cj && classes[i] < classes[j]
		})
		for _, c := range classes {
			fmt.Fprintf(w, "  %5d  %s\n", st.FailedByClass[c], c)
		}
		fmt.Fprintf(w, "see them: enqueue failed --batch %s\n", st.ID)
	}
}

const batchReportHelp = `Writes the morning report of a batch: one line per line of the bulk file,
in file order, with the return's natural key, your ref, the task, its
outcome (filed, done, rejected, parked, uncertain, refused at enqueue, or
still pending/active/scheduled/retry), the failure's class, IR's gateway ID
and submission key, IR's status code and message.

--format csv writes RFC 4180 CSV with a header row. --format json writes
JSON lines: one object a line, no enclosing array, so any size streams.
`

func (a *app) batchReport(ctx context.Context, g *globals, args []string) int {
	fs := a.newFlagSet(g, "batch report", "batch report ID [--format csv|json] [--out FILE]", batchReportHelp)
	var (
		format = fs.String("format", batch.FormatCSV, "`format`: csv or json (JSON lines)")
		out    = fs.String("out", "-", "`file` to write (- for standard output)")
	)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(a.stderr, "enqueue batch report: want one batch ID")
		fs.Usage()
		return exitError
	}
	if *format != batch.FormatCSV && *format != batch.FormatJSON {
		return a.fail(fmt.Errorf("unknown --format %q (want csv or json)", *format))
	}
	s, err := a.connect(g)
	if err != nil {
		return a.fail(err)
	}
	rdb := s.rdb()
	defer rdb.Close()

	dst := a.stdout
	var f *os.File
	if *out != "-" {
		if f, err = os.Create(*out); err != nil {
			return a.fail(err)
		}
		dst = f
	}
	w, err := batch.NewWriter(dst, *format)
	if err != nil {
		return a.fail(err)
	}
	n := 0
	err = s.batches(rdb, a.now).Report(ctx, pos[0], func(l batch.Line) error {
		n++
		return w.Write(l)
	})
	err = errors.Join(err, w.Close())
	if f != nil {
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return a.fail(err)
	}
	if f != nil {
		fmt.Fprintf(a.stderr, "%d lines written to %s\n", n, *out)
	}
	return exitOK
}

func (a *app) batchList(ctx context.Context, g *globals, args []string) int {
	fs := a.newFlagSet(g, "batch list", "batch list [--limit N]", "Lists the most recent batches, newest first.\n")
	limit := fs.Int("limit", 20, "show at most `N` batches (0: all kept)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintf(a.stderr, "enqueue batch list: unexpected argument %q\n", pos[0])
		return exitError
	}
	s, err := a.connect(g)
	if err != nil {
		return a.fail(err)
	}
	rdb := s.rdb()
	defer rdb.Close()
	list, err := s.batches(rdb, a.now).List(ctx, *limit)
	if err != nil {
		return a.fail(err)
	}
	for _, b := range list {
		fmt.Fprintf(a.stdout, "%s  %s\n", b.CreatedAt.Format(time.RFC3339), b.ID)
	}
	return exitOK
}
