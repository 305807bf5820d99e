package breaker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/syncbuf"
	"github.com/gatewayq/gatewayq/internal/tcpproxy"
)

// process is one worker process of a test fleet: its own Redis client and
// Fleet, started, and closed when the test ends.
type process struct {
	*Fleet
	rdb *redis.Client
}

func startProcess(t *testing.T, addr, prefix string, s Settings, opts Options) *process {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	f, err := New(rdb, prefix, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		_ = rdb.Close()
	})
	return &process{Fleet: f, rdb: rdb}
}

// fleetOf starts n processes on one prefix and waits until all of them
// are subscribed, so a test of the pub/sub path measures that path.
func fleetOf(t *testing.T, r *redistest.Redis, n int, s Settings, opts Options) []*process {
	t.Helper()
	ps := make([]*process, n)
	for i := range ps {
		ps[i] = startProcess(t, r.Addr, r.Prefix, s, opts)
	}
	channel := r.Prefix + "breaker:events"
	waitFor(t, 5*time.Second, "every process subscribed", func() bool {
		m, err := r.Client.PubSubNumSub(context.Background(), channel).Result()
		return err == nil && m[channel] >= int64(n)
	})
	return ps
}

// waitFor polls cond until it holds; the bound only keeps a broken test
// from hanging, it is not what the test measures.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not within %s", what, bound)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func allIn(ps []*process, key string, want State) func() bool {
	return func() bool {
		for _, p := range ps {
			if p.State(key) != want {
				return false
			}
		}
		return true
	}
}

func fleetSettings() Settings {
	return Settings{FailureRatio: 0.5, MinRequests: 5, Window: time.Hour, OpenFor: 30 * time.Second, HalfOpenProbes: 1}
}

func epochOf(t *testing.T, r *redistest.Redis, key string) int64 {
	t.Helper()
	v, err := r.Client.HGet(context.Background(), r.Prefix+"{breaker:"+key+"}", "epoch").Int64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFleetTripStopsEveryProcess(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	const key = "cloud:0123456789abcdef0123456789abcdef.irdgws.example.com"
	s := fleetSettings()
	reg := prometheus.NewRegistry()
	a := startProcess(t, r.Addr, r.Prefix, s, Options{Metrics: NewMetrics(reg)})
	// b hears only pub/sub: its polls are an hour apart.
	b := startProcess(t, r.Addr, r.Prefix, s, Options{PollInterval: time.Hour})
	c := startProcess(t, r.Addr, r.Prefix, s, Options{})
	channel := r.Prefix + "breaker:events"
	waitFor(t, 5*time.Second, "subscribed", func() bool {
		m, err := r.Client.PubSubNumSub(context.Background(), channel).Result()
		return err == nil && m[channel] >= 3
	})
	others := []*process{b, c}
	for _, p := range others {
		if st := p.State(key); st != Closed {
			t.Fatalf("State before the trip = %s", st)
		}
	}

	calls(t, a.Fleet, key, 5, errBoom)
	if st := a.State(key); st != Open {
		t.Fatalf("tripping process: State = %s, want open", st)
	}
	took := waitFor(t, 2*time.Second, "the others see the trip", allIn(others, key, Open))
	t.Logf("the fleet was open %s after the trip", took)
	// The tripping process's own open and the fleet's confirmation of it
	// are one state change.
	if n := gauge(t, reg, "gatewayq_breaker_state_changes_total", key, "open"); n != 1 {
		t.Fatalf("tripping process saw %v changes to open, want 1", n)
	}
	if n := gauge(t, reg, "gatewayq_breaker_trips_total", key); n != 1 {
		t.Fatalf("trips_total = %v, want 1", n)
	}
	for _, p := range others {
		_, err := p.Allow(context.Background(), key)
		if oe := openError(t, err); oe.RetryIn <= 25*time.Second || oe.RetryIn > 30*time.Second {
			t.Fatalf("RetryIn = %s, want just under OpenFor", oe.RetryIn)
		}
	}
	// A process that starts now learns it before its first call.
	d, err := New(redis.NewClient(&redis.Options{Addr: r.Addr}), r.Prefix, s, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.rdb.Close()
	if _, err := d.Allow(context.Background(), key); !errors.Is(err, ErrOpen) {
		t.Fatalf("new process: Allow = %v, want ErrOpen", err)
	}
	if st := a.State("cloud:elsewhere"); st != Closed {
		t.Fatalf("another key: State = %s, want closed", st)
	}
}

func TestFleetHalfOpenProbesAreFleetWide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		probeErr  error
		wantAfter State
	}{
		{name: "probe success closes for all", probeErr: nil, wantAfter: Closed},
		{name: "probe failure re-opens for all", probeErr: errBoom, wantAfter: Open},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := redistest.New(t)
			const key = "cloud:abc"
			s := fleetSettings()
			s.OpenFor = 300 * time.Millisecond
			s.HalfOpenProbes = 2
			ps := fleetOf(t, r, 3, s, Options{})
			for _, p := range ps {
				p.State(key)
			}
			calls(t, ps[0].Fleet, key, 5, errBoom)
			waitFor(t, 3*time.Second, "open everywhere", allIn(ps, key, Open))
			waitFor(t, 3*time.Second, "half-open everywhere", allIn(ps, key, HalfOpen))
			epoch := epochOf(t, r, key)

			// Four callers in each process ask at once.
			var (
				mu      sync.Mutex
				granted []func(error)
				refused int
				wg      sync.WaitGroup
				start   = make(chan struct{})
			)
			for _, p := range ps {
				for range 4 {
					wg.Go(func() {
						<-start
						done, err := p.Allow(context.Background(), key)
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							if !errors.Is(err, ErrOpen) {
								t.Errorf("Allow: %v", err)
							}
							refused++
							return
						}
						granted = append(granted, done)
					})
				}
			}
			close(start)
			wg.Wait()
			if len(granted) != s.HalfOpenProbes || refused != 12-s.HalfOpenProbes {
				t.Fatalf("granted %d probes and refused %d, want %d granted", len(granted), refused, s.HalfOpenProbes)
			}

			granted[0](tt.probeErr)
			waitFor(t, 2*time.Second, "every process follows the probe", allIn(ps, key, tt.wantAfter))
			after := epochOf(t, r, key)
			if after != epoch+1 {
				t.Fatalf("epoch %d -> %d, want one transition", epoch, after)
			}
			// The other probe's outcome belongs to the half-open period
			// that just ended.
			granted[1](errBoom)
			if got := epochOf(t, r, key); got != after {
				t.Fatalf("a stale probe outcome changed the state (epoch %d -> %d)", after, got)
			}
			if tt.wantAfter == Open {
				_, err := ps[2].Allow(context.Background(), key)
				if oe := openError(t, err); oe.RetryIn != DefaultMinRetryIn { // OpenFor is below the minimum
					t.Fatalf("RetryIn after a failed probe = %s", oe.RetryIn)
				}
			}
		})
	}
}

