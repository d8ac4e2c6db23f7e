/* bench_redis.c -- the benchmark's own redis-server and what it asks it.
 *
 * The server runs on a free loopback port (bind 127.0.0.1:0 and read the
 * port back, then start redis-server on it; retry with another port when
 * it was taken meanwhile) in a mkdtemp directory, with no persistence, or
 * with `appendonly yes, appendfsync everysec` for the AOF rows (and no
 * automatic AOF rewrite, whose fork would land in some measurement).
 *
 * Drain detection: `lag` can be nil, so a group
 * is drained when its last-delivered-id is the stream's last entry and
 * nothing is pending.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "bench.h"

/* ---------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------ */

/* Prints a message to stderr and exits with status 1. */
void sl_bench_die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "sluice-bench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* Returns microseconds of the given clock. */
static int64_t clock_us(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Microseconds of CLOCK_MONOTONIC. */
int64_t sl_bench_mono_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

/* Microseconds of CLOCK_REALTIME, the clock Redis stamps MONITOR lines
 * with, so that the two can be subtracted. */
int64_t sl_bench_wall_us(void)
{
    return clock_us(CLOCK_REALTIME);
}

/* Sleeps ms milliseconds; used only between polls. */
void sl_bench_pause_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Builds exactly len bytes of JSON for entry i: a few order-like members
 * and a "pad" string that fills the rest. */
char *sl_bench_json(char *buf, size_t len, long long i)
{
    int head = snprintf(buf, len + 1,
                        "{\"order_id\":\"o-%07lld\",\"user_id\":\"u-%05lld\","
                        "\"amount_cents\":%lld,\"currency\":\"USD\",\"pad\":\"",
                        i, i % 10000, 100 + i % 9900);
    size_t fill;

    if (head < 0 || (size_t)head + 2 > len)
        sl_bench_die("payload of %zu bytes is too small", len);
    fill = len - (size_t)head - 2;
    memset(buf + head, 'x', fill);
    buf[head + fill] = '"';
    buf[head + fill + 1] = '}';
    buf[len] = '\0';
    return buf;
}

/* ---------------------------------------------------------------------
 * The server
 * ------------------------------------------------------------------ */

/* Starts the server with the support library's launcher, which picks a
 * free port (retrying when it was taken meanwhile) and waits for PING. */
int sl_bench_redis_start(struct sl_bench_redis *r, int aof)
{
    /* No background rewrite (a fork) in the middle of a measurement: the
     * pre-fill alone would trigger one. */
    const char *args = aof ? "--appendonly yes --appendfsync everysec "
                             "--auto-aof-rewrite-percentage 0" : NULL;

    memset(r, 0, sizeof(*r));
    r->aof = aof;
    if (sl_test_redis_start(&r->srv, args) < 0) {
        fprintf(stderr, "sluice-bench: cannot start redis-server\n");
        return -1;
    }
    r->pid = r->srv.pid;
    r->port = r->srv.port;
    snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d/0", r->port);
    return 0;
}

/* Stops the server and removes its directory. */
void sl_bench_redis_stop(struct sl_bench_redis *r)
{
    if (r->srv.port != 0)
        sl_test_redis_cleanup(&r->srv);
    memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------------
 * Synchronous client
 * ------------------------------------------------------------------ */

/* Connects with a 2 s connect and a 30 s command timeout. */
redisContext *sl_bench_connect(const struct sl_bench_redis *r)
{
    struct timeval ct = { 2, 0 }, rt = { 30, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, ct);

    if (c == NULL)
        return NULL;
    if (c->err || redisSetTimeout(c, rt) != REDIS_OK) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Runs a command; dies without a reply or on an unexpected error. */
redisReply *sl_bench_cmd(redisContext *c, int allow_error, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL)
        sl_bench_die("%s: no reply: %s", fmt, c->errstr);
    if (r->type == REDIS_REPLY_ERROR && !allow_error)
        sl_bench_die("%s: %s", fmt, r->str);
    return r;
}

/* Reads the replies of `n` pipelined commands, dying on any error. */
static void drain_replies(redisContext *c, long long n, char *last_id)
{
    long long i;

    for (i = 0; i < n; i++) {
        redisReply *r;
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            sl_bench_die("pipelined write: %s", c->errstr);
        if (r->type == REDIS_REPLY_ERROR)
            sl_bench_die("pipelined write: %s", r->str);
        if (last_id != NULL && r->type == REDIS_REPLY_STRING)
            snprintf(last_id, SL_BENCH_IDLEN, "%s", r->str);
        freeReplyObject(r);
    }
}

#define PIPE_DEPTH 1000           /* commands per pipelined round trip */

/* Pre-fills a stream with pipelined XADDs. */
void sl_bench_prefill(redisContext *c, const char *stream, const char *type,
                      long long first, long long n, size_t data_len,
                      char *last_id)
{
    char *buf = malloc(data_len + 1);
    long long i, queued = 0;

    if (buf == NULL)
        sl_bench_die("out of memory");
    for (i = 0; i < n; i++) {
        sl_bench_json(buf, data_len, first + i);
        redisAppendCommand(c, "XADD %s * type %s data %b", stream, type, buf, data_len);
        if (++queued == PIPE_DEPTH) {
            drain_replies(c, queued, last_id);
            queued = 0;
        }
    }
    drain_replies(c, queued, last_id);
    free(buf);
}

/* Creates the users with pipelined HSETs. */
void sl_bench_create_users(redisContext *c, int users)
{
    long long queued = 0;
    int u;

    for (u = 0; u < users; u++) {
        redisAppendCommand(c, "HSET user:u-%05d name user-%d email u%d@example.com "
                           "balance_cents %lld", u, u, u, SL_BENCH_OPENING_CENTS);
        if (++queued == PIPE_DEPTH) {
            drain_replies(c, queued, NULL);
            queued = 0;
        }
    }
    drain_replies(c, queued, NULL);
}

/* Appends user.created entries with pipelined XADDs. */
void sl_bench_prefill_users(redisContext *c, const char *stream, long long first,
                            long long n, char *last_id)
{
    char data[256];
    long long i, queued = 0;

    for (i = first; i < first + n; i++) {
        int len = snprintf(data, sizeof(data),
                           "{\"user_id\":\"u-%05lld\",\"name\":\"user-%lld\","
                           "\"email\":\"u%lld@example.com\",\"balance_cents\":%lld}",
                           i, i, i, SL_BENCH_OPENING_CENTS);
        redisAppendCommand(c, "XADD %s * type user.created data %b", stream,
                           data, (size_t)len);
        if (++queued == PIPE_DEPTH) {
            drain_replies(c, queued, last_id);
            queued = 0;
        }
    }
    drain_replies(c, queued, last_id);
}

/* Appends payment.requested entries with pipelined XADDs. */
void sl_bench_prefill_payments(redisContext *c, const char *stream, long long first,
                               long long n, int users, char *last_id)
{
    char data[256];
    long long i, queued = 0;

    for (i = first; i < first + n; i++) {
        int len = snprintf(data, sizeof(data),
                           "{\"payment_id\":\"p-%08lld\",\"order_id\":\"o-%08lld\","
                           "\"user_id\":\"u-%05lld\",\"amount_cents\":%lld,"
                           "\"currency\":\"USD\"}",
                           i, i, i % users, 100 + (i * 7919) % 9900);
        redisAppendCommand(c, "XADD %s * type payment.requested data %b", stream,
                           data, (size_t)len);
        if (++queued == PIPE_DEPTH) {
            drain_replies(c, queued, last_id);
            queued = 0;
        }
    }
    drain_replies(c, queued, last_id);
}

void sl_bench_prefill_orders(redisContext *c, const char *stream, long long first,
                             long long n, int users, char *last_id)
{
    char data[256];
    long long i, queued = 0;

    for (i = first; i < first + n; i++) {
        int len = snprintf(data, sizeof(data),
                           "{\"order_id\":\"o-%08lld\",\"user_id\":\"u-%05lld\","
                           "\"amount_cents\":%lld,\"currency\":\"USD\"}",
                           i, i % users, 100 + (i * 7919) % 9900);
        redisAppendCommand(c, "XADD %s * type order.created data %b", stream,
                           data, (size_t)len);
        if (++queued == PIPE_DEPTH) {
            drain_replies(c, queued, last_id);
            queued = 0;
        }
    }
    drain_replies(c, queued, last_id);
}

/* ---------------------------------------------------------------------
 * Group state
 * ------------------------------------------------------------------ */

/* Reads pending and last-delivered-id of one group from XINFO GROUPS
 * (a flat name/value array per group in RESP2). */
void sl_bench_group_state(redisContext *c, const char *stream, const char *group,
                          struct sl_bench_group *g)
{
    redisReply *r = sl_bench_cmd(c, 1, "XINFO GROUPS %s", stream);
    size_t i, j;

    memset(g, 0, sizeof(*g));
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return;
    }
    for (i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        int mine = 0;
        long long pending = 0;
        const char *last = "";

        if (e->type != REDIS_REPLY_ARRAY)
            continue;
        for (j = 0; j + 1 < e->elements; j += 2) {
            const redisReply *k = e->element[j], *v = e->element[j + 1];
            if (k->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(k->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
                mine = strcmp(v->str, group) == 0;
            else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                pending = v->integer;
            else if (strcmp(k->str, "last-delivered-id") == 0 && v->type == REDIS_REPLY_STRING)
                last = v->str;
        }
        if (mine) {
            g->found = 1;
            g->pending = pending;
            snprintf(g->last_delivered, sizeof(g->last_delivered), "%s", last);
            break;
        }
    }
    freeReplyObject(r);
}

/* Polls every millisecond until the group is drained. */
int64_t sl_bench_wait_drained(redisContext *c, const char *stream, const char *group,
                              const char *last_id, long long timeout_ms)
{
    int64_t deadline = sl_bench_mono_us() + timeout_ms * 1000;
    struct sl_bench_group g;

    for (;;) {
        int64_t now;

        sl_bench_group_state(c, stream, group, &g);
        now = sl_bench_mono_us();
        if (g.found && g.pending == 0 && strcmp(g.last_delivered, last_id) == 0)
            return now;
        if (now > deadline)
            return -1;
        sl_bench_pause_ms(1);
    }
}

/* Counts blocked XREADGROUP clients in CLIENT LIST. */
int sl_bench_blocked_readers(redisContext *c)
{
    redisReply *r = sl_bench_cmd(c, 0, "CLIENT LIST");
    const char *p;
    int n = 0;

    if (r->type != REDIS_REPLY_STRING)
        sl_bench_die("CLIENT LIST: unexpected reply");
    for (p = r->str; p != NULL && *p; ) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[2048];
        const char *f;

        if (len >= sizeof(line))
            len = sizeof(line) - 1;
        memcpy(line, p, len);
        line[len] = '\0';
        f = strstr(line, " flags=");
        if (strstr(line, " cmd=xreadgroup") != NULL && f != NULL) {
            for (f += 7; *f && *f != ' '; f++)
                if (*f == 'b') {
                    n++;
                    break;
                }
        }
        p = eol ? eol + 1 : NULL;
    }
    freeReplyObject(r);
    return n;
}

/* Waits until n readers are blocked. */
int sl_bench_wait_blocked(redisContext *c, int n, long long timeout_ms)
{
    int64_t deadline = sl_bench_mono_us() + timeout_ms * 1000;

    while (sl_bench_blocked_readers(c) < n) {
        if (sl_bench_mono_us() > deadline)
            return -1;
        sl_bench_pause_ms(5);
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * /proc
 * ------------------------------------------------------------------ */

/* Reads VmHWM from /proc/<pid>/status and utime + stime (fields 14 and
 * 15, after the parenthesised command name) from /proc/<pid>/stat. */
int sl_bench_proc_read(pid_t pid, struct sl_bench_proc *p)
{
    char path[64], buf[4096];
    FILE *f;
    const char *q;
    unsigned long long ut = 0, st = 0;
    long tick = sysconf(_SC_CLK_TCK);
    size_t n;

    p->hwm_kb = -1;
    p->cpu_us = -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(buf, sizeof(buf), f) != NULL)
        if (strncmp(buf, "VmHWM:", 6) == 0)
            p->hwm_kb = strtoll(buf + 6, NULL, 10);
    fclose(f);
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    q = strrchr(buf, ')');
    if (q == NULL || tick <= 0 ||
        sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    p->cpu_us = (long long)((ut + st) * 1000000ULL / (unsigned long long)tick);
    return p->hwm_kb >= 0 ? 0 : -1;
}
