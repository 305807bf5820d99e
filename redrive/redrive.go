// Package redrive lists failed jobs and puts them back to work, safely.
//
// asynq's own tools can re-run archived tasks, but cannot filter them, have
// no dry run and keep no record, and RunAllArchivedTasks puts a whole queue
// back at once. A re-drive here:
//
//   - selects failures by queue, batch, class, IR status code, identifier,
//     task and time window (failures.Filter), from the failure index and
//     from asynq's archive (for tasks archived without the handler's say);
//   - with DryRun, only says what each would do, with counts per cause;
//   - otherwise moves them onto the redrive queue at a paced rate (the
//     worker's fleet limiter applies on top), as fresh tasks with a full
//     retry budget under their own task ID, deleting the archived copy only
//     once the new task is enqueued: a re-drive stopped part way is run
//     again safely, because each step is idempotent by task ID;
//   - never re-sends a File blindly: a File whose ledger entry is uncertain
//     or sending goes back to the worker, which reconciles it with IR
//     (RetrieveStatus, RetrieveReturn) before anything is sent; one the
//     ledger says is filed is resolved without a call; an uncertain one
//     the ledger cannot vouch for is refused, to be reconciled by hand;
//   - takes a corrected payload for one job IR or validation rejected as
//     invalid: a new job (new task ID), validated like any, linked to the
//     old;
//   - is recorded: who, when, the filter, dry run or not, how many, and
//     what became of each job (History, Jobs).
package redrive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/failures"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/tasks"
)

// DefaultRate is how many jobs a second a re-drive moves when
// Options.Rate is zero: a trickle next to a night's batch, so a re-drive
// of thousands never floods the redrive queue; the fleet limiter paces
// the calls themselves.
const DefaultRate = 10

// Config is what a Redriver works with.
type Config struct {
	// Redis holds the failure index, the ledger, batches and the audit
	// under KeyPrefix (config redis.key_prefix).
	Redis     redis.UniversalClient
	KeyPrefix string
	// QueuePrefix is config redis.queue_prefix: the asynq queue names are
	// tasks.QueueName(QueuePrefix, q).
	QueuePrefix string
	// Inspector reads and deletes asynq tasks; Enqueuer puts re-driven jobs
	// on the redrive queue with the workers' retry and time budget.
	Inspector *asynq.Inspector
	Enqueuer  *tasks.Enqueuer
	// Retention is how long the audit of a re-drive is kept, and the
	// failure index's retention. Zero value: failures.DefaultRetention.
	Retention time.Duration
	// Now is the clock. Zero value: time.Now.
	Now func() time.Time
}

// Redriver lists and re-drives failed jobs. It is safe for concurrent use,
// though two re-drives of the same jobs at once only race to the same
// result.
type Redriver struct {
	cfg     Config
	index   *failures.Index
	batches *batch.Store
	ledger  *ledger.Ledger
}

// New returns a Redriver.
func New(c Config) *Redriver {
	if c.Retention <= 0 {
		c.Retention = failures.DefaultRetention
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Redriver{
		cfg:     c,
		index:   failures.New(c.Redis, c.KeyPrefix, failures.Options{Retention: c.Retention, Now: c.Now}),
		batches: batch.New(c.Redis, c.KeyPrefix, batch.Options{Retention: c.Retention, Now: c.Now}),
		ledger:  ledger.New(c.Redis, c.KeyPrefix),
	}
}

func (r *Redriver) queue(q string) string { return tasks.QueueName(r.cfg.QueuePrefix, q) }

// failed is one selected failure with the payload a re-drive enqueues
// (for a record from asynq's archive; the index's are read when needed).
type failed struct {
	failures.Record
	payload []byte
}

// Failed returns the failures f selects, oldest first: the failure index's
// records, and tasks in asynq's archive the index does not know (archived
// by a worker without the index, or by asynq itself on a deadline or a
// panic), marked FromArchive.
func (r *Redriver) Failed(ctx context.Context, f failures.Filter) ([]failures.Record, error) {
	fs, err := r.selectFailed(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]failures.Record, len(fs))
	for i, x := range fs {
		out[i] = x.Record
	}
	return out, nil
}

