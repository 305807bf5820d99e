package config

import (
	"encoding"
	"errors"
	"reflect"
	"strings"
)

// FieldError is one bad setting. Field is the YAML path ("tls.client_key"),
// or for a bad environment variable, the variable's name. Validate and Load
// return every FieldError they find, joined with errors.Join; use
// errors.As, or Fields, to pick them out.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Sentinels wrapped by FieldError, for callers that branch on the cause.
var (
	// ErrUnknownKey: the YAML file has a key no setting has.
	ErrUnknownKey = errors.New("unknown key")
	// ErrUnknownEnv: a GATEWAYQ_* variable that names no setting.
	ErrUnknownEnv = errors.New("unknown variable")
	// ErrKeyFileMode: a private key or secret file is readable by group
	// or others.
	ErrKeyFileMode = errors.New("readable by group or others")
)

// Fields returns the Field of every FieldError in err's tree, in order. It
// is meant for tests and for tools that highlight bad settings.
func Fields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *FieldError:
			out = append(out, e.Field)
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// errs collects FieldErrors in the order they are found.
type errs []error

func (e *errs) add(field string, err error) {
	*e = append(*e, &FieldError{Field: field, Err: err})
}

func (e errs) join() error { return errors.Join(e...) }

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// isLeaf reports whether a field of type t is one setting rather than a
// section: every non-struct, and structs that parse themselves.
func isLeaf(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return true
	}
	return reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// yamlName is the field's key in YAML, or "" for a field YAML ignores.
func yamlName(sf reflect.StructField) string {
	if !sf.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(sf.Name)
	}
	return name
}

// leaf is one setting found by walkLeaves.
type leaf struct {
	path  []string // YAML keys from the root
	value reflect.Value
	field reflect.StructField
}

func (l leaf) yamlPath() string { return strings.Join(l.path, ".") }

func (l leaf) envName() string {
	return envPrefix + strings.ToUpper(strings.Join(l.path, "_"))
}

func (l leaf) secret() bool { return l.field.Tag.Get("secret") == "true" }

// walkLeaves calls fn for every setting under v (a struct value), in
// declaration order. Walking the struct (rather than listing settings by
// hand) is what gives every new field its environment variable, its
// unknown-key check and its redaction for free.
func walkLeaves(v reflect.Value, path []string, fn func(leaf)) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		name := yamlName(sf)
		if name == "" {
			continue
		}
		p := append(path[:len(path):len(path)], name)
		fv := v.Field(i)
		if isLeaf(sf.Type) {
			fn(leaf{path: p, value: fv, field: sf})
			continue
		}
		walkLeaves(fv, p, fn)
	}
}

// fieldByYAML finds the field of struct type t whose YAML key is key.
func fieldByYAML(t reflect.Type, key string) (int, bool) {
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == key {
			return i, true
		}
	}
	return 0, false
}

// yamlKeys lists the YAML keys of struct type t.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if n := yamlName(t.Field(i)); n != "" {
			keys = append(keys, n)
		}
	}
	return keys
}

// suggest returns the candidate closest to s, if it is close enough to be
// a likely typo.
func suggest(s string, candidates []string) string {
	best, bestD := "", len(s)/4+2
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
