/* check_delivery.c -- the delivery guarantees of docs/semantics.md, proven on
 * a real redis-server with the real `sluice run`.
 *
 * Each test writes a configuration into its own temporary directory,
 * starts build/sluice (SLUICE_BIN) with its log in that directory, adds
 * entries with plain XADD, and watches both Redis and the log. The `probe`
 * handler does what each entry's data asks (see workers/probe.c): sleep,
 * crash, retry N times, declare an effect that counts how often it was
 * applied (probe:count:<id>), and with "trace": true log one
 * `event=probe_call` line per call, which tells the test every delivery,
 * by which process, and when.
 *
 * TCases group the tests by theme, each with one redis-server started in
 * an unchecked fixture; a checked fixture empties it before every test
 * and stops the pool after it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <check.h>
#include <hiredis.h>
#include <jansson.h>
#include "harness.h"
#include "config.h"
#include "sut.h"

#define MAX_STOPPED 4             /* children a test may SIGSTOP */
#define MAX_CALLS 64              /* probe_call lines read per entry */
#define RECLAIM_IDLE_MS slow(300) /* reclaim_idle_ms of every test */

static struct sl_test_redis srv;  /* the TCase's server (unchecked fixture) */
static redisContext *rc;          /* this test's connection (checked fixture) */
static char *dir;                 /* this test's temporary directory */
static char cfgpath[512];         /* <dir>/sluice.json */
static char logpath[512];         /* <dir>/sluice.log: the pool's stderr */
static char host[256];            /* gethostname(): consumer names start with it */
static pid_t pool_pid;            /* the `sluice run` under test, 0 when none */
static pid_t stopped[MAX_STOPPED];/* worker children this test SIGSTOPped */
static int nstopped;              /* entries used in stopped[] */
static int cli_runs;              /* admin commands run: names their output files */

/* One probe_call line of the log. */
struct call {
    long pid;                     /* process that ran the handler */
    int attempts;                 /* failed attempts before this call */
    long long deliveries;         /* Redis's delivery count it was given */
    long long mono_ms;            /* CLOCK_MONOTONIC ms at the call */
    char consumer[128];           /* consumer name of that process */
};

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

/* Returns ms scaled by SLUICE_TEST_SLOW, for the handler sleeps and the
 * timeouts written into configurations (valgrind runs everything slower). */
static long long slow(long long ms)
{
    return ms * sl_test_slow_factor();
}

/* Milliseconds since the epoch, to compare with Redis's TIME. */
static long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Returns the kernel's state letter of pid ('R', 'S', 'T', ...), or 0. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    const char *p;
    size_t n;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' ? p[2] : 0;
}

/* Freezes one worker child of the pool (found in its log) and remembers
 * it, so the teardown thaws it even when the test fails before it does. */
static void freeze(pid_t pid)
{
    ck_assert_int_gt(pid, 0);
    ck_assert_int_lt(nstopped, MAX_STOPPED);
    stopped[nstopped++] = pid;
    sl_test_kill(pid, SIGSTOP);
    SL_TEST_ASSERT_EVENTUALLY(5000, proc_state(pid) == 'T');
}

/* Returns 1 once pid no longer exists, reaping it when it is an orphan
 * this process adopted as a child subreaper, else 0. */
static int reaped(pid_t pid)
{
    if (waitpid(pid, NULL, WNOHANG) == pid)
        return 1;
    return kill(pid, 0) == -1 && errno == ESRCH;
}

/* Thaws a child frozen by freeze() and forgets it. */
static void thaw(pid_t pid)
{
    int i;

    for (i = 0; i < nstopped; i++)
        if (stopped[i] == pid) {
            sl_test_kill(pid, SIGCONT);
            stopped[i] = stopped[--nstopped];
            return;
        }
}

/* ------------------------------------------------------------------------
 * The pool under test
 * ------------------------------------------------------------------------ */

/* Writes the configuration: test-sized defaults (reclaim_idle_ms scaled
 * like the handler sleeps, so that a slow machine does not look like a
 * hung handler), except those that
 * `extra` sets itself (more "defaults" members, each starting with a
 * comma, or ""), then `extra`, and the JSON text of the "workers"
 * array's members. */
static void write_config(const char *extra, const char *workers)
{
    char base[512], redis[128];
    struct sl_test_config c = { srv.url, redis, base, extra, workers, NULL };

    snprintf(base, sizeof base,
             "\"batch\": 16, \"block_ms\": 500, \"reclaim_idle_ms\": %lld, "
             "\"reclaim_interval_ms\": 100, \"heartbeat_ms\": 100, "
             "\"retry_backoff_ms\": [50, 400], \"shutdown_timeout_ms\": 2000, \"trim\": \"none\"",
             RECLAIM_IDLE_MS);
    snprintf(redis, sizeof redis, "\"connect_timeout_ms\": 1000, \"command_timeout_ms\": %lld",
             slow(5000));
    ck_assert_int_eq(sl_test_config_write(cfgpath, &c), 0);
}

/* Starts `sluice run` on the configuration written last. The URL is also
 * given on the command line, so a SLUICE_REDIS_URL in the environment
 * cannot send the pool elsewhere. */
static void pool_start(void)
{
    const char *extra[] = { "--redis", srv.url, NULL };

    pool_pid = sl_test_pool_spawn_args(cfgpath, logpath, extra);
    ck_assert_int_gt(pool_pid, 0);
}

/* Stops the pool: thaws what the test froze, SIGTERM (graceful), and
 * SIGKILL when it has not exited after 10 s. Returns its wait status, or
 * -1 when it was killed or there was none. */
static int pool_stop(void)
{
    int status = -1;

    while (nstopped > 0)
        thaw(stopped[0]);
    if (pool_pid <= 0)
        return -1;
    sl_test_kill(pool_pid, SIGTERM);
    if (!sl_test_wait_exit(pool_pid, 10000, &status)) {
        sl_test_kill(pool_pid, SIGKILL);
        sl_test_wait_exit(pool_pid, 5000, NULL);
        status = -1;
    }
    pool_pid = 0;
    return status;
}

/* Runs `sluice ARGS... -c CFG --redis URL` to completion and returns its
 * exit code; its stdout and stderr go to *out (new: free()). */
static int cli(char **out, const char *a1, const char *a2, const char *a3, const char *a4)
{
    const char *argv[12];
    char path[600];
    int n = 0, status = 0;
    pid_t pid;

    argv[n++] = sl_test_bin();
    argv[n++] = a1;
    if (a2 != NULL) argv[n++] = a2;
    if (a3 != NULL) argv[n++] = a3;
    if (a4 != NULL) argv[n++] = a4;
    argv[n++] = "-c";
    argv[n++] = cfgpath;
    argv[n++] = "--redis";
    argv[n++] = srv.url;
    argv[n] = NULL;
    snprintf(path, sizeof path, "%s/cli-%d.out", dir, ++cli_runs);
    pid = sl_test_spawn(argv, path);
    ck_assert_int_gt(pid, 0);
    ck_assert_msg(sl_test_wait_exit(pid, 10000, &status), "sluice %s did not exit", a1);
    *out = sl_test_read_file(path);
    ck_assert_ptr_nonnull(*out);
    ck_assert_msg(WIFEXITED(status), "sluice %s died", a1);
    return WEXITSTATUS(status);
}

/* ------------------------------------------------------------------------
 * The log
 * ------------------------------------------------------------------------ */

/* Counts the lines of the pool's log holding every one of the (up to
 * two) needles; b may be NULL. */
static int log_count(const char *a, const char *b)
{
    char *text = sl_test_read_file(logpath), *line, *save = NULL;
    int n = 0;

    if (text == NULL)
        return 0;
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        if (strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL))
            n++;
    free(text);
    return n;
}

/* Copies the value of `key` in one logfmt line (unquoted values only)
 * into out. Returns 1 when found, else 0. */
static int kv(const char *line, const char *key, char *out, size_t size)
{
    char pat[64];
    const char *p;
    size_t n;

    snprintf(pat, sizeof pat, " %s=", key);
    if ((p = strstr(line, pat)) == NULL)
        return 0;
    p += strlen(pat);
    n = strcspn(p, " \n");
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 1;
}

/* Reads the probe_call lines of entry `id` into calls (in log order, at
 * most max). Returns how many there are. */
static int calls_of(const char *id, struct call *calls, int max)
{
    char *text = sl_test_read_file(logpath), *line, *save = NULL;
    char want[96], v[128];
    int n = 0;

    if (text == NULL)
        return 0;
    snprintf(want, sizeof want, "event=probe_call id=%s ", id);
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strstr(line, want) == NULL)
            continue;
        if (n < max) {
            struct call *c = &calls[n];
            memset(c, 0, sizeof *c);
            if (kv(line, "pid", v, sizeof v)) c->pid = strtol(v, NULL, 10);
            if (kv(line, "attempts", v, sizeof v)) c->attempts = (int)strtol(v, NULL, 10);
            if (kv(line, "deliveries", v, sizeof v)) c->deliveries = strtoll(v, NULL, 10);
            if (kv(line, "mono_ms", v, sizeof v)) c->mono_ms = strtoll(v, NULL, 10);
            kv(line, "consumer", c->consumer, sizeof c->consumer);
        }
        n++;
    }
    free(text);
    return n;
}

/* Returns how often entry id was handed to the probe handler. */
static int ncalls(const char *id)
{
    struct call c[MAX_CALLS];

    return calls_of(id, c, MAX_CALLS);
}

/* Returns the pid of the `nth` (from 1) child the supervisor logged as
 * started, or 0 when there is no such line yet. */
static pid_t child_pid(int nth)
{
    char *text = sl_test_read_file(logpath), *line, *save = NULL, v[32];
    pid_t pid = 0;
    int n = 0;

    if (text == NULL)
        return 0;
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        if (strstr(line, "event=child_started") != NULL && ++n == nth &&
            kv(line, "child", v, sizeof v))
            pid = (pid_t)strtol(v, NULL, 10);
    free(text);
    return pid;
}

/* ------------------------------------------------------------------------
 * Redis
 * ------------------------------------------------------------------------ */

/* XADDs the fields (names and values with explicit lengths, so values
 * may hold any byte) to stream under `id` ("*" for a new one), and copies
 * the new entry's ID into out (64 bytes). */
