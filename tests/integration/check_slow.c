/* check_slow.c -- handlers that block for seconds, as a payment gateway
 * or a merchant's webhook makes them (issue 15), against a real
 * redis-server and the real binary. The `probe` handler's sleep_ms is the
 * slow handler; its trace lines say who handled what.
 *
 * Each test is one bullet of what a new user saw with such a handler: a
 * spurious reply timeout and reconnect, counters that lost the acks, a
 * stale heartbeat, one consumer hoarding a burst while its peer sat idle,
 * a reload stalled behind the handler with /healthz calling the busy child
 * down, and an operator's kill charged to the entry as a failed attempt.
 * The timings are the defaults unless a test says why not.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/wait.h>
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

/* Writes <tmp>/slow.json: the harness server, redis members `redis`
 * (or none), "defaults" members `defaults` (or the built-in ones), the
 * "workers" body, metrics on a free loopback port when `metrics`. */
static const char *slow_config(char *buf, size_t len, const char *redis, const char *defaults,
                               const char *workers, int metrics)
{
    struct sl_test_config c = { srv.url, redis, defaults, NULL, workers,
                                metrics ? "127.0.0.1:0" : NULL };

    snprintf(buf, len, "%s/slow.json", tmp);
    ck_assert_int_eq(sl_test_config_write(buf, &c), 0);
    return buf;
}

/* Starts `sluice run -c cfg` logging to <tmp>/<logname>, waits for
 * `children` event=running lines, and learns the metrics port when the
 * configuration has a listener. */
static void slow_start(struct pool *p, const char *cfg, const char *logname, int children,
                       int metrics)
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
    if (metrics) {
        p->port = (int)file_last_number(p->log, "event=metrics_listening addr=127.0.0.1:");
        ck_assert_int_gt(p->port, 0);
    }
}

/* XADDs one probe entry with the given data; its ID into id. */
static void add(const char *stream, const char *data, char *id)
{
    redisReply *r = sl_test_cmd(rc, "XADD %s * type probe data %s", stream, data);

    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    snprintf(id, IDLEN, "%s", r->str);
    freeReplyObject(r);
}

/* Returns how often the probe effect of entry id was applied. */
static long long applied(const char *id)
{
    char *s = sl_test_str(rc, "GET probe:count:%s", id);
    long long n = s != NULL ? atoll(s) : 0;

    free(s);
    return n;
}

/* Returns 1 when each of the n entries was applied exactly once and
 * nothing is left pending in the group. */
static int all_once(const char *stream, const char *group, char (*ids)[IDLEN], int n)
{
    int i;

    for (i = 0; i < n; i++)
        if (applied(ids[i]) != 1)
            return 0;
    return group_backlog(stream, group) == 0;
}

/* Returns wall-clock milliseconds. */
static long long wall_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Returns the position of the first line of log holding needle, -1 when
 * none does. */
static long pos_of(const char *log, const char *needle)
{
    char *text = sl_test_read_file(log);
    const char *at = text != NULL ? strstr(text, needle) : NULL;
    long pos = at != NULL ? (long)(at - text) : -1;

    free(text);
    return pos;
}

/* ------------------------------------------------------------------------
 * Blocking handlers are first-class
 * ------------------------------------------------------------------------ */

/* A batch of handlers that each block longer than command_timeout_ms:
 * no reply timeout, no reconnect, and /metrics counts every ack. The
 * commit of the first entry is sent before the second one's handler
 * blocks, so its deadline used to run out while the loop could not read
 * the reply. Fast entries first, so the reads have grown past one entry
 * when the slow ones come in one burst. command_timeout_ms is 1000
 * (instead of 5000) only to keep the test short. */
