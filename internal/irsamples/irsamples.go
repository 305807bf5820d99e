// Package irsamples reads IR's published sample messages (testdata/ir-gws)
// for tests: it lifts the payloads out of their SOAP envelopes as
// standalone documents, the way a DSP's software hands them to gatewayq.
// Several packages' tests (schema, internal/xmltok) feed these payloads to
// what they test, so they share one extractor.
package irsamples

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"sort"
	"strings"
)

// TypesPrefix starts the namespaces of IR's payload types
// ("urn:www.ird.govt.nz/GWS:types/ReturnGST.v1", ...).
const TypesPrefix = "urn:www.ird.govt.nz/GWS:types/"

// Payloads returns, as standalone documents, the outermost elements
// in an IR types namespace: the payload inside each ...RequestWrapper or
// ...ResponseWrapper. Namespace declarations inherited from the SOAP
// envelope are copied onto the payload's start tag. The input may be prose
// with XML fragments in it (IR's ACC-Identifer sample is): decoding stops at
// the first error outside a payload.
func Payloads(data []byte) ([][]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	type frame struct{ decls map[string]string }
	var stack []frame
	var out [][]byte
	inPayload := -1 // stack depth of the payload being captured, or -1
	var start int64
	var inherited map[string]string
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if inPayload >= 0 {
				return nil, err
			}
			break // trailing fragment of a hand-edited sample
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			decls := map[string]string{}
			for _, a := range tk.Attr {
				switch {
				case a.Name.Space == "xmlns":
					decls[a.Name.Local] = a.Value
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					decls[""] = a.Value
				}
			}
			if inPayload < 0 && strings.HasPrefix(tk.Name.Space, TypesPrefix) {
				inPayload = len(stack)
				start = off
				inherited = map[string]string{}
				for _, f := range stack {
					for p, u := range f.decls {
						inherited[p] = u
					}
				}
				for p := range decls {
					delete(inherited, p)
				}
			}
			stack = append(stack, frame{decls: decls})
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if inPayload == len(stack) {
				out = append(out, withDecls(data[start:d.InputOffset()], inherited))
				inPayload = -1
			}
		}
	}
	return out, nil
}

// withDecls inserts namespace declarations after the element name of the
// start tag that begins frag.
func withDecls(frag []byte, decls map[string]string) []byte {
	end := bytes.IndexAny(frag, " \t\r\n/>")
	var b bytes.Buffer
	b.Write(frag[:end])
	prefixes := make([]string, 0, len(decls))
	for p := range decls {
		prefixes = append(prefixes, p)
	}
	sort.Strings(prefixes)
	for _, p := range prefixes {
		if p == "" {
			b.WriteString(` xmlns="`)
		} else {
			b.WriteString(` xmlns:` + p + `="`)
		}
		xml.EscapeText(&b, []byte(decls[p]))
		b.WriteString(`"`)
	}
	b.Write(frag[end:])
	return b.Bytes()
}
