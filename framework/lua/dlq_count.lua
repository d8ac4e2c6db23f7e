#!lua
-- dlq_count.lua -- one page of the dead-letter count by code that
-- /metrics shows: reads up to count dead letters after start and returns
-- how many of each code (the error up to its first ":") it saw, so that
-- only the counts cross the network, never the entries. The supervisor
-- keeps the running totals and reads only what is new each time; the
-- stream's length, read in the same atomic step, tells it when entries
-- were deleted (replay, purge, retention) and it must count again.
-- KEYS: dead
-- ARGV: start count
-- Returns {last ID read or "", length of the stream, {code, n, ...}}.
local e = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local by, out, last = {}, {}, ''
for i = 1, #e do
  local f, code = e[i][2], ''
  for j = 1, #f, 2 do
    if f[j] == 'error' then code = string.match(f[j+1], '^[^:]*') end
  end
  by[code] = (by[code] or 0) + 1
  last = e[i][1]
end
for code, n in pairs(by) do out[#out+1] = code; out[#out+1] = n end
return {last, redis.call('XLEN', KEYS[1]), out}
