package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/breaker"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/ratelimit"
)

// Caller makes one gateway call; *gatewayclient.Client is one.
type Caller interface {
	Do(ctx context.Context, req gatewayclient.Request) (*gatewayclient.Result, error)
}

// CredentialSource gives the credentials a job's auth names.
type CredentialSource interface {
	For(ctx context.Context, auth Auth) (gatewayclient.Credentials, error)
}

// Limiter hands out permits for gateway calls: *ratelimit.Fleet (one
// limit for the whole fleet, adapting to IR's push-back) or
// *ratelimit.Local (per process).
type Limiter interface {
	Acquire(ctx context.Context, key string, p ratelimit.Priority, maxWait time.Duration) (*ratelimit.Permit, error)
	Throttled(ctx context.Context, key string, retryAfter time.Duration) error
}

// tokenRejecter is implemented by OAuth credentials that can refresh their
// token set after IR refused the access token they handed out (the auth
// store's credentials do, fleet-wide and once per refused token).
type tokenRejecter interface {
	Rejected(ctx context.Context) error
}

// Breaker guards an endpoint: *breaker.Fleet. Allow refuses with an error
// wrapping breaker.ErrOpen while the breaker is open; otherwise done must
// be called with the call's outcome.
type Breaker interface {
	Allow(ctx context.Context, key string) (done func(error), err error)
}

var (
	_ Caller  = (*gatewayclient.Client)(nil)
	_ Limiter = (*ratelimit.Local)(nil)
	_ Limiter = (*ratelimit.Fleet)(nil)
	_ Breaker = (*breaker.Fleet)(nil)
)

// Handler runs gatewayq jobs. It implements asynq.Handler.
type Handler struct {
	Client      Caller
	Credentials CredentialSource
	Limiter     Limiter // nil: no limit
	Breaker     Breaker // nil: no breaker
	// Keys names the limit and breaker of each endpoint: IR throttles per
	// client certificate, so "cloud:<certificate CN>". An endpoint missing
	// here uses its kind ("cloud", "desktop").
	Keys   map[gatewayclient.EndpointKind]string
	Budget Budget
	Logger *slog.Logger
	// Ledger records every File of a return version (see reconcile.go):
	// marked sending right before the request goes out, reconciled with
	// IR before a File whose outcome is unknown is ever sent again. Nil:
	// no ledger, and Files with an unknown outcome are parked for an
	// operator instead.
	Ledger Ledger
	// Failures keeps every job asynq archives (parked, or out of retries)
	// with its class, reason and payload, for the morning report and
	// re-drives (*failures.Index). Nil: asynq's archive only.
	Failures FailureRecorder
	// Metrics records calls, jobs and reconciliations (NewMetrics); nil:
	// none.
	Metrics *Metrics

	clock func() time.Time // nil means time.Now
}

func (h *Handler) key(e gatewayclient.EndpointKind) string {
	if k, ok := h.Keys[e]; ok {
		return k
	}
	return string(e)
}

// priority is the limiter priority of the queue the task came from: event
// triggers may use the rate's realtime reserve.
func priority(ctx context.Context) ratelimit.Priority {
	if q, ok := asynq.GetQueueName(ctx); ok && strings.HasSuffix(q, QueueRealtime) {
		return ratelimit.PriorityRealtime
	}
	return ratelimit.PriorityBulk
}

// Outcome is what a job's result holds (written with the task's
// ResultWriter, kept for the task's Retention) and what operators see.
type Outcome struct {
	Class string `json:"class"`
	// Reason says, for a parked job, what an operator must do.
	Reason        string `json:"reason,omitempty"`
	StatusCode    int    `json:"status_code"`
	ErrorMessage  string `json:"error_message,omitempty"`
	GatewayID     string `json:"gateway_id,omitempty"`
	SubmissionKey string `json:"submission_key,omitempty"`
	HTTPStatus    int    `json:"http_status,omitempty"`
	Key           string `json:"key,omitempty"`
	Batch         string `json:"batch,omitempty"`
	Ref           string `json:"ref,omitempty"`
	// Response is IR's response element (SOAP) or body (REST), for the
	// look-up operations whose answer is the point of the job.
	Response   string    `json:"response,omitempty"`
	DurationMS int64     `json:"duration_ms"`
	FinishedAt time.Time `json:"finished_at"`
}

// maxResponseInResult keeps results small in Redis; a filing's answer is a
// few hundred bytes, a prepop or retrieve-return a few KB.
const maxResponseInResult = 64 << 10

