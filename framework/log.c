/* log.c -- one logfmt line per event on stderr:
 *   ts=2026-11-28T01:02:03.456Z level=info role=host:payment:0 event=ack n=64
 * A single write(2) per line keeps lines of concurrent processes whole. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

int sl__log_level = SL_LOG_INFO;
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

/* Writes one log line if level passes the threshold. The caller's fmt
 * supplies the extra key=value pairs. */
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
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nothing sensible is left to report a failed log write to. */
    }
}