static void xadd_n(char *out, const char *stream, const char *id, int nfields,
                   const char *const *fv, const size_t *lens)
{
    const char *argv[64];
    size_t argl[64];
    redisReply *r;
    int i, n = 0;

    ck_assert_int_le(2 * nfields + 3, 64);
    argv[n] = "XADD"; argl[n++] = 4;
    argv[n] = stream; argl[n++] = strlen(stream);
    argv[n] = id; argl[n++] = strlen(id);
    for (i = 0; i < 2 * nfields; i++, n++) {
        argv[n] = fv[i];
        argl[n] = lens != NULL ? lens[i] : strlen(fv[i]);
    }
    r = redisCommandArgv(rc, n, argv, argl);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->type == REDIS_REPLY_STRING, "XADD %s failed: %s", stream,
                  r->type == REDIS_REPLY_ERROR ? r->str : "?");
    snprintf(out, 64, "%s", r->str);
    freeReplyObject(r);
}

/* XADDs an entry with `type` and `data` (either may be NULL to leave the
 * field out) to stream; the new ID goes to out. */
static void xadd(char *out, const char *stream, const char *type, const char *data)
{
    const char *fv[4];
    int n = 0;

    if (type != NULL) {
        fv[2 * n] = "type";
        fv[2 * n + 1] = type;
        n++;
    }
    if (data != NULL) {
        fv[2 * n] = "data";
        fv[2 * n + 1] = data;
        n++;
    }
    xadd_n(out, stream, "*", n, fv, NULL);
}

/* Returns the number of entries pending in the group. */
static long long pending(const char *stream, const char *group)
{
    redisReply *r = sl_test_cmd(rc, "XPENDING %s %s", stream, group);
    long long n;

    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_ge(r->elements, 1);
    n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* Returns the value of probe:count:<id>: how often its effect was applied. */
static long long applied(const char *id)
{
    return sl_test_int(rc, "GET probe:count:%s", id);
}

/* Returns the XLEN of <stream>:dead. */
static long long dead_len(const char *stream)
{
    return sl_test_int(rc, "XLEN %s:dead", stream);
}

/* Returns the HLEN of the attempts hash sluice keeps for stream and group. */
static long long attempts_len(const char *stream, const char *group)
{
    char key[256];

    snprintf(key, sizeof key, "sluice:attempts:%zu:%s:%s", strlen(stream), stream, group);
    return sl_test_int(rc, "HLEN %s", key);
}

/* Returns 1 when field of the hash key holds exactly want, else 0. */
static int hash_is(const char *key, const char *field, const char *want)
{
    char *v = sl_test_str(rc, "HGET %s %s", key, field);
    int yes = v != NULL && strcmp(v, want) == 0;

    free(v);
    return yes;
}

/* Returns the fields of entry id of stream as a flat reply array (the
 * whole XRANGE reply is returned: new, freeReplyObject()). */
static redisReply *entry(const char *stream, const char *id)
{
    redisReply *r = sl_test_cmd(rc, "XRANGE %s %s %s", stream, id, id);

    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_msg(r->elements == 1, "no entry %s in %s", id, stream);
    return r;
}

/* Returns the flat field array of an XRANGE reply of one entry. */
static const redisReply *fields_of(const redisReply *range)
{
    return range->element[0]->element[1];
}

/* Returns 1 when the reply string r equals the NUL-terminated s. */
static int eq(const redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_STRING && (size_t)r->len == strlen(s) &&
           memcmp(r->str, s, (size_t)r->len) == 0;
}

/* Returns 1 when s is a non-empty string of decimal digits. */
static int decimal(const redisReply *r)
{
    size_t i;

    if (r->type != REDIS_REPLY_STRING || r->len == 0)
        return 0;
    for (i = 0; i < r->len; i++)
        if (r->str[i] < '0' || r->str[i] > '9')
            return 0;
    return 1;
}

/* The fields sluice adds to a dead letter. */
static const char *const added_names[] = {
    "error", "source_id", "deliveries", "consumer", "failed_at", "attempts"
};
#define NADDED 6

/* Returns the index of name in added_names, or -1. */
static int added_index(const redisReply *name)
{
    int i;

    for (i = 0; i < NADDED; i++)
        if (eq(name, added_names[i]))
            return i;
    return -1;
}

/* Checks the dead letter of entry `id` of `stream`: exactly one entry of
 * <stream>:dead names it as source_id; it holds every field of `orig`
 * (the flat field array the entry had), in order and byte for byte,
 * except those whose names sluice adds (the added field wins) and, when
 * `trimmed`, all but type and data; then each added field exactly once
 * and nothing else. `error` must start with `code` (a code, or a code and
 * its detail), `deliveries` and `failed_at` are decimal, failed_at lies
 * between `since` (wall ms) and now, and `consumer` is one of this host's
 * consumer names. Returns the error text in a static buffer. */
static const char *assert_dead(const char *stream, const char *id, const redisReply *orig,
                               int trimmed, const char *code, long long since)
{
    static char err[1024];
    redisReply *r = sl_test_cmd(rc, "XRANGE %s:dead - +", stream);
    const redisReply *dl = NULL, *f, *v;
    size_t i, j, next = 0;
    int seen[NADDED] = { 0 }, found = 0, k;
    char hostc[300];

    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    for (i = 0; i < r->elements; i++) {
        f = r->element[i]->element[1];
        for (j = 0; j + 1 < f->elements; j += 2)
            if (eq(f->element[j], "source_id") && eq(f->element[j + 1], id)) {
                dl = f;
                found++;
            }
    }
    ck_assert_msg(found == 1, "%s:%s: %d dead letters, expected exactly 1", stream, id, found);
    err[0] = '\0';
    snprintf(hostc, sizeof hostc, "%s:", host);
    for (j = 0; j + 1 < dl->elements; j += 2) {
        const redisReply *name = dl->element[j];
        v = dl->element[j + 1];
        k = added_index(name);
        if (k >= 0) {
            ck_assert_msg(seen[k]++ == 0, "%s:%s: field %s twice", stream, id, added_names[k]);
            if (k == 0)
                snprintf(err, sizeof err, "%.*s", (int)v->len, v->str);
            else if (k == 1)
                ck_assert(eq(v, id));
            else if (k == 2)
                ck_assert_msg(decimal(v) && strtoll(v->str, NULL, 10) >= 1,
                              "%s:%s: deliveries %s", stream, id, v->str);
            else if (k == 3)
                ck_assert_msg(strncmp(v->str, hostc, strlen(hostc)) == 0,
                              "%s:%s: consumer %s", stream, id, v->str);
            else if (k == 5)
                ck_assert_msg(decimal(v), "%s:%s: attempts %s", stream, id, v->str);
            else
                ck_assert_msg(decimal(v) && strtoll(v->str, NULL, 10) >= since - 1000 &&
                              strtoll(v->str, NULL, 10) <= wall_ms() + 1000,
                              "%s:%s: failed_at %s", stream, id, v->str);
            continue;
        }
        /* An original field: the next one of orig that the dead letter
         * keeps must be this one, byte for byte. */
        while (next + 1 < orig->elements &&
               (added_index(orig->element[next]) >= 0 ||
                (trimmed && !eq(orig->element[next], "type") &&
                 !eq(orig->element[next], "data"))))
            next += 2;
        ck_assert_msg(next + 1 < orig->elements, "%s:%s: extra field %.*s", stream, id,
                      (int)name->len, name->str);
        ck_assert_msg(name->len == orig->element[next]->len &&
                      memcmp(name->str, orig->element[next]->str, (size_t)name->len) == 0 &&
                      v->len == orig->element[next + 1]->len &&
                      memcmp(v->str, orig->element[next + 1]->str, (size_t)v->len) == 0,
                      "%s:%s: field %.*s differs from the original", stream, id,
                      (int)name->len, name->str);
        next += 2;
    }
    while (next + 1 < orig->elements &&
           (added_index(orig->element[next]) >= 0 ||
            (trimmed && !eq(orig->element[next], "type") && !eq(orig->element[next], "data"))))
        next += 2;
    ck_assert_msg(next >= orig->elements, "%s:%s: original field %s missing", stream, id,
                  next < orig->elements ? orig->element[next]->str : "?");
    for (k = 0; k < NADDED; k++)
        ck_assert_msg(seen[k] == 1, "%s:%s: no %s", stream, id, added_names[k]);
    ck_assert_msg(strncmp(err, code, strlen(code)) == 0, "%s:%s: error \"%s\", expected \"%s...\"",
                  stream, id, err, code);
    freeReplyObject(r);
    return err;
}

/* ------------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------------ */

/* Starts the TCase's redis-server (unchecked fixture, runner process). */
static void server_up(void)
{
    ck_assert_msg(sl_test_redis_start(&srv, NULL) == 0, "redis-server did not start");
}

/* Stops the TCase's server and removes its directory. */
static void server_down(void)
{
    sl_test_redis_cleanup(&srv);
}

/* Before each test: an empty server with no memory limit, a fresh
 * temporary directory for the configuration and the log. */
static void test_up(void)
{
    rc = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(rc);
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET maxmemory 0"));
    ck_assert_int_eq(sl_test_int(rc, "FLUSHALL"), 0);
    dir = sl_test_tmpdir();
    ck_assert_ptr_nonnull(dir);
    snprintf(cfgpath, sizeof cfgpath, "%s/sluice.json", dir);
    snprintf(logpath, sizeof logpath, "%s/sluice.log", dir);
    ck_assert_int_eq(gethostname(host, sizeof host), 0);
    host[sizeof host - 1] = '\0';
    pool_pid = 0;
    nstopped = 0;
    cli_runs = 0;
}

/* After each test: the pool stopped, the memory limit lifted, the
 * directory removed. (When a test fails in fork mode its process exits
 * at once and the pool dies with it: sl_test_spawn's parent-death
 * signal, then the children's own.) */
static void test_down(void)
{
    pool_stop();
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    if (rc != NULL) {
        freeReplyObject(sl_test_cmd(rc, "CONFIG SET maxmemory 0"));
        redisFree(rc);
    }
    rc = NULL;
    if (dir != NULL) {
        sl_test_rmtree(dir);
        free(dir);
    }
    dir = NULL;
}

/* ------------------------------------------------------------------------
 * TCase "reclaim": entries of dead, slow, stalled consumers
 * ------------------------------------------------------------------------ */

/* Entries in the hands of a consumer that died (a fake one that read them
 * with XREADGROUP and went away) are reclaimed by a live consumer once
 * they have been idle reclaim_idle_ms, not before, and each is handled
 * once and applied once. */
START_TEST(test_delivery_reclaim_from_dead_consumer)
{
    char ids[5][64];
    long long read_at;
    struct call c[MAX_CALLS];
    redisReply *r;
    int i;

    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE s g 0 MKSTREAM"));
    for (i = 0; i < 5; i++)
        xadd(ids[i], "s", "t", "{\"effect\":true,\"trace\":true}");
    read_at = sl_test_now_ms();
    r = sl_test_cmd(rc, "XREADGROUP GROUP g ghost COUNT 10 STREAMS s >");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    ck_assert_int_eq(pending("s", "g"), 5);

    write_config("", "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 2 }");
    pool_start();
    for (i = 0; i < 5; i++)
        SL_TEST_ASSERT_EVENTUALLY(10000, applied(ids[i]) == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);

    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(calls_of(ids[i], c, MAX_CALLS), 1);
        /* Not before it had been idle reclaim_idle_ms since our
         * XREADGROUP was sent (slack for whole milliseconds and for
         * Redis's wall clock against our monotonic one). */
        ck_assert_msg(c[0].mono_ms - read_at >= RECLAIM_IDLE_MS - 5, "%s taken after %lld ms",
                      ids[i], c[0].mono_ms - read_at);
        /* Delivered to the ghost, then to the live consumer. */
        ck_assert_int_eq(c[0].deliveries, 2);
        ck_assert_int_eq(c[0].attempts, 0);
        ck_assert(strncmp(c[0].consumer, host, strlen(host)) == 0);
        ck_assert_int_eq(applied(ids[i]), 1);
    }
    ck_assert_int_ge(log_count("event=reclaimed", NULL), 1);
    ck_assert_int_eq(dead_len("s"), 0);
    ck_assert_int_eq(attempts_len("s", "g"), 0);
}
END_TEST