func TestFleetConvergesWithoutPubSub(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	const key = "desktop:xyz"
	ps := fleetOf(t, r, 2, fleetSettings(), Options{PollInterval: 50 * time.Millisecond})
	for _, p := range ps {
		p.State(key)
	}
	ctx := context.Background()
	hash := r.Prefix + "{breaker:" + key + "}"
	epoch := epochOf(t, r, key)
	now, err := r.Client.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// Another process's trip whose message was lost: the state is written
	// without PUBLISH.
	until := now.Add(time.Minute).UnixMilli()
	if err := r.Client.HSet(ctx, hash, "state", "open", "until", strconv.FormatInt(until, 10), "epoch", epoch+1).Err(); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 2*time.Second, "open by polling", allIn(ps, key, Open))
	t.Logf("converged on open in %s by polling", took)
	if err := r.Client.HSet(ctx, hash, "state", "closed", "until", 0, "epoch", epoch+2).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "closed by polling", allIn(ps, key, Closed))
	// A view older than what a process knows is ignored.
	if err := r.Client.HSet(ctx, hash, "state", "open", "until", strconv.FormatInt(until, 10), "epoch", epoch+1).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // several polls
	for _, p := range ps {
		if st := p.State(key); st != Closed {
			t.Fatalf("a stale view was applied: State = %s", st)
		}
	}
}

