/* check_secrets.c -- passwords: never shown (command line, logs, messages), read from a
 * file anew, refusals named.
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
 * Secrets: passwords never shown, read from a file, refusals named
 *
 * The server of this TCase starts without a password (the harness waits
 * for PING); each test sets one with CONFIG SET requirepass, and the
 * fixture clears whatever a previous test left.
 * ------------------------------------------------------------------ */

/* Every password a test of this case may set. */
static const char *const secret_pws[] = { "rightpw", "secretpw", "first-pw", "second-pw", NULL };

/* Clears any password a previous test left (it may have failed before
 * its own cleanup), then runs the usual per-test fixture. */
static void secrets_up(void)
{
    redisContext *c = sl_test_connect(&srv);
    redisReply *r;
    int i;

    ck_assert_ptr_nonnull(c);
    for (i = 0; secret_pws[i] != NULL; i++) {
        r = sl_test_cmd(c, "AUTH %s", secret_pws[i]);
        freeReplyObject(r);
    }
    r = sl_test_cmd(c, "CONFIG SET requirepass %s", "");
    ck_assert_msg(r->type == REDIS_REPLY_STATUS, "cannot clear requirepass: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
    redisFree(c);
    test_up();
}

/* Sets the server's password; rc (already connected) stays usable. */
static void set_password(const char *pw)
{
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET requirepass %s", pw));
    freeReplyObject(sl_test_cmd(rc, "AUTH %s", pw));
}


/* Asserts that neither output of o holds `secret`. */
static void assert_not_shown(const struct out *o, const char *secret)
{
    ck_assert_msg(strstr(o->out, secret) == NULL, "stdout shows %s: %s", secret, o->out);
    ck_assert_msg(strstr(o->err, secret) == NULL, "stderr shows %s: %s", secret, o->err);
}

/* Every admin command, with a wrong password or none at all, exits 1
 * saying "authentication failed", and never prints the password. */
START_TEST(test_secrets_admin_auth_failed)
{
    char url[256], cfgpath[600];
    const char *const verbs[][5] = {
        { "stats", NULL }, { "workers", NULL }, { "pending", "s", "g", NULL },
        { "dlq", "list", "s", NULL }, { "enqueue", "s", "t", "{}", NULL },
    };
    size_t i, j;

    set_password("rightpw");
    snprintf(url, sizeof(url), "redis://:wrongpw@127.0.0.1:%d", srv.port);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, "", "{\"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\"}");
    for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        const char *argv[12];
        struct out o;
        size_t n = 0;

        argv[n++] = sl_test_bin();
        for (j = 0; verbs[i][j] != NULL; j++)
            argv[n++] = verbs[i][j];
        argv[n++] = "-c";
        argv[n++] = cfgpath;
        argv[n++] = "--redis";
        argv[n++] = url;
        argv[n] = NULL;
        o = run(argv);
        ck_assert_msg(o.code == 1, "%s: exit %d: %s", verbs[i][0], o.code, o.err);
        ck_assert_msg(strstr(o.err, "authentication failed") != NULL, "%s: %s", verbs[i][0], o.err);
        assert_not_shown(&o, "wrongpw");
        out_free(&o);

        /* No password at all: NOAUTH, also an authentication failure. */
        n -= 2;
        argv[n] = NULL;
        o = run(argv);
        ck_assert_msg(o.code == 1, "%s (no password): exit %d: %s", verbs[i][0], o.code, o.err);
        ck_assert_msg(strstr(o.err, "authentication failed") != NULL, "%s: %s", verbs[i][0], o.err);
        out_free(&o);
    }
    /* Nothing was enqueued. */
    ck_assert_int_eq(sl_test_int(rc, "EXISTS s"), 0);
}
END_TEST

/* A URL the parser refuses, from each source and in each form, is shown
 * redacted: exit 2, the password nowhere. */
START_TEST(test_secrets_bad_urls_redacted)
{
    static const char *const urls[] = {
        "rediss://:hunter2%@127.0.0.1:1", "redis://admin:hunter2%zz@127.0.0.1:1",
        "REDIS://:hunter2@127.0.0.1:99999", "redis://:hunter2@127.0.0.1:1/x",
        "redis://hunter2%@127.0.0.1:1", "redis://:hunter2",
    };
    char cfgpath[600], envvar[300];
    size_t i;

    for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        const char *flag[] = { sl_test_bin(), "workers", "-c", cfgpath, "--redis", urls[i], NULL };
        const char *plain[] = { sl_test_bin(), "workers", "-c", cfgpath, NULL };
        const char *const env[] = { envvar, NULL };
        struct out o;

        secrets_config(cfgpath, sizeof(cfgpath), NULL, "", "{\"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\"}");
        o = run(flag);
        ck_assert_msg(o.code == 2, "%s: exit %d", urls[i], o.code);
        ck_assert_msg(strstr(o.err, "--redis") != NULL, "%s", o.err);
        assert_not_shown(&o, "hunter2");
        out_free(&o);

        secrets_config(cfgpath, sizeof(cfgpath), urls[i], "", "{\"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\"}");
        o = run(plain);
        ck_assert_msg(o.code == 2, "%s in the file: exit %d", urls[i], o.code);
        ck_assert_msg(strstr(o.err, "redis.url") != NULL, "%s", o.err);
        assert_not_shown(&o, "hunter2");
        out_free(&o);

        secrets_config(cfgpath, sizeof(cfgpath), NULL, "", "{\"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\"}");
        snprintf(envvar, sizeof(envvar), "SLUICE_REDIS_URL=%s", urls[i]);
        o = run_env(plain, env, NULL, 20000);
        ck_assert_msg(o.code == 2, "%s from the environment: exit %d", urls[i], o.code);
        ck_assert_msg(strstr(o.err, "SLUICE_REDIS_URL") != NULL, "%s", o.err);
        assert_not_shown(&o, "hunter2");
        out_free(&o);
    }
}
END_TEST

