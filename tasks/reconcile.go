package tasks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/schema"
)

// Reconciliation: a File whose outcome is unknown (its answer was lost, it
// was cut at its deadline, its answer could not be read, a worker died
// mid-send) or that IR refused as already filed (107, 160) is never sent
// again blindly. The next attempt asks IR first:
//
//  1. RetrieveStatus for the return's natural key. StatusNothingFiled
//     means nothing is filed: the ledger goes back to queued and the File
//     is sent as usual (BeginSend, then the call).
//  2. Otherwise RetrieveReturn, and its formFields are compared with the
//     ones we sent (see SameFormFields). The same: the ledger says filed
//     (with the submission key the status gave) and the job completes,
//     "filed (reconciled)". Different: a different return is filed for the
//     period; the job is parked for an operator (file an amendment).
//  3. A reconciliation call that fails transiently (throttled, outage,
//     unreadable answer) retries the job later; the File is not sent
//     meanwhile, because the ledger still refuses it.
//  4. A reconciliation call IR refuses for the job's own data parks it:
//     no delegated access (3, 4) as permission and not onboarded (5, 7)
//     as configuration, the reasons the File itself would get, with the
//     ledger entry left uncertain so that a re-drive reconciles first. A
//     look-up IR calls invalid is parked as uncertain, for an operator.
//
// Each reconciliation call takes a rate-limit permit and a breaker slot
// like any call: it costs IR a request.

// StatusNothingFiled is the statusCode RetrieveStatus answers when nothing
// is filed for the natural key and period. IR publishes no code for this
// case; 104 is the sandbox's convention (see the sandbox package doc), kept
// here, in one place, so that onboarding against IR's test environment
// changes one constant.
const StatusNothingFiled = 104

// Ledger is the durable filing ledger the handler consults around a File:
// *ledger.Ledger. Keys are LedgerKey(job).
type Ledger interface {
	Get(ctx context.Context, key string) (ledger.Entry, error)
	BeginSend(ctx context.Context, key, taskID, bodyHash string) (ledger.Entry, error)
	Filed(ctx context.Context, key, taskID string, f ledger.Filing) (ledger.Entry, error)
	Rejected(ctx context.Context, key, taskID string, r ledger.Rejection) (ledger.Entry, error)
	Uncertain(ctx context.Context, key, taskID, why string) (ledger.Entry, error)
	Release(ctx context.Context, key, taskID string) (ledger.Entry, error)
	Reopen(ctx context.Context, key, taskID string, seen ledger.Entry) (ledger.Entry, error)
}

var _ Ledger = (*ledger.Ledger)(nil)

// BodyHash is the hex SHA-256 of the body a job sends.
func BodyHash(j *Job) string {
	sum := sha256.Sum256([]byte(j.Body))
	return hex.EncodeToString(sum[:])
}

// LedgerKey is a File's ledger entry: its natural key, and for an
// amendment ("/amended") a prefix of the body's hash too, so that two
// different amendments of one return are two versions while the same
// amendment enqueued twice is one. It is "" for a job without a key.
func LedgerKey(j *Job) string {
	if j.Key == nil {
		return ""
	}
	k := j.Key.String()
	if j.Key.Amended {
		k += "/" + BodyHash(j)[:16]
	}
	return k
}

// ReconcileError brings a File back soon so that its next attempt
// reconciles it with IR: its outcome is unknown, or IR says it is already
// filed, and the ledger refuses to send it again until IR has been asked.
// It spends the job's retry budget, so a File that keeps ending uncertain
// stops after the job's MaxRetry and is archived with its outcome for an
// operator; a re-drive then reconciles again.
type ReconcileError struct {
	Delay  time.Duration
	Reason string
	Err    error
}

func (e *ReconcileError) Error() string {
	s := "reconcile in " + e.Delay.Round(time.Millisecond).String() + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ReconcileError) Unwrap() error { return e.Err }

// reconcileDelay is how soon a File with an unknown outcome is looked at
// again: long enough for IR to have committed what it received.
const reconcileDelay = 2 * time.Second

