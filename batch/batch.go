// Package batch follows bulk enqueues: which jobs (and refused lines) a
// batch holds, where each stands now, and the morning report of what was
// filed, what failed and why.
//
// Membership is written at enqueue (package jobfile calls Store.Record a
// few hundred jobs at a time), so status and report never scan asynq's
// queues or archive: they walk the batch's own members in file order and
// read, for each, the asynq task's state, the filing ledger's entry (the
// truth about a File: gateway ID, submission key, IR's rejection) and the
// failure index's record (class, reason, IR's code and message).
//
// Keys, under the configured prefix: "{batch:<id>}:jobs" (member ID →
// member JSON; the member ID is the task ID, or "line:<n>" for a refused
// line), "{batch:<id>}:order" (member IDs by line number) and
// "{batch:<id>}:meta" (created_at, updated_at), each expiring after the
// retention once the batch stops growing; "batches" lists batch IDs by
// creation time.
package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/failures"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/tasks"
)

// DefaultRetention is how long a batch's membership is kept when
// Options.Retention is zero.
const DefaultRetention = 30 * 24 * time.Hour

// ErrNotFound is returned for a batch with no members.
var ErrNotFound = errors.New("batch: not found")

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// CheckID refuses a batch ID that is not 1-64 characters of A-Z a-z 0-9 .
// _ : - (the IDs jobfile accepts).
func CheckID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("batch: ID %q: want 1-64 characters of A-Z a-z 0-9 . _ : -", id)
	}
	return nil
}

// Member is one line of a batch: a job on a queue, or a line refused at
// enqueue.
type Member struct {
	// Line is the line of the bulk file (0 when the batch came from
	// elsewhere); members are reported in line order.
	Line int `json:"line,omitempty"`
	// TaskID and Queue (an asynq queue name, with its prefix) are where the
	// job was enqueued; empty for a refused line.
	TaskID    string `json:"task_id,omitempty"`
	Queue     string `json:"queue,omitempty"`
	Operation string `json:"op,omitempty"`
	// Key is the return's natural key; LedgerKey its filing-ledger entry
	// (Files only).
	Key       string `json:"key,omitempty"`
	LedgerKey string `json:"ledger_key,omitempty"`
	Ref       string `json:"ref,omitempty"`
	// Refused says why the line was refused at enqueue.
	Refused string `json:"refused,omitempty"`
	// NowQueue and NowTaskID are where a re-drive moved the job (the
	// redrive queue; a corrected job's new task ID). Empty: not moved.
	NowQueue  string `json:"now_queue,omitempty"`
	NowTaskID string `json:"now_task_id,omitempty"`
}

// MemberOf is the member for job j of line, enqueued (or found already
// queued) as e.
func MemberOf(line int, j *tasks.Job, e tasks.Enqueued) Member {
	m := Member{Line: line, TaskID: e.ID, Queue: e.Queue, Operation: j.Operation, Ref: j.Ref}
	if j.Key != nil {
		m.Key = j.Key.String()
		if j.Operation == tasks.OpFile {
			m.LedgerKey = tasks.LedgerKey(j)
		}
	}
	return m
}

// ID is the member's ID within its batch.
func (m Member) ID() string {
	if m.TaskID != "" {
		return m.TaskID
	}
	return "line:" + strconv.Itoa(m.Line)
}

// where is the queue and task ID the job runs under now.
func (m Member) where() (queue, taskID string) {
	queue, taskID = m.Queue, m.TaskID
	if m.NowQueue != "" {
		queue = m.NowQueue
	}
	if m.NowTaskID != "" {
		taskID = m.NowTaskID
	}
	return queue, taskID
}

// maxRefusedLen keeps a refused line's reason short in Redis: an XSD
// error list can run long.
const maxRefusedLen = 500

// Options configure a Store.
type Options struct {
	// Retention is how long a batch is kept after its last line was
	// recorded. Zero value: DefaultRetention.
	Retention time.Duration
	// Now is the clock. Zero value: time.Now.
	Now func() time.Time
}

// Store records and reads batches. It is safe for concurrent use.
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	retention time.Duration
	now       func() time.Time
	ledger    *ledger.Ledger
	failures  *failures.Index
}

// New returns the store kept under prefix (config redis.key_prefix) in
// rdb; it reads the filing ledger and the failure index under the same
// prefix.
func New(rdb redis.UniversalClient, prefix string, opts Options) *Store {
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{rdb: rdb, prefix: prefix, retention: opts.Retention, now: opts.Now,
		ledger: ledger.New(rdb, prefix), failures: failures.New(rdb, prefix, failures.Options{Now: opts.Now})}
}

func (s *Store) key(id, part string) string { return s.prefix + "{batch:" + id + "}:" + part }
func (s *Store) listKey() string            { return s.prefix + "batches" }

// Record adds members to batch id (a member already recorded is replaced:
// recording a re-run of the same file is harmless), and keeps the batch for
// the retention from now. One round trip.
func (s *Store) Record(ctx context.Context, id string, members []Member) error {
	if err := CheckID(id); err != nil {
		return err
	}
	if len(members) == 0 {
		return nil
	}
	fields := make([]any, 0, 2*len(members))
	order := make([]redis.Z, 0, len(members))
	for _, m := range members {
		if len(m.Refused) > maxRefusedLen {
			m.Refused = m.Refused[:maxRefusedLen] + "..."
		}
		b, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("batch %s: encode member: %w", id, err)
		}
		fields = append(fields, m.ID(), b)
		order = append(order, redis.Z{Score: float64(m.Line), Member: m.ID()})
	}
	now := s.now()
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.key(id, "jobs"), fields...)
		p.ZAdd(ctx, s.key(id, "order"), order...)
		p.HSetNX(ctx, s.key(id, "meta"), "created_at", ms)
		p.HSet(ctx, s.key(id, "meta"), "updated_at", ms)
		for _, part := range []string{"jobs", "order", "meta"} {
			p.Expire(ctx, s.key(id, part), s.retention)
		}
		p.ZAddNX(ctx, s.listKey(), redis.Z{Score: float64(now.UnixMilli()), Member: id})
		p.ZRemRangeByScore(ctx, s.listKey(), "-inf", "("+strconv.FormatInt(now.Add(-s.retention).UnixMilli(), 10))
		return nil
	})
	if err != nil {
		return fmt.Errorf("batch %s: record %d members: %w", id, len(members), err)
	}
	return nil
}

