/* check_async.c -- async handlers (issue 15 part 3) against a real
 * redis-server and the real binary. The `aprobe` handler returns
 * SL_PENDING and completes each entry from a timer on the worker's loop;
 * its trace lines say how many entries its process had in flight.
 *
 * What is checked: `concurrency` bounds the entries in flight per process
 * (1 by default, so an async handler is never more than a user asked
 * for); an entry past handler_timeout_ms is abandoned as a failed
 * attempt, its late completion discarded, the process left alone; a
 * graceful stop waits for every entry in flight; and a crash with 8
 * entries in flight, one of them poison, dead-letters the poison alone.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <hiredis.h>

#include "sluice.h"
#include "ops.h"
#include "config.h"
#include "sut.h"

#define IDLEN 48                  /* room for a stream entry ID */

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* Writes <tmp>/async.json: the harness server, "defaults" members
 * `defaults` (or the built-in ones), and one aprobe worker on stream aq,
 * group ag, with `processes` processes and the worker's own members
 * `own` (or none). */
static const char *async_config(char *buf, size_t len, const char *defaults, const char *own,
                                int processes)
{
    char workers[400];
    struct sl_test_config c = { srv.url, NULL, defaults, NULL, workers, NULL };

    snprintf(workers, sizeof(workers),
             "{\"handler\": \"aprobe\", \"stream\": \"aq\", \"group\": \"ag\", "
             "\"processes\": %d%s%s}", processes, own != NULL ? ", " : "",
             own != NULL ? own : "");
    snprintf(buf, len, "%s/async.json", tmp);
    ck_assert_int_eq(sl_test_config_write(buf, &c), 0);
    return buf;
}

/* Starts `sluice run -c cfg` logging to <tmp>/<logname> and waits for
 * `children` event=running lines. */
static void async_start(struct pool *p, const char *cfg, const char *logname, int children)
{
    int rv;

    memset(p, 0, sizeof(*p));
    snprintf(p->cfg, sizeof(p->cfg), "%s", cfg);
    snprintf(p->log, sizeof(p->log), "%s/%s", tmp, logname);
    p->pid = sl_test_pool_spawn(p->cfg, p->log);
    ck_assert_int_gt(p->pid, 0);
    track(p->pid);
    rv = sl_test_pool_wait_running(p->pid, p->log, children, 10000);
    ck_assert_msg(rv == 0, "%d children not running (%d); see %s", children, rv, p->log);
}

/* XADDs one aprobe entry with the given data; its ID into id. */
static void add(const char *data, char *id)
{
    redisReply *r = sl_test_cmd(rc, "XADD aq * type aprobe data %s", data);

    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    snprintf(id, IDLEN, "%s", r->str);
    freeReplyObject(r);
}

/* Returns how often the effect of entry id was applied. */
static long long applied(const char *id)
{
    char *s = sl_test_str(rc, "GET probe:count:%s", id);
    long long n = s != NULL ? atoll(s) : 0;

    free(s);
    return n;
}

/* Returns 1 when each of the n entries was applied exactly once and
 * nothing is left pending in the group. */
static int all_once(char (*ids)[IDLEN], int n)
{
    int i;

    for (i = 0; i < n; i++)
        if (applied(ids[i]) != 1)
            return 0;
    return group_backlog("aq", "ag") == 0;
}

/* Returns the largest `active=` of the aprobe_call lines of log, 0 when
 * there is none. */
static int max_active(const char *log)
{
    char *text = sl_test_read_file(log), *at;
    int best = 0;

    for (at = text; at != NULL && (at = strstr(at, "event=aprobe_call ")) != NULL; at++) {
        char *eol = strchr(at, '\n'), *a = strstr(at, " active=");
        if (a != NULL && (eol == NULL || a < eol) && atoi(a + 8) > best)
            best = atoi(a + 8);
    }
    free(text);
    return best;
}

/* Returns the number of entries in the dead-letter stream of aq. */
static long long dead_len(void)
{
    redisReply *r = sl_test_cmd(rc, "XLEN aq:dead");
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    freeReplyObject(r);
    return n;
}

/* Returns 1 when the dead-letter stream holds an entry whose source_id
 * is id. */
