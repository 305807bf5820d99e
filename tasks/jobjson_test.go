package tasks

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/gatewayq/gatewayq/gatewayclient"
)

// plainJobs are jobs as producers write them: what decodeFast must take.
func plainJobs(t testing.TB) []Job {
	gst := samplePayload(t, "returns-gst/samples/body-gst-returnfile-request-GST101A.xml")
	ei := samplePayload(t, "returns-ei/samples/body-ei-returnfile-request.xml")
	oauth := Auth{Mode: gatewayclient.AuthOAuth, TokenSet: "ts-1"}
	return []Job{
		{Version: 1, Service: gatewayclient.ServiceReturns, Operation: OpFile, Endpoint: gatewayclient.EndpointCloud, Auth: oauth, Body: gst, Batch: "b-1", Ref: "gst-1"},
		{Version: 1, Service: gatewayclient.ServiceReturns, Operation: OpFile, Auth: oauth, Body: ei,
			Key: &NaturalKey{Identifier: "123456789", AccountType: "PAY", PeriodEndDate: "2026-03-31", MajorFormType: "EI2", PayDayDate: "2026-03-20", Amended: true}},
		{Service: gatewayclient.ServiceReturns, Operation: OpFile, Auth: oauth, Body: gst, Key: &NaturalKey{}},
		// Escapes of every kind, and text beyond ASCII.
		{Version: 1, Service: gatewayclient.ServiceReturns, Operation: "RetrieveStatus", Auth: oauth,
			Body: "<a b=\"c\">\t\r\n\\/\b\f\x00\x1f\u007f</a>", Ref: "Māori ✓ — 𝄞 \u2028\u2029"},
		{Version: 0, Service: "account", Operation: "GetAccount", Auth: Auth{Mode: gatewayclient.AuthM2M}, Body: `{"ird":"123"}`},
		{},
	}
}

// encodings of j: HTML-escaped as json.Marshal writes it, plain as
// Job.Marshal writes it, and indented.
func encodings(t testing.TB, j Job) [][]byte {
	html, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(j); err != nil {
		t.Fatal(err)
	}
	indented, err := json.MarshalIndent(j, " ", "\t")
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{html, plain.Bytes(), append([]byte("\r\n "), indented...)}
}

func TestDecodeFastTakesPlainJobs(t *testing.T) {
	for i, j := range plainJobs(t) {
		for k, data := range encodings(t, j) {
			got, ok := decodeFast(data)
			if !ok {
				t.Fatalf("job %d, encoding %d: decodeFast fell back on a plain job:\n%.300s", i, k, data)
			}
			want, err := decodeStd(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(*got, j) {
				t.Fatalf("job %d, encoding %d:\n got %+v\nwant %+v", i, k, got, want)
			}
		}
	}
}

// odd are jobs encoding/json takes or refuses in ways decodeFast leaves to
// it; Decode must answer them exactly as encoding/json does.
var odd = []string{
	`{"version":1,"Body":"x"}`,                                // another case: encoding/json matches it
	`{"ref":"a","ref":"b"}`,                                   // repeated: the last wins
	`{"key":{"identifier":"1"},"key":{"account_type":"GST"}}`, // repeated objects merge
	`{"key":null}`,
	`{"ref":null}`,
	`{"version":1.0}`,
	`{"version":1e0}`,
	`{"version":01}`,
	`{"version":"1"}`,
	`{"version":12345678901234567890}`,
	`{"body":"\ud834\udd1e"}`, // a surrogate pair
	`{"body":"\ud834"}`,       // a lone surrogate: U+FFFD
	"{\"body\":\"\xff\"}",     // invalid UTF-8: U+FFFD
	"{\"body\":\"a\xe2\x82\"}",
	"{\"body\":\"\t\"}", // a raw control character
	`{"body":"\x"}`,
	`{"body":"\u12"}`,
	`{"oepration":"File"}`,
	`{"auth":{"mode":"oauth","token":"x"}}`,
	`{"key":{"amended":1}}`,
	`{"key":{"amended":tru}}`,
	`{"ref":"a"} x`,
	`{"ref":"a"}}`, // encoding/json's Decoder stops at the object
	`{"ref":"a"}{}`,
	`{"ref":"a",}`,
	`{"ref" "a"}`,
	`{"ref":"a"`,
	`["ref"]`,
	``,
	`   `,
	`{}`,
	`{"\u0072ef":"a"}`,
}

func TestDecodeAnswersOddJobsAsEncodingJSON(t *testing.T) {
	for _, in := range odd {
		got, err := Decode([]byte(in))
		want, wantErr := decodeStd([]byte(in))
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: Decode = %+v, %v; encoding/json: %+v, %v", in, got, err, want, wantErr)
		}
	}
}

// FuzzDecodeAgrees: whenever decodeFast answers, encoding/json answers the
// same job. (Where it does not answer, Decode is encoding/json.)
func FuzzDecodeAgrees(f *testing.F) {
	for _, j := range plainJobs(f) {
		for _, data := range encodings(f, j) {
			f.Add(data)
			f.Add(data[:len(data)/2])
		}
	}
	for _, in := range odd {
		f.Add([]byte(in))
	}
	f.Add([]byte(`{"version":-0,"body":"\u00e9\u0000"}`))
	f.Add([]byte(`{"key":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodeFast(data)
		if !ok {
			return
		}
		want, err := decodeStd(data)
		if err != nil {
			t.Fatalf("decodeFast took %q, which encoding/json refuses: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\ndecodeFast    %+v\nencoding/json %+v", data, got, want)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	data := encodings(b, plainJobs(b)[0])[0]
	for _, bc := range []struct {
		name   string
		decode func([]byte) (*Job, error)
	}{{"Decode", Decode}, {"encoding-json", decodeStd}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
