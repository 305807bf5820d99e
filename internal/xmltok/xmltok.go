// Package xmltok is a strict XML 1.0 tokenizer for a document held in
// memory as a []byte.
//
// It exists because package schema validates every payload at enqueue, and
// encoding/xml's Decoder made bulk enqueue CPU-bound: it reads one byte at a
// time through an io.ByteReader and copies every name, value and run of
// text into new memory (about 40 MB/s on IR's payloads). A Tokenizer
// instead scans the slice it was given and hands out views into it: names
// split into prefix and local part, attribute values and character data.
// It decodes (into new memory) only a value or run of text that holds a
// reference (&amp;, &#38;), a carriage return, or, in an attribute value, a
// tab or line feed; the usual payload is tokenized without allocating.
//
// The tokenizer accepts and rejects exactly what encoding/xml's
// Decoder.RawToken does with Strict set and no CharsetReader or Entity map,
// which is how package schema used it, and yields the same tokens: the
// differential tests and FuzzDifferential in this package compare the two.
// In particular, like RawToken, it:
//
//   - reports a self-closing tag <a/> as a StartElement followed by an
//     EndElement;
//   - returns each run of text and each CDATA section as its own CharData,
//     with references decoded and CR LF and lone CR turned into LF;
//   - rejects an unknown entity, a malformed character reference, a
//     reference to a character XML does not allow, invalid UTF-8 or a
//     disallowed character (a control character, U+FFFE, U+FFFF) in text,
//     CDATA or attribute values, "]]>" in text, "--" inside a comment, and
//     an XML declaration with a version other than 1.0 or an encoding other
//     than UTF-8;
//   - does not check the contents of comments, processing instructions or
//     directives for disallowed characters, and does not require white space
//     between attributes, as encoding/xml does not;
//   - leaves matching end tags, namespaces and duplicate attributes to the
//     caller.
//
// One difference is deliberate: attribute values are normalised as XML 1.0
// (section 3.3.3) requires, so a literal tab, line feed, carriage return or
// CR LF in a value becomes one space (a character reference such as &#10;
// does not). encoding/xml keeps them (turning CR into LF), where libxml2 and
// Xerces normalise.
//
// Line and column numbers are those encoding/xml reports: a token's
// position is what Decoder.InputPos returned just before RawToken returned
// it (columns count bytes, from 1), and a SyntaxError's line is the line
// encoding/xml's SyntaxError names, with the same message. (The one message
// worded differently is a DeclError's for an encoding other than UTF-8:
// encoding/xml's names its Decoder.CharsetReader.)
package xmltok

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Kind is the kind of a token.
type Kind uint8

// The token kinds. EOF is returned, with a nil error, at the end of a
// document that had no error.
const (
	EOF Kind = iota
	StartElement
	EndElement
	CharData
	Comment
	ProcInst
	Directive
)