START_TEST(test_slow_blocking_handler_no_spurious_timeout)
{
    static char ids[23][IDLEN];
    char cfg[600];
    struct pool p;
    int i;

    slow_config(cfg, sizeof(cfg), "\"command_timeout_ms\": 1000", NULL,
                "{\"handler\": \"probe\", \"stream\": \"bq\", \"group\": \"bg\", \"processes\": 1}",
                1);
    slow_start(&p, cfg, "pool.log", 1, 1);
    for (i = 0; i < 20; i++)
        add("bq", "{\"effect\":true}", ids[i]);
    SL_TEST_ASSERT_EVENTUALLY(10000, all_once("bq", "bg", ids, 20));
    freeReplyObject(sl_test_cmd(rc, "MULTI"));
    for (i = 20; i < 23; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD bq * type probe data {\"effect\":true,\"sleep_ms\":1500}"));
    {
        redisReply *r = sl_test_cmd(rc, "EXEC");
        ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
        ck_assert_int_eq((int)r->elements, 3);
        for (i = 0; i < 3; i++)
            snprintf(ids[20 + i], IDLEN, "%s", r->element[i]->str);
        freeReplyObject(r);
    }
    SL_TEST_ASSERT_EVENTUALLY(30000, all_once("bq", "bg", ids, 23));
    {
        long long dl = sl_test_deadline(5000);
        double acked;
        while ((acked = scrape_value(&p, "sluice_acked_total", "probe", "bq", "bg")) != 23 &&
               sl_test_tick(dl))
            ;
        if (acked != 23)
            sl_test_log_tail(p.log, 40);
        ck_assert_msg(acked == 23, "acked_total %g after 23 acks (processed %g); see %s", acked,
                      scrape_value(&p, "sluice_processed_total", "probe", "bq", "bg"), p.log);
    }
    ck_assert(scrape_value(&p, "sluice_processed_total", "probe", "bq", "bg") == 23);
    ck_assert(scrape_value(&p, "sluice_redis_reconnects_total", "probe", "bq", "bg") == 0);
    ck_assert_msg(file_count(p.log, "event=redis_unavailable") == 0,
                  "a blocking handler was taken for a Redis outage; see %s", p.log);
    pool_stop(&p);
}
END_TEST

/* Returns the age in ms of the heartbeat of consumer, as `sluice workers`
 * computes it (now - last_beat), or -1 when there is none. */
static long long beat_age(const char *consumer)
{
    char *s = sl_test_str(rc, "HGET sluice:worker:%s last_beat", consumer);
    long long age = s != NULL ? wall_ms() - atoll(s) : -1;

    free(s);
    return age;
}

/* While a handler blocks for seconds, the child's heartbeat stays fresh
 * (default heartbeat_ms 1000: last_beat never older than the three beats
 * a key lives), so `sluice workers` shows a live worker, not one 30 s
 * silent. */
START_TEST(test_slow_heartbeat_fresh_while_handler_blocks)
{
    char cfg[600], id[IDLEN], data[96], consumer[320], *table;
    struct pool p;
    long long age, worst = 0, dl;

    slow_config(cfg, sizeof(cfg), NULL, NULL,
                "{\"handler\": \"probe\", \"stream\": \"hq\", \"group\": \"hg\", \"processes\": 1}",
                0);
    slow_start(&p, cfg, "pool.log", 1, 0);
    snprintf(consumer, sizeof(consumer), "%s:probe:0", host);
    snprintf(data, sizeof(data), "{\"effect\":true,\"sleep_ms\":%d}", 7000 * sl_test_slow_factor());
    SL_TEST_ASSERT_EVENTUALLY(5000, beat_age(consumer) >= 0);      /* its own first beat */
    add("hq", data, id);
    SL_TEST_ASSERT_EVENTUALLY(5000, group_backlog("hq", "hg") == 1 &&
                                    sl_test_int(rc, "XLEN hq") == 1);
    /* Watch for 5 s of the handler's 7: well past three beats. */
    dl = sl_test_deadline(5000);
    while (sl_test_tick(dl)) {
        age = beat_age(consumer);
        ck_assert_msg(age >= 0, "the heartbeat of %s is gone", consumer);
        if (age > worst)
            worst = age;
    }
    ck_assert_int_eq(applied(id), 0);        /* still in the handler */
    ck_assert_msg(worst < 3000, "last_beat was %lld ms old while the handler ran", worst);
    {
        const char *argv[] = { sl_test_bin(), "workers", "--json", "-c", cfg, NULL };
        struct out o = run(argv);
        ck_assert_int_eq(o.code, 0);
        table = o.out;
        ck_assert_msg(strstr(table, consumer) != NULL, "sluice workers lacks %s:\n%s", consumer,
                      table);
        out_free(&o);
    }
    SL_TEST_ASSERT_EVENTUALLY(15000, applied(id) == 1);
    pool_stop(&p);
}
END_TEST

/* A reload while one slot's handler blocks for seconds: the other slot
 * is replaced at once, not behind it; the busy slot is replaced as soon
 * as its handler returns, its new process starting only after the old
 * one exited (one live process per consumer name); /healthz answers 200
 * throughout, the busy child being busy, not down; nothing is charged. */
