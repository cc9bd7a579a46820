-- Move a record to 'fetching' for one worker, under a lease.
-- KEYS: record hash, due zset, changes stream
-- ARGV: state-key prefix, recording id, now ms, lease ms, claim token,
--       expected attempts (-1: any), force (1: ignore the due time), stream maxlen
-- Returns {outcome, attempts, previous state}; outcome is one of
-- claimed, missing, settled, busy, stale, early, expired. A record past its retry
-- deadline is settled 'failed' here ('expired'), so a fetch that keeps crashing
-- after its claim cannot keep the record alive forever.
local record, due, changes = KEYS[1], KEYS[2], KEYS[3]
local prefix, rid = ARGV[1], ARGV[2]
local now, lease, token = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local expected, force, maxlen = tonumber(ARGV[6]), ARGV[7] == '1', ARGV[8]

local fields = redis.call('HMGET', record,
  'state', 'attempts', 'claim_until', 'next_attempt_at', 'conversation_id',
  'deadline_at', 'last_error')
local state = fields[1]
if not state then
  return {'missing', 0, ''}
end
local attempts = tonumber(fields[2]) or 0
if state == 'ready' or state == 'failed' then
  return {'settled', attempts, state}
end
if state == 'fetching' and (tonumber(fields[3]) or 0) > now then
  return {'busy', attempts, state}
end
local deadline = tonumber(fields[6]) or 0
if deadline > 0 and now > deadline then
  local reason = 'retry deadline passed after ' .. attempts .. ' attempts'
  if fields[7] then
    reason = reason .. '; last: ' .. fields[7]
  end
  redis.call('HSET', record, 'state', 'failed', 'updated_at', now,
    'last_error', reason)
  redis.call('HDEL', record, 'claim_token', 'claim_until', 'next_attempt_at')
  redis.call('ZREM', due, rid)
  redis.call('ZREM', prefix .. state, rid)
  redis.call('ZADD', prefix .. 'failed', now, rid)
  redis.call('XADD', changes, 'MAXLEN', '~', maxlen, '*',
    'recording_id', rid, 'conversation_id', fields[5] or '', 'state', 'failed',
    'previous', state, 'attempts', attempts, 'next_attempt_at', '', 'at', now)
  return {'expired', attempts, state}
end
if expected >= 0 and attempts ~= expected then
  return {'stale', attempts, state}
end
if not force and state ~= 'fetching' and (tonumber(fields[4]) or 0) > now then
  return {'early', attempts, state}
end

attempts = attempts + 1
local until_ms = now + lease
redis.call('HSET', record, 'state', 'fetching', 'attempts', attempts,
  'claim_token', token, 'claim_until', until_ms, 'updated_at', now)
redis.call('ZREM', prefix .. state, rid)
redis.call('ZADD', prefix .. 'fetching', now, rid)
redis.call('ZADD', due, until_ms, rid)
redis.call('XADD', changes, 'MAXLEN', '~', maxlen, '*',
  'recording_id', rid, 'conversation_id', fields[5] or '', 'state', 'fetching',
  'previous', state, 'attempts', attempts, 'next_attempt_at', '', 'at', now)
return {'claimed', attempts, state}
