/* check_harness.c -- tests of the integration-test harness itself, against
 * a real redis-server, so that a failing integration test can be trusted
 * to point at sluice and not at its scaffolding.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"

static struct sl_test_redis srv;  /* the TCase's server (unchecked fixture) */

/* ------------------------------------------------------------------------
 * Fixtures and helpers
 * ------------------------------------------------------------------------ */

/* Starts one plain server for the TCase. Check runs unchecked fixtures in
 * the runner process, once per TCase, so the server outlives each forked
 * test. */
static void redis_setup(void)
{
    ck_assert_int_eq(sl_test_redis_start(&srv, NULL), 0);
}

/* Starts one server with an append-only file, for the restart tests. */
static void redis_aof_setup(void)
{
    ck_assert_int_eq(sl_test_redis_start(&srv, "--appendonly yes"), 0);
}

/* Stops the TCase's server, whichever process last (re)started it, and
 * deletes its directory. */
static void redis_teardown(void)
{
    sl_test_redis_cleanup(&srv);
}

/* Empties the server before each test (a checked fixture), so tests in one
 * TCase cannot see each other's keys. */
static void flush_setup(void)
{
    redisContext *c = sl_test_connect(&srv);

    ck_assert_ptr_nonnull(c);
    freeReplyObject(sl_test_cmd(c, "FLUSHALL"));
    redisFree(c);
}

/* Returns 1 if a fresh connection to srv gets PONG within 500 ms. */
static int pings(const struct sl_test_redis *r)
{
    redisContext *c = sl_test_connect_timeout(r, 500, 500);
    redisReply *reply;
    int ok;

    if (c == NULL)
        return 0;
    reply = redisCommand(c, "PING");
    ok = reply != NULL && reply->type == REDIS_REPLY_STATUS
         && strcmp(reply->str, "PONG") == 0;
    if (reply != NULL)
        freeReplyObject(reply);
    redisFree(c);
    return ok;
}

/* A sl_test_wait_for() condition that never holds; counts its calls. */
static int never(void *arg)
{
    ++*(int *)arg;
    return 0;
}

/* A sl_test_wait_for() condition that holds from its third call on. */
static int third_time(void *arg)
{
    return ++*(int *)arg >= 3;
}

/* Sets an environment variable for one test and returns its old value
 * (new string, or NULL if it was unset) for restore_env(). Needed because
 * under CK_FORK=no every test shares the runner's environment. */
static char *set_env(const char *name, const char *value)
{
    const char *old = getenv(name);
    char *saved = old != NULL ? strdup(old) : NULL;

    if (value != NULL)
        setenv(name, value, 1);
    else
        unsetenv(name);
    return saved;
}

/* Puts back (and frees) a value saved by set_env(). */
static void restore_env(const char *name, char *saved)
{
    if (saved != NULL)
        setenv(name, saved, 1);
    else
        unsetenv(name);
    free(saved);
}

/* ------------------------------------------------------------------------
 * TCase "redis": one plain server
 * ------------------------------------------------------------------------ */

/* The server answers on the port named in its URL, and the client helpers
 * convert integer, string, status and nil replies as documented. */
START_TEST(test_harness_redis_answers)
{
    char url[128], path[300];
    redisContext *c;
    redisReply *reply;
    char *s;

    snprintf(url, sizeof url, "redis://127.0.0.1:%d", srv.port);
    ck_assert_str_eq(srv.url, url);
    ck_assert_int_gt(srv.port, 0);
    ck_assert_int_eq(sl_test_pid_alive(sl_test_redis_pid(&srv)), 1);
    snprintf(path, sizeof path, "%s/redis.log", srv.dir);
    ck_assert(sl_test_file_contains(path, "Ready to accept connections"));

    c = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(c);
    reply = sl_test_cmd(c, "PING");
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    ck_assert_str_eq(reply->str, "PONG");
    freeReplyObject(reply);

    ck_assert_int_eq(sl_test_int(c, "INCRBY n %d", 5), 5);
    ck_assert_int_eq(sl_test_int(c, "GET n"), 5);       /* string reply */
    ck_assert_int_eq(sl_test_int(c, "GET missing"), 0); /* nil reply */

    s = sl_test_str(c, "SET k %s", "v a l");             /* status reply */
    ck_assert_str_eq(s, "OK");
    free(s);
    s = sl_test_str(c, "GET k");
    ck_assert_str_eq(s, "v a l");
    free(s);
    s = sl_test_str(c, "INCR n");                        /* integer reply */
    ck_assert_str_eq(s, "6");
    free(s);
    ck_assert_ptr_null(sl_test_str(c, "GET missing"));

    reply = sl_test_cmd(c, "NOSUCHCOMMAND");             /* errors returned */
    ck_assert_int_eq(reply->type, REDIS_REPLY_ERROR);
    freeReplyObject(reply);
    redisFree(c);
}
END_TEST

