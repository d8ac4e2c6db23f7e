--@include schema
-- user_credited.lua -- the effect of user.credited (workers/user.c).
-- KEYS: user credit ledger expiry
--   1 user:<user_id>, 2 credit:<credit_id> (its field fp holds the
--       fingerprint), 3 ledger, 4 sluice:fp:expiry.
-- ARGV: fingerprint credit_id user_id amount_cents retention_ms
--   1 fingerprint, 2 credit_id, 3 user_id, 4 amount_cents,
--       5 idempotency_retention_ms ('0': keep the fingerprint for ever).
-- Returns 'credited' or 'duplicate', or a dead or retry reply. The
-- fingerprint is looked at before the user, so a repeat of an applied
-- credit acks even if the user were gone. A balance of 19 digits or more
-- could overflow HINCRBY's 64 bits after a credit of up to 10^12; that is
-- refused before any write instead of failing half-way. Key types are
-- checked before the first write too: the credit by its HLEN, the user by
-- the read of its balance, the streams to be written by one XREAD.
local n, bad = hash_len(KEYS[2])
if bad then return bad end
if n > 0 then
  local fp = redis.call('HGET', KEYS[2], 'fp')
  if not fp then
    return {'dead', 'idempotency_conflict: credit ' .. ARGV[2] .. ' exists but was not created by sluice'}
  end
  if fp == digest(ARGV[1]) then return 'duplicate' end
  return conflict('credit', ARGV[2])
end
local bal = redis.pcall('HGET', KEYS[1], 'balance_cents')
if type(bal) == 'table' then return wrong(KEYS[1], 'hash', bal) end
if not bal and redis.call('EXISTS', KEYS[1]) == 0 then
  return {'dead', 'unknown_user: ' .. ARGV[3]}
end
if not is_dec(bal) then
  return {'retry', 'corrupt_balance: ' .. KEYS[1] .. ' balance_cents is not a non-negative integer'}
end
if #bal > 18 then
  return {'dead', 'invalid_amount: crediting ' .. ARGV[4] .. ' could overflow the balance of user ' .. ARGV[3]}
end
local expiry = nil
if ARGV[5] ~= '0' then expiry = KEYS[4] end
bad = streams_bad(KEYS[3], expiry)
if bad then return bad end
redis.call('HINCRBY', KEYS[1], 'balance_cents', ARGV[4])
redis.call('HSET', KEYS[2], 'user_id', ARGV[3], 'amount_cents', ARGV[4], 'fp', digest(ARGV[1]))
redis.call('XADD', KEYS[3], '*', 'user_id', ARGV[3], 'delta_cents', ARGV[4],
           'ref', 'credit:' .. ARGV[2])
if ARGV[5] ~= '0' then redis.call('XADD', KEYS[4], '*', 'k', KEYS[2], 'f', 'fp') end
return 'credited'
