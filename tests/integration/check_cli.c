/* check_cli.c -- where every command finds its configuration (-c, then
 * SLUICE_CONFIG, then ./config/sluice.json, then /etc/sluice/sluice.json,
 * then the built-in defaults), and `sluice health` against a real pool
 * and a real Redis, with and without a metrics listener.
 *
 * The configuration tests run the binary from a temp dir (the test
 * process chdir()s there and back), since the search starts in the
 * working directory. SLUICE_BIN must be absolute for that, as `make test`
 * gives it. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <check.h>
#include "harness.h"
#include "config.h"

static struct sl_test_redis srv;  /* one server per TCase */
static char *dir;                 /* temp dir of the current test */
static char cwd[PATH_MAX];        /* working dir to return to */
static char bin[PATH_MAX];        /* the binary under test, absolute */
static pid_t pool;                /* a `sluice run` under test, 0 when none */

/* Unchecked fixture: one redis-server for the TCase. */
static void server_up(void)
{
    ck_assert_int_eq(sl_test_redis_start(&srv, NULL), 0);
}

static void server_down(void)
{
    sl_test_redis_cleanup(&srv);
}

/* Checked fixture: a clean database, a temp dir, no configuration from
 * the environment of whoever runs the tests. */
static void test_up(void)
{
    redisContext *c = sl_test_connect(&srv);

    ck_assert_ptr_nonnull(c);
    freeReplyObject(sl_test_cmd(c, "FLUSHALL"));
    redisFree(c);
    dir = sl_test_tmpdir();
    ck_assert_ptr_nonnull(dir);
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    ck_assert_ptr_nonnull(realpath(sl_test_bin(), bin));
    unsetenv("SLUICE_CONFIG");
    unsetenv("SLUICE_REDIS_URL");
    unsetenv("SLUICE_LOG_LEVEL");
    pool = 0;
}

/* Stops a pool left running, goes back to the first working dir (the
 * tests may run unforked, CK_FORK=no), removes the temp dir. */
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
    if (chdir(cwd) != 0)
        perror("chdir");
    unsetenv("SLUICE_CONFIG");
    unsetenv("SLUICE_LOG_LEVEL");
    sl_test_rmtree(dir);
    free(dir);
}

/* Runs the binary with args (NULL-terminated) to completion; returns its
 * exit status and leaves its output in dir/out.log. */
