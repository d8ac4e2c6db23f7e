/* schema.h -- what the three built-in workers share: small text helpers,
 * the declaration of an effect with counted keys and arguments, and the
 * report of a failed declaration. (Checking an event's fields is the
 * public sl_data_check(); the Lua helpers every effect script starts with
 * are workers/lua/schema.lua.)
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

/* Big enough for "payment:" plus a 64-character identifier, the longest
 * key the workers build. */
#define SCHEMA_KEYLEN 128

/* Reports an sl_ctx_effect() failure with its cause. Out of memory is
 * not the event's fault: RETRY out_of_memory. Anything else (a script the
 * handler does not list, a second effect) is a bug of the worker that no
 * retry mends: DEAD effect_failed with sl_strerror()'s text, so the entry
 * waits in the dead-letter stream for a fixed worker and a replay. */
static inline enum sl_disposition schema_effect_failed(struct sl_ctx *ctx, int rc,
                                                       const char *what)
{
    if (rc == SL_ENOMEM)
        return sl_ctx_fail(ctx, SL_RETRY, "out_of_memory", "declaring %s", what);
    return sl_ctx_fail(ctx, SL_DEAD, "effect_failed", "declaring %s: %s", what, sl_strerror(rc));
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

/* The state every built-in worker keeps (its privdata): what its effects
 * need of the configuration. */
struct schema_state {
    char retention_ms[24];        /* idempotency_retention_ms as text, "0": forever */
};

/* The `init` of the built-in workers: keeps idempotency_retention_ms.
 * Returns 0, or SL_ENOMEM. */
static inline int schema_init(const struct sl_worker_info *info, void **privdata)
{
    struct schema_state *st = malloc(sizeof(*st));

    if (st == NULL)
        return SL_ENOMEM;
    snprintf(st->retention_ms, sizeof(st->retention_ms), "%lld", info->idempotency_retention_ms);
    *privdata = st;
    return 0;
}

/* The `destroy` of the built-in workers. */
static inline void schema_destroy(void *privdata)
{
    free(privdata);
}

/* Returns idempotency_retention_ms as text for an effect's ARGV: "0"
 * (forever) when the worker was not initialised (unit tests call the
 * routes directly). Borrowed from privdata. */
static inline const char *schema_retention(void *privdata)
{
    return privdata != NULL ? ((const struct schema_state *)privdata)->retention_ms : "0";
}

/* The stream of fingerprints due to expire (docs/payment-flow.md): an
 * effect that finishes a record adds {k: <record key>, f: <field>...} to
 * it when a retention is set, and the supervisor's janitor removes those
 * fields of the record once the entry is older than the retention
 * (framework/lua/expire.lua). */
#define SCHEMA_EXPIRY_KEY "sluice:fp:expiry"

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
