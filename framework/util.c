/* util.c -- clocks, backoff arithmetic, key names and the escaping of
 * text for terminals, used across the framework. Everything here is pure
 * or nearly so, and unit-tested. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/types.h>
#include "internal.h"
#include "pool.h"

/* Reports a violated programmer assumption and aborts. Never used for
 * runtime conditions such as a Redis outage or bad input. */
void sl__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "sluice: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

/* Returns the monotonic clock in ms: for deadlines and durations. */
uint64_t sl__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Returns the wall clock in ms since the epoch: for stream IDs and
 * timestamps that other machines read. */
uint64_t sl__wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Returns first * 2^(attempts-1), capped at cap. The loop doubles instead
 * of shifting so a large attempt count can never overflow. */
long long sl__retry_delay_ms(long long first, long long cap, long long attempts)
{
    long long d = first;

    if (attempts < 1)
        attempts = 1;
    while (--attempts > 0 && d < cap)
        d *= 2;
    return d < cap ? d : cap;
}

/* Returns a reconnect delay for the step-th consecutive failure: the same
 * doubling as retries, capped, then jittered down to 50-100% so a fleet of
 * workers that lost Redis together does not come back in lockstep. */
long long sl__backoff_ms(long long base, long long cap, int step)
{
    long long d = sl__retry_delay_ms(base, cap, (long long)step + 1);
    long long half = d / 2;

    if (half <= 0)
        return d;
    return half + (long long)(random() % (half + 1));
}

/* Formats the bookkeeping key of one stream and group. The stream's
 * length goes first so that "a:b"+"c" and "a"+"b:c" never share a key. */
int sl__attempts_key(char *buf, size_t size, const char *stream, const char *group)
{
    return snprintf(buf, size, "sluice:attempts:%zu:%s:%s",
                    strlen(stream), stream, group);
}

/* Returns the state letter of process pid from /proc/<pid>/stat ('R',
 * 'S', 'T' stopped, 't' stopped by a tracer, 'Z' zombie, ...), or 0 when
 * it cannot be read (no /proc, or the process is gone). The state follows
 * the last ')', since the command name may hold spaces and parentheses. */
char sl__proc_state(long pid)
{
    char path[64], buf[512];
    const char *paren;
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if ((paren = strrchr(buf, ')')) == NULL || paren[1] != ' ')
        return 0;
    return paren[2];
}

/* ---------------------------------------------------------------------
 * Text from Redis on a terminal
 * ------------------------------------------------------------------ */

/* Returns the length (2 to 4) of the well-formed UTF-8 sequence that
 * starts at p, of which n bytes are available, storing its code point in
 * *cp; or 0 when p does not start one. Well-formed as RFC 3629 says: no
 * overlong form, no surrogate, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *p, size_t n, unsigned long *cp)
{
    unsigned long c, min;
    size_t need, i;

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        need = 2, c = p[0] & 0x1f, min = 0x80;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        need = 3, c = p[0] & 0x0f, min = 0x800;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        need = 4, c = p[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return need;
}

/* Returns a NUL-terminated copy of the len bytes at s in which every byte
 * a terminal could act on is written as \xNN (two lower-case hex digits):
 * bytes below 0x20 (ESC, CR, BEL, NUL...), DEL, each byte of a C1 control
 * (U+0080..U+009F: xterm obeys U+009B as CSI) and each byte that is not
 * part of a well-formed UTF-8 sequence (a lone 0x9b is CSI on an 8-bit
 * terminal). Everything else, printable UTF-8 included, stays as it is,
 * so the result is valid UTF-8. A backslash is not doubled: the admin
 * tables are read by people, and dead-lettered JSON full of \" would
 * become hard to read; `--json` gives the exact text. New: free(). NULL
 * when memory ran out. */
char *sl__escape_text(const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    char *out, *o;
    unsigned long cp;
    size_t i = 0, n, k;

    if (len > (SIZE_MAX - 1) / 4 || (out = malloc(len * 4 + 1)) == NULL)
        return NULL;
    o = out;
    while (i < len) {
        if (p[i] >= 0x20 && p[i] < 0x7f) {
            *o++ = (char)p[i++];
            continue;
        }
        n = p[i] >= 0x80 ? utf8_seq(p + i, len - i, &cp) : 0;
        if (n > 0 && cp >= 0xa0) {
            memcpy(o, p + i, n);
            o += n;
            i += n;
            continue;
        }
        for (k = 0; k < (n > 0 ? n : 1); k++, i++) {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[p[i] >> 4];
            *o++ = hex[p[i] & 0xf];
        }
    }
    *o = '\0';
    return out;
}

/* Returns the len bytes at s as a JSON string. Keys and values in Redis
 * are binary, and jansson refuses text that is not UTF-8 (json_stringn
 * returns NULL): such text is escaped by sl__escape_text() instead, so
 * that a name or value is still shown rather than dropped, and never
 * reaches a sort or a printf as a NULL string. Text that is UTF-8 is kept
 * exactly (jansson escapes its control characters itself). New
 * reference; NULL only when memory ran out. */
json_t *sl__json_text(const char *s, size_t len)
{
    json_t *v = json_stringn(s, len);
    char *copy;

    if (v != NULL || (copy = sl__escape_text(s, len)) == NULL)
        return v;
    v = json_string(copy);
    free(copy);
    return v;
}

/* Stores the escaped text of s (len bytes) in slot i of c and returns it;
 * see internal.h. */
