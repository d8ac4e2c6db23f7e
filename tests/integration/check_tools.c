/* check_tools.c -- the shell tools of scripts/: shellcheck clean, enqueue.sh and
 * pending.sh against a real Redis, start-pool.sh.
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
 * scripts/
 * ------------------------------------------------------------------ */

/* The three scripts pass shellcheck as POSIX sh. */
START_TEST(test_tools_shellcheck)
{
    const char *argv[] = { "shellcheck", "-s", "sh", "scripts/start-pool.sh", "scripts/enqueue.sh",
                           "scripts/pending.sh", NULL };
    struct out o;

    if (!have("shellcheck")) {
        fprintf(stderr, "check_tools: SKIP test_tools_shellcheck: shellcheck not installed "
                        "(Debian package shellcheck)\n");
        return;
    }
    o = run(argv);
    ck_assert_msg(o.code == 0, "shellcheck: %.3000s%.3000s", o.out, o.err);
    out_free(&o);
}
END_TEST

/* Returns 1 when s is a stream entry ID followed by a newline, exactly. */
static int is_id_line(const char *s)
{
    unsigned long long a, b;
    int n = 0;

    return sscanf(s, "%llu-%llu\n%n", &a, &b, &n) == 2 && n == (int)strlen(s) && s[n - 1] == '\n';
}

/* enqueue.sh adds one entry (type and data exactly as given) that the
 * pool processes: the probe handler applies its effect once. The URL
 * comes from -u or from REDIS_URL. A data that is not an object is
 * refused with 2 and adds nothing. */
START_TEST(test_tools_enqueue_processed)
{
    const char *one[] = { "scripts/enqueue.sh", "-u", srv.url, "sh", "probe.test", "{\"effect\": true}", NULL };
    const char *two[] = { "scripts/enqueue.sh", "sh", "probe.test", "{\"effect\": true, \"n\": 2}", NULL };
    const char *bad[] = { "scripts/enqueue.sh", "-u", srv.url, "sh", "probe.test", "[1, 2]", NULL };
    char env_url[200];
    const char *env[] = { env_url, "-SLUICE_REDIS_URL", NULL };
    struct pool p;
    struct out o;
    redisReply *r;
    char id1[64], id2[64];

    snprintf(env_url, sizeof(env_url), "REDIS_URL=%s", srv.url);
    /* "trim": "none": the housekeeping (every 300 ms here) would remove
     * the entries once processed, and XLEN would no longer count what
     * the script added. */
    pool_start(&p, "{\"handler\": \"probe\", \"stream\": \"sh\", \"group\": \"sg\", "
               "\"trim\": \"none\"}", "", 0, 1);
    o = run(one);
    ck_assert_msg(o.code == 0 && is_id_line(o.out), "exit %d: %s%s", o.code, o.out, o.err);
    snprintf(id1, sizeof(id1), "%.*s", (int)strlen(o.out) - 1, o.out);
    out_free(&o);
    o = run_env(two, env, NULL, 20000);
    ck_assert_msg(o.code == 0 && is_id_line(o.out), "exit %d: %s%s", o.code, o.out, o.err);
    snprintf(id2, sizeof(id2), "%.*s", (int)strlen(o.out) - 1, o.out);
    out_free(&o);

    r = sl_test_cmd(rc, "XRANGE sh %s %s", id1, id1);
    ck_assert_int_eq(r->elements, 1);
    ck_assert_int_eq(r->element[0]->element[1]->elements, 4);
    ck_assert_str_eq(r->element[0]->element[1]->element[0]->str, "type");
    ck_assert_str_eq(r->element[0]->element[1]->element[1]->str, "probe.test");
    ck_assert_str_eq(r->element[0]->element[1]->element[2]->str, "data");
    ck_assert_str_eq(r->element[0]->element[1]->element[3]->str, "{\"effect\": true}");
    freeReplyObject(r);
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_int(rc, "GET probe:count:%s", id1) == 1 &&
                                     sl_test_int(rc, "GET probe:count:%s", id2) == 1);

    o = run(bad);
    ck_assert_int_eq(o.code, 2);
    ck_assert_msg(strstr(o.err, "object") != NULL, "%s", o.err);
    out_free(&o);
    ck_assert_int_eq(sl_test_int(rc, "XLEN sh"), 2);
    ck_assert_int_eq(group_backlog("sh", "sg"), 0);
    pool_stop(&p);
}
END_TEST

