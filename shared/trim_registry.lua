-- Trim the session registry below what every stage's group is done with: each group's
-- oldest pending entry (a session some worker still holds) and its last delivered entry
-- (sessions after it have not been claimed yet) bound the trim.
--
-- KEYS[1] registry stream   ARGV the pipeline's stages (one consumer group each)
-- A stage whose group does not exist yet has not read the registry: it will start from
-- the first entry, so nothing is trimmed. A group of a stage outside ARGV bounds the trim
-- too (it may still be read). Returns the number of entries removed.
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return {tonumber(ms), tonumber(seq)}
end
local function older(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local seen = {}
local floor, floor_id = nil, nil
local function bound(id)
  local parsed = parse(id)
  if floor == nil or older(parsed, floor) then floor, floor_id = parsed, id end
end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do
    info[group[i]] = group[i + 1]
  end
  seen[info['name']] = true
  bound(info['last-delivered-id'])
  local pending = redis.call('XPENDING', KEYS[1], info['name'])
  if tonumber(pending[1]) > 0 then bound(pending[2]) end
end
for _, stage in ipairs(ARGV) do
  if not seen[stage] then return 0 end
end
if floor_id == nil or floor_id == '0-0' then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', floor_id)