// countingHook counts the commands a client sends.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func TestAllowMakesNoRoundTripWhileClosedOrOpen(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	hook := &countingHook{}
	rdb.AddHook(hook)
	f, err := New(rdb, r.Prefix, fleetSettings(), Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	const key = "cloud:abc"
	f.State(key) // first use reads the fleet state
	if hook.n.Load() == 0 {
		t.Fatal("first use made no Redis call")
	}
	hook.n.Store(0)
	calls(t, f, key, 200, nil)
	calls(t, f, key, 100, context.Canceled)
	calls(t, f, key, 4, errBoom)
	if n := hook.n.Load(); n != 0 {
		t.Fatalf("closed: %d Redis commands for 304 calls, want 0", n)
	}
	for f.State(key) == Closed { // the trip: one script
		done, err := f.Allow(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		done(errBoom)
	}
	hook.n.Store(0)
	for range 100 {
		if _, err := f.Allow(context.Background(), key); !errors.Is(err, ErrOpen) {
			t.Fatalf("Allow = %v, want ErrOpen", err)
		}
	}
	if n := hook.n.Load(); n != 0 {
		t.Fatalf("open: %d Redis commands for 100 refusals, want 0", n)
	}
}

// silentListener accepts connections and never answers: a Redis that hangs.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

func TestRedisUnreachableFallsBackToLocal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{name: "connection refused", addr: func(*testing.T) string { return "127.0.0.1:1" }},
		{name: "no answer", addr: silentListener},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The client's own timeouts only bound how long Start takes to
			// give up its subscription; RedisTimeout bounds the calls.
			rdb := redis.NewClient(&redis.Options{Addr: tt.addr(t),
				DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
			defer rdb.Close()
			logs := &syncbuf.Buffer{}
			clk := newClock()
			s := baseSettings()
			s.HalfOpenProbes = 2
			f, err := New(rdb, "t:", s, Options{
				Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: clk.Now,
				RedisTimeout: 100 * time.Millisecond, PollInterval: time.Hour,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := f.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer f.Close()

			const key = "cloud:abc"
			// Generous: a hung Redis must cost at most RedisTimeout once,
			// never a call's lifetime.
			const bound = 5 * time.Second
			begin := time.Now()
			calls(t, f, key, 9, errBoom)
			calls(t, f, key, 1, errBoom) // the trip can't reach Redis
			if st := f.State(key); st != Open {
				t.Fatalf("State = %s, want open (local)", st)
			}
			if _, err := f.Allow(ctx, key); !errors.Is(err, ErrOpen) {
				t.Fatalf("Allow while open = %v", err)
			}
			clk.Add(s.OpenFor)
			p1, err1 := f.Allow(ctx, key)
			p2, err2 := f.Allow(ctx, key)
			_, err3 := f.Allow(ctx, key)
			if err1 != nil || err2 != nil || !errors.Is(err3, ErrOpen) {
				t.Fatalf("half-open without Redis: %v, %v, %v; want two probes, then ErrOpen", err1, err2, err3)
			}
			p1(nil)
			p2(errBoom) // stale: the first probe closed the breaker
			if st := f.State(key); st != Closed {
				t.Fatalf("State after a local probe's success = %s", st)
			}
			if took := time.Since(begin); took > bound {
				t.Fatalf("calls took %s with Redis unreachable", took)
			}
			// Whoever notices the outage first logs it: that may be Start's
			// first poll, in its own goroutine, still writing its line.
			deadline := time.Now().Add(5 * time.Second)
			for !bytes.Contains([]byte(logs.String()), []byte("Redis unreachable")) {
				if time.Now().After(deadline) {
					t.Fatalf("the outage was not logged:\n%s", logs)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestTripDuringOutageReachesFleetWhenRedisReturns(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	const key = "cloud:abc"
	s := fleetSettings()
	px := tcpproxy.New(t, r.Addr)
	cut := startProcess(t, px.Addr(), r.Prefix, s, Options{PollInterval: 50 * time.Millisecond, RedisTimeout: 200 * time.Millisecond})
	other := startProcess(t, r.Addr, r.Prefix, s, Options{PollInterval: 50 * time.Millisecond})
	cut.State(key)
	other.State(key)

	px.Cut()
	calls(t, cut.Fleet, key, 5, errBoom)
	if st := cut.State(key); st != Open {
		t.Fatalf("cut-off process: State = %s, want open", st)
	}
	time.Sleep(150 * time.Millisecond) // polls fail meanwhile
	if st := other.State(key); st != Closed {
		t.Fatalf("other process: State = %s while the trip couldn't be written", st)
	}
	px.Restore()
	took := waitFor(t, 5*time.Second, "the held-back trip reaches the fleet", func() bool { return other.State(key) == Open })
	t.Logf("fleet open %s after Redis returned", took)
}

func TestStartClose(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	channel := r.Prefix + "breaker:events"
	subscribers := func() int64 {
		m, err := r.Client.PubSubNumSub(context.Background(), channel).Result()
		if err != nil {
			t.Fatal(err)
		}
		return m[channel]
	}
	t.Run("Close stops what Start began", func(t *testing.T) {
		f, err := New(rdb, r.Prefix, Settings{}, Options{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := f.Start(context.Background()); err == nil {
			t.Fatal("second Start succeeded")
		}
		f.State("k")
		waitFor(t, 5*time.Second, "subscribed", func() bool { return subscribers() == 1 })
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "unsubscribed", func() bool { return subscribers() == 0 })
		if err := f.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if err := f.Start(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Start after Close = %v, want ErrClosed", err)
		}
		if _, err := f.Allow(context.Background(), "k"); err != nil {
			t.Fatalf("Allow after Close = %v", err)
		}
	})
	t.Run("the context ends it", func(t *testing.T) {
		f, err := New(rdb, r.Prefix, Settings{}, Options{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := f.Start(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("without Redis", func(t *testing.T) {
		f, err := New(nil, "", Settings{}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Start(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Start after Close = %v, want ErrClosed", err)
		}
	})
}

// TestConcurrentUseRecovers hammers a fleet of three with concurrent
// calls of mixed outcomes across trips, probes and re-opens (for the race
// detector and for deadlocks), then checks that the fleet still recovers:
// once the endpoint works, every process ends closed.
func TestConcurrentUseRecovers(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	const key = "cloud:abc"
	s := Settings{FailureRatio: 0.3, MinRequests: 10, Window: time.Second, OpenFor: 20 * time.Millisecond, HalfOpenProbes: 2}
	ps := fleetOf(t, r, 3, s, Options{PollInterval: 10 * time.Millisecond, MinRetryIn: time.Millisecond})
	for _, p := range ps {
		p.State(key)
	}
	epoch := epochOf(t, r, key)
	var healthy atomic.Bool
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i, p := range ps {
		for g := range 4 {
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					done, err := p.Allow(context.Background(), key)
					if err != nil {
						if !errors.Is(err, ErrOpen) {
							t.Errorf("Allow: %v", err)
							return
						}
						time.Sleep(time.Millisecond)
						continue
					}
					switch {
					case healthy.Load():
						done(nil)
					case (n+i+g)%3 == 0:
						done(context.Canceled)
					default:
						done(errBoom)
					}
				}
			})
		}
	}
	time.Sleep(300 * time.Millisecond)
	healthy.Store(true)
	waitFor(t, 5*time.Second, "every process closed once the endpoint works", allIn(ps, key, Closed))
	close(stop)
	wg.Wait()
	if got := epochOf(t, r, key); got < epoch+2 {
		t.Fatalf("epoch %d -> %d: the load never tripped and closed the fleet", epoch, got)
	}
	t.Logf("%d fleet transitions under load", epochOf(t, r, key)-epoch)
	for _, p := range ps {
		p.mu.RLock()
		e := p.entries[key]
		p.mu.RUnlock()
		e.mu.Lock()
		if e.pendingTrip || e.probes < 0 {
			t.Errorf("entry left inconsistent: pendingTrip %v, probes %d", e.pendingTrip, e.probes)
		}
		e.mu.Unlock()
	}
}

func TestCrashedProbeFreesItsSlot(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	const key = "cloud:abc"
	s := fleetSettings()
	s.OpenFor = 100 * time.Millisecond
	ps := fleetOf(t, r, 2, s, Options{ProbeLease: 300 * time.Millisecond})
	crashed, other := ps[0], ps[1]
	other.State(key)
	calls(t, crashed.Fleet, key, 5, errBoom)
	waitFor(t, 3*time.Second, "half-open everywhere", allIn(ps, key, HalfOpen))
	if _, err := crashed.Allow(context.Background(), key); err != nil {
		t.Fatal(err) // the probe whose process "crashes": done is never called
	}
	if _, err := other.Allow(context.Background(), key); !errors.Is(err, ErrOpen) {
		t.Fatalf("second probe while the first holds the only slot: %v", err)
	}
	var done func(error)
	waitFor(t, 5*time.Second, "the slot freed by its lease", func() bool {
		d, err := other.Allow(context.Background(), key)
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			return false
		}
		done = d
		return true
	})
	done(nil)
	waitFor(t, 2*time.Second, "closed everywhere", allIn(ps, key, Closed))
}
