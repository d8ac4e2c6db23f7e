/* chaos.c -- sluice-chaos: a Jepsen-style randomized fault run of the
 * payment flow, proving that nothing is lost or doubled (docs/semantics.md, docs/payment-flow.md).
 *
 *   CHAOS_SECONDS=60 CHAOS_SEED=1 SLUICE_BIN=build/sluice-test build/sluice-chaos
 *
 * One run:
 *   1. starts its own redis-server (appendonly yes) through the test
 *      harness, the loopback TCP proxy of tests/support/proxy.c (a forked
 *      poll() forwarder with the modes pass, black hole, partial black
 *      hole and reset) and `sluice run` with the user,
 *      order and payment workers pointed at the proxy, with short timings;
 *   2. creates the users, then forks a seeded producer that XADDs orders,
 *      credits, identical duplicates (some with their keys reordered),
 *      conflicting duplicates, invalid entries and forged payment
 *      results straight to Redis, and writes every operation to a
 *      history file with its outcome: ok (with the entry ID), fail (an
 *      error reply: not applied) or unknown (no reply: may or may not
 *      have been applied). Every entry carries a field h = its
 *      operation number, which dead letters keep;
 *   3. meanwhile a seeded nemesis injects one fault at a time, holds it,
 *      heals it and lets the system breathe: SIGKILL of a worker, SIGKILL
 *      of the supervisor (then a new pool), SIGTERM of the pool (then a
 *      new pool), SIGSTOP/SIGCONT of redis-server, SIGKILL of
 *      redis-server and a restart on its AOF, CLIENT KILL TYPE normal,
 *      CLIENT PAUSE 1000 ALL, maxmemory just above what is used, proxy
 *      black hole, proxy reset, and a partial black hole (every other
 *      proxied connection hangs: one worker's reader, another's command
 *      connection, the supervisor's...), which lets a live consumer's
 *      entries be reclaimed by another while its commit is stuck;
 *   4. heals everything, stops the producer, waits (bounded) until the
 *      flow is quiet, and checks: the invariants of tests/support/
 *      invariants.c; every valid event that is in its stream (every ok
 *      one must be; an unknown one counts only when it is there) has its
 *      effect (else `lost`); no order, payment or credit exists without
 *      an event (`unexpected`); no payment or credit moved money twice,
 *      and no order produced two payment requests or two results
 *      (`duplicated`); the dead-letter streams hold exactly the invalid
 *      entries and the conflicting duplicates, each once, with the
 *      expected code (`dlq-missing`, `dlq-unexpected`); every group has
 *      nothing pending and has read its stream to the end (`stuck`); the
 *      pool runs all its children (`unhealthy`).
 *
 * It prints a verdict in the style of Jepsen's checkers and exits 0 only
 * when it is valid. A failed run keeps its directory (config, pool log,
 * nemesis log, history, Redis directory copy) and prints its path;
 * CHAOS_KEEP=1 keeps it always. CHAOS_FAULTS=name,name... restricts the
 * nemesis to those faults (names as in the verdict), so that a failure
 * can be narrowed down to one cause.
 *
 * The stream-trimming policy is "none" so that every entry that was ever
 * added can be found again: that is how an unknown outcome is resolved.
 * CHAOS_TRIM=acked runs with "acked" instead; then an acknowledged or
 * dead-lettered entry counts as present even when trimmed, an unknown
 * one only when a trace of it remains, and payment requests and results
 * can only be counted among the entries not yet trimmed (the ledger
 * still shows every debit).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <hiredis.h>
#include <jansson.h>
#include "harness.h"
#include "config.h"
#include "invariants.h"
#include "proxy.h"
#include "sut.h"

#define C_USERS 16                /* users created before the run */
#define C_BALANCE 200000LL        /* each one's opening balance, cents */
#define C_PROCS 5                 /* children: 1 user, 2 order, 2 payment */
#define C_RATE_US 8000            /* producer: pause between two XADDs */
#define C_QUIET_MS 120000         /* bound on the final drain */
#define C_START_MS 30000          /* a pool's children all running */
#define C_MAX_OPS 200000          /* history capacity */
#define C_SHOW 12                 /* problems printed per kind */

/* ---------------------------------------------------------------------
 * Seeded randomness (xorshift64*), separate for producer and nemesis
 * ------------------------------------------------------------------ */

/* Returns the next number of the generator whose state is *s. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* Returns a number in [lo, hi] from generator *s. */
static long long rnd_in(uint64_t *s, long long lo, long long hi)
{
    return lo + (long long)(rnd(s) % (uint64_t)(hi - lo + 1));
}

/* ---------------------------------------------------------------------
 * Run state
 * ------------------------------------------------------------------ */

static struct sl_test_redis srv;  /* the run's redis-server */
static char rundir[512];          /* everything this run writes */
static char cfgpath[600];         /* <rundir>/sluice.json */
static char poollog[600];         /* <rundir>/pool.log */
static char histpath[600];        /* <rundir>/history.log */
static FILE *nemlog;              /* <rundir>/nemesis.log */
static pid_t pool_pid;            /* the running `sluice run`, 0 if none */
static int anomalies;             /* unexpected pool exits, failed heals */
static struct sl_test_proxy px;   /* the proxy between the pool and Redis */

/* Writes a timestamped line to the nemesis log and to stdout. */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    static long long t0;
    char msg[512];
    va_list ap;

    if (t0 == 0)
        t0 = sl_test_now_ms();
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("[%7.3f] %s\n", (sl_test_now_ms() - t0) / 1000.0, msg);
    fflush(stdout);
    if (nemlog != NULL) {
        fprintf(nemlog, "%lld %s\n", sl_test_now_ms() - t0, msg);
        fflush(nemlog);
    }
}

/* Pauses for ms milliseconds: a fault's hold or the producer's pace,
 * never a wait for an effect. */
static void pause_ms(long long ms)
{
    long long deadline = sl_test_now_ms() + ms;

    while (sl_test_now_ms() < deadline) {
        struct timespec ts = { 0, 5 * 1000000L };

        nanosleep(&ts, NULL);
    }
}

/* A direct connection to the run's Redis with short timeouts, or NULL. */
static redisContext *direct(void)
{
    return sl_test_connect_timeout(&srv, 500, 2000);
}

/* Runs one command on a fresh direct connection and returns the reply
 * (new), or NULL when Redis did not answer. */
