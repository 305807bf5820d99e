package sandbox

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// requestSamples lists IR's full request envelopes under testdata/ir-gws,
// with the service path each goes to.
func requestSamples(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for dir, path := range map[string]string{
		"returns-gst": pathReturns, "returns-ei": pathReturns,
		"employment": pathEmployment, "intermediation": pathIntermediation,
	} {
		files, err := filepath.Glob(filepath.Join(testdata, dir, "samples", "*.xml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			base := strings.ToLower(filepath.Base(f))
			if !strings.Contains(base, "request") {
				continue
			}
			// Some of IR's files wrap an envelope in prose; only full
			// envelopes are POSTed as they are.
			if !bytes.HasPrefix(bytes.TrimSpace(readFile(t, f)), []byte("<soap:Envelope")) {
				continue
			}
			out[f] = path
		}
	}
	if len(out) < 20 {
		t.Fatalf("found only %d request samples", len(out))
	}
	return out
}

func TestRequestSamples(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	// The error cases among IR's samples; everything else answers 0.
	want := map[string]int{
		"body-gst-returnfile-schema-error-request.xml":        StatusValidationFailed,
		"body-ei-filingobligation-request.xml":                StatusNotAvailableForForm,
		"body-eiv2-retrieve-return-ACC-Identifer-request.xml": StatusReturnNotFound, // nothing filed for that account
	}
	samples := requestSamples(t)
	files := make([]string, 0, len(samples))
	for f := range samples {
		files = append(files, f)
	}
	// Files first, so the status and retrieve samples find them filed.
	sort.Slice(files, func(i, j int) bool {
		fi, fj := strings.Contains(files[i], "returnfile"), strings.Contains(files[j], "returnfile")
		if fi != fj {
			return fi
		}
		return files[i] < files[j]
	})
	for _, f := range files {
		base := filepath.Base(f)
		a := h.soap(t, samples[f], readFile(t, f), h.bearer())
		wantCode := want[base]
		if a.HTTP != http.StatusOK || a.StatusCode != wantCode {
			t.Errorf("%s: HTTP %d statusCode %d (%s), want 200 and %d\n%s", base, a.HTTP, a.StatusCode, a.ErrorMessage, wantCode, a.Body)
			continue
		}
		if !strings.HasSuffix(a.Action, "Response") {
			t.Errorf("%s: Action %q", base, a.Action)
		}
		if strings.Contains(base, "returnfile-request") && (a.GatewayID == "" || a.SubmissionKey == "") {
			t.Errorf("%s: no gatewayId/submissionKey:\n%s", base, a.Body)
		}
		if wantCode == StatusValidationFailed && !strings.Contains(a.ErrorMessage, "line=25") {
			t.Errorf("%s: errorMessage %q should point at line 25 like IR's", base, a.ErrorMessage)
		}
	}
	st := h.s.Stats()
	if st.DuplicateFilings != 0 || st.DuplicateAttempts != 0 {
		t.Errorf("DuplicateFilings %d DuplicateAttempts %d, want 0", st.DuplicateFilings, st.DuplicateAttempts)
	}
}

func TestSOAPEnvelopeErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	gst := gstSample(t, "body-gst-returnfile-request-GST101A.xml")
	tests := []struct {
		name        string
		method      string
		contentType string
		body        []byte
		wantHTTP    int
		wantFault   string
	}{
		{"GET", http.MethodGet, "application/soap+xml", nil, http.StatusMethodNotAllowed, ""},
		{"SOAP 1.1 content type", http.MethodPost, "text/xml; charset=utf-8", gst, http.StatusUnsupportedMediaType, ""},
		{"not XML", http.MethodPost, "application/soap+xml", []byte("hello"), http.StatusInternalServerError, "s:Sender"},
		{"action names another operation", http.MethodPost, "application/soap+xml",
			replace(t, gst, "Returns/Return/File<", "Returns/Return/Prepop<"), http.StatusInternalServerError, "s:Sender"},
		{"action of another service", http.MethodPost, "application/soap+xml",
			replace(t, gst, "GWS/Returns/Return/File", "GWS/Employment/v2/Employment/Create"), http.StatusInternalServerError, "s:Sender"},
		{"wrong Msg name", http.MethodPost, "application/soap+xml",
			replace(t, gst, "ReturnFileRequestMsg", "FileRequestMsg"), http.StatusInternalServerError, "s:Sender"},
		{"wrong wrapper namespace", http.MethodPost, "application/soap+xml",
			replace(t, gst, ":types/FileRequest\"", ":types/PrepopRequest\""), http.StatusInternalServerError, "s:Sender"},
		{"no Action", http.MethodPost, "application/soap+xml",
			replace(t, gst, "wsa:Action", "wsa:To"), http.StatusInternalServerError, "s:Sender"},
		{"SOAP 1.1 envelope", http.MethodPost, "application/soap+xml",
			replace(t, gst, "http://www.w3.org/2003/05/soap-envelope", "http://schemas.xmlsoap.org/soap/envelope/"), http.StatusInternalServerError, "s:VersionMismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := h.do(t, h.cloud, tt.method, h.s.CloudURL()+pathReturns, tt.contentType, h.bearer(), tt.body)
			if a.HTTP != tt.wantHTTP || a.FaultCode != tt.wantFault {
				t.Errorf("HTTP %d fault %q, want %d %q\n%s", a.HTTP, a.FaultCode, tt.wantHTTP, tt.wantFault, a.Body)
			}
		})
	}
	t.Run("nothing filed", func(t *testing.T) {
		t.Parallel()
		// Runs beside the table: filter on the key the table uses.
		if fs := h.s.Filings(NaturalKey{"123039858", "GST", "2017-07-31", "GST", ""}); len(fs) != 0 {
			t.Errorf("a refused envelope filed %d returns", len(fs))
		}
	})
}

