package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// State is a breaker's state as the fleet sees it.
type State int

// The states of a fleet breaker.
const (
	// Closed: calls go through; each process counts its own.
	Closed State = iota
	// HalfOpen: the open period is over; HalfOpenProbes calls at once,
	// fleet-wide, may test the endpoint.
	HalfOpen
	// Open: no calls until the open period ends.
	Open
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	default:
		return fmt.Sprintf("State(%d)", int(s))
	}
}

// ErrOpen is wrapped by every refusal (*OpenError).
var ErrOpen = errors.New("circuit breaker open")

// OpenError refuses a call: the breaker of Key is open, or half-open with
// every probe slot taken. The caller should try again after RetryIn; the
// call was delayed, it did not fail.
type OpenError struct {
	Key string
	// RetryIn is the time until the breaker becomes half-open, or
	// Options.MinRetryIn when that is sooner or already past.
	RetryIn time.Duration
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("circuit breaker open for %s: retry in %s", e.Key, e.RetryIn.Round(time.Millisecond))
}

// Unwrap makes errors.Is(err, ErrOpen) true.
func (e *OpenError) Unwrap() error { return ErrOpen }

// Settings configure every key's breaker. Each zero field takes the default
// it names, the same as config.Breaker's.
type Settings struct {
	// FailureRatio is the share of failures, among this process's calls
	// with an outcome (successes and failures, not exclusions) in the
	// Window, at which the process trips the breaker; in (0, 1]. Zero
	// means 0.5.
	FailureRatio float64
	// MinRequests is the least number of calls with an outcome in the
	// Window before the ratio is considered: the breaker trips only when at
	// least MinRequests calls have ended. Zero means 20.
	MinRequests uint32
	// ConsecutiveFailures trips the breaker after that many failures in a
	// row, whatever the ratio: an outage must not wait for the window's
	// earlier successes to age out. Zero: off (only the ratio trips).
	ConsecutiveFailures uint32
	// Window is the rolling window of the counts, kept in ten buckets of
	// Window/10 each. Zero means 10 s.
	Window time.Duration
	// OpenFor is how long the fleet stops calling after a trip, or after a
	// failed probe, before it is half-open. Zero means 15 s.
	OpenFor time.Duration
	// HalfOpenProbes is how many calls the whole fleet makes at once while
	// half-open. Zero means 1.
	HalfOpenProbes int
	// IsFailure reports whether a call's error counts as a failure of the
	// endpoint; anything else that is not excluded counts as a success
	// (gobreaker's IsSuccessful is its negation). Nil means err != nil.
	// gatewayclient.GatewayFailure is the project's.
	IsFailure func(error) bool
	// IsExcluded reports whether a call's error says nothing about the
	// endpoint (throttling, the caller's cancellation): it counts neither
	// way, and a probe with such an outcome just frees its slot. It is
	// consulted before IsFailure. Nil means errors.Is(err,
	// context.Canceled). gatewayclient.BreakerExcluded is the project's.
	IsExcluded func(error) bool
}

// Defaults of Settings.
const (
	DefaultFailureRatio   = 0.5
	DefaultMinRequests    = 20
	DefaultWindow         = 10 * time.Second
	DefaultOpenFor        = 15 * time.Second
	DefaultHalfOpenProbes = 1
)

func (s Settings) withDefaults() Settings {
	if s.FailureRatio == 0 {
		s.FailureRatio = DefaultFailureRatio
	}
	if s.MinRequests == 0 {
		s.MinRequests = DefaultMinRequests
	}
	if s.Window == 0 {
		s.Window = DefaultWindow
	}
	if s.OpenFor == 0 {
		s.OpenFor = DefaultOpenFor
	}
	if s.HalfOpenProbes == 0 {
		s.HalfOpenProbes = DefaultHalfOpenProbes
	}
	if s.IsFailure == nil {
		s.IsFailure = func(err error) bool { return err != nil }
	}
	if s.IsExcluded == nil {
		s.IsExcluded = func(err error) bool { return errors.Is(err, context.Canceled) }
	}
	return s
}

// Validate reports every field out of range, each error naming its field.
// Zero fields are valid (they take their defaults).
func (s Settings) Validate() error {
	var errs []error
	if s.FailureRatio < 0 || s.FailureRatio > 1 || s.FailureRatio != s.FailureRatio {
		errs = append(errs, fmt.Errorf("FailureRatio: must be in (0, 1], got %v", s.FailureRatio))
	}
	if s.Window < 0 {
		errs = append(errs, fmt.Errorf("Window: must be > 0, got %s", s.Window))
	}
	if s.OpenFor < 0 {
		errs = append(errs, fmt.Errorf("OpenFor: must be > 0, got %s", s.OpenFor))
	}
	if s.HalfOpenProbes < 0 {
		errs = append(errs, fmt.Errorf("HalfOpenProbes: must be >= 1, got %d", s.HalfOpenProbes))
	}
	return errors.Join(errs...)
}