/* With both variables set, every wrapper takes SLUICE_REDIS_URL, as
 * start-pool.sh (and so the pool) does: REDIS_URL names a closed port
 * here. Before, enqueue.sh and pending.sh took REDIS_URL first, so one
 * environment sent a pool to one server and its tools to another. */
START_TEST(test_tools_sluice_url_beats_redis_url)
{
    const char *enq[] = { "scripts/enqueue.sh", "sp", "probe.test", "{\"n\": 1}", NULL };
    const char *pend[] = { "scripts/pending.sh", "sp", NULL };
    char env_s[200], env_r[200];
    const char *env[] = { env_s, env_r, NULL };
    struct out o;

    snprintf(env_s, sizeof(env_s), "SLUICE_REDIS_URL=%s", srv.url);
    snprintf(env_r, sizeof(env_r), "REDIS_URL=redis://127.0.0.1:%d", closed_port());
    o = run_env(enq, env, NULL, 20000);
    ck_assert_msg(o.code == 0 && is_id_line(o.out), "enqueue.sh: exit %d: %s%s", o.code, o.out,
                  o.err);
    out_free(&o);
    ck_assert_int_eq(sl_test_int(rc, "XLEN sp"), 1);
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE sp g 0"));
    o = run_env(pend, env, NULL, 20000);
    ck_assert_msg(o.code == 0, "pending.sh: exit %d: %s%s", o.code, o.out, o.err);
    out_free(&o);
}
END_TEST

/* Bulk mode: every "TYPE JSON" line of the file becomes one entry, in
 * order, with the JSON byte for byte (quotes, backslashes, UTF-8, inner
 * blanks); comments and blank lines are skipped; the IDs are printed one
 * per line; the pool processes them all. A file with one bad line adds
 * nothing and names the line. */
