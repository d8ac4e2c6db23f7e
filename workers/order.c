/* order.c -- the "order" worker of the payment flow (docs/payment-flow.md).
 *
 * It consumes the `orders` stream:
 *   order.created     {order_id, user_id, amount_cents, currency}
 *       creates order:<id> with status pending, once, and asks for the
 *       payment: XADD payments payment.requested {payment_id = order_id,
 *       order_id, user_id, amount_cents, currency};
 *   payment.succeeded {payment_id, order_id}
 *   payment.declined  {payment_id, order_id, reason}
 *       move the order from pending to paid, or to failed with the reason
 *       copied. A result for an order not created yet is RETRY.
 *       A result is applied only when payment:<payment_id> agrees with it
 *       (same order, status and decline reason; the order's user, amount
 *       and currency): anyone can XADD to `orders`, only the payment
 *       worker writes payment records. Anything else is DEAD
 *       payment_mismatch, so a forged payment.succeeded never pays an
 *       order whose payment was declined or never made.
 *
 * Idempotency: order.created keeps a fingerprint under
 * sluice:fp:order:<order_id>, a payment result under
 * sluice:fp:payres:<payment_id>. The same data again acks with no effect
 * (and no second payment.requested); different data is DEAD
 * idempotency_conflict. A result that repeats the order's final state
 * acks with no effect; one that contradicts it (succeeded for a failed
 * order, say) is DEAD idempotency_conflict, and the first result stands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sluice.h"
#include "schema.h"

/* The stream that payment requests go to (docs/payment-flow.md). */
#define ORDER_PAYMENTS_STREAM "payments"

/* ---------------------------------------------------------------------
 * Effect scripts
 * ------------------------------------------------------------------ */

/* order.created.
 * KEYS: 1 order:<id>, 2 sluice:fp:order:<id>, 3 payments.
 * ARGV: 1 fingerprint, 2 order_id, 3 user_id, 4 amount_cents, 5 currency,
 *       6 the `data` of the payment.requested follow-up (JSON built in C).
 * Returns 'created' or 'duplicate', or a dead reply. The follow-up is
 * added in the same script as the order, so an order exists exactly when
 * its payment was requested. */
static const struct sl_script order_created_script = {
    .name = "order_created",
    .body = SCHEMA_LUA_PRELUDE
        "local bad = wrong_types({{KEYS[1], 'hash'}, {KEYS[2], 'string'}, {KEYS[3], 'stream'}})\n"
        "if bad then return bad end\n"
        "local fp = redis.call('GET', KEYS[2])\n"
        "if fp then\n"
        "  if fp == ARGV[1] then return 'duplicate' end\n"
        "  return conflict('order', ARGV[2])\n"
        "end\n"
        "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
        "  return {'dead', 'idempotency_conflict: order ' .. ARGV[2] .. ' exists but was not created by sluice'}\n"
        "end\n"
        "redis.call('HSET', KEYS[1], 'user_id', ARGV[3], 'amount_cents', ARGV[4],\n"
        "           'currency', ARGV[5], 'status', 'pending')\n"
        "redis.call('XADD', KEYS[3], '*', 'type', 'payment.requested', 'data', ARGV[6])\n"
        "redis.call('SET', KEYS[2], ARGV[1])\n"
        "return 'created'\n"
};

