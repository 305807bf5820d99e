package schema

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/gatewayq/gatewayq/internal/irsamples"
)

const samplesRoot = "../testdata/ir-gws"

// serviceXSD maps a sample directory to the schema its WSDL imports, which
// is what IR's gateway validates that service's payloads with.
var serviceXSD = map[string]string{
	"returns-gst":    "ReturnGST.v1.xsd",
	"returns-ei":     "ReturnEI.v2.xsd",
	"employment":     "Employment.v2.xsd",
	"intermediation": "Intermediation.v1.xsd",
}

type sample struct {
	name    string // dir/file#n
	service string
	payload []byte
}

// loadSamples extracts every payload from every sample of the four
// services. It fails the test if a sample file yields no payload.
func loadSamples(t testing.TB) []sample {
	t.Helper()
	var out []sample
	services := make([]string, 0, len(serviceXSD))
	for s := range serviceXSD {
		services = append(services, s)
	}
	sort.Strings(services)
	for _, svc := range services {
		files, err := filepath.Glob(filepath.Join(samplesRoot, svc, "samples", "*.xml"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no samples under %s/%s/samples", samplesRoot, svc)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			payloads, err := extractPayloads(data)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(payloads) == 0 {
				t.Fatalf("%s: no payload element found", f)
			}
			for i, p := range payloads {
				name := svc + "/" + filepath.Base(f)
				if len(payloads) > 1 {
					name += "#" + string(rune('1'+i))
				}
				out = append(out, sample{name: name, service: svc, payload: p})
			}
		}
	}
	return out
}

// extractPayloads is irsamples.Payloads: the outermost elements in an IR
// types namespace, with inherited namespace declarations copied onto them.
func extractPayloads(data []byte) ([][]byte, error) { return irsamples.Payloads(data) }

// xmllintVerdict runs libxml2's validator on doc with the schema at xsdPath. ok reports whether xmllint is available; when it is not the
// caller must fail unless GATEWAYQ_NO_XMLLINT=1.
func xmllintVerdict(t *testing.T, doc []byte, xsdPath string) (valid bool, output string, ok bool) {
	t.Helper()
	bin, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("GATEWAYQ_NO_XMLLINT") == "1" {
			return false, "", false
		}
		t.Fatalf("xmllint not found on PATH (install libxml2-utils), or set GATEWAYQ_NO_XMLLINT=1 to skip the libxml2 cross-check")
	}
	f := filepath.Join(t.TempDir(), "payload.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--noout", "--nonet", "--schema", xsdPath, f)
	outb, err := cmd.CombinedOutput()
	output = string(outb)
	if err == nil {
		return true, output, true
	}
	var ee *exec.ExitError
	// Exit status 3 is "validation failed"; anything else (parse errors,
	// schema errors) means the comparison itself is broken.
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		return false, output, true
	}
	t.Fatalf("xmllint failed unexpectedly: %v\n%s", err, output)
	return false, output, false
}

// assertAgrees checks that our verdict on doc equals libxml2's with the
// schema at xsdPath.
func assertAgrees(t *testing.T, doc []byte, xsdPath string, ours error) {
	t.Helper()
	valid, out, ok := xmllintVerdict(t, doc, xsdPath)
	if !ok {
		return
	}
	if valid != (ours == nil) {
		t.Errorf("verdict differs from xmllint: ours=%v\nxmllint (valid=%v):\n%s", ours, valid, out)
	}
}
