package breaker

import (
	"context"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// localBreaker counts one process's calls to one key.
type localBreaker = gobreaker.TwoStepCircuitBreaker[struct{}]

const localOpen = gobreaker.StateOpen

// windowBuckets is how many gobreaker buckets the rolling window has: a
// failure leaves the counts between 0.9 and 1 Window after it ended.
const windowBuckets = 10

// entry is one key's breaker in this process: the fleet state as last
// known, and the local counts.
type entry struct {
	key      string
	km       *keyMetrics
	loadOnce sync.Once

	mu    sync.Mutex
	state State
	// until is when Open ends, in Options.Now's clock.
	until time.Time
	// epoch is the Redis epoch of the state, raised by every fleet
	// transition; views older than it are stale. Transitions this process
	// decides alone keep it.
	epoch int64
	// gen changes with every state change here; probes and done funcs
	// carry the gen they began in.
	gen uint64
	// probes is how many half-open probes this process has in flight.
	probes int
	// pendingTrip: this process tripped and Redis has not recorded it yet.
	pendingTrip bool
	cb          *localBreaker
	// tripCounts are the counts the local breaker tripped on (gobreaker
	// clears its own as it trips).
	tripCounts gobreaker.Counts
}

// entry returns key's breaker, creating it on first use. A new one learns
// the fleet state from Redis before it answers, so a process started
// during an outage doesn't make the first call.
func (f *Fleet) entry(key string) *entry {
	f.mu.RLock()
	e := f.entries[key]
	f.mu.RUnlock()
	if e == nil {
		f.mu.Lock()
		if e = f.entries[key]; e == nil {
			e = &entry{key: key, km: f.m.forKey(key)}
			e.cb = f.newLocal(e)
			e.km.setState(Closed)
			f.entries[key] = e
		}
		f.mu.Unlock()
	}
	e.loadOnce.Do(func() { f.load(e) })
	return e
}

// lookup returns key's breaker if this process uses it.
func (f *Fleet) lookup(key string) *entry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.entries[key]
}

func (f *Fleet) snapshot() []*entry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	es := make([]*entry, 0, len(f.entries))
	for _, e := range f.entries {
		es = append(es, e)
	}
	return es
}

func (f *Fleet) load(e *entry) {
	if !f.useRedis() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.redisTimeout)
	defer cancel()
	v, err := f.read(ctx, e.key)
	if err != nil {
		f.redisFailed(err)
		return
	}
	f.redisOK()
	e.mu.Lock()
	f.apply(e, v, f.now(), "fleet")
	e.mu.Unlock()
}

// newLocal returns a fresh local breaker for e. Only its closed state is
// used: a trip is noticed in the done func and the breaker replaced.
func (f *Fleet) newLocal(e *entry) *localBreaker {
	bucket := f.s.Window / windowBuckets
	if bucket <= 0 {
		bucket = f.s.Window
	}
	minReq, ratio, consecutive := f.s.MinRequests, f.s.FailureRatio, f.s.ConsecutiveFailures
	isFailure := f.s.IsFailure
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         e.key,
		Interval:     f.s.Window,
		BucketPeriod: bucket,
		// Never reached: the breaker is replaced when it trips.
		Timeout: f.s.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			n := c.TotalSuccesses + c.TotalFailures
			// A run of failures with no success between trips at once: in
			// an outage a window full of earlier successes would otherwise
			// dilute the ratio for most of the window.
			runOfFailures := consecutive > 0 && c.ConsecutiveFailures >= consecutive
			if !runOfFailures && (n < minReq || float64(c.TotalFailures)/float64(n) < ratio) {
				return false
			}
			// Called within the done func, which holds e.mu.
			e.tripCounts = c
			return true
		},
		IsSuccessful: func(err error) bool { return !isFailure(err) },
		IsExcluded:   f.s.IsExcluded,
	})
}

// current returns e's state at now, turning Open into HalfOpen once its
// period is over. e.mu must be held.
func (f *Fleet) current(e *entry, now time.Time) State {
	if e.state == Open && !now.Before(e.until) {
		f.transition(e, HalfOpen, time.Time{}, e.epoch, now, "open period over")
	}
	return e.state
}

// apply takes a view of the fleet state from Redis unless it is older than
// what e knows. e.mu must be held.
func (f *Fleet) apply(e *entry, v view, now time.Time, cause string) {
	if v.epoch < e.epoch || (v.epoch == e.epoch && e.pendingTrip) {
		return
	}
	var until time.Time
	if v.state == Open {
		until = now.Add(v.remaining)
	}
	if v.epoch > e.epoch && e.pendingTrip {
		e.pendingTrip = false
		if v.state == Open && e.state == Open {
			// The fleet is open, by this process's trip or another's:
			// the same open period this process began, now with the
			// fleet's epoch and deadline.
			e.epoch, e.until = v.epoch, until
			return
		}
	}
	if v.state == e.state && v.epoch == e.epoch {
		if v.state == Open {
			e.until = until // a fresher estimate of the same deadline
		}
		return
	}
	f.transition(e, v.state, until, v.epoch, now, cause)
}

// transition moves e to state to. Every change starts a new period: fresh
// local counts (outcomes of calls from the old period are dropped) and no
// probes in flight. e.mu must be held.
func (f *Fleet) transition(e *entry, to State, until time.Time, epoch int64, now time.Time, cause string) {
	from := e.state
	newPeriod := from != to || epoch != e.epoch
	e.state, e.until, e.epoch = to, until, epoch
	if !newPeriod {
		return
	}
	e.gen++
	e.probes = 0
	e.cb = f.newLocal(e)
	e.km.setState(to)
	f.exportCounts(e)
	if from == to && to != Open {
		// A whole cycle passed unseen (Redis was unreachable), or this is
		// the first view of the key: fresh counts, nothing to report.
		return
	}
	e.km.changed(to)
	attrs := []any{"key", e.key, "from", from.String(), "to", to.String(), "cause", cause}
	if to == Open {
		attrs = append(attrs, "retry_in", until.Sub(now).Round(time.Millisecond))
		f.log.Warn("circuit breaker open", attrs...)
		return
	}
	f.log.Info("circuit breaker "+to.String(), attrs...)
}

// release gives back a probe slot reserved in period gen. e.mu must be
// held.
func (e *entry) release(gen uint64) {
	if e.gen == gen && e.probes > 0 {
		e.probes--
	}
}

// exportCounts publishes e's local counts. e.mu must be held.
func (f *Fleet) exportCounts(e *entry) {
	if e.km == nil {
		return
	}
	e.cb.State() // rolls the window up to now
	e.km.setCounts(e.cb.Counts())
}