/* A handler that runs twice as long as reclaim_idle_ms, with a second
 * process ready to reclaim, keeps its entry: the supervisor renews the
 * lease, so the entry is delivered once, applied once, never reclaimed. */
START_TEST(test_delivery_slow_handler_not_reclaimed)
{
    char id[64], data[128];
    struct call c[MAX_CALLS];

    write_config(", \"handler_timeout_ms\": 20000",
                 "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 2 }");
    pool_start();
    SL_TEST_ASSERT_EVENTUALLY(10000, log_count("event=running", NULL) == 2);
    snprintf(data, sizeof data, "{\"sleep_ms\":%lld,\"effect\":true,\"trace\":true}", slow(700));
    xadd(id, "s", "t", data);
    SL_TEST_ASSERT_EVENTUALLY(10000, applied(id) == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);

    ck_assert_int_eq(calls_of(id, c, MAX_CALLS), 1);
    ck_assert_int_eq(c[0].deliveries, 1);
    ck_assert_int_eq(applied(id), 1);
    ck_assert_int_eq(sl_test_int(rc, "LLEN probe:by:%s", id), 1);
    ck_assert_int_eq(log_count("event=reclaimed", NULL), 0);
    ck_assert_int_eq(log_count("event=commit_discarded", NULL), 0);
    ck_assert_int_eq(log_count("event=handler_timeout", NULL), 0);
}
END_TEST

/* A handler past handler_timeout_ms is killed by the supervisor, which
 * counts the attempt as failed; the entry is delivered again, and when
 * every attempt times out it is dead-lettered after max_deliveries with
 * the reason of the last one. */
START_TEST(test_delivery_handler_timeout_dead_letters)
{
    char id[64], data[128], extra[128];
    struct call c[MAX_CALLS];
    long long since = wall_ms();
    redisReply *orig;
    const char *err;
    char want[128];

    snprintf(extra, sizeof extra, ", \"handler_timeout_ms\": %lld, \"max_deliveries\": 2",
             slow(400));
    write_config(extra, "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 1 }");
    snprintf(data, sizeof data, "{\"sleep_ms\":%lld,\"effect\":true,\"trace\":true}", slow(5000));
    xadd(id, "s", "t", data);
    orig = entry("s", id);
    pool_start();
    SL_TEST_ASSERT_EVENTUALLY(15000, dead_len("s") == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);

    snprintf(want, sizeof want, "max_deliveries_exceeded: last attempt timed out after %lld ms",
             slow(400));
    err = assert_dead("s", id, fields_of(orig), 0, want, since);
    ck_assert_str_eq(err, want);
    /* Killed twice, delivered twice, never applied. The supervisor logs
     * attempt_failed when fail.lua's reply comes back, and the second
     * call has dead-lettered the entry by then: waited for, not read at
     * once (a loaded `make test` read the log first: 1 line). */
    ck_assert_int_eq(log_count("event=handler_timeout", id), 2);
    SL_TEST_ASSERT_EVENTUALLY(5000, log_count("event=attempt_failed", id) >= 2);
    ck_assert_int_eq(log_count("event=attempt_failed", id), 2);
    ck_assert_int_eq(calls_of(id, c, MAX_CALLS), 2);
    ck_assert_int_eq(c[0].attempts, 0);
    ck_assert_int_eq(c[1].attempts, 1);
    ck_assert_int_ge(c[1].mono_ms - c[0].mono_ms, slow(400));
    ck_assert_int_eq(applied(id), 0);
    ck_assert_int_eq(attempts_len("s", "g"), 0);
    freeReplyObject(orig);
}
END_TEST

/* Fencing: the consumer holding an entry is frozen (SIGSTOP) inside its
 * handler. The supervisor stops renewing a stopped child's lease, so the
 * other process reclaims the entry and applies it; when the frozen one is
 * thawed, its late commit is discarded by the ownership fence, and the
 * effect stays applied exactly once. */
START_TEST(test_delivery_fencing_discards_stalled_commit)
{
    char id[64], data[128];
    struct call c[MAX_CALLS];
    pid_t frozen;

    write_config(", \"handler_timeout_ms\": 30000",
                 "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 2 }");
    pool_start();
    SL_TEST_ASSERT_EVENTUALLY(10000, log_count("event=running", NULL) == 2);
    snprintf(data, sizeof data, "{\"sleep_ms\":%lld,\"effect\":true,\"trace\":true}", slow(1000));
    xadd(id, "s", "t", data);
    SL_TEST_ASSERT_EVENTUALLY(10000, calls_of(id, c, MAX_CALLS) >= 1);
    calls_of(id, c, MAX_CALLS);
    frozen = (pid_t)c[0].pid;
    freeze(frozen);

    /* The other process takes it over and applies it. */
    SL_TEST_ASSERT_EVENTUALLY(10000, calls_of(id, c, MAX_CALLS) == 2);
    ck_assert_int_ne(c[1].pid, frozen);
    ck_assert_int_eq(c[1].deliveries, 2);
    SL_TEST_ASSERT_EVENTUALLY(10000, applied(id) == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);
    ck_assert_int_eq(proc_state(frozen), 'T');
    ck_assert_int_ge(log_count("event=reclaimed", NULL), 1);

    /* Thawed, the stalled consumer finishes its handler and tries to
     * commit: the fence refuses, nothing is applied twice. */
    thaw(frozen);
    SL_TEST_ASSERT_EVENTUALLY(10000, log_count("event=commit_discarded", id) == 1);
    ck_assert_int_eq(applied(id), 1);
    ck_assert_int_eq(sl_test_int(rc, "LLEN probe:by:%s", id), 1);
    {
        char *by = sl_test_str(rc, "LINDEX probe:by:%s 0", id);
        ck_assert_str_eq(by, c[1].consumer);
        free(by);
    }
    ck_assert_int_eq(calls_of(id, c, MAX_CALLS), 2);
    ck_assert_int_eq(pending("s", "g"), 0);
    ck_assert_int_eq(dead_len("s"), 0);
    ck_assert_int_eq(log_count("event=handler_timeout", NULL), 0);
}
END_TEST

/* Entries deleted while pending, both in the hands of a dead peer and in
 * this slot's own pending list (left by its previous process), are acked
 * and counted, never handed to the handler and never dead-lettered; the
 * others are processed. */
