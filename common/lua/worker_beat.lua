-- worker_beat: register a worker or refresh its heartbeat and what it reports, and keep
-- two things expire.lua needs to judge a silent worker:
--   * the runs zset: when the worker id's current run (process) first beat. A worker
--     restarted under the same id beats again at once, but that vouches only for jobs
--     started since.
--   * the watch: since when heartbeats have been heard without a gap. A gap longer than
--     half the TTL (every worker beats at least five times per TTL) means that nobody
--     could reach Redis, or Redis was down or its clock jumped: silences that span it
--     prove nothing about a worker.
-- KEYS: 1 workers zset, 2 worker hash, 3 watch hash, 4 runs zset
-- ARGV: 1 worker id, 2 ttl ms, 3 run ('' when the worker has none), 4.. field, value
--       pairs
-- Returns the server time in ms.
local now_s, now = clock()
local ttl = tonumber(ARGV[2])
if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], 'run') ~= ARGV[3] then
  redis.call('ZADD', KEYS[4], now_s, ARGV[1])
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], 'last_seen', now_s, 'run', ARGV[3], unpack(ARGV, 4))
local w = redis.call('HMGET', KEYS[3], 'last', 'since')
if not w[2] or now - tonumber(w[1] or 0) > ttl / 2 then
  redis.call('HSET', KEYS[3], 'last', now_s, 'since', now_s)
elseif now > tonumber(w[1]) then
  redis.call('HSET', KEYS[3], 'last', now_s)
end
return now