static int dead_from(const char *id)
{
    redisReply *r = sl_test_cmd(rc, "XRANGE aq:dead - +");
    size_t i, j;
    int found = 0;

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        for (j = 0; j + 1 < f->elements; j += 2)
            if (strcmp(f->element[j]->str, "source_id") == 0 &&
                strcmp(f->element[j + 1]->str, id) == 0)
                found = 1;
    }
    freeReplyObject(r);
    return found;
}

/* Returns the per-type count `what` (in or done) of type aprobe that the
 * workers of aq/ag have sent (sluice:count:aq:ag), 0 when there is none. */
static long long type_count(const char *what)
{
    char *s = sl_test_str(rc, "HGET sluice:count:aq:ag %s:aprobe", what);
    long long n = s != NULL ? atoll(s) : 0;

    free(s);
    return n;
}

/* Lets ms of wall time pass (a scenario's quiet period). */
static void quiet_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ------------------------------------------------------------------------
 * Concurrency
 * ------------------------------------------------------------------------ */

/* 40 entries of 300 ms each with concurrency 8 on one process: every one
 * is applied once, at most 8 were ever in flight, and more than one was
 * (the handler really ran concurrently); the per-type counts say 40 read
 * and 40 done. */
START_TEST(test_async_concurrency_bound_respected)
{
    static char ids[40][IDLEN];
    char cfg[600];
    struct pool p;
    int i, most;

    async_config(cfg, sizeof(cfg), NULL, "\"concurrency\": 8", 1);
    async_start(&p, cfg, "pool.log", 1);
    for (i = 0; i < 40; i++)
        add("{\"effect\":true,\"trace\":true,\"delay_ms\":300}", ids[i]);
    SL_TEST_ASSERT_EVENTUALLY(30000, all_once(ids, 40));
    most = max_active(p.log);
    fprintf(stderr, "async: concurrency 8: at most %d in flight\n", most);
    ck_assert_msg(most >= 2 && most <= 8, "%d entries in flight at once; see %s", most, p.log);
    ck_assert_int_eq(file_count(p.log, "event=aprobe_call "), 40);
    /* The per-type counts behind `sluice stats` count an async entry done
     * when it completes, not when its handler returned SL_PENDING. */
    SL_TEST_ASSERT_EVENTUALLY(10000, type_count("in") == 40 && type_count("done") == 40);
    pool_stop(&p);
}
END_TEST

/* The default concurrency is 1: an async handler given no `concurrency`
 * has one entry in flight at a time, however many are waiting. */
START_TEST(test_async_default_concurrency_is_one)
{
    static char ids[6][IDLEN];
    char cfg[600];
    struct pool p;
    int i;

    async_config(cfg, sizeof(cfg), NULL, NULL, 1);
    async_start(&p, cfg, "pool.log", 1);
    for (i = 0; i < 6; i++)
        add("{\"effect\":true,\"trace\":true,\"delay_ms\":100}", ids[i]);
    SL_TEST_ASSERT_EVENTUALLY(20000, all_once(ids, 6));
    ck_assert_msg(max_active(p.log) == 1, "%d in flight with the default concurrency; see %s",
                  max_active(p.log), p.log);
    pool_stop(&p);
}
END_TEST

/* Completions inside `handle`, retries and dead letters of an async
 * handler follow the same rules as a blocking handler's. */
START_TEST(test_async_dispositions)
{
    char cfg[600], a[IDLEN], r[IDLEN], d[IDLEN];
    struct pool p;

    async_config(cfg, sizeof(cfg), "\"retry_backoff_ms\": [100, 1000]",
                 "\"concurrency\": 4", 1);
    async_start(&p, cfg, "pool.log", 1);
    add("{\"effect\":true,\"inline\":true}", a);
    add("{\"effect\":true,\"retry\":2,\"delay_ms\":50}", r);
    add("{\"dead\":\"aprobe_dead\",\"delay_ms\":50}", d);
    SL_TEST_ASSERT_EVENTUALLY(20000, applied(a) == 1 && applied(r) == 1 && dead_len() == 1 &&
                                     group_backlog("aq", "ag") == 0);
    ck_assert_int_eq(file_count(p.log, "error=aprobe_dead"), 1);
    pool_stop(&p);
}
END_TEST

