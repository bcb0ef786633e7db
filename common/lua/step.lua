-- step: one round trip of a consumer. In one atomic step it gives back claimed ids it
-- will not start, ends the attempts it finished (each fenced by its lease token),
-- starts the ids it claimed before (while waiting, or last time), takes jobs off the
-- ready lists and starts them, and claims ids for the time after. A consumer running
-- short jobs (prefetch) finishes and starts a whole batch at once and claims the next
-- batch; one running long jobs finishes one job and takes the next.
-- KEYS: for each of the consumer's G queues, in its order of preference, 7 keys: ready
--       list, this worker's claim list, leases zset, delayed zset, dead zset, stats
--       hash, paused flag; then the events stream; then the webhooks queue's ready list
--       and stats, the jobs index and the queues set (lib.lua's webhook()); then the
--       hashes of the F jobs to finish; then the hashes of the S claimed jobs to start
-- ARGV: 1 G, 2 U, 3 F, 4 S, 5 how many ids to claim, 6 how many jobs to take (T),
--       7 worker id, 8 lease ms, 9 retention ms, 10 the worker's heartbeat TTL ms (0:
--       it has none; see expire.lua), 11 event channel prefix (a job's channel is it ..
--       id), 12 job hash prefix (the hash of a taken job is it .. id); then the G queue
--       names (for the events); then 2 per
--       give-back: queue index (1-based), id; then 10 per finish: queue index, id,
--       token, mode, outputs JSON, metadata JSON ('' keeps), error code, error message,
--       retryable (1|0), retry delay ms; then 3 per start: queue index, id, lease token;
--       then T lease tokens, used in order by the jobs taken.
-- The hash of a taken job is not in KEYS: its id is known only once it is popped. It
-- is named from ARGV 11, built by keys.h like every key name, and shares the slot of
-- the queue's keys under either Cluster plan keys.h describes.
-- Ids given back and jobs released go to the front of their queue, each in front of
-- the ones before it: pass them newest first to keep their order.
-- mode: succeeded | retry (retryable failure) | failed (permanent) | cancelled
--       | release (give the job back at once without counting the attempt)
-- A paused queue (its flag key exists) gives nothing: no take, no claim, and ids claimed
-- from it before the pause go back to its ready list instead of starting ('paused').
-- Returns {outcomes, starts, claimed, taken, paused}: outcomes holds each finish's new state
-- (succeeded, retrying, failed, cancelled, queued) or 'lost' when the lease is no
-- longer ours (expired, or another attempt owns the job: nothing is changed then);
-- starts holds each start's result: ok | lost (not on our claim list any more) | gone
-- (no such job) | skip (cancelled or already done) | paused (given back), and the caller reads the started
-- records with HGETALLs pipelined after the script (cheaper for Redis than returning
-- them from Lua); claimed is a flat list of (queue index, id) pairs; taken holds
-- (queue index, id, record) triples for the jobs taken and started, each record the
-- job's hash as HGETALL gives it followed by the fields the start set (a later field
-- overrides an earlier one). Ids taken that are no longer queued are dropped. paused
-- lists the indexes of the consumer's queues that are paused.
-- Every state change goes into one entry of the events stream (lib.lua's event()).
-- Events (PUBLISH on the job's channel) go out only for jobs someone watches: the
-- long-poll marks the record (watched, see watch.lua) when it subscribes.
local now_s, now = clock()
local G, U, F, S = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local want, ntake = tonumber(ARGV[5]), tonumber(ARGV[6])
local worker, lease_ms, retention, ttl = ARGV[7], tonumber(ARGV[8]), ARGV[9], ARGV[10]
local chan, jobpfx = ARGV[11], ARGV[12]
local qname = {}
for g = 1, G do qname[g] = ARGV[12 + g] end
local function qkey(g, part) return KEYS[(g - 1) * 7 + part] end
local stream = KEYS[G * 7 + 1]
local wk = {KEYS[G * 7 + 2], KEYS[G * 7 + 3], KEYS[G * 7 + 4], KEYS[G * 7 + 5]}
local base = G * 7 + 5
local evs = {}
local paused, pausedl = {}, {}
if want > 0 or ntake > 0 or S > 0 then -- a step that only records finishes needs not know
  for g = 1, G do
    if redis.call('EXISTS', qkey(g, 7)) == 1 then
      paused[g] = true
      pausedl[#pausedl + 1] = g
    end
  end
end
-- Lease removals, new leases and counters are gathered per queue and written once.
local unlease, leased, counts = {}, {}, {}
local function append(lists, g, x, y)
  local l = lists[g]
  if not l then
    l = {}
    lists[g] = l
  end
  l[#l + 1] = x
  if y then l[#l + 1] = y end
end
local function count(g, field)
  local c = counts[g]
  if not c then
    c = {}
    counts[g] = c
  end
  c[field] = (c[field] or 0) + 1
end

local a = 13 + G
for _ = 1, U do
  local g, id = tonumber(ARGV[a]), ARGV[a + 1]
  if redis.call('LREM', qkey(g, 2), -1, id) == 1 then redis.call('RPUSH', qkey(g, 1), id) end
  a = a + 2
end

local outcomes = {}
for i = 1, F do
  local g, id, token, mode = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local job = KEYS[base + i]
  local h = redis.call('HMGET', job, 'state', 'token', 'lease_until', 'version',
    'error_code', 'watched', 'type', 'callback_url')
  local outcome
  if h[1] ~= 'running' or h[2] ~= token or tonumber(h[3] or 0) < now then
    outcome = 'lost'
  else
    -- One HSET for every change. The lease fields stay: once the state is no longer
    -- 'running' no script honours them. updated_at is implied by finished_at.
    local version = string.format('%d', tonumber(h[4] or 0) + 1)
    -- What only an attempt that did not succeed needs is read only then (a success's
    -- progress is 100, it logs nothing and its attempts count stays).
    local more = {}
    if mode ~= 'succeeded' then
      more = redis.call('HMGET', job, 'progress', 'started_at', 'attempt_log',
        'callback_attempts', 'attempts', 'max_attempts')
    end
    local progress, attempts = more[1], more[5]
    local set = {'version', version}
    if ARGV[a + 5] ~= '' then
      set[#set + 1] = 'metadata'
      set[#set + 1] = ARGV[a + 5]
    end
    local terminal = true
    if mode == 'succeeded' then
      outcome = 'succeeded'
      set[#set + 1] = 'outputs'
      set[#set + 1] = ARGV[a + 4]
      set[#set + 1] = 'progress'
      set[#set + 1] = '100'
      progress = '100'
      if h[5] then
        redis.call('HDEL', job, 'error_code', 'error_message', 'error_retryable')
      end
    elseif mode == 'release' then
      outcome = 'queued'
      terminal = false
      set[#set + 1] = 'attempts'
      set[#set + 1] = string.format('%d', tonumber(attempts or 1) - 1)
      redis.call('RPUSH', qkey(g, 1), id)
    elseif mode == 'cancelled' then
      outcome = 'cancelled'
    else
      set[#set + 1] = 'error_code'
      set[#set + 1] = ARGV[a + 6]
      set[#set + 1] = 'error_message'
      set[#set + 1] = ARGV[a + 7]
      set[#set + 1] = 'error_retryable'
      set[#set + 1] = ARGV[a + 8]
      if mode == 'retry' and tonumber(attempts or 0) < tonumber(more[6] or 1) then
        outcome = 'retrying'
        terminal = false
        local due = string.format('%d', now + tonumber(ARGV[a + 9]))
        set[#set + 1] = 'next_attempt_at'
        set[#set + 1] = due
        redis.call('ZADD', qkey(g, 4), due, id)
        count(g, 'retried')
      else
        outcome = 'failed'
        redis.call('ZADD', qkey(g, 5), now_s, id)
      end
    end
    if outcome ~= 'succeeded' and outcome ~= 'queued' then
      local code = mode ~= 'cancelled' and ARGV[a + 6] or nil
      log_attempt(set, more[3], attempts, more[2], now, outcome, code, ARGV[a + 7])
    end
    set[#set + 1] = 'state'
    set[#set + 1] = outcome
    if terminal then
      set[#set + 1] = 'finished_at'
      set[#set + 1] = now_s
      count(g, outcome)
      redis.call('PEXPIRE', job, retention)
    else
      set[#set + 1] = 'updated_at'
      set[#set + 1] = now_s
    end
    append(unlease, g, id)
    redis.call('HSET', job, unpack(set))
    if h[6] then redis.call('PUBLISH', chan .. id, outcome) end
    event(evs, id, outcome, progress, qname[g], h[7])
    if terminal and h[8] then
      local cb = more[4]
      if mode == 'succeeded' then cb = redis.call('HGET', job, 'callback_attempts') end
      webhook(jobpfx, wk, evs, id, version, outcome, h[8], cb, now_s)
    end
  end
  outcomes[i] = outcome
  a = a + 10
end

-- Start: take the id off our claim list (claimed ids), count the attempt and start its
-- lease, if the job is still wanted. Every job started here gets the same lease end,
-- and the same time in the leases zset: when maintenance looks at it next, the lease's
-- end or, with a heartbeat TTL, when it has gone that long without a renewal
-- (expire.lua).
-- Each claim list is read once (LRANGE) and written once after the starts, rather than
-- an LREM per id: ids started leave it, any others stay in their order.
local claims = {}
local function unclaim(g, id)
  local c = claims[g]
  if not c then
    local ids = redis.call('LRANGE', qkey(g, 2), 0, -1)
    local left = {}
    for k = 1, #ids do left[ids[k]] = (left[ids[k]] or 0) + 1 end
    c = {ids = ids, left = left, n = 0}
    claims[g] = c
  end
  local n = c.left[id]
  if not n or n == 0 then return false end
  c.left[id] = n - 1
  c.n = c.n + 1
  return true
end
-- A count plus one, as the string Redis stores: formatting an integer is cheaper than
-- the conversion redis.call applies to a Lua number.
local function incr(v) return string.format('%d', tonumber(v or 0) + 1) end
local starts, back = {}, {}
local lease = string.format('%d', now + lease_ms)
local ttl_n = tonumber(ttl)
local look = lease
if ttl_n > 0 and ttl_n < lease_ms then look = string.format('%d', now + ttl_n) end
for i = 1, S do
  local g, id, token = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
  local job = KEYS[base + F + i]
  local r
  if not unclaim(g, id) then
    r = 'lost'
  elseif paused[g] then
    r = 'paused'
    append(back, g, id)
  else
    local h = redis.call('HMGET', job, 'state', 'attempts', 'version', 'next_attempt_at',
      'watched', 'progress', 'type')
    if not h[1] then
      r = 'gone'
    elseif h[1] ~= 'queued' then
      r = 'skip'
    else
      r = 'ok'
      redis.call('HSET', job, 'state', 'running', 'attempts', incr(h[2]),
        'version', incr(h[3]), 'worker', worker, 'token', token, 'lease_until', lease,
        'worker_ttl', ttl, 'started_at', now_s)
      if h[4] then redis.call('HDEL', job, 'next_attempt_at') end
      append(leased, g, look, id)
      if h[5] then redis.call('PUBLISH', chan .. id, 'running') end
      event(evs, id, 'running', h[6], qname[g], h[7])
    end
  end
  starts[i] = r
  a = a + 3
end
-- Ids of paused queues go back to the front, the oldest (started first) frontmost.
for g, ids in pairs(back) do
  for k = #ids, 1, -1 do redis.call('RPUSH', qkey(g, 1), ids[k]) end
end
for g, c in pairs(claims) do
  if c.n > 0 then
    local keep = {}
    for k = 1, #c.ids do
      local id = c.ids[k]
      if c.left[id] > 0 then
        c.left[id] = c.left[id] - 1
        keep[#keep + 1] = id
      end
    end
    redis.call('DEL', qkey(g, 2))
    if #keep > 0 then redis.call('RPUSH', qkey(g, 2), unpack(keep)) end
  end
end

-- Take: pop up to T ids from the right (oldest) end of the ready lists, in the order
-- of preference, and start them, returning their records.
local taken = {}
local function take(g, id, job)
  local t = redis.call('HGETALL', job)
  local state, attempts, version, watched, progress, queue, jtype
  local n = #t
  for k = 1, n, 2 do
    local f = t[k]
    if f == 'state' then state = t[k + 1]
    elseif f == 'attempts' then attempts = t[k + 1]
    elseif f == 'version' then version = t[k + 1]
    elseif f == 'watched' then watched = true
    elseif f == 'progress' then progress = t[k + 1]
    elseif f == 'queue' then queue = t[k + 1]
    elseif f == 'type' then jtype = t[k + 1]
    elseif f == 'next_attempt_at' then
      redis.call('HDEL', job, 'next_attempt_at')
      t[k + 1] = '0'
    end
  end
  if state ~= 'queued' then return end
  local token = ARGV[a]
  a = a + 1
  attempts = incr(attempts)
  version = incr(version)
  redis.call('HSET', job, 'state', 'running', 'attempts', attempts, 'version', version,
    'worker', worker, 'token', token, 'lease_until', lease, 'worker_ttl', ttl,
    'started_at', now_s)
  t[n + 1], t[n + 2], t[n + 3], t[n + 4], t[n + 5], t[n + 6] = 'state', 'running',
    'attempts', attempts, 'version', version
  t[n + 7], t[n + 8], t[n + 9], t[n + 10], t[n + 11], t[n + 12] = 'worker', worker,
    'token', token, 'lease_until', lease
  t[n + 13], t[n + 14], t[n + 15], t[n + 16] = 'worker_ttl', ttl, 'started_at', now_s
  append(leased, g, look, id)
  taken[#taken + 1] = g
  taken[#taken + 1] = id
  taken[#taken + 1] = t
  if watched then redis.call('PUBLISH', chan .. id, 'running') end
  event(evs, id, 'running', progress, queue, jtype)
end
for g = 1, G do
  if ntake <= 0 then break end
  local ids = not paused[g] and redis.call('RPOP', qkey(g, 1), ntake)
  if ids then
    ntake = ntake - #ids
    for k = 1, #ids do take(g, ids[k], jobpfx .. ids[k]) end
  end
end

for g = 1, G do
  if unlease[g] then redis.call('ZREM', qkey(g, 3), unpack(unlease[g])) end
  if leased[g] then redis.call('ZADD', qkey(g, 3), unpack(leased[g])) end
  if counts[g] then
    for field, n in pairs(counts[g]) do redis.call('HINCRBY', qkey(g, 6), field, n) end
  end
end

-- Claim: move up to `want` ids from the right (oldest) end of the ready lists, in the
-- order of preference, onto our claim lists, oldest first in the reply.
local claimed = {}
for g = 1, G do
  if want <= 0 then break end
  local ready, claim = qkey(g, 1), qkey(g, 2)
  if paused[g] then
    -- nothing from a paused queue
  elseif want == 1 then
    local id = redis.call('LMOVE', ready, claim, 'RIGHT', 'LEFT')
    if id then
      claimed[#claimed + 1] = g
      claimed[#claimed + 1] = id
      want = 0
    end
  else
    local ids = redis.call('LRANGE', ready, -want, -1)
    if #ids > 0 then
      redis.call('LTRIM', ready, 0, -#ids - 1)
      -- Oldest first, as LMOVE would: the oldest ends at the claim list's tail.
      local oldest = {}
      for k = #ids, 1, -1 do
        oldest[#oldest + 1] = ids[k]
        claimed[#claimed + 1] = g
        claimed[#claimed + 1] = ids[k]
      end
      redis.call('LPUSH', claim, unpack(oldest))
      want = want - #ids
    end
  end
end
emit(stream, evs)
return {outcomes, starts, claimed, taken, pausedl}
