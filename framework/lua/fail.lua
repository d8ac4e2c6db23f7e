#!lua
-- fail.lua -- records a failed attempt the worker could not record
-- itself (its process crashed or overran handler_timeout_ms); run by the
-- supervisor. Same calling convention as commit.lua; kind is ignored,
-- error is the reason.
-- KEYS: stream attempts dead
-- ARGV: group consumer id max_deliveries first_delay_ms cap_ms kind error trim least_delay_ms
-- Returns 0 (not ours), 2 (left for a retry) or 3 (dead-lettered).
--@include lib
local p = owned(ID)
if not p then return 0 end
return decide('retry', ARGV[8], p)
