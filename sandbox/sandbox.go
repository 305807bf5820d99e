package sandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Sandbox. Every field's zero value has a documented
// default, so Options{} is a working sandbox on two random local ports.
type Options struct {
	// Dir is where New writes the generated PKI (see PKI.WriteFiles); ""
	// keeps it in memory only.
	Dir string
	// CloudAddr and DesktopAddr are the listen addresses of the mutual-TLS
	// ("cloud", IR's port 4046) and one-way TLS ("desktop", 443) listeners.
	// Default "127.0.0.1:0": a free port, see CloudURL and DesktopURL.
	CloudAddr, DesktopAddr string
	// ServerNames are extra DNS names or IP addresses for the server
	// certificate, besides localhost, 127.0.0.1 and ::1 (e.g. "sandbox" in
	// docker-compose).
	ServerNames []string
	// Domain is the client certificates' CN domain: CN =
	// <32 lower-case hex>.irdgws.<Domain>. Default "sandbox.gatewayq.test".
	Domain string
	// ClientCerts is how many client certificates to mint. Default 1.
	ClientCerts int
	// Latency is added to every gateway call, plus a uniformly random
	// [0, LatencyJitter). The wait ends early when the request's context
	// does (client gone, Close). Default none.
	Latency, LatencyJitter time.Duration
	// ThrottleRPS and ThrottleBurst are the token bucket per client
	// certificate (cloud) or remote IP (desktop). ThrottleRPS 0 is
	// unlimited; ThrottleBurst below 1 counts as 1.
	ThrottleRPS   float64
	ThrottleBurst int
	// M2MIssuer is the iss an M2M JWT must carry. Default "gatewayq-sandbox".
	M2MIssuer string
	// AdminToken enables the admin endpoints (POST /sandbox/tokens,
	// /sandbox/outage, /sandbox/faults, /sandbox/throttle, GET
	// /sandbox/timeline) for callers presenting it as "Authorization: Bearer
	// <AdminToken>". Empty (the default) disables them. Use a long random
	// string.
	AdminToken string
	// Faults are the fault rates from the start (see Faults and SetFaults).
	// Default none.
	Faults Faults
	// FaultSeed seeds the draws deciding faults, so that a test making the
	// same calls one at a time sees the same faults. 0 (the default) picks
	// a random seed.
	FaultSeed uint64
	// TimelineResolution is the width of a timeline Bucket, default 100 ms;
	// TimelineWindow how far back the timeline reaches, default 10 minutes.
	TimelineResolution, TimelineWindow time.Duration
	// Validator checks a payload against IR's XSDs. Default schema.Validate.
	Validator func(doc []byte) error
	// OAuthClients are the clients registered with the OAuth server
	// (/gateway3/oauth/ on the desktop listener). Empty: one client,
	// DefaultOAuthClientID with a generated secret and
	// DefaultOAuthRedirectURI (see Sandbox.OAuthClients).
	OAuthClients []OAuthClient
	// OAuthUsers are the myIR users the login page offers. Default
	// DefaultOAuthUsers.
	OAuthUsers []string
	// OAuthExpiresInAsString makes the token endpoint send expires_in as a
	// JSON string to every client (OAuthClient.ExpiresInAsString does it
	// for one): IR's answers carry it both ways.
	OAuthExpiresInAsString bool
	// AccessTokenTTL, RefreshTokenTTL and AuthCodeTTL are the lifetimes of
	// what the OAuth server issues. Defaults DefaultAccessTokenTTL (8 h),
	// DefaultRefreshTokenTTL (1 year), DefaultAuthCodeTTL (10 min), IR's.
	AccessTokenTTL, RefreshTokenTTL, AuthCodeTTL time.Duration
	// Now is the clock for token and code expiry, M2M JWTs, the throttle,
	// the 160 window, outages and the timeline; Advance moves it forward.
	// Default time.Now.
	Now func() time.Time
	// Logger receives one line per call at Debug and problems at Warn.
	// Default: discard.
	Logger *slog.Logger
}

// DefaultM2MIssuer is the iss expected when Options.M2MIssuer is empty.
const DefaultM2MIssuer = "gatewayq-sandbox"