func TestSOAPAuth(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	gst := gstSample(t, "body-gst-returnfile-request-GST101A.xml")
	expired := h.s.IssueToken("bob", time.Minute)
	h.clock.Advance(2 * time.Minute)
	jwt := signM2M(t, h.s.PKI(), m2mClaims(h.s, h.clock.Now()), nil)
	tests := []struct {
		name     string
		auth     string
		wantCode int
		wantMsg  string
	}{
		{"missing", "", StatusTokenMissing, ""},
		{"empty bearer", "Bearer ", StatusTokenMissing, ""},
		{"unknown token", "Bearer not-a-token", StatusAuthFailed, ""},
		{"expired token", "Bearer " + expired, StatusAuthFailed, ""},
		{"basic auth", "Basic YWxpY2U6c2VjcmV0", StatusAuthFailed, ""},
		{"M2M JWT bare", jwt, StatusAuthFailed, "OAuth"},
		{"M2M JWT as bearer", "Bearer " + jwt, StatusAuthFailed, "OAuth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := h.soap(t, pathReturns, gst, tt.auth)
			if a.StatusCode != tt.wantCode || !strings.Contains(a.ErrorMessage, tt.wantMsg) {
				t.Errorf("statusCode %d %q, want %d containing %q", a.StatusCode, a.ErrorMessage, tt.wantCode, tt.wantMsg)
			}
			if a.HTTP != http.StatusOK || a.Action != svcReturns.actionPrefix+"FileResponse" {
				t.Errorf("HTTP %d Action %q", a.HTTP, a.Action)
			}
			if cred := strings.TrimPrefix(tt.auth, "Bearer "); len(cred) > 8 && strings.Contains(string(a.Body), cred) {
				t.Error("the answer echoes the credential")
			}
		})
	}
	// Parallel subtests finish before the parent's cleanups run.
	t.Cleanup(func() {
		if st := h.s.Stats(); st.AuthFailures != int64(len(tests)) || len(st.Originals) != 0 {
			t.Errorf("AuthFailures %d (want %d), originals %v", st.AuthFailures, len(tests), st.Originals)
		}
	})
}

