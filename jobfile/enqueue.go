package jobfile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/tasks"
)

// Defaults of EnqueueOptions.
const (
	DefaultConcurrency      = 16
	DefaultMaxErrors        = 1000
	DefaultProgressInterval = time.Second
)

// BulkGCPercent is the garbage collector target (as GOGC) for a process
// whose main work is a bulk enqueue (cmd/enqueue bulk). Each line is
// decoded into short-lived garbage while little stays live (the heap is
// flat in the file's size), so at Go's default of 100 the collector ran
// about a fifth of the time; at 400 a 100,000-line file took a third less
// time for about 20 MB more heap. A library cannot know it has the process
// to itself, so Enqueue leaves the setting to its caller.
const BulkGCPercent = 400

// EnqueueOptions shape a bulk enqueue. The zero value enqueues on
// tasks.QueueBulk under a new batch ID.
type EnqueueOptions struct {
	// Queue is the logical queue (tasks.QueueRealtime, QueueBulk or
	// QueueRedrive). Zero value "": tasks.QueueBulk.
	Queue string
	// Batch is stamped on every job, replacing any batch a line names, so
	// the night's run can be followed and re-driven as one. Up to 64
	// characters of A-Z a-z 0-9 . _ : -. Zero value "": NewBatchID.
	Batch string
	// DryRun validates every line and enqueues nothing; the enqueuer may
	// then be nil. Report.Valid counts the lines that would be enqueued.
	DryRun bool
	// StartLine skips the job lines before it (they are still read, not
	// parsed): what a run stopped by a Redis error asks to resume from.
	// Zero value: from the first line.
	StartLine int
	// Concurrency is how many goroutines validate and enqueue at once.
	// Validation against IR's XSD costs CPU and each enqueue a Redis round
	// trip, so a few goroutines per core keep both busy. Zero value:
	// DefaultConcurrency.
	Concurrency int
	// MaxErrors is how many rejected lines Report.Errors keeps (all are
	// counted). Zero value: DefaultMaxErrors; negative: none kept.
	MaxErrors int
	// MaxLineBytes is the longest line accepted. Zero value:
	// DefaultMaxLineBytes.
	MaxLineBytes int
	// TotalBytes is the input's size, for Progress.TotalBytes. Zero value:
	// the size of r when it is a regular file (it has Stat), else unknown.
	TotalBytes int64
	// TaskOptions are asynq options given with every job (asynq.ProcessAt
	// to hold a batch until the night, say); they override the enqueuer's.
	TaskOptions []asynq.Option
	// OnProgress, when set, is called every ProgressInterval and once at
	// the end, from one goroutine at a time. It must not block for long.
	OnProgress func(Progress)
	// ProgressInterval is how often OnProgress is called. Zero value:
	// DefaultProgressInterval.
	ProgressInterval time.Duration
	// Now is the clock for Elapsed. Zero value: time.Now.
	Now func() time.Time
	// Recorder, when set, keeps the batch's membership (every job put on
	// the queue or found already there, and every refused line, with its
	// line number) for `enqueue batch status` and the morning report: a
	// *batch.Store. Lines are recorded a few hundred at a time, and a line
	// counts as done only once recorded, so a run stopped part way resumes
	// at or before the first line not recorded. Ignored by a dry run. Zero
	// value nil: nothing is recorded.
	Recorder Recorder
}

// Recorder keeps a batch's members; *batch.Store is one. Record must be
// safe for concurrent use, and recording a member twice must be harmless.
type Recorder interface {
	Record(ctx context.Context, batch string, members []batch.Member) error
}

var _ Recorder = (*batch.Store)(nil)

// recordEvery is how many lines go to the Recorder in one call (one Redis
// round trip for a *batch.Store).
const recordEvery = 256

// Progress is a snapshot of a running bulk enqueue.
type Progress struct {
	// Lines is how many job lines (not blank, not comments) were read.
	Lines      int
	Enqueued   int
	Duplicates int
	Rejected   int
	// BytesRead of TotalBytes; TotalBytes is 0 when unknown (a pipe).
	BytesRead  int64
	TotalBytes int64
	Elapsed    time.Duration
}

// Report is what a bulk enqueue did.
type Report struct {
	Batch string
	// Lines is how many job lines (not blank, not comments, not skipped
	// by StartLine) were read. When the run completes, Lines = Valid +
	// Rejected, and without DryRun Valid = Enqueued + Duplicates.
	Lines int
	// Valid counts the lines that were valid jobs.
	Valid int
	// Enqueued counts the jobs put on the queue by this run.
	Enqueued int
	// Duplicates counts the valid jobs whose task ID was already queued,
	// running or retained (an earlier run of the same file, say): not
	// enqueued again, and not an error.
	Duplicates int
	// Rejected counts the lines that are not valid jobs.
	Rejected int
	// Errors holds the first MaxErrors rejected lines, in line order.
	Errors []*LineError
	// LastLine is the number of the last physical line read.
	LastLine  int
	BytesRead int64
	Elapsed   time.Duration
}