// ledgerJob is a File's identity in the ledger.
type ledgerJob struct {
	key, taskID, bodyHash string
}

func (h *Handler) ledgerJob(ctx context.Context, j *Job) *ledgerJob {
	if h.Ledger == nil || j.Operation != OpFile || j.Key == nil {
		return nil
	}
	id, ok := asynq.GetTaskID(ctx)
	if !ok || id == "" {
		id = j.ID()
	}
	return &ledgerJob{key: LedgerKey(j), taskID: id, bodyHash: BodyHash(j)}
}

// errAlreadyFiled stops a File whose ledger entry is filed: the job is done.
var errAlreadyFiled = errors.New("ledger says filed")

// errMustReconcile: the ledger refused to mark the File sending because an
// earlier attempt is in flight or its outcome is unknown.
var errMustReconcile = errors.New("ledger says the return must be settled first")

// beginSend is the last step before a File goes on the wire.
func (h *Handler) beginSend(ctx context.Context, lj *ledgerJob) error {
	_, err := h.Ledger.BeginSend(ctx, lj.key, lj.taskID, lj.bodyHash)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ledger.ErrFiled):
		return errAlreadyFiled
	case errors.Is(err, ledger.ErrMustReconcile):
		// Sending or unresolved: the caller reads the entry and settles it
		// (waits for another sender, or reconciles) before anything is sent.
		return errMustReconcile
	}
	// Without the ledger's mark the File must not go out.
	return &gatewayclient.Error{Class: gatewayclient.ClassRetryLater, Operation: OpFile, Message: "filing ledger unavailable", Err: err}
}

// ledgerContext is for ledger writes after a call: the task's own context
// may have ended (its deadline, a stopping worker), and what IR did must
// still be written down.
func ledgerContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

// settle records a File's outcome in the ledger and returns the error that
// replaces mapOutcome's, or nil to let mapOutcome decide.
//
//   - filed: ledger filed.
//   - invalid, permission, configuration: rejected (nothing filed).
//   - not sent, or answered by IR without filing (429, the "UnAuthorised"
//     fault, token rejected, 108 locked): released back to queued, and the
//     usual retry follows.
//   - already filed (107, 160): uncertain, and a ReconcileError.
//   - anything else after the request may have reached IR (deadline,
//     reset, unreadable answer, 5xx, 503 and 504 from IR's edge, -1):
//     uncertain. Uncertain and malformed answers return a ReconcileError;
//     outages and transient classes keep their usual retry, whose next
//     attempt reconciles because BeginSend refuses an uncertain entry.
func (h *Handler) settle(ctx context.Context, log *slog.Logger, lj *ledgerJob, res *gatewayclient.Result, callErr error) error {
	lctx, cancel := ledgerContext(ctx)
	defer cancel()
	var err error
	class := gatewayclient.ClassOf(callErr)
	switch {
	case callErr == nil:
		_, err = h.Ledger.Filed(lctx, lj.key, lj.taskID, ledger.Filing{GatewayID: res.GatewayID, SubmissionKey: res.SubmissionKey})
	case class == gatewayclient.ClassInvalid || class == gatewayclient.ClassPermission || class == gatewayclient.ClassConfig:
		var ge *gatewayclient.Error
		r := ledger.Rejection{Class: class.String()}
		if errors.As(callErr, &ge) {
			r.Code, r.Message = ge.Code, ge.Message
			if ge.StatusCode != 0 {
				r.Code = fmt.Sprint(ge.StatusCode)
			}
		}
		_, err = h.Ledger.Rejected(lctx, lj.key, lj.taskID, r)
	case notFiled(callErr):
		_, err = h.Ledger.Release(lctx, lj.key, lj.taskID)
	default:
		why := callErr.Error()
		if class == gatewayclient.ClassAlreadyFiled {
			why = "IR reports it already filed: " + why
		}
		if _, err := h.Ledger.Uncertain(lctx, lj.key, lj.taskID, why); err != nil {
			// The entry stays sending, which BeginSend refuses just the
			// same: reconciliation still comes first.
			log.Error("could not mark an uncertain File in the ledger", "err", err)
		}
		switch class {
		case gatewayclient.ClassAlreadyFiled:
			log.Warn("IR says already filed; reconciling on the next attempt")
			return &ReconcileError{Delay: reconcileDelay, Reason: "IR reports this return as already filed: checking it is ours (RetrieveStatus/RetrieveReturn)", Err: callErr}
		case gatewayclient.ClassUncertain, gatewayclient.ClassMalformed:
			log.Warn("filing outcome unknown; reconciling on the next attempt, never re-sent blindly")
			return &ReconcileError{Delay: reconcileDelay, Reason: "uncertain outcome: the return may have been filed; reconciling before it is ever sent again", Err: callErr}
		}
		return nil
	}
	if err != nil {
		log.Error("could not record the File's outcome in the ledger", "err", err)
	}
	return nil
}

