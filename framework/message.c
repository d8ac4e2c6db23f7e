/* message.c -- the checks an entry passes before its handler sees it.
 *
 * docs/semantics.md lists the dead-letter codes in the order in which they
 * are checked; the first failing check names the code. sl__msg_prepare()
 * runs the part of that table that belongs to the framework, from
 * `expired` to `unknown_type`, on the raw fields of one entry. Everything
 * that can be decided without parsing is decided before parsing, so an
 * oversized or mis-encoded payload never reaches jansson. It also holds
 * sl_msg_field(), the public accessor of an entry's fields.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------------
 * Byte-level checks
 * ------------------------------------------------------------------ */

/* Returns the offset of the first byte of s[0..len) that does not start a
 * well-formed UTF-8 sequence, or len when all of it is well formed. The
 * check is strict (RFC 3629): no overlong forms, no surrogates
 * (U+D800-U+DFFF), nothing above U+10FFFF, no truncated sequence. NUL is
 * valid UTF-8 and is left to the caller. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0, n, k;
    unsigned char c, lo, hi;

    while (i < len) {
        c = s[i];
        lo = 0x80;
        hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            if (c == 0xE0)
                lo = 0xA0;        /* below is overlong */
            else if (c == 0xED)
                hi = 0x9F;        /* above is a surrogate */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            if (c == 0xF0)
                lo = 0x90;        /* below is overlong */
            else if (c == 0xF4)
                hi = 0x8F;        /* above is past U+10FFFF */
        } else {
            return i;             /* 80-C1 (stray or overlong lead), F5-FF */
        }
        if (len - i < n)
            return i;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (k = 2; k < n; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        i += n;
    }
    return len;
}

/* Returns the offset of the first JSON escape \u0000 in s[0..len), or
 * len when there is none. Every backslash starts an escape of which the
 * next character is part, so "\\u0000" (an escaped backslash followed by
 * the text u0000) is skipped as two escapes' worth of characters and is
 * not reported. The hex digits of U+0000 are all zeros, so no case
 * folding is needed; JSON only knows a lower-case `u`. */
static size_t escaped_nul_at(const char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        if (s[i] != '\\') {
            i++;
            continue;
        }
        if (len - i >= 6 && memcmp(s + i + 1, "u0000", 5) == 0)
            return i;
        i += 2;                   /* the backslash and the character it escapes */
    }
    return len;
}

/* Returns 1 when s[0..len) is plain ASCII holding no NUL byte and no
 * backslash, 0 otherwise. Such text is valid UTF-8 and can hold neither a
 * NUL nor a \u0000 escape, so the byte-by-byte checks of the encoding can
 * be skipped for it; nearly every payload is such text. Eight bytes are
 * tested at a time: a byte is non-ASCII when its high bit is set, and
 * (x - 0x01..) & ~x has a high bit set exactly when some byte of x is zero
 * (x = v for NUL, x = v ^ 0x5c.. for a backslash). */
static int plain_ascii(const char *s, size_t len)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    const uint64_t bslash = 0x5c5c5c5c5c5c5c5cULL;
    uint64_t v, x, acc = 0;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        memcpy(&v, s + i, 8);
        x = v ^ bslash;
        acc |= v | ((v - ones) & ~v) | ((x - ones) & ~x);
    }
    if (acc & highs)
        return 0;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0 || c >= 0x80 || c == '\\')
            return 0;
    }
    return 1;
}

/* Parses the milliseconds part of an entry ID "ms-seq" into *ms.
 * Returns 0, or -1 when the ID does not start with a decimal number
 * followed by '-' or its end, or the number overflows. */
static int id_ms(const char *id, uint64_t *ms)
{
    uint64_t v = 0;
    const char *p = id;

    if (id == NULL || *p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (*p != '-' && *p != '\0')
        return -1;
    *ms = v;
    return 0;
}

/* Returns a short name for a JSON value's kind, as the invalid_schema
 * detail says it. */
static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:  return "object";
    case JSON_ARRAY:   return "array";
    case JSON_STRING:  return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL:    return "real";
    case JSON_TRUE:    return "true";
    case JSON_FALSE:   return "false";
    case JSON_NULL:    return "null";
    }
    return "unknown";
}

/* ---------------------------------------------------------------------
 * The type field
 * ------------------------------------------------------------------ */

/* Copies the entry's `type` field into ctx->type when it is printable
 * text: present, 1 to SL_TYPELEN - 1 bytes, valid UTF-8 with no NUL.
 * Returns 0 when copied; otherwise leaves ctx->type empty and returns a
 * negative reason: -1 missing or empty, -2 too long, -3 not valid UTF-8
 * or holding a NUL. Done before the other checks so that a failing
 * entry's type is known to logs and metrics whenever it is sane. */
static int copy_type(struct sl_ctx *ctx, const struct sl_msg *msg, size_t *lenp)
{
    size_t len = 0;
    const char *v = sl_msg_field(msg, "type", &len);

    ctx->type[0] = '\0';
    *lenp = len;
    if (v == NULL || len == 0)
        return -1;
    if (len >= sizeof(ctx->type))
        return -2;
    if (memchr(v, '\0', len) != NULL ||
        utf8_invalid_at((const unsigned char *)v, len) != len)
        return -3;
    memcpy(ctx->type, v, len);
    ctx->type[len] = '\0';
    return 0;
}

/* ---------------------------------------------------------------------
 * The checks, in the documented order
 * ------------------------------------------------------------------ */