/* A SIGSTOPped server accepts connections but answers nothing, so a
 * command times out; after SIGCONT it answers again. */
START_TEST(test_harness_redis_sigstop_sigcont)
{
    redisContext *c;
    redisReply *reply;
    long long t0;

    ck_assert_int_eq(sl_test_redis_sigstop(&srv), 0);
    ck_assert_int_eq(sl_test_pid_alive(sl_test_redis_pid(&srv)), 1);

    c = sl_test_connect_timeout(&srv, 1000, 200);
    ck_assert_ptr_nonnull(c);       /* the kernel completes the handshake */
    t0 = sl_test_now_ms();
    reply = redisCommand(c, "PING");
    ck_assert_ptr_null(reply);
    ck_assert_int_ne(c->err, 0);
    ck_assert_int_ge(sl_test_now_ms() - t0, 150);
    redisFree(c);

    ck_assert_int_eq(sl_test_redis_sigcont(&srv), 0);
    /* A resumed server answers within moments, but one PING with a
     * 500 ms deadline can miss on a loaded machine: poll to a deadline. */
    SL_TEST_ASSERT_EVENTUALLY(10000, pings(&srv));
}
END_TEST

/* Without an AOF, SIGKILL plus restart gives an empty server on the same
 * port and URL, with a new PID. */
START_TEST(test_harness_redis_kill_restart_same_port)
{
    int port = srv.port;
    pid_t before = sl_test_redis_pid(&srv);
    redisContext *c = sl_test_connect(&srv);

    ck_assert_ptr_nonnull(c);
    freeReplyObject(sl_test_cmd(c, "SET k v"));
    redisFree(c);

    sl_test_redis_kill(&srv);
    ck_assert_int_eq(sl_test_pid_alive(before), 0);
    ck_assert_ptr_null(sl_test_connect(&srv));

    ck_assert_int_eq(sl_test_redis_restart(&srv), 0);
    ck_assert_int_eq(srv.port, port);
    ck_assert_int_ne(sl_test_redis_pid(&srv), before);
    c = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(sl_test_int(c, "EXISTS k"), 0);
    redisFree(c);
}
END_TEST

/* Runs after the restart test in the same TCase: in fork mode the restart
 * happened in another process, and the harness still finds the server's
 * current PID through its pidfile. */
START_TEST(test_harness_redis_pid_after_restart)
{
    pid_t pid = sl_test_redis_pid(&srv);

    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(sl_test_pid_alive(pid), 1);
    ck_assert(pings(&srv));
}
END_TEST

/* ------------------------------------------------------------------------
 * TCase "aof": a server started with --appendonly yes
 * ------------------------------------------------------------------------ */

/* Extra arguments reach the server, and data written before a SIGKILL is
 * back after a restart on the same port, loaded from the AOF. */
START_TEST(test_harness_aof_restart_keeps_data)
{
    int port = srv.port;
    redisContext *c = sl_test_connect(&srv);
    char *s;

    ck_assert_ptr_nonnull(c);
    freeReplyObject(sl_test_cmd(c, "SET kept %s", "yes"));
    redisFree(c);

    sl_test_redis_kill(&srv);
    ck_assert(!pings(&srv));
    ck_assert_int_eq(sl_test_redis_restart(&srv), 0);
    ck_assert_int_eq(srv.port, port);

    c = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(c);
    s = sl_test_str(c, "GET kept");
    ck_assert_str_eq(s, "yes");
    free(s);
    redisFree(c);
}
END_TEST

/* Restarting a server that is still running stops it gracefully first;
 * the data survives that too. */
