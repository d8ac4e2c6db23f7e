/* soak.c -- sluice-soak: the payment flow at a fixed rate for minutes,
 * as an operator would run it for months, with a table of what would hurt
 * after a month printed every minute.
 *
 *   SOAK_MINUTES=10 SOAK_RATE=500 SLUICE_BIN=build/sluice build/sluice-soak
 *
 * One run starts its own redis-server (keyspace notifications for hashes
 * on), `sluice run` with the pool of config/sluice.json and every tunable
 * at its default, creates SOAK_USERS users, then adds SOAK_RATE orders a
 * second on an absolute schedule (one in 20 for a user who does not
 * exist: declined). Each minute it prints:
 *   - RSS of the supervisor and of its children together, KiB;
 *   - Redis used_memory growth per order finished so far, bytes;
 *   - lag: entries not yet delivered plus pending, orders and payments;
 *   - λ and μ of the orders group as `sluice stats --json` shows them,
 *     and the producer's truth (orders + payment results: twice the order
 *     rate, both land in `orders`), with the window stats used;
 *   - p50 and p99 of order-to-final latency of the orders that became
 *     final in that minute: from the XADD of order.created to the
 *     keyspace notification of the HSET that made the order paid or
 *     failed (the second HSET of order:<id>), ms.
 * At the end it stops the producer, waits for the flow to drain and runs
 * sluice-check (next to SLUICE_BIN, or SOAK_CHECK) on the Redis.
 * Exit code 0 when sluice-check found nothing and every order became
 * final.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <hiredis.h>
#include "config.h"
#include "server.h"
#include "sut.h"

#define SOAK_USERS 1000           /* users the orders are spread over */
#define SOAK_DECLINED_EVERY 20    /* one order in this many has no user */

/* The state the threads share. Arrays are indexed by order number. */
struct soak {
    struct sl_test_redis srv;     /* the Redis of this run */
    long long total;              /* orders to send */
    int rate;                     /* orders per second */
    volatile long long sent;      /* orders sent so far */
    volatile int stop;            /* set to end the producer and the listener */
    int64_t *sent_us;             /* wall time of each XADD, us; 0 not sent */
    int64_t *final_us;            /* wall time it became final, us; 0 not yet */
    unsigned char *hsets;         /* HSETs seen on its order key */
    volatile long long finals;    /* orders final so far */
    char error[256];              /* "" or what went wrong in a thread */
};

/* Returns the wall clock in microseconds. */
static int64_t wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Returns an integer from the environment, or dflt. */
static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? strtol(v, NULL, 10) : dflt;
}

/* ---------------------------------------------------------------------
 * The producer and the listener
 * ------------------------------------------------------------------ */

/* The producer: order i is due at t0 + i/rate and sent as soon as it is
 * due, all late ones together (pipelined), so a slow system queues
 * instead of slowing the producer down. */
static void *produce(void *arg)
{
    struct soak *s = arg;
    redisContext *c = sl_test_connect(&s->srv);
    int64_t t0 = wall_us();
    char data[256];

    if (c == NULL) {
        snprintf(s->error, sizeof(s->error), "producer: cannot connect");
        return NULL;
    }
    while (!s->stop && s->sent < s->total) {
        long long due = (wall_us() - t0) * s->rate / 1000000 + 1, i, n = 0;

        if (due > s->total)
            due = s->total;
        for (i = s->sent; i < due; i++, n++) {
            long long u = i % SOAK_DECLINED_EVERY == 7 ? SOAK_USERS + i : i % SOAK_USERS;
            snprintf(data, sizeof(data), "{\"order_id\":\"o-%lld\",\"user_id\":\"u-%lld\","
                     "\"amount_cents\":%lld,\"currency\":\"EUR\"}", i, u, 100 + i % 900);
            s->sent_us[i] = wall_us();
            redisAppendCommand(c, "XADD orders * type order.created data %s", data);
        }
        for (i = 0; i < n; i++) {
            void *r = NULL;
            if (redisGetReply(c, &r) != REDIS_OK) {
                snprintf(s->error, sizeof(s->error), "producer: %s", c->errstr);
                redisFree(c);
                return NULL;
            }
            freeReplyObject(r);
        }
        s->sent = due;
        if (n == 0) {
            struct timespec ts = { 0, 200000 };
            nanosleep(&ts, NULL);
        }
    }
    redisFree(c);
    return NULL;
}