/* payment.succeeded and payment.declined (one script, two outcomes).
 * KEYS: 1 order:<order_id>, 2 sluice:fp:payres:<payment_id>,
 *       3 payment:<payment_id>.
 * ARGV: 1 fingerprint, 2 payment_id, 3 order_id, 4 'paid' or 'failed',
 *       5 the decline reason ('' for paid).
 * Returns 'paid', 'failed' or 'duplicate', or a retry or dead reply.
 *
 * Anyone who can XADD to `orders` can write a payment result, so the
 * event is only a claim: it is applied only when payment:<payment_id>
 * says the same thing. The payment worker writes that record in the same
 * script as it XADDs the result, and writes it once, so a genuine result
 * always finds its record and the record never changes afterwards. The
 * checks, in order:
 *   - the fingerprint first, so a repeat of a result already applied
 *     acks whatever happened since (a fingerprint is stored only for a
 *     result that passed every check below);
 *   - no payment record at all: the result was not written by a payment,
 *     DEAD payment_mismatch. Not RETRY, even when the order does not
 *     exist yet: waiting cannot make a genuine result out of this entry,
 *     since the genuine one is added with its record. (This check comes
 *     before the order's: "a result for an order not created yet is
 *     RETRY" is about a genuine result that overtook its order.)
 *   - the record's order_id, status (succeeded for payment.succeeded,
 *     declined for payment.declined) and, for a decline, reason must be
 *     the event's. The reason must match rather than be copied from the
 *     record: a genuine decline carries its record's reason, so any other
 *     reason marks the event as forged, and the order then copies a
 *     reason that is both the event's and the record's;
 *   - a different fingerprint under this payment_id is a conflict (kept
 *     as a guard: with an unchanged record it cannot happen, since the
 *     checks above pin every field the fingerprint covers);
 *   - the order must exist (else RETRY: the result overtook
 *     order.created), and its user, amount and currency must be the
 *     payment's, so that a payment of 1 cent, or by another user, never
 *     pays an order of 300. Amounts are compared as the decimal text
 *     both workers write, never through tonumber().
 * Then the order's state decides: pending moves to paid or failed; a
 * final state equal to this result (same reason for a decline) is an
 * idempotent repeat; any other final state is a conflict and is left
 * untouched. Every check comes before the first write. */
static const struct sl_script order_payment_result_script = {
    .name = "order_payment_result",
    .body = SCHEMA_LUA_PRELUDE
        "local bad = wrong_types({{KEYS[1], 'hash'}, {KEYS[2], 'string'}, {KEYS[3], 'hash'}})\n"
        "if bad then return bad end\n"
        "local fp = redis.call('GET', KEYS[2])\n"
        "if fp == ARGV[1] then return 'duplicate' end\n"
        "local function txt(v)\n"
        "  if v then return v end\n"
        "  return '(none)'\n"
        "end\n"
        "local function mismatch(detail)\n"
        "  return {'dead', 'payment_mismatch: payment ' .. ARGV[2] .. ' ' .. detail}\n"
        "end\n"
        "if redis.call('EXISTS', KEYS[3]) == 0 then\n"
        "  return {'dead', 'payment_mismatch: no payment record ' .. KEYS[3]}\n"
        "end\n"
        "local pay = redis.call('HMGET', KEYS[3], 'order_id', 'user_id', 'amount_cents',\n"
        "                       'currency', 'status', 'reason')\n"
        "if pay[1] ~= ARGV[3] then\n"
        "  return mismatch('is for order ' .. txt(pay[1]) .. ', not ' .. ARGV[3])\n"
        "end\n"
        "local want = 'succeeded'\n"
        "if ARGV[4] == 'failed' then want = 'declined' end\n"
        "if pay[5] ~= want then\n"
        "  return mismatch('is ' .. txt(pay[5]) .. ', not ' .. want)\n"
        "end\n"
        "if want == 'declined' and pay[6] ~= ARGV[5] then\n"
        "  return mismatch('was declined (' .. txt(pay[6]) .. '), not (' .. ARGV[5] .. ')')\n"
        "end\n"
        "if fp then return conflict('payment result', ARGV[2]) end\n"
        "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
        "  return {'retry', 'order_not_found: ' .. ARGV[3]}\n"
        "end\n"
        "local st = redis.call('HMGET', KEYS[1], 'status', 'reason', 'user_id',\n"
        "                      'amount_cents', 'currency')\n"
        "local status, reason = st[1], st[2]\n"
        "if st[3] ~= pay[2] or st[4] ~= pay[3] or st[5] ~= pay[4] then\n"
        "  return mismatch('is ' .. txt(pay[3]) .. ' ' .. txt(pay[4]) .. ' from user ' .. txt(pay[2]) ..\n"
        "                  ', order ' .. ARGV[3] .. ' is ' .. txt(st[4]) .. ' ' .. txt(st[5]) ..\n"
        "                  ' from user ' .. txt(st[3]))\n"
        "end\n"
        "if status == 'pending' then\n"
        "  if ARGV[4] == 'paid' then\n"
        "    redis.call('HSET', KEYS[1], 'status', 'paid')\n"
        "  else\n"
        "    redis.call('HSET', KEYS[1], 'status', 'failed', 'reason', ARGV[5])\n"
        "  end\n"
        "  redis.call('SET', KEYS[2], ARGV[1])\n"
        "  return ARGV[4]\n"
        "end\n"
        "if status == ARGV[4] and (status == 'paid' or reason == ARGV[5]) then\n"
        "  return 'duplicate'\n"
        "end\n"
        "local now = 'without a status'\n"
        "if status then\n"
        "  now = status\n"
        "  if status == 'failed' and reason then now = now .. ' (' .. reason .. ')' end\n"
        "end\n"
        "local said = 'succeeded'\n"
        "if ARGV[4] == 'failed' then said = 'declined (' .. ARGV[5] .. ')' end\n"
        "return {'dead', 'idempotency_conflict: order ' .. ARGV[3] .. ' is already ' .. now ..\n"
        "        ', payment ' .. ARGV[2] .. ' says ' .. said}\n"
};

