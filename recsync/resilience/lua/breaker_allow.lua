-- Decide whether one call may go to the platform, for every process at once.
-- An open breaker whose open time has passed turns half-open, and half-open admits
-- one probe at a time: the probe lock (SET NX PX) is what makes it one.
-- KEYS: breaker hash, probe lock
-- ARGV: now ms, probe lock ttl ms, probe token
-- Returns {allowed (0|1), probe (0|1), state, transition ('' or the new state)}.
local breaker, lock = KEYS[1], KEYS[2]
local now, ttl, token = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]

local fields = redis.call('HMGET', breaker, 'state', 'open_until')
local state = fields[1] or 'closed'
if state == 'closed' then
  return {1, 0, 'closed', ''}
end

local transition = ''
if state == 'open' then
  if now < (tonumber(fields[2]) or 0) then
    return {0, 0, 'open', ''}
  end
  state = 'half-open'
  transition = 'half-open'
  redis.call('HSET', breaker, 'state', state, 'changed_at', now)
end

if redis.call('SET', lock, token, 'NX', 'PX', ttl) then
  return {1, 1, state, transition}
end
return {0, 0, state, transition}
