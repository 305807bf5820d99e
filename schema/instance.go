package schema

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gatewayq/gatewayq/internal/xmltok"
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
	if e.col == 0 { // syntax errors report lines only, as encoding/xml's did
		return fmt.Sprintf("line %d: %s", e.line, e.msg)
	}
	return fmt.Sprintf("line %d, column %d: %s", e.line, e.col, e.msg)
}

// Unwrap exposes the tokenizer's *xmltok.SyntaxError or *xmltok.DeclError,
// when there is one.
func (e *wfError) Unwrap() error { return e.err }

// tooDeepError reports nesting beyond maxDepth.
type tooDeepError struct {
	root      qname
	line, col int
}

func (e *tooDeepError) Error() string {
	return fmt.Sprintf("nesting deeper than %d elements", maxDepth)
}

// open is an element whose end tag parseInstance has not reached.
type open struct {
	n    *inode
	raw  xmltok.Name
	kids int    // where the element's children start in parser.kids
	text []byte // character data so far; a view into doc until owned
	own  bool   // text was copied and may be appended to
}

// parser is parseInstance's scratch memory, recycled through parsers.
type parser struct {
	tz    *xmltok.Tokenizer
	stack []open
	kids  []*inode // the children of the open elements, innermost last
}

var parsers = sync.Pool{New: func() any { return &parser{tz: xmltok.New(nil)} }}

var bom = []byte("\xef\xbb\xbf")

