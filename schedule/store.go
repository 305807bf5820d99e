package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Outcome is how a run of an occurrence ended.
type Outcome string

const (
	// OutcomeRunning: started and not finished. Once its worker's lease
	// has expired (Run.Stale) the worker is gone and another takes over.
	OutcomeRunning Outcome = "running"
	// OutcomeDone: every line was handled and none rejected.
	OutcomeDone Outcome = "done"
	// OutcomeRejected: every line was handled, and some were not valid
	// jobs (Run.Rejected, Run.Errors). The valid ones are enqueued; the
	// occurrence is not run again.
	OutcomeRejected Outcome = "rejected"
	// OutcomeMissing: the day's file was not there. Recorded, counted and
	// not retried; enqueue the file by hand ("enqueue bulk" with the
	// run's batch ID) if it comes late.
	OutcomeMissing Outcome = "missing"
	// OutcomeFailed: Redis or reading the file failed part way (Run.Error).
	// The claim is left to expire, after which a worker runs the file
	// again, within the catch-up window.
	OutcomeFailed Outcome = "failed"
	// OutcomeStopped: the worker was shutting down. The claim is released
	// so another worker takes over at once.
	OutcomeStopped Outcome = "stopped"
	// OutcomeLost: this worker's claim expired mid-run (Redis was out of
	// reach longer than the lease) and another worker has taken over. Only
	// counted and logged: the run record is the other worker's.
	OutcomeLost Outcome = "lost"
)

// finished reports whether the occurrence is over for good: marked done,
// never run again.
func (o Outcome) finished() bool {
	return o == OutcomeDone || o == OutcomeRejected || o == OutcomeMissing
}

// maxRunErrors is how many rejected lines a run record keeps; the whole
// list is a dry run ("enqueue bulk --dry-run") away.
const maxRunErrors = 20

// Run is the record of one scheduled occurrence, kept in Redis for
// schedule.history. A takeover overwrites it with its own attempt.
type Run struct {
	Name string `json:"name"`
	// Occurrence is the scheduled time, in the batch's zone.
	Occurrence time.Time `json:"occurrence"`
	Batch      string    `json:"batch"`
	File       string    `json:"file"`
	Queue      string    `json:"queue"`
	// Owner is the worker that ran it (host:pid:random).
	Owner string `json:"owner"`
	// Attempt counts the claims of this occurrence: above 1, an earlier
	// worker failed, stopped or died and this one took over.
	Attempt  int       `json:"attempt"`
	Outcome  Outcome   `json:"outcome"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Lines, Enqueued, Duplicates and Rejected are jobfile's counts. A
	// takeover counts the jobs its predecessor enqueued as Duplicates.
	Lines      int `json:"lines"`
	Enqueued   int `json:"enqueued"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	// Errors are the first rejected lines ("line N: field: reason").
	Errors []string `json:"errors,omitempty"`
	// Error says why a failed run failed.
	Error string `json:"error,omitempty"`
	// Stale is set by Runs on a running record whose claim has expired:
	// its worker died, and another will take over (or the catch-up window
	// has passed). Not stored.
	Stale bool `json:"-"`
}

// keys names the Redis keys of one batch. The batch name is a hash tag,
// so the claim, done marker and run record of an occurrence share a Redis
// Cluster slot and one script can touch them together.
type keys struct{ base string }

func newKeys(prefix, name string) keys { return keys{base: prefix + "schedule:{" + name + "}:"} }

// occ is the occurrence's part of a key: UTC, so it reads the same
// whatever zone a worker prints times in.
func occ(t time.Time) string                   { return t.UTC().Format(time.RFC3339) }
func (k keys) claim(t time.Time) string        { return k.base + "claim:" + occ(t) }
func (k keys) done(t time.Time) string         { return k.base + "done:" + occ(t) }
func (k keys) attempts(t time.Time) string     { return k.base + "attempts:" + occ(t) }
func (k keys) run(t time.Time) string          { return k.base + "run:" + occ(t) }
func (k keys) runs() string                    { return k.base + "runs" }
func (k keys) runFromMember(m string) string   { return k.base + "run:" + m }
func (k keys) claimFromMember(m string) string { return k.base + "claim:" + m }

