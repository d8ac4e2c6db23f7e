--@include schema
-- payment_requested.lua -- the effect of payment.requested (workers/payment.c).
-- KEYS: payment user ledger orders expiry
--   1 payment:<id> (its field fp holds the fingerprint), 2 user:<user_id>,
--       3 ledger, 4 orders, 5 sluice:fp:expiry.
-- ARGV: fingerprint payment_id order_id user_id amount_cents currency succeeded_data retention_ms
--   1 fingerprint, 2 payment_id, 3 order_id, 4 user_id,
--       5 amount_cents, 6 currency, 7 data of payment.succeeded,
--       8 idempotency_retention_ms ('0': keep the fingerprint for ever;
--       else the payment, final once written, joins the expiry stream).
-- The data of payment.declined is ARGV[7] with the reason added as its
-- last member: the handler writes JSON with sorted keys and no spaces,
-- and "reason" sorts after "order_id" and "payment_id", so this is the
-- very text the handler would have written (one argument instead of
-- three: each costs Redis about 800 instructions to pass).
-- Returns 'succeeded', 'declined' or 'duplicate', or a dead or retry
-- reply. Every read and check (fingerprint, user, balance, the types of
-- the keys) comes before the first write: the two hashes are checked by
-- the reads themselves, the streams to be written (ledger only when
-- money moves, the expiry stream only with a retention) by one XREAD.
-- The balance is compared with the amount as decimal
-- text (dec_ge), never through tonumber(), and the debit is HINCRBY, so
-- no double ever touches money. A balance that is not a plain
-- non-negative integer was corrupted outside sluice: RETRY, so that an
-- operator can repair it before the entry is dead-lettered.
local n, bad = hash_len(KEYS[1])
if bad then return bad end
if n > 0 then
  local fp = redis.call('HGET', KEYS[1], 'fp')
  if not fp then
    return {'dead', 'idempotency_conflict: payment ' .. ARGV[2] .. ' exists but was not created by sluice'}
  end
  if fp == digest(ARGV[1]) then return 'duplicate' end
  return conflict('payment', ARGV[2])
end
local reason = nil
local bal = redis.pcall('HGET', KEYS[2], 'balance_cents')
if type(bal) == 'table' then return wrong(KEYS[2], 'hash', bal) end
if not bal and redis.call('EXISTS', KEYS[2]) == 0 then
  reason = 'unknown_user'
elseif not is_dec(bal) then
  return {'retry', 'corrupt_balance: ' .. KEYS[2] .. ' balance_cents is not a non-negative integer'}
elseif not dec_ge(bal, ARGV[5]) then
  reason = 'insufficient_funds'
end
local ledger, expiry = nil, nil
if not reason then ledger = KEYS[3] end
if ARGV[8] ~= '0' then expiry = KEYS[5] end
bad = streams_bad(KEYS[4], ledger, expiry)
if bad then return bad end
local mine = digest(ARGV[1])
if reason then
  redis.call('HSET', KEYS[1], 'order_id', ARGV[3], 'user_id', ARGV[4],
             'amount_cents', ARGV[5], 'currency', ARGV[6],
             'status', 'declined', 'reason', reason, 'fp', mine)
  redis.call('XADD', KEYS[4], '*', 'type', 'payment.declined', 'data',
             string.sub(ARGV[7], 1, -2) .. ',"reason":"' .. reason .. '"}')
  if ARGV[8] ~= '0' then redis.call('XADD', KEYS[5], '*', 'k', KEYS[1], 'f', 'fp') end
  return 'declined'
end
redis.call('HINCRBY', KEYS[2], 'balance_cents', '-' .. ARGV[5])
redis.call('XADD', KEYS[3], '*', 'user_id', ARGV[4], 'delta_cents', '-' .. ARGV[5],
           'ref', 'payment:' .. ARGV[2])
redis.call('HSET', KEYS[1], 'order_id', ARGV[3], 'user_id', ARGV[4],
           'amount_cents', ARGV[5], 'currency', ARGV[6], 'status', 'succeeded', 'fp', mine)
redis.call('XADD', KEYS[4], '*', 'type', 'payment.succeeded', 'data', ARGV[7])
if ARGV[8] ~= '0' then redis.call('XADD', KEYS[5], '*', 'k', KEYS[1], 'f', 'fp') end
return 'succeeded'