// DefaultDomain is the client certificates' CN domain when Options.Domain
// is empty.
const DefaultDomain = "sandbox.gatewayq.test"

// maxRequestBody bounds a request body; IR's largest payloads (payday
// returns with thousands of employees) stay well below it.
const maxRequestBody = 16 << 20

// ErrStarted is returned by Start on a sandbox already started.
var ErrStarted = errors.New("sandbox: already started")

// Sandbox is the IR gateway emulator: two TLS listeners serving IR's SOAP
// and REST paths over a returns ledger, a token table and delegation rules.
// All methods are safe for concurrent use.
type Sandbox struct {
	opts     Options
	now      func() time.Time
	skew     atomic.Int64 // Advance's total, ns
	log      *slog.Logger
	validate func([]byte) error
	pki      *PKI
	files    *PKIFiles

	tokens   *tokenTable
	oauth    *oauthServer
	deleg    *delegation
	ledger   *ledger
	throttle *throttle
	stats    *counters
	inject   *injector
	timeline *timeline

	latencyMu              sync.RWMutex
	latency, latencyJitter time.Duration

	mu        sync.Mutex
	started   bool
	servers   []*http.Server
	listeners []net.Listener
	cloudURL  string
	deskURL   string
	baseCtx   context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// New generates the PKI (writing it to Options.Dir when set) and prepares
// the sandbox; Start opens the listeners.
func New(opts Options) (*Sandbox, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.CloudAddr == "" {
		opts.CloudAddr = "127.0.0.1:0"
	}
	if opts.DesktopAddr == "" {
		opts.DesktopAddr = "127.0.0.1:0"
	}
	if opts.Domain == "" {
		opts.Domain = DefaultDomain
	}
	if opts.ClientCerts == 0 {
		opts.ClientCerts = 1
	}
	if opts.M2MIssuer == "" {
		opts.M2MIssuer = DefaultM2MIssuer
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.OAuthClients) == 0 {
		opts.OAuthClients = []OAuthClient{{ID: DefaultOAuthClientID, RedirectURIs: []string{DefaultOAuthRedirectURI}}}
	}
	if len(opts.OAuthUsers) == 0 {
		opts.OAuthUsers = DefaultOAuthUsers
	}
	opts.OAuthUsers = slices.Clone(opts.OAuthUsers)
	if opts.AccessTokenTTL == 0 {
		opts.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if opts.RefreshTokenTTL == 0 {
		opts.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if opts.AuthCodeTTL == 0 {
		opts.AuthCodeTTL = DefaultAuthCodeTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Validator == nil {
		opts.Validator = defaultValidator
	}
	if opts.TimelineResolution == 0 {
		opts.TimelineResolution = DefaultTimelineResolution
	}
	if opts.TimelineWindow == 0 {
		opts.TimelineWindow = DefaultTimelineWindow
	}
	// Certificates are checked by real TLS stacks on the wall clock, not by
	// the injected one.
	pki, err := generatePKI(pkiParams{domain: opts.Domain, clients: opts.ClientCerts, serverNames: opts.ServerNames, now: time.Now()})
	if err != nil {
		return nil, err
	}
	tokens := newTokenTable()
	s := &Sandbox{
		opts:          opts,
		log:           opts.Logger,
		validate:      opts.Validator,
		pki:           pki,
		tokens:        tokens,
		oauth:         newOAuthServer(&opts, tokens),
		deleg:         newDelegation(),
		ledger:        newLedger(),
		throttle:      newThrottle(opts.ThrottleRPS, opts.ThrottleBurst),
		stats:         newCounters(),
		inject:        newInjector(opts.Faults, opts.FaultSeed),
		timeline:      newTimeline(opts.TimelineResolution, opts.TimelineWindow),
		latency:       opts.Latency,
		latencyJitter: opts.LatencyJitter,
	}
	// Every reader of the clock goes through s.now, so Advance moves them
	// all at once.
	s.now = func() time.Time { return opts.Now().Add(time.Duration(s.skew.Load())) }
	if opts.Dir != "" {
		files, err := pki.WriteFiles(opts.Dir)
		if err != nil {
			return nil, err
		}
		s.files = &files
	}
	return s, nil
}

// validate names each bad field.
func (o *Options) validate() error {
	var errs []error
	if o.ClientCerts < 0 {
		errs = append(errs, fmt.Errorf("sandbox: ClientCerts %d: must be ≥ 0", o.ClientCerts))
	}
	if o.Latency < 0 {
		errs = append(errs, fmt.Errorf("sandbox: Latency %s: must be ≥ 0", o.Latency))
	}
	if o.LatencyJitter < 0 {
		errs = append(errs, fmt.Errorf("sandbox: LatencyJitter %s: must be ≥ 0", o.LatencyJitter))
	}
	if o.ThrottleRPS < 0 {
		errs = append(errs, fmt.Errorf("sandbox: ThrottleRPS %g: must be ≥ 0", o.ThrottleRPS))
	}
	if o.ThrottleBurst < 0 {
		errs = append(errs, fmt.Errorf("sandbox: ThrottleBurst %d: must be ≥ 0", o.ThrottleBurst))
	}
	if o.TimelineResolution < 0 {
		errs = append(errs, fmt.Errorf("sandbox: TimelineResolution %s: must be ≥ 0", o.TimelineResolution))
	}
	if o.TimelineWindow < 0 || (o.TimelineWindow > 0 && o.TimelineWindow < o.TimelineResolution) {
		errs = append(errs, fmt.Errorf("sandbox: TimelineWindow %s: must be ≥ TimelineResolution", o.TimelineWindow))
	}
	if err := o.Faults.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"AccessTokenTTL", o.AccessTokenTTL}, {"RefreshTokenTTL", o.RefreshTokenTTL}, {"AuthCodeTTL", o.AuthCodeTTL}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("sandbox: %s %s: must be ≥ 0", d.name, d.v))
		}
	}
	seen := map[string]bool{}
	for i, c := range o.OAuthClients {
		if err := c.validate(i); err != nil {
			errs = append(errs, err)
		}
		if seen[c.ID] {
			errs = append(errs, fmt.Errorf("sandbox: OAuthClients[%d].ID %q: registered twice", i, c.ID))
		}
		seen[c.ID] = true
	}
	for i, u := range o.OAuthUsers {
		if !validUser(u) {
			errs = append(errs, fmt.Errorf("sandbox: OAuthUsers[%d] %q: must be 1-64 printable characters", i, u))
		}
	}
	if strings.ContainsAny(o.Domain, " /\\") {
		errs = append(errs, fmt.Errorf("sandbox: Domain %q: not a domain name", o.Domain))
	}
	return errors.Join(errs...)
}

