package jobfile_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/gatewayq/gatewayq/jobfile"
	"github.com/gatewayq/gatewayq/tasks"
)

// readAll reads every line, failing the test on an I/O error.
func readAll(t *testing.T, r *jobfile.Reader) []jobfile.Line {
	t.Helper()
	var out []jobfile.Line
	for l, err := range r.All() {
		if err != nil {
			t.Fatalf("I/O error: %v", err)
		}
		out = append(out, l)
	}
	return out
}

func TestReader(t *testing.T) {
	t.Parallel()
	gst, ei := gstLine(t, 1), eiLine(t, 2)
	type want struct {
		number int
		ok     bool
		// errHas are substrings the error must contain (it always starts
		// "line N: ").
		errHas []string
		field  string // a *tasks.FieldError with this field must be among the errors
	}
	tests := []struct {
		name    string
		input   string
		maxLine int
		want    []want
	}{
		{
			name:  "good lines",
			input: gst + "\n" + ei + "\n",
			want:  []want{{number: 1, ok: true}, {number: 2, ok: true}},
		},
		{
			name:  "blank and comment lines are skipped but counted",
			input: "# nightly GST batch\n\n   \n" + gst + "\n  # indented comment\n" + ei + "\n\n",
			want:  []want{{number: 4, ok: true}, {number: 6, ok: true}},
		},
		{
			name:  "malformed JSON",
			input: `{"service":"returns",,"operation":"File"}` + "\n" + gst + "\n",
			want:  []want{{number: 1, errHas: []string{"malformed JSON"}}, {number: 2, ok: true}},
		},
		{
			name:  "truncated JSON",
			input: `{"service":"returns","operation":` + "\n" + gst + "\n",
			want:  []want{{number: 1, errHas: []string{"invalid job"}}, {number: 2, ok: true}},
		},
		{
			name:  "not an object",
			input: "[1,2,3]\n",
			want:  []want{{number: 1, errHas: []string{"invalid job"}}},
		},
		{
			name:  "trailing data after the object",
			input: `{"service":"returns"} {"service":"returns"}` + "\n",
			want:  []want{{number: 1, errHas: []string{"trailing data"}}},
		},
		{
			name:  "unknown field",
			input: strings.Replace(gst, `"operation"`, `"oepration"`, 1) + "\n",
			want:  []want{{number: 1, errHas: []string{"oepration"}}},
		},
		{
			name:  "wrong type of field",
			input: jobLine(t, map[string]any{"service": 7}) + "\n",
			want:  []want{{number: 1, errHas: []string{"service"}}},
		},
		{
			name:  "unknown service",
			input: strings.Replace(gst, `"service":"returns"`, `"service":"payroll"`, 1) + "\n",
			want:  []want{{number: 1, errHas: []string{"payroll"}, field: "operation"}},
		},
		{
			name:  "unknown operation",
			input: strings.Replace(gst, `"operation":"File"`, `"operation":"Fly"`, 1) + "\n",
			want:  []want{{number: 1, errHas: []string{"Fly"}, field: "operation"}},
		},
		{
			name:  "unknown endpoint",
			input: strings.Replace(ei, `"endpoint":"cloud"`, `"endpoint":"mainframe"`, 1) + "\n",
			want:  []want{{number: 1, errHas: []string{"mainframe"}, field: "endpoint"}},
		},
		{
			name:  "auth mode the service cannot take",
			input: jobLine(t, map[string]any{"service": "returns", "operation": "File", "auth": map[string]any{"mode": "m2m"}, "body": gstBody(t, 3)}) + "\n",
			want:  []want{{number: 1, errHas: []string{"cannot take m2m"}, field: "auth.mode"}},
		},
		{
			name:  "missing fields",
			input: "{}\n",
			want:  []want{{number: 1, errHas: []string{"service: missing", "auth.mode: missing", "body: missing"}, field: "service"}},
		},
		{
			name:  "missing token set",
			input: jobLine(t, map[string]any{"service": "returns", "operation": "File", "auth": map[string]any{"mode": "oauth"}, "body": gstBody(t, 4)}) + "\n",
			want:  []want{{number: 1, errHas: []string{"auth.token_set"}, field: "auth.token_set"}},
		},
		{
			name: "body not well-formed XML",
			input: jobLine(t, map[string]any{"service": "returns", "operation": "File", "auth": map[string]any{"mode": "oauth", "token_set": "ts"},
				"body": strings.Replace(gstBody(t, 5), "</ret1:fileRequest>", "</ret1:fileReq>", 1)}) + "\n",
			want: []want{{number: 1, errHas: []string{"well-formed"}, field: "body"}},
		},
		{
			name:  "body failing IR's XSD",
			input: badSchemaLine(t, 6) + "\n" + gst + "\n",
			want:  []want{{number: 1, errHas: []string{"XSD"}, field: "body"}, {number: 2, ok: true}},
		},
		{
			name:    "too-long line, then reading goes on",
			input:   `{"service":"` + strings.Repeat("x", 200) + `"}` + "\n" + `{"service":"returns"}` + "\n",
			maxLine: 100,
			want:    []want{{number: 1, errHas: []string{"line too long", "100 bytes"}}, {number: 2, errHas: []string{"operation: missing"}}},
		},
		{
			name:  "CRLF line endings",
			input: gst + "\r\n\r\n" + ei + "\r\n",
			want:  []want{{number: 1, ok: true}, {number: 3, ok: true}},
		},
		{
			name:  "no trailing newline",
			input: gst + "\n" + ei,
			want:  []want{{number: 1, ok: true}, {number: 2, ok: true}},
		},
		{
			name:  "UTF-8 BOM on line 1",
			input: "\xEF\xBB\xBF" + gst + "\n" + ei + "\n",
			want:  []want{{number: 1, ok: true}, {number: 2, ok: true}},
		},
		{
			name:  "a BOM past line 1 is an error",
			input: gst + "\n\xEF\xBB\xBF" + ei + "\n",
			want:  []want{{number: 1, ok: true}, {number: 2, errHas: []string{"malformed JSON"}}},
		},
		{
			name:  "empty input",
			input: "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := readAll(t, jobfile.NewReaderSize(strings.NewReader(tc.input), tc.maxLine))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d lines, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				l := got[i]
				if l.Number != w.number {
					t.Errorf("line %d: Number = %d, want %d", i, l.Number, w.number)
				}
				if w.ok {
					if l.Err != nil || l.Job == nil {
						t.Errorf("line %d: want a job, got err %v", l.Number, l.Err)
						continue
					}
					if l.Job.Key == nil || l.Job.Version != tasks.PayloadVersion {
						t.Errorf("line %d: job not normalised: key %v, version %d", l.Number, l.Job.Key, l.Job.Version)
					}
					continue
				}
				if l.Job != nil || l.Err == nil {
					t.Errorf("line %d: want an error, got job %v", l.Number, l.Job)
					continue
				}
				var le *jobfile.LineError
				if !errors.As(l.Err, &le) || le.Line != w.number {
					t.Errorf("line %d: err %T %v is not a *LineError of line %d", l.Number, l.Err, l.Err, w.number)
				}
				msg := l.Err.Error()
				if prefix := fmt.Sprintf("line %d: ", w.number); !strings.HasPrefix(msg, prefix) {
					t.Errorf("error %q does not start %q", msg, prefix)
				}
				if strings.Contains(msg, "\n") {
					t.Errorf("error %q spans several lines", msg)
				}
				for _, s := range w.errHas {
					if !strings.Contains(msg, s) {
						t.Errorf("error %q does not contain %q", msg, s)
					}
				}
				if !errors.Is(l.Err, tasks.ErrInvalidJob) && !errors.Is(l.Err, jobfile.ErrLineTooLong) {
					t.Errorf("error %v wraps neither tasks.ErrInvalidJob nor ErrLineTooLong", l.Err)
				}
				if w.field != "" && !hasFieldError(l.Err, w.field) {
					t.Errorf("error %v has no *tasks.FieldError for %q", l.Err, w.field)
				}
			}
		})
	}
}