func (r *Redriver) selectFailed(ctx context.Context, f failures.Filter) ([]failed, error) {
	recs, err := r.index.List(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]failed, len(recs))
	for i, rec := range recs {
		out[i] = failed{Record: rec}
	}
	if len(f.States) > 0 && !slices.Contains(f.States, failures.StateFailed) {
		return out, nil
	}
	queues := []string{r.queue(tasks.QueueRealtime), r.queue(tasks.QueueBulk), r.queue(tasks.QueueRedrive)}
	if f.Queue != "" {
		queues = []string{f.Queue}
	}
	for _, q := range queues {
		extra, err := r.archived(ctx, q, f)
		if err != nil {
			return nil, err
		}
		out = append(out, extra...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

// archivePage is how many archived tasks one read lists.
const archivePage = 500

// archived lists the tasks archived on queue that the index has no record
// of, as records f selects.
func (r *Redriver) archived(ctx context.Context, queue string, f failures.Filter) ([]failed, error) {
	var out []failed
	for page := 1; ; page++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		infos, err := r.cfg.Inspector.ListArchivedTasks(queue, asynq.PageSize(archivePage), asynq.Page(page))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("redrive: list archived tasks of %s: %w", queue, err)
		}
		ids := make([]string, len(infos))
		for i, info := range infos {
			ids[i] = info.ID
		}
		known, err := r.index.GetMany(ctx, ids)
		if err != nil {
			return nil, err
		}
		for i, info := range infos {
			if known[i].TaskID != "" || info.Type != tasks.TypeGatewayCall {
				continue
			}
			rec := fromArchive(info)
			if f.Match(rec) {
				out = append(out, failed{Record: rec, payload: info.Payload})
			}
		}
		if len(infos) < archivePage {
			return out, nil
		}
	}
}

// fromArchive makes a record of an archived task from what asynq kept:
// the payload, and the outcome the handler wrote as its result, if any.
func fromArchive(info *asynq.TaskInfo) failures.Record {
	f := tasks.Failure{TaskID: info.ID, Queue: info.Queue, Retried: info.Retried, MaxRetry: tasks.RetryBudget(info.MaxRetry),
		Err: info.LastErr, Payload: info.Payload, At: info.LastFailedAt, Class: "unknown", Reason: "archived by asynq: " + info.LastErr}
	if j, err := tasks.Decode(info.Payload); err == nil {
		f.Job = j
	}
	var out tasks.Outcome
	if len(info.Result) > 0 && json.Unmarshal(info.Result, &out) == nil && out.Class != "" {
		f.Class, f.StatusCode, f.Message = out.Class, out.StatusCode, out.ErrorMessage
		if out.Reason != "" {
			f.Reason = out.Reason
		}
	}
	rec := failures.FromFailure(f)
	rec.FromArchive = true
	return rec
}

// CauseCount is how many failures share a cause.
type CauseCount struct {
	Cause string `json:"cause"`
	Count int    `json:"count"`
}

// Causes counts recs by cause (failures.Record.Cause), most frequent
// first.
func Causes(recs []failures.Record) []CauseCount {
	m := map[string]int{}
	for _, r := range recs {
		m[r.Cause()]++
	}
	return sortCounts(m)
}

