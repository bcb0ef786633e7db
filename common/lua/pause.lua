-- pause: pause a queue (its flag key holds when, by Redis's clock) or resume it (the key
-- goes). step.lua takes nothing from a queue whose flag exists. The queue joins the set
-- of queues, so a queue paused before its first job is listed.
-- KEYS: 1 the queue's paused flag, 2 queues set
-- ARGV: 1 queue name, 2 '1' to pause, '0' to resume
-- Returns 1 when the state changed, 0 when it already was so.
if ARGV[2] == '1' then
  redis.call('SADD', KEYS[2], ARGV[1])
  local now_s = clock()
  return redis.call('SET', KEYS[1], now_s, 'NX') and 1 or 0
end
return redis.call('DEL', KEYS[1])
