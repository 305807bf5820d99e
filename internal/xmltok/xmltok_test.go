package xmltok

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/gatewayq/gatewayq/internal/irsamples"
)

const repoRoot = "../.."

// corpusFiles lists the XML documents in the repository: IR's samples and
// WSDLs under testdata, the embedded schemas and the sandbox's canned
// responses.
func corpusFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"testdata", "schema/xsd", "sandbox/responses"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch filepath.Ext(path) {
			case ".xml", ".wsdl", ".xsd":
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(files)
	if len(files) < 65 {
		t.Fatalf("found %d XML files, want at least the 65 samples under testdata", len(files))
	}
	return files
}

type doc struct {
	name string
	data []byte
}

// corpus returns every XML file of the repository and the payloads that
// package schema's tests extract from IR's samples.
func corpus(t testing.TB) []doc {
	t.Helper()
	var docs []doc
	payloads := 0
	for _, f := range corpusFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(repoRoot, f)
		docs = append(docs, doc{name, data})
		for i, p := range extractPayloads(data) {
			docs = append(docs, doc{name + "#payload" + string(rune('1'+i)), p})
			payloads++
		}
	}
	if payloads < 66 {
		t.Fatalf("extracted %d payloads, want at least the 66 package schema tests", payloads)
	}
	return docs
}

// extractPayloads returns the outermost elements in an IR types
// namespace as standalone documents (irsamples.Payloads); a sample it
// cannot read gives none.
func extractPayloads(data []byte) [][]byte {
	p, _ := irsamples.Payloads(data)
	return p
}