/* At the defaults a user gets (concurrency 1, block_ms 2000, backoff
 * from 1 s, the default sweep timers), an entry that fails on a quiet
 * stream is retried when its delay is over. Before the sweep could end
 * the blocked read, the read held the one place, no retry sweep ever
 * started, and the entry sat pending until new traffic came. Then the
 * same with a second entry arriving meanwhile, and with concurrency 4. */
START_TEST(test_async_idle_retry_at_defaults)
{
    char cfg[600], a[IDLEN], b[IDLEN];
    struct pool p;
    long long t0;

    async_config(cfg, sizeof(cfg), NULL, NULL, 1);
    async_start(&p, cfg, "pool.log", 1);
    /* With concurrency 1 the very first read holds the one place. */
    t0 = sl_test_now_ms();
    add("{\"effect\":true,\"retry\":2}", a);
    SL_TEST_ASSERT_EVENTUALLY(30000, applied(a) == 1 && group_backlog("aq", "ag") == 0);
    fprintf(stderr, "async: idle retry at the defaults (2 failures): applied after %lld ms\n",
            sl_test_now_ms() - t0);
    add("{\"effect\":true,\"retry\":1}", b);
    SL_TEST_ASSERT_EVENTUALLY(30000, applied(b) == 1 && group_backlog("aq", "ag") == 0);
    pool_stop(&p);

    async_config(cfg, sizeof(cfg), NULL, "\"concurrency\": 4", 1);
    freeReplyObject(sl_test_cmd(rc, "FLUSHALL"));
    async_start(&p, cfg, "pool2.log", 1);
    /* A quiet stream for a while, not an effect to wait for: each empty
     * read doubles the next one's COUNT up to the 4 places, and the
     * failure must come once the read holds them all. */
    quiet_ms(7000);
    add("{\"effect\":true,\"retry\":1}", a);
    SL_TEST_ASSERT_EVENTUALLY(30000, applied(a) == 1 && group_backlog("aq", "ag") == 0);
    pool_stop(&p);
}
END_TEST

/* ------------------------------------------------------------------------
 * Timeout
 * ------------------------------------------------------------------------ */

/* An entry whose first attempt completes after 3 s with a handler
 * timeout of 1 s: the attempt is abandoned as a failed one, the next
 * attempt (attempts=1) applies the effect, and the late completion of
 * the first is discarded: the effect is applied once, and the process
 * was never killed (its loop answered all along). handler_timeout_ms is
 * 1000 and the backoff 100 ms only to keep the test short. */
START_TEST(test_async_timeout_late_completion_discarded)
{
    char cfg[600], id[IDLEN], other[IDLEN];
    struct pool p;

    async_config(cfg, sizeof(cfg), "\"handler_timeout_ms\": 1000, \"retry_backoff_ms\": [100, 1000]",
                 "\"concurrency\": 4", 1);
    async_start(&p, cfg, "pool.log", 1);
    add("{\"effect\":true,\"trace\":true,\"first_delay_ms\":3000}", id);
    add("{\"effect\":true,\"trace\":true,\"delay_ms\":10}", other);
    SL_TEST_ASSERT_EVENTUALLY(20000, applied(id) == 1 && applied(other) == 1);
    SL_TEST_ASSERT_EVENTUALLY(20000, file_count(p.log, "reason=late_completion") == 1);
    ck_assert_msg(file_count(p.log, "event=commit_discarded") == 1,
                  "another commit was discarded too; see %s", p.log);
    ck_assert_msg(file_count(p.log, "event=aprobe_call ") == 3,
                  "an entry was handled more often than its attempts; see %s", p.log);
    ck_assert_int_eq(applied(id), 1);
    ck_assert_int_eq(file_count(p.log, "event=handler_timeout"), 1);
    ck_assert_msg(file_count(p.log, "event=child_exited") == 0,
                  "the process was killed although its loop answered; see %s", p.log);
    ck_assert_int_eq(group_backlog("aq", "ag"), 0);
    pool_stop(&p);
}
END_TEST

/* ------------------------------------------------------------------------
 * Shutdown and crashes
 * ------------------------------------------------------------------------ */

