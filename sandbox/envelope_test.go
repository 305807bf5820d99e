package sandbox

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatewayq/gatewayq/schema"
)

func TestParseEnvelope(t *testing.T) {
	t.Parallel()
	// The schema-error sample declares every prefix on the Envelope: the
	// payload must carry them to stand alone, and keep its line numbers.
	env, err := parseEnvelope(gstSample(t, "body-gst-returnfile-schema-error-request.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if env.Action != "https://services.ird.govt.nz/GWS/Returns/Return/File" ||
		env.Msg.Local != "ReturnFileRequestMsg" || env.Wrapper.Local != "FileRequestWrapper" ||
		env.Payload != n(nsReturnGST, "fileRequest") {
		t.Fatalf("parsed %+v", env)
	}
	var ve *schema.ValidationError
	if err := schema.Validate(env.PayloadDoc); !errors.As(err, &ve) || ve.Problems[0].Line != 25 {
		t.Fatalf("validate standalone payload: %v", err)
	}
	// A valid sample's payload validates on its own.
	env, err = parseEnvelope(eiSample(t, "body-ei-returnfile-request.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(env.PayloadDoc); err != nil {
		t.Fatalf("EI payload: %v", err)
	}
	f, err := scanPayload(env.PayloadDoc)
	if err != nil {
		t.Fatal(err)
	}
	want := NaturalKey{"123041607", "PSO", "2018-04-30", "EI2", "2018-04-10"}
	if naturalKey(f) != want || f.IsAmended || !bytes.Contains(f.FormFields, []byte(">2018-04-10</payDayDate>")) {
		t.Errorf("fields %+v\nform fields %s", naturalKey(f), f.FormFields)
	}
}

func TestParseEnvelopeRejects(t *testing.T) {
	t.Parallel()
	gst := string(gstSample(t, "body-gst-returnfile-request-GST101A.xml"))
	tests := map[string]string{
		"empty":            "",
		"two actions":      strings.Replace(gst, "</soap:Header>", `<wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing">x</wsa:Action></soap:Header>`, 1),
		"two payloads":     strings.Replace(gst, "</fil:FileRequestWrapper>", `<x/></fil:FileRequestWrapper>`, 1),
		"text in the body": strings.Replace(gst, "<ret:ReturnFileRequestMsg>", "<ret:ReturnFileRequestMsg>hello", 1),
		"DTD":              `<!DOCTYPE x [<!ENTITY a "b">]>` + gst,
		"no payload":       `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header><Action xmlns="http://www.w3.org/2005/08/addressing">a</Action></s:Header><s:Body><a:File xmlns:a="x"><a:M><a:W/></a:M></a:File></s:Body></s:Envelope>`,
		"body before head": `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/><s:Header/></s:Envelope>`,
		"truncated":        gst[:len(gst)/2],
		"not an envelope":  `<Envelope/>`,
		"two roots":        gst + gst,
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := parseEnvelope([]byte(doc)); !errors.Is(err, errMalformed) && !errors.Is(err, errVersionMismatch) {
				t.Errorf("err = %v, want errMalformed", err)
			}
		})
	}
}

// FuzzParseEnvelope: whatever arrives, the parser and the payload scanner
// return an error or a result, never panic, and a payload they return is a
// well-formed document.
func FuzzParseEnvelope(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testdata, "*", "samples", "*.xml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header/><s:Body/></s:Envelope>`))
	f.Add([]byte(`<a><b/></a>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := parseEnvelope(data)
		if err != nil {
			if !errors.Is(err, errMalformed) && !errors.Is(err, errVersionMismatch) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if _, err := scanPayload(env.PayloadDoc); err != nil && !errors.Is(err, errMalformed) {
			t.Fatalf("scan: unclassified error %v", err)
		}
		dec := xml.NewDecoder(bytes.NewReader(env.PayloadDoc))
		for {
			_, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("payload of an accepted envelope is not well-formed: %v\n%s", err, env.PayloadDoc)
			}
		}
	})
}

// wsdlNode is a generic XML tree for reading the WSDLs.
type wsdlNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []wsdlNode `xml:",any"`
	ns       map[string]string
}

func (n *wsdlNode) attr(local string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// resolve expands a QName attribute value with the namespace declarations
// in scope at the node.
func (n *wsdlNode) resolve(qname string) xml.Name {
	prefix, local, ok := strings.Cut(qname, ":")
	if !ok {
		return xml.Name{Local: qname}
	}
	return xml.Name{Space: n.ns[prefix], Local: local}
}

func scope(n *wsdlNode, parent map[string]string) {
	n.ns = map[string]string{}
	for k, v := range parent {
		n.ns[k] = v
	}
	for _, a := range n.Attrs {
		if a.Name.Space == "xmlns" {
			n.ns[a.Name.Local] = a.Value
		}
	}
	for i := range n.Children {
		scope(&n.Children[i], n.ns)
	}
}

func walk(n *wsdlNode, fn func(*wsdlNode)) {
	fn(n)
	for i := range n.Children {
		walk(&n.Children[i], fn)
	}
}

// TestOperationTableMatchesWSDL reads IR's WSDLs and checks every request
// operation's Msg, wrapper, wrapper namespace, allowed payload and response
// wrapper against the sandbox's table.
func TestOperationTableMatchesWSDL(t *testing.T) {
	t.Parallel()
	wsdls := map[string]*service{
		"ReturnsGSTDevWsdl.v1.wsdl":     svcReturns,
		"ReturnsEIDevWsdl.v2.wsdl":      svcReturns,
		"EmploymentV2DevWsdl.wsdl":      svcEmployment,
		"IntermediationDevWsdl.v1.wsdl": svcIntermediation,
	}
	checked := map[string]bool{}
	for file, svc := range wsdls {
		raw, err := os.ReadFile(filepath.Join(testdata, "wsdl", file))
		if err != nil {
			t.Fatal(err)
		}
		var root wsdlNode
		// The xml:",any,attr" trick reports xmlns declarations as attrs.
		if err := xml.Unmarshal(raw, &root); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		scope(&root, nil)
		// Schemas by target namespace; complex types by {ns}name.
		types := map[xml.Name]*wsdlNode{}
		var opElems []*wsdlNode
		walk(&root, func(nd *wsdlNode) {
			if nd.XMLName.Local != "schema" {
				return
			}
			tns := nd.attr("targetNamespace")
			for i := range nd.Children {
				c := &nd.Children[i]
				switch {
				case c.XMLName.Local == "complexType":
					types[xml.Name{Space: tns, Local: c.attr("name")}] = c
				case c.XMLName.Local == "element" && tns == svc.ns:
					opElems = append(opElems, c)
				}
			}
		})
		for _, el := range opElems {
			name := el.attr("name")
			var msg *wsdlNode
			walk(el, func(nd *wsdlNode) {
				if nd != el && nd.XMLName.Local == "element" && msg == nil {
					msg = nd
				}
			})
			if msg == nil {
				t.Errorf("%s: %s has no child element", file, name)
				continue
			}
			typ := types[msg.resolve(msg.attr("type"))]
			if typ == nil {
				t.Errorf("%s: type %s of %s not found", file, msg.attr("type"), name)
				continue
			}
			var wrapper, payload *wsdlNode
			walk(typ, func(nd *wsdlNode) {
				if nd.XMLName.Local != "element" {
					return
				}
				if wrapper == nil {
					wrapper = nd
				} else if payload == nil && nd.attr("ref") != "" {
					payload = nd
				}
			})
			wrapperNS := msg.resolve(msg.attr("type")).Space
			if strings.HasSuffix(name, "Response") {
				o := operations[svc][strings.TrimSuffix(name, "Response")]
				if o == nil {
					t.Errorf("%s: no operation for %s", file, name)
					continue
				}
				if msg.attr("name") != o.name+"Result" || wrapper.attr("name") != o.respWrapper || wrapperNS != o.respWrapperNS {
					t.Errorf("%s %s: WSDL has %s > {%s}%s, table %sResult > {%s}%s", file, name,
						msg.attr("name"), wrapperNS, wrapper.attr("name"), o.name, o.respWrapperNS, o.respWrapper)
				}
				continue
			}
			o := operations[svc][name]
			if o == nil {
				t.Errorf("%s: operation %s missing from the table", file, name)
				continue
			}
			checked[o.label()] = true
			if msg.attr("name") != o.msg || wrapper.attr("name") != o.wrapper || wrapperNS != o.wrapperNS {
				t.Errorf("%s %s: WSDL has %s > {%s}%s, table %s > {%s}%s", file, name,
					msg.attr("name"), wrapperNS, wrapper.attr("name"), o.msg, o.wrapperNS, o.wrapper)
			}
			if payload == nil {
				t.Errorf("%s %s: no payload ref", file, name)
				continue
			}
			if p := payload.resolve(payload.attr("ref")); !payloadAllowed(o, p) {
				t.Errorf("%s %s: payload %v not in the table's %v", file, name, p, o.payloads)
			}
		}
	}
	for svc, ops := range operations {
		for name := range ops {
			if !checked[svc.name+"/"+name] {
				t.Errorf("table operation %s/%s is in no WSDL", svc.name, name)
			}
		}
	}
}
