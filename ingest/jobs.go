package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gatewayq/gatewayq/jobstatus"
	"github.com/gatewayq/gatewayq/tasks"
)

// JobResult is the answer for one job posted on its own.
type JobResult struct {
	ID string `json:"id"`
	// Queue is the logical queue the job is on: where it was put, or for
	// a duplicate where the existing job is.
	Queue string `json:"queue"`
	// State is the job's asynq state: pending for a job just enqueued, the
	// existing job's state for a duplicate.
	State string `json:"state,omitempty"`
	// Duplicate is true when the job already existed: nothing was enqueued.
	Duplicate bool `json:"duplicate"`
	// Ref is the producer's own reference, echoed.
	Ref string `json:"ref,omitempty"`
}

// ItemResult is the answer for one job of a list.
type ItemResult struct {
	// Index is the job's position in the request's list, from 0.
	Index int `json:"index"`
	JobResult
}

// ListResult is the answer for a list of jobs.
type ListResult struct {
	Jobs []ItemResult `json:"jobs"`
	// Accepted counts the jobs enqueued now, Duplicates those that existed.
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

// ErrorResponse is every error's body.
type ErrorResponse struct {
	Error string `json:"error"`
	// Offset is the byte of the body where malformed JSON was found.
	Offset *int64 `json:"offset,omitempty"`
	// Limit is the limit a request went over (413): bytes or jobs.
	Limit int64 `json:"limit,omitempty"`
	// Fields are the problems of a single invalid job (422).
	Fields []FieldProblem `json:"fields,omitempty"`
	// Invalid are the invalid jobs of a list (422), by index.
	Invalid []InvalidJob `json:"invalid,omitempty"`
	// Jobs are the jobs of a list enqueued before the queues failed (503).
	Jobs []ItemResult `json:"jobs,omitempty"`
	// Allow lists the methods a path takes (405).
	Allow string `json:"allow,omitempty"`
	// ID is the job looked up (404).
	ID string `json:"id,omitempty"`
}

// FieldProblem is one reason a job is invalid.
type FieldProblem struct {
	// Field is the job's field at fault (e.g. "body", "auth.token_set");
	// empty when the job as a whole is (not a JSON object, an unknown
	// field).
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// InvalidJob is one invalid job of a list.
type InvalidJob struct {
	Index  int            `json:"index"`
	Ref    string         `json:"ref,omitempty"`
	Fields []FieldProblem `json:"fields"`
}

// requestError is a refusal of the request as a whole.
type requestError struct {
	code int
	body ErrorResponse
}

func badRequest(code int, format string, args ...any) *requestError {
	return &requestError{code: code, body: ErrorResponse{Error: fmt.Sprintf(format, args...)}}
}

func (h *Handler) postJobs(w http.ResponseWriter, r *http.Request) {
	caller := Caller(r.Context())
	refuse := func(e *requestError) {
		h.log.Info("ingest: request refused", "caller", caller, "status", e.code, "reason", e.body.Error)
		writeJSON(w, e.code, e.body)
	}
	queue, rerr := queueParam(r)
	if rerr != nil {
		refuse(rerr)
		return
	}
	jobs, list, rerr := h.readJobs(w, r)
	if rerr != nil {
		refuse(rerr)
		return
	}

	// Validate every job before enqueuing any: an invalid list is refused
	// whole, never half-enqueued.
	var invalid []InvalidJob
	for i, raw := range jobs.raw {
		j, err := tasks.Decode(raw)
		var p *tasks.Prepared
		if err == nil {
			p, err = tasks.Prepare(j)
		}
		if err != nil {
			bad := InvalidJob{Index: i, Fields: problems(err)}
			if j != nil {
				bad.Ref = j.Ref
			}
			invalid = append(invalid, bad)
			continue
		}
		jobs.parsed[i] = p
	}
	if len(invalid) > 0 {
		h.log.Info("ingest: invalid jobs refused", "caller", caller, "jobs", len(jobs.raw), "invalid", len(invalid), "fields", fieldNames(invalid))
		body := ErrorResponse{Error: "invalid job: nothing was enqueued"}
		if list {
			body.Error = fmt.Sprintf("%d of %d jobs invalid: nothing was enqueued", len(invalid), len(jobs.raw))
			body.Invalid = invalid
		} else {
			body.Fields = invalid[0].Fields
		}
		writeJSON(w, http.StatusUnprocessableEntity, body)
		return
	}

	// A client hanging up must not cut a validated list short.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.opts.Timeout)
	defer cancel()
	res := ListResult{Jobs: make([]ItemResult, 0, len(jobs.parsed))}
	var accepted, duplicates []string
	for i, j := range jobs.parsed {
		jr, err := h.enqueue(ctx, j, queue)
		if err != nil {
			h.log.Error("ingest: enqueue failed", "caller", caller, "job", j.ID(), "err", err, "enqueued", accepted)
			w.Header().Set("Retry-After", "5")
			body := ErrorResponse{Error: "the queues are unavailable; post again later (jobs already enqueued come back as duplicates)"}
			if list {
				body.Jobs = res.Jobs
			}
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
		res.Jobs = append(res.Jobs, ItemResult{Index: i, JobResult: jr})
		if jr.Duplicate {
			res.Duplicates++
			duplicates = append(duplicates, jr.ID)
		} else {
			res.Accepted++
			accepted = append(accepted, jr.ID)
		}
	}
	h.log.Info("ingest: jobs posted", "caller", caller, "queue", queue, "accepted", accepted, "duplicates", duplicates)

	code := http.StatusAccepted
	if res.Accepted == 0 {
		code = http.StatusOK
	}
	if list {
		writeJSON(w, code, res)
		return
	}
	w.Header().Set("Location", JobPath(res.Jobs[0].ID))
	writeJSON(w, code, res.Jobs[0].JobResult)
}

// enqueue puts j on queue unless a job with its ID is on any queue already.
// asynq's task IDs are unique per queue; looking on the other queues first
// keeps one trigger posted twice with different ?queue= one job, and the
// claim on its ID keeps two such posts from both looking before either
// enqueues. (A producer enqueuing the same job on another queue by other
// means, the CLI say, can still make a second task; the filing ledger keeps
// a return from being filed twice even then.)
func (h *Handler) enqueue(ctx context.Context, j *tasks.Prepared, queue string) (JobResult, error) {
	id := j.ID()
	release, err := h.claims.acquire(ctx, id)
	if err != nil {
		return JobResult{}, err
	}
	defer release()
	others := slices.DeleteFunc(slices.Clone(tasks.Queues), func(q string) bool { return q == queue })
	if len(others) > 0 {
		st, err := h.opts.Finder.Find(ctx, id, others...)
		switch {
		case err == nil:
			return JobResult{ID: id, Queue: st.Queue, State: st.State, Duplicate: true, Ref: j.Ref()}, nil
		case !errors.Is(err, jobstatus.ErrNotFound):
			return JobResult{}, err
		}
	}
	res, err := h.opts.Enqueuer.EnqueuePrepared(ctx, j, queue)
	if err != nil {
		return JobResult{}, err
	}
	jr := JobResult{ID: res.ID, Queue: queue, State: "pending", Duplicate: res.Duplicate, Ref: j.Ref()}
	if res.Duplicate {
		jr.State = ""
		st, err := h.opts.Finder.Find(ctx, id, queue)
		switch {
		case err == nil:
			jr.State = st.State
		case !errors.Is(err, jobstatus.ErrNotFound):
			// Just gone (its retention ended): the state is unknown.
			return JobResult{}, err
		}
	}
	return jr, nil
}

// postedJobs are a request's jobs: raw, then validated.
type postedJobs struct {
	raw    []json.RawMessage
	parsed []*tasks.Prepared
}

// readJobs checks the request's type and size and splits its body into
// jobs; list says whether the body was a list.
func (h *Handler) readJobs(w http.ResponseWriter, r *http.Request) (postedJobs, bool, *requestError) {
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		return postedJobs{}, false, badRequest(http.StatusUnsupportedMediaType, "Content-Type must be application/json, got %q", ct)
	}
	tooLarge := func() *requestError {
		e := badRequest(http.StatusRequestEntityTooLarge, "body over %d bytes: post fewer jobs at a time, or enqueue large batches with the bulk file", h.opts.MaxBodyBytes)
		e.body.Limit = h.opts.MaxBodyBytes
		return e
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		return postedJobs{}, false, tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return postedJobs{}, false, tooLarge()
	case err != nil:
		return postedJobs{}, false, badRequest(http.StatusBadRequest, "reading the body: %v", err)
	}
	raw, list, rerr := splitJobs(body)
	if rerr != nil {
		return postedJobs{}, false, rerr
	}
	switch {
	case len(raw) == 0:
		return postedJobs{}, false, badRequest(http.StatusBadRequest, "no jobs in the list")
	case len(raw) > h.opts.MaxJobs:
		e := badRequest(http.StatusRequestEntityTooLarge, "%d jobs, over the limit of %d a request: post them in several requests", len(raw), h.opts.MaxJobs)
		e.body.Limit = int64(h.opts.MaxJobs)
		return postedJobs{}, false, e
	}
	return postedJobs{raw: raw, parsed: make([]*tasks.Prepared, len(raw))}, list, nil
}

// splitJobs splits a body into its jobs: one object, an array, or
// {"jobs": [...]}. It judges only the JSON, not the jobs.
func splitJobs(body []byte) ([]json.RawMessage, bool, *requestError) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, false, badRequest(http.StatusBadRequest, "empty body: want a job (a JSON object) or a list of jobs")
	}
	var raw []json.RawMessage
	switch trimmed[0] {
	case '[':
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, false, malformed(err)
		}
		return raw, true, nil
	case '{':
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(body, &probe); err != nil {
			return nil, false, malformed(err)
		}
		jobs, ok := probe["jobs"]
		if !ok {
			return []json.RawMessage{body}, false, nil
		}
		if len(probe) != 1 {
			return nil, false, badRequest(http.StatusBadRequest, `a {"jobs": [...]} body holds nothing but "jobs"`)
		}
		if t := bytes.TrimLeft(jobs, " \t\r\n"); len(t) == 0 || t[0] != '[' {
			return nil, false, badRequest(http.StatusBadRequest, `"jobs" must be a list of jobs`)
		}
		if err := json.Unmarshal(jobs, &raw); err != nil {
			return nil, false, malformed(err)
		}
		return raw, true, nil
	}
	return nil, false, badRequest(http.StatusBadRequest, "want a job (a JSON object) or a list of jobs (a JSON array), got something else at byte %d", len(body)-len(trimmed))
}

