/* bench_latency.c -- enqueue-to-ack latency at a fixed offered rate.
 *
 * A paced, open-loop producer: entry i is due at t0 + i/rate (wall clock,
 * microseconds), is sent as soon as it is due (all late entries go out
 * together, so a slow system queues instead of slowing the producer
 * down), and carries its due time in its payload ("sent_us"). Its ID is
 * chosen by the producer, <base>-<i+1>, so an ID maps back to i without
 * a table.
 *
 * The ack time is taken where it happens: a MONITOR connection receives
 * every command Redis executes, stamped by Redis with gettimeofday() in
 * microseconds, including the XACKs that a consumer sends and the XACKs
 * that run inside its Lua scripts. The latency of entry i is the stamp of
 * the first XACK naming its ID minus its due time: both are
 * CLOCK_REALTIME on the same machine. It covers the producer's send, the
 * consumer's wake-up, read, handling and ack, and needs nothing from the
 * handler, so sluice's own noop handler is measured as it is. The same
 * MONITOR stream stamps each XADD as Redis ran it, so the latency splits
 * into the part before any consumer could see the entry (the producer's
 * and Redis's delays) and the consumer's side, XADD to XACK. MONITOR
 * costs Redis some CPU for every command; the ceiling pays the same.
 *
 * With $BENCH_LAT_TRACE set, every MONITOR line of run k is also written
 * to $BENCH_LAT_TRACE.<k>, for a look at where a slow entry waited (its
 * XADD, the reads and acks around it, each stamped by Redis).
 *
 * One process does both sides (select() on two sockets) so that a
 * 2-core machine does not run a fifth busy process.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include "bench.h"

/* The state of one latency run. */
struct lat_run {
    redisContext *prod;           /* the producer's connection */
    redisContext *mon;            /* the MONITOR connection */
    const char *stream;           /* stream written */
    long long base;               /* ms part of every ID */
    long long total;              /* entries to send */
    long long sent;               /* entries sent so far */
    long long replies;            /* XADD replies read */
    long long seen;               /* entries whose XACK was seen */
    int64_t t0;                   /* due time of entry 0, wall us */
    double gap_us;                /* 1e6 / rate */
    int64_t *due;                 /* due time of each entry, wall us */
    int64_t *lat;                 /* its latency, us; -1 until acked */
    int64_t *added;               /* Redis's stamp of its XADD, wall us; 0 until seen */
    int64_t *side;                /* its XADD-to-XACK time, us; -1 until both seen */
    int64_t first_send, last_send;/* wall us of the first and last send */
    FILE *trace;                  /* $BENCH_LAT_TRACE: every MONITOR line, or NULL */
};

