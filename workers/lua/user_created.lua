--@include schema
-- user_created.lua -- the effect of user.created (workers/user.c).
-- KEYS: user fp ledger
--   1 user:<id>, 2 sluice:fp:user:<id>, 3 ledger.
-- ARGV: fingerprint user_id name email balance_cents
--   1 fingerprint, 2 user_id, 3 name, 4 email, 5 balance_cents.
-- Returns 'created' or 'duplicate' (both ack), or a dead reply. A user
-- hash that exists without a fingerprint was not made by sluice; taking
-- it over silently would break the conservation invariant (its balance
-- has no open: ledger entry), so that is a conflict too.
local bad = wrong_types({{KEYS[1], 'hash'}, {KEYS[2], 'string'}, {KEYS[3], 'stream'}})
if bad then return bad end
local fp = redis.call('GET', KEYS[2])
if fp then
  if fp == ARGV[1] then return 'duplicate' end
  return conflict('user', ARGV[2])
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'dead', 'idempotency_conflict: user ' .. ARGV[2] .. ' exists but was not created by sluice'}
end
redis.call('HSET', KEYS[1], 'name', ARGV[3], 'email', ARGV[4], 'balance_cents', ARGV[5])
if ARGV[5] ~= '0' then
  redis.call('XADD', KEYS[3], '*', 'user_id', ARGV[2], 'delta_cents', ARGV[5],
             'ref', 'open:' .. ARGV[2])
end
redis.call('SET', KEYS[2], ARGV[1])
return 'created'
