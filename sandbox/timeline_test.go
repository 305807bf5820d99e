package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestTimelineSumsToStats(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{TimelineResolution: time.Second})
	t0 := h.clock.Now().Truncate(time.Second)
	prepop := gstSample(t, "body-gst-returnprepop-request.xml")
	call := func() answer { return h.soap(t, pathReturns, prepop, h.bearer()) }

	// Second 0: two answered, one refused for its Content-Type (Other).
	call()
	call()
	h.do(t, h.cloud, http.MethodPost, h.s.CloudURL()+pathReturns, "text/xml", h.bearer(), prepop)
	// Second 1: an outage.
	h.clock.Advance(time.Second)
	h.s.SetOutage(503, 0)
	call()
	h.s.EndOutage()
	// Second 2: an injected 5xx and a reset.
	h.clock.Advance(time.Second)
	if err := h.s.SetFaults(Faults{HTTP5xx: 1}); err != nil {
		t.Fatal(err)
	}
	call()
	if err := h.s.SetFaults(Faults{Reset: 1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.trySOAP(h.cloud, prepop); err == nil {
		t.Fatal("reset call answered")
	}
	if err := h.s.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	// Second 4 (3 is empty): a File accepted, then one throttled.
	h.clock.Advance(2 * time.Second)
	h.s.SetThrottle(0.001, 1)
	h.soap(t, pathReturns, gstSample(t, "body-gst-returnfile-request-GST101A.xml"), h.bearer())
	if a := call(); a.HTTP != http.StatusTooManyRequests {
		t.Fatalf("HTTP %d, want 429", a.HTTP)
	}
	waitFor(t, "calls to end", func() bool { return h.s.Stats().InFlight == 0 })

	buckets := h.s.Timeline()
	want := []Bucket{
		{Start: t0, Calls: 3, OK: 2, Other: 1},
		{Start: t0.Add(time.Second), Calls: 1, Unavailable: 1},
		{Start: t0.Add(2 * time.Second), Calls: 2, Faulted: 2},
		{Start: t0.Add(3 * time.Second)},
		{Start: t0.Add(4 * time.Second), Calls: 2, OK: 1, Throttled: 1, Filed: 1},
	}
	if len(buckets) != len(want) {
		t.Fatalf("%d buckets, want %d: %+v", len(buckets), len(want), buckets)
	}
	for i := range want {
		if !buckets[i].Start.Equal(want[i].Start) {
			t.Errorf("bucket %d starts %v, want %v", i, buckets[i].Start, want[i].Start)
		}
		buckets[i].Start = want[i].Start
		if buckets[i] != want[i] {
			t.Errorf("bucket %d: %+v, want %+v", i, buckets[i], want[i])
		}
	}

	var sum Bucket
	for _, b := range buckets {
		sum.add(b)
	}
	st := h.s.Stats()
	var calls, ok int64
	for _, n := range st.Calls {
		calls += n
	}
	for code, n := range st.HTTPStatus {
		if code >= 200 && code < 300 {
			ok += n
		}
	}
	var injected int64
	for _, n := range st.Injected {
		injected += n
	}
	if sum.Calls != calls || sum.Answered() != calls || sum.OK != ok || sum.Throttled != st.Throttled ||
		sum.Unavailable != st.Outage || sum.Faulted != injected || sum.Filed != st.Filed {
		t.Errorf("timeline sums %+v disagree with stats %+v", sum, st)
	}

	between := h.s.TimelineBetween(t0.Add(time.Second), t0.Add(3*time.Second))
	if between.Calls != 3 || between.Unavailable != 1 || between.Faulted != 2 || !between.Start.Equal(t0.Add(time.Second)) {
		t.Errorf("TimelineBetween(1s, 3s) = %+v", between)
	}
}

func TestTimelineRing(t *testing.T) {
	t.Parallel()
	base := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	at := func(sec float64) time.Time { return base.Add(time.Duration(sec * float64(time.Second))) }
	tests := []struct {
		name   string
		record []float64 // arrival times, seconds after base, in order
		now    float64
		want   []int64 // Calls per bucket returned, oldest first
		start  float64 // the first bucket's start
	}{
		{"nothing", nil, 10, nil, 0},
		{"gaps are empty buckets", []float64{0, 0.5, 2.2}, 2.5, []int64{2, 0, 1}, 0},
		{"up to now", []float64{1}, 3.9, []int64{1, 0, 0}, 1},
		{"window drops the oldest", []float64{0, 1, 2, 3, 4, 5, 6}, 6, []int64{1, 1, 1, 1, 1}, 2},
		{"a late record for an expired bucket is dropped", []float64{0, 9, 1}, 9, []int64{0, 0, 0, 0, 1}, 5},
		{"a late record inside the window counts", []float64{3, 4, 1}, 4, []int64{1, 0, 1, 1}, 1},
		{"now long after the last record", []float64{0}, 100, []int64{0, 0, 0, 0, 0}, 96},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tl := newTimeline(time.Second, 5*time.Second)
			for _, s := range tt.record {
				tl.arrived(at(s))
			}
			got := tl.buckets(at(tt.now))
			if len(got) != len(tt.want) {
				t.Fatalf("%d buckets, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, b := range got {
				if b.Calls != tt.want[i] {
					t.Errorf("bucket %d: %d calls, want %d", i, b.Calls, tt.want[i])
				}
				if wantStart := at(tt.start).Add(time.Duration(i) * time.Second); !b.Start.Equal(wantStart) {
					t.Errorf("bucket %d starts %v, want %v", i, b.Start, wantStart)
				}
			}
		})
	}
}

