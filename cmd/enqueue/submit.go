package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/tasks"
)

const submitHelp = `Enqueues one job and prints its task ID, its queue and whether it was a
duplicate (a task with the same ID already queued, running or retained: the
job is not enqueued twice). The job comes from a JSON file (as one line of
a bulk file) or from flags:

  enqueue submit --file job.json
  enqueue submit --service returns --operation File --auth oauth \
      --token-set ts-42 --body-file gst-return.xml

An invalid job is refused with one line per bad field, and exit code 1.
`

func (a *app) submit(ctx context.Context, g *globals, args []string) int {
	fs := a.newFlagSet(g, "submit", "submit [--file job.json | --service S --operation OP --auth MODE [--token-set ID] --body-file FILE] [flags]", submitHelp)
	var (
		file      = fs.String("file", "", "JSON `file` holding the job (- for standard input)")
		service   = fs.String("service", "", "`service`: returns, employment, intermediation or account")
		operation = fs.String("operation", "", "`operation`, e.g. File, RetrieveStatus (SOAP) or list (REST)")
		endpoint  = fs.String("endpoint", "", "`endpoint`: cloud (default) or desktop")
		authMode  = fs.String("auth", "", "auth `mode`: oauth or m2m")
		tokenSet  = fs.String("token-set", "", "`ID` of the end user's OAuth token set (never the token)")
		bodyFile  = fs.String("body-file", "", "`file` holding the payload XML (SOAP) or JSON body (REST); - for standard input")
		ref       = fs.String("ref", "", "your own `reference` for the job, echoed in its result")
		batch     = fs.String("batch", "", "batch `ID` to file the job under")
		queue     = fs.String("queue", tasks.QueueRealtime, "`queue`: realtime, bulk or redrive")
	)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(a.stderr, "enqueue submit: unexpected argument %q\n", pos[0])
		fs.Usage()
		return exitError
	}
	if err := tasks.CheckQueue(*queue); err != nil {
		return a.fail(err)
	}

	var job *tasks.Job
	fieldFlags := *service != "" || *operation != "" || *endpoint != "" || *authMode != "" || *tokenSet != "" || *bodyFile != ""
	switch {
	case *file != "" && fieldFlags:
		return a.fail(errors.New("give --file or the job's fields (--service, --operation, ...), not both"))
	case *file != "":
		data, err := a.readInput(*file)
		if err != nil {
			return a.fail(err)
		}
		j, err := tasks.Decode(data)
		if err != nil {
			return a.invalid(err)
		}
		job = j
	case fieldFlags:
		if *bodyFile == "" {
			return a.fail(errors.New("--body-file is required with --service (the payload the job sends)"))
		}
		body, err := a.readInput(*bodyFile)
		if err != nil {
			return a.fail(err)
		}
		job = &tasks.Job{
			Service:   gatewayclient.Service(*service),
			Operation: *operation,
			Endpoint:  gatewayclient.EndpointKind(*endpoint),
			Auth:      tasks.Auth{Mode: gatewayclient.AuthMode(*authMode), TokenSet: *tokenSet},
			Body:      string(body),
		}
	default:
		fmt.Fprintln(a.stderr, "enqueue submit: give --file, or --service, --operation, --auth and --body-file")
		fs.Usage()
		return exitError
	}
	if *ref != "" {
		job.Ref = *ref
	}
	if *batch != "" {
		job.Batch = *batch
	}

	s, err := a.connect(g)
	if err != nil {
		return a.fail(err)
	}
	enq, client := s.enqueuer()
	defer client.Close()
	res, err := enq.Enqueue(ctx, job, *queue)
	if errors.Is(err, tasks.ErrInvalidJob) {
		return a.invalid(err)
	}
	if err != nil {
		return a.fail(fmt.Errorf("%w (Redis at %s)", err, s.cfg.Redis.Addr))
	}
	fmt.Fprintf(a.stdout, "task:      %s\nqueue:     %s\n", res.ID, res.Queue)
	if res.Duplicate {
		fmt.Fprintln(a.stdout, "duplicate: yes (a task with this ID is already queued, running or retained; not enqueued again)")
	} else {
		fmt.Fprintln(a.stdout, "duplicate: no")
	}
	return exitOK
}

// invalid prints a validation error, one bad field a line.
func (a *app) invalid(err error) int {
	fmt.Fprintf(a.stderr, "enqueue: invalid job:\n%s\n", indent(err.Error(), "  "))
	return exitError
}

// readInput reads a file, or standard input for "-", refusing one larger
// than any job can be rather than reading it whole.
func (a *app) readInput(path string) ([]byte, error) {
	var r io.Reader = a.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, jobInputLimit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > jobInputLimit {
		return nil, fmt.Errorf("%s is over %d bytes: larger than any job (a body is at most %d bytes)", path, jobInputLimit, tasks.MaxBodyBytes)
	}
	return data, nil
}

// jobInputLimit bounds a job file: the largest body tasks accepts, with
// room for JSON escaping.
const jobInputLimit = 2 * tasks.MaxBodyBytes