static redisReply *once(const char *fmt, ...)
{
    redisContext *c = direct();
    redisReply *r = NULL;
    va_list ap;

    if (c == NULL)
        return NULL;
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* ---------------------------------------------------------------------
 * The proxy (tests/support/proxy.c)
 * ------------------------------------------------------------------ */

/* Sends a command (SL_TEST_PROXY_...) to the proxy and waits for it to
 * take effect. Returns 0, or -1 (counted as an anomaly) when the proxy
 * is silent. */
static int proxy_cmd(char cmd)
{
    if (sl_test_proxy_cmd(&px, cmd) != 0) {
        note("anomaly: the proxy did not apply '%c'", cmd);
        anomalies++;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * The pool
 * ------------------------------------------------------------------ */

/* Returns 1 when CHAOS_TRIM=acked asks for the pool to trim its streams. */
static int trim_acked(void)
{
    const char *t = getenv("CHAOS_TRIM");

    return t != NULL && strcmp(t, "acked") == 0;
}

/* Writes the pool's config: the three workers, Redis through the proxy,
 * short timings, trim none (see the file comment; CHAOS_TRIM=acked for
 * "acked"), metrics off.
 * max_deliveries is 10: a worker SIGKILLed while it holds an entry is a
 * failed attempt of that entry (docs/semantics.md), and the nemesis kills often. */
static int write_config(void)
{
    char url[64], defaults[512];
    struct sl_test_config c = {
        url, "\"connect_timeout_ms\": 1000, \"command_timeout_ms\": 1500", defaults, NULL,
        "{ \"handler\": \"user\", \"stream\": \"users\", \"group\": \"user-workers\", \"processes\": 1 }, "
        "{ \"handler\": \"order\", \"stream\": \"orders\", \"group\": \"order-workers\", \"processes\": 2 }, "
        "{ \"handler\": \"payment\", \"stream\": \"payments\", \"group\": \"payment-workers\", \"processes\": 2 }",
        NULL
    };

    snprintf(url, sizeof url, "redis://127.0.0.1:%d", px.port);
    snprintf(defaults, sizeof defaults,
             "\"batch\": 32, \"block_ms\": 300, \"reclaim_idle_ms\": 1000, \"reclaim_interval_ms\": 500, "
             "\"max_deliveries\": 10, \"heartbeat_ms\": 200, \"retry_backoff_ms\": [50, 800], "
             "\"handler_timeout_ms\": 10000, \"shutdown_timeout_ms\": 5000, \"trim\": \"%s\"",
             trim_acked() ? "acked" : "none");
    return sl_test_config_write(cfgpath, &c);
}

/* Starts `sluice run` (log appended to the pool log) and waits until C_PROCS
 * more children have logged event=running. Returns 0 or -1. */
static int pool_start(void)
{
    int before = sl_test_log_count(poollog, " event=running ");

    pool_pid = sl_test_pool_spawn(cfgpath, poollog);
    if (pool_pid <= 0)
        return -1;
    if (sl_test_pool_wait_running(pool_pid, poollog, before + C_PROCS, C_START_MS) != 0) {
        note("anomaly: a new pool did not get its %d children running", C_PROCS);
        anomalies++;
        return -1;
    }
    return 0;
}

/* Makes sure a pool runs: one that exited without the nemesis asking
 * is an anomaly (noted, counted) and is replaced. */
static void pool_ensure(void)
{
    int status = 0;

    if (pool_pid > 0 && sl_test_wait_exit(pool_pid, 0, &status) == 0)
        return;
    if (pool_pid > 0) {
        note("anomaly: the pool exited on its own (wait status %#x)", status);
        anomalies++;
    }
    pool_start();
}

/* Stops the pool with SIGTERM. Returns 1 when it exited 0 within its
 * shutdown timeout plus a margin; otherwise SIGKILLs it and returns 0. */
static int pool_term(void)
{
    int status = 0;

    if (pool_pid <= 0)
        return 1;
    sl_test_kill(pool_pid, SIGTERM);
    if (!sl_test_wait_exit(pool_pid, 15000, &status)) {
        sl_test_kill(pool_pid, SIGKILL);
        sl_test_wait_exit(pool_pid, 5000, NULL);
        pool_pid = 0;
        return 0;
    }
    pool_pid = 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---------------------------------------------------------------------
 * The producer and its history
 * ------------------------------------------------------------------ */

/* What one history line says about one XADD. */
struct op {
    long h;                       /* operation number, also field h */
    char stream[16];              /* users or orders */
    char kind;                    /* 'o' order, 'c' credit, 'u' user, 'x' invalid */
    char key[40];                 /* order_id / credit_id / user_id, "-" if invalid */
    int variant;                  /* 0 the original data, k > 0 a conflicting one */
    char user[40];                /* the user of an order or credit */
    long long amount;             /* its amount_cents (balance for a user) */
    char expect[40];              /* invalid: the dead-letter code expected */
    char result[8];               /* ok, fail or unknown */
    char id[48];                  /* the entry ID when ok, else "-" */
    /* filled in by the checker */
    int present;                  /* found in its stream */
    char found_id[48];            /* the ID found there */
    int dead;                     /* dead letters carrying this h */
    char dead_error[160];         /* the first one's error */
};

static struct op *ops;            /* the history, indexed by h */
static long nops;                 /* entries used in ops */

/* Formats the data of an order: the same JSON value in one of two key
 * orders and spacings, picked by `style`. */
static void order_json(char *buf, size_t len, const char *id, const char *user,
                       long long amount, int style)
{
    if (style)
        snprintf(buf, len, "{ \"currency\": \"EUR\", \"amount_cents\": %lld, "
                 "\"user_id\": \"%s\", \"order_id\": \"%s\" }", amount, user, id);
    else
        snprintf(buf, len, "{\"order_id\":\"%s\",\"user_id\":\"%s\",\"amount_cents\":%lld,"
                 "\"currency\":\"EUR\"}", id, user, amount);
}

/* Formats the data of a credit, like order_json(). */
static void credit_json(char *buf, size_t len, const char *id, const char *user,
                        long long amount, int style)
{
    if (style)
        snprintf(buf, len, "{\"amount_cents\": %lld, \"user_id\": \"%s\", \"credit_id\": \"%s\"}",
                 amount, user, id);
    else
        snprintf(buf, len, "{\"credit_id\":\"%s\",\"user_id\":\"%s\",\"amount_cents\":%lld}",
                 id, user, amount);
}

/* The producer's connection (direct to Redis, not through the proxy). */
static redisContext *pc;

/* Sends one XADD of {type, data (NULL: no data field), h} to stream and
 * returns its outcome: "ok" (id filled), "fail" (an error reply, or no
 * connection: not applied) or "unknown" (no reply: maybe applied). */
static const char *produce(const char *stream, const char *type, const char *data,
                           long h, char *id, size_t idlen)
{
    redisReply *r;
    const char *res;

    snprintf(id, idlen, "-");
    if (pc == NULL) {
        pc = direct();
        if (pc == NULL)
            return "fail";
    }
    if (data != NULL)
        r = redisCommand(pc, "XADD %s * type %s data %s h %ld", stream, type, data, h);
    else
        r = redisCommand(pc, "XADD %s * type %s h %ld", stream, type, h);
    if (r == NULL) {
        redisFree(pc);
        pc = NULL;
        return "unknown";
    }
    if (r->type == REDIS_REPLY_STRING) {
        snprintf(id, idlen, "%s", r->str);
        res = "ok";
    } else {
        res = "fail";
    }
    freeReplyObject(r);
    return res;
}

/* One invalid entry: where it goes, what it holds, what code it earns. */
struct bad {
    const char *stream;           /* users or orders */
    const char *type;             /* the entry's type */
    const char *data;             /* its data (%ld: a unique number); NULL: none */
    const char *code;             /* the expected dead-letter code */
};

static const struct bad bads[] = {
    { "orders", "order.created", "{\"order_id\":\"bad-%ld\",\"user_id\":", "invalid_json" },
    { "orders", "order.created", "{\"order_id\":\"bad-%ld\",\"user_id\":\"u-1\","
      "\"amount_cents\":\"100\",\"currency\":\"EUR\"}", "wrong_type" },
    { "orders", "order.created", "{\"order_id\":\"bad-%ld\",\"user_id\":\"u-1\","
      "\"amount_cents\":1e2,\"currency\":\"EUR\"}", "wrong_type" },
    { "orders", "order.created", "{\"order_id\":\"bad-%ld\",\"user_id\":\"u-1\","
      "\"amount_cents\":100}", "missing_field" },
    { "orders", "order.created", "{\"order_id\":\"bad-%ld\",\"user_id\":\"u-1\","
      "\"amount_cents\":100,\"currency\":\"eur\"}", "invalid_currency" },
    { "orders", "order.created", "{\"order_id\":\"bad-%ld\",\"user_id\":\"u-1\","
      "\"amount_cents\":0,\"currency\":\"EUR\"}", "invalid_amount" },
    { "orders", "order.created", "{\"order_id\":\"bad %ld\",\"user_id\":\"u-1\","
      "\"amount_cents\":5,\"currency\":\"EUR\"}", "invalid_id" },
    { "orders", "order.created", "[%ld]", "invalid_schema" },
    { "orders", "order.exploded", "{\"order_id\":\"bad-%ld\"}", "unknown_type" },
    { "orders", "order.created", NULL, "missing_payload" },
    /* Forged payment results (anyone can XADD to orders): no payment
     * record under forged-<h>, and for o-0 a reason no payment ever has,
     * so whatever o-0's real payment did, neither may touch an order. */
    { "orders", "payment.succeeded", "{\"payment_id\":\"forged-%ld\",\"order_id\":\"o-0\"}",
      "payment_mismatch" },
    { "orders", "payment.declined", "{\"payment_id\":\"o-0\",\"order_id\":\"o-0\","
      "\"reason\":\"forged-%ld\"}", "payment_mismatch" },
    { "users", "user.credited", "{\"credit_id\":\"bad-%ld\",", "invalid_json" },
    { "users", "user.credited", "{\"credit_id\":\"bad-%ld\",\"user_id\":\"u-1\","
      "\"amount_cents\":true}", "wrong_type" },
    { "users", "user.credited", "{\"credit_id\":\"bad-%ld\",\"user_id\":\"u-1\","
      "\"amount_cents\":-3}", "invalid_amount" },
    { "users", "user.credited", "{\"credit_id\":\"bad-%ld\",\"user_id\":\"u-1\","
      "\"amount_cents\":7,\"amount_cents\":8}", "invalid_json" },
};
#define NBADS (sizeof bads / sizeof bads[0])

static volatile sig_atomic_t producer_stop; /* SIGTERM seen by the producer */

/* The producer's SIGTERM handler: finish the operation in hand, then stop. */
static void on_producer_term(int sig)
{
    (void)sig;
    producer_stop = 1;
}

/* Writes one history line (the fields of struct op, space-separated). */
static void hist(FILE *f, long h, const char *stream, char kind, const char *key,
                 int variant, const char *user, long long amount, const char *expect,
                 const char *result, const char *id)
{
    fprintf(f, "%ld %s %c %s %d %s %lld %s %s %s\n", h, stream, kind, key, variant, user,
            amount, expect, result, id);
    fflush(f);
}

/* The producer process: XADDs until SIGTERM, writing every operation to
 * the history. First the users (h 0 .. C_USERS-1), retried until ok, so
 * that the run starts with every user known; then the seeded mix. */
static void producer(uint64_t seed, int users_only)
{
    FILE *f = fopen(histpath, "a");
    uint64_t s = seed ? seed : 1;
    long h = users_only ? 0 : C_USERS, norders = 0, ncredits = 0;
    char data[512], id[48], key[40], user[40];
    long long *o_amount = calloc(C_MAX_OPS, sizeof *o_amount);
    int *o_user = calloc(C_MAX_OPS, sizeof *o_user);
    int *o_conf = calloc(C_MAX_OPS, sizeof *o_conf);
    long long *c_amount = calloc(C_MAX_OPS, sizeof *c_amount);
    int *c_user = calloc(C_MAX_OPS, sizeof *c_user);
    int *c_conf = calloc(C_MAX_OPS, sizeof *c_conf);

    if (f == NULL || !o_amount || !o_user || !o_conf || !c_amount || !c_user || !c_conf)
        _exit(3);
    signal(SIGTERM, on_producer_term);
    if (users_only) {
        for (int i = 0; i < C_USERS; i++) {
            const char *res;

            snprintf(key, sizeof key, "u-%d", i);
            snprintf(data, sizeof data, "{\"user_id\":\"%s\",\"name\":\"User %d\","
                     "\"email\":\"u%d@example.com\",\"balance_cents\":%lld}", key, i, i, C_BALANCE);
            do
                res = produce("users", "user.created", data, i, id, sizeof id);
            while (strcmp(res, "ok") != 0 && (pause_ms(100), 1));
            hist(f, i, "users", 'u', key, 0, key, C_BALANCE, "-", res, id);
        }
        fclose(f);
        _exit(0);
    }
    while (!producer_stop && h < C_MAX_OPS) {
        long roll = (long)rnd_in(&s, 0, 99);
        const char *res;
        int style = (int)rnd_in(&s, 0, 1);

        if (roll < 52 || norders == 0) {                 /* a new order */
            long n = norders++;

            o_user[n] = (int)rnd_in(&s, 0, C_USERS - 1);
            o_amount[n] = rnd_in(&s, 1, 9000);
            snprintf(key, sizeof key, "o-%ld", n);
            snprintf(user, sizeof user, "u-%d", o_user[n]);
            order_json(data, sizeof data, key, user, o_amount[n], style);
            res = produce("orders", "order.created", data, h, id, sizeof id);
            hist(f, h, "orders", 'o', key, 0, user, o_amount[n], "-", res, id);
        } else if (roll < 62 || ncredits == 0) {         /* a new credit */
            long n = ncredits++;

            c_user[n] = (int)rnd_in(&s, 0, C_USERS - 1);
            c_amount[n] = rnd_in(&s, 1, 20000);
            snprintf(key, sizeof key, "c-%ld", n);
            snprintf(user, sizeof user, "u-%d", c_user[n]);
            credit_json(data, sizeof data, key, user, c_amount[n], style);
            res = produce("users", "user.credited", data, h, id, sizeof id);
            hist(f, h, "users", 'c', key, 0, user, c_amount[n], "-", res, id);
        } else if (roll < 72) {                          /* an identical order again */
            long n = (long)rnd_in(&s, 0, norders - 1);

            snprintf(key, sizeof key, "o-%ld", n);
            snprintf(user, sizeof user, "u-%d", o_user[n]);
            order_json(data, sizeof data, key, user, o_amount[n], style);
            res = produce("orders", "order.created", data, h, id, sizeof id);
            hist(f, h, "orders", 'o', key, 0, user, o_amount[n], "-", res, id);
        } else if (roll < 76) {                          /* an identical credit again */
            long n = (long)rnd_in(&s, 0, ncredits - 1);

            snprintf(key, sizeof key, "c-%ld", n);
            snprintf(user, sizeof user, "u-%d", c_user[n]);
            credit_json(data, sizeof data, key, user, c_amount[n], style);
            res = produce("users", "user.credited", data, h, id, sizeof id);
            hist(f, h, "users", 'c', key, 0, user, c_amount[n], "-", res, id);
        } else if (roll < 81) {                          /* a conflicting order */
            long n = (long)rnd_in(&s, 0, norders - 1);
            int v = ++o_conf[n];

            snprintf(key, sizeof key, "o-%ld", n);
            snprintf(user, sizeof user, "u-%d", o_user[n]);
            order_json(data, sizeof data, key, user, o_amount[n] + 100000 * v, style);
            res = produce("orders", "order.created", data, h, id, sizeof id);
            hist(f, h, "orders", 'o', key, v, user, o_amount[n] + 100000 * v, "-", res, id);
        } else if (roll < 84) {                          /* a conflicting credit */
            long n = (long)rnd_in(&s, 0, ncredits - 1);
            int v = ++c_conf[n];

            snprintf(key, sizeof key, "c-%ld", n);
            snprintf(user, sizeof user, "u-%d", c_user[n]);
            credit_json(data, sizeof data, key, user, c_amount[n] + 100000 * v, style);
            res = produce("users", "user.credited", data, h, id, sizeof id);
            hist(f, h, "users", 'c', key, v, user, c_amount[n] + 100000 * v, "-", res, id);
        } else {                                         /* an invalid entry */
            const struct bad *b = &bads[rnd_in(&s, 0, NBADS - 1)];
            char *d = NULL;

            if (b->data != NULL) {
                snprintf(data, sizeof data, b->data, h);
                d = data;
            }
            res = produce(b->stream, b->type, d, h, id, sizeof id);
            hist(f, h, b->stream, 'x', "-", 0, "-", 0, b->code, res, id);
        }
        h++;
        {
            struct timespec ts = { 0, C_RATE_US * 1000L };

            nanosleep(&ts, NULL);
        }
    }
    fclose(f);
    _exit(0);
}

/* Forks the producer. Returns its PID or -1. */
static pid_t producer_start(uint64_t seed, int users_only)
{
    pid_t parent = getpid();
    pid_t pid = fork();

    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        producer(seed, users_only);
    }
    return pid;
}

/* Reads the history file into ops (indexed by h). Returns 0 or -1. */
static int history_load(void)
{
    FILE *f = fopen(histpath, "r");
    char line[1024];

    if (f == NULL)
        return -1;
    ops = calloc(C_MAX_OPS, sizeof *ops);
    if (ops == NULL) {
        fclose(f);
        return -1;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        struct op o;

        memset(&o, 0, sizeof o);
        if (sscanf(line, "%ld %15s %c %39s %d %39s %lld %39s %7s %47s", &o.h, o.stream,
                   &o.kind, o.key, &o.variant, o.user, &o.amount, o.expect, o.result,
                   o.id) != 10 || o.h < 0 || o.h >= C_MAX_OPS)
            continue;
        ops[o.h] = o;
        if (o.h + 1 > nops)
            nops = o.h + 1;
    }
    fclose(f);
    return 0;
}

/* ---------------------------------------------------------------------
 * The nemesis
 * ------------------------------------------------------------------ */

/* The faults, in the order the seeded die picks them. */
enum fault {
    F_KILL_WORKER, F_KILL_SUPERVISOR, F_TERM_POOL, F_STOP_REDIS, F_KILL_REDIS,
    F_CLIENT_KILL, F_CLIENT_PAUSE, F_MAXMEMORY, F_PROXY_HOLE, F_PROXY_RESET,
    F_PROXY_PARTIAL, F_NFAULTS
};

static const char *const fault_names[F_NFAULTS] = {
    "kill-worker", "kill-supervisor", "term-pool", "stop-redis", "kill-redis",
    "client-kill", "client-pause", "maxmemory", "proxy-hole", "proxy-reset",
    "proxy-partial-hole"
};

static int fault_count[F_NFAULTS]; /* how often each was injected */

/* Returns INFO memory's used_memory, or -1. */
static long long used_memory(void)
{
    redisReply *r = once("INFO memory");
    long long v = -1;

    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "used_memory:");

        if (p != NULL)
            v = strtoll(p + strlen("used_memory:"), NULL, 10);
    }
    if (r != NULL)
        freeReplyObject(r);
    return v;
}

/* Runs a command on a fresh connection and notes an anomaly when Redis
 * does not accept it. Returns 0 or -1. */
static int must(const char *what, const char *fmt, ...)
{
    redisContext *c = direct();
    redisReply *r = NULL;
    va_list ap;
    int ok;

    if (c != NULL) {
        va_start(ap, fmt);
        r = redisvCommand(c, fmt, ap);
        va_end(ap);
    }
    ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    if (!ok) {
        note("anomaly: %s failed: %s", what, r != NULL ? r->str : c != NULL ? c->errstr : "no connection");
        anomalies++;
    }
    if (r != NULL)
        freeReplyObject(r);
    if (c != NULL)
        redisFree(c);
    return ok ? 0 : -1;
}

/* Injects fault f, holds it for hold_ms, and heals it. */
static void inject(enum fault f, uint64_t *s, long long hold_ms)
{
    pid_t kids[16];
    int n, i;

    fault_count[f]++;
    switch (f) {
    case F_KILL_WORKER:
        n = sl_test_pool_children(pool_pid, kids, 16);
        if (n > 0) {
            i = (int)rnd_in(s, 0, n - 1);
            note("nemesis: SIGKILL worker %ld", (long)kids[i]);
            sl_test_kill(kids[i], SIGKILL);
        }
        pause_ms(hold_ms);
        break;
    case F_KILL_SUPERVISOR:
        n = sl_test_pool_children(pool_pid, kids, 16);
        note("nemesis: SIGKILL supervisor %ld", (long)pool_pid);
        sl_test_kill(pool_pid, SIGKILL);
        sl_test_wait_exit(pool_pid, 5000, NULL);
        for (i = 0; i < n; i++)
            if (!sl_test_wait_exit(kids[i], 5000, NULL)) {
                note("anomaly: child %ld outlived its supervisor", (long)kids[i]);
                anomalies++;
                sl_test_kill(kids[i], SIGKILL);
            }
        pool_pid = 0;
        pause_ms(hold_ms);
        note("nemesis: new pool");
        pool_start();
        break;
    case F_TERM_POOL:
        note("nemesis: SIGTERM pool %ld", (long)pool_pid);
        if (!pool_term()) {
            note("anomaly: the pool did not exit 0 within 15 s of SIGTERM");
            anomalies++;
        }
        pause_ms(hold_ms);
        note("nemesis: new pool");
        pool_start();
        break;
    case F_STOP_REDIS:
        note("nemesis: SIGSTOP redis-server for %lld ms", hold_ms);
        sl_test_redis_sigstop(&srv);
        pause_ms(hold_ms);
        sl_test_redis_sigcont(&srv);
        break;
    case F_KILL_REDIS:
        note("nemesis: SIGKILL redis-server, restart after %lld ms", hold_ms);
        sl_test_redis_kill(&srv);
        pause_ms(hold_ms);
        if (sl_test_redis_restart(&srv) != 0) {
            note("anomaly: redis-server did not restart");
            anomalies++;
        }
        break;
    case F_CLIENT_KILL:
        note("nemesis: CLIENT KILL TYPE normal");
        must("CLIENT KILL", "CLIENT KILL TYPE normal");
        pause_ms(hold_ms);
        break;
    case F_CLIENT_PAUSE:
        note("nemesis: CLIENT PAUSE 1000 ALL");
        must("CLIENT PAUSE", "CLIENT PAUSE 1000 ALL");
        pause_ms(hold_ms > 1000 ? hold_ms : 1000);
        break;
    case F_MAXMEMORY: {
        long long used = used_memory();

        note("nemesis: maxmemory %lld (used %lld) for %lld ms", used + 65536, used, hold_ms);
        if (used > 0)
            must("CONFIG SET maxmemory", "CONFIG SET maxmemory %lld", used + 65536);
        pause_ms(hold_ms);
        must("CONFIG SET maxmemory 0", "CONFIG SET maxmemory 0");
        break;
    }
    case F_PROXY_HOLE:
        note("nemesis: proxy black hole for %lld ms", hold_ms);
        proxy_cmd(SL_TEST_PROXY_HOLE);
        pause_ms(hold_ms);
        proxy_cmd(SL_TEST_PROXY_PASS);
        break;
    case F_PROXY_PARTIAL:
        note("nemesis: proxy partial black hole for %lld ms", hold_ms);
        proxy_cmd(SL_TEST_PROXY_PARTIAL);
        pause_ms(hold_ms);
        proxy_cmd(SL_TEST_PROXY_PASS);
        break;
    case F_PROXY_RESET:
        note("nemesis: proxy reset");
        proxy_cmd(SL_TEST_PROXY_RESET);
        pause_ms(hold_ms);
        break;
    case F_NFAULTS:
        break;
    }
}

/* Heals whatever may still be broken: Redis running and thawed, no
 * memory limit, proxy passing, a pool running. */
static void heal_all(void)
{
    pid_t r = sl_test_redis_pid(&srv);

    if (r <= 0 || !sl_test_pid_alive(r)) {
        if (sl_test_redis_restart(&srv) != 0) {
            note("anomaly: redis-server did not restart at the end");
            anomalies++;
        }
    } else {
        sl_test_redis_sigcont(&srv);
    }
    must("CONFIG SET maxmemory 0", "CONFIG SET maxmemory 0");
    proxy_cmd(SL_TEST_PROXY_PASS);
    pool_ensure();
}

/* ---------------------------------------------------------------------
 * The checker
 * ------------------------------------------------------------------ */

static long long env_num(const char *name, long long dflt);

/* Counters of the verdict. */
static struct {
    int lost, duplicated, unexpected, stuck, dlq_missing, dlq_unexpected;
    int unhealthy, invariants, ok, fail, unknown, present_unknown;
} v;

/* Prints one problem (the first C_SHOW of each kind are shown). */
static void problem(int *counter, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(int *counter, const char *kind, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (*counter < C_SHOW)
        printf("  %s: %s\n", kind, msg);
    (*counter)++;
}

/* Returns the value of field f in a flat field list, or NULL. */
static const char *efield(const redisReply *fields, const char *f)
{
    size_t i;

    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, f) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1]->str;
    return NULL;
}

