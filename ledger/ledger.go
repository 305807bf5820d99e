// Package ledger is gatewayq's durable filing ledger: one Redis hash per
// return version recording whether a File was queued, is being sent, was
// filed, was rejected, or has an outcome nobody knows.
//
// IR's gateway offers no idempotency key, so a second File of the same
// return is a real-world harm (a duplicate filing, or at best a 107 and a
// support call). asynq's own task records cannot carry that memory: they
// expire with their retention and are capped at 10,000 archived tasks. The
// ledger's entries have no TTL, and every transition is one Lua script on
// the entry's key, so a worker decides "may I send this File?" atomically,
// and the entry is marked sending before the request is written to the
// wire. An entry found sending or uncertain means a previous attempt's
// outcome is unknown: the caller must reconcile with IR (RetrieveStatus,
// RetrieveReturn) before anything is sent again. The same script counts the
// transition in its shard's stats hash, so how many entries are in each
// state (Ledger.Stats, NewCollector) costs one round trip however large the
// ledger grows.
//
// Keys are "<prefix>{ledger:NN}:e:<key>": the entries are spread over
// Shards hash tags NN by a checksum of their key, and each tag has its own
// stats hash "<prefix>{ledger:NN}:stats", so the transition script's two
// keys always share a Redis Cluster slot while the ledger still spreads
// over Shards slots. Stats sums the Shards hashes in one pipeline.
package ledger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// State is where one return version stands.
type State string

// The states of an entry.
const (
	// StateQueued: a job will file it; nothing is being sent.
	StateQueued State = "queued"
	// StateSending: a worker marked it right before writing the File to the
	// wire. Found by anyone else, it means the send's outcome is unknown
	// (the worker may have died mid-send) until it ends.
	StateSending State = "sending"
	// StateFiled: IR accepted it (gatewayId, submissionKey), or
	// reconciliation found it filed.
	StateFiled State = "filed"
	// StateRejected: IR refused it (invalid, permission, configuration);
	// nothing was filed and a fixed job may send it again.
	StateRejected State = "rejected"
	// StateUncertain: the File may have reached IR and its answer was lost
	// (timeout, reset, unreadable answer) or IR said it is already filed:
	// reconcile before it is ever sent again.
	StateUncertain State = "uncertain"
)

// Valid reports whether s is one of the states above.
func (s State) Valid() bool {
	switch s {
	case StateQueued, StateSending, StateFiled, StateRejected, StateUncertain:
		return true
	}
	return false
}

var (
	// ErrFiled refuses to queue or send a return version that is filed.
	ErrFiled = errors.New("ledger: return already filed")
	// ErrMustReconcile refuses to queue or send a return version whose
	// last send has an unknown outcome (sending or uncertain): ask IR first.
	ErrMustReconcile = errors.New("ledger: outcome of a previous send unknown; reconcile first")
	// ErrConflict refuses a transition the entry's current state (or task,
	// or attempt) does not allow: someone else moved it meanwhile.
	ErrConflict = errors.New("ledger: entry changed state")
	// ErrNotFound is returned by Get for a key with no entry.
	ErrNotFound = errors.New("ledger: no entry")
)

// Entry is one return version's record.
type Entry struct {
	// Key is the entry's ID as the caller gave it (tasks uses the natural
	// key, "/amended" and the amended body's hash for an amendment).
	Key   string
	State State
	// TaskID is the task that last queued, sent or settled it.
	TaskID string
	// BodyHash is the hex SHA-256 of the body last sent (or queued).
	BodyHash string
	// Attempts counts BeginSend calls that marked it sending.
	Attempts  int
	CreatedAt time.Time
	UpdatedAt time.Time
	// SendingAt is when the last BeginSend marked it sending.
	SendingAt time.Time

	// Filed.
	GatewayID     string
	SubmissionKey string
	FiledAt       time.Time
	// Reconciled is true when the filing was found by reconciliation
	// rather than seen in IR's answer to the File.
	Reconciled bool

	// Rejected: the class of IR's answer, its statusCode or fault code,
	// and its message.
	Class   string
	Code    string
	Message string

	// Why says, for an uncertain entry, what made it so.
	Why string
}

// Filing is what Filed records.
type Filing struct {
	GatewayID     string
	SubmissionKey string
	At            time.Time // zero: now
	Reconciled    bool
}