static int run_cli(const char *const *args)
{
    const char *argv[16];
    char log[PATH_MAX + 16];
    int status = -1, i;
    pid_t pid;

    argv[0] = bin;
    for (i = 0; args[i] != NULL && i < 14; i++)
        argv[i + 1] = args[i];
    argv[i + 1] = NULL;
    snprintf(log, sizeof(log), "%s/out.log", dir);
    unlink(log);
    pid = sl_test_spawn(argv, log);
    ck_assert_int_gt(pid, 0);
    ck_assert(sl_test_wait_exit(pid, 20000, &status));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Returns 1 when dir/out.log contains needle. */
static int out_has(const char *needle)
{
    char log[PATH_MAX + 16];

    snprintf(log, sizeof(log), "%s/out.log", dir);
    return sl_test_file_contains(log, needle);
}

/* Returns dir/out.log (new) for a failure message. */
static char *out_text(void)
{
    char log[PATH_MAX + 16];
    char *s;

    snprintf(log, sizeof(log), "%s/out.log", dir);
    s = sl_test_read_file(log);
    return s != NULL ? s : strdup("(no output)");
}

/* Fails with the command's output unless it exited `want`. */
#define ASSERT_CLI(want, args)                                                  \
    do {                                                                        \
        int got_ = run_cli(args);                                               \
        if (got_ != (want)) {                                                   \
            char *o_ = out_text();                                              \
            ck_abort_msg("exit %d, wanted %d; output:\n%s", got_, (want), o_);  \
        }                                                                       \
    } while (0)

/* Writes dir/<name>: a configuration that reaches the test server, one
 * noop worker, no metrics listener. */
static void write_good(const char *name)
{
    char path[PATH_MAX + 64];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    ck_assert_int_eq(sl_test_write_file(path,
        "{ \"redis\": { \"url\": \"%s\", \"connect_timeout_ms\": 1000 },\n"
        "  \"workers\": [ { \"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\" } ],\n"
        "  \"metrics\": { \"listen\": null } }\n", srv.url), 0);
}

/* Writes dir/<name>: a configuration every command refuses (exit 2),
 * naming the file in its message. */
static void write_bad(const char *name)
{
    char path[PATH_MAX + 64];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    ck_assert_int_eq(sl_test_write_file(path, "{ \"not_a_key\": 1 }\n"), 0);
}

/* ------------------------------------------------------------------ */
/* The search path                                                     */
/* ------------------------------------------------------------------ */

/* -c beats SLUICE_CONFIG, which beats ./config/sluice.json. */
START_TEST(test_cli_config_flag_beats_env_beats_cwd)
{
    const char *flag[] = { "workers", "-c", "good.json", NULL };
    const char *none[] = { "workers", NULL };

    ck_assert_int_eq(chdir(dir), 0);
    ck_assert_int_eq(mkdir("config", 0755), 0);
    write_bad("config/sluice.json");
    write_bad("env.json");
    write_good("good.json");
    setenv("SLUICE_CONFIG", "env.json", 1);
    ASSERT_CLI(0, flag);
    ASSERT_CLI(2, none);
    ck_assert(out_has("env.json"));
    ck_assert(out_has("not_a_key"));
    setenv("SLUICE_CONFIG", "good.json", 1);
    ASSERT_CLI(0, none);
}
END_TEST

/* Without -c and SLUICE_CONFIG (or with it empty), ./config/sluice.json
 * is read: a bad one is refused by name, a good one is used. */
START_TEST(test_cli_config_cwd_file_is_read)
{
    const char *none[] = { "workers", NULL };

    ck_assert_int_eq(chdir(dir), 0);
    ck_assert_int_eq(mkdir("config", 0755), 0);
    write_bad("config/sluice.json");
    ASSERT_CLI(2, none);
    ck_assert(out_has("config/sluice.json"));
    setenv("SLUICE_CONFIG", "", 1);
    ASSERT_CLI(2, none);
    ck_assert(out_has("config/sluice.json"));
    write_good("config/sluice.json");
    setenv("SLUICE_LOG_LEVEL", "debug", 1);
    ASSERT_CLI(0, none);
    ck_assert(out_has("event=config path=config/sluice.json"));
}
END_TEST

/* A file named by -c or SLUICE_CONFIG that does not exist is an error
 * naming it, even when a built-in place has a good file. */
START_TEST(test_cli_config_named_missing_file_is_an_error)
{
    const char *flag[] = { "workers", "-c", "nope-flag.json", NULL };
    const char *none[] = { "stats", NULL };
    const char *health[] = { "health", NULL };

    ck_assert_int_eq(chdir(dir), 0);
    ck_assert_int_eq(mkdir("config", 0755), 0);
    write_good("config/sluice.json");
    ASSERT_CLI(2, flag);
    ck_assert(out_has("nope-flag.json: cannot open"));
    setenv("SLUICE_CONFIG", "nope-env.json", 1);
    ASSERT_CLI(2, none);
    ck_assert(out_has("nope-env.json: cannot open"));
    ASSERT_CLI(2, health);
    ck_assert(out_has("nope-env.json: cannot open"));
}
END_TEST

/* A configuration naming cluster seeds with a worker whose stream has no
 * hash tag: `sluice run` refuses it (exit 2, naming the worker and
 * saying why), since the stream's keys could not share one slot. */
START_TEST(test_cli_run_refuses_cluster_untagged)
{
    char path[PATH_MAX + 64];
    const char *args[] = { "run", "-c", path, NULL };

    snprintf(path, sizeof(path), "%s/cluster.json", dir);
    ck_assert_int_eq(sl_test_write_file(path,
        "{ \"redis\": { \"url\": \"%s\", \"cluster_nodes\": [\"127.0.0.1:1\"] },\n"
        "  \"workers\": [ { \"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\" } ],\n"
        "  \"metrics\": { \"listen\": null } }\n", srv.url), 0);
    ASSERT_CLI(2, args);
    ck_assert(out_has("workers[0].stream \"s\": on a Redis Cluster (redis.cluster_nodes) "
                      "a stream needs a hash tag"));
}
END_TEST

/* With no file anywhere, the built-in defaults are used (with --redis to
 * reach the test server). /etc/sluice/sluice.json is the one place this
 * test cannot control; the unit tests cover that step. */
START_TEST(test_cli_config_builtin_defaults_when_no_file)
{
    const char *none[] = { "workers", "--redis", srv.url, NULL };
    struct stat st;

    if (stat("/etc/sluice/sluice.json", &st) == 0) {
        fprintf(stderr, "skipped: /etc/sluice/sluice.json exists on this machine\n");
        return;
    }
    ck_assert_int_eq(chdir(dir), 0);
    setenv("SLUICE_LOG_LEVEL", "debug", 1);
    ASSERT_CLI(0, none);
    ck_assert(out_has("event=config path=\"(built-in defaults)\""));
}
END_TEST

/* `sluice run` finds its file the same way, and `sluice health` with the
 * same SLUICE_CONFIG sees its heartbeats (no listener: Redis mode). */
START_TEST(test_cli_config_run_uses_sluice_config)
{
    char log[PATH_MAX + 16];
    const char *run[] = { bin, "run", NULL };
    const char *health[] = { "health", NULL };

    ck_assert_int_eq(chdir(dir), 0);
    write_good("pool.json");
    setenv("SLUICE_CONFIG", "pool.json", 1);
    snprintf(log, sizeof(log), "%s/pool.log", dir);
    pool = sl_test_spawn(run, log);
    ck_assert_int_gt(pool, 0);
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_file_contains(log, "event=running") ||
                                     !sl_test_pid_alive(pool));
    ck_assert_msg(sl_test_pid_alive(pool), "the pool exited; see %s", log);
    SL_TEST_ASSERT_EVENTUALLY(10000, run_cli(health) == 0);
    ck_assert(out_has("healthy: redis at 127.0.0.1:"));
}
END_TEST

