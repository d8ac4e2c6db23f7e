-- schema.lua -- the Lua every effect script of the built-in workers
-- starts with (a `--@include schema` first line, which
-- scripts/embed-lua.sh replaces by this file joined into one line: no
-- comment at the end of a code line here, no line starting with "(").
-- The framework runs an effect body inside
-- `local function effect(KEYS, ARGV) ... end`, so these locals are
-- private to one call.
--   wrong_types(list): list holds {key, redis type} pairs; returns a
--     {'retry', ...} reply for the first key that exists with another
--     type, else nil. Checked before any write: a WRONGTYPE error after
--     a write would leave half an effect (Lua has no rollback), and a
--     retry lets an operator repair the key before the entry is
--     dead-lettered.
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
local function wrong_types(list)
  for _, kt in ipairs(list) do
    local t = redis.call('TYPE', kt[1])['ok']
    if t ~= 'none' and t ~= kt[2] then
      return {'retry', 'wrong_key_type: ' .. kt[1] .. ' is a ' .. t .. ', expected a ' .. kt[2]}
    end
  end
  return nil
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
  local h, b, x = redis.sha1hex(fp), {}, '0123456789abcdef'
  for i = 1, 16, 2 do
    local hi = string.find(x, string.sub(h, i, i), 1, true) - 1
    local lo = string.find(x, string.sub(h, i + 1, i + 1), 1, true) - 1
    b[#b + 1] = string.char(hi * 16 + lo)
  end
  return table.concat(b)
end
local function conflict(what, id)
  return {'dead', 'idempotency_conflict: ' .. what .. ' ' .. id .. ' was first seen with different data'}
end
