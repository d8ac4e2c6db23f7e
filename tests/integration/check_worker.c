/* check_worker.c -- the foundation, end to end: a real `sluice run`
 * against a real redis-server consumes through a consumer group, acks
 * exactly what its handler acked, recovers its own pending entries first,
 * survives the loss of its group and of Redis itself, and stops cleanly. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <check.h>
#include "harness.h"
#include "config.h"
#include "sut.h"

static struct sl_test_redis srv;  /* one server per TCase */
static char *dir;                 /* temp dir of the current test */
static pid_t pool;                /* the `sluice run` under test, 0 when none */
static char host[256];            /* gethostname(): part of consumer names */

/* Unchecked fixture: one redis-server for the TCase. */
static void server_up(void)
{
    ck_assert_int_eq(sl_test_redis_start(&srv, NULL), 0);
    gethostname(host, sizeof(host));
}

static void server_down(void)
{
    sl_test_redis_cleanup(&srv);
}

/* Checked fixture: a clean database and a temp dir per test. */
static void test_up(void)
{
    redisContext *c = sl_test_connect(&srv);

    ck_assert_ptr_nonnull(c);
    freeReplyObject(sl_test_cmd(c, "FLUSHALL"));
    redisFree(c);
    dir = sl_test_tmpdir();
    pool = 0;
}

/* Stops the pool if a test left it running, then removes the temp dir. */
static void test_down(void)
{
    sl_test_pool_kill(&pool, 10000);
    sl_test_rmtree(dir);
    free(dir);
}

/* Writes a config for one worker (handler, processes, extra defaults as
 * a JSON fragment) and starts `sluice run` with it. */
static pid_t start_pool(const char *handler, int processes, const char *extra)
{
    char cfg[512], log[512], workers[256];
    struct sl_test_config c = {
        srv.url, "\"command_timeout_ms\": 2000, \"connect_timeout_ms\": 1000",
        "\"block_ms\": 300, \"heartbeat_ms\": 200, \"reclaim_idle_ms\": 3000, "
        "\"retry_backoff_ms\": [50, 400]", extra, workers, NULL
    };

    snprintf(cfg, sizeof(cfg), "%s/sluice.json", dir);
    snprintf(log, sizeof(log), "%s/sluice.log", dir);
    snprintf(workers, sizeof(workers),
             "{ \"handler\": \"%s\", \"stream\": \"s\", \"group\": \"g\", \"processes\": %d }",
             handler, processes);
    ck_assert_int_eq(sl_test_config_write(cfg, &c), 0);
    pool = sl_test_pool_spawn(cfg, log);
    ck_assert_int_gt(pool, 0);
    return pool;
}

/* Returns the pending count of group g on stream s (0 when none). */
static long long pending(redisContext *c)
{
    redisReply *r = sl_test_cmd(c, "XPENDING s g");
    long long n = (r->type == REDIS_REPLY_ARRAY && r->elements >= 1) ? r->element[0]->integer : -1;

    freeReplyObject(r);
    return n;
}

/* Returns 1 when group g has read stream s to its end and acked it all. */
static int drained(redisContext *c)
{
    redisReply *g = sl_test_cmd(c, "XINFO GROUPS s");
    redisReply *s = sl_test_cmd(c, "XINFO STREAM s");
    const char *last = NULL, *gen = NULL;
    size_t i;
    int ok;

    for (i = 0; g->type == REDIS_REPLY_ARRAY && g->elements == 1 && i + 1 < g->element[0]->elements; i += 2)
        if (!strcmp(g->element[0]->element[i]->str, "last-delivered-id"))
            last = g->element[0]->element[i + 1]->str;
    for (i = 0; s->type == REDIS_REPLY_ARRAY && i + 1 < s->elements; i += 2)
        if (!strcmp(s->element[i]->str, "last-generated-id"))
            gen = s->element[i + 1]->str;
    ok = last != NULL && gen != NULL && !strcmp(last, gen);
    freeReplyObject(g);
    freeReplyObject(s);
    return ok && pending(c) == 0;
}

/* Adds one probe entry with the given data; returns its ID (new). */
static char *add(redisContext *c, const char *data)
{
    return sl_test_str(c, "XADD s * type t data %s", data);
}

/* ------------------------------------------------------------------ */

