package sandbox

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Faults are the probabilities, each in [0, 1], that a gateway call suffers
// an injected fault. They model what sits between a client and IR's
// services (load balancers, networks) and what IR's own stack does under
// stress, so a client's handling of each can be exercised.
//
// Hang, Reset and HTTP5xx are decided by one draw per call, before the
// throttle and the services see it, so they exclude one another and must
// sum to at most 1. LoseResponse and HangAfterCommit are decided by a
// second draw, only for a File the ledger has just accepted, and must also
// sum to at most 1.
type Faults struct {
	// Hang holds the request without ever answering, until the client gives
	// up or the sandbox closes; then the connection is reset.
	Hang float64 `json:"hang,omitempty"`
	// Reset reads the request, then closes the TCP connection abruptly (an
	// RST, no TLS close_notify) without an HTTP answer.
	Reset float64 `json:"reset,omitempty"`
	// HTTP5xx answers 500 or 502 (even odds) with a small HTML body, as a
	// load balancer or a failing backend would.
	HTTP5xx float64 `json:"http5xx,omitempty"`
	// LoseResponse commits an accepted File to the ledger, then resets the
	// connection: the return is filed and the client cannot know it.
	LoseResponse float64 `json:"loseResponse,omitempty"`
	// HangAfterCommit commits an accepted File to the ledger, then hangs
	// like Hang.
	HangAfterCommit float64 `json:"hangAfterCommit,omitempty"`
	// LoseRefresh honours a refresh_token grant (the presented refresh
	// token is used up, new tokens issued), then resets the connection:
	// the client never sees the tokens it bought, and its refresh token is
	// spent. Decided by a draw of its own, per refresh honoured.
	LoseRefresh float64 `json:"loseRefresh,omitempty"`
}

