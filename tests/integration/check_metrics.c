/* check_metrics.c -- the supervisor's /metrics and /healthz: counters that move with the
 * work, gauges, health as children and Redis come and go. Every scrape is
 * checked by the text-format checker of tests/support/prom.c (itself
 * tested here on broken texts) and by promtool when installed.
 *
 * Split out of the former check_ops.c; the shared helpers and fixtures
 * are ops.c's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <hiredis.h>
#include <jansson.h>

#include "sluice.h"
#include "harness.h"
#include "ops.h"
#include "config.h"
#include "sut.h"



/* ---------------------------------------------------------------------
 * /metrics and /healthz
 * ------------------------------------------------------------------ */

/* The checker itself: a valid exposition passes, and each broken one is
 * refused for the right reason, so a passing scrape means something. */
START_TEST(test_metrics_checker_rejects_bad_text)
{
    static const char good[] =
        "# HELP a_total A counter.\n# TYPE a_total counter\n"
        "a_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3\na_total{x=\"2\"} 0 1700000000000\n"
        "# HELP h Durations.\n# TYPE h histogram\n"
        "h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"1e+00\"} 2\nh_bucket{le=\"+Inf\"} 3\n"
        "h_sum 1.5\nh_count 3\n"
        "# HELP g A gauge.\n# TYPE g gauge\ng -1.5e-3\ng{a=\"b\"} NaN\n";
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        { "# HELP a x\n# TYPE a gauge\na 1", "newline" },
        { "a 1\n# HELP a x\n# TYPE a gauge\n", "HELP or TYPE" },
        { "# HELP a x\n# TYPE a gauge\n# HELP b y\n# TYPE b gauge\na 1\nb 2\n", "contiguous" },
        { "# HELP a x\n# TYPE a gauge\na 1\n# HELP b y\n# TYPE b gauge\nb 1\na{l=\"2\"} 2\n", "contiguous" },
        { "# HELP a x\n# TYPE a gauge\n# TYPE a gauge\na 1\n", "second TYPE" },
        { "# HELP a x\n# TYPE a thing\na 1\n", "unknown type" },
        { "# HELP 1a x\n# TYPE 1a gauge\n1a 1\n", "bad name" },
        { "# HELP a x\n# TYPE a gauge\na{1x=\"v\"} 1\n", "label name" },
        { "# HELP a x\n# TYPE a gauge\na{__x=\"v\"} 1\n", "label name" },
        { "# HELP a x\n# TYPE a gauge\na{x=v} 1\n", "not quoted" },
        { "# HELP a x\n# TYPE a gauge\na{x=\"\\q\"} 1\n", "escape" },
        { "# HELP a x\n# TYPE a gauge\na{x=\"v} 1\n", "unterminated" },
        { "# HELP a x\n# TYPE a gauge\na{x=\"v\",x=\"w\"} 1\n", "twice" },
        { "# HELP a x\n# TYPE a gauge\na 1,5\n", "bad value" },
        { "# HELP a x\n# TYPE a gauge\na one\n", "bad value" },
        { "# HELP a x\n# TYPE a gauge\na 1 12.5\n", "timestamp" },
        { "# HELP a x\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n", "twice" },
        { "# HELP a x\n# TYPE a counter\na -1\n", "counter" },
        { "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"2\"} 4\n"
          "h_bucket{le=\"+Inf\"} 5\nh_sum 1\nh_count 5\n", "cumulative" },
        { "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
          "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "increasing" },
        { "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
          "h_sum 1\nh_count 3\n", "_count" },
        { "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "+Inf" },
        { "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", "_sum" },
        { "# HELP h x\n# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n", "without le" },
    };
    char why[512];
    size_t i;

    why[0] = '\0';
    ck_assert_msg(sl_test_prom_check(good, why, sizeof(why)) == 0, "valid text refused: %s", why);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        ck_assert_msg(sl_test_prom_check(bad[i].text, why, sizeof(why)) < 0, "case %zu accepted:\n%s", i,
                      bad[i].text);
        ck_assert_msg(strstr(why, bad[i].why) != NULL, "case %zu: \"%s\" does not say \"%s\"", i,
                      why, bad[i].why);
    }
}
END_TEST

