#!lua
-- rate.lua -- adds one sample of a group's counters, as Redis itself
-- keeps them, to the stream sluice:rate:<stream>:<group>, so that
-- `sluice stats` (or a dashboard) can compute exact rates over a window
-- of its choice: lambda = d(added)/dt, mu = d(read - pending)/dt, where
-- read - pending counts the entries the group has finished (acked or
-- dead-lettered). Run every housekeeping period by each supervisor; the
-- newest sample's ID (Redis's clock) decides, so several pools never
-- sample one group twice within min_gap_ms.
-- An entry: ID = the sample time (XADD *), fields added (entries-added
-- of the stream), read (entries-read of the group), pending, and lag
-- (left out when Redis cannot tell it). No sample when the stream or
-- group does not exist, or when Redis cannot tell entries-read.
-- KEYS: rate_key stream
-- ARGV: group min_gap_ms maxlen
-- Returns 1 when a sample was added, else 0.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  local ms = tonumber(string.match(last[1][1], '^(%d+)-'))
  if ms and now - ms < tonumber(ARGV[2]) then return 0 end
end
if redis.call('TYPE', KEYS[2])['ok'] ~= 'stream' then return 0 end
local function field(flat, name)
  for i = 1, #flat - 1, 2 do
    if flat[i] == name then return flat[i + 1] end
  end
  return nil
end
local added = field(redis.call('XINFO', 'STREAM', KEYS[2]), 'entries-added')
local g = nil
for _, x in ipairs(redis.call('XINFO', 'GROUPS', KEYS[2])) do
  if field(x, 'name') == ARGV[1] then g = x end
end
if not g or type(added) ~= 'number' then return 0 end
local read, pending, lag = field(g, 'entries-read'), field(g, 'pending'), field(g, 'lag')
if type(read) ~= 'number' or type(pending) ~= 'number' then return 0 end
local args = {KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'added', string.format('%d', added),
              'read', string.format('%d', read), 'pending', string.format('%d', pending)}
if type(lag) == 'number' then
  args[#args + 1] = 'lag'
  args[#args + 1] = string.format('%d', lag)
end
redis.call('XADD', unpack(args))
return 1
