package gatewayclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
)

// Stage is how far a call got before its transport failed.
type Stage int

const (
	StageDial     Stage = iota + 1 // no connection was made
	StageTLS                       // the TLS handshake failed
	StageWrite                     // connected, the request was not fully written
	StageResponse                  // the request was written; the answer was lost or cut
)

var stageNames = [...]string{StageDial: "dial", StageTLS: "tls", StageWrite: "write", StageResponse: "response"}

func (s Stage) String() string {
	if s > 0 && int(s) < len(stageNames) {
		return stageNames[s]
	}
	return fmt.Sprintf("stage(%d)", int(s))
}

// TransportError is a call that got no complete answer. Client.Do knows,
// from an httptrace, whether the whole request was written (Sent): that is
// what turns a lost File into an uncertain outcome instead of a failure.
type TransportError struct {
	Stage Stage
	Sent  bool
	Err   error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("%s: %v", e.Stage, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Classify maps one gateway outcome onto its Class; it is the only place
// that does. res is the parsed answer (nil when none arrived), err the error
// from the transport or the parser. It returns nil for success.
//
// The order matters, and follows DESIGN.md:
//
//  1. An error that is already a *Error (e.g. from Credentials) keeps its class.
//  2. HTTP 429 is ClassThrottled (with Retry-After), 503 and 504 are
//     ClassUnavailable, whatever the body says: they come from IR's edge or a
//     proxy, not from the service.
//  3. Transport failures: dial, TLS handshake and certificate errors, and
//     resets before the request was written are ClassUnavailable. Once the
//     request was written, a lost answer (reset, EOF, deadline) of an
//     operation with ReconcileOnLoss (File) is ClassUncertain; of any other
//     operation ClassRetryLater for a deadline and ClassUnavailable for a
//     reset. When it is not known whether the request was written (a bare
//     network error from a caller), a File is taken as uncertain.
//  4. A SOAP fault: "UnAuthorised" (IR's throttle) and Receiver faults are
//     ClassRetryLater; Sender, VersionMismatch, MustUnderstand and
//     DataEncodingUnknown faults are ClassInvalid (resending won't help).
//  5. A body that could not be understood: by HTTP status (other 5xx
//     ClassRetryLater; 401/403 ClassAuth; a redirect, or 404 on a SOAP
//     service, ClassConfig, as the URL is wrong; other 4xx ClassInvalid),
//     else ClassMalformed.
//  6. REST: error code EV1022 is ClassPermission, EV1100 ClassInvalid; then
//     401/403 ClassAuth, other 4xx ClassInvalid, 5xx ClassRetryLater.
//  7. SOAP statusCode: 0 ok; 1, 2 ClassAuth; 3, 4 ClassPermission; 5, 7
//     ClassConfig; 20, 21, 100-106, 109, 131-173 except 160 ClassInvalid;
//     107, 160 ClassAlreadyFiled; 108, -1 ClassRetryLater.
//
// A statusCode outside IR's table (e.g. the Employment service's 111-130)
// is ClassInvalid, with the code in the message: a code never seen before
// goes to an operator once rather than being retried in a loop, and IR's
// known transient conditions all have codes of their own.
//
// A context.Canceled error is only handed to Classify by Client.Do when the
// cancelled call may have filed a return; see Client.Do.
func Classify(op Operation, res *Result, err error) *Error {
	var ge *Error
	if errors.As(err, &ge) {
		c := *ge
		if c.Operation == "" {
			c.Operation = op.Name
		}
		return &c
	}

	e := &Error{Operation: op.Name, Err: err}
	if res != nil {
		e.HTTPStatus = res.HTTPStatus
		e.StatusCode = res.StatusCode
		e.Message = res.ErrorMessage
		e.RetryAfter = res.RetryAfter
		e.Sent = true // IR (or something in front of it) answered
	}
	status := e.HTTPStatus

	// 2. Push-back from the HTTP layer.
	switch status {
	case http.StatusTooManyRequests:
		e.Class = ClassThrottled
		return e
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		e.Class = ClassUnavailable
		return e
	}

	var fault *SOAPFault
	switch {
	case err == nil:
	case errors.As(err, &fault):
		// 4.
		e.Code = fault.Code
		if fault.Subcode != "" {
			e.Code = fault.Subcode
		}
		e.Message = fault.Reason
		switch {
		case fault.UnAuthorised():
			e.Code = FaultUnAuthorised
			e.Class = ClassRetryLater
		case fault.Code == "Receiver":
			e.Class = ClassRetryLater
		default:
			e.Class = ClassInvalid
		}
		return e
	case errors.Is(err, ErrMalformed):
		// 5.
		switch {
		case status >= 500:
			e.Class = ClassRetryLater
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			e.Class = ClassAuth
		case status == http.StatusNotFound && op.Service.SOAP(), status >= 300 && status < 400:
			e.Class = ClassConfig
		case status >= 400:
			e.Class = ClassInvalid
		default:
			e.Class = ClassMalformed
		}
		return e
	default:
		// 3.
		return classifyTransport(op, e, err)
	}

	if res == nil {
		e.Class = ClassMalformed
		e.Message = "no answer and no error"
		return e
	}

	if !op.Service.SOAP() {
		return classifyREST(e, res)
	}

	// 7.
	switch c := res.StatusCode; {
	case c == 0:
		return nil
	case c == 1 || c == 2:
		e.Class = ClassAuth
	case c == 3 || c == 4:
		e.Class = ClassPermission
	case c == 5 || c == 7:
		e.Class = ClassConfig
	case c == 107 || c == 160:
		e.Class = ClassAlreadyFiled
	case c == 108 || c == -1:
		e.Class = ClassRetryLater
	case c == 20 || c == 21 || (c >= 100 && c <= 106) || c == 109 || (c >= 131 && c <= 173):
		e.Class = ClassInvalid
	default:
		e.Class = ClassInvalid
		e.Message = fmt.Sprintf("unrecognised statusCode %d: %s", c, res.ErrorMessage)
	}
	return e
}

// REST error codes with a meaning of their own.
const (
	RESTCodeNoAccess   = "EV1022" // no delegated access to the identifier
	RESTCodeValidation = "EV1100" // invalid input parameters
)

func classifyREST(e *Error, res *Result) *Error {
	for _, re := range res.RESTErrors {
		switch re.Code {
		case RESTCodeNoAccess:
			e.Class, e.Code, e.Message = ClassPermission, re.Code, re.Message
			return e
		case RESTCodeValidation:
			e.Class, e.Code, e.Message = ClassInvalid, re.Code, re.Message
			return e
		}
	}
	if len(res.RESTErrors) > 0 {
		e.Code = res.RESTErrors[0].Code
	}
	switch s := res.HTTPStatus; {
	case s >= 200 && s < 300 && len(res.RESTErrors) == 0:
		return nil
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.Class = ClassAuth
	case s >= 500:
		e.Class = ClassRetryLater
	case s >= 400 || len(res.RESTErrors) > 0:
		e.Class = ClassInvalid
	default:
		e.Class = ClassMalformed
		e.Message = fmt.Sprintf("unexpected HTTP status %d", s)
	}
	return e
}

func classifyTransport(op Operation, e *Error, err error) *Error {
	var te *TransportError
	known := errors.As(err, &te)
	sent := known && te.Sent
	if known && (te.Stage == StageDial || te.Stage == StageTLS) {
		sent = false
	}
	if tlsFailure(err) {
		known, sent = true, false
	}
	e.Sent = sent
	uncertain := op.ReconcileOnLoss && (sent || !known)

	switch {
	case errors.Is(err, context.Canceled):
		// Client.Do returns the caller's own cancellation as is unless the
		// cancelled call may have filed a return.
		if uncertain {
			e.Class = ClassUncertain
			e.Sent = true
		} else {
			e.Class = ClassRetryLater
		}
	case isTimeout(err):
		switch {
		case uncertain:
			e.Class, e.Sent = ClassUncertain, true
		case sent:
			e.Class = ClassRetryLater
		default:
			e.Class = ClassUnavailable
		}
	default:
		if uncertain {
			e.Class, e.Sent = ClassUncertain, true
		} else {
			e.Class = ClassUnavailable
		}
	}
	return e
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tlsFailure reports whether err shows the TLS session was refused, by us
// (certificate verification, a server that is not TLS or speaks an old
// version) or by the server. With TLS 1.3 a server verifies the client
// certificate after the client considers the handshake done, so the client
// writes its request and only then reads the server's alert (e.g.
// "certificate required"); the request never reached the HTTP layer, so it
// counts as not sent. crypto/tls reports a received alert as a *net.OpError
// whose Op is "remote error", and keeps the alert's type unexported; the Op
// field is the only typed handle on it.
func tlsFailure(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		rhe tls.RecordHeaderError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		ae  tls.AlertError
		oe  *net.OpError
	)
	switch {
	case errors.As(err, &cve), errors.As(err, &rhe), errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci), errors.As(err, &ae):
		return true
	case errors.As(err, &oe) && oe.Op == "remote error":
		return true
	}
	return false
}

// ThrottleSignal reports whether err is one of IR's signals to slow the
// whole fleet down: HTTP 429, 503 or 504, the "UnAuthorised" SOAP fault, or
// a connection reset. The limiter should lower its rate on these; the class
// alone does not say it (an UnAuthorised fault is ClassRetryLater).
func ThrottleSignal(err error) bool {
	if err == nil {
		return false
	}
	var ge *Error
	if errors.As(err, &ge) {
		switch {
		case ge.Class == ClassThrottled:
			return true
		case ge.HTTPStatus == http.StatusServiceUnavailable || ge.HTTPStatus == http.StatusGatewayTimeout:
			return true
		case ge.Code == FaultUnAuthorised:
			return true
		}
	}
	var f *SOAPFault
	if errors.As(err, &f) && f.UnAuthorised() {
		return true
	}
	return errors.Is(err, syscall.ECONNRESET)
}

// GatewayFailure reports whether err says that IR's gateway, or the path to
// it, is failing: what the circuit breaker counts. An answer IR gave in a
// well-formed body (even a statusCode that means "retry later", such as 108)
// shows a working gateway and is not a failure; a 5xx, a network or TLS
// failure, a call cut at its deadline (a slow failure) or an unreadable
// answer is.
func GatewayFailure(err error) bool {
	if err == nil || BreakerExcluded(err) {
		return false
	}
	var ge *Error
	if !errors.As(err, &ge) {
		return false // not a gateway outcome (e.g. our own credentials)
	}
	switch ge.Class {
	case ClassUnavailable, ClassUncertain, ClassMalformed:
		return true
	case ClassRetryLater:
		return ge.HTTPStatus == 0 || ge.HTTPStatus >= 500
	}
	return false
}

// BreakerExcluded reports whether err must not count for the circuit
// breaker either way: throttling is the limiter's business, an open
// breaker is the breaker's own answer, and the caller's cancellation says
// nothing about IR.
func BreakerExcluded(err error) bool {
	if err == nil {
		return false
	}
	var ge *Error
	if errors.As(err, &ge) && (ge.Class == ClassThrottled || ge.Class == ClassBreakerOpen) {
		return true
	}
	// A File cancelled after it was sent is uncertain for the job, but the
	// cancellation was ours, not IR's failing.
	return errors.Is(err, context.Canceled)
}