// notFiled reports whether a failed File certainly filed nothing: the
// request never left this process, or IR's gateway answered it without
// reaching the filing (throttled, its "UnAuthorised" fault, a rejected
// token, 108 locked for processing).
func notFiled(err error) bool {
	var ge *gatewayclient.Error
	if !errors.As(err, &ge) {
		return true // not a gateway outcome: nothing was sent
	}
	switch {
	case !ge.Sent:
		return true
	case ge.Class == gatewayclient.ClassThrottled, ge.Code == gatewayclient.FaultUnAuthorised:
		return true
	case ge.Class == gatewayclient.ClassAuth:
		return true
	case ge.Class == gatewayclient.ClassRetryLater && ge.StatusCode == 108:
		return true
	}
	return false
}

// checkLedger runs before a File takes its permit. It reports done when
// the job is finished (filed already, reconciled, parked, or to be retried)
// with the error to return; otherwise the File may go ahead to BeginSend.
func (h *Handler) checkLedger(ctx context.Context, log *slog.Logger, t *asynq.Task, j *Job, creds gatewayclient.Credentials, lj *ledgerJob, budget Budget) (done bool, err error) {
	e, err := h.Ledger.Get(ctx, lj.key)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return false, nil
	case err != nil:
		return true, &gatewayclient.Error{Class: gatewayclient.ClassRetryLater, Operation: OpFile, Message: "filing ledger unavailable", Err: err}
	}
	switch e.State {
	case ledger.StateFiled:
		h.completeFiled(log, t, j, e, "filed (ledger): IR accepted this return earlier")
		return true, nil
	case ledger.StateSending:
		// An attempt marked it sending and never said how it ended: its
		// worker died mid-send, or is alive and still calling. Another job
		// may carry the same return; and this very task may be running
		// twice, when the reaper put back the job of a worker it took for
		// dead (asynq's own recovery, a minute on, has the same risk).
		// Until that attempt's call has had time to end, it may be in
		// flight, and asking IR now could miss it and send the return
		// again: wait for the call's budget to pass, then reconcile.
		if wait := e.SendingAt.Add(budget.TaskTimeout()).Sub(h.now()); wait > 0 {
			who := "task " + e.TaskID
			if e.TaskID == lj.taskID {
				who = "an earlier attempt of this task"
			}
			return true, &SnoozeError{Delay: wait, Reason: fmt.Sprintf("%s is or was sending this return; reconciling once its call must have ended", who)}
		}
		return h.reconcile(ctx, log, t, j, creds, lj, e, budget)
	case ledger.StateUncertain:
		return h.reconcile(ctx, log, t, j, creds, lj, e, budget)
	}
	return false, nil
}

func (h *Handler) now() time.Time {
	if h.clock != nil {
		return h.clock()
	}
	return time.Now()
}

