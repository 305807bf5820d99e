package sandbox

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

const (
	soapContentType = "application/soap+xml; charset=utf-8"

	msgTokenMissing = "Authentication token missing"
	msgAuthFailed   = "Authentication failure: the access token is invalid or has expired"
	msgJWTRefused   = "Authentication failure: this service needs an OAuth access token (Bearer); M2M JWTs are not accepted for returns, employment or intermediation"
	msgUnknownElem  = "XML Request Failed Validation: element %s in namespace %q is not allowed in %s"
)

// soapCtx is one SOAP call being answered.
type soapCtx struct {
	op  *operation
	env *envelope
	// ver is the schema generation of the payload: 1 for GST v1 payloads
	// (ReturnCommon.v1, Common.v1), 2 for everything else.
	ver int
}

// innerName is the element inside the response wrapper for this operation
// (fileResponse, employmentResponse, linkResponse...), its namespace and the
// namespace of its statusMessage — all as IR's samples have them.
func (sc *soapCtx) inner() (local, ns, commonNS string) {
	switch sc.op.svc {
	case svcReturns:
		ns, commonNS = nsRetComV2, nsCommonV2
		if sc.ver == 1 {
			ns, commonNS = nsRetComV1, nsCommonV1
		}
		switch sc.op.name {
		case "RetrieveFilingObligations":
			return "retrieveFilingObligationsResponse", ns, commonNS
		default:
			return lowerFirst(sc.op.name) + "Response", ns, commonNS
		}
	case svcEmployment:
		switch sc.op.name {
		case "RetrieveList":
			return "retrieveListResponse", nsEmployment, nsCommonV2
		case "Event":
			return "eventResponse", nsEmployment, nsCommonV2
		default:
			return "employmentResponse", nsEmployment, nsCommonV2
		}
	default:
		return lowerFirst(sc.op.name) + "Response", nsIntermed, nsCommonV2
	}
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// payloadVersion tells GST v1 payloads from the v2 generation by namespace.
func payloadVersion(payload xml.Name) int {
	switch payload.Space {
	case nsReturnGST, nsRetComV1:
		return 1
	}
	return 2
}

// serveSOAP serves one SOAP service's path.
func (s *Sandbox) serveSOAP(svc *service) gatewayHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) {
		if r.Method != http.MethodPost {
			// An outage or a fault strikes before any of the service's own
			// checks; the throttle counts only calls it would serve.
			if !s.intercept(w, r, c) {
				return
			}
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "SOAP endpoints take POST", http.StatusMethodNotAllowed)
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/soap+xml" {
			if !s.intercept(w, r, c) {
				return
			}
			http.Error(w, "Content-Type must be application/soap+xml (SOAP 1.2)", http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "reading request body failed", http.StatusBadRequest)
			return
		}
		env, perr := parseEnvelope(body)
		var o *operation
		if perr == nil {
			if name, ok := strings.CutPrefix(env.Action, svc.actionPrefix); ok {
				o = operations[svc][name]
			}
			if o != nil {
				c.rec.label = o.label()
			}
		}
		// The throttle comes after reading the request only so the call is
		// counted under its operation; nothing has been decided yet.
		if !s.admit(w, r, c) {
			return
		}
		if perr != nil {
			code := "s:Sender"
			if errors.Is(perr, errVersionMismatch) {
				code = "s:VersionMismatch"
			}
			s.fault(w, c, code, perr.Error())
			return
		}
		if o == nil {
			s.fault(w, c, "s:Sender", fmt.Sprintf("The action %q is not supported by the %s endpoint", env.Action, svc.name))
			return
		}
		if err := checkNesting(o, env); err != nil {
			s.fault(w, c, "s:Sender", err.Error())
			return
		}
		sc := &soapCtx{op: o, env: env, ver: payloadVersion(env.Payload)}
		if !payloadAllowed(o, env.Payload) {
			s.status(w, c, sc, StatusValidationFailed,
				fmt.Sprintf(msgUnknownElem, env.Payload.Local, env.Payload.Space, o.wrapper), "")
			return
		}
		user, code, msg := s.authSOAP(r)
		if code != StatusOK {
			c.rec.authFail = true
			s.status(w, c, sc, code, msg, "")
			return
		}
		if err := s.validate(env.PayloadDoc); err != nil {
			s.status(w, c, sc, StatusValidationFailed, validationMessage(err), "")
			return
		}
		f, err := scanPayload(env.PayloadDoc)
		if err != nil {
			s.fault(w, c, "s:Sender", err.Error())
			return
		}
		if !s.deleg.allowed(user, f.Identifier, f.AccountType) {
			s.status(w, c, sc, StatusUnauthorisedDelegate, msgUnauthorisedDelegation, "")
			return
		}
		switch svc {
		case svcReturns:
			s.serveReturns(w, c, sc, f)
		default:
			s.serveCanned(w, c, sc)
		}
	}
}

// checkNesting compares the Body's nesting with the operation's WSDL names.
func checkNesting(o *operation, env *envelope) error {
	want := []struct {
		what      string
		got, want xml.Name
	}{
		{"operation element", env.Operation, n(o.svc.ns, o.name)},
		{"request message", env.Msg, n(o.svc.ns, o.msg)},
		{"request wrapper", env.Wrapper, n(o.wrapperNS, o.wrapper)},
	}
	for _, w := range want {
		if w.got != w.want {
			return fmt.Errorf("the Action %s needs %s {%s}%s, the Body has {%s}%s",
				o.action(), w.what, w.want.Space, w.want.Local, w.got.Space, w.got.Local)
		}
	}
	return nil
}

