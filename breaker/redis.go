package breaker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// view is a key's fleet state as Redis reported it.
type view struct {
	state State
	// epoch orders views: every fleet transition raises it.
	epoch int64
	// remaining is the rest of the open period, by Redis's clock.
	remaining time.Duration
}

type probeResult struct {
	view
	granted bool
}

// The scripts share a prelude. KEYS[1] is the state hash (state, until,
// epoch), KEYS[2] the probe slots (token -> lease expiry); both carry the
// key's hash tag. ARGV[1] is the channel, ARGV[2] the key's name, ARGV[3]
// the state's TTL in ms and ARGV[4] the calling process's ID, which
// messages carry so a process can skip its own. Times are Redis's own (TIME), in ms, so
// the hosts' clocks never meet.
//
// A view is {code, epoch, remaining ms, flag}: code 0 closed, 1 open, 2
// half-open. When a key has no state, it is recorded as closed with an
// epoch taken from Redis's clock (later than any epoch it had before it
// expired), so every view carries an epoch and stale ones can be told.
const luaPrelude = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function view(now)
  local v = redis.call('HMGET', KEYS[1], 'state', 'until', 'epoch')
  local epoch = tonumber(v[3])
  if not epoch then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'until', 0, 'epoch', now)
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return {0, now, 0, 0}
  end
  if v[1] ~= 'open' then return {0, epoch, 0, 0} end
  local rem = tonumber(v[2]) - now
  if rem > 0 then return {1, epoch, rem, 0} end
  return {2, epoch, 0, 0}
end
local function set(now, state, until_ms)
  local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch')) + 1
  redis.call('HSET', KEYS[1], 'state', state, 'until', until_ms, 'epoch', epoch)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('DEL', KEYS[2])
  local code, rem = 0, 0
  if state == 'open' then code, rem = 1, until_ms - now end
  redis.call('PUBLISH', ARGV[1], string.format('%d %d %d %s %s', code, epoch, rem, ARGV[4], ARGV[2]))
  return {code, epoch, rem, 1}
end
`

// readScript returns the view.
var readScript = redis.NewScript(luaPrelude + `
return view(now_ms())
`)

// tripScript opens the breaker for ARGV[5] ms unless it is open already.
// A half-open breaker is re-opened: the trip is fresh evidence. The flag
// says whether this call opened it.
var tripScript = redis.NewScript(luaPrelude + `
local now = now_ms()
local v = view(now)
if v[1] == 1 then return v end
return set(now, 'open', now + tonumber(ARGV[5]))
`)

// probeScript grants probe token ARGV[5] a slot for ARGV[6] ms when the
// breaker is half-open and fewer than ARGV[7] slots are held. The flag
// says whether it was granted.
var probeScript = redis.NewScript(luaPrelude + `
local now = now_ms()
local v = view(now)
if v[1] ~= 2 then return v end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[7]) then return v end
local lease = tonumber(ARGV[6])
redis.call('ZADD', KEYS[2], now + lease, ARGV[5])
if redis.call('PTTL', KEYS[2]) < lease then redis.call('PEXPIRE', KEYS[2], lease) end
v[4] = 1
return v
`)

// resolveScript reports the outcome ARGV[7] ('s', 'f' or 'x') of probe
// ARGV[5], granted in epoch ARGV[6]: success closes, failure re-opens for
// ARGV[8] ms, excluded frees the slot. An outcome from another epoch
// changes nothing. The flag says whether it changed the state.
var resolveScript = redis.NewScript(luaPrelude + `
local now = now_ms()
local v = view(now)
if v[1] ~= 2 or v[2] ~= tonumber(ARGV[6]) or ARGV[7] == 'x' then
  redis.call('ZREM', KEYS[2], ARGV[5])
  return v
