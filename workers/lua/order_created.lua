--@include schema
-- order_created.lua -- the effect of order.created (workers/order.c).
-- KEYS: order payments
--   1 order:<id> (its field fp holds the fingerprint), 2 payments.
-- ARGV: fingerprint order_id user_id amount_cents currency followup_data
--   1 fingerprint, 2 order_id, 3 user_id, 4 amount_cents, 5 currency,
--       6 the `data` of the payment.requested follow-up (JSON built in C).
-- Returns 'created' or 'duplicate', or a dead reply. The follow-up is
-- added in the same script as the order, so an order exists exactly when
-- its payment was requested.
local bad = wrong_types({{KEYS[1], 'hash'}, {KEYS[2], 'stream'}})
if bad then return bad end
local mine = digest(ARGV[1])
local fp = redis.call('HGET', KEYS[1], 'fp')
if fp then
  if fp == mine then return 'duplicate' end
  return conflict('order', ARGV[2])
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'dead', 'idempotency_conflict: order ' .. ARGV[2] .. ' exists but was not created by sluice'}
end
redis.call('HSET', KEYS[1], 'user_id', ARGV[3], 'amount_cents', ARGV[4],
           'currency', ARGV[5], 'status', 'pending', 'fp', mine)
redis.call('XADD', KEYS[2], '*', 'type', 'payment.requested', 'data', ARGV[6])
return 'created'
