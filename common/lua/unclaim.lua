-- unclaim: give one claimed, not started id back to the front of its queue.
-- KEYS: 1 claim list, 2 ready list
-- ARGV: 1 id
-- Returns 1 when given back, 0 when it was not on the claim list.
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
