-- worker_beat: register a worker or refresh its heartbeat and what it reports.
-- KEYS: 1 workers zset, 2 worker hash
-- ARGV: 1 worker id, 2 ttl ms, 3.. field, value pairs
-- Returns the server time in ms.
local now = now_ms()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], 'last_seen', now, unpack(ARGV, 3))
return now