/* Sends every entry that is due by now. */
static void send_due(struct lat_run *L)
{
    int64_t now = sl_bench_wall_us();
    char id[64], data[256];
    int done = 0;

    while (L->sent < L->total && L->due[L->sent] <= now) {
        long long i = L->sent;
        int len = snprintf(data, sizeof(data),
                           "{\"sent_us\":%lld,\"order_id\":\"o-%07lld\",\"user_id\":\"u-%05lld\","
                           "\"amount_cents\":%lld,\"currency\":\"USD\",\"pad\":\"%s\"}",
                           (long long)L->due[i], i, i % 10000, 100 + i % 9900,
                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        snprintf(id, sizeof(id), "%lld-%lld", L->base, i + 1);
        redisAppendCommand(L->prod, "XADD %s %s type bench.latency data %b",
                           L->stream, id, data, (size_t)len);
        if (L->sent == 0)
            L->first_send = now;
        L->last_send = now;
        L->sent++;
    }
    do {
        if (redisBufferWrite(L->prod, &done) != REDIS_OK)
            sl_bench_die("latency producer: %s", L->prod->errstr);
    } while (!done);
}

/* Parses one quoted MONITOR argument at *p ("..." with sdscatrepr
 * escapes) into out (cut to size). Returns 0 and advances *p past it and
 * one space, or -1 when there is none. */
static int next_arg(const char **p, char *out, size_t size)
{
    const char *s = *p;
    size_t n = 0;

    if (*s != '"')
        return -1;
    for (s++; *s && *s != '"'; s++) {
        if (*s == '\\' && s[1])
            s++;
        if (n + 1 < size)
            out[n++] = *s;
    }
    if (*s != '"')
        return -1;
    out[n] = '\0';
    s++;
    if (*s == ' ')
        s++;
    *p = s;
    return 0;
}

/* Maps an entry ID of this run to its index + 1, or returns 0. */
static long long seq_of(const struct lat_run *L, const char *arg)
{
    long long ms, seq;

    if (sscanf(arg, "%lld-%lld", &ms, &seq) != 2 || ms != L->base || seq < 1 || seq > L->sent)
        return 0;
    return seq;
}

/* Handles one MONITOR line: for an XADD of the run, records Redis's stamp
 * of it; for an XACK, records the latency of every entry it names that
 * was not acked before, and its time since its XADD. */
static void on_monitor_line(struct lat_run *L, const char *line)
{
    char arg[128], *end;
    long long sec, usec, seq;
    const char *p;
    int64_t ts;
    int k;

    sec = strtoll(line, &end, 10);
    if (*end != '.')
        return;
    usec = strtoll(end + 1, &end, 10);
    ts = (int64_t)sec * 1000000 + usec;
    p = strstr(end, "] \"");
    if (p == NULL)
        return;
    p += 2;
    if (next_arg(&p, arg, sizeof(arg)) < 0)
        return;
    if (strcasecmp(arg, "XADD") == 0) {
        /* XADD stream id ...: the producer's own entries only. */
        if (next_arg(&p, arg, sizeof(arg)) == 0 && next_arg(&p, arg, sizeof(arg)) == 0 &&
            (seq = seq_of(L, arg)) > 0 && L->added[seq - 1] == 0)
            L->added[seq - 1] = ts;
        return;
    }
    if (strcasecmp(arg, "XACK") != 0)
        return;
    for (k = 0; k < 2; k++)      /* stream, group */
        if (next_arg(&p, arg, sizeof(arg)) < 0)
            return;
    while (next_arg(&p, arg, sizeof(arg)) == 0) {
        if ((seq = seq_of(L, arg)) == 0)
            continue;
        if (L->lat[seq - 1] < 0) {
            L->lat[seq - 1] = ts - L->due[seq - 1];
            if (L->added[seq - 1] > 0)
                L->side[seq - 1] = ts - L->added[seq - 1];
            L->seen++;
        }
    }
}

/* Reads what a connection has and handles every complete reply. */
static void read_side(struct lat_run *L, redisContext *c, int monitor)
{
    void *rep;

    if (redisBufferRead(c) != REDIS_OK)
        sl_bench_die("latency %s: %s", monitor ? "monitor" : "producer", c->errstr);
    for (;;) {
        redisReply *r;
        if (redisGetReplyFromReader(c, &rep) != REDIS_OK)
            sl_bench_die("latency reader: %s", c->errstr);
        if (rep == NULL)
            break;
        r = rep;
        if (r->type == REDIS_REPLY_ERROR)
            sl_bench_die("latency %s: %s", monitor ? "monitor" : "XADD", r->str);
        if (monitor && r->type == REDIS_REPLY_STATUS) {
            if (L->trace != NULL)
                fprintf(L->trace, "%s\n", r->str);
            on_monitor_line(L, r->str);
        }
        else if (!monitor)
            L->replies++;
        freeReplyObject(r);
    }
}

/* Compares two int64 latencies for qsort. */
static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* Returns the q-quantile (nearest rank) of n sorted values. */
static double quantile(const int64_t *v, long long n, double q)
{
    long long k;

    if (n == 0)
        return -1;
    k = (long long)(q * (double)n + 0.999999) - 1;
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return (double)v[k];
}

/* Runs the producer and the MONITOR watcher until every entry was acked
 * or 10 s after the last send. */
int sl_bench_latency_run(const struct sl_bench_redis *r, const char *stream,
                         double rate, double secs, struct sl_bench_lat *out)
{
    struct lat_run L;
    redisReply *rep;
    int64_t stop_at = 0;
    long long i, n;
    int rc = -1;

    memset(&L, 0, sizeof(L));
    memset(out, 0, sizeof(*out));
    prctl(PR_SET_TIMERSLACK, 1UL);        /* wake up on time, not 50 us late */
    L.stream = stream;
    L.total = (long long)(rate * secs);
    L.gap_us = 1e6 / rate;
    L.due = malloc((size_t)L.total * sizeof(*L.due));
    L.lat = malloc((size_t)L.total * sizeof(*L.lat));
    L.added = calloc((size_t)L.total, sizeof(*L.added));
    L.side = malloc((size_t)L.total * sizeof(*L.side));
    L.prod = sl_bench_connect(r);
    L.mon = sl_bench_connect(r);
    if (L.due == NULL || L.lat == NULL || L.added == NULL || L.side == NULL ||
        L.prod == NULL || L.mon == NULL)
        goto out;
    if (getenv("BENCH_LAT_TRACE") != NULL && *getenv("BENCH_LAT_TRACE") != '\0') {
        char path[512];
        static int seq;
        snprintf(path, sizeof(path), "%s.%d", getenv("BENCH_LAT_TRACE"), ++seq);
        if ((L.trace = fopen(path, "w")) == NULL)
            sl_bench_die("%s: %s", path, strerror(errno));
        fprintf(stderr, "sluice-bench: MONITOR trace of %s in %s\n", stream, path);
    }
    rep = sl_bench_cmd(L.mon, 0, "MONITOR");
    freeReplyObject(rep);
    L.base = sl_bench_wall_us() / 1000;
    L.t0 = sl_bench_wall_us() + 20000;
    for (i = 0; i < L.total; i++) {
        L.due[i] = L.t0 + (int64_t)((double)i * L.gap_us);
        L.lat[i] = -1;
        L.side[i] = -1;
    }

    for (;;) {
        fd_set rd;
        struct timespec ts;
        int64_t now = sl_bench_wall_us(), wait_us;
        int maxfd = L.prod->fd > L.mon->fd ? L.prod->fd : L.mon->fd;

        if (L.sent < L.total)
            send_due(&L);
        now = sl_bench_wall_us();
        if (L.sent == L.total) {
            if (stop_at == 0)
                stop_at = now + 10 * 1000000LL;
            if ((L.seen == L.total && L.replies == L.total) || now > stop_at)
                break;
            wait_us = 10000;
        } else {
            wait_us = L.due[L.sent] - now;
            if (wait_us < 0)
                wait_us = 0;
        }
        FD_ZERO(&rd);
        FD_SET(L.prod->fd, &rd);
        FD_SET(L.mon->fd, &rd);
        ts.tv_sec = wait_us / 1000000;
        ts.tv_nsec = (long)(wait_us % 1000000) * 1000;
        if (pselect(maxfd + 1, &rd, NULL, NULL, &ts, NULL) < 0) {
            if (errno == EINTR)
                continue;
            sl_bench_die("pselect: %s", strerror(errno));
        }
        if (FD_ISSET(L.mon->fd, &rd))
            read_side(&L, L.mon, 1);
        if (FD_ISSET(L.prod->fd, &rd))
            read_side(&L, L.prod, 0);
    }

    /* Compact the latencies of the acked entries and sort them. */
    for (i = 0, n = 0; i < L.total; i++)
        if (L.lat[i] >= 0)
            L.lat[n++] = L.lat[i];
    qsort(L.lat, (size_t)n, sizeof(*L.lat), cmp_i64);
    out->sent = L.sent;
    out->seen = n;
    out->rate = L.last_send > L.first_send ?
        (double)(L.sent - 1) * 1e6 / (double)(L.last_send - L.first_send) : 0;
    out->p50 = quantile(L.lat, n, 0.50);
    out->p99 = quantile(L.lat, n, 0.99);
    out->p999 = quantile(L.lat, n, 0.999);
    out->max = n > 0 ? (double)L.lat[n - 1] : -1;
    for (i = 0, n = 0; i < L.total; i++)
        if (L.side[i] >= 0)
            L.side[n++] = L.side[i];
    qsort(L.side, (size_t)n, sizeof(*L.side), cmp_i64);
    out->side_p50 = quantile(L.side, n, 0.50);
    out->side_p999 = quantile(L.side, n, 0.999);
    n = out->seen;
    rc = n == L.total ? 0 : -1;
out:
    if (L.prod)
        redisFree(L.prod);
    if (L.mon)
        redisFree(L.mon);
    if (L.trace != NULL)
        fclose(L.trace);
    free(L.due);
    free(L.lat);
    free(L.added);
    free(L.side);
    return rc;
}