START_TEST(test_slow_reload_behind_busy_handler)
{
    static const char workers[] =
        "{\"handler\": \"probe\", \"stream\": \"rq\", \"group\": \"rg\", \"processes\": 1}, "
        "{\"handler\": \"noop\", \"stream\": \"nq\", \"group\": \"ng\", \"processes\": 1}";
    char cfg[600], id[IDLEN], data[96], exited[512], started[512];
    struct pool p;
    pid_t busy, idle, nbusy;
    int st, bad = 0;
    long long dl;
    char *body, firstbad[512] = "";

    slow_config(cfg, sizeof(cfg), NULL, NULL, workers, 1);
    slow_start(&p, cfg, "pool.log", 2, 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    busy = child_pid(&p, "probe:0");
    idle = child_pid(&p, "noop:0");
    snprintf(data, sizeof(data), "{\"effect\":true,\"sleep_ms\":%d}", 6000 * sl_test_slow_factor());
    add("rq", data, id);
    SL_TEST_ASSERT_EVENTUALLY(5000, group_backlog("rq", "rg") == 1 && sl_test_int(rc, "XLEN rq") == 1);
    slow_config(cfg, sizeof(cfg), NULL, NULL, workers, 1);
    sl_test_kill(p.pid, SIGHUP);

    /* The idle slot is replaced while the busy handler still runs. */
    SL_TEST_ASSERT_EVENTUALLY(4000, child_pid(&p, "noop:0") != idle &&
                                    file_count(p.log, "event=running") >= 3);
    ck_assert_int_eq(applied(id), 0);
    ck_assert_int_eq(child_pid(&p, "probe:0"), busy);

    /* /healthz stays 200 until the reload is done. */
    dl = sl_test_deadline(30000);
    while (file_count(p.log, "event=reloaded ") == 0) {
        ck_assert_msg(sl_test_tick(dl), "no event=reloaded within 30 s; see %s", p.log);
        body = healthz(&p, &st);
        if (st != 200 && bad++ == 0)
            snprintf(firstbad, sizeof(firstbad), "%d %s", st, body);
        free(body);
    }
    ck_assert_msg(bad == 0, "/healthz answered %d time(s) not 200 during the reload, first: %s",
                  bad, firstbad);
    ck_assert_int_eq(applied(id), 1);
    nbusy = child_pid(&p, "probe:0");
    ck_assert_int_ne(nbusy, busy);
    snprintf(exited, sizeof(exited), "event=child_exited consumer=%s:probe:0 child=%ld status=0",
             host, (long)busy);
    snprintf(started, sizeof(started), "event=child_started consumer=%s:probe:0 child=%ld",
             host, (long)nbusy);
    ck_assert_int_ge(pos_of(p.log, exited), 0);
    ck_assert_int_lt(pos_of(p.log, exited), pos_of(p.log, started));
    ck_assert_int_eq(file_count(p.log, "event=attempt_failed"), 0);
    ck_assert_int_eq(group_backlog("rq", "rg"), 0);
    pool_stop(&p);
}
END_TEST

/* A SIGTERM whose shutdown_timeout_ms runs out kills the busy child: the
 * kill is logged as the operator's (child_killed reason=shutdown_timeout),
 * not as a crash, and the entry is not charged: the next pool handles it
 * as its first attempt. shutdown_timeout_ms is short only to keep the
 * test short. */
START_TEST(test_slow_shutdown_kill_not_charged)
{
    char cfg[600], id[IDLEN], want[200];
    struct pool p, p2;
    int status;

    slow_config(cfg, sizeof(cfg), NULL, "\"shutdown_timeout_ms\": 700",
                "{\"handler\": \"probe\", \"stream\": \"kq\", \"group\": \"kg\", \"processes\": 1}",
                0);
    slow_start(&p, cfg, "pool.log", 1, 0);
    add("kq", "{\"effect\":true,\"trace\":true,\"sleep_ms\":4000}", id);
    SL_TEST_ASSERT_EVENTUALLY(5000, file_count(p.log, "event=probe_call") == 1);
    sl_test_kill(p.pid, SIGTERM);
    ck_assert(sl_test_wait_exit(p.pid, 10000, &status));
    untrack(p.pid);
    ck_assert_msg(file_count(p.log, "event=attempt_failed") == 0,
                  "the operator's kill was charged to the entry; see %s", p.log);
    ck_assert_msg(file_count(p.log, "event=child_killed") == 1 &&
                  file_count(p.log, "reason=shutdown_timeout") >= 1,
                  "no child_killed reason=shutdown_timeout; see %s", p.log);
    ck_assert_int_eq(applied(id), 0);

    slow_config(cfg, sizeof(cfg), NULL, NULL,
                "{\"handler\": \"probe\", \"stream\": \"kq\", \"group\": \"kg\", \"processes\": 1}",
                0);
    slow_start(&p2, cfg, "pool2.log", 1, 0);
    SL_TEST_ASSERT_EVENTUALLY(20000, applied(id) == 1);
    snprintf(want, sizeof(want), "event=probe_call id=%s ", id);
    ck_assert_int_eq(file_count(p2.log, want), 1);
    ck_assert_msg(file_count(p2.log, "attempts=0 ") == 1,
                  "the next attempt was not the first; see %s", p2.log);
    pool_stop(&p2);
}
END_TEST

/* Returns the mono_ms of the probe_call trace line of entry id whose
 * attempts are `attempts`, or -1 when there is none. */
static long long call_ms(const char *log, const char *id, int attempts)
{
    char needle[200];
    char *text = sl_test_read_file(log), *at;
    long long ms = -1;

    snprintf(needle, sizeof(needle), "event=probe_call id=%s ", id);
    for (at = text; at != NULL && (at = strstr(at, needle)) != NULL; at++) {
        char *eol = strchr(at, '\n'), *a = strstr(at, " attempts="), *m = strstr(at, " mono_ms=");
        if (a != NULL && m != NULL && (eol == NULL || m < eol) && atoi(a + 10) == attempts) {
            ms = atoll(m + 9);
            break;
        }
    }
    free(text);
    return ms;
}

/* A handler that retries with sl_ctx_retry_after(3000) (an HTTP
 * service's Retry-After) is called again no sooner than 3 s later,
 * although the default backoff would retry after 1 s; the next attempt
 * succeeds and the entry is applied once. A delay out of range is
 * refused with SL_EINVAL. */
START_TEST(test_slow_retry_after_is_honoured)
{
    char cfg[600], id[IDLEN];
    struct pool p;
    long long t0, t1;

    ck_assert_int_eq(sl_ctx_retry_after(NULL, 10), SL_EINVAL);
    slow_config(cfg, sizeof(cfg), NULL, NULL,
                "{\"handler\": \"probe\", \"stream\": \"aq\", \"group\": \"ag\", \"processes\": 1}",
                0);
    slow_start(&p, cfg, "pool.log", 1, 0);
    add("aq", "{\"effect\":true,\"trace\":true,\"retry\":1,\"retry_after_ms\":3000}", id);
    SL_TEST_ASSERT_EVENTUALLY(20000, applied(id) == 1);
    t0 = call_ms(p.log, id, 0);
    t1 = call_ms(p.log, id, 1);
    ck_assert_msg(t0 > 0 && t1 > 0, "no trace of both attempts; see %s", p.log);
    fprintf(stderr, "slow: retry after 3000 ms came %lld ms later\n", t1 - t0);
    ck_assert_msg(t1 - t0 >= 3000, "the retry came %lld ms after the first attempt", t1 - t0);
    ck_assert_int_eq(group_backlog("aq", "ag"), 0);
    pool_stop(&p);
}
END_TEST

/* ------------------------------------------------------------------------
 * No hoarding
 * ------------------------------------------------------------------------ */

/* 10 entries of 1.5 s on 2 processes with the default batch (64), after
 * the pool sat idle: each consumer handles 4 to 6, instead of one taking
 * all 10 while its peer waits. The wall time is printed, not asserted.
 * block_ms is 200 (instead of 2000) so that the idle reads that grow the
 * read count happen in a short wait. */
START_TEST(test_slow_prefetch_spreads_slow_entries)
{
    static char ids[10][IDLEN];
    char cfg[600], c0[400], c1[400];
    struct pool p;
    long long t0;
    int i, n0, n1;

    slow_config(cfg, sizeof(cfg), NULL, "\"block_ms\": 200",
                "{\"handler\": \"probe\", \"stream\": \"pq\", \"group\": \"pg\", \"processes\": 2}",
                0);
    slow_start(&p, cfg, "pool.log", 2, 0);
    usleep(1500 * 1000);            /* idle: a few empty reads (setup, not an assertion) */
    t0 = sl_test_now_ms();
    for (i = 0; i < 10; i++)
        add("pq", "{\"effect\":true,\"trace\":true,\"sleep_ms\":1500}", ids[i]);
    SL_TEST_ASSERT_EVENTUALLY(40000, all_once("pq", "pg", ids, 10));
    snprintf(c0, sizeof(c0), " consumer=%s:probe:0 pid=", host);
    snprintf(c1, sizeof(c1), " consumer=%s:probe:1 pid=", host);
    n0 = file_count(p.log, c0);
    n1 = file_count(p.log, c1);
    fprintf(stderr, "slow: 10 x 1.5 s on 2 processes: %d + %d entries, wall %lld ms\n", n0, n1,
            sl_test_now_ms() - t0);
    ck_assert_int_eq(n0 + n1, 10);
    ck_assert_msg(n0 >= 4 && n0 <= 6 && n1 >= 4 && n1 <= 6,
                  "split %d/%d: one consumer hoarded entries its peer could run", n0, n1);
    pool_stop(&p);
}
END_TEST

/* Fills `stream` with n noop entries, creates its group at 0, and turns
 * on a SLOWLOG of every command (it keeps each command's arguments). */
static void backlog_for_reads(const char *stream, const char *group, int n)
{
    int i;

    for (i = 0; i < n; i++)
        redisAppendCommand(rc, "XADD %s * type bench.noop data {}", stream);
    for (i = 0; i < n; i++) {
        redisReply *r = NULL;
        ck_assert_int_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
        ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
    }
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE %s %s 0", stream, group));
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET slowlog-max-len 100000"));
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET slowlog-log-slower-than 0"));
    freeReplyObject(sl_test_cmd(rc, "SLOWLOG RESET"));
}

/* Returns the largest COUNT of the XREADGROUPs on `stream` in the
 * SLOWLOG, and turns the SLOWLOG back off. */
static long long largest_read(const char *stream)
{
    redisReply *r = sl_test_cmd(rc, "SLOWLOG GET -1");
    long long most = 0;
    size_t i, j;

    freeReplyObject(sl_test_cmd(rc, "CONFIG SET slowlog-log-slower-than 10000"));
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    for (i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *args;
        int ours = 0;
        long long count = 0;

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 4 ||
            e->element[3]->type != REDIS_REPLY_ARRAY)
            continue;
        args = e->element[3];
        if (args->elements < 1 || strcasecmp(args->element[0]->str, "XREADGROUP") != 0)
            continue;
        for (j = 0; j + 1 < args->elements; j++) {
            if (strcasecmp(args->element[j]->str, "COUNT") == 0)
                count = atoll(args->element[j + 1]->str);
            if (strcmp(args->element[j]->str, stream) == 0)
                ours = 1;
        }
        if (ours && count > most)
            most = count;
    }
    freeReplyObject(r);
    return most;
}