START_TEST(test_worker_processes_entries_added_before_start)
{
    redisContext *c = sl_test_connect(&srv);
    char *ids[50];
    int i;

    for (i = 0; i < 50; i++)
        ids[i] = add(c, "{\"effect\":true}");
    start_pool("probe", 1, NULL);
    SL_TEST_ASSERT_EVENTUALLY(15000, drained(c));
    for (i = 0; i < 50; i++) {
        ck_assert_int_eq(sl_test_int(c, "GET probe:count:%s", ids[i]), 1);
        free(ids[i]);
    }
    ck_assert_int_eq(sl_test_int(c, "LLEN probe:order"), 50);
    redisFree(c);
}
END_TEST

START_TEST(test_worker_acks_exactly_what_the_handler_acked)
{
    redisContext *c = sl_test_connect(&srv);
    char *ok, *later, *dead;
    redisReply *r;

    start_pool("probe", 1, NULL);
    ok = add(c, "{\"effect\":true}");
    later = add(c, "{\"retry\":1000000}");
    dead = add(c, "{\"dead\":\"nope\"}");
    SL_TEST_ASSERT_EVENTUALLY(15000, sl_test_int(c, "XLEN s:dead") == 1 &&
                                     sl_test_int(c, "GET probe:count:%s", ok) == 1 &&
                                     pending(c) == 1);
    /* The retried entry is the one left pending, and stays so. */
    r = sl_test_cmd(c, "XPENDING s g - + 10");
    ck_assert_int_eq(r->elements, 1);
    ck_assert_str_eq(r->element[0]->element[0]->str, later);
    freeReplyObject(r);
    r = sl_test_cmd(c, "XRANGE s:dead - +");
    ck_assert_int_eq(r->elements, 1);
    freeReplyObject(r);
    ck_assert_int_eq(sl_test_int(c, "XLEN s:dead"), 1);
    free(ok);
    free(later);
    free(dead);
    redisFree(c);
}
END_TEST

START_TEST(test_worker_recovers_its_own_pending_entries_first)
{
    redisContext *c = sl_test_connect(&srv);
    char consumer[400], *old[5], *fresh[5];
    redisReply *r;
    int i;

    /* A previous incarnation of slot 0 read five entries and died. */
    snprintf(consumer, sizeof(consumer), "%s:probe:0", host);
    freeReplyObject(sl_test_cmd(c, "XGROUP CREATE s g 0 MKSTREAM"));
    for (i = 0; i < 5; i++)
        old[i] = add(c, "{\"effect\":true}");
    freeReplyObject(sl_test_cmd(c, "XREADGROUP GROUP g %s COUNT 5 STREAMS s >", consumer));
    for (i = 0; i < 5; i++)
        fresh[i] = add(c, "{\"effect\":true}");
    ck_assert_int_eq(pending(c), 5);

    start_pool("probe", 1, NULL);
    SL_TEST_ASSERT_EVENTUALLY(15000, drained(c) && sl_test_int(c, "LLEN probe:order") == 10);
    r = sl_test_cmd(c, "LRANGE probe:order 0 -1");
    for (i = 0; i < 5; i++) {
        ck_assert_str_eq(r->element[i]->str, old[i]);
        ck_assert_str_eq(r->element[5 + i]->str, fresh[i]);
        /* Handled once each: recovery does not hand an entry out twice. */
        ck_assert_int_eq(sl_test_int(c, "GET probe:count:%s", old[i]), 1);
        free(old[i]);
        free(fresh[i]);
    }
    freeReplyObject(r);
    redisFree(c);
}
END_TEST

START_TEST(test_worker_recreates_a_deleted_stream_and_group)
{
    redisContext *c = sl_test_connect(&srv);
    char *id;

    start_pool("probe", 1, NULL);
    id = add(c, "{\"effect\":true}");
    SL_TEST_ASSERT_EVENTUALLY(15000, sl_test_int(c, "GET probe:count:%s", id) == 1);
    free(id);

    /* The stream disappears under a blocked read (UNBLOCKED). */
    freeReplyObject(sl_test_cmd(c, "DEL s"));
    SL_TEST_ASSERT_EVENTUALLY(15000, sl_test_int(c, "EXISTS s") == 1);
    id = add(c, "{\"effect\":true}");
    SL_TEST_ASSERT_EVENTUALLY(15000, sl_test_int(c, "GET probe:count:%s", id) == 1);
    free(id);

    /* Only the group disappears (NOGROUP). */
    freeReplyObject(sl_test_cmd(c, "XGROUP DESTROY s g"));
    id = add(c, "{\"effect\":true}");
    SL_TEST_ASSERT_EVENTUALLY(15000, sl_test_int(c, "GET probe:count:%s", id) == 1);
    SL_TEST_ASSERT_EVENTUALLY(15000, drained(c));
    ck_assert(sl_test_pid_alive(pool));
    free(id);
    redisFree(c);
}
END_TEST

