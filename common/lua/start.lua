-- start: start a job this worker claimed (see start_job in lib.lua).
-- KEYS: 1 job hash, 2 claim list, 3 leases zset
-- ARGV: 1 id, 2 worker id, 3 lease token, 4 lease ms, 5 event channel
local now_s, now_n = clock()
return start_job(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
  now_s, now_n)
