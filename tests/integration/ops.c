/* ops.c -- what the operator-facing suites share (ops.h): processes
 * run to completion, the pool under test, JSON, scraping /metrics, and
 * the fixtures (one redis-server per TCase, a clean database and a
 * scratch directory per test).
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
#include "prom.h"
#include "http.h"
#include "config.h"
#include "sut.h"


struct sl_test_redis srv;  /* the TCase's server (unchecked fixture) */
redisContext *rc;          /* this test's connection (checked fixture) */
char *tmp;                 /* this test's scratch directory */
char host[256];            /* gethostname(): the prefix of consumer names */
pid_t tracked[MAXTRACKED]; /* processes to kill in teardown */



/* ---------------------------------------------------------------------
 * Processes
 * ------------------------------------------------------------------ */

/* Remembers pid so the teardown kills it if the test does not stop it. */
void track(pid_t pid)
{
    int i;

    for (i = 0; i < MAXTRACKED; i++)
        if (tracked[i] == 0) {
            tracked[i] = pid;
            return;
        }
    ck_abort_msg("too many processes to track");
}

/* Forgets pid (the test stopped it itself). */
void untrack(pid_t pid)
{
    int i;

    for (i = 0; i < MAXTRACKED; i++)
        if (tracked[i] == pid)
            tracked[i] = 0;
}

/* Kills every tracked process (SIGKILL; its children die with it) and
 * reaps it. */
void kill_tracked(void)
{
    int i;

    for (i = 0; i < MAXTRACKED; i++)
        if (tracked[i] > 0) {
            sl_test_kill(tracked[i], SIGKILL);
            sl_test_wait_exit(tracked[i], 5000, NULL);
            tracked[i] = 0;
        }
}


/* Frees the texts of o. */
void out_free(struct out *o)
{
    free(o->out);
    free(o->err);
    o->out = o->err = NULL;
}

/* Runs argv (searched in PATH) with stdout and stderr captured separately
 * and stdin from `in` (NULL: /dev/null), with the environment changes of
 * env applied in the child only ("NAME=value" sets, "-NAME" unsets;
 * NULL-terminated, may be NULL). When argv[0] is the binary under test,
 * SLUICE_WRAP's words go in front (valgrind in `make valgrind`). Waits up
 * to timeout_ms (scaled); a command that does not finish by then is
 * killed and fails the test. Returns the captured result (free with
 * out_free()). */
