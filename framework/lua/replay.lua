#!lua
-- replay.lua -- moves one dead letter back to its source stream without
-- the fields sluice added, and removes it from the dead-letter stream,
-- atomically (`sluice dlq replay`).
-- KEYS: dead source
-- ARGV: dead_letter_id
-- Returns the new entry's ID, or false when there is no such dead letter.
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return false end
local skip = {error=1, source_id=1, deliveries=1, consumer=1, failed_at=1}
local args = {KEYS[2], '*'}
local f = e[1][2]
for i = 1, #f, 2 do
  if not skip[f[i]] then args[#args+1] = f[i]; args[#args+1] = f[i+1] end
end
if #args == 2 then args[3] = 'type'; args[4] = '' end
local id = redis.call('XADD', unpack(args))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
