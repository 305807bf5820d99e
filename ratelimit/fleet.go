package ratelimit

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// FleetOptions tunes a Fleet. Every zero value has a meaning.
type FleetOptions struct {
	// Logger receives degraded-mode transitions and decreases of the
	// effective rate. Zero value: slog.Default().
	Logger *slog.Logger
	// Metrics, when not nil, records permits, waits, the effective rate,
	// throttle signals, degraded mode and permits held.
	Metrics *Metrics
	// Hold is how long an in-flight slot is held when Acquire's context has
	// no deadline: a worker that crashes holding it frees it after Hold.
	// Zero value: 2 minutes (IR's gateway times a call out after ~60 s).
	Hold time.Duration
	// Cooldown is the shortest spell after a decrease during which further
	// throttle signals do not decrease the rate again; the spell is at
	// least one permit interval at the new rate. Zero value: 1 s.
	Cooldown time.Duration
	// ProbeInterval is how often, while degraded, one Acquire tries Redis
	// again. Zero value: 1 s.
	ProbeInterval time.Duration
	// PauseThreshold is the longest Retry-After that does not pause the
	// whole fleet: a Retry-After at or below it delays only the refused
	// call (the caller's business) and the rate decrease slows the fleet;
	// a longer one stops every process until it has passed. Zero value:
	// 1 s, HTTP's smallest Retry-After. Negative: every Retry-After pauses.
	PauseThreshold time.Duration
	// InFlightPoll is how often a caller waiting for an in-flight slot asks
	// again: a slot frees on Release, which nobody announces. Zero value:
	// 25 ms.
	InFlightPoll time.Duration
}

func (o FleetOptions) withDefaults() FleetOptions {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Hold <= 0 {
		o.Hold = 2 * time.Minute
	}
	if o.Cooldown <= 0 {
		o.Cooldown = time.Second
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = time.Second
	}
	if o.InFlightPoll <= 0 {
		o.InFlightPoll = 25 * time.Millisecond
	}
	if o.PauseThreshold == 0 {
		o.PauseThreshold = time.Second
	}
	return o
}

// Fleet is the fleet-wide limiter: one limit per key shared by every
// process through Redis (see the package documentation for the algorithm).
// It is safe for concurrent use.
type Fleet struct {
	rdb    redis.UniversalClient
	limits map[string]*fleetLimit // read-only after NewFleet
	opts   FleetOptions
	log    *slog.Logger
	m      *Metrics

	holderPrefix string
	seq          atomic.Uint64
	degraded     atomic.Bool
	nextProbe    atomic.Int64 // unix nanoseconds; while degraded, when Redis may be tried again

	// Seams for tests: the wall clock, an interruptible sleep, and the
	// script runner.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	eval  func(ctx context.Context, s *redis.Script, keys []string, args ...any) ([]any, error)
	zrem  func(ctx context.Context, key, member string) error
}

var _ Limiter = (*Fleet)(nil)

// fleetLimit is one key's configuration and process-local state.
type fleetLimit struct {
	key      string
	s        Settings
	keys     []string // state, in-flight
	args     []any    // the first six script arguments, shared by the scripts
	gates    [2]chan struct{}
	local    *localShare
	holdKeys bool // MaxInFlight > 0
}

// NewFleet returns a limiter with limits per key (e.g. "cloud:<cert CN>"),
// keeping its state in rdb under prefix. Settings are completed with their
// defaults and validated; neither prefix nor a key may contain { or },
// which would break the keys' hash tag.
func NewFleet(rdb redis.UniversalClient, prefix string, limits map[string]Settings, opts FleetOptions) (*Fleet, error) {
	if rdb == nil {
		return nil, fmt.Errorf("ratelimit: nil Redis client")
	}
	if err := checkKeyPart("prefix", prefix); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	var id [6]byte
	_, _ = crand.Read(id[:])
	f := &Fleet{
		rdb:          rdb,
		limits:       make(map[string]*fleetLimit, len(limits)),
		opts:         opts,
		log:          opts.Logger.With("component", "ratelimit"),
		m:            opts.Metrics,
		holderPrefix: hex.EncodeToString(id[:]) + ":",
		now:          time.Now,
		sleep:        sleepCtx,
	}
	f.eval = f.evalRedis
	f.zrem = func(ctx context.Context, key, member string) error { return rdb.ZRem(ctx, key, member).Err() }
	for key, s := range limits {
		if err := checkKeyPart("key", key); err != nil {
			return nil, err
		}
		s = s.WithDefaults()
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("ratelimit: limit %q: %w", key, err)
		}
		l := &fleetLimit{
			key:      key,
			s:        s,
			keys:     []string{stateKey(prefix, key), inFlightKey(prefix, key)},
			args:     []any{s.Rate, s.Burst, s.RealtimeReserve, s.cubicC(s.Rate), s.MinFraction, s.bulkBurst()},
			local:    newLocalShare(s),
			holdKeys: s.MaxInFlight > 0,
		}
		for i := range l.gates {
			l.gates[i] = make(chan struct{}, 1)
		}
		f.limits[key] = l
	}
	return f, nil
}

