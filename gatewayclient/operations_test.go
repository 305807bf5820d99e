package gatewayclient

import (
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const (
	nsWSDL = "http://schemas.xmlsoap.org/wsdl/"
	nsXSD  = "http://www.w3.org/2001/XMLSchema"
	nsWSAM = "http://www.w3.org/2007/05/addressing/metadata"
)

// wsdlOp is what one WSDL says about one operation.
type wsdlOp struct {
	service                                   Service
	name, action, ns, msg, wrapper, wrapperNS string
	payloads                                  []xml.Name
	respAction, respElem, result, respWrapper string
	respWrapperNS                             string
}

// readWSDL extracts every operation's names from one of IR's WSDLs,
// following portType > message > element > Msg type > Wrapper > payload ref.
func readWSDL(t *testing.T, path string) []wsdlOp {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseTree(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tns := root.attr("targetNamespace")
	service := map[string]Service{
		NamespaceReturns:        ServiceReturns,
		NamespaceEmployment:     ServiceEmployment,
		NamespaceIntermediation: ServiceIntermediation,
	}[tns]
	if service == "" {
		t.Fatalf("%s: unknown targetNamespace %q", path, tns)
	}

	schemas := map[string]*node{}
	for _, s := range root.child(nsWSDL, "types").children {
		if s.name == (xml.Name{Space: nsXSD, Local: "schema"}) {
			schemas[s.attr("targetNamespace")] = s
		}
	}
	messages := map[xml.Name]xml.Name{} // message -> its part's element
	for _, m := range root.children {
		if m.name == (xml.Name{Space: nsWSDL, Local: "message"}) {
			part := m.child(nsWSDL, "part")
			messages[xml.Name{Space: tns, Local: m.attr("name")}] = part.resolve(part.attr("element"))
		}
	}
	find := func(schema *node, kind, name string) *node {
		if schema == nil {
			return nil
		}
		for _, c := range schema.children {
			if c.name.Space == nsXSD && c.name.Local == kind && c.attr("name") == name {
				return c
			}
		}
		return nil
	}
	firstElement := func(n *node) *node {
		// complexType > sequence > element (or any)
		if n == nil {
			return nil
		}
		if ct := n.child(nsXSD, "complexType"); ct != nil {
			n = ct
		}
		seq := n.child(nsXSD, "sequence")
		if seq == nil || len(seq.children) == 0 {
			return nil
		}
		return seq.children[0]
	}
	// side follows one message: op element > Msg (typed) > Wrapper > payload.
	side := func(msgAttr *node, msgQName string) (elem, msg, wrapper, wrapperNS string, payload *xml.Name) {
		el := messages[msgAttr.resolve(msgQName)]
		if el.Space != tns {
			t.Fatalf("%s: message %s element %v not in %s", path, msgQName, el, tns)
		}
		msgEl := firstElement(find(schemas[tns], "element", el.Local))
		if msgEl == nil {
			t.Fatalf("%s: no element %s", path, el.Local)
		}
		typ := msgEl.resolve(msgEl.attr("type"))
		wrapEl := firstElement(find(schemas[typ.Space], "complexType", typ.Local))
		if wrapEl == nil {
			t.Fatalf("%s: no complexType %v", path, typ)
		}
		inner := firstElement(wrapEl)
		if inner != nil && inner.name.Local == "element" {
			p := inner.resolve(inner.attr("ref"))
			payload = &p
		}
		return el.Local, msgEl.attr("name"), wrapEl.attr("name"), typ.Space, payload
	}

	var ops []wsdlOp
	for _, pt := range root.children {
		if pt.name != (xml.Name{Space: nsWSDL, Local: "portType"}) {
			continue
		}
		for _, o := range pt.children {
			if o.name.Local != "operation" {
				continue
			}
			in, out := o.child(nsWSDL, "input"), o.child(nsWSDL, "output")
			w := wsdlOp{service: service, name: o.attr("name"), ns: tns}
			for _, a := range in.attrs {
				if a.Name == (xml.Name{Space: nsWSAM, Local: "Action"}) {
					w.action = a.Value
				}
			}
			for _, a := range out.attrs {
				if a.Name == (xml.Name{Space: nsWSAM, Local: "Action"}) {
					w.respAction = a.Value
				}
			}
			var elem string
			var p *xml.Name
			elem, w.msg, w.wrapper, w.wrapperNS, p = side(in, in.attr("message"))
			if elem != w.name {
				t.Errorf("%s: operation %s has input element %s", path, w.name, elem)
			}
			if p == nil {
				t.Fatalf("%s: operation %s: request wrapper names no payload", path, w.name)
			}
			w.payloads = []xml.Name{*p}
			w.respElem, w.result, w.respWrapper, w.respWrapperNS, _ = side(out, out.attr("message"))
			ops = append(ops, w)
		}
	}
	return ops
}

// TestCatalogMatchesWSDL keeps the operation table honest: every name in it
// must be what IR's WSDLs say, and every WSDL operation must be in it.
func TestCatalogMatchesWSDL(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(irTestdata, "wsdl", "*.wsdl"))
	if err != nil || len(files) != 4 {
		t.Fatalf("want IR's 4 WSDLs, found %v (%v)", files, err)
	}
	payloads := map[[2]string][]xml.Name{}
	seen := map[[2]string]bool{}
	for _, f := range files {
		for _, w := range readWSDL(t, f) {
			key := [2]string{string(w.service), w.name}
			seen[key] = true
			t.Run(filepath.Base(f)+"/"+w.name, func(t *testing.T) {
				op, err := LookupOperation(w.service, w.name)
				if err != nil {
					t.Fatalf("WSDL operation missing from catalog: %v", err)
				}
				check := func(field, got, want string) {
					t.Helper()
					if got != want {
						t.Errorf("%s = %q, WSDL says %q", field, got, want)
					}
				}
				check("Action", op.Action, w.action)
				check("Namespace", op.Namespace, w.ns)
				check("MsgElement", op.MsgElement, w.msg)
				check("WrapperElement", op.WrapperElement, w.wrapper)
				check("WrapperNamespace", op.WrapperNamespace, w.wrapperNS)
				check("ResponseAction", op.ResponseAction, w.respAction)
				check("ResponseElement", op.ResponseElement, w.respElem)
				check("ResultElement", op.ResultElement, w.result)
				check("ResponseWrapperElement", op.ResponseWrapperElement, w.respWrapper)
				check("ResponseWrapperNamespace", op.ResponseWrapperNamespace, w.respWrapperNS)
			})
			for _, p := range w.payloads {
				if !slices.Contains(payloads[key], p) {
					payloads[key] = append(payloads[key], p)
				}
			}
		}
	}
	for _, s := range []Service{ServiceReturns, ServiceEmployment, ServiceIntermediation} {
		for _, name := range Operations(s) {
			key := [2]string{string(s), name}
			if !seen[key] {
				t.Errorf("catalog operation %s %s is in no WSDL", s, name)
				continue
			}
			op, _ := LookupOperation(s, name)
			got := slices.Clone(op.Payloads)
			want := payloads[key]
			sortNames(got)
			sortNames(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: Payloads = %v, WSDLs allow %v", s, name, got, want)
			}
		}
	}
}

func sortNames(n []xml.Name) {
	slices.SortFunc(n, func(a, b xml.Name) int {
		if a.Space != b.Space {
			if a.Space < b.Space {
				return -1
			}
			return 1
		}
		switch {
		case a.Local < b.Local:
			return -1
		case a.Local > b.Local:
			return 1
		}
		return 0
	})
}

func TestCatalogCoversBrief(t *testing.T) {
	t.Parallel()
	want := map[Service][]string{
		ServiceReturns:        {"File", "Prepop", "RetrieveFilingObligations", "RetrieveReturn", "RetrieveStatus"},
		ServiceEmployment:     {"Create", "Event", "RetrieveList", "Terminate", "Update"},
		ServiceIntermediation: {"Delink", "Link", "RetrieveClient", "RetrieveClientList", "Update"},
		ServiceAccount:        {"account", "list", "status"},
	}
	for s, names := range want {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			if got := Operations(s); !slices.Equal(got, names) {
				t.Errorf("Operations(%s) = %v, want %v", s, got, names)
			}
		})
	}
	file, _ := LookupOperation(ServiceReturns, "File")
	if !file.ReconcileOnLoss {
		t.Error("File must reconcile on loss")
	}
	for _, s := range []Service{ServiceReturns, ServiceEmployment, ServiceIntermediation, ServiceAccount} {
		for _, n := range Operations(s) {
			op, _ := LookupOperation(s, n)
			if op.ReconcileOnLoss && op.Name != "File" {
				t.Errorf("%s %s reconciles on loss", s, n)
			}
		}
	}
}

