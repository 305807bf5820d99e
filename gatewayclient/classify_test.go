package gatewayclient

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestClassifyStatusCodes(t *testing.T) {
	t.Parallel()
	file, _ := LookupOperation(ServiceReturns, "File")
	want := func(c int) Class {
		switch {
		case c == 0:
			return ClassOK
		case c == 1 || c == 2:
			return ClassAuth
		case c == 3 || c == 4:
			return ClassPermission
		case c == 5 || c == 7:
			return ClassConfig
		case c == 107 || c == 160:
			return ClassAlreadyFiled
		case c == 108 || c == -1:
			return ClassRetryLater
		}
		return ClassInvalid // the table's invalid codes, and every unknown code
	}
	// Every code from -5 to 300, each checked against DESIGN.md's table.
	for c := -5; c <= 300; c++ {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			t.Parallel()
			res := &Result{HTTPStatus: 200, StatusCode: c, ErrorMessage: "msg"}
			e := Classify(file, res, nil)
			got := ClassOf(errOrNil(e))
			if got != want(c) {
				t.Fatalf("statusCode %d: class %v, want %v", c, got, want(c))
			}
			if e != nil && (e.StatusCode != c || !e.Sent || e.Operation != "File") {
				t.Errorf("Error = %+v", e)
			}
		})
	}
	// The explicit list of the design table, so a mistake in want() can't hide one.
	explicit := map[int]Class{0: ClassOK, 1: ClassAuth, 2: ClassAuth, 3: ClassPermission, 4: ClassPermission,
		5: ClassConfig, 7: ClassConfig, 20: ClassInvalid, 21: ClassInvalid, 100: ClassInvalid, 106: ClassInvalid,
		107: ClassAlreadyFiled, 108: ClassRetryLater, 109: ClassInvalid, 131: ClassInvalid, 159: ClassInvalid,
		160: ClassAlreadyFiled, 161: ClassInvalid, 173: ClassInvalid, -1: ClassRetryLater}
	for c, cl := range explicit {
		if got := ClassOf(errOrNil(Classify(file, &Result{HTTPStatus: 200, StatusCode: c}, nil))); got != cl {
			t.Errorf("statusCode %d: %v, want %v", c, got, cl)
		}
	}
	e := Classify(file, &Result{HTTPStatus: 200, StatusCode: 115, ErrorMessage: "bank"}, nil)
	if e.Message != "unrecognised statusCode 115: bank" {
		t.Errorf("unknown code message = %q", e.Message)
	}
}

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassifyTransportAndHTTP(t *testing.T) {
	t.Parallel()
	file, _ := LookupOperation(ServiceReturns, "File")
	status, _ := LookupOperation(ServiceReturns, "RetrieveStatus")
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name  string
		op    Operation
		res   *Result
		err   error
		class Class
		sent  bool
	}{
		{"429", file, &Result{HTTPStatus: 429, RetryAfter: 7 * time.Second}, ErrMalformed, ClassThrottled, true},
		{"503", file, &Result{HTTPStatus: 503}, ErrMalformed, ClassUnavailable, true},
		{"504", status, &Result{HTTPStatus: 504}, nil, ClassUnavailable, true},
		{"500 unparseable", status, &Result{HTTPStatus: 500}, ErrMalformed, ClassRetryLater, true},
		{"502 unparseable", file, &Result{HTTPStatus: 502}, ErrMalformed, ClassRetryLater, true},
		{"200 unparseable", file, &Result{HTTPStatus: 200}, ErrMalformed, ClassMalformed, true},
		{"no answer no error", file, nil, nil, ClassMalformed, false},

		{"dial refused File", file, nil, &TransportError{Stage: StageDial, Err: dial}, ClassUnavailable, false},
		{"tls File", file, nil, &TransportError{Stage: StageTLS, Err: x509.UnknownAuthorityError{}}, ClassUnavailable, false},
		{"remote alert after write File", file, nil, &TransportError{Stage: StageResponse, Sent: true, Err: &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}}, ClassUnavailable, false},
		{"reset before write File", file, nil, &TransportError{Stage: StageWrite, Err: reset}, ClassUnavailable, false},
		{"reset after write File", file, nil, &TransportError{Stage: StageResponse, Sent: true, Err: reset}, ClassUncertain, true},
		{"EOF after write File", file, nil, &TransportError{Stage: StageResponse, Sent: true, Err: io.ErrUnexpectedEOF}, ClassUncertain, true},
		{"reset after write status", status, nil, &TransportError{Stage: StageResponse, Sent: true, Err: reset}, ClassUnavailable, true},
		{"deadline after write File", file, nil, &TransportError{Stage: StageResponse, Sent: true, Err: context.DeadlineExceeded}, ClassUncertain, true},
		{"deadline after write status", status, nil, &TransportError{Stage: StageResponse, Sent: true, Err: context.DeadlineExceeded}, ClassRetryLater, true},
		{"net timeout after write status", status, nil, &TransportError{Stage: StageResponse, Sent: true, Err: timeoutErr{}}, ClassRetryLater, true},
		{"deadline before write File", file, nil, &TransportError{Stage: StageDial, Err: context.DeadlineExceeded}, ClassUnavailable, false},
		{"cancel after write File", file, nil, &TransportError{Stage: StageResponse, Sent: true, Err: context.Canceled}, ClassUncertain, true},
		{"cancel before write File", file, nil, &TransportError{Stage: StageWrite, Err: context.Canceled}, ClassRetryLater, false},
		{"bare reset File: unknown, so uncertain", file, nil, reset, ClassUncertain, true},
		{"bare reset status", status, nil, reset, ClassUnavailable, false},
		{"bare dial-level TLS error File", file, nil, x509.UnknownAuthorityError{}, ClassUnavailable, false},
		{"already classified", file, nil, &Error{Class: ClassAuth, Message: "expired"}, ClassAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := Classify(tt.op, tt.res, tt.err)
			if e == nil {
				t.Fatalf("nil, want %v", tt.class)
			}
			if e.Class != tt.class || e.Sent != tt.sent {
				t.Fatalf("class %v sent %v, want %v %v (%v)", e.Class, e.Sent, tt.class, tt.sent, e)
			}
			if e.Operation != tt.op.Name {
				t.Errorf("Operation = %q", e.Operation)
			}
			if tt.err != nil && !errors.Is(e, tt.err) && tt.class != ClassAuth {
				t.Errorf("error chain lost %v", tt.err)
			}
			if tt.res != nil && e.RetryAfter != tt.res.RetryAfter {
				t.Errorf("RetryAfter = %v", e.RetryAfter)
			}
		})
	}
}

