package gatewayclient

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gatewayq/gatewayq/internal/xmltok"
)

// XML namespaces of the SOAP 1.2 envelope and WS-Addressing 1.0 header.
const (
	NamespaceSOAP12     = "http://www.w3.org/2003/05/soap-envelope"
	NamespaceAddressing = "http://www.w3.org/2005/08/addressing"

	nsXMLNS = "http://www.w3.org/2000/xmlns/"
	nsXML   = "http://www.w3.org/XML/1998/namespace"
	nsXSI   = "http://www.w3.org/2001/XMLSchema-instance"
)

// BuildEnvelope wraps payload, one payload element such as a GST
// <fileRequest>, in op's SOAP 1.2 envelope:
//
//	Envelope > Header > wsa:Action
//	Envelope > Body > {Op} > {Msg} > {Wrapper} > payload
//
// The payload is inserted byte for byte, after an XML declaration and a UTF-8
// byte-order mark are stripped. It must be UTF-8, one well-formed element
// whose qualified name op accepts, declare every namespace prefix it uses
// (it is lifted out of any document it came from), and carry no DTD. Anything
// else is a *Error of ClassInvalid. Payload text never appears in the error.
//
// The envelope's own elements all use prefixes and it declares no default
// namespace, so unprefixed names in the payload mean exactly what they meant
// on their own.
func BuildEnvelope(op Operation, payload []byte) ([]byte, error) {
	if !op.Service.SOAP() || op.Action == "" {
		return nil, &Error{Class: ClassInvalid, Operation: op.Name, Message: "not a SOAP operation"}
	}
	elem, err := checkPayload(op, payload)
	if err != nil {
		return nil, err
	}

	var b bytes.Buffer
	b.Grow(len(elem) + 1024)
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>`)
	b.WriteString(`<soap:Envelope xmlns:soap="` + NamespaceSOAP12 + `" xmlns:wsa="` + NamespaceAddressing + `">`)
	b.WriteString(`<soap:Header><wsa:Action>`)
	escape(&b, op.Action)
	b.WriteString(`</wsa:Action></soap:Header><soap:Body>`)
	// The names below come from the catalog, never from a request; they are
	// still escaped, so a bad catalog entry breaks a test, not the markup.
	b.WriteString(`<op:`)
	escape(&b, op.Name)
	b.WriteString(` xmlns:op="`)
	escape(&b, op.Namespace)
	b.WriteString(`"><op:`)
	escape(&b, op.MsgElement)
	b.WriteString(`><w:`)
	escape(&b, op.WrapperElement)
	b.WriteString(` xmlns:w="`)
	escape(&b, op.WrapperNamespace)
	b.WriteString(`">`)
	b.Write(elem)
	b.WriteString(`</w:`)
	escape(&b, op.WrapperElement)
	b.WriteString(`></op:`)
	escape(&b, op.MsgElement)
	b.WriteString(`></op:`)
	escape(&b, op.Name)
	b.WriteString(`></soap:Body></soap:Envelope>`)
	return b.Bytes(), nil
}

