--@include schema
-- order_payment_result.lua -- the effect of payment.succeeded and payment.declined (one script, two outcomes) (workers/order.c).
-- KEYS: order payment expiry notifications
--   1 order:<order_id> (its field fp_result holds the result's
--       fingerprint), 2 payment:<payment_id>, 3 sluice:fp:expiry,
--   4 notifications (the webhook worker's stream).
-- ARGV: fingerprint payment_id order_id outcome reason retention_ms notification
--   1 fingerprint, 2 payment_id, 3 order_id, 4 'paid' or 'failed',
--       5 the decline reason ('' for paid), 6 idempotency_retention_ms
--       ('0': the order's fingerprints are kept for ever; else the
--       order, final now, is added to the expiry stream), 7 the `data`
--       of the merchant's notification, '' when no webhook URL is
--       configured (then nothing is written to notifications).
-- Returns 'paid', 'failed' or 'duplicate', or a retry or dead reply.
--
-- Anyone who can XADD to `orders` can write a payment result, so the
-- event is only a claim: it is applied only when payment:<payment_id>
-- says the same thing. The payment worker writes that record in the same
-- script as it XADDs the result, and writes it once, so a genuine result
-- always finds its record and the record never changes afterwards. The
-- checks, in order:
--   - the fingerprint first, so a repeat of a result already applied
--     acks whatever happened since (a fingerprint is stored only for a
--     result that passed every check below);
--   - no payment record at all: the result was not written by a payment,
--     DEAD payment_mismatch. Not RETRY, even when the order does not
--     exist yet: waiting cannot make a genuine result out of this entry,
--     since the genuine one is added with its record. (This check comes
--     before the order's: "a result for an order not created yet is
--     RETRY" is about a genuine result that overtook its order.)
--   - the record's order_id, status (succeeded for payment.succeeded,
--     declined for payment.declined) and, for a decline, reason must be
--     the event's. The reason must match rather than be copied from the
--     record: a genuine decline carries its record's reason, so any other
--     reason marks the event as forged, and the order then copies a
--     reason that is both the event's and the record's;
--   - a different fingerprint under this payment_id is a conflict (kept
--     as a guard: with an unchanged record it cannot happen, since the
--     checks above pin every field the fingerprint covers);
--   - the order must exist (else RETRY: the result overtook
--     order.created), and its user, amount and currency must be the
--     payment's, so that a payment of 1 cent, or by another user, never
--     pays an order of 300. Amounts are compared as the decimal text
--     both workers write, never through tonumber().
-- Then the order's state decides: pending moves to paid or failed; a
-- final state equal to this result (same reason for a decline) is an
-- idempotent repeat; any other final state is a conflict and is left
-- untouched. Every check comes before the first write, the types of the
-- keys too: both hashes are read with one HMGET each through
-- redis.pcall (all the fields any check needs, read once), and the
-- expiry and notifications streams are checked only when they are about
-- to be written.
local st = redis.pcall('HMGET', KEYS[1], 'fp_result', 'status', 'reason', 'user_id',
                      'amount_cents', 'currency')
if st.err then return wrong(KEYS[1], 'hash', st) end
local fp = st[1]
if fp and fp == digest(ARGV[1]) then return 'duplicate' end
local function txt(v)
  if v then return v end
  return '(none)'
end
local function mismatch(detail)
  return {'dead', 'payment_mismatch: payment ' .. ARGV[2] .. ' ' .. detail}
end
local pay = redis.pcall('HMGET', KEYS[2], 'order_id', 'user_id', 'amount_cents',
                        'currency', 'status', 'reason')
if pay.err then return wrong(KEYS[2], 'hash', pay) end
if not pay[1] and redis.call('EXISTS', KEYS[2]) == 0 then
  return {'dead', 'payment_mismatch: no payment record ' .. KEYS[2]}
end
if pay[1] ~= ARGV[3] then
  return mismatch('is for order ' .. txt(pay[1]) .. ', not ' .. ARGV[3])
end
local want = 'succeeded'
if ARGV[4] == 'failed' then want = 'declined' end
if pay[5] ~= want then
  return mismatch('is ' .. txt(pay[5]) .. ', not ' .. want)
end
if want == 'declined' and pay[6] ~= ARGV[5] then
  return mismatch('was declined (' .. txt(pay[6]) .. '), not (' .. ARGV[5] .. ')')
end
if fp then return conflict('payment result', ARGV[2]) end
local status, reason = st[2], st[3]
if not status and redis.call('EXISTS', KEYS[1]) == 0 then
  return {'retry', 'order_not_found: ' .. ARGV[3]}
end
if st[4] ~= pay[2] or st[5] ~= pay[3] or st[6] ~= pay[4] then
  return mismatch('is ' .. txt(pay[3]) .. ' ' .. txt(pay[4]) .. ' from user ' .. txt(pay[2]) ..
                  ', order ' .. ARGV[3] .. ' is ' .. txt(st[5]) .. ' ' .. txt(st[6]) ..
                  ' from user ' .. txt(st[4]))
end
if status == 'pending' then
  local exp, note
  if ARGV[6] ~= '0' then exp = KEYS[3] end
  if ARGV[7] ~= '' then note = KEYS[4] end
  if exp or note then
    local bad = streams_bad(exp or note, exp and note or nil)
    if bad then return bad end
  end
  local mine = digest(ARGV[1])
  if ARGV[4] == 'paid' then
    redis.call('HSET', KEYS[1], 'status', 'paid', 'fp_result', mine)
  else
    redis.call('HSET', KEYS[1], 'status', 'failed', 'reason', ARGV[5], 'fp_result', mine)
  end
  if ARGV[6] ~= '0' then redis.call('XADD', KEYS[3], '*', 'k', KEYS[1], 'f', 'fp', 'f', 'fp_result') end
  -- The merchant's notification, in the same atomic step as the order's
  -- transition: written once, exactly when the order becomes final.
  if ARGV[7] ~= '' then
    redis.call('XADD', KEYS[4], '*', 'type', 'order.' .. ARGV[4], 'data', ARGV[7])
  end
  return ARGV[4]
end
if status == ARGV[4] and (status == 'paid' or reason == ARGV[5]) then
  return 'duplicate'
end
local now = 'without a status'
if status then
  now = status
  if status == 'failed' and reason then now = now .. ' (' .. reason .. ')' end
end
local said = 'succeeded'
if ARGV[4] == 'failed' then said = 'declined (' .. ARGV[5] .. ')' end
return {'dead', 'idempotency_conflict: order ' .. ARGV[3] .. ' is already ' .. now ..
        ', payment ' .. ARGV[2] .. ' says ' .. said}
