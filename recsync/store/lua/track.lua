-- Create a record in state 'pending' unless it exists already. Its next attempt is
-- due-at: the reconciler sends it then unless a fetch settles it first. The
-- caller's own immediate fetch claims with force, so it is not rejected as early.
-- KEYS: record hash, due zset, changes stream, the conversation's recording set
-- ARGV: state-key prefix, recording id, conversation id, user id, now ms,
--       deadline ms, source, due-at ms, stream maxlen
-- Returns {created (0|1), state}.
local record, due, changes, conversation = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, rid, cid, uid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, deadline, source, due_at, maxlen = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]

local state = redis.call('HGET', record, 'state')
if state then
  if uid ~= '' and not redis.call('HGET', record, 'user_id') then
    redis.call('HSET', record, 'user_id', uid)
  end
  return {0, state}
end

redis.call('HSET', record,
  'recording_id', rid, 'conversation_id', cid, 'state', 'pending',
  'attempts', 0, 'created_at', now, 'updated_at', now,
  'deadline_at', deadline, 'next_attempt_at', due_at, 'source', source)
if uid ~= '' then
  redis.call('HSET', record, 'user_id', uid)
end
redis.call('ZADD', prefix .. 'pending', now, rid)
redis.call('SADD', conversation, rid)
redis.call('ZADD', due, due_at, rid)
redis.call('XADD', changes, 'MAXLEN', '~', maxlen, '*',
  'recording_id', rid, 'conversation_id', cid, 'state', 'pending',
  'previous', '', 'attempts', 0, 'next_attempt_at', due_at, 'at', now)
return {1, 'pending'}
