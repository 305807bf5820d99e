-- Records one failure and trims records past the retention.
-- KEYS[1] at (zset: task ID -> failure time, ms), KEYS[2] rec (hash: task
-- ID -> record JSON), KEYS[3] payload (hash: task ID -> payload).
-- ARGV: task ID, failure time (ms), record JSON, payload, cutoff (ms:
-- records failed before it are trimmed), most records to trim.
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[5], 'LIMIT', 0, tonumber(ARGV[6]))
if #old > 0 then
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('HDEL', KEYS[3], unpack(old))
end
return #old