START_TEST(test_delivery_deleted_while_pending)
{
    char ids[5][64], own[300];
    int i;

    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE s g 0 MKSTREAM"));
    for (i = 0; i < 3; i++)
        xadd(ids[i], "s", "t", "{\"effect\":true,\"trace\":true}");
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP g ghost COUNT 3 STREAMS s >"));
    for (i = 3; i < 5; i++)
        xadd(ids[i], "s", "t", "{\"effect\":true,\"trace\":true}");
    snprintf(own, sizeof own, "%s:probe:0", host);
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP g %s COUNT 2 STREAMS s >", own));
    ck_assert_int_eq(pending("s", "g"), 5);
    ck_assert_int_eq(sl_test_int(rc, "XDEL s %s %s", ids[1], ids[4]), 2);

    write_config("", "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 1 }");
    pool_start();
    SL_TEST_ASSERT_EVENTUALLY(10000, pending("s", "g") == 0);
    SL_TEST_ASSERT_EVENTUALLY(5000, applied(ids[0]) == 1 && applied(ids[2]) == 1 &&
                                    applied(ids[3]) == 1);

    ck_assert_int_eq(ncalls(ids[1]), 0);
    ck_assert_int_eq(ncalls(ids[4]), 0);
    ck_assert_int_eq(applied(ids[1]), 0);
    ck_assert_int_eq(applied(ids[4]), 0);
    ck_assert_int_eq(ncalls(ids[0]), 1);
    ck_assert_int_eq(ncalls(ids[2]), 1);
    ck_assert_int_eq(ncalls(ids[3]), 1);
    /* Counted: one from the own recovery, one from the reclaim. */
    ck_assert_int_eq(log_count("event=deleted_pending", "count=1"), 2);
    ck_assert_int_eq(dead_len("s"), 0);
    ck_assert_int_eq(attempts_len("s", "g"), 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * TCase "retry": retries, crashes, lost connections
 * ------------------------------------------------------------------------ */

/* RETRY three times, then ACK: delivered exactly 4 times with attempts
 * 0..3, applied exactly once, and the gaps between deliveries are at
 * least the configured backoff (200, 400, 800 ms, times the slow factor)
 * and grow. */
START_TEST(test_delivery_retry_backoff_grows)
{
    char id[64];
    struct call c[MAX_CALLS];
    long long gap[3], first = slow(200);
    char extra[128];
    int i;

    snprintf(extra, sizeof extra, ", \"retry_backoff_ms\": [%lld, %lld], \"max_deliveries\": 5",
             first, 25 * first);
    write_config(extra, "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 1 }");
    pool_start();
    xadd(id, "s", "t", "{\"retry\":3,\"effect\":true,\"trace\":true}");
    SL_TEST_ASSERT_EVENTUALLY(15000, applied(id) == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);

    ck_assert_int_eq(calls_of(id, c, MAX_CALLS), 4);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(c[i].attempts, i);
    for (i = 0; i < 3; i++) {
        long long want = first << i;
        gap[i] = c[i + 1].mono_ms - c[i].mono_ms;
        ck_assert_msg(gap[i] >= want - 5, "gap %d is %lld ms, less than %lld", i + 1, gap[i], want);
        ck_assert_msg(gap[i] < want + slow(2000), "gap %d is %lld ms", i + 1, gap[i]);
    }
    ck_assert_msg(gap[0] < gap[1] && gap[1] < gap[2], "gaps %lld %lld %lld do not grow",
                  gap[0], gap[1], gap[2]);
    ck_assert_int_eq(applied(id), 1);
    ck_assert_int_eq(dead_len("s"), 0);
    ck_assert_int_eq(attempts_len("s", "g"), 0);
}
END_TEST

/* An entry that crashes its worker every time (abort) is dead-lettered
 * after max_deliveries crashes with the signal in its error, while the
 * entries added behind it are all processed meanwhile, by the very slot
 * that keeps crashing: no head-of-line block. */
START_TEST(test_delivery_crash_no_head_of_line_block)
{
    char poison[64], ids[20][64];
    struct call c[MAX_CALLS];
    long long since = wall_ms();
    redisReply *orig;
    char extra[128];
    int i;

    /* The poison's next attempts come 1 s and 2 s after its first crash:
     * time enough for 20 entries. */
    snprintf(extra, sizeof extra, ", \"retry_backoff_ms\": [%lld, %lld], \"max_deliveries\": 3",
             slow(1000), slow(4000));
    write_config(extra, "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 1 }");
    xadd(poison, "s", "t", "{\"crash\":true,\"trace\":true}");
    orig = entry("s", poison);
    pool_start();
    SL_TEST_ASSERT_EVENTUALLY(10000, log_count("event=attempt_failed", poison) == 1);

    for (i = 0; i < 20; i++)
        xadd(ids[i], "s", "t", "{\"effect\":true}");
    for (i = 0; i < 20; i++)
        SL_TEST_ASSERT_EVENTUALLY(10000, applied(ids[i]) == 1);
    /* All of them went through while the poison was still waiting for
     * its next attempts. */
    ck_assert_int_eq(dead_len("s"), 0);
    ck_assert_int_lt(ncalls(poison), 3);

    SL_TEST_ASSERT_EVENTUALLY(15000, dead_len("s") == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);
    assert_dead("s", poison, fields_of(orig), 0,
                "max_deliveries_exceeded: last crash signal 6", since);
    ck_assert_int_eq(calls_of(poison, c, MAX_CALLS), 3);
    ck_assert_int_eq(c[0].attempts, 0);
    ck_assert_int_eq(c[2].attempts, 2);
    ck_assert_int_eq(log_count("event=child_exited", "signal=6"), 3);
    /* Logged when fail.lua's reply comes back, after the dead letter. */
    SL_TEST_ASSERT_EVENTUALLY(5000, log_count("event=attempt_failed", poison) >= 3);
    ck_assert_int_eq(log_count("event=attempt_failed", poison), 3);
    for (i = 0; i < 20; i++)
        ck_assert_int_eq(applied(ids[i]), 1);
    ck_assert_int_eq(attempts_len("s", "g"), 0);
    freeReplyObject(orig);
}
END_TEST

/* A handler's effect that fails inside Redis for a reason of its own (its
 * INCR meets a key of the wrong type: Redis 7 replies WRONGTYPE, not ERR)
 * is a failed attempt of that entry, not a Redis outage: the entry is
 * dead-lettered after max_deliveries with the error, the worker keeps
 * going, and the entry behind it is applied. */
START_TEST(test_delivery_effect_error_is_failed_attempt)
{
    char bad[64], ok[64];
    long long since = wall_ms();
    redisReply *orig;

    write_config(", \"max_deliveries\": 3",
                 "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 1 }");
    xadd(bad, "s", "t", "{\"effect\":true,\"trace\":true}");
    xadd(ok, "s", "t", "{\"effect\":true}");
    ck_assert_int_eq(sl_test_int(rc, "RPUSH probe:count:%s not-a-counter", bad), 1);
    orig = entry("s", bad);
    pool_start();
    SL_TEST_ASSERT_EVENTUALLY(10000, applied(ok) == 1);
    SL_TEST_ASSERT_EVENTUALLY(10000, dead_len("s") == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);

    assert_dead("s", bad, fields_of(orig), 0, "max_deliveries_exceeded: effect_failed: WRONGTYPE",
                since);
    ck_assert_int_eq(ncalls(bad), 3);
    ck_assert_int_eq(log_count("event=effect_failed", bad), 3);
    /* The failing script wrote nothing. */
    ck_assert_int_eq(sl_test_int(rc, "LLEN probe:count:%s", bad), 1);
    ck_assert_int_eq(sl_test_int(rc, "EXISTS probe:by:%s", bad), 0);
    ck_assert_int_eq(attempts_len("s", "g"), 0);
    ck_assert_int_eq(log_count("event=commit_refused", NULL), 0);
    freeReplyObject(orig);
}
END_TEST

/* Lets the single probe worker of stream s grow its reads: 15 effect
 * entries (its first read takes one entry, and each read after a fast
 * batch twice as many), applied before this returns; probe:order is
 * cleared afterwards. The worker is then blocked on a read of several
 * entries, so entries added in one go by xadd_together() reach it in
 * one batch. */
static void warm_up(void)
{
    char id[64];
    int i;

    for (i = 0; i < 15; i++)
        xadd(id, "s", "t", "{\"effect\":true}");
    SL_TEST_ASSERT_EVENTUALLY(10000, applied(id) == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);
    freeReplyObject(sl_test_cmd(rc, "DEL probe:order"));
}

/* Adds n entries of type t with the given data to stream s in one
 * script, so that a reader blocked on s gets them all in one reply; their
 * IDs go to ids (64 bytes each). */
static void xadd_together(char (*ids)[64], int n, const char *const *data)
{
    const char *argv[16];
    redisReply *r;
    int i, k = 0;

    ck_assert_int_le(n, 10);
    argv[k++] = "EVAL";
    argv[k++] = "local r = {} for i = 1, #ARGV do "
                "r[i] = redis.call('XADD', KEYS[1], '*', 'type', 't', 'data', ARGV[i]) end return r";
    argv[k++] = "1";
    argv[k++] = "s";
    for (i = 0; i < n; i++)
        argv[k++] = data[i];
    r = redisCommandArgv(rc, k, argv, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->elements, n);
    for (i = 0; i < n; i++)
        snprintf(ids[i], 64, "%s", r->element[i]->str);
    freeReplyObject(r);
}

/* Consecutive effect entries of one batch are committed in one script
 * call (a run). One whose effect fails inside Redis (its INCR meets a
 * list) must not take the others down with it: they are applied exactly
 * once and acked, in stream order, while it alone is retried and
 * dead-lettered; the entry dead-lettered by its handler in the middle of
 * the batch splits the run without changing the order. Without the
 * per-entry pcall the whole call would fail after the first entry's
 * writes, and every entry of the run would be retried (the first one
 * applied twice). */
START_TEST(test_delivery_run_one_effect_error)
{
    char ids[6][64];
    const char *order[4];
    long long since = wall_ms();
    redisReply *orig, *r;
    int i;

    static const char *const data[6] = {
        "{\"effect\":true}", "{\"effect\":true,\"trace\":true}", "{\"effect\":true}",
        "{\"dead\":\"probe_dead\"}", "{\"effect\":true}", "{\"effect\":true}"
    };

    write_config(", \"max_deliveries\": 3",
                 "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 1 }");
    pool_start();
    warm_up();
    /* The effect of the second entry will meet a list: its key is the
     * entry's ID, known only once added, so the list is made from the
     * script that adds them (after the XADDs, before any read). */
    {
        const char *argv[10];
        redisReply *r;
        int k = 0;

        argv[k++] = "EVAL";
        argv[k++] = "local r = {} for i = 1, #ARGV do "
                    "r[i] = redis.call('XADD', KEYS[1], '*', 'type', 't', 'data', ARGV[i]) end "
                    "redis.call('RPUSH', 'probe:count:' .. r[2], 'not-a-counter') return r";
        argv[k++] = "1";
        argv[k++] = "s";
        for (i = 0; i < 6; i++)
            argv[k++] = data[i];
        r = redisCommandArgv(rc, k, argv, NULL);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
        for (i = 0; i < 6; i++)
            snprintf(ids[i], 64, "%s", r->element[i]->str);
        freeReplyObject(r);
    }
    orig = entry("s", ids[1]);
    SL_TEST_ASSERT_EVENTUALLY(10000, dead_len("s") == 2);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);

    order[0] = ids[0];
    order[1] = ids[2];
    order[2] = ids[4];
    order[3] = ids[5];
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(applied(order[i]), 1);
    r = sl_test_cmd(rc, "LRANGE probe:order 0 -1");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->elements, 4);
    for (i = 0; i < 4; i++)
        ck_assert_str_eq(r->element[i]->str, order[i]);
    freeReplyObject(r);
    assert_dead("s", ids[1], fields_of(orig), 0, "max_deliveries_exceeded: effect_failed: WRONGTYPE",
                since);
    ck_assert_int_eq(ncalls(ids[1]), 3);
    ck_assert_int_eq(log_count("event=effect_failed", ids[1]), 3);
    ck_assert_int_eq(log_count("event=effect_failed", NULL), 3);
    ck_assert_int_eq(sl_test_int(rc, "LLEN probe:count:%s", ids[1]), 1);
    ck_assert_int_eq(sl_test_int(rc, "EXISTS probe:by:%s", ids[1]), 0);
    ck_assert_int_eq(attempts_len("s", "g"), 0);
    ck_assert_int_eq(log_count("event=commit_refused", NULL), 0);
    ck_assert_int_eq(log_count("event=commit_discarded", NULL), 0);
    freeReplyObject(orig);
}
END_TEST

/* The fence of a run: of three effect entries read in one batch, the
 * first is claimed by another consumer while the handler still works on
 * the second (the run is sent after the batch). The commit skips that
 * one (commit_discarded) and applies the other two; the claimed entry,
 * left by a consumer without a heartbeat, is reclaimed later and
 * applied then: once in all. A run that applied every entry without
 * asking whose it is would apply it twice. */
