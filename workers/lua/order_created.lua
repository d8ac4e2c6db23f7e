--@include schema
-- order_created.lua -- the effect of order.created (workers/order.c).
-- KEYS: order payments
--   1 order:<id> (its field fp holds the fingerprint), 2 payments.
-- ARGV: fingerprint order_id user_id amount_cents currency followup_data
--   1 fingerprint, 2 order_id, 3 user_id, 4 amount_cents, 5 currency,
--       6 the `data` of the payment.requested follow-up (JSON built in C).
-- Returns 'created' or 'duplicate', or a dead or retry reply. The
-- follow-up is added in the same script as the order, so an order exists
-- exactly when its payment was requested. The order hash's type is
-- checked by its HLEN; the follow-up's XADD is the first write and is
-- made with redis.pcall, so a `payments` key of another type refuses
-- the entry (wrong_key_type) before anything was written, without a
-- check of its own.
local n, bad = hash_len(KEYS[1])
if bad then return bad end
if n > 0 then
  local fp = redis.call('HGET', KEYS[1], 'fp')
  if not fp then
    return {'dead', 'idempotency_conflict: order ' .. ARGV[2] .. ' exists but was not created by sluice'}
  end
  if fp == digest(ARGV[1]) then return 'duplicate' end
  return conflict('order', ARGV[2])
end
local id = redis.pcall('XADD', KEYS[2], '*', 'type', 'payment.requested', 'data', ARGV[6])
if type(id) == 'table' then return wrong(KEYS[2], 'stream', id) end
redis.call('HSET', KEYS[1], 'user_id', ARGV[3], 'amount_cents', ARGV[4],
           'currency', ARGV[5], 'status', 'pending', 'fp', digest(ARGV[1]))
return 'created'
