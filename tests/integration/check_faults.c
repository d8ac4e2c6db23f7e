/* check_faults.c -- deterministic single-fault tests of the payment flow.
 *
 * Each test runs the real `sluice run` with the user, order and payment
 * workers, enqueues a fixed set of users and orders, injects exactly one
 * fault, heals it, waits until the flow is quiet, and then asserts exact
 * counters: every order paid, exactly one payment.requested and one
 * payment.succeeded per order, exactly one ledger debit per payment, no
 * dead letter, balances that add up, and the invariant checker of
 * tests/support/invariants.c clean. Each test also asserts that its
 * fault really reached the pool (a child died, a connection dropped,
 * a command was refused), so a fault that silently missed cannot pass.
 *
 * TCase "runtime" (a server with an append-only file) puts the loopback
 * TCP proxy of tests/support/proxy.c between the pool and Redis, so that
 * network faults can be injected: black hole (the proxy stops
 * forwarding but keeps every socket) and reset (it closes every
 * connection with RST).
 * The other faults are SIGKILL of a worker, SIGKILL of the supervisor,
 * SIGTERM of the pool, SIGSTOP/SIGCONT and SIGKILL of redis-server,
 * CLIENT KILL, CLIENT PAUSE and maxmemory; then two that need the proxy
 * or a frozen server at a bad moment: a black hole when the pool starts,
 * and SIGTERM while Redis is frozen (the pool must still stop in time).
 *
 * TCase "start" covers faults present when the pool starts: Redis
 * unreachable, Redis loading a large dataset (-LOADING), Redis refusing
 * writes (-MISCONF), and a Redis restarted without persistence (every
 * group lost; liveness, not conservation, is expected across that).
 *
 * These single-fault tests come before the randomized run of
 * tests/chaos/, so that a failure there can be traced to one cause here.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <check.h>
#include <hiredis.h>
#include "harness.h"
#include "config.h"
#include "invariants.h"
#include "proxy.h"
#include "sut.h"

#define F_USERS 4                 /* users every test creates */
#define F_BALANCE 1000000000LL    /* opening balance of each, cents */
#define F_ORDERS 200              /* orders of a runtime test */
#define F_FIRST 150               /* orders enqueued before the fault */
#define F_START_MS 15000          /* every child of the pool running */
#define F_QUIET_MS 40000          /* the flow drains after a fault */
#define F_STOP_MS 15000           /* graceful stop of the pool */
#define F_HOLD_MS 2000            /* how long a fault is held */
#define F_PROCS 5                 /* children: 1 user, 2 order, 2 payment */
#define F_REPORT 8192             /* bytes of an invariant report */

static struct sl_test_redis srv;  /* one server per TCase (unchecked fixture) */
static redisContext *rc;          /* this test's direct connection */
static char *dir;                 /* this test's temp dir: config and log */
static char cfgpath[512];         /* <dir>/sluice.json */
static char logpath[512];         /* <dir>/sluice.log: the pool's stderr */
static pid_t pool_pid;            /* the running `sluice run`, 0 if none */
static const char *trim = "none"; /* the pool's trim policy */
static struct sl_test_proxy px;   /* this test's proxy (runtime TCase) */

/* Sends one command (SL_TEST_PROXY_...) to the proxy and waits for it to
 * take effect. Fails the test when the proxy does not answer. */
static void proxy_cmd(char cmd)
{
    ck_assert_msg(sl_test_proxy_cmd(&px, cmd) == 0, "the proxy did not apply command %c", cmd);
}


/* ---------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------ */

/* Starts the runtime TCase's server: an append-only file (so a SIGKILLed
 * server comes back with every acknowledged write) and protected configs
 * settable from loopback. */
static void server_up_aof(void)
{
    ck_assert_msg(sl_test_redis_start(&srv, "--appendonly yes --enable-protected-configs local")
                  == 0, "redis-server did not start");
}

/* Starts the start TCase's server: no persistence at all (so a restart
 * loses everything), and protected configs settable from loopback for
 * the MISCONF test. */
static void server_up_plain(void)
{
    ck_assert_msg(sl_test_redis_start(&srv, "--enable-protected-configs local") == 0,
                  "redis-server did not start");
}

/* Stops the TCase's server and removes its directory. */
static void server_down(void)
{
    sl_test_redis_cleanup(&srv);
}

/* Connects and empties the server (starting it again if an earlier test
 * left it dead), and makes this test's directory. */
