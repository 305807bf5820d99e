package gatewayclient

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestBuildEnvelopeMatchesIRSamples builds our envelope around the payload
// of every request sample IR publishes and compares the two by meaning:
// Action, every nesting element's name and namespace, and the payload.
func TestBuildEnvelopeMatchesIRSamples(t *testing.T) {
	t.Parallel()
	requests, _ := loadSamples(t)
	if len(requests) < 20 {
		t.Fatalf("only %d request samples", len(requests))
	}
	for _, s := range requests {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			ir, err := parseTree(s.data)
			if err != nil {
				t.Fatal(err)
			}
			action := ir.child(NamespaceSOAP12, "Header").child(NamespaceAddressing, "Action").text
			irPath := soapPath(ir, 5)
			if len(irPath) != 6 {
				t.Fatalf("sample nesting is %d deep", len(irPath))
			}
			op := opForAction(t, action)
			payload, err := extractPayload(s.data)
			if err != nil {
				t.Fatal(err)
			}
			env, err := BuildEnvelope(op, payload)
			if err != nil {
				t.Fatalf("BuildEnvelope: %v", err)
			}
			ours, err := parseTree(env)
			if err != nil {
				t.Fatalf("our envelope does not parse: %v\n%s", err, env)
			}
			if got := ours.child(NamespaceSOAP12, "Header").child(NamespaceAddressing, "Action").text; got != action {
				t.Errorf("Action = %q, IR's sample %q", got, action)
			}
			ourPath := soapPath(ours, 5)
			if len(ourPath) != 6 {
				t.Fatalf("our nesting is %d deep", len(ourPath))
			}
			for i := range 5 { // Envelope, Body, Op, Msg, Wrapper
				if ourPath[i].name != irPath[i].name {
					t.Errorf("level %d: %v, IR's sample %v", i, ourPath[i].name, irPath[i].name)
				}
				if len(ourPath[i].children) != len(irPath[i].children) {
					t.Errorf("level %d: %d children, IR's sample %d", i, len(ourPath[i].children), len(irPath[i].children))
				}
			}
			if d := ourPath[5].diff(irPath[5], ""); d != "" {
				t.Errorf("payload differs: %s", d)
			}
			// The payload went in byte for byte.
			if !bytes.Contains(env, payload) {
				t.Error("payload bytes were altered")
			}
		})
	}
}

func opForAction(t *testing.T, action string) Operation {
	t.Helper()
	for _, s := range []Service{ServiceReturns, ServiceEmployment, ServiceIntermediation} {
		for _, n := range Operations(s) {
			op, _ := LookupOperation(s, n)
			if op.Action == action {
				return op
			}
		}
	}
	t.Fatalf("no operation has Action %q", action)
	return Operation{}
}

const gstPayload = `<fileRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1"><x>1</x></fileRequest>`

