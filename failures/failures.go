// Package failures is gatewayq's durable failure index: every job asynq
// archives — parked for an operator, or out of retries — is written here by
// the worker's handler, with its class, reason, IR's status code and
// message, its batch and natural key, and the payload a re-drive enqueues
// again.
//
// asynq's own archive is not enough for the morning's work: it keeps at
// most 10,000 tasks a queue and trims the oldest silently, and it cannot be
// filtered. The index has its own retention instead (entries older than it
// are trimmed a few at a time as new failures arrive, and never listed),
// and records what became of each failure: re-driven, replaced by a
// corrected job, or resolved.
//
// Keys: "<prefix>{failures}:at" (a sorted set of task IDs by failure
// time), "<prefix>{failures}:rec" (task ID → record JSON) and
// "<prefix>{failures}:payload" (task ID → payload). The hash tag keeps them
// in one Redis Cluster slot, so each write is one script on one slot.
package failures

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/tasks"
)

// DefaultRetention is how long failures are kept when Options.Retention
// is zero: long enough for a month's re-drives and their audit.
const DefaultRetention = 30 * 24 * time.Hour

// State is what became of a failure.
type State string

// The states of a record.
const (
	// StateFailed: archived, waiting for an operator.
	StateFailed State = "failed"
	// StateRedriven: put back on the redrive queue by a re-drive.
	StateRedriven State = "redriven"
	// StateReplaced: a corrected job (a new task ID) replaced it.
	StateReplaced State = "replaced"
	// StateResolved: settled without running it again (the ledger says the
	// return is filed).
	StateResolved State = "resolved"
)

// Valid reports whether s is one of the states above.
func (s State) Valid() bool {
	switch s {
	case StateFailed, StateRedriven, StateReplaced, StateResolved:
		return true
	}
	return false
}

// Record is one archived job. A task ID has one record: a job that fails
// again after a re-drive replaces its record with the new failure.
type Record struct {
	TaskID string `json:"task_id"`
	// Queue is the asynq queue it was archived on (with its prefix).
	Queue     string `json:"queue"`
	Batch     string `json:"batch,omitempty"`
	Service   string `json:"service,omitempty"`
	Operation string `json:"operation,omitempty"`
	// Key is the return's natural key, LedgerKey its filing-ledger entry,
	// Identifier the IRD number (or other identifier) it is for.
	Key        string `json:"key,omitempty"`
	LedgerKey  string `json:"ledger_key,omitempty"`
	Identifier string `json:"identifier,omitempty"`
	Ref        string `json:"ref,omitempty"`
	// Class is the outcome's class (invalid, permission, auth, uncertain,
	// ...); Reason says what an operator must do.
	Class  string `json:"class"`
	Reason string `json:"reason,omitempty"`
	// StatusCode, Code and Message are IR's answer, when there was one.
	StatusCode int       `json:"status_code,omitempty"`
	Code       string    `json:"code,omitempty"`
	Message    string    `json:"message,omitempty"`
	Err        string    `json:"error,omitempty"`
	Retried    int       `json:"retried"`
	MaxRetry   int       `json:"max_retry"`
	At         time.Time `json:"at"`
	State      State     `json:"state"`
	// Settled says what a re-drive did with it (State other than failed).
	Settled *Settlement `json:"settled,omitempty"`
	// FromArchive is set by readers for a record built from asynq's
	// archive rather than read from the index (a task archived without
	// the handler's say: a panic, a deadline asynq enforced itself).
	FromArchive bool `json:"from_archive,omitempty"`

	raw string // the stored JSON, for Settle's compare-and-set
}