/* A SIGTERM with 4 entries in flight (2 s each): the pool exits 0 after
 * all 4 completed and were committed; nothing is killed, nothing left
 * pending. */
START_TEST(test_async_shutdown_waits_for_all)
{
    static char ids[4][IDLEN];
    char cfg[600];
    struct pool p;
    int i;

    async_config(cfg, sizeof(cfg), NULL, "\"concurrency\": 4", 1);
    async_start(&p, cfg, "pool.log", 1);
    for (i = 0; i < 4; i++)
        add("{\"effect\":true,\"trace\":true,\"delay_ms\":2000}", ids[i]);
    SL_TEST_ASSERT_EVENTUALLY(10000, file_count(p.log, "event=aprobe_call ") == 4);
    pool_stop(&p);
    ck_assert_msg(all_once(ids, 4), "entries in flight were lost by the stop; see %s", p.log);
    ck_assert_int_eq(file_count(p.log, "event=child_killed"), 0);
}
END_TEST

/* A crash with 8 entries in flight, one of them poison (it aborts the
 * process when its timer fires): the 7 others are applied once each and
 * the dead-letter stream holds the poison entry alone. Nobody is charged
 * for a crash with several entries in flight; the next process retries
 * them one at a time, and the poison, crashing alone, is charged each
 * time until it is dead. */
START_TEST(test_async_crash_dead_letters_only_the_poison)
{
    static char ids[7][IDLEN];
    char cfg[600], poison[IDLEN];
    redisReply *r;
    struct pool p;
    int i;

    async_config(cfg, sizeof(cfg), NULL, "\"concurrency\": 8", 1);
    async_start(&p, cfg, "pool.log", 1);
    for (i = 0; i < 4; i++)
        add("{\"effect\":true,\"trace\":true,\"delay_ms\":1500}", ids[i]);
    add("{\"effect\":true,\"trace\":true,\"crash\":true,\"delay_ms\":700}", poison);
    for (i = 4; i < 7; i++)
        add("{\"effect\":true,\"trace\":true,\"delay_ms\":1500}", ids[i]);
    SL_TEST_ASSERT_EVENTUALLY(60000, all_once(ids, 7) && dead_len() == 1);
    r = sl_test_cmd(rc, "XRANGE aq:dead - +");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq((int)r->elements, 1);
    freeReplyObject(r);
    /* The dead letter's source_id is the poison entry's. */
    ck_assert_int_eq(dead_from(poison), 1);
    for (i = 0; i < 7; i++)
        ck_assert_int_eq(applied(ids[i]), 1);
    ck_assert_msg(file_count(p.log, "event=crash_suspects") >= 1,
                  "no crash with several entries in flight; see %s", p.log);
    {
        /* Every failed attempt recorded for a crash is the poison's. */
        char needle[200];
        int all = file_count(p.log, "event=attempt_failed "), its;

        snprintf(needle, sizeof(needle), " id=%s reason=\"last crash signal", poison);
        its = file_count(p.log, needle);
        fprintf(stderr, "async: crash with 8 in flight: %d crash(es) with suspects, %d "
                "charged alone (all to the poison: %d)\n",
                file_count(p.log, "event=crash_suspects"), all, its);
        ck_assert_msg(all == its && its >= 1, "%d attempts charged, %d to the poison; see %s",
                      all, its, p.log);
    }
    ck_assert_int_eq(applied(poison), 0);
    ck_assert_int_eq(group_backlog("aq", "ag"), 0);
    pool_stop(&p);
}
END_TEST

/* Returns 1 when the heartbeat of consumer <host>:aprobe:0 exists and
 * was written for process pid (by the process or by its supervisor). */
static int beat_of(pid_t pid)
{
    char *s = sl_test_str(rc, "HGET sluice:worker:%s:aprobe:0 pid", host);
    int yes = s != NULL && atol(s) == (long)pid;

    free(s);
    return yes;
}

