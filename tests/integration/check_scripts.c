/* check_scripts.c -- the one path that runs the framework's Lua: every
 * script goes through EVALSHA (the supervisor's and the admin commands'
 * too, never a whole source with EVAL), reloads itself after NOSCRIPT,
 * and a Redis error names a line of the .lua file it came from. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <check.h>
#include "harness.h"
#include "internal.h"
#include "scripts.h"

static struct sl_test_redis srv;  /* one server per TCase */
static redisContext *rc;          /* the test's own connection */
static struct sl_sync *sc;        /* the framework's synchronous connection to it */
static struct sl_config *scfg;    /* its configuration */
static char *dir;                 /* temp dir of the current test */
static pid_t pool;                /* the `sluice run` under test, 0 when none */

/* Unchecked fixture: one redis-server for the TCase. */
static void server_up(void)
{
    ck_assert_int_eq(sl_test_redis_start(&srv, NULL), 0);
}

static void server_down(void)
{
    sl_test_redis_cleanup(&srv);
}

/* Checked fixture: a clean database, no script cached, fresh command
 * statistics, a temp dir. */
static void test_up(void)
{
    rc = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(rc);
    freeReplyObject(sl_test_cmd(rc, "FLUSHALL"));
    freeReplyObject(sl_test_cmd(rc, "SCRIPT FLUSH"));
    freeReplyObject(sl_test_cmd(rc, "CONFIG RESETSTAT"));
    dir = sl_test_tmpdir();
    pool = 0;
    scfg = sl__config_default();
    ck_assert_ptr_nonnull(scfg);
    scfg->redis.port = srv.port;
    snprintf(scfg->redis.host, sizeof(scfg->redis.host), "127.0.0.1");
    sc = sl__redis_connect(scfg, NULL, 0);
    ck_assert_ptr_nonnull(sc);
}

/* Stops the pool if a test left it running, then cleans up. */
static void test_down(void)
{
    int status;

    if (pool > 0) {
        sl_test_kill(pool, SIGTERM);
        if (!sl_test_wait_exit(pool, 10000, &status)) {
            sl_test_kill(pool, SIGKILL);
            sl_test_wait_exit(pool, 5000, &status);
        }
        pool = 0;
    }
    redisFree(rc);
    sl__sync_free(sc);
    sl__config_free(scfg);
    sl_test_rmtree(dir);
    free(dir);
}

/* Returns the `calls` of one command in INFO commandstats, 0 when absent. */
static long long calls(const char *cmd)
{
    char *info = sl_test_str(rc, "INFO commandstats"), needle[64];
    const char *p;
    long long n = 0;

    snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", cmd);
    if (info != NULL && (p = strstr(info, needle)) != NULL)
        n = atoll(p + strlen(needle));
    free(info);
    return n;
}

/* Returns the number (from 1) of the first line of the file at path that
 * contains needle, or -1. */
static int line_of(const char *path, const char *needle)
{
    char *text = sl_test_read_file(path), *line;
    int n = 0, found = -1;

    ck_assert_msg(text != NULL, "cannot read %s", path);
    /* strtok_r would skip empty lines: count them by hand. */
    for (line = text; line != NULL && found < 0; n++) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (strstr(line, needle) != NULL)
            found = n + 1;
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(text);
    return found;
}

/* Tells whether Redis's error text names line `line` of its script
 * ("user_script:N:" or "@user_script:N.", whatever the form). */
static int names_line(const char *err, int line)
{
    char want[32];
    const char *p = err;
    size_t n;

    n = (size_t)snprintf(want, sizeof(want), "user_script:%d", line);
    while ((p = strstr(p, want)) != NULL) {
        if (p[n] < '0' || p[n] > '9')
            return 1;
        p += n;
    }
    return 0;
}

/* sl__script_call loads a script it has no sha for, runs it with
 * EVALSHA, and after SCRIPT FLUSH loads it again and retries: no EVAL
 * ever. */
