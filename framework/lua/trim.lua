#!lua
-- trim.lua -- trims a stream below the oldest entry any group still
-- needs: its oldest pending entry, or the first entry after its
-- last-delivered-id. Every group counts, sluice's or not. A stream
-- without groups is left alone. Run by the supervisor's housekeeping.
-- The two parts of an ID are 64-bit and Lua's numbers are doubles, which
-- round above 2^53 (an explicit ID 1-9007199254740995 would become ...996
-- and its entry be trimmed), so IDs are compared and incremented as
-- decimal strings.
-- KEYS: stream
-- ARGV:
-- Returns the number of entries removed.
local MAX = '18446744073709551615'
local function parse(id)
  return string.match(id, '^(%d+)-(%d+)$')
end
local function numless(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function less(a, b)
  if a[1] ~= b[1] then return numless(a[1], b[1]) end
  return numless(a[2], b[2])
end
local function incr(s)
  local i = #s
  while i > 0 and string.sub(s, i, i) == '9' do i = i - 1 end
  if i == 0 then return '1' .. string.rep('0', #s) end
  return string.sub(s, 1, i - 1) .. string.char(string.byte(s, i) + 1) ..
         string.rep('0', #s - i)
end
local function after(ms, seq)
  if seq ~= MAX then return {ms, incr(seq)} end
  if ms ~= MAX then return {incr(ms), '0'} end
  return {ms, seq}
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local floor = nil
for _, g in ipairs(groups) do
  local name, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i+1] end
    if g[i] == 'last-delivered-id' then last = g[i+1] end
  end
  local ms, seq = parse(last)
  local need = after(ms, seq)
  local s = redis.call('XPENDING', KEYS[1], name)
  if s[1] > 0 then
    local pms, pseq = parse(s[2])
    if less({pms, pseq}, need) then need = {pms, pseq} end
  end
  if floor == nil or less(need, floor) then floor = need end
end
return redis.call('XTRIM', KEYS[1], 'MINID', floor[1] .. '-' .. floor[2])
