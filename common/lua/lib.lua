-- lib: helpers every queue script starts with (scripts/embed-lua.sh prepends this file
-- to each script, so they share one definition). Redis's clock is the only clock.

-- Now in milliseconds since the epoch, from the Redis server's clock: as a string (to
-- store; converting Lua numbers to strings is costly in Redis) and as a number.
local function clock()
  local t = redis.call('TIME')
  local us = t[2]
  local ms = #us > 3 and string.sub(us, 1, #us - 3) or '0'
  ms = string.rep('0', 3 - #ms) .. ms
  return t[1] .. ms, tonumber(t[1]) * 1000 + tonumber(ms)
end

local function now_ms()
  local _, n = clock()
  return n
end

-- Take a claimed id off a worker's claim list, count the attempt and start its lease,
-- if the job is still wanted. The caller reads the record afterwards (a plain HGETALL
-- pipelined after the script costs Redis less than returning it from Lua).
-- Returns {'ok'} | {'lost'} (not on the claim list any more) | {'gone'} (no such job)
-- | {'skip', state} (cancelled or already done).
local function start_job(job, claim, leases, id, worker, token, lease_ms, channel, now_s,
                         now_n)
  if redis.call('LREM', claim, -1, id) == 0 then return {'lost'} end
  local h = redis.call('HMGET', job, 'state', 'attempts', 'version', 'next_attempt_at')
  if not h[1] then return {'gone'} end
  if h[1] ~= 'queued' then return {'skip', h[1]} end
  local lease = string.format('%d', now_n + tonumber(lease_ms))
  redis.call('HSET', job, 'state', 'running', 'attempts', tonumber(h[2] or 0) + 1,
    'version', tonumber(h[3] or 0) + 1, 'worker', worker, 'token', token,
    'lease_until', lease, 'started_at', now_s)
  if h[4] then redis.call('HDEL', job, 'next_attempt_at') end
  redis.call('ZADD', leases, lease, id)
  redis.call('PUBLISH', channel, 'running')
  return {'ok'}
end
