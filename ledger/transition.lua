-- One ledger transition on one entry (KEYS[1]), atomically.
--
-- ARGV[1] entry key (stored in the hash)   ARGV[2] now, unix ms
-- ARGV[3] target state                      ARGV[4] allowed current states, comma-separated ("absent": no entry)
-- ARGV[5] expected task ID ("" any)         ARGV[6] expected attempts ("" any)
-- ARGV[7] "1" to count an attempt           ARGV[8] fields to delete, comma-separated
-- ARGV[9..] field, value pairs to set
--
-- Returns {"ok" | "refused", previous state ("" for none), HGETALL after}.
local k = KEYS[1]
local cur = redis.call('HGET', k, 'state')
local prev = cur or ''
local allowed = false
for s in string.gmatch(ARGV[4], '[^,]+') do
  if (not cur and s == 'absent') or (cur and s == cur) then
    allowed = true
  end
end
if allowed and cur then
  if ARGV[5] ~= '' and redis.call('HGET', k, 'task') ~= ARGV[5] then
    allowed = false
  end
  if ARGV[6] ~= '' and (redis.call('HGET', k, 'attempts') or '0') ~= ARGV[6] then
    allowed = false
  end
end
if not allowed then
  return {'refused', prev, redis.call('HGETALL', k)}
end
if not cur then
  redis.call('HSET', k, 'key', ARGV[1], 'created', ARGV[2], 'attempts', '0')
end
for f in string.gmatch(ARGV[8], '[^,]+') do
  redis.call('HDEL', k, f)
end
redis.call('HSET', k, 'state', ARGV[3], 'updated', ARGV[2])
for i = 9, #ARGV, 2 do
  redis.call('HSET', k, ARGV[i], ARGV[i + 1])
end
if ARGV[7] == '1' then
  redis.call('HINCRBY', k, 'attempts', 1)
end
return {'ok', prev, redis.call('HGETALL', k)}
