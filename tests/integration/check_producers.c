/* check_producers.c -- the producers of docs/producers.md, run as a user
 * would run them against a real pool: examples/producers/python (Debian's
 * python3-redis), node (ioredis, installed by `make producers` into
 * <build>/producers/node), shell (redis-cli) and c (sl_enqueue(), built
 * by `make producers` as <build>/producers/produce).
 *
 * Each test starts `sluice run` with a configuration that names only the
 * Redis URL and turns metrics off, so the workers, processes and timings
 * are the defaults a user gets. It runs one producer to completion and
 * then checks, in Redis itself rather than in the producer's output, that
 * the good events were applied (user u-1 with its UTF-8 name and balance,
 * order o-1 paid) and that the two pitfalls were dead-lettered with their
 * exact errors: a float amount as `wrong_type: amount_cents: expected
 * integer`, flat fields as `missing_payload`.
 *
 * A test says SKIP and passes only when its language is missing from the
 * machine (no /usr/bin/python3 with the redis module, no node, or no npm
 * to install ioredis); `scripts/install-deps.sh --test` installs them.
 */
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <check.h>
#include <hiredis.h>
#include "harness.h"
#include "sluice.h"
#include "sut.h"

#define PROD_START_MS 15000       /* the pool's children all running */
#define PROD_RUN_MS 60000         /* one producer run, its own waits included */
#define PROD_STOP_MS 20000        /* graceful stop of the pool */
#define PROD_PROCS 5              /* default workers: user 1, order 2, payment 2 */

#define FLOAT_ERROR "wrong_type: amount_cents: expected integer"

static struct sl_test_redis srv;  /* one server per TCase (unchecked fixture) */
static redisContext *rc;          /* this test's connection (checked fixture) */
static char *dir;                 /* this test's temp dir: config and logs */
static char cfgpath[512];         /* <dir>/sluice.json */
static char logpath[512];         /* <dir>/sluice.log: the pool's stderr */
static char outpath[512];         /* <dir>/producer.out: the producer's output */
static pid_t pool_pid;            /* the running `sluice run`, 0 if none */

/* ---------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------ */

/* Starts the TCase's redis-server (unchecked fixture, runner process). */
static void server_up(void)
{
    ck_assert_msg(sl_test_redis_start(&srv, NULL) == 0, "redis-server did not start");
}

/* Stops the server and removes its directory. */
static void server_down(void)
{
    sl_test_redis_cleanup(&srv);
}

/* Connects, empties the server and makes this test's directory. */
static void test_up(void)
{
    pool_pid = 0;
    dir = sl_test_tmpdir();
    ck_assert_ptr_nonnull(dir);
    snprintf(cfgpath, sizeof cfgpath, "%s/sluice.json", dir);
    snprintf(logpath, sizeof logpath, "%s/sluice.log", dir);
    snprintf(outpath, sizeof outpath, "%s/producer.out", dir);
    rc = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(rc);
    ck_assert_int_eq(sl_test_int(rc, "FLUSHALL"), 0);
}

/* Stops the pool, closes the connection, removes the directory. */
static void test_down(void)
{
    sl_test_pool_kill(&pool_pid, PROD_STOP_MS);
    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
    if (dir != NULL) {
        sl_test_rmtree(dir);
        free(dir);
    }
    dir = NULL;
}

/* Fails the test with msg after printing the producer's output and the
 * end of the pool's log. */
static _Noreturn void fail_out(const char *msg)
{
    char *out = sl_test_read_file(outpath);

    fprintf(stderr, "---- producer output\n%s---- end\n", out != NULL ? out : "(none)\n");
    free(out);
    sl_test_log_tail(logpath, 30);
    ck_abort_msg("%s", msg);
}

/* ---------------------------------------------------------------------
 * The pool and the producers
 * ------------------------------------------------------------------ */

/* Starts `sluice run` on the default workers and timings (only the URL
 * and metrics are configured) and waits until every child runs. */
