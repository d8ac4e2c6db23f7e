/* check_pool.c -- integration tests of `sluice run`, the supervisor
 * (docs/operations.md, issue 4), against a real redis-server.
 *
 * Every test drives the real build/sluice binary as a process
 * (sl_test_spawn, its logfmt lines appended to a file in the test's
 * directory) and watches what it does from the outside: the consumers and
 * pending lists of its groups, the heartbeat keys, the effects the probe
 * handler applies (probe:count:<id>), its log lines and the PIDs of its
 * children. Child PIDs come from the supervisor's `child_started` lines.
 *
 * One redis-server serves the whole TCase (unchecked fixture); a checked
 * fixture empties it and makes a fresh directory before each test, and
 * afterwards stops every supervisor the test started, by PID, and makes
 * sure each of their children is gone, so no consumer name is still held
 * when the next test starts.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <hiredis.h>
#include <jansson.h>

#include "harness.h"
#include "config.h"
#include "sut.h"

#define MAX_POOLS 8               /* supervisors one test may start */
#define IDLEN 48                  /* room for a stream entry ID */

/* The timings every test configuration starts from (docs/configuration.md keys
 * of "defaults"); a worker object overrides what a test needs. */
#define BASE_DEFAULTS                                                        \
    "\"block_ms\": 300, \"reclaim_idle_ms\": 500, "                          \
    "\"reclaim_interval_ms\": 200, \"heartbeat_ms\": 150, "                  \
    "\"retry_backoff_ms\": [50, 400], \"shutdown_timeout_ms\": 5000, "       \
    "\"handler_timeout_ms\": 20000"

static struct sl_test_redis srv;  /* the TCase's server (unchecked fixture) */
static char host[256];            /* gethostname(), the first part of consumer names */
static char *tdir;                /* the test's directory (checked fixture) */
static char cfgpath[512];         /* <tdir>/sluice.json */
static redisContext *rc;          /* the test's own connection */
static pid_t pools[MAX_POOLS];    /* supervisors started by this test */
static char poollogs[MAX_POOLS][600]; /* their log files */
static int npools;                /* entries used in pools[] */

/* ------------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------------ */

/* Starts the TCase's redis-server in the runner process and learns the
 * host name that the supervisor puts in front of every consumer name. */
static void redis_setup(void)
{
    ck_assert_int_eq(sl_test_redis_start(&srv, NULL), 0);
    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
}

/* Stops the TCase's server and deletes its directory. */
static void redis_teardown(void)
{
    sl_test_redis_cleanup(&srv);
}

/* Before each test: an empty server, a fresh directory and connection. */
static void test_setup(void)
{
    rc = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(rc);
    freeReplyObject(sl_test_cmd(rc, "FLUSHALL"));
    tdir = sl_test_tmpdir();
    ck_assert_ptr_nonnull(tdir);
    snprintf(cfgpath, sizeof(cfgpath), "%s/sluice.json", tdir);
    npools = 0;
}

/* Reads the PIDs of every child a supervisor log says it started into
 * out (at most max). Returns how many. */
static int all_children(const char *log, pid_t *out, int max)
{
    char *text = sl_test_read_file(log);
    const char *p = text;
    int n = 0;

    while (p != NULL && n < max && (p = strstr(p, "event=child_started ")) != NULL) {
        const char *c = strstr(p, " child=");
        const char *eol = strchr(p, '\n');
        if (c != NULL && (eol == NULL || c < eol))
            out[n++] = (pid_t)strtol(c + 7, NULL, 10);
        p += 20;
    }
    free(text);
    return n;
}

/* After each test: every supervisor it started gets SIGTERM (so a run
 * under valgrind still checks it on the way out), then SIGKILL if it
 * lingers; every child those supervisors logged must be gone too, and one
 * that is not is killed by its PID. The directory is kept when
 * SLUICE_TEST_KEEP is set, for reading the logs after a failure. */
static void test_teardown(void)
{
    int i, j;

    for (i = 0; i < npools; i++) {
        if (sl_test_wait_exit(pools[i], 0, NULL))
            continue;
        sl_test_kill(pools[i], SIGTERM);
        if (!sl_test_wait_exit(pools[i], 3000, NULL)) {
            sl_test_kill(pools[i], SIGKILL);
            sl_test_wait_exit(pools[i], 5000, NULL);
        }
    }
    for (i = 0; i < npools; i++) {
        pid_t kids[256];
        int n = all_children(poollogs[i], kids, 256);
        for (j = 0; j < n; j++) {
            long long dl = sl_test_deadline(2000);
            while (sl_test_pid_alive(kids[j]) && sl_test_tick(dl))
                ;
            if (sl_test_pid_alive(kids[j]))
                sl_test_kill(kids[j], SIGKILL);
        }
    }
    npools = 0;
    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
    if (tdir != NULL && getenv("SLUICE_TEST_KEEP") == NULL)
        sl_test_rmtree(tdir);
    free(tdir);
    tdir = NULL;
}

/* ------------------------------------------------------------------------
 * Helpers: configuration and processes
 * ------------------------------------------------------------------------ */

/* Writes the test's configuration file (cfgpath): the harness server's
 * URL, BASE_DEFAULTS, the given "workers" array body (on line 4) and no
 * metrics server. */
static void write_config(const char *workers)
{
    struct sl_test_config c = { srv.url, NULL, BASE_DEFAULTS, NULL, workers, NULL };

    ck_assert_int_eq(sl_test_config_write(cfgpath, &c), 0);
}

/* Returns the path of a file in the test's directory, in one of four
 * rotating static buffers. */
static const char *tpath(const char *name)
{
    static char bufs[4][600];
    static unsigned next;
    char *b = bufs[next++ % 4];

    snprintf(b, sizeof(bufs[0]), "%s/%s", tdir, name);
    return b;
}

/* Returns the consumer name of a handler's slot, <host>:<handler>:<slot>,
 * in one of eight rotating static buffers. */
static const char *cname(const char *handler, int slot)
{
    static char bufs[8][320];
    static unsigned next;
    char *b = bufs[next++ % 8];

    snprintf(b, sizeof(bufs[0]), "%s:%s:%d", host, handler, slot);
    return b;
}

/* Starts `sluice run -c <cfgpath>` plus the NULL-terminated extra
 * arguments, appending its output to <tdir>/<logname>. The supervisor is
 * remembered for the teardown. Returns its PID; fails the test if it
 * cannot be started. */
static pid_t start_pool(const char *logname, ...)
{
    const char *extra[12];
    const char *a;
    va_list ap;
    int n = 0;
    pid_t pid;

    ck_assert_int_lt(npools, MAX_POOLS);
    va_start(ap, logname);
    while ((a = va_arg(ap, const char *)) != NULL && n < 11)
        extra[n++] = a;
    va_end(ap);
    extra[n] = NULL;
    snprintf(poollogs[npools], sizeof(poollogs[0]), "%s/%s", tdir, logname);
    pid = sl_test_pool_spawn_args(cfgpath, poollogs[npools], extra);
    ck_assert_int_gt(pid, 0);
    pools[npools++] = pid;
    return pid;
}

/* Runs `sluice <args...> -c <cfgpath>` to completion (at most 10 s) with
 * its output in <tdir>/<outname>. Returns its exit status (-1 when it did
 * not exit normally). */
static int run_cli(const char *outname, ...)
{
    const char *argv[16];
    const char *a;
    va_list ap;
    int n = 0, status = 0;
    pid_t pid;

    argv[n++] = sl_test_bin();
    va_start(ap, outname);
    while ((a = va_arg(ap, const char *)) != NULL && n < 13)
        argv[n++] = a;
    va_end(ap);
    argv[n++] = "-c";
    argv[n++] = cfgpath;
    argv[n] = NULL;
    pid = sl_test_spawn(argv, tpath(outname));
    ck_assert_int_gt(pid, 0);
    if (!sl_test_wait_exit(pid, 10000, &status)) {
        sl_test_kill(pid, SIGKILL);
        sl_test_wait_exit(pid, 5000, NULL);
        ck_abort_msg("sluice %s did not exit within 10 s", argv[1]);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Waits up to timeout_ms for a process we started to exit and returns its
 * wait status; fails the test if it is still running. */
static int wait_status(pid_t pid, int timeout_ms)
{
    int status = 0;

    ck_assert_msg(sl_test_wait_exit(pid, timeout_ms, &status),
                  "process %ld still runs after %d ms", (long)pid, timeout_ms);
    return status;
}

/* ------------------------------------------------------------------------
 * Helpers: the supervisor's log
 * ------------------------------------------------------------------------ */

/* Returns how many lines of the file hold needle (0 if unreadable). */
static int log_count(const char *log, const char *needle)
{
    /* Line by line: the logs of the janitor tests hold 50,000 lines, and
     * strstr over the whole text from each match on is quadratic under
     * ASan, whose strstr measures the rest of the text on every call. */
    FILE *f = fopen(log, "r");
    char line[4096];
    int n = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, needle) != NULL)
            n++;
    fclose(f);
    return n;
}

/* Returns the offset of the first occurrence of needle in the file, or -1
 * when there is none. Used to check the order of events. */
static long log_pos(const char *log, const char *needle)
{
    char *text = sl_test_read_file(log);
    const char *p = text != NULL ? strstr(text, needle) : NULL;
    long off = p != NULL ? (long)(p - text) : -1;

    free(text);
    return off;
}

/* Returns the whole line of the file that first contains needle, as a new
 * string (free() it), or NULL. */
static char *log_line(const char *log, const char *needle)
{
    char *text = sl_test_read_file(log);
    char *p = text != NULL ? strstr(text, needle) : NULL;
    char *start, *end, *line = NULL;

    if (p != NULL) {
        start = p;
        while (start > text && start[-1] != '\n')
            start--;
        end = strchr(p, '\n');
        line = end != NULL ? strndup(start, (size_t)(end - start)) : strdup(start);
    }
    free(text);
    return line;
}

/* Returns the PID of the most recent child the supervisor logged for this
 * consumer name, or 0 when it started none. */
static pid_t child_of(const char *log, const char *consumer)
{
    char needle[400];
    char *text = sl_test_read_file(log);
    const char *p = text;
    pid_t pid = 0;

    snprintf(needle, sizeof(needle), "event=child_started consumer=%s child=", consumer);
    while (p != NULL && (p = strstr(p, needle)) != NULL) {
        p += strlen(needle);
        pid = (pid_t)strtol(p, NULL, 10);
    }
    free(text);
    return pid;
}