const char *sl__cell(struct sl_cells *c, int i, const char *s, size_t len)
{
    SL_ASSERT(i >= 0 && i < SL_CELLS);
    free(c->v[i]);
    c->v[i] = sl__escape_text(s != NULL ? s : "", s != NULL ? len : 0);
    return c->v[i] != NULL ? c->v[i] : "?";
}

/* Frees every slot of c. */
void sl__cells_free(struct sl_cells *c)
{
    int i;

    for (i = 0; i < SL_CELLS; i++) {
        free(c->v[i]);
        c->v[i] = NULL;
    }
}

/* Returns the columns the UTF-8 text s takes on a terminal: one per
 * character (continuation bytes take none). Escaped cells are ASCII or
 * valid UTF-8; a wide (CJK) character still counts one. */
static int text_width(const char *s)
{
    int n = 0;

    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* Starts an empty table (see internal.h). */
void sl__table_init(struct sl_table *t, const struct sl_col *cols, int ncols)
{
    memset(t, 0, sizeof(*t));
    t->cols = cols;
    t->ncols = ncols;
}

/* Copies one row in (see internal.h). */
int sl__table_add(struct sl_table *t, int n, const char *const *cells)
{
    size_t base;
    int i;

    SL_ASSERT(n >= 0 && n <= t->ncols);
    if (t->nrows == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        char **c = realloc(t->cell, nc * (size_t)t->ncols * sizeof(*c));
        if (c == NULL) {
            t->failed = 1;
            return -1;
        }
        t->cell = c;
        t->cap = nc;
    }
    base = t->nrows * (size_t)t->ncols;
    for (i = 0; i < t->ncols; i++) {
        char **slot = &t->cell[base + (size_t)i];
        *slot = NULL;
        if (i < n && (*slot = strdup(cells[i] != NULL ? cells[i] : "")) == NULL) {
            while (i-- > 0)
                free(t->cell[base + (size_t)i]);
            t->failed = 1;
            return -1;
        }
    }
    t->nrows++;
    return 0;
}

/* Prints s in a column of width w (negative: left-aligned), padded
 * with blanks as printf's "%*s" would pad it, except that the last cell
 * of a line gets no trailing blanks. */
static void put_cell(FILE *f, const char *s, int w, int last)
{
    int pad = (w < 0 ? -w : w) - text_width(s);

    if (w > 0)
        fprintf(f, "%*s", pad > 0 ? pad : 0, "");
    fputs(s, f);
    if (w < 0 && !last)
        fprintf(f, "%*s", pad > 0 ? pad : 0, "");
}

/* Prints the table (see internal.h). */
int sl__table_print(const struct sl_table *t, FILE *f)
{
    int width[32], i;
    size_t r;

    SL_ASSERT(t->ncols <= (int)SL_NELEM(width));
    for (i = 0; i < t->ncols; i++) {
        int w = t->cols[i].width < 0 ? -t->cols[i].width : t->cols[i].width;
        if (text_width(t->cols[i].name) > w)
            w = text_width(t->cols[i].name);
        for (r = 0; r < t->nrows; r++) {
            const char *c = t->cell[r * (size_t)t->ncols + (size_t)i];
            if (c != NULL && text_width(c) > w)
                w = text_width(c);
        }
        width[i] = t->cols[i].width < 0 ? -w : w;
    }
    fputs(t->indent != NULL ? t->indent : "", f);
    for (i = 0; i < t->ncols; i++) {
        if (i > 0)
            fputc(' ', f);
        put_cell(f, t->cols[i].name, width[i], i + 1 == t->ncols);
    }
    fputc('\n', f);
    for (r = 0; r < t->nrows; r++) {
        char *const *row = &t->cell[r * (size_t)t->ncols];
        fputs(t->indent != NULL ? t->indent : "", f);
        for (i = 0; i < t->ncols && row[i] != NULL; i++) {
            if (i > 0)
                fputc(' ', f);
            put_cell(f, row[i], width[i], i + 1 == t->ncols || row[i + 1] == NULL);
        }
        fputc('\n', f);
    }
    return t->failed ? -1 : 0;
}

/* Frees every row (see internal.h). */
void sl__table_free(struct sl_table *t)
{
    size_t k;

    for (k = 0; k < t->nrows * (size_t)t->ncols; k++)
        free(t->cell[k]);
    free(t->cell);
    t->cell = NULL;
    t->nrows = t->cap = 0;
}

/* Formats into err (see internal.h). */
void sl__put_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* See pool.h. */
void sl__tally_reset(struct sl_dead_tally *t)
{
    snprintf(t->next, sizeof(t->next), "-");
    t->counted = 0;
    t->ncodes = 0;
    t->in_sync = 0;
}

/* See pool.h. */
void sl__tally_add(struct sl_dead_tally *t, const char *code, size_t len, long long n)
{
    size_t i;

    if (len > SL_DEAD_CODE_MAX)
        len = SL_DEAD_CODE_MAX;
    for (i = 0; i < t->ncodes; i++)
        if (strlen(t->codes[i].code) == len && memcmp(t->codes[i].code, code, len) == 0)
            break;
    if (i == t->ncodes) {
        if (t->ncodes == SL_DEAD_CODES - 1) {
            code = "(other)";
            len = strlen(code);
            for (i = 0; i < t->ncodes; i++)
                if (strcmp(t->codes[i].code, code) == 0)
                    break;
        }
        if (i == t->ncodes) {
            memcpy(t->codes[i].code, code, len);
            t->codes[i].code[len] = '\0';
            t->codes[i].n = 0;
            t->ncodes++;
        }
    }
    t->codes[i].n += n;
    t->counted += n;
}
