package schema

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// constructsXSD uses XSD features that IR's schemas declare but no IR
// element exercises (enumeration, totalDigits, maxExclusive, element ref,
// XSD regex escapes, a repeating choice of a sequence) so they are tested
// against libxml2 too.
const constructsXSD = `<?xml version="1.0"?>
<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns="urn:t" targetNamespace="urn:t" elementFormDefault="qualified">
  <xsd:element name="shared" type="xsd:positiveInteger"/>
  <xsd:simpleType name="Month"><xsd:restriction base="xsd:string"><xsd:enumeration value="01"/><xsd:enumeration value="02"/></xsd:restriction></xsd:simpleType>
  <xsd:simpleType name="Amount"><xsd:restriction base="xsd:decimal"><xsd:totalDigits value="5"/><xsd:maxExclusive value="1000"/></xsd:restriction></xsd:simpleType>
  <xsd:simpleType name="Code"><xsd:restriction base="xsd:token"><xsd:pattern value="\i\c*"/></xsd:restriction></xsd:simpleType>
  <xsd:simpleType name="Lit"><xsd:restriction base="xsd:string"><xsd:pattern value="a^b$c"/></xsd:restriction></xsd:simpleType>
  <xsd:simpleType name="Dot"><xsd:restriction base="xsd:string"><xsd:pattern value="x.y"/></xsd:restriction></xsd:simpleType>
  <xsd:simpleType name="Spaces"><xsd:restriction base="xsd:string"><xsd:pattern value="\S+\s\S+"/></xsd:restriction></xsd:simpleType>
  <xsd:simpleType name="Digits"><xsd:restriction base="xsd:string"><xsd:pattern value="\d{2}|[A-Z]{3}"/><xsd:pattern value="Z+"/></xsd:restriction></xsd:simpleType>
  <xsd:simpleType name="Narrow"><xsd:restriction base="Digits"><xsd:pattern value="[0-9A-M]+"/></xsd:restriction></xsd:simpleType>
  <xsd:element name="root">
    <xsd:complexType>
      <xsd:sequence>
        <xsd:element name="month" type="Month" minOccurs="0"/>
        <xsd:element name="amount" type="Amount" minOccurs="0"/>
        <xsd:element name="code" type="Code" minOccurs="0"/>
        <xsd:element name="lit" type="Lit" minOccurs="0"/>
        <xsd:element name="dot" type="Dot" minOccurs="0"/>
        <xsd:element name="spaces" type="Spaces" minOccurs="0"/>
        <xsd:element name="digits" type="Digits" minOccurs="0"/>
        <xsd:element name="narrow" type="Narrow" minOccurs="0"/>
        <xsd:element name="int" type="xsd:int" minOccurs="0"/>
        <xsd:element name="dt" type="xsd:dateTime" minOccurs="0"/>
        <xsd:element name="year" type="xsd:gYear" minOccurs="0"/>
        <xsd:element ref="shared" minOccurs="0"/>
        <xsd:choice minOccurs="0" maxOccurs="unbounded">
          <xsd:sequence><xsd:element name="a" type="xsd:string"/><xsd:element name="b" type="xsd:string" minOccurs="0"/></xsd:sequence>
          <xsd:element name="c" type="xsd:string" maxOccurs="2"/>
        </xsd:choice>
        <xsd:element name="end" type="xsd:string" minOccurs="0"/>
      </xsd:sequence>
      <xsd:attribute name="ver" type="xsd:string" fixed="1"/>
    </xsd:complexType>
  </xsd:element>
</xsd:schema>
`

