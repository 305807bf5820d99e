package tasks

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// decodeFast decodes the plain form of a job, the form every producer
// writes: one object of the known fields, each once and in its own case,
// strings, an integer version, a boolean amended, and nothing after the
// object but spaces. It reports false for anything else (an unknown or
// repeated field, null, a number where a string belongs, a lone surrogate,
// invalid UTF-8, trailing data) without saying why: Decode then runs
// encoding/json, whose answer (a job or a precise error) is the reference.
// Where decodeFast answers, it answers what encoding/json would
// (FuzzDecodeAgrees checks that).
//
// It exists for speed: a job is mostly its body, a few KB of escaped XML,
// and encoding/json walks every byte of it through its state machine twice
// before unquoting it. In a bulk enqueue that was a fifth of the CPU; here
// a string is copied in runs between escapes.
func decodeFast(data []byte) (*Job, bool) {
	d := fastDecoder{data: data}
	var j Job
	if !d.object(func(name []byte) bool { return d.jobField(&j, name) }) {
		return nil, false
	}
	d.space()
	if d.i != len(d.data) {
		return nil, false
	}
	return &j, true
}

type fastDecoder struct {
	data []byte
	i    int
	seen uint32 // fields of the object being read, by bit
}

// Bits of seen, one per field, so a repeated field falls back (encoding/json
// lets the last one win, merging objects: not worth copying).
const (
	seenVersion = 1 << iota
	seenService
	seenOperation
	seenEndpoint
	seenAuth
	seenKey
	seenBody
	seenBatch
	seenRef
	seenMode
	seenTokenSet
	seenIdentifier
	seenAccountType
	seenPeriodEndDate
	seenMajorFormType
	seenPayDayDate
	seenAmended
)

func (d *fastDecoder) once(bit uint32) bool {
	if d.seen&bit != 0 {
		return false
	}
	d.seen |= bit
	return true
}

func (d *fastDecoder) jobField(j *Job, name []byte) bool {
	switch string(name) {
	case "version":
		return d.once(seenVersion) && d.int(&j.Version)
	case "service":
		return d.once(seenService) && d.stringAs((*string)(&j.Service))
	case "operation":
		return d.once(seenOperation) && d.stringAs(&j.Operation)
	case "endpoint":
		return d.once(seenEndpoint) && d.stringAs((*string)(&j.Endpoint))
	case "auth":
		return d.once(seenAuth) && d.object(func(name []byte) bool {
			switch string(name) {
			case "mode":
				return d.once(seenMode) && d.stringAs((*string)(&j.Auth.Mode))
			case "token_set":
				return d.once(seenTokenSet) && d.stringAs(&j.Auth.TokenSet)
			}
			return false
		})
	case "key":
		if !d.once(seenKey) {
			return false
		}
		k := &NaturalKey{}
		j.Key = k
		return d.object(func(name []byte) bool { return d.keyField(k, name) })
	case "body":
		return d.once(seenBody) && d.stringAs(&j.Body)
	case "batch":
		return d.once(seenBatch) && d.stringAs(&j.Batch)
	case "ref":
		return d.once(seenRef) && d.stringAs(&j.Ref)
	}
	return false
}

func (d *fastDecoder) keyField(k *NaturalKey, name []byte) bool {
	switch string(name) {
	case "identifier":
		return d.once(seenIdentifier) && d.stringAs(&k.Identifier)
	case "account_type":
		return d.once(seenAccountType) && d.stringAs(&k.AccountType)
	case "period_end_date":
		return d.once(seenPeriodEndDate) && d.stringAs(&k.PeriodEndDate)
	case "major_form_type":
		return d.once(seenMajorFormType) && d.stringAs(&k.MajorFormType)
	case "pay_day_date":
		return d.once(seenPayDayDate) && d.stringAs(&k.PayDayDate)
	case "amended":
		return d.once(seenAmended) && d.bool(&k.Amended)
	}
	return false
}

// space skips JSON whitespace.
func (d *fastDecoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// object reads {"name": value, ...}, calling field with each name with the
// decoder at the value; field reads the value or reports false.
func (d *fastDecoder) object(field func(name []byte) bool) bool {
	d.space()
	if d.i >= len(d.data) || d.data[d.i] != '{' {
		return false
	}
	d.i++
	d.space()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return true
	}
	for {
		d.space()
		name, ok := d.rawName()
		if !ok {
			return false
		}
		d.space()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return false
		}
		d.i++
		d.space()
		if !field(name) {
			return false
		}
		d.space()
		if d.i >= len(d.data) {
			return false
		}
		switch d.data[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return true
		default:
			return false
		}
	}
}

