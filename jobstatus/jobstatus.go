// Package jobstatus looks a gatewayq job up by its task ID on the queues
// and describes it: its state, retries and last error, the outcome the
// worker recorded, and, for a File, its entry in the filing ledger. The
// enqueue CLI's status command and the HTTP ingest API both answer from it.
package jobstatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/tasks"
)

// ErrNotFound is returned by Find when no queue searched holds the task:
// it was never enqueued, or it finished longer ago than its retention.
var ErrNotFound = errors.New("job not found")

// Status is what is known of one job.
type Status struct {
	ID string `json:"id"`
	// Queue is the logical queue (realtime, bulk or redrive); TaskQueue the
	// asynq queue that serves it, with the environment's queue prefix.
	Queue     string `json:"queue"`
	TaskQueue string `json:"task_queue"`
	// State is asynq's: pending, active, scheduled, retry, archived or
	// completed.
	State string `json:"state"`
	// Job describes the job, without its body; nil if the payload cannot be
	// read (a task of another version or type).
	Job          *Job       `json:"job,omitempty"`
	Retried      int        `json:"retried"`
	MaxRetry     int        `json:"max_retry"` // the retry budget (tasks.RetryBudget)
	LastError    string     `json:"last_error,omitempty"`
	LastFailedAt *time.Time `json:"last_failed_at,omitempty"`
	// NextRunAt is when a waiting task (pending, scheduled, retry) runs
	// next.
	NextRunAt   *time.Time `json:"next_run_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	// Orphaned: the worker running it stopped renewing its lease; a
	// running worker will recover it.
	Orphaned bool `json:"orphaned,omitempty"`
	// Result is the tasks.Outcome the worker recorded, as JSON (a JSON
	// string if what was recorded is not JSON).
	Result json.RawMessage `json:"result,omitempty"`
	// Ledger is the return version's filing-ledger entry, for a File, when
	// the Finder has a ledger and the entry exists.
	Ledger *Ledger `json:"ledger,omitempty"`
}

// Job is a job's description: what it calls, for which return.
type Job struct {
	Service   string `json:"service"`
	Operation string `json:"operation"`
	Endpoint  string `json:"endpoint"`
	// Key is the return's natural key, e.g. GST/123039858/GST/2026-09-30.
	Key   string `json:"key,omitempty"`
	Batch string `json:"batch,omitempty"`
	Ref   string `json:"ref,omitempty"`
}

// Ledger is a return version's filing-ledger entry. It outlives the task:
// it says whether the return is filed whatever became of the job.
type Ledger struct {
	Key   string `json:"key"`
	State string `json:"state"`
	// TaskID is the task that last moved the entry; another task than the
	// one looked up if the same return was enqueued again.
	TaskID        string     `json:"task_id,omitempty"`
	Attempts      int        `json:"attempts"`
	GatewayID     string     `json:"gateway_id,omitempty"`
	SubmissionKey string     `json:"submission_key,omitempty"`
	FiledAt       *time.Time `json:"filed_at,omitempty"`
	Reconciled    bool       `json:"reconciled,omitempty"`
	// Class, Code and Message are IR's refusal of a rejected filing; Why
	// says what made an uncertain one so.
	Class     string    `json:"class,omitempty"`
	Code      string    `json:"code,omitempty"`
	Message   string    `json:"message,omitempty"`
	Why       string    `json:"why,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// LedgerReader reads filing-ledger entries; *ledger.Ledger is one.
type LedgerReader interface {
	Get(ctx context.Context, key string) (ledger.Entry, error)
}

var _ LedgerReader = (*ledger.Ledger)(nil)

// Options configure a Finder.
type Options struct {
	// QueuePrefix is the environment's queue prefix (redis.queue_prefix).
	QueuePrefix string
	// Ledger, if set, adds a File's ledger entry to its status.
	Ledger LedgerReader
}

// Finder looks jobs up. It is safe for concurrent use.
type Finder struct {
	insp *asynq.Inspector
	opts Options
}

// New returns a Finder reading through insp. The caller keeps ownership
// of insp and closes it.
func New(insp *asynq.Inspector, opts Options) *Finder {
	return &Finder{insp: insp, opts: opts}
}

// Find looks task id up on the given logical queues (every queue when
// none is given), in order, and describes the first found. A task found
// nowhere is ErrNotFound; a queue never used counts as holding nothing.
// asynq's look-up takes no context, so ctx is checked between queues.
func (f *Finder) Find(ctx context.Context, id string, queues ...string) (*Status, error) {
	if len(queues) == 0 {
		queues = tasks.Queues
	}
	for _, q := range queues {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info, err := f.insp.GetTaskInfo(tasks.QueueName(f.opts.QueuePrefix, q), id)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("looking up task %s on queue %s: %w", id, q, err)
		}
		st := Describe(info, f.opts.QueuePrefix)
		if err := f.addLedger(ctx, st, info); err != nil {
			return nil, err
		}
		return st, nil
	}
	return nil, ErrNotFound
}

func (f *Finder) addLedger(ctx context.Context, st *Status, info *asynq.TaskInfo) error {
	if f.opts.Ledger == nil {
		return nil
	}
	j, err := tasks.Decode(info.Payload)
	if err != nil || j.Operation != tasks.OpFile {
		return nil
	}
	key := tasks.LedgerKey(j)
	if key == "" {
		return nil
	}
	e, err := f.opts.Ledger.Get(ctx, key)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("reading the ledger entry of %s: %w", key, err)
	}
	st.Ledger = &Ledger{
		Key: e.Key, State: string(e.State), TaskID: e.TaskID, Attempts: e.Attempts,
		GatewayID: e.GatewayID, SubmissionKey: e.SubmissionKey, FiledAt: timePtr(e.FiledAt), Reconciled: e.Reconciled,
		Class: e.Class, Code: e.Code, Message: e.Message, Why: e.Why, UpdatedAt: e.UpdatedAt.UTC(),
	}
	return nil
}

// Describe turns asynq's task info into a Status; prefix is the queue
// prefix to take off the queue's name. It reads no ledger.
func Describe(info *asynq.TaskInfo, prefix string) *Status {
	st := &Status{
		ID:           info.ID,
		Queue:        strings.TrimPrefix(info.Queue, prefix),
		TaskQueue:    info.Queue,
		State:        info.State.String(),
		Retried:      info.Retried,
		MaxRetry:     tasks.RetryBudget(info.MaxRetry),
		LastError:    info.LastErr,
		LastFailedAt: timePtr(info.LastFailedAt),
		CompletedAt:  timePtr(info.CompletedAt),
		Orphaned:     info.IsOrphaned,
	}
	if info.State != asynq.TaskStateCompleted && info.State != asynq.TaskStateArchived {
		st.NextRunAt = timePtr(info.NextProcessAt)
	}
	if j, err := tasks.Decode(info.Payload); err == nil {
		st.Job = &Job{Service: string(j.Service), Operation: j.Operation, Endpoint: string(j.Endpoint), Batch: j.Batch, Ref: j.Ref}
		if j.Key != nil {
			st.Job.Key = j.Key.String()
		}
	}
	if len(info.Result) > 0 {
		if json.Valid(info.Result) {
			st.Result = json.RawMessage(info.Result)
		} else {
			// Keep the status encodable whatever a handler wrote.
			b, _ := json.Marshal(string(info.Result))
			st.Result = b
		}
	}
	return st
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
