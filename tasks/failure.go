package tasks

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/gatewayclient"
)

// Failure is a job's final failure: what the handler knows at the moment
// asynq is about to archive the task (a parked job, or one whose retries
// ran out). The failure index (package failures) keeps it beyond asynq's
// archive, which holds at most 10,000 tasks a queue and trims the oldest
// silently.
type Failure struct {
	TaskID string
	// Queue is the asynq queue the task ran on (with its prefix).
	Queue string
	// Retried and MaxRetry are the task's retry count and budget.
	Retried, MaxRetry int
	// Class is the outcome's class (gatewayclient.Class.String()); Reason
	// says what an operator must do.
	Class  string
	Reason string
	// StatusCode, Code and Message are IR's answer, when there was one.
	StatusCode int
	Code       string
	Message    string
	// Err is the error the handler returned, as text.
	Err string
	// Job is the decoded job; nil when the payload could not be decoded.
	Job *Job
	// Payload is the task's payload as enqueued: what a re-drive enqueues
	// again. It holds no secret (a job names its token set, never a token).
	Payload []byte
	At      time.Time
}

// FailureRecorder keeps jobs' final failures; *failures.Index is one.
// RecordFailure is called once per archived task, on the failure path only.
type FailureRecorder interface {
	RecordFailure(ctx context.Context, f Failure) error
}

// archives reports whether asynq v0.26 archives a task that returned err:
// its processor archives on SkipRetry or once the retry count has reached
// the budget (whether or not err counts as a failure), and revokes on
// RevokeTask. Outside asynq (no retry counts in ctx) only SkipRetry is
// final.
func archives(ctx context.Context, err error) bool {
	switch {
	case err == nil, errors.Is(err, asynq.RevokeTask):
		return false
	case errors.Is(err, asynq.SkipRetry):
		return true
	}
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && retried >= maxRetry
}

// finalFailure describes the final failure err of task t.
func finalFailure(ctx context.Context, t *asynq.Task, err error) Failure {
	f := Failure{Payload: t.Payload(), Err: err.Error(), At: time.Now().UTC()}
	f.TaskID, _ = asynq.GetTaskID(ctx)
	f.Queue, _ = asynq.GetQueueName(ctx)
	f.Retried, _ = asynq.GetRetryCount(ctx)
	f.MaxRetry, _ = asynq.GetMaxRetry(ctx)
	if j, derr := Decode(t.Payload()); derr == nil {
		f.Job = j
		if f.TaskID == "" {
			f.TaskID = j.ID()
		}
	}
	var (
		parked *ParkedError
		re     *ReconcileError
		ge     *gatewayclient.Error
	)
	switch {
	case errors.As(err, &parked):
		f.Class, f.Reason = parked.Class.String(), parked.Reason
	case errors.As(err, &re):
		f.Class, f.Reason = gatewayclient.ClassUncertain.String(), "retries ran out while reconciling: "+re.Reason
	default:
		f.Class, f.Reason = gatewayclient.ClassOf(err).String(), "retries ran out"
	}
	if errors.As(err, &ge) {
		f.StatusCode, f.Code, f.Message = ge.StatusCode, ge.Code, ge.Message
	}
	return f
}

// recordFailure writes a final failure down, on a context of its own: the
// task's may have ended (its deadline is one way to fail). A failure to
// record is logged; the task is archived by asynq just the same.
func (h *Handler) recordFailure(ctx context.Context, t *asynq.Task, err error) {
	f := finalFailure(ctx, t, err)
	rctx, cancel := ledgerContext(ctx)
	defer cancel()
	if rerr := h.Failures.RecordFailure(rctx, f); rerr != nil {
		h.logger().Error("could not record the job's failure in the failure index", "task", f.TaskID, "class", f.Class, "err", rerr)
	}
}
