package ratelimit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/internal/redistest"
)

// These tests run the scripts on the real Redis, in real time. They keep
// each run to a second or two and assert with generous tolerances: the
// bounds that must hold exactly (GCRA's upper bound, the in-flight cap) get
// a permit of slack for where the window falls, the lower bounds a few
// percent for a noisy machine.

const testKey = "cloud:0123456789abcdef0123456789abcdef.irdgws.example.com"

func newRedisFleet(t *testing.T, r *redistest.Redis, s Settings, opts FleetOptions) *Fleet {
	t.Helper()
	return newRedisFleetClient(t, r.Client, r.Prefix, s, opts)
}

func newRedisFleetClient(t testing.TB, rdb redis.UniversalClient, prefix string, s Settings, opts FleetOptions) *Fleet {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	f, err := NewFleet(rdb, prefix, map[string]Settings{testKey: s}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// hammer runs workers that each take permits back to back for dur and
// returns how many were granted within the window. hold runs while a
// permit is held.
func hammer(t testing.TB, f *Fleet, p Priority, workers int, dur time.Duration, hold func()) int {
	t.Helper()
	start := time.Now()
	end := start.Add(dur)
	// The permits' deadline (their in-flight expiry) is past the window,
	// so that a hold running over the window's end is still a holder.
	ctx, cancel := context.WithDeadline(context.Background(), end.Add(time.Second))
	defer cancel()
	var granted atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(end) {
				pm, err := f.Acquire(ctx, testKey, p, 500*time.Millisecond)
				var de *DelayError
				switch {
				case errors.As(err, &de):
					_ = sleepCtx(ctx, min(de.RetryIn, 50*time.Millisecond))
					continue
				case err != nil:
					if ctx.Err() == nil {
						t.Errorf("Acquire: %v", err)
					}
					return
				}
				if time.Now().Before(end) {
					granted.Add(1)
				}
				if hold != nil {
					hold()
				}
				pm.Release()
			}
		})
	}
	wg.Wait()
	return int(granted.Load())
}

func TestFleetRateAccuracy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		rate      float64
		burst     int
		processes int // Fleet instances sharing the key, as separate workers would
	}{
		{name: "one process", rate: 50, burst: 5, processes: 1},
		{name: "three processes", rate: 40, burst: 4, processes: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := redistest.New(t)
			const dur = 2 * time.Second
			s := Settings{Rate: tc.rate, Burst: tc.burst}
			var total atomic.Int64
			var wg sync.WaitGroup
			for range tc.processes {
				f := newRedisFleet(t, r, s, FleetOptions{})
				wg.Go(func() { total.Add(int64(hammer(t, f, PriorityRealtime, 6, dur, nil))) })
			}
			wg.Wait()
			want := tc.rate * dur.Seconds()
			got := float64(total.Load())
			if got > want+float64(tc.burst)+1 {
				t.Errorf("granted %v in %v, more than rate×time + burst = %v", got, dur, want+float64(tc.burst))
			}
			if got < 0.97*want {
				t.Errorf("granted %v in %v, less than 97%% of %v", got, dur, want)
			}
			t.Logf("granted %v in %v at %v/s (burst %d)", got, dur, tc.rate, tc.burst)
		})
	}
}

func TestFleetRealtimeReserve(t *testing.T) {
	t.Parallel()
	const dur = 2 * time.Second
	s := Settings{Rate: 40, Burst: 4, RealtimeReserve: 0.25} // bulk: 30/s, burst 3
	t.Run("bulk alone uses the whole rate: an idle reserve is not wasted", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		f := newRedisFleet(t, r, s, FleetOptions{})
		got := hammer(t, f, PriorityBulk, 6, dur, nil)
		if float64(got) > 40*dur.Seconds()+4+1 || float64(got) < 0.95*40*dur.Seconds() {
			t.Errorf("bulk alone granted %d in %v, want about %v", got, dur, 40*dur.Seconds())
		}
	})
	t.Run("realtime keeps its share while bulk saturates", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		bulkFleet := newRedisFleet(t, r, s, FleetOptions{})
		rtFleet := newRedisFleet(t, r, s, FleetOptions{})
		var bulk, rt int
		var wg sync.WaitGroup
		wg.Go(func() { bulk = hammer(t, bulkFleet, PriorityBulk, 6, dur, nil) })
		wg.Go(func() { rt = hammer(t, rtFleet, PriorityRealtime, 3, dur, nil) })
		wg.Wait()
		// Until realtime's first permit, bulk may take the burst of the
		// whole cell.
		if float64(bulk) > 30*dur.Seconds()+3+4+1 {
			t.Errorf("bulk granted %d, more than its share %v", bulk, 30*dur.Seconds()+3)
		}
		if float64(rt) < 0.8*10*dur.Seconds() {
			t.Errorf("realtime granted %d beside a saturating batch, want at least most of its reserve %v", rt, 10*dur.Seconds())
		}
		if float64(bulk+rt) > 40*dur.Seconds()+4+1 {
			t.Errorf("together granted %d, more than the limit %v", bulk+rt, 40*dur.Seconds()+4)
		}
		t.Logf("bulk %d, realtime %d in %v", bulk, rt, dur)
	})
}

