package ingest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/ingest"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/internal/syncbuf"
	"github.com/gatewayq/gatewayq/jobstatus"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/tasks"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, and a second CA ("stranger") with a client certificate
// the listener must refuse.
type testPKI struct {
	caPool   *x509.CertPool
	caPEM    []byte
	server   tls.Certificate
	serverPE pemPair
	// serverPE2 is the listener's next certificate, for rotation.
	serverPE2 pemPair
	client    tls.Certificate
	stranger  tls.Certificate
}

type pemPair struct{ cert, key []byte }

var pki = sync.OnceValue(func() *testPKI {
	ca, caKey, caPEM := newCA("gatewayq test producers CA")
	other, otherKey, _ := newCA("someone else's CA")
	serverPE := issue(ca, caKey, "127.0.0.1", true)
	p := &testPKI{caPool: x509.NewCertPool(), caPEM: caPEM, serverPE: serverPE, serverPE2: issue(ca, caKey, "127.0.0.1", true)}
	p.caPool.AddCert(ca)
	p.server = mustPair(serverPE)
	p.client = mustPair(issue(ca, caKey, "payroll-service", false))
	p.stranger = mustPair(issue(other, otherKey, "payroll-service", false))
	return p
})

func newCA(cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return c, k, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

var serial struct {
	sync.Mutex
	n int64
}

func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, server bool) pemPair {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	serial.Lock()
	serial.n++
	sn := serial.n + 1
	serial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP(cn)}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		panic(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return pemPair{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}
}

func mustPair(p pemPair) tls.Certificate {
	c, err := tls.X509KeyPair(p.cert, p.key)
	if err != nil {
		panic(err)
	}
	return c
}

// The producers' test keys.
const (
	payrollKey = "payroll-0123456789abcdef0123456789"
	hrKey      = "hr-system-fedcba9876543210fedcba98"
)

var testKeys = []ingest.Key{{Name: "payroll", Secret: payrollKey}, {Name: "hr", Secret: hrKey}}

type setupOpts struct {
	keys        []ingest.Key
	clientCerts bool
	maxBody     int64
	maxJobs     int
}

// env is one test's ingest API, served over real TLS on a free port,
// enqueuing on the test's own queues in the real Redis.
type env struct {
	t    *testing.T
	r    *redistest.Redis
	base string
	insp *asynq.Inspector
	logs *syncbuf.Buffer
}

// queues gives the test its own Redis prefix, and an asynq client and
// inspector on it, closed when the test ends.
func queues(t *testing.T) (*redistest.Redis, *asynq.Client, *asynq.Inspector) {
	t.Helper()
	r := redistest.New(t)
	ac := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	t.Cleanup(func() { _ = ac.Close() })
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr})
	t.Cleanup(func() { _ = insp.Close() })
	return r, ac, insp
}

func setup(t *testing.T, o setupOpts) *env {
	t.Helper()
	r, ac, insp := queues(t)
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	h, err := ingest.New(ingest.Options{
		Enqueuer:     tasks.NewEnqueuer(ac, tasks.EnqueueOptions{QueuePrefix: r.Prefix}),
		Finder:       jobstatus.New(insp, jobstatus.Options{QueuePrefix: r.Prefix, Ledger: ledger.New(r.Client, r.Prefix)}),
		Redis:        r.Client,
		KeyPrefix:    r.Prefix,
		Keys:         o.keys,
		ClientCerts:  o.clientCerts,
		MaxBodyBytes: o.maxBody,
		MaxJobs:      o.maxJobs,
		Logger:       log,
	})
	if err != nil {
		t.Fatal(err)
	}
	var pool *x509.CertPool
	if o.clientCerts {
		pool = pki().caPool
	}
	srv, err := ingest.NewServer(h, ingest.ServerOptions{
		Addr:   "127.0.0.1:0",
		TLS:    ingest.ServerTLSConfig(pki().server, pool, o.clientCerts && len(o.keys) == 0),
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, srv)
	return &env{t: t, r: r, base: "https://" + srv.Addr(), insp: insp, logs: logs}
}

// client returns an HTTPS client trusting the test CA, presenting cert
// when one is given, whether or not the server's list of CAs names its
// issuer (Go's client would otherwise send none).
func client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: pki().caPool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: 60 * time.Second}
}

// response is one answer.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer is not JSON (%v): %s", err, r.body)
	}
}

// serve starts s and shuts it down when the test ends.
func serve(t *testing.T, s *ingest.Server) {
	t.Helper()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

// request sends a request; headers come in name, value pairs.
func (e *env) request(c *http.Client, method, path string, body []byte, headers ...string) (response, error) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.base+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}, nil
}

// post posts body as JSON with the payroll producer's key.
func (e *env) post(path string, body []byte) response {
	e.t.Helper()
	res, err := e.request(client(nil), http.MethodPost, path, body, "Content-Type", "application/json", "Authorization", "Bearer "+payrollKey)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) get(path string) response {
	e.t.Helper()
	res, err := e.request(client(nil), http.MethodGet, path, nil, "X-API-Key", payrollKey)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// tasksOn counts the tasks of every state on logical queue q.
func (e *env) tasksOn(q string) int {
	e.t.Helper()
	qs, err := e.insp.Queues()
	if err != nil {
		e.t.Fatal(err)
	}
	if !slices.Contains(qs, e.r.Queue(q)) {
		return 0 // never written to
	}
	info, err := e.insp.GetQueueInfo(e.r.Queue(q))
	if err != nil {
		e.t.Fatal(err)
	}
	return info.Size + info.Completed
}

// allTasks counts the tasks on every queue.
func (e *env) allTasks() int {
	n := 0
	for _, q := range tasks.Queues {
		n += e.tasksOn(q)
	}
	return n
}

var (
	tmplOnce sync.Once
	tmpl     *template.Template
	tmplErr  error
)

// gstBody is IR's sample GST File request for return n; totalSales
// replaces its total sales (not a number fails IR's XSD).
func gstBody(t testing.TB, n int, totalSales string) string {
	t.Helper()
	tmplOnce.Do(func() { tmpl, tmplErr = template.ParseFiles("../demo/templates/gst-file.xml") })
	if tmplErr != nil {
		t.Fatal(tmplErr)
	}
	var b bytes.Buffer
	err := tmpl.ExecuteTemplate(&b, "gst-file.xml", map[string]string{
		"Identifier": fmt.Sprintf("%09d", 123_000_000+n), "PeriodEndDate": "2026-09-30",
		"TotalSales": totalSales, "TotalExpenses": "2300.00", "TotalGST": "1004.35",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// gstJob is a valid job filing return n.
func gstJob(t testing.TB, n int) map[string]any {
	return map[string]any{
		"service": "returns", "operation": "File",
		"auth": map[string]any{"mode": "oauth", "token_set": "ts-1"},
		"body": gstBody(t, n, "10000.00"), "ref": fmt.Sprintf("gst-%d", n),
	}
}

// badJob fails IR's XSD: its total sales is not a number.
func badJob(t testing.TB, n int) map[string]any {
	j := gstJob(t, n)
	j["body"] = gstBody(t, n, "lots")
	return j
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// taskID is the ID the job will have.
func taskID(t testing.TB, job map[string]any) string {
	t.Helper()
	j, err := tasks.Decode(mustJSON(t, job))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Normalize(); err != nil {
		t.Fatal(err)
	}
	return j.ID()
}

// writeFile writes data to dir/name with mode.
func writeFile(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}
