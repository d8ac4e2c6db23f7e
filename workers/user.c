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
 * (the canonical JSON of the validated fields) under sluice:fp:user:<id>
 * or sluice:fp:credit:<id>. The same fingerprint again is acked with no
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

/* The scripts this handler may declare, NULL-terminated. */
static const struct sl_script *const user_scripts[] = {
    &user_created_script,
    &user_credited_script,
    NULL
};

/* The event types of the users stream; the framework dead-letters any
 * other type before calling user_handle. */
static const char *const user_types[] = {
    "user.created",
    "user.credited",
    NULL
};

/* ---------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------ */

/* The fields of user.created, in the order their values are reported. */
static const struct schema_field user_created_fields[] = {
    { "user_id", SCHEMA_ID },
    { "name", SCHEMA_TEXT },
    { "email", SCHEMA_TEXT },
    { "balance_cents", SCHEMA_BALANCE },
};
#define USER_CREATED_NFIELDS (sizeof user_created_fields / sizeof user_created_fields[0])

/* The fields of user.credited. */
static const struct schema_field user_credited_fields[] = {
    { "credit_id", SCHEMA_ID },
    { "user_id", SCHEMA_ID },
    { "amount_cents", SCHEMA_AMOUNT },
};
#define USER_CREDITED_NFIELDS (sizeof user_credited_fields / sizeof user_credited_fields[0])

/* Validates a user.created event in data (borrowed) and declares its
 * effect on ctx. Returns SL_ACK with the effect declared, SL_DEAD with
 * the validation error, or SL_RETRY when memory ran out (not the
 * event's fault). */
static enum sl_disposition user_created(struct sl_ctx *ctx, json_t *data)
{
    struct schema_value v[USER_CREATED_NFIELDS];
    char k_user[SCHEMA_KEYLEN], k_fp[SCHEMA_KEYLEN], balance[24];
    const char *keys[3], *args[5];
    char *fp;
    int rc;

    if (schema_check(ctx, data, user_created_fields, USER_CREATED_NFIELDS, v) < 0)
        return SL_DEAD;
    fp = schema_fingerprint(json_pack("{s:s, s:s, s:s, s:I}",
                                      "user_id", v[0].s, "name", v[1].s,
                                      "email", v[2].s,
                                      "balance_cents", (json_int_t)v[3].n));
    if (fp == NULL)
        return sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "user.created fingerprint");
    snprintf(balance, sizeof balance, "%lld", v[3].n);
    keys[0] = schema_key(k_user, "user:", v[0].s);
    keys[1] = schema_key(k_fp, "sluice:fp:user:", v[0].s);
    keys[2] = "ledger";
    args[0] = fp;
    args[1] = v[0].s;
    args[2] = v[1].s;
    args[3] = v[2].s;
    args[4] = balance;
    rc = SCHEMA_EFFECT(ctx, &user_created_script, WORKERS_LUA_USER_CREATED, keys, args);
    free(fp);
    if (rc != 0)
        return sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "declaring the user.created effect");
    return SL_ACK;
}

/* Validates a user.credited event in data (borrowed) and declares its
 * effect. Whether the user exists is decided by the script, atomically
 * with the credit. Returns like user_created. */
static enum sl_disposition user_credited(struct sl_ctx *ctx, json_t *data)
{
    struct schema_value v[USER_CREDITED_NFIELDS];
    char k_user[SCHEMA_KEYLEN], k_credit[SCHEMA_KEYLEN], k_fp[SCHEMA_KEYLEN];
    char amount[24];
    const char *keys[4], *args[4];
    char *fp;
    int rc;

    if (schema_check(ctx, data, user_credited_fields, USER_CREDITED_NFIELDS, v) < 0)
        return SL_DEAD;
    fp = schema_fingerprint(json_pack("{s:s, s:s, s:I}",
                                      "credit_id", v[0].s, "user_id", v[1].s,
                                      "amount_cents", (json_int_t)v[2].n));
    if (fp == NULL)
        return sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "user.credited fingerprint");
    snprintf(amount, sizeof amount, "%lld", v[2].n);
    keys[0] = schema_key(k_user, "user:", v[1].s);
    keys[1] = schema_key(k_credit, "credit:", v[0].s);
    keys[2] = schema_key(k_fp, "sluice:fp:credit:", v[0].s);
    keys[3] = "ledger";
    args[0] = fp;
    args[1] = v[0].s;
    args[2] = v[1].s;
    args[3] = amount;
    rc = SCHEMA_EFFECT(ctx, &user_credited_script, WORKERS_LUA_USER_CREDITED, keys, args);
    free(fp);
    if (rc != 0)
        return sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "declaring the user.credited effect");
    return SL_ACK;
}

/* ---------------------------------------------------------------------
 * The handler
 * ------------------------------------------------------------------ */

/* The `handle` hook: dispatches on the event type. msg is borrowed until
 * return; privdata is unused (the worker has no state). The framework
 * has already refused types outside user_types, so the last line only
 * guards a framework that forgot to. */
static enum sl_disposition user_handle(struct sl_ctx *ctx, const struct sl_msg *msg,
                                       void *privdata)
{
    (void)privdata;
    if (!json_is_object(msg->data))
        return sl_ctx_fail(ctx, SL_DEAD, "invalid_schema", "data is not an object");
    if (strcmp(msg->type, "user.created") == 0)
        return user_created(ctx, msg->data);
    if (strcmp(msg->type, "user.credited") == 0)
        return user_credited(ctx, msg->data);
    return sl_ctx_fail(ctx, SL_DEAD, "unknown_type", "%s", msg->type);
}

const struct sl_handler user_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "user",
    .flags = 0,
    .types = user_types,
    .scripts = user_scripts,
    .init = NULL,
    .handle = user_handle,
    .destroy = NULL,
};