// hasFieldError looks for a *tasks.FieldError naming field anywhere in
// err's tree (Validate joins one per bad field).
func hasFieldError(err error, field string) bool {
	var fe *tasks.FieldError
	if errors.As(err, &fe) && fe.Field == field {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if hasFieldError(e, field) {
				return true
			}
		}
	case interface{ Unwrap() error }:
		if e := u.Unwrap(); e != nil {
			return hasFieldError(e, field)
		}
	}
	return false
}

func TestReaderNext(t *testing.T) {
	t.Parallel()
	input := "# header\n" + gstLine(t, 7) + "\n"
	r := jobfile.NewReader(strings.NewReader(input))
	l, err := r.Next()
	if err != nil || l.Number != 2 || l.Job == nil {
		t.Fatalf("Next = %+v, %v; want the job of line 2", l, err)
	}
	if l.Job.Key.Identifier != irdNumber(7) {
		t.Errorf("key identifier = %q, want %q (derived from the payload)", l.Job.Key.Identifier, irdNumber(7))
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next at the end = %v, want io.EOF", err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next after the end = %v, want io.EOF again", err)
	}
	if got := r.BytesRead(); got != int64(len(input)) {
		t.Errorf("BytesRead = %d, want %d", got, len(input))
	}
}

// failingReader gives data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReaderIOErrorStops(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	// The second line is cut short by the error: it must not become a job,
	// nor an error of line 2 that hides the I/O error.
	r := jobfile.NewReader(&failingReader{data: []byte(gstLine(t, 8) + "\n" + `{"service":"retu`), err: boom})
	var lines []jobfile.Line
	var ioErr error
	for l, err := range r.All() {
		if err != nil {
			ioErr = err
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) != 1 || lines[0].Job == nil {
		t.Fatalf("got lines %+v, want the one good line before the error", lines)
	}
	if !errors.Is(ioErr, boom) {
		t.Fatalf("iteration ended with %v, want %v", ioErr, boom)
	}
	if _, err := r.Next(); !errors.Is(err, boom) {
		t.Errorf("Next after the error = %v, want %v again", err, boom)
	}
}