func sortCounts(m map[string]int) []CauseCount {
	out := make([]CauseCount, 0, len(m))
	for c, n := range m {
		out = append(out, CauseCount{Cause: c, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Cause < out[j].Cause
	})
	return out
}

// Action is what a re-drive does with one failure.
type Action string

// Actions.
const (
	// ActionRedrive puts the job back on the redrive queue.
	ActionRedrive Action = "redrive"
	// ActionReconcile puts a File with an unknown outcome back on the
	// redrive queue, where the worker reconciles it with IR first.
	ActionReconcile Action = "reconcile"
	// ActionReplace enqueues a corrected job in place of the failed one.
	ActionReplace Action = "replace"
	// ActionResolve settles the failure without running anything: the
	// ledger says the return is filed, or the task completed since.
	ActionResolve Action = "resolve"
	// ActionSkip leaves the failure as it is, and says why.
	ActionSkip Action = "skip"
)

// Options shape one re-drive.
type Options struct {
	Filter failures.Filter
	// All allows a Filter that selects by nothing but state: every
	// failure at once. Without it such a re-drive is refused.
	All bool
	// DryRun says what would be done, and does nothing but record that it
	// was asked.
	DryRun bool
	// Rate is how many jobs a second are moved. Zero value: DefaultRate.
	Rate float64
	// Payload is a corrected job (JSON, as `enqueue submit --file` takes)
	// for the one failure Filter selects, which must be of class invalid.
	Payload []byte
	// Who asked (an operator's name). Required.
	Who string
}

// Job is what a re-drive did (or would do) with one failure.
type Job struct {
	TaskID string `json:"task_id"`
	Queue  string `json:"queue"`
	Batch  string `json:"batch,omitempty"`
	Key    string `json:"key,omitempty"`
	Cause  string `json:"cause"`
	Action Action `json:"action"`
	// Outcome is "would <action>" in a dry run; otherwise "redriven",
	// "reconcile" (re-driven to be reconciled), "replaced", "resolved",
	// "skipped" or "error".
	Outcome string `json:"outcome"`
	// Queue and task the job runs under now, when it was moved.
	NewQueue  string `json:"new_queue,omitempty"`
	NewTaskID string `json:"new_task_id,omitempty"`
	Note      string `json:"note,omitempty"`
}

// Outcomes of a job in a run that is not a dry run.
const (
	OutcomeRedriven  = "redriven"
	OutcomeReconcile = "reconcile"
	OutcomeReplaced  = "replaced"
	OutcomeResolved  = "resolved"
	OutcomeSkipped   = "skipped"
	OutcomeError     = "error"
)

// ErrNoFilter refuses a re-drive that selects by nothing (see Options.All).
var ErrNoFilter = errors.New("redrive: the filter selects every failure; narrow it, or ask for all explicitly")

// Run re-drives the failures opts.Filter selects (or says what it would do,
// with DryRun), recording the run for History. The Run returned lists
// every job; its error is set, and returned too, when the run stopped part
// way (the context ended, Redis failed): the jobs done so far stay done,
// and running the same re-drive again finishes the rest.
func (r *Redriver) Run(ctx context.Context, opts Options) (*Run, error) {
	if opts.Who == "" {
		return nil, errors.New("redrive: who is asking? (Options.Who)")
	}
	if !opts.Filter.Selects() && !opts.All {
		return nil, ErrNoFilter
	}
	if opts.Rate <= 0 {
		opts.Rate = DefaultRate
	}
	sel, err := r.selectFailed(ctx, opts.Filter)
	if err != nil {
		return nil, err
	}
	var corrected *tasks.Job
	if opts.Payload != nil {
		if corrected, err = checkCorrection(sel, opts.Payload); err != nil {
			return nil, err
		}
	}
	run := &Run{ID: newRunID(r.cfg.Now()), Who: opts.Who, StartedAt: r.cfg.Now().UTC(), Filter: opts.Filter, FilterText: opts.Filter.String(),
		DryRun: opts.DryRun, Rate: opts.Rate, Selected: len(sel), ByCause: map[string]int{}, Outcomes: map[string]int{}, State: RunRunning}
	if corrected != nil {
		run.Corrected = corrected.ID()
	}
	for _, f := range sel {
		run.ByCause[f.Cause()]++
	}
	if err := r.saveRun(ctx, run); err != nil {
		return nil, err
	}

	lim := rate.NewLimiter(rate.Limit(opts.Rate), 1)
	var (
		pending []Job // not yet in the audit
		runErr  error
	)
	for _, f := range sel {
		if err := ctx.Err(); err != nil {
			runErr = err
			break
		}
		job := r.plan(ctx, f, corrected)
		if !opts.DryRun {
			job = r.apply(ctx, lim, run.ID, f, corrected, job)
		} else {
			job.Outcome = "would " + string(job.Action)
		}
		run.Jobs = append(run.Jobs, job)
		run.Outcomes[job.Outcome]++
		if pending = append(pending, job); len(pending) >= auditEvery || !opts.DryRun {
			if err := r.appendJobs(ctx, run.ID, pending); err != nil {
				runErr = err
				break
			}
			pending = nil
		}
		if job.Outcome == OutcomeError && ctx.Err() != nil {
			runErr = ctx.Err()
			break
		}
	}
	// The audit is finished even when the run's own context has ended.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if runErr == nil && len(pending) > 0 {
		runErr = r.appendJobs(actx, run.ID, pending)
	}
	run.FinishedAt = r.cfg.Now().UTC()
	run.State = RunDone
	if runErr != nil {
		run.State, run.Err = RunStopped, runErr.Error()
	}
	if err := r.saveRun(actx, run); err != nil && runErr == nil {
		runErr = err
	}
	return run, runErr
}