// completeFiled finishes a job whose return is filed without a File of
// its own.
func (h *Handler) completeFiled(log *slog.Logger, t *asynq.Task, j *Job, e ledger.Entry, reason string) {
	out := h.outcome(j, nil, nil, 0)
	out.Reason = reason
	out.GatewayID, out.SubmissionKey = e.GatewayID, e.SubmissionKey
	if err := writeResult(t, out); err != nil {
		log.Warn("job done but its result could not be stored", "err", err)
	}
	log.Info("job done: "+reason, "submission_key", e.SubmissionKey)
}

// reconcile asks IR about a File whose previous outcome is unknown; see
// the top of this file. It reports done (and the job's error) unless IR has
// nothing filed, in which case the ledger is back to queued and the File
// may be sent.
func (h *Handler) reconcile(ctx context.Context, log *slog.Logger, t *asynq.Task, j *Job, creds gatewayclient.Credentials, lj *ledgerJob, seen ledger.Entry, budget Budget) (bool, error) {
	done, err := h.askIR(ctx, log, t, j, creds, lj, seen, budget)
	h.Metrics.reconciled(done, err)
	return done, err
}

// askIR is reconcile's work: the calls to IR and the decision.
func (h *Handler) askIR(ctx context.Context, log *slog.Logger, t *asynq.Task, j *Job, creds gatewayclient.Credentials, lj *ledgerJob, seen ledger.Entry, budget Budget) (bool, error) {
	log = log.With("reconcile", seen.State, "attempts", seen.Attempts)
	status, err := RetrieveRequest([]byte(j.Body), "")
	if err != nil {
		return true, &ParkedError{Class: gatewayclient.ClassUncertain, Reason: "the File's outcome is unknown and no RetrieveStatus request can be built from its payload: reconcile by hand", Err: err}
	}
	res, callErr, stop := h.lookUp(ctx, log, j, creds, "RetrieveStatus", status, budget)
	if stop != nil {
		return true, stop
	}
	st, err := ReadStatus(res, callErr)
	if err != nil {
		return true, h.reconcileFailed(log, j, lj, "RetrieveStatus", err)
	}
	lctx, cancel := ledgerContext(ctx)
	defer cancel()
	if st.NothingFiled {
		return h.reopen(lctx, log, lj, seen, "IR has nothing filed for it")
	}

	retrieve, err := RetrieveRequest([]byte(j.Body), st.SubmissionKey)
	if err != nil {
		return true, &ParkedError{Class: gatewayclient.ClassUncertain, Reason: "the File's outcome is unknown and no RetrieveReturn request can be built from its payload: reconcile by hand", Err: err}
	}
	res, callErr, stop = h.lookUp(ctx, log, j, creds, "RetrieveReturn", retrieve, budget)
	if stop != nil {
		return true, stop
	}
	if callErr != nil {
		if res != nil && res.StatusCode == StatusNothingFiled {
			// The status said filed: a RetrieveReturn finding nothing is
			// retried, never taken as "not filed".
			return true, &gatewayclient.Error{Class: gatewayclient.ClassRetryLater, Operation: "RetrieveReturn", StatusCode: res.StatusCode,
				Message: "RetrieveStatus found the return but RetrieveReturn did not; asking again later"}
		}
		return true, h.reconcileFailed(log, j, lj, "RetrieveReturn", callErr)
	}
	same, err := SameFormFields([]byte(j.Body), res.Body)
	if err != nil {
		if errors.Is(err, errOurPayload) {
			return true, &ParkedError{Class: gatewayclient.ClassUncertain, Reason: "cannot compare the filed return with ours: reconcile by hand", Err: err}
		}
		return true, h.reconcileFailed(log, j, lj, "RetrieveReturn", &gatewayclient.Error{Class: gatewayclient.ClassMalformed, Operation: "RetrieveReturn", Message: "unreadable formFields", Err: err})
	}
	if !same {
		if j.Key.Amended {
			// RetrieveReturn shows the latest version filed; ours is not
			// it, so our amendment did not arrive.
			return h.reopen(lctx, log, lj, seen, "the latest version IR holds is not this amendment")
		}
		why := "a different return is already filed for this period"
		if _, err := h.Ledger.Uncertain(lctx, lj.key, lj.taskID, why); err != nil && !errors.Is(err, ledger.ErrConflict) {
			log.Error("could not record the reconciliation in the ledger", "err", err)
		}
		log.Warn("reconciled: a different return is filed for this period; parked")
		return true, &ParkedError{Class: gatewayclient.ClassAlreadyFiled, Reason: why + " (compare it with this job's; file an amendment if this one should stand)"}
	}
	e, err := h.Ledger.Filed(lctx, lj.key, lj.taskID, ledger.Filing{SubmissionKey: st.SubmissionKey, Reconciled: true})
	if err != nil {
		log.Error("reconciled as filed but the ledger could not record it", "err", err)
		e = seen
		e.SubmissionKey = st.SubmissionKey
	}
	h.completeFiled(log, t, j, e, "filed (reconciled): IR holds this return as sent")
	return true, nil
}

