package xmltok

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The differential harness: both tokenizers run over one document and their
// outputs are reduced to a comparable trace.

// rec is one token, or the final error, in a comparable form.
type rec struct {
	kind         string
	space, local string
	attrs        []attrRec
	data         string
	line, col    int // position before the token (InputPos)
	off          int // InputOffset before the token
}

type attrRec struct{ space, local, value string }

type trace struct {
	toks []rec
	// err is the error that ended the document ("" at a clean EOF): its
	// message, the line of a syntax error, and for other errors the
	// position of the token that caused it.
	err string
	// end is InputPos after the last token, at a clean EOF.
	endLine, endCol, endOff int
}

// limit bounds the tokens a trace records, so a fuzzed document with
// millions of tokens cannot exhaust memory.
const limit = 1 << 16

// stdTrace tokenizes doc with encoding/xml's RawToken, Strict, as package
// schema used it.
func stdTrace(doc []byte) trace {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	var tr trace
	for len(tr.toks) < limit {
		line, col := d.InputPos()
		off := int(d.InputOffset())
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			tr.endLine, tr.endCol = d.InputPos()
			tr.endOff = int(d.InputOffset())
			return tr
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				tr.err = fmt.Sprintf("syntax error, line %d: %s", se.Line, se.Msg)
			} else {
				msg := err.Error()
				// The one message xmltok words differently: it has no
				// CharsetReader to mention.
				if rest, ok := strings.CutPrefix(msg, "xml: encoding "); ok {
					if q, ok := strings.CutSuffix(rest, " declared but Decoder.CharsetReader is nil"); ok {
						msg = "xml: encoding " + q + " declared; only UTF-8 is accepted"
					}
				}
				tr.err = fmt.Sprintf("%s (token at %d:%d)", msg, line, col)
			}
			return tr
		}
		r := rec{line: line, col: col, off: off}
		switch t := tok.(type) {
		case xml.StartElement:
			r.kind, r.space, r.local = "start", t.Name.Space, t.Name.Local
			for _, a := range t.Attr {
				r.attrs = append(r.attrs, attrRec{a.Name.Space, a.Name.Local, a.Value})
			}
		case xml.EndElement:
			r.kind, r.space, r.local = "end", t.Name.Space, t.Name.Local
		case xml.CharData:
			r.kind, r.data = "chardata", string(t)
		case xml.Comment:
			r.kind, r.data = "comment", string(t)
		case xml.ProcInst:
			r.kind, r.local, r.data = "procinst", t.Target, string(t.Inst)
		case xml.Directive:
			r.kind, r.data = "directive", string(t)
		default:
			panic(fmt.Sprintf("unexpected token %T", tok))
		}
		tr.toks = append(tr.toks, r)
	}
	return tr
}

// ourTrace tokenizes doc with a Tokenizer. keepWS turns attribute-value
// normalisation off.
func ourTrace(doc []byte, keepWS bool) trace {
	t := New(doc)
	t.keepAttrWS = keepWS
	var tr trace
	for len(tr.toks) < limit {
		line, col := t.InputPos()
		off := t.InputOffset()
		k, err := t.Next()
		if err != nil {
			var se *SyntaxError
			var de *DeclError
			switch {
			case errors.As(err, &se):
				tr.err = fmt.Sprintf("syntax error, line %d: %s", se.Line, se.Msg)
				if se.Error() != (&xml.SyntaxError{Msg: se.Msg, Line: se.Line}).Error() {
					tr.err += " (Error() differs from encoding/xml's)"
				}
			case errors.As(err, &de):
				tr.err = fmt.Sprintf("%s (token at %d:%d)", de.Msg, de.Line, de.Column)
			default:
				tr.err = "unexpected error type: " + err.Error()
			}
			if k != EOF {
				tr.err += fmt.Sprintf(" (kind %v with the error)", k)
			}
			// Errors are sticky.
			if k2, err2 := t.Next(); err2 != err || k2 != EOF {
				tr.err += " (error not sticky)"
			}
			return tr
		}
		if k == EOF {
			tr.endLine, tr.endCol = t.InputPos()
			tr.endOff = t.InputOffset()
			return tr
		}
		r := rec{line: line, col: col, off: off}
		if pl, pc := t.Pos(); pl != line || pc != col || t.Offset() != off {
			r.kind = fmt.Sprintf("Pos %d:%d@%d differs from InputPos before Next %d:%d@%d: ", pl, pc, t.Offset(), line, col, off)
		}
		n := t.Name()
		switch k {
		case StartElement:
			r.kind += "start"
			r.space, r.local = string(n.Prefix), string(n.Local)
			for _, a := range t.Attrs() {
				r.attrs = append(r.attrs, attrRec{string(a.Name.Prefix), string(a.Name.Local), string(a.Value)})
			}
		case EndElement:
			r.kind += "end"
			r.space, r.local = string(n.Prefix), string(n.Local)
		case CharData:
			r.kind, r.data = r.kind+"chardata", string(t.Text())
		case Comment:
			r.kind, r.data = r.kind+"comment", string(t.Text())
		case ProcInst:
			r.kind, r.local, r.data = r.kind+"procinst", string(t.Target()), string(t.Text())
		case Directive:
			r.kind, r.data = r.kind+"directive", string(t.Text())
		default:
			r.kind += "kind " + k.String()
		}
		tr.toks = append(tr.toks, r)
	}
	return tr
}

