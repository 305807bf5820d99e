// Package ratelimit paces gateway calls so IR never has to throttle us.
//
// IR throttles heavy users per client certificate and publishes no numbers,
// while a DSP runs several worker processes on several hosts. Two limiters
// implement [Limiter]:
//
//   - [Fleet] shares one limit per key (an endpoint and client certificate,
//     e.g. "cloud:<cert CN>") across every process through Redis, keeps a
//     share of it for realtime work, caps the calls in flight fleet-wide,
//     and adapts below its configured rate when IR pushes back.
//   - [Local] limits each process on its own with golang.org/x/time/rate. It
//     is the naive comparison (a fleet of N processes sends N times the
//     rate) and the choice for a single-process deployment.
//
// # The script
//
// Every permit is one EVALSHA of one Lua script on the
// limit's two keys, "<prefix>{limit:<key>}:state" (a hash) and
// "<prefix>{limit:<key>}:inflight" (a sorted set). The hash tag puts both in
// one hash slot, so the script runs unchanged on Redis Cluster. One script
// rather than several commands because the decision must be atomic across
// the fleet (check the cap, check the rate, take both, or take nothing) and
// because a permit must cost at most one round trip: success, the lazy
// climb of the adaptive rate and the expiry of crashed holders all happen
// inside the same call. All time comes from Redis's TIME, so clock skew
// between worker hosts does not matter; the only Go-side durations passed
// in are relative (a hold time, a Retry-After).
//
// The script, in order:
//
//  1. Pause. If a throttle signal with Retry-After set a pause that has not
//     ended, deny with reason "paused".
//  2. In flight. Drop holders whose expiry has passed (a crashed worker
//     never releases), then deny with reason "in_flight" if MaxInFlight
//     holders remain. Nothing has been taken yet, so a full cap costs no
//     rate permit.
//  3. Effective rate. With no decrease on record, eff = Rate. After a
//     throttle signal at rate W, eff climbs from W × DecreaseFactor along
//     TCP CUBIC's curve W + C(t − K)³, with K = ∛(W(1 − DecreaseFactor)/C)
//     and C = Rate(1 − DecreaseFactor)/Recovery³: it is back at W after K
//     seconds (Recovery, for W = Rate), lingers there, then climbs faster
//     the longer no throttle comes. Capped at Rate, never below
//     MinFraction × Rate.
//  4. Rate, by GCRA (the generic cell rate algorithm): a cell is one
//     "theoretical arrival time" (TAT); with emission interval T = 1/eff and
//     tolerance τ = Burst × T, a permit is allowed when max(TAT, now) + T −
//     now ≤ τ, and the new TAT is stored. Realtime work passes one cell, the
//     total, at eff. Bulk and redrive work must also pass a second cell at
//     eff × (1 − RealtimeReserve) with burst ⌊Burst × (1 − RealtimeReserve)⌋
//     (at least 1) while realtime work is about (it took a permit in the
//     last two seconds): a nightly batch can then use at most that share, so
//     the rest of the total is there for event triggers. With no realtime
//     traffic the second cell is skipped, so an idle reserve is not wasted
//     and a batch alone gets the whole rate. A bulk permit refused by the
//     second cell only is reported with reason "reserve".
//  5. Grant: store both TATs, add the holder to the in-flight set scored by
//     its expiry (the caller's context deadline, or FleetOptions.Hold), and
//     return the effective rate. A refusal returns how long until the
//     binding cell would allow a permit.
//
// GCRA rather than a token bucket because its whole state is one number a
// cell, updated in O(1) with no refill loop. github.com/go-redis/redis_rate
// implements single-cell GCRA the same way; we need two cells, the
// in-flight set and the adaptive state in the same atomic step, so the
// script is our own.
//
// Acquire never takes a permit it cannot use now. When the script refuses
// with a wait that fits within maxWait and the context's deadline, the
// caller sleeps in process and runs the script again; otherwise it gets a
// [*DelayError] and should reschedule the work (the task snoozes). Waiting
// callers of one process queue behind one another per key and priority, so
// only one of them polls Redis at a time: a permit granted at once costs one
// round trip; under saturation about two (a newcomer's first, refused try,
// and the grant of the caller at the head of the queue) plus one for each
// other process polling the same key, not one per waiting goroutine. Handing
// out future permits instead (a reservation, as x/time/rate does) would
// save those polls, but a reserved bulk permit pushes the total cell's TAT
// into the future, which a single TAT cannot tell apart from real use:
// realtime work would wait behind the batch's queue, defeating the reserve.
//
// # Adaptation
//
// The configured Rate is a ceiling. [Fleet.Throttled] (a 429, 503, 504,
// the UnAuthorised fault) multiplies the shared effective rate by
// DecreaseFactor, down to MinFraction × Rate, and empties the burst so the
// fleet does not fire Burst calls straight after being told to slow down.
// One overload produces a burst of throttled answers, all from calls sent
// at the old rate, so after a decrease further signals are ignored for a
// cool-down of max(FleetOptions.Cooldown, one permit interval at the new
// rate): only calls sent at the new rate can say it is still too high. A
// Retry-After is always honoured: the whole fleet pauses until the latest
// pause-until any signal asked for, and the climb starts when the pause
// ends. The climb back is additive and lazy: the acquire script computes it
// from the time since the decrease, so success costs nothing extra.
//
// # Degraded mode
//
// When Redis does not answer (connection refused or reset, timeouts, a
// cluster that is down), the Fleet falls back in each process to a local
// share: an x/time/rate limiter at Rate × DegradedFraction and a semaphore
// of max(1, MaxInFlight × DegradedFraction), adapting to throttle signals
// in process. It is conservative, never unlimited. The transition is logged
// once and exported as a gauge; while degraded, at most one Acquire per
// FleetOptions.ProbeInterval tries Redis first, and the first answer ends
// degraded mode.
//
// # Overshoot bound
//
// Over any interval of length t, the fleet is granted at most
// eff × t + Burst permits for a key (GCRA's bound, with eff the highest
// effective rate in the interval), and bulk work at most
// eff × (1 − RealtimeReserve) × t + its burst. After a throttle signal, the
// calls already in flight still reach IR; no new permit is granted beyond
// the new rate. In degraded mode each of N processes allows
// Rate × DegradedFraction × t + its burst, so the fleet stays within the
// ceiling when N ≤ 1/DegradedFraction; calls granted locally are unknown to
// the in-flight set after recovery, so the cap may be exceeded by them
// until they end.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Limiter hands out permits for gateway calls. [*Fleet] and [*Local]
// implement it; consumers (the task handler) declare their own interface
// with the methods they call, and this one documents the shape.
type Limiter interface {
	// Acquire takes one permit for key, waiting in process when it comes
	// within maxWait and before ctx's deadline. Otherwise it takes nothing
	// and returns a *DelayError.
	Acquire(ctx context.Context, key string, p Priority, maxWait time.Duration) (*Permit, error)
	// Throttled reports that IR pushed back on a call under key; a
	// positive retryAfter asks the limiter to pause that long.
	Throttled(ctx context.Context, key string, retryAfter time.Duration) error
}