var kindNames = [...]string{"EOF", "StartElement", "EndElement", "CharData", "Comment", "ProcInst", "Directive"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Name is an element or attribute name as written, split at its colon like
// encoding/xml's Name: a name with exactly one colon and text on both sides
// of it has a Prefix; any other name (no colon, or a leading or trailing
// colon) is all Local.
type Name struct {
	Prefix []byte
	Local  []byte
}

// Equal reports whether n and o are written alike: what an end tag must be
// to close a start tag, and what makes two attributes of one tag repeats.
func (n Name) Equal(o Name) bool {
	return bytes.Equal(n.Prefix, o.Prefix) && bytes.Equal(n.Local, o.Local)
}

// Attr is an attribute of a start tag, with its value decoded and
// normalised.
type Attr struct {
	Name  Name
	Value []byte
}

// SyntaxError reports a document that is not well-formed. Error returns the
// same text as encoding/xml's SyntaxError.
type SyntaxError struct {
	Msg    string
	Line   int // 1-based; the line encoding/xml's SyntaxError reports
	Column int // 1-based byte column of Offset on its line
	Offset int // byte offset at which the error was detected
}

func (e *SyntaxError) Error() string {
	return "XML syntax error on line " + strconv.Itoa(e.Line) + ": " + e.Msg
}

// DeclError reports an XML declaration naming a version other than 1.0 or
// an encoding other than UTF-8. Line and Column are those of the
// declaration's start.
type DeclError struct {
	Msg          string
	Line, Column int
}

func (e *DeclError) Error() string { return e.Msg }

// Tokenizer splits one document into tokens. The zero value tokenizes an
// empty document; use New or Reset. A Tokenizer is not safe for concurrent
// use.
//
// Slices returned by Name, Target and Text, and the names and values in
// Attrs, point into the document or into memory allocated for them; they
// stay valid after the next call to Next and must not be modified. The slice
// Attrs returns is reused by the next call to Next.
type Tokenizer struct {
	src   []byte
	off   int // where the next token starts
	start int // where the current token starts
	kind  Kind
	name  Name // element name, or the target of a ProcInst (all in Local)
	attrs []Attr
	data  []byte
	self  bool // the current start tag ended with "/>"
	close bool // the next token is the end of a self-closing tag
	err   error

	// keepAttrWS turns attribute-value normalisation off, so that values
	// are exactly encoding/xml's (the differential tests use it).
	keepAttrWS bool

	// Line counting is lazy: pcLine is the line of offset pcOff, and
	// pcLineStart the offset at which that line starts.
	pcOff, pcLine, pcLineStart int
}

// New returns a Tokenizer for doc. A leading byte order mark is not
// skipped: it is character data, as for encoding/xml.
func New(doc []byte) *Tokenizer {
	t := &Tokenizer{}
	t.Reset(doc)
	return t
}

// Reset makes t tokenize doc from its start, keeping the memory t
// allocated for attributes but no reference to the previous document.
func (t *Tokenizer) Reset(doc []byte) {
	attrs := t.attrs[:0]
	clear(attrs[:cap(attrs)])
	*t = Tokenizer{src: doc, attrs: attrs, pcLine: 1, keepAttrWS: t.keepAttrWS}
}

// Next reads the next token and returns its kind. It returns EOF and a nil
// error at the end of the document, and a *SyntaxError or *DeclError when
// the document is not well-formed; after an error every call returns the
// same error.
func (t *Tokenizer) Next() (Kind, error) {
	if t.err != nil {
		return EOF, t.err
	}
	t.attrs = t.attrs[:0]
	t.data = nil
	t.start = t.off
	if t.close {
		// The start tag was <name/>: its end element comes now, positioned
		// just after the "/>".
		t.close = false
		t.kind = EndElement
		return EndElement, nil
	}
	t.self = false
	t.name = Name{}
	if t.off >= len(t.src) {
		t.kind = EOF
		return EOF, nil
	}
	var err error
	if t.src[t.off] != '<' {
		err = t.text()
	} else {
		err = t.markup()
	}
	if err != nil {
		t.err = err
		t.kind = EOF
		t.name = Name{}
		t.attrs = t.attrs[:0]
		return EOF, err
	}
	return t.kind, nil
}

// Kind returns the kind of the current token.
func (t *Tokenizer) Kind() Kind { return t.kind }

// Name returns the name of the current StartElement or EndElement.
func (t *Tokenizer) Name() Name { return t.name }

// Attrs returns the attributes of the current StartElement, in document
// order. The slice is reused by the next call to Next.
func (t *Tokenizer) Attrs() []Attr { return t.attrs }

// Target returns the target of the current ProcInst.
func (t *Tokenizer) Target() []byte { return t.name.Local }

// Text returns the decoded text of the current CharData, the text of the
// current Comment (without "<!--" and "-->"), the content of the current
// ProcInst (after its target and the white space after that, without
// "?>"), or the content of the current Directive (without "<!" and ">",
// each comment inside it replaced by a space).
func (t *Tokenizer) Text() []byte { return t.data }

// SelfClosing reports whether the current StartElement was written <a/>,
// or the current EndElement is the implied end of such an element.
func (t *Tokenizer) SelfClosing() bool { return t.self }

// Pos returns the line and column at which the current token starts, as
// encoding/xml's Decoder.InputPos reports them just before RawToken returns
// the same token. For the end of a self-closing element that is just after
// its "/>".
func (t *Tokenizer) Pos() (line, col int) { return t.posAt(t.start) }

// InputPos returns the line and column just after the current token (the
// end of the document after EOF), as encoding/xml's Decoder.InputPos does.
func (t *Tokenizer) InputPos() (line, col int) { return t.posAt(t.off) }

// Offset returns the byte offset at which the current token starts.
func (t *Tokenizer) Offset() int { return t.start }

// InputOffset returns the byte offset just after the current token.
func (t *Tokenizer) InputOffset() int { return t.off }

// posAt returns the 1-based line and byte column of offset off.
func (t *Tokenizer) posAt(off int) (line, col int) {
	if off < t.pcOff {
		t.pcOff, t.pcLine, t.pcLineStart = 0, 1, 0
	}
	seg := t.src[t.pcOff:off]
	if n := bytes.Count(seg, newline); n > 0 {
		t.pcLine += n
		t.pcLineStart = t.pcOff + bytes.LastIndexByte(seg, '\n') + 1
	}
	t.pcOff = off
	return t.pcLine, off - t.pcLineStart + 1
}

var newline = []byte{'\n'}

// syntaxError reports msg at offset off: the position encoding/xml's
// decoder has reached when it detects the same error.
func (t *Tokenizer) syntaxError(off int, msg string) error {
	// A fresh count, so that the error does not disturb the cache.
	seg := t.src[:off]
	line := 1 + bytes.Count(seg, newline)
	col := off - (bytes.LastIndexByte(seg, '\n') + 1) + 1
	return &SyntaxError{Msg: msg, Line: line, Column: col, Offset: off}
}

func (t *Tokenizer) unexpectedEOF() error {
	return t.syntaxError(len(t.src), "unexpected EOF")
}

// Byte classes.
var (
	// nameByte holds encoding/xml's isNameByte: the ASCII bytes that
	// continue a name. Bytes from 0x80 up continue a name too, and the whole
	// name is then checked rune by rune.
	nameByte [256]bool
	// nameStart holds the ASCII bytes that may start a name.
	nameStart [256]bool
	// textSpecial marks the bytes the character-data scanner stops at:
	// '<', '&', ']', CR, control characters other than tab and LF, and bytes
	// from 0x80 up.
	textSpecial [256]bool
	// attrSpecial marks the bytes the attribute-value scanner stops at:
	// both quotes, '<', '&', tab, LF, CR, other control characters and bytes
	// from 0x80 up.
	attrSpecial [256]bool
)

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		nameByte[c] = 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' ||
			b == '_' || b == ':' || b == '.' || b == '-'
		nameStart[c] = 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || b == '_' || b == ':'
		control := b < 0x20 && b != '\t' && b != '\n' && b != '\r'
		textSpecial[c] = control || b >= utf8.RuneSelf || b == '<' || b == '&' || b == ']' || b == '\r'
		attrSpecial[c] = control || b >= utf8.RuneSelf || b == '<' || b == '&' || b == '"' || b == '\'' ||
			b == '\t' || b == '\n' || b == '\r'
	}
}

