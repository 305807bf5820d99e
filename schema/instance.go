package schema

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxDepth bounds element nesting. IR's payloads nest about ten levels; the
// bound keeps hostile input from costing unbounded memory and recursion.
const maxDepth = 256

// inode is one element of an instance document.
type inode struct {
	name  qname
	attrs []iattr
	ns    map[string]string // in-scope prefixes, for QName values (xsi:type)
	kids  []*inode
	text  string // the element's own character data, concatenated
	line  int
	col   int
}

type iattr struct {
	name  qname
	value string
}

// wfError is a well-formedness or namespace-well-formedness failure.
type wfError struct {
	line, col int
	msg       string
	err       error
}

func (e *wfError) Error() string {
	if e.col == 0 { // encoding/xml reports lines only
		return fmt.Sprintf("line %d: %s", e.line, e.msg)
	}
	return fmt.Sprintf("line %d, column %d: %s", e.line, e.col, e.msg)
}

// Unwrap exposes the decoder's *xml.SyntaxError, when there is one.
func (e *wfError) Unwrap() error { return e.err }

// tooDeepError reports nesting beyond maxDepth.
type tooDeepError struct {
	root      qname
	line, col int
}

func (e *tooDeepError) Error() string {
	return fmt.Sprintf("nesting deeper than %d elements", maxDepth)
}

// parseInstance parses doc into a tree, enforcing XML and namespace
// well-formedness that encoding/xml's RawToken leaves to the caller: matched
// end tags, a single root, declared prefixes, unique attributes.
// notes collects problems that do not stop parsing (a DOCTYPE).
func parseInstance(doc []byte) (root *inode, notes []Problem, err error) {
	// A UTF-8 byte order mark is allowed before the document.
	doc = bytes.TrimPrefix(doc, []byte("\xef\xbb\xbf"))
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	type open struct {
		n   *inode
		raw xml.Name
		buf []byte
	}
	var stack []open
	baseNS := map[string]string{"xml": xmlNS}
	rootDone := false
	first := true
	for {
		line, col := d.InputPos()
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				line = se.Line
				col = 0
			}
			return nil, nil, &wfError{line: line, col: col, msg: err.Error(), err: err}
		}
		wf := func(format string, args ...any) error {
			return &wfError{line: line, col: col, msg: fmt.Sprintf(format, args...)}
		}
		isFirst := first
		first = false
		switch t := tok.(type) {
		case xml.StartElement:
			if rootDone {
				return nil, nil, wf("element <%s> after the end of the root element", rawName(t.Name))
			}
			if len(stack) >= maxDepth {
				return nil, nil, &tooDeepError{root: stack[0].n.name, line: line, col: col}
			}
			parentNS := baseNS
			if len(stack) > 0 {
				parentNS = stack[len(stack)-1].n.ns
			}
			n := &inode{ns: parentNS, line: line, col: col}
			if err := n.declare(t.Attr, parentNS, wf); err != nil {
				return nil, nil, err
			}
			q, err := resolveName(t.Name, n.ns, true)
			if err != nil {
				return nil, nil, wf("element <%s>: %v", rawName(t.Name), err)
			}
			n.name = q
			// Duplicates are found by a scan for the usual handful of
			// attributes and by a set beyond that, so a hostile element with
			// thousands of attributes costs linear time.
			var seen map[qname]bool
			for _, a := range t.Attr {
				if isNSDecl(a.Name) {
					continue
				}
				aq, err := resolveName(a.Name, n.ns, false)
				if err != nil {
					return nil, nil, wf("attribute %s: %v", rawName(a.Name), err)
				}
				dup := false
				if seen != nil {
					dup = seen[aq]
					seen[aq] = true
				} else {
					for _, prev := range n.attrs {
						dup = dup || prev.name == aq
					}
					if len(n.attrs) == 16 {
						seen = make(map[qname]bool, len(t.Attr))
						for _, prev := range n.attrs {
							seen[prev.name] = true
						}
						seen[aq] = true
					}
				}
				if dup {
					return nil, nil, wf("duplicate attribute %s on <%s>", rawName(a.Name), rawName(t.Name))
				}
				n.attrs = append(n.attrs, iattr{name: aq, value: a.Value})
			}
			if len(stack) > 0 {
				p := &stack[len(stack)-1]
				p.n.kids = append(p.n.kids, n)
			} else {
				root = n
			}
			stack = append(stack, open{n: n, raw: t.Name})
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, nil, wf("end tag </%s> without a start tag", rawName(t.Name))
			}
			top := stack[len(stack)-1]
			if top.raw != t.Name {
				return nil, nil, wf("end tag </%s> does not match <%s> (line %d)", rawName(t.Name), rawName(top.raw), top.n.line)
			}
			top.n.text = string(top.buf)
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				rootDone = true
			}
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.Trim(t, " \t\r\n")) != 0 {
					return nil, nil, wf("text outside the root element")
				}
				continue
			}
			top := &stack[len(stack)-1]
			top.buf = append(top.buf, t...)
		case xml.ProcInst:
			if strings.EqualFold(t.Target, "xml") && !isFirst {
				return nil, nil, wf("XML declaration not at the start of the document")
			}
		case xml.Directive:
			if len(stack) == 0 && !rootDone && bytes.HasPrefix(t, []byte("DOCTYPE")) {
				notes = append(notes, Problem{Line: line, Column: col, Message: "DOCTYPE declarations are not accepted"})
				continue
			}
			return nil, nil, wf("markup declaration <!%s...> not allowed here", firstWord(t))
		case xml.Comment:
		}
	}
	if len(stack) > 0 {
		top := stack[len(stack)-1]
		line, col := d.InputPos()
		return nil, nil, &wfError{line: line, col: col, msg: fmt.Sprintf("document ends inside <%s> (opened at line %d)", rawName(top.raw), top.n.line)}
	}
	if root == nil {
		line, col := d.InputPos()
		return nil, nil, &wfError{line: line, col: col, msg: "no root element"}
	}
	return root, notes, nil
}

