-- expire: a running job that nobody keeps alive goes back to its queue; the attempt it
-- used counts. Out of attempts it fails onto the dead-letter set; with a cancel request
-- it ends cancelled. That is the case when
--   * its lease ran out (lease_until), or, before that,
--   * its worker went silent: the job has had no renewal for its worker's heartbeat TTL
--     (worker_ttl), the worker's heartbeat has run out too (or it was reaped), and
--     other heartbeats were heard without a gap all the while (the watch, see
--     worker_beat.lua), so the silence is the worker's and not Redis's; or
--   * its worker was replaced: the job has had no renewal for the TTL and its worker id
--     beats from a new process run, registered after the job started (runs zset).
-- A job that is still renewed never moves, whatever its worker's heartbeat says. When
-- the job stays, its place in the leases zset says when to look again.
-- KEYS: 1 job hash, 2 leases zset, 3 ready list, 4 dead zset, 5 queue stats,
--       6 workers zset, 7 watch hash, 8 runs zset, 9 events stream, 10-13 the webhooks
--       keys (lib.lua's webhook())
-- ARGV: 1 id, 2 retention ms, 3 event channel, 4 job hash prefix
-- Returns the job's new state, or 'no' when it stays.
local now_s, now = clock()
local id = ARGV[1]
local s = redis.call('ZSCORE', KEYS[2], id)
if not s or tonumber(s) > now then return 'no' end
local h = redis.call('HMGET', KEYS[1], 'state', 'lease_until', 'attempts', 'max_attempts',
  'cancel_requested', 'worker', 'renewed_at', 'worker_ttl', 'started_at', 'progress', 'queue',
  'type', 'callback_url', 'callback_attempts', 'attempt_log')
if h[1] ~= 'running' then
  redis.call('ZREM', KEYS[2], id)
  return 'no'
end
local lease = tonumber(h[2] or 0)
local message = 'the worker stopped renewing its lease (it crashed, was killed or lost Redis)'
if lease > now then
  -- The start writes no renewed_at: the last sign of life is the later of the last
  -- renewal and the start (a renewal of an earlier attempt is older than the start).
  local ttl = tonumber(h[8] or 0)
  local renewed = math.max(tonumber(h[7] or 0), tonumber(h[9] or 0))
  local again = lease
  local silent = false
  if ttl > 0 then
    local quiet = renewed + ttl
    local beat = tonumber(redis.call('ZSCORE', KEYS[6], h[6] or '') or 0)
    local since = tonumber(redis.call('HGET', KEYS[7], 'since') or now + 1)
    -- The worker id beats from a run that began after the job started: the job's run
    -- has ended for sure, whatever the heartbeats or Redis did meanwhile.
    local replaced = tonumber(redis.call('ZSCORE', KEYS[8], h[6] or '') or 0) >
      tonumber(h[9] or 0)
    if quiet > now then
      again = math.min(lease, quiet)
    elseif not replaced and since > renewed then
      again = lease
    elseif not replaced and beat > now then
      again = math.min(lease, beat)
    else
      silent = true
      message = string.format('the worker went silent (no heartbeat and no lease renewal ' ..
        'for %g s: it crashed, was killed, froze or lost Redis)', ttl / 1000)
    end
  end
  if not silent then
    redis.call('ZADD', KEYS[2], string.format('%d', again), id)
    return 'no'
  end
end
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[1], 'lease_until', 'token')
redis.call('HINCRBY', KEYS[5], 'expired', 1)
-- Every field the change sets goes in one HSET.
local set = {'updated_at', now_s}
local outcome
if h[5] == '1' then
  outcome = 'cancelled'
else
  set[#set + 1], set[#set + 2] = 'error_code', 'lease_expired'
  set[#set + 1], set[#set + 2] = 'error_message', message
  set[#set + 1], set[#set + 2] = 'error_retryable', 1
  if tonumber(h[3] or 0) >= tonumber(h[4] or 1) then
    outcome = 'failed'
    redis.call('ZADD', KEYS[4], now, id)
  else
    outcome = 'queued'
    redis.call('RPUSH', KEYS[3], id)
  end
end
set[#set + 1], set[#set + 2] = 'state', outcome
if outcome ~= 'queued' then
  set[#set + 1], set[#set + 2] = 'finished_at', now_s
end
log_attempt(set, h[15], h[3], h[9], now, outcome, h[5] ~= '1' and 'lease_expired' or nil,
  message)
redis.call('HSET', KEYS[1], unpack(set))
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
local evs = {}
event(evs, id, outcome, h[10], h[11], h[12])
if outcome ~= 'queued' then
  redis.call('HINCRBY', KEYS[5], outcome, 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if h[13] then
    webhook(ARGV[4], {KEYS[10], KEYS[11], KEYS[12], KEYS[13]}, evs, id, version, outcome, h[13],
      h[14], now_s)
  end
end
emit(KEYS[9], evs)
redis.call('PUBLISH', ARGV[3], outcome)
return outcome