/* ------------------------------------------------------------------ */
/* sluice health                                                       */
/* ------------------------------------------------------------------ */

/* Returns a loopback TCP port nothing listens on (bound, then released). */
static int closed_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(fd, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Writes dir/<name> for the test server (or `url`), one noop worker with
 * two processes and the default timings (an empty "defaults"), and
 * metrics.listen `listen`
 * (JSON text: "null" or a quoted address). Returns the path in buf. */
static const char *write_cfg(char *buf, size_t len, const char *name, const char *url,
                             const char *listen)
{
    char addr[128] = "";
    struct sl_test_config c = {
        url != NULL ? url : srv.url, "\"connect_timeout_ms\": 1000, \"command_timeout_ms\": 2000",
        NULL, NULL, "{ \"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 2 }",
        NULL
    };

    /* listen is JSON text: null, or a quoted address. */
    if (strcmp(listen, "null") != 0 && sscanf(listen, "\"%127[^\"]\"", addr) == 1)
        c.metrics_listen = addr;
    snprintf(buf, len, "%s/%s", dir, name);
    ck_assert_int_eq(sl_test_config_write(buf, &c), 0);
    return buf;
}

/* Starts `sluice run -c cfg` and waits for its metrics port (when it
 * listens) or its first running child. Returns the port or 0. */
static int start_pool(const char *cfg, int metrics)
{
    char log[PATH_MAX + 16];
    const char *argv[] = { bin, "run", "-c", cfg, NULL };
    const char *needle = "event=metrics_listening addr=127.0.0.1:";
    const char *p;
    char *s;
    int port = 0;

    snprintf(log, sizeof(log), "%s/pool.log", dir);
    pool = sl_test_spawn(argv, log);
    ck_assert_int_gt(pool, 0);
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_file_contains(log, metrics ? needle : "event=running") ||
                                     !sl_test_pid_alive(pool));
    ck_assert_msg(sl_test_pid_alive(pool), "the pool exited; see %s", log);
    if (metrics) {
        s = sl_test_read_file(log);
        ck_assert_ptr_nonnull(s);
        p = strstr(s, needle);
        ck_assert_ptr_nonnull(p);
        port = atoi(p + strlen(needle));
        free(s);
        ck_assert_int_gt(port, 0);
    }
    return port;
}

/* Stops the pool gracefully and checks it exited 0. */
static void stop_pool(void)
{
    int status = -1;

    sl_test_kill(pool, SIGTERM);
    ck_assert(sl_test_wait_exit(pool, 15000, &status));
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "pool status 0x%x", status);
    pool = 0;
}

/* A pool with a listener: health asks its /healthz. 0 once it is up
 * (also through a wildcard address, reached over loopback); 1 with the
 * reason when nothing listens there any more. */
START_TEST(test_cli_health_listener_pool_up_then_down)
{
    char cfg[PATH_MAX + 64], hcfg[PATH_MAX + 64], addr[64], wild[64];
    const char *hc[] = { "health", "-c", hcfg, NULL };
    const char *hw[] = { "health", "-c", hcfg, "--metrics", wild, NULL };
    int port;

    write_cfg(cfg, sizeof(cfg), "pool.json", NULL, "\"127.0.0.1:0\"");
    port = start_pool(cfg, 1);
    snprintf(addr, sizeof(addr), "\"127.0.0.1:%d\"", port);
    snprintf(wild, sizeof(wild), "0.0.0.0:%d", port);
    write_cfg(hcfg, sizeof(hcfg), "health.json", NULL, addr);
    SL_TEST_ASSERT_EVENTUALLY(10000, run_cli(hc) == 0);
    ck_assert(out_has("healthy: http://127.0.0.1:"));
    ASSERT_CLI(0, hw);
    stop_pool();
    ASSERT_CLI(1, hc);
    ck_assert(out_has("sluice: unhealthy: /healthz: cannot connect to 127.0.0.1 port"));
}
END_TEST

/* The two health checks agree from the start: once /healthz says 200,
 * every child has written its heartbeat, so `health --metrics none`
 * (which reads the heartbeats in Redis) says healthy too. A child used
 * to count as up when its INIT ended and to write its first heartbeat
 * at its first beat tick, up to heartbeat_ms later (5 s here, so that
 * the window is wide; 1 s at the defaults). */