func TestFleetInFlight(t *testing.T) {
	t.Parallel()
	t.Run("the cap is never exceeded across processes", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		s := Settings{Rate: 10000, Burst: 100, MaxInFlight: 3}
		var cur, peak, total atomic.Int64
		hold := func() {
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			cur.Add(-1)
		}
		var wg sync.WaitGroup
		for range 2 {
			f := newRedisFleet(t, r, s, FleetOptions{InFlightPoll: 2 * time.Millisecond})
			wg.Go(func() { total.Add(int64(hammer(t, f, PriorityBulk, 5, time.Second, hold))) })
		}
		wg.Wait()
		if peak.Load() > 3 {
			t.Errorf("peak concurrent holders = %d, cap 3", peak.Load())
		}
		if total.Load() < 50 {
			t.Errorf("only %d permits in a second", total.Load())
		}
		t.Logf("%d permits, peak %d in flight", total.Load(), peak.Load())
	})
	t.Run("holders that never release expire at their deadline", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		f := newRedisFleet(t, r, Settings{Rate: 1000, Burst: 10, MaxInFlight: 2}, FleetOptions{})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		for i := range 2 {
			if _, err := f.Acquire(ctx, testKey, PriorityBulk, 0); err != nil { // never released: a crash
				t.Fatalf("holder %d: %v", i, err)
			}
		}
		_, err := f.Acquire(context.Background(), testKey, PriorityBulk, 0)
		var de *DelayError
		if !errors.As(err, &de) || de.Reason != ReasonInFlight || de.RetryIn > 300*time.Millisecond {
			t.Fatalf("third holder: want an in_flight DelayError within 300ms, got %v", err)
		}
		start := time.Now()
		pm, err := f.Acquire(context.Background(), testKey, PriorityBulk, 3*time.Second)
		if err != nil {
			t.Fatalf("after expiry: %v", err)
		}
		defer pm.Release()
		if waited := time.Since(start); waited < 150*time.Millisecond {
			t.Errorf("got a slot after %v, before the holders expired", waited)
		}
	})
	t.Run("a released slot is free at once, and releasing is idempotent", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		f := newRedisFleet(t, r, Settings{Rate: 1000, Burst: 10, MaxInFlight: 1}, FleetOptions{})
		ctx := context.Background()
		for i := range 3 {
			pm, err := f.Acquire(ctx, testKey, PriorityRealtime, 0)
			if err != nil {
				t.Fatalf("permit %d: %v", i, err)
			}
			pm.Release()
			pm.Release()
		}
		var nilPermit *Permit
		nilPermit.Release()
		if n := r.Client.ZCard(ctx, inFlightKey(r.Prefix, testKey)).Val(); n != 0 {
			t.Fatalf("%d holders left after release", n)
		}
	})
	t.Run("a full cap takes no rate permit", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		f := newRedisFleet(t, r, Settings{Rate: 1, Burst: 2, MaxInFlight: 1}, FleetOptions{})
		ctx := context.Background()
		pm, err := f.Acquire(ctx, testKey, PriorityRealtime, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if _, err := f.Acquire(ctx, testKey, PriorityRealtime, 0); err == nil {
				t.Fatal("granted past the cap")
			}
		}
		pm.Release()
		if _, err := f.Acquire(ctx, testKey, PriorityRealtime, 0); err != nil {
			t.Fatalf("the second burst permit was spent by refusals: %v", err)
		}
	})
}

