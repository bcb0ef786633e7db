-- sched_advance: the firing loop has made the jobs of a schedule's due ticks; move its
-- last_tick on (compare-and-set: only if the schedule is still the generation and
-- version that was read and its last_tick is still what was read, so of several
-- processes firing the same ticks one advances it) and record the runs.
-- KEYS: 1 schedule hash, 2 due zset, 3 the schedule's runs, 4 schedules stats hash
-- ARGV: 1 name, 2 generation, 3 version, 4 last_tick read, 5 new last_tick, 6 next_at,
--       7 ticks fired, 8 ticks passed over, 9 runs kept, 10 last tick fired (0: none),
--       11 ticks passed over because the job template no longer validates, 12.. tick,
--       job id pairs
-- Returns 1 when applied, 0 when the schedule changed meanwhile (or is gone).
local h = redis.call('HMGET', KEYS[1], 'generation', 'version', 'last_tick', 'paused')
if h[1] ~= ARGV[2] or h[2] ~= ARGV[3] or h[3] ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], 'last_tick', ARGV[5], 'next_at', ARGV[6])
local fired, passed = tonumber(ARGV[7]), tonumber(ARGV[8])
if fired > 0 then
  redis.call('HINCRBY', KEYS[1], 'fired', fired)
  redis.call('HINCRBY', KEYS[4], 'fired', fired)
end
if passed > 0 then
  redis.call('HINCRBY', KEYS[1], 'passed', passed)
  redis.call('HINCRBY', KEYS[4], 'passed', passed)
end
local invalid = tonumber(ARGV[11])
if invalid > 0 then
  redis.call('HINCRBY', KEYS[1], 'invalid', invalid)
  redis.call('HINCRBY', KEYS[4], 'invalid', invalid)
end
if ARGV[10] ~= '0' then redis.call('HSET', KEYS[1], 'last_fired', ARGV[10]) end
if h[4] ~= '1' then redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1]) end
if #ARGV > 11 then
  redis.call('ZADD', KEYS[3], unpack(ARGV, 12))
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -1 - tonumber(ARGV[9]))
end
return 1
