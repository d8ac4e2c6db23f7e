-- probe_effect.lua -- the effect of the probe test handler
-- (tests/handlers/probe.c): counts how often, by whom and in which order
-- an entry's effect was applied.
-- KEYS: count by order
--   probe:count:<id>, probe:by:<id>, probe:order
-- ARGV: consumer id
redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[2])
return 'ok'