// SnoozeError reschedules a job after Delay without counting it as a
// failure: the job was delayed (rate limit, breaker, throttling), it did
// not fail.
type SnoozeError struct {
	Delay  time.Duration
	Reason string
}

func (e *SnoozeError) Error() string {
	return fmt.Sprintf("snoozed for %s: %s", e.Delay.Round(time.Millisecond), e.Reason)
}

// ParkedError archives a job for an operator: retrying cannot help until
// someone acts (fixes data, grants access, reconciles an uncertain filing).
// It wraps asynq.SkipRetry.
type ParkedError struct {
	Class  gatewayclient.Class
	Reason string
	Err    error
}

func (e *ParkedError) Error() string {
	s := fmt.Sprintf("parked (%s): %s", e.Class, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ParkedError) Unwrap() []error { return []error{asynq.SkipRetry, e.Err} }

// maxTokenRefusals is how many times one job run has its access token
// refused and refreshed before it gives up and parks for re-consent. Two,
// not one: the token a refresh brings can itself be refused when the
// refresh waited (on another worker's lock, say) past the next expiry; a
// set IR keeps refusing costs at most two refreshes a job run, each
// fenced to one presentation of the refresh token.
const maxTokenRefusals = 2

// ProcessTask runs one job: decode, take a rate-limit permit, call the
// gateway within the call deadline, and map the outcome's class onto asynq.
//
// This is the one place where a job's final outcome is known: a job that
// asynq will archive (parked, or out of retries) is written to the failure
// index here, with one Redis command; the success path pays nothing.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	err := h.process(ctx, t)
	err = h.budgetSpent(ctx, t, err)
	h.Metrics.job(err)
	if h.Failures != nil && archives(ctx, err) {
		h.recordFailure(ctx, t, err)
	}
	return err
}

func (h *Handler) process(ctx context.Context, t *asynq.Task) error {
	log := h.logger()
	j, err := Decode(t.Payload())
	if err != nil {
		return &ParkedError{Class: gatewayclient.ClassInvalid, Reason: "undecodable payload", Err: err}
	}
	if j.Version != PayloadVersion {
		return &ParkedError{Class: gatewayclient.ClassInvalid, Reason: fmt.Sprintf("payload version %d is not readable by this worker (reads %d)", j.Version, PayloadVersion)}
	}
	if _, err := gatewayclient.LookupOperation(j.Service, j.Operation); err != nil {
		return &ParkedError{Class: gatewayclient.ClassInvalid, Reason: "unknown operation", Err: err}
	}
	id, _ := asynq.GetTaskID(ctx)
	log = log.With("task", id, "service", j.Service, "op", j.Operation)
	if j.Key != nil {
		log = log.With("key", j.Key.String())
	}
	budget := h.Budget.withDefaults()

	// Credentials first: a job whose token set is gone must not take a
	// permit or count for the breaker.
	creds, credErr := h.Credentials.For(ctx, j.Auth)
	if credErr != nil {
		return h.finish(ctx, log, t, j, nil, classifyCredentialError(credErr), 0)
	}

	// A File is marked "sending" in the ledger right before it goes out.
	// Most Files are new, so that mark is tried first; only when the ledger
	// refuses it (the return is filed, being sent, or unresolved) is the
	// entry read and settled: done, or reconciled with IR before anything
	// is sent. That keeps the common path to one ledger round trip before
	// the call.
	lj := h.ledgerJob(ctx, j)
	if lj != nil {
		log = log.With("ledger", lj.key)
	}
	var beforeSend func() error
	if lj != nil {
		beforeSend = func() error { return h.beginSend(ctx, lj) }
	}

	var (
		res     *gatewayclient.Result
		callErr error
		elapsed time.Duration
	)
	// IR refusing the access token (statusCode 1, 2) gets the token set
	// refreshed, fleet-wide and once per refused token, and one more call
	// with the new token, up to maxTokenRefusals refusals; one more parks
	// the job for re-consent.
	reconciled := false
	for attempt := 0; ; attempt++ {
		var stop error
		res, callErr, elapsed, stop = h.call(ctx, log, j.Endpoint, gatewayclient.Request{
			Endpoint:    j.Endpoint,
			Service:     j.Service,
			Operation:   j.Operation,
			Payload:     []byte(j.Body),
			Credentials: creds,
		}, budget, beforeSend)
		if errors.Is(stop, errAlreadyFiled) {
			if e, err := h.Ledger.Get(ctx, lj.key); err == nil {
				h.completeFiled(log, t, j, e, "filed (ledger): IR accepted this return earlier")
				return nil
			}
			return &SnoozeError{Delay: reconcileDelay, Reason: "the ledger says filed but could not be read"}
		}
		if errors.Is(stop, errMustReconcile) {
			if reconciled {
				return &SnoozeError{Delay: reconcileDelay, Reason: "the filing ledger changed under this attempt"}
			}
			reconciled = true
			if done, err := h.checkLedger(ctx, log, t, j, creds, lj, budget); done {
				var parked *ParkedError
				if errors.As(err, &parked) {
					// Parked by reconciliation: the operator's morning
					// starts from this outcome, as for any parked job.
					h.writeOutcome(log, t, j, nil, parked.Err, 0, parked.Class, parked.Reason)
				}
				return err
			}
			// Reconciled as not filed (or settled meanwhile): send it now.
			attempt--
			continue
		}
		if stop != nil {
			return stop
		}
		if lj != nil {
			if err := h.settle(ctx, log, lj, res, callErr); err != nil {
				// The job comes back to be reconciled; until then its outcome
				// says why, and stays for an operator should its retries run out.
				class, reason := gatewayclient.ClassUncertain, err.Error()
				var re *ReconcileError
				if errors.As(err, &re) {
					reason = re.Reason
				}
				if gatewayclient.ClassOf(callErr) == gatewayclient.ClassAlreadyFiled {
					class = gatewayclient.ClassAlreadyFiled
				}
				h.writeOutcome(log, t, j, res, callErr, elapsed, class, reason)
				return err
			}
		}
		if attempt >= maxTokenRefusals || gatewayclient.ClassOf(callErr) != gatewayclient.ClassAuth || j.Auth.Mode != gatewayclient.AuthOAuth {
			break
		}
		r, ok := creds.(tokenRejecter)
		if !ok {
			break
		}
		if err := r.Rejected(ctx); err != nil {
			// The refresh itself failed: a dead or desktop set needs the
			// user's consent again; a transient failure retries later.
			return h.finish(ctx, log, t, j, nil, classifyCredentialError(err), elapsed)
		}
		log.Info("IR refused the access token; the token set was refreshed, calling again")
	}
	if callErr != nil && ctx.Err() != nil && !isGatewayError(callErr) {
		// The worker is stopping or the task timed out before the call
		// began: nothing was sent, asynq retries the task.
		return ctx.Err()
	}
	return h.finish(ctx, log, t, j, res, callErr, elapsed)
}