/* Returns the pids of the pool's children, from its log. */
static int child_pids(pid_t *out, int max)
{
    char log[512], *text, *p;
    int n = 0;

    snprintf(log, sizeof(log), "%s/sluice.log", dir);
    text = sl_test_read_file(log);
    for (p = text; p != NULL && (p = strstr(p, "event=child_started")) != NULL && n < max; p++) {
        char *c = strstr(p, "child=");
        if (c != NULL)
            out[n++] = (pid_t)atol(c + 6);
    }
    free(text);
    return n;
}

START_TEST(test_worker_survives_a_redis_restart_without_spinning)
{
    redisContext *c = sl_test_connect(&srv);
    pid_t kids[4];
    long long cpu0, cpu1, t0, t1;
    char *id;
    int n;

    start_pool("probe", 1, NULL);
    id = add(c, "{\"effect\":true}");
    SL_TEST_ASSERT_EVENTUALLY(15000, sl_test_int(c, "GET probe:count:%s", id) == 1);
    free(id);
    redisFree(c);
    n = child_pids(kids, 4);
    ck_assert_int_eq(n, 1);

    /* Redis goes away for three seconds: the worker waits, cheaply. */
    sl_test_redis_kill(&srv);
    cpu0 = sl_test_cpu_ms(kids[0]) + sl_test_cpu_ms(pool);
    t0 = sl_test_now_ms();
    while (sl_test_now_ms() - t0 < 3000)
        usleep(50000);
    cpu1 = sl_test_cpu_ms(kids[0]) + sl_test_cpu_ms(pool);
    t1 = sl_test_now_ms();
    /* A spinning loop would burn ~3000 ms of CPU here; backoff costs a
     * few ms. 300 leaves room for a loaded machine and valgrind. */
    ck_assert_msg(cpu1 - cpu0 < 300 * sl_test_slow_factor(),
                  "%lld ms CPU in %lld ms while Redis was down", cpu1 - cpu0, t1 - t0);
    ck_assert(sl_test_pid_alive(kids[0]));

    ck_assert_int_eq(sl_test_redis_restart(&srv), 0);
    c = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(c);
    /* The restarted server has no data: the group is recreated. */
    id = add(c, "{\"effect\":true}");
    SL_TEST_ASSERT_EVENTUALLY(20000, sl_test_int(c, "GET probe:count:%s", id) == 1);
    ck_assert(sl_test_pid_alive(kids[0]));   /* same process: no crash */
    ck_assert_int_eq(child_pids(kids, 4), 1);
    free(id);
    redisFree(c);
}
END_TEST

START_TEST(test_worker_stops_cleanly_on_sigterm)
{
    redisContext *c = sl_test_connect(&srv);
    char log[512];
    int status = 0, i;
    pid_t kids[4];

    start_pool("noop", 2, NULL);
    for (i = 0; i < 100; i++)
        free(add(c, "{}"));
    SL_TEST_ASSERT_EVENTUALLY(15000, drained(c));
    ck_assert_int_eq(child_pids(kids, 4), 2);
    sl_test_kill(pool, SIGTERM);
    ck_assert(sl_test_wait_exit(pool, 10000, &status));
    pool = 0;
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert(!sl_test_pid_alive(kids[0]));
    ck_assert(!sl_test_pid_alive(kids[1]));
    snprintf(log, sizeof(log), "%s/sluice.log", dir);
    ck_assert(sl_test_file_contains(log, "event=pool_stopped exit_code=0"));
    redisFree(c);
}
END_TEST

/* Returns 1 when the pool's log has a line containing needle. */
static int log_has(const char *needle)
{
    char log[512];

    snprintf(log, sizeof(log), "%s/sluice.log", dir);
    return sl_test_file_contains(log, needle);
}

