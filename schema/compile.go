package schema

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// The compiler turns XSD documents into the model in model.go. It supports
// exactly the constructs IR's schemas use (see the package comment) and
// fails on anything else, so a new schema version that needs more is caught
// by the tests instead of being half-understood at run time.

// xnode is a parsed XSD element with the namespace context needed to resolve
// QName-valued attributes such as type="cmn:DateType".
type xnode struct {
	name  qname
	attrs map[string]string // unqualified attributes
	ns    map[string]string // in-scope prefixes; "" is the default namespace
	kids  []*xnode
	doc   *schemaDoc
	line  int
}

type schemaDoc struct {
	file           string
	target         string
	qualifiedElems bool
	qualifiedAttrs bool
	imports        []*xnode
}

func (n *xnode) errorf(format string, args ...any) error {
	return fmt.Errorf("%s:%d: <%s>: %s", n.doc.file, n.line, n.name.local, fmt.Sprintf(format, args...))
}

// children returns the XSD children other than annotations.
func (n *xnode) children() []*xnode {
	out := n.kids[:0:0]
	for _, k := range n.kids {
		if k.name.local != "annotation" {
			out = append(out, k)
		}
	}
	return out
}

// allow fails if n carries an attribute outside the given list.
func (n *xnode) allow(names ...string) error {
	for a := range n.attrs {
		ok := false
		for _, x := range names {
			if a == x {
				ok = true
				break
			}
		}
		if !ok && a != "id" {
			return n.errorf("attribute %q is not supported", a)
		}
	}
	return nil
}

// resolve expands a QName-valued attribute in n's namespace context.
func (n *xnode) resolve(v string) (qname, error) {
	v = strings.TrimSpace(v)
	prefix, local, ok := strings.Cut(v, ":")
	if !ok {
		prefix, local = "", v
	}
	uri, found := n.ns[prefix]
	if !found && prefix != "" {
		return qname{}, n.errorf("prefix %q in %q is not declared", prefix, v)
	}
	return qname{uri, local}, nil
}

// parseXSD reads one schema document into an xnode tree.
func parseXSD(file string, data []byte) (*xnode, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	doc := &schemaDoc{file: file}
	var stack []*xnode
	var root *xnode
	ns := map[string]string{"xml": xmlNS}
	for {
		line, _ := d.InputPos()
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			parentNS := ns
			if len(stack) > 0 {
				parentNS = stack[len(stack)-1].ns
			}
			n := &xnode{name: qname{t.Name.Space, t.Name.Local}, attrs: map[string]string{}, ns: parentNS, doc: doc, line: line}
			copied := false
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
					if !copied {
						n.ns = make(map[string]string, len(parentNS)+1)
						for k, v := range parentNS {
							n.ns[k] = v
						}
						copied = true
					}
					prefix := a.Name.Local
					if a.Name.Space == "" {
						prefix = ""
					}
					n.ns[prefix] = a.Value
				case a.Name.Space == "":
					n.attrs[a.Name.Local] = a.Value
				}
			}
			if n.name.ns != xsdNS {
				return nil, n.errorf("element outside the XML Schema namespace")
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			} else {
				root = n
			}
			// Documentation is skipped wholesale: it may hold any markup.
			if n.name.local == "annotation" {
				if err := d.Skip(); err != nil {
					return nil, fmt.Errorf("%s: %w", file, err)
				}
				continue
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if root == nil || root.name.local != "schema" {
		return nil, fmt.Errorf("%s: root is not xsd:schema", file)
	}
	doc.target = root.attrs["targetNamespace"]
	doc.qualifiedElems = root.attrs["elementFormDefault"] == "qualified"
	doc.qualifiedAttrs = root.attrs["attributeFormDefault"] == "qualified"
	return root, nil
}

type compiler struct {
	rawElems map[qname]*xnode
	rawTypes map[qname]*xnode // complexType and simpleType share a symbol space
	elems    map[qname]*elementDecl
	types    map[qname]*typeDef
	building map[qname]bool // named types being compiled, to catch base cycles
	builtin  map[*simpleType]*typeDef
	anyType  *typeDef
}