// lookUp makes one of reconciliation's calls. IR refusing the access
// token (it expired mid-batch) gets the token set refreshed, fleet-wide
// and once, and the call made once more, as for the File itself: the
// look-up must not park a job its user still consents to.
func (h *Handler) lookUp(ctx context.Context, log *slog.Logger, j *Job, creds gatewayclient.Credentials, op string, payload []byte, budget Budget) (res *gatewayclient.Result, callErr, stop error) {
	for attempt := 0; ; attempt++ {
		res, callErr, _, stop = h.call(ctx, log, j.Endpoint, gatewayclient.Request{Endpoint: j.Endpoint, Service: j.Service, Operation: op, Payload: payload, Credentials: creds}, budget, nil)
		if stop != nil || attempt >= maxTokenRefusals || gatewayclient.ClassOf(callErr) != gatewayclient.ClassAuth || j.Auth.Mode != gatewayclient.AuthOAuth {
			return res, callErr, stop
		}
		r, ok := creds.(tokenRejecter)
		if !ok {
			return res, callErr, nil
		}
		if err := r.Rejected(ctx); err != nil {
			// A dead set parks the job for re-consent (reconcileFailed);
			// a refresh that failed for now is retried later.
			return res, classifyCredentialError(err), nil
		}
		log.Info("IR refused the access token during reconciliation; the token set was refreshed, asking again", "op", op)
	}
}

// reopen puts the entry back to queued so the File can be sent now.
func (h *Handler) reopen(ctx context.Context, log *slog.Logger, lj *ledgerJob, seen ledger.Entry, why string) (bool, error) {
	if _, err := h.Ledger.Reopen(ctx, lj.key, lj.taskID, seen); err != nil {
		if errors.Is(err, ledger.ErrConflict) || errors.Is(err, ledger.ErrFiled) {
			// Another attempt moved it meanwhile: look again shortly.
			return true, &SnoozeError{Delay: reconcileDelay, Reason: "the ledger entry changed during reconciliation"}
		}
		return true, &gatewayclient.Error{Class: gatewayclient.ClassRetryLater, Operation: OpFile, Message: "filing ledger unavailable", Err: err}
	}
	log.Info("reconciled: not filed (" + why + "); sending")
	return false, nil
}

