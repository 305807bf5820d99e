package schema

import (
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// FuzzValidate feeds arbitrary bytes to Validate. It must never panic, and
// every failure must be one of the documented kinds.
func FuzzValidate(f *testing.F) {
	for _, svc := range []string{"returns-gst", "returns-ei", "employment", "intermediation"} {
		files, _ := filepath.Glob(filepath.Join(samplesRoot, svc, "samples", "*.xml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			payloads, err := extractPayloads(data)
			if err != nil {
				f.Fatal(err)
			}
			for _, p := range payloads {
				f.Add(p)
			}
		}
	}
	f.Add([]byte(`<fileRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1"/>`))
	f.Add([]byte(`<a:b xmlns:a="urn:www.ird.govt.nz/GWS:types/ReturnCommon.v1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="a:"/>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		err := Validate(doc)
		if err == nil {
			return
		}
		var ve *ValidationError
		if !errors.As(err, &ve) && !errors.Is(err, ErrNotWellFormed) && !errors.Is(err, ErrUnknownElement) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if ve != nil && (len(ve.Problems) == 0 || len(ve.Problems) > maxProblems) {
			t.Fatalf("ValidationError with %d problems", len(ve.Problems))
		}
		_ = err.Error()
	})
}

// FuzzTranslateRegex checks the XSD-to-RE2 translation never panics and
// always yields an anchored pattern or an error.
func FuzzTranslateRegex(f *testing.F) {
	for _, s := range []string{`\d{9}`, `.+`, `[A-Z]{0,6}`, `([a-zA-Z0-9._!#$%*+=?^` + "`" + `{|}~/&'-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]+)`, `\i\c*`, `[a-z-[aeiou]]`, `\p{Lu}`, `a^b$`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pat string) {
		_, _ = compilePattern(pat)
	})
}

// FuzzDecimal holds isDecimalLexical to the regular expression it
// replaced, and the order of parseDecimal's numbers to big.Rat's.
func FuzzDecimal(f *testing.F) {
	re := regexp.MustCompile(`^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$`)
	seeds := []string{"", "+", "-", ".", "5.", ".5", "+.5", "-0.", "-.0", "0", "00012.3400", "12.34", "1e5", "1.2.3", " 1", "1 ", "١٢", "+-1", "3093.36", "-3093.360", "0.51", "0.6", "999999999999999999999.1"}
	for i, a := range seeds {
		f.Add(a, seeds[(i+5)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, s := range []string{a, b} {
			if ok := isDecimalLexical(s); ok != re.MatchString(s) {
				t.Fatalf("isDecimalLexical(%q) = %v, the regexp says %v", s, ok, !ok)
			}
		}
		va, okA := parseDecimal(a)
		vb, okB := parseDecimal(b)
		if okA != re.MatchString(a) || okB != re.MatchString(b) {
			t.Fatalf("parseDecimal(%q) %v, (%q) %v", a, okA, b, okB)
		}
		if !okA || !okB {
			return
		}
		ra, _ := new(big.Rat).SetString(a)
		rb, _ := new(big.Rat).SetString(b)
		if got, want := va.num.cmp(vb.num), ra.Cmp(rb); got != want {
			t.Fatalf("%q vs %q: cmp %d, big.Rat says %d", a, b, got, want)
		}
	})
}
