-- start: take a claimed job off this worker's claim list, count the attempt and start
-- its lease, if the job is still wanted. Returns the record.
-- KEYS: 1 job hash, 2 claim list, 3 leases zset
-- ARGV: 1 id, 2 worker id, 3 lease token, 4 lease ms, 5 event channel
-- Returns {'ok', record...} | {'lost'} (not on our claim list any more)
--       | {'gone'} (no such job) | {'skip', state} (cancelled or already done)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('LREM', KEYS[2], -1, ARGV[1]) == 0 then return {'lost'} end
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'gone'} end
if st ~= 'queued' then return {'skip', st} end
local lease = now + tonumber(ARGV[4])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[2], 'token', ARGV[3],
  'lease_until', lease, 'started_at', now, 'updated_at', now)
redis.call('HDEL', KEYS[1], 'next_attempt_at')
redis.call('ZADD', KEYS[3], lease, ARGV[1])
redis.call('PUBLISH', ARGV[5], 'running')
return {'ok', redis.call('HGETALL', KEYS[1])}
