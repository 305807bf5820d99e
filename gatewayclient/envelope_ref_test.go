package gatewayclient

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkPayloadRef is checkPayload as it was written over encoding/xml's
// RawToken, before it moved to internal/xmltok: the reference the fuzz
// test holds the faster one to.
func checkPayloadRef(op Operation, payload []byte) ([]byte, error) {
	invalid := func(msg string, err error) error {
		return &Error{Class: ClassInvalid, Operation: op.Name, Message: "payload: " + msg, Err: err}
	}
	payload = bytes.TrimPrefix(payload, utf8BOM)
	if len(bytes.TrimSpace(payload)) == 0 {
		return nil, invalid("empty", nil)
	}
	if !utf8.Valid(payload) {
		return nil, invalid("not valid UTF-8", nil)
	}

	d := xml.NewDecoder(bytes.NewReader(payload))
	d.Strict = true
	// The decoder consults CharsetReader only for an XML declaration naming
	// an encoding other than UTF-8; the envelope is UTF-8, so refuse it.
	d.CharsetReader = func(charset string, _ io.Reader) (io.Reader, error) {
		return nil, &charsetError{charset: charset}
	}
	var (
		start, end = -1, -1
		root       xml.Name
		stack      []xml.Name          // raw (prefix, local) names of open elements
		scopes     []map[string]string // prefix -> namespace declared per open element
	)
	lookup := func(prefix string) (string, bool) {
		switch prefix {
		case "xml":
			return nsXML, true
		case "xmlns":
			return nsXMLNS, true
		}
		for i := len(scopes) - 1; i >= 0; i-- {
			if ns, ok := scopes[i][prefix]; ok {
				return ns, true
			}
		}
		if prefix == "" {
			return "", true // no default namespace declared: no namespace
		}
		return "", false
	}
	for {
		offset := int(d.InputOffset())
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var ce *charsetError
			if errors.As(err, &ce) {
				return nil, invalid(fmt.Sprintf("declares encoding %q; only UTF-8 is accepted", ce.charset), nil)
			}
			return nil, invalid(syntaxMessage(err), nil)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" || offset != 0 {
				return nil, invalid("processing instructions are not allowed", nil)
			}
		case xml.Directive:
			return nil, invalid("DTDs and other directives are not allowed", nil)
		case xml.CharData:
			if len(stack) == 0 && len(bytes.TrimSpace(t)) != 0 {
				return nil, invalid("text outside the root element", nil)
			}
		case xml.StartElement:
			if len(stack) == 0 && end >= 0 {
				return nil, invalid("more than one root element", nil)
			}
			scope := map[string]string{}
			for i, a := range t.Attr {
				for _, b := range t.Attr[:i] {
					if a.Name == b.Name {
						return nil, invalid(fmt.Sprintf("element %s repeats attribute %s", t.Name.Local, a.Name.Local), nil)
					}
				}
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					scope[""] = a.Value
				case a.Name.Space == "xmlns":
					if a.Value == "" {
						return nil, invalid("undeclares namespace prefix "+a.Name.Local, nil)
					}
					scope[a.Name.Local] = a.Value
				}
			}
			scopes = append(scopes, scope)
			stack = append(stack, t.Name)
			ns, ok := lookup(t.Name.Space)
			if !ok {
				return nil, invalid(fmt.Sprintf("element %s uses undeclared namespace prefix %q", t.Name.Local, t.Name.Space), nil)
			}
			for _, a := range t.Attr {
				if a.Name.Space == "" || a.Name.Space == "xmlns" {
					continue
				}
				ans, ok := lookup(a.Name.Space)
				if !ok {
					return nil, invalid(fmt.Sprintf("attribute %s uses undeclared namespace prefix %q", a.Name.Local, a.Name.Space), nil)
				}
				// xsi:type names a type by QName; its prefix must resolve
				// inside the payload too, or it would change meaning (or
				// break) once lifted into our envelope.
				if ans == nsXSI && a.Name.Local == "type" {
					if p, _, found := strings.Cut(a.Value, ":"); found {
						if _, ok := lookup(p); !ok {
							return nil, invalid(fmt.Sprintf("xsi:type on %s uses undeclared namespace prefix %q", t.Name.Local, p), nil)
						}
					}
				}
			}
			if len(stack) == 1 {
				start = offset
				root = xml.Name{Space: ns, Local: t.Name.Local}
			}
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1] != t.Name {
				return nil, invalid("mismatched end tag", nil)
			}
			stack = stack[:len(stack)-1]
			scopes = scopes[:len(scopes)-1]
			if len(stack) == 0 {
				end = int(d.InputOffset())
			}
		}
	}
	if len(stack) != 0 {
		return nil, invalid("truncated: unclosed element", nil)
	}
	if start < 0 || end < 0 {
		return nil, invalid("no root element", nil)
	}
	if !op.acceptsPayload(root) {
		return nil, invalid(fmt.Sprintf("root element {%s}%s is not accepted by %s %s (want one of %s)",
			root.Space, root.Local, op.Service, op.Name, payloadNames(op)), nil)
	}
	return payload[start:end], nil
}

// FuzzCheckPayloadAgrees: checkPayload accepts exactly what its
// encoding/xml version did and lifts the same bytes out. The seeds (IR's
// request payloads and mutations of them) run in every go test.
func FuzzCheckPayloadAgrees(f *testing.F) {
	requests, _ := loadSamples(f)
	for _, s := range requests {
		p, err := extractPayload(s.data)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
		for _, cut := range []int{1, len(p) / 3, len(p) / 2, len(p) - 2} {
			f.Add(p[:cut])
		}
		f.Add(bytes.Replace(p, []byte("</"), []byte("</x"), 1))
		f.Add(bytes.Replace(p, []byte(" xmlns:"), []byte(" xmlnz:"), 1))
		f.Add(append([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?>`), p...))
		f.Add(append([]byte("<!-- c --><?pi x?>"), p...))
		f.Add(append(append([]byte(nil), p...), "<again/>"...))
	}
	for _, s := range []string{
		gstPayload,
		"<a:fileRequest xmlns:a='urn:www.ird.govt.nz/GWS:types/ReturnGST.v1'/>",
		"<a:fileRequest xmlns:a='urn:www.ird.govt.nz/GWS:types/ReturnGST.v1' b='1' b='2'/>",
		"<a:fileRequest xmlns:a='urn:www.ird.govt.nz/GWS:types/ReturnGST.v1' xmlns:a=''/>",
		"<a:fileRequest xmlns:a='urn:www.ird.govt.nz/GWS:types/ReturnGST.v1' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' xsi:type='q:T'/>",
		"<a:fileRequest xmlns:a='urn:www.ird.govt.nz/GWS:types/ReturnGST.v1'>&amp;&#x41;&bogus;</a:fileRequest>",
		"<a:fileRequest xmlns:a='urn:www.ird.govt.nz/GWS:types/ReturnGST.v1'><![CDATA[<x>]]></a:fileRequest>",
		"<!DOCTYPE a><a/>",
		"<a>text</a> tail",
	} {
		f.Add([]byte(s))
	}
	file, _ := LookupOperation(ServiceReturns, "File")
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, err := checkPayload(file, payload)
		want, refErr := checkPayloadRef(file, payload)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("checkPayload: %v; encoding/xml version: %v", err, refErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("lifted %q, encoding/xml version %q", got, want)
		}
	})
}