// Options are the parts a Fleet runs with; every zero field has a default.
type Options struct {
	// Logger receives state changes and Redis outages. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Metrics exports states and counts. Nil exports nothing.
	Metrics *Metrics
	// Now is the clock of open and half-open deadlines and of RetryIn.
	// Nil means time.Now. (The rolling window is gobreaker's and always
	// follows time.Now.)
	Now func() time.Time
	// PollInterval is how often Start re-reads the fleet state from Redis,
	// the fallback for lost pub/sub messages, and how often a Redis found
	// unreachable is tried again. Zero means 250 ms.
	PollInterval time.Duration
	// RedisTimeout bounds each Redis call Allow or a done func makes (only
	// in the half-open state, on a trip, and on a key's first use). Zero
	// means 500 ms.
	RedisTimeout time.Duration
	// ProbeLease is the longest a half-open probe holds its fleet-wide slot
	// when its process never reports the outcome (it crashed); a probe
	// whose Allow context has an earlier deadline holds it until that
	// deadline plus a second. Zero means 90 s, more than a gateway call's
	// 60 s.
	ProbeLease time.Duration
	// MinRetryIn is the least RetryIn of an OpenError. Zero means 1 s.
	MinRetryIn time.Duration
}

// Defaults of Options.
const (
	DefaultPollInterval = 250 * time.Millisecond
	DefaultRedisTimeout = 500 * time.Millisecond
	DefaultProbeLease   = 90 * time.Second
	DefaultMinRetryIn   = time.Second
)

// stateTTL is how long a key's state outlives its last transition in
// Redis: long enough that an endpoint's epoch survives quiet nights, short
// enough that endpoints no longer used disappear.
const stateTTL = 7 * 24 * time.Hour

// Fleet is the fleet-wide breaker of every key, for one worker process. It
// is safe for concurrent use.
type Fleet struct {
	rdb      redis.UniversalClient
	id       string // this process's, in the messages of its transitions
	stateKey func(key string) string
	channel  string
	s        Settings
	log      *slog.Logger
	m        *Metrics
	now      func() time.Time

	pollInterval time.Duration
	redisTimeout time.Duration
	probeLease   time.Duration
	minRetryIn   time.Duration

	mu      sync.RWMutex
	entries map[string]*entry

	// redisDown is set when a Redis call failed; while it is set, hot
	// paths skip Redis except for one caller per PollInterval
	// (retryRedisAt, unix nanoseconds of the wall clock).
	redisDown    atomic.Bool
	retryRedisAt atomic.Int64

	runMu   sync.Mutex
	closed  bool
	cancel  context.CancelFunc // of what Start began
	stopped chan struct{}      // closed when it has ended
}

// New returns the breakers of one worker process. rdb shares the state
// with the fleet; keys are written under prefix, which must not contain
// "{" or "}" (the hash tag is the breaker's). A nil rdb gives a breaker of
// this process only (for the embedded demo and for tests). Call Start to
// follow the fleet's transitions, and Close when done; New itself makes no
// Redis call.
func New(rdb redis.UniversalClient, prefix string, s Settings, opts Options) (*Fleet, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("breaker: %w", err)
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("breaker: prefix %q must not contain a hash tag", prefix)
	}
	s = s.withDefaults()
	f := &Fleet{
		rdb:          rdb,
		id:           newToken()[:12],
		stateKey:     func(key string) string { return StateKey(prefix, key) },
		channel:      prefix + "breaker:events",
		s:            s,
		log:          opts.Logger,
		m:            opts.Metrics,
		now:          opts.Now,
		pollInterval: opts.PollInterval,
		redisTimeout: opts.RedisTimeout,
		probeLease:   opts.ProbeLease,
		minRetryIn:   opts.MinRetryIn,
		entries:      map[string]*entry{},
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.pollInterval <= 0 {
		f.pollInterval = DefaultPollInterval
	}
	if f.redisTimeout <= 0 {
		f.redisTimeout = DefaultRedisTimeout
	}
	if f.probeLease <= 0 {
		f.probeLease = DefaultProbeLease
	}
	if f.minRetryIn <= 0 {
		f.minRetryIn = DefaultMinRetryIn
	}
	return f, nil
}