// reconcileFailed maps a failed reconciliation call onto asynq: anything
// IR may answer differently later is retried (throttling and outages
// without spending the retry budget); a refusal no retry can change is
// parked. The File itself is never sent meanwhile.
func (h *Handler) reconcileFailed(log *slog.Logger, j *Job, lj *ledgerJob, op string, err error) error {
	class := gatewayclient.ClassOf(err)
	log = log.With("class", class.String(), "err", err)
	switch class {
	case gatewayclient.ClassAuth:
		log.Warn("token rejected during reconciliation; job needs re-consent")
		return &ParkedError{Class: class, Reason: fmt.Sprintf("needs re-consent: the token set %q was rejected or has expired (the File's outcome is still unknown)", j.Auth.TokenSet), Err: err}
	case gatewayclient.ClassPermission, gatewayclient.ClassConfig:
		// The job's data calls for this park whatever the File did (a
		// worker that died while sending a File IR would refuse lands
		// here). The ledger entry stays uncertain, so a re-drive once
		// access is granted reconciles before anything is sent.
		h.keepUncertain(log, lj, fmt.Sprintf("IR refused %s (%s)", op, class))
		log.Warn("IR refused the reconciliation call; parked")
		why := notOnboardedReason
		if class == gatewayclient.ClassPermission {
			why = noDelegationReason(j)
		}
		return &ParkedError{Class: class, Reason: fmt.Sprintf("%s; IR refused %s, so the File's outcome is still unknown (it is reconciled before any re-send)", why, op), Err: err}
	case gatewayclient.ClassInvalid:
		log.Error("IR refused the reconciliation call; parked")
		return &ParkedError{Class: gatewayclient.ClassUncertain, Reason: fmt.Sprintf("the File's outcome is unknown and IR refused %s (%s): reconcile by hand before re-sending", op, class), Err: err}
	}
	log.Warn("reconciliation call failed; will retry, the File is not sent meanwhile")
	return fmt.Errorf("reconcile with %s: %w", op, err)
}

// keepUncertain marks a File whose outcome reconciliation could not learn
// as uncertain (from sending, when its worker died), so the batch report
// and a re-drive see it for what it is.
func (h *Handler) keepUncertain(log *slog.Logger, lj *ledgerJob, why string) {
	ctx, cancel := ledgerContext(context.Background())
	defer cancel()
	if _, err := h.Ledger.Uncertain(ctx, lj.key, lj.taskID, why); err != nil && !errors.Is(err, ledger.ErrConflict) {
		// Left sending, BeginSend refuses it just the same.
		log.Error("could not mark the File uncertain in the ledger", "err", err)
	}
}

// --- Requests -------------------------------------------------------------

// Namespaces of the payloads reconciliation reads and writes.
const (
	nsReturnGSTv1    = "urn:www.ird.govt.nz/GWS:types/ReturnGST.v1"
	nsReturnEIv2     = "urn:www.ird.govt.nz/GWS:types/ReturnEI.v2"
	nsReturnCommonv1 = "urn:www.ird.govt.nz/GWS:types/ReturnCommon.v1"
	nsReturnCommonv2 = "urn:www.ird.govt.nz/GWS:types/ReturnCommon.v2"
	nsCommonv1       = "urn:www.ird.govt.nz/GWS:types/Common.v1"
	nsCommonv2       = "urn:www.ird.govt.nz/GWS:types/Common.v2"
)

// fileHeader is what a RetrieveStatus or RetrieveReturn request needs from
// a filed payload.
type fileHeader struct {
	root                          string // the fileRequest's namespace
	provider                      [][2]string
	identifier, identifierType    string
	accountType, periodEnd, major string
	payDay                        string
}

func readFileHeader(body []byte) (fileHeader, error) {
	var h fileHeader
	dec := xml.NewDecoder(bytes.NewReader(body))
	var (
		path []string
		text strings.Builder
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return h, fmt.Errorf("payload is not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(path) == 0 {
				if t.Name.Local != "fileRequest" {
					return h, fmt.Errorf("payload is a %s, not a fileRequest", t.Name.Local)
				}
				h.root = t.Name.Space
			}
			if t.Name.Local == "identifier" && h.identifier == "" {
				for _, a := range t.Attr {
					if a.Name.Local == "IdentifierValueType" {
						h.identifierType = a.Value
					}
				}
			}
			path = append(path, t.Name.Local)
			text.Reset()
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			v := strings.TrimSpace(text.String())
			parent := ""
			if len(path) >= 2 {
				parent = path[len(path)-2]
			}
			switch name := t.Name.Local; {
			case parent == "softwareProviderData":
				h.provider = append(h.provider, [2]string{name, v})
			case name == "identifier" && h.identifier == "":
				h.identifier = v
			case name == "accountType" && h.accountType == "":
				h.accountType = v
			case name == "periodEndDate" && h.periodEnd == "":
				h.periodEnd = v
			case name == "majorFormType" && h.major == "":
				h.major = v
			case name == "payDayDate" && h.payDay == "":
				h.payDay = v
			}
			text.Reset()
			path = path[:len(path)-1]
		}
	}
	switch {
	case h.root != nsReturnGSTv1 && h.root != nsReturnEIv2:
		return h, fmt.Errorf("reconciliation knows GST v1 and EI v2 returns, not %q", h.root)
	case len(h.provider) == 0, h.identifier == "", h.accountType == "", h.periodEnd == "", h.major == "":
		return h, errors.New("payload header lacks softwareProviderData, identifier, accountType, periodEndDate or majorFormType")
	case h.root == nsReturnEIv2 && h.payDay == "":
		return h, errors.New("payday return without a payDayDate")
	}
	return h, nil
}