START_TEST(test_harness_aof_restart_while_running)
{
    redisContext *c = sl_test_connect(&srv);
    redisReply *reply;

    ck_assert_ptr_nonnull(c);
    reply = sl_test_cmd(c, "CONFIG GET appendonly");
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(reply->elements, 2);
    ck_assert_str_eq(reply->element[1]->str, "yes");
    freeReplyObject(reply);
    ck_assert_int_eq(sl_test_int(c, "RPUSH l a b c"), 3);
    redisFree(c);

    ck_assert_int_eq(sl_test_redis_restart(&srv), 0);
    c = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(sl_test_int(c, "LLEN l"), 3);
    redisFree(c);
}
END_TEST

/* ------------------------------------------------------------------------
 * TCase "lifecycle": servers started inside the test
 * ------------------------------------------------------------------------ */

/* Two servers get distinct ports and directories; stop makes one
 * unreachable and cleanup deletes its directory. Cleanup of a zeroed
 * struct does nothing. */
START_TEST(test_harness_start_stop_cleanup)
{
    struct sl_test_redis a, b, z;
    char dir[256];
    struct stat st;
    pid_t pid;

    memset(&z, 0, sizeof z);
    ck_assert_int_eq(sl_test_redis_start(&a, NULL), 0);
    ck_assert_int_eq(sl_test_redis_start(&b, NULL), 0);
    ck_assert_int_ne(a.port, b.port);
    ck_assert_str_ne(a.dir, b.dir);
    ck_assert(pings(&a));
    ck_assert(pings(&b));

    pid = a.pid;
    sl_test_redis_stop(&a);
    ck_assert_int_eq(a.pid, 0);
    ck_assert_int_eq(sl_test_pid_alive(pid), 0);
    ck_assert(!pings(&a));
    ck_assert(pings(&b));
    ck_assert_int_eq(stat(a.dir, &st), 0);     /* stop keeps the dir */

    strcpy(dir, a.dir);
    sl_test_redis_cleanup(&a);
    ck_assert_int_eq(stat(dir, &st), -1);
    ck_assert_int_eq(errno, ENOENT);

    strcpy(dir, b.dir);
    sl_test_redis_cleanup(&b);
    ck_assert_int_eq(stat(dir, &st), -1);
    sl_test_redis_cleanup(&z);
}
END_TEST

/* A server that cannot start (an unknown option) makes start fail after
 * its retries instead of hanging, and leaves no directory behind. */
START_TEST(test_harness_start_bad_option_fails)
{
    struct sl_test_redis r;
    long long t0 = sl_test_now_ms();

    ck_assert_int_eq(sl_test_redis_start(&r, "--no-such-option 1"), -1);
    ck_assert_int_eq(r.pid, 0);
    ck_assert_str_eq(r.dir, "");
    ck_assert_int_lt(sl_test_now_ms() - t0, 5000 * sl_test_slow_factor());
}
END_TEST

/* ------------------------------------------------------------------------
 * TCase "wait": polling to a deadline
 * ------------------------------------------------------------------------ */

/* A condition that never holds makes wait_for return 0, no sooner than
 * the timeout and not much later, after polling several times. */
START_TEST(test_harness_wait_for_times_out)
{
    int calls = 0;
    long long t0 = sl_test_now_ms(), took;

    ck_assert_int_eq(sl_test_wait_for(100, never, &calls), 0);
    took = sl_test_now_ms() - t0;
    ck_assert_int_ge(took, 100 * sl_test_slow_factor());
    ck_assert_int_lt(took, 100 * sl_test_slow_factor() + 1000);
    ck_assert_int_ge(calls, 3);
}
END_TEST

/* A condition that comes true returns 1 at once, without waiting out the
 * timeout. */
START_TEST(test_harness_wait_for_succeeds)
{
    int calls = 0;
    long long t0 = sl_test_now_ms();

    ck_assert_int_eq(sl_test_wait_for(10000, third_time, &calls), 1);
    ck_assert_int_eq(calls, 3);
    ck_assert_int_lt(sl_test_now_ms() - t0, 1000);

    calls = 0;
    SL_TEST_ASSERT_EVENTUALLY(10000, third_time(&calls));
    ck_assert_int_eq(calls, 3);
}
END_TEST

