package ratelimit

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Keys of one limit. The hash tag {limit:<key>} puts both in one Redis
// Cluster slot, so each script touches a single slot.
func stateKey(prefix, key string) string    { return prefix + "{limit:" + key + "}:state" }
func inFlightKey(prefix, key string) string { return prefix + "{limit:" + key + "}:inflight" }

// checkKeyPart refuses text that would break the hash tag.
func checkKeyPart(what, s string) error {
	if strings.ContainsAny(s, "{}") {
		return fmt.Errorf("ratelimit: %s %q must not contain { or }", what, s)
	}
	return nil
}

// State hash fields, all times in microseconds of Redis's clock:
//
//	tat     theoretical arrival time of the total cell
//	tat_nr  theoretical arrival time of the non-realtime (bulk) cell
//	eff     effective rate (permits/s) right after the last decrease
//	dec_at  when the climb from eff starts (the decrease, or the end of its pause)
//	cool    until when further throttle signals do not decrease the rate
//	pause   until when no permit is granted (Retry-After)
//	rt_at   when the realtime priority last took a permit
//	wmax    the effective rate when the last decrease came
//
// The prelude is shared by the scripts: Redis's clock, the state, and the
// lazily climbed effective rate.
const scriptPrelude = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ceiling = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local reserve = tonumber(ARGV[3])
local c = tonumber(ARGV[4])
local floor = tonumber(ARGV[5]) * ceiling
local st = redis.call('HMGET', KEYS[1], 'tat', 'tat_nr', 'eff', 'dec_at', 'cool', 'pause', 'rt_at', 'wmax')
local tat = tonumber(st[1]) or 0
local tat_nr = tonumber(st[2]) or 0
local eff_dec = tonumber(st[3])
local dec_at = tonumber(st[4]) or 0
local cool = tonumber(st[5]) or 0
local pause = tonumber(st[6]) or 0
local rt_at = tonumber(st[7]) or 0
local wmax = tonumber(st[8]) or ceiling
-- TCP CUBIC's climb (see the package doc): back at wmax after k seconds.
local k = 0
local eff = ceiling
if eff_dec then
  if wmax > eff_dec then k = ((wmax - eff_dec) / c) ^ (1 / 3) end
  local d = math.max(0, now - dec_at) / 1000000 - k
  eff = wmax + c * d * d * d
end
if eff > ceiling then eff = ceiling end
if eff < floor then eff = floor end
local function us(x) return string.format('%.0f', x) end
-- The state matters until both cells are idle, the pause is over and the
-- climb has reached the ceiling; keep it a minute past that.
local function expire_state()
  local until_ = math.max(tat, tat_nr, pause, now)
  if eff_dec and eff < ceiling then
    local t_ceiling = k + (math.max(0, ceiling - wmax) / c) ^ (1 / 3)
    until_ = math.max(until_, dec_at + t_ceiling * 1000000)
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil((until_ - now) / 1000) + 60000)
end
`

// acquireScript takes one permit, or nothing.
//
// The realtime reserve is work-conserving: bulk is held to (1 - reserve)
// of the rate only while realtime traffic is about (it took a permit in
// the last ARGV[11] microseconds), so an idle reserve is not wasted.
// Crashed in-flight holders are swept only when the cap looks full, and
// the set's TTL is the longest hold (ARGV[12]), to keep the common path
// to a handful of commands.
//
// KEYS: state hash, in-flight sorted set.
// ARGV: 1 rate ceiling, 2 burst, 3 realtime reserve, 4 the climb's cubic
// constant, 5 min fraction, 6 bulk burst, 7 bulk (1) or realtime (0), 8 max in flight
// (0: no cap), 9 holder id, 10 hold in microseconds, 11 realtime activity
// window in microseconds, 12 longest hold in microseconds.
// Returns {granted (1/0), reason, wait in microseconds, effective rate}.
var acquireScript = redis.NewScript(scriptPrelude + `
local bulk_burst = tonumber(ARGV[6])
local bulk = ARGV[7] == '1'
local max_if = tonumber(ARGV[8])
local e = string.format('%.17g', eff)