/* Returns 1 when /proc/<pid>/cmdline holds needle (its NULs read as
 * spaces), 0 when not, -1 when it cannot be read. */
static int cmdline_has(pid_t pid, const char *needle)
{
    char path[64], buf[8192];
    size_t n, i;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    for (i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* A pool given its password with --redis: the supervisor's and every
 * child's command line show "redis://:***@", and nothing it prints holds
 * the password. */
START_TEST(test_secrets_password_not_in_cmdline)
{
    char url[256], cfgpath[600], logpath[600];
    const char *argv[] = { sl_test_bin(), "run", "-c", cfgpath, "--redis", url, NULL };
    pid_t pid, kids[2];
    int status, i;

    set_password("secretpw");
    snprintf(url, sizeof(url), "redis://:secretpw@127.0.0.1:%d", srv.port);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, "",
                   "{\"handler\": \"noop\", \"stream\": \"cs\", \"group\": \"cg\", \"processes\": 2}");
    snprintf(logpath, sizeof(logpath), "%s/pool.log", tmp);
    pid = sl_test_spawn(argv, logpath);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(15000, file_count(logpath, "event=running ") >= 2 || !sl_test_pid_alive(pid));
    ck_assert_msg(sl_test_pid_alive(pid), "the pool exited; see %s", logpath);
    freeReplyObject(sl_test_cmd(rc, "XADD cs * type t data {}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, group_backlog("cs", "cg") == 0);

    /* Under valgrind /proc/<pid>/cmdline is valgrind's own command line,
     * the arguments as given: the program's argv, which the masking
     * rewrites, is a copy valgrind made elsewhere. Nothing to read there;
     * the masking still runs (and valgrind checks its writes), and the
     * log is checked below. */
    if (!sl_test_wrap_is_valgrind()) {
        ck_assert_int_eq(cmdline_has(pid, "secretpw"), 0);
        ck_assert_int_eq(cmdline_has(pid, "redis://:***@127.0.0.1"), 1);
    }
    for (i = 0; i < 2; i++) {
        char needle[512];

        snprintf(needle, sizeof(needle), "event=child_started consumer=%s:noop:%d child=", host, i);
        kids[i] = (pid_t)file_last_number(logpath, needle);
        ck_assert_int_gt(kids[i], 0);
        if (sl_test_wrap_is_valgrind())
            continue;
        ck_assert_int_eq(cmdline_has(kids[i], "secretpw"), 0);
        ck_assert_int_eq(cmdline_has(kids[i], "redis://:***@127.0.0.1"), 1);
    }
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);
    ck_assert_int_eq(file_count(logpath, "secretpw"), 0);
}
END_TEST

/* A wrong password: `run` keeps retrying and logs each step as
 * "authentication failed: WRONGPASS ...", never error="" and never the
 * password; once the password is right, the pool starts. */
START_TEST(test_secrets_wrong_password_logged)
{
    char cfgpath[600], logpath[600], pwfile[600];
    const char *argv[] = { sl_test_bin(), "run", "-c", cfgpath, NULL };
    char extra[700];
    pid_t pid;
    int status;

    set_password("rightpw");
    snprintf(pwfile, sizeof(pwfile), "%s/pw", tmp);
    ck_assert_int_eq(sl_test_write_file(pwfile, "wrongpw\n"), 0);
    snprintf(extra, sizeof(extra), ", \"password_file\": \"%s\"", pwfile);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, extra,
                   "{\"handler\": \"noop\", \"stream\": \"ws\", \"group\": \"wg\"}");
    snprintf(logpath, sizeof(logpath), "%s/pool.log", tmp);
    pid = sl_test_spawn(argv, logpath);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, file_count(logpath, "event=redis_unavailable") >= 2);
    ck_assert(sl_test_pid_alive(pid));
    ck_assert_msg(file_count(logpath, "error=\"authentication failed: WRONGPASS") >= 2,
                  "see %s", logpath);
    ck_assert_int_eq(file_count(logpath, "error=\"\""), 0);
    ck_assert_int_eq(file_count(logpath, "wrongpw"), 0);
    ck_assert_int_eq(file_count(logpath, "event=running "), 0);
    /* The file is read again at the next attempt: fixed, the pool runs. */
    ck_assert_int_eq(sl_test_write_file(pwfile, "rightpw\n"), 0);
    SL_TEST_ASSERT_EVENTUALLY(15000, file_count(logpath, "event=running ") >= 1);
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);
    ck_assert_int_eq(file_count(logpath, "rightpw"), 0);
}
END_TEST

