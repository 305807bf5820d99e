package schema

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// primitive is the XSD primitive type at the root of a simple type's
// derivation chain; it fixes the lexical space and how values compare.
type primitive int

const (
	primAnySimple primitive = iota
	primString
	primBoolean
	primDecimal
	primFloat
	primDate
	primDateTime
	primTime
	primGYear
	primGYearMonth
)

// whitespace is the XSD whiteSpace facet.
type whitespace int

const (
	wsPreserve whitespace = iota
	wsReplace
	wsCollapse
)

// simpleType is one step in a derivation chain. A value is valid for a type
// when it is valid for every step from the type up to its primitive, which is
// how facets are inherited: each restriction only narrows its base.
type simpleType struct {
	name qname // zero for anonymous types
	base *simpleType
	prim primitive
	ws   whitespace
	// lexical is an extra lexical check some built-ins add on top of their
	// primitive (xsd:integer forbids a decimal point).
	lexical *regexp.Regexp
	facets  facets
}

// facets holds the constraining facets declared on one restriction step.
// Pointers and nil slices mean "not declared here".
type facets struct {
	enum           []value
	enumText       []string // for messages
	patterns       []*regexp.Regexp
	patternText    []string
	length         *int
	minLength      *int
	maxLength      *int
	minInclusive   *value
	maxInclusive   *value
	minExclusive   *value
	maxExclusive   *value
	fractionDigits *int
	totalDigits    *int
	boundText      map[string]string // facet name -> lexical value, for messages
}

// value is a parsed value in a primitive's value space.
type value struct {
	s   string  // the normalized lexical form (string-like types)
	num decimal // decimal
	f   float64 // float/double
	b   bool    // boolean
	t   timeVal // date, dateTime, time, gYear, gYearMonth
	// digits of a decimal: total significant digits and fraction digits,
	// after dropping leading and trailing zeros as the value space does.
	total, frac int
}

// timeVal is a point on the time line reduced to a comparable pair. Values
// without a timezone are treated as UTC; XSD calls such comparisons
// indeterminate within 14 hours, which never matters for IR's date bounds.
type timeVal struct {
	sec  int64
	frac string // fractional seconds digits, trailing zeros removed
}

func (t timeVal) cmp(u timeVal) int {
	switch {
	case t.sec < u.sec:
		return -1
	case t.sec > u.sec:
		return 1
	}
	return strings.Compare(t.frac, u.frac)
}

// builtinTypes are the XSD built-in simple types this package knows, keyed by
// local name in the XML Schema namespace.
var builtinTypes = buildBuiltins()

