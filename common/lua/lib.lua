-- lib: helpers every queue script starts with (scripts/embed-lua.sh prepends this file
-- to each script, so they share one definition). Redis's clock is the only clock.

-- Milliseconds since the epoch, from the Redis server's clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Take a claimed id off a worker's claim list, count the attempt and start its lease,
-- if the job is still wanted.
-- Returns {'ok', record} | {'lost'} (not on the claim list any more) | {'gone'} (no such
-- job) | {'skip', state} (cancelled or already done). The record is the hash as read,
-- followed by the fields this step changed (later fields override earlier ones).
local function start_job(job, claim, leases, id, worker, token, lease_ms, channel, now)
  if redis.call('LREM', claim, -1, id) == 0 then return {'lost'} end
  local rec = redis.call('HGETALL', job)
  if #rec == 0 then return {'gone'} end
  local st, attempts, version, delayed
  for i = 1, #rec, 2 do
    local k = rec[i]
    if k == 'state' then st = rec[i + 1]
    elseif k == 'attempts' then attempts = rec[i + 1]
    elseif k == 'version' then version = rec[i + 1]
    elseif k == 'next_attempt_at' then delayed = true
    end
  end
  if st ~= 'queued' then return {'skip', st or ''} end
  local lease = now + tonumber(lease_ms)
  local changed = {'state', 'running', 'attempts', tonumber(attempts or 0) + 1,
    'version', tonumber(version or 0) + 1, 'worker', worker, 'token', token,
    'lease_until', lease, 'started_at', now, 'updated_at', now}
  redis.call('HSET', job, unpack(changed))
  if delayed then
    redis.call('HDEL', job, 'next_attempt_at')
    changed[#changed + 1] = 'next_attempt_at'
    changed[#changed + 1] = '0'
  end
  redis.call('ZADD', leases, lease, id)
  redis.call('PUBLISH', channel, 'running')
  for i = 1, #changed do rec[#rec + 1] = changed[i] end
  return {'ok', rec}
end
