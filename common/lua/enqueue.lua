-- enqueue: record a new job and put its id on its queue, in one step.
-- KEYS: 1 job hash, 2 ready list, 3 jobs index, 4 queue stats, 5 queue set,
--       6 events stream, 7 delayed zset, 8 idempotency key (optional)
-- ARGV: 1 id, 2 queue, 3 length limit (0: none), 4 priority (high|normal),
--       5 idempotency ttl ms, 6 request fingerprint, 7 created_at (ms, the producer's
--       clock, as for plain enqueues), 8 due: '' (now), '+N' (N ms from now by Redis's
--       clock) or 'N' (ms since the epoch), 9 '1' when the id must be new (a job hash
--       already under it: 'exists', nothing changes) else '', 10.. field, value pairs,
--       the first 'type', type
-- A job due later is 'scheduled' (run_at set) on the delayed zset until promote.lua
-- queues it, as it does due retries.
-- Returns {'ok', id} | {'exists', id} | {'conflict', id} | {'full', length}
local now = ARGV[7]
if ARGV[9] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', ARGV[1]} end
if KEYS[8] then
  local v = redis.call('GET', KEYS[8])
  if v then
    local sp = string.find(v, ' ', 1, true)
    local jid, fp = string.sub(v, 1, sp - 1), string.sub(v, sp + 1)
    if fp == ARGV[6] then return {'exists', jid} end
    return {'conflict', jid}
  end
end
local limit = tonumber(ARGV[3])
if limit > 0 then
  local n = redis.call('LLEN', KEYS[2])
  if n >= limit then return {'full', tostring(n)} end
end
local due, state = nil, 'queued'
if ARGV[8] ~= '' then
  local _, t = clock()
  if string.sub(ARGV[8], 1, 1) == '+' then
    due = t + tonumber(string.sub(ARGV[8], 2))
  else
    due = tonumber(ARGV[8])
  end
  if due <= t then due = nil else state = 'scheduled' end
end
-- Fields left out (attempts, progress...) read as zero; the id is the key's.
redis.call('HSET', KEYS[1], 'queue', ARGV[2], 'state', state, 'version', 1,
  'created_at', now, unpack(ARGV, 10))
if due then
  local d = string.format('%d', due)
  redis.call('HSET', KEYS[1], 'run_at', d)
  redis.call('ZADD', KEYS[7], d, ARGV[1])
elseif ARGV[4] == 'high' then
  redis.call('RPUSH', KEYS[2], ARGV[1])
else
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('HINCRBY', KEYS[4], 'enqueued', 1)
redis.call('SADD', KEYS[5], ARGV[2])
local evs = {}
event(evs, ARGV[1], state, '0', ARGV[2], ARGV[11])
emit(KEYS[6], evs)
if KEYS[8] then
  redis.call('SET', KEYS[8], ARGV[1] .. ' ' .. ARGV[6], 'PX', ARGV[5])
end
return {'ok', ARGV[1]}
