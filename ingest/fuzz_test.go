package ingest

import (
	"encoding/json"
	"net/http"
	"testing"
)

// FuzzSplitJobs feeds arbitrary bodies to the splitter: it never panics,
// refuses only with 400, and what it accepts is valid JSON, one value a
// job.
func FuzzSplitJobs(f *testing.F) {
	for _, s := range []string{
		`{"service":"returns"}`, `[{"a":1},{"b":2}]`, `{"jobs":[{"a":1}]}`, `{"jobs":{}}`,
		`{"jobs":[],"x":1}`, `[`, `{"a":1} {}`, ` `, `null`, `"x"`, "\xff", `[1,[2],{"3":4}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		raw, list, rerr := splitJobs(body)
		if rerr != nil {
			if rerr.code != http.StatusBadRequest || rerr.body.Error == "" {
				t.Fatalf("refusal %d %+v", rerr.code, rerr.body)
			}
			if rerr.body.Offset != nil && (*rerr.body.Offset < 0 || *rerr.body.Offset > int64(len(body))) {
				t.Fatalf("offset %d outside a body of %d bytes", *rerr.body.Offset, len(body))
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		if !list && len(raw) != 1 {
			t.Fatalf("one job gave %d", len(raw))
		}
		for _, r := range raw {
			if !json.Valid(r) {
				t.Fatalf("job %q is not JSON", r)
			}
		}
	})
}
