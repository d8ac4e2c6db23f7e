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
 * Idempotency: order.created keeps its fingerprint in field fp of
 * order:<order_id>, a payment result in field fp_result of the same
 * order (a digest: workers/lua/schema.lua). The same data again acks with no effect
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

/* Where the merchant's notifications go (the webhook worker's stream). */
#define ORDER_NOTIFICATIONS_STREAM "notifications"

/* The keys its scripts touch (for `sluice acl`). The notifications stream
 * is among them even without a webhook URL: Redis checks an ACL user's key
 * patterns against every key a script is given, written to or not. */
static const char *const order_keys[] = {
    "order:*", "payment:*", ORDER_PAYMENTS_STREAM, SCHEMA_EXPIRY_KEY, ORDER_NOTIFICATIONS_STREAM,
    NULL,
};

/* The scripts this handler may declare, NULL-terminated. */
static const struct sl_script *const order_scripts[] = {
    &order_created_script,
    &order_payment_result_script,
    NULL
};

/* ---------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------ */

/* The fields of order.created. */
static const struct sl_rule order_created_fields[] = {
    { "order_id", SL_KIND_ID },
    { "user_id", SL_KIND_ID },
    { "amount_cents", SL_KIND_AMOUNT },
    { "currency", SL_KIND_CURRENCY },
};
#define ORDER_CREATED_NFIELDS (sizeof order_created_fields / sizeof order_created_fields[0])

/* The fields of payment.succeeded. */
static const struct sl_rule payment_succeeded_fields[] = {
    { "payment_id", SL_KIND_ID },
    { "order_id", SL_KIND_ID },
};

/* The fields of payment.declined. */
static const struct sl_rule payment_declined_fields[] = {
    { "payment_id", SL_KIND_ID },
    { "order_id", SL_KIND_ID },
    { "reason", SL_KIND_TEXT },
};

/* Validates an order.created event in data (borrowed) and declares its
 * effect, with the payment.requested follow-up built here so that the
 * amount stays a JSON integer. Returns SL_ACK with the effect declared,
 * SL_DEAD with the validation error, or SL_RETRY when memory ran out. */
static enum sl_disposition order_created(struct sl_ctx *ctx, const struct sl_msg *msg,
                                         void *privdata)
{
    json_t *data = msg->data;
    struct sl_value v[ORDER_CREATED_NFIELDS];
    char k_order[SCHEMA_KEYLEN], amount[24];
    const char *keys[2], *args[6];
    char *fp, *follow;
    int rc;

    (void)privdata;
    if (sl_data_check(ctx, data, order_created_fields, ORDER_CREATED_NFIELDS, v) < 0)
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
    keys[1] = ORDER_PAYMENTS_STREAM;
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
        return schema_effect_failed(ctx, rc, "the order.created effect");
    return SL_ACK;
}


/* Tells whether a webhook URL is configured ($SLUICE_WEBHOOK_URL, read
 * once): only then does a final order add a notification. */
static int notify_enabled(void)
{
    static int on = -1;

    if (on < 0) {
        const char *u = getenv("SLUICE_WEBHOOK_URL");
        on = u != NULL && u[0] != '\0';
    }
    return on;
}

/* Validates a payment.succeeded (declined == 0) or payment.declined
 * (declined == 1) event in data (borrowed) and declares the order's
 * transition, which the script makes only when payment:<payment_id>
 * agrees with the event. The fingerprint covers the event type, so a
 * succeeded and a declined result for one payment_id never look alike.
 * Returns like order_created. */
static enum sl_disposition order_payment_result(struct sl_ctx *ctx, json_t *data,
                                                int declined, void *privdata)
{
    struct sl_value v[3];
    char k_order[SCHEMA_KEYLEN], k_pay[SCHEMA_KEYLEN];
    const char *keys[4], *args[7];
    const char *reason;
    char *fp, *note = NULL;
    int rc;

    if (declined) {
        if (sl_data_check(ctx, data, payment_declined_fields, SCHEMA_NELEM(payment_declined_fields), v) < 0)
            return SL_DEAD;
        reason = v[2].s;
        fp = schema_fingerprint(json_pack("{s:s, s:s, s:s, s:s}",
                                          "type", "payment.declined",
                                          "payment_id", v[0].s, "order_id", v[1].s,
                                          "reason", reason));
    } else {
        if (sl_data_check(ctx, data, payment_succeeded_fields, SCHEMA_NELEM(payment_succeeded_fields), v) < 0)
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
    keys[1] = schema_key(k_pay, "payment:", v[0].s);
    keys[2] = SCHEMA_EXPIRY_KEY;
    keys[3] = ORDER_NOTIFICATIONS_STREAM;
    /* With a webhook URL configured, the merchant is told the outcome:
     * the script adds this `data` to notifications when (and only when)
     * the order becomes final. Its id, the webhook-id, is the order's and
     * the outcome's, so it is the same on every retry and replay. */
    if (notify_enabled()) {
        char nid[160];
        snprintf(nid, sizeof(nid), "%s.%s", v[1].s, declined ? "failed" : "paid");
        note = schema_dumps(declined ?
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", nid, "type", "order.failed",
                      "order_id", v[1].s, "payment_id", v[0].s, "reason", reason) :
            json_pack("{s:s, s:s, s:s, s:s}", "id", nid, "type", "order.paid",
                      "order_id", v[1].s, "payment_id", v[0].s));
        if (note == NULL) {
            free(fp);
            return sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "order notification");
        }
    }
    args[0] = fp;
    args[1] = v[0].s;
    args[2] = v[1].s;
    args[3] = declined ? "failed" : "paid";
    args[4] = reason;
    args[5] = schema_retention(privdata);
    args[6] = note != NULL ? note : "";
    rc = SCHEMA_EFFECT(ctx, &order_payment_result_script, WORKERS_LUA_ORDER_PAYMENT_RESULT, keys, args);
    free(fp);
    free(note);
    if (rc != 0)
        return schema_effect_failed(ctx, rc, "the payment result effect");
    return SL_ACK;
}

/* ---------------------------------------------------------------------
 * The handler
 * ------------------------------------------------------------------ */

/* payment.succeeded: the order is paid when its payment agrees. */
static enum sl_disposition payment_succeeded(struct sl_ctx *ctx, const struct sl_msg *msg,
                                             void *privdata)
{
    return order_payment_result(ctx, msg->data, 0, privdata);
}

/* payment.declined: the order fails when its payment agrees. */
static enum sl_disposition payment_declined(struct sl_ctx *ctx, const struct sl_msg *msg,
                                            void *privdata)
{
    return order_payment_result(ctx, msg->data, 1, privdata);
}

/* The event types of the orders stream, each with its function. */
static const struct sl_route order_routes[] = {
    { "order.created", order_created },
    { "payment.succeeded", payment_succeeded },
    { "payment.declined", payment_declined },
    { NULL, NULL }
};

const struct sl_handler order_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "order",
    .scripts = order_scripts,
    .init = schema_init,
    .destroy = schema_destroy,
    .keys = order_keys,
    .routes = order_routes,
};
