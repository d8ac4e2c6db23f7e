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

/* ---------------------------------------------------------------------
 * Effect scripts
 * ------------------------------------------------------------------ */

/* user.created.
 * KEYS: 1 user:<id>, 2 sluice:fp:user:<id>, 3 ledger.
 * ARGV: 1 fingerprint, 2 user_id, 3 name, 4 email, 5 balance_cents.
 * Returns 'created' or 'duplicate' (both ack), or a dead reply. A user
 * hash that exists without a fingerprint was not made by sluice; taking
 * it over silently would break the conservation invariant (its balance
 * has no open: ledger entry), so that is a conflict too. */
static const struct sl_script user_created_script = {
    .name = "user_created",
    .body = SCHEMA_LUA_PRELUDE
        "local bad = wrong_types({{KEYS[1], 'hash'}, {KEYS[2], 'string'}, {KEYS[3], 'stream'}})\n"
        "if bad then return bad end\n"
        "local fp = redis.call('GET', KEYS[2])\n"
        "if fp then\n"
        "  if fp == ARGV[1] then return 'duplicate' end\n"
        "  return conflict('user', ARGV[2])\n"
        "end\n"
        "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
        "  return {'dead', 'idempotency_conflict: user ' .. ARGV[2] .. ' exists but was not created by sluice'}\n"
        "end\n"
        "redis.call('HSET', KEYS[1], 'name', ARGV[3], 'email', ARGV[4], 'balance_cents', ARGV[5])\n"
        "if ARGV[5] ~= '0' then\n"
        "  redis.call('XADD', KEYS[3], '*', 'user_id', ARGV[2], 'delta_cents', ARGV[5],\n"
        "             'ref', 'open:' .. ARGV[2])\n"
        "end\n"
        "redis.call('SET', KEYS[2], ARGV[1])\n"
        "return 'created'\n"
};

/* user.credited.
 * KEYS: 1 user:<user_id>, 2 credit:<credit_id>, 3 sluice:fp:credit:<credit_id>, 4 ledger.
 * ARGV: 1 fingerprint, 2 credit_id, 3 user_id, 4 amount_cents.
 * Returns 'credited' or 'duplicate', or a dead or retry reply. The
 * fingerprint is looked at before the user, so a repeat of an applied
 * credit acks even if the user were gone. A balance of 19 digits or more
 * could overflow HINCRBY's 64 bits after a credit of up to 10^12; that is
 * refused before any write instead of failing half-way. */
static const struct sl_script user_credited_script = {
    .name = "user_credited",
    .body = SCHEMA_LUA_PRELUDE
        "local bad = wrong_types({{KEYS[1], 'hash'}, {KEYS[2], 'hash'}, {KEYS[3], 'string'},\n"
        "                        {KEYS[4], 'stream'}})\n"
        "if bad then return bad end\n"
        "local fp = redis.call('GET', KEYS[3])\n"
        "if fp then\n"
        "  if fp == ARGV[1] then return 'duplicate' end\n"
        "  return conflict('credit', ARGV[2])\n"
        "end\n"
        "if redis.call('EXISTS', KEYS[2]) == 1 then\n"
        "  return {'dead', 'idempotency_conflict: credit ' .. ARGV[2] .. ' exists but was not created by sluice'}\n"
        "end\n"
        "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
        "  return {'dead', 'unknown_user: ' .. ARGV[3]}\n"
        "end\n"
        "local bal = redis.call('HGET', KEYS[1], 'balance_cents')\n"
        "if not is_dec(bal) then\n"
        "  return {'retry', 'corrupt_balance: ' .. KEYS[1] .. ' balance_cents is not a non-negative integer'}\n"
        "end\n"
        "if #bal > 18 then\n"
        "  return {'dead', 'invalid_amount: crediting ' .. ARGV[4] .. ' could overflow the balance of user ' .. ARGV[3]}\n"
        "end\n"
        "redis.call('HINCRBY', KEYS[1], 'balance_cents', ARGV[4])\n"
        "redis.call('HSET', KEYS[2], 'user_id', ARGV[3], 'amount_cents', ARGV[4])\n"
        "redis.call('XADD', KEYS[4], '*', 'user_id', ARGV[3], 'delta_cents', ARGV[4],\n"
        "           'ref', 'credit:' .. ARGV[2])\n"
        "redis.call('SET', KEYS[3], ARGV[1])\n"
        "return 'credited'\n"
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
    rc = sl_ctx_effect(ctx, &user_created_script, 3, keys, 5, args);
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
    rc = sl_ctx_effect(ctx, &user_credited_script, 4, keys, 4, args);
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