func buildBuiltins() map[string]*simpleType {
	m := map[string]*simpleType{}
	add := func(name string, base *simpleType, prim primitive, ws whitespace) *simpleType {
		t := &simpleType{name: qname{xsdNS, name}, base: base, prim: prim, ws: ws}
		m[name] = t
		return t
	}
	bound := func(t *simpleType, min, max string) {
		if min != "" {
			v := mustDecimal(min)
			t.facets.minInclusive = &v
		}
		if max != "" {
			v := mustDecimal(max)
			t.facets.maxInclusive = &v
		}
		t.facets.boundText = map[string]string{"minInclusive": min, "maxInclusive": max}
	}
	add("anySimpleType", nil, primAnySimple, wsPreserve)
	str := add("string", nil, primString, wsPreserve)
	ns := add("normalizedString", str, primString, wsReplace)
	tok := add("token", ns, primString, wsCollapse)
	add("anyURI", nil, primString, wsCollapse)
	lang := add("language", tok, primString, wsCollapse)
	lang.lexical = regexp.MustCompile(`^[a-zA-Z]{1,8}(?:-[a-zA-Z0-9]{1,8})*$`)
	nmtoken := add("NMTOKEN", tok, primString, wsCollapse)
	nmtoken.lexical = regexp.MustCompile(`^[` + xsdNameChar + `]+$`)
	name := add("Name", tok, primString, wsCollapse)
	name.lexical = regexp.MustCompile(`^[` + xsdNameStart + `][` + xsdNameChar + `]*$`)
	ncname := add("NCName", name, primString, wsCollapse)
	ncname.lexical = regexp.MustCompile(`^[^:]*$`)
	add("boolean", nil, primBoolean, wsCollapse)
	add("float", nil, primFloat, wsCollapse)
	add("double", nil, primFloat, wsCollapse)
	add("date", nil, primDate, wsCollapse)
	add("dateTime", nil, primDateTime, wsCollapse)
	add("time", nil, primTime, wsCollapse)
	add("gYear", nil, primGYear, wsCollapse)
	add("gYearMonth", nil, primGYearMonth, wsCollapse)
	dec := add("decimal", nil, primDecimal, wsCollapse)
	integer := add("integer", dec, primDecimal, wsCollapse)
	integer.lexical = regexp.MustCompile(`^[+-]?[0-9]+$`)
	npi := add("nonPositiveInteger", integer, primDecimal, wsCollapse)
	bound(npi, "", "0")
	neg := add("negativeInteger", npi, primDecimal, wsCollapse)
	bound(neg, "", "-1")
	long := add("long", integer, primDecimal, wsCollapse)
	bound(long, "-9223372036854775808", "9223372036854775807")
	i32 := add("int", long, primDecimal, wsCollapse)
	bound(i32, "-2147483648", "2147483647")
	i16 := add("short", i32, primDecimal, wsCollapse)
	bound(i16, "-32768", "32767")
	i8 := add("byte", i16, primDecimal, wsCollapse)
	bound(i8, "-128", "127")
	nni := add("nonNegativeInteger", integer, primDecimal, wsCollapse)
	bound(nni, "0", "")
	ul := add("unsignedLong", nni, primDecimal, wsCollapse)
	bound(ul, "", "18446744073709551615")
	ui := add("unsignedInt", ul, primDecimal, wsCollapse)
	bound(ui, "", "4294967295")
	us := add("unsignedShort", ui, primDecimal, wsCollapse)
	bound(us, "", "65535")
	ub := add("unsignedByte", us, primDecimal, wsCollapse)
	bound(ub, "", "255")
	pos := add("positiveInteger", nni, primDecimal, wsCollapse)
	bound(pos, "1", "")
	return m
}

func mustDecimal(s string) value {
	v, ok := parseDecimal(s)
	if !ok {
		panic("schema: bad built-in bound " + s)
	}
	return v
}

// normalize applies the whiteSpace facet.
func normalize(s string, ws whitespace) string {
	switch ws {
	case wsReplace:
		return strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, s)
	case wsCollapse:
		return strings.Join(strings.FieldsFunc(s, isXMLSpace), " ")
	}
	return s
}

func isXMLSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// check validates a lexical value against the type and returns a message
// describing the first violation, or "" when the value is valid.
func (t *simpleType) check(raw string) string {
	s := normalize(raw, t.ws)
	v, msg := parseValue(t.prim, s)
	if msg != "" {
		return msg
	}
	for st := t; st != nil; st = st.base {
		if msg := st.checkFacets(s, v); msg != "" {
			return msg
		}
	}
	return ""
}

// equal reports whether two lexical values denote the same value of t, for
// fixed-value constraints.
func (t *simpleType) equal(a, b string) bool {
	na, nb := normalize(a, t.ws), normalize(b, t.ws)
	va, m1 := parseValue(t.prim, na)
	vb, m2 := parseValue(t.prim, nb)
	if m1 != "" || m2 != "" {
		return na == nb
	}
	return compareValues(t.prim, va, vb) == 0
}