// RetrieveRequest builds the payload of a RetrieveStatus or RetrieveReturn
// request (the two take the same element) for the return a File payload
// files, copying its software provider data and header: a GST v1
// retrieveFormInfoRequest or an EI v2 retrieveEIRequest, in the shapes of
// IR's samples. submissionKey, when known, narrows an EI request to one
// version filed. The result is checked against IR's XSDs.
func RetrieveRequest(fileBody []byte, submissionKey string) ([]byte, error) {
	h, err := readFileHeader(fileBody)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	esc := func(s string) string {
		var e bytes.Buffer
		_ = xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	common, retCommon := nsCommonv1, nsReturnCommonv1
	if h.root == nsReturnEIv2 {
		common, retCommon = nsCommonv2, nsReturnCommonv2
		b.WriteString(`<ei:retrieveEIRequest xmlns:ei="` + nsReturnEIv2 + `" xmlns:cmn="` + common + `" xmlns:rc="` + retCommon + `">`)
	} else {
		b.WriteString(`<rc:retrieveFormInfoRequest xmlns:rc="` + retCommon + `" xmlns:cmn="` + common + `">`)
	}
	b.WriteString(`<cmn:softwareProviderData>`)
	for _, p := range h.provider {
		b.WriteString(`<cmn:` + p[0] + `>` + esc(p[1]) + `</cmn:` + p[0] + `>`)
	}
	b.WriteString(`</cmn:softwareProviderData>`)
	b.WriteString(`<cmn:identifier`)
	if h.identifierType != "" {
		b.WriteString(` IdentifierValueType="` + esc(h.identifierType) + `"`)
	}
	b.WriteString(`>` + esc(h.identifier) + `</cmn:identifier>`)
	b.WriteString(`<cmn:accountType>` + esc(h.accountType) + `</cmn:accountType>`)
	b.WriteString(`<rc:periodEndDate>` + esc(h.periodEnd) + `</rc:periodEndDate>`)
	b.WriteString(`<rc:majorFormType>` + esc(h.major) + `</rc:majorFormType>`)
	if h.root == nsReturnEIv2 {
		b.WriteString(`<ei:payDayDate>` + esc(h.payDay) + `</ei:payDayDate>`)
		if submissionKey != "" {
			b.WriteString(`<ei:submissionKey>` + esc(submissionKey) + `</ei:submissionKey>`)
		}
		b.WriteString(`</ei:retrieveEIRequest>`)
	} else {
		b.WriteString(`</rc:retrieveFormInfoRequest>`)
	}
	if err := schema.Validate(b.Bytes()); err != nil {
		return nil, fmt.Errorf("retrieve request for the filed payload: %w", err)
	}
	return b.Bytes(), nil
}

// --- Answers --------------------------------------------------------------

// Status is what reconciliation reads from RetrieveStatus.
type Status struct {
	// NothingFiled: IR answered StatusNothingFiled.
	NothingFiled bool
	// Code is the status code of the latest version filed (SUB,
	// LPRCG...), informational.
	Code string
	// SubmissionKey is the latest version's submission key, if given.
	SubmissionKey string
}

// ReadStatus interprets a RetrieveStatus outcome (Client.Do's result and
// error). It returns the call's error when IR gave no usable answer, and a
// ClassMalformed error for a statusCode-0 answer it cannot read.
func ReadStatus(res *gatewayclient.Result, callErr error) (Status, error) {
	if callErr != nil {
		if res != nil && res.StatusCode == StatusNothingFiled {
			return Status{NothingFiled: true}, nil
		}
		return Status{}, callErr
	}
	if res == nil {
		return Status{}, &gatewayclient.Error{Class: gatewayclient.ClassMalformed, Operation: "RetrieveStatus", Message: "no answer"}
	}
	var st Status
	dec := xml.NewDecoder(bytes.NewReader(res.Body))
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Status{}, &gatewayclient.Error{Class: gatewayclient.ClassMalformed, Operation: "RetrieveStatus", Message: "unreadable answer", Err: err}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			text.Reset()
			if t.Name.Local == "status" {
				for _, a := range t.Attr {
					if a.Name.Local == "code" {
						st.Code = a.Value
					}
				}
			}
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			// ReturnCommon.v2 lists every version filed, oldest first
			// (as the sandbox and IR's sample do): the last one wins.
			if t.Name.Local == "submissionKey" {
				st.SubmissionKey = strings.TrimSpace(text.String())
			}
			text.Reset()
		}
	}
	return st, nil
}