/* The listener: the keyspace notifications of order:* hashes. The first
 * HSET of order:o-<i> creates it, the second makes it final. */
static void *listen_orders(void *arg)
{
    struct soak *s = arg;
    redisContext *c = sl_test_connect(&s->srv);
    struct timeval tv = { 0, 200000 };
    redisReply *r;

    if (c == NULL) {
        snprintf(s->error, sizeof(s->error), "listener: cannot connect");
        return NULL;
    }
    r = redisCommand(c, "PSUBSCRIBE __keyspace@0__:order:*");
    freeReplyObject(r);
    redisSetTimeout(c, tv);
    while (!s->stop) {
        void *vp = NULL;
        const char *p;
        long long i;

        if (redisGetReply(c, &vp) != REDIS_OK) {
            if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                c->err = 0;     /* a timeout: look at stop again */
                continue;
            }
            snprintf(s->error, sizeof(s->error), "listener: %s", c->errstr);
            break;
        }
        r = vp;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
            r->element[2]->type == REDIS_REPLY_STRING && r->element[3]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[3]->str, "hset") == 0 &&
            (p = strstr(r->element[2]->str, ":order:o-")) != NULL) {
            i = strtoll(p + strlen(":order:o-"), NULL, 10);
            if (i >= 0 && i < s->total && s->hsets[i] < 255 && ++s->hsets[i] == 2) {
                s->final_us[i] = wall_us();
                s->finals++;
            }
        }
        freeReplyObject(r);
    }
    redisFree(c);
    return NULL;
}

/* ---------------------------------------------------------------------
 * What a minute shows
 * ------------------------------------------------------------------ */

/* Returns VmRSS of pid, KiB (0 when it cannot be read). */
static long long rss_kib(pid_t pid)
{
    char path[64], *text, *p;
    long long kib = 0;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    if ((text = sl_test_read_file(path)) == NULL)
        return 0;
    if ((p = strstr(text, "VmRSS:")) != NULL)
        kib = strtoll(p + 6, NULL, 10);
    free(text);
    return kib;
}

/* Returns INFO memory's used_memory, bytes (-1 on failure). */
static long long used_memory(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO memory");
    long long n = -1;
    const char *p;

    if (r != NULL && r->type == REDIS_REPLY_STRING && (p = strstr(r->str, "used_memory:")) != NULL)
        n = strtoll(p + strlen("used_memory:"), NULL, 10);
    freeReplyObject(r);
    return n;
}

/* Returns lag + pending summed over the groups of orders and payments. */
static long long backlog(redisContext *c)
{
    static const char *const streams[] = { "orders", "payments" };
    long long n = 0;
    size_t i, g, k;

    for (i = 0; i < 2; i++) {
        redisReply *r = redisCommand(c, "XINFO GROUPS %s", streams[i]);
        for (g = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && g < r->elements; g++)
            for (k = 0; k + 1 < r->element[g]->elements; k += 2) {
                const redisReply *key = r->element[g]->element[k], *v = r->element[g]->element[k + 1];
                if (key->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_INTEGER &&
                    (!strcmp(key->str, "lag") || !strcmp(key->str, "pending")))
                    n += v->integer;
            }
        freeReplyObject(r);
    }
    return n;
}

/* Runs `sluice stats --json -c cfg` and reads lambda, mu and window_s of
 * stream/group into out[0..2] (-1 when missing). */
static void stats_row(const char *cfg, const char *stream, const char *group, double out[3])
{
    char cmd[1200];
    char buf[65536];
    size_t n;
    FILE *f;
    json_t *doc;
    size_t i;

    out[0] = out[1] = out[2] = -1;
    snprintf(cmd, sizeof(cmd), "'%s' stats --json -c '%s' 2>/dev/null", sl_test_bin(), cfg);
    if ((f = popen(cmd, "r")) == NULL)
        return;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    pclose(f);
    if ((doc = json_loads(buf, 0, NULL)) == NULL)
        return;
    for (i = 0; i < json_array_size(doc); i++) {
        json_t *r = json_array_get(doc, i);
        if (strcmp(json_string_value(json_object_get(r, "stream")), stream) != 0 ||
            strcmp(json_string_value(json_object_get(r, "group")), group) != 0)
            continue;
        out[0] = json_number_value(json_object_get(r, "lambda"));
        out[1] = json_number_value(json_object_get(r, "mu"));
        out[2] = json_is_number(json_object_get(r, "window_s")) ?
                 json_number_value(json_object_get(r, "window_s")) : 0;
    }
    json_decref(doc);
}

