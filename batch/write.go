package batch

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// Report formats.
const (
	FormatCSV  = "csv"
	FormatJSON = "json"
)

// CSVHeader is the header row of a CSV report.
var CSVHeader = []string{"line", "natural_key", "ref", "task_id", "outcome", "class", "gateway_id", "submission_key", "status_code", "message"}

// Writer writes report lines in one format. Call Close once all lines are
// written: CSV is buffered.
type Writer interface {
	Write(Line) error
	Close() error
}

// NewWriter returns a Writer of format: FormatCSV (RFC 4180, with the
// CSVHeader row first) or FormatJSON (JSON lines: one object a line, no
// enclosing array, so a report of any size streams and each line parses
// on its own).
func NewWriter(w io.Writer, format string) (Writer, error) {
	switch format {
	case FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(CSVHeader); err != nil {
			return nil, err
		}
		return csvWriter{cw}, nil
	case FormatJSON:
		return jsonWriter{json.NewEncoder(w)}, nil
	}
	return nil, fmt.Errorf("batch: unknown report format %q (want csv or json)", format)
}

type csvWriter struct{ w *csv.Writer }

func (c csvWriter) Write(l Line) error {
	line := ""
	if l.Line > 0 {
		line = strconv.Itoa(l.Line)
	}
	return c.w.Write([]string{line, l.NaturalKey, l.Ref, l.TaskID, string(l.Outcome), l.Class, l.GatewayID, l.SubmissionKey, l.StatusCode, l.Message})
}

func (c csvWriter) Close() error {
	c.w.Flush()
	return c.w.Error()
}

type jsonWriter struct{ e *json.Encoder }

func (j jsonWriter) Write(l Line) error { return j.e.Encode(l) }
func (j jsonWriter) Close() error       { return nil }