// Allow asks to make one call to key. While the breaker is open (for the
// fleet, or for this process when Redis is unreachable), or half-open with
// every probe slot taken, it returns an *OpenError. Otherwise it returns a
// done func that the caller must call exactly once with the call's error
// (nil for success); later calls of done are ignored.
//
// Allow makes no Redis call while the breaker is closed or open, except on
// the key's first use in this process (to learn the fleet state). While
// half-open it takes a probe slot in Redis, bounded by ctx and
// Options.RedisTimeout; if Redis fails it decides on its own. It returns
// ctx's error only when ctx ends during that round trip.
func (f *Fleet) Allow(ctx context.Context, key string) (done func(err error), err error) {
	e := f.entry(key)
	// The loop runs again only when a half-open probe request finds the
	// fleet closed in the meantime; bounded so a flapping fleet can't spin.
	for range 3 {
		e.mu.Lock()
		now := f.now()
		switch f.current(e, now) {
		case Open:
			retry := e.until.Sub(now)
			e.mu.Unlock()
			return nil, f.refuse(e, retry)
		case Closed:
			cb := e.cb
			cbDone, err := cb.Allow()
			e.mu.Unlock()
			if err != nil {
				// Unreachable: the local breaker is replaced the moment it
				// trips. Refusing is the safe answer should that change.
				return nil, f.refuse(e, 0)
			}
			return f.closedDone(e, cb, cbDone), nil
		}
		// Half-open.
		if e.probes >= f.s.HalfOpenProbes {
			e.mu.Unlock()
			return nil, f.refuse(e, 0)
		}
		e.probes++
		gen := e.gen
		e.mu.Unlock()
		done, res, err := f.probe(ctx, e, gen)
		switch {
		case err != nil:
			return nil, err
		case done != nil:
			return done, nil
		case res.state == Closed:
			continue
		default:
			return nil, f.refuse(e, res.remaining)
		}
	}
	return nil, f.refuse(e, 0)
}

// State returns key's breaker state as this process knows it: the fleet's,
// at most a poll interval old, or this process's own while Redis is
// unreachable.
func (f *Fleet) State(key string) State {
	e := f.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	return f.current(e, f.now())
}

func (f *Fleet) refuse(e *entry, retry time.Duration) error {
	if retry < f.minRetryIn {
		retry = f.minRetryIn
	}
	e.km.refused()
	return &OpenError{Key: e.key, RetryIn: retry}
}

// outcome is a call's result as the breaker counts it.
type outcome byte

const (
	outcomeSuccess  outcome = 's'
	outcomeFailure  outcome = 'f'
	outcomeExcluded outcome = 'x'
)

func (f *Fleet) classify(err error) outcome {
	switch {
	case f.s.IsExcluded(err):
		return outcomeExcluded
	case f.s.IsFailure(err):
		return outcomeFailure
	default:
		return outcomeSuccess
	}
}

// closedDone reports a call allowed in the closed state to the local
// breaker it was allowed by, and trips the fleet when that breaker trips.
func (f *Fleet) closedDone(e *entry, cb *localBreaker, cbDone func(error)) func(error) {
	var called atomic.Bool
	return func(err error) {
		if !called.CompareAndSwap(false, true) {
			return
		}
		e.mu.Lock()
		if e.cb != cb {
			// The fleet changed state since this call began: its outcome
			// belongs to a period that is over.
			e.mu.Unlock()
			return
		}
		cbDone(err)
		if cb.State() != localOpen {
			f.exportCounts(e)
			e.mu.Unlock()
			return
		}
		now := f.now()
		c := e.tripCounts
		e.km.tripped()
		f.log.Warn("circuit breaker tripped", "key", e.key,
			"failures", c.TotalFailures, "calls", c.TotalSuccesses+c.TotalFailures,
			"excluded", c.TotalExclusions, "window", f.s.Window)
		// Stop this process at once; the fleet learns below. pendingTrip
		// keeps Redis views from before the trip from undoing it.
		e.pendingTrip = f.rdb != nil
		f.transition(e, Open, now.Add(f.s.OpenFor), e.epoch, now, "tripped by this process")
		e.mu.Unlock()
		if f.useRedis() {
			f.pushTrip(context.Background(), e)
		}
	}
}