func TestDelegation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.s.Deny("alice", "123039858", "GST")
	h.s.Deny("alice", "123456789", "") // every account of the employer
	tests := []struct {
		name, path string
		body       []byte
		auth       string
		want       int
	}{
		{"denied GST return", pathReturns, gstSample(t, "body-gst-returnfile-request-GST101A.xml"), h.bearer(), StatusUnauthorisedDelegate},
		{"denied status", pathReturns, gstSample(t, "body-gst-returnstatus-request.xml"), h.bearer(), StatusUnauthorisedDelegate},
		{"other account allowed", pathReturns, gstSample(t, "body-gst-returnfile-request-GST103C.xml"), h.bearer(), StatusOK},
		{"other user allowed", pathReturns, gstSample(t, "body-gst-returnprepop-request.xml"), "Bearer " + h.s.IssueToken("carol", 0), StatusOK},
		{"employment denied by identifier", pathEmployment,
			readFile(t, filepath.Join(testdata, "employment/samples/body-employment-create-request.xml")), h.bearer(), StatusUnauthorisedDelegate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := h.soap(t, tt.path, tt.body, tt.auth)
			if a.StatusCode != tt.want {
				t.Fatalf("statusCode %d (%s), want %d", a.StatusCode, a.ErrorMessage, tt.want)
			}
			if tt.want == StatusUnauthorisedDelegate && a.ErrorMessage != "Unauthorised Delegation" {
				t.Errorf("errorMessage %q", a.ErrorMessage)
			}
		})
	}
}

func TestLedger(t *testing.T) {
	t.Parallel()
	gst := func(t *testing.T) []byte { return gstSample(t, "body-gst-returnfile-request-GST101A.xml") }
	amended := func(t *testing.T) []byte {
		return replace(t, gst(t), "<ret2:isAmended>false</ret2:isAmended>", "<ret2:isAmended>true</ret2:isAmended>")
	}
	ei := func(t *testing.T) []byte { return eiSample(t, "body-ei-returnfile-request.xml") }
	gstKey := NaturalKey{"123039858", "GST", "2017-07-31", "GST", ""}.String()
	eiKey := NaturalKey{"123041607", "PSO", "2018-04-30", "EI2", "2018-04-10"}.String()

	type step struct {
		body    func(*testing.T) []byte
		advance time.Duration
		want    int
	}
	tests := []struct {
		name          string
		steps         []step
		key           string
		wantOriginals int
		wantAttempts  int64
		wantFiled     int64
	}{
		{"second original is 107", []step{{gst, 0, 0}, {gst, 0, StatusDuplicateReturn}}, gstKey, 1, 1, 1},
		{"amendment accepted", []step{{gst, 0, 0}, {amended, 0, 0}, {amended, time.Minute, 0}}, gstKey, 1, 0, 3},
		{"amendment of nothing", []step{{amended, 0, StatusReturnNotFound}}, gstKey, 0, 0, 0},
		{"GST period end mid-month is 131", []step{{func(t *testing.T) []byte {
			return replace(t, gst(t), "<ret2:periodEndDate>2017-07-31<", "<ret2:periodEndDate>2017-07-15<")
		}, 0, StatusPeriodEndInvalid}}, gstKey, 0, 0, 0},
		{"EI same payload within the hour is 160", []step{{ei, 0, 0}, {ei, 59 * time.Minute, StatusDuplicatePayload}}, eiKey, 1, 1, 1},
		{"EI same payload after the hour is 107", []step{{ei, 0, 0}, {ei, 61 * time.Minute, StatusDuplicateReturn}}, eiKey, 1, 1, 1},
		{"EI reformatted payload is still 160", []step{{ei, 0, 0}, {func(t *testing.T) []byte {
			return bytes.ReplaceAll(ei(t), []byte("\n    "), []byte("\n"))
		}, time.Second, StatusDuplicatePayload}}, eiKey, 1, 1, 1},
		{"EI other payday is another return", []step{{ei, 0, 0}, {func(t *testing.T) []byte {
			return replace(t, ei(t), "<ret1:payDayDate>2018-04-10<", "<ret1:payDayDate>2018-04-17<")
		}, 0, 0}}, eiKey, 1, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{})
			for i, st := range tt.steps {
				h.clock.Advance(st.advance)
				a := h.soap(t, pathReturns, st.body(t), h.bearer())
				if a.StatusCode != st.want {
					t.Fatalf("step %d: statusCode %d (%s), want %d", i, a.StatusCode, a.ErrorMessage, st.want)
				}
			}
			s := h.s.Stats()
			if s.Originals[tt.key] != tt.wantOriginals || s.DuplicateAttempts != tt.wantAttempts || s.Filed != tt.wantFiled {
				t.Errorf("Originals[%s]=%d DuplicateAttempts=%d Filed=%d, want %d %d %d",
					tt.key, s.Originals[tt.key], s.DuplicateAttempts, s.Filed, tt.wantOriginals, tt.wantAttempts, tt.wantFiled)
			}
			if s.DuplicateFilings != 0 {
				t.Errorf("DuplicateFilings %d", s.DuplicateFilings)
			}
		})
	}
}

