-- sched_create: record a new schedule (spool/schedule.h) in one step.
-- KEYS: 1 schedule hash, 2 schedules zset (all names), 3 due zset, 4 the schedule's runs
-- ARGV: 1 name, 2 most schedules (0: no limit), 3 paused '1'|'0', 4 next_at (ms),
--       5.. field, value pairs (name, cron, timezone, missed, job, generation, last_tick,
--       next_at, paused)
-- Returns {'ok', now} | {'exists'} | {'full', count}
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
local max = tonumber(ARGV[2])
if max > 0 then
  local n = redis.call('ZCARD', KEYS[2])
  if n >= max then return {'full', tostring(n)} end
end
local now = clock()
-- A schedule of the same name deleted earlier took its runs with it; make sure.
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[1], 'created_at', now, 'updated_at', now, 'version', 1, 'fired', 0,
  'last_fired', 0, unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
if ARGV[3] ~= '1' then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1]) end
return {'ok', now}