// malformed describes a JSON syntax error with its offset.
func malformed(err error) *requestError {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		e := badRequest(http.StatusBadRequest, "malformed JSON at byte %d: %v", se.Offset, se)
		off := se.Offset
		e.body.Offset = &off
		return e
	}
	return badRequest(http.StatusBadRequest, "malformed JSON: %v", err)
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// queueParam reads ?queue=, realtime by default.
func queueParam(r *http.Request) (string, *requestError) {
	q := r.URL.Query().Get("queue")
	if q == "" {
		return tasks.QueueRealtime, nil
	}
	if err := tasks.CheckQueue(q); err != nil {
		return "", badRequest(http.StatusBadRequest, "unknown queue %q: want realtime, bulk or redrive", q)
	}
	return q, nil
}

// problems lists a validation error's reasons, each with its field.
func problems(err error) []FieldProblem {
	var out []FieldProblem
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*tasks.FieldError); ok {
			reason := fe.Reason
			if fe.Err != nil {
				reason += ": " + fe.Err.Error()
			}
			out = append(out, FieldProblem{Field: fe.Field, Reason: reason})
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		out = append(out, FieldProblem{Reason: strings.TrimPrefix(err.Error(), tasks.ErrInvalidJob.Error()+": ")})
	}
	walk(err)
	return out
}

// fieldNames lists "index:field" of every problem, for a log line that
// says what was wrong without the reasons, which may quote the payload.
func fieldNames(invalid []InvalidJob) []string {
	var out []string
	for _, j := range invalid {
		for _, f := range j.Fields {
			name := f.Field
			if name == "" {
				name = "job"
			}
			out = append(out, strconv.Itoa(j.Index)+":"+name)
		}
	}
	return out
}

func (h *Handler) getJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" {
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: "no job ID: GET /v1/jobs/{id}"})
		return
	}
	var queues []string
	if q := r.URL.Query().Get("queue"); q != "" {
		if err := tasks.CheckQueue(q); err != nil {
			writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: fmt.Sprintf("unknown queue %q: want realtime, bulk or redrive", q)})
			return
		}
		queues = []string{q}
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	st, err := h.opts.Finder.Find(ctx, id, queues...)
	switch {
	case errors.Is(err, jobstatus.ErrNotFound):
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: "job not found (finished jobs are kept for worker.result_retention)", ID: id})
		return
	case err != nil:
		h.log.Error("ingest: job look-up failed", "caller", Caller(r.Context()), "job", id, "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "the queues are unavailable; try again later"})
		return
	}
	writeJSON(w, http.StatusOK, st)
}
