-- watch: mark a job as watched, so that its starts and finishes are announced on its
-- event channel (step.lua publishes only for marked jobs). The long-poll subscribes to
-- the channel first, then marks; a change between its read and the mark is caught by
-- its recheck (api/longpoll.h). The mark stays with the record: publishing to a
-- channel nobody listens to any more costs little, and only for jobs once watched.
-- KEYS: 1 job hash
-- Returns 1 when marked, 0 when there is no such job (no record is created).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'watched', '1')
return 1