// JobsPerSecond is the rate at which lines were handled.
func (r Report) JobsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Lines) / r.Elapsed.Seconds()
}

// StoppedError ends a bulk enqueue that could not finish: Redis failed
// (or the context ended) part way. Every line before ResumeLine is done
// (enqueued, a duplicate, or rejected); some after it may be too. Task IDs
// are deterministic, so running the file again, whole or from ResumeLine,
// enqueues nothing twice.
type StoppedError struct {
	// Enqueued is how many jobs this run did enqueue before it stopped.
	Enqueued int
	// ResumeLine is the first line not known to be done.
	ResumeLine int
	Err        error
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("stopped after enqueuing %d jobs: %v; resume from line %d (re-running the file is safe: task IDs are deterministic, so jobs already queued are reported as duplicates, not enqueued twice)", e.Enqueued, e.Err, e.ResumeLine)
}

func (e *StoppedError) Unwrap() error { return e.Err }

var batchIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// NewBatchID returns a batch ID for a run started at t, e.g.
// "b-20261125T023000Z-3f9a1c": sortable by time, and unique with the
// random suffix.
func NewBatchID(t time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "b-" + t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// item is one job line on its way to a worker goroutine.
type item struct {
	number int
	data   []byte
}

// Enqueue streams the job lines of r onto the queue through enq. Valid
// lines are enqueued by Concurrency goroutines, in constant memory;
// invalid lines are counted and the first MaxErrors kept in the Report,
// without stopping the run. A job already queued (same task ID) counts as
// a duplicate.
//
// The error is nil when every line was read and handled, even if some were
// rejected: check Report.Rejected. It is a *StoppedError when Redis fails
// or ctx ends part way (the Report then says what was done), and a plain
// error for bad options or an I/O error reading r.
func Enqueue(ctx context.Context, r io.Reader, enq *tasks.Enqueuer, opts EnqueueOptions) (Report, error) {
	if err := opts.withDefaults(r); err != nil {
		return Report{}, err
	}
	if enq == nil && !opts.DryRun {
		return Report{}, errors.New("jobfile: no enqueuer (nil is allowed only for a dry run)")
	}
	start := opts.Now()
	run := &run{opts: opts, enq: enq, inFlight: map[int]struct{}{}}
	if !opts.DryRun {
		// Files are marked queued in the filing ledger a few hundred at a
		// time, after their jobs are on the queue: a round trip a job less.
		run.marker = enq.BatchMarker()
	}
	run.report.Batch = opts.Batch

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	items := make(chan item, opts.Concurrency)
	var wg sync.WaitGroup
	for range opts.Concurrency {
		wg.Go(func() {
			for it := range items {
				run.handle(ctx, cancel, it)
			}
		})
	}

	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		if opts.OnProgress == nil {
			return
		}
		t := time.NewTicker(opts.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				opts.OnProgress(run.progress(opts.Now().Sub(start)))
			}
		}
	}()

	sc := newScanner(r, opts.MaxLineBytes)
	finished, ioErr := run.read(ctx, sc, items)
	close(items)
	wg.Wait()
	if run.marker != nil {
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		run.flushMarks(fctx, run.takeMarks())
		fcancel()
	}
	if rest := run.takeUnrecorded(); len(rest) > 0 {
		// The lines left are enqueued: record them even when the run was
		// stopped, so that they count as done.
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		run.record(fctx, cancel, rest)
		fcancel()
	}
	close(stopProgress)
	<-progressDone

	rep := run.finish(sc, opts.Now().Sub(start))
	if opts.OnProgress != nil {
		opts.OnProgress(run.progress(rep.Elapsed))
	}
	// A context that ends after the last line was handled stops nothing.
	if cause := context.Cause(ctx); cause != nil && (!finished || run.unfinished()) {
		return rep, &StoppedError{Enqueued: rep.Enqueued, ResumeLine: run.resumeLine(), Err: cause}
	}
	if ioErr != nil {
		return rep, fmt.Errorf("reading line %d: %w (lines before it were handled; resume from line %d)", rep.LastLine+1, ioErr, run.resumeLine())
	}
	return rep, nil
}