/* Returns how many children the supervisor logged for this consumer. */
static int starts_of(const char *log, const char *consumer)
{
    char needle[400];

    snprintf(needle, sizeof(needle), "event=child_started consumer=%s child=", consumer);
    return log_count(log, needle);
}

/* ------------------------------------------------------------------------
 * Helpers: Redis state
 * ------------------------------------------------------------------------ */

/* Adds an entry of type "t" with the given data JSON to stream; copies its
 * ID to id (IDLEN bytes) when id is not NULL. */
static void add_entry(const char *stream, const char *data, char *id)
{
    redisReply *r = sl_test_cmd(rc, "XADD %s * type t data %s", stream, data);

    ck_assert_msg(r->type == REDIS_REPLY_STRING, "XADD %s: reply type %d: %s", stream, r->type,
                  r->type == REDIS_REPLY_ERROR ? r->str : "");
    if (id != NULL)
        snprintf(id, IDLEN, "%s", r->str);
    freeReplyObject(r);
}

/* Fails the test on an error reply to XPENDING, except NOGROUP: a group
 * that its worker has not created yet. Returns 1 for NOGROUP (the caller
 * counts nothing pending), else 0. */
static int no_group_yet(const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0)
        return 1;
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY, "XPENDING: reply type %d: %s", r->type,
                  r->type == REDIS_REPLY_ERROR ? r->str : "");
    return 0;
}

/* Returns the number of entries pending in a group (XPENDING summary);
 * 0 while the group does not exist. */
static long long pending_total(const char *stream, const char *group)
{
    redisReply *r = sl_test_cmd(rc, "XPENDING %s %s", stream, group);
    long long n;

    if (no_group_yet(r)) {
        freeReplyObject(r);
        return 0;
    }
    ck_assert_int_ge(r->elements, 1);
    n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* Returns the number of entries pending for one consumer of a group (0
 * while the group does not exist), and copies up to max of their IDs into
 * ids when ids is not NULL. */
static int pending_of(const char *stream, const char *group, const char *consumer,
                      char (*ids)[IDLEN], int max)
{
    redisReply *r = sl_test_cmd(rc, "XPENDING %s %s - + 1000 %s", stream, group, consumer);
    int n;
    size_t i;

    if (no_group_yet(r)) {
        freeReplyObject(r);
        return 0;
    }
    n = (int)r->elements;
    for (i = 0; ids != NULL && i < r->elements && (int)i < max; i++)
        snprintf(ids[i], IDLEN, "%s", r->element[i]->element[0]->str);
    freeReplyObject(r);
    return n;
}

/* Returns the probe handler's effect counter of an entry: how many times
 * its effect was applied. */
static long long applied(const char *id)
{
    return sl_test_int(rc, "GET probe:count:%s", id);
}

/* Returns 1 when the group has nothing pending and the effect of every
 * one of the n entries was applied exactly once, else 0. */
static int all_applied_once(const char *stream, const char *group, char (*ids)[IDLEN], int n)
{
    int i;

    if (pending_total(stream, group) != 0)
        return 0;
    for (i = 0; i < n; i++)
        if (applied(ids[i]) != 1)
            return 0;
    return 1;
}

/* Copies one field of a group's XINFO GROUPS record into out (outlen
 * bytes) as text; "" when the group or field is missing. */
static void group_field(const char *stream, const char *group, const char *field,
                        char *out, size_t outlen)
{
    redisReply *r = sl_test_cmd(rc, "XINFO GROUPS %s", stream);
    size_t i, j;

    out[0] = '\0';
    if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "no such key") != NULL) {
        freeReplyObject(r);
        return;                 /* the stream does not exist yet */
    }
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    for (i = 0; i < r->elements; i++) {
        const redisReply *g = r->element[i];
        int mine = 0;
        for (j = 0; j + 1 < g->elements; j += 2)
            if (strcmp(g->element[j]->str, "name") == 0 &&
                strcmp(g->element[j + 1]->str, group) == 0)
                mine = 1;
        for (j = 0; mine && j + 1 < g->elements; j += 2) {
            const redisReply *v = g->element[j + 1];
            if (strcmp(g->element[j]->str, field) != 0)
                continue;
            if (v->type == REDIS_REPLY_STRING || v->type == REDIS_REPLY_STATUS)
                snprintf(out, outlen, "%s", v->str);
            else if (v->type == REDIS_REPLY_INTEGER)
                snprintf(out, outlen, "%lld", v->integer);
        }
    }
    freeReplyObject(r);
}

/* Returns 1 when the group's last-delivered-id is id. */
static int delivered_up_to(const char *stream, const char *group, const char *id)
{
    char last[IDLEN];

    group_field(stream, group, "last-delivered-id", last, sizeof(last));
    return strcmp(last, id) == 0;
}

/* Fills names (up to max, 320 bytes each) with the consumers XINFO
 * CONSUMERS lists for a group and pend with their pending counts (when not
 * NULL). Returns how many there are. */
static int consumers(const char *stream, const char *group, char (*names)[320],
                     long long *pend, int max)
{
    redisReply *r = sl_test_cmd(rc, "XINFO CONSUMERS %s %s", stream, group);
    int n = 0;
    size_t i, j;

    if (r->type == REDIS_REPLY_ERROR && (strncmp(r->str, "NOGROUP", 7) == 0 ||
                                         strstr(r->str, "no such key") != NULL)) {
        freeReplyObject(r);
        return 0;               /* the stream or group does not exist yet */
    }
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY, "XINFO CONSUMERS: reply type %d: %s", r->type,
                  r->type == REDIS_REPLY_ERROR ? r->str : "");
    for (i = 0; i < r->elements && n < max; i++) {
        const redisReply *c = r->element[i];
        for (j = 0; j + 1 < c->elements; j += 2) {
            if (strcmp(c->element[j]->str, "name") == 0)
                snprintf(names[n], 320, "%s", c->element[j + 1]->str);
            else if (strcmp(c->element[j]->str, "pending") == 0 && pend != NULL)
                pend[n] = c->element[j + 1]->integer;
        }
        n++;
    }
    freeReplyObject(r);
    return n;
}

