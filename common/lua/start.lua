-- start: take a claimed job off this worker's claim list, count the attempt and start
-- its lease, if the job is still wanted. Returns the record.
-- KEYS: 1 job hash, 2 claim list, 3 leases zset
-- ARGV: 1 id, 2 worker id, 3 lease token, 4 lease ms, 5 event channel
-- Returns {'ok', record...} | {'lost'} (not on our claim list any more)
--       | {'gone'} (no such job) | {'skip', state} (cancelled or already done)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('LREM', KEYS[2], -1, ARGV[1]) == 0 then return {'lost'} end
local rec = redis.call('HGETALL', KEYS[1])
if #rec == 0 then return {'gone'} end
local f = {}
for i = 1, #rec, 2 do f[rec[i]] = i + 1 end
local st = rec[f['state']]
if st ~= 'queued' then return {'skip', st} end
local lease = now + tonumber(ARGV[4])
local attempts = tonumber(rec[f['attempts']] or 0) + 1
local version = tonumber(rec[f['version']] or 0) + 1
redis.call('HSET', KEYS[1], 'state', 'running', 'attempts', attempts, 'version', version,
  'worker', ARGV[2], 'token', ARGV[3], 'lease_until', lease, 'started_at', now,
  'updated_at', now)
if f['next_attempt_at'] then redis.call('HDEL', KEYS[1], 'next_attempt_at') end
redis.call('ZADD', KEYS[3], lease, ARGV[1])
redis.call('PUBLISH', ARGV[5], 'running')
-- The record as it is now: the fields just written override the ones read.
local now_fields = {state = 'running', attempts = attempts, version = version,
  worker = ARGV[2], token = ARGV[3], lease_until = lease, started_at = now, updated_at = now}
local out = {}
for i = 1, #rec, 2 do
  local k = rec[i]
  if now_fields[k] == nil and k ~= 'next_attempt_at' then
    out[#out + 1] = k
    out[#out + 1] = rec[i + 1]
  end
end
for k, v in pairs(now_fields) do
  out[#out + 1] = k
  out[#out + 1] = tostring(v)
end
return {'ok', out}
