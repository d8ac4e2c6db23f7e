/* user.c -- the "user" worker of the payment flow (docs/payment-flow.md).
 *
 * It consumes the `users` stream:
 *   user.created  {user_id, name, email, balance_cents}
 *       creates user:<id> once and writes the opening balance to the
 *       ledger as ref open:<id> (no ledger entry for an opening of 0);
 *   user.credited {credit_id, user_id, amount_cents}
 *       once per credit_id: adds to the balance, writes credit:<id> and a
 *       ledger entry ref credit:<id>; an unknown user is DEAD unknown_user.
 *
 * Idempotency is by business ID: the effect script stores a fingerprint
 * (a digest of the canonical JSON of the validated fields) in field fp
 * of user:<id> or credit:<id>. The same fingerprint again is acked with no
 * effect; a different one is DEAD idempotency_conflict, and the first
 * event stands. A repeated user.created is therefore compared with the
 * first event, never with today's balance.
 *
 * The handler validates and declares; it never talks to Redis.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sluice.h"
#include "schema.h"
#include "wk_lua.h"           /* generated from workers/lua/ */

/* ---------------------------------------------------------------------
 * Effect scripts
 * ------------------------------------------------------------------ */

/* Its KEYS, ARGV and replies: workers/lua/user_created.lua. */
static const struct sl_script user_created_script = {
    .name = "user_created",
    .body = workers_lua_user_created,
};

/* Its KEYS, ARGV and replies: workers/lua/user_credited.lua. */
static const struct sl_script user_credited_script = {
    .name = "user_credited",
    .body = workers_lua_user_credited,
};

/* The keys its scripts touch (for `sluice acl`). */
static const char *const user_keys[] = {
    "user:*", "credit:*", "ledger", SCHEMA_EXPIRY_KEY,
    NULL,
};

/* The scripts this handler may declare, NULL-terminated. */
static const struct sl_script *const user_scripts[] = {
    &user_created_script,
    &user_credited_script,
    NULL
};

/* ---------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------ */

/* The fields of user.created, in the order their values are reported. */
static const struct sl_rule user_created_fields[] = {
    { "user_id", SL_KIND_ID },
    { "name", SL_KIND_TEXT },
    { "email", SL_KIND_TEXT },
    { "balance_cents", SL_KIND_BALANCE },
};
#define USER_CREATED_NFIELDS (sizeof user_created_fields / sizeof user_created_fields[0])

/* The fields of user.credited. */
static const struct sl_rule user_credited_fields[] = {
    { "credit_id", SL_KIND_ID },
    { "user_id", SL_KIND_ID },
    { "amount_cents", SL_KIND_AMOUNT },
};
#define USER_CREDITED_NFIELDS (sizeof user_credited_fields / sizeof user_credited_fields[0])

/* Validates a user.created event in data (borrowed) and declares its
 * effect on ctx. Returns SL_ACK with the effect declared, SL_DEAD with
 * the validation error, or SL_RETRY when memory ran out (not the
 * event's fault). */
static enum sl_disposition user_created(struct sl_ctx *ctx, const struct sl_msg *msg,
                                        void *privdata)
{
    json_t *data = msg->data;
    struct sl_value v[USER_CREATED_NFIELDS];
    char k_user[SCHEMA_KEYLEN], balance[24];
    const char *keys[3], *args[6];
    char *fp;
    int rc;

    if (sl_data_check(ctx, data, user_created_fields, USER_CREATED_NFIELDS, v) < 0)
        return SL_DEAD;
    fp = schema_fingerprint(json_pack("{s:s, s:s, s:s, s:I}",
                                      "user_id", v[0].s, "name", v[1].s,
                                      "email", v[2].s,
                                      "balance_cents", (json_int_t)v[3].n));
    if (fp == NULL)
        return sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "user.created fingerprint");
    snprintf(balance, sizeof balance, "%lld", v[3].n);
    keys[0] = schema_key(k_user, "user:", v[0].s);
    keys[1] = "ledger";
    keys[2] = SCHEMA_EXPIRY_KEY;
    args[0] = fp;
    args[1] = v[0].s;
    args[2] = v[1].s;
    args[3] = v[2].s;
    args[4] = balance;
    args[5] = schema_retention(privdata);
    rc = SCHEMA_EFFECT(ctx, &user_created_script, WORKERS_LUA_USER_CREATED, keys, args);
    free(fp);
    if (rc != 0)
        return schema_effect_failed(ctx, rc, "the user.created effect");
    return SL_ACK;
}

/* Validates a user.credited event in data (borrowed) and declares its
 * effect. Whether the user exists is decided by the script, atomically
 * with the credit. Returns like user_created. */
static enum sl_disposition user_credited(struct sl_ctx *ctx, const struct sl_msg *msg,
                                         void *privdata)
{
    json_t *data = msg->data;
    struct sl_value v[USER_CREDITED_NFIELDS];
    char k_user[SCHEMA_KEYLEN], k_credit[SCHEMA_KEYLEN];
    char amount[24];
    const char *keys[4], *args[5];
    char *fp;
    int rc;

    if (sl_data_check(ctx, data, user_credited_fields, USER_CREDITED_NFIELDS, v) < 0)
        return SL_DEAD;
    fp = schema_fingerprint(json_pack("{s:s, s:s, s:I}",
                                      "credit_id", v[0].s, "user_id", v[1].s,
                                      "amount_cents", (json_int_t)v[2].n));
    if (fp == NULL)
        return sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "user.credited fingerprint");
    snprintf(amount, sizeof amount, "%lld", v[2].n);
    keys[0] = schema_key(k_user, "user:", v[1].s);
    keys[1] = schema_key(k_credit, "credit:", v[0].s);
    keys[2] = "ledger";
    keys[3] = SCHEMA_EXPIRY_KEY;
    args[0] = fp;
    args[1] = v[0].s;
    args[2] = v[1].s;
    args[3] = amount;
    args[4] = schema_retention(privdata);
    rc = SCHEMA_EFFECT(ctx, &user_credited_script, WORKERS_LUA_USER_CREDITED, keys, args);
    free(fp);
    if (rc != 0)
        return schema_effect_failed(ctx, rc, "the user.credited effect");
    return SL_ACK;
}

/* ---------------------------------------------------------------------
 * The handler
 * ------------------------------------------------------------------ */

/* The event types of the users stream, each with its function: the
 * framework dead-letters any other type as unknown_type. */
static const struct sl_route user_routes[] = {
    { "user.created", user_created },
    { "user.credited", user_credited },
    { NULL, NULL }
};

const struct sl_handler user_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "user",
    .scripts = user_scripts,
    .init = schema_init,
    .destroy = schema_destroy,
    .keys = user_keys,
    .routes = user_routes,
};
