// Package reaper gives the jobs of a dead worker process back to their
// queue within seconds.
//
// asynq recovers such jobs itself, but only once their lease has been
// expired for 30 s, and it looks once a minute: a worker killed mid-batch
// (the OOM killer, a SIGKILL, a lost node) holds its jobs for one to two
// minutes, and a nightly batch that loses a worker every so often ends
// minutes late. Every gatewayq worker runs a Reaper: every couple of
// seconds it looks for active jobs whose lease nobody has extended for two
// heartbeats and whose holder is missing from asynq's list of live
// servers, and puts them back at the head of their queue.
//
// Putting a job back is safe even if its holder turns out to be alive
// (stalled, say, past two heartbeats): a File is guarded by the filing
// ledger, which lets no second attempt send or reconcile a return while
// an earlier attempt's call may still be in flight, and the other
// operations only read. A job that keeps killing its worker is put back
// at most MaxRecoveries times; after that asynq's own recoverer takes it,
// which counts it against the job's retries and archives it at the end.
//
// The reaper reads and moves asynq's own keys for active jobs (the active
// list, the lease set, the pending list and the task hash) exactly as
// asynq v0.26's Requeue does; its tests run against real asynq servers so
// that a change of layout in an asynq upgrade fails them.
package reaper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/internal/promreg"
)

// asynq's lease: set to dequeue time + leaseDuration and extended to now +
// leaseDuration by the holder's heartbeat every heartbeatInterval (both
// fixed in asynq v0.26).
const (
	leaseDuration     = 30 * time.Second
	heartbeatInterval = 5 * time.Second
)

// Options shape a Reaper.
type Options struct {
	// Queues are the asynq queue names (with gatewayq's queue prefix) to
	// watch.
	Queues []string
	// KeyPrefix is gatewayq's Redis key prefix, for the reaper's own
	// counters.
	KeyPrefix string
	// Interval between looks. Default 2s.
	Interval time.Duration
	// StaleAfter is how long a lease must have gone without an extension
	// before its job is suspected: more than two heartbeats, so that one
	// slow beat is not taken for a death. Default 12s.
	StaleAfter time.Duration
	// MaxRecoveries is how often one job is put back before it is left to
	// asynq's recoverer. Default 3.
	MaxRecoveries int
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Registerer receives the reaper's metrics; nil for none.
	Registerer prometheus.Registerer
	// now is the clock; nil is time.Now.
	now func() time.Time
}

// Reaper puts the jobs of dead workers back on their queue.
type Reaper struct {
	rdb       redis.UniversalClient
	insp      *asynq.Inspector
	o         Options
	recovered *prometheus.CounterVec
	left      prometheus.Counter
}

// New builds a Reaper on the Redis that holds the queues: rdb for its own
// reads and moves, insp for asynq's list of live servers.
func New(rdb redis.UniversalClient, insp *asynq.Inspector, o Options) *Reaper {
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 12 * time.Second
	}
	if o.MaxRecoveries <= 0 {
		o.MaxRecoveries = 3
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	return &Reaper{rdb: rdb, insp: insp, o: o,
		recovered: promreg.Register(o.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatewayq_reaper_recovered_jobs_total",
			Help: "Jobs of dead worker processes put back on their queue, by queue."}, []string{"queue"})),
		left: promreg.Register(o.Registerer, prometheus.NewCounter(prometheus.CounterOpts{Name: "gatewayq_reaper_left_to_asynq_total",
			Help: "Orphaned jobs put back MaxRecoveries times already, left to asynq's recoverer."})),
	}
}

// Run looks every Interval (with jitter, so a fleet's reapers don't look
// in lockstep) until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	for {
		d := r.o.Interval/2 + rand.N(r.o.Interval)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		if _, err := r.Reap(ctx); err != nil && ctx.Err() == nil {
			r.o.Logger.Warn("reaper: could not look for orphaned jobs", "err", err)
		}
	}
}

