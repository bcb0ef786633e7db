-- promote: move a retrying job whose delay has passed, or a scheduled (delayed) job whose
-- run_at has come, onto its queue. Safe to run from many workers at once: only the one
-- whose ZREM succeeds moves it.
-- KEYS: 1 job hash, 2 delayed zset, 3 ready list, 4 events stream
-- ARGV: 1 id, 2 event channel
-- Returns 1 when promoted, else 0.
local now = now_ms()
local due = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not due or tonumber(due) > now then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'state', 'progress', 'queue', 'type')
if h[1] ~= 'retrying' and h[1] ~= 'scheduled' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'updated_at', now)
redis.call('HDEL', KEYS[1], 'next_attempt_at')
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('LPUSH', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[2], 'queued')
local evs = {}
event(evs, ARGV[1], 'queued', h[2], h[3], h[4])
emit(KEYS[4], evs)
return 1