// PKI returns the generated PKI.
func (s *Sandbox) PKI() *PKI { return s.pki }

// PKIFiles returns the paths of the PKI files written to Options.Dir, and
// false when Options.Dir was empty.
func (s *Sandbox) PKIFiles() (PKIFiles, bool) {
	if s.files == nil {
		return PKIFiles{}, false
	}
	return *s.files, true
}

// Start opens both listeners and serves until Close.
func (s *Sandbox) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return ErrStarted
	}
	srvCert, err := tls.X509KeyPair(s.pki.ServerCertPEM, s.pki.ServerKeyPEM)
	if err != nil {
		return fmt.Errorf("sandbox: server key pair: %w", err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(s.pki.caCert)
	base := func(clientAuth tls.ClientAuthType) *tls.Config {
		return &tls.Config{
			Certificates: []tls.Certificate{srvCert},
			MinVersion:   tls.VersionTLS12,
			// IR's cloud endpoint: TLS 1.2 with ECDHE-ECDSA suites only
			// (TLS 1.3 suites are not configurable and all allowed).
			CipherSuites: []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
				tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
				tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			},
			ClientAuth: clientAuth,
			ClientCAs:  clientCAs,
		}
	}
	cloudLn, err := net.Listen("tcp", s.opts.CloudAddr)
	if err != nil {
		return fmt.Errorf("sandbox: cloud listener: %w", err)
	}
	deskLn, err := net.Listen("tcp", s.opts.DesktopAddr)
	if err != nil {
		cloudLn.Close()
		return fmt.Errorf("sandbox: desktop listener: %w", err)
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	// Handshake failures (a client without a certificate) are routine here;
	// they go to the logger at Debug rather than to stderr.
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	mk := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          errLog,
			BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
		}
	}
	cloudSrv, deskSrv := mk(s.routes(listenerCloud)), mk(s.routes(listenerDesktop))
	s.servers = []*http.Server{cloudSrv, deskSrv}
	s.listeners = []net.Listener{
		tls.NewListener(cloudLn, base(tls.RequireAndVerifyClientCert)),
		tls.NewListener(deskLn, base(tls.NoClientCert)),
	}
	s.cloudURL = "https://" + cloudLn.Addr().String()
	s.deskURL = "https://" + deskLn.Addr().String()
	for i, srv := range s.servers {
		s.wg.Add(1)
		go func(srv *http.Server, ln net.Listener) {
			defer s.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Warn("sandbox listener stopped", "addr", ln.Addr().String(), "err", err)
			}
		}(srv, s.listeners[i])
	}
	s.started = true
	s.log.Info("sandbox started", "cloud", s.cloudURL, "desktop", s.deskURL)
	return nil
}