func firstWord(b []byte) string {
	if i := bytes.IndexAny(b, " \t\r\n"); i >= 0 {
		b = b[:i]
	}
	if len(b) > 20 {
		b = b[:20]
	}
	return string(b)
}

func rawName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

func isNSDecl(n xml.Name) bool {
	return n.Space == "xmlns" || (n.Space == "" && n.Local == "xmlns")
}

// declare applies the namespace declarations among attrs, copying the scope
// only when the element declares something.
func (n *inode) declare(attrs []xml.Attr, parent map[string]string, wf func(string, ...any) error) error {
	copied := false
	for _, a := range attrs {
		if !isNSDecl(a.Name) {
			continue
		}
		prefix := ""
		if a.Name.Space == "xmlns" {
			prefix = a.Name.Local
			switch {
			case prefix == "" || strings.Contains(prefix, ":"):
				return wf("bad namespace prefix %q", prefix)
			case a.Value == "":
				return wf("namespace prefix %q bound to the empty name", prefix)
			case prefix == "xmlns":
				return wf("the xmlns prefix cannot be declared")
			case prefix == "xml" && a.Value != xmlNS, prefix != "xml" && a.Value == xmlNS:
				return wf("the xml prefix and namespace are reserved")
			}
		}
		if !copied {
			n.ns = make(map[string]string, len(parent)+2)
			for k, v := range parent {
				n.ns[k] = v
			}
			copied = true
		}
		n.ns[prefix] = a.Value
	}
	return nil
}

// resolveName expands a raw name. Unprefixed attributes are in no namespace;
// unprefixed elements are in the default namespace.
func resolveName(n xml.Name, scope map[string]string, element bool) (qname, error) {
	if n.Local == "" || strings.Contains(n.Local, ":") {
		return qname{}, fmt.Errorf("malformed qualified name")
	}
	if n.Space == "" {
		if element {
			return qname{scope[""], n.Local}, nil
		}
		return qname{"", n.Local}, nil
	}
	uri, ok := scope[n.Space]
	if !ok {
		return qname{}, fmt.Errorf("namespace prefix %q is not declared", n.Space)
	}
	return qname{uri, n.Local}, nil
}

// resolveQNameValue expands a QName-valued attribute such as xsi:type.
func (n *inode) resolveQNameValue(v string) (qname, bool) {
	v = strings.TrimSpace(v)
	prefix, local, ok := strings.Cut(v, ":")
	if !ok {
		prefix, local = "", v
	}
	if local == "" || strings.Contains(local, ":") {
		return qname{}, false
	}
	uri, found := n.ns[prefix]
	if !found && prefix != "" {
		return qname{}, false
	}
	return qname{uri, local}, true
}
