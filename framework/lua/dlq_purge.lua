#!lua
-- dlq_purge.lua -- deletes one page of dead letters (`sluice dlq purge`):
-- the entries of the dead-letter stream from start to stop, at most
-- count of them, whose error code (the text before the first ":") is
-- code, or every one when code is "". One page is one atomic step; the
-- caller walks the stream page by page, so no single script runs over a
-- million entries and blocks Redis meanwhile. The caller fixes stop
-- before the first page (the last ID at its start, or the age limit), so
-- dead letters added during the purge are never touched.
-- KEYS: dead
-- ARGV: start stop count code
-- Returns {next start ("(" .. last ID read) or "" after the last page,
-- entries deleted}.
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', tonumber(ARGV[3]))
local del = {}
for i = 1, #e do
  local keep = false
  if ARGV[4] ~= '' then
    local f, code = e[i][2], nil
    for j = 1, #f, 2 do
      if f[j] == 'error' then code = string.match(f[j+1], '^[^:]*') end
    end
    keep = code ~= ARGV[4]
  end
  if not keep then del[#del+1] = e[i][1] end
end
local n = 0
for i = 1, #del, 500 do
  n = n + redis.call('XDEL', KEYS[1], unpack(del, i, math.min(i + 499, #del)))
end
local nxt = ''
if #e == tonumber(ARGV[3]) then nxt = '(' .. e[#e][1] end
return {nxt, n}