/* With `batch` left at its default, the read size grows past 64 while
 * every read comes back full (a deep backlog of a fast handler), so one
 * process reads as a tuned client would; an explicit batch stays the
 * largest COUNT, even when it is the default's value. */
START_TEST(test_slow_default_read_grows_on_backlog)
{
    char cfg[600];
    struct pool p;
    long long most;

    backlog_for_reads("gq", "gg", 5000);
    slow_config(cfg, sizeof(cfg), NULL, NULL,
                "{\"handler\": \"noop\", \"stream\": \"gq\", \"group\": \"gg\", \"processes\": 1}",
                0);
    slow_start(&p, cfg, "grow.log", 1, 0);
    SL_TEST_ASSERT_EVENTUALLY(60000, group_backlog("gq", "gg") == 0);
    pool_stop(&p);
    most = largest_read("gq");
    fprintf(stderr, "slow: default batch, 5000-entry backlog: largest COUNT %lld\n", most);
    ck_assert_msg(most > 64, "the default read size stayed at %lld on a deep backlog", most);

    backlog_for_reads("fq", "fg", 5000);
    slow_config(cfg, sizeof(cfg), NULL, "\"batch\": 64",
                "{\"handler\": \"noop\", \"stream\": \"fq\", \"group\": \"fg\", \"processes\": 1}",
                0);
    slow_start(&p, cfg, "fixed.log", 1, 0);
    SL_TEST_ASSERT_EVENTUALLY(60000, group_backlog("fq", "fg") == 0);
    pool_stop(&p);
    most = largest_read("fq");
    ck_assert_msg(most == 64, "an explicit batch of 64 read up to %lld at a time", most);
}
END_TEST

Suite *slow_suite(void)
{
    Suite *s = suite_create("slow");
    TCase *tc;

    tc = ops_server_case(s, "blocking", 90);
    tcase_add_test(tc, test_slow_blocking_handler_no_spurious_timeout);
    tcase_add_test(tc, test_slow_heartbeat_fresh_while_handler_blocks);
    tcase_add_test(tc, test_slow_reload_behind_busy_handler);
    tcase_add_test(tc, test_slow_shutdown_kill_not_charged);
    tcase_add_test(tc, test_slow_retry_after_is_honoured);
    tc = ops_server_case(s, "prefetch", 90);
    tcase_add_test(tc, test_slow_prefetch_spreads_slow_entries);
    tcase_add_test(tc, test_slow_default_read_grows_on_backlog);
    return s;
}
