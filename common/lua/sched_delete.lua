-- sched_delete: remove a schedule, its place in the indexes and its runs.
-- KEYS: 1 schedule hash, 2 schedules zset, 3 due zset, 4 the schedule's runs
-- ARGV: 1 name, 2 generation ('' any: else only that one, compare-and-delete, so a
--       delete racing a delete and re-create does not remove the new schedule)
-- Returns 1 when it existed, 0 when not.
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'generation') ~= ARGV[2] then return 0 end
local n = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[4])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return n
