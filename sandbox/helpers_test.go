package sandbox

import (
	"bytes"
	"crypto/tls"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: every sandbox is
// closed and every test client's idle connections are dropped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testdata = "../testdata/ir-gws"

// clock is an injectable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness is a started sandbox with clients for both listeners.
type harness struct {
	s       *Sandbox
	clock   *clock
	cloud   *http.Client // presents the first client certificate
	desktop *http.Client // presents none
	token   string       // a live token for user "alice"
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	clk := newClock()
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	h := &harness{s: s, clock: clk}
	cert, err := s.PKI().Clients[0].TLSCertificate()
	if err != nil {
		t.Fatalf("client key pair: %v", err)
	}
	h.cloud = newClient(s.PKI(), &cert)
	h.desktop = newClient(s.PKI(), nil)
	h.token = s.IssueToken("alice", 0)
	t.Cleanup(func() {
		h.cloud.CloseIdleConnections()
		h.desktop.CloseIdleConnections()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

func newClient(p *PKI, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: p.CertPool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

// answer is a gateway answer as the tests read it, with their own small
// parser (not gatewayclient's).
type answer struct {
	HTTP          int
	Header        http.Header
	Body          []byte
	Action        string
	StatusCode    int
	ErrorMessage  string
	GatewayID     string
	SubmissionKey string
	FaultCode     string
}

func (h *harness) do(t *testing.T, client *http.Client, method, url, contentType, auth string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	a := answer{HTTP: resp.StatusCode, Header: resp.Header, Body: b, StatusCode: -999}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/soap+xml") {
		readSOAP(t, b, &a)
	}
	return a
}

// soap POSTs an envelope to a SOAP path of the cloud listener.
func (h *harness) soap(t *testing.T, path string, env []byte, auth string) answer {
	t.Helper()
	return h.do(t, h.cloud, http.MethodPost, h.s.CloudURL()+path, "application/soap+xml; charset=utf-8", auth, env)
}

func (h *harness) bearer() string { return "Bearer " + h.token }

func readSOAP(t *testing.T, b []byte, a *answer) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var cur string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("answer is not XML: %v\n%s", err, b)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			cur = v.Name.Local
		case xml.EndElement:
			cur = ""
		case xml.CharData:
			s := strings.TrimSpace(string(v))
			switch cur {
			case "Action":
				a.Action = s
			case "statusCode":
				var n int
				for _, c := range s {
					n = n*10 + int(c-'0')
				}
				if strings.HasPrefix(s, "-") {
					n = -1
				}
				a.StatusCode = n
			case "errorMessage":
				a.ErrorMessage = s
			case "gatewayId":
				a.GatewayID = s
			case "submissionKey":
				if a.SubmissionKey == "" {
					a.SubmissionKey = s
				}
			case "Value":
				a.FaultCode = s
			}
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gstSample(t *testing.T, name string) []byte {
	return readFile(t, filepath.Join(testdata, "returns-gst", "samples", name))
}

func eiSample(t *testing.T, name string) []byte {
	return readFile(t, filepath.Join(testdata, "returns-ei", "samples", name))
}

// replace swaps old for new in a sample, failing if old is absent.
func replace(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("sample has no %q", old)
	}
	return bytes.ReplaceAll(b, []byte(old), []byte(new))
}

const (
	pathReturns        = "/gateway/gws/returns/"
	pathEmployment     = "/gateway/gws/employment/v2/"
	pathIntermediation = "/secure/gateway/gws/intermediation/"
)
