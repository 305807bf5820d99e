package sandbox

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPKIWriteFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pki")
	s, err := New(Options{Dir: dir, ClientCerts: 3, Domain: "example.co.nz"})
	if err != nil {
		t.Fatal(err)
	}
	files, ok := s.PKIFiles()
	if !ok || len(files.Clients) != 3 {
		t.Fatalf("PKIFiles %+v %v", files, ok)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v %v", fi.Mode().Perm(), err)
	}
	want := map[string]os.FileMode{
		"ca.pem": 0o644, "server.pem": 0o644, "server-key.pem": 0o600,
		"client.pem": 0o644, "client-key.pem": 0o600,
		"client-2.pem": 0o644, "client-2-key.pem": 0o600, "client-3.pem": 0o644, "client-3-key.pem": 0o600,
		"jwt-signing.pem": 0o644, "jwt-signing-key.pem": 0o600,
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		t.Errorf("%d files, want %d", len(entries), len(want))
	}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	// The written client certificate chains to the CA and has IR's CN shape.
	block, _ := pem.Decode(readFile(t, files.ClientCert))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: s.PKI().CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert does not chain: %v", err)
	}
	if !strings.HasSuffix(cert.Subject.CommonName, ".irdgws.example.co.nz") {
		t.Errorf("CN %q", cert.Subject.CommonName)
	}
	// The thumbprint is SHA-256 of the signing certificate's DER, upper hex.
	block, _ = pem.Decode(s.PKI().SigningCertPEM)
	sum := sha256.Sum256(block.Bytes)
	if got := strings.ToUpper(hex.EncodeToString(sum[:])); got != s.PKI().SigningThumbprint {
		t.Errorf("thumbprint %s, want %s", s.PKI().SigningThumbprint, got)
	}
	// Writing again over existing files keeps the modes.
	if _, err := s.PKI().WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(files.ClientKey); fi.Mode().Perm() != 0o600 {
		t.Errorf("rewritten key mode %v", fi.Mode().Perm())
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	_, err := New(Options{ClientCerts: -1, ThrottleRPS: -1, Latency: -1, Domain: "a b"})
	if err == nil {
		t.Fatal("New accepted bad options")
	}
	for _, field := range []string{"ClientCerts", "ThrottleRPS", "Latency", "Domain"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
}

func TestStartTwice(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	if err := h.s.Start(); err != ErrStarted {
		t.Errorf("second Start: %v", err)
	}
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	const admin = "a-long-random-admin-token"
	h := newHarness(t, Options{AdminToken: admin})
	plain := newHarness(t, Options{})
	tests := []struct {
		name     string
		h        *harness
		query    string
		auth     string
		wantHTTP int
	}{
		{"issues a token", h, "?user=dave&ttl=1h", "Bearer " + admin, 200},
		{"wrong admin token", h, "?user=dave", "Bearer nope", 401},
		{"no admin token", h, "?user=dave", "", 401},
		{"no user", h, "", "Bearer " + admin, 400},
		{"bad ttl", h, "?user=dave&ttl=forever", "Bearer " + admin, 400},
		{"disabled without AdminToken", plain, "?user=dave", "Bearer " + admin, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := tt.h.do(t, tt.h.desktop, http.MethodPost, tt.h.s.DesktopURL()+"/sandbox/tokens"+tt.query, "", tt.auth, nil)
			if a.HTTP != tt.wantHTTP {
				t.Fatalf("HTTP %d, want %d: %s", a.HTTP, tt.wantHTTP, a.Body)
			}
			if tt.wantHTTP != 200 {
				return
			}
			var tr tokenResponse
			if err := json.Unmarshal(a.Body, &tr); err != nil || tr.ExpiresIn != 3600 || tr.User != "dave" {
				t.Fatalf("token response %s (%v)", a.Body, err)
			}
			// The token works on a SOAP path.
			r := tt.h.soap(t, pathReturns, gstSample(t, "body-gst-returnprepop-request.xml"), "Bearer "+tr.AccessToken)
			if r.StatusCode != 0 {
				t.Errorf("issued token refused: %d", r.StatusCode)
			}
		})
	}
	t.Run("stats", func(t *testing.T) {
		t.Parallel()
		plain.soap(t, pathReturns, gstSample(t, "body-gst-returnprepop-request.xml"), plain.bearer())
		a := plain.do(t, plain.cloud, http.MethodGet, plain.s.CloudURL()+"/sandbox/stats", "", "", nil)
		var st Stats
		if err := json.Unmarshal(a.Body, &st); err != nil || st.Calls["returns/Prepop"] != 1 || st.StatusCodes[0] != 1 {
			t.Errorf("stats %s (%v)", a.Body, err)
		}
	})
}

func TestEmploymentAndIntermediationSchemaError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	body := readFile(t, filepath.Join(testdata, "employment/samples/body-employment-create-request.xml"))
	body = replace(t, body, "<com:accountType>", "<com:accountTypo>")
	body = replace(t, body, "</com:accountType>", "</com:accountTypo>")
	a := h.soap(t, pathEmployment, body, h.bearer())
	if a.StatusCode != StatusValidationFailed || !strings.HasPrefix(a.ErrorMessage, "XML Request Failed Validation: ") {
		t.Errorf("statusCode %d %q", a.StatusCode, a.ErrorMessage)
	}
	if !bytes.Contains(a.Body, []byte("<employmentResponse")) || a.Action != svcEmployment.actionPrefix+"CreateResponse" {
		t.Errorf("not in IR's Create response shape:\n%s", a.Body)
	}
}

// ExampleNew starts a sandbox, files IR's sample GST return over mutual TLS
// and reads the counters.
func ExampleNew() {
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

	body, _ := os.ReadFile("../testdata/ir-gws/returns-gst/samples/body-gst-returnfile-request-GST101A.xml")
	req, _ := http.NewRequest(http.MethodPost, s.CloudURL()+"/gateway/gws/returns/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/soap+xml; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+s.IssueToken("alice", 0))
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	st := s.Stats()
	fmt.Println(resp.StatusCode, st.Calls["returns/File"], st.StatusCodes[0], st.Filed)
	// Output: 200 1 1 1
}