func TestThrottleSignal(t *testing.T) {
	t.Parallel()
	file, _ := LookupOperation(ServiceReturns, "File")
	reset := &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"429", Classify(file, &Result{HTTPStatus: 429}, nil), true},
		{"503", Classify(file, &Result{HTTPStatus: 503}, nil), true},
		{"504", Classify(file, &Result{HTTPStatus: 504}, nil), true},
		{"UnAuthorised fault", Classify(file, &Result{HTTPStatus: 500}, &SOAPFault{Code: "Sender", Subcode: "UnAuthorised"}), true},
		{"reset", Classify(file, nil, &TransportError{Stage: StageResponse, Sent: true, Err: reset}), true},
		{"code 4", Classify(file, &Result{HTTPStatus: 200, StatusCode: 4}, nil), false},
		{"500", Classify(file, &Result{HTTPStatus: 500}, ErrMalformed), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ThrottleSignal(tt.err); got != tt.want {
				t.Errorf("ThrottleSignal(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-3", 0},
		{"12", 12 * time.Second},
		{" 5 ", 5 * time.Second},
		{"999999999", time.Hour},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second},
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0},
		{"Sun, 01 Mar 2027 11:00:00 GMT", time.Hour},
		{"soon", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := parseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestBreakerVerdicts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		err               error
		failure, excluded bool
	}{
		{"success", nil, false, false},
		{"503", &Error{Class: ClassUnavailable, HTTPStatus: 503}, true, false},
		{"dial failure", &Error{Class: ClassUnavailable, Err: errors.New("connection refused")}, true, false},
		{"File cut at its deadline", &Error{Class: ClassUncertain, Sent: true, Err: context.DeadlineExceeded}, true, false},
		{"unreadable answer", &Error{Class: ClassMalformed, HTTPStatus: 200}, true, false},
		{"500 fault", &Error{Class: ClassRetryLater, HTTPStatus: 500}, true, false},
		{"108 locked in a 200 body", &Error{Class: ClassRetryLater, HTTPStatus: 200, StatusCode: 108}, false, false},
		{"invalid data", &Error{Class: ClassInvalid, HTTPStatus: 200, StatusCode: 21}, false, false},
		{"permission", &Error{Class: ClassPermission, HTTPStatus: 200, StatusCode: 4}, false, false},
		{"429", &Error{Class: ClassThrottled, HTTPStatus: 429}, false, true},
		{"breaker open", &Error{Class: ClassBreakerOpen}, false, true},
		{"our cancellation", context.Canceled, false, true},
		{"File cancelled after sending", &Error{Class: ClassUncertain, Sent: true, Err: context.Canceled}, false, true},
		{"not a gateway outcome", errors.New("redis down"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := GatewayFailure(tt.err); got != tt.failure {
				t.Errorf("GatewayFailure = %v, want %v", got, tt.failure)
			}
			if got := BreakerExcluded(tt.err); got != tt.excluded {
				t.Errorf("BreakerExcluded = %v, want %v", got, tt.excluded)
			}
		})
	}
}