// Close stops both listeners. Calls waiting on injected latency end at once
// (answered 503), hung calls (Faults.Hang, HangAfterCommit) too (their
// connections reset); others get up to five seconds to finish. Close is
// idempotent.
func (s *Sandbox) Close() error {
	s.mu.Lock()
	servers := s.servers
	s.servers = nil
	cancel := s.cancel
	s.mu.Unlock()
	if servers == nil {
		return nil
	}
	cancel()
	ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			_ = srv.Close()
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// CloudURL is the mutual-TLS listener's base URL, e.g. https://127.0.0.1:4046
// ("" before Start).
func (s *Sandbox) CloudURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cloudURL
}

// DesktopURL is the one-way TLS listener's base URL ("" before Start).
func (s *Sandbox) DesktopURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deskURL
}

// Advance moves the sandbox's clock forward by d (d ≤ 0 does nothing), for
// tests that would otherwise wait: it affects everything that reads
// Options.Now through the sandbox — access token, refresh token and
// authorization code expiry, M2M JWT iat/exp checks, the throttle's
// buckets (which refill as if d had passed), the payday 160 window,
// outage ends (SetOutage's d) and the timeline's buckets. Injected latency
// and hangs run on real timers and are not shortened; neither are the TLS
// certificates' validity periods, which real TLS stacks check.
func (s *Sandbox) Advance(d time.Duration) {
	if d > 0 {
		s.skew.Add(int64(d))
	}
}

// Now is the sandbox's clock: Options.Now plus every Advance.
func (s *Sandbox) Now() time.Time { return s.now() }

// IssueToken mints an OAuth access token for myIR user `user`, valid for
// ttl (DefaultTokenTTL when ttl ≤ 0), accepted as "Bearer <token>" on every
// SOAP and REST path.
func (s *Sandbox) IssueToken(user string, ttl time.Duration) string {
	return s.tokens.issue(user, ttl, s.now())
}

// Deny removes user's delegated access to (identifier, accountType): SOAP
// calls for it answer statusCode 4 "Unauthorised Delegation", REST calls
// 400 EV1022. An empty accountType denies every account of the identifier.
// Use M2MUser for calls authorised with an M2M JWT.
func (s *Sandbox) Deny(user, identifier, accountType string) {
	s.deleg.deny(user, identifier, accountType)
}

// SetThrottle changes the per-caller rate (rps 0 = unlimited) and burst at
// once, for existing and new callers: an existing caller's bucket keeps
// the tokens it had earned and earns at the new rate from now on.
func (s *Sandbox) SetThrottle(rps float64, burst int) {
	if math.IsNaN(rps) || math.IsInf(rps, 1) {
		rps = 0 // no usable limit: unlimited
	}
	s.throttle.set(max(rps, 0), burst, s.now())
	s.log.Info("sandbox throttle set", "rps", rps, "burst", burst)
}

