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

-- Events: the state changes and progress steps of one script call go into ONE entry of
-- the events stream (keys.h), one (job id, "state progress queue type") pair per job,
-- read by the API's event routes. The stream keeps about the last EVENTS_KEEP entries.
local EVENTS_KEEP = '100000'
local function event(evs, id, state, progress, queue, jtype)
  evs[#evs + 1] = id
  evs[#evs + 1] = state .. ' ' .. (progress or '0') .. ' ' .. (queue or '-') .. ' ' ..
    (jtype or '-')
end
local function emit(stream, evs)
  if #evs > 0 then
    redis.call('XADD', stream, 'MAXLEN', '~', EVENTS_KEEP, '*', unpack(evs))
  end
end

-- Webhooks: a job with a callback_url that ends (succeeded, failed, cancelled) makes,
-- in the same step, a delivery job on the webhooks queue. Its id comes from the job's
-- id and the version the end gives the record (a job run again and ended again makes
-- another); hex digits are id characters, and the job id's first ten keep it valid.
-- wk: the webhooks queue's ready list, stats hash, the jobs index and the queues set.
local function webhook(jobpfx, wk, evs, id, version, outcome, url, attempts, now_s)
  local did = string.sub(id, 1, 10) .. string.sub(redis.sha1hex(id .. ':' .. version), 1, 26)
  local key = jobpfx .. did
  if redis.call('EXISTS', key) == 1 then return end
  redis.call('HSET', key, 'type', 'webhook.deliver', 'queue', 'webhooks', 'state', 'queued',
    'version', 1, 'created_at', now_s, 'max_attempts', attempts or '12',
    'params', cjson.encode({job_id = id, event = 'job.' .. outcome, url = url}))
  redis.call('LPUSH', wk[1], did)
  redis.call('HINCRBY', wk[2], 'enqueued', 1)
  redis.call('ZADD', wk[3], now_s, did)
  redis.call('SADD', wk[4], 'webhooks')
  event(evs, did, 'queued', '0', 'webhooks', 'webhook.deliver')
end

-- Attempt log: an attempt that ends other than in success (retried, failed, cancelled,
-- given back by a lease that ran out) is appended to the record's attempt_log, a JSON
-- array of {attempt, started_at, ended_at (ms), outcome, error {code, message}}: the
-- last LOG_KEEP of them. A success adds nothing (the record itself says how it went).
local LOG_KEEP = 10
local function log_attempt(set, log, attempt, started, now, outcome, code, message)
  local l = (log and log ~= '' and cjson.decode(log)) or {}
  if #l >= LOG_KEEP then table.remove(l, 1) end
  local e = {attempt = tonumber(attempt or 0), started_at = tonumber(started or 0),
    ended_at = now, outcome = outcome}
  if code and code ~= '' then e.error = {code = code, message = message or ''} end
  l[#l + 1] = e
  set[#set + 1] = 'attempt_log'
  set[#set + 1] = cjson.encode(l)
end
