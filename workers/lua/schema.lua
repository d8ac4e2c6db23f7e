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
local function conflict(what, id)
  return {'dead', 'idempotency_conflict: ' .. what .. ' ' .. id .. ' was first seen with different data'}
end
