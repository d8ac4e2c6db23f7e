/* ctx.c -- the per-entry handling context and the handler helpers.
 *
 * A worker process owns one struct sl_ctx for its whole life. Before each
 * entry the dispatcher calls sl__ctx_reset(), which forgets the previous
 * entry's error and effect but keeps the buffers, so once the buffers have
 * grown to the largest effect seen, handling an entry allocates nothing.
 *
 * The second half of the file holds what handlers call while deciding an
 * entry: sl_ctx_effect(), sl_ctx_fail(), sl_msg_field(), the validators of
 * docs/semantics.md and sl_json_canonical().
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------ */

/* Returns a fresh context for handler h, with no error and no effect, or
 * NULL when out of memory. The handler is borrowed and must outlive the
 * context. New: free with sl__ctx_free(). */
struct sl_ctx *sl__ctx_new(const struct sl_handler *h)
{
    struct sl_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->handler = h;
    ctx->script = -1;
    return ctx;
}

/* Forgets the previous entry's error, trimming flags, type and effect.
 * The key/argument buffers are kept (only their used length is cleared),
 * which is what makes the hot path allocation-free. */
void sl__ctx_reset(struct sl_ctx *ctx)
{
    if (ctx == NULL)
        return;
    ctx->err[0] = '\0';
    ctx->dead_trim_fields = 0;
    ctx->dropped_fields = 0;
    ctx->data_left = 0;
    ctx->script = -1;
    ctx->nkeys = 0;
    ctx->nargs = 0;
    ctx->buflen = 0;
    ctx->type[0] = '\0';
}

/* Frees the context and its buffers. Accepts NULL and does nothing. */
void sl__ctx_free(struct sl_ctx *ctx)
{
    if (ctx == NULL)
        return;
    free(ctx->buf);
    free(ctx->offs);
    free(ctx);
}

/* Returns key or argument i of the declared effect (keys come first,
 * then arguments), NUL-terminated and borrowed until the next reset, and
 * stores its length in *len when len is not NULL. Returns NULL when no
 * effect is declared or i is out of range. The length is derived from the
 * offsets, since every string was stored with its NUL. */
const char *sl__ctx_effect_arg(const struct sl_ctx *ctx, int i, size_t *len)
{
    int n;
    size_t end;

    if (ctx == NULL || ctx->script < 0)
        return NULL;
    n = ctx->nkeys + ctx->nargs;
    if (i < 0 || i >= n)
        return NULL;
    end = (i + 1 < n) ? ctx->offs[i + 1] : ctx->buflen;
    if (len != NULL)
        *len = end - ctx->offs[i] - 1;
    return ctx->buf + ctx->offs[i];
}

/* ---------------------------------------------------------------------
 * Error text
 * ------------------------------------------------------------------ */

/* Cuts a string that vsnprintf() had to truncate back to the start of
 * its last complete UTF-8 sequence, so that a dead letter's `error` field
 * never ends in half a character. `s` is NUL-terminated and `len` is its
 * length. */
