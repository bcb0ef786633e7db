-- scan: find the work maintenance has to do, and trim what retention let go.
-- KEYS: 1 jobs index, 2 workers zset, then triples (delayed, leases, dead) per queue
-- ARGV: 1 max ids per list, 2 retention ms
-- Returns {now, {dead worker ids}, {due ids, expired ids} per queue...}
local now = now_ms()
local limit = tonumber(ARGV[1])
local old = now - tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', old)
local out = {now, redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)}
for i = 3, #KEYS, 3 do
  out[#out + 1] = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now, 'LIMIT', 0, limit)
  out[#out + 1] = redis.call('ZRANGEBYSCORE', KEYS[i + 1], '-inf', now, 'LIMIT', 0, limit)
  redis.call('ZREMRANGEBYSCORE', KEYS[i + 2], '-inf', old)
end
return out