static void test_up(void)
{
    char rdb[300];

    pool_pid = 0;
    trim = "none";
    memset(&px, 0, sizeof px);
    snprintf(rdb, sizeof rdb, "%s/dump.rdb", srv.dir);
    unlink(rdb);                /* a snapshot left by the MISCONF test */
    if (!sl_test_pid_alive(sl_test_redis_pid(&srv)))
        ck_assert_int_eq(sl_test_redis_restart(&srv), 0);
    dir = sl_test_tmpdir();
    ck_assert_ptr_nonnull(dir);
    snprintf(cfgpath, sizeof cfgpath, "%s/sluice.json", dir);
    snprintf(logpath, sizeof logpath, "%s/sluice.log", dir);
    rc = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(rc);
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET maxmemory 0"));
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET save %s", ""));
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET dir %s", srv.dir));
    ck_assert_int_eq(sl_test_int(rc, "FLUSHALL"), 0);
}

/* The runtime TCase's per-test setup: test_up() plus a proxy. */
static void test_up_proxy(void)
{
    test_up();
    ck_assert_int_eq(sl_test_proxy_start(&px, srv.port), 0);
}

/* Stops the pool and the proxy, closes the connection and removes the
 * directory. A failed test in fork mode never gets here; its processes
 * die with it through their parent-death signals. */
static void test_down(void)
{
    sl_test_pool_kill(&pool_pid, F_STOP_MS);
    sl_test_proxy_stop(&px);
    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
    if (dir != NULL) {
        sl_test_rmtree(dir);
        free(dir);
    }
    dir = NULL;
}

/* ---------------------------------------------------------------------
 * The pool and its log
 * ------------------------------------------------------------------ */

