-- Idempotent publish of one event: the only way anything is appended to a session's
-- event stream. Atomic, so seq is gap-free and strictly increasing per session.
--
-- KEYS[1] events stream   KEYS[2] heads hash
-- ARGV[1] entity id   ARGV[2] revision   ARGV[3] "1" if the event closes the id
-- ARGV[4] event type  ARGV[5] JSON up to the seq value   ARGV[6] JSON after it
-- Optional: KEYS[3] checkpoint hash, ARGV[7] stage, ARGV[8] checkpoint JSON. The
-- checkpoint is written in the same atomic step as the event, so a stage killed right
-- after publishing a final never resumes from a position before it (no re-cut, no loss).
--
-- Bookkeeping in the heads hash, for O(1) reads by any stage: `n:<type>` counts the
-- events of each type (the `done` payload's counts), `_ready` holds the `ready` event
-- (the config ingest acknowledged).
--
-- Returns {1, seq} when appended, {0, reason, head_revision} when dropped:
--   "closed": the session already published `done`; nothing follows it.
--   "final":  the id was finalized; a final is immutable.
--   "stale":  the revision is not newer than the one published for the id.
local id = ARGV[1]
local rev = tonumber(ARGV[2])
local head = tonumber(redis.call('HGET', KEYS[2], 'r:' .. id) or '0')
if redis.call('HEXISTS', KEYS[2], '_closed') == 1 then
  return {0, 'closed', head}
end
if redis.call('HEXISTS', KEYS[2], 'f:' .. id) == 1 then
  return {0, 'final', head}
end
if rev <= head then
  return {0, 'stale', head}
end
local seq = redis.call('HINCRBY', KEYS[2], '_seq', 1)
local data = ARGV[5] .. seq .. ARGV[6]
redis.call('XADD', KEYS[1], seq .. '-0',
  'seq', seq, 'type', ARGV[4], 'id', id, 'rev', rev, 'data', data)
redis.call('HSET', KEYS[2], 'r:' .. id, rev)
redis.call('HINCRBY', KEYS[2], 'n:' .. ARGV[4], 1)
if ARGV[4] == 'ready' then
  redis.call('HSET', KEYS[2], '_ready', data)
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[2], 'f:' .. id, 1)
end
if KEYS[3] then
  redis.call('HSET', KEYS[3], ARGV[7], ARGV[8])
end
if ARGV[4] == 'done' then
  redis.call('HSET', KEYS[2], '_closed', 1)
end
return {1, seq}
