-- Take up to LIMIT records whose due time has passed, and push their due time
-- forward by GRACE so the next reconciler pass does not send them again while the
-- message just sent is still queued.
-- KEYS: due zset.  ARGV: now ms, limit, grace ms, cutoff ms (due at or before).
local due = KEYS[1]
local now, limit, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', tonumber(ARGV[4]), 'LIMIT', 0, limit)
for _, rid in ipairs(ids) do
  redis.call('ZADD', due, now + grace, rid)
end
return ids
