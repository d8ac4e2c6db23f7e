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
-- The per-type counters the workers keep (count_key, a hash of
-- in:<type> and done:<type>, typecount.h) are copied, when there are
-- any, into types_key under the same ID: the rate sample itself keeps
-- its agreed fields, which another reader relies on.
-- KEYS: rate_key stream count_key types_key
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
local id = redis.call('XADD', unpack(args))
if KEYS[3] and KEYS[4] and redis.call('TYPE', KEYS[3])['ok'] == 'hash' then
  local counts = redis.call('HGETALL', KEYS[3])
  if #counts > 0 and #counts <= 400 then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], id, unpack(counts))
  end
end
return 1