// errOurPayload marks a comparison that failed on the payload we sent.
var errOurPayload = errors.New("our payload")

// Element names left out of a form-field comparison: IR assigns them
// (submissionKey, an employee's lineNumber, in IR's EI RetrieveReturn
// sample) or they direct the filing rather than belong to the return
// (isReverseReplace, absent from IR's sample answer).
var ignoredFields = []string{"submissionKey", "lineNumber", "isReverseReplace"}

// SameFormFields reports whether the formFields of a filed payload (a
// fileRequest) and of a RetrieveReturn answer hold the same return.
// Elements compare by local name (IR answers in other prefixes and
// namespaces than we send), text trimmed and decimals by value ("5" equals
// "5.00", as IR's EI sample answers), children in any order, empty
// elements and ignoredFields left out.
func SameFormFields(sent, answer []byte) (bool, error) {
	a, err := formFields(sent)
	if err != nil {
		return false, fmt.Errorf("%w: %w", errOurPayload, err)
	}
	b, err := formFields(answer)
	if err != nil {
		return false, err
	}
	return a == b, nil
}

var decimalRE = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?$`)

// formFields returns the canonical form of the first <formFields> in doc.
func formFields(doc []byte) (string, error) {
	type node struct {
		name     string
		text     strings.Builder
		children []string
	}
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var stack []*node
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if stack == nil && t.Name.Local != "formFields" {
				continue
			}
			if len(stack) > 64 {
				return "", errors.New("formFields nested too deep")
			}
			stack = append(stack, &node{name: t.Name.Local})
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			}
		case xml.EndElement:
			if len(stack) == 0 {
				continue
			}
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			var canon string
			switch {
			case slices.Contains(ignoredFields, n.name):
			case len(n.children) > 0:
				slices.Sort(n.children)
				canon = n.name + "{" + strings.Join(n.children, ",") + "}"
			default:
				if v := strings.TrimSpace(n.text.String()); v != "" {
					canon = n.name + "=" + strconv.Quote(normalizeValue(v))
				}
			}
			if len(stack) == 0 {
				return canon, nil // the end of <formFields>
			}
			if canon != "" {
				stack[len(stack)-1].children = append(stack[len(stack)-1].children, canon)
			}
		}
	}
	return "", errors.New("no formFields")
}

func normalizeValue(v string) string {
	if decimalRE.MatchString(v) {
		if r, ok := new(big.Rat).SetString(v); ok {
			return r.RatString()
		}
	}
	return v
}
