package gatewayclient

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testPKI is a CA with a server and a client certificate, made once per
// test binary.
type testPKI struct {
	caPool      *x509.CertPool
	serverECDSA tls.Certificate
	serverRSA   tls.Certificate
	client      tls.Certificate
	clientCN    string
}

var (
	pkiOnce sync.Once
	pki     *testPKI
)

func getPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		p := &testPKI{clientCN: "0123456789abcdef0123456789abcdef.irdgws.example.nz"}
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		caTmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "gatewayq test CA"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
		if err != nil {
			panic(err)
		}
		ca, _ := x509.ParseCertificate(caDER)
		p.caPool = x509.NewCertPool()
		p.caPool.AddCert(ca)
		issue := func(serial int64, cn string, key crypto.Signer, server bool) tls.Certificate {
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(serial),
				Subject:      pkix.Name{CommonName: cn},
				NotBefore:    time.Now().Add(-time.Hour),
				NotAfter:     time.Now().Add(24 * time.Hour),
				KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			}
			if server {
				tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
				tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
				tmpl.DNSNames = []string{"localhost"}
			} else {
				tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
			if err != nil {
				panic(err)
			}
			return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		}
		ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p.serverECDSA = issue(2, "localhost", ek, true)
		rk, _ := rsa.GenerateKey(rand.Reader, 2048)
		p.serverRSA = issue(3, "localhost", rk, true)
		ck, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p.client = issue(4, p.clientCN, ck, false)
		pki = p
	})
	return pki
}

type serverOpt func(*httptest.Server, *tls.Config)

// newServer starts a TLS server requiring our client certificate, and
// counts its new connections.
func newServer(t *testing.T, h http.HandlerFunc, opts ...serverOpt) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	p := getPKI(t)
	srv := httptest.NewUnstartedServer(h)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{p.serverECDSA},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.caPool,
	}
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are what some tests are about
	for _, o := range opts {
		o(srv, cfg)
	}
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &conns
}

type clientOpt func(*Options)

func newClient(t *testing.T, srv *httptest.Server, opts ...clientOpt) *Client {
	t.Helper()
	p := getPKI(t)
	cert := p.client
	o := Options{
		Endpoints: map[EndpointKind]Endpoint{
			EndpointCloud: {BaseURL: srv.URL, MutualTLS: true},
		},
		ClientCertificate: &cert,
		RootCAs:           p.caPool,
		CallTimeout:       10 * time.Second,
	}
	for _, f := range opts {
		f(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

type staticCreds string

func (s staticCreds) AuthorizationHeader(context.Context) (string, error) { return string(s), nil }

const testToken = "Bearer tok-SECRET-123"

func fileRequest() Request {
	return Request{Endpoint: EndpointCloud, Service: ServiceReturns, Operation: "File",
		Payload: []byte(gstPayload), Credentials: staticCreds(testToken)}
}

func sampleFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(irTestdata, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func serve(status int, body []byte, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}
}

func TestClientMutualTLSAndRequest(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	okResp := sampleFile(t, "returns-gst/samples/body-gst-returnfile-response.xml")
	var got struct {
		sync.Mutex
		cn, path, ctype, authz, accept string
		body                           []byte
	}
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Lock()
		got.cn = r.TLS.PeerCertificates[0].Subject.CommonName
		got.path, got.ctype, got.authz, got.accept, got.body = r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.Header.Get("Accept"), b
		got.Unlock()
		_, _ = w.Write(okResp)
	})
	c := newClient(t, srv)
	res, err := c.Do(context.Background(), fileRequest())
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if res.GatewayID != "0000 002G M22W 9" || res.SubmissionKey != "1108852352" || res.StatusCode != 0 {
		t.Errorf("Result = %+v", res)
	}
	got.Lock()
	defer got.Unlock()
	if got.cn != p.clientCN {
		t.Errorf("server saw client CN %q", got.cn)
	}
	if got.path != "/gateway/gws/returns/" {
		t.Errorf("path = %q", got.path)
	}
	if want := `application/soap+xml; charset=utf-8; action="https://services.ird.govt.nz/GWS/Returns/Return/File"`; got.ctype != want {
		t.Errorf("Content-Type = %q", got.ctype)
	}
	if got.authz != testToken {
		t.Errorf("Authorization = %q", got.authz)
	}
	op, _ := LookupOperation(ServiceReturns, "File")
	want, _ := BuildEnvelope(op, []byte(gstPayload))
	if !bytes.Equal(got.body, want) {
		t.Errorf("body is not our envelope:\n%s", got.body)
	}
}

func TestClientTLSFailures(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	tests := []struct {
		name   string
		server []serverOpt
		client []clientOpt
	}{
		{
			name: "no client certificate",
			client: []clientOpt{func(o *Options) {
				ep := o.Endpoints[EndpointCloud]
				ep.MutualTLS = false
				o.Endpoints[EndpointCloud] = ep
			}},
		},
		{
			name:   "no client certificate, TLS 1.2",
			server: []serverOpt{func(_ *httptest.Server, c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }},
			client: []clientOpt{func(o *Options) {
				ep := o.Endpoints[EndpointCloud]
				ep.MutualTLS = false
				o.Endpoints[EndpointCloud] = ep
			}},
		},
		{
			name: "TLS 1.1 only server",
			server: []serverOpt{func(_ *httptest.Server, c *tls.Config) {
				c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
			}},
		},
		{
			name:   "unknown server CA",
			client: []clientOpt{func(o *Options) { o.RootCAs = x509.NewCertPool() }},
		},
		{
			name: "TLS 1.2 server with CBC suites only",
			server: []serverOpt{func(_ *httptest.Server, c *tls.Config) {
				c.MaxVersion = tls.VersionTLS12
				c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }, tt.server...)
			c := newClient(t, srv, tt.client...)
			res, err := c.Do(context.Background(), fileRequest())
			var ge *Error
			if !errors.As(err, &ge) || ge.Class != ClassUnavailable || ge.Sent {
				t.Fatalf("err = %v (%#v), want ClassUnavailable not sent", err, ge)
			}
			if res != nil || calls.Load() != 0 {
				t.Errorf("request reached the handler")
			}
		})
	}
	_ = p
}