/* The scripts this handler may declare, NULL-terminated. */
static const struct sl_script *const order_scripts[] = {
    &order_created_script,
    &order_payment_result_script,
    NULL
};

/* The event types of the orders stream. */
static const char *const order_types[] = {
    "order.created",
    "payment.succeeded",
    "payment.declined",
    NULL
};

/* ---------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------ */

/* The fields of order.created. */
static const struct schema_field order_created_fields[] = {
    { "order_id", SCHEMA_ID },
    { "user_id", SCHEMA_ID },
    { "amount_cents", SCHEMA_AMOUNT },
    { "currency", SCHEMA_CURRENCY },
};
#define ORDER_CREATED_NFIELDS (sizeof order_created_fields / sizeof order_created_fields[0])

/* The fields of payment.succeeded. */
static const struct schema_field payment_succeeded_fields[] = {
    { "payment_id", SCHEMA_ID },
    { "order_id", SCHEMA_ID },
};

/* The fields of payment.declined. */
static const struct schema_field payment_declined_fields[] = {
    { "payment_id", SCHEMA_ID },
    { "order_id", SCHEMA_ID },
    { "reason", SCHEMA_TEXT },
};

/* Validates an order.created event in data (borrowed) and declares its
 * effect, with the payment.requested follow-up built here so that the
 * amount stays a JSON integer. Returns SL_ACK with the effect declared,
 * SL_DEAD with the validation error, or SL_RETRY when memory ran out. */
static enum sl_disposition order_created(struct sl_ctx *ctx, json_t *data)
{
    struct schema_value v[ORDER_CREATED_NFIELDS];
    char k_order[SCHEMA_KEYLEN], k_fp[SCHEMA_KEYLEN], amount[24];
    const char *keys[3], *args[6];
    char *fp, *follow;
    int rc;

    if (schema_check(ctx, data, order_created_fields, ORDER_CREATED_NFIELDS, v) < 0)
        return SL_DEAD;
    fp = schema_fingerprint(json_pack("{s:s, s:s, s:I, s:s}",
                                      "order_id", v[0].s, "user_id", v[1].s,
                                      "amount_cents", (json_int_t)v[2].n,
                                      "currency", v[3].s));
    follow = schema_dumps(json_pack("{s:s, s:s, s:s, s:I, s:s}",
                                    "payment_id", v[0].s, "order_id", v[0].s,
                                    "user_id", v[1].s,
                                    "amount_cents", (json_int_t)v[2].n,
                                    "currency", v[3].s));
    if (fp == NULL || follow == NULL) {
        free(fp);
        free(follow);
        return sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "order.created effect");
    }
    snprintf(amount, sizeof amount, "%lld", v[2].n);
    keys[0] = schema_key(k_order, "order:", v[0].s);
    keys[1] = schema_key(k_fp, "sluice:fp:order:", v[0].s);
    keys[2] = ORDER_PAYMENTS_STREAM;
    args[0] = fp;
    args[1] = v[0].s;
    args[2] = v[1].s;
    args[3] = amount;
    args[4] = v[3].s;
    args[5] = follow;
    rc = sl_ctx_effect(ctx, &order_created_script, 3, keys, 6, args);
    free(fp);
    free(follow);
    if (rc != 0)
        return sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "declaring the order.created effect");
    return SL_ACK;
}