/* Returns 1 when XINFO CONSUMERS lists this consumer in the group. */
static int has_consumer(const char *stream, const char *group, const char *name)
{
    char names[64][320];
    int n = consumers(stream, group, names, NULL, 64), i;

    for (i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

/* Returns 1 when the consumer's heartbeat key exists and names pid. */
static int beats_as(const char *consumer, pid_t pid)
{
    char *s = sl_test_str(rc, "HGET sluice:worker:%s pid", consumer);
    int ok = s != NULL && strtol(s, NULL, 10) == (long)pid && pid > 0;

    free(s);
    return ok;
}

/* Waits until the supervisor has started a child for each of the n slots
 * of handler and that child publishes its heartbeat (so it runs and has
 * connected); stores the PIDs in pids. */
static void wait_children(const char *log, const char *handler, int n, pid_t *pids)
{
    int i;

    for (i = 0; i < n; i++) {
        const char *c = cname(handler, i);
        SL_TEST_ASSERT_EVENTUALLY(10000, (pids[i] = child_of(log, c)) > 0 && beats_as(c, pids[i]));
    }
}

/* Returns the length of a stream. */
static long long xlen(const char *stream)
{
    return sl_test_int(rc, "XLEN %s", stream);
}

/* Returns 1 when the stream's first entry is id. */
static int first_entry_is(const char *stream, const char *id)
{
    redisReply *r = sl_test_cmd(rc, "XRANGE %s - + COUNT 1", stream);
    int ok = r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
             strcmp(r->element[0]->element[0]->str, id) == 0;

    freeReplyObject(r);
    return ok;
}

/* Returns the 1-based column, in the file write_config() writes, of the
 * value of "processes" in a worker object given as its only worker: that
 * line starts with `  "workers": [` (14 characters). */
static int bad_column(const char *worker)
{
    const char *v = strstr(worker, "\"processes\": ");

    ck_assert_ptr_nonnull(v);
    return 14 + (int)(v - worker) + (int)strlen("\"processes\": ") + 1;
}

/* Fails the test unless expr holds at every poll for ms (scaled): for
 * "this must not happen" checks, which can only be watched for a while. */
#define ASSERT_STAYS(ms, expr)                                               \
    do {                                                                     \
        long long stays_dl_ = sl_test_deadline(ms);                          \
        do {                                                                 \
            ck_assert_msg((expr), "stopped being true: %s", #expr);         \
        } while (sl_test_tick(stays_dl_));                                   \
    } while (0)

/* ------------------------------------------------------------------------
 * TCase "children": names, restarts, death with the supervisor
 * ------------------------------------------------------------------------ */

/* Returns the wall clock in milliseconds since the epoch, the clock of the
 * heartbeat's started_at and last_beat. */
static long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keeps the consumers of a group busy until each of the expected names has
 * read an entry: whenever nothing is pending it adds `burst` entries that
 * each hold a consumer for a moment, so every idle blocked child gets one.
 * Returns 1 once XINFO CONSUMERS lists every name. */
static int feed_until_listed(const char *stream, const char *group, const char *handler,
                             int n, int burst)
{
    long long dl = sl_test_deadline(15000);
    int i, all;

    do {
        all = 1;
        for (i = 0; i < n; i++)
            all = all && has_consumer(stream, group, cname(handler, i));
        if (all)
            return 1;
        if (pending_total(stream, group) == 0)
            for (i = 0; i < burst; i++)
                add_entry(stream, "{\"sleep_ms\":200}", NULL);
    } while (sl_test_tick(dl));
    return 0;
}

/* Checks `sluice workers --json` against the running children: exactly
 * the expected consumers (nh handlers, counts[k] slots of handlers[k] on
 * streams[k] and groups[k]), each with the PID the supervisor logged for
 * it, this host, its handler, stream and group, and a recent beat. */
static void check_workers_json(const char *log, int nh, const char *const *handlers,
                               const int *counts, const char *const *streams,
                               const char *const *groups)
{
    json_error_t jerr;
    json_t *doc;
    size_t total = 0;
    int k, s;

    ck_assert_int_eq(run_cli("workers.json", "workers", "--json", NULL), 0);
    doc = json_load_file(tpath("workers.json"), 0, &jerr);
    ck_assert_msg(doc != NULL, "sluice workers --json: %s (line %d)", jerr.text, jerr.line);
    ck_assert(json_is_array(doc));
    for (k = 0; k < nh; k++)
        total += (size_t)counts[k];
    ck_assert_uint_eq(json_array_size(doc), total);
    for (k = 0; k < nh; k++)
        for (s = 0; s < counts[k]; s++) {
            const char *c = cname(handlers[k], s);
            json_t *o = NULL, *it;
            size_t i;
            long long beat;
            json_array_foreach(doc, i, it)
                if (strcmp(json_string_value(json_object_get(it, "consumer")), c) == 0)
                    o = it;
            ck_assert_msg(o != NULL, "sluice workers does not list %s", c);
            ck_assert_int_eq(json_integer_value(json_object_get(o, "pid")), child_of(log, c));
            ck_assert_str_eq(json_string_value(json_object_get(o, "host")), host);
            ck_assert_str_eq(json_string_value(json_object_get(o, "handler")), handlers[k]);
            ck_assert_str_eq(json_string_value(json_object_get(o, "stream")), streams[k]);
            ck_assert_str_eq(json_string_value(json_object_get(o, "group")), groups[k]);
            ck_assert_int_gt(json_integer_value(json_object_get(o, "started_at")), 0);
            beat = json_integer_value(json_object_get(o, "last_beat"));
            ck_assert_int_ge(beat, json_integer_value(json_object_get(o, "started_at")));
            ck_assert_int_lt(llabs(wall_ms() - beat), 10000LL * sl_test_slow_factor());
        }
    json_decref(doc);
}

/* N children per worker run as N consumers named <host>:<handler>:<slot>:
 * XINFO CONSUMERS lists exactly those names once they have read, and
 * `sluice workers` (JSON and table) lists each with its PID, host,
 * handler, stream and group. */
START_TEST(test_pool_children_named_by_slot)
{
    static const char *const handlers[] = { "probe", "noop" };
    static const char *const streams[] = { "names", "names2" };
    static const char *const groups[] = { "ng", "ng2" };
    static const int counts[] = { 3, 2 };
    const char *log = tpath("pool.log");
    char names[16][320];
    pid_t probe[3], noop[2];
    char *table;
    int i, n;

    write_config("{\"handler\": \"probe\", \"stream\": \"names\", \"group\": \"ng\", "
                 "\"processes\": 3, \"batch\": 1},\n"
                 "{\"handler\": \"noop\", \"stream\": \"names2\", \"group\": \"ng2\", "
                 "\"processes\": 2, \"batch\": 1}");
    start_pool("pool.log", NULL);
    wait_children(log, "probe", 3, probe);
    wait_children(log, "noop", 2, noop);
    ck_assert_int_ne(probe[0], probe[1]);
    ck_assert_int_ne(probe[1], probe[2]);
    ck_assert_int_ne(noop[0], noop[1]);

    ck_assert_msg(feed_until_listed("names", "ng", "probe", 3, 3),
                  "not every probe child read an entry");
    ck_assert_msg(feed_until_listed("names2", "ng2", "noop", 2, 1),
                  "not every noop child read an entry");
    n = consumers("names", "ng", names, NULL, 16);
    ck_assert_int_eq(n, 3);             /* exactly the three slot names */
    n = consumers("names2", "ng2", names, NULL, 16);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(starts_of(log, cname("probe", 3)), 0);

    check_workers_json(log, 2, handlers, counts, streams, groups);

    ck_assert_int_eq(run_cli("workers.txt", "workers", NULL), 0);
    table = sl_test_read_file(tpath("workers.txt"));
    ck_assert_ptr_nonnull(table);
    ck_assert_ptr_nonnull(strstr(table, "CONSUMER"));
    for (i = 0; i < 3; i++)
        ck_assert_ptr_nonnull(strstr(table, cname("probe", i)));
    for (i = 0; i < 2; i++)
        ck_assert_ptr_nonnull(strstr(table, cname("noop", i)));
    free(table);
}
END_TEST

/* --workers NAME:N overrides the configured counts of the handlers it
 * names and keeps the others' counts. */
START_TEST(test_pool_workers_flag_overrides_counts)
{
    static const char *const handlers[] = { "probe", "noop" };
    static const char *const streams[] = { "ov", "ov2" };
    static const char *const groups[] = { "og", "og2" };
    static const int counts[] = { 1, 3 };
    const char *log = tpath("pool.log");
    pid_t probe[1], noop[3];

    write_config("{\"handler\": \"probe\", \"stream\": \"ov\", \"group\": \"og\", "
                 "\"processes\": 3, \"batch\": 1},\n"
                 "{\"handler\": \"noop\", \"stream\": \"ov2\", \"group\": \"og2\", "
                 "\"processes\": 1}");
    start_pool("pool.log", "--workers", "probe:1,noop:3", NULL);
    wait_children(log, "probe", 1, probe);
    wait_children(log, "noop", 3, noop);
    ck_assert_msg(feed_until_listed("ov", "og", "probe", 1, 1), "the probe child never read");
    ck_assert_int_eq(starts_of(log, cname("probe", 1)), 0);
    ck_assert_int_eq(starts_of(log, cname("probe", 2)), 0);
    ck_assert_int_eq(starts_of(log, cname("noop", 3)), 0);
    ck_assert_int_eq(log_count(log, "event=child_started "), 4);
    check_workers_json(log, 2, handlers, counts, streams, groups);
}
END_TEST

/* kill -9 of a child holding a batch: the slot is restarted within the
 * backoff under the same consumer name with a new PID, both events are
 * logged (the exit with signal=9), and all 200 entries end up acked with
 * their effects applied exactly once, including the batch the killed
 * child held. */
START_TEST(test_pool_killed_child_restarts_and_loses_nothing)
{
    const char *log = tpath("pool.log");
    const char *victim = cname("probe", 0);
    static char ids[200][IDLEN];
    char held[64][IDLEN], needle[512];
    pid_t kids[2], again;
    long long killed_at, back_at;
    int i, nheld;

    write_config("{\"handler\": \"probe\", \"stream\": \"kq\", \"group\": \"kg\", "
                 "\"processes\": 2, \"batch\": 10}");
    for (i = 0; i < 200; i++)
        add_entry("kq", "{\"effect\":true,\"sleep_ms\":10}", ids[i]);
    start_pool("pool.log", NULL);
    wait_children(log, "probe", 2, kids);

    /* Kill the child while it holds entries it has not acked yet. */
    SL_TEST_ASSERT_EVENTUALLY(10000, pending_of("kq", "kg", victim, NULL, 0) > 0);
    nheld = pending_of("kq", "kg", victim, held, 64);
    sl_test_kill(kids[0], SIGKILL);
    killed_at = sl_test_now_ms();

    SL_TEST_ASSERT_EVENTUALLY(5000, (again = child_of(log, victim)) != kids[0]);
    back_at = sl_test_now_ms();
    ck_assert_int_gt(again, 0);
    /* The first restart of a slot waits 100 ms; allow for a loaded host. */
    ck_assert_int_le(back_at - killed_at, 1500 * sl_test_slow_factor());
    snprintf(needle, sizeof(needle), "event=child_exited consumer=%s child=%ld signal=9",
             victim, (long)kids[0]);
    ck_assert_int_eq(log_count(log, needle), 1);
    snprintf(needle, sizeof(needle), "event=child_started consumer=%s child=%ld",
             victim, (long)again);
    ck_assert_int_eq(log_count(log, needle), 1);
    ck_assert(!sl_test_pid_alive(kids[0]));
    ck_assert(sl_test_pid_alive(kids[1]));
    ck_assert_int_eq(child_of(log, cname("probe", 1)), kids[1]);   /* untouched */

    /* The entry in the handler at the kill, if any, counts as a failed
     * attempt with the signal as its reason. */
    snprintf(needle, sizeof(needle), "event=attempt_failed consumer=%s ", victim);
    if (log_count(log, needle) > 0) {
        char *line = log_line(log, needle);
        ck_assert_ptr_nonnull(strstr(line, "reason=\"last crash signal 9\""));
        free(line);
    }

    SL_TEST_ASSERT_EVENTUALLY(30000, all_applied_once("kq", "kg", ids, 200));
    ck_assert_int_gt(nheld, 0);
    for (i = 0; i < nheld; i++) {
        ck_assert_int_eq(applied(held[i]), 1);
        ck_assert_int_eq(sl_test_int(rc, "LLEN probe:by:%s", held[i]), 1);
    }
    ck_assert(delivered_up_to("kq", "kg", ids[199]));
    SL_TEST_ASSERT_EVENTUALLY(5000, beats_as(victim, again));
    ck_assert_int_eq(starts_of(log, victim), 2);
}
END_TEST

/* A busy pool whose supervisor renews leases and keeps heartbeats alive on
 * every tick never mistakes a handler that started during that tick for
 * one that overran handler_timeout_ms: no handler_timeout, no restart,
 * every effect applied once. */
START_TEST(test_pool_busy_children_are_not_timed_out)
{
    const char *log = tpath("pool.log");
    static char ids[600][IDLEN];
    pid_t kids[4];
    int i;

    write_config("{\"handler\": \"probe\", \"stream\": \"bz\", \"group\": \"bzg\", "
                 "\"processes\": 4, \"batch\": 4, \"reclaim_idle_ms\": 600, "
                 "\"heartbeat_ms\": 20, \"handler_timeout_ms\": 30000}");
    start_pool("pool.log", NULL);
    wait_children(log, "probe", 4, kids);
    for (i = 0; i < 600; i++)
        add_entry("bz", "{\"effect\":true,\"sleep_ms\":1}", ids[i]);
    SL_TEST_ASSERT_EVENTUALLY(30000, all_applied_once("bz", "bzg", ids, 600));
    ck_assert_int_eq(log_count(log, "event=handler_timeout"), 0);
    ck_assert_int_eq(log_count(log, "event=child_exited"), 0);
    ck_assert_int_eq(log_count(log, "event=child_started"), 4);
}
END_TEST

/* kill -9 of the supervisor: every child is gone within a second
 * (PR_SET_PDEATHSIG), so no orphan keeps consuming under a name the next
 * supervisor would reuse. */
START_TEST(test_pool_children_die_with_supervisor)
{
    const char *log = tpath("pool.log");
    pid_t sup, kids[3];
    long long dl;
    int status, i, alive;

    write_config("{\"handler\": \"probe\", \"stream\": \"dq\", \"group\": \"dg\", "
                 "\"processes\": 3}");
    sup = start_pool("pool.log", NULL);
    wait_children(log, "probe", 3, kids);
    sl_test_kill(sup, SIGKILL);
    dl = sl_test_deadline(1000);
    do {
        alive = 0;
        for (i = 0; i < 3; i++)
            alive += sl_test_pid_alive(kids[i]);
    } while (alive > 0 && sl_test_tick(dl));
    ck_assert_msg(alive == 0, "%d children outlived the supervisor by a second", alive);
    status = wait_status(sup, 5000);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}
END_TEST

/* ------------------------------------------------------------------------
 * TCase "stop": SIGTERM and the shutdown timeout
 * ------------------------------------------------------------------------ */

/* SIGTERM while both children sleep in their handlers: each finishes the
 * entry in hand and acks it (effect applied once), reads nothing more,
 * and the supervisor exits 0 well before shutdown_timeout_ms. */
START_TEST(test_pool_sigterm_finishes_entries_in_hand)
{
    const char *log = tpath("pool.log");
    char busy[2][IDLEN], later[3][IDLEN];
    pid_t sup, kids[2];
    long long t0, took;
    int status, i;

    write_config("{\"handler\": \"probe\", \"stream\": \"tq\", \"group\": \"tg\", "
                 "\"processes\": 2, \"batch\": 1, \"shutdown_timeout_ms\": 8000}");
    sup = start_pool("pool.log", NULL);
    wait_children(log, "probe", 2, kids);
    for (i = 0; i < 2; i++)
        add_entry("tq", "{\"effect\":true,\"sleep_ms\":1500}", busy[i]);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending_of("tq", "tg", cname("probe", 0), NULL, 0) == 1 &&
                                    pending_of("tq", "tg", cname("probe", 1), NULL, 0) == 1);
    for (i = 0; i < 3; i++)
        add_entry("tq", "{\"effect\":true}", later[i]);

    t0 = sl_test_now_ms();
    sl_test_kill(sup, SIGTERM);
    status = wait_status(sup, 8000);
    took = sl_test_now_ms() - t0;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "supervisor status %d after SIGTERM", status);
    ck_assert_int_lt(took, 8000 * sl_test_slow_factor());
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(applied(busy[i]), 1);
        ck_assert(!sl_test_pid_alive(kids[i]));
    }
    ck_assert_int_eq(pending_total("tq", "tg"), 0);
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(applied(later[i]), 0);
    ck_assert(delivered_up_to("tq", "tg", busy[1]));   /* nothing more was read */
    ck_assert_int_eq(log_count(log, "event=child_exited "), 2);
    ck_assert_int_eq(log_count(log, " status=0\n"), 2);
    ck_assert_int_eq(log_count(log, "event=pool_stopped exit_code=0"), 1);
    ck_assert_int_eq(log_count(log, "event=shutdown_timeout"), 0);
}
END_TEST