START_TEST(test_scripts_evalsha_and_noscript_reload)
{
    struct sl_lua *trim = sl__script(SL_SCRIPT_TRIM);
    const char *keys[] = { "nosuch" };
    redisReply *r;

    trim->sha[0] = '\0';
    r = sl__script_call(sc, trim, 1, keys, 0, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    ck_assert_int_eq((int)strlen(trim->sha), 40);

    freeReplyObject(sl_test_cmd(rc, "SCRIPT FLUSH"));
    r = sl__script_call(sc, trim, 1, keys, 0, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "after SCRIPT FLUSH: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "not an integer");
    freeReplyObject(r);
    ck_assert_int_eq(calls("eval"), 0);
    ck_assert_int_eq(calls("evalsha"), 3);   /* ok, NOSCRIPT, ok */
    ck_assert_int_eq(calls("script|load"), 2);
}
END_TEST

/* A Redis error names the line of the .lua file: claim.lua with a count
 * that is not a number fails at its XPENDING call, and Redis's
 * "user_script:N" is that line of framework/lua/claim.lua (the included
 * lib.lua takes one line). In an effect, line N is line N-2 of the body. */
START_TEST(test_scripts_error_lines_map_to_files)
{
    struct sl_lua *claim = sl__script(SL_SCRIPT_CLAIM);
    const char *keys[] = { "s", "att" };
    const char *args[] = { "g", "me", "any", "0", "-", "notanumber", "100" };
    static const struct sl_script bad = { .name = "bad", .body = "local x = 1\nerror('boom')\n" };
    struct sl_lua *eff;
    const char *ekeys[] = { "s", "att", "s:dead" };
    const char *eargs[] = { "g", "me", "1-1", "5", "10", "100", "ack", "", "0", "0" };
    redisReply *r;
    int line;

    freeReplyObject(sl_test_cmd(rc, "XADD s 1-1 type t data {}"));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE s g 0"));
    r = sl__script_call(sc, claim, 2, keys, 7, args);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    line = line_of("framework/lua/claim.lua", "'IDLE', MINIDLE, START, '+', COUNT)");
    ck_assert_int_gt(line, 0);
    ck_assert_msg(names_line(r->str, line), "wanted line %d in: %s", line, r->str);
    freeReplyObject(r);

    /* The effect fence needs the entry pending for "me". */
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP g me COUNT 1 STREAMS s >"));
    eff = sl__script_effect_new(&bad);
    ck_assert_ptr_nonnull(eff);
    r = sl__script_call(sc, eff, 3, ekeys, 10, eargs);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    ck_assert_msg(names_line(r->str, 4), "wanted line 2 + 2 in: %s", r->str);
    freeReplyObject(r);
    sl__script_effect_free(eff);
}
END_TEST

/* The supervisor (a crash recorded with fail.lua, renewals, trimming)
 * and the admin commands (dlq replay) run their scripts with EVALSHA,
 * like the workers: after a pool that dead-letters a crashing entry and
 * a replay, Redis has counted no EVAL at all. */
START_TEST(test_scripts_supervisor_and_admin_use_evalsha)
{
    char cfg[512], log[512], *id;
    const char *run[] = { sl_test_bin(), "run", "-c", cfg, NULL };
    const char *replay[] = { sl_test_bin(), "dlq", "replay", "s", "--all", "-c", cfg, NULL };
    char replog[512];
    pid_t pid;
    int status = -1;

    snprintf(cfg, sizeof(cfg), "%s/sluice.json", dir);
    snprintf(log, sizeof(log), "%s/sluice.log", dir);
    snprintf(replog, sizeof(replog), "%s/replay.log", dir);
    sl_test_write_file(cfg,
        "{ \"redis\": { \"url\": \"%s\" },\n"
        "  \"defaults\": { \"block_ms\": 200, \"heartbeat_ms\": 200, \"max_deliveries\": 2,\n"
        "                \"retry_backoff_ms\": [50, 100], \"reclaim_interval_ms\": 500 },\n"
        "  \"workers\": [ { \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\" } ],\n"
        "  \"metrics\": { \"listen\": null } }\n", srv.url);
    pool = sl_test_spawn(run, log);
    ck_assert_int_gt(pool, 0);
    id = sl_test_str(rc, "XADD s * type t data {\"crash\":true}");
    ck_assert_ptr_nonnull(id);
    free(id);
    SL_TEST_ASSERT_EVENTUALLY(30000, sl_test_int(rc, "XLEN s:dead") == 1);
    ck_assert_int_gt(calls("evalsha"), 0);
    sl_test_kill(pool, SIGTERM);
    ck_assert(sl_test_wait_exit(pool, 15000, &status));
    pool = 0;

    pid = sl_test_spawn(replay, replog);
    ck_assert_int_gt(pid, 0);
    ck_assert(sl_test_wait_exit(pid, 15000, &status));
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "replay failed: see %s", replog);
    ck_assert_int_eq(sl_test_int(rc, "XLEN s:dead"), 0);
    ck_assert_int_eq(calls("eval"), 0);
}
END_TEST

Suite *scripts_suite(void)
{
    Suite *s = suite_create("scripts");
    TCase *tc = tcase_create("evalsha");

    tcase_add_unchecked_fixture(tc, server_up, server_down);
    tcase_add_checked_fixture(tc, test_up, test_down);
    tcase_set_timeout(tc, 90.0 * sl_test_slow_factor());
    tcase_add_test(tc, test_scripts_evalsha_and_noscript_reload);
    tcase_add_test(tc, test_scripts_error_lines_map_to_files);
    tcase_add_test(tc, test_scripts_supervisor_and_admin_use_evalsha);
    suite_add_tcase(s, tc);
    return s;
}