// compileFS compiles every *.xsd file in dir of fsys.
func compileFS(fsys fs.FS, dir string) (*compiledSet, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.xsd"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no schemas in %s", dir)
	}
	sort.Strings(names)
	c := &compiler{
		rawElems: map[qname]*xnode{},
		rawTypes: map[qname]*xnode{},
		elems:    map[qname]*elementDecl{},
		types:    map[qname]*typeDef{},
		building: map[qname]bool{},
		builtin:  map[*simpleType]*typeDef{},
	}
	c.anyType = &typeDef{name: qname{xsdNS, "anyType"}, complex: true, anyType: true, mixed: true}
	targets := map[string]string{} // file -> target namespace
	var docs []*xnode
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		root, err := parseXSD(path.Base(name), data)
		if err != nil {
			return nil, err
		}
		if err := root.allow("targetNamespace", "elementFormDefault", "attributeFormDefault", "version"); err != nil {
			return nil, err
		}
		targets[name] = root.doc.target
		docs = append(docs, root)
	}
	for i, root := range docs {
		for _, n := range root.children() {
			switch n.name.local {
			case "import":
				if err := n.allow("namespace", "schemaLocation"); err != nil {
					return nil, err
				}
				loc := path.Join(path.Dir(names[i]), n.attrs["schemaLocation"])
				got, ok := targets[loc]
				if !ok {
					return nil, n.errorf("schemaLocation %q is not among the embedded schemas", n.attrs["schemaLocation"])
				}
				if got != n.attrs["namespace"] {
					return nil, n.errorf("%q has target namespace %q, import says %q", loc, got, n.attrs["namespace"])
				}
			case "element":
				q := qname{root.doc.target, n.attrs["name"]}
				if _, dup := c.rawElems[q]; dup {
					return nil, n.errorf("duplicate global element %s", q)
				}
				c.rawElems[q] = n
			case "complexType", "simpleType":
				q := qname{root.doc.target, n.attrs["name"]}
				if _, dup := c.rawTypes[q]; dup {
					return nil, n.errorf("duplicate global type %s", q)
				}
				c.rawTypes[q] = n
			default:
				return nil, n.errorf("top-level <%s> is not supported", n.name.local)
			}
		}
	}
	// Compile every named type, used or not, so an unsupported construct
	// anywhere in the schemas is reported now.
	for _, q := range sortedKeys(c.rawTypes) {
		if _, err := c.typeByName(c.rawTypes[q], q, false); err != nil {
			return nil, err
		}
	}
	for _, q := range sortedKeys(c.rawElems) {
		if _, err := c.globalElement(q); err != nil {
			return nil, err
		}
	}
	// Wrap every built-in so xsi:type may name any of them.
	for _, st := range builtinTypes {
		c.simpleTypeDef(st)
	}
	return &compiledSet{elements: c.elems, types: c.types, builtins: c.builtin, anyType: c.anyType}, nil
}

func sortedKeys[V any](m map[qname]V) []qname {
	keys := make([]qname, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].ns != keys[j].ns {
			return keys[i].ns < keys[j].ns
		}
		return keys[i].local < keys[j].local
	})
	return keys
}

