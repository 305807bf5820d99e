package tasks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/ratelimit"
)

type fakeCaller struct {
	res   *gatewayclient.Result
	err   error
	calls int
}

func (f *fakeCaller) Do(ctx context.Context, req gatewayclient.Request) (*gatewayclient.Result, error) {
	f.calls++
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("call without a deadline")
	}
	return f.res, f.err
}

type bearer string

func (b bearer) AuthorizationHeader(context.Context) (string, error) {
	return "Bearer " + string(b), nil
}

type fakeCreds struct{ err error }

func (f fakeCreds) For(context.Context, Auth) (gatewayclient.Credentials, error) {
	if f.err != nil {
		return nil, f.err
	}
	return bearer("t"), nil
}

type refusingLimiter struct{ retryIn time.Duration }

func (l refusingLimiter) Wait(context.Context, string, time.Duration) error {
	return &ratelimit.DelayError{Key: "cloud", RetryIn: l.retryIn}
}

func task(t *testing.T, j *Job) *asynq.Task {
	t.Helper()
	tk, err := NewTask(j)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestHandlerMapsClasses(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ge := func(c gatewayclient.Class) error {
		return &gatewayclient.Error{Class: c, Operation: "File", Message: "m"}
	}
	tests := []struct {
		name        string
		err         error
		creds       error
		wantNil     bool
		wantParked  gatewayclient.Class
		wantFailure bool // spends the retry budget
		reason      string
	}{
		{name: "ok", wantNil: true},
		{name: "invalid is parked", err: ge(gatewayclient.ClassInvalid), wantParked: gatewayclient.ClassInvalid, reason: "invalid"},
		{name: "permission is parked naming identifier and account type", err: ge(gatewayclient.ClassPermission), wantParked: gatewayclient.ClassPermission, reason: "identifier 123039858, account type GST"},
		{name: "config is parked", err: ge(gatewayclient.ClassConfig), wantParked: gatewayclient.ClassConfig, reason: "onboarded"},
		{name: "auth needs re-consent", err: ge(gatewayclient.ClassAuth), wantParked: gatewayclient.ClassAuth, reason: "re-consent"},
		{name: "already filed is reconciled, not failed", err: ge(gatewayclient.ClassAlreadyFiled), wantParked: gatewayclient.ClassAlreadyFiled, reason: "reconcile"},
		{name: "uncertain is never re-sent", err: ge(gatewayclient.ClassUncertain), wantParked: gatewayclient.ClassUncertain, reason: "reconcile"},
		{name: "malformed answer to a File is uncertain", err: ge(gatewayclient.ClassMalformed), wantParked: gatewayclient.ClassUncertain, reason: "reconcile"},
		{name: "transient retries and spends budget", err: ge(gatewayclient.ClassRetryLater), wantFailure: true},
		{name: "throttled keeps the budget", err: ge(gatewayclient.ClassThrottled)},
		{name: "unavailable keeps the budget", err: ge(gatewayclient.ClassUnavailable)},
		{name: "breaker open keeps the budget", err: ge(gatewayclient.ClassBreakerOpen)},
		{name: "credentials unavailable retries", creds: errors.New("redis down"), wantFailure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &fakeCaller{res: &gatewayclient.Result{StatusCode: 0, GatewayID: "g", SubmissionKey: "1"}, err: tt.err}
			h := &Handler{Client: c, Credentials: fakeCreds{err: tt.creds}, Logger: quiet, Budget: Budget{Call: time.Second}}
			err := h.ProcessTask(context.Background(), task(t, gstJob(t)))
			if tt.wantNil {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			var p *ParkedError
			if tt.wantParked != gatewayclient.ClassOK || tt.reason != "" {
				if !errors.As(err, &p) || !errors.Is(err, asynq.SkipRetry) {
					t.Fatalf("want a parked (SkipRetry) error, got %v", err)
				}
				if p.Class != tt.wantParked || !strings.Contains(p.Reason, tt.reason) {
					t.Fatalf("parked as %s %q, want %s containing %q", p.Class, p.Reason, tt.wantParked, tt.reason)
				}
				return
			}
			if errors.Is(err, asynq.SkipRetry) {
				t.Fatalf("want a retry, got SkipRetry: %v", err)
			}
			if got := IsFailure(err); got != tt.wantFailure {
				t.Fatalf("IsFailure = %v, want %v (%v)", got, tt.wantFailure, err)
			}
		})
	}
}

func TestHandlerSnoozesOnLongLimiterWait(t *testing.T) {
	t.Parallel()
	c := &fakeCaller{res: &gatewayclient.Result{}}
	h := &Handler{Client: c, Credentials: fakeCreds{}, Limiter: refusingLimiter{retryIn: 7 * time.Second}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err := h.ProcessTask(context.Background(), task(t, gstJob(t)))
	var se *SnoozeError
	if !errors.As(err, &se) {
		t.Fatalf("want a SnoozeError, got %v", err)
	}
	if c.calls != 0 {
		t.Fatal("a snoozed job must not call the gateway")
	}
	if IsFailure(err) {
		t.Fatal("a snooze must not spend the retry budget")
	}
	if d := RetryDelay(3, err, nil); d != 7*time.Second {
		t.Fatalf("RetryDelay = %v, want the limiter's 7s", d)
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	t.Run("Retry-After is honoured", func(t *testing.T) {
		t.Parallel()
		d := RetryDelay(0, &gatewayclient.Error{Class: gatewayclient.ClassThrottled, RetryAfter: 30 * time.Second}, nil)
		if d < 30*time.Second || d > 31*time.Second {
			t.Fatalf("got %v", d)
		}
	})
	t.Run("transient back-off is at least 5s and grows", func(t *testing.T) {
		t.Parallel()
		err := &gatewayclient.Error{Class: gatewayclient.ClassRetryLater}
		prevMin := time.Duration(0)
		for n := 0; n < 10; n++ {
			d := RetryDelay(n, err, nil)
			lo := 5 * time.Second << min(n, 7)
			if d < lo || d > lo+lo/2 {
				t.Fatalf("n=%d: %v outside [%v, %v]", n, d, lo, lo+lo/2)
			}
			if lo < prevMin {
				t.Fatal("back-off shrank")
			}
			prevMin = lo
		}
	})
}
