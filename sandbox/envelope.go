package sandbox

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// errMalformed marks a request the sandbox cannot read as a SOAP 1.2
// envelope of IR's shape; it is answered with a SOAP Fault (s:Sender).
var errMalformed = errors.New("malformed SOAP envelope")

// errVersionMismatch marks an envelope in a namespace other than SOAP 1.2's
// (answered with s:VersionMismatch).
var errVersionMismatch = errors.New("not a SOAP 1.2 envelope")

// maxXMLDepth bounds nesting so a hostile document can't exhaust the stack
// of the recursive walkers that read payloads.
const maxXMLDepth = 256

// envelope is what the sandbox reads from a request envelope: the
// WS-Addressing Action, the names of the Body's nesting, and the payload as a
// standalone document.
type envelope struct {
	Action    string
	Operation xml.Name // Body's child: {Op}
	Msg       xml.Name // {Op}'s child: e.g. ReturnFileRequestMsg
	Wrapper   xml.Name // Msg's child: e.g. FileRequestWrapper
	Payload   xml.Name // Wrapper's child: e.g. fileRequest
	// PayloadDoc is the payload element as a document of its own: the bytes
	// as received, with the namespace declarations of its ancestors copied
	// onto its start tag and padded with newlines and spaces so that line and
	// column numbers in validation messages are those of the whole envelope,
	// as in IR's own "XML Request Failed Validation" answers.
	PayloadDoc []byte
}

// nsDecl is one xmlns declaration in scope.
type nsDecl struct{ prefix, uri string } // prefix "" is the default namespace

// frame is an open element: its name and the declarations it made.
type frame struct {
	name  xml.Name
	decls []nsDecl
}

// parseEnvelope reads a SOAP 1.2 envelope. It is strict about structure —
// exactly one Action, one element at each level of the Body's nesting, no
// text between elements, no DTD — because IR's gateway is, and a lenient
// emulator would hide a client bug.
func parseEnvelope(data []byte) (*envelope, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	env := &envelope{}

	var stack []frame
	var (
		sawEnvelope, sawBody, sawAction bool
		actionText                      strings.Builder
		inAction                        bool
		payloadStart, payloadTagEnd     int64
		payloadDepth                    = -1
		childCount                      = map[int]int{} // depth -> element children seen (Body levels)
	)
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth := len(stack) // depth of this element: 0 = root
			if depth >= maxXMLDepth {
				return nil, fmt.Errorf("%w: nesting deeper than %d", errMalformed, maxXMLDepth)
			}
			stack = append(stack, frame{name: t.Name, decls: declsOf(t.Attr)})
			switch {
			case depth == 0:
				if sawEnvelope {
					return nil, fmt.Errorf("%w: more than one root element", errMalformed)
				}
				sawEnvelope = true
				if t.Name.Local != "Envelope" {
					return nil, fmt.Errorf("%w: root element is %s, not Envelope", errMalformed, t.Name.Local)
				}
				if t.Name.Space != nsSOAP12 {
					return nil, fmt.Errorf("%w: envelope namespace %q", errVersionMismatch, t.Name.Space)
				}
			case depth == 1:
				switch {
				case t.Name == n(nsSOAP12, "Header") && !sawBody:
				case t.Name == n(nsSOAP12, "Body") && !sawBody:
					sawBody = true
				default:
					return nil, fmt.Errorf("%w: unexpected element %s in Envelope", errMalformed, t.Name.Local)
				}
			case depth == 2 && stack[1].name.Local == "Header":
				if t.Name == n(nsWSA, "Action") {
					if sawAction {
						return nil, fmt.Errorf("%w: more than one wsa:Action", errMalformed)
					}
					sawAction, inAction = true, true
				}
			case depth >= 2 && depth <= 5 && stack[1].name.Local == "Body":
				childCount[depth]++
				if childCount[depth] > 1 {
					return nil, fmt.Errorf("%w: more than one element at depth %d of the Body", errMalformed, depth-1)
				}
				switch depth {
				case 2:
					env.Operation = t.Name
				case 3:
					env.Msg = t.Name
				case 4:
					env.Wrapper = t.Name
				case 5:
					env.Payload = t.Name
					payloadStart = before
					payloadTagEnd = dec.InputOffset()
					payloadDepth = depth
				}
			}
		case xml.EndElement:
			depth := len(stack) - 1
			if inAction && depth == 2 {
				inAction = false
			}
			if depth == payloadDepth {
				doc, err := standalone(data, payloadStart, payloadTagEnd, dec.InputOffset(), stack)
				if err != nil {
					return nil, err
				}
				env.PayloadDoc = doc
				payloadDepth = -1
			}
			stack = stack[:depth]
		case xml.CharData:
			if inAction {
				actionText.Write(t)
				continue
			}
			// Text is only allowed below the payload (and in Header blocks
			// the sandbox ignores); between the Body's nesting levels it
			// means the client built the envelope wrong.
			if len(stack) >= 2 && len(stack) <= 5 && stack[1].name.Local == "Body" && len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("%w: text in the Body outside the payload", errMalformed)
			}
			if len(stack) <= 1 && len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("%w: text outside the Header and Body", errMalformed)
			}
		case xml.Directive:
			return nil, fmt.Errorf("%w: DTDs are not allowed", errMalformed)
		}
	}
	switch {
	case !sawEnvelope:
		return nil, fmt.Errorf("%w: no Envelope", errMalformed)
	case !sawBody:
		return nil, fmt.Errorf("%w: no Body", errMalformed)
	case !sawAction:
		return nil, fmt.Errorf("%w: no wsa:Action header", errMalformed)
	case env.Operation.Local == "":
		return nil, fmt.Errorf("%w: empty Body", errMalformed)
	case env.Msg.Local == "":
		return nil, fmt.Errorf("%w: no request message in %s", errMalformed, env.Operation.Local)
	case env.Wrapper.Local == "":
		return nil, fmt.Errorf("%w: no request wrapper in %s", errMalformed, env.Msg.Local)
	case env.PayloadDoc == nil:
		return nil, fmt.Errorf("%w: no payload in %s", errMalformed, env.Wrapper.Local)
	}
	env.Action = strings.TrimSpace(actionText.String())
	return env, nil
}