// Priority says which share of a limit work may use.
type Priority int

const (
	// PriorityRealtime is event-driven work; it may use the whole rate,
	// including the share kept back by Settings.RealtimeReserve.
	PriorityRealtime Priority = iota
	// PriorityBulk is nightly batches and operator re-drives; it may use
	// the rate less the realtime reserve.
	PriorityBulk
)

func (p Priority) String() string {
	switch p {
	case PriorityRealtime:
		return "realtime"
	case PriorityBulk:
		return "bulk"
	default:
		return fmt.Sprintf("Priority(%d)", int(p))
	}
}

// Reasons a permit is delayed, as in DelayError.Reason and the denied
// metric's reason label.
const (
	ReasonRate     = "rate"      // the limit's rate (total cell)
	ReasonReserve  = "reserve"   // bulk work's share, the rest kept for realtime
	ReasonInFlight = "in_flight" // MaxInFlight calls are already in flight
	ReasonPaused   = "paused"    // the fleet is pausing for a Retry-After
)

// ErrUnknownKey is returned by Fleet for a key it has no Settings for.
var ErrUnknownKey = errors.New("ratelimit: unknown limit key")

// DelayError says that a permit is not available soon enough: within the
// caller's longest acceptable wait or before its context's deadline. The
// caller should reschedule the work after RetryIn instead of holding a
// worker slot. Nothing was taken.
type DelayError struct {
	Key     string
	RetryIn time.Duration
	// Reason is one of ReasonRate, ReasonReserve, ReasonInFlight and
	// ReasonPaused.
	Reason string
}

func (e *DelayError) Error() string {
	reason := e.Reason
	if reason == "" {
		reason = ReasonRate
	}
	return fmt.Sprintf("rate limit %s (%s): next permit in %s", e.Key, reason, e.RetryIn.Round(time.Millisecond))
}