/* Orders ascending, for the percentiles. */
static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* Writes p50 and p99 (ms) of the latencies of orders that became final in
 * [from_us, to_us) into out; -1 when none did. */
static void latency(const struct soak *s, int64_t from_us, int64_t to_us, double out[2])
{
    int64_t *v = malloc(sizeof(*v) * (size_t)(s->total > 0 ? s->total : 1));
    long long i, n = 0;

    out[0] = out[1] = -1;
    if (v == NULL)
        return;
    for (i = 0; i < s->total; i++)
        if (s->final_us[i] >= from_us && s->final_us[i] < to_us && s->sent_us[i] > 0)
            v[n++] = s->final_us[i] - s->sent_us[i];
    if (n > 0) {
        qsort(v, (size_t)n, sizeof(*v), cmp_i64);
        out[0] = (double)v[n / 2] / 1000.0;
        out[1] = (double)v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0;
    }
    free(v);
}

/* ---------------------------------------------------------------------
 * The run
 * ------------------------------------------------------------------ */

/* Runs the soak. Returns the exit code. */
int main(void)
{
    static struct soak s;
    long minutes = env_long("SOAK_MINUTES", 10);
    char *dir, cfg[512], log[512], workers[512] = "", check[1200], data[256];
    struct sl_test_config c = { NULL, NULL, NULL, NULL, workers, NULL };
    pthread_t prod, lis;
    redisContext *rc;
    pid_t pool, kids[64];
    long long base, prev_sent = 0, i;
    int64_t t_start, t_prev;
    int m, nk, k, rv, code = 0;

    s.rate = (int)env_long("SOAK_RATE", 500);
    if (minutes < 1 || s.rate < 1) {
        fprintf(stderr, "soak: SOAK_MINUTES and SOAK_RATE must be positive\n");
        return 2;
    }
    s.total = (long long)minutes * 60 * s.rate;
    s.sent_us = calloc((size_t)s.total, sizeof(*s.sent_us));
    s.final_us = calloc((size_t)s.total, sizeof(*s.final_us));
    s.hsets = calloc((size_t)s.total, 1);
    if (s.sent_us == NULL || s.final_us == NULL || s.hsets == NULL || (dir = sl_test_tmpdir()) == NULL)
        return 1;
    if (sl_test_redis_start(&s.srv, "--notify-keyspace-events Kh") < 0)
        return 1;
    snprintf(cfg, sizeof(cfg), "%s/sluice.json", dir);
    snprintf(log, sizeof(log), "%s/sluice.log", dir);
    snprintf(workers, sizeof(workers),
             "{\"handler\":\"user\",\"stream\":\"users\",\"group\":\"user-workers\",\"processes\":1},"
             "{\"handler\":\"order\",\"stream\":\"orders\",\"group\":\"order-workers\",\"processes\":2},"
             "{\"handler\":\"payment\",\"stream\":\"payments\",\"group\":\"payment-workers\",\"processes\":2}");
    c.url = s.srv.url;
    if (sl_test_config_write(cfg, &c) < 0 || (rc = sl_test_connect(&s.srv)) == NULL)
        return 1;
    pool = sl_test_pool_spawn(cfg, log);
    if (pool <= 0 || (rv = sl_test_pool_wait_running(pool, log, 5, 30000)) != 0) {
        fprintf(stderr, "soak: the pool did not start; its log: %s\n", log);
        return 1;
    }
    for (i = 0; i < SOAK_USERS; i++) {
        snprintf(data, sizeof(data), "{\"user_id\":\"u-%lld\",\"name\":\"U\",\"email\":\"u@example.com\","
                 "\"balance_cents\":1000000000000}", i);
        freeReplyObject(redisCommand(rc, "XADD users * type user.created data %s", data));
    }
    for (k = 0; k < 600; k++) {
        redisReply *r = redisCommand(rc, "EXISTS user:u-%d", SOAK_USERS - 1);
        int there = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
        if (there && backlog(rc) == 0)
            break;
        usleep(100000);
    }
    base = used_memory(rc);
    printf("soak: %ld minutes at %d orders/s, %d users, Redis %s, pool pid %ld, log %s\n",
           minutes, s.rate, SOAK_USERS, s.srv.url, (long)pool, log);
    printf("%4s %8s %9s %9s %8s %8s %7s %10s %10s %10s %6s %8s %8s\n", "MIN", "ORDERS/s",
           "RSS_SUP", "RSS_KIDS", "USED_MB", "B/ORDER", "LAG", "LAMBDA", "MU", "TRUTH", "WIN_s",
           "P50_ms", "P99_ms");
    fflush(stdout);
    t_start = t_prev = wall_us();
    pthread_create(&lis, NULL, listen_orders, &s);
    pthread_create(&prod, NULL, produce, &s);
    for (m = 1; m <= minutes; m++) {
        int64_t until = t_start + (int64_t)m * 60000000, now;
        long long kids_kib = 0, used, sent, finals;
        double st[3], lat[2], truth;

        while ((now = wall_us()) < until) {
            struct timespec ts = { 0, 100000000 };
            nanosleep(&ts, NULL);
        }
        sent = s.sent;
        finals = s.finals;
        nk = sl_test_pool_children(pool, kids, 64);
        for (k = 0; k < nk; k++)
            kids_kib += rss_kib(kids[k]);
        used = used_memory(rc);
        stats_row(cfg, "orders", "order-workers", st);
        /* Into orders go the orders and, one each, their payment results. */
        truth = 2.0 * (double)(sent - prev_sent) / ((double)(now - t_prev) / 1e6);
        latency(&s, t_prev, now, lat);
        printf("%4d %8.1f %9lld %9lld %8.1f %8lld %7lld %10.1f %10.1f %10.1f %6.1f %8.2f %8.2f\n",
               m, (double)(sent - prev_sent) / ((double)(now - t_prev) / 1e6), rss_kib(pool),
               kids_kib, (double)used / 1048576.0, finals > 0 ? (used - base) / finals : 0,
               backlog(rc), st[0], st[1], truth, st[2], lat[0], lat[1]);
        fflush(stdout);
        prev_sent = sent;
        t_prev = now;
    }
    s.stop = 1;
    pthread_join(prod, NULL);
    for (k = 0; k < 600 && (s.finals < s.sent || backlog(rc) > 0); k++)
        usleep(100000);
    s.stop = 2;
    pthread_join(lis, NULL);
    printf("soak: %lld orders sent, %lld final, Redis used_memory %lld -> %lld (%lld bytes per order)\n",
           (long long)s.sent, (long long)s.finals, base, used_memory(rc),
           s.finals > 0 ? (used_memory(rc) - base) / s.finals : 0);
    if (s.error[0] != '\0') {
        printf("soak: %s\n", s.error);
        code = 1;
    }
    if (s.finals != s.sent)
        code = 1;
    if (getenv("SOAK_CHECK") != NULL)
        snprintf(check, sizeof(check), "'%s' --redis %s", getenv("SOAK_CHECK"), s.srv.url);
    else
        snprintf(check, sizeof(check), "'%.*s/sluice-check' --redis %s",
                 (int)(strrchr(sl_test_bin(), '/') ? strrchr(sl_test_bin(), '/') - sl_test_bin() : 1),
                 strrchr(sl_test_bin(), '/') ? sl_test_bin() : ".", s.srv.url);
    printf("soak: %s\n", check);
    fflush(stdout);
    if (system(check) != 0)
        code = 1;
    sl_test_pool_kill(&pool, 20000);
    redisFree(rc);
    sl_test_redis_cleanup(&s.srv);
    sl_test_rmtree(dir);
    free(dir);
    printf("soak: %s\n", code == 0 ? "ok" : "FAILED");
    return code;
}