func (o *EnqueueOptions) withDefaults(r io.Reader) error {
	if o.Queue == "" {
		o.Queue = tasks.QueueBulk
	}
	if !slices.Contains(tasks.Queues, o.Queue) {
		return fmt.Errorf("jobfile: unknown queue %q (want realtime, bulk or redrive)", o.Queue)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Batch == "" {
		o.Batch = NewBatchID(o.Now())
	} else if !batchIDPattern.MatchString(o.Batch) {
		return fmt.Errorf("jobfile: batch ID %q: want 1-64 characters of A-Z a-z 0-9 . _ : -", o.Batch)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxErrors == 0 {
		o.MaxErrors = DefaultMaxErrors
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.TotalBytes == 0 {
		if st, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
			if fi, err := st.Stat(); err == nil && fi.Mode().IsRegular() {
				o.TotalBytes = fi.Size()
			}
		}
	}
	return nil
}

// run is the shared state of one Enqueue call.
type run struct {
	opts   EnqueueOptions
	enq    *tasks.Enqueuer
	marker tasks.QueueMarks // nil: each enqueue marks its own File

	lines, valid, enqueued, duplicates, rejected atomic.Int64
	bytesRead                                    atomic.Int64

	mu sync.Mutex
	// inFlight holds the lines handed to the workers and not yet done; it
	// never holds more than Concurrency*2+1 lines, plus recordEvery waiting
	// to be recorded. The smallest of them (or of failed) is where a
	// stopped run resumes.
	inFlight map[int]struct{}
	// unrecorded are members waiting for the Recorder.
	unrecorded []batch.Member
	// marks are Files enqueued and not yet marked queued in the ledger.
	marks    []ledger.Mark
	failed   []int // lines whose enqueue failed on a Redis error
	nextLine int   // the line after the last one read
	errs     []*LineError
	report   Report
}

// read feeds the workers until the input ends (finished), fails (the I/O
// error), or ctx ends (neither).
func (r *run) read(ctx context.Context, sc *scanner, items chan<- item) (finished bool, err error) {
	for {
		raw, err := sc.next()
		r.bytesRead.Store(sc.bytesRead)
		if err != nil {
			r.mu.Lock()
			r.nextLine = sc.number + 1
			r.mu.Unlock()
			if errors.Is(err, io.EOF) {
				return true, nil
			}
			return false, err
		}
		r.mu.Lock()
		r.nextLine = raw.number + 1
		r.mu.Unlock()
		if raw.skip || raw.number < r.opts.StartLine {
			continue
		}
		r.lines.Add(1)
		if raw.tooLong {
			le := parseLine(raw).Err.(*LineError)
			r.reject(le)
			r.keep(ctx, nil, raw.number, refused(le))
			continue
		}
		// The scanner reuses its buffer; the worker gets its own copy.
		it := item{number: raw.number, data: append([]byte(nil), raw.data...)}
		r.mu.Lock()
		r.inFlight[it.number] = struct{}{}
		r.mu.Unlock()
		select {
		case items <- it:
		case <-ctx.Done():
			return false, nil // the cause is reported by Enqueue
		}
	}
}

// handle validates and enqueues one line.
func (r *run) handle(ctx context.Context, stop context.CancelCauseFunc, it item) {
	if ctx.Err() != nil {
		return // stopping: the line stays in flight, so the run resumes at or before it
	}
	j, err := tasks.Decode(it.data)
	if err == nil {
		j.Batch = r.opts.Batch
		if r.opts.DryRun {
			err = dryRun(j)
		} else {
			var (
				res  tasks.Enqueued
				mark *ledger.Mark
			)
			// Enqueue normalises and validates (tasks.Prepare), so each line
			// is validated once, here, in parallel.
			if r.marker != nil {
				res, mark, err = r.enq.EnqueueUnmarked(ctx, j, r.opts.Queue, r.opts.TaskOptions...)
			} else {
				res, err = r.enq.Enqueue(ctx, j, r.opts.Queue, r.opts.TaskOptions...)
			}
			if err == nil {
				if mark != nil {
					r.mark(ctx, *mark)
				}
				r.valid.Add(1)
				if res.Duplicate {
					r.duplicates.Add(1)
				} else {
					r.enqueued.Add(1)
				}
				r.keep(ctx, stop, it.number, batch.MemberOf(it.number, j, res))
				return
			}
		}
	}
	switch {
	case err == nil: // dry run, valid
		r.valid.Add(1)
		r.done(it.number)
	case errors.Is(err, tasks.ErrInvalidJob):
		le := &LineError{Line: it.number, Err: err}
		r.reject(le)
		if r.opts.DryRun {
			r.done(it.number)
		} else {
			r.keep(ctx, stop, it.number, refused(le))
		}
	default:
		// Redis (or the context) failed: stop the run. The line stays
		// undone, so the resume line is at or before it.
		r.mu.Lock()
		r.failed = append(r.failed, it.number)
		r.mu.Unlock()
		if ctx.Err() == nil {
			stop(fmt.Errorf("line %d: %w", it.number, err))
		}
	}
}

func dryRun(j *tasks.Job) error {
	if err := j.Normalize(); err != nil {
		return err
	}
	return j.Validate()
}

// refused is the batch member of a line refused at enqueue.
func refused(e *LineError) batch.Member {
	return batch.Member{Line: e.Line, Refused: strings.ReplaceAll(e.Err.Error(), "\n", "; ")}
}

// keep hands a handled line to the Recorder; without one, the line is
// done. A line is done once recorded.
func (r *run) keep(ctx context.Context, stop context.CancelCauseFunc, line int, m batch.Member) {
	if r.opts.Recorder == nil || r.opts.DryRun {
		r.done(line)
		return
	}
	r.mu.Lock()
	r.unrecorded = append(r.unrecorded, m)
	var full []batch.Member
	// The reader (stop nil) leaves a full buffer to the next worker.
	if len(r.unrecorded) >= recordEvery && stop != nil {
		full, r.unrecorded = r.unrecorded, nil
	}
	r.mu.Unlock()
	if full != nil {
		r.record(ctx, stop, full)
	}
}

// mark queues a ledger mark, writing a batch of them when it is full.
func (r *run) mark(ctx context.Context, m ledger.Mark) {
	r.mu.Lock()
	r.marks = append(r.marks, m)
	var full []ledger.Mark
	if len(r.marks) >= recordEvery {
		full, r.marks = r.marks, nil
	}
	r.mu.Unlock()
	r.flushMarks(ctx, full)
}

// takeMarks takes the marks still waiting.
func (r *run) takeMarks() []ledger.Mark {
	r.mu.Lock()
	defer r.mu.Unlock()
	ms := r.marks
	r.marks = nil
	return ms
}

// flushMarks records marks in the ledger. Like the mark Enqueuer.Enqueue
// makes, it is bookkeeping: a failure loses the marks (each entry begins
// when a worker sends its return) and never fails the run.
func (r *run) flushMarks(ctx context.Context, ms []ledger.Mark) {
	if len(ms) > 0 {
		_, _ = r.marker.MarkQueued(ctx, ms)
	}
}

func (r *run) takeUnrecorded() []batch.Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	rest := r.unrecorded
	r.unrecorded = nil
	return rest
}

// record writes members to the Recorder; their lines are done when it
// succeeds. A failure stops the run (the lines stay undone, so the resume
// line is at or before them).
func (r *run) record(ctx context.Context, stop context.CancelCauseFunc, ms []batch.Member) {
	err := r.opts.Recorder.Record(ctx, r.opts.Batch, ms)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range ms {
		if err != nil {
			if _, ok := r.inFlight[m.Line]; ok {
				r.failed = append(r.failed, m.Line)
			}
			continue
		}
		delete(r.inFlight, m.Line)
	}
	if err != nil {
		stop(fmt.Errorf("recording batch %s: %w", r.opts.Batch, err))
	}
}

func (r *run) done(line int) {
	r.mu.Lock()
	delete(r.inFlight, line)
	r.mu.Unlock()
}

func (r *run) reject(e *LineError) {
	r.rejected.Add(1)
	if r.opts.MaxErrors < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Workers finish out of order: keep the lowest-numbered lines, which
	// are the first MaxErrors of the file once the run ends.
	i, _ := slices.BinarySearchFunc(r.errs, e.Line, func(a *LineError, n int) int { return a.Line - n })
	if i >= r.opts.MaxErrors {
		return
	}
	r.errs = slices.Insert(r.errs, i, e)
	if len(r.errs) > r.opts.MaxErrors {
		r.errs = r.errs[:r.opts.MaxErrors]
	}
}

// unfinished reports whether some line handed to the workers is not done.
func (r *run) unfinished() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inFlight) > 0 || len(r.failed) > 0
}

// resumeLine is the first line not known to be done.
func (r *run) resumeLine() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	resume := r.nextLine
	for l := range r.inFlight {
		resume = min(resume, l)
	}
	for _, l := range r.failed {
		resume = min(resume, l)
	}
	return max(resume, 1)
}

func (r *run) progress(elapsed time.Duration) Progress {
	return Progress{
		Lines:      int(r.lines.Load()),
		Enqueued:   int(r.enqueued.Load()),
		Duplicates: int(r.duplicates.Load()),
		Rejected:   int(r.rejected.Load()),
		BytesRead:  r.bytesRead.Load(),
		TotalBytes: r.opts.TotalBytes,
		Elapsed:    elapsed,
	}
}

func (r *run) finish(sc *scanner, elapsed time.Duration) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.report
	rep.Lines = int(r.lines.Load())
	rep.Valid = int(r.valid.Load())
	rep.Enqueued = int(r.enqueued.Load())
	rep.Duplicates = int(r.duplicates.Load())
	rep.Rejected = int(r.rejected.Load())
	rep.Errors = r.errs
	rep.LastLine = sc.number
	rep.BytesRead = sc.bytesRead
	rep.Elapsed = elapsed
	return rep
}
