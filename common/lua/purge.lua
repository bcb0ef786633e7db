-- purge: delete a failed job of a queue's dead-letter set for good: its record, its
-- place in the dead set and in the jobs index (the API's blob GC then removes its
-- files, as for a job whose retention ran out).
-- KEYS: 1 job hash, 2 dead zset, 3 jobs index
-- ARGV: 1 id
-- Returns {'purged'} | {'notfound'} (not in this dead set) | {'state', state} (not failed)
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {'notfound'} end
local st = redis.call('HGET', KEYS[1], 'state')
if st and st ~= 'failed' then return {'state', st} end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if not st then return {'notfound'} end
redis.call('DEL', KEYS[1])
return {'purged'}
