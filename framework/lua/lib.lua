-- lib.lua -- the functions shared by the scripts that change an entry's
-- fate (commit.lua, fail.lua, claim.lua, effect.lua). It is not a script
-- of its own: a script includes it with a `--@include lib` line, which
-- scripts/embed-lua.sh replaces by this file joined into one line, so the
-- including file keeps its line numbers. Hence: no comment at the end of
-- a code line here, and no line starting with "(".
--
-- KEYS: stream attempts dead
-- ARGV: group consumer id max_deliveries first_delay_ms cap_ms kind error
--   trim least_delay_ms... (least_delay_ms: a retry waits at least this)
--   (the names below; the scripts that include it add their own)
--
-- Bookkeeping lives in one hash per stream and group (sl__attempts_key):
-- field = entry ID, value = "<failed attempts>:<not before, ms on
-- Redis's clock>:<last failure reason>". It is written when an attempt
-- fails and deleted in the same script that acks or dead-letters the
-- entry. Field names added to a dead letter replace same-named original
-- fields ("on a name clash the added field wins"). unpack() has a limit
-- of a few thousand values, so huge field lists are sent in one XADD only
-- up to that limit: an entry with more fields than that has already been
-- refused as too_large, which keeps type and data only.
-- decide_at() is decide() for entry `id` with its own least delay and
-- trim flag: effect.lua's runs decide many entries in one call.
-- A dead letter's `attempts` is sluice's own count of failed attempts
-- (from the hash above, plus the one that dead-lettered it when that was
-- an attempt), beside `deliveries`, Redis's count of reads and claims.
local S, A, D = KEYS[1], KEYS[2], KEYS[3]
local G, ME, ID = ARGV[1], ARGV[2], ARGV[3]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function owned(id)
  local p = redis.call('XPENDING', S, G, id, id, 1, ME)
  if #p == 0 then return nil end
  return p[1]
end
local function finish(id)
  redis.call('XACK', S, G, id)
  redis.call('HDEL', A, id)
end
local function dead(id, err, deliveries, trim, attempts)
  local added = {error=1, source_id=1, deliveries=1, attempts=1, consumer=1, failed_at=1}
  local e = redis.call('XRANGE', S, id, id)
  local args = {D, '*'}
  if #e > 0 then
    local f = e[1][2]
    if #f > 7000 then trim = '1' end
    for i = 1, #f, 2 do
      local k = f[i]
      if not added[k] and (trim ~= '1' or k == 'type' or k == 'data') then
        args[#args+1] = k; args[#args+1] = f[i+1]
      end
    end
  end
  local extra = {'error', err, 'source_id', id, 'deliveries', tostring(deliveries),
                 'attempts', tostring(attempts), 'consumer', ME, 'failed_at', tostring(now_ms())}
  for i = 1, #extra do args[#args+1] = extra[i] end
  redis.call('XADD', unpack(args))
  finish(id)
end
local function parse_att(v)
  if not v then return 0, 0, '' end
  local n, at, why = string.match(v, '^(%d+):(%d+):?(.*)$')
  if not n then return 0, 0, '' end
  return tonumber(n), tonumber(at), why
end
local function retry(id, why, deliveries, max, first, cap, least)
  local n = parse_att(redis.call('HGET', A, id)) + 1
  if n >= max then
    dead(id, 'max_deliveries_exceeded: ' .. why, deliveries, '0', n)
    return 3
  end
  local d = first
  for i = 2, n do
    if d >= cap then break end
    d = d * 2
  end
  if d > cap then d = cap end
  if least and least > d then d = least end
  redis.call('HSET', A, id, n .. ':' .. string.format('%d', now_ms() + d) .. ':' .. why)
  return 2
end
local function decide_at(id, kind, err, p, least, trim)
  if kind == 'retry' then
    return retry(id, err, p[4], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), least)
  end
  if kind == 'dead' then
    local n = parse_att(redis.call('HGET', A, id))
    local code = string.match(err, '^[^:]*')
    if code ~= 'max_deliveries_exceeded' and code ~= 'expired' then n = n + 1 end
    dead(id, err, p[4], trim, n)
    return 3
  end
  finish(id)
  return 1
end
local function decide(kind, err, p)
  return decide_at(ID, kind, err, p, tonumber(ARGV[10]), ARGV[9])
end