/* Validates a payment.succeeded (declined == 0) or payment.declined
 * (declined == 1) event in data (borrowed) and declares the order's
 * transition, which the script makes only when payment:<payment_id>
 * agrees with the event. The fingerprint covers the event type, so a
 * succeeded and a declined result for one payment_id never look alike.
 * Returns like order_created. */
static enum sl_disposition order_payment_result(struct sl_ctx *ctx, json_t *data,
                                                int declined)
{
    struct schema_value v[3];
    char k_order[SCHEMA_KEYLEN], k_fp[SCHEMA_KEYLEN], k_pay[SCHEMA_KEYLEN];
    const char *keys[3], *args[5];
    const char *reason;
    char *fp;
    int rc;

    if (declined) {
        if (schema_check(ctx, data, payment_declined_fields, 3, v) < 0)
            return SL_DEAD;
        reason = v[2].s;
        fp = schema_fingerprint(json_pack("{s:s, s:s, s:s, s:s}",
                                          "type", "payment.declined",
                                          "payment_id", v[0].s, "order_id", v[1].s,
                                          "reason", reason));
    } else {
        if (schema_check(ctx, data, payment_succeeded_fields, 2, v) < 0)
            return SL_DEAD;
        reason = "";
        fp = schema_fingerprint(json_pack("{s:s, s:s, s:s}",
                                          "type", "payment.succeeded",
                                          "payment_id", v[0].s, "order_id", v[1].s));
    }
    if (fp == NULL)
        return sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "payment result fingerprint");
    /* An order requests its payment under its own ID, so a result under
     * any other payment_id is not this order's, even when a payment of
     * that ID exists and agrees in user and amount (one requested by a
     * forged payment.requested). */
    if (strcmp(v[0].s, v[1].s) != 0) {
        free(fp);
        return sl_ctx_fail(ctx, SL_DEAD, "payment_mismatch",
                           "payment %s is not the payment of order %s", v[0].s, v[1].s);
    }
    keys[0] = schema_key(k_order, "order:", v[1].s);
    keys[1] = schema_key(k_fp, "sluice:fp:payres:", v[0].s);
    keys[2] = schema_key(k_pay, "payment:", v[0].s);
    args[0] = fp;
    args[1] = v[0].s;
    args[2] = v[1].s;
    args[3] = declined ? "failed" : "paid";
    args[4] = reason;
    rc = sl_ctx_effect(ctx, &order_payment_result_script, 3, keys, 5, args);
    free(fp);
    if (rc != 0)
        return sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "declaring the payment result effect");
    return SL_ACK;
}

/* ---------------------------------------------------------------------
 * The handler
 * ------------------------------------------------------------------ */

/* The `handle` hook: dispatches on the event type. msg is borrowed until
 * return; privdata is unused. The framework has already refused types
 * outside order_types; the last line guards a framework that forgot. */
static enum sl_disposition order_handle(struct sl_ctx *ctx, const struct sl_msg *msg,
                                        void *privdata)
{
    (void)privdata;
    if (!json_is_object(msg->data))
        return sl_ctx_fail(ctx, SL_DEAD, "invalid_schema", "data is not an object");
    if (strcmp(msg->type, "order.created") == 0)
        return order_created(ctx, msg->data);
    if (strcmp(msg->type, "payment.succeeded") == 0)
        return order_payment_result(ctx, msg->data, 0);
    if (strcmp(msg->type, "payment.declined") == 0)
        return order_payment_result(ctx, msg->data, 1);
    return sl_ctx_fail(ctx, SL_DEAD, "unknown_type", "%s", msg->type);
}

const struct sl_handler order_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "order",
    .flags = 0,
    .types = order_types,
    .scripts = order_scripts,
    .init = NULL,
    .handle = order_handle,
    .destroy = NULL,
};