func effective(t *testing.T, f *Fleet) float64 {
	t.Helper()
	eff, err := f.Effective(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	return eff
}

func TestFleetAdaptive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("a signal halves the rate, a burst of signals does not collapse it", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		reg := prometheus.NewRegistry()
		f := newRedisFleet(t, r, Settings{Rate: 100, Recovery: time.Hour}, FleetOptions{Cooldown: 150 * time.Millisecond, Metrics: NewMetrics(reg)})
		if got := effective(t, f); got != 100 {
			t.Fatalf("before any signal effective = %v, want the ceiling", got)
		}
		for range 10 { // one overload, many 429s
			if err := f.Throttled(ctx, testKey, 0); err != nil {
				t.Fatal(err)
			}
		}
		if got := effective(t, f); got < 50 || got > 50.5 {
			t.Fatalf("after a burst of signals effective = %v, want 50", got)
		}
		if got := counterValue(t, reg, "gatewayq_ratelimit_throttle_signals_total"); got != 10 {
			t.Errorf("throttle signals metric = %v, want 10", got)
		}
		time.Sleep(200 * time.Millisecond) // past the cool-down
		if err := f.Throttled(ctx, testKey, 0); err != nil {
			t.Fatal(err)
		}
		if got := effective(t, f); got < 25 || got > 25.5 {
			t.Fatalf("after a signal past the cool-down effective = %v, want 25", got)
		}
	})
	t.Run("the floor holds", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		f := newRedisFleet(t, r, Settings{Rate: 100, MinFraction: 0.2, Recovery: time.Hour}, FleetOptions{Cooldown: time.Millisecond})
		for range 6 {
			if err := f.Throttled(ctx, testKey, 0); err != nil {
				t.Fatal(err)
			}
			time.Sleep(60 * time.Millisecond) // the cool-down is one permit at the new rate, ≤ 50ms
		}
		if got := effective(t, f); got < 20 || got > 21 {
			t.Fatalf("effective = %v, want the floor 20", got)
		}
	})
	t.Run("the rate climbs back to the ceiling", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		f := newRedisFleet(t, r, Settings{Rate: 100, Recovery: time.Second}, FleetOptions{})
		if err := f.Throttled(ctx, testKey, 0); err != nil {
			t.Fatal(err)
		}
		first := effective(t, f)
		if first >= 90 {
			t.Fatalf("right after the signal effective = %v, want about 50", first)
		}
		prev := first
		deadline := time.Now().Add(3 * time.Second)
		for {
			time.Sleep(100 * time.Millisecond)
			got := effective(t, f)
			if got < prev {
				t.Fatalf("effective fell from %v to %v while climbing", prev, got)
			}
			prev = got
			if got == 100 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("effective %v, not back at the ceiling after 3 s", got)
			}
		}
	})
	t.Run("a one-second Retry-After slows the fleet without pausing it", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		f := newRedisFleet(t, r, Settings{Rate: 100, Recovery: time.Hour}, FleetOptions{})
		if err := f.Throttled(ctx, testKey, time.Second); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		p, err := f.Acquire(ctx, testKey, PriorityRealtime, 500*time.Millisecond)
		if err != nil {
			t.Fatalf("a permit within half a second of a 1 s Retry-After: %v", err)
		}
		p.Release()
		if waited := time.Since(start); waited > 300*time.Millisecond {
			t.Fatalf("waited %v: the fleet paused", waited)
		}
		if got := effective(t, f); got > 51 {
			t.Fatalf("effective = %v, want the decrease to 50", got)
		}
	})
	t.Run("grants follow the decreased rate", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		f := newRedisFleet(t, r, Settings{Rate: 60, Burst: 6, Recovery: time.Hour}, FleetOptions{})
		if err := f.Throttled(ctx, testKey, 0); err != nil {
			t.Fatal(err)
		}
		got := hammer(t, f, PriorityRealtime, 4, 1500*time.Millisecond, nil)
		// 30/s, burst emptied by the signal.
		if float64(got) > 30*1.5+1+1 || float64(got) < 0.9*30*1.5 {
			t.Errorf("granted %d in 1.5 s after a decrease to 30/s", got)
		}
	})
	t.Run("a Retry-After past the threshold pauses every process", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		s := Settings{Rate: 100}
		opts := FleetOptions{PauseThreshold: 100 * time.Millisecond}
		f1, f2 := newRedisFleet(t, r, s, opts), newRedisFleet(t, r, s, opts)
		if err := f1.Throttled(ctx, testKey, 400*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		for i, f := range []*Fleet{f1, f2} {
			for _, p := range []Priority{PriorityRealtime, PriorityBulk} {
				_, err := f.Acquire(ctx, testKey, p, 0)
				var de *DelayError
				if !errors.As(err, &de) || de.Reason != ReasonPaused || de.RetryIn > 400*time.Millisecond || de.RetryIn < 200*time.Millisecond {
					t.Fatalf("process %d %v during the pause: want a paused DelayError of about 400ms, got %v", i, p, err)
				}
			}
		}
		start := time.Now()
		pm, err := f2.Acquire(ctx, testKey, PriorityRealtime, 2*time.Second)
		if err != nil {
			t.Fatalf("waiting out the pause: %v", err)
		}
		pm.Release()
		if waited := time.Since(start); waited < 200*time.Millisecond {
			t.Errorf("granted %v into a 400ms pause", waited)
		}
	})
}

func TestFleetKeys(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	f := newRedisFleet(t, r, Settings{Rate: 10, MaxInFlight: 2}, FleetOptions{})
	ctx := context.Background()
	pm, err := f.Acquire(ctx, testKey, PriorityRealtime, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Release()
	state, inflight := stateKey(r.Prefix, testKey), inFlightKey(r.Prefix, testKey)
	tag := "{limit:" + testKey + "}"
	if !strings.Contains(state, tag) || !strings.Contains(inflight, tag) {
		t.Fatalf("keys %q and %q do not share the hash tag %q", state, inflight, tag)
	}
	if n := r.Client.Exists(ctx, state, inflight).Val(); n != 2 {
		t.Fatalf("%d of the limit's two keys exist", n)
	}
	// Both expire on their own, so an idle limit leaves nothing behind.
	for _, k := range []string{state, inflight} {
		if ttl := r.Client.PTTL(ctx, k).Val(); ttl <= 0 || ttl > 3*time.Minute {
			t.Errorf("%s TTL = %v", k, ttl)
		}
	}
}
