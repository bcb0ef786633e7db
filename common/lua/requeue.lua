-- requeue: run a failed job again from the dead-letter set, with a fresh set of
-- attempts.
-- KEYS: 1 job hash, 2 dead zset, 3 ready list, 4 queue stats, 5 events stream
-- ARGV: 1 id, 2 event channel
-- Returns {'queued'} | {'notfound'} | {'state', state} (not failed)
local now = now_ms()
local h = redis.call('HMGET', KEYS[1], 'state', 'queue', 'type')
local st = h[1]
if not st then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'notfound'}
end
if st ~= 'failed' then return {'state', st} end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', 0, 'progress', 0,
  'updated_at', now)
redis.call('HDEL', KEYS[1], 'finished_at', 'error_code', 'error_message', 'error_retryable',
  'next_attempt_at', 'cancel_requested')
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('LPUSH', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'requeued', 1)
redis.call('PUBLISH', ARGV[2], 'queued')
local evs = {}
event(evs, ARGV[1], 'queued', '0', h[2], h[3])
emit(KEYS[5], evs)
return {'queued'}