static void trim_partial_utf8(char *s, size_t len)
{
    size_t i = len, need;
    unsigned char c;

    /* Step back over at most three continuation bytes to the lead byte. */
    while (i > 0 && len - i < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    c = (unsigned char)s[i - 1];
    if (c < 0x80)
        return;                   /* ASCII: the string ends cleanly */
    if ((c & 0xE0) == 0xC0)
        need = 2;
    else if ((c & 0xF0) == 0xE0)
        need = 3;
    else if ((c & 0xF8) == 0xF0)
        need = 4;
    else
        need = 1;                 /* not a lead byte: leave it as it is */
    if (len - (i - 1) < need)
        s[i - 1] = '\0';
}

/* Writes "code" or "code: <detail>" into ctx->err, the detail formatted
 * from fmt and ap when fmt is not NULL. A NULL code is written as
 * "handler_error", so the dead letter still carries a code. Text longer
 * than SL_ERRLEN - 1 bytes is cut at a character boundary. */
static void vseterr(struct sl_ctx *ctx, const char *code, const char *fmt, va_list ap)
{
    size_t len;
    int n;

    if (code == NULL || code[0] == '\0')
        code = "handler_error";
    n = snprintf(ctx->err, sizeof(ctx->err), "%s", code);
    if (n < 0) {
        ctx->err[0] = '\0';
        return;
    }
    len = (size_t)n;
    if (fmt != NULL && len + 2 < sizeof(ctx->err)) {
        memcpy(ctx->err + len, ": ", 3);
        len += 2;
        n = vsnprintf(ctx->err + len, sizeof(ctx->err) - len, fmt, ap);
        if (n < 0)
            ctx->err[len - 2] = '\0';   /* formatting failed: keep the code */
        else
            len += (size_t)n;
    }
    if (len >= sizeof(ctx->err))
        trim_partial_utf8(ctx->err, sizeof(ctx->err) - 1);
}

/* Sets ctx->err to "code" or "code: detail" without choosing a
 * disposition; used by the framework's own checks. */
void sl__ctx_seterr(struct sl_ctx *ctx, const char *code, const char *fmt, ...)
{
    va_list ap;

    if (ctx == NULL)
        return;
    va_start(ap, fmt);
    vseterr(ctx, code, fmt, ap);
    va_end(ap);
}

/* Records why the entry is retried or dead-lettered (see sluice.h) and
 * returns `d` unchanged, so a handler can return the call's value. */
enum sl_disposition sl_ctx_fail(struct sl_ctx *ctx, enum sl_disposition d,
                                const char *code, const char *fmt, ...)
{
    va_list ap;

    if (ctx == NULL)
        return d;
    va_start(ap, fmt);
    vseterr(ctx, code, fmt, ap);
    va_end(ap);
    return d;
}

/* ---------------------------------------------------------------------
 * Effects
 * ------------------------------------------------------------------ */

/* Makes room for `need` bytes in ctx->buf and `nstr` offsets in
 * ctx->offs, growing each by doubling so that a warm context never
 * reallocates. Returns 0, or SL_ENOMEM with both buffers still valid. */
static int reserve(struct sl_ctx *ctx, size_t need, size_t nstr)
{
    size_t cap;
    void *p;

    if (need > ctx->bufcap) {
        cap = ctx->bufcap ? ctx->bufcap : 256;
        while (cap < need) {
            if (cap > SIZE_MAX / 2)
                return SL_ENOMEM;
            cap *= 2;
        }
        p = realloc(ctx->buf, cap);
        if (p == NULL)
            return SL_ENOMEM;
        ctx->buf = p;
        ctx->bufcap = cap;
    }
    if (nstr > ctx->offcap) {
        cap = ctx->offcap ? ctx->offcap : 16;
        while (cap < nstr)
            cap *= 2;
        if (cap > SIZE_MAX / sizeof(*ctx->offs))
            return SL_ENOMEM;
        p = realloc(ctx->offs, cap * sizeof(*ctx->offs));
        if (p == NULL)
            return SL_ENOMEM;
        ctx->offs = p;
        ctx->offcap = cap;
    }
    return 0;
}

/* Declares the entry's effect (see sluice.h). The script is found in
 * handler->scripts by pointer identity, because its index is what the
 * connection layer uses to pick the loaded SHA. Everything is validated
 * and the space reserved before anything is copied, so a failing call
 * leaves the context without an effect. */
int sl_ctx_effect(struct sl_ctx *ctx, const struct sl_script *script,
                  int nkeys, const char *const *keys,
                  int nargs, const char *const *args)
{
    size_t total = 0, len, pos;
    int idx = -1, i, n;

    if (ctx == NULL || script == NULL || nkeys < 0 || nargs < 0)
        return SL_EINVAL;
    if ((nkeys > 0 && keys == NULL) || (nargs > 0 && args == NULL))
        return SL_EINVAL;
    if (nkeys > INT_MAX - nargs)
        return SL_EINVAL;
    if (ctx->script >= 0)
        return SL_EEXIST;
    if (ctx->handler != NULL && ctx->handler->scripts != NULL) {
        for (i = 0; ctx->handler->scripts[i] != NULL; i++) {
            if (ctx->handler->scripts[i] == script) {
                idx = i;
                break;
            }
        }
    }
    if (idx < 0)
        return SL_EINVAL;

    n = nkeys + nargs;
    for (i = 0; i < n; i++) {
        const char *s = i < nkeys ? keys[i] : args[i - nkeys];

        if (s == NULL)
            return SL_EINVAL;
        len = strlen(s) + 1;
        if (total > SIZE_MAX - len)
            return SL_ENOMEM;
        total += len;
    }
    if (reserve(ctx, total, (size_t)n) != 0)
        return SL_ENOMEM;

    pos = 0;
    for (i = 0; i < n; i++) {
        const char *s = i < nkeys ? keys[i] : args[i - nkeys];

        len = strlen(s) + 1;
        ctx->offs[i] = pos;
        memcpy(ctx->buf + pos, s, len);
        pos += len;
    }
    ctx->buflen = pos;
    ctx->nkeys = nkeys;
    ctx->nargs = nargs;
    ctx->script = idx;
    return 0;
}

/* ---------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------ */

/* Returns the value of the first field named `name` (see sluice.h),
 * borrowed from msg, with its length in *len when len is not NULL. */
const char *sl_msg_field(const struct sl_msg *msg, const char *name, size_t *len)
{
    size_t i, nlen;

    if (msg == NULL || name == NULL || msg->fields == NULL)
        return NULL;
    nlen = strlen(name);
    for (i = 0; i < msg->nfields; i++) {
        const struct sl_field *f = &msg->fields[i];

        if (f->name_len == nlen && (nlen == 0 || memcmp(f->name, name, nlen) == 0)) {
            if (len != NULL)
                *len = f->value_len;
            return f->value;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------
 * Validators (docs/semantics.md)
 * ------------------------------------------------------------------ */

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

/* Returns the canonical text of a JSON value: keys sorted, no white
 * space, any value kind accepted. Equal values give equal texts whatever
 * their key order and spacing, which is how idempotency keys compare
 * "the same data". New: free() it; NULL for a NULL value or on
 * allocation failure. */
char *sl_json_canonical(const json_t *value)
{
    if (value == NULL)
        return NULL;
    return json_dumps(value, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
}