// typeByName resolves a type reference made at node from. A base type
// (asDerivationBase) must be complete; an element's type may still be under
// construction, which is how recursive content models work.
func (c *compiler) typeByName(from *xnode, q qname, asDerivationBase bool) (*typeDef, error) {
	if q.ns == xsdNS {
		if q.local == "anyType" {
			return c.anyType, nil
		}
		st, ok := builtinTypes[q.local]
		if !ok {
			return nil, from.errorf("built-in type xsd:%s is not supported", q.local)
		}
		return c.simpleTypeDef(st), nil
	}
	if t, ok := c.types[q]; ok {
		if c.building[q] && asDerivationBase {
			return nil, from.errorf("type %s derives from itself", q)
		}
		return t, nil
	}
	n, ok := c.rawTypes[q]
	if !ok {
		return nil, from.errorf("type %s is not defined", q)
	}
	if c.building[q] {
		return nil, from.errorf("simple type %s derives from itself", q)
	}
	if n.name.local == "simpleType" {
		c.building[q] = true
		st, err := c.simpleType(n, q)
		delete(c.building, q)
		if err != nil {
			return nil, err
		}
		t := c.simpleTypeDef(st)
		c.types[q] = t
		return t, nil
	}
	// Register the complex type before compiling its content so element
	// declarations inside it may refer back to it.
	t := &typeDef{name: q, complex: true}
	c.types[q] = t
	c.building[q] = true
	err := c.complexType(n, t)
	delete(c.building, q)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// simpleTypeDef wraps a simpleType as a typeDef, with base links mirroring
// the simpleType chain so xsi:type derivation checks work.
func (c *compiler) simpleTypeDef(st *simpleType) *typeDef {
	if t, ok := c.builtin[st]; ok {
		return t
	}
	t := &typeDef{name: st.name, simple: st, base: c.anyType}
	if st.base != nil {
		t.base = c.simpleTypeDef(st.base)
	}
	c.builtin[st] = t
	return t
}

func (c *compiler) simpleTypeRef(from *xnode, ref string) (*simpleType, error) {
	q, err := from.resolve(ref)
	if err != nil {
		return nil, err
	}
	t, err := c.typeByName(from, q, true)
	if err != nil {
		return nil, err
	}
	if t.complex || t.simple == nil {
		return nil, from.errorf("%s is not a simple type", q)
	}
	return t.simple, nil
}

// simpleType compiles an xsd:simpleType (named or anonymous).
func (c *compiler) simpleType(n *xnode, name qname) (*simpleType, error) {
	if err := n.allow("name"); err != nil {
		return nil, err
	}
	kids := n.children()
	if len(kids) != 1 || kids[0].name.local != "restriction" {
		return nil, n.errorf("only <restriction> is supported in a simple type")
	}
	r := kids[0]
	if err := r.allow("base"); err != nil {
		return nil, err
	}
	var base *simpleType
	facetNodes := r.children()
	if b, ok := r.attrs["base"]; ok {
		var err error
		if base, err = c.simpleTypeRef(r, b); err != nil {
			return nil, err
		}
	} else if len(facetNodes) > 0 && facetNodes[0].name.local == "simpleType" {
		var err error
		if base, err = c.simpleType(facetNodes[0], qname{}); err != nil {
			return nil, err
		}
		facetNodes = facetNodes[1:]
	} else {
		return nil, r.errorf("restriction without a base")
	}
	st := &simpleType{name: name, base: base, prim: base.prim, ws: base.ws}
	if err := c.facets(st, facetNodes); err != nil {
		return nil, err
	}
	return st, nil
}

func (c *compiler) facets(st *simpleType, nodes []*xnode) error {
	f := &st.facets
	f.boundText = map[string]string{}
	intFacet := func(n *xnode) (*int, error) {
		v, err := strconv.Atoi(strings.TrimSpace(n.attrs["value"]))
		if err != nil || v < 0 {
			return nil, n.errorf("value %q is not a non-negative integer", n.attrs["value"])
		}
		return &v, nil
	}
	boundFacet := func(n *xnode) (*value, error) {
		s := normalize(n.attrs["value"], wsCollapse)
		v, msg := parseValue(st.prim, s)
		if msg != "" {
			return nil, n.errorf("%s", msg)
		}
		f.boundText[n.name.local] = s
		return &v, nil
	}
	// whiteSpace must apply before enumeration values are normalized.
	for _, n := range nodes {
		if n.name.local == "whiteSpace" {
			switch n.attrs["value"] {
			case "preserve":
				st.ws = wsPreserve
			case "replace":
				st.ws = wsReplace
			case "collapse":
				st.ws = wsCollapse
			default:
				return n.errorf("bad whiteSpace %q", n.attrs["value"])
			}
		}
	}
	var err error
	for _, n := range nodes {
		if err := n.allow("value", "fixed"); err != nil {
			return err
		}
		if _, ok := n.attrs["value"]; !ok {
			return n.errorf("facet without a value")
		}
		switch n.name.local {
		case "whiteSpace":
		case "enumeration":
			s := normalize(n.attrs["value"], st.ws)
			v, msg := parseValue(st.prim, s)
			if msg != "" {
				return n.errorf("%s", msg)
			}
			f.enum = append(f.enum, v)
			f.enumText = append(f.enumText, s)
		case "pattern":
			re, err := compilePattern(n.attrs["value"])
			if err != nil {
				return n.errorf("%v", err)
			}
			f.patterns = append(f.patterns, re)
			f.patternText = append(f.patternText, n.attrs["value"])
		case "length":
			f.length, err = intFacet(n)
		case "minLength":
			f.minLength, err = intFacet(n)
		case "maxLength":
			f.maxLength, err = intFacet(n)
		case "fractionDigits":
			f.fractionDigits, err = intFacet(n)
		case "totalDigits":
			f.totalDigits, err = intFacet(n)
		case "minInclusive":
			f.minInclusive, err = boundFacet(n)
		case "maxInclusive":
			f.maxInclusive, err = boundFacet(n)
		case "minExclusive":
			f.minExclusive, err = boundFacet(n)
		case "maxExclusive":
			f.maxExclusive, err = boundFacet(n)
		default:
			return n.errorf("facet <%s> is not supported", n.name.local)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// complexType compiles an xsd:complexType into t.
func (c *compiler) complexType(n *xnode, t *typeDef) error {
	if err := n.allow("name", "abstract", "mixed"); err != nil {
		return err
	}
	t.abstract = n.attrs["abstract"] == "true" || n.attrs["abstract"] == "1"
	t.mixed = n.attrs["mixed"] == "true" || n.attrs["mixed"] == "1"
	t.base = c.anyType
	t.attrs = map[qname]*attrDecl{}
	kids := n.children()
	if len(kids) == 1 && (kids[0].name.local == "complexContent" || kids[0].name.local == "simpleContent") {
		return c.derivedContent(kids[0], t)
	}
	return c.contentAndAttrs(kids, t)
}

// contentAndAttrs compiles an optional model group followed by attributes.
func (c *compiler) contentAndAttrs(kids []*xnode, t *typeDef) error {
	for i, k := range kids {
		switch k.name.local {
		case "sequence", "choice":
			if i != 0 {
				return k.errorf("model group after attributes")
			}
			p, err := c.group(k)
			if err != nil {
				return err
			}
			t.content = p
		case "attribute":
			if err := c.attribute(k, t); err != nil {
				return err
			}
		default:
			return k.errorf("<%s> is not supported in a complex type", k.name.local)
		}
	}
	if t.content != nil {
		t.content.finish()
	}
	return nil
}

func (c *compiler) derivedContent(n *xnode, t *typeDef) error {
	if err := n.allow("mixed"); err != nil {
		return err
	}
	if n.attrs["mixed"] == "true" {
		t.mixed = true
	}
	kids := n.children()
	if len(kids) != 1 || kids[0].name.local != "extension" {
		return n.errorf("only <extension> is supported in <%s>", n.name.local)
	}
	ext := kids[0]
	if err := ext.allow("base"); err != nil {
		return err
	}
	q, err := ext.resolve(ext.attrs["base"])
	if err != nil {
		return err
	}
	base, err := c.typeByName(ext, q, true)
	if err != nil {
		return err
	}
	t.base = base
	for k, v := range base.attrs {
		t.attrs[k] = v
	}
	t.required = append(t.required, base.required...)
	if n.name.local == "simpleContent" {
		switch {
		case !base.complex:
			t.simple = base.simple
		case base.simple != nil:
			t.simple = base.simple
		default:
			return ext.errorf("simpleContent base %s has no simple content", q)
		}
		for _, k := range ext.children() {
			if k.name.local != "attribute" {
				return k.errorf("<%s> is not supported in a simpleContent extension", k.name.local)
			}
			if err := c.attribute(k, t); err != nil {
				return err
			}
		}
		return nil
	}
	if !base.complex || base.simple != nil || base.anyType {
		return ext.errorf("complexContent extension of %s is not supported", q)
	}
	own := &typeDef{attrs: t.attrs}
	if err := c.contentAndAttrs(ext.children(), own); err != nil {
		return err
	}
	t.required = append(t.required, own.required...)
	// The effective content of an extension is the base's content model
	// followed by the extension's own.
	switch {
	case base.content == nil:
		t.content = own.content
	case own.content == nil:
		t.content = base.content
	default:
		t.content = &particle{kind: particleSequence, min: 1, max: 1, children: []*particle{base.content, own.content}}
		t.content.finish()
	}
	t.mixed = t.mixed || base.mixed
	return nil
}

func (c *compiler) attribute(n *xnode, t *typeDef) error {
	if err := n.allow("name", "type", "use", "fixed", "default", "form"); err != nil {
		return err
	}
	name := n.attrs["name"]
	if name == "" {
		return n.errorf("attribute without a name (ref= is not supported)")
	}
	a := &attrDecl{name: qname{"", name}}
	if f, ok := n.attrs["form"]; (ok && f == "qualified") || (!ok && n.doc.qualifiedAttrs) {
		a.name.ns = n.doc.target
	}
	switch n.attrs["use"] {
	case "", "optional":
	case "required":
		a.required = true
	default:
		return n.errorf("use=%q is not supported", n.attrs["use"])
	}
	inline := n.children()
	switch {
	case n.attrs["type"] != "":
		st, err := c.simpleTypeRef(n, n.attrs["type"])
		if err != nil {
			return err
		}
		a.typ = st
	case len(inline) == 1 && inline[0].name.local == "simpleType":
		st, err := c.simpleType(inline[0], qname{})
		if err != nil {
			return err
		}
		a.typ = st
	case len(inline) == 0:
		a.typ = builtinTypes["anySimpleType"]
	default:
		return n.errorf("unsupported attribute content")
	}
	if f, ok := n.attrs["fixed"]; ok {
		if msg := a.typ.check(f); msg != "" {
			return n.errorf("fixed value: %s", msg)
		}
		a.fixed = &f
	}
	if _, dup := t.attrs[a.name]; dup {
		return n.errorf("duplicate attribute %s", a.name)
	}
	t.attrs[a.name] = a
	if a.required {
		t.required = append(t.required, a)
	}
	return nil
}

func occurs(n *xnode) (min, max int, err error) {
	min, max = 1, 1
	if v, ok := n.attrs["minOccurs"]; ok {
		if min, err = strconv.Atoi(strings.TrimSpace(v)); err != nil || min < 0 {
			return 0, 0, n.errorf("bad minOccurs %q", v)
		}
	}
	if v, ok := n.attrs["maxOccurs"]; ok {
		if strings.TrimSpace(v) == "unbounded" {
			max = unbounded
		} else if max, err = strconv.Atoi(strings.TrimSpace(v)); err != nil || max < 0 {
			return 0, 0, n.errorf("bad maxOccurs %q", v)
		}
	}
	if max != unbounded && max < min {
		return 0, 0, n.errorf("maxOccurs %d < minOccurs %d", max, min)
	}
	return min, max, nil
}

// group compiles a sequence or choice.
func (c *compiler) group(n *xnode) (*particle, error) {
	if err := n.allow("minOccurs", "maxOccurs"); err != nil {
		return nil, err
	}
	p := &particle{kind: particleSequence}
	if n.name.local == "choice" {
		p.kind = particleChoice
	}
	var err error
	if p.min, p.max, err = occurs(n); err != nil {
		return nil, err
	}
	for _, k := range n.children() {
		var child *particle
		switch k.name.local {
		case "element":
			child, err = c.localElement(k)
		case "sequence", "choice":
			child, err = c.group(k)
		default:
			return nil, k.errorf("<%s> is not supported in a model group", k.name.local)
		}
		if err != nil {
			return nil, err
		}
		p.children = append(p.children, child)
	}
	return p, nil
}

func (c *compiler) localElement(n *xnode) (*particle, error) {
	p := &particle{kind: particleElement}
	var err error
	if p.min, p.max, err = occurs(n); err != nil {
		return nil, err
	}
	if ref, ok := n.attrs["ref"]; ok {
		if err := n.allow("ref", "minOccurs", "maxOccurs"); err != nil {
			return nil, err
		}
		q, err := n.resolve(ref)
		if err != nil {
			return nil, err
		}
		if p.elem, err = c.globalElement(q); err != nil {
			return nil, err
		}
		return p, nil
	}
	if err := n.allow("name", "type", "minOccurs", "maxOccurs", "nillable", "fixed", "default", "form"); err != nil {
		return nil, err
	}
	name := qname{"", n.attrs["name"]}
	if f, ok := n.attrs["form"]; (ok && f == "qualified") || (!ok && n.doc.qualifiedElems) {
		name.ns = n.doc.target
	}
	p.elem, err = c.elementDecl(n, name)
	return p, err
}

func (c *compiler) globalElement(q qname) (*elementDecl, error) {
	if e, ok := c.elems[q]; ok {
		return e, nil
	}
	n, ok := c.rawElems[q]
	if !ok {
		return nil, fmt.Errorf("element %s is not declared", q)
	}
	if err := n.allow("name", "type", "nillable", "fixed", "default", "abstract"); err != nil {
		return nil, err
	}
	e, err := c.elementDecl(n, q)
	if err != nil {
		return nil, err
	}
	c.elems[q] = e
	return e, nil
}

func (c *compiler) elementDecl(n *xnode, name qname) (*elementDecl, error) {
	if name.local == "" {
		return nil, n.errorf("element without a name")
	}
	e := &elementDecl{
		name:     name,
		nillable: isTrue(n.attrs["nillable"]),
		abstract: isTrue(n.attrs["abstract"]),
	}
	inline := n.children()
	switch {
	case n.attrs["type"] != "":
		if len(inline) != 0 {
			return nil, n.errorf("element has both type= and an inline type")
		}
		q, err := n.resolve(n.attrs["type"])
		if err != nil {
			return nil, err
		}
		if e.typ, err = c.typeByName(n, q, false); err != nil {
			return nil, err
		}
	case len(inline) == 1 && inline[0].name.local == "simpleType":
		st, err := c.simpleType(inline[0], qname{})
		if err != nil {
			return nil, err
		}
		e.typ = &typeDef{simple: st, base: c.simpleTypeDef(st.base)}
	case len(inline) == 1 && inline[0].name.local == "complexType":
		e.typ = &typeDef{complex: true}
		if err := c.complexType(inline[0], e.typ); err != nil {
			return nil, err
		}
	case len(inline) == 0:
		e.typ = c.anyType // an element without a type is of xsd:anyType
	default:
		return nil, n.errorf("unsupported element content")
	}
	for _, attr := range []string{"fixed", "default"} {
		v, ok := n.attrs[attr]
		if !ok {
			continue
		}
		if e.typ.complex && !e.typ.anyType && e.typ.simple == nil && !e.typ.mixed {
			return nil, n.errorf("%s value on an element with element-only content", attr)
		}
		if e.typ.simple != nil {
			if msg := e.typ.simple.check(v); msg != "" {
				return nil, n.errorf("%s value: %s", attr, msg)
			}
		}
		if attr == "fixed" {
			e.fixed = &v
		} else {
			e.def = &v
		}
	}
	return e, nil
}

func isTrue(s string) bool { return s == "true" || s == "1" }
