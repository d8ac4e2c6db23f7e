/* check_limits.c -- the configuration's limits: addresses, file size, name lengths.
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
 * Limits
 * ------------------------------------------------------------------ */

/* --metrics with a port that does not fit 16 bits is refused (exit 2)
 * instead of listening on another port. */
START_TEST(test_limits_metrics_address_checked)
{
    char cfgpath[600];
    const char *argv[] = { sl_test_bin(), "run", "-c", cfgpath, "--metrics", "127.0.0.1:82838", NULL };
    struct out o;

    secrets_config(cfgpath, sizeof(cfgpath), NULL, "", "{\"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\"}");
    o = run_env(argv, NULL, NULL, 10000);
    ck_assert_msg(o.code == 2, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.err, "--metrics \"127.0.0.1:82838\": expected host:port") != NULL, "%s", o.err);
    out_free(&o);
}
END_TEST

/* A configuration file is read up to its size limit: /dev/zero fails
 * fast with exit 2 instead of filling memory. */
START_TEST(test_limits_config_size)
{
    const char *argv[] = { sl_test_bin(), "workers", "-c", "/dev/zero", NULL };
    struct out o = run_env(argv, NULL, NULL, 10000);

    ck_assert_msg(o.code == 2, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.err, "/dev/zero: larger than 1048576 bytes") != NULL, "%s", o.err);
    out_free(&o);
}
END_TEST

/* Stream and group names at the documented maximum (200 bytes) give the
 * right keys end to end: a dead letter lands in "<stream>:dead" and
 * `sluice dlq list` shows it; one byte more is refused at start. */
START_TEST(test_limits_max_length_names)
{
    char stream[201], group[201], longer[202], workers[700], cfgpath[600], logpath[600];
    char deadkey[210], akey[600];
    const char *argv[] = { sl_test_bin(), "run", "-c", cfgpath, NULL };
    const char *list[] = { sl_test_bin(), "dlq", "list", stream, "--redis", srv.url, NULL };
    struct out o;
    pid_t pid;
    int status;

    memset(stream, 'S', 200);
    stream[200] = '\0';
    memset(group, 'G', 200);
    group[200] = '\0';
    snprintf(workers, sizeof(workers), "{\"handler\": \"probe\", \"stream\": \"%s\", \"group\": \"%s\"}",
             stream, group);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, "", workers);
    snprintf(logpath, sizeof(logpath), "%s/pool.log", tmp);
    pid = sl_test_spawn(argv, logpath);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(15000, file_count(logpath, "event=running ") >= 1 || !sl_test_pid_alive(pid));
    ck_assert_msg(sl_test_pid_alive(pid), "the pool exited; see %s", logpath);
    /* One entry dead at once, one dead after its retries (attempts key). */
    freeReplyObject(sl_test_cmd(rc, "XADD %s * type t data %s", stream, "{\"dead\":\"nope\"}"));
    freeReplyObject(sl_test_cmd(rc, "XADD %s * type t data %s", stream, "{\"retry\":1}"));
    snprintf(deadkey, sizeof(deadkey), "%s:dead", stream);
    SL_TEST_ASSERT_EVENTUALLY(15000, sl_test_int(rc, "XLEN %s", deadkey) == 1 &&
                                     group_backlog(stream, group) == 0);
    snprintf(akey, sizeof(akey), "sluice:attempts:200:%s:%s", stream, group);
    /* Nothing went to a truncated key. */
    ck_assert_int_eq(count_keys("*:dead"), 1);
    ck_assert_int_eq(count_keys("sluice:attempts:*"), sl_test_int(rc, "EXISTS %s", akey));
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);

    o = run(list);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.out, "nope") != NULL, "dlq list shows: %s", o.out);
    out_free(&o);

    memset(longer, 'S', 201);
    longer[201] = '\0';
    snprintf(workers, sizeof(workers), "{\"handler\": \"probe\", \"stream\": \"%s\", \"group\": \"g\"}", longer);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, "", workers);
    o = run_env(argv, NULL, NULL, 10000);
    ck_assert_msg(o.code == 2, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.err, "workers[0].stream: longer than 200 bytes") != NULL, "%s", o.err);
    out_free(&o);
}
END_TEST

Suite *limits_suite(void)
{
    Suite *s = suite_create("limits");
    TCase *tc;

    tc = ops_server_case(s, "limits", 60);
    tcase_add_test(tc, test_limits_metrics_address_checked);
    tcase_add_test(tc, test_limits_config_size);
    tcase_add_test(tc, test_limits_max_length_names);
    return s;
}
