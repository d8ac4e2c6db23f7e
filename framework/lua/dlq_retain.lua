#!lua
-- dlq_retain.lua -- the optional retention of a dead-letter stream, run
-- by the supervisor's housekeeping: keeps at most max_len entries (0: no
-- limit) and drops those older than max_age_ms (0: no limit). A dead
-- letter's ID is the time it was written by Redis's clock, so the age is
-- measured on that same clock (TIME), not the supervisor's. Exact
-- trimming ("="), so that the numbers a user configures are the numbers
-- kept.
-- KEYS: dead
-- ARGV: max_len max_age_ms
-- Returns the number of entries removed.
local n = 0
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local len, age = tonumber(ARGV[1]), tonumber(ARGV[2])
if age > 0 then
  local t = redis.call('TIME')
  local cut = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - age
  if cut > 0 then
    n = n + redis.call('XTRIM', KEYS[1], 'MINID', '=', string.format('%d', cut))
  end
end
if len > 0 then
  n = n + redis.call('XTRIM', KEYS[1], 'MAXLEN', '=', string.format('%d', len))
end
return n