// checkCorrection validates a corrected payload against the one failure
// it replaces.
func checkCorrection(sel []failed, payload []byte) (*tasks.Job, error) {
	if len(sel) != 1 {
		return nil, fmt.Errorf("redrive: a corrected payload replaces one job; the filter selects %d (select it by task)", len(sel))
	}
	old := sel[0]
	if old.Class != gatewayclient.ClassInvalid.String() {
		return nil, fmt.Errorf("redrive: a corrected payload is for a job rejected as invalid; task %s failed as %s", old.TaskID, old.Class)
	}
	j, err := tasks.Decode(payload)
	if err != nil {
		return nil, fmt.Errorf("redrive: corrected payload: %w", err)
	}
	if j.Batch == "" {
		j.Batch = old.Batch
	}
	if _, err := tasks.NewTask(j); err != nil {
		return nil, fmt.Errorf("redrive: corrected payload: %w", err)
	}
	// The correction may change the natural key (a period end date IR
	// refused, say), but not whose return it is.
	if j.Key != nil && old.Identifier != "" && j.Key.Identifier != old.Identifier {
		return nil, fmt.Errorf("redrive: the corrected job is for identifier %s but the failed one was for %s: submit another customer's return as a new job", j.Key.Identifier, old.Identifier)
	}
	if j.ID() == old.TaskID {
		return nil, fmt.Errorf("redrive: the corrected payload is the failed job unchanged (task %s)", old.TaskID)
	}
	return j, nil
}

// plan decides what to do with one failure, reading but writing nothing.
func (r *Redriver) plan(ctx context.Context, f failed, corrected *tasks.Job) Job {
	job := Job{TaskID: f.TaskID, Queue: f.Queue, Batch: f.Batch, Key: f.Key, Cause: f.Cause(), Action: ActionRedrive}
	skip := func(action Action, note string) Job {
		job.Action, job.Note = action, note
		return job
	}
	// A task running again, or done, since it failed (re-run from the
	// web UI, say) is not moved a second time.
	if info, err := r.cfg.Inspector.GetTaskInfo(f.Queue, f.TaskID); err == nil {
		switch info.State {
		case asynq.TaskStateArchived:
		case asynq.TaskStateCompleted:
			return skip(ActionResolve, "completed on "+f.Queue+" since it failed")
		default:
			return skip(ActionSkip, fmt.Sprintf("already %s on %s (run again outside a re-drive)", info.State, f.Queue))
		}
	} else if !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
		return skip(ActionSkip, "could not read the task: "+err.Error())
	}
	if corrected != nil {
		job.Action, job.NewTaskID, job.Note = ActionReplace, corrected.ID(), "corrected payload"
		if corrected.Key != nil && corrected.Key.String() != f.Key {
			job.Note += " (return " + corrected.Key.String() + ")"
		}
		return job
	}
	uncertain := f.Class == gatewayclient.ClassUncertain.String() || f.Class == gatewayclient.ClassAlreadyFiled.String()
	if f.LedgerKey == "" {
		if uncertain {
			return skip(ActionSkip, "its outcome is uncertain and it has no filing-ledger entry to reconcile with: reconcile by hand")
		}
		return job
	}
	e, err := r.ledger.Get(ctx, f.LedgerKey)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
	case err != nil:
		return skip(ActionSkip, "could not read the filing ledger: "+err.Error())
	case e.State == ledger.StateFiled:
		return skip(ActionResolve, fmt.Sprintf("the ledger says filed (submission key %s): nothing to send", e.SubmissionKey))
	case e.State == ledger.StateUncertain || e.State == ledger.StateSending:
		job.Action, job.Note = ActionReconcile, "the worker reconciles it with IR before anything is sent"
		return job
	}
	if uncertain {
		state := "no entry"
		if err == nil {
			state = string(e.State)
		}
		return skip(ActionSkip, fmt.Sprintf("its outcome is uncertain but the filing ledger (%s) would not make the worker reconcile it: it could be sent blindly; reconcile by hand", state))
	}
	return job
}