static void pool_start(void)
{
    int rv;

    ck_assert_int_eq(sl_test_write_file(cfgpath,
        "{ \"redis\": { \"url\": \"%s\" }, \"metrics\": { \"listen\": null } }\n",
        srv.url), 0);
    pool_pid = sl_test_pool_spawn(cfgpath, logpath);
    ck_assert_int_gt(pool_pid, 0);
    rv = sl_test_pool_wait_running(pool_pid, logpath, PROD_PROCS, PROD_START_MS);
    if (rv != 0)
        fail_out(rv == -1 ? "sluice run exited during start-up" : "the pool did not start");
}

/* Stops the pool with SIGTERM; asserts a clean exit and a log without
 * sanitizer or valgrind findings. */
static void pool_stop(void)
{
    static const char *const bad[] = { "status=99", "Sanitizer", "runtime error:" };
    int status = 0;
    size_t i;

    sl_test_kill(pool_pid, SIGTERM);
    if (!sl_test_wait_exit(pool_pid, PROD_STOP_MS, &status))
        fail_out("sluice run did not stop after SIGTERM");
    pool_pid = 0;
    if (status != -1 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fail_out("sluice run did not exit 0");
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sl_test_log_count(logpath, bad[i]) > 0)
            fail_out("the pool's log reports a sanitizer or valgrind finding");
}

/* Runs argv (argv[0] searched in PATH) to completion with its output
 * appended to outpath and PRODUCER_TIMEOUT scaled like every deadline;
 * fails unless it exits 0. Only a producer of ours (`wrap`: the C one)
 * runs under $SLUICE_WRAP: valgrind has nothing to say about python3,
 * node or sh, and would slow them down tenfold. The environment is put
 * back afterwards, since `make valgrind` runs every test in one process
 * (CK_FORK=no). */
static void run_producer(const char *const argv[], int wrap)
{
    char secs[32], *saved = NULL;
    int status = 0;
    pid_t pid;

    if (!wrap && getenv("SLUICE_WRAP") != NULL) {
        saved = strdup(getenv("SLUICE_WRAP"));
        ck_assert_ptr_nonnull(saved);
        unsetenv("SLUICE_WRAP");
    }
    snprintf(secs, sizeof secs, "%d", 30 * sl_test_slow_factor());
    setenv("PRODUCER_TIMEOUT", secs, 1);
    pid = sl_test_spawn(argv, outpath);
    unsetenv("PRODUCER_TIMEOUT");
    if (saved != NULL)
        setenv("SLUICE_WRAP", saved, 1);
    free(saved);
    ck_assert_int_gt(pid, 0);
    if (!sl_test_wait_exit(pid, PROD_RUN_MS, &status)) {
        sl_test_kill(pid, SIGKILL);
        sl_test_wait_exit(pid, 5000, NULL);
        fail_out("the producer did not finish in time");
    }
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fail_out("the producer did not exit 0");
}

/* Fails unless the producer's output holds the line fragment want. */
static void assert_output(const char *want)
{
    char msg[512];

    if (!sl_test_file_contains(outpath, want)) {
        snprintf(msg, sizeof msg, "the producer's output lacks \"%s\"", want);
        fail_out(msg);
    }
}