/* Runs the framework's checks of docs/semantics.md on one entry (see
 * internal.h for the contract). On success msg->data holds a new
 * reference (NULL when raw) that the caller json_decref()s after the
 * handler; on failure msg->data is NULL and ctx->err names the code.
 * msg->type always points at ctx->type, which is "" until the type has
 * been found sane, so callers may log it either way. */
int sl__msg_prepare(struct sl_ctx *ctx, struct sl_msg *msg,
                    const struct sl_tunables *t, int raw,
                    const char *const *types, uint64_t now_ms)
{
    const char *data;
    size_t dlen = 0, tlen = 0, bad, i;
    uint64_t ms = 0;
    json_t *root = NULL;
    json_error_t jerr;
    int trc;

    msg->data = NULL;
    msg->raw_data = NULL;
    msg->raw_data_len = 0;
    trc = copy_type(ctx, msg, &tlen);
    msg->type = ctx->type;

    /* expired: judged by the entry ID's own time, so the check needs no
     * field at all. An ID that does not parse is not judged. */
    if (t->message_ttl_ms > 0 && id_ms(msg->id, &ms) == 0 &&
        now_ms > (uint64_t)t->message_ttl_ms &&
        ms < now_ms - (uint64_t)t->message_ttl_ms) {
        sl__ctx_seterr(ctx, "expired", "older than %lld ms", t->message_ttl_ms);
        goto fail;
    }

    /* missing_payload */
    data = sl_msg_field(msg, "data", &dlen);
    /* A `data` over max_payload_bytes that the claim script left in Redis
     * (it sent "" and the length) is judged on its length: it can only be
     * too_large, and the bytes behind `data` are never read. */
    if (data != NULL && ctx->data_left > 0)
        dlen = ctx->data_left;
    if (data == NULL || dlen == 0) {
        sl__ctx_seterr(ctx, "missing_payload", NULL);
        goto fail;
    }
    msg->raw_data = data;
    msg->raw_data_len = dlen;

    /* too_large, by field count: the dead letter keeps only `type` and
     * `data` (one of each), so say how many fields it leaves out. */
    if (t->max_fields > 0 && msg->nfields > (unsigned long long)t->max_fields) {
        long long kept = 1 + (sl_msg_field(msg, "type", NULL) != NULL);

        ctx->dead_trim_fields = 1;
        ctx->dropped_fields = (long long)msg->nfields - kept;
        sl__ctx_seterr(ctx, "too_large", "%zu fields, more than max_fields %lld; dropped_fields: %lld",
                       msg->nfields, t->max_fields, ctx->dropped_fields);
        goto fail;
    }
    /* too_large, by size: checked before the bytes are even scanned. */
    if (t->max_payload_bytes > 0 && dlen > (unsigned long long)t->max_payload_bytes) {
        sl__ctx_seterr(ctx, "too_large", "data is %zu bytes, more than max_payload_bytes %lld",
                       dlen, t->max_payload_bytes);
        goto fail;
    }

    /* invalid_encoding: the raw text, before jansson sees it. jansson
     * would report a \u0000 escape as invalid_json, but the documented table files it
     * under encoding, so it is looked for here. */
    if (!plain_ascii(data, dlen)) {
        bad = utf8_invalid_at((const unsigned char *)data, dlen);
        for (i = 0; i < bad; i++)
            if (data[i] == '\0')
                break;
        if (i < bad) {
            sl__ctx_seterr(ctx, "invalid_encoding", "data holds a NUL byte at offset %zu", i);
            goto fail;
        }
        if (bad < dlen) {
            sl__ctx_seterr(ctx, "invalid_encoding", "data is not valid UTF-8 at offset %zu", bad);
            goto fail;
        }
        bad = escaped_nul_at(data, dlen);
        if (bad < dlen) {
            sl__ctx_seterr(ctx, "invalid_encoding", "data holds \\u0000 at offset %zu", bad);
            goto fail;
        }
    }

    if (!raw) {
        /* invalid_json: JSON_DECODE_ANY so that a bare scalar parses and
         * is reported as invalid_schema, which says more. */
        root = json_loadb(data, dlen, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (root == NULL) {
            sl__ctx_seterr(ctx, "invalid_json", "%s at line %d column %d",
                           jerr.text, jerr.line, jerr.column);
            goto fail;
        }
        /* invalid_schema */
        if (!json_is_object(root)) {
            sl__ctx_seterr(ctx, "invalid_schema", "data must be a JSON object, got %s",
                           json_kind(root));
            goto fail;
        }
    }

    /* unknown_type */
    if (trc == -1) {
        sl__ctx_seterr(ctx, "unknown_type", "missing type");
        goto fail;
    }
    if (trc == -2) {
        sl__ctx_seterr(ctx, "unknown_type", "type is %zu bytes, more than %d",
                       tlen, SL_TYPELEN - 1);
        goto fail;
    }
    if (trc == -3) {
        sl__ctx_seterr(ctx, "unknown_type", "type is not valid UTF-8 text");
        goto fail;
    }
    if (types != NULL) {
        for (i = 0; types[i] != NULL; i++)
            if (strcmp(types[i], ctx->type) == 0)
                break;
        if (types[i] == NULL) {
            sl__ctx_seterr(ctx, "unknown_type", "%s", ctx->type);
            goto fail;
        }
    }

    msg->data = root;
    return 0;

fail:
    json_decref(root);
    msg->data = NULL;
    return -1;
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