// call makes one gateway call through the limiter and the breaker, within
// the call deadline, and tells the limiter about IR's push-back. beforeSend,
// when not nil, runs after the permit and the breaker, right before the
// request: an error from it ends the call unsent. stop, when not nil, is
// what the job must return without a call's outcome: a snooze (rate limit,
// breaker), beforeSend's refusal, or the task's own context ending.
func (h *Handler) call(ctx context.Context, log *slog.Logger, endpoint gatewayclient.EndpointKind, req gatewayclient.Request, budget Budget, beforeSend func() error) (res *gatewayclient.Result, callErr error, elapsed time.Duration, stop error) {
	key := h.key(endpoint)
	if h.Limiter != nil {
		permit, err := h.Limiter.Acquire(ctx, key, priority(ctx), budget.LimiterWait)
		if err != nil {
			var de *ratelimit.DelayError
			if errors.As(err, &de) {
				return nil, nil, 0, &SnoozeError{Delay: de.RetryIn, Reason: "waiting for a rate-limit permit (" + de.Reason + ")"}
			}
			return nil, nil, 0, err // the task's own context ended
		}
		// The in-flight slot is held until the call has really ended, and
		// released in the background: the job's completion need not wait
		// for that round trip (a release lost to a stopping process frees
		// at the slot's expiry).
		defer func() { go permit.Release() }()
	}
	// The breaker is asked last, right before the call: a job that waited
	// for its permit while another worker tripped the breaker must not go
	// out. Asking costs no Redis round trip.
	breakerDone := func(error) {}
	if h.Breaker != nil {
		done, err := h.Breaker.Allow(ctx, key)
		if err != nil {
			var oe *breaker.OpenError
			if errors.As(err, &oe) {
				return nil, nil, 0, &SnoozeError{Delay: oe.RetryIn, Reason: "circuit breaker open for " + key}
			}
			return nil, nil, 0, err
		}
		breakerDone = done
	}
	if beforeSend != nil {
		if err := beforeSend(); err != nil {
			// Nothing went out: the breaker slot is given back uncounted.
			breakerDone(context.Canceled)
			return nil, nil, 0, err
		}
	}

	start := time.Now()
	callEnded := h.Metrics.callStarted()
	callCtx, cancel := context.WithTimeout(ctx, budget.Call)
	res, callErr = h.Client.Do(callCtx, req)
	cancel()
	elapsed = time.Since(start)
	callEnded(req.Service, req.Operation, callErr, elapsed)
	breakerDone(callErr)
	if h.Limiter != nil && gatewayclient.ThrottleSignal(callErr) {
		var ge *gatewayclient.Error
		var retryAfter time.Duration
		if errors.As(callErr, &ge) {
			retryAfter = ge.RetryAfter
		}
		if err := h.Limiter.Throttled(ctx, key, retryAfter); err != nil {
			log.Warn("could not tell the fleet limiter about IR's push-back", "err", err)
		}
	}
	return res, callErr, elapsed, nil
}