// Reap looks once and puts back every orphaned job it finds; it returns
// how many it put back.
func (r *Reaper) Reap(ctx context.Context) (int, error) {
	now := r.o.now()
	// A lease that would expire sooner than this was last extended more
	// than StaleAfter ago.
	threshold := now.Add(leaseDuration - r.o.StaleAfter).Unix()
	type cand struct{ queue, id string }
	var cands []cand
	for _, q := range r.o.Queues {
		ids, err := r.rdb.ZRangeByScore(ctx, leaseKey(q), &redis.ZRangeBy{Min: "-inf", Max: "(" + strconv.FormatInt(threshold, 10)}).Result()
		if err != nil {
			return 0, err
		}
		for _, id := range ids {
			cands = append(cands, cand{q, id})
		}
	}
	if len(cands) == 0 {
		return 0, nil
	}
	// A job a live server says it is working on is not orphaned, whatever
	// its lease says (a clock running ahead, a slow beat).
	servers, err := r.insp.Servers()
	if err != nil {
		return 0, fmt.Errorf("list live asynq servers: %w", err)
	}
	held := map[string]bool{}
	for _, s := range servers {
		for _, w := range s.ActiveWorkers {
			held[w.Queue+"\x00"+w.TaskID] = true
		}
	}
	n := 0
	for _, c := range cands {
		if held[c.queue+"\x00"+c.id] {
			continue
		}
		countKey := r.o.KeyPrefix + "reaper:recoveries:" + c.queue + ":" + c.id
		times, err := r.rdb.Get(ctx, countKey).Int()
		if err != nil && !errors.Is(err, redis.Nil) {
			return n, err
		}
		if times >= r.o.MaxRecoveries {
			r.left.Inc()
			continue
		}
		ok, err := requeue.Run(ctx, r.rdb, []string{activeKey(c.queue), leaseKey(c.queue), pendingKey(c.queue), taskKey(c.queue, c.id)},
			c.id, threshold, now.UnixNano()).Int()
		if err != nil {
			return n, fmt.Errorf("put back %s: %w", c.id, err)
		}
		if ok != 1 {
			continue // finished, or put back by another reaper, meanwhile
		}
		n++
		r.recovered.WithLabelValues(c.queue).Inc()
		// The count outlives any retry schedule a job could have.
		pipe := r.rdb.TxPipeline()
		pipe.Incr(ctx, countKey)
		pipe.Expire(ctx, countKey, 7*24*time.Hour)
		if _, err := pipe.Exec(ctx); err != nil {
			r.o.Logger.Warn("reaper: could not count a recovery", "task", c.id, "err", err)
		}
		r.o.Logger.Warn("reaper: job of a dead worker put back on its queue", "queue", c.queue, "task", c.id, "recovery", times+1)
	}
	return n, nil
}

// asynq v0.26's keys for a queue (internal/base).
func queuePrefix(q string) string { return "asynq:{" + q + "}:" }
func activeKey(q string) string   { return queuePrefix(q) + "active" }
func leaseKey(q string) string    { return queuePrefix(q) + "lease" }
func pendingKey(q string) string  { return queuePrefix(q) + "pending" }
func taskKey(q, id string) string { return queuePrefix(q) + "t:" + id }

// requeue is asynq's Requeue (active → head of pending) guarded by the
// lease check, so that a job whose lease was extended, or which finished
// or was put back by another reaper, since it was listed is left alone.
// asynq dequeues from the right of the pending list, so RPUSH makes the
// job the next one served. pending_since is what asynq's enqueue sets and
// its dequeue deletes.
//
// KEYS: active list, lease set, pending list, task hash.
// ARGV: task ID, lease threshold (unix s), now (unix ns).
var requeue = redis.NewScript(`
local score = redis.call("ZSCORE", KEYS[2], ARGV[1])
if not score or tonumber(score) >= tonumber(ARGV[2]) then
  return 0
end
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then
  return 0
end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("RPUSH", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[4], "state", "pending", "pending_since", ARGV[3])
return 1
`)
