package gatewayclient

import (
	"errors"
	"fmt"
	"time"
)

// Class is what a gateway outcome means for the job that caused it. Every
// outcome — an IR statusCode, a SOAP fault, an HTTP status, a network error —
// maps onto exactly one Class, in Classify and nowhere else.
type Class int

const (
	// ClassOK: IR accepted the request (statusCode 0).
	ClassOK Class = iota
	// ClassRetryLater: transient on IR's side (108 locked, -1 unknown, the
	// "UnAuthorised" SOAP fault, other 5xx); retry with back-off of at least 5 s.
	ClassRetryLater
	// ClassInvalid: the request or its data is invalid (20, 21, 100-106,
	// 109, 131-173 except 160, REST EV1100, a payload failing IR's XSD); never retried.
	ClassInvalid
	// ClassPermission: the myIR logon lacks delegated access (3, 4, REST
	// EV1022); never retried, archived for an operator.
	ClassPermission
	// ClassConfig: the DSP is not onboarded for the operation or the account
	// type is not supported (5, 7); never retried.
	ClassConfig
	// ClassAuth: the access token is invalid, expired or missing (1, 2); refresh
	// the token once and retry, or park the job as needing re-consent.
	ClassAuth
	// ClassAlreadyFiled: IR says the return is already filed (107, 160); verify
	// it was ours by reconciliation, never a blind failure.
	ClassAlreadyFiled
	// ClassUncertain: a File whose request may have reached IR but whose
	// answer was lost (deadline, reset after sending); reconcile before any resend.
	ClassUncertain
	// ClassThrottled: IR pushed back (HTTP 429); slow the fleet, retry later
	// without spending the job's retry budget.
	ClassThrottled
	// ClassUnavailable: IR or the path to it is down (503, 504, reset before
	// sending, TLS or dial failure); counts toward the breaker, retry later
	// without spending the retry budget.
	ClassUnavailable
	// ClassBreakerOpen: the fleet's circuit breaker refused the call.
	ClassBreakerOpen
	// ClassMalformed: IR answered with something we cannot parse; retried
	// later (a half-written answer is usually transient), for a File it is
	// reconciled like ClassUncertain.
	ClassMalformed
)

var classNames = [...]string{
	ClassOK:           "ok",
	ClassRetryLater:   "retry_later",
	ClassInvalid:      "invalid",
	ClassPermission:   "permission",
	ClassConfig:       "config",
	ClassAuth:         "auth",
	ClassAlreadyFiled: "already_filed",
	ClassUncertain:    "uncertain",
	ClassThrottled:    "throttled",
	ClassUnavailable:  "unavailable",
	ClassBreakerOpen:  "breaker_open",
	ClassMalformed:    "malformed",
}

func (c Class) String() string {
	if c >= 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Retryable reports whether a job of this class may be tried again later.
func (c Class) Retryable() bool {
	switch c {
	case ClassRetryLater, ClassAuth, ClassThrottled, ClassUnavailable, ClassBreakerOpen, ClassMalformed:
		return true
	}
	return false
}

// SpendsRetryBudget reports whether a retry of this class counts against the
// job's retry budget. Throttling and outages are the fleet's problem, not the
// job's, so they don't.
func (c Class) SpendsRetryBudget() bool {
	switch c {
	case ClassThrottled, ClassUnavailable, ClassBreakerOpen:
		return false
	}
	return c.Retryable()
}

// Error is a classified gateway failure. It carries no secret: no token, no
// JWT, no payload.
type Error struct {
	Class      Class
	Operation  string
	HTTPStatus int           // 0 when no HTTP answer arrived
	StatusCode int           // IR's statusCode, when the body carried one
	Code       string        // REST error code (EV1022...) or SOAP fault code
	Message    string        // IR's errorMessage or a description of what failed
	RetryAfter time.Duration // from a 429's Retry-After, when present
	// Sent is true when the request may have reached IR (all of it was
	// written); it is what makes a failed File uncertain.
	Sent bool
	Err  error // the underlying network or parse error, if any
}

func (e *Error) Error() string {
	s := fmt.Sprintf("gateway %s: %s", e.Operation, e.Class)
	if e.HTTPStatus != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.HTTPStatus)
	}
	if e.StatusCode != 0 || e.Class == ClassOK {
		s += fmt.Sprintf(" statusCode=%d", e.StatusCode)
	}
	if e.Code != "" {
		s += " code=" + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the Class of err: the Class of a *Error in its chain,
// ClassOK for nil, and ClassRetryLater for anything unclassified.
func ClassOf(err error) Class {
	if err == nil {
		return ClassOK
	}
	var ge *Error
	if errors.As(err, &ge) {
		return ge.Class
	}
	return ClassRetryLater
}