/* Returns 1 when path is a file that exists. */
static int exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* Returns 1 when `prog` is found in PATH (a shell's command -v). */
static int in_path(const char *prog)
{
    char cmd[256];

    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

/* Writes <directory of SLUICE_BIN>/producers/<rest> into buf: what
 * `make producers` builds for the binary under test. */
static void build_path(char *buf, size_t size, const char *rest)
{
    char bin[512];

    snprintf(bin, sizeof bin, "%s", sl_test_bin());
    snprintf(buf, size, "%s/producers/%s", dirname(bin), rest);
}

/* ---------------------------------------------------------------------
 * What Redis holds afterwards
 * ------------------------------------------------------------------ */

/* Asserts that field f of hash key is exactly want. */
static void assert_hash(const char *key, const char *f, const char *want)
{
    char *got = sl_test_str(rc, "HGET %s %s", key, f);
    int ok = got != NULL && strcmp(got, want) == 0;

    if (!ok) {
        char msg[512];

        snprintf(msg, sizeof msg, "%s %s is %s, expected %s", key, f,
                 got != NULL ? got : "(nil)", want);
        free(got);
        fail_out(msg);
    }
    free(got);
}

/* Returns the value of field f of a stream entry's flat field list, or
 * NULL. Borrowed from the reply. */
static const char *efield(const redisReply *fields, const char *f)
{
    size_t i;

    for (i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, f) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1]->str;
    return NULL;
}

/* Returns XINFO STREAM's entries-added of stream: every entry ever
 * added, trimmed ones included (sluice trims acknowledged entries). */
static long long entries_added(const char *stream)
{
    redisReply *r = sl_test_cmd(rc, "XINFO STREAM %s", stream);
    const redisReply *v = sl_test_kv(r, "entries-added");
    long long n = v != NULL && v->type == REDIS_REPLY_INTEGER ? v->integer : -1;

    freeReplyObject(r);
    return n;
}

/* Asserts the state one producer run leaves: u-1 created with its UTF-8
 * name and debited, o-1 paid; orders:dead holds exactly the errors of
 * `errors` (NULL-terminated, each once, in any order), the float one with its data kept;
 * users has one entry and orders `added` in all, follow-ups included. */
static void assert_outcome(const char *const *errors, long long added)
{
    redisReply *r;
    size_t i, n = 0;
    char msg[512];

    assert_hash("user:u-1", "name", "Zo\xc3\xab");
    assert_hash("user:u-1", "balance_cents", "3001");
    assert_hash("order:o-1", "status", "paid");
    assert_hash("payment:o-1", "status", "succeeded");
    ck_assert_int_eq(sl_test_int(rc, "EXISTS order:o-2 order:o-3 users:dead"), 0);
    ck_assert_int_eq(entries_added("users"), 1);
    ck_assert_int_eq(entries_added("orders"), added);

    while (errors[n] != NULL)
        n++;
    r = sl_test_cmd(rc, "XRANGE orders:dead - +");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    if (r->elements != n) {
        snprintf(msg, sizeof msg, "orders:dead holds %zu entries, expected %zu",
                 r->elements, n);
        freeReplyObject(r);
        fail_out(msg);
    }
    /* Two order processes: the dead letters come in either order. */
    for (i = 0; i < n; i++) {
        const redisReply *f = NULL;
        const char *data;
        size_t j, found = 0;

        for (j = 0; j < r->elements; j++) {
            const char *err = efield(r->element[j]->element[1], "error");

            if (err != NULL && strcmp(err, errors[i]) == 0) {
                f = r->element[j]->element[1];
                found++;
            }
        }
        if (found != 1) {
            snprintf(msg, sizeof msg, "orders:dead holds %zu dead letters \"%s\", expected 1",
                     found, errors[i]);
            freeReplyObject(r);
            fail_out(msg);
        }
        data = efield(f, "data");
        if (strcmp(errors[i], FLOAT_ERROR) == 0)
            ck_assert_msg(data != NULL && strstr(data, "\"amount_cents\":19.99") != NULL,
                          "the float dead letter's data is %s", data ? data : "(none)");
        if (strcmp(errors[i], "missing_payload") == 0) {
            ck_assert_ptr_null(data);
            ck_assert_str_eq(efield(f, "order_id"), "o-3");
        }
    }
    freeReplyObject(r);
}

/* Returns 1 once order o-1 is paid or failed. */
static int order_final(void)
{
    char *s = sl_test_str(rc, "HGET order:o-1 status");
    int done = s != NULL && (strcmp(s, "paid") == 0 || strcmp(s, "failed") == 0);

    free(s);
    return done;
}

/* The outcome lines every scripted producer prints. */
static void assert_script_output(void)
{
    assert_output("  user u-1: created\n");
    assert_output("  order o-1: paid; user u-1 balance_cents 3001\n");
    assert_output("  float amount: dead letter in orders:dead: " FLOAT_ERROR "\n");
    assert_output("  flat fields: dead letter in orders:dead: missing_payload\n");
}

/* ---------------------------------------------------------------------
 * The producers
 * ------------------------------------------------------------------ */

static const char *const script_errors[] = { FLOAT_ERROR, "missing_payload", NULL };

/* Python, with Debian's python3-redis (/usr/bin/python3: the Debian
 * interpreter that package installs into). */
START_TEST(test_producers_python)
{
    const char *argv[] = { "/usr/bin/python3", "examples/producers/python/produce.py",
                           srv.url, NULL };

    ck_assert_msg(exists(argv[1]), "%s not found: run the tests from the source tree", argv[1]);
    if (system("/usr/bin/python3 -c 'import redis' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIP test_producers_python: /usr/bin/python3 cannot import redis "
                "(apt-get install python3-redis, or scripts/install-deps.sh --test)\n");
        return;
    }
    pool_start();
    run_producer(argv, 0);
    assert_script_output();
    assert_outcome(script_errors, 4);   /* o-1, float, flat, payment.succeeded */
    pool_stop();
}
END_TEST

/* Node, with ioredis from <build>/producers/node (make producers). */
START_TEST(test_producers_node)
{
    const char *argv[] = { "node", "examples/producers/node/produce.js", srv.url, NULL };
    char modules[512], ioredis[600];

    ck_assert_msg(exists(argv[1]), "%s not found: run the tests from the source tree", argv[1]);
    build_path(modules, sizeof modules, "node/node_modules");
    snprintf(ioredis, sizeof ioredis, "%s/ioredis/package.json", modules);
    if (!in_path("node") || (!exists(ioredis) && !in_path("npm"))) {
        fprintf(stderr, "SKIP test_producers_node: %s\n", in_path("node") ?
                "npm not found, so ioredis cannot be installed" : "node not found");
        return;
    }
    ck_assert_msg(exists(ioredis), "%s missing: run `make producers` first", ioredis);
    setenv("NODE_PATH", modules, 1);
    pool_start();
    run_producer(argv, 0);
    unsetenv("NODE_PATH");
    assert_script_output();
    assert_outcome(script_errors, 4);
    pool_stop();
}
END_TEST

/* The shell, with redis-cli. */
START_TEST(test_producers_shell)
{
    const char *argv[] = { "sh", "examples/producers/shell/produce.sh", srv.url, NULL };

    ck_assert_msg(exists(argv[1]), "%s not found: run the tests from the source tree", argv[1]);
    pool_start();
    run_producer(argv, 0);
    assert_script_output();
    assert_outcome(script_errors, 4);
    pool_stop();
}
END_TEST

/* C, with sl_enqueue(): the user first, then (once the user exists, as
 * the example's comment says) the order, the float pitfall and three
 * payloads refused locally, of which nothing may reach Redis. */
START_TEST(test_producers_c)
{
    char bin[512];
    const char *user[] = { bin, "user", srv.url, NULL };
    const char *orders[] = { bin, "orders", srv.url, NULL };
    static const char *const errors[] = { FLOAT_ERROR, NULL };

    build_path(bin, sizeof bin, "produce");
    ck_assert_msg(exists(bin), "%s missing: run `make producers` first", bin);
    pool_start();
    run_producer(user, 1);
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_int(rc, "EXISTS user:u-1") == 1);
    run_producer(orders, 1);
    assert_output("user.created u-1 -> users ");
    assert_output("order.created o-1 -> orders ");
    assert_output("pitfall, float amount_cents 19.99 -> orders ");
    assert_output("duplicate key: refused, invalid argument: invalid_json: "
                  "duplicate object key near '\"amount_cents\"' at line 1 column 68\n");
    assert_output("not an object: refused, invalid argument: invalid_schema: "
                  "data must be a JSON object, got array\n");
    assert_output("Latin-1 text: refused, invalid argument: invalid_encoding: "
                  "data is not valid UTF-8 at offset 27\n");
    /* The order and its dead letter may come after the producer exits. */
    SL_TEST_ASSERT_EVENTUALLY(20000, order_final());
    SL_TEST_ASSERT_EVENTUALLY(20000, sl_test_int(rc, "XLEN orders:dead") >= 1);
    assert_outcome(errors, 3);          /* o-1, float, payment.succeeded */
    pool_stop();
}
END_TEST