// apply carries out a planned job.
func (r *Redriver) apply(ctx context.Context, lim *rate.Limiter, runID string, f failed, corrected *tasks.Job, job Job) Job {
	fail := func(err error) Job {
		job.Outcome, job.Note = OutcomeError, err.Error()
		return job
	}
	seen, err := r.adopt(ctx, f)
	if err != nil {
		return fail(err)
	}
	settle := func(state failures.State, s failures.Settlement) {
		s.Run, s.At = runID, r.cfg.Now().UTC()
		if err := r.index.Settle(ctx, seen, state, s); err != nil {
			if errors.Is(err, failures.ErrChanged) {
				job.Note = joinNote(job.Note, "the job has failed again since: see its new failure")
				return
			}
			job.Note = joinNote(job.Note, "not marked in the failure index: "+err.Error())
		}
	}
	switch job.Action {
	case ActionSkip:
		job.Outcome = OutcomeSkipped
		return job
	case ActionResolve:
		settle(failures.StateResolved, failures.Settlement{Note: job.Note})
		// Settled: an archived copy left behind would be listed again from
		// asynq's archive once the index's record has aged out.
		if err := r.deleteArchived(f.Queue, f.TaskID); err != nil {
			job.Note = joinNote(job.Note, "the archived copy stays: "+err.Error())
		}
		job.Outcome = OutcomeResolved
		return job
	}

	if err := lim.Wait(ctx); err != nil {
		return fail(err)
	}
	j := corrected
	if j == nil {
		payload := f.payload
		if payload == nil {
			if payload, err = r.index.Payload(ctx, f.TaskID); err != nil {
				return fail(err)
			}
		}
		if j, err = tasks.Decode(payload); err != nil {
			return fail(err)
		}
	}
	newQueue, newID, note, err := r.enqueue(ctx, j)
	if err != nil {
		return fail(err)
	}
	job.NewQueue, job.NewTaskID, job.Note = newQueue, newID, joinNote(job.Note, note)
	// The archived copy goes only now that the job is on the redrive queue.
	if f.Queue != newQueue || f.TaskID != newID {
		if err := r.deleteArchived(f.Queue, f.TaskID); err != nil {
			job.Note = joinNote(job.Note, "the archived copy stays: "+err.Error())
		}
	}
	state, outcome := failures.StateRedriven, OutcomeRedriven
	switch job.Action {
	case ActionReplace:
		state, outcome = failures.StateReplaced, OutcomeReplaced
	case ActionReconcile:
		outcome = OutcomeReconcile
	}
	settle(state, failures.Settlement{Queue: newQueue, TaskID: newID, Note: job.Note})
	if f.Batch != "" {
		if err := r.batches.Move(ctx, f.Batch, f.TaskID, batch.Location{Queue: newQueue, TaskID: newID, Job: corrected}); err != nil {
			job.Note = joinNote(job.Note, "batch not updated: "+err.Error())
		}
	}
	job.Outcome = outcome
	return job
}

// adopt returns the index's record of f, writing it there first when it
// came from asynq's archive, so that settling it is a compare-and-set like
// any other.
func (r *Redriver) adopt(ctx context.Context, f failed) (failures.Record, error) {
	if f.FromArchive {
		rec := f.Record
		rec.FromArchive = false
		if err := r.index.Put(ctx, rec, f.payload); err != nil {
			return failures.Record{}, err
		}
	}
	return r.index.Get(ctx, f.TaskID)
}

// enqueue puts j on the redrive queue as a fresh task (a full retry
// budget) under its own task ID. A copy already there is looked at first:
// archived (it failed on the redrive queue before) it is replaced; still
// moving, it is left to run (a re-drive run twice, or stopped after the
// enqueue); completed, the job is done.
func (r *Redriver) enqueue(ctx context.Context, j *tasks.Job) (queue, id, note string, err error) {
	queue = r.queue(tasks.QueueRedrive)
	if err := j.Normalize(); err != nil {
		return "", "", "", err
	}
	id = j.ID()
	if info, err := r.cfg.Inspector.GetTaskInfo(queue, id); err == nil {
		switch info.State {
		case asynq.TaskStateArchived:
			// An archived task keeps its spent retry count: running it
			// again would archive it at its first snooze. It makes way for
			// a fresh copy (the payload is safe in the failure index).
			if err := r.cfg.Inspector.DeleteTask(queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return "", "", "", fmt.Errorf("replace the archived copy on %s: %w", queue, err)
			}
		case asynq.TaskStateCompleted:
			return queue, id, "it completed on " + queue + " already", nil
		default:
			return queue, id, "already " + info.State.String() + " on " + queue, nil
		}
	} else if !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
		return "", "", "", fmt.Errorf("read task %s on %s: %w", id, queue, err)
	}
	res, err := r.cfg.Enqueuer.Enqueue(ctx, j, tasks.QueueRedrive)
	if err != nil {
		return "", "", "", err
	}
	if res.Duplicate {
		note = "already on " + queue
	}
	return res.Queue, res.ID, note, nil
}

// deleteArchived deletes the archived copy of a task, and nothing else: a
// copy running again is left alone.
func (r *Redriver) deleteArchived(queue, id string) error {
	info, err := r.cfg.Inspector.GetTaskInfo(queue, id)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.State != asynq.TaskStateArchived {
		return nil
	}
	if err := r.cfg.Inspector.DeleteTask(queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return err
	}
	return nil
}

func joinNote(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

func newRunID(t time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "r-" + t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
