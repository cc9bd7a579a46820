-- Record the outcome of a fetch. 'ready' and 'failed' are terminal: nothing moves a
-- record out of them, except that a newer 'ready' with other metadata updates it.
-- KEYS: record hash, due zset, changes stream
-- ARGV: state-key prefix, recording id, now ms, claim token, new state,
--       next attempt ms ('' for none), last error, metadata json, fingerprint,
--       stream maxlen
-- Returns {outcome, previous state}; outcome is one of
-- ok, updated, unchanged, missing, settled, lost.
local record, due, changes = KEYS[1], KEYS[2], KEYS[3]
local prefix, rid, now, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local new_state, next_at, err = ARGV[5], ARGV[6], ARGV[7]
local metadata, fingerprint, maxlen = ARGV[8], ARGV[9], ARGV[10]

local fields = redis.call('HMGET', record,
  'state', 'claim_token', 'attempts', 'fingerprint', 'conversation_id')
local state = fields[1]
if not state then
  return {'missing', ''}
end
local cid = fields[5] or ''

local function emit(to_state)
  redis.call('XADD', changes, 'MAXLEN', '~', maxlen, '*',
    'recording_id', rid, 'conversation_id', cid, 'state', to_state,
    'previous', state, 'attempts', fields[3] or 0, 'next_attempt_at', next_at,
    'at', now)
end

if state == 'ready' then
  if new_state == 'ready' and fingerprint ~= fields[4] then
    redis.call('HSET', record, 'metadata', metadata, 'fingerprint', fingerprint,
      'updated_at', now)
    emit('ready')
    return {'updated', state}
  end
  return {'unchanged', state}
end
if state == 'failed' then
  return {'settled', state}
end
-- A ready result is accepted from any worker, because it cannot be wrong to be ready.
-- Any other outcome needs the current claim, so a worker whose lease ran out and was
-- overtaken cannot overwrite the newer attempt.
if new_state ~= 'ready' and (state ~= 'fetching' or fields[2] ~= token) then
  return {'lost', state}
end

redis.call('HSET', record, 'state', new_state, 'updated_at', now)
redis.call('HDEL', record, 'claim_token', 'claim_until')
if err ~= '' and new_state ~= 'ready' then
  redis.call('HSET', record, 'last_error', err)
end
if new_state == 'ready' then
  redis.call('HSET', record, 'ready_at', now, 'metadata', metadata,
    'fingerprint', fingerprint)
  redis.call('HDEL', record, 'next_attempt_at', 'last_error')
  redis.call('ZREM', due, rid)
elseif new_state == 'failed' then
  redis.call('HDEL', record, 'next_attempt_at')
  redis.call('ZREM', due, rid)
else
  redis.call('HSET', record, 'next_attempt_at', next_at)
  redis.call('ZADD', due, next_at, rid)
end
redis.call('ZREM', prefix .. state, rid)
redis.call('ZADD', prefix .. new_state, now, rid)
emit(new_state)
return {'ok', state}
