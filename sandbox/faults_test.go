package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var gstKey = NaturalKey{"123039858", "GST", "2017-07-31", "GST", ""}

// try is do without failing the test on a transport error: faults make
// errors the expected outcome.
func try(client *http.Client, method, url, contentType, auth string, body []byte) (int, []byte, http.Header, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

func (h *harness) trySOAP(client *http.Client, body []byte) (int, []byte, error) {
	status, b, _, err := try(client, http.MethodPost, h.s.CloudURL()+pathReturns, "application/soap+xml", h.bearer(), body)
	return status, b, err
}

// waitFor polls cond: the sandbox's handlers end on their own goroutines.
// The deadline only turns a hang of the test into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// withTimeout is client with a short overall timeout, sharing its
// transport (and so its TLS configuration).
func withTimeout(client *http.Client, d time.Duration) *http.Client {
	return &http.Client{Transport: client.Transport, Timeout: d}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isConnDropped(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func TestOutage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		d      time.Duration
		want   int
	}{
		{"503 for a duration", 503, 30 * time.Second, 503},
		{"504 until ended", 504, 0, 504},
		{"status outside 5xx means 503", 200, 0, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{ThrottleRPS: 0.001, ThrottleBurst: 1})
			h.s.SetOutage(tt.status, tt.d)
			if st, _, on := h.s.Outage(); !on || st != tt.want {
				t.Fatalf("Outage() = %d %v", st, on)
			}
			file := gstSample(t, "body-gst-returnfile-request-GST101A.xml")
			calls := []struct {
				name   string
				client *http.Client
				method string
				url    string
				ctype  string
				body   []byte
			}{
				{"cloud SOAP File", h.cloud, http.MethodPost, h.s.CloudURL() + pathReturns, "application/soap+xml", file},
				{"desktop SOAP File", h.desktop, http.MethodPost, h.s.DesktopURL() + "/gateway2/gws/returns/", "application/soap+xml", file},
				{"SOAP with a wrong Content-Type", h.cloud, http.MethodPost, h.s.CloudURL() + pathReturns, "text/xml", file},
				{"REST list", h.cloud, http.MethodPost, h.s.CloudURL() + "/gateway/account/list", "application/json", []byte(`{}`)},
				{"REST status", h.desktop, http.MethodGet, h.s.DesktopURL() + "/secure/gateway/account/status", "", nil},
			}
			for _, c := range calls {
				status, body, hdr, err := try(c.client, c.method, c.url, c.ctype, h.bearer(), c.body)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if status != tt.want || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") ||
					!bytes.Contains(body, []byte(strconv.Itoa(tt.want))) {
					t.Errorf("%s: HTTP %d %s %q, want %d and a small HTML page", c.name, status, hdr.Get("Content-Type"), body, tt.want)
				}
			}
			if fs := h.s.Filings(gstKey); len(fs) != 0 {
				t.Errorf("an outage filed %d returns", len(fs))
			}
			st := h.s.Stats()
			if st.Outage != 5 || st.HTTPStatus[tt.want] != 5 || st.Filed != 0 || st.Throttled != 0 {
				t.Errorf("stats: outage %d http %v filed %d throttled %d", st.Outage, st.HTTPStatus, st.Filed, st.Throttled)
			}
			if b := h.s.TimelineBetween(time.Time{}, h.clock.Now().Add(time.Hour)); b.Unavailable != 5 || b.Calls != 5 {
				t.Errorf("timeline: %+v", b)
			}

			// Recovery: by the clock for a timed outage, by EndOutage otherwise.
			if tt.d > 0 {
				h.clock.Advance(tt.d - time.Millisecond)
				if status, _, _ := h.trySOAP(h.cloud, file); status != tt.want {
					t.Fatalf("just before the end: HTTP %d", status)
				}
				h.clock.Advance(time.Millisecond)
			} else {
				h.s.EndOutage()
			}
			if _, _, on := h.s.Outage(); on {
				t.Error("outage still on")
			}
			// The outage spent no throttle token: the burst of 1 is there.
			a := h.soap(t, pathReturns, file, h.bearer())
			if a.HTTP != http.StatusOK || a.StatusCode != 0 || len(h.s.Filings(gstKey)) != 1 {
				t.Errorf("after the outage: HTTP %d statusCode %d", a.HTTP, a.StatusCode)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	prepop := func(t *testing.T) []byte { return gstSample(t, "body-gst-returnprepop-request.xml") }
	file := func(t *testing.T) []byte { return gstSample(t, "body-gst-returnfile-request-GST101A.xml") }
	tests := []struct {
		name     string
		faults   Faults
		body     func(*testing.T) []byte
		timeout  time.Duration // client timeout; 0 keeps the harness's
		check    func(t *testing.T, status int, body []byte, err error)
		injected string
		filed    int
		lost     int64
	}{
		{
			name: "hang until the client gives up", faults: Faults{Hang: 1}, body: prepop, timeout: 300 * time.Millisecond,
			check: func(t *testing.T, status int, _ []byte, err error) {
				if !isTimeout(err) {
					t.Errorf("want a client timeout, got HTTP %d, %v", status, err)
				}
			},
			injected: "hang",
		},
		{
			name: "reset", faults: Faults{Reset: 1}, body: prepop,
			check: func(t *testing.T, status int, _ []byte, err error) {
				if err == nil || isTimeout(err) || !isConnDropped(err) {
					t.Errorf("want a dropped connection, got HTTP %d, %v", status, err)
				}
			},
			injected: "reset",
		},
		{
			name: "5xx", faults: Faults{HTTP5xx: 1}, body: file,
			check: func(t *testing.T, status int, body []byte, err error) {
				if err != nil || (status != 500 && status != 502) || !bytes.Contains(body, []byte("<html>")) {
					t.Errorf("want 500 or 502 with an HTML page, got HTTP %d %q, %v", status, body, err)
				}
			},
			injected: "http5xx",
		},
		{
			name: "lose the response to a filed return", faults: Faults{LoseResponse: 1}, body: file,
			check: func(t *testing.T, status int, _ []byte, err error) {
				if err == nil || isTimeout(err) || !isConnDropped(err) {
					t.Errorf("want a dropped connection, got HTTP %d, %v", status, err)
				}
			},
			injected: "loseResponse", filed: 1, lost: 1,
		},
		{
			name: "hang after commit", faults: Faults{HangAfterCommit: 1}, body: file, timeout: 300 * time.Millisecond,
			check: func(t *testing.T, status int, _ []byte, err error) {
				if !isTimeout(err) {
					t.Errorf("want a client timeout, got HTTP %d, %v", status, err)
				}
			},
			injected: "hangAfterCommit", filed: 1, lost: 1,
		},
		{
			name: "lose response spares calls that are not accepted Files", faults: Faults{LoseResponse: 1, HangAfterCommit: 0}, body: prepop,
			check: func(t *testing.T, status int, _ []byte, err error) {
				if err != nil || status != 200 {
					t.Errorf("want 200, got HTTP %d, %v", status, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{Faults: tt.faults})
			client := h.cloud
			if tt.timeout > 0 {
				client = withTimeout(h.cloud, tt.timeout)
			}
			status, body, err := h.trySOAP(client, tt.body(t))
			t.Logf("client saw HTTP %d, err %v", status, err)
			tt.check(t, status, body, err)
			waitFor(t, "the call to end", func() bool { return h.s.Stats().InFlight == 0 })

			st := h.s.Stats()
			if tt.injected != "" && st.Injected[tt.injected] != 1 {
				t.Errorf("Injected %v, want %s: 1", st.Injected, tt.injected)
			}
			if st.LostResponses != tt.lost || st.Filed != int64(tt.filed) || len(h.s.Filings(gstKey)) != tt.filed {
				t.Errorf("LostResponses %d Filed %d filings %d, want %d and %d", st.LostResponses, st.Filed,
					len(h.s.Filings(gstKey)), tt.lost, tt.filed)
			}
			if !tt.faults.zero() && tt.injected != "" && tt.injected != "http5xx" && len(st.HTTPStatus) != 0 {
				t.Errorf("a call with no answer counted in HTTPStatus: %v", st.HTTPStatus)
			}
			// Admin paths are never faulted.
			if a := h.do(t, h.cloud, http.MethodGet, h.s.CloudURL()+"/sandbox/stats", "", "", nil); a.HTTP != 200 {
				t.Errorf("/sandbox/stats: HTTP %d", a.HTTP)
			}
			if tt.filed == 0 {
				return
			}
			// The client could not know; filing again is what reconciliation
			// prevents, and the ledger says so.
			if err := h.s.SetFaults(Faults{}); err != nil {
				t.Fatal(err)
			}
			if a := h.soap(t, pathReturns, tt.body(t), h.bearer()); a.StatusCode != StatusDuplicateReturn {
				t.Errorf("second File: statusCode %d, want 107", a.StatusCode)
			}
		})
	}
}

// outcomes makes n Prepop calls one at a time and names each outcome.
func outcomes(t *testing.T, h *harness, n int) []string {
	t.Helper()
	body := gstSample(t, "body-gst-returnprepop-request.xml")
	var out []string
	for range n {
		status, _, err := h.trySOAP(h.cloud, body)
		switch {
		case err != nil:
			out = append(out, "dropped")
		default:
			out = append(out, strconv.Itoa(status))
		}
	}
	return out
}

func TestFaultsSeeded(t *testing.T) {
	t.Parallel()
	f := Faults{Reset: 0.2, HTTP5xx: 0.4}
	a := outcomes(t, newHarness(t, Options{Faults: f, FaultSeed: 42}), 30)
	b := outcomes(t, newHarness(t, Options{Faults: f, FaultSeed: 42}), 30)
	c := outcomes(t, newHarness(t, Options{Faults: f, FaultSeed: 7}), 30)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed, different faults:\n%v\n%v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("different seeds, same faults: %v", a)
	}
	seen := map[string]int{}
	for _, o := range a {
		seen[o]++
	}
	for _, want := range []string{"200", "500", "502", "dropped"} {
		if seen[want] == 0 {
			t.Errorf("no %s among %v", want, a)
		}
	}
}

func TestInjectorBands(t *testing.T) {
	t.Parallel()
	// Over many draws, each fault's share is its probability and no call
	// suffers two.
	in := newInjector(Faults{Hang: 0.1, Reset: 0.2, HTTP5xx: 0.3, LoseResponse: 0.25, HangAfterCommit: 0.5}, 1)
	const n = 100_000
	got := map[faultKind]int{}
	statuses := map[int]int{}
	for range n {
		k, st := in.before()
		got[k]++
		statuses[st]++
		got[in.afterCommit()+10]++ // separate keys for the second draw
	}
	near := func(count int, p float64) bool { return abs(float64(count)/n-p) < 0.01 }
	for _, c := range []struct {
		k faultKind
		p float64
	}{{faultHang, 0.1}, {faultReset, 0.2}, {fault5xx, 0.3}, {faultNone, 0.4},
		{faultLoseResponse + 10, 0.25}, {faultHangAfterCommit + 10, 0.5}, {faultNone + 10, 0.25}} {
		if !near(got[c.k], c.p) {
			t.Errorf("%v: %d of %d, want ≈ %g", c.k, got[c.k], n, c.p)
		}
	}
	if !near(statuses[500], 0.15) || !near(statuses[502], 0.15) {
		t.Errorf("5xx split %v", statuses)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestFaultsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		f     Faults
		field string // "" when valid
	}{
		{"none", Faults{}, ""},
		{"all ones where allowed", Faults{HTTP5xx: 1, LoseResponse: 1}, ""},
		{"negative", Faults{Hang: -0.1}, "Hang"},
		{"above one", Faults{Reset: 1.5}, "Reset"},
		{"NaN", Faults{HTTP5xx: nan()}, "HTTP5xx"},
		{"before-call sum", Faults{Hang: 0.5, Reset: 0.3, HTTP5xx: 0.3}, "Hang+Reset+HTTP5xx"},
		{"after-commit sum", Faults{LoseResponse: 0.6, HangAfterCommit: 0.6}, "LoseResponse+HangAfterCommit"},
		{"lost refreshes in range", Faults{LoseRefresh: 1, LoseResponse: 1, HTTP5xx: 1}, ""},
		{"lost refreshes above one", Faults{LoseRefresh: 1.01}, "LoseRefresh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.f.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Validate = %v, want an error naming %s", err, tt.field)
			}
		})
	}
	if _, err := New(Options{Faults: Faults{Hang: 2}}); err == nil {
		t.Error("New accepted Faults.Hang 2")
	}
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetFaults(Faults{Reset: -1}); err == nil {
		t.Error("SetFaults accepted Reset -1")
	}
	if s.Faults() != (Faults{}) {
		t.Errorf("a refused SetFaults changed the rates: %+v", s.Faults())
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestThrottleChangeAppliesToExistingBucket(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{ThrottleRPS: 1, ThrottleBurst: 1})
	body := gstSample(t, "body-gst-returnprepop-request.xml")
	call := func() answer { return h.soap(t, pathReturns, body, h.bearer()) }
	if a := call(); a.HTTP != 200 {
		t.Fatalf("first call: HTTP %d", a.HTTP)
	}
	a := call()
	if a.HTTP != http.StatusTooManyRequests || a.Header.Get("Retry-After") != "1" {
		t.Fatalf("second call at 1/s: HTTP %d Retry-After %q", a.HTTP, a.Header.Get("Retry-After"))
	}
	// Raised: 150 ms earns a token at 10/s (0.15 at the old 1/s).
	h.s.SetThrottle(10, 1)
	h.clock.Advance(150 * time.Millisecond)
	if a := call(); a.HTTP != 200 {
		t.Fatalf("after raising to 10/s: HTTP %d", a.HTTP)
	}
	// Lowered: a second earns nothing much at 0.01/s (10 tokens at the old
	// 10/s), and Retry-After follows the new rate.
	h.s.SetThrottle(0.01, 1)
	h.clock.Advance(time.Second)
	a = call()
	if ra, _ := strconv.Atoi(a.Header.Get("Retry-After")); a.HTTP != http.StatusTooManyRequests || ra < 90 {
		t.Fatalf("after lowering to 0.01/s: HTTP %d Retry-After %q", a.HTTP, a.Header.Get("Retry-After"))
	}
	// Unlimited, then limited again at the same instant: a fresh bucket.
	h.s.SetThrottle(0, 0)
	h.s.SetThrottle(0.01, 2)
	for i := range 2 {
		if a := call(); a.HTTP != 200 {
			t.Fatalf("fresh bucket, call %d: HTTP %d", i, a.HTTP)
		}
	}
	if a := call(); a.HTTP != http.StatusTooManyRequests {
		t.Fatalf("past the new burst: HTTP %d", a.HTTP)
	}
	if rps, burst := h.s.Throttle(); rps != 0.01 || burst != 2 {
		t.Errorf("Throttle() = %g %d", rps, burst)
	}
}

// TestCloseReleasesHungCalls: Close ends hanging calls at once (Close
// would return Shutdown's deadline error after 5 s otherwise), and goleak
// in TestMain finds nothing left behind.
func TestCloseReleasesHungCalls(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Faults: Faults{HangAfterCommit: 1}})
	errc := make(chan error, 2)
	send := func(body []byte) {
		go func() {
			_, _, err := h.trySOAP(h.cloud, body)
			errc <- err
		}()
	}
	send(gstSample(t, "body-gst-returnfile-request-GST101A.xml"))
	waitFor(t, "the File to hang", func() bool { return h.s.Stats().InFlight == 1 && len(h.s.Filings(gstKey)) == 1 })
	if err := h.s.SetFaults(Faults{Hang: 1}); err != nil {
		t.Fatal(err)
	}
	send(gstSample(t, "body-gst-returnprepop-request.xml"))
	waitFor(t, "the Prepop to hang", func() bool { return h.s.Stats().InFlight == 2 })
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 2 {
		if err := <-errc; err == nil {
			t.Error("a hung call got an answer")
		}
	}
	h.cloud.CloseIdleConnections()
	st := h.s.Stats()
	if st.InFlight != 0 || st.Injected["hang"] != 1 || st.Injected["hangAfterCommit"] != 1 || st.LostResponses != 1 {
		t.Errorf("stats: inFlight %d injected %v lost %d", st.InFlight, st.Injected, st.LostResponses)
	}
}

func FuzzDecodeFaults(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"hang":0.01,"reset":0.02,"http5xx":0.03,"loseResponse":0.5,"hangAfterCommit":0.5}`,
		`{"hang":2}`, `{"nope":1}`, `{"hang":0.1}{}`, `[]`, `null`, `{"reset":-0}`, `{"http5xx":1e-320}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeFaults(b)
		if err != nil {
			if got != (Faults{}) {
				t.Fatalf("error %v with rates %+v", err, got)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("decoded invalid rates %+v: %v", got, err)
		}
		again, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := decodeFaults(again); err != nil || back != got {
			t.Fatalf("round trip %+v -> %s -> %+v, %v", got, again, back, err)
		}
	})
}