// Settings is one key's limit. Every zero value has a meaning, given per
// field; WithDefaults fills them in and Validate checks the result.
type Settings struct {
	// Rate is the ceiling in permits per second, > 0.
	Rate float64
	// Burst is how many permits may be taken at once after an idle spell.
	// Zero value: Rate rounded up (at least 1).
	Burst int
	// MaxInFlight caps the calls in flight across the fleet. Zero value: no
	// cap.
	MaxInFlight int
	// RealtimeReserve is the share of the rate, in [0, 0.9], that only
	// PriorityRealtime may use while it has traffic; an idle reserve goes
	// to bulk work. Zero value: no reserve.
	RealtimeReserve float64
	// DecreaseFactor multiplies the effective rate on a throttle signal, in
	// (0, 1). Zero value: 0.5.
	DecreaseFactor float64
	// Recovery is how long the effective rate takes, after a throttle
	// signal at the ceiling, to climb back to the rate that was throttled.
	// The climb is TCP CUBIC's: fast at first, lingering near the rate IR
	// last refused, then faster the longer no throttle comes, so the fleet
	// neither keeps hitting a lowered limit nor stays low once it is raised.
	// Zero value: 5 s.
	Recovery time.Duration
	// MinFraction is the effective rate's floor as a share of Rate, in
	// (0, 1]. Zero value: 0.05.
	MinFraction float64
	// DegradedFraction is the share of Rate (and of MaxInFlight) each
	// process allows itself while Redis is unreachable, in (0, 1]. Zero
	// value: 0.25.
	DegradedFraction float64
}

// WithDefaults returns s with its zero values replaced by their defaults.
func (s Settings) WithDefaults() Settings {
	if s.Burst == 0 {
		s.Burst = max(1, int(math.Ceil(s.Rate)))
	}
	if s.DecreaseFactor == 0 {
		s.DecreaseFactor = 0.5
	}
	if s.Recovery == 0 {
		s.Recovery = 5 * time.Second
	}
	if s.MinFraction == 0 {
		s.MinFraction = 0.05
	}
	if s.DegradedFraction == 0 {
		s.DegradedFraction = 0.25
	}
	return s
}

// Validate names every field of s that is out of range. Call it on the
// result of WithDefaults.
func (s Settings) Validate() error {
	var errs []error
	bad := func(field, want string, v any) {
		errs = append(errs, fmt.Errorf("%s = %v, want %s", field, v, want))
	}
	if !(s.Rate > 0) || math.IsInf(s.Rate, 0) {
		bad("Rate", "> 0 and finite", s.Rate)
	}
	if s.Burst < 1 {
		bad("Burst", ">= 1", s.Burst)
	}
	if s.MaxInFlight < 0 {
		bad("MaxInFlight", ">= 0", s.MaxInFlight)
	}
	if !(s.RealtimeReserve >= 0 && s.RealtimeReserve <= 0.9) {
		bad("RealtimeReserve", "in [0, 0.9]", s.RealtimeReserve)
	}
	if !(s.DecreaseFactor > 0 && s.DecreaseFactor < 1) {
		bad("DecreaseFactor", "in (0, 1)", s.DecreaseFactor)
	}
	if s.Recovery <= 0 {
		bad("Recovery", "> 0", s.Recovery)
	}
	if !(s.MinFraction > 0 && s.MinFraction <= 1) {
		bad("MinFraction", "in (0, 1]", s.MinFraction)
	}
	if !(s.DegradedFraction > 0 && s.DegradedFraction <= 1) {
		bad("DegradedFraction", "in (0, 1]", s.DegradedFraction)
	}
	return errors.Join(errs...)
}

// bulkBurst is the burst of the bulk cell: the reserve's share of the
// burst is kept for realtime too, so a batch starting after an idle spell
// leaves room for an event trigger.
func (s Settings) bulkBurst() int {
	return max(1, int(math.Floor(float64(s.Burst)*(1-s.RealtimeReserve))))
}

// degradedBurst and degradedInFlight are one process's share while Redis is
// unreachable; never zero, so a process can always make progress.
func (s Settings) degradedBurst() int {
	return max(1, int(math.Floor(float64(s.Burst)*s.DegradedFraction)))
}

func (s Settings) degradedInFlight() int {
	if s.MaxInFlight == 0 {
		return 0
	}
	return max(1, int(math.Floor(float64(s.MaxInFlight)*s.DegradedFraction)))
}

// cubicC is the constant of the climb for a ceiling: the climb from a
// decrease at the ceiling is back at the ceiling after Recovery.
func (s Settings) cubicC(ceiling float64) float64 {
	k := s.Recovery.Seconds()
	return ceiling * (1 - s.DecreaseFactor) / (k * k * k)
}

// climb is the effective rate t seconds after a decrease from wMax to
// effDec: wMax + c(t − K)³ with K = ∛((wMax − effDec)/c), so that it starts
// at effDec. Callers clamp it.
func climb(effDec, wMax, c, t float64) float64 {
	k := math.Cbrt(max(0, wMax-effDec) / c)
	d := t - k
	return wMax + c*d*d*d
}
