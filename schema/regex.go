package schema

import (
	"fmt"
	"regexp"
	"strings"
)

// XML Schema regular expressions (XSD 1.0 Part 2, Appendix F) differ from
// Go's RE2 syntax in ways that matter for validation:
//
//   - a pattern always matches the whole value (implicit anchors);
//   - '^' and '$' are ordinary characters outside character classes;
//   - '.' excludes only \n and \r (RE2 excludes only \n);
//   - \d, \w, \s, \i, \c are Unicode-aware classes with their own definitions;
//   - \p{IsBlock} names Unicode blocks, which RE2 does not know;
//   - character class subtraction [a-z-[aeiou]] has no RE2 equivalent.
//
// translateRegex rewrites an XSD pattern into an anchored RE2 pattern and
// rejects the constructs it cannot translate faithfully, so a future schema
// that uses them fails to compile loudly instead of validating wrongly.

// Go classes for the XSD multi-character escapes. \i and \c are approximated
// by the XML 1.0 fifth-edition name character ranges, which is what XSD 1.0
// processors such as libxml2 use in practice.
const (
	xsdNameStart = `:A-Z_a-z\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{2FF}\x{370}-\x{37D}\x{37F}-\x{1FFF}\x{200C}-\x{200D}\x{2070}-\x{218F}\x{2C00}-\x{2FEF}\x{3001}-\x{D7FF}\x{F900}-\x{FDCF}\x{FDF0}-\x{FFFD}\x{10000}-\x{EFFFF}`
	xsdNameChar  = xsdNameStart + `\-.0-9\x{B7}\x{300}-\x{36F}\x{203F}-\x{2040}`
)

// inClass is the translation of each escape when it appears inside [...];
// outside a class the same text is wrapped in brackets.
var xsdClassEscapes = map[byte]struct{ in, negated string }{
	'd': {in: `\p{Nd}`},
	'D': {negated: `\p{Nd}`},
	's': {in: ` \t\n\r`},
	'S': {negated: ` \t\n\r`},
	'w': {negated: `\p{P}\p{Z}\p{C}`},
	'W': {in: `\p{P}\p{Z}\p{C}`},
	'i': {in: xsdNameStart},
	'I': {negated: xsdNameStart},
	'c': {in: xsdNameChar},
	'C': {negated: xsdNameChar},
}

// Characters that XSD allows to be escaped with a backslash (SingleCharEsc).
const xsdSingleEscapes = `\|.-^?*+{}()[]$`

// compilePattern translates and compiles one XSD pattern facet value.
func compilePattern(pat string) (*regexp.Regexp, error) {
	goPat, err := translateRegex(pat)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", pat, err)
	}
	re, err := regexp.Compile(goPat)
	if err != nil {
		return nil, fmt.Errorf("pattern %q (as %q): %w", pat, goPat, err)
	}
	return re, nil
}

// translateRegex returns the RE2 equivalent of an XSD regular expression,
// anchored at both ends.
func translateRegex(pat string) (string, error) {
	var b strings.Builder
	b.WriteString(`^(?:`)
	inClass := false
	classStart := false // just after '[' or '[^'
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch {
		case c == '\\':
			if i+1 >= len(pat) {
				return "", fmt.Errorf("trailing backslash")
			}
			i++
			e := pat[i]
			switch {
			case e == 'n' || e == 'r' || e == 't':
				b.WriteByte('\\')
				b.WriteByte(e)
			case strings.IndexByte(xsdSingleEscapes, e) >= 0:
				b.WriteByte('\\')
				b.WriteByte(e)
			case e == 'p' || e == 'P':
				end := strings.IndexByte(pat[i:], '}')
				if i+1 >= len(pat) || pat[i+1] != '{' || end < 0 {
					return "", fmt.Errorf("malformed \\%c escape", e)
				}
				prop := pat[i+2 : i+end]
				if strings.HasPrefix(prop, "Is") {
					return "", fmt.Errorf("unicode block escape \\%c{%s} is not supported", e, prop)
				}
				b.WriteByte('\\')
				b.WriteByte(e)
				b.WriteString("{" + prop + "}")
				i += end
			default:
				esc, ok := xsdClassEscapes[e]
				if !ok {
					return "", fmt.Errorf("unknown escape \\%c", e)
				}
				if inClass {
					if esc.negated != "" {
						// A negated multi-char escape inside a class would need
						// class algebra RE2 lacks; IR's schemas never use it.
						return "", fmt.Errorf("negated escape \\%c inside a character class is not supported", e)
					}
					b.WriteString(esc.in)
				} else if esc.negated != "" {
					b.WriteString("[^" + esc.negated + "]")
				} else {
					b.WriteString("[" + esc.in + "]")
				}
			}
			classStart = false
		case inClass:
			switch c {
			case ']':
				if classStart {
					return "", fmt.Errorf("empty character class")
				}
				inClass = false
				b.WriteByte(c)
			case '[':
				return "", fmt.Errorf("character class subtraction is not supported")
			case '-':
				// "-[" starts a subtraction; a '-' elsewhere is a range or literal.
				if i+1 < len(pat) && pat[i+1] == '[' {
					return "", fmt.Errorf("character class subtraction is not supported")
				}
				b.WriteByte(c)
			default:
				b.WriteByte(c)
			}
			classStart = false
		default:
			switch c {
			case '[':
				inClass = true
				classStart = true
				b.WriteByte(c)
				if i+1 < len(pat) && pat[i+1] == '^' {
					b.WriteByte('^')
					i++
				}
			case '.':
				b.WriteString(`[^\n\r]`)
			case '^', '$':
				b.WriteByte('\\')
				b.WriteByte(c)
			case '(':
				b.WriteString("(?:")
			default:
				b.WriteByte(c)
			}
		}
	}
	if inClass {
		return "", fmt.Errorf("unterminated character class")
	}
	b.WriteString(`)$`)
	return b.String(), nil
}