/* Fails the test with a formatted message after dumping the log. */
static _Noreturn void fail_log(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static _Noreturn void fail_log(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sl_test_log_tail(logpath, 60);
    ck_abort_msg("%s", msg);
}

/* Returns how many children exited abnormally (by a signal, or with a
 * status other than 0) according to the pool's log. */
static int crashes(void)
{
    char *s = sl_test_read_file(logpath);
    char *line, *save = NULL;
    int n = 0;

    if (s == NULL)
        return 0;
    for (line = strtok_r(s, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        if (strstr(line, " event=child_exited ") != NULL && strstr(line, " status=0") == NULL)
            n++;
    free(s);
    return n;
}

/* Writes the config: the three workers as in config/sluice.json, Redis
 * at url, short timings (command_timeout_ms 1000, so a frozen server is
 * noticed well within a fault's hold), metrics off. max_deliveries is
 * 10 so that a worker killed while it held an entry (a failed attempt by
 * docs/semantics.md) cannot, with one fault per test, dead-letter it. */
static void write_config(const char *url)
{
    char defaults[512];
    struct sl_test_config c = {
        url, "\"connect_timeout_ms\": 1000, \"command_timeout_ms\": 1000", defaults, NULL,
        "{ \"handler\": \"user\", \"stream\": \"users\", \"group\": \"user-workers\", \"processes\": 1 }, "
        "{ \"handler\": \"order\", \"stream\": \"orders\", \"group\": \"order-workers\", \"processes\": 2 }, "
        "{ \"handler\": \"payment\", \"stream\": \"payments\", \"group\": \"payment-workers\", \"processes\": 2 }",
        NULL
    };

    snprintf(defaults, sizeof defaults,
             "\"batch\": 32, \"block_ms\": 200, \"reclaim_idle_ms\": 500, \"reclaim_interval_ms\": 250, "
             "\"max_deliveries\": 10, \"heartbeat_ms\": 200, \"retry_backoff_ms\": [50, 400], "
             "\"handler_timeout_ms\": 10000, \"shutdown_timeout_ms\": 3000, \"trim\": \"%s\"", trim);
    ck_assert_int_eq(sl_test_config_write(cfgpath, &c), 0);
}

/* Spawns `sluice run` with the config (log appended to logpath) without
 * waiting for it. */
static void pool_spawn(const char *url)
{
    write_config(url);
    pool_pid = sl_test_pool_spawn(cfgpath, logpath);
    ck_assert_int_gt(pool_pid, 0);
}

/* Waits until the log shows `want` event=running lines in all. */
static void wait_running(int want)
{
    int rv = sl_test_pool_wait_running(pool_pid, logpath, want, F_START_MS);

    if (rv == -1)
        fail_log("sluice run exited during start-up");
    if (rv == -2)
        fail_log("%d children not running within %d ms", want, F_START_MS);
}

/* Spawns the pool and waits until every child runs (counting the
 * running lines already in the log from an earlier pool). */
static void pool_start(const char *url)
{
    int before = sl_test_log_count(logpath, " event=running ");

    pool_spawn(url);
    wait_running(before + F_PROCS);
}

/* Stops the pool with SIGTERM and asserts that it exits 0 in time. */
static void pool_stop(void)
{
    int status = 0;

    sl_test_kill(pool_pid, SIGTERM);
    if (!sl_test_wait_exit(pool_pid, F_STOP_MS, &status))
        fail_log("the pool did not stop within %d ms of SIGTERM", F_STOP_MS);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the pool stopped with wait status %#x", status);
    pool_pid = 0;
}

/* ---------------------------------------------------------------------
 * The workload and its exact check
 * ------------------------------------------------------------------ */

/* Sends count commands already appended to rc and checks every reply
 * is a stream ID (XADD succeeded). */
static void read_replies(int count)
{
    int i;

    for (i = 0; i < count; i++) {
        redisReply *r = NULL;

        ck_assert_int_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
        ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STRING, "XADD failed: %s",
                      r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
    }
}

/* Enqueues users u-0 .. u-<F_USERS-1>, F_BALANCE cents each. */
static void enqueue_users(void)
{
    char data[256];
    int i;

    for (i = 0; i < F_USERS; i++) {
        snprintf(data, sizeof data, "{\"user_id\":\"u-%d\",\"name\":\"U %d\","
                 "\"email\":\"u%d@example.com\",\"balance_cents\":%lld}", i, i, i, F_BALANCE);
        redisAppendCommand(rc, "XADD users * type user.created data %s", data);
    }
    read_replies(F_USERS);
}

/* Enqueues orders o-<from> .. o-<to-1>; order i belongs to user i mod
 * F_USERS and costs 100 + i cents, so every one can be paid. */
static void enqueue_orders(int from, int to)
{
    char data[256];
    int i;

    for (i = from; i < to; i++) {
        snprintf(data, sizeof data, "{\"order_id\":\"o-%d\",\"user_id\":\"u-%d\","
                 "\"amount_cents\":%d,\"currency\":\"EUR\"}", i, i % F_USERS, 100 + i);
        redisAppendCommand(rc, "XADD orders * type order.created data %s", data);
    }
    read_replies(to - from);
}

/* Waits until every user exists (so no order can be declined). */
static void wait_users(void)
{
    long long deadline = sl_test_deadline(F_QUIET_MS);
    int i;

    for (i = 0; i < F_USERS; i++)
        while (sl_test_int(rc, "EXISTS user:u-%d", i) == 0)
            if (!sl_test_tick(deadline))
                fail_log("the users were not created within %d ms", F_QUIET_MS);
}

/* Creates the users with a pool of its own at url, which is stopped
 * again, so that orders enqueued afterwards cannot overtake them. */
static void users_with_pool(const char *url)
{
    pool_start(url);
    enqueue_users();
    wait_users();
    pool_stop();
}

/* Condition: the flow is quiet (sl_test_unquiet, every stream consumed).
 * arg is unused. */
static int quiet(void *arg)
{
    (void)arg;
    return sl_test_unquiet(rc, sl_test_flow_streams, 3, 1, NULL, 0) == 0;
}

/* Returns the number of entries of `type` in stream. */
static int count_type(const char *stream, const char *type)
{
    redisReply *r = sl_test_cmd(rc, "XRANGE %s - +", stream);
    size_t i, j;
    int n = 0;

    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    for (i = 0; i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];

        for (j = 0; j + 1 < f->elements; j += 2)
            if (strcmp(f->element[j]->str, "type") == 0 &&
                strcmp(f->element[j + 1]->str, type) == 0)
                n++;
    }
    freeReplyObject(r);
    return n;
}

/* Waits for quiet, then asserts that orders o-<from> .. o-<to-1> (and
 * no other) each went through exactly once: `to - from` payment
 * requests, as many order.created and payment.succeeded entries in
 * orders, every order paid and every payment succeeded, one ledger
 * debit per payment plus one opening per user, no dead letter, the
 * balances down by exactly the orders' sum, and the full invariant
 * check clean. */
static void assert_exactly_once(int from, int to)
{
    static char report[F_REPORT];
    long long sum = 0, want = 0;
    int i, n = to - from, bad;

    if (!sl_test_wait_for(F_QUIET_MS, quiet, NULL))
        fail_log("the flow is not quiet within %d ms of the heal", F_QUIET_MS);
    ck_assert_int_eq(sl_test_int(rc, "XLEN users:dead"), 0);
    ck_assert_int_eq(sl_test_int(rc, "XLEN orders:dead"), 0);
    ck_assert_int_eq(sl_test_int(rc, "XLEN payments:dead"), 0);
    ck_assert_int_eq(sl_test_int(rc, "XLEN payments"), n);
    ck_assert_int_eq(count_type("payments", "payment.requested"), n);
    ck_assert_int_eq(count_type("orders", "order.created"), n);
    ck_assert_int_eq(count_type("orders", "payment.succeeded"), n);
    ck_assert_int_eq(sl_test_int(rc, "XLEN orders"), 2 * n);
    ck_assert_int_eq(sl_test_int(rc, "XLEN ledger"), F_USERS + n);
    for (i = from; i < to; i++) {
        char *st = sl_test_str(rc, "HGET order:o-%d status", i);
        char *ps = sl_test_str(rc, "HGET payment:o-%d status", i);

        ck_assert_msg(st != NULL && strcmp(st, "paid") == 0, "order o-%d is %s", i,
                      st != NULL ? st : "(missing)");
        ck_assert_msg(ps != NULL && strcmp(ps, "succeeded") == 0, "payment o-%d is %s", i,
                      ps != NULL ? ps : "(missing)");
        free(st);
        free(ps);
        want += 100 + i;
    }
    for (i = 0; i < F_USERS; i++)
        sum += sl_test_int(rc, "HGET user:u-%d balance_cents", i);
    ck_assert_int_eq(sum, F_USERS * F_BALANCE - want);
    bad = sl_test_invariants(rc, report, sizeof report);
    ck_assert_msg(bad == 0, "invariant check returned %d:\n%s", bad, report);
    ck_assert_msg(sl_test_pid_alive(pool_pid), "the pool died");
}

/* Polls until the log holds more than `before` occurrences of needle. */
static void wait_log_more(const char *needle, int before, int timeout_ms)
{
    long long deadline = sl_test_deadline(timeout_ms);

    while (sl_test_log_count(logpath, needle) <= before)
        if (!sl_test_tick(deadline))
            fail_log("no new \"%s\" in the log within %d ms", needle, timeout_ms);
}

/* Pauses the test for ms (scaled) while a fault is held. This is the
 * fault's duration, not a wait for an effect. */
static void hold(int ms)
{
    long long deadline = sl_test_deadline(ms);

    while (sl_test_tick(deadline))
        ;
}

/* The runtime scenario: pool through the proxy, users, F_FIRST orders,
 * then `fault` (which injects, holds, heals, and may enqueue the rest
 * itself when its fault leaves this connection working; it returns the
 * next order number to enqueue), then the rest of F_ORDERS orders, and
 * the exact check. */
static void scenario(int (*fault)(void))
{
    int next;

    pool_start(px.url);
    enqueue_users();
    wait_users();
    enqueue_orders(0, F_FIRST);
    next = fault();
    enqueue_orders(next, F_ORDERS);
    assert_exactly_once(0, F_ORDERS);
}

/* ---------------------------------------------------------------------
 * Runtime faults
 * ------------------------------------------------------------------ */

/* SIGKILLs two of the five children while they work, and checks that
 * the supervisor saw both die and that their successors run. */
static int fault_worker_sigkill(void)
{
    pid_t kids[16];
    int n = sl_test_pool_children(pool_pid, kids, 16);
    int before = sl_test_log_count(logpath, " signal=9");

    ck_assert_int_eq(n, F_PROCS);
    sl_test_kill(kids[1], SIGKILL);
    sl_test_kill(kids[3], SIGKILL);
    wait_log_more(" signal=9", before + 1, 10000);
    wait_running(F_PROCS + 2);
    return F_FIRST;
}

START_TEST(test_faults_worker_sigkill)
{
    scenario(fault_worker_sigkill);
}
END_TEST

/* SIGKILLs the supervisor: its children die with it (parent-death
 * signal) and leave their entries pending and their heartbeats behind.
 * A new pool must take the names over once those heartbeats have expired
 * (three beats) and recover the entries from its own pending lists. */
static int fault_supervisor_sigkill(void)
{
    pid_t kids[16];
    int n = sl_test_pool_children(pool_pid, kids, 16), i;

    ck_assert_int_eq(n, F_PROCS);
    sl_test_kill(pool_pid, SIGKILL);
    ck_assert(sl_test_wait_exit(pool_pid, 5000, NULL));
    for (i = 0; i < n; i++)
        if (!sl_test_wait_exit(kids[i], 5000, NULL))
            fail_log("child %ld outlived its SIGKILLed supervisor", (long)kids[i]);
    pool_pid = 0;
    pool_start(px.url);
    return F_FIRST;
}

START_TEST(test_faults_supervisor_sigkill)
{
    scenario(fault_supervisor_sigkill);
    ck_assert_int_eq(sl_test_log_count(logpath, " event=pool_started"), 2);
}
END_TEST

/* SIGTERMs the pool mid-work: it must exit 0 in time; a new one goes on. */
static int fault_pool_sigterm(void)
{
    pool_stop();
    pool_start(px.url);
    return F_FIRST;
}

START_TEST(test_faults_pool_sigterm)
{
    scenario(fault_pool_sigterm);
}
END_TEST

/* Freezes redis-server for F_HOLD_MS (longer than command_timeout_ms):
 * every worker must notice, reconnect, and lose nothing. */
static int fault_redis_sigstop(void)
{
    int before = sl_test_log_count(logpath, " event=redis_unavailable");

    ck_assert_int_eq(sl_test_redis_sigstop(&srv), 0);
    hold(F_HOLD_MS);
    ck_assert_int_eq(sl_test_redis_sigcont(&srv), 0);
    wait_log_more(" event=redis_unavailable", before, 5000);
    return F_FIRST;
}

START_TEST(test_faults_redis_sigstop)
{
    scenario(fault_redis_sigstop);
}
END_TEST

/* SIGKILLs redis-server mid-work and restarts it on its append-only
 * file after a while: nothing acknowledged may be lost, nothing doubled. */
static int fault_redis_sigkill(void)
{
    int before = sl_test_log_count(logpath, " event=redis_unavailable");

    redisFree(rc);
    rc = NULL;
    sl_test_redis_kill(&srv);
    hold(F_HOLD_MS / 2);
    ck_assert_int_eq(sl_test_redis_restart(&srv), 0);
    rc = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(rc);
    wait_log_more(" event=redis_unavailable", before, 5000);
    return F_FIRST;
}

START_TEST(test_faults_redis_sigkill_aof)
{
    scenario(fault_redis_sigkill);
}
END_TEST

/* Kills every normal client connection (not this one: SKIPME yes is the
 * default). Each child holds two connections. */
static int fault_client_kill(void)
{
    int before = sl_test_log_count(logpath, " event=redis_unavailable");
    long long killed = sl_test_int(rc, "CLIENT KILL TYPE normal");

    ck_assert_int_ge(killed, 2 * F_PROCS);
    wait_log_more(" event=redis_unavailable", before, 5000);
    return F_FIRST;
}

START_TEST(test_faults_client_kill)
{
    scenario(fault_client_kill);
}
END_TEST

/* Pauses every client for longer than command_timeout_ms. This
 * connection is paused too, so the hold is the pause itself. */
static int fault_client_pause(void)
{
    int before = sl_test_log_count(logpath, " event=redis_unavailable");

    freeReplyObject(sl_test_cmd(rc, "CLIENT PAUSE %d ALL", F_HOLD_MS * sl_test_slow_factor()));
    hold(F_HOLD_MS);
    wait_log_more(" event=redis_unavailable", before, 5000);
    return F_FIRST;
}

START_TEST(test_faults_client_pause)
{
    scenario(fault_client_pause);
}
END_TEST

/* Sets maxmemory below what is used while 150 orders wait: the children
 * are frozen (SIGSTOP, a few milliseconds) while the orders are enqueued
 * and the limit is set, so none can be done before it. (Just above what
 * is used, as the chaos runner does it, is not deterministic: the freed
 * pipeline and reply buffers outweigh a few hundred orders.) Every effect
 * script is then refused with -OOM while XREADGROUP still hands entries
 * out, so not one order may be paid during the hold. Then the limit is
 * lifted; no order may have been dead-lettered or lost. */
static int fault_maxmemory(void)
{
    pid_t kids[16];
    int n = sl_test_pool_children(pool_pid, kids, 16), i;
    long long paid;

    ck_assert_int_eq(n, F_PROCS);
    for (i = 0; i < n; i++)
        sl_test_kill(kids[i], SIGSTOP);
    enqueue_orders(0, F_FIRST);
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET maxmemory 1"));
    for (i = 0; i < n; i++)
        sl_test_kill(kids[i], SIGCONT);
    hold(F_HOLD_MS);
    paid = sl_test_int(rc, "XLEN ledger") - F_USERS;
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET maxmemory 0"));
    ck_assert_msg(paid == 0, "%lld orders went through despite maxmemory", paid);
    ck_assert_msg(sl_test_log_count(logpath, "OOM") > 0, "no worker met -OOM");
    return F_FIRST;
}

START_TEST(test_faults_maxmemory)
{
    pool_start(px.url);
    enqueue_users();
    wait_users();
    fault_maxmemory();
    enqueue_orders(F_FIRST, F_ORDERS);
    assert_exactly_once(0, F_ORDERS);
}
END_TEST

/* Black-holes the proxy: no byte moves and no connection is accepted for
 * F_HOLD_MS, while every socket stays open, so only the pool's own
 * command timeout can notice. The rest of the orders arrive meanwhile
 * (this connection does not go through the proxy). */
static int fault_proxy_blackhole(void)
{
    int before = sl_test_log_count(logpath, " event=redis_unavailable");

    proxy_cmd(SL_TEST_PROXY_HOLE);
    enqueue_orders(F_FIRST, F_ORDERS);
    hold(F_HOLD_MS);
    proxy_cmd(SL_TEST_PROXY_PASS);
    wait_log_more(" event=redis_unavailable", before, 5000);
    return F_ORDERS;
}

START_TEST(test_faults_proxy_blackhole)
{
    scenario(fault_proxy_blackhole);
}
END_TEST

/* Resets every proxied connection at once (RST), mid-work. */
static int fault_proxy_reset(void)
{
    int before = sl_test_log_count(logpath, " event=redis_unavailable");

    proxy_cmd(SL_TEST_PROXY_RESET);
    wait_log_more(" event=redis_unavailable", before, 5000);
    return F_FIRST;
}

START_TEST(test_faults_proxy_reset)
{
    scenario(fault_proxy_reset);
}
END_TEST

/* The network to Redis is a black hole when the pool starts (connects
 * succeed, no reply ever comes): the pool must wait without exiting or
 * crash-looping, then work once the network heals. */
START_TEST(test_faults_blackhole_at_start)
{
    proxy_cmd(SL_TEST_PROXY_HOLE);
    pool_spawn(px.url);
    hold(2 * F_HOLD_MS);
    ck_assert_msg(sl_test_pid_alive(pool_pid), "the pool gave up on a silent Redis");
    ck_assert_int_eq(sl_test_log_count(logpath, " event=running "), 0);
    proxy_cmd(SL_TEST_PROXY_PASS);
    wait_running(F_PROCS);
    enqueue_users();
    wait_users();
    enqueue_orders(0, 50);
    assert_exactly_once(0, 50);
    ck_assert_int_eq(crashes(), 0);
}
END_TEST

/* SIGTERM while redis-server is frozen: the pool must still stop within
 * shutdown_timeout_ms (3000) plus one command_timeout_ms (1000) for the
 * Redis call it may be in, plus a margin (docs/operations.md: "the supervisor exits
 * 0 once all have, or kills them after shutdown_timeout_ms"). The
 * supervisor's synchronous calls to a frozen server each block for
 * command_timeout_ms, so a supervisor that keeps calling in one tick
 * cannot see the signal in time. */
START_TEST(test_faults_sigterm_while_redis_frozen)
{
    long long t0;
    int stopped;

    trim = "acked";
    pool_start(px.url);
    enqueue_users();
    wait_users();
    ck_assert_int_eq(sl_test_redis_sigstop(&srv), 0);
    hold(F_HOLD_MS);
    t0 = sl_test_now_ms();
    sl_test_kill(pool_pid, SIGTERM);
    stopped = sl_test_wait_exit(pool_pid, 3000 + 1000 + 2000, NULL);
    ck_assert_int_eq(sl_test_redis_sigcont(&srv), 0);
    if (!stopped)
        fail_log("the pool did not stop within 6 s of SIGTERM while Redis was frozen");
    pool_pid = 0;
    ck_assert_int_lt(sl_test_now_ms() - t0, 6000 * sl_test_slow_factor());
}
END_TEST

/* ---------------------------------------------------------------------
 * Faults at start
 * ------------------------------------------------------------------ */

/* Redis is down when the pool starts: the pool must wait (not exit, no
 * child crash loop), then work once Redis is back. */
START_TEST(test_faults_unreachable_at_start)
{
    redisFree(rc);
    rc = NULL;
    sl_test_redis_kill(&srv);
    pool_spawn(srv.url);
    wait_log_more(" event=redis_unavailable", 0, 10000);
    hold(F_HOLD_MS);
    ck_assert_msg(sl_test_pid_alive(pool_pid), "the pool gave up on an unreachable Redis");
    ck_assert_int_eq(sl_test_redis_restart(&srv), 0);
    rc = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(rc);
    wait_running(F_PROCS);
    enqueue_users();
    wait_users();
    enqueue_orders(0, 50);
    assert_exactly_once(0, 50);
    ck_assert_int_eq(crashes(), 0);
}
END_TEST

/* Restarts the server of r from a helper process and returns that
 * helper's PID at once: sl_test_redis_restart() waits until the dataset
 * is loaded, and the test must act while it loads. The harness finds the
 * new server through its pidfile. */
static pid_t restart_async(struct sl_test_redis *r)
{
    pid_t pid = fork();

    if (pid == 0)
        _exit(sl_test_redis_restart(r) == 0 ? 0 : 1);
    return pid;
}

/* Returns 1 while a fresh connection to r is answered -LOADING. */
static int loading(void *arg)
{
    const struct sl_test_redis *r = arg;
    redisContext *c = sl_test_connect_timeout(r, 200, 500);
    redisReply *x = c != NULL ? redisCommand(c, "PING") : NULL;
    int yes = x != NULL && x->type == REDIS_REPLY_ERROR && strncmp(x->str, "LOADING", 7) == 0;

    if (x != NULL)
        freeReplyObject(x);
    if (c != NULL)
        redisFree(c);
    return yes;
}

/* Redis is loading a large dataset (-LOADING to every command for a few
 * seconds) when the pool starts: the pool must wait and then process the
 * orders that the snapshot holds, each exactly once. A server of its
 * own is used, since loading is slowed down by key-load-delay. */
START_TEST(test_faults_loading_at_start)
{
    struct sl_test_redis big;
    redisContext *saved = rc;
    pid_t helper;
    int status = 0;

    ck_assert_int_eq(sl_test_redis_start(&big, "--key-load-delay 100 "
                     "--loading-process-events-interval-bytes 1024 "
                     "--enable-debug-command local"), 0);
    rc = sl_test_connect(&big);
    ck_assert_ptr_nonnull(rc);
    users_with_pool(big.url);
    /* About 3 s of loading, longer when everything runs slower (under
     * valgrind the pool needs longer to start and must still meet it). */
    freeReplyObject(sl_test_cmd(rc, "DEBUG POPULATE %d filler 16", 30000 * sl_test_slow_factor()));
    enqueue_orders(0, 50);
    freeReplyObject(sl_test_cmd(rc, "SAVE"));
    redisFree(rc);
    rc = NULL;
    sl_test_redis_kill(&big);
    helper = restart_async(&big);
    ck_assert_int_gt(helper, 0);
    if (!sl_test_wait_for(10000, loading, &big)) {
        sl_test_wait_exit(helper, 20000, NULL);
        sl_test_redis_cleanup(&big);
        ck_abort_msg("the server never answered -LOADING");
    }
    pool_spawn(big.url);
    wait_log_more("LOADING", 0, 10000);
    ck_assert(sl_test_wait_exit(helper, 60000, &status));
    ck_assert_int_eq(status, 0);
    ck_assert_msg(loading(&big) == 0, "the server is still loading");
    rc = sl_test_connect(&big);
    ck_assert_ptr_nonnull(rc);
    wait_running(2 * F_PROCS);
    assert_exactly_once(0, 50);
    ck_assert_int_eq(crashes(), 0);
    sl_test_pool_kill(&pool_pid, F_STOP_MS);
    redisFree(rc);
    rc = saved;
    sl_test_redis_cleanup(&big);
}
END_TEST

/* Returns the value of `field` in INFO persistence as a new string. */
static char *persistence(const char *field)
{
    char *s = sl_test_str(rc, "INFO persistence");
    char *p = s != NULL ? strstr(s, field) : NULL;
    char *v = NULL;

    if (p != NULL) {
        p += strlen(field);
        v = strndup(p, strcspn(p, "\r\n"));
    }
    free(s);
    return v;
}

/* Condition: the last BGSAVE finished with `arg` ("ok" or "err"). */
static int bgsave_is(void *arg)
{
    char *inprog = persistence("rdb_bgsave_in_progress:");
    char *st = persistence("rdb_last_bgsave_status:");
    int yes = inprog != NULL && strcmp(inprog, "0") == 0 && st != NULL &&
              strcmp(st, (const char *)arg) == 0;

    free(inprog);
    free(st);
    return yes;
}

/* Redis refuses every write with -MISCONF when the pool starts (a save
 * point is set, the last background save failed, and
 * stop-writes-on-bgsave-error is on): the pool must wait without
 * acking, dead-lettering or crashing, then work once saves succeed. The
 * save fails because the server's working directory is removed under it
 * (this works as root too, where permissions would not). */
START_TEST(test_faults_misconf_at_start)
{
    char gone[600];
    redisReply *r;

    users_with_pool(srv.url);
    enqueue_orders(0, 50);
    snprintf(gone, sizeof gone, "%s/gone", dir);
    ck_assert_int_eq(mkdir(gone, 0700), 0);
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET stop-writes-on-bgsave-error yes"));
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET save %s", "3600 1"));
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET dir %s", gone));
    ck_assert_int_eq(rmdir(gone), 0);
    freeReplyObject(sl_test_cmd(rc, "BGSAVE"));
    ck_assert(sl_test_wait_for(10000, bgsave_is, (void *)"err"));
    r = sl_test_cmd(rc, "SET probe 1");
    ck_assert_msg(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MISCONF", 7) == 0,
                  "a write was not refused with MISCONF");
    freeReplyObject(r);

    pool_spawn(srv.url);
    wait_log_more("MISCONF", 0, 10000);
    hold(F_HOLD_MS);
    ck_assert_int_eq(sl_test_int(rc, "XLEN payments"), 0);
    ck_assert_int_eq(sl_test_int(rc, "EXISTS users:dead orders:dead"), 0);

    freeReplyObject(sl_test_cmd(rc, "CONFIG SET dir %s", srv.dir));
    freeReplyObject(sl_test_cmd(rc, "BGSAVE"));
    ck_assert(sl_test_wait_for(10000, bgsave_is, (void *)"ok"));
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET save %s", ""));
    wait_running(2 * F_PROCS);
    assert_exactly_once(0, 50);
    ck_assert_int_eq(crashes(), 0);
}
END_TEST

/* Returns how many keys match pattern (KEYS: the test database is small). */
static long long count_keys(const char *pattern)
{
    redisReply *r = sl_test_cmd(rc, "KEYS %s", pattern);
    long long n;

    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    n = (long long)r->elements;
    freeReplyObject(r);
    return n;
}

/* Redis restarts without persistence while the pool runs: streams,
 * groups, heartbeats and scripts are all gone. The pool must recreate
 * its groups and go on without a crash loop; new events are processed
 * exactly once (the old ones are lost with the data, as expected). */
START_TEST(test_faults_restart_without_persistence)
{
    int before;

    pool_start(srv.url);
    enqueue_users();
    wait_users();
    enqueue_orders(0, 50);
    assert_exactly_once(0, 50);
    before = sl_test_log_count(logpath, " event=redis_unavailable");
    redisFree(rc);
    rc = NULL;
    ck_assert_int_eq(sl_test_redis_restart(&srv), 0);
    rc = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(rc);
    ck_assert_int_eq(sl_test_int(rc, "EXISTS order:o-0 user:u-0"), 0);
    wait_log_more(" event=redis_unavailable", before, 5000);
    enqueue_users();
    wait_users();
    enqueue_orders(50, 100);
    assert_exactly_once(50, 100);
    SL_TEST_ASSERT_EVENTUALLY(5000, count_keys("sluice:worker:*") == F_PROCS);
    ck_assert_int_eq(crashes(), 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * The suite
 * ------------------------------------------------------------------ */

/* Returns the suite of single-fault tests: TCases runtime and start. */
Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *rt = tcase_create("runtime");
    TCase *st = tcase_create("start");
    int slow = sl_test_slow_factor();

    tcase_add_unchecked_fixture(rt, server_up_aof, server_down);
    tcase_add_checked_fixture(rt, test_up_proxy, test_down);
    tcase_set_timeout(rt, 60 * slow);
    tcase_add_test(rt, test_faults_worker_sigkill);
    tcase_add_test(rt, test_faults_supervisor_sigkill);
    tcase_add_test(rt, test_faults_pool_sigterm);
    tcase_add_test(rt, test_faults_redis_sigstop);
    tcase_add_test(rt, test_faults_redis_sigkill_aof);
    tcase_add_test(rt, test_faults_client_kill);
    tcase_add_test(rt, test_faults_client_pause);
    tcase_add_test(rt, test_faults_maxmemory);
    tcase_add_test(rt, test_faults_proxy_blackhole);
    tcase_add_test(rt, test_faults_proxy_reset);
    tcase_add_test(rt, test_faults_blackhole_at_start);
    tcase_add_test(rt, test_faults_sigterm_while_redis_frozen);
    suite_add_tcase(s, rt);

    tcase_add_unchecked_fixture(st, server_up_plain, server_down);
    tcase_add_checked_fixture(st, test_up, test_down);
    tcase_set_timeout(st, 90 * slow);
    tcase_add_test(st, test_faults_unreachable_at_start);
    tcase_add_test(st, test_faults_loading_at_start);
    tcase_add_test(st, test_faults_misconf_at_start);
    tcase_add_test(st, test_faults_restart_without_persistence);
    suite_add_tcase(s, st);
    return s;
}