START_TEST(test_cli_health_both_checks_agree_at_start)
{
    char cfg[PATH_MAX + 64], hcfg[PATH_MAX + 64], addr[64];
    const char *hc[] = { "health", "-c", hcfg, NULL };
    const char *hr[] = { "health", "-c", cfg, "--metrics", "none", NULL };
    struct sl_test_config c = {
        srv.url, "\"connect_timeout_ms\": 1000, \"command_timeout_ms\": 2000",
        "\"heartbeat_ms\": 5000", NULL,
        "{ \"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 2 }",
        "127.0.0.1:0"
    };
    int port;

    snprintf(cfg, sizeof(cfg), "%s/beat.json", dir);
    ck_assert_int_eq(sl_test_config_write(cfg, &c), 0);
    port = start_pool(cfg, 1);
    snprintf(addr, sizeof(addr), "\"127.0.0.1:%d\"", port);
    write_cfg(hcfg, sizeof(hcfg), "health.json", NULL, addr);
    SL_TEST_ASSERT_EVENTUALLY(10000, run_cli(hc) == 0);
    ASSERT_CLI(0, hr);
    ck_assert(out_has("healthy: redis at 127.0.0.1:"));
    stop_pool();
}
END_TEST

/* A listener that is not sluice's pool, or a pool that says 503: 1, and
 * the pool's reason is passed on. */
START_TEST(test_cli_health_listener_unreachable_or_503)
{
    char cfg[PATH_MAX + 64], hcfg[PATH_MAX + 64], addr[64], down[64];
    const char *hc[] = { "health", "-c", hcfg, NULL };
    int port;

    /* Nothing listens. */
    snprintf(addr, sizeof(addr), "\"127.0.0.1:%d\"", closed_port());
    write_cfg(hcfg, sizeof(hcfg), "health.json", NULL, addr);
    ASSERT_CLI(1, hc);
    ck_assert(out_has("cannot connect"));

    /* A pool whose Redis is gone never starts its children: 503. */
    snprintf(down, sizeof(down), "redis://127.0.0.1:%d", closed_port());
    write_cfg(cfg, sizeof(cfg), "pool.json", down, "\"127.0.0.1:0\"");
    port = start_pool(cfg, 1);
    snprintf(addr, sizeof(addr), "\"127.0.0.1:%d\"", port);
    write_cfg(hcfg, sizeof(hcfg), "health.json", NULL, addr);
    ASSERT_CLI(1, hc);
    ck_assert(out_has("/healthz answered 503: "));
}
END_TEST

/* Whatever listens on the metrics port wrote the /healthz body, so a
 * control sequence in it is shown escaped, never sent to the terminal. */
START_TEST(test_cli_health_body_shown_escaped)
{
    static const char answer[] = "HTTP/1.0 503 Service Unavailable\r\n\r\n\x1b[2Jgone\n";
    char hcfg[PATH_MAX + 64], addr[64], req[512];
    const char *hc[] = { "health", "-c", hcfg, NULL };
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), status = 0;
    char *out;
    pid_t srvpid;

    ck_assert_int_ge(lfd, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    /* A one-shot server: answers the first request, then exits. */
    srvpid = fork();
    ck_assert_int_ge(srvpid, 0);
    if (srvpid == 0) {
        int c = accept(lfd, NULL, NULL);

        if (c >= 0 && read(c, req, sizeof(req)) >= 0 &&
            write(c, answer, sizeof(answer) - 1) == (ssize_t)(sizeof(answer) - 1))
            close(c);
        _exit(0);
    }
    close(lfd);
    snprintf(addr, sizeof(addr), "\"127.0.0.1:%d\"", ntohs(a.sin_port));
    write_cfg(hcfg, sizeof(hcfg), "health.json", NULL, addr);
    ASSERT_CLI(1, hc);
    ck_assert(sl_test_wait_exit(srvpid, 5000, &status));
    out = out_text();
    ck_assert_msg(strstr(out, "answered 503: \\x1b[2Jgone") != NULL, "%s", out);
    ck_assert_msg(strchr(out, '\x1b') == NULL, "a raw ESC reached the output: %s", out);
    free(out);
}
END_TEST

/* No listener: Redis must answer and every configured worker must have a
 * live heartbeat on this host. Pool up: 0; pool stopped: 1 naming the
 * worker; Redis unreachable: 1. */
START_TEST(test_cli_health_redis_mode)
{
    char cfg[PATH_MAX + 64], two[PATH_MAX + 64], down[64];
    const char *hc[] = { "health", "-c", cfg, NULL };
    const char *h2[] = { "health", "-c", two, NULL };
    const char *hdown[] = { "health", "-c", cfg, "--redis", down, NULL };

    write_cfg(cfg, sizeof(cfg), "pool.json", NULL, "null");
    start_pool(cfg, 0);
    SL_TEST_ASSERT_EVENTUALLY(10000, run_cli(hc) == 0);
    ck_assert(out_has("healthy: redis at 127.0.0.1:"));

    /* A second worker entry that no pool runs: unhealthy, by name. */
    snprintf(two, sizeof(two), "%s/two.json", dir);
    ck_assert_int_eq(sl_test_write_file(two,
        "{ \"redis\": { \"url\": \"%s\" },\n"
        "  \"workers\": [ { \"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 2 },\n"
        "                 { \"handler\": \"echo\", \"stream\": \"e\", \"group\": \"g\" } ],\n"
        "  \"metrics\": { \"listen\": null } }\n", srv.url), 0);
    ASSERT_CLI(1, h2);
    ck_assert(out_has("sluice: unhealthy: worker echo (stream e, group g) has no live heartbeat"));

    stop_pool();
    SL_TEST_ASSERT_EVENTUALLY(10000, run_cli(hc) == 1);
    ck_assert(out_has("sluice: unhealthy: worker noop (stream s, group g) has no live heartbeat"));

    snprintf(down, sizeof(down), "redis://127.0.0.1:%d", closed_port());
    ASSERT_CLI(1, hdown);
    ck_assert(out_has("cannot reach redis at 127.0.0.1:"));
}
END_TEST


