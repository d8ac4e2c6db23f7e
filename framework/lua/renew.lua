#!lua
-- renew.lua -- renews the lease of the entries a worker holds: resets
-- their idle time without raising their delivery count, and only for
-- entries still pending for that consumer, so it can never steal one back
-- from a peer that reclaimed it.
-- KEYS: stream
-- ARGV: group consumer first_id last_id count
-- Returns how many were renewed.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[2])
local i = 1
while i <= #p do
  local args = {KEYS[1], ARGV[1], ARGV[2], 0}
  local j = i
  while j <= #p and j < i + 1000 do args[#args+1] = p[j][1]; j = j + 1 end
  args[#args+1] = 'JUSTID'
  redis.call('XCLAIM', unpack(args))
  i = j
end
return #p