/* Calls fn(fields, id, arg) for every entry of stream, reading it in
 * pages of 1000 with exclusive ranges. Returns 0 or -1. */
static int scan_stream(redisContext *c, const char *stream,
                       void (*fn)(const redisReply *fields, const char *id, void *arg), void *arg)
{
    char start[64] = "-";

    for (;;) {
        redisReply *r = redisCommand(c, "XRANGE %s %s + COUNT 1000", stream, start);
        size_t i;

        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            if (r != NULL)
                freeReplyObject(r);
            return -1;
        }
        for (i = 0; i < r->elements; i++)
            fn(r->element[i]->element[1], r->element[i]->element[0]->str, arg);
        if (r->elements < 1000) {
            freeReplyObject(r);
            return 0;
        }
        snprintf(start, sizeof start, "(%s", r->element[r->elements - 1]->element[0]->str);
        freeReplyObject(r);
    }
}

/* scan_stream() callback for users and orders: marks the op named by the
 * entry's h as present. Entries without h (follow-ups) are skipped. */
static void mark_present(const redisReply *fields, const char *id, void *arg)
{
    const char *h = efield(fields, "h");
    long n;

    (void)arg;
    if (h == NULL)
        return;
    n = strtol(h, NULL, 10);
    if (n < 0 || n >= nops) {
        problem(&v.unexpected, "unexpected", "entry %s has h=%s, which was never sent", id, h);
        return;
    }
    ops[n].present++;
    snprintf(ops[n].found_id, sizeof ops[n].found_id, "%s", id);
}

