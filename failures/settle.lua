-- Compare-and-set of one record: replaces it only if it is still what the
-- caller read, so a failure recorded meanwhile is never overwritten.
-- KEYS[1] rec (hash: task ID -> record JSON). ARGV: task ID, the JSON read,
-- the new JSON. Returns 1 when replaced, 0 when the record changed.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
