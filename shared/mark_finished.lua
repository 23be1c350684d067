-- Record that a stage is done with a session and return every stage that is, in one step,
-- so exactly one of two stages finishing at once sees the full set and publishes `done`.
--
-- KEYS[1] the session's finished set   ARGV[1] stage
redis.call('SADD', KEYS[1], ARGV[1])
return redis.call('SMEMBERS', KEYS[1])