// Throttle returns the per-caller rate (0 = unlimited) and burst in force.
func (s *Sandbox) Throttle() (rps float64, burst int) { return s.throttle.get() }

// SetLatency changes the latency added to every gateway call.
func (s *Sandbox) SetLatency(d, jitter time.Duration) {
	s.latencyMu.Lock()
	s.latency, s.latencyJitter = max(d, 0), max(jitter, 0)
	s.latencyMu.Unlock()
}

// Stats returns a snapshot of the counters. Each map is consistent in
// itself; the ledger's figures (Filed, Originals, DuplicateFilings) may be
// ahead of Calls by the calls still in flight.
func (s *Sandbox) Stats() Stats {
	st := s.stats.snapshot()
	st.Originals, st.DuplicateFilings, st.Filed = s.ledger.snapshot()
	s.oauth.snapshot(&st)
	return st
}

// Filings returns the versions filed under key, oldest first.
func (s *Sandbox) Filings(key NaturalKey) []Filing {
	fs := s.ledger.lookup(key)
	out := make([]Filing, len(fs))
	for i, f := range fs {
		out[i] = *f
	}
	return out
}

type listenerKind int

const (
	listenerCloud listenerKind = iota
	listenerDesktop
)

func (k listenerKind) String() string {
	if k == listenerCloud {
		return "cloud"
	}
	return "desktop"
}

// routes is one listener's mux: IR's default paths (COMMON.md) and the
// sandbox's own /sandbox/ endpoints.
func (s *Sandbox) routes(kind listenerKind) http.Handler {
	mux := http.NewServeMux()
	if kind == listenerCloud {
		mux.Handle("/gateway/gws/returns/{$}", s.gateway(kind, svcReturns.name, s.serveSOAP(svcReturns)))
		mux.Handle("/gateway/gws/employment/v2/{$}", s.gateway(kind, svcEmployment.name, s.serveSOAP(svcEmployment)))
		mux.Handle("/secure/gateway/gws/intermediation/{$}", s.gateway(kind, svcIntermediation.name, s.serveSOAP(svcIntermediation)))
	} else {
		mux.Handle("/gateway2/gws/returns/{$}", s.gateway(kind, svcReturns.name, s.serveSOAP(svcReturns)))
		mux.Handle("/gateway2/gws/employment/v2/{$}", s.gateway(kind, svcEmployment.name, s.serveSOAP(svcEmployment)))
		// IR's OAuth server is on 443 with one-way TLS, beside the desktop
		// services. Its calls skip the gateway wrapper (latency, faults,
		// throttle): they are counted in Stats' OAuth fields instead.
		mux.HandleFunc("GET "+OAuthAuthorizePath, s.serveAuthorize)
		mux.HandleFunc("POST "+OAuthTokenPath, s.serveToken)
		mux.HandleFunc("POST "+OAuthIntrospectPath, s.serveIntrospect)
		mux.HandleFunc("POST "+OAuthRevokePath, s.serveRevoke)
	}
	for _, base := range []string{"/gateway/account/", "/secure/gateway/account/"} {
		mux.Handle("POST "+base+"account", s.gateway(kind, "account", s.serveAccount(kind, "account")))
		mux.Handle("POST "+base+"list", s.gateway(kind, "account", s.serveAccount(kind, "list")))
		mux.Handle("GET "+base+"status", s.gateway(kind, "account", s.serveAccount(kind, "status")))
	}
	mux.HandleFunc("GET /sandbox/stats", s.serveStats)
	mux.HandleFunc("POST /sandbox/tokens", s.admin(s.serveIssueToken))
	mux.HandleFunc("POST /sandbox/outage", s.admin(s.serveSetOutage))
	mux.HandleFunc("DELETE /sandbox/outage", s.admin(s.serveEndOutage))
	mux.HandleFunc("GET /sandbox/faults", s.admin(s.serveGetFaults))
	mux.HandleFunc("POST /sandbox/faults", s.admin(s.serveSetFaults))
	mux.HandleFunc("POST /sandbox/throttle", s.admin(s.serveSetThrottle))
	mux.HandleFunc("GET /sandbox/timeline", s.admin(s.serveTimeline))
	return mux
}