// Validate names each probability outside [0, 1] and each group summing
// past 1.
func (f Faults) Validate() error {
	var errs []error
	for _, p := range []struct {
		name string
		v    float64
	}{
		{"Hang", f.Hang}, {"Reset", f.Reset}, {"HTTP5xx", f.HTTP5xx},
		{"LoseResponse", f.LoseResponse}, {"HangAfterCommit", f.HangAfterCommit},
		{"LoseRefresh", f.LoseRefresh},
	} {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 1 {
			errs = append(errs, fmt.Errorf("sandbox: Faults.%s %g: must be in [0, 1]", p.name, p.v))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if sum := f.Hang + f.Reset + f.HTTP5xx; sum > 1+1e-9 {
		errs = append(errs, fmt.Errorf("sandbox: Faults.Hang+Reset+HTTP5xx %g: must be at most 1", sum))
	}
	if sum := f.LoseResponse + f.HangAfterCommit; sum > 1+1e-9 {
		errs = append(errs, fmt.Errorf("sandbox: Faults.LoseResponse+HangAfterCommit %g: must be at most 1", sum))
	}
	return errors.Join(errs...)
}

func (f Faults) zero() bool { return f == Faults{} }

// maxFaultsBody bounds POST /sandbox/faults' body.
const maxFaultsBody = 64 << 10

// decodeFaults reads a Faults JSON object as POST /sandbox/faults takes
// it: one object, no unknown fields, valid probabilities.
func decodeFaults(b []byte) (Faults, error) {
	var f Faults
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Faults{}, fmt.Errorf("sandbox: faults: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Faults{}, errors.New("sandbox: faults: trailing data after the JSON object")
	}
	if err := f.Validate(); err != nil {
		return Faults{}, err
	}
	return f, nil
}

// faultKind is an injected fault a call suffered.
type faultKind uint8

const (
	faultNone faultKind = iota
	faultHang
	faultReset
	fault5xx
	faultLoseResponse
	faultHangAfterCommit
)

// String is the kind's key in Stats.Injected.
func (k faultKind) String() string {
	switch k {
	case faultHang:
		return "hang"
	case faultReset:
		return "reset"
	case fault5xx:
		return "http5xx"
	case faultLoseResponse:
		return "loseResponse"
	case faultHangAfterCommit:
		return "hangAfterCommit"
	}
	return "none"
}

// afterCommit reports whether the fault withheld the answer to a committed
// File.
func (k faultKind) afterCommit() bool { return k == faultLoseResponse || k == faultHangAfterCommit }

// answers reports whether the fault still sends an HTTP answer.
func (k faultKind) answers() bool { return k == faultNone || k == fault5xx }

// injector holds the fault rates, their random source and the outage.
// One mutex: a seeded source gives reproducible draws only if calls take
// them one at a time.
type injector struct {
	mu     sync.Mutex
	faults Faults
	rng    *rand.Rand

	outage       bool
	outageStatus int
	outageUntil  time.Time // zero: until EndOutage
}

func newInjector(f Faults, seed uint64) *injector {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &injector{faults: f, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (in *injector) set(f Faults) {
	in.mu.Lock()
	in.faults = f
	in.mu.Unlock()
}

func (in *injector) get() Faults {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.faults
}

// before draws the fault for a call about to be served: a kind, and for
// fault5xx the status to answer.
func (in *injector) before() (faultKind, int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	f := in.faults
	if f.Hang == 0 && f.Reset == 0 && f.HTTP5xx == 0 {
		return faultNone, 0
	}
	u := in.rng.Float64()
	switch {
	case u < f.Hang:
		return faultHang, 0
	case u < f.Hang+f.Reset:
		return faultReset, 0
	case u < f.Hang+f.Reset+f.HTTP5xx:
		// The position inside the band picks the status, so one draw
		// decides the whole outcome.
		if u-f.Hang-f.Reset < f.HTTP5xx/2 {
			return fault5xx, http.StatusInternalServerError
		}
		return fault5xx, http.StatusBadGateway
	}
	return faultNone, 0
}

// afterCommit draws the fault for a File the ledger has accepted.
func (in *injector) afterCommit() faultKind {
	in.mu.Lock()
	defer in.mu.Unlock()
	f := in.faults
	if f.LoseResponse == 0 && f.HangAfterCommit == 0 {
		return faultNone
	}
	u := in.rng.Float64()
	switch {
	case u < f.LoseResponse:
		return faultLoseResponse
	case u < f.LoseResponse+f.HangAfterCommit:
		return faultHangAfterCommit
	}
	return faultNone
}

// loseRefresh draws whether an honoured refresh loses its answer.
func (in *injector) loseRefresh() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.faults.LoseRefresh > 0 && in.rng.Float64() < in.faults.LoseRefresh
}

// setOutage starts an outage answering status until until (zero: until
// endOutage).
func (in *injector) setOutage(status int, until time.Time) {
	in.mu.Lock()
	in.outage, in.outageStatus, in.outageUntil = true, status, until
	in.mu.Unlock()
}

func (in *injector) endOutage() {
	in.mu.Lock()
	in.outage = false
	in.mu.Unlock()
}

// outageAt returns the status to answer when an outage is on at now.
func (in *injector) outageAt(now time.Time) (status int, until time.Time, on bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.outage {
		return 0, time.Time{}, false
	}
	if !in.outageUntil.IsZero() && !now.Before(in.outageUntil) {
		in.outage = false
		return 0, time.Time{}, false
	}
	return in.outageStatus, in.outageUntil, true
}

// outageStatusOrDefault keeps an outage's status a 5xx.
func outageStatusOrDefault(status int) int {
	if status < 500 || status > 599 {
		return http.StatusServiceUnavailable
	}
	return status
}

// SetOutage makes every gateway call, on both listeners, answer status
// (503 when status is not a 5xx; 504 is the other usual one) for d, or
// until EndOutage when d ≤ 0. The answer is a small HTML page, as a load
// balancer sends with no backend left; the call touches neither the
// throttle nor the ledger. d runs on Options.Now's clock.
func (s *Sandbox) SetOutage(status int, d time.Duration) {
	var until time.Time
	if d > 0 {
		until = s.now().Add(d)
	}
	s.inject.setOutage(outageStatusOrDefault(status), until)
	s.log.Info("sandbox outage started", "status", outageStatusOrDefault(status), "for", d)
}

// EndOutage ends an outage at once.
func (s *Sandbox) EndOutage() {
	s.inject.endOutage()
	s.log.Info("sandbox outage ended")
}

// Outage reports the outage in force: its status and end (zero: until
// EndOutage).
func (s *Sandbox) Outage() (status int, until time.Time, on bool) {
	return s.inject.outageAt(s.now())
}

// SetFaults changes the fault rates for calls arriving from now on. A call
// already hanging keeps hanging.
func (s *Sandbox) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.inject.set(f)
	s.log.Info("sandbox faults set", "hang", f.Hang, "reset", f.Reset, "http5xx", f.HTTP5xx,
		"loseResponse", f.LoseResponse, "hangAfterCommit", f.HangAfterCommit)
	return nil
}

// Faults returns the fault rates in force.
func (s *Sandbox) Faults() Faults { return s.inject.get() }

// writeProxyError answers like a load balancer or reverse proxy: a short
// HTML page, no SOAP, no JSON.
func writeProxyError(w http.ResponseWriter, status int) {
	text := strconv.Itoa(status) + " " + http.StatusText(status)
	body := "<html><head><title>" + text + "</title></head><body><h1>" + text + "</h1></body></html>\n"
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// drain reads what is left of the request body, so the request has been
// received in full (as the Reset fault promises) and the server watches
// the connection for the client leaving (it starts doing so at the body's
// end).
func drain(r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxRequestBody))
}

// hang holds the call until the client leaves or the sandbox closes (both
// end r's context), then resets the connection: returning normally would
// send an empty 200.
func hang(w http.ResponseWriter, r *http.Request) {
	drain(r)
	<-r.Context().Done()
	reset(w)
}

// reset closes the call's TCP connection with an RST and no HTTP answer.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (never the case on the sandbox's HTTP/1.1
		// listeners): net/http's own way to drop a response.
		panic(http.ErrAbortHandler)
	}
	// Close the TCP connection under TLS directly: closing the tls.Conn
	// would send close_notify, an orderly end the client could tell apart.
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
