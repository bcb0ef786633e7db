-- renew: extend a running attempt's lease, record its progress, and report whether a
-- cancel was requested. Fenced by the lease token. The renewal is also the job's sign of
-- life: with a heartbeat TTL (worker_ttl, set at the start) the leases zset holds when
-- it will have gone that long without one (see expire.lua).
-- KEYS: 1 job hash, 2 leases zset, 3 events stream
-- ARGV: 1 id, 2 token, 3 lease ms, 4 progress (-1: unchanged), 5 event channel
-- A new progress is an event (a running one with the new progress).
-- Returns {'ok', cancel_requested (0|1)} | {'lost'}
local now_s, now = clock()
local h = redis.call('HMGET', KEYS[1], 'state', 'token', 'lease_until', 'cancel_requested',
  'progress', 'worker_ttl', 'queue', 'type')
if h[1] ~= 'running' or h[2] ~= ARGV[2] or tonumber(h[3] or 0) < now then
  return {'lost'}
end
local lease_ms = tonumber(ARGV[3])
local lease = string.format('%d', now + lease_ms)
local ttl = tonumber(h[6] or 0)
local look = lease
if ttl > 0 and ttl < lease_ms then look = string.format('%d', now + ttl) end
redis.call('HSET', KEYS[1], 'lease_until', lease, 'renewed_at', now_s)
redis.call('ZADD', KEYS[2], look, ARGV[1])
local p = tonumber(ARGV[4])
if p >= 0 and p ~= tonumber(h[5] or -1) then
  redis.call('HSET', KEYS[1], 'progress', p, 'updated_at', now_s)
  redis.call('HINCRBY', KEYS[1], 'version', 1)
  redis.call('PUBLISH', ARGV[5], 'progress')
  local evs = {}
  event(evs, ARGV[1], 'running', ARGV[4], h[7], h[8])
  emit(KEYS[3], evs)
end
return {'ok', h[4] or '0'}
