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
#include "wk_lua.h"           /* generated from workers/lua/ */

/* The stream that payment requests go to (docs/payment-flow.md). */
#define ORDER_PAYMENTS_STREAM "payments"

/* ---------------------------------------------------------------------
 * Effect scripts
 * ------------------------------------------------------------------ */

/* Its KEYS, ARGV and replies: workers/lua/order_created.lua. */
static const struct sl_script order_created_script = {
    .name = "order_created",
    .body = workers_lua_order_created,
};

/* Its KEYS, ARGV and replies: workers/lua/order_payment_result.lua. */
static const struct sl_script order_payment_result_script = {
    .name = "order_payment_result",
    .body = workers_lua_order_payment_result,
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
    rc = SCHEMA_EFFECT(ctx, &order_created_script, WORKERS_LUA_ORDER_CREATED, keys, args);
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
    keys[0] = schema_key(k_order, "order:", v[1].s);
    keys[1] = schema_key(k_fp, "sluice:fp:payres:", v[0].s);
    keys[2] = schema_key(k_pay, "payment:", v[0].s);
    args[0] = fp;
    args[1] = v[0].s;
    args[2] = v[1].s;
    args[3] = declined ? "failed" : "paid";
    args[4] = reason;
    rc = SCHEMA_EFFECT(ctx, &order_payment_result_script, WORKERS_LUA_ORDER_PAYMENT_RESULT, keys, args);
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
