package gatewayclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Options configures a Client. The zero value of each field is documented;
// New validates the whole struct once and names every bad field.
type Options struct {
	// Endpoints holds the listeners calls may go to; at least one.
	Endpoints map[EndpointKind]Endpoint
	// ClientCertificate is presented to endpoints with MutualTLS; required
	// when any endpoint has it.
	ClientCertificate *tls.Certificate
	// RootCAs verifies the server's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// ServerName overrides the name the server certificate is checked
	// against; empty means the BaseURL's host.
	ServerName string
	// InsecureSkipVerify turns server certificate verification off. For a
	// local sandbox only; never against IR.
	InsecureSkipVerify bool
	// CallTimeout bounds one call: connection, TLS, request and the whole
	// answer. Zero means DefaultCallTimeout (IR's gateway gives up after
	// about 60 s). The caller's context deadline applies when sooner.
	CallTimeout time.Duration
	// MaxIdleConnsPerHost is the keep-alive pool per endpoint; zero means
	// DefaultMaxIdleConnsPerHost. Set it to at least a worker's concurrency,
	// or calls beyond it pay a TLS handshake each.
	MaxIdleConnsPerHost int
	// Logger receives one debug record a call (operation, endpoint, HTTP
	// status, class, duration) and a warning for each uncertain File; never
	// a header or a payload. Nil means no logging.
	Logger *slog.Logger

	now              func() time.Time // tests
	maxResponseBytes int              // tests; 0 means MaxResponseBytes
}

// Validate reports every invalid field of o, one error each.
func (o Options) Validate() error {
	var errs []error
	if len(o.Endpoints) == 0 {
		errs = append(errs, errors.New("Endpoints: at least one endpoint is required"))
	}
	for kind, ep := range o.Endpoints {
		field := fmt.Sprintf("Endpoints[%s]", kind)
		if kind != EndpointCloud && kind != EndpointDesktop {
			errs = append(errs, fmt.Errorf("%s: unknown endpoint kind", field))
		}
		u, err := url.Parse(ep.BaseURL)
		switch {
		case ep.BaseURL == "":
			errs = append(errs, fmt.Errorf("%s.BaseURL: required", field))
		case err != nil:
			errs = append(errs, fmt.Errorf("%s.BaseURL: %w", field, err))
		case u.Scheme != "https":
			errs = append(errs, fmt.Errorf("%s.BaseURL: scheme must be https, not %q", field, u.Scheme))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("%s.BaseURL: no host", field))
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			errs = append(errs, fmt.Errorf("%s.BaseURL: must be scheme://host[:port][/prefix] only", field))
		}
		if ep.MutualTLS && o.ClientCertificate == nil {
			errs = append(errs, fmt.Errorf("%s.MutualTLS: ClientCertificate is required", field))
		}
		for s, p := range ep.Paths {
			if err := s.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s.Paths: %w", field, err))
			}
			if !strings.HasPrefix(p, "/") {
				errs = append(errs, fmt.Errorf("%s.Paths[%s]: must start with /", field, s))
			}
		}
	}
	if o.CallTimeout < 0 {
		errs = append(errs, errors.New("CallTimeout: must not be negative"))
	}
	if o.MaxIdleConnsPerHost < 0 {
		errs = append(errs, errors.New("MaxIdleConnsPerHost: must not be negative"))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("gatewayclient: invalid options: %w", errors.Join(errs...))
}

// Client calls IR's gateway services. It is safe for concurrent use and
// meant to live as long as the process: it holds one keep-alive pool per
// endpoint.
type Client struct {
	endpoints   map[EndpointKind]*endpoint
	callTimeout time.Duration
	maxBody     int
	log         *slog.Logger
	now         func() time.Time
}

type endpoint struct {
	base      string
	paths     map[Service]string
	client    *http.Client
	transport *http.Transport
}

