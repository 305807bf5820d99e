package ratelimit

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// localShare is one key's limit in one process while Redis is unreachable:
// Rate × DegradedFraction through x/time/rate, a semaphore for the
// in-flight cap, and the same adaptation rule as the scripts, kept in
// process.
type localShare struct {
	s       Settings
	ceiling float64
	lim     *rate.Limiter
	sem     chan struct{} // nil: no in-flight cap

	mu     sync.Mutex
	effDec float64 // 0: no decrease on record
	wMax   float64 // the rate that was throttled
	decAt  time.Time
	cool   time.Time
	pause  time.Time
}

func newLocalShare(s Settings) *localShare {
	ls := &localShare{s: s, ceiling: s.Rate * s.DegradedFraction}
	ls.lim = rate.NewLimiter(rate.Limit(ls.ceiling), s.degradedBurst())
	if n := s.degradedInFlight(); n > 0 {
		ls.sem = make(chan struct{}, n)
	}
	return ls
}

// effective is the scripts' lazy climb, at now. Call with mu held.
func (ls *localShare) effective(now time.Time) float64 {
	if ls.effDec == 0 {
		return ls.ceiling
	}
	e := climb(ls.effDec, ls.wMax, ls.s.cubicC(ls.ceiling), max(0, now.Sub(ls.decAt).Seconds()))
	return min(ls.ceiling, max(ls.s.MinFraction*ls.ceiling, e))
}

// try takes a permit now or says how long until one may be available; it
// never waits. The in-flight slot is checked first, so a full cap costs no
// rate token.
func (ls *localShare) try(now time.Time, poll time.Duration) (release func(), d denial) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.pause.After(now) {
		return nil, denial{reason: ReasonPaused, wait: ls.pause.Sub(now)}
	}
	if ls.sem != nil {
		select {
		case ls.sem <- struct{}{}:
		default:
			return nil, denial{reason: ReasonInFlight, wait: poll}
		}
	}
	if eff := ls.effective(now); float64(ls.lim.Limit()) != eff {
		ls.lim.SetLimitAt(now, rate.Limit(eff))
	}
	r := ls.lim.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		if ls.sem != nil {
			<-ls.sem
		}
		return nil, denial{reason: ReasonRate, wait: delay}
	}
	if ls.sem == nil {
		return func() {}, denial{}
	}
	return func() { <-ls.sem }, denial{}
}

// throttled applies a throttle signal in process, as throttleScript does in
// Redis.
func (ls *localShare) throttled(now time.Time, retryAfter, minCool time.Duration) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if retryAfter > 0 && now.Add(retryAfter).After(ls.pause) {
		ls.pause = now.Add(retryAfter)
	}
	if now.Before(ls.cool) {
		return
	}
	w := ls.effective(now)
	eff := max(ls.s.MinFraction*ls.ceiling, w*ls.s.DecreaseFactor)
	ls.effDec, ls.wMax = eff, w
	ls.decAt = now
	if ls.pause.After(now) {
		ls.decAt = ls.pause
	}
	ls.cool = now.Add(max(minCool, time.Duration(float64(time.Second)/eff)))
	ls.lim.SetLimitAt(now, rate.Limit(eff))
	// Spend the burst: IR just asked us to slow down.
	if n := int(ls.lim.TokensAt(now)); n > 0 {
		ls.lim.AllowN(now, n)
	}
}

func (ls *localShare) rate(now time.Time) float64 {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.effective(now)
}

// unreachable reports whether err means Redis did not answer (so the
// limiter should degrade) rather than that it answered with an error (a
// bug to report). Replies that mean "not now" (loading, failover, cluster
// down) count as unreachable.
func unreachable(err error) bool {
	if err == nil || errors.Is(err, redis.ErrClosed) || errors.Is(err, context.Canceled) {
		return false
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		for _, p := range []string{"LOADING", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "READONLY"} {
			if redis.HasErrorPrefix(err, p) {
				return true
			}
		}
		return false
	}
	return true
}