// TestConcurrentOriginals files the same return from many goroutines: one
// original is accepted, the rest are 107.
func TestConcurrentOriginals(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	body := gstSample(t, "body-gst-returnfile-request-GST101A.xml")
	const n = 8
	codes := make(chan int, n)
	for range n {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, h.s.CloudURL()+pathReturns, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/soap+xml")
			req.Header.Set("Authorization", h.bearer())
			resp, err := h.cloud.Do(req)
			if err != nil {
				codes <- -2
				return
			}
			var a answer
			b := new(bytes.Buffer)
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			readSOAP(t, b.Bytes(), &a)
			codes <- a.StatusCode
		}()
	}
	got := map[int]int{}
	for range n {
		got[<-codes]++
	}
	if got[0] != 1 || got[StatusDuplicateReturn] != n-1 {
		t.Errorf("codes %v, want one 0 and %d×107", got, n-1)
	}
	if st := h.s.Stats(); st.DuplicateFilings != 0 || st.DuplicateAttempts != n-1 {
		t.Errorf("DuplicateFilings %d DuplicateAttempts %d", st.DuplicateFilings, st.DuplicateAttempts)
	}
}

func TestRetrieveFromLedger(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	status := gstSample(t, "body-gst-returnstatus-request.xml")
	retrieve := gstSample(t, "body-gst-retrievereturn-request.xml")
	if a := h.soap(t, pathReturns, status, h.bearer()); a.StatusCode != StatusReturnNotFound {
		t.Fatalf("status before filing: %d", a.StatusCode)
	}
	if a := h.soap(t, pathReturns, retrieve, h.bearer()); a.StatusCode != StatusReturnNotFound {
		t.Fatalf("retrieve before filing: %d", a.StatusCode)
	}
	filed := h.soap(t, pathReturns, gstSample(t, "body-gst-returnfile-request-GST101A.xml"), h.bearer())
	if filed.StatusCode != 0 || len(filed.GatewayID) != 16 {
		t.Fatalf("file: %d gatewayId %q", filed.StatusCode, filed.GatewayID)
	}
	a := h.soap(t, pathReturns, status, h.bearer())
	if a.StatusCode != 0 || a.SubmissionKey != filed.SubmissionKey || !bytes.Contains(a.Body, []byte(`code="SUB"`)) {
		t.Errorf("status: %d key %q want %q\n%s", a.StatusCode, a.SubmissionKey, filed.SubmissionKey, a.Body)
	}
	a = h.soap(t, pathReturns, retrieve, h.bearer())
	if a.StatusCode != 0 || !bytes.Contains(a.Body, []byte(">3093.36</totalGST>")) || !bytes.Contains(a.Body, []byte("<isNilReturn>false</isNilReturn>")) {
		t.Errorf("retrieve does not return the filed form fields:\n%s", a.Body)
	}

	// EI: a returnStatus per version, the submission key in the form fields.
	eiFiled := h.soap(t, pathReturns, eiSample(t, "body-ei-returnfile-request.xml"), h.bearer())
	a = h.soap(t, pathReturns, eiSample(t, "body-ei-returnstatus-request.xml"), h.bearer())
	if a.StatusCode != 0 || a.SubmissionKey != eiFiled.SubmissionKey {
		t.Errorf("EI status: %d %q want %q", a.StatusCode, a.SubmissionKey, eiFiled.SubmissionKey)
	}
	a = h.soap(t, pathReturns, eiSample(t, "body-ei-retrievereturn-request.xml"), h.bearer())
	if a.StatusCode != 0 || a.SubmissionKey != eiFiled.SubmissionKey || !bytes.Contains(a.Body, []byte("Keith Kalish")) {
		t.Errorf("EI retrieve:\n%s", a.Body)
	}
}

