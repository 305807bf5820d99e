package gatewayclient

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// ErrMalformed is in the chain of every error about an answer that could
// not be understood: empty, truncated, not XML or JSON (an HTML page from a
// proxy), not a SOAP 1.2 envelope, or missing its statusCode.
var ErrMalformed = errors.New("malformed gateway response")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// FaultUnAuthorised is the fault code (or reason) IR's gateway answers with
// when it refuses a call before it reaches the service — in practice, when
// it throttles a heavy user — so it is treated as transient, and as a signal
// to slow down (see ThrottleSignal), not as an authorisation failure.
const FaultUnAuthorised = "UnAuthorised"

// SOAPFault is a SOAP 1.2 <Fault>. Code and Subcode are the local parts of
// the fault's QNames (e.g. "Sender", "UnAuthorised"); Reason is the first
// <Reason><Text>.
type SOAPFault struct {
	Code    string
	Subcode string
	Reason  string
}

func (f *SOAPFault) Error() string {
	s := "SOAP fault " + f.Code
	if f.Subcode != "" {
		s += "/" + f.Subcode
	}
	if f.Reason != "" {
		s += ": " + f.Reason
	}
	return s
}

// UnAuthorised reports whether f is IR's "UnAuthorised" fault, in the code,
// the subcode or the reason.
func (f *SOAPFault) UnAuthorised() bool {
	return strings.EqualFold(f.Code, FaultUnAuthorised) ||
		strings.EqualFold(f.Subcode, FaultUnAuthorised) ||
		strings.EqualFold(strings.TrimSpace(f.Reason), FaultUnAuthorised)
}

// ParseSOAPResponse parses a SOAP 1.2 answer to op. It returns a Result
// whenever the body is a well-formed answer, whatever its statusCode, and
// leaves classification of that code to Classify. A SOAP fault comes back as
// a classified *Error wrapping a *SOAPFault; a body that cannot be understood
// as a *Error of ClassMalformed (unless the HTTP status says more, e.g. 503).
// It never panics, whatever the input.
func ParseSOAPResponse(op Operation, httpStatus int, body []byte) (*Result, error) {
	res, err := parseSOAP(op, httpStatus, body)
	if err != nil {
		return res, Classify(op, res, err)
	}
	return res, nil
}

// ParseRESTResponse parses a REST API answer: a 2xx JSON body, or an error
// list {"errors":[{"code":"EV1022",...}]}. Like ParseSOAPResponse it returns
// the Result and only reports an error for bodies it cannot understand.
func ParseRESTResponse(httpStatus int, body []byte) (*Result, error) {
	res, err := parseREST(httpStatus, body)
	if err != nil {
		return res, Classify(Operation{Service: ServiceAccount}, res, err)
	}
	return res, nil
}

func parseREST(httpStatus int, body []byte) (*Result, error) {
	res := &Result{HTTPStatus: httpStatus, StatusCode: 0}
	trimmed := bytes.TrimSpace(body)
	if httpStatus >= 200 && httpStatus < 300 {
		if len(trimmed) != 0 && !json.Valid(trimmed) {
			return res, malformed("HTTP %d body is not JSON", httpStatus)
		}
		res.Body = body
		return res, nil
	}
	res.Body = body
	if len(trimmed) == 0 {
		return res, malformed("HTTP %d with an empty body", httpStatus)
	}
	var e struct {
		Errors []RESTError `json:"errors"`
	}
	if err := json.Unmarshal(trimmed, &e); err != nil {
		return res, malformed("HTTP %d body is not a JSON error list", httpStatus)
	}
	res.RESTErrors = e.Errors
	if len(e.Errors) > 0 {
		res.ErrorMessage = e.Errors[0].Message
	}
	return res, nil
}

// commonNamespacePrefix is the start of the namespaces of IR's
// <statusMessage> (Common.v1, Common.v2...).
const commonNamespacePrefix = "urn:www.ird.govt.nz/GWS:types/Common."

type faultXML struct {
	Code struct {
		Value   string      `xml:"Value"`
		Subcode *subcodeXML `xml:"Subcode"`
	} `xml:"Code"`
	Reason struct {
		Text []string `xml:"Text"`
	} `xml:"Reason"`
}

type subcodeXML struct {
	Value   string      `xml:"Value"`
	Subcode *subcodeXML `xml:"Subcode"`
}

// localPart strips a QName's prefix.
func localPart(qname string) string {
	qname = strings.TrimSpace(qname)
	if i := strings.LastIndexByte(qname, ':'); i >= 0 {
		return qname[i+1:]
	}
	return qname
}

