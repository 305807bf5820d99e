package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"
)

// payloadFields is what the sandbox reads from a payload (already validated
// against IR's XSDs): the natural key of a return, and the filed form
// fields for RetrieveReturn.
type payloadFields struct {
	Identifier    string
	AccountType   string
	PeriodEndDate string
	MajorFormType string
	MinorFormType string
	PayDayDate    string // EI
	SubmissionKey string // EI retrieve requests
	IsAmended     bool
	IsNilReturn   bool
	// FormFields is the content of <formFields>, re-serialised with default
	// namespace declarations so it can be placed in any answer.
	FormFields []byte
	// Hash is a digest of the payload's infoset (names, attributes,
	// non-blank text) so the same payday payload is recognised however its
	// envelope was indented or which prefixes it used.
	Hash [sha256.Size]byte
}

// scanPayload reads the fields the sandbox acts on. The first occurrence of
// each name wins: in IR's payloads the header (identifier, accountType,
// periodEndDate, majorFormType) comes before the body.
func scanPayload(doc []byte) (payloadFields, error) {
	var f payloadFields
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = true
	h := sha256.New()
	var (
		path     []string
		text     strings.Builder
		seen     = map[string]bool{}
		ffDepth  = -1 // depth of <formFields> while inside it
		ffBuf    bytes.Buffer
		ffNS     []string // default namespace stack while normalising formFields
		ffLeaves bool
	)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return f, fmt.Errorf("%w: payload: %v", errMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(path) >= maxXMLDepth {
				return f, fmt.Errorf("%w: payload nesting deeper than %d", errMalformed, maxXMLDepth)
			}
			hashStart(h, t)
			if ffDepth >= 0 {
				ffNS = writeStart(&ffBuf, t, ffNS)
			}
			path = append(path, t.Name.Local)
			if t.Name.Local == "formFields" && ffDepth < 0 && !ffLeaves {
				ffDepth = len(path)
				ffNS = []string{""}
			}
			text.Reset()
		case xml.EndElement:
			fmt.Fprintf(h, "E\x00")
			local := t.Name.Local
			if ffDepth >= 0 {
				if len(path) == ffDepth {
					ffDepth, ffLeaves = -1, true
					f.FormFields = append([]byte(nil), ffBuf.Bytes()...)
				} else {
					ffBuf.WriteString("</" + local + ">")
					ffNS = ffNS[:len(ffNS)-1]
				}
			}
			if !seen[local] {
				v := strings.TrimSpace(text.String())
				seen[local] = true
				switch local {
				case "identifier":
					f.Identifier = v
				case "accountType":
					f.AccountType = v
				case "periodEndDate":
					f.PeriodEndDate = v
				case "majorFormType":
					f.MajorFormType = v
				case "minorFormType":
					f.MinorFormType = v
				case "payDayDate":
					f.PayDayDate = v
				case "submissionKey":
					f.SubmissionKey = v
				case "isAmended":
					f.IsAmended = v == "true" || v == "1"
				case "isNilReturn":
					f.IsNilReturn = v == "true" || v == "1"
				default:
					seen[local] = false
				}
			}
			text.Reset()
			path = path[:len(path)-1]
		case xml.CharData:
			text.Write(t)
			// Indentation inside formFields is dropped: the fragment is
			// re-indented by nobody, and escaped newlines would be noise.
			if ffDepth >= 0 && len(bytes.TrimSpace(t)) > 0 {
				_ = xml.EscapeText(&ffBuf, t)
			}
			if s := bytes.TrimSpace(t); len(s) > 0 {
				fmt.Fprintf(h, "C%s\x00", s)
			}
		case xml.Directive:
			return f, fmt.Errorf("%w: DTDs are not allowed", errMalformed)
		}
	}
	copy(f.Hash[:], h.Sum(nil))
	return f, nil
}

func hashStart(h hash.Hash, t xml.StartElement) {
	fmt.Fprintf(h, "S%s\x01%s\x00", t.Name.Space, t.Name.Local)
	attrs := make([]string, 0, len(t.Attr))
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		attrs = append(attrs, a.Name.Space+"\x01"+a.Name.Local+"\x01"+a.Value)
	}
	sort.Strings(attrs)
	for _, a := range attrs {
		fmt.Fprintf(h, "A%s\x00", a)
	}
}

// writeStart writes a start tag with a default-namespace declaration
// wherever the namespace changes, so the fragment needs no prefixes from its
// context. xsi:type is dropped (its value is a QName whose prefix would
// dangle); other namespaced attributes get a local prefix.
func writeStart(buf *bytes.Buffer, t xml.StartElement, nsStack []string) []string {
	cur := nsStack[len(nsStack)-1]
	buf.WriteString("<" + t.Name.Local)
	if t.Name.Space != cur {
		buf.WriteString(` xmlns="`)
		_ = xml.EscapeText(buf, []byte(t.Name.Space))
		buf.WriteByte('"')
	}
	k := 0
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
			continue
		case a.Name.Space == nsXSI && a.Name.Local == "type":
			continue
		case a.Name.Space != "":
			k++
			fmt.Fprintf(buf, ` xmlns:a%d="`, k)
			_ = xml.EscapeText(buf, []byte(a.Name.Space))
			fmt.Fprintf(buf, `" a%d:%s="`, k, a.Name.Local)
		default:
			buf.WriteString(" " + a.Name.Local + `="`)
		}
		_ = xml.EscapeText(buf, []byte(a.Value))
		buf.WriteByte('"')
	}
	buf.WriteByte('>')
	return append(nsStack, t.Name.Space)
}