func TestClientRSAServerTLS12(t *testing.T) {
	t.Parallel()
	p := getPKI(t)
	srv, _ := newServer(t, serve(200, sampleFile(t, "returns-gst/samples/body-gst-returnfile-response.xml")),
		func(_ *httptest.Server, c *tls.Config) {
			c.Certificates = []tls.Certificate{p.serverRSA}
			c.MaxVersion = tls.VersionTLS12
		})
	c := newClient(t, srv)
	if _, err := c.Do(context.Background(), fileRequest()); err != nil {
		t.Fatalf("ECDHE-RSA over TLS 1.2: %v", err)
	}
}

func TestClientKeepAlive(t *testing.T) {
	t.Parallel()
	srv, conns := newServer(t, serve(200, sampleFile(t, "returns-gst/samples/body-gst-returnfile-response.xml")))
	c := newClient(t, srv)
	for i := range 50 {
		if _, err := c.Do(context.Background(), fileRequest()); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("50 sequential calls opened %d connections, want 1", n)
	}
}

func TestClientDeadline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		op    string
		class Class
	}{
		{"File", ClassUncertain},
		{"RetrieveStatus", ClassRetryLater},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			t.Parallel()
			srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				<-r.Context().Done() // hang until the client gives up
			})
			c := newClient(t, srv, func(o *Options) { o.CallTimeout = 200 * time.Millisecond })
			req := fileRequest()
			req.Operation = tt.op
			if tt.op != "File" {
				req.Payload = []byte(`<retrieveFormInfoRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnCommon.v1"/>`)
			}
			_, err := c.Do(context.Background(), req)
			var ge *Error
			if !errors.As(err, &ge) || ge.Class != tt.class || !ge.Sent {
				t.Fatalf("err = %v, want %v sent", err, tt.class)
			}
		})
	}
}

