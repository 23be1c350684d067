-- Trim a session's audio log below what every stage that reads it has checkpointed
-- past (DESIGN.md: trimming never drops what some stage has not consumed).
--
-- KEYS[1] audio stream   KEYS[2] checkpoint hash   ARGV the stages that read the log
-- Each reader's checkpoint names in `resume_id` the oldest audio entry it still needs.
-- A reader without a checkpoint, or without a resume id, has not read the log yet, and
-- nothing is trimmed. Atomic, so a checkpoint written meanwhile is seen whole or not.
-- Returns the number of entries removed.
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if not ms then return nil end
  return {tonumber(ms), tonumber(seq)}
end
local oldest, oldest_id = nil, nil
for _, stage in ipairs(ARGV) do
  local raw = redis.call('HGET', KEYS[2], stage)
  if not raw then return 0 end
  local ok, state = pcall(cjson.decode, raw)
  if not ok or type(state) ~= 'table' or type(state['resume_id']) ~= 'string' then
    return 0
  end
  local id = parse(state['resume_id'])
  if not id then return 0 end
  if oldest == nil or id[1] < oldest[1] or (id[1] == oldest[1] and id[2] < oldest[2]) then
    oldest, oldest_id = id, state['resume_id']
  end
end
if oldest_id == nil then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', oldest_id)
