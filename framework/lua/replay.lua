#!lua
-- replay.lua -- moves one dead letter back to its source stream without
-- the fields sluice added, and removes it from the dead-letter stream,
-- atomically (`sluice dlq replay`). With set_data "1", the re-added
-- entry's `data` is the given text instead of the dead letter's (a
-- corrected entry; the caller has checked it as `sluice enqueue` does).
-- KEYS: dead source
-- ARGV: dead_letter_id set_data data
-- Returns the new entry's ID, or false when there is no such dead letter.
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return false end
local skip = {error=1, source_id=1, deliveries=1, attempts=1, consumer=1, failed_at=1}
local args = {KEYS[2], '*'}
local f = e[1][2]
local put = ARGV[2] == '1'
for i = 1, #f, 2 do
  if not skip[f[i]] then
    args[#args+1] = f[i]
    if f[i] == 'data' and put then
      args[#args+1] = ARGV[3]
      put = false
    else
      args[#args+1] = f[i+1]
    end
  end
end
if put then args[#args+1] = 'data'; args[#args+1] = ARGV[3] end
if #args == 2 then args[3] = 'type'; args[4] = '' end
local id = redis.call('XADD', unpack(args))
redis.call('XDEL', KEYS[1], e[1][1])
return id
