package breaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	errBoom  = errors.New("boom")
	errOther = errors.New("other")
)

// clock is an injected Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 10, 28, 2, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// baseSettings has a window far longer than any test runs, so gobreaker's
// wall-clock window never rolls in tests that don't mean it to.
func baseSettings() Settings {
	return Settings{FailureRatio: 0.5, MinRequests: 10, Window: time.Hour, OpenFor: 15 * time.Second, HalfOpenProbes: 1}
}

// newLocalFleet is a breaker without Redis on an injected clock.
func newLocalFleet(t *testing.T, s Settings, clk *clock, opts Options) *Fleet {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	if clk != nil {
		opts.Now = clk.Now
	}
	f, err := New(nil, "", s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// calls makes n allowed calls to key ending with err; it fails the test if
// one is refused.
func calls(t *testing.T, f *Fleet, key string, n int, err error) {
	t.Helper()
	for range n {
		done, aerr := f.Allow(context.Background(), key)
		if aerr != nil {
			t.Fatalf("Allow refused a call: %v", aerr)
		}
		done(err)
	}
}

func openError(t *testing.T, err error) *OpenError {
	t.Helper()
	var oe *OpenError
	if !errors.As(err, &oe) || !errors.Is(err, ErrOpen) {
		t.Fatalf("err = %v, want *OpenError wrapping ErrOpen", err)
	}
	return oe
}

func TestSettingsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		s      Settings
		fields []string
	}{
		{name: "zero takes defaults", s: Settings{}},
		{name: "full", s: baseSettings()},
		{name: "ratio of one", s: Settings{FailureRatio: 1}},
		{name: "ratio above one", s: Settings{FailureRatio: 1.5}, fields: []string{"FailureRatio"}},
		{name: "negative everything", s: Settings{FailureRatio: -1, Window: -1, OpenFor: -1, HalfOpenProbes: -1},
			fields: []string{"FailureRatio", "Window", "OpenFor", "HalfOpenProbes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.s.Validate()
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil, want errors")
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f+":") {
					t.Errorf("error %q doesn't name %s", err, f)
				}
			}
			if _, nerr := New(nil, "", tt.s, Options{}); nerr == nil {
				t.Error("New accepted invalid settings")
			}
		})
	}
}

func TestNewRejectsHashTagInPrefix(t *testing.T) {
	t.Parallel()
	if _, err := New(nil, "gq:{x}:", Settings{}, Options{}); err == nil {
		t.Fatal("New accepted a prefix with a hash tag")
	}
}

func TestTripsAtRatioPastMinRequests(t *testing.T) {
	t.Parallel()
	// Each case makes its calls in order: excluded, other errors,
	// successes, then failures (gobreaker evaluates the ratio on a
	// failure).
	tests := []struct {
		name                              string
		excluded, other, success, failure int
		isFailure                         func(error) bool
		consecutive                       uint32
		want                              State
	}{
		{name: "a run of failures trips despite earlier successes", success: 200, failure: 6, consecutive: 6, want: Open},
		{name: "a shorter run does not", success: 200, failure: 5, consecutive: 6, want: Closed},
		{name: "below minimum volume", failure: 9, want: Closed},
		{name: "at minimum volume and ratio", success: 5, failure: 5, want: Open},
		{name: "below ratio", success: 6, failure: 4, want: Closed},
		{name: "ratio reached past minimum volume", success: 15, failure: 15, want: Open},
		{name: "excluded add no volume", excluded: 20, success: 4, failure: 5, want: Closed},
		{name: "excluded are not failures", excluded: 30, success: 10, want: Closed},
		{name: "caller decides what fails", other: 10, failure: 9,
			isFailure: func(err error) bool { return errors.Is(err, errBoom) }, want: Closed},
		{name: "caller's failures trip", other: 5, failure: 5,
			isFailure: func(err error) bool { return errors.Is(err, errBoom) }, want: Open},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := baseSettings()
			s.IsFailure = tt.isFailure
			s.ConsecutiveFailures = tt.consecutive
			f := newLocalFleet(t, s, newClock(), Options{})
			const key = "cloud:abc"
			calls(t, f, key, tt.excluded, context.Canceled)
			calls(t, f, key, tt.other, errOther)
			calls(t, f, key, tt.success, nil)
			for i := range tt.failure {
				done, err := f.Allow(context.Background(), key)
				if err != nil {
					t.Fatalf("failure %d refused: %v", i, err)
				}
				done(errBoom)
			}
			if got := f.State(key); got != tt.want {
				t.Fatalf("State = %s, want %s", got, tt.want)
			}
			if other := f.State("cloud:other"); other != Closed {
				t.Fatalf("another key's State = %s, want closed", other)
			}
		})
	}
}

