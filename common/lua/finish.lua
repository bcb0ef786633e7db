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
  'max_attempts', 'version')
local outcome
if h[1] ~= 'running' or h[2] ~= ARGV[2] or tonumber(h[3] or 0) < now then
  outcome = 'lost'
else
  local set = {'updated_at', now, 'version', tonumber(h[6] or 0) + 1}
  local del = {'lease_until', 'token'}
  if ARGV[6] ~= '' then
    set[#set + 1] = 'metadata'
    set[#set + 1] = ARGV[6]
  end
  local terminal = true
  if mode == 'succeeded' then
    outcome = 'succeeded'
    set[#set + 1] = 'outputs'
    set[#set + 1] = ARGV[5]
    set[#set + 1] = 'progress'
    set[#set + 1] = 100
    del[#del + 1] = 'error_code'
    del[#del + 1] = 'error_message'
    del[#del + 1] = 'error_retryable'
  elseif mode == 'release' then
    outcome = 'queued'
    terminal = false
    set[#set + 1] = 'attempts'
    set[#set + 1] = tonumber(h[4] or 1) - 1
    redis.call('RPUSH', KEYS[3], id)
  elseif mode == 'cancelled' then
    outcome = 'cancelled'
  else
    set[#set + 1] = 'error_code'
    set[#set + 1] = ARGV[7]
    set[#set + 1] = 'error_message'
    set[#set + 1] = ARGV[8]
    set[#set + 1] = 'error_retryable'
    set[#set + 1] = ARGV[9]
    if mode == 'retry' and tonumber(h[4] or 0) < tonumber(h[5] or 1) then
      outcome = 'retrying'
      terminal = false
      local due = now + tonumber(ARGV[10])
      set[#set + 1] = 'next_attempt_at'
      set[#set + 1] = due
      redis.call('ZADD', KEYS[4], due, id)
      redis.call('HINCRBY', KEYS[6], 'retried', 1)
    else
      outcome = 'failed'
      redis.call('ZADD', KEYS[5], now, id)
    end
  end
  set[#set + 1] = 'state'
  set[#set + 1] = outcome
  if terminal then
    set[#set + 1] = 'finished_at'
    set[#set + 1] = now
    redis.call('HINCRBY', KEYS[6], outcome, 1)
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  end
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[1], unpack(del))
  redis.call('HSET', KEYS[1], unpack(set))
  redis.call('PUBLISH', ARGV[11], outcome)
end
for i = 7, #KEYS, 2 do
  local nid = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'RIGHT', 'LEFT')
  if nid then return {outcome, (i - 5) / 2, nid} end
end
return {outcome, 0, ''}
