-- Renew a session lease: reset the registry entry's idle time only if this worker
-- still owns it. A plain XCLAIM with min-idle 0 would steal the entry back from a
-- worker that already took it over, and two owners would then work the session.
--
-- KEYS[1] registry stream   ARGV[1] group   ARGV[2] consumer   ARGV[3] entry id
-- Returns 1 when renewed, 0 when the lease is lost.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then
  return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