/* scan_stream() callback for a dead-letter stream: counts it against its
 * op (by h); one without h, or for an op never sent, is unexpected. */
static void mark_dead(const redisReply *fields, const char *id, void *arg)
{
    const char *stream = arg;
    const char *h = efield(fields, "h"), *err = efield(fields, "error");
    long n;

    if (h == NULL || (n = strtol(h, NULL, 10)) < 0 || n >= nops || ops[n].h != n) {
        problem(&v.dlq_unexpected, "dlq-unexpected", "%s:dead %s (error %s) is no entry we sent",
                stream, id, err != NULL ? err : "(none)");
        return;
    }
    if (ops[n].dead++ == 0)
        snprintf(ops[n].dead_error, sizeof ops[n].dead_error, "%s", err != NULL ? err : "");
}

/* A count per business ID (payment requests, results, ledger debits). */
struct tally {
    const char *what;             /* printed in the problem */
    char **ids;                   /* the IDs seen, in arrival order */
    size_t n, cap;                /* used and allocated */
};

/* Adds id to t. */
static void tally_add(struct tally *t, const char *id)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        char **ids = realloc(t->ids, cap * sizeof *ids);

        if (ids == NULL)
            return;
        t->ids = ids;
        t->cap = cap;
    }
    t->ids[t->n] = strdup(id);
    if (t->ids[t->n] != NULL)
        t->n++;
}