// tricky are documents that exercise every rule the two tokenizers must
// agree on; each is also tried truncated, with a BOM, and with CR LF line
// ends by TestTricky.
var tricky = []string{
	// Empty and trivial documents.
	``, ` `, "\n\n", `x`, `<`, `<>`, `< a/>`, `<a`, `<a `, `<a/`, `<a/ >`, `<a / >`, `<a>`, `</a>`, `<a></b>`,
	`<a><b></a></b>`, `<a/>`, `<a></a>`, `<a/><b/>`, `<a/>x`, `x<a/>`, ` <a/> `, "\xef\xbb\xbf<a/>", `<a/>` + "\x01",
	// Names.
	`<a:b/>`, `<:a/>`, `<a:/>`, `<:/>`, `<a:b:c/>`, `<a::b/>`, `<1a/>`, `<-a/>`, `<.a/>`, `<_a/>`, `<a.b-c_d1/>`,
	`<é/>`, `<aé/>`, "<a\u00b7/>", "<\u00b7a/>", "<a\xff/>", "<\xff/>", "<a\u0300/>", "<\u0300/>", `<中文/>`,
	`<a😀/>`, `<ǅ/>`, "<a\u3005/>", "<a\u20e1/>", "<a\u20e2/>", `<ab:cd:>`, "<a\x00/>", `<a$/>`, `<a@b/>`,
	`<p:a xmlns:p="u"></p:a>`, `<p:a></p:a:b>`,
	// End tags.
	`<a></a >`, "<a></a\n\t\r>", `<a></ a>`, `<a></a b>`, `<a></a:b:c>`, `<a></>`, `<a></a`, `</`, `<a></1>`,
	`<a></a/>`, `<a></a:b>`, `<a></:>`,
	// Attributes.
	`<a b="1"/>`, `<a b='1'/>`, "<a b = \"1\"\n/>", `<a b="1"c="2"/>`, `<a b=1/>`, `<a b/>`, `<a b=/>`, `<a b="1/>`,
	`<a b="<"/>`, `<a b=">"/>`, `<a b="]]>"/>`, `<a b="'"/>`, `<a b='"'/>`, `<a b="x&amp;y"/>`,
	`<a b="&lt;&gt;&amp;&apos;&quot;"/>`, `<a b="&#9;&#10;&#13;&#32;"/>`, "<a b=\"\t\n\r\n\r x\"/>", "<a b=\"a\r\nb\"/>",
	"<a b=\"a\r\r\nb\"/>", "<a b=\"\r&#10;\n\"/>", `<a b="&nbsp;"/>`, `<a b="&"/>`, `<a b="& "/>`, `<a b="&;"/>`,
	`<a b="&#;"/>`, `<a b="&#x;"/>`, `<a b="&#X41;"/>`, `<a b="&#x41"/>`, "<a b=\"\x01\"/>", "<a b=\"\xff\"/>",
	"<a b=\"\x01&nbsp;\"/>", "<a b=\"\x01<\"/>", `<a xmlns:p="u" p:b="1"/>`, `<a b:c:d="1"/>`, `<a :b="1"/>`,
	`<a b:="1"/>`, `<a b="1" b="2"/>`, `<a b="1"/ >`, `<a b="1"`, `<a b="1" `, `<a b="`, `<a b="x`, "<a b=\"\xff",
	"<a b=\"\xff\x01", `<a b=`, `<a b`, `<a b="1"c`, `<a ="1"/>`, `<a b=="1"/>`, `<a b="1""/>`, `<a b="&#0;"/>`,
	`<a b="&#xFFFE;"/>`, `<a b="&#xD800;"/>`, "<a\tb='1'\r\nc='2'/>", `<a b="&#x10000;"/>`, `<a b="é€😀"/>`,
	// Character data and references.
	`<a>x</a>`, `<a>&amp;&lt;&gt;&apos;&quot;</a>`, `<a>&#65;&#x41;&#x0041;&#0000065;&#x6C34;</a>`, `<a>&#0;</a>`,
	`<a>&#x1;</a>`, `<a>&#9;&#xA;&#xd;</a>`, `<a>&#xD800;</a>`, `<a>&#xDFFF;</a>`, `<a>&#xFFFE;</a>`, `<a>&#xFFFF;</a>`,
	`<a>&#xFFFD;</a>`, `<a>&#x10FFFF;</a>`, `<a>&#x110000;</a>`, `<a>&#1114111;</a>`, `<a>&#1114112;</a>`,
	`<a>&#99999999999999999999999;</a>`, `<a>&#x0000000000000000000041;</a>`, `<a>&#-1;</a>`, `<a>&#x-1;</a>`,
	`<a>&#12a;</a>`, `<a>&#x12g;</a>`, `<a>&#</a>`, `<a>&#x</a>`, `<a>&#12</a>`, `<a>&nbsp;</a>`, `<a>&amp</a>`,
	`<a>&</a>`, `<a>& </a>`, `<a>&;</a>`, `<a>&am;</a>`, `<a>&AMP;</a>`, `<a>&é;</a>`, "<a>&\xff;</a>", `<a>&a:b;</a>`,
	`<a>&1;</a>`, `<a>&.;</a>`, `<a>&amp;amp;</a>`, "<a>&amp\n;</a>", `<a>&`, `<a>&a`, `<a>&#`, `<a>&#x4`, `<a>&amp;`,
	`<a>]]></a>`, `<a>]]]></a>`, `<a>]] ></a>`, `<a>]]&gt;</a>`, `<a>]]</a>`, `<a>]</a>`, `<a>x]]`, `]]>`, `]]`,
	"<a>\r\n</a>", "<a>\r</a>", "<a>\r\r\n\n</a>", "<a>x\r", "<a>\x00</a>", "<a>\x0b</a>", "<a>\x7f</a>", "<a>\x1f</a>",
	"<a>\xff</a>", "<a>\xc3</a>", "<a>\xc3<b/></a>", "<a>\xed\xa0\x80</a>", "<a>\xef\xbf\xbe</a>", "<a>\xef\xbf\xbf</a>",
	"<a>\xef\xbf\xbd</a>", "<a>\xf4\x8f\xbf\xbf</a>", "<a>\xf4\x90\x80\x80</a>", "<a>\xc0\x80</a>", "<a>\xe2\x82</a>",
	`<a>😀</a>`, "<a>\x01&nbsp;</a>", `<a>&#0;&nbsp;</a>`, "<a>\x01]]></a>", "<a>\x01\xff</a>", "<a>\xff\x01</a>",
	"<a>&#1;\x02</a>", "<a>\xef\xbb\xbf</a>", "x\x01", "\x01<a/>", "<a/>\xff", "<a>\t \n</a>",
	// CDATA sections.
	`<a><![CDATA[x]]></a>`, `<a><![CDATA[]]></a>`, `<a><![CDATA[<&>&amp;]]></a>`, `<a><![CDATA[]]]></a>`,
	`<a><![CDATA[]]]]></a>`, `<a><![CDATA[x]></a>`, `<a><![CDATA[x]]`, `<a><![CDATA[x]`, "<a><![CDATA[\r\n\r]]></a>",
	"<a><![CDATA[\x01]]></a>", "<a><![CDATA[\xff]]></a>", "<a><![CDATA[\xef\xbf\xbe]]></a>", `<a><![cdata[x]]></a>`,
	`<a><![CDAT`, `<a><![]></a>`, `<![CDATA[x]]><a/>`, `<a>x<![CDATA[y]]>z</a>`, `<a><![CDATA[`, `<a><![CDATA[x]]>`,
	"<a><![CDATA[\x01]]", `<a><![CDATA[]]>]]></a>`,
	// Comments.
	`<!--x--><a/>`, `<!----><a/>`, `<!-----><a/>`, `<!-- a -- b --><a/>`, `<!---><a/>`, `<!-x--><a/>`, `<!--`,
	`<!--x--`, `<!--x-- >`, `<!--x-`, "<!--\x01\xff--><a/>", "<!--\r\n--><a/>", `<a><!--x--></a>`, `<!-`, `<!`,
	`<!-- <a> & --><a/>`, `<!--->-->`, `<!-- - -->`,
	// Processing instructions and the XML declaration.
	`<?xml version="1.0"?><a/>`, `<?xml version="1.1"?><a/>`, `<?xml version='2.0'?><a/>`, `<?xml version = "1.1"?><a/>`,
	`<?xml encoding="ISO-8859-1"?><a/>`, `<?xml version="1.0" encoding="utf-8"?><a/>`, `<?xml version="1.0" encoding="UTF-8"?><a/>`,
	`<?xml version="1.0" encoding="Utf-8"?><a/>`, `<?xml version="1.0" encoding=""?><a/>`, `<?xml version=""?><a/>`,
	`<?XML version="1.1"?><a/>`, `<?xml?><a/>`, `<?xml ?><a/>`, `<?pi?><a/>`, `<?pi data?><a/>`, `<?pi  data  ?><a/>`,
	"<?pi\ndata\r\n?><a/>", `<?pi data`, `<?pi data?`, `<??><a/>`, `<? pi?><a/>`, `<?1pi?><a/>`, `<?a:b:c d?><a/>`,
	`<?pi >?><a/>`, "<?pi\x01\xff?><a/>", `<?xmlfoo?><a/>`, `<?xml version="1.0" standalone="yes"?><a/>`,
	`<?xml xversion="1.1"?><a/>`, `<?xml version=1.1?><a/>`, `<?xml version="1.0?><a/>`, `<?xml version="1.0'?>`,
	`<?xml version='1.0" encoding="x"?>`, `<?xml encoding="utf-16" version="1.0"?><a/>`, `<?xml version="1.1" encoding="latin1"?>`,
	`<?xml version=" 1.0"?><a/>`, `<a/><?xml version="1.0"?>`, `<?pi`, `<?`, `<?pi?>?>`, `<?pi"x"?><a/>`, `<?pi&lt;?><a/>`,
	`<?xml version="1.0"encoding="US-ASCII"?><a/>`, "\xef\xbb\xbf<?xml version=\"1.0\"?><a/>",
	// Directives.
	`<!DOCTYPE a><a/>`, `<!DOCTYPE a [<!ELEMENT a ANY>]><a/>`, `<!DOCTYPE a [<!-- c --><!ENTITY x "y">]><a/>`,
	`<!DOCTYPE a "<>" '>' ><a/>`, `<!DOCTYPE a [<!--->-->]><a/>`, `<!DOCTYPE`, `<!DOCTYPE a [<!-`, `<!>`, `<!>>`,
	`<!<>>`, `<!"x">`, `<!"x>">`, `<!ENTITY x "y"><a/>`, `<!DOCTYPE a <!-- x --> b><a/>`, `<!DOCTYPE a [<!--x-->]`,
	`<!x<!-a>>`, `<!x<!--a--b-->>`, `<!x<!--a`, `<!x<<>>>`, `<!x<!>>`, `<!x<!->>`, `<!x'<!--'>`, `<!x"'">`,
	"<!x\x00>", "<!x\xff\x01>", `<a><!DOCTYPE a></a>`, `<!DOCTYPE a><!DOCTYPE b><a/>`, `<!x<!--->`, `<!x<!---->>`,
	`<!x <!-- a --> <!-- b --> y>`, `<!doctype a><a/>`, `<!-->`,
	// Positions across lines.
	"\n\n<a\n b='1'\n/>\n<b>\r\n</b>", "<a>\n\n\x01\n\n</a>", "<a b='\n\x01\n'/>", "<a>\n&nbsp\n;</a>", "<a\n\nb\n=\n1/>",
	"<a>\n</a\n\nb>", "<a\n\n", "<a>\n\n&#0;\n</a>", "<?pi\n\n", "<!--\n\n", "<a>\n<![CDATA[\n\x01\n]]>\n</a>",
	"<a>\n\n]]>", "\n<a b='\n\n<'/>", "<a>\n\n\xff", "<a\n\n:b:c/>", "<a\n1b/>", "\r\n<a/>\r\n", "<a/>\n\n",
	"<a>\n<b/>\n<c\n/>\n</a>",
}

