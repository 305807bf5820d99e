// Package schedule enqueues the nightly batches of config.Schedule from
// inside the worker fleet: at each cron occurrence of a batch, exactly one
// worker reads the day's job file and enqueues it with jobfile.Enqueue,
// under a batch ID made from the batch's name and the day.
//
// asynq's own Scheduler enqueues on every instance that runs it, so a
// fleet of N workers would enqueue each occurrence N times. Here every
// worker runs the same loop and, for each due occurrence, races the others
// to claim it in Redis:
//
//   - The claim is SET NX with a lease (schedule.lease), renewed every
//     third of the lease while the run goes on. The winner records the run
//     (started, finished, counts, file, outcome) and, when the file has
//     been enqueued (or found missing), sets a separate "done" marker that
//     lives for schedule.history. An occurrence with a done marker is
//     never claimed again.
//   - A worker that dies mid-run stops renewing; once its lease expires
//     another worker claims the occurrence (attempt 2) and runs the whole
//     file again. That is safe because a job's task ID derives from its
//     natural key and body: the jobs already enqueued come back as
//     duplicates, not second copies.
//   - A worker that starts after the fleet was down runs each batch's
//     latest missed occurrence if it is at most schedule.catch_up old, and
//     never older ones.
//
// Runs lists the recorded runs of a batch, for the CLI and operators.
package schedule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/jobfile"
	"github.com/gatewayq/gatewayq/tasks"
)

// Options are what a Scheduler needs.
type Options struct {
	// Config is the schedule section; New validates it.
	Config config.Schedule
	// Redis holds the claims, done markers and run records. Required.
	Redis redis.UniversalClient
	// KeyPrefix is redis.key_prefix; every worker of the fleet must use
	// the same. Required.
	KeyPrefix string
	// Enqueuer puts the jobs on the queues. Required.
	Enqueuer *tasks.Enqueuer
	// Clock reads the cron occurrences. Zero value nil: the system clock.
	Clock Clock
	// Logger gets a line per run. Zero value nil: slog.Default().
	Logger *slog.Logger
	// Metrics records runs. Zero value nil: none.
	Metrics *Metrics
	// Owner names this worker in run records. Zero value "":
	// host:pid:random.
	Owner string
	// Open opens a job file; reading it should end with an error once ctx
	// ends (the run is stopped), though os.Open's files need not, as
	// they never block for long. A missing file must give an error
	// wrapping fs.ErrNotExist. Zero value nil: os.Open.
	Open func(ctx context.Context, path string) (io.ReadCloser, error)
	// Concurrency is jobfile's: jobs validated and enqueued at once.
	// Zero value: jobfile.DefaultConcurrency.
	Concurrency int
	// Recorder keeps each run's batch membership, so that a scheduled
	// batch has its status and morning report like any bulk enqueue
	// (*batch.Store). Zero value nil: not recorded.
	Recorder jobfile.Recorder
}

// Scheduler runs the scheduled batches. Run it on every worker; it is
// safe for concurrent use.
type Scheduler struct {
	store       *store
	enq         *tasks.Enqueuer
	batches     []*batch
	catchUp     time.Duration
	lease       time.Duration
	clock       Clock
	log         *slog.Logger
	metrics     *Metrics
	owner       string
	open        func(context.Context, string) (io.ReadCloser, error)
	concurrency int
	recorder    jobfile.Recorder

	mu sync.Mutex
	// finished holds, per batch, the latest occurrence known to be done,
	// so an idle poll costs no Redis round trip.
	finished map[string]time.Time
}

