/* util.c -- clocks, backoff arithmetic and key names used across the
 * framework. Everything here is pure or nearly so, and unit-tested. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/types.h>
#include "internal.h"

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
