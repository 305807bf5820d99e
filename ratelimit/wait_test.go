package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// fakeRedis stands in for the scripts: each call pops the next reply.
type fakeRedis struct {
	mu      sync.Mutex
	replies []fakeReply
	calls   []string // script names, in order
}

type fakeReply struct {
	res []any
	err error
}

func grant() fakeReply { return fakeReply{res: []any{int64(1), "ok", "0", "10"}} }
func deny(reason string, wait time.Duration) fakeReply {
	return fakeReply{res: []any{int64(0), reason, fmt.Sprint(wait.Microseconds()), "10"}}
}

var errConnRefused = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}

func (fr *fakeRedis) eval(_ context.Context, s *redis.Script, _ []string, _ ...any) ([]any, error) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	name := map[*redis.Script]string{acquireScript: "acquire", throttleScript: "throttle", effectiveScript: "effective"}[s]
	fr.calls = append(fr.calls, name)
	if len(fr.replies) == 0 {
		return nil, errors.New("fakeRedis: no reply left")
	}
	r := fr.replies[0]
	fr.replies = fr.replies[1:]
	return r.res, r.err
}

func (fr *fakeRedis) count() int {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return len(fr.calls)
}

// fakeClock is a clock that only sleeping moves.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return nil
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newFakeFleet builds a Fleet whose scripts and clock are fakes; its Redis
// client is never used.
func newFakeFleet(t *testing.T, s Settings, opts FleetOptions, replies ...fakeReply) (*Fleet, *fakeRedis, *fakeClock) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	f, err := NewFleet(rdb, "t:", map[string]Settings{"cloud:cn": s}, opts)
	if err != nil {
		t.Fatal(err)
	}
	fr := &fakeRedis{replies: replies}
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	f.eval, f.now, f.sleep = fr.eval, clk.now, clk.sleep
	f.zrem = func(context.Context, string, string) error { return nil }
	return f, fr, clk
}

func TestFleetWaitLoop(t *testing.T) {
	t.Parallel()
	s := Settings{Rate: 10, Burst: 1, MaxInFlight: 4}
	tests := []struct {
		name       string
		replies    []fakeReply
		maxWait    time.Duration
		ctxTimeout time.Duration // 0: no deadline
		wantReason string        // "": granted
		wantRetry  time.Duration // for a DelayError
		wantSleeps []time.Duration
		wantCalls  int
	}{
		{name: "granted at once", replies: []fakeReply{grant()}, maxWait: time.Second, wantCalls: 1},
		{
			name:    "waits for the next permit then asks again",
			replies: []fakeReply{deny(ReasonRate, 80*time.Millisecond), deny(ReasonRate, 20*time.Millisecond), grant()},
			maxWait: time.Second, wantSleeps: []time.Duration{20 * time.Millisecond}, wantCalls: 3,
		},
		{
			name:    "a wait past maxWait is refused at once",
			replies: []fakeReply{deny(ReasonReserve, 3*time.Second)},
			maxWait: time.Second, wantReason: ReasonReserve, wantRetry: 3 * time.Second, wantCalls: 1,
		},
		{
			name:       "maxWait zero never waits",
			replies:    []fakeReply{deny(ReasonRate, time.Millisecond)},
			wantReason: ReasonRate, wantRetry: time.Millisecond, wantCalls: 1,
		},
		{
			name:    "a wait past the context deadline is refused",
			replies: []fakeReply{deny(ReasonRate, 500*time.Millisecond)},
			maxWait: time.Hour, ctxTimeout: 200 * time.Millisecond, wantReason: ReasonRate, wantRetry: 500 * time.Millisecond, wantCalls: 1,
		},
		{
			name:    "a pause longer than maxWait is refused with its length",
			replies: []fakeReply{deny(ReasonPaused, 30*time.Second)},
			maxWait: 5 * time.Second, wantReason: ReasonPaused, wantRetry: 30 * time.Second, wantCalls: 1,
		},
		{
			name: "in-flight waits poll, then come back within a second",
			replies: []fakeReply{
				deny(ReasonInFlight, time.Minute), deny(ReasonInFlight, time.Minute), deny(ReasonInFlight, time.Minute),
				deny(ReasonInFlight, time.Minute), deny(ReasonInFlight, time.Minute), deny(ReasonInFlight, time.Minute),
			},
			maxWait: 90 * time.Millisecond, wantReason: ReasonInFlight, wantRetry: time.Second, wantCalls: -1,
		},
		{
			name:    "an in-flight slot freed by a release is taken at the next poll",
			replies: []fakeReply{deny(ReasonInFlight, time.Minute), deny(ReasonInFlight, time.Minute), grant()},
			maxWait: time.Second, wantCalls: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			f, fr, clk := newFakeFleet(t, s, FleetOptions{Metrics: NewMetrics(reg), InFlightPoll: 20 * time.Millisecond}, tc.replies...)
			ctx := context.Background()
			if tc.ctxTimeout > 0 {
				// The deadline is on the fake clock's time line.
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, clk.now().Add(tc.ctxTimeout))
				defer cancel()
			}
			pm, err := f.Acquire(ctx, "cloud:cn", PriorityBulk, tc.maxWait)
			if tc.wantReason == "" {
				if err != nil || pm == nil {
					t.Fatalf("Acquire = %v, %v; want a permit", pm, err)
				}
				pm.Release()
				if got := counterValue(t, reg, "gatewayq_ratelimit_permits_granted_total"); got != 1 {
					t.Errorf("granted metric = %v, want 1", got)
				}
			} else {
				var de *DelayError
				if !errors.As(err, &de) {
					t.Fatalf("Acquire = %v, %v; want a DelayError", pm, err)
				}
				if de.Reason != tc.wantReason || de.RetryIn != tc.wantRetry || de.Key != "cloud:cn" {
					t.Errorf("DelayError = %+v, want reason %s, RetryIn %v", de, tc.wantReason, tc.wantRetry)
				}
				if got := counterValue(t, reg, "gatewayq_ratelimit_permits_denied_total"); got != 1 {
					t.Errorf("denied metric = %v, want 1", got)
				}
			}
			if tc.wantCalls >= 0 && fr.count() != tc.wantCalls {
				t.Errorf("script calls = %d, want %d", fr.count(), tc.wantCalls)
			}
			if tc.wantSleeps != nil && fmt.Sprint(clk.sleeps) != fmt.Sprint(tc.wantSleeps) {
				t.Errorf("sleeps = %v, want %v", clk.sleeps, tc.wantSleeps)
			}
			for _, d := range clk.sleeps {
				if strings.Contains(tc.name, "in-flight") && (d < 20*time.Millisecond || d > 25*time.Millisecond) {
					t.Errorf("in-flight poll slept %v, want the poll interval with up to 25%% jitter", d)
				}
			}
		})
	}
}