/* The counters move with the work, exactly: 40 entries through two noop
 * children are 40 processed, 40 acked, 40 handler observations; a probe
 * entry retried once and one dead-lettered are 3 processed, 1 acked,
 * 1 retried, 1 dead-lettered, 2 failed. Gauges: children up, nothing
 * pending or lagging once done. Every scrape is valid text format. */
START_TEST(test_metrics_counters_move)
{
    struct pool p;
    char *text;
    int i;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"m\", \"group\": \"mg\", \"processes\": 2},"
                   "{\"handler\": \"probe\", \"stream\": \"pr\", \"group\": \"pg\"}", "", 1, 3);
    text = scrape(&p);
    ck_assert(sl_test_prom_sample(text, "sluice_processed_total{worker=\"noop\",stream=\"m\",group=\"mg\"}") == 0);
    ck_assert(sl_test_prom_sample(text, "sluice_children_up{worker=\"noop\",stream=\"m\",group=\"mg\"}") == 2);
    ck_assert(sl_test_prom_sample(text, "sluice_children_up{worker=\"probe\",stream=\"pr\",group=\"pg\"}") == 1);
    ck_assert(sl_test_prom_sample(text, "sluice_pending{worker=\"noop\",stream=\"m\",group=\"mg\"}") == 0);
    ck_assert(sl_test_prom_sample(text, "sluice_lag{worker=\"noop\",stream=\"m\",group=\"mg\"}") == 0);
    free(text);

    for (i = 0; i < 40; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD m * type t data {}"));
    freeReplyObject(sl_test_cmd(rc, "XADD pr * type t data {\"retry\":1}"));
    freeReplyObject(sl_test_cmd(rc, "XADD pr * type t data {\"dead\":\"bad_thing\"}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, scrape_value(&p, "sluice_acked_total", "noop", "m", "mg") == 40);
    SL_TEST_ASSERT_EVENTUALLY(10000, scrape_value(&p, "sluice_acked_total", "probe", "pr", "pg") == 1 &&
                                     group_backlog("pr", "pg") == 0);
    text = scrape(&p);
#define NOOP "{worker=\"noop\",stream=\"m\",group=\"mg\"}"
#define PROBE "{worker=\"probe\",stream=\"pr\",group=\"pg\"}"
    ck_assert(sl_test_prom_sample(text, "sluice_processed_total" NOOP) == 40);
    ck_assert(sl_test_prom_sample(text, "sluice_acked_total" NOOP) == 40);
    ck_assert(sl_test_prom_sample(text, "sluice_retried_total" NOOP) == 0);
    ck_assert(sl_test_prom_sample(text, "sluice_failed_total" NOOP) == 0);
    ck_assert(sl_test_prom_sample(text, "sluice_dead_lettered_total" NOOP) == 0);
    ck_assert(sl_test_prom_sample(text, "sluice_handler_duration_seconds_count" NOOP) == 40);
    ck_assert(sl_test_prom_sample(text, "sluice_handler_duration_seconds_bucket{worker=\"noop\",stream=\"m\","
                                 "group=\"mg\",le=\"+Inf\"}") == 40);
    ck_assert(sl_test_prom_sample(text, "sluice_handler_duration_seconds_sum" NOOP) >= 0);
    ck_assert(sl_test_prom_sample(text, "sluice_pending" NOOP) == 0);
    ck_assert(sl_test_prom_sample(text, "sluice_lag" NOOP) == 0);
    ck_assert(sl_test_prom_sample(text, "sluice_processed_total" PROBE) == 3);
    ck_assert(sl_test_prom_sample(text, "sluice_acked_total" PROBE) == 1);
    ck_assert(sl_test_prom_sample(text, "sluice_retried_total" PROBE) == 1);
    ck_assert(sl_test_prom_sample(text, "sluice_dead_lettered_total" PROBE) == 1);
    ck_assert(sl_test_prom_sample(text, "sluice_failed_total" PROBE) == 2);
    ck_assert(sl_test_prom_sample(text, "sluice_handler_duration_seconds_count" PROBE) == 3);
    ck_assert(sl_test_prom_sample(text, "sluice_effects_discarded_total" PROBE) == 0);
    ck_assert(sl_test_prom_sample(text, "sluice_redis_reconnects_total" PROBE) == 0);
    ck_assert(sl_test_prom_sample(text, "sluice_pending" PROBE) == 0);
#undef NOOP
#undef PROBE
    free(text);
    ck_assert_int_eq(sl_test_int(rc, "XLEN pr:dead"), 1);
    pool_stop(&p);
}
END_TEST

START_TEST(test_metrics_counters_survive_restarts)
{
    struct pool p;
    pid_t kid;
    int i;

    /* A restarted child starts counting from zero in its shared slot; the
     * supervisor carries what the dead one counted, so a Prometheus
     * counter never goes backwards (which rate() would read as a reset). */
    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"m\", \"group\": \"mg\", \"processes\": 1}",
               "", 1, 1);
    for (i = 0; i < 25; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD m * type t data {}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, scrape_value(&p, "sluice_processed_total", "noop", "m", "mg") == 25);
    kid = child_pid(&p, "noop:0");
    ck_assert_int_gt(kid, 0);
    sl_test_kill(kid, SIGKILL);
    SL_TEST_ASSERT_EVENTUALLY(10000, child_pid(&p, "noop:0") != kid && child_pid(&p, "noop:0") > 0);
    ck_assert(scrape_value(&p, "sluice_processed_total", "noop", "m", "mg") == 25);
    for (i = 0; i < 5; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD m * type t data {}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, scrape_value(&p, "sluice_processed_total", "noop", "m", "mg") == 30);
    ck_assert(scrape_value(&p, "sluice_acked_total", "noop", "m", "mg") == 30);
    pool_stop(&p);
}
END_TEST



/* Returns 1 when a scrape of p has no sample of series. */
static int series_absent(const struct pool *p, const char *series)
{
    char *t = scrape(p);
    int gone = sl_test_prom_sample(t, series) == -1;

    free(t);
    return gone;
}

/* The metrics an operator alerts on besides the counters, each read by
 * the text-format parser: dead letters per stream and code (and they
 * follow a purge), the idle time of the oldest pending entry per group,
 * sluice_redis_up, sluice_build_info, and the reloads: a refused SIGHUP
 * counts in sluice_reload_failures_total and leaves the time of the last
 * good one (the start) alone; a good one moves it. */
START_TEST(test_metrics_operator_gauges)
{
    struct pool p;
    char *text, series[256];
    double t_start, t_now;
    int i;

    pool_start(&p, "{\"handler\": \"probe\", \"stream\": \"pr\", \"group\": \"pg\"}", "", 1, 1);
    for (i = 0; i < 3; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD pr * type t data {\"dead\":\"code_a\"}"));
    freeReplyObject(sl_test_cmd(rc, "XADD pr * type t data {\"dead\":\"code_b\"}"));
    freeReplyObject(sl_test_cmd(rc, "XADD pr * type t data [1]"));
#define DL(code) "sluice_dead_letters{stream=\"pr\",code=\"" code "\"}"
    SL_TEST_ASSERT_EVENTUALLY(10000, group_backlog("pr", "pg") == 0);
    text = scrape(&p);
    ck_assert_msg(sl_test_prom_sample(text, DL("code_a")) == 3 &&
                  sl_test_prom_sample(text, DL("code_b")) == 1 &&
                  sl_test_prom_sample(text, DL("invalid_schema")) == 1, "%s", text);
    ck_assert(sl_test_prom_sample(text, "sluice_redis_up") == 1);
    snprintf(series, sizeof series, "sluice_build_info{version=\"%s\",abi=\"%d\"}", SL_VERSION,
             SL_ABI_VERSION);
    ck_assert_msg(sl_test_prom_sample(text, series) == 1, "%s", text);
    ck_assert(sl_test_prom_sample(text, "sluice_oldest_pending_age_seconds"
                                        "{worker=\"probe\",stream=\"pr\",group=\"pg\"}") == 0);
    ck_assert(sl_test_prom_sample(text, "sluice_reload_failures_total") == 0);
    t_start = sl_test_prom_sample(text, "sluice_last_reload_success_timestamp_seconds");
    t_now = (double)time(NULL);
    ck_assert_msg(t_start > t_now - 120 && t_start <= t_now + 1, "start %f now %f", t_start, t_now);
    free(text);

    /* Purging one code: its series goes, the others stay exact. */
    {
        const char *purge[] = { sl_test_bin(), "dlq", "purge", "pr", "--code", "code_a",
                                "--redis", srv.url, NULL };
        struct out o = run(purge);
        ck_assert_msg(o.code == 0, "purge: %s", o.err);
        out_free(&o);
    }
    SL_TEST_ASSERT_EVENTUALLY(5000, series_absent(&p, DL("code_a")));
    text = scrape(&p);
    ck_assert(sl_test_prom_sample(text, DL("code_b")) == 1);
    ck_assert(sl_test_prom_sample(text, DL("invalid_schema")) == 1);
    free(text);
#undef DL

    /* An entry in a handler for 5 s: the oldest pending age grows (by
     * the entry's ID, which the lease renewals do not reset). */
    freeReplyObject(sl_test_cmd(rc, "XADD pr * type t data {\"sleep_ms\":5000}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, scrape_value(&p, "sluice_oldest_pending_age_seconds", "probe",
                                                  "pr", "pg") >= 1.0);
    SL_TEST_ASSERT_EVENTUALLY(20000, group_backlog("pr", "pg") == 0);

    /* A bad configuration: refused, counted; the time stays the start's. */
    {
        FILE *f = fopen(p.cfg, "w");
        ck_assert_ptr_nonnull(f);
        fputs("{ not json", f);
        fclose(f);
    }
    sl_test_kill(p.pid, SIGHUP);
    SL_TEST_ASSERT_EVENTUALLY(5000, file_count(p.log, "event=reload_failed") == 1);
    text = scrape(&p);
    ck_assert(sl_test_prom_sample(text, "sluice_reload_failures_total") == 1);
    ck_assert(sl_test_prom_sample(text, "sluice_last_reload_success_timestamp_seconds") == t_start);
    free(text);
    pool_stop(&p);
}
END_TEST

/* A child that was SIGKILLed and not yet restarted makes /healthz 503
 * "child <name> is down"; once restarted it is 200 "ok" again. The down
 * window is the restart backoff (100 ms, doubling with each quick
 * crash); a window the poll missed is tried again with a longer one. */
START_TEST(test_metrics_healthz_child_killed)
{
    struct pool p;
    char down[400];
    int seen = 0, kills;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hk\", \"group\": \"hg\"}", "", 1, 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    snprintf(down, sizeof(down), "child %s:noop:0 is down\n", host);
    for (kills = 0; kills < 6 && !seen; kills++) {
        pid_t child = child_pid(&p, "noop:0");
        long long dl = sl_test_deadline(3000);
        ck_assert_int_gt(child, 0);
        sl_test_kill(child, SIGKILL);
        while (!seen && child_pid(&p, "noop:0") == child) {
            seen = healthz_is(&p, 503, down);
            if (!sl_test_tick(dl))
                break;
        }
        /* Restarted before a poll saw it: kill the new one (a longer backoff). */
        SL_TEST_ASSERT_EVENTUALLY(10000, child_pid(&p, "noop:0") != child);
    }
    ck_assert_msg(seen, "/healthz never said \"%s\" after %d kills", down, kills);
    SL_TEST_ASSERT_EVENTUALLY(20000, healthz_is(&p, 200, "ok\n"));
    pool_stop(&p);
}
END_TEST

/* A SIGSTOPped child keeps its pid but handles nothing: /healthz is 503
 * "child <name> is stopped" and the children_up gauge leaves it out;
 * after SIGCONT both recover. (Before, a stopped child counted as up.) */
START_TEST(test_metrics_healthz_child_stopped)
{
    struct pool p;
    char stopped[400];
    pid_t child;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hs\", \"group\": \"hg\", \"processes\": 2}",
               "", 1, 2);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    ck_assert(scrape_value(&p, "sluice_children_up", "noop", "hs", "hg") == 2);
    child = child_pid(&p, "noop:1");
    ck_assert_int_gt(child, 0);
    sl_test_kill(child, SIGSTOP);
    snprintf(stopped, sizeof(stopped), "child %s:noop:1 is stopped\n", host);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 503, stopped));
    ck_assert(scrape_value(&p, "sluice_children_up", "noop", "hs", "hg") == 1);
    sl_test_kill(child, SIGCONT);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    ck_assert(scrape_value(&p, "sluice_children_up", "noop", "hs", "hg") == 2);
    ck_assert_int_eq(child_pid(&p, "noop:1"), child);   /* the same process, not a restart */
    pool_stop(&p);
}
END_TEST

