package tasks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/breaker"
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

func (l refusingLimiter) Acquire(context.Context, string, ratelimit.Priority, time.Duration) (*ratelimit.Permit, error) {
	return nil, &ratelimit.DelayError{Key: "cloud", RetryIn: l.retryIn, Reason: "rate"}
}

func (l refusingLimiter) Throttled(context.Context, string, time.Duration) error { return nil }

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

type recordingLimiter struct {
	mu        sync.Mutex
	acquired  []string
	prio      []ratelimit.Priority
	throttled []time.Duration
}

func (l *recordingLimiter) Acquire(_ context.Context, key string, p ratelimit.Priority, _ time.Duration) (*ratelimit.Permit, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acquired = append(l.acquired, key)
	l.prio = append(l.prio, p)
	return nil, nil // a nil permit's Release is a no-op
}

func (l *recordingLimiter) Throttled(_ context.Context, _ string, retryAfter time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.throttled = append(l.throttled, retryAfter)
	return nil
}

type fakeBreaker struct {
	open    bool
	outcome []error
	allowed int
}

func (b *fakeBreaker) Allow(context.Context, string) (func(error), error) {
	if b.open {
		return nil, &breaker.OpenError{Key: "cloud:x", RetryIn: 4 * time.Second}
	}
	b.allowed++
	return func(err error) { b.outcome = append(b.outcome, err) }, nil
}

func TestHandlerWithLimiterAndBreaker(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	keys := map[gatewayclient.EndpointKind]string{gatewayclient.EndpointCloud: "cloud:abc.irdgws.test"}
	t.Run("open breaker snoozes without calling", func(t *testing.T) {
		t.Parallel()
		c, l, b := &fakeCaller{res: &gatewayclient.Result{}}, &recordingLimiter{}, &fakeBreaker{open: true}
		h := &Handler{Client: c, Credentials: fakeCreds{}, Limiter: l, Breaker: b, Keys: keys, Logger: quiet}
		err := h.ProcessTask(context.Background(), task(t, gstJob(t)))
		var se *SnoozeError
		if !errors.As(err, &se) || se.Delay != 4*time.Second || IsFailure(err) {
			t.Fatalf("want a 4s snooze that is no failure, got %v", err)
		}
		if c.calls != 0 {
			t.Fatalf("calls %d: want none", c.calls)
		}
	})
	t.Run("a 429 tells the fleet limiter, with Retry-After, and the breaker ignores it", func(t *testing.T) {
		t.Parallel()
		c := &fakeCaller{err: &gatewayclient.Error{Class: gatewayclient.ClassThrottled, HTTPStatus: 429, RetryAfter: 3 * time.Second}}
		l, b := &recordingLimiter{}, &fakeBreaker{}
		h := &Handler{Client: c, Credentials: fakeCreds{}, Limiter: l, Breaker: b, Keys: keys, Logger: quiet}
		err := h.ProcessTask(context.Background(), task(t, gstJob(t)))
		if IsFailure(err) {
			t.Fatalf("a 429 must not spend the retry budget: %v", err)
		}
		if len(l.throttled) != 1 || l.throttled[0] != 3*time.Second {
			t.Fatalf("throttle signals %v, want one with 3s", l.throttled)
		}
		if len(l.acquired) != 1 || l.acquired[0] != "cloud:abc.irdgws.test" || l.prio[0] != ratelimit.PriorityBulk {
			t.Fatalf("permit for %v %v, want the certificate's key at bulk priority", l.acquired, l.prio)
		}
		if len(b.outcome) != 1 || !gatewayclient.BreakerExcluded(b.outcome[0]) {
			t.Fatalf("breaker told %v, want the 429 (excluded)", b.outcome)
		}
	})
	t.Run("missing credentials touch neither limiter nor breaker", func(t *testing.T) {
		t.Parallel()
		c, l, b := &fakeCaller{}, &recordingLimiter{}, &fakeBreaker{}
		h := &Handler{Client: c, Credentials: fakeCreds{err: &gatewayclient.Error{Class: gatewayclient.ClassAuth, Message: "token set expired"}}, Limiter: l, Breaker: b, Keys: keys, Logger: quiet}
		err := h.ProcessTask(context.Background(), task(t, gstJob(t)))
		var p *ParkedError
		if !errors.As(err, &p) || p.Class != gatewayclient.ClassAuth {
			t.Fatalf("want parked as auth, got %v", err)
		}
		if len(l.acquired) != 0 || b.allowed != 0 || c.calls != 0 {
			t.Fatal("no permit, breaker slot or call for a job without credentials")
		}
	})
}

type seqCaller struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

func (c *seqCaller) Do(context.Context, gatewayclient.Request) (*gatewayclient.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if len(c.errs) == 0 {
		return &gatewayclient.Result{StatusCode: 0, GatewayID: "g", SubmissionKey: "1"}, nil
	}
	err := c.errs[0]
	c.errs = c.errs[1:]
	if err == nil {
		return &gatewayclient.Result{StatusCode: 0, GatewayID: "g", SubmissionKey: "1"}, nil
	}
	return &gatewayclient.Result{StatusCode: 1}, err
}

type refreshingCreds struct {
	refreshErr error
	refreshed  int
}

func (r *refreshingCreds) AuthorizationHeader(context.Context) (string, error) {
	return "Bearer t", nil
}
func (r *refreshingCreds) Rejected(context.Context) error {
	r.refreshed++
	return r.refreshErr
}

type credsOf struct{ c gatewayclient.Credentials }

func (f credsOf) For(context.Context, Auth) (gatewayclient.Credentials, error) { return f.c, nil }

func TestHandlerRefreshesAfterStatusCode1(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tokenInvalid := &gatewayclient.Error{Class: gatewayclient.ClassAuth, StatusCode: 1, HTTPStatus: 200, Message: "token invalid"}
	tests := []struct {
		name        string
		errs        []error
		refreshErr  error
		wantCalls   int
		wantRefresh int
		wantParked  bool
	}{
		{"refreshed, then filed", []error{tokenInvalid, nil}, nil, 2, 1, false},
		{"the refreshed token refused too (the next expiry came during the refresh): refreshed again, filed", []error{tokenInvalid, tokenInvalid, nil}, nil, 3, 2, false},
		{"refused after two refreshes: re-consent", []error{tokenInvalid, tokenInvalid, tokenInvalid}, nil, 3, 2, true},
		{"refresh says the set is dead: re-consent", []error{tokenInvalid}, &gatewayclient.Error{Class: gatewayclient.ClassAuth, Message: "needs re-consent: invalid_grant"}, 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, rc := &seqCaller{errs: tt.errs}, &refreshingCreds{refreshErr: tt.refreshErr}
			h := &Handler{Client: c, Credentials: credsOf{rc}, Logger: quiet}
			err := h.ProcessTask(context.Background(), task(t, gstJob(t)))
			if c.calls != tt.wantCalls || rc.refreshed != tt.wantRefresh {
				t.Fatalf("calls %d, refreshes %d; want %d, %d", c.calls, rc.refreshed, tt.wantCalls, tt.wantRefresh)
			}
			var p *ParkedError
			parked := errors.As(err, &p)
			if parked != tt.wantParked {
				t.Fatalf("parked = %v (%v), want %v", parked, err, tt.wantParked)
			}
			if parked && (p.Class != gatewayclient.ClassAuth || !strings.Contains(p.Reason, "re-consent")) {
				t.Fatalf("parked as %s %q, want needs re-consent", p.Class, p.Reason)
			}
			if !tt.wantParked && err != nil {
				t.Fatalf("want done, got %v", err)
			}
		})
	}
}
