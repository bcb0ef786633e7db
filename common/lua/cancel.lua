-- cancel: a queued, scheduled or retrying job is cancelled at once and never starts; a running
-- job gets a cancel request that its worker sees on its next lease renewal.
-- KEYS: 1 job hash, 2 ready list, 3 delayed zset, 4 queue stats, 5 events stream,
--       6-9 the webhooks keys (lib.lua's webhook())
-- ARGV: 1 id, 2 retention ms, 3 event channel, 4 job hash prefix
-- Returns {'cancelled'} | {'requested'} | {'ended', state} | {'notfound'}
local now_s, now = clock()
local h = redis.call('HMGET', KEYS[1], 'state', 'version', 'progress', 'queue', 'type',
  'callback_url', 'callback_attempts')
local st = h[1]
if not st then return {'notfound'} end
if st == 'queued' or st == 'retrying' or st == 'scheduled' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'cancel_requested', 1,
    'finished_at', now, 'updated_at', now)
  redis.call('HDEL', KEYS[1], 'next_attempt_at')
  local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
  redis.call('HINCRBY', KEYS[4], 'cancelled', 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PUBLISH', ARGV[3], 'cancelled')
  local evs = {}
  event(evs, ARGV[1], 'cancelled', h[3], h[4], h[5])
  if h[6] then
    webhook(ARGV[4], {KEYS[6], KEYS[7], KEYS[8], KEYS[9]}, evs, ARGV[1], version, 'cancelled',
      h[6], h[7], now_s)
  end
  emit(KEYS[5], evs)
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
