-- worker_leave: deregister a worker and give the jobs it had claimed but not started
-- back to their queues. In 'reap' mode (another process cleaning up after a dead
-- worker) it does nothing unless the worker's heartbeat has run out.
-- KEYS: 1 workers zset, 2 worker hash, 3 runs zset, 4.. pairs of (claim list, ready list)
-- ARGV: 1 worker id, 2 mode (leave|reap)
-- Returns the number of jobs given back, or -1 when the worker is alive.
local now = now_ms()
if ARGV[2] == 'reap' then
  local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if s and tonumber(s) > now then return -1 end
end
local moved = 0
for i = 4, #KEYS, 2 do
  while redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'RIGHT', 'RIGHT') do
    moved = moved + 1
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return moved