/* Returns 1 when /healthz answers 503 with a reason about Redis. */
static int healthz_redis_down(const struct pool *p)
{
    int st;
    char *b = healthz(p, &st);
    int ok = st == 503 && strstr(b, "redis") != NULL && strchr(b, '\n') == b + strlen(b) - 1;

    free(b);
    return ok;
}

/* Redis killed: /healthz says 503 with a one-line reason about Redis;
 * /metrics still answers at once with valid text, the counters, and no
 * pending/lag samples (unknown, not zero). Redis back: 200 "ok". */
START_TEST(test_metrics_healthz_redis_down)
{
    struct pool p;
    struct sl_test_http h;
    long long t0;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hr\", \"group\": \"hg\"}", "", 1, 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    sl_test_redis_kill(&srv);
    SL_TEST_ASSERT_EVENTUALLY(10000, healthz_redis_down(&p));
    t0 = sl_test_now_ms();
    h = sl_test_http_get(p.port, "/metrics");
    ck_assert_int_eq(h.status, 200);
    ck_assert_msg(sl_test_now_ms() - t0 < 3000LL * sl_test_slow_factor(), "a scrape took %lld ms",
                  sl_test_now_ms() - t0);
    assert_exposition(h.body);
    ck_assert(sl_test_prom_sample(h.body, "sluice_processed_total{worker=\"noop\",stream=\"hr\",group=\"hg\"}") == 0);
    ck_assert(sl_test_prom_sample(h.body, "sluice_pending{worker=\"noop\",stream=\"hr\",group=\"hg\"}") < 0);
    ck_assert(sl_test_prom_sample(h.body, "sluice_lag{worker=\"noop\",stream=\"hr\",group=\"hg\"}") < 0);
    sl_test_http_free(&h);
    ck_assert_int_eq(sl_test_redis_restart(&srv), 0);
    SL_TEST_ASSERT_EVENTUALLY(20000, healthz_is(&p, 200, "ok\n"));
    pool_stop(&p);
}
END_TEST

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc;

    tc = ops_server_case(s, "metrics", 60);
    tcase_add_test(tc, test_metrics_checker_rejects_bad_text);
    tcase_add_test(tc, test_metrics_counters_move);
    tcase_add_test(tc, test_metrics_counters_survive_restarts);
    tcase_add_test(tc, test_metrics_operator_gauges);
    tcase_add_test(tc, test_metrics_healthz_child_killed);
    tcase_add_test(tc, test_metrics_healthz_child_stopped);

    tc = tcase_create("redis_down");
    tcase_add_unchecked_fixture(tc, server_up, server_down);
    tcase_add_checked_fixture(tc, test_up, test_down);
    tcase_set_timeout(tc, 60.0 * sl_test_slow_factor());
    tcase_add_test(tc, test_metrics_healthz_redis_down);
    suite_add_tcase(s, tc);
    return s;
}