func (f *Fleet) limit(key string) (*fleetLimit, error) {
	l, ok := f.limits[key]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, key)
	}
	return l, nil
}

// denial is why a try took nothing, and how long until it might succeed.
type denial struct {
	reason string
	wait   time.Duration
}

// Acquire takes one permit for key at priority p. When the script refuses
// and the next permit comes within maxWait and before ctx's deadline, it
// sleeps in process and asks again; otherwise it takes nothing and returns
// a *DelayError. Waiting callers of one process and priority queue behind
// one another so that only one of them polls Redis. An unknown key is
// ErrUnknownKey; an ended ctx is ctx's error. The permit must be released
// when the call ends.
func (f *Fleet) Acquire(ctx context.Context, key string, p Priority, maxWait time.Duration) (*Permit, error) {
	l, err := f.limit(key)
	if err != nil {
		return nil, err
	}
	if p != PriorityRealtime && p != PriorityBulk {
		return nil, fmt.Errorf("ratelimit: acquire %s: unknown priority %v", key, p)
	}
	start := f.now()
	deadline := start.Add(max(0, maxWait))
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}

	// First try without queueing: most permits are granted here, and a
	// caller that cannot wait long enough learns so in one round trip.
	pm, d, err := f.try(ctx, l, p, start)
	if err != nil || pm != nil {
		return f.granted(l, p, start, pm, err)
	}
	if f.pollWait(l, d) > deadline.Sub(start) {
		return nil, f.delay(l, d)
	}

	gate := l.gates[p]
	if err := f.enter(ctx, gate, deadline); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Others of this process were ahead for the whole wait: come back
		// after about as long again.
		return nil, f.delay(l, denial{reason: d.reason, wait: max(d.wait, maxWait)})
	}
	defer func() { <-gate }()
	for {
		now := f.now()
		pm, d, err = f.try(ctx, l, p, now)
		if err != nil || pm != nil {
			return f.granted(l, p, start, pm, err)
		}
		wait := f.pollWait(l, d)
		if wait > deadline.Sub(now) {
			return nil, f.delay(l, d)
		}
		if err := f.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// pollWait is how long to sleep before asking again after d. A slot frees
// whenever its holder releases it, long before its expiry, so in-flight
// waits poll; other waits end at a time the script knows.
func (f *Fleet) pollWait(l *fleetLimit, d denial) time.Duration {
	if d.reason != ReasonInFlight {
		return d.wait
	}
	poll := f.opts.InFlightPoll
	// Jitter, so that the pollers of several processes spread out.
	poll += time.Duration(rand.Int64N(int64(poll)/4 + 1))
	return min(d.wait, poll)
}

func (f *Fleet) granted(l *fleetLimit, p Priority, start time.Time, pm *Permit, err error) (*Permit, error) {
	if err != nil {
		return nil, err
	}
	f.m.grant(l.key, p, f.now().Sub(start))
	return pm, nil
}

func (f *Fleet) delay(l *fleetLimit, d denial) error {
	f.m.deny(l.key, d.reason)
	retry := d.wait
	if d.reason == ReasonInFlight {
		// The earliest expiry bounds the wait, but a release usually comes
		// much sooner; don't park work for a whole call's length.
		retry = min(retry, time.Second)
	}
	return &DelayError{Key: l.key, RetryIn: max(retry, time.Millisecond), Reason: d.reason}
}

// enter joins the queue of gate, giving up at deadline.
func (f *Fleet) enter(ctx context.Context, gate chan struct{}, deadline time.Time) error {
	select {
	case gate <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(max(0, deadline.Sub(f.now())))
	defer t.Stop()
	select {
	case gate <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return context.DeadlineExceeded
	}
}

// try runs the acquire script once (or the local share while degraded).
// It returns a permit, or a denial, or an error that is not a denial.
// realtimeActivity is how long after its last permit the realtime
// priority counts as active, holding bulk to its share of the rate.
const realtimeActivity = 2 * time.Second

func (f *Fleet) try(ctx context.Context, l *fleetLimit, p Priority, now time.Time) (*Permit, denial, error) {
	if f.degraded.Load() && !f.claimProbe(now) {
		return f.tryLocal(l, now)
	}
	hold := f.opts.Hold
	if dl, ok := ctx.Deadline(); ok {
		hold = max(time.Millisecond, dl.Sub(now))
	}
	holder := ""
	if l.holdKeys {
		holder = f.holderPrefix + strconv.FormatUint(f.seq.Add(1), 36)
	}
	bulk := 0
	if p == PriorityBulk {
		bulk = 1
	}
	args := append(append(make([]any, 0, 12), l.args...), bulk, l.s.MaxInFlight, holder, hold.Microseconds(),
		realtimeActivity.Microseconds(), max(hold, f.opts.Hold).Microseconds())
	res, err := f.eval(ctx, acquireScript, l.keys, args...)
	if err != nil {
		if ctx.Err() == nil && unreachable(err) {
			f.setDegraded(true, err)
			return f.tryLocal(l, now)
		}
		return nil, denial{}, fmt.Errorf("ratelimit: acquire %s: %w", l.key, err)
	}
	f.setDegraded(false, nil)
	granted, reason, waitUS, eff, err := parseAcquire(res)
	if err != nil {
		return nil, denial{}, fmt.Errorf("ratelimit: acquire %s: %w", l.key, err)
	}
	f.m.setEffective(l.key, eff)
	if !granted {
		return nil, denial{reason: reason, wait: time.Duration(waitUS) * time.Microsecond}, nil
	}
	f.m.addInFlight(l.key, 1)
	pm := &Permit{release: func(context.Context) { f.m.addInFlight(l.key, -1) }}
	if l.holdKeys {
		pm.release = func(ctx context.Context) {
			f.m.addInFlight(l.key, -1)
			// A failed release is harmless: the holder expires.
			if err := f.zrem(ctx, l.keys[1], holder); err != nil {
				f.log.Debug("in-flight release failed; the slot frees at its expiry", "key", l.key, "err", err)
			}
		}
	}
	return pm, denial{}, nil
}

func (f *Fleet) tryLocal(l *fleetLimit, now time.Time) (*Permit, denial, error) {
	release, d := l.local.try(now, f.opts.InFlightPoll)
	if release == nil {
		return nil, d, nil
	}
	f.m.addInFlight(l.key, 1)
	return &Permit{release: func(context.Context) {
		f.m.addInFlight(l.key, -1)
		release()
	}}, denial{}, nil
}

// claimProbe lets one caller per ProbeInterval try Redis while degraded.
func (f *Fleet) claimProbe(now time.Time) bool {
	next := f.nextProbe.Load()
	if now.UnixNano() < next {
		return false
	}
	return f.nextProbe.CompareAndSwap(next, now.Add(f.opts.ProbeInterval).UnixNano())
}

// setDegraded records a transition, logging it once.
func (f *Fleet) setDegraded(on bool, cause error) {
	if f.degraded.Load() == on {
		return
	}
	if on {
		f.nextProbe.Store(f.now().Add(f.opts.ProbeInterval).UnixNano())
	}
	if !f.degraded.CompareAndSwap(!on, on) {
		return
	}
	f.m.setDegraded(on)
	if on {
		f.log.Warn("Redis unreachable: limiting this process to its degraded share", "err", cause)
	} else {
		f.log.Info("Redis answers again: back to the fleet-wide limit")
	}
}

// Degraded reports whether the limiter is running on its local share
// because Redis is unreachable.
func (f *Fleet) Degraded() bool { return f.degraded.Load() }

// Throttled reports that IR pushed back on a call under key (429, 503, 504,
// the UnAuthorised fault). The fleet's effective rate drops by the key's
// DecreaseFactor unless it already dropped within the cool-down, and a
// positive retryAfter pauses the whole fleet that long. While Redis is
// unreachable the signal applies to this process's degraded share.
func (f *Fleet) Throttled(ctx context.Context, key string, retryAfter time.Duration) error {
	l, err := f.limit(key)
	if err != nil {
		return err
	}
	f.m.throttle(key)
	now := f.now()
	if retryAfter <= f.opts.PauseThreshold {
		// HTTP cannot say less than a second, so a per-second throttle
		// answers "1" when it means "not this instant": that delays the
		// refused call (the caller snoozes it for retryAfter), while the
		// decrease below slows the fleet. Pausing everyone for it would
		// idle the fleet for a second on every 429.
		retryAfter = 0
	}
	if !f.degraded.Load() || f.claimProbe(now) {
		args := append(append(make([]any, 0, 9), l.args...), l.s.DecreaseFactor, max(0, retryAfter).Microseconds(), f.opts.Cooldown.Microseconds())
		res, err := f.eval(ctx, throttleScript, l.keys[:1], args...)
		if err == nil {
			f.setDegraded(false, nil)
			decreased, eff, err := parseThrottle(res)
			if err != nil {
				return fmt.Errorf("ratelimit: throttled %s: %w", key, err)
			}
			f.m.setEffective(key, eff)
			if decreased {
				f.log.Info("throttle signal: fleet rate decreased", "key", key, "rate", eff, "retry_after", retryAfter)
			}
			return nil
		}
		if ctx.Err() != nil || !unreachable(err) {
			return fmt.Errorf("ratelimit: throttled %s: %w", key, err)
		}
		f.setDegraded(true, err)
	}
	l.local.throttled(now, retryAfter, f.opts.Cooldown)
	return nil
}

// Effective returns key's current fleet-wide effective rate in permits per
// second: the ceiling, or below it after throttle signals. A pause for a
// Retry-After is not reflected in it. While degraded it returns this
// process's local share.
func (f *Fleet) Effective(ctx context.Context, key string) (float64, error) {
	l, err := f.limit(key)
	if err != nil {
		return 0, err
	}
	if f.degraded.Load() {
		return l.local.rate(f.now()), nil
	}
	res, err := f.eval(ctx, effectiveScript, l.keys[:1], l.args...)
	if err != nil {
		return 0, fmt.Errorf("ratelimit: effective %s: %w", key, err)
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("ratelimit: effective %s: unexpected reply %v", key, res)
	}
	eff, err := parseFloat(res[0])
	if err != nil {
		return 0, fmt.Errorf("ratelimit: effective %s: %w", key, err)
	}
	f.m.setEffective(key, eff)
	return eff, nil
}

func (f *Fleet) evalRedis(ctx context.Context, s *redis.Script, keys []string, args ...any) ([]any, error) {
	v, err := s.Run(ctx, f.rdb, keys, args...).Slice()
	return v, err
}

func parseAcquire(res []any) (granted bool, reason string, waitUS int64, eff float64, err error) {
	if len(res) != 4 {
		return false, "", 0, 0, fmt.Errorf("unexpected reply %v", res)
	}
	g, ok1 := res[0].(int64)
	reason, ok2 := res[1].(string)
	w, err1 := parseFloat(res[2])
	eff, err2 := parseFloat(res[3])
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return false, "", 0, 0, fmt.Errorf("unexpected reply %v", res)
	}
	return g == 1, reason, int64(math.Ceil(w)), eff, nil
}

func parseThrottle(res []any) (decreased bool, eff float64, err error) {
	if len(res) != 2 {
		return false, 0, fmt.Errorf("unexpected reply %v", res)
	}
	d, ok := res[0].(int64)
	eff, err = parseFloat(res[1])
	if !ok || err != nil {
		return false, 0, fmt.Errorf("unexpected reply %v", res)
	}
	return d == 1, eff, nil
}

func parseFloat(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("want a number as a string, got %T", v)
	}
	return strconv.ParseFloat(s, 64)
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