func TestClientResetAfterRequest(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		if tc, ok := conn.(*tls.Conn); ok {
			if nc, ok := tc.NetConn().(*net.TCPConn); ok {
				_ = nc.SetLinger(0) // RST, not FIN
			}
		}
		_ = conn.Close()
	})
	c := newClient(t, srv)
	_, err := c.Do(context.Background(), fileRequest())
	var ge *Error
	if !errors.As(err, &ge) || ge.Class != ClassUncertain || !ge.Sent {
		t.Fatalf("err = %v, want ClassUncertain sent", err)
	}
}

func TestClientCallerCancel(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, serve(200, nil))
	c := newClient(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Do(ctx, fileRequest())
	var ge *Error
	if !errors.Is(err, context.Canceled) || errors.As(err, &ge) {
		t.Fatalf("err = %#v, want context.Canceled as is", err)
	}

	// Cancelled after the File was written: it may be filed.
	written := make(chan struct{})
	srv2, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		close(written)
		<-r.Context().Done()
	})
	c2 := newClient(t, srv2)
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { <-written; cancel2() }()
	_, err = c2.Do(ctx2, fileRequest())
	if !errors.As(err, &ge) || ge.Class != ClassUncertain || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ClassUncertain wrapping context.Canceled", err)
	}
}

func TestClientHTTPAnswers(t *testing.T) {
	t.Parallel()
	const maxBody = 64 << 10
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		class      Class
		retryAfter time.Duration
	}{
		{"429 seconds", serve(429, []byte("slow down"), "Retry-After", "3"), ClassThrottled, 3 * time.Second},
		{"429 no header", serve(429, nil), ClassThrottled, 0},
		{"503", serve(503, []byte("<html>maintenance</html>")), ClassUnavailable, 0},
		{"504", serve(504, nil), ClassUnavailable, 0},
		{"500 HTML", serve(500, []byte("<html>oops</html>")), ClassRetryLater, 0},
		{"200 HTML", serve(200, []byte("<!DOCTYPE html><html><body>proxy</body></html>")), ClassMalformed, 0},
		{"200 empty", serve(200, nil), ClassMalformed, 0},
		{"redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }, ClassConfig, 0},
		{"too large", serve(200, bytes.Repeat([]byte("x"), maxBody+10)), ClassMalformed, 0},
		{"UnAuthorised fault", serve(500, fault("Sender", "UnAuthorised", "Unauthorised")), ClassRetryLater, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := newServer(t, tt.handler)
			c := newClient(t, srv, func(o *Options) { o.maxResponseBytes = maxBody })
			res, err := c.Do(context.Background(), fileRequest())
			var ge *Error
			if !errors.As(err, &ge) || ge.Class != tt.class {
				t.Fatalf("err = %v, want %v", err, tt.class)
			}
			if ge.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", ge.RetryAfter, tt.retryAfter)
			}
			if res == nil || res.HTTPStatus != ge.HTTPStatus || !ge.Sent {
				t.Errorf("res = %+v, err = %+v", res, ge)
			}
		})
	}
}

// TestClientServesEverySample plays each of IR's response samples back
// through a real TLS server and checks the Result and Class.
func TestClientServesEverySample(t *testing.T) {
	t.Parallel()
	_, responses := loadSamples(t)
	byName := map[string][]byte{}
	for _, s := range responses {
		byName[s.name] = s.data
	}
	var current atomic.Pointer[[]byte]
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(*current.Load())
	})
	c := newClient(t, srv)
	special := map[string]Class{
		"body-gst-returnfile-respcode4.xml":                         ClassPermission,
		"body-gst-returnfile-schema-error-response.xml":             ClassInvalid,
		"body-employment-create-response-error-unauth-delegate.xml": ClassPermission,
		"body-employment-update-response-error-unauth-delegate.xml": ClassPermission,
	}
	// Sequential: one server, one answer at a time.
	for _, s := range responses {
		tree, _ := parseTree(s.data)
		action := tree.child(NamespaceSOAP12, "Header").child(NamespaceAddressing, "Action").text
		op := opForAction(t, strings.TrimSuffix(action, "Response"))
		payload := []byte("<x/>")
		if len(op.Payloads) > 0 {
			n := op.Payloads[0]
			payload = []byte(`<p:` + n.Local + ` xmlns:p="` + n.Space + `"/>`)
		}
		data := s.data
		current.Store(&data)
		res, err := c.Do(context.Background(), Request{Endpoint: EndpointCloud, Service: op.Service, Operation: op.Name, Payload: payload, Credentials: staticCreds(testToken)})
		want, ok := special[s.name]
		if !ok {
			want = ClassOf(errOrNil(Classify(op, &Result{StatusCode: res.StatusCode}, nil)))
		}
		if got := ClassOf(err); got != want {
			t.Errorf("%s: class %v, want %v (%v)", s.name, got, want, err)
		}
		if res == nil || res.Action != action || len(res.Body) == 0 {
			t.Errorf("%s: Result %+v", s.name, res)
		}
	}
	if byName["body-gst-returnfile-response.xml"] == nil {
		t.Fatal("File sample missing")
	}
}