/* SLUICE_TEST_SLOW multiplies every timeout; nonsense means 1. */
START_TEST(test_harness_wait_for_slow_factor)
{
    char *saved = set_env("SLUICE_TEST_SLOW", "3");
    int calls = 0;
    long long t0 = sl_test_now_ms();

    ck_assert_int_eq(sl_test_slow_factor(), 3);
    ck_assert_int_eq(sl_test_wait_for(50, never, &calls), 0);
    ck_assert_int_ge(sl_test_now_ms() - t0, 150);
    setenv("SLUICE_TEST_SLOW", "x", 1);
    ck_assert_int_eq(sl_test_slow_factor(), 1);
    setenv("SLUICE_TEST_SLOW", "0", 1);
    ck_assert_int_eq(sl_test_slow_factor(), 1);
    restore_env("SLUICE_TEST_SLOW", saved);
}
END_TEST

/* ------------------------------------------------------------------------
 * TCase "process": spawning, waiting, signals, files, CPU time
 * ------------------------------------------------------------------------ */

/* The exit status of a spawned process comes back through wait_exit. */
START_TEST(test_harness_spawn_exit_status)
{
    const char *const argv[] = { "/bin/sh", "-c", "exit 3", NULL };
    pid_t pid = sl_test_spawn(argv, NULL);
    int status = 0;

    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(sl_test_wait_exit(pid, 5000, &status), 1);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 3);
    ck_assert_int_eq(sl_test_pid_alive(pid), 0);
}
END_TEST

/* stdout and stderr are appended to the log and stdin is empty; a
 * program that cannot be executed exits 127 and says why in the log. */
START_TEST(test_harness_spawn_log_and_stdin)
{
    const char *const one[] = { "/bin/sh", "-c",
        "echo out; echo err >&2; read x; echo \"stdin=[$x]\"", NULL };
    const char *const two[] = { "/bin/sh", "-c", "echo second", NULL };
    const char *const bad[] = { "/nonexistent/sluice-prog", NULL };
    /* These are the harness's own processes: no valgrind in front. */
    char *wrap = set_env("SLUICE_WRAP", NULL);
    char *dir = sl_test_tmpdir();
    char log[512];
    int status;
    pid_t pid;

    ck_assert_ptr_nonnull(dir);
    snprintf(log, sizeof log, "%s/out.log", dir);
    pid = sl_test_spawn(one, log);
    ck_assert_int_eq(sl_test_wait_exit(pid, 5000, &status), 1);
    pid = sl_test_spawn(two, log);
    ck_assert_int_eq(sl_test_wait_exit(pid, 5000, &status), 1);
    ck_assert(sl_test_file_contains(log, "out\n"));
    ck_assert(sl_test_file_contains(log, "err\n"));
    ck_assert(sl_test_file_contains(log, "stdin=[]\n"));
    ck_assert(sl_test_file_contains(log, "second\n"));   /* appended */

    pid = sl_test_spawn(bad, log);
    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(sl_test_wait_exit(pid, 5000, &status), 1);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 127);
    ck_assert(sl_test_file_contains(log, "cannot exec"));

    ck_assert_int_eq(sl_test_rmtree(dir), 0);
    free(dir);
    restore_env("SLUICE_WRAP", wrap);
}
END_TEST

/* SLUICE_WRAP's words are put in front of argv. */
START_TEST(test_harness_spawn_wrap)
{
    const char *const argv[] = { "/bin/sh", "-c",
        "echo \"wrapped=$SL_WRAPPED\"; exit 4", NULL };
    char *saved = set_env("SLUICE_WRAP", "/usr/bin/env  SL_WRAPPED=yes");
    char *dir = sl_test_tmpdir();
    char log[512];
    int status = 0;
    pid_t pid;

    ck_assert_ptr_nonnull(dir);
    snprintf(log, sizeof log, "%s/wrap.log", dir);
    pid = sl_test_spawn(argv, log);
    restore_env("SLUICE_WRAP", saved);
    ck_assert_int_eq(sl_test_wait_exit(pid, 5000, &status), 1);
    ck_assert_int_eq(WEXITSTATUS(status), 4);
    ck_assert(sl_test_file_contains(log, "wrapped=yes"));
    sl_test_rmtree(dir);
    free(dir);
}
END_TEST