// New validates opts and builds a Client.
func New(opts Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.MaxIdleConnsPerHost == 0 {
		opts.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	c := &Client{
		endpoints:   make(map[EndpointKind]*endpoint, len(opts.Endpoints)),
		callTimeout: opts.CallTimeout,
		maxBody:     opts.maxResponseBytes,
		log:         opts.Logger,
		now:         opts.now,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.maxBody <= 0 {
		c.maxBody = MaxResponseBytes
	}
	for kind, ep := range opts.Endpoints {
		paths := DefaultPaths(kind)
		if paths == nil {
			paths = map[Service]string{}
		}
		for s, p := range ep.Paths {
			paths[s] = p
		}
		tr := newTransport(&opts, ep)
		c.endpoints[kind] = &endpoint{
			base:  strings.TrimRight(ep.BaseURL, "/"),
			paths: paths,
			client: &http.Client{
				Transport: tr,
				// A redirect means a wrong URL; following it would resend
				// a File to a place we did not configure.
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			},
			transport: tr,
		}
	}
	return c, nil
}

// CloseIdleConnections closes the idle keep-alive connections of every
// endpoint; calls in flight are not affected.
func (c *Client) CloseIdleConnections() {
	for _, ep := range c.endpoints {
		ep.transport.CloseIdleConnections()
	}
}

// Do makes one gateway call. It returns the parsed Result whenever IR
// answered, and a classified *Error unless the outcome is ClassOK; the two
// come together for answers such as statusCode 4.
//
// The call's deadline is the sooner of ctx's and CallTimeout from now.
//
// The caller's own cancellation of ctx is not a gateway failure: Do returns
// ctx.Err() (context.Canceled) as is, not a *Error, so callers test
// errors.Is(err, context.Canceled) and ClassOf reports ClassRetryLater. The
// one exception is an operation with ReconcileOnLoss (File) cancelled after
// its request was written: it may have been filed, so Do returns a *Error of
// ClassUncertain, which still satisfies errors.Is(err, context.Canceled).
// A deadline, the caller's or CallTimeout, is classified like any timeout.
func (c *Client) Do(ctx context.Context, req Request) (*Result, error) {
	op, err := LookupOperation(req.Service, req.Operation)
	if err != nil {
		return nil, err
	}
	ep, ok := c.endpoints[req.Endpoint]
	if !ok {
		return nil, &Error{Class: ClassConfig, Operation: op.Name, Message: fmt.Sprintf("endpoint %q is not configured", req.Endpoint)}
	}
	path, ok := ep.paths[req.Service]
	if !ok {
		return nil, &Error{Class: ClassConfig, Operation: op.Name, Message: fmt.Sprintf("service %s is not served on endpoint %s", req.Service, req.Endpoint)}
	}

	var (
		body        []byte
		method      = http.MethodPost
		target      = ep.base + path
		contentType string
	)
	if op.Service.SOAP() {
		if body, err = BuildEnvelope(op, req.Payload); err != nil {
			return nil, err
		}
		contentType = `application/soap+xml; charset=utf-8; action="` + op.Action + `"`
	} else {
		method = op.Method
		target += op.Name
		if method != http.MethodGet {
			if !json.Valid(req.Payload) {
				return nil, &Error{Class: ClassInvalid, Operation: op.Name, Message: "payload is not valid JSON"}
			}
			body = req.Payload
			contentType = "application/json"
		}
	}

	authz, err := c.authorization(ctx, op, req.Credentials)
	if err != nil {
		return nil, err
	}

	callCtx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	tr := &callTrace{}
	hreq, err := http.NewRequestWithContext(httptrace.WithClientTrace(callCtx, tr.clientTrace()), method, target, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Class: ClassConfig, Operation: op.Name, Message: "cannot build request", Err: err}
	}
	if body == nil {
		hreq.Body, hreq.ContentLength = http.NoBody, 0
	}
	if contentType != "" {
		hreq.Header.Set("Content-Type", contentType)
	}
	if op.Service.SOAP() {
		hreq.Header.Set("Accept", "application/soap+xml")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	hreq.Header.Set("Authorization", authz)

	start := c.now()
	resp, err := ep.client.Do(hreq)
	if err != nil {
		return nil, c.fail(ctx, op, req, tr, err, start)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.maxBody)+1))
	if err != nil {
		return nil, c.fail(ctx, op, req, tr, err, start)
	}

	var (
		res  *Result
		perr error
	)
	switch {
	case len(data) > c.maxBody:
		res, perr = &Result{HTTPStatus: resp.StatusCode}, malformed("answer larger than %d bytes", c.maxBody)
	case op.Service.SOAP():
		res, perr = parseSOAP(op, resp.StatusCode, data)
	default:
		res, perr = parseREST(resp.StatusCode, data)
	}
	res.Duration = c.now().Sub(start)
	res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	gerr := Classify(op, res, perr)
	c.logCall(ctx, op, req, res.HTTPStatus, gerr, res.Duration)
	if gerr == nil {
		return res, nil
	}
	return res, gerr
}

