-- annotate: store metadata (probe results, page counts) on a running attempt's job,
-- fenced by the lease token.
-- KEYS: 1 job hash
-- ARGV: 1 token, 2 metadata JSON, 3 event channel
-- Returns 1, or 0 when the lease is no longer ours.
local now = now_ms()
local h = redis.call('HMGET', KEYS[1], 'state', 'token', 'lease_until')
if h[1] ~= 'running' or h[2] ~= ARGV[1] or tonumber(h[3] or 0) < now then return 0 end
redis.call('HSET', KEYS[1], 'metadata', ARGV[2], 'updated_at', now)
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PUBLISH', ARGV[3], 'metadata')
return 1
