// Package schema validates gateway payloads against Inland Revenue's XML
// Schemas, which are embedded in the binary.
//
// The payload is the element a DSP's software produces and IR's gateway
// validates before anything else: a GST or payday (EI) fileRequest,
// retrieveFormInfoRequest, retrieveFilingObligationsRequest, an Employment
// createRequest, an Intermediation linkRequest, and the responses IR
// declares. gatewayq validates it at enqueue, so a payload IR would reject
// with status 20 or 21 never costs a rate-limit permit, and the sandbox
// validates what it receives with the same schemas.
//
// The validator is pure Go and implements the part of XSD 1.0 that IR's
// schemas use: global and local elements (ref, nillable, fixed, anonymous
// types, any occurrence bounds), sequences and choices, complexContent and
// simpleContent extension with attributes, xsi:type selecting a derived type
// (required where the declared type is abstract), xsi:nil, and simple types
// restricting built-ins or each other with enumeration, pattern, length,
// minLength, maxLength, min/maxInclusive, min/maxExclusive, fractionDigits,
// totalDigits and whiteSpace. The schemas are compiled once, on first use;
// the compiler rejects any construct outside this subset, so a new schema
// version that needs more fails the package tests instead of being
// validated loosely.
//
// Known differences from a full XSD processor, none of which IR's schemas
// exercise: identity constraints, wildcards, substitution groups, complex
// restriction, list and union types, and the Unique Particle Attribution
// check are not implemented; date and time values without a timezone are
// compared as if in UTC.
package schema

import (
	"embed"
	"errors"
	"fmt"
	"strings"
	"sync"
)

//go:embed xsd/*.xsd
var xsdFS embed.FS

// maxProblems caps the problems one validation reports. A broken generator
// tends to repeat one mistake on every line of a large return; the first
// twenty say everything useful.
const maxProblems = 20

var (
	// ErrNotWellFormed means the document is not well-formed XML (or not
	// namespace-well-formed), so it was never checked against a schema.
	ErrNotWellFormed = errors.New("schema: document is not well-formed XML")
	// ErrUnknownElement means the root element is not a global element of
	// IR's schemas.
	ErrUnknownElement = errors.New("schema: root element is not declared in IR's schemas")
	// ErrSchema means the embedded schemas failed to compile. It indicates a
	// broken build, never a problem with the document.
	ErrSchema = errors.New("schema: embedded schemas failed to compile")
)

var (
	compileOnce sync.Once
	compiled    *compiledSet
	compileErr  error
)

func schemas() (*compiledSet, error) {
	compileOnce.Do(func() {
		compiled, compileErr = compileFS(xsdFS, "xsd")
		if compileErr != nil {
			compileErr = fmt.Errorf("%w: %w", ErrSchema, compileErr)
		}
	})
	return compiled, compileErr
}

// Problem is one way a document fails the schema.
type Problem struct {
	Line, Column int    // 1-based position of the offending element's start tag
	Path         string // e.g. /fileRequest/fileHeader/periodEndDate, /.../employee[3]/@code
	Message      string
}

func (p Problem) String() string {
	return fmt.Sprintf("line %d, column %d: %s: %s", p.Line, p.Column, p.Path, p.Message)
}

// ValidationError reports a well-formed document that does not conform to
// IR's schemas.
type ValidationError struct {
	Element  string // expanded name of the root, {namespace}local
	Problems []Problem
	// Truncated is set when more problems were found than Problems holds.
	Truncated bool
}

// Error summarises the first few problems. Messages quote at most a short
// prefix of any value, never the document.
func (e *ValidationError) Error() string {
	const shown = 3
	var b strings.Builder
	fmt.Fprintf(&b, "schema: %s does not conform to IR's schema", e.Element)
	n := len(e.Problems)
	if n == 0 {
		return b.String()
	}
	more := ""
	if e.Truncated {
		more = "+"
	}
	if n == 1 {
		b.WriteString(": ")
	} else {
		fmt.Fprintf(&b, " (%d%s problems): ", n, more)
	}
	for i, p := range e.Problems {
		if i == shown {
			fmt.Fprintf(&b, "; and %d more", n-shown)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Validate checks one XML document whose root element is a global element
// declared in IR's schemas. It returns nil; or an error wrapping
// ErrNotWellFormed or ErrUnknownElement; or a *ValidationError listing the
// problems found (at most 20). It is safe for concurrent use.
func Validate(doc []byte) error {
	return validate(doc, nil)
}

// ValidateElement is Validate for a caller that knows which element the
// document must be: a different root is reported as a problem.
func ValidateElement(doc []byte, namespace, local string) error {
	want := qname{namespace, local}
	if _, err := schemas(); err != nil {
		return err
	}
	if !Known(namespace, local) {
		return fmt.Errorf("%w: %s", ErrUnknownElement, want)
	}
	return validate(doc, &want)
}

// Known reports whether {namespace}local is a global element of the
// embedded schemas.
func Known(namespace, local string) bool {
	set, err := schemas()
	if err != nil {
		return false
	}
	_, ok := set.elements[qname{namespace, local}]
	return ok
}

// Element is the expanded name of a global element.
type Element struct{ Namespace, Local string }

// Elements lists the global elements of the embedded schemas, sorted by
// namespace then local name.
func Elements() []Element {
	set, err := schemas()
	if err != nil {
		return nil
	}
	var out []Element
	for _, q := range sortedKeys(set.elements) {
		out = append(out, Element{q.ns, q.local})
	}
	return out
}

func validate(doc []byte, want *qname) error {
	set, err := schemas()
	if err != nil {
		return err
	}
	return set.validate(doc, want)
}

func (set *compiledSet) validate(doc []byte, want *qname) error {
	root, notes, err := parseInstance(doc)
	if err != nil {
		var deep *tooDeepError
		if errors.As(err, &deep) {
			return &ValidationError{Element: deep.root.String(), Problems: []Problem{{
				Line: deep.line, Column: deep.col, Message: deep.Error(),
			}}}
		}
		return fmt.Errorf("%w: %w", ErrNotWellFormed, err)
	}
	if want != nil && root.name != *want {
		return &ValidationError{Element: root.name.String(), Problems: append(notes, Problem{
			Line: root.line, Column: root.col, Path: "/" + root.name.local,
			Message: fmt.Sprintf("root element is %s, want %s", root.name, *want),
		})}
	}
	decl, ok := set.elements[root.name]
	if !ok {
		return fmt.Errorf("%w: %s (line %d)", ErrUnknownElement, root.name, root.line)
	}
	v := &validator{set: set, problems: notes}
	v.element(root, decl, "/"+root.name.local)
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Element: root.name.String(), Problems: v.problems, Truncated: v.truncated}
}
