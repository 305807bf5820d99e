package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/ledger"
)

// Budget is a job's time budget: how long the handler may wait for a
// rate-limit permit in process, how long the gateway call may take, and a
// margin for classification and bookkeeping. The asynq task timeout covers
// their sum, and the worker's ShutdownTimeout must exceed it so a graceful
// stop never abandons a call in flight.
type Budget struct {
	LimiterWait time.Duration // default 5s; longer waits snooze the task
	Call        time.Duration // default 60s, IR's own timeout
	Margin      time.Duration // default 10s
}

func (b Budget) withDefaults() Budget {
	if b.LimiterWait <= 0 {
		b.LimiterWait = 5 * time.Second
	}
	if b.Call <= 0 {
		b.Call = 60 * time.Second
	}
	if b.Margin <= 0 {
		b.Margin = 10 * time.Second
	}
	return b
}

// TaskTimeout is the asynq task timeout that covers the whole budget.
func (b Budget) TaskTimeout() time.Duration {
	b = b.withDefaults()
	return b.LimiterWait + b.Call + b.Margin
}

// EnqueueOptions are the defaults the Enqueuer applies to every task;
// per-call asynq options given to Enqueue override them.
type EnqueueOptions struct {
	Budget Budget
	// MaxRetry is how many real failures a job may have before it is
	// archived (throttling and outages don't count). Zero value: 25; use
	// NoRetry for none.
	MaxRetry int
	// Retention keeps a finished job and its result for look-up. Default 7 days.
	Retention time.Duration
	// QueuePrefix is put before every queue name, so that several
	// environments (or parallel tests) can share one Redis. Workers must
	// use the same prefix (see QueueName).
	QueuePrefix string
	// Ledger, when set, marks each newly enqueued File "queued" in the
	// filing ledger (*ledger.Ledger), so the ledger shows returns waiting
	// as well as sent ones. The mark is bookkeeping: a return already
	// filed, being sent or unresolved keeps its entry, a failed mark does
	// not fail the enqueue, and nothing the worker guarantees depends on
	// it. Nil: entries begin when a worker first sends the return.
	Ledger QueueMarker
}

// QueueMarker records a return as queued; *ledger.Ledger is one.
type QueueMarker interface {
	Queued(ctx context.Context, key, taskID, bodyHash string) (ledger.Entry, error)
}

var _ QueueMarker = (*ledger.Ledger)(nil)

// NoRetry as EnqueueOptions.MaxRetry archives a job at its first real
// failure.
const NoRetry = -1

// RetryBudget is the retry budget of a task asynq says has maxRetry: the
// Enqueuer gives asynq one more than the budget (see Enqueue), so that
// asynq never archives a merely delayed job.
func RetryBudget(maxRetry int) int { return max(0, maxRetry-1) }

// QueueName is the asynq queue that serves the logical queue q under prefix.
func QueueName(prefix, q string) string { return prefix + q }

// Enqueuer puts jobs on the queues. It is safe for concurrent use.
type Enqueuer struct {
	client *asynq.Client
	opts   EnqueueOptions
}

// NewEnqueuer returns an Enqueuer that writes through client.
func NewEnqueuer(client *asynq.Client, opts EnqueueOptions) *Enqueuer {
	switch {
	case opts.MaxRetry == 0:
		opts.MaxRetry = 25
	case opts.MaxRetry < 0:
		opts.MaxRetry = 0
	}
	if opts.Retention <= 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	opts.Budget = opts.Budget.withDefaults()
	return &Enqueuer{client: client, opts: opts}
}

// Enqueued says what happened to one job.
type Enqueued struct {
	ID    string
	Queue string
	// Duplicate is true when a task with the job's ID was already queued,
	// running or retained: the job was not enqueued again.
	Duplicate bool
}

// Prepared is a job that passed Normalize and Validate, frozen as the task
// payload it is enqueued with. Validation (IR's XSD above all) is most of
// an enqueue's cost, so a caller that checks a whole list before enqueuing
// any of it (the ingest API) prepares each job once and enqueues the
// Prepared values.
type Prepared struct {
	job     Job // as normalised; never changed after Prepare
	id      string
	payload []byte
}

// Prepare normalises j in place, validates it and encodes it. Validation
// errors wrap ErrInvalidJob.
func Prepare(j *Job) (*Prepared, error) {
	if err := j.Normalize(); err != nil {
		return nil, err
	}
	if err := j.Validate(); err != nil {
		return nil, err
	}
	payload, err := j.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode job: %w", err)
	}
	frozen := *j
	if j.Key != nil {
		k := *j.Key // the caller's Job may change; the prepared one may not
		frozen.Key = &k
	}
	return &Prepared{job: frozen, id: j.ID(), payload: payload}, nil
}

// ID is the job's task ID.
func (p *Prepared) ID() string { return p.id }

// Ref is the caller's reference of the job, if it gave one.
func (p *Prepared) Ref() string { return p.job.Ref }