func TestReaderLongLineAtLimit(t *testing.T) {
	t.Parallel()
	// A line of exactly the limit is read, CRLF or not, and even when the
	// limit exceeds bufio's buffer (64 KiB) so the line arrives in pieces.
	const limit = 100 << 10
	line := `{"ref":"` + strings.Repeat("r", limit-len(`{"ref":""}`)) + `"}`
	if len(line) != limit {
		t.Fatalf("test line is %d bytes", len(line))
	}
	for _, ending := range []string{"\n", "\r\n"} {
		r := jobfile.NewReaderSize(strings.NewReader(line+ending+line+"x"+ending), limit)
		got := readAll(t, r)
		if len(got) != 2 {
			t.Fatalf("ending %q: got %d lines, want 2", ending, len(got))
		}
		if errors.Is(got[0].Err, jobfile.ErrLineTooLong) {
			t.Errorf("ending %q: a line of exactly the limit was refused as too long", ending)
		}
		if !errors.Is(got[1].Err, jobfile.ErrLineTooLong) {
			t.Errorf("ending %q: a line one byte over the limit gave %v, want ErrLineTooLong", ending, got[1].Err)
		}
	}
	// The last line, without a line ending.
	for _, tc := range []struct {
		input   string
		tooLong bool
	}{{line, false}, {line + "x", true}, {line + "\r", false}} {
		got := readAll(t, jobfile.NewReaderSize(strings.NewReader(tc.input), limit))
		if len(got) != 1 || errors.Is(got[0].Err, jobfile.ErrLineTooLong) != tc.tooLong {
			t.Errorf("last line of %d bytes: got %v, want too long: %v", len(tc.input), got, tc.tooLong)
		}
	}
}

func TestParseLine(t *testing.T) {
	t.Parallel()
	l := jobfile.ParseLine(42, []byte(`{"service":"returns","operation":"File"}`))
	if l.Number != 42 || l.Job != nil || !strings.HasPrefix(fmt.Sprint(l.Err), "line 42: ") {
		t.Fatalf("ParseLine = %+v", l)
	}
}

func FuzzReader(f *testing.F) {
	gst := gstLine(f, 1)
	seeds := []string{
		gst + "\n",
		eiLine(f, 2) + "\r\n" + gst,
		"\xEF\xBB\xBF" + gst + "\n# comment\n\n" + badSchemaLine(f, 3) + "\n",
		"{}\n[]\nnull\n\"str\"\n42\n",
		`{"service":"returns","operation":"File","auth":{"mode":"oauth","token_set":"t"},"body":"<x"}` + "\n",
		`{"service":"account","operation":"list","auth":{"mode":"m2m"},"body":"{\"CustomerID\":\"123\"}"}`,
		`{"oepration":"File"}` + "\n\n\n",
		"\r\n\r\n\n\r",
		strings.Repeat("y", 5000) + "\n" + gst,
		"\xEF\xBB\xBF",
		"\x00\xff\xfe\n#\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A small limit exercises the too-long path; the GST seed (about
		// 5 KB as JSON) fits.
		const limit = 8 << 10
		r := jobfile.NewReaderSize(bytes.NewReader(data), limit)
		prev := 0
		maxLines := bytes.Count(data, []byte("\n")) + 1
		for l, err := range r.All() {
			if err != nil {
				t.Fatalf("I/O error from a bytes.Reader: %v", err)
			}
			if l.Number <= prev {
				t.Fatalf("line number %d after %d", l.Number, prev)
			}
			prev = l.Number
			if l.Number > maxLines {
				t.Fatalf("line number %d, but the input has at most %d lines", l.Number, maxLines)
			}
			if (l.Job == nil) == (l.Err == nil) {
				t.Fatalf("line %d: want exactly one of job and error, got %v and %v", l.Number, l.Job, l.Err)
			}
			if l.Err != nil {
				var le *jobfile.LineError
				if !errors.As(l.Err, &le) || le.Line != l.Number {
					t.Fatalf("line %d: error %T is not its *LineError", l.Number, l.Err)
				}
				if !strings.HasPrefix(l.Err.Error(), fmt.Sprintf("line %d: ", l.Number)) {
					t.Fatalf("error %q lacks its line prefix", l.Err)
				}
				continue
			}
			if err := l.Job.Validate(); err != nil {
				t.Fatalf("line %d: a returned job fails validation: %v", l.Number, err)
			}
		}
		if got := r.BytesRead(); got != int64(len(data)) {
			t.Fatalf("BytesRead = %d, want %d", got, len(data))
		}
	})
}
