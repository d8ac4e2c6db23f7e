/* validate.c -- the public validators of docs/semantics.md that handlers
 * call on an entry's `data` (sl_get_id, sl_get_amount, sl_get_currency,
 * sl_get_string): each records the documented error code on the context
 * when the value is not acceptable.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Looks up `key` in the object `data` and records "missing_field: <key>"
 * when it is absent (a non-object `data` has no fields). JSON null counts
 * as present, so it fails later as wrong_type. Returns the value
 * (borrowed from data) or NULL. */
static json_t *lookup(struct sl_ctx *ctx, json_t *data, const char *key)
{
    json_t *v = json_is_object(data) ? json_object_get(data, key) : NULL;

    if (v == NULL)
        sl__ctx_seterr(ctx, "missing_field", "%s", key);
    return v;
}

/* Returns the string `key` of `data` (borrowed) with its length, or NULL
 * after recording missing_field or "wrong_type: <key>: expected string". */
static const char *lookup_string(struct sl_ctx *ctx, json_t *data, const char *key,
                                 size_t *len)
{
    json_t *v = lookup(ctx, data, key);

    if (v == NULL)
        return NULL;
    if (!json_is_string(v)) {
        sl__ctx_seterr(ctx, "wrong_type", "%s: expected string", key);
        return NULL;
    }
    *len = json_string_length(v);
    return json_string_value(v);
}

/* Tells whether c may appear in an identifier: [A-Za-z0-9_.:-]. Written
 * out rather than with isalnum() so that the locale cannot widen it. */
static int is_id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-';
}

/* Validates an identifier (see sluice.h): 1-64 characters of
 * [A-Za-z0-9_.:-]. Stores the string, borrowed from data, in *out. */
int sl_get_id(struct sl_ctx *ctx, json_t *data, const char *key, const char **out)
{
    size_t len = 0, i;
    const char *s = lookup_string(ctx, data, key, &len);

    if (s == NULL)
        return -1;
    if (len < 1 || len > 64)
        goto invalid;
    for (i = 0; i < len; i++)
        if (!is_id_char((unsigned char)s[i]))
            goto invalid;
    if (out != NULL)
        *out = s;
    return 0;

invalid:
    sl__ctx_seterr(ctx, "invalid_id", "%s: expected 1-64 characters of [A-Za-z0-9_.:-]", key);
    return -1;
}

/* Validates an integer amount lo <= v <= hi (see sluice.h). Only a JSON
 * integer qualifies: a real such as 1e2 or 100.0, and a string such as
 * "100", are wrong_type, so that two senders cannot disagree about what
 * an amount means. */
int sl_get_amount(struct sl_ctx *ctx, json_t *data, const char *key,
                  long long lo, long long hi, long long *out)
{
    json_t *v = lookup(ctx, data, key);
    long long n;

    if (v == NULL)
        return -1;
    if (!json_is_integer(v)) {
        sl__ctx_seterr(ctx, "wrong_type", "%s: expected integer", key);
        return -1;
    }
    n = (long long)json_integer_value(v);
    if (n < lo || n > hi) {
        sl__ctx_seterr(ctx, "invalid_amount", "%s: expected an integer from %lld to %lld",
                       key, lo, hi);
        return -1;
    }
    if (out != NULL)
        *out = n;
    return 0;
}

/* Validates a currency code: exactly three ASCII upper-case letters.
 * Stores the string, borrowed from data, in *out. */
int sl_get_currency(struct sl_ctx *ctx, json_t *data, const char *key, const char **out)
{
    size_t len = 0, i;
    const char *s = lookup_string(ctx, data, key, &len);

    if (s == NULL)
        return -1;
    if (len != 3)
        goto invalid;
    for (i = 0; i < 3; i++)
        if (s[i] < 'A' || s[i] > 'Z')
            goto invalid;
    if (out != NULL)
        *out = s;
    return 0;

invalid:
    sl__ctx_seterr(ctx, "invalid_currency", "%s: expected three upper-case letters", key);
    return -1;
}

/* Validates a required string. An empty string, when not allowed, is
 * treated like an absent field ("missing_field: <key>"), as the table of
 * docs/semantics.md treats an empty `data` or `type`. Stores the string,
 * borrowed from data, in *out. */
int sl_get_string(struct sl_ctx *ctx, json_t *data, const char *key,
                  int allow_empty, const char **out)
{
    size_t len = 0;
    const char *s = lookup_string(ctx, data, key, &len);

    if (s == NULL)
        return -1;
    if (len == 0 && !allow_empty) {
        sl__ctx_seterr(ctx, "missing_field", "%s", key);
        return -1;
    }
    if (out != NULL)
        *out = s;
    return 0;
}

/* Runs the validator that matches r's kind on data, storing the value in
 * *out. Returns 0, or -1 after the validator recorded the error. */
static int check_one(struct sl_ctx *ctx, json_t *data, const struct sl_rule *r,
                     struct sl_value *out)
{
    out->s = NULL;
    out->n = 0;
    switch (r->kind) {
    case SL_KIND_ID:
        return sl_get_id(ctx, data, r->key, &out->s);
    case SL_KIND_AMOUNT:
        return sl_get_amount(ctx, data, r->key, 1, SL_MAX_CENTS, &out->n);
    case SL_KIND_BALANCE:
        return sl_get_amount(ctx, data, r->key, 0, SL_MAX_CENTS, &out->n);
    case SL_KIND_CURRENCY:
        return sl_get_currency(ctx, data, r->key, &out->s);
    case SL_KIND_TEXT:
    default:
        return sl_get_string(ctx, data, r->key, 0, &out->s);
    }
}

/* Returns 1 when v has the JSON type r's kind needs (an integer for the
 * amounts, a string otherwise): 1e2 and 100.0 are not integers. */
static int type_ok(const struct sl_rule *r, const json_t *v)
{
    if (r->kind == SL_KIND_AMOUNT || r->kind == SL_KIND_BALANCE)
        return json_is_integer(v);
    return json_is_string(v);
}

/* Checks every rule in the dead-letter table's order (see sluice.h):
 * presence of every field, then the JSON type of every field, then the
 * values kind by kind. Each failure is reported by the validator of its
 * kind, so codes and texts are the same as a handler calling it itself. */
int sl_data_check(struct sl_ctx *ctx, json_t *data, const struct sl_rule *rules, size_t n,
                  struct sl_value *vals)
{
    size_t i;
    int kind;

    if (!json_is_object(data)) {
        /* The framework refuses such an entry before any handler runs;
         * this guards a direct call. */
        sl__ctx_seterr(ctx, "invalid_schema", "data is not an object");
        return -1;
    }
    for (i = 0; i < n; i++)
        if (json_object_get(data, rules[i].key) == NULL &&
            check_one(ctx, data, &rules[i], &vals[i]) < 0)
            return -1;
    for (i = 0; i < n; i++)
        if (!type_ok(&rules[i], json_object_get(data, rules[i].key)) &&
            check_one(ctx, data, &rules[i], &vals[i]) < 0)
            return -1;
    for (kind = 0; kind < SL_NKINDS; kind++)
        for (i = 0; i < n; i++)
            if ((int)rules[i].kind == kind && check_one(ctx, data, &rules[i], &vals[i]) < 0)
                return -1;
    return 0;
}