// parseInstance parses doc into a tree, enforcing XML and namespace
// well-formedness that the tokenizer leaves to the caller: matched end
// tags, a single root, declared prefixes, unique attributes.
// notes collects problems that do not stop parsing (a DOCTYPE).
//
// The tokenizer, internal/xmltok, accepts and rejects what encoding/xml's
// RawToken (Strict) did, with the same messages and positions, and
// normalises white space in attribute values as XML requires.
func parseInstance(doc []byte) (root *inode, notes []Problem, err error) {
	// A UTF-8 byte order mark is allowed before the document.
	doc = bytes.TrimPrefix(doc, bom)
	ps := parsers.Get().(*parser)
	tz, stack, kids := ps.tz, ps.stack[:0], ps.kids[:0]
	tz.Reset(doc)
	defer func() {
		// Keep neither doc nor the tree alive from the pool.
		tz.Reset(nil)
		clear(stack[:cap(stack)])
		clear(kids[:cap(kids)])
		ps.stack, ps.kids = stack[:0], kids[:0]
		parsers.Put(ps)
	}()
	var slab []inode     // elements are allocated in blocks
	var kidSlab []*inode // and so are their lists of children
	rootDone := false
	first := true
	for {
		kind, err := tz.Next()
		if err != nil {
			var se *xmltok.SyntaxError
			if errors.As(err, &se) {
				return nil, nil, &wfError{line: se.Line, msg: se.Error(), err: err}
			}
			var de *xmltok.DeclError
			if errors.As(err, &de) {
				return nil, nil, &wfError{line: de.Line, col: de.Column, msg: de.Msg, err: err}
			}
			line, col := tz.Pos()
			return nil, nil, &wfError{line: line, col: col, msg: err.Error(), err: err}
		}
		if kind == xmltok.EOF {
			break
		}
		isFirst := first
		first = false
		switch kind {
		case xmltok.StartElement:
			name := tz.Name()
			if rootDone {
				return nil, nil, wfAt(tz, "element <%s> after the end of the root element", rawName(name))
			}
			line, col := tz.Pos()
			if len(stack) >= maxDepth {
				return nil, nil, &tooDeepError{root: stack[0].n.name, line: line, col: col}
			}
			parentNS := baseNS
			if len(stack) > 0 {
				parentNS = stack[len(stack)-1].n.ns
			}
			if len(slab) == 0 {
				slab = make([]inode, 16)
			}
			n := &slab[0]
			slab = slab[1:]
			*n = inode{ns: parentNS, line: line, col: col}
			attrs := tz.Attrs()
			if err := n.declare(tz, attrs, parentNS); err != nil {
				return nil, nil, err
			}
			q, err := resolveName(name, n.ns, true)
			if err != nil {
				return nil, nil, wfAt(tz, "element <%s>: %v", rawName(name), err)
			}
			n.name = q
			// Duplicates are found by a scan for the usual handful of
			// attributes and by a set beyond that, so a hostile element with
			// thousands of attributes costs linear time.
			var seen map[qname]bool
			for _, a := range attrs {
				if isNSDecl(a.Name) {
					continue
				}
				aq, err := resolveName(a.Name, n.ns, false)
				if err != nil {
					return nil, nil, wfAt(tz, "attribute %s: %v", rawName(a.Name), err)
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
						seen = make(map[qname]bool, len(attrs))
						for _, prev := range n.attrs {
							seen[prev.name] = true
						}
						seen[aq] = true
					}
				}
				if dup {
					return nil, nil, wfAt(tz, "duplicate attribute %s on <%s>", rawName(a.Name), rawName(name))
				}
				if n.attrs == nil {
					n.attrs = make([]iattr, 0, len(attrs))
				}
				n.attrs = append(n.attrs, iattr{name: aq, value: string(a.Value)})
			}
			if len(stack) > 0 {
				kids = append(kids, n)
			} else {
				root = n
			}
			stack = append(stack, open{n: n, raw: name, kids: len(kids)})
		case xmltok.EndElement:
			name := tz.Name()
			if len(stack) == 0 {
				return nil, nil, wfAt(tz, "end tag </%s> without a start tag", rawName(name))
			}
			top := stack[len(stack)-1]
			if !top.raw.Equal(name) {
				return nil, nil, wfAt(tz, "end tag </%s> does not match <%s> (line %d)", rawName(name), rawName(top.raw), top.n.line)
			}
			if k := len(kids) - top.kids; k > 0 {
				if len(kidSlab) < k {
					kidSlab = make([]*inode, max(k, 64))
				}
				top.n.kids = kidSlab[:k:k]
				kidSlab = kidSlab[k:]
				copy(top.n.kids, kids[top.kids:])
				kids = kids[:top.kids]
				if !isSpace(top.text) {
					top.n.text = string(top.text)
				}
				// An element with children uses its text only to find
				// whether there is any beyond white space.
			} else {
				top.n.text = string(top.text)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				rootDone = true
			}
		case xmltok.CharData:
			text := tz.Text()
			if len(stack) == 0 {
				if len(bytes.Trim(text, " \t\r\n")) != 0 {
					return nil, nil, wfAt(tz, "text outside the root element")
				}
				continue
			}
			top := &stack[len(stack)-1]
			switch {
			case len(kids) > top.kids && isSpace(top.text) && isSpace(text):
				// White space between child elements: an element with
				// children uses its text only to find whether there is any
				// beyond white space, so leading white space can go.
				top.text, top.own = nil, false
			case len(top.text) == 0:
				top.text, top.own = text, false
			case !top.own:
				top.text, top.own = append(append([]byte(nil), top.text...), text...), true
			default:
				top.text = append(top.text, text...)
			}
		case xmltok.ProcInst:
			if bytes.EqualFold(tz.Target(), []byte("xml")) && !isFirst {
				return nil, nil, wfAt(tz, "XML declaration not at the start of the document")
			}
		case xmltok.Directive:
			text := tz.Text()
			if len(stack) == 0 && !rootDone && bytes.HasPrefix(text, []byte("DOCTYPE")) {
				line, col := tz.Pos()
				notes = append(notes, Problem{Line: line, Column: col, Message: "DOCTYPE declarations are not accepted"})
				continue
			}
			return nil, nil, wfAt(tz, "markup declaration <!%s...> not allowed here", firstWord(text))
		case xmltok.Comment:
		}
	}
	if len(stack) > 0 {
		top := stack[len(stack)-1]
		line, col := tz.InputPos()
		return nil, nil, &wfError{line: line, col: col, msg: fmt.Sprintf("document ends inside <%s> (opened at line %d)", rawName(top.raw), top.n.line)}
	}
	if root == nil {
		line, col := tz.InputPos()
		return nil, nil, &wfError{line: line, col: col, msg: "no root element"}
	}
	return root, notes, nil
}