/* Adds five entries of data to stream in one transaction, so that a
 * blocked read is served all five at once rather than the first alone;
 * their IDs go to ids. */
static void add_five_at_once(const char *stream, const char *data, char (*ids)[IDLEN])
{
    redisReply *r;
    int i;

    r = sl_test_cmd(rc, "MULTI");
    freeReplyObject(r);
    for (i = 0; i < 5; i++) {
        r = sl_test_cmd(rc, "XADD %s * type t data %s", stream, data);
        freeReplyObject(r);
    }
    r = sl_test_cmd(rc, "EXEC");
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements == 5, "EXEC: reply type %d", r->type);
    for (i = 0; i < 5; i++) {
        ck_assert(r->element[i]->type == REDIS_REPLY_STRING);
        snprintf(ids[i], IDLEN, "%s", r->element[i]->str);
    }
    freeReplyObject(r);
}

/* SIGTERM while a child holds a batch of five: it finishes at most the
 * entry in hand (the first; none if the signal came before its handler
 * started), leaves the rest of the batch pending and unhandled, and exits
 * 0; the next pool recovers those entries under the same consumer name
 * and applies each exactly once. */
START_TEST(test_pool_sigterm_leaves_rest_of_batch_pending)
{
    const char *log = tpath("pool.log");
    char ids[5][IDLEN], warm[IDLEN], data[64];
    pid_t sup, kids[1];
    int status, i, done = 0;

    write_config("{\"handler\": \"probe\", \"stream\": \"rbq\", \"group\": \"rbg\", "
                 "\"processes\": 1, \"batch\": 5}");
    snprintf(data, sizeof(data), "{\"effect\":true,\"sleep_ms\":%d}",
             400 * sl_test_slow_factor());
    sup = start_pool("pool.log", NULL);
    SL_TEST_ASSERT_EVENTUALLY(5000, (kids[0] = child_of(log, cname("probe", 0))) > 0);
    /* A worker's read size starts at one entry and doubles with each
     * read up to `batch`: a few quick entries first, so that the next
     * read may take all five. */
    for (i = 0; i < 8; i++)
        add_entry("rbq", "{}", warm);
    SL_TEST_ASSERT_EVENTUALLY(5000, delivered_up_to("rbq", "rbg", warm) &&
                                    pending_total("rbq", "rbg") == 0);
    /* One transaction, so that the blocked read is served all five at
     * once rather than the first alone. */
    add_five_at_once("rbq", data, ids);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending_of("rbq", "rbg", cname("probe", 0), NULL, 0) == 5);
    sl_test_kill(sup, SIGTERM);
    status = wait_status(sup, 5000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "supervisor status %d after SIGTERM", status);
    done = (int)applied(ids[0]);
    ck_assert_int_le(done, 1);
    for (i = 1; i < 5; i++)
        ck_assert_int_eq(applied(ids[i]), 0);   /* the rest was not handled */
    ck_assert_int_eq(pending_total("rbq", "rbg"), 5 - done);
    ck_assert_int_eq(pending_of("rbq", "rbg", cname("probe", 0), NULL, 0), 5 - done);

    start_pool("pool2.log", NULL);
    SL_TEST_ASSERT_EVENTUALLY(15000, all_applied_once("rbq", "rbg", ids, 5));
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(sl_test_int(rc, "LLEN probe:by:%s", ids[i]), 1);
}
END_TEST

/* The same stop when the slow batch came from a read-ahead, at the
 * default batch and block_ms. After a full batch handled quickly the
 * worker sends its next read before handling that batch; when nothing is
 * waiting that read blocks, and whatever arrives meanwhile comes back
 * through it. SIGTERM must still finish at most the entry in hand: the
 * rest of a slow batch stays pending whichever read brought it (before,
 * such a batch was finished whole, five slow handlers after the signal,
 * and past shutdown_timeout_ms the child was killed mid-handler). */
START_TEST(test_pool_sigterm_leaves_rest_of_read_ahead_batch_pending)
{
    const char *log = tpath("pool.log");
    char ids[5][IDLEN], warm[IDLEN], data[64];
    pid_t sup, kids[1];
    int status, i, done = 0;

    /* block_ms at its default (BASE_DEFAULTS shortens it), so the
     * read-ahead waits long enough for the slow entries below. */
    write_config("{\"handler\": \"probe\", \"stream\": \"raq\", \"group\": \"rag\", "
                 "\"processes\": 1, \"block_ms\": 2000}");
    snprintf(data, sizeof(data), "{\"effect\":true,\"sleep_ms\":%d}",
             400 * sl_test_slow_factor());
    /* Waiting before the worker starts, 1+2+4+...+64 quick entries: the
     * reads grow from one entry to the default batch of 64, and the last
     * takes exactly a full batch, so the read sent ahead of handling it
     * finds the stream empty and blocks. */
    for (i = 0; i < 127; i++)
        add_entry("raq", "{}", warm);
    sup = start_pool("pool.log", NULL);
    SL_TEST_ASSERT_EVENTUALLY(5000, (kids[0] = child_of(log, cname("probe", 0))) > 0);
    SL_TEST_ASSERT_EVENTUALLY(5000, delivered_up_to("raq", "rag", warm) &&
                                    pending_total("raq", "rag") == 0);
    /* One transaction: the blocked read is served all five at once. */
    add_five_at_once("raq", data, ids);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending_of("raq", "rag", cname("probe", 0), NULL, 0) == 5);
    sl_test_kill(sup, SIGTERM);
    status = wait_status(sup, 10000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "supervisor status %d after SIGTERM", status);
    ck_assert_int_eq(log_count(log, "event=shutdown_timeout"), 0);
    done = (int)applied(ids[0]);
    ck_assert_int_le(done, 1);
    for (i = 1; i < 5; i++)
        ck_assert_msg(applied(ids[i]) == 0, "entry %d of the read-ahead batch was handled "
                      "after SIGTERM (applied %lld)", i, applied(ids[i]));
    ck_assert_int_eq(pending_total("raq", "rag"), 5 - done);

    start_pool("pool2.log", NULL);
    SL_TEST_ASSERT_EVENTUALLY(15000, all_applied_once("raq", "rag", ids, 5));
}
END_TEST

/* A handler that overstays shutdown_timeout_ms is killed, the supervisor
 * exits non-zero once the timeout has passed, the entry stays pending with
 * no effect applied, and a new pool processes it (once). */
START_TEST(test_pool_shutdown_timeout_kills_overstaying_handler)
{
    const char *log = tpath("pool.log");
    char id[IDLEN];
    pid_t sup, kids[1];
    long long t0, took;
    int status;

    write_config("{\"handler\": \"probe\", \"stream\": \"sq\", \"group\": \"sg\", "
                 "\"processes\": 1, \"batch\": 1, \"shutdown_timeout_ms\": 700}");
    sup = start_pool("pool.log", NULL);
    wait_children(log, "probe", 1, kids);
    add_entry("sq", "{\"effect\":true,\"sleep_ms\":2500}", id);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending_total("sq", "sg") == 1);

    t0 = sl_test_now_ms();
    sl_test_kill(sup, SIGTERM);
    status = wait_status(sup, 5000);
    took = sl_test_now_ms() - t0;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0,
                  "supervisor status %d: expected a non-zero exit", status);
    ck_assert_int_ge(took, 650);
    ck_assert_int_lt(took, 2300 * sl_test_slow_factor());
    ck_assert(!sl_test_pid_alive(kids[0]));
    ck_assert_int_eq(log_count(log, "event=shutdown_timeout"), 1);
    ck_assert_int_eq(pending_total("sq", "sg"), 1);
    ck_assert_int_eq(applied(id), 0);

    start_pool("pool2.log", NULL);
    SL_TEST_ASSERT_EVENTUALLY(15000, all_applied_once("sq", "sg", (char (*)[IDLEN])id, 1));
}
END_TEST

