-- take: move the next ready id of the first non-empty queue into this worker's claim
-- list for that queue (the job is then started by start.lua).
-- KEYS: pairs of (ready list, claim list), in the worker's queue order
-- Returns {pair index (1-based), id} or false when every queue is empty.
for i = 1, #KEYS, 2 do
  local id = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'RIGHT', 'LEFT')
  if id then return {(i + 1) / 2, id} end
end
return false