func payloadAllowed(o *operation, name xml.Name) bool {
	for _, p := range o.payloads {
		if p == name {
			return true
		}
	}
	return false
}

// authSOAP checks the OAuth bearer token. It returns the myIR user, or
// statusCode 2 (no token) or 1 (anything else, including an M2M JWT: the
// SOAP services take OAuth only).
func (s *Sandbox) authSOAP(r *http.Request) (user string, code int, msg string) {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if h == "" {
		return "", StatusTokenMissing, msgTokenMissing
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if strings.EqualFold(scheme, "Bearer") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			return "", StatusTokenMissing, msgTokenMissing
		}
		if u, ok := s.tokens.lookup(tok, s.now()); ok {
			return u, StatusOK, ""
		}
		if looksLikeJWT(tok) {
			return "", StatusAuthFailed, msgJWTRefused
		}
		return "", StatusAuthFailed, msgAuthFailed
	}
	if looksLikeJWT(h) {
		return "", StatusAuthFailed, msgJWTRefused
	}
	return "", StatusAuthFailed, msgAuthFailed
}

// status answers in IR's response shape with a statusCode, an errorMessage
// and optionally a body after the statusMessage (raw XML, already escaped).
func (s *Sandbox) status(w http.ResponseWriter, c *call, sc *soapCtx, code int, msg, body string) {
	local, ns, commonNS := sc.inner()
	s.writeSOAP(w, c, code, renderResponse(sc.op, local, ns, commonNS, code, msg, body))
}

func (s *Sandbox) writeSOAP(w http.ResponseWriter, c *call, code int, doc []byte) {
	c.rec.statusCode = code
	if code == StatusDuplicateReturn || code == StatusDuplicatePayload {
		c.rec.dupAttempt = true
	}
	w.Header().Set("Content-Type", soapContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
}

// renderResponse builds IR's response envelope, structured exactly as the
// samples: {Op}Response > {Op}Result > d4p1:{RespWrapper} > inner >
// statusMessage (Common namespace) + body.
func renderResponse(o *operation, inner, innerNS, commonNS string, code int, msg, body string) []byte {
	var b bytes.Buffer
	b.WriteString(`<s:Envelope xmlns:s="` + nsSOAP12 + `">` + "\n")
	b.WriteString(`    <s:Header>` + "\n")
	b.WriteString(`        <Action xmlns="` + nsWSA + `" s:mustUnderstand="1">` + esc(o.responseAction()) + `</Action>` + "\n")
	b.WriteString(`    </s:Header>` + "\n")
	b.WriteString(`    <s:Body>` + "\n")
	b.WriteString(`        <` + o.name + `Response xmlns="` + esc(o.svc.ns) + `">` + "\n")
	b.WriteString(`            <` + o.name + `Result>` + "\n")
	b.WriteString(`                <d4p1:` + o.respWrapper + ` xmlns:d4p1="` + esc(o.respWrapperNS) + `">` + "\n")
	b.WriteString(`                    <` + inner + ` xmlns="` + esc(innerNS) + `">` + "\n")
	b.WriteString(`                        <statusMessage xmlns="` + esc(commonNS) + `">` + "\n")
	b.WriteString(`                            <statusCode>` + strconv.Itoa(code) + `</statusCode>` + "\n")
	if msg == "" {
		b.WriteString(`                            <errorMessage/>` + "\n")
	} else {
		b.WriteString(`                            <errorMessage>` + esc(msg) + `</errorMessage>` + "\n")
	}
	b.WriteString(`                        </statusMessage>` + "\n")
	if body != "" {
		b.WriteString(body)
		b.WriteString("\n")
	}
	b.WriteString(`                    </` + inner + `>` + "\n")
	b.WriteString(`                </d4p1:` + o.respWrapper + `>` + "\n")
	b.WriteString(`            </` + o.name + `Result>` + "\n")
	b.WriteString(`        </` + o.name + `Response>` + "\n")
	b.WriteString(`    </s:Body>` + "\n")
	b.WriteString(`</s:Envelope>`)
	return b.Bytes()
}

// fault answers a SOAP 1.2 Fault, HTTP 500, as IR's WCF stack does for an
// envelope it cannot dispatch.
func (s *Sandbox) fault(w http.ResponseWriter, c *call, code, reason string) {
	c.rec.fault = true
	var b bytes.Buffer
	b.WriteString(`<s:Envelope xmlns:s="` + nsSOAP12 + `" xmlns:a="` + nsWSA + `">`)
	b.WriteString(`<s:Header><a:Action s:mustUnderstand="1">http://www.w3.org/2005/08/addressing/soap/fault</a:Action></s:Header>`)
	b.WriteString(`<s:Body><s:Fault><s:Code><s:Value>` + esc(code) + `</s:Value></s:Code>`)
	b.WriteString(`<s:Reason><s:Text xml:lang="en">` + esc(reason) + `</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>`)
	w.Header().Set("Content-Type", soapContentType)
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(b.Bytes())
}

// esc escapes s for XML text and attribute values.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