func TestTricky(t *testing.T) {
	t.Parallel()
	for _, d := range tricky {
		variants := []string{d, "\xef\xbb\xbf" + d, strings.ReplaceAll(d, "\n", "\r\n")}
		for i := range len(d) {
			variants = append(variants, d[:i])
		}
		for _, v := range variants {
			if diff := compareDoc([]byte(v)); diff != "" {
				t.Errorf("%q: %s", v, diff)
			}
		}
	}
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	for _, d := range corpus(t) {
		if diff := compareDoc(d.data); diff != "" {
			t.Errorf("%s: %s", d.name, diff)
		}
		// Truncations exercise every end-of-input path; a stride keeps the
		// test quick on the larger files.
		stride := 1 + len(d.data)/40
		for i := len(d.data) % stride; i < len(d.data); i += stride {
			if diff := compareDoc(d.data[:i]); diff != "" {
				t.Errorf("%s truncated to %d bytes: %s", d.name, i, diff)
				break
			}
		}
	}
}

// TestCorpusAccepted makes sure the corpus is not all errors: the samples
// must tokenize to the end.
func TestCorpusAccepted(t *testing.T) {
	t.Parallel()
	for _, d := range corpus(t) {
		if strings.Contains(d.name, "ACC-Identifer") {
			continue // IR's sample is prose with XML fragments in it
		}
		tz := New(d.data)
		for {
			k, err := tz.Next()
			if err != nil {
				t.Errorf("%s: %v", d.name, err)
				break
			}
			if k == EOF {
				break
			}
		}
	}
}