func (t *simpleType) checkFacets(s string, v value) string {
	f := &t.facets
	if t.lexical != nil && !t.lexical.MatchString(s) {
		return fmt.Sprintf("%s is not a valid %s", quote(s), t.name.local)
	}
	if f.enum != nil {
		found := false
		for _, e := range f.enum {
			if compareValues(t.prim, v, e) == 0 {
				found = true
				break
			}
		}
		if !found {
			return fmt.Sprintf("%s is not one of the allowed values %s", quote(s), enumList(f.enumText))
		}
	}
	if f.patterns != nil {
		ok := false
		for _, re := range f.patterns {
			if re.MatchString(s) {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Sprintf("%s does not match the pattern %q", quote(s), strings.Join(f.patternText, "|"))
		}
	}
	if f.length != nil || f.minLength != nil || f.maxLength != nil {
		n := utf8.RuneCountInString(s)
		switch {
		case f.length != nil && n != *f.length:
			return fmt.Sprintf("%s has length %d, want exactly %d", quote(s), n, *f.length)
		case f.minLength != nil && n < *f.minLength:
			return fmt.Sprintf("%s has length %d, want at least %d", quote(s), n, *f.minLength)
		case f.maxLength != nil && n > *f.maxLength:
			return fmt.Sprintf("%s has length %d, want at most %d", quote(s), n, *f.maxLength)
		}
	}
	if f.minInclusive != nil && compareValues(t.prim, v, *f.minInclusive) < 0 {
		return fmt.Sprintf("%s is less than the minimum %s", quote(s), f.boundText["minInclusive"])
	}
	if f.maxInclusive != nil && compareValues(t.prim, v, *f.maxInclusive) > 0 {
		return fmt.Sprintf("%s is greater than the maximum %s", quote(s), f.boundText["maxInclusive"])
	}
	if f.minExclusive != nil && compareValues(t.prim, v, *f.minExclusive) <= 0 {
		return fmt.Sprintf("%s must be greater than %s", quote(s), f.boundText["minExclusive"])
	}
	if f.maxExclusive != nil && compareValues(t.prim, v, *f.maxExclusive) >= 0 {
		return fmt.Sprintf("%s must be less than %s", quote(s), f.boundText["maxExclusive"])
	}
	if f.fractionDigits != nil && v.frac > *f.fractionDigits {
		return fmt.Sprintf("%s has %d fraction digits, want at most %d", quote(s), v.frac, *f.fractionDigits)
	}
	if f.totalDigits != nil && v.total > *f.totalDigits {
		return fmt.Sprintf("%s has %d digits, want at most %d", quote(s), v.total, *f.totalDigits)
	}
	return ""
}

func enumList(vals []string) string {
	const max = 12
	if len(vals) > max {
		return "{" + strings.Join(vals[:max], ", ") + ", ...}"
	}
	return "{" + strings.Join(vals, ", ") + "}"
}

// quote renders an instance value for a message, shortened so an error never
// carries a large slice of the document.
func quote(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max]) + "..."
	}
	return strconv.Quote(s)
}

// compareValues orders two values of the same primitive. For primitives
// without an order it returns 0 for equal and 1 otherwise.
func compareValues(p primitive, a, b value) int {
	switch p {
	case primDecimal:
		return a.num.cmp(b.num)
	case primFloat:
		switch {
		case a.f < b.f:
			return -1
		case a.f > b.f:
			return 1
		case a.f == b.f:
			return 0
		}
		return 2 // NaN: unordered and unequal
	case primBoolean:
		if a.b == b.b {
			return 0
		}
		return 1
	case primDate, primDateTime, primTime, primGYear, primGYearMonth:
		return a.t.cmp(b.t)
	}
	if a.s == b.s {
		return 0
	}
	return 1
}

