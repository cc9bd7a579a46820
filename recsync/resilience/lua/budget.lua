-- Take one token from an org's shared bucket, unless the org is paused.
-- KEYS: bucket hash, paused-until key
-- ARGV: now ms, capacity (tokens), refill per ms, ttl ms
-- Returns {granted (0|1), wait ms}. wait is how long until a token (or the pause end).
local bucket, paused = KEYS[1], KEYS[2]
local now, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local rate, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])

local until_ms = tonumber(redis.call('GET', paused) or '0')
if until_ms > now then
  return {0, until_ms - now}
end

local fields = redis.call('HMGET', bucket, 'tokens', 'at')
local tokens = tonumber(fields[1]) or capacity
local at = tonumber(fields[2]) or now
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * rate)
  at = now
end
if tokens >= 1 then
  redis.call('HSET', bucket, 'tokens', tostring(tokens - 1), 'at', at)
  redis.call('PEXPIRE', bucket, ttl)
  return {1, 0}
end
redis.call('HSET', bucket, 'tokens', tostring(tokens), 'at', at)
redis.call('PEXPIRE', bucket, ttl)
return {0, math.ceil((1 - tokens) / rate)}
