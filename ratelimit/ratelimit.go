// Package ratelimit paces gateway calls so IR never has to throttle us.
//
// This first version limits each worker process on its own with
// golang.org/x/time/rate, one bucket per key (an endpoint, later an endpoint
// and client certificate). The fleet-wide limiter in Redis builds on the
// same Limiter interface; callers won't change.
package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DelayError says that a permit is not available soon enough: within the
// caller's longest acceptable wait or before its context's deadline. The
// caller should reschedule the work after RetryIn instead of holding a
// worker slot.
type DelayError struct {
	Key     string
	RetryIn time.Duration
}

func (e *DelayError) Error() string {
	return fmt.Sprintf("rate limit %s: next permit in %s", e.Key, e.RetryIn.Round(time.Millisecond))
}

// Limit is the rate and burst of one key. A zero Rate means unlimited.
type Limit struct {
	Rate  float64 // permits per second
	Burst int     // permits that may be taken at once; at least 1 when Rate > 0
}

// Local is a per-process limiter. It is safe for concurrent use.
type Local struct {
	mu       sync.Mutex
	limits   map[string]Limit
	limiters map[string]*rate.Limiter
	now      func() time.Time
}

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

// Wait takes one permit for key, waiting for it in process when it comes
// within maxWait and before ctx's deadline. Otherwise it takes nothing and
// returns a *DelayError saying when to come back.
func (l *Local) Wait(ctx context.Context, key string, maxWait time.Duration) error {
	lim := l.limiter(key)
	now := l.now()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return &DelayError{Key: key, RetryIn: time.Second}
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
		return &DelayError{Key: key, RetryIn: delay}
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
