package tasks

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// extractNaturalKeyRef is ExtractNaturalKey as it was written over
// encoding/xml's Token, before it moved to internal/xmltok: the reference
// the fuzz test holds the faster one to.
func extractNaturalKeyRef(payload []byte) (NaturalKey, error) {
	var k NaturalKey
	dec := xml.NewDecoder(bytes.NewReader(payload))
	var (
		field  *string
		seen   = map[string]bool{}
		text   strings.Builder
		inAmnd bool
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return k, fmt.Errorf("payload is not well-formed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			field = nil
			text.Reset()
			name := t.Name.Local
			if seen[name] {
				continue // the first occurrence (the header) wins
			}
			switch name {
			case "identifier":
				field = &k.Identifier
			case "accountType":
				field = &k.AccountType
			case "periodEndDate":
				field = &k.PeriodEndDate
			case "majorFormType":
				field = &k.MajorFormType
			case "payDayDate":
				field = &k.PayDayDate
			case "isAmended":
				inAmnd = true
			}
			seen[name] = true
		case xml.CharData:
			if field != nil || inAmnd {
				text.Write(t)
			}
		case xml.EndElement:
			if field != nil {
				*field = strings.TrimSpace(text.String())
				field = nil
			}
			if inAmnd && t.Name.Local == "isAmended" {
				v := strings.TrimSpace(text.String())
				k.Amended = v == "true" || v == "1"
				inAmnd = false
			}
			text.Reset()
		}
	}
	var missing []string
	for name, v := range map[string]string{"identifier": k.Identifier, "accountType": k.AccountType, "periodEndDate": k.PeriodEndDate, "majorFormType": k.MajorFormType} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return k, fmt.Errorf("payload has no %s, so the return's natural key is unknown", strings.Join(missing, ", "))
	}
	return k, nil
}

// FuzzExtractNaturalKeyAgrees: ExtractNaturalKey finds the same key, and
// fails on the same documents, as its encoding/xml version. The seeds (IR's
// return request payloads and mutations of them) run in every go test.
func FuzzExtractNaturalKeyAgrees(f *testing.F) {
	var files []string
	for _, dir := range []string{"returns-gst", "returns-ei"} {
		m, err := filepath.Glob(filepath.Join("..", "testdata", "ir-gws", dir, "samples", "*-re*-request*.xml"))
		if err != nil {
			f.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		f.Fatalf("only %d samples", len(files))
	}
	for _, file := range files {
		rel, _ := filepath.Rel(filepath.Join("..", "testdata", "ir-gws"), file)
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if !bytes.Contains(b, []byte("identifier")) || bytes.Contains(b, []byte("Prepop")) || bytes.Contains(b, []byte("prepop")) {
			continue
		}
		p := []byte(samplePayload(f, rel))
		f.Add(p)
		for _, cut := range []int{len(p) / 3, len(p) / 2, len(p) - 2} {
			f.Add(p[:cut])
		}
		f.Add(bytes.Replace(p, []byte("</"), []byte("</x"), 1))
		f.Add(bytes.Replace(p, []byte(">false<"), []byte(">true<"), 1))
		f.Add(bytes.Replace(p, []byte("identifier"), []byte("identifer"), 2))
	}
	f.Add([]byte("<a><identifier>1&amp;2</identifier><identifier>3</identifier></a>"))
	f.Add([]byte("<a><isAmended> 1 </isAmended><b></b>"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, err := ExtractNaturalKey(payload)
		want, refErr := extractNaturalKeyRef(payload)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("ExtractNaturalKey: %v; encoding/xml version: %v", err, refErr)
		}
		if err == nil && got != want {
			t.Fatalf("key %+v, encoding/xml version %+v", got, want)
		}
	})
}