// TestNameTablesMatchEncodingXML checks every rune of the Basic
// Multilingual Plane, and a sample beyond it, as the first and as a later
// character of a name, against encoding/xml.
func TestNameTablesMatchEncodingXML(t *testing.T) {
	t.Parallel()
	accepts := func(doc []byte) bool {
		d := xml.NewDecoder(bytes.NewReader(doc))
		_, err := d.RawToken()
		return err == nil
	}
	check := func(r rune) {
		if !utf8.ValidRune(r) {
			return
		}
		c := string(r)
		for _, doc := range []string{"<" + c + "/>", "<a" + c + "/>"} {
			if c == "/" || c == ">" {
				continue
			}
			want := accepts([]byte(doc))
			_, err := New([]byte(doc)).Next()
			if got := err == nil; got != want {
				t.Errorf("%q: xmltok accepts %v, encoding/xml %v", doc, got, want)
			}
		}
	}
	for r := rune(0); r < 0x10000; r++ {
		check(r)
	}
	for r := rune(0x10000); r <= unicode.MaxRune; r += 0x3d {
		check(r)
	}
}

// TestAttributeNormalisation pins the one deliberate difference from
// encoding/xml.
func TestAttributeNormalisation(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"a\tb":              "a b",
		"a\nb":              "a b",
		"a\rb":              "a b",
		"a\r\nb":            "a b",
		"a\r\r\nb":          "a  b",
		"a\n\rb":            "a  b",
		" \t\n\r\n ":        "     ",
		"&#9;&#10;&#13;":    "\t\n\r",
		"\t&#9;\n&#10;":     " \t \n",
		"&amp;\t&lt;":       "& <",
		"plain value":       "plain value",
		"\r&#10;\n":         " \n ",
		"caf\u00e9\t\u20ac": "caf\u00e9 \u20ac",
	}
	for raw, want := range tests {
		for _, q := range []string{`"`, `'`} {
			doc := "<a b=" + q + raw + q + "/>"
			tz := New([]byte(doc))
			k, err := tz.Next()
			if err != nil || k != StartElement || len(tz.Attrs()) != 1 {
				t.Fatalf("%q: %v %v %d attributes", doc, k, err, len(tz.Attrs()))
			}
			if got := string(tz.Attrs()[0].Value); got != want {
				t.Errorf("%q: value %q, want %q", doc, got, want)
			}
		}
	}
}