// New returns a Scheduler of the batches in o.Config. It connects to
// nothing until Run or RunDue.
func New(o Options) (*Scheduler, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	switch {
	case o.Redis == nil:
		return nil, errors.New("schedule: no Redis client")
	case o.KeyPrefix == "":
		return nil, errors.New("schedule: no key prefix")
	case o.Enqueuer == nil:
		return nil, errors.New("schedule: no enqueuer")
	}
	s := &Scheduler{
		store:       &store{rdb: o.Redis, prefix: o.KeyPrefix, lease: o.Config.Lease, history: o.Config.History},
		enq:         o.Enqueuer,
		catchUp:     o.Config.CatchUp,
		lease:       o.Config.Lease,
		clock:       o.Clock,
		log:         o.Logger,
		metrics:     o.Metrics,
		owner:       o.Owner,
		open:        o.Open,
		concurrency: o.Concurrency,
		recorder:    o.Recorder,
		finished:    map[string]time.Time{},
	}
	for _, cb := range o.Config.Batches {
		b, err := newBatch(cb)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: %w", cb.Name, err) // Validate caught it; kept for safety
		}
		s.batches = append(s.batches, b)
	}
	if s.clock == nil {
		s.clock = systemClock{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.owner == "" {
		host, _ := os.Hostname()
		s.owner = host + ":" + strconv.Itoa(os.Getpid()) + ":" + randomHex(3)
	}
	if s.open == nil {
		s.open = func(_ context.Context, p string) (io.ReadCloser, error) { return os.Open(p) }
	}
	return s, nil
}

// Owner is the name this scheduler gives itself in run records.
func (s *Scheduler) Owner() string { return s.owner }

// Run runs the batches' occurrences as they fall due until ctx ends. It
// checks again every half lease between occurrences, to take over a run
// whose worker died. A run in progress when ctx ends is stopped and its
// claim released, so another worker takes over at once.
func (s *Scheduler) Run(ctx context.Context) {
	poll := s.lease / 2
	for {
		if _, err := s.RunDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduled batches: cannot reach Redis; trying again", "err", err, "in", poll)
		}
		if ctx.Err() != nil {
			return
		}
		now := s.clock.Now()
		wait := poll
		for _, b := range s.batches {
			if n := b.next(now); !n.IsZero() && n.Sub(now) < wait {
				wait = max(n.Sub(now), 0)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(wait):
		}
	}
}

// RunDue runs, one after the other, each batch's due occurrence (the
// latest at or before the Clock's now, at most catch_up old) that is not
// done and that this scheduler manages to claim, and returns the runs it
// made. Occurrences done or held by another worker are skipped. The error
// joins the batches whose claim could not be tried (Redis unreachable); a
// run that fails is a Run with OutcomeFailed, not an error.
func (s *Scheduler) RunDue(ctx context.Context) ([]Run, error) {
	now := s.clock.Now()
	var runs []Run
	var errs []error
	for _, b := range s.batches {
		if ctx.Err() != nil {
			break
		}
		at, ok := b.latest(now, s.catchUp)
		if !ok || s.knownDone(b.Name, at) {
			continue
		}
		r, err := s.runOccurrence(ctx, b, at)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r != nil {
			runs = append(runs, *r)
		}
	}
	return runs, errors.Join(errs...)
}

func (s *Scheduler) knownDone(name string, at time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.finished[name].Equal(at)
}

func (s *Scheduler) markDone(name string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at.After(s.finished[name]) {
		s.finished[name] = at
	}
}

// runOccurrence claims and runs one occurrence; nil when another worker
// has it or it is done.
func (s *Scheduler) runOccurrence(ctx context.Context, b *batch, at time.Time) (*Run, error) {
	token := s.owner + "/" + randomHex(4)
	res, err := s.store.claim(ctx, b.Name, at, token)
	if err != nil {
		return nil, err
	}
	switch res {
	case claimDone:
		s.markDone(b.Name, at)
		return nil, nil
	case claimHeld:
		return nil, nil
	}
	r := &Run{
		Name: b.Name, Occurrence: at, Batch: b.batchID(at), File: b.Path(at), Queue: b.QueueName(),
		Owner: s.owner, Attempt: int(res), Outcome: OutcomeRunning, Started: s.clock.Now(),
	}
	log := s.log.With("schedule", r.Name, "occurrence", r.Occurrence.Format(time.RFC3339), "batch", r.Batch, "attempt", r.Attempt)
	if r.Attempt > 1 {
		log.Info("scheduled batch: taking over an occurrence an earlier worker did not finish; jobs it enqueued count as duplicates", "file", r.File)
	} else {
		log.Info("scheduled batch: starting", "file", r.File)
	}
	if err := s.store.started(ctx, r); err != nil {
		// The claim is what keeps the fleet from running it twice; the
		// record is for people, so a failure to write it stops nothing.
		log.Warn("scheduled batch: cannot record the start", "err", err)
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		s.keepClaim(runCtx, cancel, b.Name, at, token, log)
	}()
	s.enqueueFile(runCtx, ctx, b, r)
	cancel(nil)
	<-renewed
	r.Finished = s.clock.Now()

	if r.Outcome != OutcomeLost {
		// Recorded even when ctx has ended: a stopping worker releases its
		// claim so another takes over without waiting for the lease.
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, err := s.store.finish(fctx, r, token, r.Outcome != OutcomeFailed)
		fcancel()
		if err != nil {
			log.Error("scheduled batch: cannot record the end; the claim expires after the lease and the file is run again (duplicates are not enqueued twice)", "err", err)
		}
	}
	if r.Outcome.finished() {
		s.markDone(b.Name, at)
	}
	s.metrics.record(r)
	args := []any{"outcome", r.Outcome, "file", r.File, "lines", r.Lines, "enqueued", r.Enqueued, "duplicates", r.Duplicates, "rejected", r.Rejected}
	switch r.Outcome {
	case OutcomeDone:
		log.Info("scheduled batch: done", args...)
	case OutcomeMissing:
		log.Error("scheduled batch: job file missing; nothing enqueued, not retried", args...)
	case OutcomeRejected:
		log.Warn("scheduled batch: done, with rejected lines", append(args, "first_errors", r.Errors)...)
	case OutcomeFailed:
		log.Error("scheduled batch: failed; another attempt follows once the claim's lease expires", append(args, "err", r.Error, "retry_after", s.lease)...)
	default:
		log.Warn("scheduled batch: "+string(r.Outcome), append(args, "err", r.Error)...)
	}
	return r, nil
}

// enqueueFile runs the occurrence's file through jobfile and sets r's
// counts and outcome. runCtx ends the run; parent tells a shutdown from a
// lost claim.
func (s *Scheduler) enqueueFile(runCtx, parent context.Context, b *batch, r *Run) {
	f, err := s.open(runCtx, r.File)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			r.Outcome, r.Error = OutcomeMissing, err.Error()
		} else {
			r.Outcome, r.Error = OutcomeFailed, err.Error()
		}
		return
	}
	defer f.Close()
	rep, err := jobfile.Enqueue(runCtx, f, s.enq, jobfile.EnqueueOptions{
		Queue: r.Queue, Batch: r.Batch, Concurrency: s.concurrency, MaxErrors: maxRunErrors, Recorder: s.recorder,
	})
	r.Lines, r.Enqueued, r.Duplicates, r.Rejected = rep.Lines, rep.Enqueued, rep.Duplicates, rep.Rejected
	for _, e := range rep.Errors {
		r.Errors = append(r.Errors, e.Error())
	}
	switch {
	case err == nil && rep.Rejected > 0:
		r.Outcome = OutcomeRejected
	case err == nil:
		r.Outcome = OutcomeDone
	case errors.Is(context.Cause(runCtx), errLostClaim):
		r.Outcome, r.Error = OutcomeLost, errLostClaim.Error()
	case parent.Err() != nil:
		r.Outcome, r.Error = OutcomeStopped, "the worker stopped: "+err.Error()
	default:
		r.Outcome, r.Error = OutcomeFailed, err.Error()
	}
}

// keepClaim renews the claim every third of the lease until ctx ends, and
// stops the run if another worker has taken the claim over. Renewal runs
// on real time: the lease is a Redis TTL.
func (s *Scheduler) keepClaim(ctx context.Context, stop context.CancelCauseFunc, name string, at time.Time, token string, log *slog.Logger) {
	t := time.NewTicker(s.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := s.store.renew(ctx, name, at, token)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// The claim holds until its lease runs out; Redis may be back
			// before then (and if not, the enqueue fails too).
			log.Warn("scheduled batch: cannot renew the claim", "err", err)
		case !ok:
			stop(errLostClaim)
			return
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
