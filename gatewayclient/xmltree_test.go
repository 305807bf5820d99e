package gatewayclient

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// node is a namespace-resolved XML element, for comparing documents in
// tests by meaning rather than by bytes.
type node struct {
	name     xml.Name
	attrs    []xml.Attr        // without namespace declarations, sorted
	scope    map[string]string // prefix -> namespace in scope here
	text     string            // trimmed character data directly inside
	children []*node
}

func parseTree(b []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name, scope: map[string]string{}}
			if len(stack) > 0 {
				for p, ns := range stack[len(stack)-1].scope {
					n.scope[p] = ns
				}
			}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns":
					n.scope[a.Name.Local] = a.Value
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					n.scope[""] = a.Value
				default:
					n.attrs = append(n.attrs, a)
				}
			}
			sort.Slice(n.attrs, func(i, j int) bool {
				if n.attrs[i].Name.Space != n.attrs[j].Name.Space {
					return n.attrs[i].Name.Space < n.attrs[j].Name.Space
				}
				return n.attrs[i].Name.Local < n.attrs[j].Name.Local
			})
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			}
		case xml.EndElement:
			n := stack[len(stack)-1]
			n.text = strings.TrimSpace(n.text)
			stack = stack[:len(stack)-1]
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	return root, nil
}

// child returns the first child named local (any namespace when space is "*").
func (n *node) child(space, local string) *node {
	for _, c := range n.children {
		if c.name.Local == local && (space == "*" || c.name.Space == space) {
			return c
		}
	}
	return nil
}

func (n *node) attr(local string) string {
	for _, a := range n.attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// resolve turns a QName attribute value into a namespace-qualified name.
func (n *node) resolve(qname string) xml.Name {
	p, l, ok := strings.Cut(qname, ":")
	if !ok {
		return xml.Name{Space: n.scope[""], Local: qname}
	}
	return xml.Name{Space: n.scope[p], Local: l}
}

// equal reports the first difference between two trees, or "".
func (n *node) diff(o *node, path string) string {
	path += "/" + n.name.Local
	if n.name != o.name {
		return fmt.Sprintf("%s: name %v != %v", path, n.name, o.name)
	}
	if n.text != o.text {
		return fmt.Sprintf("%s: text %q != %q", path, n.text, o.text)
	}
	if !slices.Equal(n.attrs, o.attrs) {
		return fmt.Sprintf("%s: attrs %v != %v", path, n.attrs, o.attrs)
	}
	if len(n.children) != len(o.children) {
		return fmt.Sprintf("%s: %d children != %d", path, len(n.children), len(o.children))
	}
	for i := range n.children {
		if d := n.children[i].diff(o.children[i], path); d != "" {
			return d
		}
	}
	return ""
}

// sample is one of IR's sample messages from testdata.
type sample struct {
	name string
	data []byte // the envelope (prose around it removed)
}

const irTestdata = "../testdata/ir-gws"

// loadSamples returns IR's SOAP sample envelopes. One file holds prose and a
// request envelope followed by a cut-off response; only the complete
// envelope is kept from it.
func loadSamples(t testing.TB) (requests, responses []sample) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(irTestdata, "*", "samples", "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples under %s: %v", irTestdata, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, []byte("<soap:Envelope")); i > 0 {
			j := bytes.Index(b, []byte("</soap:Envelope>"))
			b = b[i : j+len("</soap:Envelope>")]
		}
		tree, err := parseTree(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		action := tree.child(NamespaceSOAP12, "Header").child(NamespaceAddressing, "Action").text
		s := sample{name: filepath.Base(f), data: b}
		if strings.HasSuffix(action, "Response") {
			responses = append(responses, s)
		} else {
			requests = append(requests, s)
		}
	}
	return requests, responses
}

// rawSamples returns every sample file as is, for fuzz seeds.
func rawSamples(t testing.TB, pattern string) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(irTestdata, pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no files %s: %v", pattern, err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// extractPayload lifts the payload element (Envelope > Body > Op > Msg >
// Wrapper > payload) out of a request sample, with the namespace
// declarations it inherits made explicit, as a DSP's software would hand
// it to us.
func extractPayload(doc []byte) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	var scopes []map[string]string
	start := -1
	for {
		off := int(d.InputOffset())
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			scope := map[string]string{}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns":
					scope[a.Name.Local] = a.Value
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					scope[""] = a.Value
				}
			}
			scopes = append(scopes, scope)
			if len(scopes) == 6 {
				start = off
			}
		case xml.EndElement:
			if len(scopes) == 6 && start >= 0 {
				inherited := map[string]string{}
				for _, s := range scopes[:5] {
					for p, ns := range s {
						inherited[p] = ns
					}
				}
				own := map[string]bool{}
				for p := range scopes[5] {
					own[p] = true
				}
				return selfContained(doc[start:d.InputOffset()], inherited, own), nil
			}
			scopes = scopes[:len(scopes)-1]
		}
	}
}

// soapPath walks Envelope > Body > ... and returns the nodes on the way.
func soapPath(root *node, depth int) []*node {
	out := []*node{root}
	n := root.child(NamespaceSOAP12, "Body")
	for n != nil && len(out) <= depth {
		out = append(out, n)
		if len(n.children) == 0 {
			break
		}
		n = n.children[0]
	}
	return out
}