func TestFleetAcquireErrors(t *testing.T) {
	t.Parallel()
	s := Settings{Rate: 10}
	t.Run("unknown key", func(t *testing.T) {
		t.Parallel()
		f, _, _ := newFakeFleet(t, s, FleetOptions{})
		if _, err := f.Acquire(context.Background(), "desktop:cn", PriorityRealtime, 0); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("err = %v, want ErrUnknownKey", err)
		}
		if err := f.Throttled(context.Background(), "desktop:cn", 0); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("Throttled err = %v, want ErrUnknownKey", err)
		}
		if _, err := f.Effective(context.Background(), "desktop:cn"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("Effective err = %v, want ErrUnknownKey", err)
		}
	})
	t.Run("an error reply is an error, not degraded mode", func(t *testing.T) {
		t.Parallel()
		f, _, _ := newFakeFleet(t, s, FleetOptions{}, fakeReply{err: redisReply("WRONGTYPE Operation against a key holding the wrong kind of value")})
		_, err := f.Acquire(context.Background(), "cloud:cn", PriorityRealtime, 0)
		var re redis.Error
		if !errors.As(err, &re) {
			t.Fatalf("err = %v, want the Redis reply wrapped", err)
		}
		if f.Degraded() {
			t.Fatal("degraded after an error reply")
		}
	})
	t.Run("a cancelled context ends the wait", func(t *testing.T) {
		t.Parallel()
		f, _, _ := newFakeFleet(t, s, FleetOptions{}, deny(ReasonRate, 10*time.Millisecond), deny(ReasonRate, 10*time.Millisecond))
		ctx, cancel := context.WithCancel(context.Background())
		f.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
		if _, err := f.Acquire(ctx, "cloud:cn", PriorityRealtime, time.Second); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("unknown priority", func(t *testing.T) {
		t.Parallel()
		f, _, _ := newFakeFleet(t, s, FleetOptions{})
		if _, err := f.Acquire(context.Background(), "cloud:cn", Priority(7), 0); err == nil {
			t.Fatal("want an error")
		}
	})
}

// redisReply makes an error reply as go-redis returns it.
type redisReply string

func (e redisReply) Error() string { return string(e) }
func (redisReply) RedisError()     {}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", errConnRefused, true},
		{"connection reset", io.EOF, true},
		{"wrapped timeout", fmt.Errorf("x: %w", &net.OpError{Op: "read", Err: errors.New("i/o timeout")}), true},
		{"pool timeout", redis.ErrPoolTimeout, true},
		{"loading", redisReply("LOADING Redis is loading the dataset in memory"), true},
		{"cluster down", redisReply("CLUSTERDOWN The cluster is down"), true},
		{"failover", redisReply("READONLY You can't write against a read only replica."), true},
		{"script error", redisReply("ERR user_script:1: Script attempted to access nonexistent global variable"), false},
		{"wrong type", redisReply("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{"closed client", redis.ErrClosed, false},
		{"cancelled", context.Canceled, false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := unreachable(tc.err); got != tc.want {
				t.Fatalf("unreachable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestFleetDegradedTransitions(t *testing.T) {
	t.Parallel()
	s := Settings{Rate: 40, Burst: 8, MaxInFlight: 8, DegradedFraction: 0.25}
	reg := prometheus.NewRegistry()
	var logs strings.Builder
	var logMu sync.Mutex
	f, fr, clk := newFakeFleet(t, s, FleetOptions{Metrics: NewMetrics(reg), ProbeInterval: time.Second, Logger: testLogger(&logs, &logMu)},
		fakeReply{err: errConnRefused}, // enters degraded mode
		fakeReply{err: errConnRefused}, // the first probe fails
		grant(),                        // the second probe answers
	)
	ctx := context.Background()

	// Local share: rate 10/s, burst 2, in flight 2.
	var held []*Permit
	for i := range 2 {
		pm, err := f.Acquire(ctx, "cloud:cn", PriorityBulk, 0)
		if err != nil {
			t.Fatalf("degraded permit %d: %v", i, err)
		}
		held = append(held, pm)
	}
	if !f.Degraded() {
		t.Fatal("Degraded() = false after a refused connection")
	}
	if got := gaugeValue(t, reg, "gatewayq_ratelimit_degraded"); got != 1 {
		t.Fatalf("degraded gauge = %v, want 1", got)
	}
	var de *DelayError
	if _, err := f.Acquire(ctx, "cloud:cn", PriorityBulk, 0); !errors.As(err, &de) || de.Reason != ReasonInFlight {
		t.Fatalf("third concurrent permit: want an in_flight DelayError, got %v", err)
	}
	held[0].Release()
	held[0].Release() // twice is harmless
	if _, err := f.Acquire(ctx, "cloud:cn", PriorityBulk, 0); !errors.As(err, &de) || de.Reason != ReasonRate {
		t.Fatalf("past the local burst: want a rate DelayError, got %v", err)
	}
	// A wait within maxWait sleeps on the local share and needs no Redis.
	pm, err := f.Acquire(ctx, "cloud:cn", PriorityBulk, time.Second)
	if err != nil {
		t.Fatalf("waited degraded permit: %v", err)
	}
	if len(clk.sleeps) != 1 || clk.sleeps[0] != 100*time.Millisecond {
		t.Fatalf("sleeps = %v, want one interval of the local rate (100ms)", clk.sleeps)
	}
	pm.Release()
	held[1].Release()
	if fr.count() != 1 {
		t.Fatalf("script calls while degraded = %d, want 1 (no probe before ProbeInterval)", fr.count())
	}

	// Probes: one caller per interval tries Redis.
	clk.advance(time.Second)
	if _, err := f.Acquire(ctx, "cloud:cn", PriorityBulk, 0); err != nil {
		t.Fatalf("permit after a failed probe: %v", err)
	}
	if fr.count() != 2 || !f.Degraded() {
		t.Fatalf("after a failed probe: calls %d degraded %v, want 2 true", fr.count(), f.Degraded())
	}
	clk.advance(time.Second)
	pm, err = f.Acquire(ctx, "cloud:cn", PriorityBulk, 0)
	if err != nil {
		t.Fatalf("permit from the recovered Redis: %v", err)
	}
	pm.Release()
	if f.Degraded() {
		t.Fatal("still degraded after Redis answered")
	}
	if got := gaugeValue(t, reg, "gatewayq_ratelimit_degraded"); got != 0 {
		t.Fatalf("degraded gauge = %v, want 0", got)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if n := strings.Count(out, "Redis unreachable"); n != 1 {
		t.Errorf("logged entering degraded mode %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "Redis answers again"); n != 1 {
		t.Errorf("logged recovery %d times, want once:\n%s", n, out)
	}
}

func TestLocalShareAdaptation(t *testing.T) {
	t.Parallel()
	base := time.Unix(1_700_000_000, 0)
	s := Settings{Rate: 100, DegradedFraction: 0.5, DecreaseFactor: 0.5, Recovery: 2 * time.Second, MinFraction: 0.1}.WithDefaults()
	t.Run("a decrease halves, the cool-down holds, the climb returns", func(t *testing.T) {
		t.Parallel()
		ls := newLocalShare(s)
		ls.throttled(base, 0, time.Second)
		if got := ls.rate(base); got != 25 {
			t.Fatalf("after one signal rate = %v, want 25", got)
		}
		for range 10 {
			ls.throttled(base.Add(500*time.Millisecond), 0, time.Second)
		}
		// The cubic climb: C = 50 × 0.5 / 2³ = 3.125, K = 2 s, so half a
		// second in the rate is 50 + 3.125 × (0.5 − 2)³.
		if got, want := ls.rate(base.Add(500*time.Millisecond)), 50+3.125*-3.375; math.Abs(got-want) > 1e-9 {
			t.Fatalf("signals within the cool-down changed the rate to %v, want %v", got, want)
		}
		if got := ls.rate(base.Add(2 * time.Second)); math.Abs(got-50) > 1e-9 {
			t.Fatalf("after Recovery rate = %v, want back at the throttled 50", got)
		}
		if got := ls.rate(base.Add(10 * time.Second)); got != 50 {
			t.Fatalf("after 10 s rate = %v, want the local ceiling 50", got)
		}
	})
	t.Run("the floor holds", func(t *testing.T) {
		t.Parallel()
		ls := newLocalShare(s)
		at := base
		for i := range 20 {
			if i > 0 {
				at = at.Add(250 * time.Millisecond) // past the cool-down of one permit
			}
			ls.throttled(at, 0, time.Millisecond)
		}
		if got := ls.rate(at); got < 5 || got > 5.5 {
			t.Fatalf("rate = %v, want about the floor 5", got)
		}
	})
	t.Run("Retry-After pauses, and the climb starts after the pause", func(t *testing.T) {
		t.Parallel()
		ls := newLocalShare(s)
		ls.throttled(base, 3*time.Second, time.Second)
		release, d := ls.try(base.Add(time.Second), 0)
		if release != nil || d.reason != ReasonPaused || d.wait != 2*time.Second {
			t.Fatalf("during the pause: %v %+v, want paused for 2s", release != nil, d)
		}
		if got := ls.rate(base.Add(3 * time.Second)); got != 25 {
			t.Fatalf("rate at the pause's end = %v, want 25", got)
		}
		release, _ = ls.try(base.Add(3*time.Second), 0)
		if release == nil {
			t.Fatal("no permit after the pause")
		}
	})
}

func TestSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		s       Settings
		wantBad []string
	}{
		{name: "defaults suffice", s: Settings{Rate: 2.5}},
		{name: "no rate", s: Settings{}, wantBad: []string{"Rate"}},
		{name: "everything wrong", s: Settings{Rate: -1, Burst: -1, MaxInFlight: -1, RealtimeReserve: 0.95, DecreaseFactor: 1, Recovery: -1, MinFraction: -0.1, DegradedFraction: 1.5},
			wantBad: []string{"Rate", "Burst", "MaxInFlight", "RealtimeReserve", "DecreaseFactor", "Recovery", "MinFraction", "DegradedFraction"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.s.WithDefaults().Validate()
			if len(tc.wantBad) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate passed")
			}
			for _, field := range tc.wantBad {
				if !strings.Contains(err.Error(), field+" = ") {
					t.Errorf("error does not name %s: %v", field, err)
				}
			}
		})
	}
	d := Settings{Rate: 2.5}.WithDefaults()
	if d.Burst != 3 || d.DecreaseFactor != 0.5 || d.Recovery != 5*time.Second || d.MinFraction != 0.05 || d.DegradedFraction != 0.25 {
		t.Errorf("defaults = %+v", d)
	}
	if got := (Settings{Burst: 10, RealtimeReserve: 0.25}).bulkBurst(); got != 7 {
		t.Errorf("bulkBurst = %d, want 7", got)
	}
	if got := (Settings{MaxInFlight: 3, DegradedFraction: 0.25}).degradedInFlight(); got != 1 {
		t.Errorf("degradedInFlight = %d, want at least 1", got)
	}
}

func TestNewFleetRefusesBraces(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for _, tc := range []struct{ prefix, key string }{{"gq{x}:", "cloud"}, {"gq:", "cloud:{cn}"}} {
		if _, err := NewFleet(rdb, tc.prefix, map[string]Settings{tc.key: {Rate: 1}}, FleetOptions{}); err == nil {
			t.Errorf("NewFleet(%q, %q) accepted a brace", tc.prefix, tc.key)
		}
	}
	if _, err := NewFleet(rdb, "gq:", map[string]Settings{"cloud": {}}, FleetOptions{}); err == nil || !strings.Contains(err.Error(), `"cloud"`) {
		t.Errorf("NewFleet with no rate: %v, want an error naming the key", err)
	}
}