// finish records a job's outcome and tells asynq what to do next.
func (h *Handler) finish(ctx context.Context, log *slog.Logger, t *asynq.Task, j *Job, res *gatewayclient.Result, callErr error, elapsed time.Duration) error {
	if callErr == nil {
		out := h.outcome(j, res, nil, elapsed)
		if err := writeResult(t, out); err != nil {
			log.Warn("job done but its result could not be stored", "err", err)
		}
		log.Info("job done", "status_code", out.StatusCode, "gateway_id", out.GatewayID, "ms", out.DurationMS)
		return nil
	}
	err := h.mapOutcome(log, j, res, callErr)
	var parked *ParkedError
	if errors.As(err, &parked) {
		// A parked job's outcome is what the operator acts on in the
		// morning: keep it beside the archived task.
		h.writeOutcome(log, t, j, res, callErr, elapsed, parked.Class, parked.Reason)
	}
	return err
}

// writeOutcome stores the outcome of a job that is not done (parked, or
// coming back to be reconciled), with its class and reason.
func (h *Handler) writeOutcome(log *slog.Logger, t *asynq.Task, j *Job, res *gatewayclient.Result, callErr error, elapsed time.Duration, class gatewayclient.Class, reason string) {
	out := h.outcome(j, res, callErr, elapsed)
	out.Class = class.String()
	out.Reason = reason
	if werr := writeResult(t, out); werr != nil {
		log.Warn("job's outcome could not be stored", "err", werr)
	}
}

func isGatewayError(err error) bool {
	var ge *gatewayclient.Error
	return errors.As(err, &ge)
}

// classifyCredentialError keeps a classified error's class (a missing or
// expired token set is ClassAuth) and treats anything else — Redis briefly
// unreachable, say — as transient.
func classifyCredentialError(err error) error {
	if isGatewayError(err) {
		return err
	}
	return &gatewayclient.Error{Class: gatewayclient.ClassRetryLater, Message: "credentials unavailable", Err: err}
}

func (h *Handler) outcome(j *Job, res *gatewayclient.Result, err error, elapsed time.Duration) Outcome {
	o := Outcome{Class: gatewayclient.ClassOf(err).String(), Batch: j.Batch, Ref: j.Ref, DurationMS: elapsed.Milliseconds(), FinishedAt: time.Now().UTC()}
	if j.Key != nil {
		o.Key = j.Key.String()
	}
	if res != nil {
		o.StatusCode, o.ErrorMessage = res.StatusCode, res.ErrorMessage
		o.GatewayID, o.SubmissionKey, o.HTTPStatus = res.GatewayID, res.SubmissionKey, res.HTTPStatus
		if j.Operation != OpFile && len(res.Body) <= maxResponseInResult {
			o.Response = string(res.Body)
		}
	}
	var ge *gatewayclient.Error
	if errors.As(err, &ge) {
		o.StatusCode, o.HTTPStatus = ge.StatusCode, ge.HTTPStatus
		if ge.Message != "" {
			o.ErrorMessage = ge.Message
		}
	}
	return o
}

// notOnboardedReason is why a job refused with statusCode 5 or 7 is parked.
const notOnboardedReason = "configuration: the DSP is not onboarded for this operation or account type"