func escape(b *bytes.Buffer, s string) {
	_ = xml.EscapeText(b, []byte(s)) // writing to a bytes.Buffer cannot fail
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// checkPayload returns the bytes of payload's one root element (without
// prolog, comments or surrounding whitespace) after checking it is fit to go
// verbatim into op's envelope.
func checkPayload(op Operation, payload []byte) ([]byte, error) {
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

	// xmltok accepts what encoding/xml's RawToken (Strict) does, several
	// times faster: this check runs for every job enqueued and every call.
	t := xmltok.New(payload)
	var (
		start, end = -1, -1
		root       xml.Name
		stack      []xmltok.Name       // raw (prefix, local) names of open elements
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
		kind, err := t.Next()
		if err != nil {
			var de *xmltok.DeclError
			if errors.As(err, &de) {
				// "encoding "ISO-8859-1" declared; only UTF-8 is accepted"
				return nil, invalid(strings.TrimPrefix(de.Msg, "xml: "), nil)
			}
			return nil, invalid(syntaxMessage(err), nil)
		}
		if kind == xmltok.EOF {
			break
		}
		offset := t.Offset()
		switch kind {
		case xmltok.ProcInst:
			if string(t.Target()) != "xml" || offset != 0 {
				return nil, invalid("processing instructions are not allowed", nil)
			}
		case xmltok.Directive:
			return nil, invalid("DTDs and other directives are not allowed", nil)
		case xmltok.CharData:
			if len(stack) == 0 && len(bytes.TrimSpace(t.Text())) != 0 {
				return nil, invalid("text outside the root element", nil)
			}
		case xmltok.StartElement:
			name, attrs := t.Name(), t.Attrs()
			local := string(name.Local)
			if len(stack) == 0 && end >= 0 {
				return nil, invalid("more than one root element", nil)
			}
			scope := map[string]string{}
			for i, a := range attrs {
				for _, b := range attrs[:i] {
					if a.Name.Equal(b.Name) {
						return nil, invalid(fmt.Sprintf("element %s repeats attribute %s", local, a.Name.Local), nil)
					}
				}
				switch {
				case len(a.Name.Prefix) == 0 && string(a.Name.Local) == "xmlns":
					scope[""] = string(a.Value)
				case string(a.Name.Prefix) == "xmlns":
					if len(a.Value) == 0 {
						return nil, invalid("undeclares namespace prefix "+string(a.Name.Local), nil)
					}
					scope[string(a.Name.Local)] = string(a.Value)
				}
			}
			scopes = append(scopes, scope)
			stack = append(stack, name)
			ns, ok := lookup(string(name.Prefix))
			if !ok {
				return nil, invalid(fmt.Sprintf("element %s uses undeclared namespace prefix %q", local, name.Prefix), nil)
			}
			for _, a := range attrs {
				if len(a.Name.Prefix) == 0 || string(a.Name.Prefix) == "xmlns" {
					continue
				}
				ans, ok := lookup(string(a.Name.Prefix))
				if !ok {
					return nil, invalid(fmt.Sprintf("attribute %s uses undeclared namespace prefix %q", a.Name.Local, a.Name.Prefix), nil)
				}
				// xsi:type names a type by QName; its prefix must resolve
				// inside the payload too, or it would change meaning (or
				// break) once lifted into our envelope.
				if ans == nsXSI && string(a.Name.Local) == "type" {
					if p, _, found := strings.Cut(string(a.Value), ":"); found {
						if _, ok := lookup(p); !ok {
							return nil, invalid(fmt.Sprintf("xsi:type on %s uses undeclared namespace prefix %q", local, p), nil)
						}
					}
				}
			}
			if len(stack) == 1 {
				start = offset
				root = xml.Name{Space: ns, Local: local}
			}
		case xmltok.EndElement:
			if len(stack) == 0 || !stack[len(stack)-1].Equal(t.Name()) {
				return nil, invalid("mismatched end tag", nil)
			}
			stack = stack[:len(stack)-1]
			scopes = scopes[:len(scopes)-1]
			if len(stack) == 0 {
				end = t.InputOffset()
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

func payloadNames(op Operation) string {
	s := make([]string, len(op.Payloads))
	for i, n := range op.Payloads {
		s[i] = "{" + n.Space + "}" + n.Local
	}
	return strings.Join(s, ", ")
}

// syntaxMessage describes an XML syntax error by position only: Go's
// messages may quote a fragment of the document, and a payload carries
// taxpayer data that must not reach logs.
func syntaxMessage(err error) string {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("not well-formed XML (line %d)", se.Line)
	}
	var te *xmltok.SyntaxError
	if errors.As(err, &te) {
		return fmt.Sprintf("not well-formed XML (line %d)", te.Line)
	}
	return "not well-formed XML"
}

type charsetError struct{ charset string }

func (e *charsetError) Error() string { return fmt.Sprintf("encoding %q is not accepted", e.charset) }
