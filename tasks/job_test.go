package tasks

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/schema"
)

// samplePayload extracts the payload element (the first element in one of
// IR's "urn:www.ird.govt.nz/GWS:types/" namespaces) of an IR sample envelope.
func samplePayload(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "ir-gws", rel))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	m := regexp.MustCompile(`<([A-Za-z0-9]+):(fileRequest|retrieveEIRequest|retrieveFormInfoRequest|returnStatusRequest)[ >]`).FindStringSubmatchIndex(s)
	if m == nil {
		t.Fatalf("%s: no payload element", rel)
	}
	prefix, local := s[m[2]:m[3]], s[m[4]:m[5]]
	end := strings.Index(s, "</"+prefix+":"+local+">")
	return s[m[0] : end+len("</"+prefix+":"+local+">")]
}

func gstJob(t testing.TB) *Job {
	return &Job{
		Service: gatewayclient.ServiceReturns, Operation: OpFile,
		Auth: Auth{Mode: gatewayclient.AuthOAuth, TokenSet: "ts-1"},
		Body: samplePayload(t, "returns-gst/samples/body-gst-returnfile-request-GST101A.xml"),
	}
}

func TestExtractNaturalKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, sample string
		want         NaturalKey
	}{
		{"GST file", "returns-gst/samples/body-gst-returnfile-request-GST101A.xml",
			NaturalKey{Identifier: "123039858", AccountType: "GST", PeriodEndDate: "2017-07-31", MajorFormType: "GST"}},
		{"payday file", "returns-ei/samples/body-ei-returnfile-request.xml",
			NaturalKey{Identifier: "123041607", AccountType: "PSO", PeriodEndDate: "2018-04-30", MajorFormType: "EI2", PayDayDate: "2018-04-10"}},
		{"payday status", "returns-ei/samples/body-ei-returnstatus-request.xml",
			NaturalKey{Identifier: "123041607", AccountType: "PSO", PeriodEndDate: "2018-04-30", MajorFormType: "EI2", PayDayDate: "2018-04-10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ExtractNaturalKey([]byte(samplePayload(t, tt.sample)))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Run("amendment is its own version", func(t *testing.T) {
		t.Parallel()
		body := strings.Replace(samplePayload(t, "returns-gst/samples/body-gst-returnfile-request-GST101A.xml"), "<ret2:isAmended>false<", "<ret2:isAmended>true<", 1)
		k, err := ExtractNaturalKey([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if !k.Amended || !strings.HasSuffix(k.String(), "/amended") {
			t.Fatalf("amendment not marked: %+v", k)
		}
	})
	t.Run("missing fields are named", func(t *testing.T) {
		t.Parallel()
		_, err := ExtractNaturalKey([]byte(`<fileRequest><identifier>123</identifier></fileRequest>`))
		if err == nil || !strings.Contains(err.Error(), "accountType, majorFormType, periodEndDate") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not XML", func(t *testing.T) {
		t.Parallel()
		if _, err := ExtractNaturalKey([]byte(`<fileRequest><identifier>`)); err == nil {
			t.Fatal("want an error")
		}
	})
}

func TestJobID(t *testing.T) {
	t.Parallel()
	a, b := gstJob(t), gstJob(t)
	for _, j := range []*Job{a, b} {
		if err := j.Normalize(); err != nil {
			t.Fatal(err)
		}
	}
	if a.ID() != b.ID() {
		t.Fatalf("same job, different IDs: %s %s", a.ID(), b.ID())
	}
	if !strings.HasPrefix(a.ID(), "returns:File:GST/123039858/GST/2017-07-31:") {
		t.Fatalf("ID %q does not start with the natural key", a.ID())
	}
	b.Body = strings.Replace(b.Body, "1000.00", "1001.00", 1)
	if a.ID() == b.ID() {
		t.Fatal("different bodies, same ID")
	}
	c := gstJob(t)
	c.Auth.TokenSet = "another-user"
	_ = c.Normalize()
	if a.ID() != c.ID() {
		t.Fatal("the token set must not change a return's identity")
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, wantErr string
	}{
		{"ok", `{"service":"returns","operation":"File","auth":{"mode":"oauth","token_set":"x"},"body":"<a/>"}`, ""},
		{"malformed", `{"service":`, "malformed JSON"},
		{"unknown field", `{"servce":"returns"}`, `unknown field "servce"`},
		{"wrong type", `{"version":"one"}`, `field "version"`},
		{"trailing", `{} {}`, "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidJob) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrInvalidJob containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestMarshalKeepsMarkup: the payload stores the body's XML as it is (no
// \u003c escapes) and decodes back to the same job.
func TestMarshalKeepsMarkup(t *testing.T) {
	t.Parallel()
	j := gstJob(t)
	j.Ref = "a&b <c>"
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(`\u003c`)) || !bytes.Contains(b, []byte("<ret1:fileRequest")) || bytes.HasSuffix(b, []byte("\n")) {
		t.Fatalf("payload escapes the markup or ends in a newline: %.120s", b)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Body != j.Body || got.Ref != j.Ref || got.ID() != j.ID() {
		t.Fatalf("round trip changed the job")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Job)
		fields []string // fields the error must name; none = valid
	}{
		{"valid GST file", func(*Job) {}, nil},
		{"returns refuse m2m", func(j *Job) { j.Auth = Auth{Mode: gatewayclient.AuthM2M} }, []string{"auth.mode"}},
		{"oauth needs a token set", func(j *Job) { j.Auth.TokenSet = "" }, []string{"auth.token_set"}},
		{"unknown auth mode", func(j *Job) { j.Auth.Mode = "basic" }, []string{"auth.mode"}},
		{"unknown operation", func(j *Job) { j.Operation = "Fil" }, []string{"operation"}},
		{"missing service", func(j *Job) { j.Service = "" }, []string{"service"}},
		{"unknown endpoint", func(j *Job) { j.Endpoint = "mainframe" }, []string{"endpoint"}},
		{"unknown version", func(j *Job) { j.Version = 9 }, []string{"version"}},
		{"missing body", func(j *Job) { j.Body = "" }, []string{"body"}},
		{"body not XML", func(j *Job) { j.Body = "<fileRequest" }, []string{"body"}},
		{"body fails XSD", func(j *Job) { j.Body = strings.Replace(j.Body, "2017-07-31", "1800-01-02", 1) }, []string{"body"}},
		{"several at once", func(j *Job) { j.Endpoint = "x"; j.Auth.Mode = "" }, []string{"endpoint", "auth.mode"}},
		{"account on desktop", func(j *Job) {
			j.Service, j.Operation, j.Endpoint, j.Auth, j.Body = gatewayclient.ServiceAccount, "list", gatewayclient.EndpointDesktop, Auth{Mode: gatewayclient.AuthM2M}, `{"CustomerID":"123456789","CustomerIDType":"IRD"}`
		}, []string{"endpoint"}},
		{"account with m2m", func(j *Job) {
			j.Service, j.Operation, j.Auth, j.Body = gatewayclient.ServiceAccount, "list", Auth{Mode: gatewayclient.AuthM2M}, `{"CustomerID":"123456789","CustomerIDType":"IRD"}`
		}, nil},
		{"account body not JSON", func(j *Job) {
			j.Service, j.Operation, j.Auth, j.Body = gatewayclient.ServiceAccount, "list", Auth{Mode: gatewayclient.AuthM2M}, `{"CustomerID":`
		}, []string{"body"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := gstJob(t)
			tt.mutate(j)
			if err := j.Normalize(); err != nil && tt.fields == nil {
				t.Fatal(err)
			}
			err := j.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidJob) {
				t.Fatalf("want ErrInvalidJob, got %v", err)
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f+": ") {
					t.Errorf("error does not name %s: %v", f, err)
				}
			}
		})
	}
	t.Run("XSD failure keeps its cause", func(t *testing.T) {
		t.Parallel()
		j := gstJob(t)
		j.Body = strings.Replace(j.Body, "2017-07-31", "1800-01-02", 1)
		_ = j.Normalize()
		var ve *schema.ValidationError
		if err := j.Validate(); !errors.As(err, &ve) {
			t.Fatalf("want a *schema.ValidationError in the chain, got %v", err)
		}
	})
	t.Run("key contradicting the payload", func(t *testing.T) {
		t.Parallel()
		j := gstJob(t)
		j.Key = &NaturalKey{Identifier: "999999999", AccountType: "GST", PeriodEndDate: "2017-07-31", MajorFormType: "GST"}
		var fe *FieldError
		if err := j.Normalize(); !errors.As(err, &fe) || fe.Field != "key" {
			t.Fatalf("want a key FieldError, got %v", err)
		}
	})
}