START_TEST(test_worker_sigterm_at_start_is_one_graceful_stop)
{
    char log[512];
    int i, status;

    /* A SIGTERM that reaches the pool while it is still forking once made
     * a fresh child pass the signal on to the supervisor (read there as a
     * second signal: stop_now) or enter its loop unaware of it (stuck
     * until shutdown_timeout). Each try below hit one of those about one
     * time in ten. */
    snprintf(log, sizeof(log), "%s/sluice.log", dir);
    for (i = 0; i < 30; i++) {
        unlink(log);
        start_pool("noop", 8, "\"shutdown_timeout_ms\": 5000");
        SL_TEST_ASSERT_EVENTUALLY(10000, log_has("event=child_started"));
        sl_test_kill(pool, SIGTERM);
        ck_assert(sl_test_wait_exit(pool, 15000, &status));
        pool = 0;
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "try %d: pool exited with status %d", i, status);
        ck_assert_msg(!log_has("event=stop_now") && !log_has("event=shutdown_timeout"),
                      "try %d: the stop was not graceful", i);
    }
}
END_TEST

/* A stop that comes while a blocking handler runs the first entries of a
 * batch read ahead of time ends the read that went out meanwhile at once.
 * The batch loop saw the signal first and marked the worker stopping, and
 * the signal's own callback, finding it so marked, returned before its
 * CLIENT UNBLOCK: the read-ahead then blocked for all of block_ms, past
 * the shutdown timeout here (60 s against 10 s), and the supervisor
 * killed a healthy worker. With batch 2 the second read brings two
 * entries at once (the batch is full: a read goes ahead), and the
 * first one sleeps long enough for the signal to land in it. */
START_TEST(test_worker_sigterm_mid_batch_ends_the_read_ahead)
{
    redisContext *c = sl_test_connect(&srv);
    char data[128], needle[128], *id;
    redisReply *r;
    int status = 0;

    start_pool("probe", 1, "\"block_ms\": 60000, \"batch\": 2");
    SL_TEST_ASSERT_EVENTUALLY(15000, log_has("event=running"));
    /* One fast entry first: the next read asks for two, and is allowed
     * to go ahead (the batch before it was handled fast). */
    id = add(c, "{}");
    SL_TEST_ASSERT_EVENTUALLY(15000, drained(c));
    free(id);
    snprintf(data, sizeof(data), "{\"sleep_ms\":%d,\"trace\":true}",
             2000 * sl_test_slow_factor());
    freeReplyObject(sl_test_cmd(c, "MULTI"));
    freeReplyObject(sl_test_cmd(c, "XADD s * type t data %s", data));
    freeReplyObject(sl_test_cmd(c, "XADD s * type t data {}"));
    r = sl_test_cmd(c, "EXEC");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->elements, 2);
    snprintf(needle, sizeof(needle), "event=probe_call id=%s", r->element[0]->str);
    freeReplyObject(r);
    SL_TEST_ASSERT_EVENTUALLY(15000, log_has(needle));
    sl_test_kill(pool, SIGTERM);
    ck_assert(sl_test_wait_exit(pool, 30000, &status));
    pool = 0;
    ck_assert_msg(!log_has("event=shutdown_timeout"), "the worker was killed at the shutdown timeout");
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "pool exited with status %d",
                  status);
    ck_assert(log_has("event=pool_stopped exit_code=0"));
    /* The second entry of the batch stays pending (a batch that was not
     * read ahead is not finished after a stop): the next run recovers it. */
    redisFree(c);
}
END_TEST

/* Runs the sluice binary with argv (NULL-terminated after the program)
 * to completion; returns its exit status and leaves its output in
 * dir/out.log. */