func TestGatewayIDsUnique(t *testing.T) {
	t.Parallel()
	l := newLedger()
	seen := map[string]bool{}
	for i := range 200 {
		out := l.file(NaturalKey{Identifier: "1", PeriodEndDate: time.Date(2000, 1, 31, 0, 0, 0, 0, time.UTC).AddDate(0, i, 0).String()}, payloadFields{}, nsReturnGST, time.Now())
		if out.code != 0 {
			t.Fatalf("file %d: %d", i, out.code)
		}
		if seen[out.filing.GatewayID] || seen[out.filing.SubmissionKey] {
			t.Fatalf("duplicate id at %d", i)
		}
		seen[out.filing.GatewayID], seen[out.filing.SubmissionKey] = true, true
		if len(out.filing.GatewayID) != 16 || strings.Count(out.filing.GatewayID, " ") != 3 {
			t.Fatalf("gatewayId %q not in IR's shape", out.filing.GatewayID)
		}
	}
}

func TestThrottle(t *testing.T) {
	t.Parallel()
	// A rate so low that no token refills during the test.
	h := newHarness(t, Options{ThrottleRPS: 0.001, ThrottleBurst: 2})
	body := gstSample(t, "body-gst-returnfile-request-GST103C.xml")
	for i := range 2 {
		if a := h.soap(t, pathReturns, gstSample(t, "body-gst-returnprepop-request.xml"), h.bearer()); a.HTTP != http.StatusOK {
			t.Fatalf("call %d within the burst: HTTP %d", i, a.HTTP)
		}
	}
	a := h.soap(t, pathReturns, body, h.bearer())
	if a.HTTP != http.StatusTooManyRequests {
		t.Fatalf("past the burst: HTTP %d, want 429", a.HTTP)
	}
	if ra := a.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	// Desktop callers have their own bucket (by IP), so it is not spent.
	d := h.do(t, h.desktop, http.MethodPost, h.s.DesktopURL()+"/gateway2/gws/returns/", "application/soap+xml", h.bearer(), body)
	if d.HTTP != http.StatusOK || d.StatusCode != 0 {
		t.Errorf("desktop: HTTP %d statusCode %d", d.HTTP, d.StatusCode)
	}
	st := h.s.Stats()
	if st.Throttled != 1 || st.HTTPStatus[429] != 1 || st.Calls["returns/File"] != 2 {
		t.Errorf("stats: %+v", st)
	}
	// The throttled File touched nothing: only the desktop one is filed.
	if st.Filed != 1 {
		t.Errorf("Filed %d, want 1", st.Filed)
	}
	// Lifting the limit admits the cloud caller again.
	h.s.SetThrottle(0, 0)
	if a := h.soap(t, pathReturns, gstSample(t, "body-gst-returnfile-request-GST103D.xml"), h.bearer()); a.HTTP != http.StatusOK {
		t.Errorf("after SetThrottle(0): HTTP %d", a.HTTP)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	t.Run("cloud refuses a client without certificate", func(t *testing.T) {
		t.Parallel()
		c := newClient(h.s.PKI(), nil)
		defer c.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, h.s.CloudURL()+"/sandbox/stats", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatal("handshake without a client certificate succeeded")
		}
	})
	t.Run("cloud refuses a certificate from another CA", func(t *testing.T) {
		t.Parallel()
		other, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := other.PKI().Clients[0].TLSCertificate()
		c := newClient(h.s.PKI(), &cert)
		defer c.CloseIdleConnections()
		resp, err := c.Get(h.s.CloudURL() + "/sandbox/stats")
		if err == nil {
			resp.Body.Close()
			t.Fatal("handshake with a foreign client certificate succeeded")
		}
	})
	t.Run("desktop needs none", func(t *testing.T) {
		t.Parallel()
		a := h.do(t, h.desktop, http.MethodPost, h.s.DesktopURL()+"/gateway2/gws/returns/", "application/soap+xml", h.bearer(),
			gstSample(t, "body-gst-returnprepop-request.xml"))
		if a.StatusCode != 0 {
			t.Errorf("statusCode %d", a.StatusCode)
		}
	})
	t.Run("intermediation is cloud only", func(t *testing.T) {
		t.Parallel()
		a := h.do(t, h.desktop, http.MethodPost, h.s.DesktopURL()+pathIntermediation, "application/soap+xml", h.bearer(),
			readFile(t, filepath.Join(testdata, "intermediation/samples/Link-request.xml")))
		if a.HTTP != http.StatusNotFound {
			t.Errorf("HTTP %d", a.HTTP)
		}
	})
	t.Run("client CN has IR's shape", func(t *testing.T) {
		t.Parallel()
		cn := h.s.PKI().Clients[0].CN
		hexPart, rest, _ := strings.Cut(cn, ".")
		if len(hexPart) != 32 || strings.ToLower(hexPart) != hexPart || rest != "irdgws."+DefaultDomain {
			t.Errorf("CN %q", cn)
		}
	})
}