func TestOpenRefusesWithRetryIn(t *testing.T) {
	t.Parallel()
	clk := newClock()
	f := newLocalFleet(t, baseSettings(), clk, Options{})
	const key = "cloud:abc"
	calls(t, f, key, 10, errBoom)
	steps := []struct {
		advance time.Duration
		want    time.Duration
	}{
		{advance: 0, want: 15 * time.Second},
		{advance: 10 * time.Second, want: 5 * time.Second},
		{advance: 4 * time.Second, want: time.Second},
		{advance: 900 * time.Millisecond, want: time.Second}, // 100 ms left: the minimum
	}
	for _, st := range steps {
		clk.Add(st.advance)
		_, err := f.Allow(context.Background(), key)
		if got := openError(t, err); got.RetryIn != st.want || got.Key != key {
			t.Fatalf("after %s more: OpenError = %+v, want RetryIn %s", st.advance, got, st.want)
		}
		if s := f.State(key); s != Open {
			t.Fatalf("State = %s, want open", s)
		}
	}
	clk.Add(100 * time.Millisecond)
	if s := f.State(key); s != HalfOpen {
		t.Fatalf("State at OpenFor = %s, want half-open", s)
	}
}

func TestHalfOpenAllowsExactlyHalfOpenProbes(t *testing.T) {
	t.Parallel()
	for _, probes := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d probes", probes), func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			s := baseSettings()
			s.HalfOpenProbes = probes
			f := newLocalFleet(t, s, clk, Options{MinRetryIn: 2 * time.Second})
			const key = "k"
			calls(t, f, key, 10, errBoom)
			clk.Add(s.OpenFor)
			var dones []func(error)
			for range probes {
				done, err := f.Allow(context.Background(), key)
				if err != nil {
					t.Fatalf("probe %d refused: %v", len(dones)+1, err)
				}
				dones = append(dones, done)
			}
			_, err := f.Allow(context.Background(), key)
			if oe := openError(t, err); oe.RetryIn != 2*time.Second {
				t.Fatalf("RetryIn with every probe slot taken = %s, want MinRetryIn", oe.RetryIn)
			}
			// A probe whose outcome is excluded frees its slot only.
			dones[0](context.Canceled)
			done, err := f.Allow(context.Background(), key)
			if err != nil {
				t.Fatalf("slot of an excluded probe not freed: %v", err)
			}
			if st := f.State(key); st != HalfOpen {
				t.Fatalf("State = %s, want half-open", st)
			}
			done(nil)
		})
	}
}

func TestProbeOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		want      State
		wantRetry time.Duration
	}{
		{name: "success closes", err: nil, want: Closed},
		{name: "failure re-opens", err: errBoom, want: Open, wantRetry: 15 * time.Second},
		{name: "excluded stays half-open", err: context.Canceled, want: HalfOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			f := newLocalFleet(t, baseSettings(), clk, Options{})
			const key = "k"
			calls(t, f, key, 10, errBoom)
			clk.Add(20 * time.Second)
			done, err := f.Allow(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			clk.Add(3 * time.Second)
			done(tt.err)
			if got := f.State(key); got != tt.want {
				t.Fatalf("State = %s, want %s", got, tt.want)
			}
			_, err = f.Allow(context.Background(), key)
			switch tt.want {
			case Open:
				if oe := openError(t, err); oe.RetryIn != tt.wantRetry {
					t.Fatalf("RetryIn = %s, want %s", oe.RetryIn, tt.wantRetry)
				}
			default:
				if err != nil {
					t.Fatalf("Allow after %s: %v", tt.name, err)
				}
			}
		})
	}
}

