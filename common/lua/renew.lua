-- renew: extend a running attempt's lease, record its progress, and report whether a
-- cancel was requested. Fenced by the lease token.
-- KEYS: 1 job hash, 2 leases zset
-- ARGV: 1 id, 2 token, 3 lease ms, 4 progress (-1: unchanged), 5 event channel
-- Returns {'ok', cancel_requested (0|1)} | {'lost'}
local now = now_ms()
local h = redis.call('HMGET', KEYS[1], 'state', 'token', 'lease_until', 'cancel_requested',
  'progress')
if h[1] ~= 'running' or h[2] ~= ARGV[2] or tonumber(h[3] or 0) < now then
  return {'lost'}
end
local lease = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'lease_until', lease)
redis.call('ZADD', KEYS[2], lease, ARGV[1])
local p = tonumber(ARGV[4])
if p >= 0 and p ~= tonumber(h[5] or -1) then
  redis.call('HSET', KEYS[1], 'progress', p, 'updated_at', now)
  redis.call('HINCRBY', KEYS[1], 'version', 1)
  redis.call('PUBLISH', ARGV[5], 'progress')
end
return {'ok', h[4] or '0'}