// noDelegationReason says whose access is missing, so the operator knows
// which myIR delegation to ask for.
func noDelegationReason(j *Job) string {
	who := "the account"
	if j.Key != nil {
		who = fmt.Sprintf("identifier %s, account type %s", j.Key.Identifier, j.Key.AccountType)
	}
	return fmt.Sprintf("the myIR logon behind token set %q lacks delegated access to %s", j.Auth.TokenSet, who)
}

func writeResult(t *asynq.Task, o Outcome) error {
	w := t.ResultWriter()
	if w == nil {
		return errors.New("task has no result writer")
	}
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// mapOutcome turns a classified failure into what asynq should do with the
// task. This is the one place where a Class becomes a queue action.
func (h *Handler) mapOutcome(log *slog.Logger, j *Job, res *gatewayclient.Result, err error) error {
	class := gatewayclient.ClassOf(err)
	log = log.With("class", class.String(), "err", err)
	switch class {
	case gatewayclient.ClassInvalid:
		log.Warn("job rejected by IR as invalid; archived")
		return &ParkedError{Class: class, Reason: "IR rejected the request as invalid (fix the data, then re-drive)", Err: err}
	case gatewayclient.ClassPermission:
		log.Warn("myIR logon lacks delegated access; archived")
		return &ParkedError{Class: class, Reason: noDelegationReason(j) + " (grant it in myIR, then re-drive)", Err: err}
	case gatewayclient.ClassConfig:
		log.Error("IR says the DSP is not set up for this; archived")
		return &ParkedError{Class: class, Reason: notOnboardedReason, Err: err}
	case gatewayclient.ClassAuth:
		// Refreshing token sets fleet-wide comes with the token-set work;
		// until then a rejected token needs the user to consent again.
		log.Warn("token rejected; job needs re-consent")
		return &ParkedError{Class: class, Reason: fmt.Sprintf("needs re-consent: the token set %q was rejected or has expired", j.Auth.TokenSet), Err: err}
	case gatewayclient.ClassAlreadyFiled:
		log.Warn("IR says already filed; parked for reconciliation")
		return &ParkedError{Class: class, Reason: "IR reports this return as already filed: reconcile (RetrieveStatus/RetrieveReturn) before anything is re-sent", Err: err}
	case gatewayclient.ClassUncertain:
		log.Error("filing outcome unknown; parked for reconciliation, never re-sent blindly")
		return &ParkedError{Class: class, Reason: "uncertain outcome: the return may have been filed; reconcile before it is ever sent again", Err: err}
	case gatewayclient.ClassMalformed:
		if j.Operation == OpFile {
			return &ParkedError{Class: gatewayclient.ClassUncertain, Reason: "IR's answer to a File could not be read, so the return may have been filed: reconcile before re-sending", Err: err}
		}
		log.Warn("unreadable gateway answer; will retry")
		return err
	case gatewayclient.ClassThrottled, gatewayclient.ClassUnavailable, gatewayclient.ClassBreakerOpen:
		log.Info("gateway pushed back; job snoozed without spending its retry budget")
		return err
	default:
		log.Warn("transient gateway failure; will retry")
		return err
	}
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

// IsFailure tells asynq whether err spends the job's retry budget. Delays —
// a snooze, throttling, an outage, an open breaker — don't.
func IsFailure(err error) bool {
	var se *SnoozeError
	if errors.As(err, &se) {
		return false
	}
	var re *ReconcileError
	if errors.As(err, &re) {
		return true
	}
	return gatewayclient.ClassOf(err).SpendsRetryBudget()
}

// RetryDelay tells asynq when to run a job again: after a snooze's delay, a
// 429's Retry-After, or an exponential back-off of at least 5 s (IR asks for
// no faster retries), with jitter so a fleet doesn't retry in lockstep.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var se *SnoozeError
	if errors.As(err, &se) {
		return max(se.Delay, time.Second)
	}
	var re *ReconcileError
	if errors.As(err, &re) {
		return max(re.Delay, time.Second) + jitter(time.Second)
	}
	var ge *gatewayclient.Error
	if errors.As(err, &ge) && ge.RetryAfter > 0 {
		return ge.RetryAfter + jitter(time.Second)
	}
	switch gatewayclient.ClassOf(err) {
	case gatewayclient.ClassThrottled, gatewayclient.ClassUnavailable, gatewayclient.ClassBreakerOpen:
		return 5*time.Second + jitter(5*time.Second)
	}
	d := 5 * time.Second << min(n, 7) // 5 s, 10 s, ... capped at ~10 min
	return d + jitter(d/2)
}

func jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return rand.N(max)
}
