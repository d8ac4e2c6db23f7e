#!lua
-- expire.lua -- forgets the fingerprints of finished work once they are
-- older than idempotency_retention_ms. An effect that finishes a record
-- while a retention is set adds an entry to the expiry stream: field k
-- names the record (a hash), each field f one of its fingerprint fields.
-- The entry's ID is the time it was written; every entry older than the
-- retention has its fields removed from its record, then is deleted. The
-- records' keys are read from the entries, so they are not declared: like
-- the rest of sluice, this needs a single Redis, not a cluster. Run by the
-- supervisor's janitor, up to `count` entries a call.
-- KEYS: expiry
-- ARGV: retention_ms count
-- Returns the number of entries handled.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cut = now - tonumber(ARGV[1])
if cut < 0 or redis.call('TYPE', KEYS[1])['ok'] ~= 'stream' then return 0 end
local e = redis.call('XRANGE', KEYS[1], '-', string.format('%d', cut), 'COUNT', tonumber(ARGV[2]))
for _, x in ipairs(e) do
  local f, key, fields = x[2], nil, {}
  for i = 1, #f - 1, 2 do
    if f[i] == 'k' then key = f[i + 1] end
    if f[i] == 'f' then fields[#fields + 1] = f[i + 1] end
  end
  if key and #fields > 0 and redis.call('TYPE', key)['ok'] == 'hash' then
    redis.call('HDEL', key, unpack(fields))
  end
  redis.call('XDEL', KEYS[1], x[1])
end
return #e
