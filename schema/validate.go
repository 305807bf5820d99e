package schema

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// validator walks an instance tree against the compiled schemas and
// collects problems up to maxProblems.
type validator struct {
	set       *compiledSet
	problems  []Problem
	truncated bool
}

func (v *validator) addf(n *inode, path, format string, args ...any) {
	if len(v.problems) >= maxProblems {
		v.truncated = true
		return
	}
	v.problems = append(v.problems, Problem{Line: n.line, Column: n.col, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) full() bool { return len(v.problems) >= maxProblems }

// element validates n against decl.
func (v *validator) element(n *inode, decl *elementDecl, path string) {
	if decl.abstract {
		v.addf(n, path, "element %s is abstract and cannot appear in a document", decl.name.local)
		return
	}
	t := decl.typ
	nilled := false
	for _, a := range n.attrs {
		if a.name.ns != xsiNS {
			continue
		}
		switch a.name.local {
		case "type":
			q, ok := n.resolveQNameValue(a.value)
			if !ok {
				v.addf(n, path+"/@xsi:type", "xsi:type %s is not a valid QName with a declared prefix", quote(a.value))
				return
			}
			xt, ok := v.set.types[q]
			if !ok {
				xt, ok = builtinTypeDef(v.set, q)
			}
			if !ok {
				v.addf(n, path+"/@xsi:type", "xsi:type %s names no type in IR's schemas", q)
				return
			}
			if !xt.derivesFrom(t) {
				v.addf(n, path+"/@xsi:type", "xsi:type %s is not derived from the declared type %s", q, typeName(t))
				return
			}
			t = xt
		case "nil":
			b, msg := parseValue(primBoolean, normalize(a.value, wsCollapse))
			if msg != "" {
				v.addf(n, path+"/@xsi:nil", "xsi:nil: %s", msg)
				return
			}
			nilled = b.b
		case "schemaLocation", "noNamespaceSchemaLocation":
		default:
			v.addf(n, path+"/@xsi:"+a.name.local, "attribute xsi:%s is not allowed", a.name.local)
		}
	}
	if t.abstract {
		v.addf(n, path, "type %s is abstract: the element needs an xsi:type naming a derived type", typeName(t))
		return
	}
	v.attributes(n, t, path)
	if nilled {
		if !decl.nillable {
			v.addf(n, path, "element %s is not nillable but has xsi:nil=\"true\"", decl.name.local)
			return
		}
		if len(n.kids) > 0 || n.text != "" {
			v.addf(n, path, "element %s has xsi:nil=\"true\" but is not empty", decl.name.local)
		} else if decl.fixed != nil {
			v.addf(n, path, "element %s has a fixed value and cannot be nil", decl.name.local)
		}
		return
	}
	switch {
	case t.anyType:
		// anyType accepts any content. A fixed value still applies when the
		// element has no child elements.
		if decl.fixed != nil && len(n.kids) == 0 && n.text != "" && n.text != *decl.fixed {
			v.addf(n, path, "value %s must be the fixed value %s", quote(n.text), quote(*decl.fixed))
		}
	case t.simple != nil:
		if len(n.kids) > 0 {
			v.addf(n.kids[0], path+"/"+n.kids[0].name.local, "element %s is not allowed: %s has simple content", n.kids[0].name.local, decl.name.local)
			return
		}
		text := n.text
		if text == "" {
			if decl.fixed != nil {
				text = *decl.fixed
			} else if decl.def != nil {
				text = *decl.def
			}
		}
		if msg := t.simple.check(text); msg != "" {
			v.addf(n, path, "%s", msg)
			return
		}
		if decl.fixed != nil && !t.simple.equal(text, *decl.fixed) {
			v.addf(n, path, "value %s must be the fixed value %s", quote(text), quote(*decl.fixed))
		}
	default:
		if !t.mixed && strings.Trim(n.text, " \t\r\n") != "" {
			v.addf(n, path, "text %s is not allowed: %s contains only elements", quote(strings.TrimSpace(n.text)), decl.name.local)
		}
		v.content(n, t, path)
	}
}

func builtinTypeDef(set *compiledSet, q qname) (*typeDef, bool) {
	if q.ns != xsdNS {
		return nil, false
	}
	if q.local == "anyType" {
		return set.anyType, true
	}
	st, ok := builtinTypes[q.local]
	if !ok {
		return nil, false
	}
	t, ok := set.builtins[st]
	return t, ok
}

func typeName(t *typeDef) string {
	if t.name.local == "" {
		return "(anonymous)"
	}
	return t.name.local
}

func (v *validator) attributes(n *inode, t *typeDef, path string) {
	for _, a := range n.attrs {
		if a.name.ns == xsiNS {
			continue
		}
		apath := path + "/@" + a.name.local
		if t.anyType {
			continue
		}
		d, ok := t.attrs[a.name]
		if !ok {
			v.addf(n, apath, "attribute %s is not allowed on %s", a.name, n.name.local)
			continue
		}
		if msg := d.typ.check(a.value); msg != "" {
			v.addf(n, apath, "%s", msg)
			continue
		}
		if d.fixed != nil && !d.typ.equal(a.value, *d.fixed) {
			v.addf(n, apath, "value %s must be the fixed value %s", quote(a.value), quote(*d.fixed))
		}
	}
	for _, d := range t.required {
		found := false
		for _, a := range n.attrs {
			if a.name == d.name {
				found = true
				break
			}
		}
		if !found {
			v.addf(n, path+"/@"+d.name.local, "required attribute %s is missing", d.name.local)
		}
	}
}

// content matches n's child elements against t's content model, then
// validates each child that the model accepted.
func (v *validator) content(n *inode, t *typeDef, path string) {
	m := matcher{kids: n.kids, decls: make([]*elementDecl, len(n.kids))}
	ok := true
	if t.content != nil {
		ok = m.particle(t.content)
	}
	if ok && m.i < len(n.kids) {
		ok = false
		m.note(nil)
	}
	// Index repeated siblings in paths, e.g. employee[3].
	counts := map[qname]int{}
	for _, k := range n.kids {
		counts[k.name]++
	}
	seen := map[qname]int{}
	kidPath := make([]string, len(n.kids))
	for i, k := range n.kids {
		seen[k.name]++
		kidPath[i] = path + "/" + k.name.local
		if counts[k.name] > 1 {
			kidPath[i] += "[" + strconv.Itoa(seen[k.name]) + "]"
		}
	}
	if !ok {
		expected := m.expectedList()
		if at := m.failAt; at < len(n.kids) {
			k := n.kids[at]
			if len(expected) == 0 {
				v.addf(k, kidPath[at], "element %s is not expected here", k.name)
			} else {
				v.addf(k, kidPath[at], "element %s is not expected here; expected %s", k.name, strings.Join(expected, " or "))
			}
		} else {
			v.addf(n, path, "element %s is incomplete; missing %s", n.name.local, strings.Join(expected, " or "))
		}
	}
	for i, k := range n.kids {
		if v.full() {
			v.truncated = true
			return
		}
		if d := m.decls[i]; d != nil {
			v.element(k, d, kidPath[i])
		}
	}
}

// matcher is a greedy, backtracking-free content-model matcher. XSD's Unique
// Particle Attribution rule guarantees each child element can be attributed
// to a particle by looking at that element alone, so choosing by first sets
// and consuming greedily is sound for schemas that obey it (IR's do, and the
// tests cross-check every sample and mutation against libxml2).
type matcher struct {
	kids  []*inode
	decls []*elementDecl // the declaration each child was matched to
	i     int            // next child to match
	// Failure bookkeeping: the names that would have been accepted at
	// position failAt.
	failAt   int
	expected map[string]bool
}

func (m *matcher) next() (qname, bool) {
	if m.i >= len(m.kids) {
		return qname{}, false
	}
	return m.kids[m.i].name, true
}

// note records that the particles with these first sets could have started
// at the current position; they make the "expected ..." list of an error.
func (m *matcher) note(first map[qname]*elementDecl) {
	if m.expected == nil || m.failAt != m.i {
		m.failAt = m.i
		m.expected = map[string]bool{}
	}
	for q := range first {
		m.expected[q.local] = true
	}
}

func (m *matcher) expectedList() []string {
	out := make([]string, 0, len(m.expected))
	for k := range m.expected {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// particle matches as many occurrences of p as the input allows, up to
// maxOccurs, and reports whether minOccurs was met.
func (m *matcher) particle(p *particle) bool {
	count := 0
	for p.max == unbounded || count < p.max {
		name, ok := m.next()
		if !ok || p.first[name] == nil {
			m.note(p.first)
			break
		}
		start := m.i
		if !m.term(p, name) {
			return false
		}
		count++
		if m.i == start {
			break // an empty occurrence; repeating it cannot help
		}
	}
	if count < p.min && !p.termNullable {
		m.note(p.first)
		return false
	}
	return true
}

// term matches one occurrence of p's term, which can start with name.
func (m *matcher) term(p *particle, name qname) bool {
	switch p.kind {
	case particleElement:
		m.decls[m.i] = p.elem
		m.i++
		return true
	case particleSequence:
		for _, c := range p.children {
			if !m.particle(c) {
				return false
			}
		}
		return true
	default: // choice
		for _, c := range p.children {
			if c.first[name] != nil {
				return m.particle(c)
			}
		}
		return false
	}
}