end
if ARGV[7] == 's' then return set(now, 'closed', 0) end
return set(now, 'open', now + tonumber(ARGV[8]))
`)

// run runs a script for key and returns its view and flag. It returns when
// ctx ends even if the Redis call goes on: go-redis applies a context's
// deadline to socket reads only with ContextTimeoutEnabled, and a Redis
// that hangs must not hold a call for the client's ReadTimeout.
func (f *Fleet) run(ctx context.Context, s *redis.Script, key string, args ...any) (view, bool, error) {
	sk := f.stateKey(key)
	argv := append([]any{f.channel, key, (f.s.OpenFor + stateTTL).Milliseconds(), f.id}, args...)
	type reply struct {
		res []int64
		err error
	}
	ch := make(chan reply, 1)
	go func() {
		res, err := s.Run(ctx, f.rdb, []string{sk, sk + ":probes"}, argv...).Int64Slice()
		ch <- reply{res, err}
	}()
	var res []int64
	select {
	case r := <-ch:
		if r.err != nil {
			return view{}, false, fmt.Errorf("breaker %s: %w", key, r.err)
		}
		res = r.res
	case <-ctx.Done():
		return view{}, false, fmt.Errorf("breaker %s: %w", key, ctx.Err())
	}
	if len(res) != 4 || res[0] < 0 || res[0] > 2 {
		return view{}, false, fmt.Errorf("breaker %s: unexpected script reply %v", key, res)
	}
	v := view{state: [...]State{Closed, Open, HalfOpen}[res[0]], epoch: res[1], remaining: time.Duration(res[2]) * time.Millisecond}
	return v, res[3] == 1, nil
}

func (f *Fleet) read(ctx context.Context, key string) (view, error) {
	v, _, err := f.run(ctx, readScript, key)
	return v, err
}

func (f *Fleet) trip(ctx context.Context, key string) (view, bool, error) {
	return f.run(ctx, tripScript, key, f.s.OpenFor.Milliseconds())
}

func (f *Fleet) takeProbe(ctx context.Context, key, token string, lease time.Duration) (probeResult, error) {
	v, granted, err := f.run(ctx, probeScript, key, token, lease.Milliseconds(), f.s.HalfOpenProbes)
	return probeResult{view: v, granted: granted}, err
}

func (f *Fleet) resolveProbe(ctx context.Context, key, token string, epoch int64, o outcome) (view, bool, error) {
	return f.run(ctx, resolveScript, key, token, epoch, string(o), f.s.OpenFor.Milliseconds())
}

// pushTrip records this process's trip of e in Redis, if e is still open
// here: a trip held back while Redis was unreachable is stale once this
// process has moved on by itself.
func (f *Fleet) pushTrip(ctx context.Context, e *entry) bool {
	e.mu.Lock()
	if e.state != Open {
		e.pendingTrip = false
	}
	pending := e.pendingTrip
	e.mu.Unlock()
	if !pending {
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, f.redisTimeout)
	v, changed, err := f.trip(rctx, e.key)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			f.redisFailed(err)
		}
		return false
	}
	f.redisOK()
	cause := "fleet"
	if changed {
		cause = "tripped by this process"
	}
	e.mu.Lock()
	f.apply(e, v, f.now(), cause)
	e.pendingTrip = false
	e.mu.Unlock()
	return true
}

// Start follows the fleet's transitions in the background until ctx ends
// or Close is called: it subscribes to them and polls every key this
// process uses every PollInterval, the fallback for messages lost while the
// subscription reconnects. It returns at once, without waiting for Redis
// (an unreachable Redis is retried in the background). Allow works without
// it, but then sees other processes' trips only on a key's first use.
// Start may be called once; after Close it returns ErrClosed.
func (f *Fleet) Start(ctx context.Context) error {
	f.runMu.Lock()
	defer f.runMu.Unlock()
	switch {
	case f.closed:
		return ErrClosed
	case f.cancel != nil:
		return errors.New("breaker: Start called twice")
	case f.rdb == nil:
		return nil // nothing to follow
	}
	ctx, f.cancel = context.WithCancel(ctx)
	f.stopped = make(chan struct{})
	go f.follow(ctx)
	return nil
}

// Close stops what Start began and waits for it to end (which can take as
// long as the client's dial or read timeout while a subscription to a hung
// Redis is being set up). It does not close the Redis client, and done
// funcs still pending may use it. Allow keeps working after Close, without
// following the fleet.
func (f *Fleet) Close() error {
	f.runMu.Lock()
	f.closed = true
	cancel, stopped := f.cancel, f.stopped
	f.runMu.Unlock()
	if cancel != nil {
		cancel()
		<-stopped
	}
	return nil
}

func (f *Fleet) follow(ctx context.Context) {
	defer close(f.stopped)
	ps := f.rdb.Subscribe(ctx, f.channel)
	defer ps.Close()
	msgs := ps.ChannelWithSubscriptions(redis.WithChannelSize(256))
	tick := time.NewTicker(f.pollInterval)
	defer tick.Stop()
	f.poll(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			f.receive(ctx, m)
		case <-tick.C:
			f.poll(ctx)
		}
	}
}

func (f *Fleet) receive(ctx context.Context, m any) {
	switch m := m.(type) {
	case *redis.Subscription:
		// A (re)subscription: whatever was published while it was down is
		// lost, so read the state now rather than at the next tick.
		if m.Kind == "subscribe" {
			f.poll(ctx)
		}
	case *redis.Message:
		key, origin, v, err := parseMessage(m.Payload)
		if err != nil {
			f.log.Warn("ignoring a malformed breaker message", "channel", m.Channel, "err", err)
			return
		}
		if origin == f.id {
			// This process's own transition, applied from the script's
			// reply (which may arrive after the message).
			return
		}
		e := f.lookup(key)
		if e == nil {
			return // a key this process doesn't use; its first use reads it
		}
		e.mu.Lock()
		f.apply(e, v, f.now(), "process "+origin)
		e.mu.Unlock()
	}
}

// poll brings every key up to date with Redis, pushing trips held back
// while Redis was unreachable. It gives up the round at the first failure.
func (f *Fleet) poll(ctx context.Context) {
	for _, e := range f.snapshot() {
		if ctx.Err() != nil {
			return
		}
		e.mu.Lock()
		pending := e.pendingTrip
		e.mu.Unlock()
		if pending {
			if !f.pushTrip(ctx, e) {
				return
			}
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, f.redisTimeout)
		v, err := f.read(rctx, e.key)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				f.redisFailed(err)
			}
			return
		}
		f.redisOK()
		e.mu.Lock()
		f.apply(e, v, f.now(), "fleet")
		f.exportCounts(e)
		e.mu.Unlock()
	}
}

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("breaker: closed")

// formatMessage is what the scripts publish.
func formatMessage(key, origin string, v view) string {
	code := 0
	if v.state == Open {
		code = 1
	}
	return fmt.Sprintf("%d %d %d %s %s", code, v.epoch, v.remaining.Milliseconds(), origin, key)
}

// parseMessage reads "<code> <epoch> <remaining ms> <origin> <key>": code
// 0 closed, 1 open; origin the ID of the process whose transition it is.
// The key is last because it may hold spaces.
func parseMessage(s string) (key, origin string, v view, err error) {
	parts := strings.SplitN(s, " ", 5)
	if len(parts) != 5 || parts[3] == "" || parts[4] == "" {
		return "", "", view{}, fmt.Errorf("breaker message %q: want <code> <epoch> <remaining> <origin> <key>", s)
	}
	code, err1 := strconv.Atoi(parts[0])
	epoch, err2 := strconv.ParseInt(parts[1], 10, 64)
	rem, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", "", view{}, fmt.Errorf("breaker message %q: %w", s, err)
	}
	const maxRemaining = int64(365 * 24 * time.Hour / time.Millisecond)
	switch {
	case code != 0 && code != 1:
		return "", "", view{}, fmt.Errorf("breaker message %q: state code %d", s, code)
	case epoch <= 0:
		return "", "", view{}, fmt.Errorf("breaker message %q: epoch %d", s, epoch)
	case rem < 0 || rem > maxRemaining || (code == 1 && rem == 0):
		return "", "", view{}, fmt.Errorf("breaker message %q: remaining %d ms", s, rem)
	}
	v = view{state: Closed, epoch: epoch}
	if code == 1 {
		v.state, v.remaining = Open, time.Duration(rem)*time.Millisecond
	}
	return parts[4], parts[3], v, nil
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