struct out run_env(const char *const argv[], const char *const env[], const char *in,
                          int timeout_ms)
{
    char opath[600], epath[600], wrapbuf[512];
    const char *args[MAXARGS + 1];
    const char *wrap = getenv("SLUICE_WRAP");
    struct out o = { -1, NULL, NULL };
    int n = 0, i, status = 0;
    int ofd, efd, ifd;
    pid_t pid;

    if (wrap != NULL && *wrap != '\0' && strcmp(argv[0], sl_test_bin()) == 0) {
        char *save = NULL, *w;
        snprintf(wrapbuf, sizeof(wrapbuf), "%s", wrap);
        for (w = strtok_r(wrapbuf, " ", &save); w != NULL && n < MAXARGS / 2;
             w = strtok_r(NULL, " ", &save))
            args[n++] = w;
    }
    for (i = 0; argv[i] != NULL; i++) {
        ck_assert_int_lt(n, MAXARGS);
        args[n++] = argv[i];
    }
    args[n] = NULL;
    snprintf(opath, sizeof(opath), "%s/run.out", tmp);
    snprintf(epath, sizeof(epath), "%s/run.err", tmp);
    ofd = open(opath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    efd = open(epath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ifd = open(in != NULL ? in : "/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_msg(ofd >= 0 && efd >= 0 && ifd >= 0, "cannot open capture files: %s", strerror(errno));
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (dup2(ifd, 0) < 0 || dup2(ofd, 1) < 0 || dup2(efd, 2) < 0)
            _exit(127);
        signal(SIGPIPE, SIG_DFL);
        for (i = 0; env != NULL && env[i] != NULL; i++) {
            if (env[i][0] == '-')
                unsetenv(env[i] + 1);
            else
                putenv((char *)env[i]);
        }
        execvp(args[0], (char *const *)args);
        dprintf(2, "cannot exec %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    close(ofd);
    close(efd);
    close(ifd);
    if (!sl_test_wait_exit(pid, timeout_ms, &status)) {
        sl_test_kill(pid, SIGKILL);
        sl_test_wait_exit(pid, 5000, NULL);
        ck_abort_msg("%s did not finish within %d ms", argv[0], timeout_ms);
    }
    o.code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
    o.out = sl_test_read_file(opath);
    o.err = sl_test_read_file(epath);
    ck_assert_ptr_nonnull(o.out);
    ck_assert_ptr_nonnull(o.err);
    return o;
}

/* run_env() with no environment changes, stdin from /dev/null and a 20 s
 * deadline. */
struct out run(const char *const argv[])
{
    return run_env(argv, NULL, NULL, 20000);
}

/* Returns 1 when prog can be found in PATH. */
int have(const char *prog)
{
    const char *const argv[] = { "/bin/sh", "-c", "command -v \"$0\" >/dev/null 2>&1", prog, NULL };
    struct out o = run(argv);
    int ok = o.code == 0;

    out_free(&o);
    return ok;
}

/* Returns how many times needle occurs in the file at path (0 when it
 * cannot be read). */
int file_count(const char *path, const char *needle)
{
    char *s = sl_test_read_file(path);
    const char *p;
    int n = 0;

    for (p = s; p != NULL && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(s);
    return n;
}

/* Returns the number that follows the last occurrence of needle in the
 * file at path, or -1 when there is none. */
long long file_last_number(const char *path, const char *needle)
{
    char *s = sl_test_read_file(path);
    const char *p, *last = NULL;
    long long v = -1;

    for (p = s; p != NULL && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        last = p;
    if (last != NULL)
        v = strtoll(last + strlen(needle), NULL, 10);
    free(s);
    return v;
}

/* Returns a loopback TCP port nothing listens on (bound, then released). */
int closed_port(void)
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

/* ---------------------------------------------------------------------
 * The pool under test
 * ------------------------------------------------------------------ */


/* Writes a configuration for the harness server with short timings:
 * `workers` is the JSON text inside "workers": [...], `extra` more
 * "defaults" keys (text starting with a comma, or ""), and metrics on a
 * free loopback port when `metrics` is set. Returns the path in buf. */
const char *write_config(char *buf, size_t len, const char *name, const char *workers,
                                const char *extra, int metrics)
{
    struct sl_test_config c = {
        srv.url, "\"connect_timeout_ms\": 1000, \"command_timeout_ms\": 2000",
        "\"block_ms\": 200, \"heartbeat_ms\": 100, \"reclaim_idle_ms\": 2000, "
        "\"reclaim_interval_ms\": 300, \"retry_backoff_ms\": [50, 400], "
        "\"shutdown_timeout_ms\": 3000, \"max_deliveries\": 5",
        extra, workers, metrics ? "127.0.0.1:0" : NULL
    };

    snprintf(buf, len, "%s/%s.json", tmp, name);
    ck_assert_int_eq(sl_test_config_write(buf, &c), 0);
    return buf;
}

/* Starts `sluice run` on a configuration made by write_config() and waits
 * until `children` workers log event=running (and, with metrics, until
 * the metrics port is logged). */
void pool_start(struct pool *p, const char *workers, const char *extra, int metrics,
                       int children)
{
    int rv;

    memset(p, 0, sizeof(*p));
    write_config(p->cfg, sizeof(p->cfg), "pool", workers, extra, metrics);
    snprintf(p->log, sizeof(p->log), "%s/pool.log", tmp);
    p->pid = sl_test_pool_spawn(p->cfg, p->log);
    ck_assert_int_gt(p->pid, 0);
    track(p->pid);
    rv = sl_test_pool_wait_running(p->pid, p->log, children, 10000);
    ck_assert_msg(rv != -1, "the pool exited; see %s", p->log);
    ck_assert_msg(rv == 0, "%d children not running within 10 s; see %s", children, p->log);
    if (metrics) {
        p->port = (int)file_last_number(p->log, "event=metrics_listening addr=127.0.0.1:");
        ck_assert_int_gt(p->port, 0);
    }
}

/* Stops the pool with SIGTERM and checks that it exits 0. */
void pool_stop(struct pool *p)
{
    int status = 0;

    sl_test_kill(p->pid, SIGTERM);
    ck_assert_msg(sl_test_wait_exit(p->pid, 10000, &status), "the pool did not stop");
    untrack(p->pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the pool exited with status 0x%x; see %s", status, p->log);
    p->pid = 0;
}

/* Returns the pid of the child named <host>:<suffix> ("noop:0"), from
 * its last child_started line, or -1. */
pid_t child_pid(const struct pool *p, const char *suffix)
{
    char needle[512];

    snprintf(needle, sizeof(needle), "event=child_started consumer=%s:%s child=", host, suffix);
    return (pid_t)file_last_number(p->log, needle);
}

/* Returns pending + lag of a group (what is left to do), or -1 when the
 * group does not exist yet. */
long long group_backlog(const char *stream, const char *group)
{
    redisReply *r = sl_test_cmd(rc, "XINFO GROUPS %s", stream);
    long long left = -1;
    size_t i, j;

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *g = r->element[i];
        long long pe = 0, la = 0;
        int mine = 0;
        for (j = 0; j + 1 < g->elements; j += 2) {
            const char *k = g->element[j]->str;
            const redisReply *v = g->element[j + 1];
            if (!strcmp(k, "name"))
                mine = !strcmp(v->str, group);
            else if (!strcmp(k, "pending"))
                pe = v->integer;
            else if (!strcmp(k, "lag"))
                la = v->type == REDIS_REPLY_INTEGER ? v->integer : 1000000;
        }
        if (mine)
            left = pe + la;
    }
    freeReplyObject(r);
    return left;
}

/* Returns the number of keys matching pattern. */
size_t count_keys(const char *pattern)
{
    redisReply *r = sl_test_cmd(rc, "KEYS %s", pattern);
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;

    freeReplyObject(r);
    return n;
}

/* ---------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------ */

/* Parses text as one JSON document (new), failing the test otherwise. */
json_t *parse_json(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);

    ck_assert_msg(j != NULL, "not JSON (%s, line %d): %s", e.text, e.line, text);
    return j;
}

/* Returns the integer member key of o, failing unless it is an integer. */
long long jint(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    ck_assert_msg(json_is_integer(v), "\"%s\" is not an integer", key);
    return json_integer_value(v);
}

/* Returns the number member key of o (integer or real). */
double jnum(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    ck_assert_msg(json_is_number(v), "\"%s\" is not a number", key);
    return json_number_value(v);
}

/* Returns the string member key of o, failing unless it is a string. */
const char *jstr(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    ck_assert_msg(json_is_string(v), "\"%s\" is not a string", key);
    return json_string_value(v);
}

/* ---------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------ */

/* Starts the TCase's redis-server (unchecked fixture, runner process). */
void server_up(void)
{
    ck_assert_msg(sl_test_redis_start(&srv, NULL) == 0, "redis-server did not start");
}

/* Stops the TCase's server, whichever process last (re)started it. */
void server_down(void)
{
    sl_test_redis_cleanup(&srv);
}

/* Connects, empties the server, and makes a scratch directory. */
void test_up(void)
{
    memset(tracked, 0, sizeof(tracked));
    ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
    host[sizeof(host) - 1] = '\0';
    tmp = sl_test_tmpdir();
    ck_assert_ptr_nonnull(tmp);
    rc = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(rc);
    freeReplyObject(sl_test_cmd(rc, "FLUSHALL"));
}

/* Kills whatever the test left running and removes its files. */
void test_down(void)
{
    kill_tracked();
    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
    /* SLUICE_KEEP_TMP=1 keeps the logs of a test being chased. */
    if (tmp != NULL && getenv("SLUICE_KEEP_TMP") == NULL)
        sl_test_rmtree(tmp);
    free(tmp);
    tmp = NULL;
}

/* Fails the test unless text is a valid exposition; also runs
 * `promtool check metrics` on it when promtool is installed. */
void assert_exposition(const char *text)
{
    static int promtool = -1;
    char why[512] = "", path[600];
    const char *const argv[] = { "promtool", "check", "metrics", NULL };
    struct out o;

    ck_assert_msg(sl_test_prom_check(text, why, sizeof(why)) == 0, "invalid exposition: %s\n%.2000s", why, text);
    if (promtool < 0) {
        promtool = have("promtool");
        if (!promtool)
            fprintf(stderr, "metrics: promtool not installed (Debian package prometheus): "
                            "/metrics checked by the built-in checker only\n");
    }
    if (!promtool)
        return;
    snprintf(path, sizeof(path), "%s/metrics.txt", tmp);
    ck_assert_int_eq(sl_test_write_file(path, "%s", text), 0);
    o = run_env(argv, NULL, path, 20000);
    ck_assert_msg(o.code == 0, "promtool check metrics: exit %d: %s%s", o.code, o.out, o.err);
    out_free(&o);
}

/* Scrapes /metrics, checks the status, content type and format, and
 * returns the body (new). */
char *scrape(const struct pool *p)
{
    struct sl_test_http h = sl_test_http_get(p->port, "/metrics");
    char *body;

    ck_assert_msg(h.status == 200, "/metrics answered %d", h.status);
    ck_assert_msg(strstr(h.head, "Content-Type: text/plain; version=0.0.4") != NULL,
                  "/metrics content type: %s", h.head);
    assert_exposition(h.body);
    body = h.body;
    h.body = NULL;
    sl_test_http_free(&h);
    return body;
}

/* Returns the value of metric name{worker,stream,group} in a fresh
 * scrape. */
double scrape_value(const struct pool *p, const char *name, const char *worker,
                           const char *stream, const char *group)
{
    char series[512];
    char *text = scrape(p);
    double v;

    snprintf(series, sizeof(series), "%s{worker=\"%s\",stream=\"%s\",group=\"%s\"}", name, worker,
             stream, group);
    v = sl_test_prom_sample(text, series);
    free(text);
    return v;
}

/* Adds a TCase with its own server and the per-test fixture. */
TCase *ops_server_case(Suite *s, const char *name, int timeout_s)
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, server_up, server_down);
    tcase_add_checked_fixture(tc, test_up, test_down);
    tcase_set_timeout(tc, (double)timeout_s * sl_test_slow_factor());
    suite_add_tcase(s, tc);
    return tc;
}

/* GETs /healthz; stores the status and returns the body (new). */
char *healthz(const struct pool *p, int *status)
{
    struct sl_test_http h = sl_test_http_get(p->port, "/healthz");
    char *body = h.body;

    *status = h.status;
    h.body = NULL;
    sl_test_http_free(&h);
    return body != NULL ? body : strdup("");
}

/* Returns 1 when /healthz answers `status` with exactly `body`. */
int healthz_is(const struct pool *p, int status, const char *body)
{
    int st;
    char *b = healthz(p, &st);
    int ok = st == status && strcmp(b, body) == 0;

    free(b);
    return ok;
}

/* Writes a configuration for the harness server whose "redis" object
 * gets `redis_extra` (text starting with a comma, or "") and whose url
 * is `url` (NULL: the server's, without a password). The URL is written
 * as given, unescaped, on purpose: the secrets and limits tests hand the
 * loader URLs that a JSON writer would change. Returns buf. */
const char *secrets_config(char *buf, size_t len, const char *url, const char *redis_extra,
                                  const char *workers)
{
    snprintf(buf, len, "%s/secrets.json", tmp);
    ck_assert_int_eq(sl_test_write_file(buf,
        "{\"redis\": {\"url\": \"%s\", \"connect_timeout_ms\": 1000, \"command_timeout_ms\": 2000%s},\n"
        " \"defaults\": {\"block_ms\": 200, \"heartbeat_ms\": 100, \"retry_backoff_ms\": [50, 400],\n"
        "   \"shutdown_timeout_ms\": 3000},\n"
        " \"workers\": [%s],\n"
        " \"metrics\": {\"listen\": null}}\n",
        url != NULL ? url : srv.url, redis_extra, workers), 0);
    return buf;
}

/* ---------------------------------------------------------------------
 * A stalled consumer group (`sluice pending`, scripts/pending.sh)
 * ------------------------------------------------------------------ */

/* The IDs of the stalled state below. */
const char *const sid[6] = { "1-1", "1-2", "1-3", "1-4", "1-5", "1-6" };

/* Builds a known pending state in stream "jobs", group "g": six entries;
 * consumer stalled-a took 1-1..1-3 and stalled-b 1-4..1-5 with
 * XREADGROUP and never acked; 1-6 is undelivered (lag 1). XCLAIM then
 * sets idle times and delivery counts exactly:
 *   1-1 stalled-a idle 900 s, 4 deliveries
 *   1-2 stalled-a idle 600 s, 2 deliveries
 *   1-3 stalled-a fresh,      1 delivery
 *   1-4 stalled-b idle 700 s, 1 delivery
 *   1-5 stalled-b fresh,      1 delivery */
void make_stalled(void)
{
    redisReply *r;
    int i;

    for (i = 0; i < 6; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD jobs %s type job data {\"n\":%d}", sid[i], i));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs g 0"));
    r = sl_test_cmd(rc, "XREADGROUP GROUP g stalled-a COUNT 3 STREAMS jobs >");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->element[0]->element[1]->elements, 3);
    freeReplyObject(r);
    r = sl_test_cmd(rc, "XREADGROUP GROUP g stalled-b COUNT 2 STREAMS jobs >");
    ck_assert_int_eq(r->element[0]->element[1]->elements, 2);
    freeReplyObject(r);
    freeReplyObject(sl_test_cmd(rc, "XCLAIM jobs g stalled-a 0 1-1 IDLE 900000 RETRYCOUNT 4 JUSTID"));
    freeReplyObject(sl_test_cmd(rc, "XCLAIM jobs g stalled-a 0 1-2 IDLE 600000 RETRYCOUNT 2 JUSTID"));
    freeReplyObject(sl_test_cmd(rc, "XCLAIM jobs g stalled-b 0 1-4 IDLE 700000 JUSTID"));
}

/* The expected consumer, deliveries and base idle (ms) of each entry. */
const struct stalled stalled_want[5] = {
    { "stalled-a", 4, 900000 }, { "stalled-a", 2, 600000 }, { "stalled-a", 1, 0 },
    { "stalled-b", 1, 700000 }, { "stalled-b", 1, 0 },
};

/* Fails unless idle is what make_stalled() set for entry i, give or take
 * the time the test has taken since. */
void assert_idle(int i, long long idle)
{
    long long lo = stalled_want[i].idle, hi = lo + 60000LL * sl_test_slow_factor();

    ck_assert_msg(idle >= lo && idle <= hi, "entry %s: idle %lld not in [%lld, %lld]", sid[i],
                  idle, lo, hi);
}