// parseValue checks s against the primitive's lexical space and returns its
// value, or a message saying why it is not valid.
func parseValue(p primitive, s string) (value, string) {
	switch p {
	case primBoolean:
		switch s {
		case "true", "1":
			return value{b: true}, ""
		case "false", "0":
			return value{b: false}, ""
		}
		return value{}, fmt.Sprintf("%s is not a valid boolean (true, false, 1 or 0)", quote(s))
	case primDecimal:
		v, ok := parseDecimal(s)
		if !ok {
			return value{}, fmt.Sprintf("%s is not a valid decimal", quote(s))
		}
		return v, ""
	case primFloat:
		var f float64
		switch s {
		case "INF":
			f = posInf
		case "-INF":
			f = negInf
		case "NaN":
			f = nan()
		default:
			if !floatLexical.MatchString(s) {
				return value{}, fmt.Sprintf("%s is not a valid floating-point number", quote(s))
			}
			var err error
			f, err = strconv.ParseFloat(s, 64)
			if err != nil && !isRangeErr(err) {
				return value{}, fmt.Sprintf("%s is not a valid floating-point number", quote(s))
			}
		}
		return value{f: f}, ""
	case primDate, primDateTime, primTime, primGYear, primGYearMonth:
		t, ok := parseTime(p, s)
		if !ok {
			return value{}, fmt.Sprintf("%s is not a valid %s", quote(s), timeKindName[p])
		}
		return value{t: t}, ""
	}
	return value{s: s}, ""
}

var timeKindName = map[primitive]string{
	primDate:       "date (YYYY-MM-DD)",
	primDateTime:   "dateTime (YYYY-MM-DDThh:mm:ss)",
	primTime:       "time (hh:mm:ss)",
	primGYear:      "year (YYYY)",
	primGYearMonth: "year and month (YYYY-MM)",
}

var (
	floatLexical = regexp.MustCompile(`^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$`)
)

// parseDecimal parses an xsd:decimal and counts its digits in the value
// space: leading integer zeros and trailing fraction zeros do not count.
// The number is kept as its digits (see decimal), not as a big.Rat: every
// amount in a return is parsed at enqueue, and making and comparing Rats
// was a tenth of a bulk enqueue's CPU.
func parseDecimal(s string) (value, bool) {
	if !isDecimalLexical(s) {
		return value{}, false
	}
	body := strings.TrimLeft(s, "+-")
	intPart, fracPart, _ := strings.Cut(body, ".")
	intPart = strings.TrimLeft(intPart, "0")
	fracPart = strings.TrimRight(fracPart, "0")
	total := len(intPart) + len(fracPart)
	if total == 0 {
		total = 1 // zero has one digit
	}
	return value{num: decimal{neg: s[0] == '-', ip: intPart, fp: fracPart}, total: total, frac: len(fracPart)}, true
}

// isDecimalLexical is xsd:decimal's lexical space,
// [+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+), without a regexp.
func isDecimalLexical(s string) bool {
	i, digits := 0, 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i, digits = i+1, digits+1
		}
	}
	return i == len(s) && digits > 0
}

// decimal is an exact decimal number as its digits: the integer part
// without leading zeros and the fraction without trailing zeros, so that
// comparing two is comparing strings.
type decimal struct {
	neg    bool
	ip, fp string
}

func (d decimal) sign() int {
	switch {
	case d.ip == "" && d.fp == "":
		return 0 // -0 is 0
	case d.neg:
		return -1
	}
	return 1
}

// cmp orders two decimals: -1, 0 or 1.
func (d decimal) cmp(e decimal) int {
	ds, es := d.sign(), e.sign()
	if ds != es || ds == 0 {
		return cmp.Compare(ds, es)
	}
	// Same sign: compare magnitudes. A longer integer part is larger; then
	// digit by digit, the fraction's included (no trailing zeros, so
	// "5" < "51" is 0.5 < 0.51).
	return ds * cmp.Or(cmp.Compare(len(d.ip), len(e.ip)), strings.Compare(d.ip, e.ip), strings.Compare(d.fp, e.fp))
}

