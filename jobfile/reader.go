// Package jobfile reads and enqueues bulk job files: JSON lines, one
// tasks.Job a line, as a payroll or accounting product writes them for a
// night's filing.
//
// A file is streamed, never loaded whole, so memory stays flat however many
// jobs it holds. Every line is decoded, normalised and validated on its own:
// a bad line is reported with its line number and never stops the lines
// after it; only an I/O error does. Blank lines and lines starting with "#"
// are skipped, a UTF-8 byte order mark on the first line and CRLF line
// endings are accepted.
//
// Reader validates a file line by line (what a dry run needs); Enqueue puts
// the valid jobs of a file on the queues with a small pool of goroutines.
package jobfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/gatewayq/gatewayq/tasks"
)

// DefaultMaxLineBytes is the longest line read by default. A payday return
// of a large employer runs to a few MB once escaped into JSON; tasks caps a
// body at 4 MiB, so 8 MiB leaves room for the escaping and the other fields.
const DefaultMaxLineBytes = 8 << 20

// ErrLineTooLong is wrapped by the LineError of a line longer than the
// reader's limit. The line is skipped and reading goes on with the next.
var ErrLineTooLong = errors.New("line too long")

// Line is one job line of a file: its job when valid, its error when not.
type Line struct {
	// Number is the line's 1-based number in the file, counting blank and
	// comment lines, so an editor's "go to line" finds it.
	Number int
	// Job is the decoded, normalised and validated job; nil when Err is set.
	Job *tasks.Job
	// Err is a *LineError when the line is not a valid job.
	Err error
}

// LineError is what is wrong with one line of a file. Its message starts
// "line N: " and names the field and the reason, on one line. Err wraps
// tasks.ErrInvalidJob (and a *tasks.FieldError per bad field) or
// ErrLineTooLong, for errors.Is and errors.As.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string {
	// Validate joins one error per bad field with newlines; a report shows
	// one line per line of the file.
	return fmt.Sprintf("line %d: %s", e.Line, strings.ReplaceAll(e.Err.Error(), "\n", "; "))
}

func (e *LineError) Unwrap() error { return e.Err }

// Reader reads the jobs of a JSON-lines file one line at a time. It is not
// safe for concurrent use.
type Reader struct {
	sc *scanner
}

// NewReader returns a Reader of r with lines of up to DefaultMaxLineBytes.
func NewReader(r io.Reader) *Reader { return NewReaderSize(r, DefaultMaxLineBytes) }

// NewReaderSize returns a Reader of r whose longest line is maxLine bytes
// (not counting the line ending); a longer line is a LineError wrapping
// ErrLineTooLong. maxLine <= 0 means DefaultMaxLineBytes.
func NewReaderSize(r io.Reader, maxLine int) *Reader {
	return &Reader{sc: newScanner(r, maxLine)}
}

// Next returns the next job line, valid or not, skipping blank and comment
// lines. At the end of the input it returns io.EOF; any other error is an
// I/O error of the underlying reader, after which Next must not be called.
func (r *Reader) Next() (Line, error) {
	for {
		raw, err := r.sc.next()
		if err != nil {
			return Line{}, err
		}
		if raw.skip {
			continue
		}
		return parseLine(raw), nil
	}
}

// All iterates over the remaining job lines. An I/O error ends the
// iteration with a last pair holding the zero Line and the error; io.EOF
// ends it silently.
func (r *Reader) All() iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		for {
			l, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(Line{}, err)
				return
			}
			if !yield(l, nil) {
				return
			}
		}
	}
}

// BytesRead is how many bytes of the input have been consumed so far,
// line endings and skipped lines included.
func (r *Reader) BytesRead() int64 { return r.sc.bytesRead }

// ParseLine decodes, normalises and validates one line of a job file (its
// line ending already removed). number is used in the error only.
func ParseLine(number int, line []byte) Line {
	return parseLine(rawLine{number: number, data: line})
}

func parseLine(raw rawLine) Line {
	if raw.tooLong {
		return Line{Number: raw.number, Err: &LineError{Line: raw.number, Err: fmt.Errorf("%w: over %d bytes", ErrLineTooLong, raw.limit)}}
	}
	j, err := decodeLine(raw.data)
	if err != nil {
		return Line{Number: raw.number, Err: &LineError{Line: raw.number, Err: err}}
	}
	return Line{Number: raw.number, Job: j}
}

// decodeLine is the work done for every line: the same steps, in the same
// order, as tasks.NewTask.
func decodeLine(data []byte) (*tasks.Job, error) {
	j, err := tasks.Decode(data)
	if err != nil {
		return nil, err
	}
	if err := j.Normalize(); err != nil {
		return nil, err
	}
	if err := j.Validate(); err != nil {
		return nil, err
	}
	return j, nil
}

// rawLine is one physical line of the input.
type rawLine struct {
	number int
	data   []byte // without the line ending; valid until the next call to next
	// skip marks a blank or comment line.
	skip bool
	// tooLong marks a line over limit bytes; data is then empty.
	tooLong bool
	limit   int
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// scanner splits the input into lines. Unlike bufio.Scanner it survives a
// line over the limit: that line is reported and skipped, and scanning
// goes on with the next one.
type scanner struct {
	br        *bufio.Reader
	max       int
	buf       []byte
	number    int
	bytesRead int64
	err       error // sticky: io.EOF or the I/O error that ended the input
}

func newScanner(r io.Reader, maxLine int) *scanner {
	if maxLine <= 0 {
		maxLine = DefaultMaxLineBytes
	}
	return &scanner{br: bufio.NewReaderSize(r, 64<<10), max: maxLine}
}

// next returns the next physical line. Its data is only valid until the
// following call.
func (s *scanner) next() (rawLine, error) {
	if s.err != nil {
		return rawLine{}, s.err
	}
	s.buf = s.buf[:0]
	tooLong, sawAny := false, false
	for {
		chunk, err := s.br.ReadSlice('\n')
		s.bytesRead += int64(len(chunk))
		if len(chunk) > 0 {
			sawAny = true
		}
		if !tooLong {
			s.buf = append(s.buf, chunk...)
			if contentLen(s.buf) > s.max {
				tooLong = true
				s.buf = s.buf[:0]
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			s.err = err
			if !errors.Is(err, io.EOF) || !sawAny {
				// An I/O error loses the partial line: it is not known to
				// be whole, and a truncated job must not be enqueued.
				return rawLine{}, err
			}
			// The last line has no line ending: it is still a line.
		}
		break
	}
	s.number++
	l := rawLine{number: s.number, tooLong: tooLong, limit: s.max}
	if tooLong {
		return l, nil
	}
	data := bytes.TrimSuffix(s.buf, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	if s.number == 1 {
		data = bytes.TrimPrefix(data, utf8BOM)
	}
	trimmed := bytes.TrimSpace(data)
	l.skip = len(trimmed) == 0 || trimmed[0] == '#'
	l.data = data
	return l, nil
}

// contentLen is the length of a (possibly partial) line without its line
// ending ("\n" or "\r\n"), which doesn't count toward the limit.
func contentLen(line []byte) int {
	n := len(line)
	if n > 0 && line[n-1] == '\n' {
		n--
	}
	// A trailing "\r" is not counted even before its "\n" has been read:
	// it may be the first half of a CRLF split across two reads.
	if n > 0 && line[n-1] == '\r' {
		n--
	}
	return n
}
