-- Move an org's paused-until time later, never earlier.
-- KEYS: paused-until key.  ARGV: until ms, ttl ms.  Returns the time in force.
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('SET', KEYS[1], wanted, 'PX', ARGV[2])
  return wanted
end
return current