// rawName reads a field name with no escapes (every known name is plain
// ASCII, so an escaped one is unknown or odd: fall back).
func (d *fastDecoder) rawName() ([]byte, bool) {
	if d.i >= len(d.data) || d.data[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.data); j++ {
		switch c := d.data[j]; {
		case c == '"':
			d.i = j + 1
			return d.data[start:j], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

func (d *fastDecoder) stringAs(dst *string) bool {
	s, ok := d.string()
	if ok {
		*dst = s
	}
	return ok
}

// string reads a JSON string value, decoding its escapes.
func (d *fastDecoder) string() (string, bool) {
	if d.i >= len(d.data) || d.data[d.i] != '"' {
		return "", false
	}
	d.i++
	start := d.i
	// The common case: no escapes, so the value is the bytes themselves.
	ascii := true
	for j := start; j < len(d.data); j++ {
		c := d.data[j]
		switch {
		case c == '"':
			raw := d.data[start:j]
			if !ascii && !utf8.Valid(raw) {
				return "", false
			}
			d.i = j + 1
			return string(raw), true
		case c == '\\':
			return d.escapedString(start)
		case c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", false
}

// escapedString reads the rest of a string that has escapes, from its
// first byte at start.
func (d *fastDecoder) escapedString(start int) (string, bool) {
	// A Builder's buffer is not zeroed first and becomes the string
	// without a copy: a body is several KB.
	var out strings.Builder
	out.Grow(len(d.data) - start)
	j := start
	for j < len(d.data) {
		// Copy the run up to the next quote, backslash or control byte.
		run := j
		for j < len(d.data) {
			c := d.data[j]
			if c == '"' || c == '\\' || c < 0x20 {
				break
			}
			j++
		}
		seg := d.data[run:j]
		if !utf8.Valid(seg) {
			// Invalid UTF-8 (encoding/json puts U+FFFD in its place), or a
			// rune split by an escape: neither is worth handling here.
			return "", false
		}
		out.Write(seg)
		if j >= len(d.data) {
			return "", false
		}
		switch c := d.data[j]; {
		case c == '"':
			d.i = j + 1
			return out.String(), true
		case c < 0x20:
			return "", false
		}
		// A backslash.
		if j+1 >= len(d.data) {
			return "", false
		}
		switch e := d.data[j+1]; {
		case unescape[e] != 0:
			out.WriteByte(unescape[e])
			j += 2
		case e == 'u':
			r, ok := hex4(d.data[j+2:])
			if !ok || (r >= 0xD800 && r <= 0xDFFF) {
				// Surrogates (pairs, or lone ones encoding/json turns into
				// U+FFFD): fall back.
				return "", false
			}
			out.WriteRune(r)
			j += 6
		default:
			return "", false
		}
	}
	return "", false
}

// unescape maps the character after a backslash to what it stands for;
// zero for \u (read by hex4) and for anything JSON does not allow.
var unescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// int reads an integer literal (no fraction or exponent, which encoding/json
// refuses for an int) that fits in 32 bits, whatever int's size.
func (d *fastDecoder) int(dst *int) bool {
	start := d.i
	if d.i < len(d.data) && d.data[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.data) && '0' <= d.data[d.i] && d.data[d.i] <= '9' {
		d.i++
	}
	n := d.i - digits
	if n == 0 || n > 9 || (n > 1 && d.data[digits] == '0') {
		return false
	}
	if d.i < len(d.data) {
		switch d.data[d.i] {
		case '.', 'e', 'E':
			return false
		}
	}
	v, err := strconv.Atoi(string(d.data[start:d.i]))
	if err != nil {
		return false
	}
	*dst = v
	return true
}

func (d *fastDecoder) bool(dst *bool) bool {
	rest := d.data[d.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		*dst = true
		d.i += 4
	case len(rest) >= 5 && string(rest[:5]) == "false":
		*dst = false
		d.i += 5
	default:
		return false
	}
	return true
}
