-- finish: end an attempt, fenced by its lease token; in the same step, optionally start
-- a job this worker claimed earlier (prefetch) and claim the next one.
-- KEYS: 1 job hash, 2 leases zset, 3 ready list, 4 delayed zset, 5 dead zset,
--       6 queue stats, then, when ARGV[12] is not '': 7 the claimed job's hash,
--       8 its claim list, 9 its leases zset; then pairs of (ready list, claim list) to
--       claim the next job from
-- ARGV: 1 id, 2 token, 3 mode, 4 retention ms, 5 outputs JSON, 6 metadata JSON ('' keeps),
--       7 error code, 8 error message, 9 retryable (1|0), 10 retry delay ms,
--       11 event channel, 12 claimed id to start ('' for none), 13 worker id,
--       14 its lease token, 15 lease ms, 16 its event channel
-- mode: succeeded | retry (retryable failure) | failed (permanent) | cancelled
--       | release (give the job back at once without counting the attempt)
-- Returns {outcome, next pair index or 0, next id or '', start result or false};
-- outcome is the job's new state (succeeded, retrying, failed, cancelled, queued) or
-- 'lost' when the lease is no longer ours (expired, or another attempt owns the job):
-- nothing is changed then. The start result is start_job's (lib.lua); the caller reads
-- the started job's record with a pipelined HGETALL.
local now_s, now = clock()
local id, mode = ARGV[1], ARGV[3]
local h = redis.call('HMGET', KEYS[1], 'state', 'token', 'lease_until', 'version',
  'error_code')
local outcome
if h[1] ~= 'running' or h[2] ~= ARGV[2] or tonumber(h[3] or 0) < now then
  outcome = 'lost'
else
  -- One HSET for every change. The lease fields stay: once the state is no longer
  -- 'running' no script honours them. updated_at is implied by finished_at.
  local set = {'version', tonumber(h[4] or 0) + 1}
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
    set[#set + 1] = '100'
    if h[5] then
      redis.call('HDEL', KEYS[1], 'error_code', 'error_message', 'error_retryable')
    end
  elseif mode == 'release' then
    outcome = 'queued'
    terminal = false
    redis.call('HINCRBY', KEYS[1], 'attempts', -1)
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
    local a = redis.call('HMGET', KEYS[1], 'attempts', 'max_attempts')
    if mode == 'retry' and tonumber(a[1] or 0) < tonumber(a[2] or 1) then
      outcome = 'retrying'
      terminal = false
      local due = string.format('%d', now + tonumber(ARGV[10]))
      set[#set + 1] = 'next_attempt_at'
      set[#set + 1] = due
      redis.call('ZADD', KEYS[4], due, id)
      redis.call('HINCRBY', KEYS[6], 'retried', 1)
    else
      outcome = 'failed'
      redis.call('ZADD', KEYS[5], now_s, id)
    end
  end
  set[#set + 1] = 'state'
  set[#set + 1] = outcome
  if terminal then
    set[#set + 1] = 'finished_at'
    set[#set + 1] = now_s
    redis.call('HINCRBY', KEYS[6], outcome, 1)
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  else
    set[#set + 1] = 'updated_at'
    set[#set + 1] = now_s
  end
  redis.call('ZREM', KEYS[2], id)
  redis.call('HSET', KEYS[1], unpack(set))
  redis.call('PUBLISH', ARGV[11], outcome)
end
local started = false
local first = 7
if ARGV[12] ~= '' then
  started = start_job(KEYS[7], KEYS[8], KEYS[9], ARGV[12], ARGV[13], ARGV[14], ARGV[15],
    ARGV[16], now_s, now)
  first = 10
end
for i = first, #KEYS, 2 do
  local nid = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'RIGHT', 'LEFT')
  if nid then return {outcome, (i - first) / 2 + 1, nid, started} end
end
return {outcome, 0, '', started}