if pause > now then
  return {0, 'paused', us(pause - now), e}
end

if max_if > 0 and redis.call('ZCARD', KEYS[2]) >= max_if then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', us(now))
  if redis.call('ZCARD', KEYS[2]) >= max_if then
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {0, 'in_flight', us(math.max(1, tonumber(first[2]) - now)), e}
  end
end

local interval = 1000000 / eff
local new_tat = math.max(tat, now) + interval
local wait = new_tat - burst * interval - now
local reason = 'rate'
local new_tat_nr = nil
if bulk and reserve > 0 and now - rt_at < tonumber(ARGV[11]) then
  local interval_nr = 1000000 / (eff * (1 - reserve))
  new_tat_nr = math.max(tat_nr, now) + interval_nr
  local wait_nr = new_tat_nr - bulk_burst * interval_nr - now
  if wait_nr > wait then
    wait = wait_nr
    reason = 'reserve'
  end
end
if wait > 0 then
  return {0, reason, us(math.ceil(wait)), e}
end

tat = new_tat
if new_tat_nr then tat_nr = new_tat_nr end
if bulk then
  redis.call('HSET', KEYS[1], 'tat', us(tat), 'tat_nr', us(tat_nr))
else
  rt_at = now
  redis.call('HSET', KEYS[1], 'tat', us(tat), 'tat_nr', us(tat_nr), 'rt_at', us(now))
end
expire_state()
if max_if > 0 then
  redis.call('ZADD', KEYS[2], us(now + tonumber(ARGV[10])), ARGV[9])
  redis.call('PEXPIRE', KEYS[2], math.ceil(math.max(tonumber(ARGV[10]), tonumber(ARGV[12])) / 1000) + 1000)
end
return {1, 'ok', '0', e}
`)

// throttleScript applies one throttle signal.
//
// KEYS: state hash.
// ARGV: 1-6 as acquireScript, 7 decrease factor, 8 retry-after in
// microseconds (0: none), 9 minimum cool-down in microseconds.
// Returns {decreased (1/0), effective rate}.
var throttleScript = redis.NewScript(scriptPrelude + `
local bulk_burst = tonumber(ARGV[6])
local factor = tonumber(ARGV[7])
local retry = tonumber(ARGV[8])
local min_cool = tonumber(ARGV[9])
if retry > 0 then pause = math.max(pause, now + retry) end
local decreased = 0
if now >= cool then
  wmax = eff
  eff = math.max(floor, eff * factor)
  eff_dec = eff
  -- The climb starts when the pause ends: time spent paused is no
  -- evidence that the new rate is safe.
  dec_at = math.max(now, pause)
  cool = now + math.max(min_cool, 1000000 / eff)
  decreased = 1
end
-- Empty both cells' burst at the current rate: the first permit comes one
-- interval from now, or right when the pause ends, then at eff.
local interval = 1000000 / eff
local start = math.max(now + interval, pause)
tat = math.max(tat, start + (burst - 1) * interval)
if reserve > 0 then
  local interval_nr = 1000000 / (eff * (1 - reserve))
  tat_nr = math.max(tat_nr, math.max(now + interval_nr, pause) + (bulk_burst - 1) * interval_nr)
end
redis.call('HSET', KEYS[1], 'tat', us(tat), 'tat_nr', us(tat_nr), 'pause', us(pause), 'cool', us(cool))
if eff_dec then
  redis.call('HSET', KEYS[1], 'eff', string.format('%.17g', eff_dec), 'dec_at', us(dec_at), 'wmax', string.format('%.17g', wmax))
end
expire_state()
return {decreased, string.format('%.17g', eff)}
`)

// effectiveScript reads the effective rate; it writes nothing.
//
// KEYS: state hash. ARGV: 1-5 as acquireScript.
// Returns {effective rate, pause left in microseconds}.
var effectiveScript = redis.NewScript(scriptPrelude + `
return {string.format('%.17g', eff), us(math.max(0, pause - now))}
`)