/* sl_enqueue() itself: a lost connection is SL_EREDIS saying the entry
 * may or may not have been added, the next call connects again, and a
 * payload refused locally never reaches Redis. */
START_TEST(test_producers_api_reconnect)
{
    char err[256], id[SL_ENQUEUE_IDLEN], small[8];
    struct sl_producer *p = sl_producer_new(srv.url, err, sizeof err);

    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_int_eq(sl_enqueue(p, "jobs", "t", "{\"n\":1}", 7, id, sizeof id), SL_OK);
    ck_assert_int_eq(sl_test_int(rc, "XLEN jobs"), 1);
    ck_assert_int_eq(sl_enqueue(p, "jobs", "t", "{\"n\":1", 6, id, sizeof id), SL_EINVAL);
    ck_assert_str_eq(sl_producer_errstr(p),
                     "invalid_json: '}' expected near end of file at line 1 column 6");
    ck_assert_int_eq(sl_enqueue(p, "jobs", "t", "{}", 2, small, sizeof small), SL_EINVAL);
    ck_assert_int_eq(sl_enqueue(p, "", "t", "{}", 2, NULL, 0), SL_EINVAL);
    ck_assert_int_eq(sl_test_int(rc, "XLEN jobs"), 1);
    /* Every client but rc is cut off: the producer finds out on its next call. */
    ck_assert_int_ge(sl_test_int(rc, "CLIENT KILL SKIPME yes TYPE normal"), 1);
    ck_assert_int_eq(sl_enqueue(p, "jobs", "t", "{\"n\":2}", 7, id, sizeof id), SL_EREDIS);
    ck_assert_msg(strstr(sl_producer_errstr(p), "may or may not have been added") != NULL,
                  "%s", sl_producer_errstr(p));
    ck_assert_int_eq(sl_enqueue(p, "jobs", "t", "{\"n\":3}", 7, id, sizeof id), SL_OK);
    ck_assert_str_eq(sl_producer_errstr(p), "");
    ck_assert_int_eq(sl_test_int(rc, "XLEN jobs"), 2);
    /* A Redis error reply: the key holds a string. */
    sl_test_int(rc, "SET notastream x");
    ck_assert_int_eq(sl_enqueue(p, "notastream", "t", "{}", 2, NULL, 0), SL_EREDIS);
    ck_assert_msg(strncmp(sl_producer_errstr(p), "redis: WRONGTYPE", 16) == 0, "%s",
                  sl_producer_errstr(p));
    sl_producer_free(p);
}
END_TEST

Suite *producers_suite(void)
{
    Suite *s = suite_create("producers");
    TCase *tc = tcase_create("examples");

    tcase_add_unchecked_fixture(tc, server_up, server_down);
    tcase_add_checked_fixture(tc, test_up, test_down);
    tcase_set_timeout(tc, 120 * sl_test_slow_factor());
    tcase_add_test(tc, test_producers_python);
    tcase_add_test(tc, test_producers_node);
    tcase_add_test(tc, test_producers_shell);
    tcase_add_test(tc, test_producers_c);
    tcase_add_test(tc, test_producers_api_reconnect);
    suite_add_tcase(s, tc);
    return s;
}