/* sl_test_spawn_nofile puts SLUICE_WRAP's words inside prlimit, and the
 * program sees the limit asked for: under a plain wrapper as it is, under
 * valgrind (when installed) raised by what valgrind keeps for itself.
 * (Before, `valgrind prlimit ...` failed: valgrind refuses prlimit's
 * change of the descriptor limit.) */
START_TEST(test_harness_spawn_nofile_wrap)
{
    const char *const argv[] = { "/bin/sh", "-c",
        "echo \"wrapped=$SL_WRAPPED nofile=$(ulimit -n)\"", NULL };
    char *saved = set_env("SLUICE_WRAP", "/usr/bin/env SL_WRAPPED=yes");
    char *dir = sl_test_tmpdir();
    char log[512];
    int status = 0;
    pid_t pid;

    ck_assert_ptr_nonnull(dir);
    snprintf(log, sizeof log, "%s/nofile.log", dir);
    pid = sl_test_spawn_nofile(argv, log, 20);
    restore_env("SLUICE_WRAP", saved);
    ck_assert_int_eq(sl_test_wait_exit(pid, 5000, &status), 1);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_msg(sl_test_file_contains(log, "wrapped=yes nofile=20\n"), "see %s", log);
    if (system("valgrind --version >/dev/null 2>&1") == 0) {
        saved = set_env("SLUICE_WRAP", "valgrind -q");
        snprintf(log, sizeof log, "%s/valgrind.log", dir);
        pid = sl_test_spawn_nofile(argv, log, 20);
        restore_env("SLUICE_WRAP", saved);
        ck_assert_int_eq(sl_test_wait_exit(pid, 30000, &status), 1);
        ck_assert_msg(WEXITSTATUS(status) == 0 && sl_test_file_contains(log, "nofile=20\n"),
                      "status %d; see %s", WEXITSTATUS(status), log);
    }
    sl_test_rmtree(dir);
    free(dir);
}
END_TEST

/* wait_exit gives up on a process that keeps running; a signal then ends
 * it and the status says which. sl_test_bin honours SLUICE_BIN. */
START_TEST(test_harness_wait_exit_and_kill)
{
    const char *const argv[] = { "sleep", "30", NULL };
    pid_t pid = sl_test_spawn(argv, NULL);
    int status = 0;
    char *saved;

    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(sl_test_wait_exit(pid, 100, &status), 0);
    ck_assert_int_eq(sl_test_pid_alive(pid), 1);
    sl_test_kill(pid, SIGTERM);
    ck_assert_int_eq(sl_test_wait_exit(pid, 5000, &status), 1);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), SIGTERM);
    ck_assert_int_eq(sl_test_pid_alive(0), 0);
    ck_assert_int_eq(sl_test_wait_exit(0, 10, NULL), 0);

    saved = set_env("SLUICE_BIN", NULL);
    ck_assert_str_eq(sl_test_bin(), "build/sluice-test");
    setenv("SLUICE_BIN", "/opt/x/sluice", 1);
    ck_assert_str_eq(sl_test_bin(), "/opt/x/sluice");
    restore_env("SLUICE_BIN", saved);
}
END_TEST

