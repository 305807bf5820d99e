package gatewayclient

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// xsdFor maps a payload's namespace to IR's schema for it; the schemas
// import each other by relative path, so they are used in place.
var xsdFor = map[string]string{
	"urn:www.ird.govt.nz/GWS:types/ReturnGST.v1":      "ReturnGST.v1.xsd",
	"urn:www.ird.govt.nz/GWS:types/ReturnEI.v2":       "ReturnEI.v2.xsd",
	"urn:www.ird.govt.nz/GWS:types/ReturnCommon.v1":   "ReturnCommon.v1.xsd",
	"urn:www.ird.govt.nz/GWS:types/ReturnCommon.v2":   "ReturnCommon.v2.xsd",
	"urn:www.ird.govt.nz/GWS:types/Employment.v2":     "Employment.v2.xsd",
	"urn:www.ird.govt.nz/GWS:types/Intermediation.v1": "Intermediation.v1.xsd",
}

// invalidAsShipped are IR's deliberately invalid request samples.
var invalidAsShipped = map[string]bool{
	"body-gst-returnfile-schema-error-request.xml": true,
}

// TestEnvelopeRoundTripValidatesWithLibxml2 sends the payload of every IR
// request sample through the client to a TLS server, and checks what
// arrived: the endpoint path of the service, the operation's Action (in
// the header and in the content type), and a payload that IR's XSDs accept
// according to libxml2 (xmllint), not only our own validator.
func TestEnvelopeRoundTripValidatesWithLibxml2(t *testing.T) {
	t.Parallel()
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("GATEWAYQ_NO_XMLLINT") == "1" {
			t.Skip("xmllint absent and GATEWAYQ_NO_XMLLINT=1")
		}
		t.Fatal("xmllint not found: install libxml2-utils (make test does), or set GATEWAYQ_NO_XMLLINT=1")
	}
	type capture struct {
		path, contentType string
		body              []byte
	}
	var (
		mu  sync.Mutex
		got capture
	)
	fileResp := sampleFile(t, "returns-gst/samples/body-gst-returnfile-response.xml")
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = capture{path: r.URL.Path, contentType: r.Header.Get("Content-Type"), body: b}
		mu.Unlock()
		_, _ = w.Write(fileResp)
	})
	c := newClient(t, srv)
	requests, _ := loadSamples(t)
	if len(requests) < 28 {
		t.Fatalf("only %d request samples found", len(requests))
	}
	dir := t.TempDir()
	for _, s := range requests {
		tree, err := parseTree(s.data)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		op := opForAction(t, tree.child(NamespaceSOAP12, "Header").child(NamespaceAddressing, "Action").text)
		payload, err := extractPayload(s.data)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		// The answer is a File response whatever the operation; only what
		// was sent matters here.
		_, _ = c.Do(context.Background(), Request{Endpoint: EndpointCloud, Service: op.Service, Operation: op.Name, Payload: payload, Credentials: staticCreds(testToken)})
		mu.Lock()
		sent := got
		mu.Unlock()

		if want := DefaultPaths(EndpointCloud)[op.Service]; sent.path != want {
			t.Errorf("%s: sent to %q, want %q", s.name, sent.path, want)
		}
		if !strings.Contains(sent.contentType, `action="`+op.Action+`"`) || !strings.HasPrefix(sent.contentType, "application/soap+xml") {
			t.Errorf("%s: Content-Type %q", s.name, sent.contentType)
		}
		env, err := parseTree(sent.body)
		if err != nil {
			t.Fatalf("%s: our envelope does not parse: %v", s.name, err)
		}
		if a := env.child(NamespaceSOAP12, "Header").child(NamespaceAddressing, "Action").text; a != op.Action {
			t.Errorf("%s: Action %q, want %q", s.name, a, op.Action)
		}
		ours, err := extractPayload(sent.body)
		if err != nil {
			t.Fatalf("%s: no payload in our envelope: %v", s.name, err)
		}
		root, err := parseTree(ours)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		xsd, ok := xsdFor[root.name.Space]
		if !ok {
			t.Fatalf("%s: no XSD for payload namespace %q", s.name, root.name.Space)
		}
		f := filepath.Join(dir, s.name)
		if err := os.WriteFile(f, ours, 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(xmllint, "--noout", "--nonet", "--schema", filepath.Join("..", "schema", "xsd", xsd), f)
		cmd.Stderr = &stderr
		err = cmd.Run()
		switch {
		case invalidAsShipped[s.name] && err == nil:
			t.Errorf("%s: IR's invalid sample passed libxml2", s.name)
		case !invalidAsShipped[s.name] && err != nil:
			t.Errorf("%s: our envelope's payload fails IR's %s according to libxml2: %v\n%s", s.name, xsd, err, stderr.String())
		}
	}
}