/* After a crash with two entries in flight, the next process recovers
 * them one at a time, and waits for each alone: here a slow one (20 s,
 * a slow receiver), the poison after it. All that time it is connected
 * and working, so it beats and /healthz says it is up. Before, both
 * waited for the end of the recovery: the process never beat while it
 * recovered (its supervisor beats only for a blocking handler's batch),
 * so its heartbeat key lapsed after three beats (a second pool's start
 * check then saw the name free, and `sluice health` without a listener
 * said unhealthy), and /healthz answered 503 "is not connected to redis"
 * for the whole wait, which a health probe could answer by restarting
 * the pool in the middle of every serial recovery. At the defaults
 * (heartbeat_ms 1000) but concurrency 2. */
START_TEST(test_async_serial_recovery_beats_and_is_healthy)
{
    char cfg[600], workers[300], data[160], slow_id[IDLEN], poison[IDLEN];
    struct sl_test_config c = { srv.url, NULL, NULL, NULL, workers, "127.0.0.1:0" };
    struct pool p;
    pid_t first, kid;
    int rv;

    snprintf(workers, sizeof(workers),
             "{\"handler\": \"aprobe\", \"stream\": \"aq\", \"group\": \"ag\", "
             "\"processes\": 1, \"concurrency\": 2}");
    snprintf(cfg, sizeof(cfg), "%s/async.json", tmp);
    ck_assert_int_eq(sl_test_config_write(cfg, &c), 0);
    memset(&p, 0, sizeof(p));
    snprintf(p.cfg, sizeof(p.cfg), "%s", cfg);
    snprintf(p.log, sizeof(p.log), "%s/pool.log", tmp);
    p.pid = sl_test_pool_spawn(p.cfg, p.log);
    ck_assert_int_gt(p.pid, 0);
    track(p.pid);
    rv = sl_test_pool_wait_running(p.pid, p.log, 1, 10000);
    ck_assert_msg(rv == 0, "the child is not running (%d); see %s", rv, p.log);
    p.port = (int)file_last_number(p.log, "event=metrics_listening addr=127.0.0.1:");
    ck_assert_int_gt(p.port, 0);
    first = child_pid(&p, "aprobe:0");

    snprintf(data, sizeof(data), "{\"effect\":true,\"delay_ms\":%d}", 20000 * sl_test_slow_factor());
    add(data, slow_id);
    add("{\"effect\":true,\"crash\":true,\"delay_ms\":300}", poison);
    SL_TEST_ASSERT_EVENTUALLY(15000, file_count(p.log, "event=suspects_serial") >= 1);
    kid = child_pid(&p, "aprobe:0");
    ck_assert_int_ne(kid, first);
    /* The new process waits for the slow entry alone, for 20 s. */
    SL_TEST_ASSERT_EVENTUALLY(8000, beat_of(kid));
    SL_TEST_ASSERT_EVENTUALLY(8000, healthz_is(&p, 200, "ok\n"));
    ck_assert_msg(applied(slow_id) == 0 && file_count(p.log, "event=suspects_cleared") == 0,
                  "the beat and /healthz came only once the serial recovery was over; see %s",
                  p.log);
    /* And the recovery ends as before: the slow entry applied, the poison dead. */
    SL_TEST_ASSERT_EVENTUALLY(60000, applied(slow_id) == 1 && dead_len() == 1 &&
                                     group_backlog("aq", "ag") == 0);
    ck_assert_int_eq(dead_from(poison), 1);
    pool_stop(&p);
}
END_TEST

Suite *async_suite(void)
{
    Suite *s = suite_create("async");
    TCase *tc;

    tc = ops_server_case(s, "concurrency", 90);
    tcase_add_test(tc, test_async_concurrency_bound_respected);
    tcase_add_test(tc, test_async_default_concurrency_is_one);
    tcase_add_test(tc, test_async_dispositions);
    tcase_add_test(tc, test_async_idle_retry_at_defaults);
    tc = ops_server_case(s, "timeout", 90);
    tcase_add_test(tc, test_async_timeout_late_completion_discarded);
    tc = ops_server_case(s, "crash", 120);
    tcase_add_test(tc, test_async_shutdown_waits_for_all);
    tcase_add_test(tc, test_async_crash_dead_letters_only_the_poison);
    tc = ops_server_case(s, "serial", 120);
    tcase_add_test(tc, test_async_serial_recovery_beats_and_is_healthy);
    return s;
}