START_TEST(test_delivery_run_fence_skips_reclaimed)
{
    char a[64], b[64], c[64], data[128];
    redisReply *r;

    write_config(", \"handler_timeout_ms\": 30000",
                 "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 1 }");
    snprintf(data, sizeof data, "{\"sleep_ms\":%lld,\"effect\":true,\"trace\":true}", slow(1500));
    pool_start();
    warm_up();
    {
        const char *d[3] = { "{\"effect\":true}", data, "{\"effect\":true}" };
        char ids[3][64];

        xadd_together(ids, 3, d);
        snprintf(a, sizeof a, "%s", ids[0]);
        snprintf(b, sizeof b, "%s", ids[1]);
        snprintf(c, sizeof c, "%s", ids[2]);
    }
    SL_TEST_ASSERT_EVENTUALLY(10000, ncalls(b) == 1);
    r = sl_test_cmd(rc, "XCLAIM s g other 0 %s", a);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->elements, 1);
    freeReplyObject(r);

    SL_TEST_ASSERT_EVENTUALLY(10000, log_count("event=commit_discarded", a) == 1);
    ck_assert_int_eq(applied(b), 1);
    ck_assert_int_eq(applied(c), 1);
    /* Reclaimed from "other" and applied, once. */
    SL_TEST_ASSERT_EVENTUALLY(10000, applied(a) == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);
    ck_assert_int_eq(applied(a), 1);
    ck_assert_int_eq(sl_test_int(rc, "LLEN probe:by:%s", a), 1);
    {
        char *first = sl_test_str(rc, "LINDEX probe:order 0");
        ck_assert_str_eq(first, b);
        free(first);
    }
    ck_assert_int_eq(log_count("event=commit_discarded", NULL), 1);
    ck_assert_int_eq(dead_len("s"), 0);
}
END_TEST

/* A worker whose connections are killed ten times while it holds a valid
 * entry (each time in the middle of the handler, so the commit is lost)
 * still processes it: applied exactly once, never dead-lettered, no
 * failed attempt recorded, although Redis saw it delivered 11 times and
 * max_deliveries is 3. */
START_TEST(test_delivery_connection_killed_ten_times)
{
    char id[64], data[128];
    struct call c[MAX_CALLS];
    int k;

    write_config(", \"max_deliveries\": 3, \"handler_timeout_ms\": 20000",
                 "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 1 }");
    pool_start();
    SL_TEST_ASSERT_EVENTUALLY(10000, log_count("event=running", NULL) == 1);
    snprintf(data, sizeof data, "{\"sleep_ms\":%lld,\"effect\":true,\"trace\":true}", slow(500));
    xadd(id, "s", "t", data);
    for (k = 1; k <= 10; k++) {
        SL_TEST_ASSERT_EVENTUALLY(20000, ncalls(id) == k);
        ck_assert_msg(applied(id) == 0, "applied before kill %d", k);
        ck_assert_int_ge(sl_test_int(rc, "CLIENT KILL TYPE normal"), 1);
    }
    SL_TEST_ASSERT_EVENTUALLY(20000, applied(id) == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);

    ck_assert_int_eq(calls_of(id, c, MAX_CALLS), 11);
    for (k = 0; k < 11; k++) {
        /* Never a failed attempt; Redis's counter does rise with each
         * recovery after a reconnect (docs/semantics.md), harmlessly: the
         * backstop is 4 * 3 + 10 deliveries. */
        ck_assert_int_eq(c[k].attempts, 0);
        ck_assert_int_eq(c[k].deliveries, k + 1);
    }
    ck_assert_int_eq(applied(id), 1);
    ck_assert_int_eq(dead_len("s"), 0);
    ck_assert_int_eq(attempts_len("s", "g"), 0);
    ck_assert_int_ge(log_count("event=redis_unavailable", NULL), 10);
}
END_TEST

/* The backstop: an entry whose process keeps dying where no supervisor
 * sees it (here the whole pool is SIGKILLed while the handler runs, so
 * nothing records a failed attempt) comes back to the restarted pool
 * through its own recovery, which raises Redis's delivery counter; once
 * that counter passes 4 * max_deliveries + 10 the entry is dead-lettered
 * without being handed to the handler again. The previous lives of slot 0
 * are played by this test (one read and nine re-reads of the pending
 * list, as XREADGROUP ... 0 after reconnects), the last five by real
 * pools. */
START_TEST(test_delivery_backstop_after_invisible_deaths)
{
    char id[64], own[300];
    struct call c[MAX_CALLS];
    long long since = wall_ms();
    redisReply *orig, *r;
    int life, k;

    /* The worker children orphaned by each SIGKILL become ours to reap,
     * rather than init's, which may take its time. */
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    write_config(", \"max_deliveries\": 1, \"handler_timeout_ms\": 60000",
                 "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 1 }");
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE s g 0 MKSTREAM"));
    xadd(id, "s", "t", "{\"sleep_ms\":60000,\"effect\":true,\"trace\":true}");
    orig = entry("s", id);
    snprintf(own, sizeof own, "%s:probe:0", host);
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP g %s COUNT 1 STREAMS s >", own));
    for (k = 0; k < 9; k++)
        freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP g %s COUNT 1 STREAMS s 0", own));
    r = sl_test_cmd(rc, "XPENDING s g - + 1");
    ck_assert_int_eq(r->element[0]->element[3]->integer, 10);
    freeReplyObject(r);

    for (life = 1; life <= 6 && dead_len("s") == 0; life++) {
        pid_t child;
        pool_start();
        SL_TEST_ASSERT_EVENTUALLY(10000, dead_len("s") == 1 || ncalls(id) == life);
        if (dead_len("s") == 1)
            break;
        calls_of(id, c, MAX_CALLS);
        child = (pid_t)c[life - 1].pid;
        sl_test_kill(pool_pid, SIGKILL);
        ck_assert(sl_test_wait_exit(pool_pid, 5000, NULL));
        pool_pid = 0;
        /* Gone for good before the next pool starts: that pool's start
         * check waits until this child's heartbeat has expired. */
        SL_TEST_ASSERT_EVENTUALLY(10000, reaped(child));
    }
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);
    ck_assert_int_eq(life, 5);
    ck_assert_int_eq(calls_of(id, c, MAX_CALLS), 4);
    for (k = 0; k < 4; k++)
        ck_assert_int_eq(c[k].deliveries, 11 + k);
    ck_assert_str_eq(assert_dead("s", id, fields_of(orig), 0, "max_deliveries_exceeded", since),
                     "max_deliveries_exceeded: delivered 15 times");
    ck_assert_int_eq(applied(id), 0);
    ck_assert_int_eq(attempts_len("s", "g"), 0);
    freeReplyObject(orig);
}
END_TEST

/* ------------------------------------------------------------------------
 * TCase "dead": the dead-letter table and `sluice dlq`
 * ------------------------------------------------------------------------ */

/* One bad entry of the dead-letter test: its stream, ID, fields as they
 * were added, and the error its dead letter must carry. */
struct bad {
    const char *stream;           /* source stream */
    char id[64];                  /* entry ID */
    redisReply *orig;             /* XRANGE reply of the entry before the pool ran */
    const char *code;             /* expected error prefix */
    int trimmed;                  /* too_large by field count: only type and data kept */
};

/* Adds a bad entry of nfields fields to stream and records what its dead
 * letter must say. */
static void bad_add(struct bad *b, int *n, const char *stream, const char *id, const char *code,
                    int nfields, const char *const *fv, const size_t *lens)
{
    struct bad *e = &b[(*n)++];

    e->stream = stream;
    e->code = code;
    e->trimmed = 0;
    xadd_n(e->id, stream, id, nfields, fv, lens);
    e->orig = entry(stream, e->id);
}

/* Adds a bad entry with just type and data (either may be NULL). */
static void bad_td(struct bad *b, int *n, const char *stream, const char *code,
                   const char *type, const char *data)
{
    struct bad *e = &b[(*n)++];

    e->stream = stream;
    e->code = code;
    e->trimmed = 0;
    xadd(e->id, stream, type, data);
    e->orig = entry(stream, e->id);
}

/* Every input error code that the framework decides before the handler,
 * each produced by a real bad entry: missing or empty data, too large by
 * size and by field count (which keeps only type and data), invalid
 * UTF-8, a NUL byte, \u0000, bad JSON, duplicate keys, every JSON value
 * that is not an object, a missing or empty type, a type the worker does
 * not declare, an expired entry; plus a DEAD returned by the handler.
 * Each dead letter holds every original field and the six added ones,
 * exactly once; valid entries next to them are processed normally. */