// authorization asks req's Credentials for the header value. Its failures
// keep their class when they carry one (a token store says ClassAuth for a
// missing or expired token set); the caller's cancellation passes as is.
func (c *Client) authorization(ctx context.Context, op Operation, cr Credentials) (string, error) {
	if cr == nil {
		return "", &Error{Class: ClassAuth, Operation: op.Name, Message: "request has no credentials"}
	}
	v, err := cr.AuthorizationHeader(ctx)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return "", err
		}
		var ge *Error
		if errors.As(err, &ge) {
			cp := *ge
			if cp.Operation == "" {
				cp.Operation = op.Name
			}
			return "", &cp
		}
		return "", &Error{Class: ClassAuth, Operation: op.Name, Message: "credentials failed", Err: err}
	}
	if v == "" || strings.ContainsAny(v, "\r\n") {
		return "", &Error{Class: ClassAuth, Operation: op.Name, Message: "credentials gave an unusable Authorization value"}
	}
	return v, nil
}

// fail classifies a call that got no complete answer.
func (c *Client) fail(ctx context.Context, op Operation, req Request, tr *callTrace, err error, start time.Time) error {
	te := &TransportError{Stage: tr.stage(), Sent: tr.wrote.Load(), Err: err}
	if errors.Is(ctx.Err(), context.Canceled) {
		if !(op.ReconcileOnLoss && te.Sent) {
			return ctx.Err()
		}
		if !errors.Is(err, context.Canceled) {
			te.Err = fmt.Errorf("%w: %w", context.Canceled, err)
		}
	}
	gerr := Classify(op, nil, te)
	c.logCall(ctx, op, req, 0, gerr, c.now().Sub(start))
	return gerr
}

func (c *Client) logCall(ctx context.Context, op Operation, req Request, status int, err *Error, d time.Duration) {
	class := ClassOK
	if err != nil {
		class = err.Class
	}
	level := slog.LevelDebug
	if class == ClassUncertain {
		level = slog.LevelWarn
	}
	if !c.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("service", string(op.Service)),
		slog.String("operation", op.Name),
		slog.String("endpoint", string(req.Endpoint)),
		slog.Int("http_status", status),
		slog.String("class", class.String()),
		slog.Duration("duration", d),
	}
	if err != nil {
		attrs = append(attrs, slog.Int("status_code", err.StatusCode), slog.Bool("sent", err.Sent))
	}
	c.log.LogAttrs(ctx, level, "gateway call", attrs...)
}

// callTrace records, from httptrace hooks, how far a call got. The hooks
// may run on other goroutines (a dial racing the request), hence atomics.
type callTrace struct {
	dialFailed atomic.Bool
	tlsFailed  atomic.Bool
	gotConn    atomic.Bool
	wrote      atomic.Bool
}

func (t *callTrace) clientTrace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		ConnectDone: func(_, _ string, err error) {
			if err != nil {
				t.dialFailed.Store(true)
			}
		},
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			if err != nil {
				t.tlsFailed.Store(true)
			}
		},
		GotConn: func(httptrace.GotConnInfo) { t.gotConn.Store(true) },
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				t.wrote.Store(true)
			}
		},
	}
}

func (t *callTrace) stage() Stage {
	switch {
	case t.wrote.Load():
		return StageResponse
	case t.gotConn.Load():
		return StageWrite
	case t.tlsFailed.Load():
		return StageTLS
	default:
		return StageDial
	}
}

// maxRetryAfter caps a Retry-After so one odd header cannot park the fleet.
const maxRetryAfter = time.Hour

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date.
// Anything else, or a time in the past, is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}