// shortName clips a name from outside input before it goes into an error.
func shortName(n xml.Name) string {
	s := n.Local
	if n.Space != "" {
		s = "{" + n.Space + "}" + s
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return strconv.Quote(s)
}

func parseSOAP(op Operation, httpStatus int, body []byte) (*Result, error) {
	res := &Result{HTTPStatus: httpStatus}
	if len(bytes.TrimSpace(body)) == 0 {
		return res, malformed("HTTP %d with an empty body", httpStatus)
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	d.CharsetReader = func(charset string, _ io.Reader) (io.Reader, error) {
		return nil, &charsetError{charset: charset}
	}

	// Expected names by depth (1 = Envelope). The response element, the
	// result and the wrapper are checked so an answer to another operation
	// is never taken for ours.
	want := map[int]xml.Name{
		3: {Space: op.Namespace, Local: op.ResponseElement},
		4: {Space: op.Namespace, Local: op.ResultElement},
		5: {Space: op.ResponseWrapperNamespace, Local: op.ResponseWrapperElement},
	}
	var (
		stack        []xml.Name
		scopes       []map[string]string // namespace declarations per open element
		inHeader     bool
		inBody       bool
		actionDepth  = -1
		action       strings.Builder
		payloadStart = -1
		payloadNS    string
		payloadDecls map[string]string // ancestors' declarations in scope at the payload root
		payloadOwn   map[string]bool
		statusDepth  = -1             // depth of the chosen <statusMessage>
		curStatus    = -1             // depth of the <statusMessage> being read
		leaf         *strings.Builder // text of the leaf being read
		leafName     string
		haveCode     bool
		codeText     string
		msgText      string
		curCodeText  string
		curMsgText   string
		gatewayID    *string
		submission   *string
	)
	for {
		offset := int(d.InputOffset())
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(stack) == 0 && payloadStart < 0 {
					return res, malformed("no SOAP envelope")
				}
				return res, malformed("truncated body")
			}
			var ce *charsetError
			if errors.As(err, &ce) {
				return res, malformed("body declares encoding %q", ce.charset)
			}
			return res, malformed("HTTP %d body is not well-formed XML (%s)", httpStatus, syntaxMessage(err))
		}
		switch t := tok.(type) {
		case xml.Directive:
			return res, malformed("body carries a DTD or directive")
		case xml.StartElement:
			depth := len(stack) + 1
			scope := map[string]string{}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					scope[""] = a.Value
				case a.Name.Space == "xmlns":
					scope[a.Name.Local] = a.Value
				}
			}
			stack = append(stack, t.Name)
			scopes = append(scopes, scope)
			switch {
			case depth == 1:
				if t.Name.Local != "Envelope" || t.Name.Space != NamespaceSOAP12 {
					return res, malformed("root element is %s, not a SOAP 1.2 Envelope", shortName(t.Name))
				}
			case depth == 2:
				inHeader = t.Name.Space == NamespaceSOAP12 && t.Name.Local == "Header"
				inBody = t.Name.Space == NamespaceSOAP12 && t.Name.Local == "Body"
			case depth == 3 && inHeader:
				if t.Name.Space == NamespaceAddressing && t.Name.Local == "Action" && actionDepth < 0 {
					actionDepth = depth
				}
			case depth == 3 && inBody:
				if t.Name.Space == NamespaceSOAP12 && t.Name.Local == "Fault" {
					var f faultXML
					if err := d.DecodeElement(&f, &t); err != nil {
						return res, malformed("unreadable SOAP fault (%s)", syntaxMessage(err))
					}
					res.Action = strings.TrimSpace(action.String())
					fault := &SOAPFault{Code: localPart(f.Code.Value)}
					if sc := f.Code.Subcode; sc != nil {
						// The innermost subcode is the most specific.
						for sc.Subcode != nil {
							sc = sc.Subcode
						}
						fault.Subcode = localPart(sc.Value)
					}
					if len(f.Reason.Text) > 0 {
						fault.Reason = strings.TrimSpace(f.Reason.Text[0])
					}
					return res, fault
				}
				if t.Name != want[3] {
					return res, malformed("body holds %s, want %s", shortName(t.Name), shortName(want[3]))
				}
			case (depth == 4 || depth == 5) && inBody:
				if t.Name != want[depth] {
					return res, malformed("found %s, want %s", shortName(t.Name), shortName(want[depth]))
				}
			case depth == 6 && inBody:
				if payloadStart >= 0 {
					return res, malformed("response wrapper holds more than one element")
				}
				payloadStart = offset
				payloadNS = t.Name.Space
				payloadOwn = map[string]bool{}
				for p := range scope {
					payloadOwn[p] = true
				}
				payloadDecls = map[string]string{}
				for _, s := range scopes[:len(scopes)-1] {
					for p, ns := range s {
						payloadDecls[p] = ns
					}
				}
			case depth > 6 && inBody:
				switch {
				case t.Name.Local == "statusMessage" && strings.HasPrefix(t.Name.Space, commonNamespacePrefix):
					curStatus = depth
					curCodeText, curMsgText = "", ""
				case curStatus > 0 && depth == curStatus+1 && (t.Name.Local == "statusCode" || t.Name.Local == "errorMessage"):
					leaf, leafName = &strings.Builder{}, t.Name.Local
				case op.ReconcileOnLoss && t.Name.Space == payloadNS && t.Name.Local == "gatewayId" && gatewayID == nil:
					leaf, leafName = &strings.Builder{}, "gatewayId"
				case op.ReconcileOnLoss && t.Name.Space == payloadNS && t.Name.Local == "submissionKey" && submission == nil:
					leaf, leafName = &strings.Builder{}, "submissionKey"
				}
			}
		case xml.CharData:
			switch {
			case actionDepth > 0 && len(stack) == actionDepth:
				action.Write(t)
			case leaf != nil:
				leaf.Write(t)
			}
		case xml.EndElement:
			depth := len(stack)
			if leaf != nil {
				v := leaf.String()
				switch leafName {
				case "statusCode":
					curCodeText = v
				case "errorMessage":
					curMsgText = v
				case "gatewayId":
					s := strings.TrimSpace(v)
					gatewayID = &s
				case "submissionKey":
					s := strings.TrimSpace(v)
					submission = &s
				}
				leaf = nil
			}
			if depth == curStatus {
				// Prefer the shallowest <statusMessage>: nested ones
				// describe parts of the answer (e.g. one client of a list).
				if curCodeText != "" && (statusDepth < 0 || depth < statusDepth) {
					statusDepth, codeText, msgText, haveCode = depth, curCodeText, curMsgText, true
				}
				curStatus = -1
			}
			if depth == actionDepth {
				actionDepth = -2 // only the first Action counts
			}
			if depth == 6 && inBody && payloadStart >= 0 {
				raw := body[payloadStart:int(d.InputOffset())]
				res.Body = selfContained(raw, payloadDecls, payloadOwn)
			}
			if depth == 2 {
				inHeader, inBody = false, false
			}
			stack = stack[:len(stack)-1]
			scopes = scopes[:len(scopes)-1]
			if len(stack) == 0 {
				goto done
			}
		}
	}