// probe takes a half-open probe slot for e, one of which this process has
// already reserved locally (gen is the period it reserved it in). It
// returns a done func when the slot is granted, otherwise the fleet state
// that refused it.
func (f *Fleet) probe(ctx context.Context, e *entry, gen uint64) (func(error), view, error) {
	if !f.useRedis() {
		return f.probeDone(e, gen, "", 0), view{}, nil
	}
	token := newToken()
	rctx, cancel := context.WithTimeout(ctx, f.redisTimeout)
	res, err := f.takeProbe(rctx, e.key, token, f.lease(ctx))
	cancel()
	if err != nil {
		// The script may have run and granted a slot whose reply never
		// came: give it back rather than leave the fleet a probe short
		// until the lease ends. In the background: Redis is slow or gone.
		go f.dropProbe(e.key, token)
		if ctx.Err() != nil {
			e.mu.Lock()
			e.release(gen)
			e.mu.Unlock()
			return nil, view{}, fmt.Errorf("breaker %s: %w", e.key, ctx.Err())
		}
		f.redisFailed(err)
		return f.probeDone(e, gen, "", 0), view{}, nil
	}
	f.redisOK()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !res.granted {
		e.release(gen)
	}
	f.apply(e, res.view, f.now(), "fleet")
	if !res.granted {
		return nil, res.view, nil
	}
	if e.gen != gen {
		// The view began a new half-open period, which cleared this
		// process's reservations; the slot Redis granted is one of it.
		e.probes++
		gen = e.gen
	}
	return f.probeDone(e, gen, token, res.epoch), view{}, nil
}

// probeDone returns the done func of a probe: granted by Redis in epoch
// when token is set, decided by this process alone otherwise.
func (f *Fleet) probeDone(e *entry, gen uint64, token string, epoch int64) func(error) {
	var called atomic.Bool
	return func(err error) {
		if !called.CompareAndSwap(false, true) {
			return
		}
		o := f.classify(err)
		if token != "" && f.useRedis() {
			ctx, cancel := context.WithTimeout(context.Background(), f.redisTimeout)
			v, changed, rerr := f.resolveProbe(ctx, e.key, token, epoch, o)
			cancel()
			if rerr == nil {
				f.redisOK()
				cause := "fleet"
				if changed {
					cause = probeCause(o)
				}
				e.mu.Lock()
				e.release(gen)
				f.apply(e, v, f.now(), cause)
				e.mu.Unlock()
				return
			}
			f.redisFailed(rerr)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.gen != gen {
			return // the period this probe tested is over
		}
		e.release(gen)
		now := f.now()
		switch o {
		case outcomeSuccess:
			f.transition(e, Closed, time.Time{}, e.epoch, now, probeCause(o)+" (this process alone)")
		case outcomeFailure:
			f.transition(e, Open, now.Add(f.s.OpenFor), e.epoch, now, probeCause(o)+" (this process alone)")
		}
	}
}

// dropProbe frees probe token's slot, if it holds one.
func (f *Fleet) dropProbe(key, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), f.redisTimeout)
	defer cancel()
	_, _, _ = f.resolveProbe(ctx, key, token, 0, outcomeExcluded)
}

func probeCause(o outcome) string {
	switch o {
	case outcomeSuccess:
		return "probe succeeded"
	case outcomeFailure:
		return "probe failed"
	default:
		return "probe excluded"
	}
}

// lease is how long a probe's fleet-wide slot outlives a process that
// never reports it.
func (f *Fleet) lease(ctx context.Context) time.Duration {
	l := f.probeLease
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl) + time.Second; d < l {
			l = d
		}
	}
	return max(l, 100*time.Millisecond)
}

// useRedis reports whether a hot path should call Redis: always while it
// answers; after a failure, one caller per PollInterval tries again.
func (f *Fleet) useRedis() bool {
	if f.rdb == nil {
		return false
	}
	if !f.redisDown.Load() {
		return true
	}
	now := time.Now().UnixNano()
	at := f.retryRedisAt.Load()
	return now >= at && f.retryRedisAt.CompareAndSwap(at, now+int64(f.pollInterval))
}

func (f *Fleet) redisFailed(err error) {
	f.m.redisError()
	f.retryRedisAt.Store(time.Now().Add(f.pollInterval).UnixNano())
	if f.redisDown.CompareAndSwap(false, true) {
		f.log.Warn("Redis unreachable: each process runs its own breakers until it answers", "err", err)
	}
}

func (f *Fleet) redisOK() {
	if f.redisDown.CompareAndSwap(true, false) {
		f.log.Info("Redis reachable again: following the fleet's breaker state")
	}
}

// StateKey is the Redis hash holding the fleet state of key's breaker (its
// "state" field is closed, half-open or open), for operators and tools
// that watch the fleet from outside.
func StateKey(prefix, key string) string { return prefix + "{breaker:" + key + "}" }