// task is the asynq task of p, with its deterministic task ID.
func (p *Prepared) task(opts ...asynq.Option) *asynq.Task {
	opts = append([]asynq.Option{asynq.TaskID(p.id)}, opts...)
	return asynq.NewTask(TypeGatewayCall, p.payload, opts...)
}

// NewTask validates j (after normalising it) and returns its asynq task,
// with the job's deterministic task ID.
func NewTask(j *Job, opts ...asynq.Option) (*asynq.Task, error) {
	p, err := Prepare(j)
	if err != nil {
		return nil, err
	}
	return p.task(opts...), nil
}

// Enqueue validates j and puts it on queue (QueueRealtime, QueueBulk or
// QueueRedrive). A job already known by its ID is reported as a
// Duplicate, not an error. Validation errors wrap ErrInvalidJob.
func (e *Enqueuer) Enqueue(ctx context.Context, j *Job, queue string, opts ...asynq.Option) (Enqueued, error) {
	p, err := prepareFor(j, queue)
	if err != nil {
		return Enqueued{}, err
	}
	return e.EnqueuePrepared(ctx, p, queue, opts...)
}

// prepareFor checks queue, then prepares j: a bad queue is refused before
// validation's cost.
func prepareFor(j *Job, queue string) (*Prepared, error) {
	if err := CheckQueue(queue); err != nil {
		return nil, err
	}
	return Prepare(j)
}

// EnqueuePrepared is Enqueue for a job already prepared (and so
// validated).
func (e *Enqueuer) EnqueuePrepared(ctx context.Context, p *Prepared, queue string, opts ...asynq.Option) (Enqueued, error) {
	res, mark, err := e.enqueue(ctx, p, queue, opts...)
	if mark != nil {
		// After the enqueue, so a failed enqueue leaves no entry claiming a
		// queued return; refusals (filed, sending, unresolved) keep the
		// entry that says more.
		_, _ = e.opts.Ledger.Queued(ctx, mark.Key, mark.TaskID, mark.BodyHash)
	}
	return res, err
}

// QueueMarks is a QueueMarker that records many marks in one round trip;
// *ledger.Ledger is one.
type QueueMarks interface {
	MarkQueued(ctx context.Context, marks []ledger.Mark) (int, error)
}

// BatchMarker is the Enqueuer's ledger when it can record marks in
// batches, for EnqueueUnmarked's callers; nil otherwise.
func (e *Enqueuer) BatchMarker() QueueMarks {
	m, _ := e.opts.Ledger.(QueueMarks)
	return m
}

// EnqueueUnmarked is Enqueue without the ledger mark: it returns the mark
// to make instead (nil when there is none: a duplicate, a job that is no
// File, an Enqueuer without a ledger), for a caller that records many at
// once through BatchMarker. A bulk enqueue does, saving a round trip a job.
func (e *Enqueuer) EnqueueUnmarked(ctx context.Context, j *Job, queue string, opts ...asynq.Option) (Enqueued, *ledger.Mark, error) {
	p, err := prepareFor(j, queue)
	if err != nil {
		return Enqueued{}, nil, err
	}
	return e.enqueue(ctx, p, queue, opts...)
}

// enqueue puts p on queue and says which ledger mark is due, if any.
func (e *Enqueuer) enqueue(ctx context.Context, p *Prepared, queue string, opts ...asynq.Option) (Enqueued, *ledger.Mark, error) {
	if err := CheckQueue(queue); err != nil {
		return Enqueued{}, nil, err
	}
	j := &p.job
	base := []asynq.Option{
		asynq.Queue(QueueName(e.opts.QueuePrefix, queue)),
		// One attempt more than the budget: asynq archives a task whose
		// retry count has reached its MaxRetry whatever the error, a
		// snooze included (with MaxRetry 0, the first rate-limit delay
		// would archive the job). The handler parks a job itself when a
		// real failure uses up the budget (Handler.ProcessTask), so asynq's
		// own limit is never reached by failures and delays stay delays.
		asynq.MaxRetry(e.opts.MaxRetry + 1),
		asynq.Timeout(e.opts.Budget.TaskTimeout()),
		asynq.Retention(e.opts.Retention),
	}
	info, err := e.client.EnqueueContext(ctx, p.task(append(base, opts...)...))
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		return Enqueued{ID: p.id, Queue: QueueName(e.opts.QueuePrefix, queue), Duplicate: true}, nil, nil
	case err != nil:
		return Enqueued{}, nil, fmt.Errorf("enqueue %s: %w", p.id, err)
	}
	var mark *ledger.Mark
	if e.opts.Ledger != nil && j.Operation == OpFile && j.Key != nil {
		mark = &ledger.Mark{Key: LedgerKey(j), TaskID: info.ID, BodyHash: BodyHash(j)}
	}
	return Enqueued{ID: info.ID, Queue: info.Queue}, mark, nil
}

// CheckQueue refuses a queue name that is not one of Queues; the error
// wraps ErrInvalidJob.
func CheckQueue(q string) error {
	if slices.Contains(Queues, q) {
		return nil
	}
	return fmt.Errorf("%w: unknown queue %q (want realtime, bulk or redrive)", ErrInvalidJob, q)
}
