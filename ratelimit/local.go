package ratelimit

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is the rate and burst of one key for Local. A zero Rate means
// unlimited.
type Limit struct {
	Rate  float64 // permits per second
	Burst int     // permits that may be taken at once; at least 1 when Rate > 0
}

// Local is a per-process limiter: each process allows itself the whole
// rate, knows nothing of the others and ignores throttle signals. It is the
// naive comparison for Fleet, and enough for a single-process deployment.
// It is safe for concurrent use.
type Local struct {
	mu       sync.Mutex
	limits   map[string]Limit
	limiters map[string]*rate.Limiter
	now      func() time.Time
}

var _ Limiter = (*Local)(nil)

// NewLocal returns a limiter with the given limit per key. Keys that are not
// listed are unlimited.
func NewLocal(limits map[string]Limit) *Local {
	l := &Local{limits: map[string]Limit{}, limiters: map[string]*rate.Limiter{}, now: time.Now}
	for k, v := range limits {
		l.limits[k] = v
	}
	return l
}

func (l *Local) limiter(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim, ok := l.limiters[key]; ok {
		return lim
	}
	cfg, ok := l.limits[key]
	var lim *rate.Limiter
	if !ok || cfg.Rate <= 0 {
		lim = rate.NewLimiter(rate.Inf, 0)
	} else {
		b := cfg.Burst
		if b < 1 {
			b = 1
		}
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), b)
	}
	l.limiters[key] = lim
	return lim
}

// Acquire is Wait returning a Permit, so that Local and Fleet are
// interchangeable. Local has no priorities and no in-flight cap: p is
// ignored and the permit's Release does nothing.
func (l *Local) Acquire(ctx context.Context, key string, _ Priority, maxWait time.Duration) (*Permit, error) {
	if err := l.Wait(ctx, key, maxWait); err != nil {
		return nil, err
	}
	return &Permit{}, nil
}

// Throttled does nothing: Local is the naive limiter that does not adapt.
func (l *Local) Throttled(context.Context, string, time.Duration) error { return nil }

// Wait takes one permit for key, waiting for it in process when it comes
// within maxWait and before ctx's deadline. Otherwise it takes nothing and
// returns a *DelayError saying when to come back.
func (l *Local) Wait(ctx context.Context, key string, maxWait time.Duration) error {
	lim := l.limiter(key)
	now := l.now()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return &DelayError{Key: key, RetryIn: time.Second, Reason: ReasonRate}
	}
	delay := r.DelayFrom(now)
	if delay == 0 {
		return nil
	}
	limitWait := maxWait
	if dl, ok := ctx.Deadline(); ok && dl.Sub(now) < limitWait {
		limitWait = dl.Sub(now)
	}
	if delay > limitWait {
		r.CancelAt(now)
		return &DelayError{Key: key, RetryIn: delay, Reason: ReasonRate}
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}