/* The same refusal with the password in the URL (the form whose log
 * said error="" before). */
START_TEST(test_secrets_wrong_url_password_logged)
{
    char cfgpath[600], logpath[600], url[256];
    const char *argv[] = { sl_test_bin(), "run", "-c", cfgpath, "--redis", url, NULL };
    pid_t pid;
    int status;

    set_password("rightpw");
    snprintf(url, sizeof(url), "redis://:wrongpw@127.0.0.1:%d", srv.port);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, "",
                   "{\"handler\": \"noop\", \"stream\": \"ws\", \"group\": \"wg\"}");
    snprintf(logpath, sizeof(logpath), "%s/pool.log", tmp);
    pid = sl_test_spawn(argv, logpath);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, file_count(logpath, "event=redis_unavailable") >= 2);
    ck_assert(sl_test_pid_alive(pid));
    ck_assert_msg(file_count(logpath, "error=\"authentication failed: WRONGPASS") >= 2,
                  "see %s", logpath);
    ck_assert_int_eq(file_count(logpath, "error=\"\""), 0);
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);
    ck_assert_int_eq(file_count(logpath, "wrongpw"), 0);
}
END_TEST

/* A pool whose password comes from a file keeps working across a
 * rotation: new password in the file and in Redis, every client killed,
 * and the supervisor and its children reconnect with the new one. */
START_TEST(test_secrets_password_file_rotation)
{
    char cfgpath[600], logpath[600], pwfile[600], extra[700];
    const char *argv[] = { sl_test_bin(), "run", "-c", cfgpath, NULL };
    redisContext *killer;
    pid_t pid;
    int status, i;

    set_password("first-pw");
    snprintf(pwfile, sizeof(pwfile), "%s/pw", tmp);
    ck_assert_int_eq(sl_test_write_file(pwfile, "first-pw\n"), 0);
    snprintf(extra, sizeof(extra), ", \"password_file\": \"%s\"", pwfile);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, extra,
                   "{\"handler\": \"noop\", \"stream\": \"rs\", \"group\": \"rg\", \"processes\": 2}");
    snprintf(logpath, sizeof(logpath), "%s/pool.log", tmp);
    pid = sl_test_spawn(argv, logpath);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(15000, file_count(logpath, "event=running ") >= 2 || !sl_test_pid_alive(pid));
    ck_assert_msg(sl_test_pid_alive(pid), "the pool exited; see %s", logpath);
    for (i = 0; i < 20; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD rs * type t data {}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, group_backlog("rs", "rg") == 0);

    /* Rotate: the file first, then Redis, then drop every connection
     * (CLIENT KILL with a filter spares the caller). */
    ck_assert_int_eq(sl_test_write_file(pwfile, "second-pw\n"), 0);
    set_password("second-pw");
    killer = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(killer);
    freeReplyObject(sl_test_cmd(killer, "AUTH second-pw"));
    ck_assert_int_ge(sl_test_int(killer, "CLIENT KILL TYPE normal SKIPME yes"), 1);
    redisFree(rc);                /* killed too: use the killer's connection */
    rc = killer;

    for (i = 0; i < 20; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD rs * type t data {}"));
    SL_TEST_ASSERT_EVENTUALLY(15000, group_backlog("rs", "rg") == 0);
    ck_assert_int_eq(sl_test_int(rc, "XLEN rs:dead"), 0);
    ck_assert(sl_test_pid_alive(pid));
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);
    ck_assert_int_eq(file_count(logpath, "first-pw"), 0);
    ck_assert_int_eq(file_count(logpath, "second-pw"), 0);
}
END_TEST

Suite *secrets_suite(void)
{
    Suite *s = suite_create("secrets");
    TCase *tc;

    tc = tcase_create("secrets");
    tcase_add_unchecked_fixture(tc, server_up, server_down);
    tcase_add_checked_fixture(tc, secrets_up, test_down);
    tcase_set_timeout(tc, 90.0 * sl_test_slow_factor());
    tcase_add_test(tc, test_secrets_admin_auth_failed);
    tcase_add_test(tc, test_secrets_bad_urls_redacted);
    tcase_add_test(tc, test_secrets_password_not_in_cmdline);
    tcase_add_test(tc, test_secrets_wrong_password_logged);
    tcase_add_test(tc, test_secrets_wrong_url_password_logged);
    tcase_add_test(tc, test_secrets_password_file_rotation);
    suite_add_tcase(s, tc);
    return s;
}