// TestCloseEndsLatency: a call waiting on injected latency does not hold up
// Close.
func TestCloseEndsLatency(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Latency: time.Hour})
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, h.s.CloudURL()+pathReturns, bytes.NewReader(gstSample(t, "body-gst-returnprepop-request.xml")))
		req.Header.Set("Content-Type", "application/soap+xml")
		resp, err := h.cloud.Do(req)
		if err == nil {
			if resp.StatusCode != http.StatusServiceUnavailable {
				err = errors.New(resp.Status)
			}
			resp.Body.Close()
		}
		errc <- err
	}()
	for h.s.Stats().InFlight == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-errc // either 503 or a closed connection; what matters is that it ends
	h.cloud.CloseIdleConnections()
}

func TestLatencyHonoursContext(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Latency: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("wait: %v", err)
	}
	s.SetLatency(0, 0)
	if err := s.wait(context.Background()); err != nil {
		t.Errorf("wait without latency: %v", err)
	}
}

func TestEmbeddedResponsesMatchTestdata(t *testing.T) {
	t.Parallel()
	if err := checkCanned(); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{
		"returns-gst": "returns-gst/samples", "returns-ei": "returns-ei/samples",
		"employment": "employment/samples", "intermediation": "intermediation/samples", "rest-account": "rest-account/samples",
	}
	for here, there := range dirs {
		entries, err := responses.ReadDir("responses/" + here)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			got, _ := responses.ReadFile("responses/" + here + "/" + e.Name())
			want, err := os.ReadFile(filepath.Join(testdata, there, e.Name()))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("responses/%s/%s differs from testdata (%v)", here, e.Name(), err)
			}
		}
	}
}