START_TEST(test_delivery_dead_letter_framework_codes)
{
    struct bad b[40];
    int n = 0, i, nin, nold, norders;
    char ok_in[64], ok_old[64], ok_order[64];
    long long since = wall_ms();
    char big[200], big_err[128];
    static const char nul_data[] = "{\"a\":\"x\0y\"}";
    const char *many[24];
    const char *clash[] = { "type", "t", "error", "mine", "consumer", "me", "note", "n" };
    const char *keep[] = { "type", "t", "note", "kept", "data", "", "more", "also kept" };
    const char *nul[] = { "type", "t", "data", nul_data };
    const size_t nul_lens[] = { 4, 1, 4, sizeof nul_data - 1 };
    char names[10][16];
    const char *err;

    /* Stream "in": probe accepts any type, limits are small. */
    bad_add(b, &n, "in", "*", "missing_payload", 4, clash, NULL);
    bad_add(b, &n, "in", "*", "missing_payload", 4, keep, NULL);
    snprintf(big, sizeof big, "{\"pad\":\"%0100d\"}", 0);
    snprintf(big_err, sizeof big_err, "too_large: data is %zu bytes, more than max_payload_bytes 64",
             strlen(big));
    bad_td(b, &n, "in", big_err, "t", big);
    many[0] = "type"; many[1] = "t"; many[2] = "data"; many[3] = "{}";
    for (i = 0; i < 10; i++) {
        snprintf(names[i], sizeof names[i], "f%d", i);
        many[4 + 2 * i] = names[i];
        many[5 + 2 * i] = "v";
    }
    bad_add(b, &n, "in", "*", "too_large: 12 fields, more than max_fields 8; dropped_fields: 10",
            12, many, NULL);
    b[n - 1].trimmed = 1;
    bad_td(b, &n, "in", "invalid_encoding: data is not valid UTF-8", "t", "{\"a\":\"\xc3\x28\"}");
    bad_add(b, &n, "in", "*", "invalid_encoding: data holds a NUL byte", 2, nul, nul_lens);
    bad_td(b, &n, "in", "invalid_encoding: data holds \\u0000", "t", "{\"a\":\"\\u0000\"}");
    bad_td(b, &n, "in", "invalid_json: ", "t", "{\"a\":");
    bad_td(b, &n, "in", "invalid_json: duplicate object key", "t", "{\"a\":1,\"a\":2}");
    bad_td(b, &n, "in", "invalid_schema", "t", "[1,2]");
    bad_td(b, &n, "in", "invalid_schema", "t", "\"text\"");
    bad_td(b, &n, "in", "invalid_schema", "t", "5");
    bad_td(b, &n, "in", "invalid_schema", "t", "true");
    bad_td(b, &n, "in", "invalid_schema", "t", "false");
    bad_td(b, &n, "in", "invalid_schema", "t", "null");
    bad_td(b, &n, "in", "unknown_type", NULL, "{\"effect\":true}");
    bad_td(b, &n, "in", "unknown_type", "", "{\"effect\":true}");
    bad_td(b, &n, "in", "custom_code", "t", "{\"dead\":\"custom_code\",\"effect\":true}");
    xadd(ok_in, "in", "t", "{\"effect\":true}");
    nin = n;

    /* Stream "old": entries older than message_ttl_ms by their ID. */
    {
        const char *fv[] = { "type", "t", "data", "{\"effect\":true}" };
        bad_add(b, &n, "old", "1000-1", "expired", 2, fv, NULL);
    }
    {
        /* An ID above every ID of "in", so that the two valid probe
         * entries never share a probe:count key. */
        const char *fv[] = { "type", "t", "data", "{\"effect\":true}" };
        char oid[64];
        snprintf(oid, sizeof oid, "%lld-7", strtoll(ok_in, NULL, 10) + 1);
        xadd_n(ok_old, "old", oid, 2, fv, NULL);
    }
    nold = n - nin;

    /* Stream "orders": the order worker declares its types. */
    bad_td(b, &n, "orders", "unknown_type: order.refunded", "order.refunded",
           "{\"order_id\":\"o-1\"}");
    xadd(ok_order, "orders", "order.created",
         "{\"order_id\":\"o-ok\",\"user_id\":\"u-1\",\"amount_cents\":100,\"currency\":\"USD\"}");
    norders = n - nin - nold;

    write_config("",
        "{ \"handler\": \"probe\", \"stream\": \"in\", \"group\": \"g\", \"processes\": 1,"
        "  \"max_payload_bytes\": 64, \"max_fields\": 8 },"
        "{ \"handler\": \"probe\", \"stream\": \"old\", \"group\": \"g\", \"processes\": 1,"
        "  \"message_ttl_ms\": 600000 },"
        "{ \"handler\": \"order\", \"stream\": \"orders\", \"group\": \"g\", \"processes\": 1 }");
    pool_start();
    SL_TEST_ASSERT_EVENTUALLY(10000, dead_len("in") == nin && dead_len("old") == nold &&
                                     dead_len("orders") == norders);
    SL_TEST_ASSERT_EVENTUALLY(5000, applied(ok_in) == 1 && applied(ok_old) == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, sl_test_int(rc, "EXISTS order:o-ok") == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("in", "g") == 0 && pending("old", "g") == 0 &&
                                    pending("orders", "g") == 0);

    for (i = 0; i < n; i++) {
        err = assert_dead(b[i].stream, b[i].id, fields_of(b[i].orig), b[i].trimmed, b[i].code,
                          since);
        if (strncmp(b[i].code, "invalid_json", 12) == 0)
            ck_assert_msg(strstr(err, "line 1 column") != NULL, "no position in \"%s\"", err);
    }
    ck_assert_int_eq(dead_len("in"), nin);
    ck_assert_int_eq(dead_len("old"), nold);
    ck_assert_int_eq(dead_len("orders"), norders);
    ck_assert_int_eq(applied(ok_in), 1);
    ck_assert_int_eq(applied(ok_old), 1);
    /* Nothing of a refused entry was ever applied: the two valid ones
     * hold the only counters. */
    {
        redisReply *r = sl_test_cmd(rc, "KEYS probe:count:*");
        ck_assert_int_eq(r->elements, 2);
        freeReplyObject(r);
    }
    for (i = 0; i < n; i++)
        freeReplyObject(b[i].orig);
}
END_TEST

/* The codes the payment-flow workers decide from the fields themselves:
 * missing_field, wrong_type (1e2 and "100" are not integers),
 * invalid_id, invalid_amount, invalid_currency, unknown_user, and
 * idempotency_conflict; each on a real entry, dead-lettered once with all
 * its fields, while the valid events around them are applied. */
START_TEST(test_delivery_dead_letter_field_codes)
{
    struct bad b[16];
    int n = 0, i, norders;
    long long since = wall_ms();
    char ok_user[64], ok_order[64];

    bad_td(b, &n, "orders", "missing_field: order_id", "order.created",
           "{\"user_id\":\"u-1\",\"amount_cents\":100,\"currency\":\"USD\"}");
    bad_td(b, &n, "orders", "wrong_type: amount_cents", "order.created",
           "{\"order_id\":\"o-2\",\"user_id\":\"u-1\",\"amount_cents\":1e2,\"currency\":\"USD\"}");
    bad_td(b, &n, "orders", "wrong_type: amount_cents", "order.created",
           "{\"order_id\":\"o-3\",\"user_id\":\"u-1\",\"amount_cents\":\"100\",\"currency\":\"USD\"}");
    bad_td(b, &n, "orders", "invalid_id", "order.created",
           "{\"order_id\":\"o 4\",\"user_id\":\"u-1\",\"amount_cents\":100,\"currency\":\"USD\"}");
    bad_td(b, &n, "orders", "invalid_amount", "order.created",
           "{\"order_id\":\"o-5\",\"user_id\":\"u-1\",\"amount_cents\":0,\"currency\":\"USD\"}");
    bad_td(b, &n, "orders", "invalid_currency", "order.created",
           "{\"order_id\":\"o-6\",\"user_id\":\"u-1\",\"amount_cents\":100,\"currency\":\"usd\"}");
    xadd(ok_order, "orders", "order.created",
         "{\"order_id\":\"o-7\",\"user_id\":\"u-1\",\"amount_cents\":100,\"currency\":\"USD\"}");
    norders = n;
    bad_td(b, &n, "users", "unknown_user", "user.credited",
           "{\"credit_id\":\"c-1\",\"user_id\":\"nobody\",\"amount_cents\":100}");
    xadd(ok_user, "users", "user.created",
         "{\"user_id\":\"u-1\",\"name\":\"Ann\",\"email\":\"a@x\",\"balance_cents\":100}");
    bad_td(b, &n, "users", "idempotency_conflict", "user.created",
           "{\"user_id\":\"u-1\",\"name\":\"Bob\",\"email\":\"a@x\",\"balance_cents\":100}");

    write_config("",
        "{ \"handler\": \"order\", \"stream\": \"orders\", \"group\": \"g\", \"processes\": 1 },"
        "{ \"handler\": \"user\", \"stream\": \"users\", \"group\": \"g\", \"processes\": 1 }");
    pool_start();
    SL_TEST_ASSERT_EVENTUALLY(10000, dead_len("orders") == norders &&
                                     dead_len("users") == n - norders);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("orders", "g") == 0 && pending("users", "g") == 0);

    for (i = 0; i < n; i++)
        assert_dead(b[i].stream, b[i].id, fields_of(b[i].orig), 0, b[i].code, since);
    /* The first expected type is named in the detail. */
    ck_assert_str_eq(assert_dead("orders", b[1].id, fields_of(b[1].orig), 0, "wrong_type", since),
                     "wrong_type: amount_cents: expected integer");
    ck_assert_str_eq(assert_dead("orders", b[2].id, fields_of(b[2].orig), 0, "wrong_type", since),
                     "wrong_type: amount_cents: expected integer");
    ck_assert_int_eq(dead_len("orders"), norders);
    ck_assert_int_eq(dead_len("users"), n - norders);
    /* The valid ones were applied; the refused ones left nothing. */
    SL_TEST_ASSERT_EVENTUALLY(5000, sl_test_int(rc, "EXISTS order:o-7") == 1);
    ck_assert(hash_is("user:u-1", "name", "Ann"));
    for (i = 2; i <= 6; i++)
        ck_assert_int_eq(sl_test_int(rc, "EXISTS order:o-%d", i), 0);
    ck_assert_int_eq(sl_test_int(rc, "EXISTS credit:c-1"), 0);
    for (i = 0; i < n; i++)
        freeReplyObject(b[i].orig);
}
END_TEST

/* `sluice dlq` on a real dead letter: a payment result for an order that
 * does not exist yet (with its payment record, as a genuine result has)
 * is retried until max_deliveries and dead-lettered;
 * `list` and `show` (plain and --json) describe it, `replay` puts it
 * back without the added fields once the order exists, and it is then
 * processed (the order becomes paid); `purge` empties the stream. */
