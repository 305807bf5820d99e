package schema

const (
	xsdNS = "http://www.w3.org/2001/XMLSchema"
	xsiNS = "http://www.w3.org/2001/XMLSchema-instance"
	xmlNS = "http://www.w3.org/XML/1998/namespace"
)

// qname is an expanded name: namespace URI and local part.
type qname struct{ ns, local string }

func (q qname) String() string {
	if q.ns == "" {
		return q.local
	}
	return "{" + q.ns + "}" + q.local
}

// compiledSet is the immutable result of compiling the embedded schemas; it
// is shared by all validations without locking.
type compiledSet struct {
	elements map[qname]*elementDecl // global elements
	types    map[qname]*typeDef     // named types, for xsi:type
	builtins map[*simpleType]*typeDef
	anyType  *typeDef
}

// elementDecl is a global or local element declaration.
type elementDecl struct {
	name     qname
	typ      *typeDef
	nillable bool
	abstract bool
	fixed    *string
	def      *string
}

// typeDef is a simple or complex type definition. Simple types and complex
// types with simple content carry their value type in simple.
type typeDef struct {
	name     qname // zero for anonymous types
	complex  bool
	anyType  bool // xsd:anyType: any attributes, any content, mixed
	abstract bool
	mixed    bool
	base     *typeDef    // the type this one derives from; nil for anyType
	simple   *simpleType // value type for simple types and simple content
	content  *particle   // element-only content; nil means empty
	attrs    map[qname]*attrDecl
	required []*attrDecl // required attributes in declaration order
}

type attrDecl struct {
	name     qname
	typ      *simpleType
	required bool
	fixed    *string
}

type particleKind int

const (
	particleElement particleKind = iota
	particleSequence
	particleChoice
)

const unbounded = -1

// particle is a node of a content model: an element, or a sequence or choice
// of particles, each with occurrence bounds.
type particle struct {
	kind     particleKind
	min, max int // max == unbounded for maxOccurs="unbounded"
	elem     *elementDecl
	children []*particle
	// first is the set of element names that can start one occurrence of
	// the particle's term; termNullable says whether an occurrence can be
	// empty. Both are computed once at compile time for the matcher.
	first        map[qname]*elementDecl
	termNullable bool
}

func (p *particle) nullable() bool { return p.min == 0 || p.termNullable }

// finish computes first sets and nullability bottom-up.
func (p *particle) finish() {
	p.first = map[qname]*elementDecl{}
	switch p.kind {
	case particleElement:
		p.first[p.elem.name] = p.elem
		p.termNullable = false
	case particleSequence:
		p.termNullable = true
		for _, c := range p.children {
			c.finish()
			if p.termNullable {
				for k, v := range c.first {
					p.first[k] = v
				}
				if !c.nullable() {
					p.termNullable = false
				}
			}
		}
	case particleChoice:
		p.termNullable = len(p.children) == 0
		for _, c := range p.children {
			c.finish()
			for k, v := range c.first {
				p.first[k] = v
			}
			if c.nullable() {
				p.termNullable = true
			}
		}
	}
}

// derivesFrom reports whether t is base or derived from it, as xsi:type
// requires of the type it names.
func (t *typeDef) derivesFrom(base *typeDef) bool {
	if base.anyType {
		return true
	}
	for x := t; x != nil; x = x.base {
		if x == base {
			return true
		}
	}
	// Simple types derive through their simpleType chain.
	if !t.complex && !base.complex && t.simple != nil && base.simple != nil {
		for s := t.simple; s != nil; s = s.base {
			if s == base.simple {
				return true
			}
		}
	}
	return false
}
