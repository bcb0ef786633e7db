-- sched_update: change a schedule (PATCH), if nobody changed it since it was read.
-- KEYS: 1 schedule hash, 2 due zset
-- ARGV: 1 name, 2 the version read, 3 mode: 'keep' (when it fires is unchanged: its
--       last_tick and next_at, which the firing loop moves, are left alone), 'pause' (out
--       of the due zset), 'retime' (last_tick and next_at given among the fields, back in
--       the due zset at next_at), 4 next_at (ms; 'retime'), 5.. field, value pairs
-- Returns {'ok', now} | {'missing'} | {'conflict'}
local v = redis.call('HGET', KEYS[1], 'version')
if not v then return {'missing'} end
if v ~= ARGV[2] then return {'conflict'} end
local now = clock()
redis.call('HSET', KEYS[1], 'version', tonumber(v) + 1, 'updated_at', now, unpack(ARGV, 5))
if ARGV[3] == 'pause' then
  redis.call('ZREM', KEYS[2], ARGV[1])
elseif ARGV[3] == 'retime' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
return {'ok', now}