func TestClientREST(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, op, method, path, sample string
		status                         int
		class                          Class
	}{
		{"account GST", "account", "POST", "/gateway/account/account", "POST_200_Account_with_GST_account_response.json", 200, ClassOK},
		{"list", "list", "POST", "/gateway/account/list", "POST_200_list_response.json", 200, ClassOK},
		{"status", "status", "GET", "/gateway/account/status", "POST_200_list_response.json", 200, ClassOK},
		{"EV1022", "account", "POST", "/gateway/account/account", "POST_400_account_EV1022_response.json", 400, ClassPermission},
		{"EV1100", "list", "POST", "/gateway/account/list", "POST_400_list_EV1100_response.json", 400, ClassInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := sampleFile(t, "rest-account/samples/"+tt.sample)
			var method, path, ctype, accept, authz atomic.Value
			srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				method.Store(r.Method)
				path.Store(r.URL.Path)
				ctype.Store(r.Header.Get("Content-Type"))
				accept.Store(r.Header.Get("Accept"))
				authz.Store(r.Header.Get("Authorization"))
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = w.Write(body)
			})
			c := newClient(t, srv)
			res, err := c.Do(context.Background(), Request{Endpoint: EndpointCloud, Service: ServiceAccount, Operation: tt.op,
				Payload: []byte(`{"CustomerID":"123"}`), Credentials: staticCreds("eyJ.m2m.jwt")})
			if got := ClassOf(err); got != tt.class {
				t.Fatalf("class %v, want %v (%v)", got, tt.class, err)
			}
			if res == nil || !bytes.Equal(res.Body, body) {
				t.Errorf("Body not returned")
			}
			if method.Load() != tt.method || path.Load() != tt.path || accept.Load() != "application/json" || authz.Load() != "eyJ.m2m.jwt" {
				t.Errorf("request %v %v accept=%v authz=%v", method.Load(), path.Load(), accept.Load(), authz.Load())
			}
			if tt.method == "POST" && ctype.Load() != "application/json" {
				t.Errorf("Content-Type = %v", ctype.Load())
			}
		})
	}
}

type failingCreds struct{ err error }

func (f failingCreds) AuthorizationHeader(context.Context) (string, error) { return "", f.err }

func TestClientRefusesBeforeSending(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	c := newClient(t, srv)
	tests := []struct {
		name  string
		req   func(Request) Request
		class Class
	}{
		{"bad payload", func(r Request) Request { r.Payload = []byte("<x/>"); return r }, ClassInvalid},
		{"unknown operation", func(r Request) Request { r.Operation = "Nope"; return r }, ClassInvalid},
		{"endpoint not configured", func(r Request) Request { r.Endpoint = EndpointDesktop; return r }, ClassConfig},
		{"no credentials", func(r Request) Request { r.Credentials = nil; return r }, ClassAuth},
		{"credentials fail", func(r Request) Request { r.Credentials = failingCreds{errors.New("store down")}; return r }, ClassAuth},
		{"credentials say config", func(r Request) Request {
			r.Credentials = failingCreds{&Error{Class: ClassConfig, Message: "key"}}
			return r
		}, ClassConfig},
		{"header injection", func(r Request) Request { r.Credentials = staticCreds("Bearer x\r\nX-Evil: 1"); return r }, ClassAuth},
		{"REST bad JSON", func(r Request) Request {
			r.Service, r.Operation, r.Payload = ServiceAccount, "account", []byte("{")
			return r
		}, ClassInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := c.Do(context.Background(), tt.req(fileRequest()))
			var ge *Error
			if !errors.As(err, &ge) || ge.Class != tt.class || ge.Sent {
				t.Fatalf("err = %v, want %v", err, tt.class)
			}
			if ge.Operation == "" {
				t.Error("Operation not set")
			}
		})
	}
	if calls.Load() != 0 {
		t.Errorf("%d requests reached the server", calls.Load())
	}
}