/* A second SIGTERM stops at once: the children are killed without waiting
 * for the handler, the supervisor exits non-zero, and nothing is half
 * applied (the entry stays pending, no effect). */
START_TEST(test_pool_second_signal_stops_at_once)
{
    const char *log = tpath("pool.log");
    char id[IDLEN];
    pid_t sup, kids[1];
    long long t1;
    int status;

    write_config("{\"handler\": \"probe\", \"stream\": \"xq\", \"group\": \"xg\", "
                 "\"processes\": 1, \"batch\": 1, \"shutdown_timeout_ms\": 20000}");
    sup = start_pool("pool.log", NULL);
    wait_children(log, "probe", 1, kids);
    add_entry("xq", "{\"effect\":true,\"sleep_ms\":5000}", id);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending_total("xq", "xg") == 1);
    sl_test_kill(sup, SIGTERM);
    SL_TEST_ASSERT_EVENTUALLY(3000, log_count(log, "role=supervisor event=stopping ") == 1);
    ck_assert(sl_test_pid_alive(sup));
    t1 = sl_test_now_ms();
    sl_test_kill(sup, SIGTERM);
    status = wait_status(sup, 1500);
    ck_assert_int_lt(sl_test_now_ms() - t1, 1500 * sl_test_slow_factor());
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0,
                  "supervisor status %d: expected a non-zero exit", status);
    SL_TEST_ASSERT_EVENTUALLY(1000, !sl_test_pid_alive(kids[0]));
    ck_assert_int_eq(log_count(log, "event=stop_now"), 1);
    ck_assert_int_eq(pending_total("xq", "xg"), 1);
    ck_assert_int_eq(applied(id), 0);
}
END_TEST

/* A clean stop (SIGTERM, exit 0) of a pool with the default timings
 * (heartbeat_ms 1000) deletes its children's heartbeat keys, so `sluice
 * workers` no longer lists them and a `sluice run` right afterwards starts
 * at once instead of waiting for the beats to expire (start_waiting). */
START_TEST(test_pool_clean_stop_releases_heartbeats)
{
    struct sl_test_config c = { srv.url, NULL, NULL, NULL,
                                "{\"handler\": \"probe\", \"stream\": \"cq\", \"group\": \"cg\", "
                                "\"processes\": 2}", NULL };
    const char *log = tpath("pool.log");
    const char *log2 = tpath("pool2.log");
    pid_t sup, kids[2], kids2[2];
    char *table;
    int i, status;

    ck_assert_int_eq(sl_test_config_write(cfgpath, &c), 0);
    sup = start_pool("pool.log", NULL);
    wait_children(log, "probe", 2, kids);
    sl_test_kill(sup, SIGTERM);
    status = wait_status(sup, 10000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "supervisor status %d after SIGTERM", status);
    for (i = 0; i < 2; i++)
        ck_assert_msg(sl_test_int(rc, "EXISTS sluice:worker:%s", cname("probe", i)) == 0,
                      "heartbeat of %s still there after a clean stop", cname("probe", i));

    ck_assert_int_eq(run_cli("workers.txt", "workers", NULL), 0);
    table = sl_test_read_file(tpath("workers.txt"));
    ck_assert_ptr_nonnull(table);
    for (i = 0; i < 2; i++)
        ck_assert_msg(strstr(table, cname("probe", i)) == NULL,
                      "sluice workers lists stopped %s:\n%s", cname("probe", i), table);
    free(table);

    start_pool("pool2.log", NULL);
    wait_children(log2, "probe", 2, kids2);
    ck_assert_int_eq(log_count(log2, "event=start_waiting"), 0);
    ck_assert_int_eq(log_count(log2, "event=child_started "), 2);
}
END_TEST

/* ------------------------------------------------------------------------
 * TCase "control": SIGHUP, the start check, janitor, trim, exit codes
 * ------------------------------------------------------------------------ */

/* SIGHUP with a valid new configuration (2 -> 3 processes): the old
 * children are rolled one at a time (each new child of a name starts only
 * after the old one exited, and the next old child is stopped only after
 * that), the new slot starts, and the pool keeps consuming throughout. A
 * second reload (3 -> 1) stops the surplus slots, and the pool still exits
 * 0 on SIGTERM afterwards. */
START_TEST(test_pool_sighup_rolls_children)
{
    const char *log = tpath("pool.log");
    static char ids[40][IDLEN];
    char ex0[200], ex1[200], st0[200], st1[200];
    pid_t sup, old[2], nw[3];
    int i, status;

    write_config("{\"handler\": \"probe\", \"stream\": \"hq\", \"group\": \"hg\", "
                 "\"processes\": 2, \"batch\": 1}");
    sup = start_pool("pool.log", NULL);
    wait_children(log, "probe", 2, old);
    for (i = 0; i < 30; i++)
        add_entry("hq", "{\"effect\":true,\"sleep_ms\":40}", ids[i]);
    write_config("{\"handler\": \"probe\", \"stream\": \"hq\", \"group\": \"hg\", "
                 "\"processes\": 3, \"batch\": 1}");
    sl_test_kill(sup, SIGHUP);
    SL_TEST_ASSERT_EVENTUALLY(10000, log_count(log, "event=reloaded children=3") == 1);
    ck_assert_int_eq(log_count(log, "event=reloading children=3"), 1);
    for (i = 0; i < 3; i++)
        nw[i] = child_of(log, cname("probe", i));
    ck_assert_int_ne(nw[0], old[0]);
    ck_assert_int_ne(nw[1], old[1]);
    ck_assert_int_gt(nw[2], 0);
    ck_assert_int_eq(starts_of(log, cname("probe", 0)), 2);
    ck_assert_int_eq(starts_of(log, cname("probe", 1)), 2);
    ck_assert_int_eq(starts_of(log, cname("probe", 2)), 1);

    /* One by one: old 0 exits (gracefully), new 0 starts, then old 1. */
    snprintf(ex0, sizeof(ex0), "event=child_exited consumer=%s child=%ld status=0",
             cname("probe", 0), (long)old[0]);
    snprintf(ex1, sizeof(ex1), "event=child_exited consumer=%s child=%ld status=0",
             cname("probe", 1), (long)old[1]);
    snprintf(st0, sizeof(st0), "event=child_started consumer=%s child=%ld",
             cname("probe", 0), (long)nw[0]);
    snprintf(st1, sizeof(st1), "event=child_started consumer=%s child=%ld",
             cname("probe", 1), (long)nw[1]);
    ck_assert_int_ge(log_pos(log, ex0), 0);
    ck_assert_int_lt(log_pos(log, ex0), log_pos(log, st0));
    ck_assert_int_lt(log_pos(log, st0), log_pos(log, ex1));
    ck_assert_int_lt(log_pos(log, ex1), log_pos(log, st1));
    ck_assert(!sl_test_pid_alive(old[0]));
    ck_assert(!sl_test_pid_alive(old[1]));

    for (i = 30; i < 40; i++)
        add_entry("hq", "{\"effect\":true}", ids[i]);
    SL_TEST_ASSERT_EVENTUALLY(15000, all_applied_once("hq", "hg", ids, 40));
    for (i = 0; i < 3; i++)
        SL_TEST_ASSERT_EVENTUALLY(5000, beats_as(cname("probe", i), nw[i]));
    ck_assert(sl_test_pid_alive(sup));

    /* A second reload scales down to one: slots 1 and 2 stop for good. */
    write_config("{\"handler\": \"probe\", \"stream\": \"hq\", \"group\": \"hg\", "
                 "\"processes\": 1, \"batch\": 1}");
    sl_test_kill(sup, SIGHUP);
    SL_TEST_ASSERT_EVENTUALLY(10000, log_count(log, "event=reloaded children=1") == 1);
    ck_assert_int_eq(starts_of(log, cname("probe", 0)), 3);
    ck_assert_int_eq(starts_of(log, cname("probe", 1)), 2);
    ck_assert_int_eq(starts_of(log, cname("probe", 2)), 1);
    for (i = 0; i < 3; i++)
        SL_TEST_ASSERT_EVENTUALLY(2000, !sl_test_pid_alive(nw[i]));
    ck_assert(sl_test_pid_alive(child_of(log, cname("probe", 0))));

    /* The reloaded pool still stops cleanly (the configuration it was
     * started with belongs to the caller, the reloaded ones to the pool). */
    sl_test_kill(sup, SIGTERM);
    status = wait_status(sup, 8000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "reloaded supervisor status %d after SIGTERM", status);
    ck_assert_int_eq(log_count(log, "event=pool_stopped exit_code=0"), 1);
}
END_TEST

/* SIGHUP with a broken configuration: reload_failed is logged with the
 * configuration error (file:line:col: key: what), and the running children
 * keep their PIDs and keep consuming. */
START_TEST(test_pool_sighup_bad_config_keeps_pool)
{
    const char *log = tpath("pool.log");
    static const char bad_worker[] =
        "{\"handler\": \"probe\", \"stream\": \"bq\", \"group\": \"bg\", \"processes\": 0}";
    char ids[10][IDLEN], want[800];
    pid_t sup, kids[2];
    char *line;
    int i, status;

    write_config("{\"handler\": \"probe\", \"stream\": \"bq\", \"group\": \"bg\", "
                 "\"processes\": 2}");
    sup = start_pool("pool.log", NULL);
    wait_children(log, "probe", 2, kids);
    write_config(bad_worker);
    sl_test_kill(sup, SIGHUP);
    SL_TEST_ASSERT_EVENTUALLY(5000, log_count(log, "event=reload_failed ") == 1);
    snprintf(want, sizeof(want), "%s:4:%d: workers[0].processes: expected a positive integer",
             cfgpath, bad_column(bad_worker));
    line = log_line(log, "event=reload_failed ");
    ck_assert_ptr_nonnull(line);
    ck_assert_msg(strstr(line, want) != NULL, "reload_failed line \"%s\" lacks \"%s\"", line, want);
    free(line);

    for (i = 0; i < 10; i++)
        add_entry("bq", "{\"effect\":true}", ids[i]);
    SL_TEST_ASSERT_EVENTUALLY(10000, all_applied_once("bq", "bg", ids, 10));
    ck_assert_int_eq(log_count(log, "event=child_started "), 2);
    ck_assert_int_eq(log_count(log, "event=child_exited "), 0);
    for (i = 0; i < 2; i++) {
        ck_assert(sl_test_pid_alive(kids[i]));
        ck_assert(beats_as(cname("probe", i), kids[i]));
    }
    ck_assert(sl_test_pid_alive(sup));
    sl_test_kill(sup, SIGTERM);
    status = wait_status(sup, 8000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "supervisor status %d after SIGTERM", status);
}
END_TEST