/* qsort comparator of strings. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reports every ID that t holds more than once as duplicated; frees t. */
static void tally_check(struct tally *t)
{
    size_t i, j;

    qsort(t->ids, t->n, sizeof *t->ids, cmp_str);
    for (i = 0; i < t->n; i = j) {
        for (j = i + 1; j < t->n && strcmp(t->ids[i], t->ids[j]) == 0; j++)
            ;
        if (j - i > 1)
            problem(&v.duplicated, "duplicated", "%zu %s for %s", j - i, t->what, t->ids[i]);
    }
    for (i = 0; i < t->n; i++)
        free(t->ids[i]);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

/* scan_stream() callback for payments and orders: tallies each
 * follow-up by the payment_id of its data. */
static void tally_followups(const redisReply *fields, const char *id, void *arg)
{
    struct tally *t = arg;
    const char *type = efield(fields, "type"), *data = efield(fields, "data");
    json_t *j;

    (void)id;
    if (type == NULL || data == NULL || efield(fields, "h") != NULL)
        return;
    if (strcmp(type, "payment.requested") != 0 && strcmp(type, "payment.succeeded") != 0 &&
        strcmp(type, "payment.declined") != 0)
        return;
    j = json_loads(data, 0, NULL);
    if (json_is_string(json_object_get(j, "payment_id")))
        tally_add(&t[strcmp(type, "payment.requested") == 0 ? 0 : 1],
                  json_string_value(json_object_get(j, "payment_id")));
    json_decref(j);
}

/* scan_stream() callback for the ledger: tallies refs of payments and
 * credits. */
static void tally_ledger(const redisReply *fields, const char *id, void *arg)
{
    const char *ref = efield(fields, "ref");

    (void)id;
    if (ref != NULL && strncmp(ref, "open:", 5) != 0)
        tally_add(arg, ref);
}

/* Returns field f of hash key as a new string, or NULL. */
static char *hget(redisContext *c, const char *key, const char *f)
{
    redisReply *r = redisCommand(c, "HGET %s %s", key, f);
    char *s = NULL;

    if (r != NULL && r->type == REDIS_REPLY_STRING)
        s = strdup(r->str);
    if (r != NULL)
        freeReplyObject(r);
    return s;
}

/* Checks one business ID (an order or a credit): among the ops for it
 * that are present in the stream, the effect must match one valid
 * variant, and every present op of another variant must have been
 * dead-lettered idempotency_conflict once; the applied variant's ops
 * must not be dead-lettered. idx lists the ops of the ID. */
static void check_key(redisContext *c, char kind, const char *key, const long *idx, int n)
{
    char hkey[64];
    char *user, *amount;
    int applied = -1, i, any_ok = 0, any_present = 0;

    snprintf(hkey, sizeof hkey, "%s:%s", kind == 'o' ? "order" : "credit", key);
    user = hget(c, hkey, "user_id");
    amount = hget(c, hkey, "amount_cents");
    for (i = 0; i < n; i++) {
        struct op *o = &ops[idx[i]];

        any_ok |= strcmp(o->result, "ok") == 0;
        any_present |= o->present > 0;
        if (o->present && user != NULL && amount != NULL && strcmp(user, o->user) == 0 &&
            strtoll(amount, NULL, 10) == o->amount)
            applied = o->variant;
    }
    if (user == NULL) {
        if (any_present)
            problem(&v.lost, "lost", "%s: sent (%s), never applied", hkey,
                    any_ok ? "acknowledged" : "unknown outcome, but in the stream");
    } else if (applied < 0) {
        problem(&v.unexpected, "unexpected", "%s holds user %s amount %s, which no event sent",
                hkey, user, amount != NULL ? amount : "(nil)");
    }
    for (i = 0; i < n; i++) {
        struct op *o = &ops[idx[i]];

        if (!o->present)
            continue;
        if (o->variant == applied || user == NULL) {
            if (o->dead)
                problem(&v.dlq_unexpected, "dlq-unexpected", "h=%ld (%s variant %d, applied) "
                        "dead-lettered: %s", o->h, key, o->variant, o->dead_error);
        } else if (o->dead != 1) {
            problem(&v.dlq_missing, "dlq-missing", "h=%ld (%s conflicting variant %d) has %d "
                    "dead letters, expected 1", o->h, key, o->variant, o->dead);
        } else if (strncmp(o->dead_error, "idempotency_conflict", 20) != 0) {
            problem(&v.dlq_unexpected, "dlq-unexpected", "h=%ld (%s variant %d): error %s, "
                    "expected idempotency_conflict", o->h, key, o->variant, o->dead_error);
        }
    }
    if (kind == 'o' && user != NULL) {
        char pkey[64];
        char *st, *ps;

        snprintf(pkey, sizeof pkey, "payment:%s", key);
        st = hget(c, hkey, "status");
        ps = hget(c, pkey, "status");
        if (st == NULL || ps == NULL || (strcmp(st, "paid") != 0 && strcmp(st, "failed") != 0))
            problem(&v.lost, "lost", "%s is %s, its payment %s", hkey, st ? st : "(nil)",
                    ps ? ps : "(missing)");
        free(st);
        free(ps);
    }
    free(user);
    free(amount);
}

/* qsort comparator of ops' indexes by (kind, key). */
static int cmp_op(const void *a, const void *b)
{
    const struct op *x = &ops[*(const long *)a], *y = &ops[*(const long *)b];

    if (x->kind != y->kind)
        return x->kind - y->kind;
    return strcmp(x->key, y->key);
}

/* scan callback: reports an order:/credit:/payment: key whose ID no op
 * names. arg is the sorted index of valid ops. */
static int known_key(const long *idx, long n, char kind, const char *key)
{
    long lo = 0, hi = n - 1;

    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        const struct op *o = &ops[idx[mid]];
        int d = o->kind != kind ? o->kind - kind : strcmp(o->key, key);

        if (d == 0)
            return 1;
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

/* SCANs for keys matching pattern and reports those whose ID (after
 * prefix) is no op of `kind`. */
static void check_unexpected_keys(redisContext *c, const char *pattern, size_t prefix,
                                  char kind, const long *idx, long n)
{
    char cursor[32] = "0";

    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        size_t i;

        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r != NULL)
                freeReplyObject(r);
            return;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (i = 0; i < r->element[1]->elements; i++) {
            const char *k = r->element[1]->element[i]->str;

            if (!known_key(idx, n, kind, k + prefix))
                problem(&v.unexpected, "unexpected", "%s exists, but no event named it", k);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
}

/* Returns how many of the three groups are not quiet (sl_test_unquiet,
 * every stream consumed); -1 when Redis cannot be asked. With `report`,
 * names each. */
static int unquiet(int report)
{
    static char text[4096];
    redisContext *c = direct();
    int bad;

    if (c == NULL)
        return -1;
    bad = sl_test_unquiet(c, sl_test_flow_streams, 3, 1, text, sizeof(text));
    if (report && bad > 0)
        fputs(text, stdout);
    redisFree(c);
    return bad;
}

/* Condition for sl_test_wait_for: the flow is quiet. */
static int quiet(void *arg)
{
    (void)arg;
    return unquiet(0) == 0;
}

/* CHAOS_SELFTEST=1: breaks the quiet system on purpose before the check,
 * once in each way the verdict names, so that a run proves its checker
 * can fail: an order's effects deleted (lost), a second ledger debit for
 * a payment (duplicated, and the invariants), an order nobody sent
 * (unexpected), a dead letter removed (dlq-missing) and one added
 * (dlq-unexpected), and a group that has read nothing (stuck). */
static void tamper(redisContext *c)
{
    redisReply *r;

    note("self-test: tampering with the final state");
    freeReplyObject(redisCommand(c, "DEL order:o-1 payment:o-1"));
    freeReplyObject(redisCommand(c, "XADD ledger * user_id u-0 delta_cents -1 ref payment:o-2"));
    freeReplyObject(redisCommand(c, "HSET order:o-nobody user_id u-0 amount_cents 1 "
                                    "currency EUR status pending"));
    r = redisCommand(c, "XRANGE orders:dead - + COUNT 1");
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1)
        freeReplyObject(redisCommand(c, "XDEL orders:dead %s", r->element[0]->element[0]->str));
    if (r != NULL)
        freeReplyObject(r);
    freeReplyObject(redisCommand(c, "XADD users:dead * type user.created error invalid_json"));
    freeReplyObject(redisCommand(c, "XADD users * type user.created data {} h 999999999"));
    freeReplyObject(redisCommand(c, "XGROUP CREATE users tamper-group 0"));
}

/* Runs every check on the quiet system and fills v. */
static void check(void)
{
    static char report[65536];
    redisContext *c = direct();
    struct tally fu[2] = { { "payment.requested", NULL, 0, 0 },
                           { "payment results", NULL, 0, 0 } };
    struct tally led = { "ledger entries", NULL, 0, 0 };
    long *idx, nidx = 0, i, j;
    pid_t kids[16];
    int bad;

    if (c == NULL || history_load() != 0) {
        printf("  cannot check: %s\n", c == NULL ? "Redis unreachable" : "no history");
        v.unhealthy++;
        return;
    }
    if (env_num("CHAOS_SELFTEST", 0) > 0)
        tamper(c);
    bad = unquiet(1);
    v.stuck = bad < 0 ? 3 : bad;
    bad = sl_test_invariants(c, report, sizeof report);
    if (bad != 0) {
        printf("  invariants: %d violation(s):\n%s\n", bad, report);
        v.invariants = bad < 0 ? 1 : bad;
    }
    scan_stream(c, "users", mark_present, NULL);
    scan_stream(c, "orders", mark_present, NULL);
    scan_stream(c, "users:dead", mark_dead, (void *)"users");
    scan_stream(c, "orders:dead", mark_dead, (void *)"orders");
    scan_stream(c, "payments:dead", mark_dead, (void *)"payments");
    scan_stream(c, "payments", tally_followups, fu);
    scan_stream(c, "orders", tally_followups, fu);
    scan_stream(c, "ledger", tally_ledger, &led);
    tally_check(&fu[0]);
    tally_check(&fu[1]);
    tally_check(&led);

    idx = calloc((size_t)nops + 1, sizeof *idx);
    for (i = 0; i < nops; i++) {
        struct op *o = &ops[i];

        if (o->h != i || o->result[0] == '\0')
            continue;
        /* Trimmed: an acknowledged entry was there, and so was one
         * that was dead-lettered; an unknown one that left no trace is
         * taken as never added (Jepsen's "may be absent"). */
        if (trim_acked() && !o->present && (strcmp(o->result, "ok") == 0 || o->dead))
            o->present = 1;
        if (strcmp(o->result, "ok") == 0) {
            v.ok++;
            if (!o->present)
                problem(&v.lost, "lost", "h=%ld acknowledged as %s is not in %s", o->h, o->id,
                        o->stream);
        } else if (strcmp(o->result, "fail") == 0) {
            v.fail++;
            if (o->present)
                problem(&v.unexpected, "unexpected", "h=%ld failed, but is in %s as %s", o->h,
                        o->stream, o->found_id);
        } else {
            v.unknown++;
            v.present_unknown += o->present > 0;
        }
        if (o->present > 1)
            problem(&v.duplicated, "duplicated", "h=%ld is %d times in %s", o->h, o->present,
                    o->stream);
        if (o->kind == 'x') {
            if (o->present && o->dead != 1)
                problem(&v.dlq_missing, "dlq-missing", "invalid h=%ld (%s) has %d dead letters, "
                        "expected 1", o->h, o->expect, o->dead);
            else if (o->present && strncmp(o->dead_error, o->expect, strlen(o->expect)) != 0)
                problem(&v.dlq_unexpected, "dlq-unexpected", "invalid h=%ld: error \"%s\", "
                        "expected %s", o->h, o->dead_error, o->expect);
        } else if (o->kind == 'u') {
            if (o->dead)
                problem(&v.dlq_unexpected, "dlq-unexpected", "user h=%ld dead-lettered: %s",
                        o->h, o->dead_error);
        } else {
            idx[nidx++] = i;
        }
    }
    qsort(idx, (size_t)nidx, sizeof *idx, cmp_op);
    for (i = 0; i < nidx; i = j) {
        for (j = i + 1; j < nidx && cmp_op(&idx[i], &idx[j]) == 0; j++)
            ;
        check_key(c, ops[idx[i]].kind, ops[idx[i]].key, idx + i, (int)(j - i));
    }
    check_unexpected_keys(c, "order:*", 6, 'o', idx, nidx);
    check_unexpected_keys(c, "payment:*", 8, 'o', idx, nidx);
    check_unexpected_keys(c, "credit:*", 7, 'c', idx, nidx);
    free(idx);

    if (pool_pid <= 0 || !sl_test_pid_alive(pool_pid)) {
        printf("  unhealthy: the pool is not running\n");
        v.unhealthy++;
    } else if ((bad = sl_test_pool_children(pool_pid, kids, 16)) != C_PROCS) {
        printf("  unhealthy: the pool runs %d children, expected %d\n", bad, C_PROCS);
        v.unhealthy++;
    }
    redisFree(c);
}

/* ---------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------ */

/* Returns the environment variable name as a positive number, or dflt. */
static long long env_num(const char *name, long long dflt)
{
    const char *s = getenv(name);
    char *end;
    long long n;

    if (s == NULL || *s == '\0')
        return dflt;
    n = strtoll(s, &end, 10);
    return *end == '\0' && n > 0 ? n : dflt;
}

int main(void)
{
    long long seconds = env_num("CHAOS_SECONDS", 60);
    uint64_t seed = (uint64_t)env_num("CHAOS_SEED", (long long)time(NULL));
    uint64_t ns = seed * 0x9E3779B97F4A7C15ULL + 1;
    char *tmp;
    pid_t prod;
    long long end, t0;
    int status, valid, quiet_ok, keep = env_num("CHAOS_KEEP", 0) > 0;
    enum fault allowed[F_NFAULTS];
    int i, nallowed = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    tmp = sl_test_tmpdir();
    if (tmp == NULL)
        return 2;
    snprintf(rundir, sizeof rundir, "%s", tmp);
    free(tmp);
    snprintf(cfgpath, sizeof cfgpath, "%s/sluice.json", rundir);
    snprintf(poollog, sizeof poollog, "%s/pool.log", rundir);
    snprintf(histpath, sizeof histpath, "%s/history.log", rundir);
    {
        char p[700];

        snprintf(p, sizeof p, "%s/nemesis.log", rundir);
        nemlog = fopen(p, "w");
    }
    note("sluice-chaos: seed %llu, %lld s, dir %s, sluice %s", (unsigned long long)seed, seconds,
         rundir, sl_test_bin());
    if (sl_test_redis_start(&srv, "--appendonly yes --enable-protected-configs local") != 0 ||
        sl_test_proxy_start(&px, srv.port) != 0 || write_config() != 0) {
        note("setup failed");
        return 2;
    }
    note("redis %s (pid %ld, dir %s), proxy 127.0.0.1:%d", srv.url, (long)srv.pid, srv.dir,
         px.port);
    if (pool_start() != 0) {
        note("setup failed: the pool did not start; see %s", poollog);
        return 2;
    }
    prod = producer_start(seed, 1);
    if (prod <= 0 || !sl_test_wait_exit(prod, 30000, &status)) {
        note("setup failed: users not enqueued");
        return 2;
    }
    {
        long long dl = sl_test_deadline(30000);
        redisContext *c = direct();
        redisReply *r;
        int n = 0;

        while (c != NULL && n < C_USERS && sl_test_tick(dl)) {
            char key[32];

            snprintf(key, sizeof key, "user:u-%d", n);
            r = redisCommand(c, "EXISTS %s", key);
            if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
                n++;
            if (r != NULL)
                freeReplyObject(r);
        }
        if (c != NULL)
            redisFree(c);
        if (n < C_USERS) {
            note("setup failed: users not created; see %s", poollog);
            return 2;
        }
    }

    for (i = 0; i < F_NFAULTS; i++) {
        const char *only = getenv("CHAOS_FAULTS");
        char pad[64], list[1024];

        snprintf(pad, sizeof pad, ",%s,", fault_names[i]);
        snprintf(list, sizeof list, ",%s,", only != NULL ? only : "");
        if (only == NULL || *only == '\0' || strstr(list, pad) != NULL)
            allowed[nallowed++] = (enum fault)i;
    }
    if (nallowed == 0) {
        note("CHAOS_FAULTS names no known fault");
        return 2;
    }
    prod = producer_start(seed, 0);
    t0 = sl_test_now_ms();
    end = t0 + seconds * 1000;
    note("producing and injecting faults for %lld s", seconds);
    while (sl_test_now_ms() < end) {
        enum fault f = allowed[rnd_in(&ns, 0, nallowed - 1)];
        long long hold = rnd_in(&ns, 500, 2500);

        pool_ensure();
        inject(f, &ns, hold);
        pause_ms(rnd_in(&ns, 1000, 3000));
        if (!sl_test_pid_alive(prod)) {
            note("anomaly: the producer died");
            anomalies++;
            break;
        }
    }
    note("healing; stopping the producer");
    sl_test_kill(prod, SIGTERM);
    if (!sl_test_wait_exit(prod, 10000, &status)) {
        sl_test_kill(prod, SIGKILL);
        sl_test_wait_exit(prod, 5000, NULL);
    }
    heal_all();
    t0 = sl_test_now_ms();
    note("waiting for quiescence (at most %d s)", C_QUIET_MS / 1000);
    quiet_ok = sl_test_wait_for(C_QUIET_MS, quiet, NULL);
    note("quiet: %s after %.1f s", quiet_ok ? "yes" : "NO",
         (sl_test_now_ms() - t0) / 1000.0);
    pool_ensure();
    printf("checking:\n");
    check();

    valid = v.lost == 0 && v.duplicated == 0 && v.unexpected == 0 && v.stuck == 0 &&
            v.dlq_missing == 0 && v.dlq_unexpected == 0 && v.unhealthy == 0 &&
            v.invariants == 0 && anomalies == 0;
    printf("{:valid? %s\n :seed %llu\n :seconds %lld\n :trim \"%s\"\n"
           " :ops {:ok %d, :fail %d, :unknown %d, :unknown-present %d}\n :faults {",
           valid ? "true" : "false", (unsigned long long)seed, seconds,
           trim_acked() ? "acked" : "none", v.ok, v.fail,
           v.unknown, v.present_unknown);
    for (i = 0; i < F_NFAULTS; i++)
        printf("%s:%s %d", i ? ", " : "", fault_names[i], fault_count[i]);
    printf("}\n :lost %d\n :duplicated %d\n :unexpected %d\n :stuck %d\n"
           " :dlq-missing %d\n :dlq-unexpected %d\n :invariants %d\n :unhealthy %d\n"
           " :anomalies %d\n :dir \"%s\"}\n",
           v.lost, v.duplicated, v.unexpected, v.stuck, v.dlq_missing, v.dlq_unexpected,
           v.invariants, v.unhealthy, anomalies, valid || keep ? (keep ? rundir : "(removed)") : rundir);

    pool_term();
    sl_test_proxy_stop(&px);
    if (nemlog != NULL)
        fclose(nemlog);
    if (valid && !keep) {
        sl_test_redis_cleanup(&srv);
        sl_test_rmtree(rundir);
    } else {
        char cmd[1400];

        sl_test_redis_stop(&srv);
        snprintf(cmd, sizeof cmd, "cp -r %s %s/redis", srv.dir, rundir);
        if (system(cmd) == 0)
            sl_test_rmtree(srv.dir);
        printf("kept %s (sluice.json, pool.log, nemesis.log, history.log, redis/)\n", rundir);
    }
    free(ops);
    return valid ? 0 : 1;
}