START_TEST(test_delivery_dlq_list_show_replay_purge)
{
    const char *fv[] = { "type", "payment.succeeded",
                         "data", "{\"payment_id\":\"o-1\",\"order_id\":\"o-1\"}",
                         "note", "keep me" };
    char src[64], dead_id[64], order[64], newid[64], bad[64], want[256];
    redisReply *r, *orig;
    char *out, *p;
    json_t *doc, *fields;
    json_error_t jerr;
    size_t i;

    write_config(", \"max_deliveries\": 2",
                 "{ \"handler\": \"order\", \"stream\": \"orders\", \"group\": \"g\", \"processes\": 1 }");
    pool_start();
    ck_assert_int_eq(sl_test_int(rc, "HSET payment:o-1 order_id o-1 user_id u-1 amount_cents 100 "
                                     "currency USD status succeeded"), 5);
    xadd_n(src, "orders", "*", 3, fv, NULL);
    orig = entry("orders", src);
    SL_TEST_ASSERT_EVENTUALLY(10000, dead_len("orders") == 1);
    assert_dead("orders", src, fields_of(orig), 0, "max_deliveries_exceeded", 0);
    r = sl_test_cmd(rc, "XRANGE orders:dead - +");
    snprintf(dead_id, sizeof dead_id, "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);

    /* list: one row with both IDs, the type, the deliveries, the error. */
    ck_assert_int_eq(cli(&out, "dlq", "list", "orders", NULL), 0);
    ck_assert_msg(strstr(out, dead_id) != NULL && strstr(out, src) != NULL &&
                  strstr(out, "payment.succeeded") != NULL &&
                  strstr(out, "max_deliveries_exceeded") != NULL, "dlq list: %s", out);
    free(out);
    ck_assert_int_eq(cli(&out, "dlq", "list", "orders", "--json"), 0);
    doc = json_loads(out, 0, &jerr);
    ck_assert_msg(doc != NULL && json_is_array(doc) && json_array_size(doc) == 1,
                  "dlq list --json: %s", out);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(doc, 0), "id")), dead_id);
    fields = json_object_get(json_array_get(doc, 0), "fields");
    ck_assert_str_eq(json_string_value(json_object_get(fields, "source_id")), src);
    ck_assert_str_eq(json_string_value(json_object_get(fields, "note")), "keep me");
    ck_assert(strncmp(json_string_value(json_object_get(fields, "consumer")), host,
                      strlen(host)) == 0);
    ck_assert(strncmp(json_string_value(json_object_get(fields, "error")),
                      "max_deliveries_exceeded", 23) == 0);
    json_decref(doc);
    free(out);

    /* show: every field, one per line. */
    ck_assert_int_eq(cli(&out, "dlq", "show", dead_id, "orders"), 0);
    snprintf(want, sizeof want, "id: %s\n", dead_id);
    ck_assert_msg(strstr(out, want) != NULL, "dlq show: %s", out);
    snprintf(want, sizeof want, "source_id: %s\n", src);
    ck_assert_msg(strstr(out, want) != NULL && strstr(out, "note: keep me\n") != NULL &&
                  strstr(out, "type: payment.succeeded\n") != NULL &&
                  strstr(out, "error: max_deliveries_exceeded") != NULL, "dlq show: %s", out);
    free(out);

    /* The order arrives; replaying the result now succeeds. */
    xadd(order, "orders", "order.created",
         "{\"order_id\":\"o-1\",\"user_id\":\"u-1\",\"amount_cents\":100,\"currency\":\"USD\"}");
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_int(rc, "EXISTS order:o-1") == 1);
    ck_assert_int_eq(cli(&out, "dlq", "replay", dead_id, "orders"), 0);
    snprintf(want, sizeof want, "replayed %s as ", dead_id);
    p = strstr(out, want);
    ck_assert_msg(p != NULL, "dlq replay: %s", out);
    ck_assert_int_eq(sscanf(p + strlen(want), "%63s", newid), 1);
    free(out);
    ck_assert_int_eq(dead_len("orders"), 0);
    /* Back in the source stream with exactly the original fields. */
    r = entry("orders", newid);
    {
        const redisReply *f = fields_of(r), *o = fields_of(orig);
        ck_assert_int_eq(f->elements, o->elements);
        for (i = 0; i < f->elements; i++)
            ck_assert_msg(f->element[i]->len == o->element[i]->len &&
                          memcmp(f->element[i]->str, o->element[i]->str,
                                 (size_t)f->element[i]->len) == 0,
                          "replayed field %zu differs", i);
    }
    freeReplyObject(r);
    SL_TEST_ASSERT_EVENTUALLY(10000, pending("orders", "g") == 0);
    SL_TEST_ASSERT_EVENTUALLY(10000, hash_is("order:o-1", "status", "paid"));
    ck_assert_int_eq(dead_len("orders"), 0);

    /* Replaying what is no longer there fails and says so. */
    ck_assert_int_eq(cli(&out, "dlq", "replay", dead_id, "orders"), 1);
    ck_assert_msg(strstr(out, "no dead letter") != NULL, "dlq replay again: %s", out);
    free(out);

    /* purge */
    xadd(bad, "orders", "order.created", "not json");
    SL_TEST_ASSERT_EVENTUALLY(10000, dead_len("orders") == 1);
    ck_assert_int_eq(cli(&out, "dlq", "purge", "orders", "--yes"), 0);
    ck_assert_msg(strstr(out, "purged 1 dead letters from orders:dead") != NULL, "dlq purge: %s",
                  out);
    free(out);
    ck_assert_int_eq(dead_len("orders"), 0);
    ck_assert_int_eq(cli(&out, "dlq", "list", "orders", "--json"), 0);
    doc = json_loads(out, 0, &jerr);
    ck_assert_msg(doc != NULL && json_array_size(doc) == 0, "dlq list after purge: %s", out);
    json_decref(doc);
    free(out);
    freeReplyObject(orig);
}
END_TEST

/* ------------------------------------------------------------------------
 * TCase "oom": Redis out of memory in the middle of the atomic steps
 * ------------------------------------------------------------------------ */

/* Returns 1 when Redis refuses a small write as out of memory. */
static int oom(void)
{
    redisReply *r = sl_test_cmd(rc, "SET probe-oom x");
    int yes = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "OOM", 3) == 0;

    freeReplyObject(r);
    return yes;
}

/* Freezes the pool's only child, lets `add` put the test's entries in
 * the stream, and drives Redis out of memory: maxmemory just above what
 * it uses now, then a filler value that takes it over. The child is then
 * thawed and finds the entries with every write refused. */
static void enter_oom(void (*add)(void))
{
    pid_t child;
    long long used;
    redisReply *r;

    write_config("", "{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", \"processes\": 1,"
                     "  \"block_ms\": 2000 }");
    pool_start();
    SL_TEST_ASSERT_EVENTUALLY(10000, log_count("event=running", NULL) == 1);
    child = child_pid(1);
    freeze(child);
    add();
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET maxmemory-policy noeviction"));
    r = sl_test_cmd(rc, "INFO memory");
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    used = strtoll(strstr(r->str, "used_memory:") + strlen("used_memory:"), NULL, 10);
    freeReplyObject(r);
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET maxmemory %lld", used + 65536));
    /* The filler is built inside Redis: sent as one big argument it
     * would pass through our query buffer, whose memory Redis gives back
     * a moment later, and that alone could end the OOM state. */
    r = sl_test_cmd(rc, "EVAL %s 1 filler 1048576",
                    "redis.call('SET', KEYS[1], string.rep('f', tonumber(ARGV[1]))) return 1");
    ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "filler not written: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
    ck_assert_msg(oom(), "Redis is not out of memory");
    thaw(child);
}

static char oom_ids[5][64];       /* entries of the OOM tests */

/* Adds five entries whose data is not JSON: each must be dead-lettered. */
static void add_bad(void)
{
    int i;

    for (i = 0; i < 5; i++)
        xadd(oom_ids[i], "s", "t", "{not json");
}

/* Adds five entries that declare an effect. */
static void add_effects(void)
{
    int i;

    for (i = 0; i < 5; i++)
        xadd(oom_ids[i], "s", "t", "{\"effect\":true}");
}

/* Holds for about hold_ms while asserting that Redis is still refusing
 * writes and nothing has moved: the entries read so far (at least one;
 * a worker that has not run its handler yet reads one at a time, so the
 * rest may stay unread) still pending, no dead letter, no effect, no
 * attempt recorded. */
static void assert_nothing_moves(int hold_ms)
{
    long long until = sl_test_deadline(hold_ms);
    long long held = pending("s", "g");
    int i;

    ck_assert_msg(held >= 1 && held <= 5, "%lld entries pending", held);
    do {
        ck_assert_msg(oom(), "Redis is no longer out of memory");
        ck_assert_int_eq(pending("s", "g"), held);
        ck_assert_int_eq(dead_len("s"), 0);
        ck_assert_int_eq(attempts_len("s", "g"), 0);
        for (i = 0; i < 5; i++)
            ck_assert_int_eq(applied(oom_ids[i]), 0);
    } while (sl_test_tick(until));
}

/* Dead-lettering under OOM: the step (XADD to :dead and XACK in one
 * script) is refused whole, so nothing is dead-lettered without its ack
 * or acked without its dead letter; once memory is available again every
 * entry is dead-lettered exactly once. */
START_TEST(test_delivery_oom_while_dead_lettering)
{
    long long since = wall_ms();
    redisReply *orig[5];
    int i;

    enter_oom(add_bad);
    for (i = 0; i < 5; i++)
        orig[i] = entry("s", oom_ids[i]);
    SL_TEST_ASSERT_EVENTUALLY(10000, log_count("event=commit_refused", "OOM") >= 1);
    assert_nothing_moves(1000);
    /* A refused step is not reported as done. */
    ck_assert_int_eq(log_count("event=dead_letter", NULL), 0);

    freeReplyObject(sl_test_cmd(rc, "CONFIG SET maxmemory 0"));
    SL_TEST_ASSERT_EVENTUALLY(15000, dead_len("s") == 5);
    SL_TEST_ASSERT_EVENTUALLY(5000, log_count("event=dead_letter", "invalid_json") == 5);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);
    for (i = 0; i < 5; i++) {
        assert_dead("s", oom_ids[i], fields_of(orig[i]), 0, "invalid_json", since);
        freeReplyObject(orig[i]);
    }
    ck_assert_int_eq(dead_len("s"), 5);
}
END_TEST

/* Effects under OOM: the effect, its bookkeeping and the XACK are one
 * script, refused whole; once memory is back every effect is applied
 * exactly once and every entry acked. */
