/* payment.c -- the "payment" worker of the payment flow (docs/payment-flow.md).
 *
 * It consumes the `payments` stream:
 *   payment.requested {payment_id, order_id, user_id, amount_cents, currency}
 *       once per payment_id: an unknown user is declined unknown_user; a
 *       balance below the amount is declined insufficient_funds; else the
 *       balance is debited (with a ledger entry ref payment:<id>) and the
 *       payment succeeds. Either way payment:<id> is written and the
 *       result goes to `orders` as payment.succeeded {payment_id, order_id}
 *       or payment.declined {payment_id, order_id, reason}.
 *
 * The decision depends on the balance, which only the script can read
 * atomically with the debit, so the handler passes the `data` of
 * payment.succeeded (built in C, where integers stay integers) and the
 * script adds the reason to it for a payment.declined (sorted keys:
 * "reason" comes last).
 *
 * Idempotency: the fingerprint (a digest) in field fp of payment:<payment_id>.
 * The same request again acks with no effect and no second follow-up;
 * a different one is DEAD idempotency_conflict. So each payment_id
 * moves money at most once, whatever is redelivered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sluice.h"
#include "schema.h"
#include "wk_lua.h"           /* generated from workers/lua/ */

/* Where payment results and balance changes go (docs/payment-flow.md). */
#define PAYMENT_ORDERS_STREAM "orders"
#define PAYMENT_LEDGER_STREAM "ledger"

/* ---------------------------------------------------------------------
 * Effect script
 * ------------------------------------------------------------------ */

/* Its KEYS, ARGV and replies: workers/lua/payment_requested.lua. */
static const struct sl_script payment_requested_script = {
    .name = "payment_requested",
    .body = workers_lua_payment_requested,
};

/* The keys its scripts touch (for `sluice acl`). */
static const char *const payment_keys[] = {
    "payment:*", "user:*", PAYMENT_LEDGER_STREAM, PAYMENT_ORDERS_STREAM,
    SCHEMA_EXPIRY_KEY,
    NULL,
};

/* The scripts this handler may declare, NULL-terminated. */
static const struct sl_script *const payment_scripts[] = {
    &payment_requested_script,
    NULL
};

/* ---------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------ */

/* The fields of payment.requested. */
static const struct sl_rule payment_requested_fields[] = {
    { "payment_id", SL_KIND_ID },
    { "order_id", SL_KIND_ID },
    { "user_id", SL_KIND_ID },
    { "amount_cents", SL_KIND_AMOUNT },
    { "currency", SL_KIND_CURRENCY },
};
#define PAYMENT_REQUESTED_NFIELDS \
    (sizeof payment_requested_fields / sizeof payment_requested_fields[0])

/* Validates a payment.requested event in data (borrowed) and declares its
 * effect with the data of its follow-up. Returns SL_ACK with the
 * effect declared, SL_DEAD with the validation error, or SL_RETRY when
 * memory ran out. */
static enum sl_disposition payment_requested(struct sl_ctx *ctx, const struct sl_msg *msg,
                                             void *privdata)
{
    json_t *data = msg->data;
    struct sl_value v[PAYMENT_REQUESTED_NFIELDS];
    char k_pay[SCHEMA_KEYLEN], k_user[SCHEMA_KEYLEN];
    char amount[24];
    const char *keys[5], *args[8];
    char *fp, *ok;
    enum sl_disposition d = SL_ACK;
    int rc;

    if (sl_data_check(ctx, data, payment_requested_fields, PAYMENT_REQUESTED_NFIELDS, v) < 0)
        return SL_DEAD;
    fp = schema_fingerprint(json_pack("{s:s, s:s, s:s, s:I, s:s}",
                                      "payment_id", v[0].s, "order_id", v[1].s,
                                      "user_id", v[2].s,
                                      "amount_cents", (json_int_t)v[3].n,
                                      "currency", v[4].s));
    ok = schema_dumps(json_pack("{s:s, s:s}", "payment_id", v[0].s, "order_id", v[1].s));
    if (fp == NULL || ok == NULL) {
        d = sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "payment.requested effect");
        goto cleanup;
    }
    snprintf(amount, sizeof amount, "%lld", v[3].n);
    keys[0] = schema_key(k_pay, "payment:", v[0].s);
    keys[1] = schema_key(k_user, "user:", v[2].s);
    keys[2] = PAYMENT_LEDGER_STREAM;
    keys[3] = PAYMENT_ORDERS_STREAM;
    keys[4] = SCHEMA_EXPIRY_KEY;
    args[0] = fp;
    args[1] = v[0].s;
    args[2] = v[1].s;
    args[3] = v[2].s;
    args[4] = amount;
    args[5] = v[4].s;
    args[6] = ok;
    args[7] = schema_retention(privdata);
    if ((rc = SCHEMA_EFFECT(ctx, &payment_requested_script, WORKERS_LUA_PAYMENT_REQUESTED,
                            keys, args)) != 0)
        d = schema_effect_failed(ctx, rc, "the payment.requested effect");

cleanup:
    free(fp);
    free(ok);
    return d;
}

/* ---------------------------------------------------------------------
 * The handler
 * ------------------------------------------------------------------ */

/* The event type of the payments stream and its function. */
static const struct sl_route payment_routes[] = {
    { "payment.requested", payment_requested },
    { NULL, NULL }
};

const struct sl_handler payment_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "payment",
    .scripts = payment_scripts,
    .init = schema_init,
    .destroy = schema_destroy,
    .keys = payment_keys,
    .routes = payment_routes,
};