// compareDoc returns a description of the first difference between
// encoding/xml and xmltok on doc, or "".
func compareDoc(doc []byte) string {
	want := stdTrace(doc)
	// With normalisation off the two must agree exactly.
	if d := diffTraces(want, ourTrace(doc, true), false); d != "" {
		return "attribute normalisation off: " + d
	}
	// With it on, attribute values may differ only in white space.
	if d := diffTraces(want, ourTrace(doc, false), true); d != "" {
		return "attribute normalisation on: " + d
	}
	return ""
}

func diffTraces(want, got trace, normalised bool) string {
	if want.err != got.err {
		return fmt.Sprintf("error: encoding/xml %q, xmltok %q", want.err, got.err)
	}
	for i := 0; i < len(want.toks) || i < len(got.toks); i++ {
		if i >= len(want.toks) {
			return fmt.Sprintf("token %d: xmltok has an extra %+v", i, got.toks[i])
		}
		if i >= len(got.toks) {
			return fmt.Sprintf("token %d: xmltok lacks %+v", i, want.toks[i])
		}
		w, g := want.toks[i], got.toks[i]
		wa, ga := w.attrs, g.attrs
		w.attrs, g.attrs = nil, nil
		if w.kind != g.kind || w.space != g.space || w.local != g.local || w.data != g.data ||
			w.line != g.line || w.col != g.col || w.off != g.off {
			return fmt.Sprintf("token %d:\n  encoding/xml %#v\n  xmltok       %#v", i, w, g)
		}
		if len(wa) != len(ga) {
			return fmt.Sprintf("token %d: %d attributes, want %d", i, len(ga), len(wa))
		}
		for j := range wa {
			if wa[j].space != ga[j].space || wa[j].local != ga[j].local || !attrValueOK(wa[j].value, ga[j].value, normalised) {
				return fmt.Sprintf("token %d attribute %d:\n  encoding/xml %#v\n  xmltok       %#v", i, j, wa[j], ga[j])
			}
		}
	}
	if want.err == "" && (want.endLine != got.endLine || want.endCol != got.endCol || want.endOff != got.endOff) {
		return fmt.Sprintf("end position %d:%d@%d, want %d:%d@%d", got.endLine, got.endCol, got.endOff, want.endLine, want.endCol, want.endOff)
	}
	return ""
}

// attrValueOK compares an attribute value with encoding/xml's. Normalised,
// ours may have a space where encoding/xml has a tab or LF (from a literal
// tab, LF, CR or CR LF); where encoding/xml's value has neither, no literal
// white space was normalised and the two must be equal.
func attrValueOK(std, ours string, normalised bool) bool {
	if !normalised || !strings.ContainsAny(std, "\t\n") {
		return std == ours
	}
	sp := func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}
	return strings.Map(sp, std) == strings.Map(sp, ours)
}
