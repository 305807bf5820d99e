package schema

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const (
	gstNS    = "urn:www.ird.govt.nz/GWS:types/ReturnGST.v1"
	rc1NS    = "urn:www.ird.govt.nz/GWS:types/ReturnCommon.v1"
	gstFile  = "body-gst-returnfile-request-GST101A.xml"
	nsCommon = "urn:www.ird.govt.nz/GWS:types/Common.v1"
)

func TestNotWellFormed(t *testing.T) {
	t.Parallel()
	full := readSample(t, "returns-gst", gstFile)
	tests := map[string]string{
		"empty":                ``,
		"whitespace only":      " \n ",
		"not XML":              `EMS_GST020: Agent retrieves a return`,
		"truncated":            full[:len(full)/2],
		"truncated in a tag":   `<fileRequest xmlns="` + gstNS + `"><fileHea`,
		"mismatched end tag":   `<a xmlns="` + gstNS + `"><b></c></a>`,
		"two roots":            `<fileRequest xmlns="` + gstNS + `"/><fileRequest xmlns="` + gstNS + `"/>`,
		"text after root":      `<fileRequest xmlns="` + gstNS + `"/>trailing`,
		"undeclared prefix":    `<r:fileRequest/>`,
		"undeclared attr pfx":  `<fileRequest xmlns="` + gstNS + `" x:y="1"/>`,
		"duplicate attribute":  `<fileRequest xmlns="` + gstNS + `" a="1" a="2"/>`,
		"duplicate expanded":   `<fileRequest xmlns="` + gstNS + `" xmlns:p="u" xmlns:q="u" p:a="1" q:a="2"/>`,
		"unknown entity":       `<fileRequest xmlns="` + gstNS + `">&nbsp;</fileRequest>`,
		"invalid UTF-8":        "<fileRequest xmlns=\"" + gstNS + "\">\xff</fileRequest>",
		"late XML declaration": `<!-- c --><?xml version="1.0"?><fileRequest xmlns="` + gstNS + `"/>`,
		"empty prefix binding": `<fileRequest xmlns="` + gstNS + `" xmlns:p=""/>`,
		"stray end tag":        `</fileRequest>`,
		"unquoted attribute":   `<fileRequest xmlns="` + gstNS + `" a=1/>`,
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := Validate([]byte(doc))
			if !errors.Is(err, ErrNotWellFormed) {
				t.Fatalf("Validate = %v, want ErrNotWellFormed", err)
			}
			if errors.Is(err, ErrUnknownElement) {
				t.Errorf("error is also ErrUnknownElement: %v", err)
			}
			if !strings.Contains(err.Error(), "line ") {
				t.Errorf("error has no line: %v", err)
			}
		})
	}
}

// manyAttrs returns n distinct attributes a0..a(n-1).
func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(" a" + strconv.Itoa(i) + `="1"`)
	}
	return b.String()
}

func TestUnknownElement(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"no namespace":    `<fileRequest/>`,
		"SOAP envelope":   `<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body/></soap:Envelope>`,
		"local element":   `<fileHeader xmlns="` + rc1NS + `"/>`,
		"type name":       `<FileRequestType xmlns="` + rc1NS + `"/>`,
		"unpublished ns":  `<fileRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnEI.v1"/>`,
		"wrong namespace": `<fileRequest xmlns="` + rc1NS + `"/>`,
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := Validate([]byte(doc))
			if !errors.Is(err, ErrUnknownElement) {
				t.Fatalf("Validate = %v, want ErrUnknownElement", err)
			}
		})
	}
}

func TestKnown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ns, local string
		want      bool
	}{
		{gstNS, "fileRequest", true},
		{"urn:www.ird.govt.nz/GWS:types/ReturnEI.v2", "fileRequest", true},
		{"urn:www.ird.govt.nz/GWS:types/ReturnEI.v2", "retrieveEIRequest", true},
		{rc1NS, "retrieveFormInfoRequest", true},
		{"urn:www.ird.govt.nz/GWS:types/ReturnCommon.v2", "retrieveFilingObligationsResponse", true},
		{"urn:www.ird.govt.nz/GWS:types/Employment.v2", "createRequest", true},
		{"urn:www.ird.govt.nz/GWS:types/Intermediation.v1", "linkRequest", true},
		{rc1NS, "fileRequest", false},
		{rc1NS, "fileHeader", false},
		{nsCommon, "HeaderType", false},
		{"", "fileRequest", false},
	}
	for _, tc := range tests {
		t.Run(tc.ns+" "+tc.local, func(t *testing.T) {
			t.Parallel()
			if got := Known(tc.ns, tc.local); got != tc.want {
				t.Errorf("Known = %v, want %v", got, tc.want)
			}
		})
	}
	if n := len(Elements()); n != 35 {
		t.Errorf("Elements() has %d entries, want the 35 global elements of IR's schemas", n)
	}
}

