-- Ingest's commit of one batch, all or nothing: append its entries to the audio log,
-- store the checkpoint that covers them, and trim the inbox up to what that checkpoint
-- still needs. It lands only on top of the caller's own last commit, which fences a
-- zombie owner (one script, not WATCH/MULTI: redis-py's cluster client cannot run a
-- watched transaction through a topology refresh).
--
-- KEYS[1] checkpoints hash   KEYS[2] audio log   KEYS[3] inbox
-- ARGV[1] stage (the hash field)   ARGV[2] the commit number stored there now
-- ARGV[3] the new checkpoint (JSON with "commit")   ARGV[4] inbox MINID to keep
-- ARGV[5..] the entries: a field count n, then n field/value pairs, repeated
-- Returns 1 when committed, 0 when fenced (another owner committed since).
local current = redis.call('HGET', KEYS[1], ARGV[1])
local commit = 0
if current then
  commit = tonumber(cjson.decode(current)['commit']) or 0
end
if commit ~= tonumber(ARGV[2]) then
  return 0
end
local i = 5
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, i + 1, i + 2 * n))
  i = i + 1 + 2 * n
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('XTRIM', KEYS[3], 'MINID', ARGV[4])
return 1