// isInCharacterRange reports whether r is a Char of XML 1.0.
func isInCharacterRange(r rune) bool {
	return r == 0x09 ||
		r == 0x0A ||
		r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

func illegalChar(r rune) string { return fmt.Sprintf("illegal character code %U", r) }

// noteOther checks a character of text or of an attribute value that the
// scanner did not handle itself (an ASCII byte here is a control character
// XML does not allow; anything else is checkMultibyte's), records the
// first disallowed one in *bad, and returns the character's length.
func noteOther(b []byte, bad *string) (size int) {
	if b[0] < utf8.RuneSelf {
		if *bad == "" {
			*bad = illegalChar(rune(b[0]))
		}
		return 1
	}
	size, msg := checkMultibyte(b)
	if *bad == "" {
		*bad = msg
	}
	return size
}

// checkMultibyte checks the character starting with the non-ASCII byte at
// b[0]. It returns the character's length and, if it is not allowed, the
// message encoding/xml gives.
func checkMultibyte(b []byte) (size int, bad string) {
	r, size := utf8.DecodeRune(b)
	if r == utf8.RuneError && size == 1 {
		return 1, "invalid UTF-8"
	}
	if !isInCharacterRange(r) {
		return size, illegalChar(r)
	}
	return size, ""
}

// isName is encoding/xml's isName.
func isName(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	c, n := utf8.DecodeRune(s)
	if c == utf8.RuneError && n == 1 {
		return false
	}
	if !unicode.Is(first, c) {
		return false
	}
	for n < len(s) {
		s = s[n:]
		c, n = utf8.DecodeRune(s)
		if c == utf8.RuneError && n == 1 {
			return false
		}
		if !unicode.Is(first, c) && !unicode.Is(second, c) {
			return false
		}
	}
	return true
}

// scanName reads a name at p the way encoding/xml's Decoder.name does: bytes up
// to the first ASCII byte that cannot be in a name, then checked. If src[p]
// cannot start a name it returns ok false, a nil error and end == p.
func (t *Tokenizer) scanName(p int) (end int, ok bool, err error) {
	src := t.src
	if p >= len(src) {
		return p, false, t.unexpectedEOF()
	}
	c := src[p]
	if c < utf8.RuneSelf && !nameByte[c] {
		return p, false, nil
	}
	ascii := c < utf8.RuneSelf
	q := p + 1
	for q < len(src) {
		c := src[q]
		if c < utf8.RuneSelf {
			if !nameByte[c] {
				break
			}
		} else {
			ascii = false
		}
		q++
	}
	if q >= len(src) {
		return q, false, t.unexpectedEOF()
	}
	if ascii && !nameStart[src[p]] || !ascii && !isName(src[p:q]) {
		return q, false, t.syntaxError(q, "invalid XML name: "+string(src[p:q]))
	}
	return q, true, nil
}

// nsname reads a name and splits it as encoding/xml's Decoder.nsname does.
// A name with more than one colon gives ok false, a nil error, and end just
// after the name: the caller reports its own error at end.
func (t *Tokenizer) nsname(p int) (n Name, end int, ok bool, err error) {
	end, ok, err = t.scanName(p)
	if !ok {
		return Name{}, end, false, err
	}
	s := t.src[p:end:end]
	i := bytes.IndexByte(s, ':')
	if i < 0 {
		return Name{Local: s}, end, true, nil
	}
	if bytes.IndexByte(s[i+1:], ':') >= 0 {
		return Name{}, end, false, nil
	}
	if i == 0 || i == len(s)-1 {
		return Name{Local: s}, end, true, nil
	}
	return Name{Prefix: s[:i:i], Local: s[i+1:]}, end, true, nil
}

func skipSpace(src []byte, p int) int {
	for p < len(src) {
		switch src[p] {
		case ' ', '\r', '\n', '\t':
			p++
		default:
			return p
		}
	}
	return p
}

// text reads character data up to the next '<' or the end of the document.
func (t *Tokenizer) text() error {
	src := t.src
	s := t.off
	i := s
	decode := false
	bad := "" // the first disallowed character: reported after the run, as encoding/xml does
scan:
	for i < len(src) {
		c := src[i]
		if !textSpecial[c] {
			i++
			continue
		}
		switch {
		case c == '<':
			break scan
		case c == '&':
			r, next, err := t.reference(i)
			if err != nil {
				return err
			}
			if bad == "" && !isInCharacterRange(r) {
				bad = illegalChar(r)
			}
			decode = true
			i = next
		case c == ']':
			if i+2 < len(src) && src[i+1] == ']' && src[i+2] == '>' {
				return t.syntaxError(i+3, "unescaped ]]> not in CDATA section")
			}
			i++
		case c == '\r':
			decode = true
			i++
		default:
			i += noteOther(src[i:], &bad)
		}
	}
	if bad != "" {
		return t.syntaxError(i, bad)
	}
	if decode {
		t.data = t.decode(s, i, 0)
	} else {
		t.data = src[s:i:i]
	}
	t.off = i
	t.kind = CharData
	return nil
}

// Decoding modes.
const (
	decText     = iota // references, CR LF and CR to LF
	decAttr            // references; tab, LF, CR LF and CR to space
	decAttrKeep        // references; CR LF and CR to LF (encoding/xml)
	decCDATA           // CR LF and CR to LF
)

// decode returns src[s:e] decoded, in new memory. The run has been
// scanned already: every reference in it is valid.
func (t *Tokenizer) decode(s, e int, mode int) []byte {
	src := t.src
	out := make([]byte, 0, e-s)
	for i := s; i < e; {
		c := src[i]
		switch {
		case c == '&' && mode != decCDATA:
			r, next, _ := t.reference(i)
			out = utf8.AppendRune(out, r)
			i = next
		case c == '\r':
			if mode == decAttr {
				out = append(out, ' ')
			} else {
				out = append(out, '\n')
			}
			i++
			if i < e && src[i] == '\n' {
				i++
			}
		case (c == '\t' || c == '\n') && mode == decAttr:
			out = append(out, ' ')
			i++
		default:
			out = append(out, c)
			i++
		}
	}
	return out
}

// reference reads the entity or character reference at src[i] == '&' as
// encoding/xml does in Strict mode, returning the character and the offset
// after the reference.
func (t *Tokenizer) reference(i int) (r rune, next int, err error) {
	src := t.src
	p := i + 1
	if p >= len(src) {
		return 0, 0, t.unexpectedEOF()
	}
	if src[p] == '#' {
		p++
		if p >= len(src) {
			return 0, 0, t.unexpectedEOF()
		}
		hex := src[p] == 'x'
		if hex {
			p++
		}
		digits := p
		var n uint64
		for {
			if p >= len(src) {
				return 0, 0, t.unexpectedEOF()
			}
			c := src[p]
			var d uint64
			switch {
			case '0' <= c && c <= '9':
				d = uint64(c - '0')
			case hex && 'a' <= c && c <= 'f':
				d = uint64(c-'a') + 10
			case hex && 'A' <= c && c <= 'F':
				d = uint64(c-'A') + 10
			default:
				goto end
			}
			if n <= unicode.MaxRune { // beyond it the reference is invalid anyway
				if hex {
					n = n*16 + d
				} else {
					n = n*10 + d
				}
			}
			p++
		}
	end:
		if src[p] != ';' {
			return 0, 0, t.syntaxError(p, "invalid character entity "+string(src[i:p])+" (no semicolon)")
		}
		p++
		if p-1 == digits || n > unicode.MaxRune {
			return 0, 0, t.syntaxError(p, "invalid character entity "+string(src[i:p]))
		}
		r = rune(n)
		if 0xD800 <= r && r <= 0xDFFF {
			r = utf8.RuneError // as string(rune(n)) gives
		}
		return r, p, nil
	}
	if c := src[p]; c < utf8.RuneSelf && !nameByte[c] {
		if c == ';' {
			return 0, 0, t.syntaxError(p+1, "invalid character entity &;")
		}
		return 0, 0, t.syntaxError(p, "invalid character entity & (no semicolon)")
	}
	ns := p
	for p < len(src) && (src[p] >= utf8.RuneSelf || nameByte[src[p]]) {
		p++
	}
	if p >= len(src) {
		return 0, 0, t.unexpectedEOF()
	}
	if src[p] != ';' {
		return 0, 0, t.syntaxError(p, "invalid character entity "+string(src[i:p])+" (no semicolon)")
	}
	name := src[ns:p]
	p++
	switch string(name) {
	case "lt":
		return '<', p, nil
	case "gt":
		return '>', p, nil
	case "amp":
		return '&', p, nil
	case "apos":
		return '\'', p, nil
	case "quot":
		return '"', p, nil
	}
	return 0, 0, t.syntaxError(p, "invalid character entity "+string(src[i:p]))
}

// attrValue reads an attribute value that starts at s, just after its
// opening quote q. It returns the value and the offset after the closing
// quote.
func (t *Tokenizer) attrValue(s int, q byte) (value []byte, next int, err error) {
	src := t.src
	i := s
	decode := false
	bad := ""
	for {
		if i >= len(src) {
			// encoding/xml ends the value at the end of the input, checks
			// its characters, and only then finds the tag unterminated.
			if bad != "" {
				return nil, 0, t.syntaxError(i, bad)
			}
			return nil, 0, t.unexpectedEOF()
		}
		c := src[i]
		if !attrSpecial[c] {
			i++
			continue
		}
		switch {
		case c == q:
			if bad != "" {
				return nil, 0, t.syntaxError(i+1, bad)
			}
			if decode {
				mode := decAttr
				if t.keepAttrWS {
					mode = decAttrKeep
				}
				return t.decode(s, i, mode), i + 1, nil
			}
			return src[s:i:i], i + 1, nil
		case c == '"' || c == '\'':
			i++
		case c == '<':
			return nil, 0, t.syntaxError(i+1, "unescaped < inside quoted string")
		case c == '&':
			r, next, err := t.reference(i)
			if err != nil {
				return nil, 0, err
			}
			if bad == "" && !isInCharacterRange(r) {
				bad = illegalChar(r)
			}
			decode = true
			i = next
		case c == '\r':
			decode = true
			i++
		case c == '\t' || c == '\n':
			if !t.keepAttrWS {
				decode = true
			}
			i++
		default:
			i += noteOther(src[i:], &bad)
		}
	}
}

// markup reads a token that starts with '<'.
func (t *Tokenizer) markup() error {
	src := t.src
	p := t.off + 1
	if p >= len(src) {
		return t.unexpectedEOF()
	}
	switch src[p] {
	case '/':
		return t.endTag()
	case '?':
		return t.procInst()
	case '!':
		p++
		if p >= len(src) {
			return t.unexpectedEOF()
		}
		switch src[p] {
		case '-':
			return t.comment()
		case '[':
			return t.cdata()
		}
		return t.directive()
	}
	return t.startTag()
}

func (t *Tokenizer) startTag() error {
	src := t.src
	name, p, ok, err := t.nsname(t.off + 1)
	if err != nil {
		return err
	}
	if !ok {
		return t.syntaxError(p, "expected element name after <")
	}
	t.name = name
	for {
		p = skipSpace(src, p)
		if p >= len(src) {
			return t.unexpectedEOF()
		}
		c := src[p]
		if c == '>' {
			p++
			break
		}
		if c == '/' {
			p++
			if p >= len(src) {
				return t.unexpectedEOF()
			}
			if src[p] != '>' {
				return t.syntaxError(p+1, "expected /> in element")
			}
			p++
			t.self = true
			t.close = true
			break
		}
		an, q, ok, err := t.nsname(p)
		if err != nil {
			return err
		}
		if !ok {
			return t.syntaxError(q, "expected attribute name in element")
		}
		p = skipSpace(src, q)
		if p >= len(src) {
			return t.unexpectedEOF()
		}
		if src[p] != '=' {
			return t.syntaxError(p+1, "attribute name without = in element")
		}
		p = skipSpace(src, p+1)
		if p >= len(src) {
			return t.unexpectedEOF()
		}
		quote := src[p]
		p++
		if quote != '"' && quote != '\'' {
			return t.syntaxError(p, "unquoted or missing attribute value in element")
		}
		v, next, err := t.attrValue(p, quote)
		if err != nil {
			return err
		}
		t.attrs = append(t.attrs, Attr{Name: an, Value: v})
		p = next
	}
	t.off = p
	t.kind = StartElement
	return nil
}

func (t *Tokenizer) endTag() error {
	src := t.src
	name, p, ok, err := t.nsname(t.off + 2)
	if err != nil {
		return err
	}
	if !ok {
		return t.syntaxError(p, "expected element name after </")
	}
	p = skipSpace(src, p)
	if p >= len(src) {
		return t.unexpectedEOF()
	}
	if src[p] != '>' {
		return t.syntaxError(p+1, "invalid characters between </"+string(name.Local)+" and >")
	}
	t.name = name
	t.off = p + 1
	t.kind = EndElement
	return nil
}

var piEnd = []byte("?>")

func (t *Tokenizer) procInst() error {
	src := t.src
	s := t.off + 2
	end, ok, err := t.scanName(s)
	if err != nil {
		return err
	}
	if !ok {
		return t.syntaxError(end, "expected target name after <?")
	}
	p := skipSpace(src, end)
	i := bytes.Index(src[p:], piEnd)
	if i < 0 {
		return t.unexpectedEOF()
	}
	target := src[s:end:end]
	data := src[p : p+i : p+i]
	if string(target) == "xml" {
		if ver := procInstParam(versionEq, data); len(ver) != 0 && string(ver) != "1.0" {
			line, col := t.Pos()
			return &DeclError{Msg: fmt.Sprintf("xml: unsupported version %q; only version 1.0 is supported", ver), Line: line, Column: col}
		}
		if enc := procInstParam(encodingEq, data); len(enc) != 0 && !bytes.EqualFold(enc, utf8Name) {
			line, col := t.Pos()
			return &DeclError{Msg: fmt.Sprintf("xml: encoding %q declared; only UTF-8 is accepted", enc), Line: line, Column: col}
		}
	}
	t.name = Name{Local: target}
	t.data = data
	t.off = p + i + 2
	t.kind = ProcInst
	return nil
}

// procInstParam is encoding/xml's procInst: the value of name="value" or
// name='value' in s, or nil. Like encoding/xml it allows no space around
// the '='. needle is the name followed by '='.
func procInstParam(needle, s []byte) []byte {
	lenp := len(needle)
	i := 0
	var sep byte
	for i < len(s) {
		sub := s[i:]
		k := bytes.Index(sub, needle)
		if k < 0 || lenp+k >= len(sub) {
			return nil
		}
		i += lenp + k + 1
		if c := sub[lenp+k]; c == '\'' || c == '"' {
			sep = c
			break
		}
	}
	if sep == 0 {
		return nil
	}
	j := bytes.IndexByte(s[i:], sep)
	if j < 0 {
		return nil
	}
	return s[i : i+j]
}

var (
	versionEq  = []byte("version=")
	encodingEq = []byte("encoding=")
	utf8Name   = []byte("utf-8")
)

var commentEnd = []byte("--")

// comment reads a token that starts "<!-".
func (t *Tokenizer) comment() error {
	src := t.src
	p := t.off + 3
	if p >= len(src) {
		return t.unexpectedEOF()
	}
	if src[p] != '-' {
		return t.syntaxError(p+1, "invalid sequence <!- not part of <!--")
	}
	s := p + 1
	i := bytes.Index(src[s:], commentEnd)
	if i < 0 {
		return t.unexpectedEOF()
	}
	e := s + i
	if e+2 >= len(src) {
		return t.unexpectedEOF()
	}
	if src[e+2] != '>' {
		return t.syntaxError(e+3, `invalid sequence "--" not allowed in comments`)
	}
	t.data = src[s:e:e]
	t.off = e + 3
	t.kind = Comment
	return nil
}

var cdataEnd = []byte("]]>")

// cdata reads a token that starts "<![".
func (t *Tokenizer) cdata() error {
	src := t.src
	for i := 0; i < 6; i++ {
		p := t.off + 3 + i
		if p >= len(src) {
			return t.unexpectedEOF()
		}
		if src[p] != "CDATA["[i] {
			return t.syntaxError(p+1, "invalid <![ sequence")
		}
	}
	s := t.off + 9
	i := bytes.Index(src[s:], cdataEnd)
	if i < 0 {
		return t.syntaxError(len(src), "unexpected EOF in CDATA section")
	}
	e := s + i
	decode := false
	for j := s; j < e; {
		c := src[j]
		switch {
		case c >= utf8.RuneSelf:
			size, msg := checkMultibyte(src[j:e])
			if msg != "" {
				return t.syntaxError(e+3, msg)
			}
			j += size
			continue
		case c == '\r':
			decode = true
		case c < 0x20 && c != '\t' && c != '\n':
			return t.syntaxError(e+3, illegalChar(rune(c)))
		}
		j++
	}
	if decode {
		t.data = t.decode(s, e, decCDATA)
	} else {
		t.data = src[s:e:e]
	}
	t.off = e + 3
	t.kind = CharData
	return nil
}

var directiveCommentEnd = []byte("-->")

// directive reads a token that starts "<!" and is neither a comment nor a
// CDATA section: <!DOCTYPE ...> and the like. Like encoding/xml it counts
// nested angle brackets outside quotes and replaces each comment inside by
// a space.
func (t *Tokenizer) directive() error {
	src := t.src
	s := t.off + 2
	p := s + 1 // the byte at s belongs to the directive whatever it is
	var inquote byte
	depth := 0
	var comments [][2]int // [start, end) of each comment, "<!--" to "-->"
	var b byte
	for {
		if p >= len(src) {
			return t.unexpectedEOF()
		}
		b = src[p]
		p++
		if inquote == 0 && b == '>' && depth == 0 {
			break
		}
	handle:
		switch {
		case b == inquote:
			inquote = 0
		case inquote != 0:
		case b == '\'' || b == '"':
			inquote = b
		case b == '>':
			depth--
		case b == '<':
			lt := p - 1
			for k := 0; k < 3; k++ {
				if p >= len(src) {
					return t.unexpectedEOF()
				}
				b = src[p]
				p++
				if b != "!--"[k] {
					depth++
					goto handle
				}
			}
			i := bytes.Index(src[p:], directiveCommentEnd)
			if i < 0 {
				return t.unexpectedEOF()
			}
			p += i + 3
			comments = append(comments, [2]int{lt, p})
		}
	}
	e := p - 1
	if comments == nil {
		t.data = src[s:e:e]
	} else {
		out := make([]byte, 0, e-s)
		q := s
		for _, c := range comments {
			out = append(out, src[q:c[0]]...)
			out = append(out, ' ')
			q = c[1]
		}
		t.data = append(out, src[q:e]...)
	}
	t.off = p
	t.kind = Directive
	return nil
}