// Time lexical forms. Years have at least four digits, no leading zeros
// beyond four, and are capped at nine so the arithmetic cannot overflow.
var (
	tzPart         = `(Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))?`
	yearPart       = `(-?(?:[1-9][0-9]{4,8}|[0-9]{4}))`
	dateLexical    = regexp.MustCompile(`^` + yearPart + `-([0-9]{2})-([0-9]{2})` + tzPart + `$`)
	dtLexical      = regexp.MustCompile(`^` + yearPart + `-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?` + tzPart + `$`)
	timeLexical    = regexp.MustCompile(`^([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?` + tzPart + `$`)
	gYearLexical   = regexp.MustCompile(`^` + yearPart + tzPart + `$`)
	gYearMonthLex  = regexp.MustCompile(`^` + yearPart + `-([0-9]{2})` + tzPart + `$`)
	daysInMonthTbl = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
)

func parseTime(p primitive, s string) (timeVal, bool) {
	var year, month, day, hour, min, sec int64
	var frac, tz string
	month, day = 1, 1
	atoi := func(x string) int64 { n, _ := strconv.ParseInt(x, 10, 64); return n }
	switch p {
	case primDate:
		m := dateLexical.FindStringSubmatch(s)
		if m == nil {
			return timeVal{}, false
		}
		year, month, day, tz = atoi(m[1]), atoi(m[2]), atoi(m[3]), m[4]
	case primDateTime:
		m := dtLexical.FindStringSubmatch(s)
		if m == nil {
			return timeVal{}, false
		}
		year, month, day = atoi(m[1]), atoi(m[2]), atoi(m[3])
		hour, min, sec, frac, tz = atoi(m[4]), atoi(m[5]), atoi(m[6]), m[7], m[8]
	case primTime:
		m := timeLexical.FindStringSubmatch(s)
		if m == nil {
			return timeVal{}, false
		}
		year = 2000
		hour, min, sec, frac, tz = atoi(m[1]), atoi(m[2]), atoi(m[3]), m[4], m[5]
	case primGYear:
		m := gYearLexical.FindStringSubmatch(s)
		if m == nil {
			return timeVal{}, false
		}
		year, tz = atoi(m[1]), m[2]
	case primGYearMonth:
		m := gYearMonthLex.FindStringSubmatch(s)
		if m == nil {
			return timeVal{}, false
		}
		year, month, tz = atoi(m[1]), atoi(m[2]), m[3]
	}
	if year == 0 || month < 1 || month > 12 || day < 1 || day > int64(daysInMonthTbl[month]) {
		return timeVal{}, false
	}
	if month == 2 && day == 29 && !isLeap(year) {
		return timeVal{}, false
	}
	frac = strings.TrimRight(frac, "0")
	// 24:00:00 is allowed as the end of a day and equals 00:00:00 next day.
	if hour == 24 {
		if min != 0 || sec != 0 || frac != "" {
			return timeVal{}, false
		}
	} else if hour > 23 || min > 59 || sec > 59 {
		return timeVal{}, false
	}
	secs := daysFromCivil(year, month, day)*86400 + hour*3600 + min*60 + sec
	if tz != "" && tz != "Z" {
		off := atoi(tz[1:3])*3600 + atoi(tz[4:6])*60
		if tz[0] == '+' {
			secs -= off
		} else {
			secs += off
		}
	}
	return timeVal{sec: secs, frac: frac}, true
}

// isLeap follows the proleptic Gregorian calendar; XSD 1.0 has no year 0, so
// year -1 is 1 BCE, which is a leap year.
func isLeap(y int64) bool {
	if y < 0 {
		y++
	}
	return y%4 == 0 && (y%100 != 0 || y%400 == 0)
}

// daysFromCivil counts days from 1970-01-01 (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if y < 0 {
		y++ // no year zero in XSD 1.0
	}
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

var (
	posInf = math.Inf(1)
	negInf = math.Inf(-1)
)

func nan() float64 { return math.NaN() }

// isRangeErr accepts out-of-range floats: XSD maps them to ±INF or zero,
// which strconv already returns alongside the error.
func isRangeErr(err error) bool { return errors.Is(err, strconv.ErrRange) }