/* Files are written, read back and searched; missing files read as NULL. */
START_TEST(test_harness_files)
{
    char *dir = sl_test_tmpdir();
    char path[512], sub[512];
    char *text;

    ck_assert_ptr_nonnull(dir);
    ck_assert_int_eq(strncmp(dir, "/tmp/", 5), 0);
    snprintf(path, sizeof path, "%s/f.txt", dir);
    ck_assert_int_eq(sl_test_write_file(path, "a=%d\n%s\n", 5, "b"), 0);
    text = sl_test_read_file(path);
    ck_assert_str_eq(text, "a=5\nb\n");
    free(text);
    ck_assert_int_eq(sl_test_write_file(path, "%s", "new"), 0);
    text = sl_test_read_file(path);
    ck_assert_str_eq(text, "new");                /* replaced, not appended */
    free(text);
    ck_assert_int_eq(sl_test_file_contains(path, "ne"), 1);
    ck_assert_int_eq(sl_test_file_contains(path, "a=5"), 0);

    snprintf(sub, sizeof sub, "%s/missing", dir);
    ck_assert_ptr_null(sl_test_read_file(sub));
    ck_assert_int_eq(sl_test_file_contains(sub, ""), 0);

    snprintf(sub, sizeof sub, "%s/d", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/d/g", dir);
    ck_assert_int_eq(sl_test_write_file(sub, "x"), 0);
    ck_assert_int_eq(sl_test_rmtree(dir), 0);
    ck_assert_ptr_null(sl_test_read_file(path));
    ck_assert_int_eq(sl_test_rmtree(dir), 0);     /* already gone: fine */
    free(dir);
}
END_TEST

/* A busy process accumulates CPU time while a sleeping one does not. */
START_TEST(test_harness_cpu_ms)
{
    const char *const spin[] = { "/bin/sh", "-c", "while :; do :; done",
                                 NULL };
    const char *const idle[] = { "sleep", "30", NULL };
    char *wrap = set_env("SLUICE_WRAP", NULL);    /* valgrind's start-up is not idle */
    pid_t busy = sl_test_spawn(spin, NULL);
    pid_t lazy = sl_test_spawn(idle, NULL);

    restore_env("SLUICE_WRAP", wrap);
    ck_assert_int_gt(busy, 0);
    ck_assert_int_gt(lazy, 0);
    ck_assert_int_ge(sl_test_cpu_ms(getpid()), 0);
    SL_TEST_ASSERT_EVENTUALLY(5000, sl_test_cpu_ms(busy) >= 100);
    ck_assert_int_ge(sl_test_cpu_ms(lazy), 0);
    ck_assert_int_lt(sl_test_cpu_ms(lazy), 50);
    sl_test_kill(busy, SIGKILL);
    sl_test_kill(lazy, SIGKILL);
    ck_assert_int_eq(sl_test_wait_exit(busy, 5000, NULL), 1);
    ck_assert_int_eq(sl_test_wait_exit(lazy, 5000, NULL), 1);
    ck_assert_int_eq(sl_test_cpu_ms(busy), -1);   /* reaped: no /proc entry */
}
END_TEST

/* ------------------------------------------------------------------------
 * Suite
 * ------------------------------------------------------------------------ */

/* Builds the harness suite: one server per Redis TCase, started in an
 * unchecked fixture; the other TCases need no server. */
Suite *harness_suite(void)
{
    Suite *s = suite_create("harness");
    TCase *tc;

    tc = tcase_create("redis");
    tcase_add_unchecked_fixture(tc, redis_setup, redis_teardown);
    tcase_add_checked_fixture(tc, flush_setup, NULL);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_harness_redis_answers);
    tcase_add_test(tc, test_harness_redis_sigstop_sigcont);
    tcase_add_test(tc, test_harness_redis_kill_restart_same_port);
    tcase_add_test(tc, test_harness_redis_pid_after_restart);
    suite_add_tcase(s, tc);

    tc = tcase_create("aof");
    tcase_add_unchecked_fixture(tc, redis_aof_setup, redis_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_harness_aof_restart_keeps_data);
    tcase_add_test(tc, test_harness_aof_restart_while_running);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_harness_start_stop_cleanup);
    tcase_add_test(tc, test_harness_start_bad_option_fails);
    suite_add_tcase(s, tc);

    tc = tcase_create("wait");
    tcase_add_test(tc, test_harness_wait_for_times_out);
    tcase_add_test(tc, test_harness_wait_for_succeeds);
    tcase_add_test(tc, test_harness_wait_for_slow_factor);
    suite_add_tcase(s, tc);

    tc = tcase_create("process");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_harness_spawn_exit_status);
    tcase_add_test(tc, test_harness_spawn_log_and_stdin);
    tcase_add_test(tc, test_harness_spawn_wrap);
    tcase_add_test(tc, test_harness_spawn_nofile_wrap);
    tcase_add_test(tc, test_harness_wait_exit_and_kill);
    tcase_add_test(tc, test_harness_files);
    tcase_add_test(tc, test_harness_cpu_ms);
    suite_add_tcase(s, tc);

    return s;
}