func TestBuildEnvelopePayloadChecks(t *testing.T) {
	t.Parallel()
	file, _ := LookupOperation(ServiceReturns, "File")
	status, _ := LookupOperation(ServiceReturns, "RetrieveStatus")
	account, _ := LookupOperation(ServiceAccount, "account")
	tests := []struct {
		name    string
		op      Operation
		payload string
		ok      bool
	}{
		{"plain", file, gstPayload, true},
		{"declaration and BOM", file, "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + gstPayload + "\n", true},
		{"comments around", file, "<!-- a -->" + gstPayload + "<!-- b -->", true},
		{"EI file", file, `<e:fileRequest xmlns:e="urn:www.ird.govt.nz/GWS:types/ReturnEI.v2"/>`, true},
		{"prefixed xsi type declared", file, `<g:fileRequest xmlns:g="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><a xsi:type="g:T"/></g:fileRequest>`, true},
		{"empty", file, "", false},
		{"whitespace", file, "  \n", false},
		{"not XML", file, "hello", false},
		{"HTML", file, "<html><body>hi</body></html>", false},
		{"wrong root for op", status, gstPayload, false},
		{"wrong namespace", file, `<fileRequest xmlns="urn:other"/>`, false},
		{"no namespace", file, `<fileRequest/>`, false},
		{"two roots", file, gstPayload + gstPayload, false},
		{"truncated", file, gstPayload[:len(gstPayload)-5], false},
		{"mismatched tags", file, `<fileRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1"><a></b></fileRequest>`, false},
		{"text after root", file, gstPayload + "x", false},
		{"DTD", file, `<!DOCTYPE fileRequest [<!ENTITY e "x">]>` + gstPayload, false},
		{"processing instruction", file, `<?php x?>` + gstPayload, false},
		{"declaration not first", file, " <?xml version=\"1.0\"?>" + gstPayload, false},
		{"latin-1 declared", file, `<?xml version="1.0" encoding="ISO-8859-1"?>` + gstPayload, false},
		{"invalid UTF-8", file, "<fileRequest xmlns=\"urn:www.ird.govt.nz/GWS:types/ReturnGST.v1\">\xff</fileRequest>", false},
		{"undeclared element prefix", file, `<g:fileRequest xmlns:g="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1"><soap:Body/></g:fileRequest>`, false},
		{"undeclared attribute prefix", file, `<fileRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1" wsa:x="1"/>`, false},
		{"undeclared xsi:type prefix", file, `<fileRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><a xsi:type="ret1:T"/></fileRequest>`, false},
		{"duplicate attribute", file, `<fileRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1"><a b="1" b="2"/></fileRequest>`, false},
		{"unknown entity", file, `<fileRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1">&secret123;</fileRequest>`, false},
		{"REST operation", account, gstPayload, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, err := BuildEnvelope(tt.op, []byte(tt.payload))
			if tt.ok {
				if err != nil {
					t.Fatalf("BuildEnvelope: %v", err)
				}
				if _, err := parseTree(env); err != nil {
					t.Fatalf("envelope does not parse: %v", err)
				}
				return
			}
			var ge *Error
			if !errors.As(err, &ge) || ge.Class != ClassInvalid {
				t.Fatalf("err = %v, want a ClassInvalid *Error", err)
			}
			if strings.Contains(err.Error(), "secret123") || strings.Contains(err.Error(), "hi</body>") {
				t.Errorf("error quotes the payload: %v", err)
			}
		})
	}
}

// TestBuildEnvelopeEscapesNames shows catalog values are escaped, not pasted
// into markup, by feeding an Operation with hostile names.
func TestBuildEnvelopeEscapesNames(t *testing.T) {
	t.Parallel()
	op, _ := LookupOperation(ServiceReturns, "File")
	op.Action = `x</wsa:Action><evil/><wsa:Action>`
	env, err := BuildEnvelope(op, []byte(gstPayload))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := parseTree(env)
	if err != nil {
		t.Fatal(err)
	}
	if got := tree.child(NamespaceSOAP12, "Header").child(NamespaceAddressing, "Action").text; got != op.Action {
		t.Errorf("Action round-trips as %q", got)
	}
}

func FuzzBuildEnvelope(f *testing.F) {
	requests, _ := loadSamples(f)
	for _, s := range requests {
		p, err := extractPayload(s.data)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	f.Add([]byte(gstPayload))
	f.Add([]byte("<a:fileRequest xmlns:a='urn:www.ird.govt.nz/GWS:types/ReturnGST.v1'/>"))
	file, _ := LookupOperation(ServiceReturns, "File")
	f.Fuzz(func(t *testing.T, payload []byte) {
		env, err := BuildEnvelope(file, payload)
		if err != nil {
			var ge *Error
			if !errors.As(err, &ge) || ge.Class != ClassInvalid {
				t.Fatalf("err = %v, want ClassInvalid", err)
			}
			return
		}
		// Whatever we accepted must make a well-formed envelope whose
		// nesting is intact and whose payload is the one element.
		tree, err := parseTree(env)
		if err != nil {
			t.Fatalf("accepted payload broke the envelope: %v", err)
		}
		path := soapPath(tree, 5)
		if len(path) != 6 || path[4].name.Local != "FileRequestWrapper" || len(path[4].children) != 1 {
			t.Fatalf("nesting broken")
		}
		if !file.acceptsPayload(path[5].name) {
			t.Fatalf("payload root %v not legal", path[5].name)
		}
	})
}