/* A second `sluice run` with the same configuration, while the first
 * runs, refuses to start: exit 1, a message naming the consumer and the
 * PID that holds it, no child started; the first pool is left alone. */
START_TEST(test_pool_second_run_refuses_to_start)
{
    const char *log = tpath("pool.log");
    const char *log2 = tpath("pool2.log");
    char want[512];
    pid_t kids[2], second;
    int status;

    write_config("{\"handler\": \"probe\", \"stream\": \"rq\", \"group\": \"rg\", "
                 "\"processes\": 2}");
    start_pool("pool.log", NULL);
    wait_children(log, "probe", 2, kids);
    second = start_pool("pool2.log", NULL);
    status = wait_status(second, 5000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
                  "second supervisor status %d: expected exit 1", status);
    snprintf(want, sizeof(want), "consumer %s is held by a live process (pid %ld",
             cname("probe", 0), (long)kids[0]);
    ck_assert_msg(sl_test_file_contains(log2, want), "second pool's log lacks \"%s\"", want);
    ck_assert_int_eq(log_count(log2, "event=child_started "), 0);
    ck_assert(sl_test_pid_alive(kids[0]) && sl_test_pid_alive(kids[1]));
    ck_assert(beats_as(cname("probe", 0), kids[0]));
    ck_assert(beats_as(cname("probe", 1), kids[1]));
    ck_assert_int_eq(log_count(log, "event=child_exited "), 0);
}
END_TEST

/* A child whose handler blocks for many heartbeat periods still holds
 * its consumer name: its heartbeat does not lapse meanwhile, `sluice
 * workers` lists it, and a second `sluice run` refuses to start instead of
 * running a second process under the same name. */
START_TEST(test_pool_blocked_handler_keeps_name_held)
{
    const char *log = tpath("pool.log");
    const char *c0 = cname("probe", 0);
    char id[IDLEN], want[512], data[64];
    pid_t kids[1], second;
    int status;

    write_config("{\"handler\": \"probe\", \"stream\": \"lq\", \"group\": \"lg\", "
                 "\"processes\": 1, \"batch\": 1}");
    start_pool("pool.log", NULL);
    wait_children(log, "probe", 1, kids);
    /* Long enough to cover both checks below, whatever SLUICE_TEST_SLOW. */
    snprintf(data, sizeof(data), "{\"effect\":true,\"sleep_ms\":%d}",
             4000 * sl_test_slow_factor());
    add_entry("lq", data, id);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending_total("lq", "lg") == 1);
    /* Three beats are 450 ms: watch for well over that. */
    ASSERT_STAYS(1200, beats_as(c0, kids[0]));
    ck_assert_int_eq(applied(id), 0);       /* still in the handler */

    second = start_pool("pool2.log", NULL);
    status = wait_status(second, 5000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
                  "second supervisor status %d: expected exit 1", status);
    snprintf(want, sizeof(want), "consumer %s is held by a live process (pid %ld",
             c0, (long)kids[0]);
    ck_assert_msg(sl_test_file_contains(tpath("pool2.log"), want), "no \"%s\"", want);
    ck_assert_int_eq(log_count(tpath("pool2.log"), "event=child_started "), 0);
    ck_assert_int_eq(applied(id), 0);       /* refused while the handler blocked */
    SL_TEST_ASSERT_EVENTUALLY(10000, all_applied_once("lq", "lg", (char (*)[IDLEN])id, 1));
}
END_TEST

/* Returns the PID of a process that ran and is gone (reaped), so no
 * process of this PID namespace has it now. */
static pid_t gone_pid(void)
{
    const char *const tru[] = { "true", NULL };
    pid_t dead = sl_test_spawn(tru, NULL);

    ck_assert_int_gt(dead, 0);
    wait_status(dead, 5000);
    ck_assert(!sl_test_pid_alive(dead));
    return dead;
}

/* Writes the heartbeat of consumer as another process would (pid, host,
 * last_beat now), expiring after ttl_ms, or never when ttl_ms is 0. */
static void write_beat(const char *consumer, pid_t pid, const char *on_host, int ttl_ms)
{
    freeReplyObject(sl_test_cmd(rc, "HSET sluice:worker:%s pid %d host %s handler probe "
                                "stream wq group wg last_beat %lld", consumer, (int)pid,
                                on_host, wall_ms()));
    if (ttl_ms > 0)
        freeReplyObject(sl_test_cmd(rc, "PEXPIRE sluice:worker:%s %d", consumer, ttl_ms));
}

/* Keeps a heartbeat of consumer alive as a live process elsewhere would
 * (a beat every 50 ms, expiring after 450 ms) until the supervisor sup
 * exits or timeout_ms passes. Returns its wait status; fails the test if
 * it still runs. */
static int beat_until_exit(pid_t sup, const char *consumer, pid_t pid, const char *on_host,
                           int timeout_ms)
{
    long long dl = sl_test_deadline(timeout_ms), next = 0;
    int status = 0;

    do {
        if (sl_test_wait_exit(sup, 0, &status))
            return status;
        if (sl_test_now_ms() >= next) {
            write_beat(consumer, pid, on_host, 450);
            next = sl_test_now_ms() + 50;
        }
    } while (sl_test_tick(dl));
    ck_abort_msg("supervisor %ld still runs after %d ms", (long)sup, timeout_ms);
    return -1;
}

/* A heartbeat younger than its expiry is live whatever its PID: a pool in
 * another PID namespace (a second container with the same host name) has
 * PIDs that do not exist here. So a fresh heartbeat of this host naming a
 * PID that is gone is waited for, logged, and never taken over while it
 * lives; once it has expired the pool starts. */
START_TEST(test_pool_fresh_heartbeat_is_live_whatever_its_pid)
{
    const char *log = tpath("pool.log");
    const char *c0 = cname("probe", 0);
    int ttl = 3000 * sl_test_slow_factor();
    long long last_ttl = -1, pttl, dl;
    char want[512];
    pid_t dead = gone_pid(), sup, kids[1];

    write_beat(c0, dead, host, ttl);
    write_config("{\"handler\": \"probe\", \"stream\": \"wq\", \"group\": \"wg\", "
                 "\"processes\": 1}");
    sup = start_pool("pool.log", NULL);
    dl = sl_test_deadline(2 * ttl);
    /* The log is read before the key: a child logged while the key still
     * names the dead PID ran under a live name. */
    for (;;) {
        int started = log_count(log, "event=child_started ");
        if (!beats_as(c0, dead))
            break;
        ck_assert_msg(started == 0, "a child started while the heartbeat of pid %ld lived",
                      (long)dead);
        pttl = sl_test_int(rc, "PTTL sluice:worker:%s", c0);
        if (pttl > 0)
            last_ttl = pttl;
        ck_assert_msg(sl_test_tick(dl), "the heartbeat outlived twice its expiry");
    }
    /* It expired rather than being taken over early (deleted or
     * overwritten while it had most of its life left). */
    ck_assert_msg(last_ttl >= 0 && last_ttl < ttl / 2,
                  "the heartbeat went away with %lld of its %d ms left", last_ttl, ttl);
    wait_children(log, "probe", 1, kids);
    ck_assert_int_ne(kids[0], dead);
    snprintf(want, sizeof(want), "event=start_waiting consumer=%s old_pid=%ld old_host=%s ",
             c0, (long)dead, host);
    ck_assert_int_eq(log_count(log, want), 1);
    ck_assert_int_eq(log_count(log, "event=stale_heartbeat "), 0);
    ck_assert(sl_test_pid_alive(sup));
}
END_TEST

/* Two pools with one host name in different PID namespaces (the shipped
 * docker-compose scaled to two with a pinned host name): the second must
 * not run a process under a name whose heartbeat keeps being renewed,
 * though its PID does not exist here. It waits out one expiry, sees the
 * heartbeat renewed, and refuses to start (exit 1, no child). */
START_TEST(test_pool_renewed_heartbeat_of_unknown_pid_refuses_start)
{
    const char *c0 = cname("probe", 0);
    char want[512];
    pid_t dead = gone_pid(), sup;
    int status;

    write_beat(c0, dead, host, 450);
    write_config("{\"handler\": \"probe\", \"stream\": \"wq\", \"group\": \"wg\", "
                 "\"processes\": 1}");
    sup = start_pool("pool.log", NULL);
    status = beat_until_exit(sup, c0, dead, host, 8000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
                  "supervisor status %d: expected exit 1", status);
    snprintf(want, sizeof(want), "consumer %s is held by a live process (pid %ld on host %s)",
             c0, (long)dead, host);
    ck_assert_msg(sl_test_file_contains(tpath("pool.log"), want), "no \"%s\"", want);
    ck_assert_int_eq(log_count(tpath("pool.log"), "event=child_started "), 0);
    ck_assert(beats_as(c0, dead));
}
END_TEST

/* A heartbeat that is no longer renewed is taken over once it has
 * expired, whoever wrote it: another host's kept alive is refused; one
 * that never expires (its writer died between setting it and giving it
 * an expiry) is stale after three beats unchanged and logged so; and a
 * pool started right after its predecessor was SIGKILLed waits for the
 * old children's heartbeats to expire, then starts. */
