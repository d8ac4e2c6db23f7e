/* schema.h -- what the three built-in workers share: checking an event's
 * fields in the order of the dead-letter table (docs/dead-letters.md), small text
 * helpers, and the declaration of an effect with counted keys and
 * arguments. (The Lua helpers every effect script starts with are
 * workers/lua/schema.lua.)
 *
 * Everything here is `static inline`, so each worker file still exports
 * exactly one symbol (its handler) and no worker depends on another.
 * Only the worker files include this header; it includes sluice.h alone.
 */
#ifndef SL_WORKERS_SCHEMA_H
#define SL_WORKERS_SCHEMA_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <jansson.h>
#include "sluice.h"

/* The largest amount and opening balance of docs/payment-flow.md, in cents. */
#define SCHEMA_MAX_CENTS 1000000000000LL

/* Big enough for "payment:" plus a 64-character identifier, and for any
 * of the `sluice:fp:...:` keys the workers build. */
#define SCHEMA_KEYLEN 128

/* What one field of an event must be. The order of this enum is also the
 * order in which the third pass checks values (the dead-letter table: invalid_id,
 * then invalid_amount, then invalid_currency; plain strings last, since
 * they can only fail on emptiness). */
enum schema_kind {
    SCHEMA_ID = 0,                /* identifier: 1-64 of [A-Za-z0-9_.:-] */
    SCHEMA_AMOUNT,                /* JSON integer, 1 .. 10^12 */
    SCHEMA_BALANCE,               /* JSON integer, 0 .. 10^12 */
    SCHEMA_CURRENCY,              /* three upper-case letters */
    SCHEMA_TEXT,                  /* non-empty string (name, email, reason) */
    SCHEMA_NKINDS                 /* number of kinds, not a kind */
};

/* One required field of an event's `data`. */
struct schema_field {
    const char *key;              /* JSON member name */
    enum schema_kind kind;        /* what its value must be */
};

/* A checked value: `s` for string kinds, `n` for the integer kinds. */
struct schema_value {
    const char *s;                /* borrowed from the event's data; NULL for integers */
    long long n;                  /* the integer, 0 for string kinds */
};

/* Runs the framework validator that matches f's kind on data, storing the
 * value in *out. Returns 0 when the value is acceptable, or -1 after the
 * validator has recorded the documented error on ctx. */
static inline int schema_get(struct sl_ctx *ctx, json_t *data,
                             const struct schema_field *f,
                             struct schema_value *out)
{
    out->s = NULL;
    out->n = 0;
    switch (f->kind) {
    case SCHEMA_ID:
        return sl_get_id(ctx, data, f->key, &out->s);
    case SCHEMA_AMOUNT:
        return sl_get_amount(ctx, data, f->key, 1, SCHEMA_MAX_CENTS, &out->n);
    case SCHEMA_BALANCE:
        return sl_get_amount(ctx, data, f->key, 0, SCHEMA_MAX_CENTS, &out->n);
    case SCHEMA_CURRENCY:
        return sl_get_currency(ctx, data, f->key, &out->s);
    case SCHEMA_TEXT:
    default:
        return sl_get_string(ctx, data, f->key, 0, &out->s);
    }
}

/* Returns 1 when v has the JSON type that f's kind needs (integer for
 * amounts, string for everything else), else 0. A real such as 1e2 or
 * 100.0 is not an integer. */
static inline int schema_type_ok(const struct schema_field *f, const json_t *v)
{
    if (f->kind == SCHEMA_AMOUNT || f->kind == SCHEMA_BALANCE)
        return json_is_integer(v);
    return json_is_string(v);
}

/* Checks every field of fields[0..n) in data and stores the values in
 * vals (same order). docs/semantics.md says the first failing check *in the
 * table's order* names the error, so an event missing one field and
 * holding a bad identifier in another is missing_field, not invalid_id.
 * Hence three passes: presence of every field, then the JSON type of
 * every field, then the values kind by kind. Each failure is reported by
 * the framework's own validator, so codes and texts are the framework's.
 * Returns 0 when everything is valid, or -1 with the error on ctx. */
static inline int schema_check(struct sl_ctx *ctx, json_t *data,
                               const struct schema_field *fields, size_t n,
                               struct schema_value *vals)
{
    size_t i;
    int kind;

    for (i = 0; i < n; i++)
        if (json_object_get(data, fields[i].key) == NULL &&
            schema_get(ctx, data, &fields[i], &vals[i]) < 0)
            return -1;
    for (i = 0; i < n; i++)
        if (!schema_type_ok(&fields[i], json_object_get(data, fields[i].key)) &&
            schema_get(ctx, data, &fields[i], &vals[i]) < 0)
            return -1;
    for (kind = 0; kind < SCHEMA_NKINDS; kind++)
        for (i = 0; i < n; i++)
            if ((int)fields[i].kind == kind &&
                schema_get(ctx, data, &fields[i], &vals[i]) < 0)
                return -1;
    return 0;
}

/* Returns the canonical JSON text of obj (sorted keys, compact) and drops
 * the caller's reference to obj, which may be NULL (a failed json_pack).
 * New: free() the result. NULL when memory ran out. Used for the
 * idempotency fingerprints. */
static inline char *schema_fingerprint(json_t *obj)
{
    char *fp;

    if (obj == NULL)
        return NULL;
    fp = sl_json_canonical(obj);
    json_decref(obj);
    return fp;
}

/* Returns the compact, key-sorted JSON text of obj for a follow-up
 * event's `data` and drops the caller's reference to obj (which may be
 * NULL). Integers stay integers: cjson.encode inside Lua would print
 * 10^12 as 1e+12, which a consumer must reject as wrong_type, so
 * follow-up data is always built here in C. New: free() the result. */
static inline char *schema_dumps(json_t *obj)
{
    char *s;

    if (obj == NULL)
        return NULL;
    s = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    return s;
}

/* Writes prefix followed by id into buf (SCHEMA_KEYLEN bytes). Returns
 * buf. Identifiers are at most 64 characters, so nothing is cut. */
static inline const char *schema_key(char buf[SCHEMA_KEYLEN], const char *prefix,
                                     const char *id)
{
    snprintf(buf, SCHEMA_KEYLEN, "%s%s", prefix, id);
    return buf;
}

/* The number of elements of an array. */
#define SCHEMA_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Declares `script` as the entry's effect with the arrays keys and args,
 * whose sizes give the counts: they are never typed, and must equal the
 * counts of the script file's `-- KEYS:` and `-- ARGV:` lines (NAME is
 * the generated prefix, e.g. WORKERS_LUA_USER_CREATED), which the
 * compiler checks. Evaluates to what sl_ctx_effect() returns. */
#define SCHEMA_EFFECT(ctx, script, NAME, keys, args) \
    ((void)sizeof(struct { \
        _Static_assert(SCHEMA_NELEM(keys) == NAME##_NKEYS, "keys differ from the script's header"); \
        _Static_assert(SCHEMA_NELEM(args) == NAME##_NARGS, "args differ from the script's header"); \
        int unused; }), \
     sl_ctx_effect((ctx), (script), (int)SCHEMA_NELEM(keys), (keys), (int)SCHEMA_NELEM(args), (args)))

#endif /* SL_WORKERS_SCHEMA_H */