START_TEST(test_tools_enqueue_bulk)
{
    static const char *const types[4] = { "probe.a", "probe.b", "probe.c", "probe.d" };
    static const char *const datas[4] = {
        "{\"effect\": true, \"s\": \"a \\\"quoted\\\" back\\\\slash\"}",
        "{\"effect\":true,\"name\":\"Zo\xc3\xab  two  blanks\"}",
        "{ \"effect\" : true }",
        "{\"effect\": true, \"tab\": \"x\\ty\"}",
    };
    char file[600], badfile[600], *save = NULL, *line;
    const char *argv[] = { "scripts/enqueue.sh", "-u", srv.url, "-f", file, "bulk", NULL };
    const char *badv[] = { "scripts/enqueue.sh", "-u", srv.url, "-f", badfile, "bulk", NULL };
    const char *stdinv[] = { "scripts/enqueue.sh", "-u", srv.url, "-f", "-", "bulk", NULL };
    struct pool p;
    struct out o;
    redisReply *r;
    int i = 0;

    snprintf(file, sizeof(file), "%s/bulk.txt", tmp);
    snprintf(badfile, sizeof(badfile), "%s/bad.txt", tmp);
    ck_assert_int_eq(sl_test_write_file(file, "# four entries\n\n%s %s\n   %s   %s  \n%s\t%s\r\n%s %s",
                                        types[0], datas[0], types[1], datas[1], types[2], datas[2],
                                        types[3], datas[3]), 0);
    ck_assert_int_eq(sl_test_write_file(badfile, "probe.a {}\nprobe.b {}\nprobe.c [1]\n"), 0);
    /* "trim": "none", as above: processed entries stay, so XLEN counts
     * what each run added (before, under valgrind, the trim had emptied
     * the stream by the time XLEN was read: "XLEN bulk" 0). */
    pool_start(&p, "{\"handler\": \"probe\", \"stream\": \"bulk\", \"group\": \"bg\", "
               "\"trim\": \"none\"}", "", 0, 1);

    o = run(argv);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    r = sl_test_cmd(rc, "XRANGE bulk - +");
    ck_assert_int_eq(r->elements, 4);
    for (line = strtok_r(o.out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save), i++) {
        const redisReply *f;
        ck_assert_int_lt(i, 4);
        ck_assert_str_eq(line, r->element[i]->element[0]->str);
        f = r->element[i]->element[1];
        ck_assert_int_eq(f->elements, 4);
        ck_assert_str_eq(f->element[1]->str, types[i]);
        ck_assert_str_eq(f->element[3]->str, datas[i]);
    }
    ck_assert_int_eq(i, 4);
    out_free(&o);
    SL_TEST_ASSERT_EVENTUALLY(10000, group_backlog("bulk", "bg") == 0);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(sl_test_int(rc, "GET probe:count:%s", r->element[i]->element[0]->str), 1);
    ck_assert_int_eq(sl_test_int(rc, "XLEN bulk:dead"), 0);
    freeReplyObject(r);

    o = run(badv);
    ck_assert_int_eq(o.code, 2);
    ck_assert_msg(strstr(o.err, "bad.txt:3:") != NULL, "%s", o.err);
    ck_assert_str_eq(o.out, "");
    out_free(&o);
    ck_assert_int_eq(sl_test_int(rc, "XLEN bulk"), 4);

    o = run_env(stdinv, NULL, file, 20000);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    out_free(&o);
    ck_assert_int_eq(sl_test_int(rc, "XLEN bulk"), 8);
    pool_stop(&p);
}
END_TEST

/* pending.sh prints, with redis-cli only, the same numbers as `sluice
 * pending` for the stalled state: stream length and groups, the group's
 * summary with lag, consumers with counts, entries with deliveries. */
START_TEST(test_tools_pending_sh)
{
    const char *argv[] = { "scripts/pending.sh", "-u", srv.url, "jobs", "g", NULL };
    const char *all[] = { "scripts/pending.sh", "-u", srv.url, "-n", "2", "jobs", NULL };
    const char *nog[] = { "scripts/pending.sh", "-u", srv.url, "jobs", "nope", NULL };
    const char *nos[] = { "scripts/pending.sh", "-u", srv.url, "nothere", NULL };
    struct out o;
    char *line, *save = NULL, a[64], b[64];
    long long x, y;
    int nl = 0, nent = 0;

    make_stalled();
    o = run(argv);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    for (line = strtok_r(o.out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save), nl++) {
        switch (nl) {
        case 0:
            ck_assert_str_eq(line, "stream jobs: length 6, entries-added 6, groups 1, last-generated-id 1-6");
            break;
        case 1:
            ck_assert_str_eq(line, "group g: 5 pending (1-1 .. 1-5), lag 1, consumers 2, last-delivered-id 1-5");
            break;
        case 2:
            ck_assert_msg(strstr(line, "CONSUMER") && strstr(line, "PENDING"), "%s", line);
            break;
        case 3:
        case 4:
            ck_assert_int_eq(sscanf(line, " %63s %lld %lld", a, &x, &y), 3);
            ck_assert_str_eq(a, nl == 3 ? "stalled-a" : "stalled-b");
            ck_assert_int_eq(x, nl == 3 ? 3 : 2);
            break;
        case 5:
            ck_assert_msg(strstr(line, "DELIVERIES") != NULL, "%s", line);
            break;
        default:
            ck_assert_int_lt(nent, 5);
            ck_assert_int_eq(sscanf(line, " %63s %63s %lld %lld", a, b, &x, &y), 4);
            ck_assert_str_eq(a, sid[nent]);
            ck_assert_str_eq(b, stalled_want[nent].consumer);
            assert_idle(nent, x);
            ck_assert_int_eq(y, stalled_want[nent].deliveries);
            nent++;
        }
    }
    ck_assert_int_eq(nent, 5);
    out_free(&o);

    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs later $"));
    o = run(all);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.out, "\n  1-1 ") != NULL && strstr(o.out, "\n  1-2 ") != NULL &&
                  strstr(o.out, "\n  1-3 ") == NULL, "-n 2: %s", o.out);
    ck_assert_msg(strstr(o.out, "\ngroup later: 0 pending, lag 0, consumers 0, last-delivered-id 1-6\n") != NULL,
                  "%s", o.out);
    out_free(&o);
    o = run(nog);
    ck_assert_int_eq(o.code, 1);
    ck_assert_msg(strstr(o.err, "no group nope") != NULL, "%s", o.err);
    out_free(&o);
    o = run(nos);
    ck_assert_int_eq(o.code, 1);
    ck_assert_msg(strstr(o.err, "no stream nothere") != NULL, "%s", o.err);
    out_free(&o);
}
END_TEST