// Location is where a re-drive moved a job.
type Location struct {
	Queue  string
	TaskID string
	// Job is the corrected job that replaced the failed one; nil when the
	// same job was re-driven. Its natural key (a corrected period, say)
	// becomes the member's.
	Job *tasks.Job
}

// Move records that a re-drive moved the job taskID of batch id to loc. A
// batch or member that is gone (expired) is not an error: there is nothing
// left to report on.
func (s *Store) Move(ctx context.Context, id, taskID string, loc Location) error {
	if CheckID(id) != nil {
		return nil // not a batch this store could have recorded
	}
	b, err := s.rdb.HGet(ctx, s.key(id, "jobs"), taskID).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("batch %s: read member %s: %w", id, taskID, err)
	}
	var m Member
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("batch %s: member %s: %w", id, taskID, err)
	}
	m.NowQueue = loc.Queue
	if loc.TaskID != m.TaskID {
		m.NowTaskID = loc.TaskID
	}
	if j := loc.Job; j != nil {
		moved := MemberOf(m.Line, j, tasks.Enqueued{ID: loc.TaskID, Queue: loc.Queue})
		m.Key, m.LedgerKey, m.Operation = moved.Key, moved.LedgerKey, moved.Operation
	}
	nb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := s.rdb.HSet(ctx, s.key(id, "jobs"), taskID, nb).Err(); err != nil {
		return fmt.Errorf("batch %s: move member %s: %w", id, taskID, err)
	}
	return nil
}

// Summary is one batch in List.
type Summary struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
}

// List returns the most recent batches, newest first, up to limit (all
// within the retention when limit <= 0).
func (s *Store) List(ctx context.Context, limit int) ([]Summary, error) {
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit - 1)
	}
	zs, err := s.rdb.ZRevRangeWithScores(ctx, s.listKey(), 0, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("batch: list: %w", err)
	}
	floor := s.now().Add(-s.retention)
	out := make([]Summary, 0, len(zs))
	for _, z := range zs {
		at := time.UnixMilli(int64(z.Score)).UTC()
		if at.Before(floor) {
			continue
		}
		id, _ := z.Member.(string)
		out = append(out, Summary{ID: id, CreatedAt: at})
	}
	return out, nil
}

// meta reads a batch's times; ErrNotFound when it has none.
func (s *Store) meta(ctx context.Context, id string) (created, updated time.Time, err error) {
	if err := CheckID(id); err != nil {
		return created, updated, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	m, err := s.rdb.HGetAll(ctx, s.key(id, "meta")).Result()
	if err != nil {
		return created, updated, fmt.Errorf("batch %s: %w", id, err)
	}
	if len(m) == 0 {
		return created, updated, fmt.Errorf("%w: %s (batches are kept for their retention after their last line)", ErrNotFound, id)
	}
	parse := func(v string) time.Time {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}
		}
		return time.UnixMilli(ms).UTC()
	}
	return parse(m["created_at"]), parse(m["updated_at"]), nil
}

// pageSize is how many members one step of a walk reads.
const pageSize = 500

// walk calls fn with the batch's members in line order, a page at a time.
func (s *Store) walk(ctx context.Context, id string, fn func([]Member) error) error {
	for start := int64(0); ; start += pageSize {
		ids, err := s.rdb.ZRange(ctx, s.key(id, "order"), start, start+pageSize-1).Result()
		if err != nil {
			return fmt.Errorf("batch %s: members: %w", id, err)
		}
		if len(ids) == 0 {
			return nil
		}
		vals, err := s.rdb.HMGet(ctx, s.key(id, "jobs"), ids...).Result()
		if err != nil {
			return fmt.Errorf("batch %s: members: %w", id, err)
		}
		page := make([]Member, 0, len(vals))
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			var m Member
			if err := json.Unmarshal([]byte(str), &m); err != nil {
				return fmt.Errorf("batch %s: member %s: %w", id, ids[i], err)
			}
			page = append(page, m)
		}
		if err := fn(page); err != nil {
			return err
		}
		if len(ids) < pageSize {
			return nil
		}
	}
}

// asynqTaskKey is where asynq v0.26 keeps a task: a hash whose "state"
// field is pending, active, scheduled, retry, archived, completed or
// aggregating, and whose "result" field holds what the handler wrote.
// Reading it directly costs one pipelined HGET a member, where asynq's
// Inspector.GetTaskInfo costs a script round trip each; the package's
// tests check it against the Inspector, so a change in asynq's layout
// fails them.
func asynqTaskKey(queue, id string) string { return "asynq:{" + queue + "}:t:" + id }

// Progress fields (asynq task states).
const (
	statePending     = "pending"
	stateActive      = "active"
	stateScheduled   = "scheduled"
	stateRetry       = "retry"
	stateAggregating = "aggregating"
	stateArchived    = "archived"
	stateCompleted   = "completed"
)
