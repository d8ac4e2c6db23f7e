/* log.c -- one logfmt line per event on stderr:
 *   ts=2026-11-28T01:02:03.456Z level=info role=host:payment:0 event=ack n=64
 * or, with SLUICE_LOG_FORMAT=json, the same fields as one JSON object per
 * line (every value a string):
 *   {"ts":"2026-11-28T01:02:03.456Z","level":"info",...,"n":"64"}
 * A single write(2) per line keeps lines of concurrent processes whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

int sl__log_level = SL_LOG_INFO;
int sl__log_json = 0;
const char *sl__log_role = "sluice";

static const char *level_names[] = { "debug", "info", "warn", "error" };

/* Returns s as a logfmt value: bare when it has no space, quote, '=' or
 * control byte, else double-quoted with escapes. Results live in one of 8
 * rotating static buffers, so a single log call may use up to 8. */
const char *sl__logq(const char *s)
{
    static char bufs[8][256];
    static unsigned next;
    char *out = bufs[next++ % 8];
    size_t o = 0;
    int plain = 1;
    const char *p;

    if (s == NULL)
        return "\"\"";
    for (p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= ' ' || ch == '"' || ch == '=' || ch == '\\' || ch == 0x7f) {
            plain = 0;
            break;
        }
    }
    if (plain && *s && strlen(s) < sizeof(bufs[0]))
        return s;
    out[o++] = '"';
    for (p = s; *p && o < sizeof(bufs[0]) - 4; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < ' ' || ch == 0x7f) {
            out[o++] = '?';
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* Turns the logfmt text of one line (n bytes in line, no newline) into
 * a JSON object with the same keys and values, as text (new: free()), or
 * NULL when memory ran out. A value is bare up to the next space, or
 * quoted with \\ and \" escapes, as sl__logq() writes it; a word
 * without '=' (a caller's unquoted value that held a space) joins the
 * value before it, so no text is lost. Keys and values that are not
 * UTF-8 are escaped by sl__json_text. */
static char *logfmt_to_json(const char *line, size_t n)
{
    json_t *o = json_object();
    const char *p = line, *end = line + n;
    char *val = malloc(n + 1), *last_key = NULL, *out = NULL;

    if (o == NULL || val == NULL)
        goto done;
    while (p < end) {
        const char *k = p, *eq;
        size_t vn = 0;
        json_t *v;

        while (p < end && *p != ' ' && *p != '=')
            p++;
        if (p >= end || *p == ' ') {
            /* A word without '=': part of the previous value. */
            if (last_key != NULL) {
                const char *prev = json_string_value(json_object_get(o, last_key));
                size_t pl = prev != NULL ? strlen(prev) : 0;
                char *joined = malloc(pl + (size_t)(p - k) + 2);
                if (joined != NULL) {
                    memcpy(joined, prev != NULL ? prev : "", pl);
                    joined[pl] = ' ';
                    memcpy(joined + pl + 1, k, (size_t)(p - k));
                    joined[pl + 1 + (size_t)(p - k)] = '\0';
                    json_object_set_new(o, last_key, sl__json_text(joined, strlen(joined)));
                    free(joined);
                }
            }
            while (p < end && *p == ' ')
                p++;
            continue;
        }
        eq = p++;
        if (p < end && *p == '"') {
            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < end)
                    p++;
                val[vn++] = *p;
            }
            if (p < end)
                p++;
        } else {
            while (p < end && *p != ' ')
                val[vn++] = *p++;
        }
        val[vn] = '\0';
        free(last_key);
        last_key = malloc((size_t)(eq - k) + 1);
        if (last_key == NULL)
            goto done;
        memcpy(last_key, k, (size_t)(eq - k));
        last_key[eq - k] = '\0';
        v = sl__json_text(val, vn);
        {
            json_t *key = sl__json_text(last_key, strlen(last_key));
            if (key != NULL && v != NULL)
                json_object_set(o, json_string_value(key), v);
            json_decref(key);
        }
        json_decref(v);
        while (p < end && *p == ' ')
            p++;
    }
    out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    json_decref(o);
    free(val);
    free(last_key);
    return out;
}

/* Writes one log line if level passes the threshold. The caller's fmt
 * supplies the extra key=value pairs. In JSON mode (sl__log_json) the
 * same line is written as a JSON object: the fields stay the same in
 * both formats because one is made from the other. */
void sl__log(int level, const char *event, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;

    if (level < sl__log_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n,
                          ".%03ldZ level=%s pid=%ld role=%s event=%s",
                          ts.tv_nsec / 1000000L, level_names[level & 3],
                          (long)getpid(), sl__logq(sl__log_role), event);
    if (fmt != NULL && *fmt && n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        n = strlen(line);
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    if (sl__log_json) {
        char *j = logfmt_to_json(line, n);
        size_t jn = j != NULL ? strlen(j) : 0;
        char *nl = j != NULL ? realloc(j, jn + 2) : NULL;

        if (nl != NULL) {
            nl[jn++] = '\n';
            if (write(STDERR_FILENO, nl, jn) < 0) {
                /* As below. */
            }
            free(nl);
            return;
        }
        free(j);                    /* out of memory: the logfmt line, as ever */
    }
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nothing sensible is left to report a failed log write to. */
    }
}
