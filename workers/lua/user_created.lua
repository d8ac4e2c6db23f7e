--@include schema
-- user_created.lua -- the effect of user.created (workers/user.c).
-- KEYS: user ledger expiry
--   1 user:<id> (its field fp holds the fingerprint), 2 ledger,
--       3 sluice:fp:expiry.
-- ARGV: fingerprint user_id name email balance_cents retention_ms
--   1 fingerprint, 2 user_id, 3 name, 4 email, 5 balance_cents,
--       6 idempotency_retention_ms ('0': keep the fingerprint for ever).
-- Returns 'created' or 'duplicate' (both ack), or a dead reply. A user
-- hash that exists without a fingerprint was not made by sluice; taking
-- it over silently would break the conservation invariant (its balance
-- has no open: ledger entry), so that is a conflict too. Key types are
-- checked before the first write: the user hash by its HLEN, the streams
-- to be written (the ledger only for an opening balance above 0, the
-- expiry stream only with a retention) by one XREAD.
local n, bad = hash_len(KEYS[1])
if bad then return bad end
if n > 0 then
  local fp = redis.call('HGET', KEYS[1], 'fp')
  if not fp then
    return {'dead', 'idempotency_conflict: user ' .. ARGV[2] .. ' exists but was not created by sluice'}
  end
  if fp == digest(ARGV[1]) then return 'duplicate' end
  return conflict('user', ARGV[2])
end
local ledger, expiry = nil, nil
if ARGV[5] ~= '0' then ledger = KEYS[2] end
if ARGV[6] ~= '0' then expiry = KEYS[3] end
if ledger or expiry then
  bad = streams_bad(ledger or expiry, ledger and expiry)
  if bad then return bad end
end
redis.call('HSET', KEYS[1], 'name', ARGV[3], 'email', ARGV[4], 'balance_cents', ARGV[5],
           'fp', digest(ARGV[1]))
if ARGV[5] ~= '0' then
  redis.call('XADD', KEYS[2], '*', 'user_id', ARGV[2], 'delta_cents', ARGV[5],
             'ref', 'open:' .. ARGV[2])
end
if ARGV[6] ~= '0' then redis.call('XADD', KEYS[3], '*', 'k', KEYS[1], 'f', 'fp') end
return 'created'
