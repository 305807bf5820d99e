package gatewayclient

import (
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestParseSOAPResponseSamples parses every response sample IR publishes.
func TestParseSOAPResponseSamples(t *testing.T) {
	t.Parallel()
	_, responses := loadSamples(t)
	if len(responses) < 25 {
		t.Fatalf("only %d response samples", len(responses))
	}
	// What a person reading the samples expects of a few of them.
	want := map[string]struct {
		code          int
		class         Class
		gatewayID     string
		submissionKey string
	}{
		"body-gst-returnfile-response.xml":                           {0, ClassOK, "0000 002G M22W 9", "1108852352"},
		"body-ei-returnfile-response.xml":                            {0, ClassOK, "0000 002G N2?N N", "987654321"},
		"body-gst-returnfile-respcode4.xml":                          {4, ClassPermission, "", ""},
		"body-gst-returnfile-schema-error-response.xml":              {21, ClassInvalid, "", ""},
		"body-employment-create-response-error-unauth-delegate.xml":  {4, ClassPermission, "", ""},
		"body-employment-update-response-error-bank-not-omitted.xml": {115, ClassInvalid, "", ""},
		"body-ei-filingobligation-response.xml":                      {106, ClassInvalid, "", ""},
		"body-gst-returnstatus-response.xml":                         {0, ClassOK, "", ""},
	}
	var seen atomic.Int64
	for _, s := range responses {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			ir, err := parseTree(s.data)
			if err != nil {
				t.Fatal(err)
			}
			action := ir.child(NamespaceSOAP12, "Header").child(NamespaceAddressing, "Action").text
			op := opForAction(t, strings.TrimSuffix(action, "Response"))
			res, err := ParseSOAPResponse(op, 200, s.data)
			if err != nil {
				t.Fatalf("ParseSOAPResponse: %v", err)
			}
			if res.Action != action {
				t.Errorf("Action = %q, want %q", res.Action, action)
			}
			irPayload := soapPath(ir, 5)[5]
			wantCode, _ := strconv.Atoi(irPayload.child("*", "statusMessage").child("*", "statusCode").text)
			if res.StatusCode != wantCode {
				t.Errorf("StatusCode = %d, want %d", res.StatusCode, wantCode)
			}
			// Body stands on its own and means what it meant in place.
			body, err := parseTree(res.Body)
			if err != nil {
				t.Fatalf("Body does not parse on its own: %v\n%s", err, res.Body)
			}
			if d := body.diff(irPayload, ""); d != "" {
				t.Errorf("Body differs from the sample's payload: %s", d)
			}
			if w, ok := want[s.name]; ok {
				seen.Add(1)
				if res.StatusCode != w.code || res.GatewayID != w.gatewayID || res.SubmissionKey != w.submissionKey {
					t.Errorf("got code %d gatewayId %q submissionKey %q, want %d %q %q",
						res.StatusCode, res.GatewayID, res.SubmissionKey, w.code, w.gatewayID, w.submissionKey)
				}
				if got := ClassOf(errOrNil(Classify(op, res, nil))); got != w.class {
					t.Errorf("class = %v, want %v", got, w.class)
				}
			}
		})
	}
	t.Cleanup(func() {
		if int(seen.Load()) != len(want) {
			t.Errorf("checked %d of %d named samples", seen.Load(), len(want))
		}
	})
}

// errOrNil avoids the typed-nil trap of a nil *Error in an error.
func errOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