START_TEST(test_pool_stale_heartbeat_taken_over)
{
    const char *log = tpath("pool.log");
    const char *c0 = cname("probe", 0);
    char want[512];
    char workers[256];
    pid_t dead = gone_pid(), sup, kids[1], old[1];
    int status;

    /* Another host's heartbeat, renewed: refused, whatever the PID. */
    write_beat(c0, dead, "elsewhere.invalid", 450);
    /* A beat every 150 ms, scaled like every deadline: the old child's
     * heartbeat (three beats) must outlive the start of the last pool up
     * to its check, which takes some 700 ms under valgrind; 450 ms had
     * expired by then, and nothing was waited for. */
    snprintf(workers, sizeof(workers), "{\"handler\": \"probe\", \"stream\": \"wq\", "
             "\"group\": \"wg\", \"processes\": 1, \"heartbeat_ms\": %d}",
             150 * sl_test_slow_factor());
    write_config(workers);
    sup = start_pool("refused.log", NULL);
    status = beat_until_exit(sup, c0, dead, "elsewhere.invalid", 8000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    ck_assert(sl_test_file_contains(tpath("refused.log"), "on host elsewhere.invalid"));
    ck_assert_int_eq(log_count(tpath("refused.log"), "event=child_started "), 0);

    /* On this host, of a PID that is gone, with no expiry: stale once it
     * has stayed unchanged for three beats (450 ms unscaled). */
    write_beat(c0, dead, host, 0);
    freeReplyObject(sl_test_cmd(rc, "PERSIST sluice:worker:%s", c0));
    sup = start_pool("pool.log", NULL);
    wait_children(log, "probe", 1, old);
    snprintf(want, sizeof(want), "event=stale_heartbeat consumer=%s old_pid=%ld", c0, (long)dead);
    ck_assert_int_eq(log_count(log, want), 1);
    ck_assert_int_ne(old[0], dead);

    /* Its supervisor SIGKILLed, its child dies with it; a new pool
     * started at once waits for the old heartbeat to expire. */
    sl_test_kill(sup, SIGKILL);
    ck_assert(sl_test_wait_exit(sup, 5000, NULL));
    SL_TEST_ASSERT_EVENTUALLY(5000, !sl_test_pid_alive(old[0]));
    ck_assert_msg(beats_as(c0, old[0]), "the old heartbeat expired before the new pool started");
    start_pool("pool2.log", NULL);
    wait_children(tpath("pool2.log"), "probe", 1, kids);
    ck_assert_int_ne(kids[0], old[0]);
    snprintf(want, sizeof(want), "event=start_waiting consumer=%s old_pid=%ld", c0, (long)old[0]);
    ck_assert_int_eq(log_count(tpath("pool2.log"), want), 1);
}
END_TEST

/* The wait for a found heartbeat is measured from when its remaining
 * lifetime was read, not from the start of the check: a Redis slow to
 * answer the supervisor's first commands (here paused for 600 ms while
 * the pool connects) must not make the check look again before the key
 * expired, and refuse a name whose writer is gone. */
START_TEST(test_pool_start_wait_measured_after_slow_redis)
{
    const char *log = tpath("pool.log");
    const char *c0 = cname("probe", 0);
    char want[512];
    pid_t dead = gone_pid(), sup, kids[1];
    int status = 0;

    write_config("{\"handler\": \"probe\", \"stream\": \"wq\", \"group\": \"wg\", "
                 "\"processes\": 1}");
    /* Both scaled alike: a pause that outlasts the heartbeat (2400 ms
     * against 2000 under valgrind) leaves nothing to wait for. */
    write_beat(c0, dead, host, 2000 * sl_test_slow_factor());
    freeReplyObject(sl_test_cmd(rc, "CLIENT PAUSE %d ALL", 600 * sl_test_slow_factor()));
    sup = start_pool("pool.log", NULL);
    SL_TEST_ASSERT_EVENTUALLY(10000, log_count(log, "event=child_started ") >= 1 ||
                                     sl_test_wait_exit(sup, 0, &status));
    ck_assert_msg(log_count(log, "event=child_started ") >= 1,
                  "the pool did not start (status 0x%x); see %s", status, log);
    wait_children(log, "probe", 1, kids);
    snprintf(want, sizeof(want), "event=start_waiting consumer=%s old_pid=%ld", c0, (long)dead);
    ck_assert_int_eq(log_count(log, want), 1);
}
END_TEST

/* The janitor removes a consumer of a configured group that has no
 * heartbeat and nothing pending once it has been idle past the threshold
 * (max(reclaim_idle_ms, 10 heartbeats) = 1000 ms here), and keeps one that
 * still has a pending entry and one that has a heartbeat. No child runs
 * for that group (--workers probe:0), so nothing reclaims the entry. */
START_TEST(test_pool_janitor_removes_only_idle_empty_consumers)
{
    const char *log = tpath("pool.log");
    char e[3][IDLEN], *line, *idle;
    char names[8][320];
    long long pend[8];
    pid_t kids[1];
    int n, i;

    write_config("{\"handler\": \"probe\", \"stream\": \"jq\", \"group\": \"jg\", "
                 "\"processes\": 1, \"reclaim_idle_ms\": 400, \"heartbeat_ms\": 100},\n"
                 "{\"handler\": \"noop\", \"stream\": \"jq2\", \"group\": \"jg2\", "
                 "\"processes\": 1}");
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jq jg 0 MKSTREAM"));
    for (i = 0; i < 3; i++)
        add_entry("jq", "{}", e[i]);
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP jg ghost-pending COUNT 1 STREAMS jq >"));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP jg ghost-empty COUNT 1 STREAMS jq >"));
    ck_assert_int_eq(sl_test_int(rc, "XACK jq jg %s", e[1]), 1);
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP jg ghost-beat COUNT 1 STREAMS jq >"));
    ck_assert_int_eq(sl_test_int(rc, "XACK jq jg %s", e[2]), 1);
    freeReplyObject(sl_test_cmd(rc, "HSET sluice:worker:ghost-beat pid 1 host elsewhere.invalid"));
    freeReplyObject(sl_test_cmd(rc, "PEXPIRE sluice:worker:ghost-beat 60000"));
    ck_assert_int_eq(consumers("jq", "jg", names, NULL, 8), 3);

    start_pool("pool.log", "--workers", "probe:0", NULL);
    wait_children(log, "noop", 1, kids);
    SL_TEST_ASSERT_EVENTUALLY(8000, !has_consumer("jq", "jg", "ghost-empty"));
    /* Logged when the script's reply comes back, so after Redis already
     * shows the consumer gone: waited for, not read at once (under
     * valgrind the line came too late for a single look). */
    SL_TEST_ASSERT_EVENTUALLY(5000, (line = log_line(log, "event=consumer_removed stream=jq "
                                                     "group=jg consumer=ghost-empty ")) != NULL);
    idle = strstr(line, "idle_ms=");
    ck_assert_ptr_nonnull(idle);
    ck_assert_int_gt(strtoll(idle + 8, NULL, 10), 1000);
    free(line);

    /* Several more janitor passes (every 200 ms) must leave the others. */
    ASSERT_STAYS(1200, has_consumer("jq", "jg", "ghost-pending") &&
                       has_consumer("jq", "jg", "ghost-beat"));
    n = consumers("jq", "jg", names, pend, 8);
    ck_assert_int_eq(n, 2);
    for (i = 0; i < n; i++)
        if (strcmp(names[i], "ghost-pending") == 0)
            ck_assert_int_eq(pend[i], 1);
    ck_assert_int_eq(pending_of("jq", "jg", "ghost-pending", NULL, 0), 1);
    ck_assert_int_eq(log_count(log, "event=consumer_removed "), 1);
}
END_TEST

/* GETs /healthz from the supervisor's metrics listener on 127.0.0.1:port
 * and returns how long the answer took in milliseconds (whatever its
 * status), or -1 when there was no answer. */
static long long healthz_ms(int port)
{
    static const char req[] = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    struct sockaddr_in a;
    struct timeval tv = { 30, 0 };
    long long t0 = sl_test_now_ms();
    char buf[512];
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0), got = 0;

    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1))
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            got = 1;
    close(fd);
    return got ? sl_test_now_ms() - t0 : -1;
}

/* Returns the number of consumers of a group (0 when there is none). */
static long long consumer_count(const char *stream, const char *group)
{
    long long n = 0;
    char v[32];

    group_field(stream, group, "consumers", v, sizeof(v));
    n = strtoll(v, NULL, 10);
    return n;
}

/* The janitor removes 50,000 dead consumers without holding the
 * supervisor's loop: with the default housekeeping period (5 s) and
 * default slices, /healthz polled every 20 ms meanwhile never takes long
 * to answer (it once waited 3 s while every consumer was removed in one
 * go). The one with a pending entry and the one with a heartbeat stay. */
START_TEST(test_pool_janitor_of_many_consumers_keeps_supervisor_responsive)
{
    enum { N = 50000 };
    const char *log = tpath("pool.log");
    char e[2][IDLEN];
    long long worst = 0, ms, dl, t0;
    pid_t kids[1];
    int i, port, answers = 0;
    redisReply *r;

    write_config("{\"handler\": \"probe\", \"stream\": \"jq\", \"group\": \"jg\", "
                 "\"processes\": 1, \"reclaim_idle_ms\": 1000, \"heartbeat_ms\": 100, "
                 "\"reclaim_interval_ms\": 5000},\n"
                 "{\"handler\": \"noop\", \"stream\": \"jq2\", \"group\": \"jg2\", "
                 "\"processes\": 1, \"reclaim_interval_ms\": 5000}");
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jq jg 0 MKSTREAM"));
    for (i = 0; i < N; i++)
        ck_assert_int_eq(redisAppendCommand(rc, "XGROUP CREATECONSUMER jq jg ghost-%d", i),
                         REDIS_OK);
    for (i = 0; i < N; i++) {
        ck_assert_int_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
        ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
        freeReplyObject(r);
    }
    for (i = 0; i < 2; i++)
        add_entry("jq", "{}", e[i]);
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP jg ghost-pending COUNT 1 STREAMS jq >"));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP jg ghost-beat COUNT 1 STREAMS jq >"));
    ck_assert_int_eq(sl_test_int(rc, "XACK jq jg %s", e[1]), 1);
    freeReplyObject(sl_test_cmd(rc, "HSET sluice:worker:ghost-beat pid 1 host elsewhere.invalid"));
    freeReplyObject(sl_test_cmd(rc, "PEXPIRE sluice:worker:ghost-beat 600000"));
    ck_assert_int_eq(consumer_count("jq", "jg"), N + 2);

    start_pool("pool.log", "--workers", "probe:0", "--metrics", "127.0.0.1:0", NULL);
    wait_children(log, "noop", 1, kids);
    SL_TEST_ASSERT_EVENTUALLY(5000, log_count(log, "event=metrics_listening ") == 1);
    {
        char *line = log_line(log, "event=metrics_listening addr=127.0.0.1:");
        ck_assert_ptr_nonnull(line);
        port = atoi(strstr(line, "127.0.0.1:") + 10);
        free(line);
    }
    ck_assert_int_gt(port, 0);

    /* Two housekeeping periods and the removal itself, generously. */
    t0 = sl_test_now_ms();
    dl = sl_test_deadline(40000);
    while (consumer_count("jq", "jg") > 2) {
        ms = healthz_ms(port);
        ck_assert_msg(ms >= 0, "no answer from /healthz");
        answers++;
        if (ms > worst)
            worst = ms;
        /* Two polls' pause: a request every 20 ms or so. */
        ck_assert_msg(sl_test_tick(dl) && sl_test_tick(dl), "%lld consumers left",
                      consumer_count("jq", "jg"));
    }
    fprintf(stderr, "janitor_of_many_consumers: %d removed in %lld ms, worst /healthz %lld ms\n",
            (int)N, sl_test_now_ms() - t0, worst);
    ck_assert_msg(worst < 500 * sl_test_slow_factor(),
                  "/healthz took %lld ms while the janitor ran (%d answers)", worst, answers);
    ck_assert_int_eq(consumer_count("jq", "jg"), 2);
    ck_assert(has_consumer("jq", "jg", "ghost-pending") && has_consumer("jq", "jg", "ghost-beat"));
    ck_assert_int_eq(pending_of("jq", "jg", "ghost-pending", NULL, 0), 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, log_count(log, "event=consumer_removed ") == N);
}
END_TEST