// interned holds the strings parseInstance makes from names, prefixes and
// namespace URIs. Payloads repeat the same few hundred of them, so once the
// table has warmed up a lookup replaces an allocation. It is copied on
// write and bounded in entries and length, so hostile input cannot grow it:
// strings beyond the bounds are allocated as usual.
var interned struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]string]
}

const (
	maxInterned    = 1024
	maxInternedLen = 128
)

func intern(b []byte) string {
	m := interned.m.Load()
	if m != nil {
		if s, ok := (*m)[string(b)]; ok {
			return s
		}
	}
	s := string(b)
	if len(s) <= maxInternedLen && (m == nil || len(*m) < maxInterned) {
		interned.mu.Lock()
		defer interned.mu.Unlock()
		old := interned.m.Load()
		if old == nil || len(*old) < maxInterned {
			size := 1
			if old != nil {
				size += len(*old)
			}
			next := make(map[string]string, size)
			if old != nil {
				for k, v := range *old {
					next[k] = v
				}
			}
			next[s] = s
			interned.m.Store(&next)
		}
	}
	return s
}

// baseNS is the namespace scope outside the root element. It is never
// modified: declare copies a scope before adding to it.
var baseNS = map[string]string{"xml": xmlNS}

// isSpace reports whether b is empty or only XML white space.
func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// wfAt reports a well-formedness error at the start of the current token.
func wfAt(tz *xmltok.Tokenizer, format string, args ...any) error {
	line, col := tz.Pos()
	return &wfError{line: line, col: col, msg: fmt.Sprintf(format, args...)}
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

func rawName(n xmltok.Name) string {
	if len(n.Prefix) == 0 {
		return string(n.Local)
	}
	return string(n.Prefix) + ":" + string(n.Local)
}

func isNSDecl(n xmltok.Name) bool {
	return string(n.Prefix) == "xmlns" || (len(n.Prefix) == 0 && string(n.Local) == "xmlns")
}

// declare applies the namespace declarations among attrs, copying the scope
// only when the element declares something.
func (n *inode) declare(tz *xmltok.Tokenizer, attrs []xmltok.Attr, parent map[string]string) error {
	copied := false
	for _, a := range attrs {
		if !isNSDecl(a.Name) {
			continue
		}
		prefix := ""
		value := intern(a.Value)
		if len(a.Name.Prefix) != 0 {
			prefix = intern(a.Name.Local)
			switch {
			case prefix == "" || strings.Contains(prefix, ":"):
				return wfAt(tz, "bad namespace prefix %q", prefix)
			case value == "":
				return wfAt(tz, "namespace prefix %q bound to the empty name", prefix)
			case prefix == "xmlns":
				return wfAt(tz, "the xmlns prefix cannot be declared")
			case prefix == "xml" && value != xmlNS, prefix != "xml" && value == xmlNS:
				return wfAt(tz, "the xml prefix and namespace are reserved")
			}
		}
		if !copied {
			n.ns = make(map[string]string, len(parent)+2)
			for k, v := range parent {
				n.ns[k] = v
			}
			copied = true
		}
		n.ns[prefix] = value
	}
	return nil
}

// resolveName expands a raw name. Unprefixed attributes are in no namespace;
// unprefixed elements are in the default namespace.
func resolveName(n xmltok.Name, scope map[string]string, element bool) (qname, error) {
	if len(n.Local) == 0 || bytes.IndexByte(n.Local, ':') >= 0 {
		return qname{}, fmt.Errorf("malformed qualified name")
	}
	if len(n.Prefix) == 0 {
		if element {
			return qname{scope[""], intern(n.Local)}, nil
		}
		return qname{"", intern(n.Local)}, nil
	}
	uri, ok := scope[string(n.Prefix)]
	if !ok {
		return qname{}, fmt.Errorf("namespace prefix %q is not declared", n.Prefix)
	}
	return qname{uri, intern(n.Local)}, nil
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
