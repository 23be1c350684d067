-- Delete the consumers of one stage's group that hold no session and have not read for
-- a while: names of pods that are gone (every rollout and scale-down leaves one).
-- Atomic: a consumer that holds a pending entry is never deleted, so no session leaves
-- the pending list with it; a live worker that is deleted is re-created by its next read.
--
-- KEYS[1] registry stream   ARGV[1] group   ARGV[2] minimum idle time (ms)
-- Returns the names deleted.
local removed = {}
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #consumer, 2 do
    info[consumer[i]] = consumer[i + 1]
  end
  if tonumber(info['pending']) == 0 and tonumber(info['idle']) >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    table.insert(removed, info['name'])
  end
end
return removed
