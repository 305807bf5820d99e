package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/gatewayq/gatewayq/internal/termui"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gatewayq/gatewayq/jobfile"
	"github.com/gatewayq/gatewayq/tasks"
)

const bulkHelp = `Streams a JSON-lines file of jobs (one job a line, as "submit --file"
takes; blank lines and lines starting with # are skipped) onto a queue. The
file is never loaded whole. Each job is stamped with the batch ID.

Bad lines are reported with their line numbers and do not stop the run: the
good lines are enqueued, and the exit code is 2. Jobs already queued (same
task ID, e.g. from an earlier run of the same file) are counted as
duplicates, not enqueued twice, so re-running a file is safe. If Redis fails
part way, the error says which line to resume from (--from-line).

The batch's jobs and refused lines are recorded, by line number, for
"enqueue batch status ID" and the morning report ("enqueue batch report ID").

FILE "-" reads standard input.
`

func (a *app) bulk(ctx context.Context, g *globals, args []string) int {
	fs := a.newFlagSet(g, "bulk", "bulk FILE.jsonl [flags]", bulkHelp)
	var (
		queue       = fs.String("queue", tasks.QueueBulk, "`queue`: realtime, bulk or redrive")
		batch       = fs.String("batch", "", "batch `ID` stamped on every job (default b-<UTC time>-<random>)")
		dryRun      = fs.Bool("dry-run", false, "validate every line, enqueue nothing")
		fromLine    = fs.Int("from-line", 0, "skip the lines before `N` (resume a stopped run)")
		concurrency = fs.Int("concurrency", jobfile.DefaultConcurrency, "`jobs` validated and enqueued at once")
		show        = fs.Int("show", 20, "print the first `N` rejected lines")
	)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(a.stderr, "enqueue bulk: want one FILE (or - for standard input)")
		fs.Usage()
		return exitError
	}
	if err := tasks.CheckQueue(*queue); err != nil {
		return a.fail(err)
	}
	path := pos[0]

	opts := jobfile.EnqueueOptions{
		Queue:       *queue,
		Batch:       *batch,
		DryRun:      *dryRun,
		StartLine:   *fromLine,
		Concurrency: *concurrency,
		Now:         a.now,
	}
	if opts.Batch == "" {
		// Made here rather than by jobfile so the resume hint can name it.
		opts.Batch = jobfile.NewBatchID(a.now())
	}
	var enq *tasks.Enqueuer
	if !*dryRun {
		s, err := a.connect(g)
		if err != nil {
			return a.fail(err)
		}
		e, client := s.enqueuer()
		defer client.Close()
		enq = e
		rdb := s.rdb()
		defer rdb.Close()
		opts.Recorder = s.batches(rdb, a.now)
	}

	var in io.Reader = a.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return a.fail(err)
		}
		defer f.Close()
		in = f
	}

	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(jobfile.BulkGCPercent))
	}
	bar := newProgressPrinter(a.stderr, termui.IsTerminal(a.stderr))
	opts.OnProgress = bar.print
	opts.ProgressInterval = bar.interval
	rep, err := jobfile.Enqueue(ctx, in, enq, opts)
	bar.finish()

	a.summary(rep, *dryRun, *show)
	if err != nil {
		var se *jobfile.StoppedError
		if errors.As(err, &se) {
			fmt.Fprintf(a.stderr, "enqueue: %v\nto resume: enqueue bulk %s --batch %s --from-line %d\n", err, path, rep.Batch, se.ResumeLine)
			return exitError
		}
		return a.fail(err)
	}
	if rep.Rejected > 0 {
		return exitRejected
	}
	return exitOK
}

func (a *app) summary(rep jobfile.Report, dryRun bool, show int) {
	w := a.stdout
	fmt.Fprintf(w, "batch:      %s\n", rep.Batch)
	fmt.Fprintf(w, "lines:      %d\n", rep.Lines)
	if dryRun {
		fmt.Fprintf(w, "valid:      %d\n", rep.Valid)
	} else {
		fmt.Fprintf(w, "enqueued:   %d\n", rep.Enqueued)
		fmt.Fprintf(w, "duplicates: %d\n", rep.Duplicates)
	}
	fmt.Fprintf(w, "rejected:   %d\n", rep.Rejected)
	fmt.Fprintf(w, "elapsed:    %s (%.0f jobs/s)\n", rep.Elapsed.Round(time.Millisecond), rep.JobsPerSecond())
	if dryRun {
		fmt.Fprintln(w, "dry run: nothing was enqueued")
	} else {
		fmt.Fprintf(w, "follow it:  enqueue batch status %s\n", rep.Batch)
	}
	if rep.Rejected == 0 || show <= 0 {
		return
	}
	n := min(show, len(rep.Errors))
	fmt.Fprintf(w, "rejected lines (first %d of %d):\n", n, rep.Rejected)
	for _, e := range rep.Errors[:n] {
		fmt.Fprintf(w, "  %v\n", e)
	}
}

// progressPrinter shows a bulk run's progress on stderr: a bar redrawn in
// place on a terminal, a plain line every few seconds otherwise (a log
// file or CI must not fill with carriage returns).
type progressPrinter struct {
	w        io.Writer
	terminal bool
	interval time.Duration
	drawn    bool
}

func newProgressPrinter(w io.Writer, terminal bool) *progressPrinter {
	p := &progressPrinter{w: w, terminal: terminal, interval: 5 * time.Second}
	if terminal {
		p.interval = 200 * time.Millisecond
	}
	return p
}

// print is the OnProgress callback; jobfile calls it from one goroutine at
// a time.
func (p *progressPrinter) print(pr jobfile.Progress) {
	counts := fmt.Sprintf("%d lines, %d enqueued, %d duplicates, %d rejected", pr.Lines, pr.Enqueued, pr.Duplicates, pr.Rejected)
	if secs := pr.Elapsed.Seconds(); secs > 0 {
		counts += fmt.Sprintf(", %.0f/s", float64(pr.Lines)/secs)
	}
	if !p.terminal {
		if pct, ok := percent(pr); ok {
			counts = fmt.Sprintf("%3.0f%% %s", pct, counts)
		}
		fmt.Fprintf(p.w, "progress: %s\n", counts)
		return
	}
	const width = 30
	bar := ""
	if pct, ok := percent(pr); ok {
		done := int(pct / 100 * width)
		bar = fmt.Sprintf("[%s%s] %3.0f%% ", strings.Repeat("#", done), strings.Repeat(".", width-done), pct)
	}
	// \033[K clears what a longer previous line left behind.
	fmt.Fprintf(p.w, "\r%s%s\033[K", bar, counts)
	p.drawn = true
}

// finish ends the bar's line so the summary starts on its own.
func (p *progressPrinter) finish() {
	if p.terminal && p.drawn {
		fmt.Fprintln(p.w)
	}
}

func percent(pr jobfile.Progress) (float64, bool) {
	if pr.TotalBytes <= 0 {
		return 0, false
	}
	return min(100, 100*float64(pr.BytesRead)/float64(pr.TotalBytes)), true
}
