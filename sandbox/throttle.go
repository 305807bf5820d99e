package sandbox

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// throttle is a token bucket per caller: the client certificate's CN on the
// cloud listener, the remote IP on the desktop listener, as IR throttles.
type throttle struct {
	mu      sync.Mutex
	rps     float64
	burst   int
	buckets map[string]*rate.Limiter
}

func newThrottle(rps float64, burst int) *throttle {
	t := &throttle{buckets: map[string]*rate.Limiter{}}
	t.set(rps, burst, time.Now())
	return t
}

// set changes the rate of every bucket, existing and future, at now (the
// sandbox's clock, which the buckets run on): an existing bucket keeps the
// tokens it earned at the old rate until now, then earns at the new one,
// and never holds more than the new burst. rps ≤ 0 means unlimited; a
// burst below 1 is raised to 1 so a positive rate admits calls.
func (t *throttle) set(rps float64, burst int, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if burst < 1 {
		burst = 1
	}
	t.rps, t.burst = rps, burst
	if rps <= 0 {
		// Unlimited: the buckets are dropped rather than set to rate.Inf,
		// whose token arithmetic yields NaN (0 s × Inf) when a rate is set
		// again at the same instant. A caller starts afresh with a full
		// bucket when a limit returns, as if it had been idle.
		clear(t.buckets)
		return
	}
	for _, b := range t.buckets {
		b.SetLimitAt(now, t.limit())
		b.SetBurstAt(now, burst)
	}
}

func (t *throttle) limit() rate.Limit {
	if t.rps <= 0 {
		return rate.Inf
	}
	return rate.Limit(t.rps)
}

// allow takes one token from key's bucket at now. When the bucket is empty
// it takes nothing and returns how long until a token is due.
func (t *throttle) allow(key string, now time.Time) (bool, time.Duration) {
	t.mu.Lock()
	if t.rps <= 0 {
		t.mu.Unlock()
		return true, 0
	}
	b, ok := t.buckets[key]
	if !ok {
		b = rate.NewLimiter(t.limit(), t.burst)
		t.buckets[key] = b
	}
	t.mu.Unlock()
	r := b.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// retryAfterSeconds renders d for a Retry-After header: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// rate is the configured rate (0 = unlimited), for messages.
func (t *throttle) rate() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rps
}

// get returns the configured rate and burst.
func (t *throttle) get() (float64, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rps, t.burst
}
