#!lua
-- janitor.lua -- of up to 200 consumers of one group, removes each that
-- has nothing pending and no heartbeat, each in one atomic step (XGROUP
-- DELCONSUMER drops pending entries, so the check and the delete must not
-- be separable). Run by the supervisor's janitor.
-- KEYS: stream heartbeat_key...
-- ARGV: group consumer...
--   (one heartbeat key and one consumer name per candidate, same order)
-- Returns the positions (from 1) of those removed.
local removed = {}
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[i])
    if #p == 0 then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[i])
      removed[#removed + 1] = i - 1
    end
  end
end
return removed