// TestNoAllocation checks the common case: a payload without references
// or carriage returns is tokenized without allocating.
func TestNoAllocation(t *testing.T) {
	data := gstPayload(t)
	if bytes.ContainsAny(data, "&\r") {
		t.Fatal("the GST sample has references or CRs now; pick another document")
	}
	tz := New(nil)
	allocs := testing.AllocsPerRun(20, func() {
		tz.Reset(data)
		for {
			k, err := tz.Next()
			if err != nil {
				t.Fatal(err)
			}
			if k == EOF {
				return
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per document, want 0", allocs)
	}
}

func TestAPI(t *testing.T) {
	t.Parallel()
	doc := "<?xml version=\"1.0\"?>\n<p:a xmlns:p=\"u\" b='x&amp;y'>t&lt;<b/><!--c--><![CDATA[d]]></p:a>"
	tz := New([]byte(doc))
	type step struct {
		kind            Kind
		prefix, local   string
		text            string
		line, col       int
		self, hasAttrsB bool
	}
	want := []step{
		{ProcInst, "", "xml", `version="1.0"`, 1, 1, false, false},
		{CharData, "", "", "\n", 1, 22, false, false},
		{StartElement, "p", "a", "", 2, 1, false, true},
		{CharData, "", "", "t<", 2, 30, false, false},
		{StartElement, "", "b", "", 2, 35, true, false},
		{EndElement, "", "b", "", 2, 39, true, false},
		{Comment, "", "", "c", 2, 39, false, false},
		{CharData, "", "", "d", 2, 47, false, false},
		{EndElement, "p", "a", "", 2, 60, false, false},
	}
	for i, w := range want {
		k, err := tz.Next()
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		line, col := tz.Pos()
		got := step{k, "", "", string(tz.Text()), line, col, tz.SelfClosing(), false}
		switch k {
		case StartElement, EndElement:
			got.prefix, got.local = string(tz.Name().Prefix), string(tz.Name().Local)
		case ProcInst:
			got.local = string(tz.Target())
		}
		if k == StartElement && len(tz.Attrs()) == 2 {
			a := tz.Attrs()[1]
			got.hasAttrsB = string(a.Name.Local) == "b" && string(a.Value) == "x&y"
		}
		if got != w {
			t.Errorf("step %d: got %+v, want %+v", i, got, w)
		}
		if k != tz.Kind() {
			t.Errorf("step %d: Kind() = %v", i, tz.Kind())
		}
	}
	if k, err := tz.Next(); k != EOF || err != nil {
		t.Errorf("at the end: %v %v", k, err)
	}
	if k, err := tz.Next(); k != EOF || err != nil {
		t.Errorf("after the end: %v %v", k, err)
	}
	if line, col := tz.InputPos(); line != 2 || col != 66 {
		t.Errorf("InputPos at the end = %d:%d", line, col)
	}
	// Errors.
	_, err := func() (Kind, error) {
		tz := New([]byte("<a>\n&nbsp;</a>"))
		tz.Next()
		return tz.Next()
	}()
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 2 || se.Column != 7 || se.Msg != "invalid character entity &nbsp;" ||
		err.Error() != "XML syntax error on line 2: invalid character entity &nbsp;" {
		t.Errorf("entity error = %#v", err)
	}
	var de *DeclError
	_, err = New([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?>`)).Next()
	if !errors.As(err, &de) || de.Line != 1 || de.Column != 1 || !strings.Contains(de.Msg, `"ISO-8859-1"`) {
		t.Errorf("encoding error = %#v", err)
	}
	if s := Kind(42).String(); s != "Kind(42)" {
		t.Errorf("Kind(42).String() = %q", s)
	}
}

func gstPayload(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "testdata/ir-gws/returns-gst/samples/body-gst-returnfile-request-GST101A.xml"))
	if err != nil {
		t.Fatal(err)
	}
	p := extractPayloads(data)
	if len(p) == 0 {
		t.Fatal("no payload in the GST101A sample")
	}
	return p[0]
}

// FuzzDifferential compares xmltok with encoding/xml on arbitrary input.
func FuzzDifferential(f *testing.F) {
	for _, d := range tricky {
		f.Add([]byte(d))
	}
	for _, d := range corpus(f) {
		if len(d.data) <= 8<<10 {
			f.Add(d.data)
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if diff := compareDoc(doc); diff != "" {
			t.Fatal(diff)
		}
	})
}

// BenchmarkTokenize compares encoding/xml's RawToken with xmltok on the
// GST101A payload package schema's BenchmarkValidate uses.
func BenchmarkTokenize(b *testing.B) {
	data := gstPayload(b)
	b.Run("encoding-xml", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			d := xml.NewDecoder(bytes.NewReader(data))
			d.Strict = true
			for {
				_, err := d.RawToken()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("xmltok", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		tz := New(nil)
		for b.Loop() {
			tz.Reset(data)
			for {
				k, err := tz.Next()
				if err != nil {
					b.Fatal(err)
				}
				if k == EOF {
					break
				}
			}
		}
	})
}

// TestRandomFragments compares the tokenizers on documents built from
// random sequences of XML's significant fragments, which reach odd
// combinations faster than byte-level mutation.
func TestRandomFragments(t *testing.T) {
	t.Parallel()
	frags := []string{
		"<", ">", "/", "/>", "</", "<a", "<a>", "</a>", "<b:c", "</b:c>", " ", "\n", "\r", "\r\n", "\t", "=", `"`, "'",
		`="v"`, `='v'`, "&", ";", "#", "x", "&amp;", "&lt;", "&#", "&#x", "&#65;", "&#x1F600;", "&#0;", "&#xD800;",
		"&nbsp;", "]", "]]>", "<![CDATA[", "<![", "<!--", "--", "-->", "-", "<!", "<!DOCTYPE", "[", "<?", "?>", "<?xml",
		` version="1.0"`, ` version="1.1"`, ` encoding="UTF-8"`, ` encoding="latin1"`, "a", "b", ":", "xmlns", "é", "中",
		"\u00b7", "\u0300", "😀", "\xff", "\xc3", "\x01", "\x00", "\xef\xbf\xbe", "1", ".", "-", "_",
	}
	rng := uint64(1)
	next := func(n int) int {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return int(rng % uint64(n))
	}
	n := 100000
	if testing.Short() {
		n = 10000
	}
	var b strings.Builder
	for range n {
		b.Reset()
		for k := 1 + next(24); k > 0; k-- {
			b.WriteString(frags[next(len(frags))])
		}
		if diff := compareDoc([]byte(b.String())); diff != "" {
			t.Fatalf("%q: %s", b.String(), diff)
		}
	}
}
