-- cancel: a queued or retrying job is cancelled at once and never starts; a running
-- job gets a cancel request that its worker sees on its next lease renewal.
-- KEYS: 1 job hash, 2 ready list, 3 delayed zset, 4 queue stats
-- ARGV: 1 id, 2 retention ms, 3 event channel
-- Returns {'cancelled'} | {'requested'} | {'ended', state} | {'notfound'}
local now = now_ms()
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'notfound'} end
if st == 'queued' or st == 'retrying' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'cancel_requested', 1,
    'finished_at', now, 'updated_at', now)
  redis.call('HDEL', KEYS[1], 'next_attempt_at')
  redis.call('HINCRBY', KEYS[1], 'version', 1)
  redis.call('HINCRBY', KEYS[4], 'cancelled', 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PUBLISH', ARGV[3], 'cancelled')
  return {'cancelled'}
end
if st == 'running' then
  if redis.call('HGET', KEYS[1], 'cancel_requested') ~= '1' then
    redis.call('HSET', KEYS[1], 'cancel_requested', 1, 'updated_at', now)
    redis.call('HINCRBY', KEYS[1], 'version', 1)
    redis.call('PUBLISH', ARGV[3], 'cancel_requested')
  end
  return {'requested'}
end
return {'ended', st}