/* "trim": "acked" trims only what every group is done with: a lagging
 * group created at 0 that never reads keeps every entry; once it reads
 * and acks, entries below both groups' floors go, but never one that a
 * group has not read or still has pending (its own oldest pending entry,
 * or the entry the pool's handler holds). */
START_TEST(test_pool_trim_keeps_what_any_group_needs)
{
    static char ids[51][IDLEN];
    char data[64];
    int i;

    write_config("{\"handler\": \"probe\", \"stream\": \"trq\", \"group\": \"tg\", "
                 "\"processes\": 1, \"batch\": 10, \"trim\": \"acked\"}");
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE trq lag 0 MKSTREAM"));
    for (i = 0; i < 50; i++)
        add_entry("trq", "{}", ids[i]);
    start_pool("pool.log", NULL);
    SL_TEST_ASSERT_EVENTUALLY(10000, delivered_up_to("trq", "tg", ids[49]) &&
                                     pending_total("trq", "tg") == 0);
    /* The pool's group is done; the lagging group has read nothing. */
    ASSERT_STAYS(1200, xlen("trq") == 50);

    /* The lagging group reads 30 and acks 20: the first 20 may go. */
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP lag t1 COUNT 30 STREAMS trq >"));
    for (i = 0; i < 20; i++)
        ck_assert_int_eq(sl_test_int(rc, "XACK trq lag %s", ids[i]), 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, xlen("trq") == 30);
    ck_assert(first_entry_is("trq", ids[20]));
    ASSERT_STAYS(600, xlen("trq") == 30);

    /* The pool's handler holds a new entry; the lagging group catches up
     * completely. Everything but the held entry goes. */
    snprintf(data, sizeof(data), "{\"sleep_ms\":%d}", 3000 * sl_test_slow_factor());
    add_entry("trq", data, ids[50]);
    SL_TEST_ASSERT_EVENTUALLY(5000, pending_total("trq", "tg") == 1);
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP lag t1 COUNT 100 STREAMS trq >"));
    for (i = 20; i < 51; i++)
        ck_assert_int_eq(sl_test_int(rc, "XACK trq lag %s", ids[i]), 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, xlen("trq") <= 1);
    ck_assert_int_eq(xlen("trq"), 1);
    ck_assert(first_entry_is("trq", ids[50]));
    ck_assert_int_eq(pending_total("trq", "tg"), 1);

    /* Once the handler acks it, nothing is left that any group needs. */
    SL_TEST_ASSERT_EVENTUALLY(10000, pending_total("trq", "tg") == 0);
    SL_TEST_ASSERT_EVENTUALLY(5000, xlen("trq") == 0);
}
END_TEST

/* The trim floor is exact for entry IDs whose sequence part is beyond
 * 2^53 (explicit IDs): a double would round 1-9007199254740995 up to
 * ...996 and trim an entry that a group has not read, or still has
 * pending. A = 2^53+2, B = 2^53+3, C = 2^53+5. */
START_TEST(test_pool_trim_exact_with_huge_sequence_numbers)
{
    static const char *const a = "1-9007199254740994";
    static const char *const b = "1-9007199254740995";
    static const char *const c = "1-9007199254740997";

    write_config("{\"handler\": \"probe\", \"stream\": \"bigq\", \"group\": \"tg\", "
                 "\"processes\": 1, \"trim\": \"acked\"}");
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE bigq lag 0 MKSTREAM"));
    freeReplyObject(sl_test_cmd(rc, "XADD bigq %s type t data {}", a));
    freeReplyObject(sl_test_cmd(rc, "XADD bigq %s type t data {}", b));
    freeReplyObject(sl_test_cmd(rc, "XADD bigq %s type t data {}", c));
    start_pool("pool.log", NULL);
    SL_TEST_ASSERT_EVENTUALLY(10000, delivered_up_to("bigq", "tg", c) &&
                                     pending_total("bigq", "tg") == 0);
    ASSERT_STAYS(600, xlen("bigq") == 3);

    /* The lagging group has read and acked A: only A may go, B is unread. */
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP lag t1 COUNT 1 STREAMS bigq >"));
    ck_assert_int_eq(sl_test_int(rc, "XACK bigq lag %s", a), 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, xlen("bigq") < 3);
    ASSERT_STAYS(800, xlen("bigq") == 2 && first_entry_is("bigq", b));

    /* It reads B and C and acks C: B is pending and stays. */
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP lag t1 COUNT 2 STREAMS bigq >"));
    ck_assert_int_eq(sl_test_int(rc, "XACK bigq lag %s", c), 1);
    ASSERT_STAYS(800, xlen("bigq") == 2 && first_entry_is("bigq", b));

    ck_assert_int_eq(sl_test_int(rc, "XACK bigq lag %s", b), 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, xlen("bigq") == 0);
}
END_TEST

/* Exit codes of `sluice run`: a configuration error is 2 with its
 * file:line:col message, an unknown handler is 2 naming the key, and a
 * --workers name that is not configured is 2. None starts a child. */
START_TEST(test_pool_exit_codes_for_bad_configuration)
{
    static const char bad_worker[] =
        "{\"handler\": \"probe\", \"stream\": \"eq\", \"group\": \"eg\", \"processes\": 0}";
    char want[800];
    pid_t p;
    int status;

    write_config(bad_worker);
    p = start_pool("bad.log", NULL);
    status = wait_status(p, 5000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    snprintf(want, sizeof(want), "sluice: %s:4:%d: workers[0].processes: expected a positive integer",
             cfgpath, bad_column(bad_worker));
    ck_assert_msg(sl_test_file_contains(tpath("bad.log"), want), "no \"%s\"", want);

    write_config("{\"handler\": \"nosuch\", \"stream\": \"eq\", \"group\": \"eg\"}");
    p = start_pool("unknown.log", NULL);
    status = wait_status(p, 5000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    ck_assert(sl_test_file_contains(tpath("unknown.log"),
                                    "workers[0].handler: unknown handler \"nosuch\""));

    write_config("{\"handler\": \"probe\", \"stream\": \"eq\", \"group\": \"eg\"}");
    p = start_pool("flag.log", "--workers", "nosuch:2", NULL);
    status = wait_status(p, 5000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    ck_assert(sl_test_file_contains(tpath("flag.log"), "--workers: \"nosuch\""));

    ck_assert_int_eq(log_count(tpath("bad.log"), "event=child_started"), 0);
    ck_assert_int_eq(log_count(tpath("unknown.log"), "event=child_started"), 0);
    ck_assert_int_eq(log_count(tpath("flag.log"), "event=child_started"), 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * The suite
 * ------------------------------------------------------------------------ */

/* Adds a TCase sharing the redis-server fixture and the per-test setup,
 * with a timeout generous enough for a loaded host (scaled). */
static TCase *pool_tcase(const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, redis_setup, redis_teardown);
    tcase_add_checked_fixture(tc, test_setup, test_teardown);
    tcase_set_timeout(tc, 60.0 * sl_test_slow_factor());
    return tc;
}

Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *children = pool_tcase("children");
    TCase *stop = pool_tcase("stop");
    TCase *control = pool_tcase("control");

    tcase_add_test(children, test_pool_children_named_by_slot);
    tcase_add_test(children, test_pool_workers_flag_overrides_counts);
    tcase_add_test(children, test_pool_killed_child_restarts_and_loses_nothing);
    tcase_add_test(children, test_pool_busy_children_are_not_timed_out);
    tcase_add_test(children, test_pool_children_die_with_supervisor);
    suite_add_tcase(s, children);

    tcase_add_test(stop, test_pool_sigterm_finishes_entries_in_hand);
    tcase_add_test(stop, test_pool_sigterm_leaves_rest_of_batch_pending);
    tcase_add_test(stop, test_pool_sigterm_leaves_rest_of_read_ahead_batch_pending);
    tcase_add_test(stop, test_pool_shutdown_timeout_kills_overstaying_handler);
    tcase_add_test(stop, test_pool_second_signal_stops_at_once);
    tcase_add_test(stop, test_pool_clean_stop_releases_heartbeats);
    suite_add_tcase(s, stop);

    tcase_add_test(control, test_pool_sighup_rolls_children);
    tcase_add_test(control, test_pool_sighup_bad_config_keeps_pool);
    tcase_add_test(control, test_pool_second_run_refuses_to_start);
    tcase_add_test(control, test_pool_blocked_handler_keeps_name_held);
    tcase_add_test(control, test_pool_fresh_heartbeat_is_live_whatever_its_pid);
    tcase_add_test(control, test_pool_renewed_heartbeat_of_unknown_pid_refuses_start);
    tcase_add_test(control, test_pool_stale_heartbeat_taken_over);
    tcase_add_test(control, test_pool_start_wait_measured_after_slow_redis);
    tcase_add_test(control, test_pool_janitor_removes_only_idle_empty_consumers);
    tcase_add_test(control, test_pool_janitor_of_many_consumers_keeps_supervisor_responsive);
    tcase_add_test(control, test_pool_trim_keeps_what_any_group_needs);
    tcase_add_test(control, test_pool_trim_exact_with_huge_sequence_numbers);
    tcase_add_test(control, test_pool_exit_codes_for_bad_configuration);
    suite_add_tcase(s, control);
    return s;
}
