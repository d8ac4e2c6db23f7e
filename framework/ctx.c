/* ctx.c -- the per-entry handling context and the handler helpers.
 *
 * A worker process owns one struct sl_ctx for its whole life. Before each
 * entry the dispatcher calls sl__ctx_reset(), which forgets the previous
 * entry's error and effect but keeps the buffers, so once the buffers have
 * grown to the largest effect seen, handling an entry allocates nothing.
 *
 * The second half of the file holds what handlers call on the context
 * while deciding an entry: sl_ctx_effect() and sl_ctx_fail(). The
 * validators of docs/semantics.md are validate.c's, sl_json_canonical()
 * canonical.c's, sl_msg_field() message.c's.
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
    ctx->retry_after_ms = 0;
    ctx->dead_trim_fields = 0;
    ctx->dropped_fields = 0;
    ctx->data_left = 0;
    ctx->script = -1;
    ctx->nkeys = 0;
    ctx->nargs = 0;
    ctx->buflen = 0;
    ctx->type[0] = '\0';
    ctx->early = 0;
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

/* Returns the entry's error text (see sluice.h). */
const char *sl_ctx_error(const struct sl_ctx *ctx)
{
    return ctx != NULL ? ctx->err : "";
}

/* Records the least delay of the entry's retry (see sluice.h). The bound
 * is the configuration's bound for every duration (MS_MAX there). */
int sl_ctx_retry_after(struct sl_ctx *ctx, long long ms)
{
    if (ctx == NULL || ms < 0 || ms > 604800000LL)
        return SL_EINVAL;
    ctx->retry_after_ms = ms;
    return 0;
}

/* ---------------------------------------------------------------------
 * Async handlers
 * ------------------------------------------------------------------ */

/* Returns the worker's loop (see sluice.h). */
struct event_base *sl_ctx_base(const struct sl_ctx *ctx)
{
    return ctx != NULL ? ctx->base : NULL;
}

/* Finishes an entry in progress (see sluice.h). A completion that comes
 * while `handle` still runs is only remembered: the worker applies it
 * when `handle` returns SL_PENDING, so a callback that fires at once (a
 * refused connection) needs no special case in the handler. */
int sl_ctx_complete(struct sl_ctx *ctx, enum sl_disposition d)
{
    if (ctx == NULL || (d != SL_ACK && d != SL_RETRY && d != SL_DEAD))
        return SL_EINVAL;
    if (ctx->phase == SL_PHASE_HANDLE) {
        if (ctx->early != 0)
            return SL_EINVAL;
        ctx->early = 1 + (int)d;
        return 0;
    }
    if ((ctx->phase != SL_PHASE_PENDING && ctx->phase != SL_PHASE_ABANDONED) ||
        ctx->complete == NULL)
        return SL_EINVAL;
    return ctx->complete(ctx, d);
}
