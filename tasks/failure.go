package tasks

import (
	"context"
	"errors"
	"fmt"
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
	// Retried and MaxRetry are the task's retry count and budget (asynq's
	// MaxRetry less the spare attempt, RetryBudget).
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

// budgetSpent parks a job whose real failure (one that spends the retry
// budget) leaves no retry: the budget is one less than asynq's MaxRetry
// (see Enqueuer.Enqueue). asynq would archive it one attempt later, and
// would archive a delay (a snooze) there too; parking it here keeps
// delays delays, and gives the job an outcome saying why it stopped.
func (h *Handler) budgetSpent(ctx context.Context, t *asynq.Task, err error) error {
	if err == nil || errors.Is(err, asynq.SkipRetry) || errors.Is(err, asynq.RevokeTask) || !IsFailure(err) {
		return err
	}
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	if !ok1 || !ok2 || retried < maxRetry-1 {
		return err
	}
	p := &ParkedError{Class: gatewayclient.ClassOf(err), Reason: fmt.Sprintf("retries ran out (%d failed %s)", retried+1, map[bool]string{true: "attempt", false: "attempts"}[retried == 0]), Err: err}
	var re *ReconcileError
	if errors.As(err, &re) {
		p.Class, p.Reason = gatewayclient.ClassUncertain, p.Reason+" while reconciling: "+re.Reason
	}
	out := Outcome{Class: p.Class.String(), Reason: p.Reason, FinishedAt: time.Now().UTC()}
	var ge *gatewayclient.Error
	if errors.As(err, &ge) {
		out.StatusCode, out.HTTPStatus, out.ErrorMessage = ge.StatusCode, ge.HTTPStatus, ge.Message
	}
	if j, derr := Decode(t.Payload()); derr == nil {
		out.Batch, out.Ref = j.Batch, j.Ref
		if j.Key != nil {
			out.Key = j.Key.String()
		}
	}
	if werr := writeResult(t, out); werr != nil {
		h.logger().Warn("job's outcome could not be stored", "err", werr)
	}
	h.logger().Warn("job's retries ran out; archived", "class", p.Class.String(), "err", err)
	return p
}

// finalFailure describes the final failure err of task t.
func finalFailure(ctx context.Context, t *asynq.Task, err error) Failure {
	f := Failure{Payload: t.Payload(), Err: err.Error(), At: time.Now().UTC()}
	f.TaskID, _ = asynq.GetTaskID(ctx)
	f.Queue, _ = asynq.GetQueueName(ctx)
	f.Retried, _ = asynq.GetRetryCount(ctx)
	if m, ok := asynq.GetMaxRetry(ctx); ok {
		f.MaxRetry = RetryBudget(m)
	}
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
