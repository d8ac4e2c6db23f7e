#!lua
--@include lib
local function effect(KEYS, ARGV) --@body
end
-- effect.lua -- the wrapper of every handler's effect script. The
-- framework puts the handler's body where the first line says --@body
-- (on line 3, so line N of a Redis error in an effect is line N-2 of the
-- handler's body), making it a function over its own KEYS and ARGV (the
-- framework's come first and are stripped). It runs only while the entry
-- is still ours, and its result picks ack, retry or dead:
-- {'retry', reason} or {'dead', 'code: detail'}, anything else acks.
-- KEYS: stream attempts dead handler_keys...
-- ARGV: group consumer id max_deliveries first_delay_ms cap_ms kind error trim least_delay_ms handler_args...
-- Returns what commit.lua returns. The handler's KEYS and ARGV are
-- copied with {unpack(...)}, which sizes each table once; a loop that
-- appends one by one regrows them at every power of two, and cost Redis
-- about 7,000 instructions per call for a payment's 15 values. unpack()
-- is limited to a few thousand values, hence the loop for huge lists.
local p = owned(ID)
if not p then return 0 end
local uk, ua
if #KEYS + #ARGV < 4000 then
  uk, ua = {unpack(KEYS, 4)}, {unpack(ARGV, 11)}
else
  uk, ua = {}, {}
  for i = 4, #KEYS do uk[#uk+1] = KEYS[i] end
  for i = 11, #ARGV do ua[#ua+1] = ARGV[i] end
end
local r = effect(uk, ua)
if type(r) == 'table' and (r[1] == 'retry' or r[1] == 'dead') then
  return decide(r[1], tostring(r[2] or r[1]), p)
end
return decide('ack', '', p)