func TestClosingStartsFreshCounts(t *testing.T) {
	t.Parallel()
	clk := newClock()
	f := newLocalFleet(t, baseSettings(), clk, Options{})
	const key = "k"
	calls(t, f, key, 10, nil)
	// Calls allowed before the trip, reported after it.
	var stale []func(error)
	for range 5 {
		done, err := f.Allow(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		stale = append(stale, done)
	}
	calls(t, f, key, 9, errBoom) // 9 of 19: below the ratio
	if s := f.State(key); s != Closed {
		t.Fatalf("State = %s, want closed", s)
	}
	calls(t, f, key, 1, errBoom) // 10 of 20
	if s := f.State(key); s != Open {
		t.Fatalf("State = %s, want open", s)
	}
	clk.Add(15 * time.Second)
	probe, err := f.Allow(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	probe(nil)
	probe(errBoom) // a second report is ignored
	for _, done := range stale {
		done(errBoom) // outcomes of an earlier period are ignored
	}
	// Nine failures on fresh counts are below MinRequests.
	calls(t, f, key, 9, errBoom)
	if s := f.State(key); s != Closed {
		t.Fatalf("State = %s, want closed: counts from before the close leaked", s)
	}
}

func TestWindowRolls(t *testing.T) {
	t.Parallel()
	// gobreaker's window follows time.Now; synctest's bubble fakes it, so
	// time.Sleep below advances the clock without waiting.
	tests := []struct {
		name  string
		pause time.Duration
		want  State
	}{
		{name: "failures within the window trip", pause: 5 * time.Second, want: Open},
		{name: "failures past the window have rolled out", pause: 11 * time.Second, want: Closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s := baseSettings()
				s.Window = 10 * time.Second
				f := newLocalFleet(t, s, nil, Options{})
				calls(t, f, "k", 9, errBoom)
				time.Sleep(tt.pause)
				calls(t, f, "k", 1, errBoom)
				if got := f.State("k"); got != tt.want {
					t.Fatalf("State = %s, want %s", got, tt.want)
				}
			})
		})
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	clk := newClock()
	f := newLocalFleet(t, baseSettings(), clk, Options{Metrics: m})
	const key = "cloud:abc"
	calls(t, f, key, 3, nil)
	calls(t, f, key, 2, context.Canceled)
	if got := gauge(t, reg, "gatewayq_breaker_window_calls", key, "success"); got != 3 {
		t.Fatalf("window success = %v, want 3", got)
	}
	if got := gauge(t, reg, "gatewayq_breaker_window_calls", key, "excluded"); got != 2 {
		t.Fatalf("window excluded = %v, want 2", got)
	}
	calls(t, f, key, 7, errBoom) // 7 of 10 trip
	for range 4 {
		_, _ = f.Allow(context.Background(), key)
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"gatewayq_breaker_state", []string{key}, 2},
		{"gatewayq_breaker_trips_total", []string{key}, 1},
		{"gatewayq_breaker_refused_total", []string{key}, 4},
		{"gatewayq_breaker_state_changes_total", []string{key, "open"}, 1},
	}
	for _, c := range checks {
		if got := gauge(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	clk.Add(15 * time.Second)
	if f.State(key); gauge(t, reg, "gatewayq_breaker_state", key) != 1 {
		t.Error("state gauge is not 1 when half-open")
	}
	var nilMetrics *Metrics // must be a no-op
	nilMetrics.redisError()
	nilMetrics.forKey(key).refused()
}

// gauge reads one series' value from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			lp := m.GetLabel()
			if len(lp) != len(labels) {
				continue
			}
			// Labels come sorted by name: key, then outcome or to.
			for i, l := range lp {
				if l.GetValue() != labels[i] {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

func TestStateString(t *testing.T) {
	t.Parallel()
	for s, want := range map[State]string{Closed: "closed", HalfOpen: "half-open", Open: "open", State(7): "State(7)"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(s), s.String(), want)
		}
	}
}