func TestAdminFaultEndpoints(t *testing.T) {
	t.Parallel()
	const admin = "another-long-random-admin-token"
	h := newHarness(t, Options{AdminToken: admin})
	plain := newHarness(t, Options{})
	endpoints := []struct {
		method, path, body string
	}{
		{http.MethodPost, "/sandbox/outage?status=503&for=30s", ""},
		{http.MethodDelete, "/sandbox/outage", ""},
		{http.MethodGet, "/sandbox/faults", ""},
		{http.MethodPost, "/sandbox/faults", `{}`},
		{http.MethodPost, "/sandbox/throttle?rps=0", ""},
		{http.MethodGet, "/sandbox/timeline", ""},
	}
	for _, e := range endpoints {
		t.Run("token needed "+e.method+" "+e.path, func(t *testing.T) {
			t.Parallel()
			for _, c := range []struct {
				h    *harness
				auth string
				want int
			}{{h, "", 401}, {h, "Bearer wrong", 401}, {h, admin, 401}, {plain, "Bearer " + admin, 404}, {h, "Bearer " + admin, 200}} {
				status, body, _, err := try(c.h.desktop, e.method, c.h.s.DesktopURL()+e.path, "application/json", c.auth, []byte(e.body))
				if err != nil || status != c.want {
					t.Errorf("auth %q: HTTP %d %s %v, want %d", c.auth, status, body, err, c.want)
				}
			}
		})
	}

	// The effects, in order, on one sandbox of their own.
	e := newHarness(t, Options{AdminToken: admin})
	adminCall := func(method, path, body string, want int) []byte {
		t.Helper()
		status, b, _, err := try(e.cloud, method, e.s.CloudURL()+path, "application/json", "Bearer "+admin, []byte(body))
		if err != nil || status != want {
			t.Fatalf("%s %s: HTTP %d %s %v, want %d", method, path, status, b, err, want)
		}
		return b
	}
	prepop := gstSample(t, "body-gst-returnprepop-request.xml")
	gw := func() int { status, _, _ := e.trySOAP(e.cloud, prepop); return status }

	t.Run("effects", func(t *testing.T) {
		adminCall(http.MethodPost, "/sandbox/outage?status=504&for=1m", "", 200)
		if got := gw(); got != 504 {
			t.Errorf("during the outage: HTTP %d", got)
		}
		var st outageState
		if err := json.Unmarshal(adminCall(http.MethodDelete, "/sandbox/outage", "", 200), &st); err != nil || st.On {
			t.Errorf("DELETE /sandbox/outage: %+v %v", st, err)
		}
		if got := gw(); got != 200 {
			t.Errorf("after the outage: HTTP %d", got)
		}
		adminCall(http.MethodPost, "/sandbox/faults", `{"http5xx":1}`, 200)
		if got := gw(); got != 500 && got != 502 {
			t.Errorf("with http5xx 1: HTTP %d", got)
		}
		var f Faults
		if err := json.Unmarshal(adminCall(http.MethodGet, "/sandbox/faults", "", 200), &f); err != nil || f.HTTP5xx != 1 {
			t.Errorf("GET /sandbox/faults: %+v %v", f, err)
		}
		adminCall(http.MethodPost, "/sandbox/faults", `{}`, 200)
		adminCall(http.MethodPost, "/sandbox/throttle?rps=2.5&burst=3", "", 200)
		if rps, burst := e.s.Throttle(); rps != 2.5 || burst != 3 {
			t.Errorf("throttle %g %d", rps, burst)
		}
		adminCall(http.MethodPost, "/sandbox/throttle?rps=4", "", 200)
		if rps, burst := e.s.Throttle(); rps != 4 || burst != 3 {
			t.Errorf("throttle without burst %g %d", rps, burst)
		}
		var buckets []Bucket
		if err := json.Unmarshal(adminCall(http.MethodGet, "/sandbox/timeline?last=1m", "", 200), &buckets); err != nil {
			t.Fatal(err)
		}
		var calls int64
		for _, b := range buckets {
			calls += b.Calls
		}
		if calls != 3 {
			t.Errorf("timeline counts %d calls, want 3: %+v", calls, buckets)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		for _, c := range []struct{ method, path, body string }{
			{http.MethodPost, "/sandbox/outage?status=200", ""},
			{http.MethodPost, "/sandbox/outage?for=-1s", ""},
			{http.MethodPost, "/sandbox/outage?for=soon", ""},
			{http.MethodPost, "/sandbox/faults", `{"hang":2}`},
			{http.MethodPost, "/sandbox/faults", `{"nope":1}`},
			{http.MethodPost, "/sandbox/faults", `not json`},
			{http.MethodPost, "/sandbox/throttle", ""},
			{http.MethodPost, "/sandbox/throttle?rps=-1", ""},
			{http.MethodPost, "/sandbox/throttle?rps=NaN", ""},
			{http.MethodPost, "/sandbox/throttle?rps=1&burst=0", ""},
			{http.MethodGet, "/sandbox/timeline?last=x", ""},
		} {
			adminCall(c.method, c.path, c.body, http.StatusBadRequest)
		}
		if e.s.Faults() != (Faults{}) {
			t.Errorf("a refused request changed the faults: %+v", e.s.Faults())
		}
	})
}

// ExampleSandbox_SetOutage answers 503 to every gateway call until the
// outage ends, then reads the timeline.
func ExampleSandbox_SetOutage() {
	s, err := New(Options{})
	if err != nil {
		panic(err)
	}
	if err := s.Start(); err != nil {
		panic(err)
	}
	defer s.Close()
	cert, _ := s.PKI().Clients[0].TLSCertificate()
	client := newClient(s.PKI(), &cert)
	defer client.CloseIdleConnections()
	body, _ := os.ReadFile("../testdata/ir-gws/returns-gst/samples/body-gst-returnprepop-request.xml")
	prepop := func() int {
		req, _ := http.NewRequest(http.MethodPost, s.CloudURL()+"/gateway/gws/returns/", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/soap+xml; charset=utf-8")
		req.Header.Set("Authorization", "Bearer "+s.IssueToken("alice", 0))
		resp, err := client.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	s.SetOutage(http.StatusServiceUnavailable, 30*time.Second)
	fmt.Println(prepop())
	s.EndOutage()
	fmt.Println(prepop())

	sum := s.TimelineBetween(time.Now().Add(-time.Minute), time.Now().Add(time.Minute))
	fmt.Println(sum.Calls, sum.OK, sum.Unavailable, s.Stats().Outage)
	// Output:
	// 503
	// 200
	// 2 1 1 1
}