/* start-pool.sh runs the pool in its own process (exec): the pid it was
 * started as is the supervisor, which processes entries and stops with
 * exit 0 on SIGTERM. REDIS_URL reaches the pool when SLUICE_REDIS_URL is
 * unset (the configuration points at a closed port). */
START_TEST(test_tools_start_pool)
{
    char cfg[600], log[600], env_url[200], env_bin[700], wrong[64];
    const char *argv[] = { "/usr/bin/env", "-u", "SLUICE_REDIS_URL", env_url, env_bin,
                           "scripts/start-pool.sh", "-c", cfg, NULL };
    int status = 0;
    pid_t pid;

    /* write_config() uses srv.url; point the file elsewhere instead. */
    write_config(cfg, sizeof(cfg), "start", "{\"handler\": \"probe\", \"stream\": \"sp\", \"group\": \"sg\"}", "", 0);
    {
        char *text = sl_test_read_file(cfg), *at;
        ck_assert_ptr_nonnull(text);
        snprintf(wrong, sizeof(wrong), "redis://127.0.0.1:%d", closed_port());
        at = strstr(text, srv.url);
        ck_assert_ptr_nonnull(at);
        *at = '\0';
        ck_assert_int_eq(sl_test_write_file(cfg, "%s%s%s", text, wrong, at + strlen(srv.url)), 0);
        free(text);
    }
    snprintf(env_url, sizeof(env_url), "REDIS_URL=%s", srv.url);
    snprintf(env_bin, sizeof(env_bin), "SLUICE_BIN=%s", sl_test_bin());
    snprintf(log, sizeof(log), "%s/start.log", tmp);
    pid = sl_test_spawn(argv, log);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_file_contains(log, "event=running "));
    ck_assert_int_eq(file_last_number(log, "role=supervisor event=pool_starting children=1 redis=127.0.0.1:"),
                     srv.port);
    {
        char needle[64];
        snprintf(needle, sizeof(needle), "pid=%ld role=supervisor", (long)pid);
        ck_assert_msg(sl_test_file_contains(log, needle), "the supervisor is not pid %ld", (long)pid);
    }
    freeReplyObject(sl_test_cmd(rc, "XADD sp 9-1 type t data {\"effect\":true}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_int(rc, "GET probe:count:9-1") == 1);
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x", status);
    ck_assert(sl_test_file_contains(log, "event=pool_stopped exit_code=0"));
}
END_TEST

Suite *tools_suite(void)
{
    Suite *s = suite_create("tools");
    TCase *tc;

    tc = ops_server_case(s, "scripts", 40);
    tcase_add_test(tc, test_tools_shellcheck);
    tcase_add_test(tc, test_tools_enqueue_processed);
    tcase_add_test(tc, test_tools_enqueue_bulk);
    tcase_add_test(tc, test_tools_pending_sh);
    tcase_add_test(tc, test_tools_sluice_url_beats_redis_url);
    tcase_add_test(tc, test_tools_start_pool);
    return s;
}
