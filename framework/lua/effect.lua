#!lua
--@include lib
local function effect(KEYS, ARGV, ...) --@body
end
-- effect.lua -- the wrapper of every handler's effect script. The
-- framework puts the handler's body where the first line says --@body
-- (on line 3, so line N of a Redis error in an effect is line N-2 of the
-- handler's body), making it a function over its own KEYS and ARGV (the
-- framework's come first and are stripped); its first extra argument
-- (`...`) is a table that lives for one call and is shared by the
-- entries of a run (nothing for a single entry), where a body may
-- remember what it has checked in this call. `...` rather than a named
-- parameter keeps a body runnable by a plain EVAL too, where `...` is
-- empty and a name would be an undefined global. It runs only while the entry
-- is still ours, and its result picks ack, retry or dead:
-- {'retry', reason} or {'dead', 'code: detail'}, anything else acks.
-- KEYS: stream attempts dead handler_keys...
-- ARGV: group consumer id max_deliveries first_delay_ms cap_ms kind error trim least_delay_ms handler_args...
-- Returns what commit.lua returns. The handler's KEYS and ARGV are
-- copied with {unpack(...)}, which sizes each table once; a loop that
-- appends one by one regrows them at every power of two, and cost Redis
-- about 7,000 instructions per call for a payment's 15 values. unpack()
-- is limited to a few thousand values, hence the loop for huge lists.
--
-- A run: kind "run" commits several entries of one read batch, all with
-- this effect, in one call, because the call's fixed part (EVALSHA and
-- the framework's keys and arguments, the fence, the ack) cost Redis
-- about as much as a payment's writes. Then id is the lowest ID of the
-- run and error the highest; trim is the layout, three numbers per entry
-- in stream order: its key count, its argument count, its least retry
-- delay (ms). After the framework's keys come each entry's keys in that
-- order; after the framework's arguments, each entry's ID then its
-- arguments. One XPENDING of the ID range tells which entries are still
-- ours (paged, since other own entries may lie in the range); each one
-- that is runs in pcall, so a runtime error of one entry leaves the
-- others applied, and its writes before the error stay, as they would
-- without a run. The acks of the run go in one XACK and one HDEL at the
-- end. Returns one result per entry, in order: 0 1 2 3 as commit.lua,
-- or the error of an entry whose effect failed (a string starting with
-- its error code, as Redis's reply to a failed script would: "ERR" for
-- a Lua error), which the worker retries as "effect_failed: ...".
local function own_range(first, last, n)
  local own, from = {}, first
  while true do
    local p = redis.call('XPENDING', S, G, from, last, n, ME)
    for i = 1, #p do own[p[i][1]] = p[i] end
    if #p < n then return own end
    from = '(' .. p[#p][1]
  end
end
local function copy(t, from, n)
  if n < 4000 then return {unpack(t, from, from + n - 1)} end
  local c = {}
  for i = from, from + n - 1 do c[#c+1] = t[i] end
  return c
end
if ARGV[7] == 'run' then
  local lay = {}
  for x in string.gmatch(ARGV[9], '%d+') do lay[#lay+1] = tonumber(x) end
  local own = own_range(ID, ARGV[8], #lay / 3 + 16)
  local res, acks, ki, ai, run = {}, {}, 4, 11, {}
  for j = 1, #lay, 3 do
    local nk, na = lay[j], lay[j+1]
    local id, r = ARGV[ai], 0
    local p = own[id]
    if p then
      local ok, v = pcall(effect, copy(KEYS, ki, nk), copy(ARGV, ai + 1, na), run)
      if not ok then
        if type(v) == 'table' then v = v.err end
        r = tostring(v)
        if not string.match(r, '^%u+ ') then r = 'ERR ' .. r end
      elseif type(v) == 'table' and (v[1] == 'retry' or v[1] == 'dead') then
        r = decide_at(id, v[1], tostring(v[2] or v[1]), p, lay[j+2], '0')
      else
        acks[#acks+1] = id
        r = 1
      end
    end
    res[#res+1] = r
    ki = ki + nk
    ai = ai + 1 + na
  end
  if #acks > 0 then
    redis.call('XACK', S, G, unpack(acks))
    redis.call('HDEL', A, unpack(acks))
  end
  return res
end
local p = owned(ID)
if not p then return 0 end
local r = effect(copy(KEYS, 4, #KEYS - 3), copy(ARGV, 11, #ARGV - 10))
if type(r) == 'table' and (r[1] == 'retry' or r[1] == 'dead') then
  return decide(r[1], tostring(r[2] or r[1]), p)
end
return decide('ack', '', p)