/* ------------------------------------------------------------------ */
/* Help per subcommand, options a subcommand does not read, stats --watch
 * into a pipe. */

/* Runs the binary with args to completion, stdout into dir/stdout.log
 * and stderr into dir/stderr.log; returns its exit status. */
static int run_split(const char *const *args)
{
    char out[PATH_MAX + 16], err[PATH_MAX + 16];
    const char *argv[16];
    int status = -1, i;
    pid_t pid;

    argv[0] = bin;
    for (i = 0; args[i] != NULL && i < 14; i++)
        argv[i + 1] = args[i];
    argv[i + 1] = NULL;
    snprintf(out, sizeof(out), "%s/stdout.log", dir);
    snprintf(err, sizeof(err), "%s/stderr.log", dir);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(127);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    ck_assert(sl_test_wait_exit(pid, 20000, &status));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* dir/NAME (new; never NULL). */
static char *read_log(const char *name)
{
    char path[PATH_MAX + 16];
    char *s;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    s = sl_test_read_file(path);
    return s != NULL ? s : strdup("");
}

/* Every subcommand, an option only it reads (or NULL), and an option it
 * does not read. */
static const struct {
    const char *cmd, *own, *other;
} help_cases[] = {
    { "run", "--workers", "--idle" },
    { "pending", "--idle", "--watch" },
    { "stats", "--watch", "--workers" },
    { "workers", "--json", "--idle" },
    { "dlq", "--all", "--watch" },
    { "enqueue", "--json", "--idle" },
    { "health", "--metrics", "--json" },
};

/* `sluice help X` prints X's own usage on stdout (its options, not
 * another's, its exit codes) and exits 0; `sluice X --help` prints the
 * same text. */
START_TEST(test_cli_help_per_subcommand)
{
    size_t i;

    for (i = 0; i < sizeof(help_cases) / sizeof(help_cases[0]); i++) {
        const char *help[] = { "help", help_cases[i].cmd, NULL };
        const char *flag[] = { help_cases[i].cmd, "--help", NULL };
        char synopsis[64];
        char *a, *b, *e;
        int rc;

        snprintf(synopsis, sizeof(synopsis), "usage: sluice %s", help_cases[i].cmd);
        rc = run_split(help);
        a = read_log("stdout.log");
        e = read_log("stderr.log");
        ck_assert_msg(rc == 0, "help %s: exit %d, stderr: %s", help_cases[i].cmd, rc, e);
        ck_assert_msg(strncmp(a, synopsis, strlen(synopsis)) == 0,
                      "help %s does not start with \"%s\": %s", help_cases[i].cmd, synopsis, a);
        ck_assert_msg(strstr(a, "--config") != NULL && strstr(a, "--redis") != NULL &&
                      strstr(a, "exit codes") != NULL, "help %s: %s", help_cases[i].cmd, a);
        ck_assert_msg(help_cases[i].own == NULL || strstr(a, help_cases[i].own) != NULL,
                      "help %s does not mention %s: %s", help_cases[i].cmd, help_cases[i].own, a);
        ck_assert_msg(strstr(a, help_cases[i].other) == NULL,
                      "help %s mentions %s: %s", help_cases[i].cmd, help_cases[i].other, a);
        rc = run_split(flag);
        b = read_log("stdout.log");
        ck_assert_msg(rc == 0 && strcmp(a, b) == 0, "%s --help: exit %d, differs from help %s: %s",
                      help_cases[i].cmd, rc, help_cases[i].cmd, b);
        free(a);
        free(b);
        free(e);
    }
}
END_TEST

/* `sluice help` and `sluice --help` print the global usage (every
 * subcommand) on stdout; `sluice help nosuch` exits 2. */
START_TEST(test_cli_help_global_and_unknown)
{
    const char *help[] = { "help", NULL };
    const char *flag[] = { "--help", NULL };
    const char *nosuch[] = { "help", "nosuch", NULL };
    char *a, *b, *e;
    size_t i;

    ck_assert_int_eq(run_split(help), 0);
    a = read_log("stdout.log");
    for (i = 0; i < sizeof(help_cases) / sizeof(help_cases[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "sluice %s ", help_cases[i].cmd);
        ck_assert_msg(strstr(a, line) != NULL, "help lacks %s: %s", line, a);
    }
    ck_assert_int_eq(run_split(flag), 0);
    b = read_log("stdout.log");
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    ck_assert_int_eq(run_split(nosuch), 2);
    e = read_log("stderr.log");
    ck_assert_msg(strstr(e, "nosuch") != NULL, "stderr: %s", e);
    free(e);
    a = read_log("stdout.log");
    ck_assert_str_eq(a, "");
    free(a);
}
END_TEST

/* An option that the subcommand does not read is refused: exit 2, the
 * option named, and the subcommand's usage on stderr. */
START_TEST(test_cli_inapplicable_options_refused)
{
    static const struct {
        const char *args[6];
        const char *flag, *synopsis;
    } cases[] = {
        { { "stats", "--workers", "payment:9", NULL }, "--workers", "usage: sluice stats" },
        { { "workers", "--idle", "5", NULL }, "--idle", "usage: sluice workers" },
        { { "pending", "s", "--watch", "2", NULL }, "--watch", "usage: sluice pending" },
        { { "run", "--json", NULL }, "--json", "usage: sluice run" },
        { { "dlq", "list", "--all", "s", NULL }, "--all", "usage: sluice dlq" },
        { { "enqueue", "s", "t", "{}", "--all", NULL }, "--all", "usage: sluice enqueue" },
        { { "dlq", "show", "1-0", "s", "--yes", NULL }, "--yes", "usage: sluice dlq" },
    };
    size_t i;

    /* A reachable Redis, so that only the option can make it fail. */
    setenv("SLUICE_REDIS_URL", srv.url, 1);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = run_split(cases[i].args);
        char *e = read_log("stderr.log");
        ck_assert_msg(rc == 2, "%s %s: exit %d (want 2), stderr: %s", cases[i].args[0],
                      cases[i].flag, rc, e);
        ck_assert_msg(strstr(e, cases[i].flag) != NULL && strstr(e, cases[i].synopsis) != NULL,
                      "%s %s: stderr does not name it with the usage: %s", cases[i].args[0],
                      cases[i].flag, e);
        free(e);
    }
    unsetenv("SLUICE_REDIS_URL");
}
END_TEST

/* `stats --watch 1` into a pipe: reports separated by a blank line,
 * never a screen-control code (ESC). Reads until two reports arrived
 * (to a deadline), then stops it by its PID. */
START_TEST(test_cli_stats_watch_into_pipe_is_plain)
{
    char cfg[PATH_MAX];
    char buf[65536];
    size_t len = 0;
    const char *argv[] = { bin, "stats", "--watch", "1", "-c", cfg, NULL };
    long long deadline = sl_test_now_ms() + 20000LL * sl_test_slow_factor();
    int fds[2], status;
    pid_t pid;

    write_cfg(cfg, sizeof(cfg), "watch.json", NULL, "null");
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        if (dup2(fds[1], 1) < 0)
            _exit(127);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    /* Two reports: the second header line follows a blank line. */
    while (sl_test_now_ms() < deadline && len + 1 < sizeof(buf)) {
        struct pollfd pfd = { fds[0], POLLIN, 0 };
        ssize_t n;
        buf[len] = '\0';
        if (strstr(buf, "\n\nSTREAM") != NULL || strstr(buf, "\033") != NULL)
            break;
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        if ((n = read(fds[0], buf + len, sizeof(buf) - 1 - len)) <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    sl_test_kill(pid, SIGTERM);
    if (!sl_test_wait_exit(pid, 10000, &status)) {
        sl_test_kill(pid, SIGKILL);
        sl_test_wait_exit(pid, 5000, &status);
    }
    close(fds[0]);
    ck_assert_msg(memchr(buf, '\033', len) == NULL, "an ESC byte in the piped output: %s", buf);
    ck_assert_msg(strstr(buf, "\n\nSTREAM") != NULL, "not two reports separated by a blank line: %s",
                  buf);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Redis closing the connection under an admin command                 */
/* ------------------------------------------------------------------ */

/* Returns the state letter of pid in /proc (R, S, T, Z...), or 0. */
static char proc_state(pid_t pid)
{
    char path[64], *text, *p, st = 0;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((text = sl_test_read_file(path)) == NULL)
        return 0;
    if ((p = strrchr(text, ')')) != NULL && p[1] == ' ')
        st = p[2];
    free(text);
    return st;
}

/* Returns the TCP state (as /proc/net/tcp numbers it: 8 is CLOSE_WAIT)
 * of the loopback socket from port to peer, or -1 when none. Both ports:
 * a local port alone also matches an older connection of another peer
 * still in TIME_WAIT (6), which a full run once found first. */
static int tcp_state(int port, int peer)
{
    char *text = sl_test_read_file("/proc/net/tcp"), *line;
    int st = -1;

    if (text == NULL)
        return -1;
    for (line = strchr(text, '\n'); line != NULL && st < 0; line = strchr(line + 1, '\n')) {
        unsigned lport, rport, state;
        if (sscanf(line + 1, " %*d: %*8x:%x %*8x:%x %x", &lport, &rport, &state) == 3 &&
            (int)lport == port && (int)rport == peer)
            st = (int)state;
    }
    free(text);
    return st;
}

/* Reads exactly n bytes from fd within the deadline; returns 1 when it did. */
static int read_n(int fd, char *buf, size_t n, long long deadline)
{
    size_t got = 0;

    while (got < n) {
        struct pollfd p = { fd, POLLIN, 0 };
        ssize_t k;
        if (poll(&p, 1, 100) < 0 || (p.revents == 0 && !sl_test_tick(deadline)))
            return 0;
        if (p.revents == 0)
            continue;
        if ((k = read(fd, buf + got, n - got)) <= 0)
            return 0;
        got += (size_t)k;
    }
    return 1;
}

/* `sluice enqueue` is writing one large entry when "Redis" (here a
 * listening socket of the test, which answers the PING and then reads
 * nothing more) ends the connection: first its FIN, then, while the
 * command is descheduled (SIGSTOP stands in for a busy machine), the
 * reset of the closed socket. The next write on the socket fails with
 * EPIPE. The command must say that Redis went away and exit 1; before,
 * the write raised SIGPIPE and the process died of it without a word
 * (the shell showed exit 141). */
START_TEST(test_cli_redis_gone_mid_write_is_an_error)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    struct linger lg = { 1, 0 };
    char cfg[PATH_MAX + 16], data[PATH_MAX + 16], logp[PATH_MAX + 16], ping[14], url[64];
    int lfd, cfd = -1, rcv = 4096, dfd, status = 0, client_port, server_port, avail = 0;
    long long dl;
    pid_t pid;
    FILE *f;
    size_t i;

    /* The listener: a small receive buffer, so the client's large
     * command cannot all leave its own buffers before the close. */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_eq(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)), 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    server_port = ntohs(a.sin_port);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", server_port);

    /* One 12 MB entry (more than any socket buffer holds), allowed by
     * the configuration's max_payload_bytes. */
    snprintf(cfg, sizeof(cfg), "%s/gone.json", dir);
    ck_assert_int_eq(sl_test_write_file(cfg,
        "{ \"redis\": { \"url\": \"%s\", \"connect_timeout_ms\": 5000, \"command_timeout_ms\": 60000 },\n"
        "  \"defaults\": { \"max_payload_bytes\": 16777216 },\n"
        "  \"metrics\": { \"listen\": null } }\n", url), 0);
    snprintf(data, sizeof(data), "%s/big.txt", dir);
    f = fopen(data, "w");
    ck_assert_ptr_nonnull(f);
    fputs("t {\"x\":\"", f);
    for (i = 0; i < 12 * 1024; i++)
        fprintf(f, "%01024d", 0);
    fputs("\"}\n", f);
    ck_assert_int_eq(fclose(f), 0);

    snprintf(logp, sizeof(logp), "%s/out.log", dir);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* A shell's defaults: SIGPIPE not ignored, nothing blocked. */
        sigset_t none;
        int lg_fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        dfd = open(data, O_RDONLY);
        if (lg_fd < 0 || dfd < 0 || dup2(dfd, 0) < 0 || dup2(lg_fd, 1) < 0 || dup2(lg_fd, 2) < 0)
            _exit(120);
        close(lfd);
        execl(bin, bin, "enqueue", "big", "-", "-c", cfg, (char *)NULL);
        _exit(121);
    }

    dl = sl_test_deadline(20000);
    for (;;) {
        struct pollfd p = { lfd, POLLIN, 0 };
        if (poll(&p, 1, 100) > 0) {
            alen = sizeof(a);
            cfd = accept(lfd, (struct sockaddr *)&a, &alen);
            break;
        }
        if (!sl_test_tick(dl))
            break;
    }
    ck_assert_msg(cfd >= 0, "sluice never connected");
    client_port = ntohs(a.sin_port);
    ck_assert(read_n(cfd, ping, sizeof(ping), dl));
    ck_assert_int_eq(memcmp(ping, "*1\r\n$4\r\nPING\r\n", sizeof(ping)), 0);
    ck_assert_int_eq(write(cfd, "+PONG\r\n", 7), 7);
    /* The XADD is on its way: the client queued all of it. */
    while (ioctl(cfd, FIONREAD, &avail) == 0 && avail == 0 && sl_test_tick(dl))
        ;
    ck_assert_msg(avail > 0, "the XADD never came");
    kill(pid, SIGSTOP);
    while (proc_state(pid) != 'T' && sl_test_tick(dl))
        ;
    ck_assert_int_eq(proc_state(pid), 'T');
    /* "Redis" goes: its FIN (the client's socket now in CLOSE_WAIT),
     * then its reset, since the rest of the command is never read. */
    ck_assert_int_eq(shutdown(cfd, SHUT_WR), 0);
    while (tcp_state(client_port, server_port) != 8 && sl_test_tick(dl))
        ;
    ck_assert_int_eq(tcp_state(client_port, server_port), 8);
    ck_assert_int_eq(setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(cfd);
    close(lfd);
    kill(pid, SIGCONT);
    ck_assert_msg(sl_test_wait_exit(pid, 20000, &status), "sluice enqueue did not end");
    {
        char *out = sl_test_read_file(logp);
        ck_assert_msg(!WIFSIGNALED(status), "killed by signal %d (%s), output: %s",
                      WTERMSIG(status), strsignal(WTERMSIG(status)), out ? out : "");
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit %d, output: %s",
                      WEXITSTATUS(status), out ? out : "");
        ck_assert_msg(out != NULL && strstr(out, "sluice: redis: ") != NULL &&
                      strstr(out, "line 1 not added") != NULL, "output: %s", out ? out : "");
        free(out);
    }
}
END_TEST

/* The other closed pipe: the reader of stdout goes (`sluice stats
 * --watch | head`). Redis is fine, so this is no error: the command ends
 * at its next report, quietly, as other tools do (SIGPIPE, or exit 0),
 * instead of writing reports into the void forever or complaining. */
START_TEST(test_cli_stdout_closed_ends_quietly)
{
    char cfg[PATH_MAX], logp[PATH_MAX + 16], buf[4096];
    const char *argv[] = { bin, "stats", "--watch", "0.2", "-c", cfg, NULL };
    long long dl = sl_test_deadline(20000);
    int fds[2], status = 0, got = 0;
    pid_t pid;
    char *err;

    write_cfg(cfg, sizeof(cfg), "watch.json", NULL, "null");
    snprintf(logp, sizeof(logp), "%s/err.log", dir);
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int efd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        signal(SIGPIPE, SIG_DFL);
        close(fds[0]);
        if (efd < 0 || dup2(fds[1], 1) < 0 || dup2(efd, 2) < 0)
            _exit(127);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    /* The first bytes of a report, then the reader goes. */
    while (!got && sl_test_tick(dl)) {
        struct pollfd pfd = { fds[0], POLLIN, 0 };
        if (poll(&pfd, 1, 100) > 0 && read(fds[0], buf, sizeof(buf)) > 0)
            got = 1;
    }
    close(fds[0]);
    ck_assert_msg(got, "no report on stdout");
    if (!sl_test_wait_exit(pid, 20000, &status)) {
        sl_test_kill(pid, SIGKILL);
        sl_test_wait_exit(pid, 5000, &status);
        ck_abort_msg("stats --watch kept running with its stdout closed");
    }
    ck_assert_msg((WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE) ||
                  (WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "ended with status 0x%x", (unsigned)status);
    err = sl_test_read_file(logp);
    ck_assert_msg(err != NULL && err[0] == '\0', "stderr: %s", err ? err : "(none)");
    free(err);
}
END_TEST

Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *config = tcase_create("config");
    TCase *health = tcase_create("health");
    TCase *usage = tcase_create("usage");
    TCase *gone = tcase_create("redis_gone");

    tcase_add_unchecked_fixture(config, server_up, server_down);
    tcase_add_checked_fixture(config, test_up, test_down);
    tcase_set_timeout(config, 60 * sl_test_slow_factor());
    tcase_add_test(config, test_cli_config_flag_beats_env_beats_cwd);
    tcase_add_test(config, test_cli_config_cwd_file_is_read);
    tcase_add_test(config, test_cli_config_named_missing_file_is_an_error);
    tcase_add_test(config, test_cli_run_refuses_cluster_untagged);
    tcase_add_test(config, test_cli_config_builtin_defaults_when_no_file);
    tcase_add_test(config, test_cli_config_run_uses_sluice_config);
    suite_add_tcase(s, config);

    tcase_add_unchecked_fixture(health, server_up, server_down);
    tcase_add_checked_fixture(health, test_up, test_down);
    tcase_set_timeout(health, 90 * sl_test_slow_factor());
    tcase_add_test(health, test_cli_health_listener_pool_up_then_down);
    tcase_add_test(health, test_cli_health_both_checks_agree_at_start);
    tcase_add_test(health, test_cli_health_listener_unreachable_or_503);
    tcase_add_test(health, test_cli_health_redis_mode);
    tcase_add_test(health, test_cli_health_body_shown_escaped);
    tcase_add_unchecked_fixture(usage, server_up, server_down);
    tcase_add_checked_fixture(usage, test_up, test_down);
    tcase_set_timeout(usage, 90 * sl_test_slow_factor());
    tcase_add_test(usage, test_cli_help_per_subcommand);
    tcase_add_test(usage, test_cli_help_global_and_unknown);
    tcase_add_test(usage, test_cli_inapplicable_options_refused);
    tcase_add_test(usage, test_cli_stats_watch_into_pipe_is_plain);
    suite_add_tcase(s, health);
    suite_add_tcase(s, usage);

    tcase_add_unchecked_fixture(gone, server_up, server_down);
    tcase_add_checked_fixture(gone, test_up, test_down);
    tcase_set_timeout(gone, 60 * sl_test_slow_factor());
    tcase_add_test(gone, test_cli_redis_gone_mid_write_is_an_error);
    tcase_add_test(gone, test_cli_stdout_closed_ends_quietly);
    suite_add_tcase(s, gone);
    return s;
}