func TestConstructs(t *testing.T) {
	t.Parallel()
	set, err := compileFS(fstest.MapFS{"x/t.xsd": {Data: []byte(constructsXSD)}}, "x")
	if err != nil {
		t.Fatal(err)
	}
	xsdPath := filepath.Join(t.TempDir(), "t.xsd")
	if err := os.WriteFile(xsdPath, []byte(constructsXSD), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		body  string
		valid bool
	}{
		{"empty", ``, true},
		{"enumeration member", `<month>02</month>`, true},
		{"enumeration non-member", `<month>03</month>`, false},
		{"enumeration on string keeps spaces", `<month> 01</month>`, false},
		{"totalDigits within", `<amount>999.99</amount>`, true},
		{"totalDigits ignores padding zeros", `<amount>0012.300</amount>`, true},
		{"totalDigits exceeded", `<amount>12.3456</amount>`, false},
		{"maxExclusive reached", `<amount>1000</amount>`, false},
		{"name-start and name chars", `<code>ab-1.c</code>`, true},
		{"bad name start", `<code>1ab</code>`, false},
		{"caret and dollar are literals", `<lit>a^b$c</lit>`, true},
		{"caret is not an anchor", `<lit>abc</lit>`, false},
		{"dot matches any char", `<dot>x-y</dot>`, true},
		{"dot excludes carriage return", `<dot>x&#13;y</dot>`, false},
		{"one space", `<spaces>ab cd</spaces>`, true},
		{"two spaces", `<spaces>ab  cd</spaces>`, false},
		{"alternation in a pattern", `<digits>ABC</digits>`, true},
		{"second pattern of a step", `<digits>ZZZ</digits>`, true},
		{"no pattern matches", `<digits>1</digits>`, false},
		{"patterns of base and derived both apply", `<narrow>12</narrow>`, true},
		{"derived pattern narrows base", `<narrow>ZZZ</narrow>`, false},
		{"int max", `<int>2147483647</int>`, true},
		{"int overflow", `<int>2147483648</int>`, false},
		{"dateTime with fraction and zone", `<dt>2020-01-01T10:00:00.5+13:00</dt>`, true},
		{"dateTime with a space", `<dt>2020-01-01 10:00:00</dt>`, false},
		{"dateTime hour 25", `<dt>2020-01-01T25:00:00</dt>`, false},
		{"gYear", `<year>2020</year>`, true},
		{"gYear two digits", `<year>20</year>`, false},
		{"element ref", `<shared>1</shared>`, true},
		{"positiveInteger zero", `<shared>0</shared>`, false},
		{"choice of sequence repeated", `<a>1</a><b>2</b><a>3</a><c>4</c><c>5</c><c>6</c><end/>`, true},
		{"sequence inside choice needs its head", `<b>2</b>`, false},
		{"element after end", `<end/><a>1</a>`, false},
		{"fixed attribute", `<month>01</month>`, true},
		{"xsi:type not derived", `<month xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" xsi:type="xs:string">01</month>`, false},
		{"xsi:type derived built-in", `<int xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" xsi:type="xs:short">5</int>`, true},
		{"xsi:type derived built-in range", `<int xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" xsi:type="xs:short">50000</int>`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := []byte(`<root xmlns="urn:t">` + tc.body + `</root>`)
			err := set.validate(doc, nil)
			if (err == nil) != tc.valid {
				t.Errorf("valid = %v, want %v (err: %v)", err == nil, tc.valid, err)
			}
			var ve *ValidationError
			if err != nil && !errors.As(err, &ve) {
				t.Errorf("error %v is not a *ValidationError", err)
			}
			assertAgrees(t, doc, xsdPath, err)
		})
	}
	t.Run("fixed attribute", func(t *testing.T) {
		t.Parallel()
		for _, v := range []string{`1`, `2`, ` 1`} {
			doc := []byte(`<root xmlns="urn:t" ver="` + v + `"/>`)
			err := set.validate(doc, nil)
			if (err == nil) != (v == "1") {
				t.Errorf("ver=%q: %v", v, err)
			}
			assertAgrees(t, doc, xsdPath, err)
		}
	})
}

// TestUnsupportedSchemas checks that the compiler refuses constructs
// outside the supported subset instead of ignoring them.
func TestUnsupportedSchemas(t *testing.T) {
	t.Parallel()
	const head = `<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns="urn:t" targetNamespace="urn:t">`
	tests := map[string]string{
		"xsd:all":             `<xsd:complexType name="T"><xsd:all><xsd:element name="a"/></xsd:all></xsd:complexType>`,
		"xsd:any":             `<xsd:complexType name="T"><xsd:sequence><xsd:any/></xsd:sequence></xsd:complexType>`,
		"xsd:group":           `<xsd:group name="G"><xsd:sequence/></xsd:group>`,
		"list type":           `<xsd:simpleType name="L"><xsd:list itemType="xsd:int"/></xsd:simpleType>`,
		"complex restriction": `<xsd:complexType name="T"><xsd:complexContent><xsd:restriction base="xsd:anyType"/></xsd:complexContent></xsd:complexType>`,
		"substitution group":  `<xsd:element name="a"/><xsd:element name="b" substitutionGroup="a"/>`,
		"class subtraction":   `<xsd:simpleType name="S"><xsd:restriction base="xsd:string"><xsd:pattern value="[a-z-[aeiou]]"/></xsd:restriction></xsd:simpleType>`,
		"unicode block":       `<xsd:simpleType name="S"><xsd:restriction base="xsd:string"><xsd:pattern value="\p{IsBasicLatin}"/></xsd:restriction></xsd:simpleType>`,
		"unknown built-in":    `<xsd:element name="a" type="xsd:duration"/>`,
		"undefined type":      `<xsd:element name="a" type="Nope"/>`,
		"base cycle":          `<xsd:simpleType name="A"><xsd:restriction base="B"/></xsd:simpleType><xsd:simpleType name="B"><xsd:restriction base="A"/></xsd:simpleType>`,
		"bad fixed value":     `<xsd:element name="a" type="xsd:int" fixed="x"/>`,
		"missing import":      `<xsd:import namespace="urn:u" schemaLocation="nope.xsd"/>`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := compileFS(fstest.MapFS{"x/t.xsd": {Data: []byte(head + body + `</xsd:schema>`)}}, "x")
			if err == nil {
				t.Fatal("compiled without error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error: %v", err)
			}
		})
	}
}