// Settlement is what a re-drive did with a failure.
type Settlement struct {
	// Run is the re-drive's ID (see package redrive).
	Run string    `json:"run"`
	At  time.Time `json:"at"`
	// Queue and TaskID are where the job runs now.
	Queue  string `json:"queue,omitempty"`
	TaskID string `json:"task_id,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Cause groups failures for an operator: the class, with IR's status code
// (or REST/SOAP fault code) when there is one, e.g. "permission (code 4)".
func (r Record) Cause() string {
	switch {
	case r.StatusCode != 0:
		return fmt.Sprintf("%s (code %d)", r.Class, r.StatusCode)
	case r.Code != "":
		return fmt.Sprintf("%s (code %s)", r.Class, r.Code)
	}
	return r.Class
}

// FromFailure makes the record of a handler's final failure.
func FromFailure(f tasks.Failure) Record {
	r := Record{
		TaskID: f.TaskID, Queue: f.Queue, Class: f.Class, Reason: f.Reason,
		StatusCode: f.StatusCode, Code: f.Code, Message: f.Message, Err: f.Err,
		Retried: f.Retried, MaxRetry: f.MaxRetry, At: f.At.UTC(), State: StateFailed,
	}
	if j := f.Job; j != nil {
		r.Batch, r.Service, r.Operation, r.Ref = j.Batch, string(j.Service), j.Operation, j.Ref
		if j.Key != nil {
			r.Key, r.Identifier = j.Key.String(), j.Key.Identifier
			if j.Operation == tasks.OpFile {
				r.LedgerKey = tasks.LedgerKey(j)
			}
		}
	}
	return r
}

// ErrNotFound is returned for a task ID with no record.
var ErrNotFound = errors.New("failures: no record")

// ErrChanged refuses to settle a record that changed since it was read:
// the job failed again meanwhile, or another re-drive settled it.
var ErrChanged = errors.New("failures: record changed since it was read")

// Options configure an Index.
type Options struct {
	// Retention is how long a record is kept after its failure. Zero
	// value: DefaultRetention.
	Retention time.Duration
	// Now is the clock. Zero value: time.Now.
	Now func() time.Time
}

// Index reads and writes the failure index. It is safe for concurrent
// use.
type Index struct {
	rdb       redis.UniversalClient
	prefix    string
	retention time.Duration
	now       func() time.Time
}

var _ tasks.FailureRecorder = (*Index)(nil)

// New returns the index kept under prefix (config redis.key_prefix) in rdb.
func New(rdb redis.UniversalClient, prefix string, opts Options) *Index {
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Index{rdb: rdb, prefix: prefix, retention: opts.Retention, now: opts.Now}
}

func (x *Index) keys() []string {
	p := x.prefix + "{failures}:"
	return []string{p + "at", p + "rec", p + "payload"}
}

// trimPerWrite bounds the work one write does trimming expired records,
// so the handler's failure path stays one short script.
const trimPerWrite = 100

//go:embed put.lua
var putSrc string

var putScript = redis.NewScript(putSrc)

//go:embed settle.lua
var settleSrc string

var settleScript = redis.NewScript(settleSrc)

// RecordFailure writes a handler's final failure: one script, one round
// trip.
func (x *Index) RecordFailure(ctx context.Context, f tasks.Failure) error {
	if f.TaskID == "" {
		return errors.New("failures: failure without a task ID")
	}
	return x.Put(ctx, FromFailure(f), f.Payload)
}

// Put writes r (replacing any record of its task ID) and its payload, and
// trims up to a hundred records past the retention.
func (x *Index) Put(ctx context.Context, r Record, payload []byte) error {
	if r.TaskID == "" {
		return errors.New("failures: record without a task ID")
	}
	if r.State == "" {
		r.State = StateFailed
	}
	if r.At.IsZero() {
		r.At = x.now().UTC()
	}
	r.FromArchive = false
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("failures: encode %s: %w", r.TaskID, err)
	}
	cutoff := x.now().Add(-x.retention).UnixMilli()
	err = putScript.Run(ctx, x.rdb, x.keys(), r.TaskID, r.At.UnixMilli(), b, payload, cutoff, trimPerWrite).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("failures: record %s: %w", r.TaskID, err)
	}
	return nil
}

// Get returns the record of taskID, or ErrNotFound.
func (x *Index) Get(ctx context.Context, taskID string) (Record, error) {
	s, err := x.rdb.HGet(ctx, x.keys()[1], taskID).Result()
	if errors.Is(err, redis.Nil) {
		return Record{}, fmt.Errorf("%w: %s", ErrNotFound, taskID)
	}
	if err != nil {
		return Record{}, fmt.Errorf("failures: read %s: %w", taskID, err)
	}
	return decode(s)
}

// GetMany returns the records of ids, in order; a missing one is the
// zero Record (TaskID ""). One round trip.
func (x *Index) GetMany(ctx context.Context, ids []string) ([]Record, error) {
	out := make([]Record, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	vals, err := x.rdb.HMGet(ctx, x.keys()[1], ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("failures: read records: %w", err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		r, err := decode(s)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// Payload returns the payload recorded with taskID, or ErrNotFound.
func (x *Index) Payload(ctx context.Context, taskID string) ([]byte, error) {
	b, err := x.rdb.HGet(ctx, x.keys()[2], taskID).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: payload of %s", ErrNotFound, taskID)
	}
	if err != nil {
		return nil, fmt.Errorf("failures: read payload of %s: %w", taskID, err)
	}
	return b, nil
}

func decode(s string) (Record, error) {
	var r Record
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return Record{}, fmt.Errorf("failures: unreadable record: %w", err)
	}
	r.raw = s
	return r, nil
}

// pageSize is how many records one round trip reads.
const pageSize = 500

// Each calls fn with every record that failed in [since, until] and within
// the retention, oldest first, a page of records a round trip. A zero
// since or until leaves that end open. fn's error stops the walk and is
// returned.
func (x *Index) Each(ctx context.Context, since, until time.Time, fn func(Record) error) error {
	floor := x.now().Add(-x.retention)
	if since.Before(floor) {
		since = floor
	}
	lo := strconv.FormatInt(since.UnixMilli(), 10)
	hi := "+inf"
	if !until.IsZero() {
		hi = strconv.FormatInt(until.UnixMilli(), 10)
	}
	keys := x.keys()
	for offset := int64(0); ; offset += pageSize {
		ids, err := x.rdb.ZRangeByScore(ctx, keys[0], &redis.ZRangeBy{Min: lo, Max: hi, Offset: offset, Count: pageSize}).Result()
		if err != nil {
			return fmt.Errorf("failures: list: %w", err)
		}
		recs, err := x.GetMany(ctx, ids)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.TaskID == "" {
				continue // trimmed between the two reads
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(ids) < pageSize {
			return nil
		}
	}
}

// List returns the records f matches, oldest first.
func (x *Index) List(ctx context.Context, f Filter) ([]Record, error) {
	var out []Record
	err := x.Each(ctx, f.Since, f.Until, func(r Record) error {
		if f.Match(r) {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Settle moves seen (a record as read by Get, GetMany, Each or List) to
// state, with what the re-drive did. It refuses with ErrChanged when the
// record changed since it was read: the job failed again (its new failure
// must stay listed), or another re-drive got there first.
func (x *Index) Settle(ctx context.Context, seen Record, state State, s Settlement) error {
	if !state.Valid() {
		return fmt.Errorf("failures: unknown state %q", state)
	}
	if seen.raw == "" {
		return fmt.Errorf("failures: settle %s: the record was not read from the index", seen.TaskID)
	}
	next := seen
	next.State, next.Settled, next.FromArchive = state, &s, false
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	n, err := settleScript.Run(ctx, x.rdb, x.keys()[1:2], seen.TaskID, seen.raw, b).Int()
	if err != nil {
		return fmt.Errorf("failures: settle %s: %w", seen.TaskID, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrChanged, seen.TaskID)
	}
	return nil
}

// Filter selects failures. Its zero value selects every failure still
// waiting for an operator (StateFailed).
type Filter struct {
	// Queue is an asynq queue name (with its prefix).
	Queue string `json:"queue,omitempty"`
	Batch string `json:"batch,omitempty"`
	// Class is an outcome class: invalid, permission, config, auth,
	// already_filed, uncertain, retry_later, ...
	Class string `json:"class,omitempty"`
	// Code matches IR's statusCode ("4") or a REST/SOAP code ("EV1022").
	Code       string `json:"code,omitempty"`
	Identifier string `json:"identifier,omitempty"`
	TaskID     string `json:"task_id,omitempty"`
	// Since and Until bound the failure time; zero leaves an end open.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// States are the states selected. Zero value: StateFailed only.
	States []State `json:"states,omitempty"`
}

// Selects reports whether f names anything to select by beyond states:
// a re-drive with no criterion would move every failure at once.
func (f Filter) Selects() bool {
	return f.Queue != "" || f.Batch != "" || f.Class != "" || f.Code != "" || f.Identifier != "" || f.TaskID != "" || !f.Since.IsZero() || !f.Until.IsZero()
}

// Match reports whether f selects r.
func (f Filter) Match(r Record) bool {
	states := f.States
	if len(states) == 0 {
		states = []State{StateFailed}
	}
	switch {
	case !slices.Contains(states, r.State),
		f.Queue != "" && r.Queue != f.Queue,
		f.Batch != "" && r.Batch != f.Batch,
		f.Class != "" && r.Class != f.Class,
		f.Identifier != "" && r.Identifier != f.Identifier,
		f.TaskID != "" && r.TaskID != f.TaskID,
		!f.Since.IsZero() && r.At.Before(f.Since),
		!f.Until.IsZero() && r.At.After(f.Until):
		return false
	case f.Code != "":
		return strconv.Itoa(r.StatusCode) == f.Code && r.StatusCode != 0 || strings.EqualFold(r.Code, f.Code)
	}
	return true
}

// String renders f for people and the audit: "class=permission batch=b-1".
func (f Filter) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("queue", f.Queue)
	add("batch", f.Batch)
	add("class", f.Class)
	add("code", f.Code)
	add("identifier", f.Identifier)
	add("task", f.TaskID)
	if !f.Since.IsZero() {
		add("since", f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		add("until", f.Until.UTC().Format(time.RFC3339))
	}
	for _, s := range f.States {
		add("state", string(s))
	}
	if len(parts) == 0 {
		return "(every failure)"
	}
	return strings.Join(parts, " ")
}
