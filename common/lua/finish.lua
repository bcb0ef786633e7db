-- finish: end an attempt, fenced by its lease token, and optionally take the next job
-- into the claim list in the same step.
-- KEYS: 1 job hash, 2 leases zset, 3 ready list, 4 delayed zset, 5 dead zset,
--       6 queue stats, 7.. pairs of (ready list, claim list) to take the next job from
-- ARGV: 1 id, 2 token, 3 mode, 4 retention ms, 5 outputs JSON, 6 metadata JSON ('' keeps),
--       7 error code, 8 error message, 9 retryable (1|0), 10 retry delay ms,
--       11 event channel
-- mode: succeeded | retry (retryable failure) | failed (permanent) | cancelled
--       | release (give the job back at once without counting the attempt)
-- Returns {outcome, next pair index or 0, next id or ''}; outcome is the job's new
-- state (succeeded, retrying, failed, cancelled, queued) or 'lost' when the lease is
-- no longer ours (expired, or another attempt owns the job): nothing is changed then.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, mode = ARGV[1], ARGV[3]
local h = redis.call('HMGET', KEYS[1], 'state', 'token', 'lease_until', 'attempts',
  'max_attempts')
local outcome
if h[1] ~= 'running' or h[2] ~= ARGV[2] or tonumber(h[3] or 0) < now then
  outcome = 'lost'
else
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[1], 'lease_until', 'token')
  if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'metadata', ARGV[6]) end
  local terminal = true
  if mode == 'succeeded' then
    outcome = 'succeeded'
    redis.call('HSET', KEYS[1], 'outputs', ARGV[5], 'progress', 100)
    redis.call('HDEL', KEYS[1], 'error_code', 'error_message', 'error_retryable')
  elseif mode == 'release' then
    outcome = 'queued'
    terminal = false
    redis.call('HINCRBY', KEYS[1], 'attempts', -1)
    redis.call('RPUSH', KEYS[3], id)
  elseif mode == 'cancelled' then
    outcome = 'cancelled'
  else
    redis.call('HSET', KEYS[1], 'error_code', ARGV[7], 'error_message', ARGV[8],
      'error_retryable', ARGV[9])
    if mode == 'retry' and tonumber(h[4] or 0) < tonumber(h[5] or 1) then
      outcome = 'retrying'
      terminal = false
      local due = now + tonumber(ARGV[10])
      redis.call('HSET', KEYS[1], 'next_attempt_at', due)
      redis.call('ZADD', KEYS[4], due, id)
      redis.call('HINCRBY', KEYS[6], 'retried', 1)
    else
      outcome = 'failed'
      redis.call('ZADD', KEYS[5], now, id)
    end
  end
  redis.call('HSET', KEYS[1], 'state', outcome, 'updated_at', now)
  redis.call('HINCRBY', KEYS[1], 'version', 1)
  if terminal then
    redis.call('HSET', KEYS[1], 'finished_at', now)
    redis.call('HINCRBY', KEYS[6], outcome, 1)
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  end
  redis.call('PUBLISH', ARGV[11], outcome)
end
for i = 7, #KEYS, 2 do
  local nid = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'RIGHT', 'LEFT')
  if nid then return {outcome, (i - 5) / 2, nid} end
end
return {outcome, 0, ''}