// claimScript claims an occurrence that is not done and not held:
// KEYS done, claim, attempts; ARGV owner token, lease ms, history ms.
// Returns -1 (done), 0 (held by another worker) or the attempt number.
var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local n = redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return n
`)

// renewScript extends the lease if the claim is still ours: KEYS claim;
// ARGV token, lease ms. Returns 1 if renewed, 0 if lost.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// finishScript ends a run: KEYS done, claim, run, runs; ARGV token,
// outcome, run JSON, history ms, score, member, trim-before score,
// mark done ("1"/"0"), release the claim ("1"/"0").
//
// A finished occurrence is marked done whoever holds the claim: its file
// is wholly enqueued. The record is written unless another worker holds
// the claim (it took over and will write its own). Returns 1 if the claim
// was still ours.
var finishScript = redis.NewScript(`
local holder = redis.call('GET', KEYS[2])
local mine = holder == ARGV[1]
if ARGV[8] == '1' then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
end
if mine and ARGV[9] == '1' then redis.call('DEL', KEYS[2]) end
if mine or not holder then
  redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[7])
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
if mine then return 1 end
return 0
`)

// store is the Redis side of a scheduler.
type store struct {
	rdb     redis.UniversalClient
	prefix  string
	lease   time.Duration
	history time.Duration
}

// claimResult is what claim found.
type claimResult int

const (
	claimDone claimResult = -1 // the occurrence is finished
	claimHeld claimResult = 0  // another worker holds it
)

func (s *store) claim(ctx context.Context, name string, at time.Time, token string) (claimResult, error) {
	k := newKeys(s.prefix, name)
	n, err := claimScript.Run(ctx, s.rdb, []string{k.done(at), k.claim(at), k.attempts(at)},
		token, s.lease.Milliseconds(), s.history.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("claim %s at %s: %w", name, occ(at), err)
	}
	return claimResult(n), nil
}

func (s *store) renew(ctx context.Context, name string, at time.Time, token string) (bool, error) {
	k := newKeys(s.prefix, name)
	n, err := renewScript.Run(ctx, s.rdb, []string{k.claim(at)}, token, s.lease.Milliseconds()).Int()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// started records a run that has just claimed its occurrence.
func (s *store) started(ctx context.Context, r *Run) error {
	k := newKeys(s.prefix, r.Name)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, k.run(r.Occurrence), b, s.history)
		p.ZAdd(ctx, k.runs(), redis.Z{Score: float64(r.Occurrence.Unix()), Member: occ(r.Occurrence)})
		p.Expire(ctx, k.runs(), s.history)
		return nil
	})
	return err
}

// finish records the end of a run, marking the occurrence done if its
// outcome is final and releasing the claim if asked. It reports whether
// the claim was still ours.
func (s *store) finish(ctx context.Context, r *Run, token string, release bool) (bool, error) {
	k := newKeys(s.prefix, r.Name)
	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	flag := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	trim := r.Occurrence.Add(-s.history).Unix()
	n, err := finishScript.Run(ctx, s.rdb,
		[]string{k.done(r.Occurrence), k.claim(r.Occurrence), k.run(r.Occurrence), k.runs()},
		token, string(r.Outcome), b, s.history.Milliseconds(), r.Occurrence.Unix(), occ(r.Occurrence), trim,
		flag(r.Outcome.finished()), flag(release)).Int()
	if err != nil {
		return false, fmt.Errorf("record run of %s at %s: %w", r.Name, occ(r.Occurrence), err)
	}
	return n == 1, nil
}

// Runs lists the recorded runs of the scheduled batch name, newest
// occurrence first, at most limit of them (limit <= 0: all that are kept,
// schedule.history's worth). prefix is redis.key_prefix. A run still
// "running" whose worker's lease has expired is marked Stale.
func Runs(ctx context.Context, rdb redis.UniversalClient, prefix, name string, limit int) ([]Run, error) {
	k := newKeys(prefix, name)
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit) - 1
	}
	members, err := rdb.ZRevRange(ctx, k.runs(), 0, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("schedule runs of %s: %w", name, err)
	}
	if len(members) == 0 {
		return nil, nil
	}
	runKeys := make([]string, len(members))
	for i, m := range members {
		runKeys[i] = k.runFromMember(m)
	}
	// One MGET: the batch's hash tag keeps these keys in one Redis
	// Cluster slot, where a multi-key command is allowed.
	vals, err := rdb.MGet(ctx, runKeys...).Result()
	if err != nil {
		return nil, fmt.Errorf("schedule runs of %s: %w", name, err)
	}
	runs := make([]Run, 0, len(vals))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // expired between the two reads
		}
		var r Run
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			return nil, fmt.Errorf("schedule run %s: %w", runKeys[i], err)
		}
		if r.Outcome == OutcomeRunning {
			n, err := rdb.Exists(ctx, k.claimFromMember(members[i])).Result()
			if err != nil {
				return nil, fmt.Errorf("schedule runs of %s: %w", name, err)
			}
			r.Stale = n == 0
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// errLostClaim stops a run whose claim another worker now holds.
var errLostClaim = errors.New("claim lost: the lease expired and another worker took over")