// Rejection is what Rejected records.
type Rejection struct {
	Class   string
	Code    string
	Message string
}

// Option configures a Ledger.
type Option func(*Ledger)

// WithClock makes the ledger stamp entries with now instead of time.Now
// (tests, and tools back-dating an entry).
func WithClock(now func() time.Time) Option { return func(l *Ledger) { l.now = now } }

// Ledger reads and moves entries. It is safe for concurrent use; every
// process of the fleet may hold one over the same Redis.
type Ledger struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

// New returns a Ledger keeping its entries under prefix in rdb.
func New(rdb redis.UniversalClient, prefix string, opts ...Option) *Ledger {
	l := &Ledger{rdb: rdb, prefix: prefix, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Shards is how many hash tags (Redis Cluster slots) the ledger's entries
// and stats are spread over: enough to spread a cluster's load, few enough
// that reading the stats (one HGETALL each) stays cheap at every scrape.
const Shards = 32

// shardOf is entry key's hash tag, "{ledger:NN}". The checksum is fixed
// forever: changing it would hide every existing entry.
func shardOf(key string) string {
	return shardTag(int(crc32.ChecksumIEEE([]byte(key)) % Shards))
}

func shardTag(n int) string { return fmt.Sprintf("{ledger:%02d}", n) }

// RedisKey is the Redis key of entry key.
func (l *Ledger) RedisKey(key string) string { return l.prefix + shardOf(key) + ":e:" + key }

// statsKey is the hash counting the transitions of the entries in the
// shard whose tag is tag (see Stats).
func (l *Ledger) statsKey(tag string) string { return l.prefix + tag + ":stats" }

// StatsKeys are the Redis keys of the hashes counting transitions, one per
// shard (see Stats).
func (l *Ledger) StatsKeys() []string {
	keys := make([]string, Shards)
	for i := range keys {
		keys[i] = l.statsKey(shardTag(i))
	}
	return keys
}

// transition is one script run: move the entry to `to` if its state is in
// from ("absent" allowing no entry), optionally only for one task or one
// attempt number.
type transition struct {
	to           State
	from         []string
	expectTask   string
	expectAttmpt int
	checkAttempt bool // only when the entry has expectAttmpt attempts
	incrAttempts bool
	clear        []string
	set          map[string]string
}

//go:embed transition.lua
var transitionSrc string

var transitionScript = redis.NewScript(transitionSrc)

const absent = "absent"

// Field names of the hash.
const (
	fKey        = "key"
	fState      = "state"
	fTask       = "task"
	fBody       = "body"
	fAttempts   = "attempts"
	fCreated    = "created"
	fUpdated    = "updated"
	fSendingAt  = "sending_at"
	fGatewayID  = "gateway_id"
	fSubmission = "submission_key"
	fFiledAt    = "filed_at"
	fReconciled = "reconciled"
	fClass      = "class"
	fCode       = "code"
	fMessage    = "message"
	fWhy        = "why"
)

// script is the transition script's keys and arguments for t on key.
func (l *Ledger) script(key string, t transition) (keys []string, args []any) {
	now := strconv.FormatInt(l.now().UnixMilli(), 10)
	args = []any{key, now, string(t.to), strings.Join(t.from, ","), t.expectTask, attemptArg(t), boolArg(t.incrAttempts), strings.Join(t.clear, ",")}
	for k, v := range t.set {
		args = append(args, k, v)
	}
	return []string{l.RedisKey(key), l.statsKey(shardOf(key))}, args
}

func (l *Ledger) run(ctx context.Context, key string, t transition) (prev State, e Entry, ok bool, err error) {
	if key == "" {
		return "", Entry{}, false, errors.New("ledger: empty key")
	}
	keys, args := l.script(key, t)
	res, err := transitionScript.Run(ctx, l.rdb, keys, args...).Slice()
	if err != nil {
		return "", Entry{}, false, fmt.Errorf("ledger %s: %w", key, err)
	}
	if len(res) != 3 {
		return "", Entry{}, false, fmt.Errorf("ledger %s: script answered %d values", key, len(res))
	}
	status, _ := res[0].(string)
	prevS, _ := res[1].(string)
	fields, _ := res[2].([]any)
	e, err = parseEntry(fields)
	if err != nil {
		return "", Entry{}, false, fmt.Errorf("ledger %s: %w", key, err)
	}
	return State(prevS), e, status == "ok", nil
}

func attemptArg(t transition) string {
	if !t.checkAttempt {
		return ""
	}
	return strconv.Itoa(t.expectAttmpt)
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// refusal turns a refused transition into its error: a filed entry is
// ErrFiled, an entry whose send is unresolved ErrMustReconcile (when the
// operation queues or sends), anything else ErrConflict.
func refusal(key string, e Entry, sendSide bool) error {
	switch {
	case e.State == StateFiled:
		return fmt.Errorf("%w: %s (submission key %q)", ErrFiled, key, e.SubmissionKey)
	case sendSide && (e.State == StateSending || e.State == StateUncertain):
		return fmt.Errorf("%w: %s is %s (task %s, attempt %d)", ErrMustReconcile, key, e.State, e.TaskID, e.Attempts)
	case e.State == "":
		return fmt.Errorf("%w: %s has no entry", ErrConflict, key)
	}
	return fmt.Errorf("%w: %s is %s (task %s, attempt %d)", ErrConflict, key, e.State, e.TaskID, e.Attempts)
}

// Queued records that taskID will file key with the body hashed bodyHash:
// it creates the entry, or refreshes a queued or rejected one (a re-drive
// after the data was fixed). It refuses with ErrFiled or ErrMustReconcile,
// leaving the entry as it was.
func (l *Ledger) Queued(ctx context.Context, key, taskID, bodyHash string) (Entry, error) {
	_, e, ok, err := l.run(ctx, key, transition{
		to: StateQueued, from: []string{absent, string(StateQueued), string(StateRejected)},
		clear: []string{fClass, fCode, fMessage, fWhy},
		set:   map[string]string{fTask: taskID, fBody: bodyHash},
	})
	if err != nil {
		return Entry{}, err
	}
	if !ok {
		return e, refusal(key, e, true)
	}
	return e, nil
}

// Mark is a return to record as queued: see MarkQueued.
type Mark struct {
	Key, TaskID, BodyHash string
}

// queuedIfNew is MarkQueued's transition: Queued's, but from no entry or
// a queued one only.
func queuedIfNew(m Mark) transition {
	return transition{
		to: StateQueued, from: []string{absent, string(StateQueued)},
		clear: []string{fClass, fCode, fMessage, fWhy},
		set:   map[string]string{fTask: m.TaskID, fBody: m.BodyHash},
	}
}

// MarkQueued records many returns as queued in one round trip: a bulk
// enqueue's marks, a few hundred at a time, after their jobs are on the
// queue. Unlike Queued it only creates an entry or refreshes a queued
// one, never a rejected one: by the time a batch of marks is written, a
// worker may have taken one of its jobs and had it rejected, and that
// outcome stands. It returns how many marks were recorded; the others
// found their entry filed, in flight or rejected, which is not an error.
func (l *Ledger) MarkQueued(ctx context.Context, marks []Mark) (int, error) {
	if len(marks) == 0 {
		return 0, nil
	}
	// EVALSHA in a pipeline cannot fall back to EVAL by itself: load the
	// script first (on every master of a cluster), and run any mark that
	// still finds it missing on its own below.
	if err := transitionScript.Load(ctx, l.rdb).Err(); err != nil {
		return 0, fmt.Errorf("ledger: load script: %w", err)
	}
	cmds := make([]*redis.Cmd, len(marks))
	pipe := l.rdb.Pipeline()
	var errs []error
	for i, m := range marks {
		if m.Key == "" {
			errs = append(errs, errors.New("ledger: empty key"))
			continue
		}
		keys, args := l.script(m.Key, queuedIfNew(m))
		cmds[i] = transitionScript.EvalSha(ctx, pipe, keys, args...)
	}
	_, _ = pipe.Exec(ctx) // each command's own error is read below
	n := 0
	for i, c := range cmds {
		if c == nil {
			continue
		}
		res, err := c.Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			var ok bool
			if _, _, ok, err = l.run(ctx, marks[i].Key, queuedIfNew(marks[i])); err == nil && ok {
				n++
			}
		} else if err == nil && len(res) == 3 && res[0] == "ok" {
			n++
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("ledger %s: %w", marks[i].Key, err))
		}
	}
	return n, errors.Join(errs...)
}

// BeginSend marks key sending for taskID, atomically, if nothing is filed
// or unresolved for it: call it after every other check and right before
// the request is written to the wire. It refuses with ErrFiled when the
// version is filed, and with ErrMustReconcile when the entry is sending or
// uncertain: a previous send's outcome is unknown (its worker may have died
// mid-send, or another job may be sending it now), so IR must be asked
// before anything is sent. The refused entry is returned with the error.
func (l *Ledger) BeginSend(ctx context.Context, key, taskID, bodyHash string) (Entry, error) {
	now := strconv.FormatInt(l.now().UnixMilli(), 10)
	_, e, ok, err := l.run(ctx, key, transition{
		to: StateSending, from: []string{absent, string(StateQueued), string(StateRejected)},
		incrAttempts: true,
		clear:        []string{fClass, fCode, fMessage, fWhy},
		set:          map[string]string{fTask: taskID, fBody: bodyHash, fSendingAt: now},
	})
	if err != nil {
		return Entry{}, err
	}
	if !ok {
		return e, refusal(key, e, true)
	}
	return e, nil
}

// Filed records that key is filed at IR. It is accepted from any state
// (IR's word, from the File's answer or from reconciliation, is the truth),
// and keeps the gateway ID and submission key already recorded when f
// leaves them empty.
func (l *Ledger) Filed(ctx context.Context, key, taskID string, f Filing) (Entry, error) {
	at := f.At
	if at.IsZero() {
		at = l.now()
	}
	set := map[string]string{fTask: taskID, fFiledAt: strconv.FormatInt(at.UnixMilli(), 10), fReconciled: boolArg(f.Reconciled)}
	if f.GatewayID != "" {
		set[fGatewayID] = f.GatewayID
	}
	if f.SubmissionKey != "" {
		set[fSubmission] = f.SubmissionKey
	}
	_, e, ok, err := l.run(ctx, key, transition{
		to:    StateFiled,
		from:  []string{absent, string(StateQueued), string(StateSending), string(StateUncertain), string(StateRejected), string(StateFiled)},
		clear: []string{fClass, fCode, fMessage, fWhy},
		set:   set,
	})
	if err != nil {
		return Entry{}, err
	}
	if !ok {
		return e, refusal(key, e, false)
	}
	return e, nil
}

// Rejected records that IR refused taskID's send of key: only the task
// that marked it sending may say so. It refuses with ErrFiled or
// ErrConflict.
func (l *Ledger) Rejected(ctx context.Context, key, taskID string, r Rejection) (Entry, error) {
	_, e, ok, err := l.run(ctx, key, transition{
		to: StateRejected, from: []string{string(StateSending)}, expectTask: taskID,
		clear: []string{fWhy},
		set:   map[string]string{fClass: r.Class, fCode: r.Code, fMessage: r.Message},
	})
	if err != nil {
		return Entry{}, err
	}
	if !ok {
		return e, refusal(key, e, false)
	}
	return e, nil
}

// Uncertain records that the outcome of key's send is unknown, and why. It
// is accepted from sending (any task: a reconciler may find a dead
// worker's entry) and uncertain; it refuses with ErrFiled or ErrConflict.
func (l *Ledger) Uncertain(ctx context.Context, key, taskID, why string) (Entry, error) {
	_, e, ok, err := l.run(ctx, key, transition{
		to: StateUncertain, from: []string{string(StateSending), string(StateUncertain)},
		set: map[string]string{fTask: taskID, fWhy: why},
	})
	if err != nil {
		return Entry{}, err
	}
	if !ok {
		return e, refusal(key, e, false)
	}
	return e, nil
}

// Release puts key back to queued after taskID's send certainly did not
// file it: the request never left the process, or IR answered without
// filing (throttled, token rejected, locked for processing). Only the task
// that marked it sending may release it.
func (l *Ledger) Release(ctx context.Context, key, taskID string) (Entry, error) {
	_, e, ok, err := l.run(ctx, key, transition{
		to: StateQueued, from: []string{string(StateSending)}, expectTask: taskID,
	})
	if err != nil {
		return Entry{}, err
	}
	if !ok {
		return e, refusal(key, e, false)
	}
	return e, nil
}

// Reopen puts key back to queued after reconciliation established that IR
// has nothing filed for it. seen is the entry as it was when
// reconciliation began: if another attempt marked it sending since (its
// attempt count moved) the outcome found no longer covers it, and Reopen
// refuses with ErrConflict.
func (l *Ledger) Reopen(ctx context.Context, key, taskID string, seen Entry) (Entry, error) {
	_, e, ok, err := l.run(ctx, key, transition{
		to: StateQueued, from: []string{string(StateSending), string(StateUncertain)},
		expectAttmpt: seen.Attempts, checkAttempt: true,
		set: map[string]string{fTask: taskID, fWhy: "reconciled: nothing filed at IR"},
	})
	if err != nil {
		return Entry{}, err
	}
	if !ok {
		return e, refusal(key, e, false)
	}
	return e, nil
}

// Get returns key's entry, or ErrNotFound.
func (l *Ledger) Get(ctx context.Context, key string) (Entry, error) {
	m, err := l.rdb.HGetAll(ctx, l.RedisKey(key)).Result()
	if err != nil {
		return Entry{}, fmt.Errorf("ledger %s: %w", key, err)
	}
	if len(m) == 0 {
		return Entry{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return entryFromMap(m)
}

// List scans the ledger for entries in state (every state when state is
// ""), count keys a step, from cursor (0 to start). It returns the entries
// found and the next cursor, 0 when the scan is complete. As with Redis's
// SCAN, a page may hold fewer entries than count, even none, while the
// cursor is not 0, and an entry changed during the scan may be reported
// once, twice or in its old state. On Redis Cluster, scan each master.
func (l *Ledger) List(ctx context.Context, state State, cursor uint64, count int64) ([]Entry, uint64, error) {
	if state != "" && !state.Valid() {
		return nil, 0, fmt.Errorf("ledger: unknown state %q", state)
	}
	if count <= 0 {
		count = 100
	}
	keys, next, err := l.rdb.Scan(ctx, cursor, escapeGlob(l.prefix)+"{ledger:*}:e:*", count).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("ledger: scan: %w", err)
	}
	if len(keys) == 0 {
		return nil, next, nil
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGetAll(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("ledger: read entries: %w", err)
	}
	var out []Entry
	for i, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			continue // deleted since the scan saw it
		}
		e, err := entryFromMap(m)
		if err != nil {
			return nil, 0, fmt.Errorf("ledger: %s: %w", keys[i], err)
		}
		if state == "" || e.State == state {
			out = append(out, e)
		}
	}
	return out, next, nil
}

// escapeGlob quotes SCAN's pattern characters in a literal prefix.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func parseEntry(fields []any) (Entry, error) {
	if len(fields)%2 != 0 {
		return Entry{}, errors.New("odd field list")
	}
	m := make(map[string]string, len(fields)/2)
	for i := 0; i < len(fields); i += 2 {
		k, _ := fields[i].(string)
		v, _ := fields[i+1].(string)
		m[k] = v
	}
	if len(m) == 0 {
		return Entry{}, nil
	}
	return entryFromMap(m)
}

func entryFromMap(m map[string]string) (Entry, error) {
	e := Entry{
		Key: m[fKey], State: State(m[fState]), TaskID: m[fTask], BodyHash: m[fBody],
		GatewayID: m[fGatewayID], SubmissionKey: m[fSubmission], Reconciled: m[fReconciled] == "1",
		Class: m[fClass], Code: m[fCode], Message: m[fMessage], Why: m[fWhy],
	}
	if !e.State.Valid() {
		return Entry{}, fmt.Errorf("entry in unknown state %q", e.State)
	}
	if s := m[fAttempts]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return Entry{}, fmt.Errorf("attempts %q: %w", s, err)
		}
		e.Attempts = n
	}
	for _, t := range []struct {
		field string
		dst   *time.Time
	}{{fCreated, &e.CreatedAt}, {fUpdated, &e.UpdatedAt}, {fSendingAt, &e.SendingAt}, {fFiledAt, &e.FiledAt}} {
		s := m[t.field]
		if s == "" {
			continue
		}
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Entry{}, fmt.Errorf("%s %q: %w", t.field, s, err)
		}
		*t.dst = time.UnixMilli(ms).UTC()
	}
	return e, nil
}
