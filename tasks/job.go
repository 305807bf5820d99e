// Package tasks defines gatewayq's job: the versioned payload producers put
// on the queues, the constructors and enqueuer they use, and the handler that
// runs a job through the gateway client and maps its outcome onto asynq.
package tasks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gatewayq/gatewayq/gatewayclient"
)

// TypeGatewayCall is the asynq task type of every gatewayq job.
const TypeGatewayCall = "gatewayq:call"

// PayloadVersion is the version of Job this build writes. Handlers refuse
// versions they don't know rather than guess at their meaning.
const PayloadVersion = 1

// Queue names. realtime (event triggers) is served before bulk (nightly
// batches) and redrive (operator re-drives).
const (
	QueueRealtime = "realtime"
	QueueBulk     = "bulk"
	QueueRedrive  = "redrive"
)

// OpFile is the Return service operation that files a return: the one
// operation whose double execution harms the DSP's customer.
const OpFile = "File"

// Queues lists the queue names in priority order.
var Queues = []string{QueueRealtime, QueueBulk, QueueRedrive}

// Auth says how a job is authorised. It names a token set, never a token:
// payloads sit in Redis in the clear.
type Auth struct {
	Mode gatewayclient.AuthMode `json:"mode"`
	// TokenSet is the ID of the end user's OAuth token set (mode oauth).
	TokenSet string `json:"token_set,omitempty"`
}

// Job is one gateway request, as stored in a task's payload.
type Job struct {
	Version   int                        `json:"version"`
	Service   gatewayclient.Service      `json:"service"`
	Operation string                     `json:"operation"`
	Endpoint  gatewayclient.EndpointKind `json:"endpoint"`
	Auth      Auth                       `json:"auth"`
	// Key is the return's natural key. For return operations it is derived
	// from the payload when the producer leaves it out, and checked against
	// the payload when it is given.
	Key *NaturalKey `json:"key,omitempty"`
	// Body is the payload element the DSP's software produced (SOAP
	// services) or the JSON request body (REST services).
	Body string `json:"body"`
	// Batch groups the jobs of one bulk enqueue.
	Batch string `json:"batch,omitempty"`
	// Ref is the producer's own reference for the job, echoed in results.
	Ref string `json:"ref,omitempty"`
}

// ErrInvalidJob is wrapped by every validation error, so callers can tell
// bad input from infrastructure failures with errors.Is.
var ErrInvalidJob = errors.New("invalid job")

// FieldError names the field of a job that is wrong.
type FieldError struct {
	Field  string
	Reason string
	// Err is the underlying cause, if any (a *schema.ValidationError, say),
	// so callers can group rejections by cause with errors.As.
	Err error
}

func (e *FieldError) Error() string {
	if e.Err != nil {
		return e.Field + ": " + e.Reason + ": " + e.Err.Error()
	}
	return e.Field + ": " + e.Reason
}

func (e *FieldError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidJob, e.Err}
	}
	return []error{ErrInvalidJob}
}

// Decode parses a task payload or a producer's JSON job. Unknown fields are
// refused so that a typo ("oepration") is an error and not a silent default.
func Decode(data []byte) (*Job, error) {
	if j, ok := decodeFast(data); ok {
		return j, nil
	}
	return decodeStd(data)
}

// decodeStd is Decode by encoding/json alone: the reference, and the path
// for every job decodeFast leaves to it.
func decodeStd(data []byte) (*Job, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j Job
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidJob, jsonReason(err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the job object", ErrInvalidJob)
	}
	return &j, nil
}

func jsonReason(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "malformed JSON: the object ends too soon"
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	return err.Error()
}

// Normalize fills defaults (version, endpoint) and derives the natural key
// of return operations from the payload. It does not validate.
func (j *Job) Normalize() error {
	if j.Version == 0 {
		j.Version = PayloadVersion
	}
	if j.Endpoint == "" {
		j.Endpoint = gatewayclient.EndpointCloud
	}
	j.Body = strings.TrimSpace(j.Body)
	if j.Service == gatewayclient.ServiceReturns && j.Body != "" {
		k, err := ExtractNaturalKey([]byte(j.Body))
		if err != nil {
			// Only a File must carry the key: it is what protects against
			// filing twice. Look-ups (obligations, prepop) may have none.
			if j.Operation == OpFile {
				return &FieldError{Field: "body", Reason: err.Error()}
			}
			return nil
		}
		if j.Key == nil {
			j.Key = &k
		} else if !j.Key.Equal(k) {
			return &FieldError{Field: "key", Reason: fmt.Sprintf("given as %s but the payload says %s", j.Key, k)}
		}
	}
	return nil
}

// ID is the task ID of the job: the operation, the natural key (when it has
// one) and a hash of the body. The same job enqueued twice has the same ID,
// so asynq refuses the second; re-running a batch enqueues nothing twice.
func (j *Job) ID() string {
	h := sha256.New()
	h.Write([]byte(j.Service))
	h.Write([]byte{0})
	h.Write([]byte(j.Operation))
	h.Write([]byte{0})
	h.Write([]byte(j.Endpoint))
	h.Write([]byte{0})
	h.Write([]byte(j.Body))
	sum := hex.EncodeToString(h.Sum(nil))[:20]
	if j.Key != nil {
		return fmt.Sprintf("%s:%s:%s:%s", j.Service, j.Operation, j.Key, sum)
	}
	return fmt.Sprintf("%s:%s:%s", j.Service, j.Operation, sum)
}

// Marshal encodes the job as a task payload. The body's markup is kept as
// it is, not escaped for HTML (\u003c for every <): a payload's XML is
// most of its size, so escaping would store a third more in Redis and cost
// time on every enqueue and every decode.
func (j *Job) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(j.Body) + 512)
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(j); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
