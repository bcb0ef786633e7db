-- expire: a running job whose lease ran out (its worker died or stalled) goes back to
-- its queue; the attempt it used counts. Out of attempts it fails onto the dead-letter
-- set; with a cancel request it ends cancelled.
-- KEYS: 1 job hash, 2 leases zset, 3 ready list, 4 dead zset, 5 queue stats
-- ARGV: 1 id, 2 retention ms, 3 event channel
-- Returns the job's new state, or 'no' when the lease had not expired.
local now = now_ms()
local id = ARGV[1]
local s = redis.call('ZSCORE', KEYS[2], id)
if not s or tonumber(s) > now then return 'no' end
local h = redis.call('HMGET', KEYS[1], 'state', 'lease_until', 'attempts', 'max_attempts',
  'cancel_requested')
if h[1] ~= 'running' then
  redis.call('ZREM', KEYS[2], id)
  return 'no'
end
if tonumber(h[2] or 0) > now then
  redis.call('ZADD', KEYS[2], h[2], id)
  return 'no'
end
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[1], 'lease_until', 'token')
redis.call('HINCRBY', KEYS[5], 'expired', 1)
local outcome
if h[5] == '1' then
  outcome = 'cancelled'
else
  redis.call('HSET', KEYS[1], 'error_code', 'lease_expired', 'error_message',
    'the worker stopped renewing its lease (it crashed, was killed or lost Redis)',
    'error_retryable', 1)
  if tonumber(h[3] or 0) >= tonumber(h[4] or 1) then
    outcome = 'failed'
    redis.call('ZADD', KEYS[4], now, id)
  else
    outcome = 'queued'
    redis.call('RPUSH', KEYS[3], id)
  end
end
redis.call('HSET', KEYS[1], 'state', outcome, 'updated_at', now)
redis.call('HINCRBY', KEYS[1], 'version', 1)
if outcome ~= 'queued' then
  redis.call('HSET', KEYS[1], 'finished_at', now)
  redis.call('HINCRBY', KEYS[5], outcome, 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
redis.call('PUBLISH', ARGV[3], outcome)
return outcome
