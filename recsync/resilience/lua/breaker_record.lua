-- Count one call outcome and move the breaker when a threshold is crossed.
-- The window is a ring of bucket slots in the breaker hash. Slot i stores its bucket
-- number in b:i and the counters n:i (calls), f:i (failures) and s:i (slow calls).
-- A slot whose bucket number is older than the window counts as empty.
-- KEYS: breaker hash, probe lock
-- ARGV: now ms, bucket ms, buckets per window, failure (0|1), slow (0|1),
--       probe (0|1), probe token, min calls, failure ratio, slow ratio, open ms
-- Returns {state, transition ('' or the new state), failure ratio, slow ratio, calls}.
local breaker, lock = KEYS[1], KEYS[2]
local now, bucket_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local buckets = tonumber(ARGV[3])
local failure, slow, probe = ARGV[4] == '1', ARGV[5] == '1', ARGV[6] == '1'
local token, min_calls = ARGV[7], tonumber(ARGV[8])
local max_failure, max_slow = tonumber(ARGV[9]), tonumber(ARGV[10])
local open_ms = tonumber(ARGV[11])

local state = redis.call('HGET', breaker, 'state') or 'closed'

local function clear_window()
  for i = 0, buckets - 1 do
    redis.call('HDEL', breaker, 'b:' .. i, 'n:' .. i, 'f:' .. i, 's:' .. i)
  end
end

local function open()
  redis.call('HSET', breaker, 'state', 'open', 'open_until', now + open_ms,
    'changed_at', now)
  -- An open breaker must outlive any idle spell; only a closed window may expire.
  redis.call('PERSIST', breaker)
end

if probe then
  -- Only the holder of the probe lock settles the half-open state.
  if redis.call('GET', lock) == token then
    redis.call('DEL', lock)
    if state == 'half-open' then
      if failure or slow then
        open()
        return {'open', 'open', '1', slow and '1' or '0', 1}
      end
      clear_window()
      redis.call('HSET', breaker, 'state', 'closed', 'changed_at', now)
      redis.call('HDEL', breaker, 'open_until')
      return {'closed', 'closed', '0', '0', 1}
    end
  end
end

local current = math.floor(now / bucket_ms)
local slot = current % buckets
local counted = tonumber(redis.call('HGET', breaker, 'b:' .. slot) or '-1')
if counted ~= current then
  redis.call('HSET', breaker, 'b:' .. slot, current, 'n:' .. slot, 0,
    'f:' .. slot, 0, 's:' .. slot, 0)
end
redis.call('HINCRBY', breaker, 'n:' .. slot, 1)
if failure then
  redis.call('HINCRBY', breaker, 'f:' .. slot, 1)
end
if slow then
  redis.call('HINCRBY', breaker, 's:' .. slot, 1)
end
if state == 'closed' then
  redis.call('PEXPIRE', breaker, bucket_ms * buckets * 2)
end

local calls, failures, slows = 0, 0, 0
for i = 0, buckets - 1 do
  local fields = redis.call('HMGET', breaker, 'b:' .. i, 'n:' .. i, 'f:' .. i, 's:' .. i)
  local number = tonumber(fields[1])
  if number and number > current - buckets then
    calls = calls + (tonumber(fields[2]) or 0)
    failures = failures + (tonumber(fields[3]) or 0)
    slows = slows + (tonumber(fields[4]) or 0)
  end
end
local failure_ratio, slow_ratio = 0, 0
if calls > 0 then
  failure_ratio = failures / calls
  slow_ratio = slows / calls
end
-- Ratios go back as strings because Redis turns Lua numbers into integers.
local result = {state, '', tostring(failure_ratio), tostring(slow_ratio), calls}
if state == 'closed' and calls >= min_calls
    and (failure_ratio > max_failure or slow_ratio > max_slow) then
  open()
  result[1] = 'open'
  result[2] = 'open'
end
return result