func TestValidateElement(t *testing.T) {
	t.Parallel()
	doc := []byte(readSample(t, "returns-gst", gstFile))
	t.Run("matching", func(t *testing.T) {
		t.Parallel()
		if err := ValidateElement(doc, gstNS, "fileRequest"); err != nil {
			t.Errorf("ValidateElement: %v", err)
		}
	})
	t.Run("different root", func(t *testing.T) {
		t.Parallel()
		err := ValidateElement(doc, "urn:www.ird.govt.nz/GWS:types/ReturnEI.v2", "fileRequest")
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Problems[0].Path != "/fileRequest" {
			t.Errorf("ValidateElement = %v, want a root mismatch problem", err)
		}
	})
	t.Run("unknown wanted element", func(t *testing.T) {
		t.Parallel()
		if err := ValidateElement(doc, gstNS, "nope"); !errors.Is(err, ErrUnknownElement) {
			t.Errorf("ValidateElement = %v, want ErrUnknownElement", err)
		}
	})
	t.Run("not well-formed", func(t *testing.T) {
		t.Parallel()
		if err := ValidateElement(doc[:100], gstNS, "fileRequest"); !errors.Is(err, ErrNotWellFormed) {
			t.Errorf("ValidateElement = %v, want ErrNotWellFormed", err)
		}
	})
}

func TestValidationErrorDetails(t *testing.T) {
	t.Parallel()
	doc := readSample(t, "returns-ei", "body-ei-returnfile-request.xml")
	// Break every IRD number in the return: one problem each, capped.
	bad := strings.ReplaceAll(doc, "<ret1:irdNumber>1230", "<ret1:irdNumber>X230")
	for i := 0; i < 30; i++ {
		bad = strings.Replace(bad, "</ret1:employeeFields>", "<ret1:employee><ret1:irdNumber>1</ret1:irdNumber></ret1:employee></ret1:employeeFields>", 1)
	}
	err := Validate([]byte(bad))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v, want *ValidationError", err)
	}
	if len(ve.Problems) != maxProblems || !ve.Truncated {
		t.Errorf("%d problems, truncated=%v; want %d and truncated", len(ve.Problems), ve.Truncated, maxProblems)
	}
	if ve.Element != "{urn:www.ird.govt.nz/GWS:types/ReturnEI.v2}fileRequest" {
		t.Errorf("Element = %q", ve.Element)
	}
	p := ve.Problems[0]
	if p.Path != "/fileRequest/fileBody/formFields/employeeFields/employee[1]/irdNumber" || p.Line == 0 || p.Column == 0 {
		t.Errorf("first problem = %+v", p)
	}
	// The line must point at the offending element in the document.
	lines := strings.Split(bad, "\n")
	if p.Line > len(lines) || !strings.Contains(lines[p.Line-1][p.Column-1:], "<ret1:irdNumber>X230") {
		t.Errorf("problem position %d:%d does not point at the bad element", p.Line, p.Column)
	}
	msg := err.Error()
	if !strings.Contains(msg, "20+ problems") || !strings.Contains(msg, "and 17 more") {
		t.Errorf("Error() = %q", msg)
	}
	if len(msg) > 1000 {
		t.Errorf("Error() is %d bytes; it must summarise, not dump", len(msg))
	}
}

func TestTooDeep(t *testing.T) {
	t.Parallel()
	doc := `<fileRequest xmlns="` + gstNS + `">` + strings.Repeat("<a>", maxDepth+10) + strings.Repeat("</a>", maxDepth+10) + `</fileRequest>`
	err := Validate([]byte(doc))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v, want *ValidationError", err)
	}
}

func TestDoctypeRejected(t *testing.T) {
	t.Parallel()
	doc := `<!DOCTYPE fileRequest><fileRequest xmlns="` + gstNS + `"/>`
	var ve *ValidationError
	if err := Validate([]byte(doc)); !errors.As(err, &ve) || !strings.Contains(ve.Problems[0].Message, "DOCTYPE") {
		t.Fatalf("Validate = %v, want a DOCTYPE problem", err)
	}
}

func TestByteOrderMark(t *testing.T) {
	t.Parallel()
	doc := "\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + readSample(t, "returns-gst", gstFile)
	if err := Validate([]byte(doc)); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestEmbeddedMatchesRepo guards against the embedded schemas drifting from
// the files beside them (they are the same files; this checks the embed
// pattern picked all of them up).
func TestEmbeddedMatchesRepo(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("xsd/*.xsd")
	if err != nil || len(files) != 8 {
		t.Fatalf("found %d schema files (%v), want 8", len(files), err)
	}
	for _, f := range files {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := xsdFS.ReadFile("xsd/" + filepath.Base(f))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: embedded copy differs or is missing (%v)", f, err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	for _, tc := range []struct{ name, svc, file string }{
		{"GST101A", "returns-gst", gstFile},
		{"EIFile", "returns-ei", "body-ei-returnfile-request.xml"},
		{"EmploymentCreate", "employment", "body-employment-create-request.xml"},
	} {
		data, err := os.ReadFile(filepath.Join(samplesRoot, tc.svc, "samples", tc.file))
		if err != nil {
			b.Fatal(err)
		}
		payloads, err := extractPayloads(data)
		if err != nil {
			b.Fatal(err)
		}
		doc := payloads[0]
		if err := Validate(doc); err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if err := Validate(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