func TestLookupOperation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		service Service
		op      string
		method  string
		wantErr bool
	}{
		{"file", ServiceReturns, "File", "", false},
		{"account POST", ServiceAccount, "account", "POST", false},
		{"list POST", ServiceAccount, "list", "POST", false},
		{"status GET", ServiceAccount, "status", "GET", false},
		{"unknown op", ServiceReturns, "Delete", "", true},
		{"wrong case", ServiceReturns, "file", "", true},
		{"unknown service", Service("payroll"), "File", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			op, err := LookupOperation(tt.service, tt.op)
			if tt.wantErr {
				var ge *Error
				if !errors.As(err, &ge) || ge.Class != ClassInvalid {
					t.Fatalf("err = %v, want ClassInvalid *Error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if op.Method != tt.method {
				t.Errorf("Method = %q, want %q", op.Method, tt.method)
			}
		})
	}
	// The catalog is not editable through a returned Operation.
	a, _ := LookupOperation(ServiceReturns, "File")
	a.Payloads[0].Local = "changed"
	b, _ := LookupOperation(ServiceReturns, "File")
	if b.Payloads[0].Local != "fileRequest" {
		t.Error("LookupOperation exposes the catalog's slice")
	}
}

func TestServiceAcceptsAndValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		service    Service
		oauth, m2m bool
		valid      bool
	}{
		{ServiceReturns, true, false, true},
		{ServiceEmployment, true, false, true},
		{ServiceIntermediation, true, false, true},
		{ServiceAccount, true, true, true},
		{Service("bogus"), false, false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.service), func(t *testing.T) {
			t.Parallel()
			if got := tt.service.Accepts(AuthOAuth); got != tt.oauth {
				t.Errorf("Accepts(oauth) = %v", got)
			}
			if got := tt.service.Accepts(AuthM2M); got != tt.m2m {
				t.Errorf("Accepts(m2m) = %v", got)
			}
			if got := tt.service.Accepts(AuthMode("basic")); got {
				t.Error("Accepts(basic) = true")
			}
			if err := tt.service.Validate(); (err == nil) != tt.valid {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}