// declsOf returns the namespace declarations among attrs. encoding/xml
// reports xmlns:p="u" as {Space: "xmlns", Local: "p"} and xmlns="u" as
// {Local: "xmlns"}.
func declsOf(attrs []xml.Attr) []nsDecl {
	var out []nsDecl
	for _, a := range attrs {
		switch {
		case a.Name.Space == "xmlns":
			out = append(out, nsDecl{prefix: a.Name.Local, uri: a.Value})
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			out = append(out, nsDecl{prefix: "", uri: a.Value})
		}
	}
	return out
}

// standalone cuts the payload element data[start:end] out of the envelope
// and makes it a document of its own: the declarations in scope from its
// ancestors (the innermost wins) that the element does not make itself are
// added to its start tag, which ends at tagEnd.
func standalone(data []byte, start, tagEnd, end int64, stack []frame) ([]byte, error) {
	if start < 0 || tagEnd <= start || end < tagEnd || end > int64(len(data)) {
		return nil, fmt.Errorf("%w: payload offsets out of range", errMalformed)
	}
	own := map[string]bool{}
	for _, d := range stack[len(stack)-1].decls {
		own[d.prefix] = true
	}
	inScope := map[string]string{}
	for _, f := range stack[:len(stack)-1] {
		for _, d := range f.decls {
			inScope[d.prefix] = d.uri
		}
	}
	prefixes := make([]string, 0, len(inScope))
	for p := range inScope {
		if !own[p] {
			prefixes = append(prefixes, p)
		}
	}
	sort.Strings(prefixes)
	var extra strings.Builder
	for _, p := range prefixes {
		extra.WriteByte(' ')
		if p == "" {
			extra.WriteString("xmlns")
		} else {
			extra.WriteString("xmlns:" + p)
		}
		extra.WriteString(`="`)
		_ = xml.EscapeText(&extra, []byte(inScope[p]))
		extra.WriteByte('"')
	}

	// Where the start tag's ">" (or "/>") is, so the declarations go before it.
	insertAt := tagEnd - 1
	if insertAt-1 >= start && data[insertAt-1] == '/' {
		insertAt--
	}
	if data[tagEnd-1] != '>' {
		return nil, fmt.Errorf("%w: payload start tag not where expected", errMalformed)
	}

	line := 1 + bytes.Count(data[:start], []byte("\n"))
	col := int(start) - (bytes.LastIndexByte(data[:start], '\n') + 1)
	var out bytes.Buffer
	out.Grow(int(end-start) + extra.Len() + line + col)
	out.Write(bytes.Repeat([]byte("\n"), line-1))
	out.Write(bytes.Repeat([]byte(" "), col))
	out.Write(data[start:insertAt])
	out.WriteString(extra.String())
	out.Write(data[insertAt:end])
	return out.Bytes(), nil
}