START_TEST(test_delivery_oom_while_applying_effects)
{
    int i;

    enter_oom(add_effects);
    SL_TEST_ASSERT_EVENTUALLY(10000, log_count("event=commit_refused", "OOM") >= 1);
    assert_nothing_moves(1000);

    freeReplyObject(sl_test_cmd(rc, "CONFIG SET maxmemory 0"));
    for (i = 0; i < 5; i++)
        SL_TEST_ASSERT_EVENTUALLY(15000, applied(oom_ids[i]) == 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(applied(oom_ids[i]), 1);
    ck_assert_int_eq(sl_test_int(rc, "LLEN probe:order"), 5);
    ck_assert_int_eq(dead_len("s"), 0);
    ck_assert_int_eq(attempts_len("s", "g"), 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * TCase "defaults": orphans and big entries under a default configuration
 * ------------------------------------------------------------------------ */

/* Writes a configuration with nothing but the Redis URL, no metrics
 * listener and the one worker `workers` (JSON members of a "workers"
 * entry after handler, stream and group): every timing, the batch and
 * every limit are the built-in defaults a user gets. */
static void write_default_config(const char *workers)
{
    ck_assert_int_eq(sl_test_write_file(cfgpath,
        "{\n"
        "  \"redis\": { \"url\": \"%s\" },\n"
        "  \"workers\": [ { \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\"%s } ],\n"
        "  \"metrics\": { \"listen\": null }\n"
        "}\n", srv.url, workers), 0);
}

/* Returns the number of entries pending for consumer `name` in s/g that
 * have been idle at least idle_ms. */
static long long pending_of(const char *name, long long idle_ms)
{
    redisReply *r = sl_test_cmd(rc, "XPENDING s g IDLE %lld - + 1000000 %s", idle_ms, name);
    long long n;

    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    n = (long long)r->elements;
    freeReplyObject(r);
    return n;
}

/* Adds n entries {type t, data `data`} to stream s (group g created at 0)
 * and leaves them pending for the consumer "ghost", which never comes
 * back, already idle for 60 s (XCLAIM ... IDLE fakes the idle time), all
 * in one script so that 100,000 take well under a second. */
static void add_orphans(long long n, const char *data)
{
    static const char fill[] =
        "redis.call('XGROUP', 'CREATE', KEYS[1], 'g', '0', 'MKSTREAM')\n"
        "local ids = {}\n"
        "for i = 1, tonumber(ARGV[1]) do\n"
        "  ids[i] = redis.call('XADD', KEYS[1], '*', 'type', 't', 'data', ARGV[2])\n"
        "end\n"
        "redis.call('XREADGROUP', 'GROUP', 'g', 'ghost', 'COUNT', ARGV[1], 'STREAMS', KEYS[1], '>')\n"
        "for i = 1, #ids, 1000 do\n"
        "  local args = {KEYS[1], 'g', 'ghost', 0}\n"
        "  for j = i, math.min(i + 999, #ids) do args[#args+1] = ids[j] end\n"
        "  args[#args+1] = 'IDLE'; args[#args+1] = 60000; args[#args+1] = 'JUSTID'\n"
        "  redis.call('XCLAIM', unpack(args))\n"
        "end\n"
        "return #ids\n";

    ck_assert_int_eq(sl_test_int(rc, "EVAL %s 1 s %lld %s", fill, n, data), n);
    ck_assert_int_eq(pending("s", "g"), n);
    ck_assert_int_eq(pending_of("ghost", 59000), n);
}

/* Orphaned entries are reclaimed with the default timings. The retry
 * sweep (every 250 ms) and the reclaim sweep (every 5 s) used to start in
 * step, and a reclaim tick that found the retry sweep's claim in flight
 * was dropped, every time: 200 entries of a consumer that never came back
 * stayed pending for good. Now they are all handled, applied once and
 * acked within a few default reclaim intervals. */
START_TEST(test_delivery_reclaim_default_timings)
{
    long long t0, took;
    redisReply *r;
    size_t i;

    add_orphans(200, "{\"effect\":true}");
    write_default_config("");
    t0 = sl_test_now_ms();
    pool_start();
    SL_TEST_ASSERT_EVENTUALLY(4 * 5000, pending("s", "g") == 0);
    took = sl_test_now_ms() - t0;
    fprintf(stderr, "reclaim_default_timings: 200 orphans reclaimed in %lld ms\n", took);
    r = sl_test_cmd(rc, "KEYS probe:count:*");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->elements, 200);
    for (i = 0; i < r->elements; i++)
        ck_assert_int_eq(sl_test_int(rc, "GET %s", r->element[i]->str), 1);
    freeReplyObject(r);
    ck_assert_int_eq(dead_len("s"), 0);
    ck_assert_int_eq(pending_of("ghost", 0), 0);
}
END_TEST

/* A reclaim sweep goes on while it finds idle entries (bounded per slice
 * by time, not by a page count): 100,000 orphaned entries are all
 * reclaimed and acked within a few default reclaim intervals, where a cap
 * of 10 pages of `batch` per interval took over two hours for a million. */
START_TEST(test_delivery_reclaim_100k_orphans)
{
    long long t0, took;

    add_orphans(100000, "{}");
    write_default_config("");
    t0 = sl_test_now_ms();
    pool_start();
    /* Generous for a loaded 2-core machine: six default intervals. */
    SL_TEST_ASSERT_EVENTUALLY(6 * 5000, pending("s", "g") == 0);
    took = sl_test_now_ms() - t0;
    fprintf(stderr, "reclaim_100k_orphans: 100000 orphans reclaimed and acked in %lld ms\n",
            took);
    ck_assert_int_eq(dead_len("s"), 0);
    ck_assert_int_eq(pending_of("ghost", 0), 0);
}
END_TEST

/* Returns the VmHWM (peak resident set) of pid in KiB from
 * /proc/<pid>/status, or -1. */
static long long peak_rss_kib(pid_t pid)
{
    char path[64], *text, *p;
    long long kib = -1;

    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    if ((text = sl_test_read_file(path)) == NULL)
        return -1;
    if ((p = strstr(text, "VmHWM:")) != NULL)
        kib = strtoll(p + 6, NULL, 10);
    free(text);
    return kib;
}

/* Returns 1 once <stream>:dead holds 16 entries (for polling). */
static int dead_is_16(void *arg)
{
    (void)arg;
    return dead_len("s") == 16;
}

/* A worker's memory does not grow with `batch` times the entry size.
 * Sixteen entries of 8 MiB (over the default max_payload_bytes of 1 MiB,
 * so too_large) with the default batch of 64 used to be read in one reply:
 * 128 MiB held at once, and as much again in hiredis's buffer. Half of
 * them wait in the stream and half are orphans of a dead consumer, so
 * both the read and the reclaim take them. The worker's peak RSS stays
 * under the bound the README gives, 16 MiB + 4 x max_payload_bytes
 * + 2 x the largest entry: a read takes one whole entry once it has seen
 * a big one, the reclaim leaves their data in Redis. Each is
 * dead-lettered as too_large with its data intact. */
START_TEST(test_delivery_worker_memory_bounded)
{
    static const char fill[] =
        "local big = string.rep('x', tonumber(ARGV[1]))\n"
        "for i = 1, tonumber(ARGV[2]) do\n"
        "  redis.call('XADD', KEYS[1], '*', 'type', 't', 'data', big)\n"
        "end\n"
        "return redis.call('XLEN', KEYS[1])\n";
    const long long mib = 1024 * 1024, size = 8 * mib;
    const long long bound_kib = (16 * mib + 4 * mib + 2 * size) / 1024;
    long long kib;
    redisReply *r;
    pid_t pid;
    size_t i;

    /* 8 orphans, idle 60 s, then 8 entries nobody has read. */
    ck_assert_int_eq(sl_test_int(rc, "XGROUP CREATE s g 0 MKSTREAM"), 0);
    ck_assert_int_eq(sl_test_int(rc, "EVAL %s 1 s %lld 8", fill, size), 8);
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP g ghost COUNT 8 STREAMS s >"));
    r = sl_test_cmd(rc, "XPENDING s g - + 8 ghost");
    ck_assert_int_eq(r->elements, 8);
    for (i = 0; i < r->elements; i++)
        freeReplyObject(sl_test_cmd(rc, "XCLAIM s g ghost 0 %s IDLE 60000 JUSTID",
                                    r->element[i]->element[0]->str));
    freeReplyObject(r);
    ck_assert_int_eq(sl_test_int(rc, "EVAL %s 1 s %lld 8", fill, size), 16);

    write_default_config(", \"trim\": \"none\"");
    pool_start();
    SL_TEST_ASSERT_EVENTUALLY(10000, (pid = child_pid(1)) > 0);
    ck_assert_msg(sl_test_wait_for(30000, dead_is_16, NULL), "dead letters: %lld",
                  dead_len("s"));
    SL_TEST_ASSERT_EVENTUALLY(5000, pending("s", "g") == 0);
    kib = peak_rss_kib(pid);
    fprintf(stderr, "worker_memory_bounded: worker peak RSS %lld KiB (bound %lld KiB)\n",
            kib, bound_kib);
    ck_assert_int_gt(kib, 0);
    if (sl_test_instrumented(pid))
        fprintf(stderr, "worker_memory_bounded: under a memory checker, RSS not judged\n");
    else
        ck_assert_msg(kib < bound_kib, "worker peak RSS %lld KiB, bound %lld KiB", kib,
                      bound_kib);

    /* Every dead letter says too_large with the true size, and keeps the
     * 8 MiB of data. */
    r = sl_test_cmd(rc, "XRANGE s:dead - +");
    ck_assert_int_eq(r->elements, 16);
    for (i = 0; i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        int seen = 0;
        size_t j;

        for (j = 0; j + 1 < f->elements; j += 2) {
            if (eq(f->element[j], "data")) {
                ck_assert_int_eq(f->element[j + 1]->len, size);
                seen |= 1;
            } else if (eq(f->element[j], "error")) {
                ck_assert_str_eq(f->element[j + 1]->str,
                    "too_large: data is 8388608 bytes, more than max_payload_bytes 1048576");
                seen |= 2;
            }
        }
        ck_assert_int_eq(seen, 3);
    }
    freeReplyObject(r);
}
END_TEST

/* ------------------------------------------------------------------------
 * Suite
 * ------------------------------------------------------------------------ */

/* Returns a TCase named `name` with its own redis-server and the
 * per-test fixture, and a timeout fit for tests that run the pool. */
static TCase *tcase(const char *name, int timeout_s)
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, server_up, server_down);
    tcase_add_checked_fixture(tc, test_up, test_down);
    tcase_set_timeout(tc, timeout_s * sl_test_slow_factor());
    return tc;
}

Suite *delivery_suite(void)
{
    Suite *s = suite_create("delivery");
    TCase *tc;

    tc = tcase("reclaim", 60);
    tcase_add_test(tc, test_delivery_reclaim_from_dead_consumer);
    tcase_add_test(tc, test_delivery_slow_handler_not_reclaimed);
    tcase_add_test(tc, test_delivery_handler_timeout_dead_letters);
    tcase_add_test(tc, test_delivery_fencing_discards_stalled_commit);
    tcase_add_test(tc, test_delivery_run_fence_skips_reclaimed);
    tcase_add_test(tc, test_delivery_deleted_while_pending);
    suite_add_tcase(s, tc);

    tc = tcase("retry", 90);
    tcase_add_test(tc, test_delivery_retry_backoff_grows);
    tcase_add_test(tc, test_delivery_crash_no_head_of_line_block);
    tcase_add_test(tc, test_delivery_effect_error_is_failed_attempt);
    tcase_add_test(tc, test_delivery_run_one_effect_error);
    tcase_add_test(tc, test_delivery_connection_killed_ten_times);
    tcase_add_test(tc, test_delivery_backstop_after_invisible_deaths);
    suite_add_tcase(s, tc);

    tc = tcase("dead", 60);
    tcase_add_test(tc, test_delivery_dead_letter_framework_codes);
    tcase_add_test(tc, test_delivery_dead_letter_field_codes);
    tcase_add_test(tc, test_delivery_dlq_list_show_replay_purge);
    suite_add_tcase(s, tc);

    tc = tcase("oom", 60);
    tcase_add_test(tc, test_delivery_oom_while_dead_lettering);
    tcase_add_test(tc, test_delivery_oom_while_applying_effects);
    suite_add_tcase(s, tc);

    tc = tcase("defaults", 90);
    tcase_add_test(tc, test_delivery_reclaim_default_timings);
    tcase_add_test(tc, test_delivery_reclaim_100k_orphans);
    tcase_add_test(tc, test_delivery_worker_memory_bounded);
    suite_add_tcase(s, tc);
    return s;
}