// TestClientNeverLeaksSecrets runs failing and succeeding calls with a
// debug logger and checks neither the token nor the payload shows up in any
// log record or error.
func TestClientNeverLeaksSecrets(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	payload := `<fileRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1"><ird>TAXPAYER-987654321</ird></fileRequest>`
	for _, h := range []http.HandlerFunc{
		serve(200, sampleFile(t, "returns-gst/samples/body-gst-returnfile-response.xml")),
		serve(200, []byte("<html>TAXPAYER</html>")),
		serve(429, nil),
		func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			c, _, _ := http.NewResponseController(w).Hijack()
			_ = c.Close()
		},
	} {
		srv, _ := newServer(t, h)
		c := newClient(t, srv, func(o *Options) { o.Logger = logger })
		req := fileRequest()
		req.Payload = []byte(payload)
		_, err := c.Do(context.Background(), req)
		if err != nil && (strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "987654321")) {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if buf.Len() == 0 {
		t.Fatal("nothing logged")
	}
	if s := buf.String(); strings.Contains(s, "SECRET") || strings.Contains(s, "987654321") {
		t.Errorf("log leaks a secret:\n%s", s)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	cert := getPKI(t).client
	tests := []struct {
		name string
		opts Options
		want []string // substrings, one per bad field
	}{
		{"no endpoints", Options{}, []string{"Endpoints: at least one"}},
		{"http and no cert", Options{Endpoints: map[EndpointKind]Endpoint{EndpointCloud: {BaseURL: "http://x", MutualTLS: true}}},
			[]string{"Endpoints[cloud].BaseURL: scheme must be https", "Endpoints[cloud].MutualTLS: ClientCertificate is required"}},
		{"bad path and negatives", Options{ClientCertificate: &cert, CallTimeout: -1, MaxIdleConnsPerHost: -1,
			Endpoints: map[EndpointKind]Endpoint{"moon": {BaseURL: "https://h", Paths: map[Service]string{ServiceReturns: "x"}}}},
			[]string{"Endpoints[moon]: unknown endpoint kind", "Paths[returns]: must start with /", "CallTimeout", "MaxIdleConnsPerHost"}},
		{"ok", Options{Endpoints: map[EndpointKind]Endpoint{EndpointDesktop: {BaseURL: "https://h:443"}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.opts.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadClientCertificateAndCABundle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := getPKI(t)
	certPEM := pemBlock("CERTIFICATE", p.client.Certificate[0])
	keyDER, _ := x509.MarshalPKCS8PrivateKey(p.client.PrivateKey)
	keyPEM := pemBlock("PRIVATE KEY", keyDER)
	certFile, keyFile, caFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	must(t, os.WriteFile(certFile, certPEM, 0o644))
	must(t, os.WriteFile(keyFile, keyPEM, 0o644))
	if _, err := LoadClientCertificate(certFile, keyFile); !errors.Is(err, errKeyPermissions) {
		t.Errorf("world-readable key accepted: %v", err)
	}
	must(t, os.Chmod(keyFile, 0o600))
	if _, err := LoadClientCertificate(certFile, keyFile); err != nil {
		t.Errorf("LoadClientCertificate: %v", err)
	}
	must(t, os.WriteFile(caFile, certPEM, 0o644))
	if _, err := LoadCABundle(caFile); err != nil {
		t.Errorf("LoadCABundle: %v", err)
	}
	must(t, os.WriteFile(caFile, []byte("nope"), 0o644))
	if _, err := LoadCABundle(caFile); err == nil {
		t.Error("LoadCABundle accepted no certificates")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
