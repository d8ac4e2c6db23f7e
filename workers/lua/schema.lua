-- schema.lua -- the Lua every effect script of the built-in workers
-- starts with (a `--@include schema` first line, which
-- scripts/embed-lua.sh replaces by this file joined into one line: no
-- comment at the end of a code line here, no line starting with "(").
-- The framework runs an effect body inside
-- `local function effect(KEYS, ARGV) ... end`, so these locals are
-- private to one call.
--   Types. Every key a script reads or writes is checked for its type
--     before the first write: a WRONGTYPE error after a write would
--     leave half an effect (Lua has no rollback), and a RETRY reply
--     (wrong_key_type) lets an operator repair the key before the entry
--     is dead-lettered. The checks ride on the reads a script does
--     anyway, through redis.pcall (an error reply instead of an abort),
--     rather than one TYPE call per key, since every redis.call costs
--     about as much again as the command itself:
--   wrong(key, want, err): the wrong_key_type reply for key, which just
--     gave the error err; an error other than WRONGTYPE is raised again
--     as it is. TYPE is asked only on this path, for the message.
--   hash_len(key): HLEN of a hash key (0 when absent), or nil and the
--     wrong_key_type reply. A record sluice writes always has fields,
--     so 0 means "not there", with one call instead of HGET + EXISTS.
--   streams_bad(a, b, c): the wrong_key_type reply for the first of the
--     keys a, b, c (b and c may be nil) that exists and is not a stream,
--     else nil: one XREAD of all of them at '$' (it checks every key's
--     type and, without BLOCK, returns nothing), for the streams a script
--     writes but never reads. Fixed arguments rather than a list: building
--     and unpacking a table per call cost more than the XREAD.
--     In a run (several entries committed in one call: RUN, the first
--     extra argument effect.lua passes, is a table; nil otherwise) a
--     key found to be a stream or absent is remembered in RUN and not
--     asked again: the stream keys of these scripts are fixed names that
--     no record key can equal, and the scripts only ever XADD to them, so
--     within one call (nothing else runs meanwhile) such a key cannot
--     change its type. That saves a redis.call per entry (an XREAD cost
--     about 7,000 instructions), and each entry's checks still come
--     before its first write.
--   is_dec(s): true when s is a decimal integer >= 0 without leading
--     zeros, the only form a balance is ever written in.
--   dec_ge(a, b): a >= b for two such strings, compared as text (length,
--     then digit by digit) because Lua numbers are doubles and lose
--     precision above 2^53; money arithmetic itself stays in HINCRBY.
--   conflict(what, id): the idempotency_conflict dead-letter reply.
--   digest(fp): the form a fingerprint is stored in: the first 8 bytes
--     of its SHA-1, as raw bytes (16 hex digits would cost 8 more bytes
--     per record, and records are what grows with every order). A fingerprint is a field of the record it
--     protects (field fp; fp_result for a payment result in the order),
--     and the canonical JSON itself (70 bytes and more) would push a
--     small hash past hash-max-listpack-value and double its size; 64
--     bits are plenty to tell the data of one ID from other data.
--     The 16 hex digits become 8 bytes by arithmetic on their character
--     codes ((c - 48) % 39 is 0-9 for '0'-'9' and 10-15 for 'a'-'f'), all
--     read by one string.byte call: a search of each digit in a string of
--     digits cost Redis about 27,000 instructions per call, this about
--     3,000. (No tonumber(): the scripts keep none, so that no double
--     ever comes near money.)
local RUN = ...
local function wrong(key, want, err)
  if type(err.err) ~= 'string' or string.sub(err.err, 1, 9) ~= 'WRONGTYPE' then error(err) end
  return {'retry', 'wrong_key_type: ' .. key .. ' is a ' .. redis.call('TYPE', key)['ok'] .. ', expected a ' .. want}
end
local function hash_len(key)
  local n = redis.pcall('HLEN', key)
  if type(n) == 'table' then return nil, wrong(key, 'hash', n) end
  return n
end
local function streams_bad(a, b, c)
  if RUN then
    if c and RUN[c] then c = nil end
    if b and RUN[b] then b = nil end
    if a and RUN[a] then a = nil end
  end
  if not b then b, c = c, nil end
  if not a then a, b, c = b, c, nil end
  if not a then return nil end
  local r
  if c then
    r = redis.pcall('XREAD', 'COUNT', '1', 'STREAMS', a, b, c, '$', '$', '$')
  elseif b then
    r = redis.pcall('XREAD', 'COUNT', '1', 'STREAMS', a, b, '$', '$')
  else
    r = redis.pcall('XREAD', 'COUNT', '1', 'STREAMS', a, '$')
  end
  if not r or not r.err then
    if RUN then
      RUN[a] = true
      if b then RUN[b] = true end
      if c then RUN[c] = true end
    end
    return nil
  end
  for _, k in ipairs({a, b, c}) do
    local t = redis.call('TYPE', k)['ok']
    if t ~= 'none' and t ~= 'stream' then return wrong(k, 'stream', r) end
  end
  error(r)
end
local function is_dec(s)
  return type(s) == 'string' and (s == '0' or string.match(s, '^[1-9]%d*$') ~= nil)
end
local function dec_ge(a, b)
  if #a ~= #b then return #a > #b end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return true
end
local function digest(fp)
  local a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p = string.byte(redis.sha1hex(fp), 1, 16)
  return string.char(16 * ((a - 48) % 39) + (b - 48) % 39, 16 * ((c - 48) % 39) + (d - 48) % 39,
                     16 * ((e - 48) % 39) + (f - 48) % 39, 16 * ((g - 48) % 39) + (h - 48) % 39,
                     16 * ((i - 48) % 39) + (j - 48) % 39, 16 * ((k - 48) % 39) + (l - 48) % 39,
                     16 * ((m - 48) % 39) + (n - 48) % 39, 16 * ((o - 48) % 39) + (p - 48) % 39)
end
local function conflict(what, id)
  return {'dead', 'idempotency_conflict: ' .. what .. ' ' .. id .. ' was first seen with different data'}
end