// call is one gateway call in flight: the handler fills in what the
// counters record when it ends.
type call struct {
	kind listenerKind
	r    *http.Request
	rec  callRecord
}

// statusWriter remembers the HTTP status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (to reset it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type gatewayHandler func(w http.ResponseWriter, r *http.Request, c *call)

// gateway wraps a gateway path: counters, the timeline, the injected
// latency, a log line.
func (s *Sandbox) gateway(kind listenerKind, svc string, h gatewayHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{kind: kind, r: r, rec: callRecord{label: svc + "/unknown", statusCode: noStatus}}
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		s.stats.begin()
		s.timeline.arrived(s.now())
		defer func() {
			switch {
			case !c.rec.injected.answers():
				sw.status = 0 // the connection was reset: no answer
			case sw.status == 0:
				sw.status = http.StatusOK
			}
			c.rec.httpStatus = sw.status
			s.stats.end(c.rec)
			s.timeline.ended(s.now(), c.rec.class())
			s.log.Debug("sandbox call", "listener", kind.String(), "op", c.rec.label,
				"http", sw.status, "statusCode", c.rec.statusCode, "injected", c.rec.injected.String(),
				"took", time.Since(start))
		}()
		if err := s.wait(r.Context()); err != nil {
			http.Error(sw, "sandbox is shutting down", http.StatusServiceUnavailable)
			return
		}
		h(sw, r, c)
	})
}

// wait sleeps the injected latency, or until ctx ends.
func (s *Sandbox) wait(ctx context.Context) error {
	s.latencyMu.RLock()
	d, j := s.latency, s.latencyJitter
	s.latencyMu.RUnlock()
	if j > 0 {
		d += rand.N(j)
	}
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

// admit decides whether a call reaches its service: an outage, an injected
// fault (Hang, Reset, HTTP5xx) and the throttle (429) answer here and touch
// nothing else, in that order, so a call refused by one spends no throttle
// token.
func (s *Sandbox) admit(w http.ResponseWriter, r *http.Request, c *call) bool {
	if !s.intercept(w, r, c) {
		return false
	}
	key := "ip:" + remoteIP(r)
	if c.kind == listenerCloud && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		key = "cn:" + r.TLS.PeerCertificates[0].Subject.CommonName
	}
	ok, wait := s.throttle.allow(key, s.now())
	if ok {
		return true
	}
	c.rec.throttled = true
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte("Too many requests: the sandbox throttle allows " +
		strconv.FormatFloat(s.throttle.rate(), 'g', -1, 64) + " requests/s per caller\n"))
	return false
}

// intercept applies an outage and the injected faults that strike before
// a call is served. It answers (or drops) the call and returns false when
// one does.
func (s *Sandbox) intercept(w http.ResponseWriter, r *http.Request, c *call) bool {
	if status, _, on := s.inject.outageAt(s.now()); on {
		c.rec.outage = true
		writeProxyError(w, status)
		return false
	}
	switch kind, status := s.inject.before(); kind {
	case faultHang:
		c.rec.injected = kind
		hang(w, r)
		return false
	case faultReset:
		c.rec.injected = kind
		drain(r)
		reset(w)
		return false
	case fault5xx:
		c.rec.injected = kind
		writeProxyError(w, status)
		return false
	}
	return true
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// serveStats answers GET /sandbox/stats with Stats as JSON.
func (s *Sandbox) serveStats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Stats())
}

// tokenResponse is /sandbox/tokens' answer, in OAuth's token response shape.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	User        string `json:"user"`
}

// serveIssueToken answers POST /sandbox/tokens?user=U&ttl=8h.
func (s *Sandbox) serveIssueToken(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if user == "" {
		http.Error(w, "query parameter user is required", http.StatusBadRequest)
		return
	}
	ttl := DefaultTokenTTL
	if v := r.URL.Query().Get("ttl"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			http.Error(w, "query parameter ttl: a positive Go duration such as 8h", http.StatusBadRequest)
			return
		}
		ttl = d
	}
	tok := s.tokens.issue(user, ttl, s.now())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second), User: user})
}