done:
	res.Action = strings.TrimSpace(action.String())
	if res.Body == nil {
		return res, malformed("no %s payload in the answer", op.ResponseWrapperElement)
	}
	if !haveCode {
		return res, malformed("answer carries no statusMessage/statusCode")
	}
	code, err := strconv.Atoi(strings.TrimSpace(codeText))
	if err != nil {
		return res, malformed("statusCode is not an integer")
	}
	res.StatusCode = code
	res.ErrorMessage = strings.TrimSpace(msgText)
	if gatewayID != nil {
		res.GatewayID = *gatewayID
	}
	if submission != nil {
		res.SubmissionKey = *submission
	}
	return res, nil
}

// selfContained returns raw, the bytes of one element lifted out of a larger
// document, with the namespace declarations it inherited from its ancestors
// and uses added to its start tag, so it parses on its own.
func selfContained(raw []byte, inherited map[string]string, own map[string]bool) []byte {
	used := usedPrefixes(raw)
	var add []string
	for p := range used {
		if own[p] {
			continue
		}
		if ns, ok := inherited[p]; ok {
			add = append(add, p+"\x00"+ns)
		}
	}
	if len(add) == 0 {
		return bytes.Clone(raw)
	}
	sort.Strings(add)
	// The start tag's name ends at the first space, '/' or '>'.
	i := bytes.IndexAny(raw, " \t\r\n/>")
	if i < 0 {
		return bytes.Clone(raw)
	}
	var b bytes.Buffer
	b.Grow(len(raw) + 64*len(add))
	b.Write(raw[:i])
	for _, a := range add {
		p, ns, _ := strings.Cut(a, "\x00")
		if p == "" {
			b.WriteString(` xmlns="`)
		} else {
			b.WriteString(` xmlns:` + p + `="`)
		}
		_ = xml.EscapeText(&b, []byte(ns))
		b.WriteByte('"')
	}
	b.Write(raw[i:])
	return b.Bytes()
}

// usedPrefixes returns the namespace prefixes ("" for the default namespace)
// that raw's element names, attribute names and xsi:type values use without
// declaring them on the way.
func usedPrefixes(raw []byte) map[string]bool {
	used := map[string]bool{}
	d := xml.NewDecoder(bytes.NewReader(raw))
	var scopes []map[string]bool
	declared := func(p string) bool {
		for i := len(scopes) - 1; i >= 0; i-- {
			if scopes[i][p] {
				return true
			}
		}
		return false
	}
	for {
		tok, err := d.RawToken()
		if err != nil {
			return used
		}
		switch t := tok.(type) {
		case xml.StartElement:
			scope := map[string]bool{}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					scope[""] = true
				case a.Name.Space == "xmlns":
					scope[a.Name.Local] = true
				}
			}
			scopes = append(scopes, scope)
			if p := t.Name.Space; p != "xml" && !declared(p) {
				used[p] = true
			}
			for _, a := range t.Attr {
				if p := a.Name.Space; p != "" && p != "xmlns" && p != "xml" && !declared(p) {
					used[p] = true
				}
				if a.Name.Local == "type" && a.Name.Space != "" {
					if p, _, ok := strings.Cut(a.Value, ":"); ok && !declared(p) {
						used[p] = true
					}
				}
			}
		case xml.EndElement:
			if len(scopes) > 0 {
				scopes = scopes[:len(scopes)-1]
			}
		}
	}
}