static int run_cli(const char *const *args)
{
    const char *argv[16];
    char log[512];
    int status = -1, i;
    pid_t pid;

    argv[0] = sl_test_bin();
    for (i = 0; args[i] != NULL && i < 14; i++)
        argv[i + 1] = args[i];
    argv[i + 1] = NULL;
    snprintf(log, sizeof(log), "%s/out.log", dir);
    unlink(log);
    pid = sl_test_spawn(argv, log);
    ck_assert(sl_test_wait_exit(pid, 20000, &status));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Returns 1 when dir/out.log contains needle. */
static int out_has(const char *needle)
{
    char log[512];

    snprintf(log, sizeof(log), "%s/out.log", dir);
    return sl_test_file_contains(log, needle);
}

START_TEST(test_worker_cli_exit_codes)
{
    char cfg[512], bad[512];
    const char *ok[] = { "enqueue", "s", "t", "{\"a\":1}", "--redis", srv.url, NULL };
    const char *notobj[] = { "enqueue", "s", "t", "[1]", "--redis", srv.url, NULL };
    const char *badjson[] = { "enqueue", "--redis", srv.url, "s", "t", "{\"a\":", NULL };
    const char *unknown[] = { "frobnicate", NULL };
    const char *badopt[] = { "run", "--nope", NULL };
    const char *badcfg[] = { "workers", "-c", bad, NULL };
    const char *missing[] = { "workers", "-c", "/nonexistent/sluice.json", NULL };
    const char *down[] = { "workers", "-c", cfg, NULL };
    const char *badurl[] = { "workers", "--redis", "http://x", NULL };
    const char *version[] = { "--version", NULL };
    redisContext *c = sl_test_connect(&srv);

    ck_assert_int_eq(run_cli(ok), 0);
    ck_assert_int_eq(sl_test_int(c, "XLEN s"), 1);
    ck_assert_int_eq(run_cli(notobj), 2);
    ck_assert(out_has("data must be a JSON object"));
    ck_assert_int_eq(run_cli(badjson), 2);
    ck_assert_int_eq(sl_test_int(c, "XLEN s"), 1);  /* nothing sent */
    ck_assert_int_eq(run_cli(unknown), 2);
    ck_assert(out_has("unknown command \"frobnicate\""));
    ck_assert_int_eq(run_cli(badopt), 2);
    ck_assert(out_has("unknown option \"--nope\""));

    snprintf(bad, sizeof(bad), "%s/bad.json", dir);
    sl_test_write_file(bad, "{\n  \"workers\": [\n    { \"handler\": \"noop\", \"stream\": \"s\",\n"
                            "      \"group\": \"g\", \"processes\": 0 } ] }\n");
    ck_assert_int_eq(run_cli(badcfg), 2);
    ck_assert(out_has("bad.json:4:34: workers[0].processes: expected a positive integer"));
    ck_assert_int_eq(run_cli(missing), 2);
    ck_assert_int_eq(run_cli(badurl), 2);
    ck_assert(out_has("--redis"));

    /* An admin command that cannot reach Redis: 1, within the timeout. */
    snprintf(cfg, sizeof(cfg), "%s/down.json", dir);
    sl_test_write_file(cfg, "{ \"redis\": { \"url\": \"redis://127.0.0.1:1\", \"connect_timeout_ms\": 500 } }\n");
    ck_assert_int_eq(run_cli(down), 1);
    ck_assert(out_has("cannot reach redis at 127.0.0.1:1"));
    ck_assert_int_eq(run_cli(version), 0);
    ck_assert(out_has("sluice 0."));
    redisFree(c);
}
END_TEST

Suite *worker_suite(void)
{
    Suite *s = suite_create("worker");
    TCase *core = tcase_create("core");
    TCase *faults = tcase_create("faults");
    TCase *cli = tcase_create("cli");

    tcase_add_unchecked_fixture(core, server_up, server_down);
    tcase_add_checked_fixture(core, test_up, test_down);
    tcase_set_timeout(core, 60 * sl_test_slow_factor());
    tcase_add_test(core, test_worker_processes_entries_added_before_start);
    tcase_add_test(core, test_worker_acks_exactly_what_the_handler_acked);
    tcase_add_test(core, test_worker_recovers_its_own_pending_entries_first);
    tcase_add_test(core, test_worker_stops_cleanly_on_sigterm);
    tcase_add_test(core, test_worker_sigterm_at_start_is_one_graceful_stop);
    tcase_add_test(core, test_worker_sigterm_mid_batch_ends_the_read_ahead);
    suite_add_tcase(s, core);

    tcase_add_unchecked_fixture(faults, server_up, server_down);
    tcase_add_checked_fixture(faults, test_up, test_down);
    tcase_set_timeout(faults, 90 * sl_test_slow_factor());
    tcase_add_test(faults, test_worker_recreates_a_deleted_stream_and_group);
    tcase_add_test(faults, test_worker_survives_a_redis_restart_without_spinning);
    suite_add_tcase(s, faults);

    tcase_add_unchecked_fixture(cli, server_up, server_down);
    tcase_add_checked_fixture(cli, test_up, test_down);
    tcase_set_timeout(cli, 60 * sl_test_slow_factor());
    tcase_add_test(cli, test_worker_cli_exit_codes);
    suite_add_tcase(s, cli);
    return s;
}
