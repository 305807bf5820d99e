-- One ledger transition on one entry (KEYS[1]), atomically, counted in
-- its shard's stats hash (KEYS[2], in the same hash slot).
--
-- ARGV[1] entry key (stored in the hash)   ARGV[2] now, unix ms
-- ARGV[3] target state                      ARGV[4] allowed current states, comma-separated ("absent": no entry)
-- ARGV[5] expected task ID ("" any)         ARGV[6] expected attempts ("" any)
-- ARGV[7] "1" to count an attempt           ARGV[8] fields to delete, comma-separated
-- ARGV[9..] field, value pairs to set
--
-- Returns {"ok" | "refused", previous state ("" for none), HGETALL after}.
--
-- The stats hash counts transitions by edge, "<from>><to>" ("absent" for a
-- new entry): one HINCRBY per state change, so the count of entries in a
-- state is what came in minus what went out, readable in one HGETALL at
-- scrape time however large the ledger grows.
local k = KEYS[1]
local cur = redis.call('HGET', k, 'state')
local prev = cur or ''
local allowed = false
for s in string.gmatch(ARGV[4], '[^,]+') do
  if (not cur and s == 'absent') or (cur and s == cur) then
    allowed = true
  end
end
if allowed and cur and (ARGV[5] ~= '' or ARGV[6] ~= '') then
  local v = redis.call('HMGET', k, 'task', 'attempts')
  if ARGV[5] ~= '' and v[1] ~= ARGV[5] then
    allowed = false
  end
  if ARGV[6] ~= '' and (v[2] or '0') ~= ARGV[6] then
    allowed = false
  end
end
if not allowed then
  return {'refused', prev, redis.call('HGETALL', k)}
end
if not cur then
  redis.call('HSET', k, 'key', ARGV[1], 'created', ARGV[2], 'attempts', '0')
end
-- One HDEL and one HSET for all fields: every command inside a script
-- costs Redis time on the hot path of every File.
local del = {}
for f in string.gmatch(ARGV[8], '[^,]+') do
  del[#del + 1] = f
end
if #del > 0 then
  redis.call('HDEL', k, unpack(del))
end
if #ARGV >= 9 then
  redis.call('HSET', k, 'state', ARGV[3], 'updated', ARGV[2], unpack(ARGV, 9, #ARGV))
else
  redis.call('HSET', k, 'state', ARGV[3], 'updated', ARGV[2])
end
if ARGV[7] == '1' then
  redis.call('HINCRBY', k, 'attempts', 1)
end
if prev ~= ARGV[3] then
  redis.call('HINCRBY', KEYS[2], (cur or 'absent') .. '>' .. ARGV[3], 1)
end
return {'ok', prev, redis.call('HGETALL', k)}