const faultTemplate = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing">
<s:Header><a:Action s:mustUnderstand="1">http://www.w3.org/2005/08/addressing/soap/fault</a:Action></s:Header>
<s:Body><s:Fault><s:Code><s:Value>s:%CODE%</s:Value>%SUB%</s:Code><s:Reason><s:Text xml:lang="en">%REASON%</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>`

func fault(code, sub, reason string) []byte {
	s := strings.ReplaceAll(faultTemplate, "%CODE%", code)
	if sub != "" {
		sub = `<s:Subcode><s:Value xmlns:i="urn:ird">i:` + sub + `</s:Value></s:Subcode>`
	}
	s = strings.ReplaceAll(s, "%SUB%", sub)
	return []byte(strings.ReplaceAll(s, "%REASON%", reason))
}

func TestParseSOAPResponseFaults(t *testing.T) {
	t.Parallel()
	op, _ := LookupOperation(ServiceReturns, "File")
	tests := []struct {
		name     string
		status   int
		body     []byte
		class    Class
		subcode  string
		throttle bool
	}{
		{"UnAuthorised subcode", 500, fault("Sender", "UnAuthorised", "Unauthorised"), ClassRetryLater, "UnAuthorised", true},
		{"UnAuthorised reason", 500, fault("Sender", "", "UnAuthorised"), ClassRetryLater, "", true},
		{"UnAuthorised code", 500, fault("UnAuthorised", "", "x"), ClassRetryLater, "", true},
		{"receiver", 500, fault("Receiver", "InternalError", "boom"), ClassRetryLater, "InternalError", false},
		{"sender", 400, fault("Sender", "ActionNotSupported", "no such action"), ClassInvalid, "ActionNotSupported", false},
		{"version mismatch", 500, fault("VersionMismatch", "", "v"), ClassInvalid, "", false},
		{"fault behind 503", 503, fault("Receiver", "", "x"), ClassUnavailable, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := ParseSOAPResponse(op, tt.status, tt.body)
			if res == nil {
				t.Fatal("no Result")
			}
			var ge *Error
			if !errors.As(err, &ge) || ge.Class != tt.class {
				t.Fatalf("err = %v, want class %v", err, tt.class)
			}
			var f *SOAPFault
			if !errors.As(err, &f) {
				t.Fatalf("no *SOAPFault in %v", err)
			}
			if f.Subcode != tt.subcode {
				t.Errorf("Subcode = %q, want %q", f.Subcode, tt.subcode)
			}
			if got := ThrottleSignal(err); got != tt.throttle {
				t.Errorf("ThrottleSignal = %v, want %v", got, tt.throttle)
			}
		})
	}
}

func TestParseSOAPResponseMalformed(t *testing.T) {
	t.Parallel()
	file, _ := LookupOperation(ServiceReturns, "File")
	_, responses := loadSamples(t)
	var fileResp []byte
	for _, s := range responses {
		if s.name == "body-gst-returnfile-response.xml" {
			fileResp = s.data
		}
	}
	swap := func(old, new string) []byte { return []byte(strings.Replace(string(fileResp), old, new, 1)) }
	tests := []struct {
		name   string
		status int
		body   []byte
		class  Class
	}{
		{"empty", 200, nil, ClassMalformed},
		{"whitespace", 200, []byte(" \n"), ClassMalformed},
		{"HTML page", 200, []byte("<html><head><title>Error</title></head><body><p>proxy error<br></body></html>"), ClassMalformed},
		{"HTML page 502", 502, []byte("<html><body>Bad Gateway</body></html>"), ClassRetryLater},
		{"HTML page 503", 503, []byte("<html><body>down</body></html>"), ClassUnavailable},
		{"HTML page 404", 404, []byte("<html><body>not found</body></html>"), ClassConfig},
		{"HTML page 403", 403, []byte("<html><body>forbidden</body></html>"), ClassAuth},
		{"HTML page 302", 302, []byte("<html><body>moved</body></html>"), ClassConfig},
		{"plain text", 200, []byte("OK"), ClassMalformed},
		{"JSON", 200, []byte(`{"ok":true}`), ClassMalformed},
		{"truncated", 200, fileResp[:len(fileResp)/2], ClassMalformed},
		{"SOAP 1.1", 200, swap("http://www.w3.org/2003/05/soap-envelope", "http://schemas.xmlsoap.org/soap/envelope/"), ClassMalformed},
		{"another operation's answer", 200, []byte(strings.ReplaceAll(string(fileResp), "FileResponse>", "PrepopResponse>")), ClassMalformed},
		{"no statusCode", 200, swap("<statusCode>0</statusCode>", ""), ClassMalformed},
		{"statusCode not a number", 200, swap("<statusCode>0</statusCode>", "<statusCode>zero</statusCode>"), ClassMalformed},
		{"DTD", 200, append([]byte(`<!DOCTYPE x [<!ENTITY a "b">]>`), fileResp...), ClassMalformed},
		{"latin-1", 200, append([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?>`), fileResp...), ClassMalformed},
		{"empty body element", 200, []byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>`), ClassMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := ParseSOAPResponse(file, tt.status, tt.body)
			if res == nil {
				t.Fatal("no Result")
			}
			var ge *Error
			if !errors.As(err, &ge) || ge.Class != tt.class {
				t.Fatalf("err = %v, want class %v", err, tt.class)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("err %v is not ErrMalformed", err)
			}
		})
	}
}

func TestParseRESTResponseSamples(t *testing.T) {
	t.Parallel()
	account, _ := LookupOperation(ServiceAccount, "account")
	tests := []struct {
		file   string
		status int
		class  Class
		code   string
	}{
		{"POST_200_Account_with_GST_account_response.json", 200, ClassOK, ""},
		{"POST_200_Account_with_INC_account_response.json", 200, ClassOK, ""},
		{"POST_200_Account_with_FAM_account_response.json", 200, ClassOK, ""},
		{"POST_200_list_response.json", 200, ClassOK, ""},
		{"POST_400_account_EV1022_response.json", 400, ClassPermission, "EV1022"},
		{"POST_400_account_EV1022_response.json", 403, ClassPermission, "EV1022"},
		{"POST_400_list_EV1100_response.json", 400, ClassInvalid, "EV1100"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+strconv.Itoa(tt.status), func(t *testing.T) {
			t.Parallel()
			body := rawSamples(t, "rest-account/samples/"+tt.file)[0]
			res, err := ParseRESTResponse(tt.status, body)
			if err != nil {
				t.Fatalf("ParseRESTResponse: %v", err)
			}
			if string(res.Body) != string(body) {
				t.Error("Body is not the JSON body")
			}
			e := Classify(account, res, nil)
			if got := ClassOf(errOrNil(e)); got != tt.class {
				t.Fatalf("class = %v, want %v", got, tt.class)
			}
			if e != nil && e.Code != tt.code {
				t.Errorf("Code = %q, want %q", e.Code, tt.code)
			}
		})
	}
}

func TestParseRESTResponseOther(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		class  Class
	}{
		{"401 unknown code", 401, `{"errors":[{"code":"EV9999","type":"security","message":"no"}]}`, ClassAuth},
		{"403 no body code", 403, `{"errors":[]}`, ClassAuth},
		{"400 unknown code", 400, `{"errors":[{"code":"EV1234"}]}`, ClassInvalid},
		{"404", 404, `{"errors":[{"code":"EV0404"}]}`, ClassInvalid},
		{"429", 429, `{"errors":[]}`, ClassThrottled},
		{"500", 500, `{"errors":[{"code":"EV5000"}]}`, ClassRetryLater},
		{"503 HTML", 503, `<html>down</html>`, ClassUnavailable},
		{"200 HTML", 200, `<html>hi</html>`, ClassMalformed},
		{"400 HTML", 400, `<html>bad</html>`, ClassInvalid},
		{"200 empty", 200, ``, ClassOK},
		{"400 empty", 400, ``, ClassInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := ParseRESTResponse(tt.status, []byte(tt.body))
			if res == nil {
				t.Fatal("no Result")
			}
			if err == nil {
				err = errOrNil(Classify(Operation{Service: ServiceAccount, Name: "account"}, res, nil))
			}
			if got := ClassOf(err); got != tt.class {
				t.Fatalf("class = %v (%v), want %v", got, err, tt.class)
			}
		})
	}
}

func FuzzParseSOAPResponse(f *testing.F) {
	for _, b := range rawSamples(f, "*/samples/*.xml") {
		f.Add(200, b)
	}
	f.Add(500, fault("Sender", "UnAuthorised", "x"))
	f.Add(502, []byte("<html>bad gateway</html>"))
	ops := []Operation{}
	for _, s := range []Service{ServiceReturns, ServiceEmployment, ServiceIntermediation} {
		for _, n := range Operations(s) {
			op, _ := LookupOperation(s, n)
			ops = append(ops, op)
		}
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		for _, op := range ops {
			res, err := ParseSOAPResponse(op, status, body)
			if res == nil {
				t.Fatal("nil Result")
			}
			if err != nil {
				var ge *Error
				if !errors.As(err, &ge) {
					t.Fatalf("unclassified error %v", err)
				}
				continue
			}
			if _, err := parseTree(res.Body); err != nil {
				t.Fatalf("accepted answer's Body does not parse: %v", err)
			}
			_ = Classify(op, res, nil)
		}
	})
}

func FuzzParseRESTResponse(f *testing.F) {
	for _, b := range rawSamples(f, "rest-account/samples/*_response.json") {
		f.Add(200, b)
		f.Add(400, b)
	}
	f.Add(503, []byte("<html></html>"))
	f.Add(403, []byte(`{"errors":null}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		res, err := ParseRESTResponse(status, body)
		if res == nil {
			t.Fatal("nil Result")
		}
		if err != nil {
			var ge *Error
			if !errors.As(err, &ge) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		_ = Classify(Operation{Service: ServiceAccount, Name: "account"}, res, nil)
	})
}
