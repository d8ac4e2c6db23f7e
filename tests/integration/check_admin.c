/* check_admin.c -- `sluice pending`, `sluice stats` and `sluice workers` against a known
 * state: exact numbers where Redis makes them exact, bands that cannot be
 * met by accident where they are rates.
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
 * sluice pending
 * ------------------------------------------------------------------ */

/* Runs `sluice pending ARGS... --json` and returns the parsed array. */
static json_t *pending_json(const char *a1, const char *a2, const char *a3, const char *a4,
                            const char *a5, const char *a6)
{
    const char *argv[] = { sl_test_bin(), "pending", "--redis", srv.url, "--json",
                           a1, a2, a3, a4, a5, a6, NULL };
    struct out o = run(argv);
    json_t *j;

    ck_assert_msg(o.code == 0, "sluice pending exit %d: %s", o.code, o.err);
    j = parse_json(o.out);
    ck_assert(json_is_array(j));
    out_free(&o);
    return j;
}

/* Fails unless entries (a JSON array) are exactly the stalled entries
 * whose indexes are listed in want (n of them), with their consumers,
 * delivery counts and idle times. */
static void assert_entries(const json_t *entries, const int *want, int n)
{
    int i;

    ck_assert_msg(json_array_size(entries) == (size_t)n, "%zu entries, expected %d",
                  json_array_size(entries), n);
    for (i = 0; i < n; i++) {
        const json_t *e = json_array_get(entries, (size_t)i);
        ck_assert_str_eq(jstr(e, "id"), sid[want[i]]);
        ck_assert_str_eq(jstr(e, "consumer"), stalled_want[want[i]].consumer);
        ck_assert_int_eq(jint(e, "deliveries"), stalled_want[want[i]].deliveries);
        assert_idle(want[i], jint(e, "idle_ms"));
    }
}

/* --json with a stalled consumer: the summary (count, lowest and highest
 * ID), the consumers with their exact counts, and every pending entry
 * with its consumer, delivery count and idle time. */
START_TEST(test_admin_pending_json_exact)
{
    static const int all[] = { 0, 1, 2, 3, 4 };
    json_t *doc, *g, *cons;

    make_stalled();
    doc = pending_json("jobs", "g", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(json_array_size(doc), 1);
    g = json_array_get(doc, 0);
    ck_assert_str_eq(jstr(g, "stream"), "jobs");
    ck_assert_str_eq(jstr(g, "group"), "g");
    ck_assert_int_eq(jint(g, "pending"), 5);
    ck_assert_str_eq(jstr(g, "min_id"), "1-1");
    ck_assert_str_eq(jstr(g, "max_id"), "1-5");
    cons = json_object_get(g, "consumers");
    ck_assert_int_eq(json_array_size(cons), 2);
    ck_assert_str_eq(jstr(json_array_get(cons, 0), "consumer"), "stalled-a");
    ck_assert_int_eq(jint(json_array_get(cons, 0), "pending"), 3);
    ck_assert_str_eq(jstr(json_array_get(cons, 1), "consumer"), "stalled-b");
    ck_assert_int_eq(jint(json_array_get(cons, 1), "pending"), 2);
    assert_entries(json_object_get(g, "entries"), all, 5);
    json_decref(doc);
}
END_TEST

/* --idle keeps only entries idle at least that long, --count caps the
 * list (oldest first), both together, before or after the positionals;
 * the summary and consumer counts never change with the filters. */
START_TEST(test_admin_pending_idle_and_count_filters)
{
    static const int idle650[] = { 0, 3 }, first2[] = { 0, 1 }, first1[] = { 0 };
    static const int idle550[] = { 0, 1, 3 };
    json_t *doc, *g;

    make_stalled();
    doc = pending_json("jobs", "g", "--idle", "650000", NULL, NULL);
    g = json_array_get(doc, 0);
    ck_assert_int_eq(jint(g, "pending"), 5);
    ck_assert_int_eq(json_array_size(json_object_get(g, "consumers")), 2);
    assert_entries(json_object_get(g, "entries"), idle650, 2);
    json_decref(doc);

    doc = pending_json("--count", "2", "jobs", "g", NULL, NULL);
    g = json_array_get(doc, 0);
    ck_assert_int_eq(jint(g, "pending"), 5);
    assert_entries(json_object_get(g, "entries"), first2, 2);
    json_decref(doc);

    doc = pending_json("jobs", "--idle", "550000", "g", "--count", "3");
    assert_entries(json_object_get(json_array_get(doc, 0), "entries"), idle550, 3);
    json_decref(doc);

    doc = pending_json("jobs", "g", "--idle=650000", "--count=1", NULL, NULL);
    assert_entries(json_object_get(json_array_get(doc, 0), "entries"), first1, 1);
    json_decref(doc);

    doc = pending_json("jobs", "g", "--idle", "2000000", NULL, NULL);
    g = json_array_get(doc, 0);
    ck_assert_int_eq(jint(g, "pending"), 5);
    ck_assert_int_eq(json_array_size(json_object_get(g, "entries")), 0);
    json_decref(doc);
}
END_TEST

/* The table: the summary line, one row per consumer and one per entry,
 * with the same numbers as the JSON. */
START_TEST(test_admin_pending_table)
{
    const char *argv[] = { sl_test_bin(), "pending", "jobs", "g", "--redis", srv.url, NULL };
    struct out o;
    char *line, *save = NULL, a[64], b[64];
    long long x, y;
    int nl = 0, ncons = 0, nent = 0;

    make_stalled();
    o = run(argv);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    ck_assert_str_eq(o.err, "");
    for (line = strtok_r(o.out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save), nl++) {
        if (nl == 0) {
            ck_assert_str_eq(line, "stream jobs group g: 5 pending (1-1 .. 1-5)");
        } else if (nl == 1) {
            ck_assert_int_eq(sscanf(line, " %63s %63s", a, b), 2);
            ck_assert_str_eq(a, "CONSUMER");
            ck_assert_str_eq(b, "PENDING");
        } else if (nl <= 3) {
            ck_assert_int_eq(sscanf(line, " %63s %lld", a, &x), 2);
            ck_assert_str_eq(a, nl == 2 ? "stalled-a" : "stalled-b");
            ck_assert_int_eq(x, nl == 2 ? 3 : 2);
            ncons++;
        } else if (nl == 4) {
            ck_assert_msg(strstr(line, "ID") && strstr(line, "IDLE_MS") && strstr(line, "DELIVERIES"),
                          "entry header: %s", line);
        } else {
            ck_assert_int_lt(nent, 5);
            ck_assert_int_eq(sscanf(line, " %63s %63s %lld %lld", a, b, &x, &y), 4);
            ck_assert_str_eq(a, sid[nent]);
            ck_assert_str_eq(b, stalled_want[nent].consumer);
            assert_idle(nent, x);
            ck_assert_int_eq(y, stalled_want[nent].deliveries);
            nent++;
        }
    }
    ck_assert_int_eq(ncons, 2);
    ck_assert_int_eq(nent, 5);
    out_free(&o);
}
END_TEST

/* Without GROUP every group of the stream is shown, in name order: one
 * with the stalled entries and an empty one (null IDs, no rows). */
START_TEST(test_admin_pending_all_groups)
{
    const char *argv[] = { sl_test_bin(), "pending", "jobs", "--redis", srv.url, NULL };
    json_t *doc, *g;
    struct out o;

    make_stalled();
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs idle-group $"));
    doc = pending_json("jobs", NULL, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(json_array_size(doc), 2);
    g = json_array_get(doc, 0);
    ck_assert_str_eq(jstr(g, "group"), "g");
    ck_assert_int_eq(jint(g, "pending"), 5);
    g = json_array_get(doc, 1);
    ck_assert_str_eq(jstr(g, "group"), "idle-group");
    ck_assert_int_eq(jint(g, "pending"), 0);
    ck_assert(json_is_null(json_object_get(g, "min_id")));
    ck_assert(json_is_null(json_object_get(g, "max_id")));
    ck_assert_int_eq(json_array_size(json_object_get(g, "consumers")), 0);
    ck_assert_int_eq(json_array_size(json_object_get(g, "entries")), 0);
    json_decref(doc);

    o = run(argv);
    ck_assert_int_eq(o.code, 0);
    ck_assert_msg(strstr(o.out, "stream jobs group g: 5 pending (1-1 .. 1-5)\n") != NULL, "%s", o.out);
    ck_assert_msg(strstr(o.out, "stream jobs group idle-group: 0 pending\n") != NULL, "%s", o.out);
    out_free(&o);
}
END_TEST

/* Errors name what is wrong, with the exit codes of docs/configuration.md: a
 * missing group or stream and an unreachable server are 1, bad options
 * 2; a stream without groups is no error. */
START_TEST(test_admin_pending_errors)
{
    char url[64];
    const char *nogroup[] = { sl_test_bin(), "pending", "jobs", "nope", "--redis", srv.url, NULL };
    const char *nostream[] = { sl_test_bin(), "pending", "nothere", "--redis", srv.url, NULL };
    const char *bare[] = { sl_test_bin(), "pending", "bare", "--redis", srv.url, NULL };
    const char *count0[] = { sl_test_bin(), "pending", "jobs", "g", "--count", "0", "--redis", srv.url, NULL };
    const char *idleneg[] = { sl_test_bin(), "pending", "jobs", "g", "--idle", "-5", "--redis", srv.url, NULL };
    const char *toomany[] = { sl_test_bin(), "pending", "a", "b", "c", "--redis", srv.url, NULL };
    const char *down[] = { sl_test_bin(), "pending", "jobs", "g", "--redis", url, NULL };
    struct out o;

    make_stalled();
    freeReplyObject(sl_test_cmd(rc, "XADD bare * type t data {}"));
    o = run(nogroup);
    ck_assert_int_eq(o.code, 1);
    ck_assert_msg(strstr(o.err, "NOGROUP") != NULL, "%s", o.err);
    out_free(&o);
    o = run(nostream);
    ck_assert_int_eq(o.code, 1);
    ck_assert_str_eq(o.err, "sluice: no stream nothere\n");
    out_free(&o);
    o = run(bare);
    ck_assert_int_eq(o.code, 0);
    ck_assert_str_eq(o.out, "stream bare has no consumer groups\n");
    out_free(&o);
    o = run(count0);
    ck_assert_int_eq(o.code, 2);
    ck_assert_msg(strstr(o.err, "--count") != NULL, "%s", o.err);
    out_free(&o);
    o = run(idleneg);
    ck_assert_int_eq(o.code, 2);
    ck_assert_msg(strstr(o.err, "--idle") != NULL, "%s", o.err);
    out_free(&o);
    o = run(toomany);
    ck_assert_int_eq(o.code, 2);
    out_free(&o);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", closed_port());
    o = run(down);
    ck_assert_int_eq(o.code, 1);
    ck_assert_msg(strstr(o.err, "cannot reach redis") != NULL, "%s", o.err);
    out_free(&o);
}
END_TEST

/* ---------------------------------------------------------------------
 * sluice stats
 * ------------------------------------------------------------------ */

/* A producer thread: XADDs `rate` entries a second to `stream` on its own
 * connection until told to stop. Sleeping is its job here (it paces
 * arrivals on an absolute schedule, so a late wake-up is made up for),
 * not a wait for an effect. */
struct producer {
    const char *stream;           /* stream to add to */
    const char *type;             /* the entries' type; NULL: "tick" */
    int rate;                     /* entries per second */
    volatile int stop;            /* set by the test to end it */
    long long produced;           /* entries added */
    char error[256];              /* "" or what went wrong */
    pthread_t thread;
};

/* The producer's thread body. */
static void *produce(void *arg)
{
    struct producer *pr = arg;
    redisContext *c = sl_test_connect(&srv);
    struct timespec t0, now, at;
    long long i;

    if (c == NULL) {
        snprintf(pr->error, sizeof(pr->error), "cannot connect");
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; !pr->stop; i++) {
        long long ns = i * (1000000000LL / pr->rate);
        redisReply *r;
        at.tv_sec = t0.tv_sec + (time_t)((t0.tv_nsec + ns) / 1000000000LL);
        at.tv_nsec = (long)((t0.tv_nsec + ns) % 1000000000LL);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec < at.tv_sec || (now.tv_sec == at.tv_sec && now.tv_nsec < at.tv_nsec))
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
                ;
        r = redisCommand(c, "XADD %s * type %s data {}", pr->stream, pr->type ? pr->type : "tick");
        if (r == NULL || r->type != REDIS_REPLY_STRING) {
            snprintf(pr->error, sizeof(pr->error), "XADD failed: %s", r ? r->str : c->errstr);
            freeReplyObject(r);
            break;
        }
        freeReplyObject(r);
        pr->produced++;
    }
    redisFree(c);
    return NULL;
}

/* Starts a producer of entries of type `type` (NULL: "tick"). */
static void producer_start_typed(struct producer *pr, const char *stream, const char *type, int rate)
{
    memset(pr, 0, sizeof(*pr));
    pr->stream = stream;
    pr->type = type;
    pr->rate = rate;
    ck_assert_int_eq(pthread_create(&pr->thread, NULL, produce, pr), 0);
}

/* Starts a producer of "tick" entries. */
static void producer_start(struct producer *pr, const char *stream, int rate)
{
    producer_start_typed(pr, stream, NULL, rate);
}

/* Stops a producer and fails the test if it had failed. */
static void producer_stop(struct producer *pr)
{
    pr->stop = 1;
    pthread_join(pr->thread, NULL);
    ck_assert_msg(pr->error[0] == '\0', "producer: %s", pr->error);
}

/* Runs `sluice stats --json -c cfg` with extra arguments and returns the
 * parsed array. */
static json_t *stats_json(const char *cfg, const char *a1, const char *a2)
{
    const char *argv[] = { sl_test_bin(), "stats", "--json", "-c", cfg, a1, a2, NULL };
    struct out o = run(argv);
    json_t *j;

    ck_assert_msg(o.code == 0, "sluice stats exit %d: %s", o.code, o.err);
    j = parse_json(o.out);
    ck_assert(json_is_array(j));
    out_free(&o);
    return j;
}

/* Returns the row of stream/group in a stats document (borrowed). */
static json_t *stats_row(json_t *doc, const char *stream, const char *group)
{
    size_t i;

    for (i = 0; i < json_array_size(doc); i++) {
        json_t *r = json_array_get(doc, i);
        if (!strcmp(jstr(r, "stream"), stream) && !strcmp(jstr(r, "group"), group))
            return r;
    }
    ck_abort_msg("no stats row for %s/%s", stream, group);
    return NULL;
}

/* A known state without any worker running: every number exact. "jobs"
 * has 10 entries, group g has 4 pending with one consumer and 6 undelivered,
 * group other none; 3 dead letters. "holes" has a deletion past its
 * group's last delivered entry, so Redis cannot tell the lag (null), and
 * L counts its pending entries only. Nothing arrives: lambda 0, mu 0,
 * rho and W null (JSON) or "-" (table). */
START_TEST(test_admin_stats_known_state_exact)
{
    char cfg[600];
    const char *table[] = { sl_test_bin(), "stats", "-c", cfg, NULL };
    json_t *doc, *r;
    struct out o;
    char *line;
    int i;

    write_config(cfg, sizeof(cfg), "stats",
                 "{\"handler\": \"noop\", \"stream\": \"jobs\", \"group\": \"g\"},"
                 "{\"handler\": \"noop\", \"stream\": \"holes\", \"group\": \"h\"},"
                 "{\"handler\": \"noop\", \"stream\": \"never\", \"group\": \"n\"}", "", 0);
    for (i = 0; i < 10; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD jobs * type t data {}"));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs g 0"));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs other $"));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP g c COUNT 4 STREAMS jobs >"));
    for (i = 0; i < 3; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD jobs:dead * type t error x"));
    for (i = 1; i <= 3; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD holes 5-%d type t data {}", i));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE holes h 0"));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP h c COUNT 1 STREAMS holes >"));
    ck_assert_int_eq(sl_test_int(rc, "XDEL holes 5-3"), 1);

    doc = stats_json(cfg, NULL, NULL);
    ck_assert_int_eq(json_array_size(doc), 3);     /* "never" does not exist: no row */
    r = stats_row(doc, "jobs", "g");
    ck_assert_int_eq(jint(r, "length"), 10);
    ck_assert_int_eq(jint(r, "entries_added"), 10);
    ck_assert_int_eq(jint(r, "lag"), 6);
    ck_assert_int_eq(jint(r, "pending"), 4);
    ck_assert_int_eq(jint(r, "consumers"), 1);
    ck_assert_int_eq(jint(r, "dead"), 3);
    ck_assert_int_eq(jint(r, "L"), 10);
    ck_assert_int_eq(jint(r, "processed"), 0);
    ck_assert(jint(r, "oldest_pending_ms") >= 0);
    ck_assert(jnum(r, "lambda") == 0.0);
    ck_assert(jnum(r, "mu") == 0.0);
    ck_assert(json_is_null(json_object_get(r, "rho")));
    ck_assert(json_is_null(json_object_get(r, "W")));
    r = stats_row(doc, "jobs", "other");
    ck_assert_int_eq(jint(r, "lag"), 0);
    ck_assert_int_eq(jint(r, "pending"), 0);
    ck_assert_int_eq(jint(r, "consumers"), 0);
    ck_assert_int_eq(jint(r, "dead"), 3);
    ck_assert_int_eq(jint(r, "L"), 0);
    ck_assert(json_is_null(json_object_get(r, "oldest_pending_ms")));
    ck_assert(json_is_null(json_object_get(r, "W")));
    r = stats_row(doc, "holes", "h");
    ck_assert_int_eq(jint(r, "length"), 2);
    ck_assert_int_eq(jint(r, "entries_added"), 3);
    ck_assert(json_is_null(json_object_get(r, "lag")));
    ck_assert_int_eq(jint(r, "pending"), 1);
    ck_assert_int_eq(jint(r, "L"), 1);
    ck_assert_int_eq(jint(r, "dead"), 0);
    json_decref(doc);

    o = run(table);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    line = strstr(o.out, "\njobs ");
    ck_assert_ptr_nonnull(line);
    {
        char st[64], gr[64], lag[32], old[32], rho[16], w[16];
        long long len, pend, cons, dead, l;
        double lam, mu;
        ck_assert_int_eq(sscanf(line + 1, "%63s %63s %lld %31s %lld %lld %31s %lld %lf %lf %15s %lld %15s",
                                st, gr, &len, lag, &pend, &cons, old, &dead, &lam, &mu, rho, &l, w), 13);
        ck_assert_str_eq(gr, "g");
        ck_assert_int_eq(len, 10);
        ck_assert_str_eq(lag, "6");
        ck_assert_int_eq(pend, 4);
        ck_assert_int_eq(cons, 1);
        ck_assert_int_eq(dead, 3);
        ck_assert(lam == 0.0 && mu == 0.0);
        ck_assert_str_eq(rho, "-");
        ck_assert_int_eq(l, 10);
        ck_assert_str_eq(w, "-");
    }
    ck_assert_msg(strstr(o.out, "STREAM") == o.out, "header: %s", o.out);
    line = strstr(o.out, "\nholes ");
    ck_assert_ptr_nonnull(line);
    {
        char st[64], gr[64], lag[32];
        long long len;
        ck_assert_int_eq(sscanf(line + 1, "%63s %63s %lld %31s", st, gr, &len, lag), 4);
        ck_assert_str_eq(lag, "-");
    }
    out_free(&o);
}
END_TEST

/* Reads JSON documents from the growing file at path (a `stats --watch
 * --json` log) until n are complete; returns them in an array (new). */
static json_t *read_docs(const char *path, size_t n, int timeout_ms)
{
    long long deadline = sl_test_deadline(timeout_ms);
    json_t *docs = NULL;

    for (;;) {
        char *s = sl_test_read_file(path);
        size_t off = 0, len = s ? strlen(s) : 0;
        json_decref(docs);
        docs = json_array();
        while (s != NULL && off < len && json_array_size(docs) < n) {
            json_error_t e;
            json_t *d = json_loadb(s + off, len - off, JSON_DISABLE_EOF_CHECK, &e);
            if (d == NULL)
                break;
            json_array_append_new(docs, d);
            off += (size_t)e.position;
        }
        free(s);
        if (json_array_size(docs) >= n)
            return docs;
        ck_assert_msg(sl_test_tick(deadline), "only %zu of %zu stats documents in %s",
                      json_array_size(docs), n, path);
    }
}

/* A paced producer offers 200 entries/s to a running pool: lambda and mu
 * are near 200 in a band that a wrong formula cannot hit (a rate not
 * divided by the 2 s window would be ~400, a missing one 0), rho near 1,
 * W defined. Once the producer stops and the pool has caught up, every
 * count is exact: entries added = processed = produced, nothing pending,
 * lambda = mu = 0, W null. */
START_TEST(test_admin_stats_paced_rate)
{
    struct pool p;
    struct producer pr;
    char log[600];
    const char *watch[] = { sl_test_bin(), "stats", "--json", "--watch", "2", "-c", NULL, NULL };
    json_t *doc, *r;
    pid_t w;
    long long n;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"paced\", \"group\": \"pg\"}",
               ", \"trim\": \"none\"", 0, 1);
    watch[6] = p.cfg;
    producer_start(&pr, "paced", 200);
    SL_TEST_ASSERT_EVENTUALLY(5000, pr.produced >= 100);

    doc = stats_json(p.cfg, NULL, NULL);
    r = stats_row(doc, "paced", "pg");
    ck_assert_msg(jnum(r, "lambda") >= 100 && jnum(r, "lambda") <= 400, "lambda %g", jnum(r, "lambda"));
    ck_assert_msg(jnum(r, "mu") >= 100 && jnum(r, "mu") <= 400, "mu %g", jnum(r, "mu"));
    ck_assert_msg(jnum(r, "rho") >= 0.5 && jnum(r, "rho") <= 2.0, "rho %g", jnum(r, "rho"));
    ck_assert_msg(json_is_real(json_object_get(r, "W")) && jnum(r, "W") >= 0 && jnum(r, "W") < 5,
                  "W is not a small number");
    ck_assert_int_eq(jint(r, "consumers"), 1);
    json_decref(doc);

    snprintf(log, sizeof(log), "%s/watch.log", tmp);
    w = sl_test_spawn(watch, log);
    ck_assert_int_gt(w, 0);
    track(w);
    doc = read_docs(log, 1, 15000);
    sl_test_kill(w, SIGTERM);
    sl_test_wait_exit(w, 5000, NULL);
    untrack(w);
    r = stats_row(json_array_get(doc, 0), "paced", "pg");
    ck_assert_msg(jnum(r, "lambda") >= 120 && jnum(r, "lambda") <= 320, "2 s window: lambda %g",
                  jnum(r, "lambda"));
    ck_assert_msg(jnum(r, "mu") >= 120 && jnum(r, "mu") <= 320, "2 s window: mu %g", jnum(r, "mu"));
    json_decref(doc);

    producer_stop(&pr);
    n = pr.produced;
    SL_TEST_ASSERT_EVENTUALLY(10000, group_backlog("paced", "pg") == 0);
    /* The heartbeats (every 100 ms) catch up with the last entries; then
     * one more window sees nothing move. */
    {
        long long dl = sl_test_deadline(10000);
        for (;;) {
            doc = stats_json(p.cfg, NULL, NULL);
            if (jint(stats_row(doc, "paced", "pg"), "processed") == n)
                break;
            json_decref(doc);
            ck_assert_msg(sl_test_tick(dl), "the heartbeats never showed %lld processed", n);
        }
        json_decref(doc);
    }
    doc = stats_json(p.cfg, NULL, NULL);
    r = stats_row(doc, "paced", "pg");
    ck_assert_int_eq(jint(r, "entries_added"), n);
    ck_assert_int_eq(jint(r, "length"), n);
    ck_assert_int_eq(jint(r, "pending"), 0);
    ck_assert_int_eq(jint(r, "lag"), 0);
    ck_assert_int_eq(jint(r, "L"), 0);
    ck_assert_int_eq(jint(r, "dead"), 0);
    ck_assert(jnum(r, "lambda") == 0.0);
    ck_assert(jnum(r, "mu") == 0.0);
    ck_assert(json_is_null(json_object_get(r, "W")));
    ck_assert(json_is_null(json_object_get(r, "rho")));
    json_decref(doc);
    pool_stop(&p);
}
END_TEST

/* A worker process restarted during the window starts its processed
 * counter again from 0. mu must stay >= 0 in every window (before the
 * per-consumer sums it went negative), and the restarted worker's work
 * is counted again once it runs. */
START_TEST(test_admin_stats_mu_survives_restart)
{
    struct pool p;
    struct producer pr;
    char log[600];
    const char *watch[] = { sl_test_bin(), "stats", "--json", "--watch", "0.4", "-c", NULL, NULL };
    json_t *docs;
    pid_t w, child;
    size_t i;
    int positive_after = 0;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"r\", \"group\": \"rg\"}", "", 0, 1);
    watch[6] = p.cfg;
    producer_start(&pr, "r", 200);
    SL_TEST_ASSERT_EVENTUALLY(5000, pr.produced >= 100);
    snprintf(log, sizeof(log), "%s/watch.log", tmp);
    w = sl_test_spawn(watch, log);
    ck_assert_int_gt(w, 0);
    track(w);
    json_decref(read_docs(log, 2, 15000));
    child = child_pid(&p, "noop:0");
    ck_assert_int_gt(child, 0);
    sl_test_kill(child, SIGKILL);
    SL_TEST_ASSERT_EVENTUALLY(10000, child_pid(&p, "noop:0") != child);
    docs = read_docs(log, 9, 20000);
    sl_test_kill(w, SIGTERM);
    sl_test_wait_exit(w, 5000, NULL);
    untrack(w);
    producer_stop(&pr);
    for (i = 0; i < json_array_size(docs); i++) {
        json_t *r = stats_row(json_array_get(docs, i), "r", "rg");
        ck_assert_msg(jnum(r, "mu") >= 0, "window %zu: mu %g", i, jnum(r, "mu"));
        ck_assert_msg(jnum(r, "lambda") >= 0, "window %zu: lambda %g", i, jnum(r, "lambda"));
        if (i >= 6 && jnum(r, "mu") > 50)
            positive_after++;
    }
    ck_assert_msg(positive_after > 0, "the restarted worker's work is never counted");
    json_decref(docs);
    pool_stop(&p);
}
END_TEST

/* Usage errors are 2; an unreachable server and a refused AUTH are 1
 * (before, a failed AUTH was ignored and an empty table printed). */
START_TEST(test_admin_stats_errors)
{
    char cfg[600], down[64], badpw[128];
    const char *w0[] = { sl_test_bin(), "stats", "-c", cfg, "--watch", "0", NULL };
    const char *wx[] = { sl_test_bin(), "stats", "-c", cfg, "--watch", "soon", NULL };
    const char *extra[] = { sl_test_bin(), "stats", "jobs", "-c", cfg, NULL };
    const char *unreach[] = { sl_test_bin(), "stats", "-c", cfg, "--redis", down, NULL };
    const char *auth[] = { sl_test_bin(), "stats", "-c", cfg, "--redis", badpw, NULL };
    struct out o;

    write_config(cfg, sizeof(cfg), "stats", "{\"handler\": \"noop\", \"stream\": \"jobs\", \"group\": \"g\"}", "", 0);
    snprintf(down, sizeof(down), "redis://127.0.0.1:%d", closed_port());
    snprintf(badpw, sizeof(badpw), "redis://:wrong@127.0.0.1:%d", srv.port);
    freeReplyObject(sl_test_cmd(rc, "XADD jobs * type t data {}"));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs g 0"));
    o = run(w0);
    ck_assert_int_eq(o.code, 2);
    ck_assert_msg(strstr(o.err, "--watch") != NULL, "%s", o.err);
    out_free(&o);
    o = run(wx);
    ck_assert_int_eq(o.code, 2);
    out_free(&o);
    o = run(extra);
    ck_assert_int_eq(o.code, 2);
    out_free(&o);
    o = run(unreach);
    ck_assert_int_eq(o.code, 1);
    ck_assert_msg(strstr(o.err, "cannot reach redis") != NULL, "%s", o.err);
    out_free(&o);
    o = run(auth);
    ck_assert_msg(o.code == 1, "AUTH refused but exit %d, output: %s", o.code, o.out);
    ck_assert_msg(strstr(o.err, "AUTH") != NULL, "%s", o.err);
    ck_assert_str_eq(o.out, "");
    out_free(&o);
}
END_TEST

/* The most significant digits any fraction in the admin commands' JSON
 * may carry: enough for a rate or a time, not the 17 of a double's
 * round trip. */
#define JSON_MAX_DIGITS 6

/* Returns the largest number of significant digits among the JSON
 * numbers with a fraction or an exponent in text (strings skipped), and
 * copies the longest such number into worst. */
static int json_max_digits(const char *text, char *worst, size_t wl)
{
    const char *p = text;
    int most = 0;

    worst[0] = '\0';
    while (*p != '\0') {
        if (*p == '"') {
            for (p++; *p != '\0' && *p != '"'; p++)
                if (*p == '\\' && p[1] != '\0')
                    p++;
            if (*p == '"')
                p++;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            const char *start = p, *q;
            int digits = 0, seen = 0, real = 0;
            while (*p == '-' || *p == '+' || *p == '.' || *p == 'e' || *p == 'E' ||
                   (*p >= '0' && *p <= '9'))
                p++;
            for (q = start; q < p && *q != 'e' && *q != 'E'; q++) {
                if (*q == '.')
                    real = 1;
                if (*q >= '1' && *q <= '9')
                    seen = 1;
                if (seen && *q >= '0' && *q <= '9')
                    digits++;
            }
            real = real || q < p;
            if (real && digits > most) {
                most = digits;
                snprintf(worst, wl, "%.*s", (int)(p - start), start);
            }
        } else {
            p++;
        }
    }
    return most;
}

/* stats --json prints its rates and times (lambda, mu, rho, W, window_s,
 * here window_s: the measured seconds between two samples) with at most
 * JSON_MAX_DIGITS significant digits, not a double's 17 digits
 * (999.89999999999998). The parsed document is still exact JSON. */
START_TEST(test_admin_stats_json_precision)
{
    char cfg[600], worst[64];
    const char *argv[] = { sl_test_bin(), "stats", "--json", "-c", cfg, NULL };
    struct out o;
    json_t *doc, *r;
    int most;

    write_config(cfg, sizeof(cfg), "stats",
                 "{\"handler\": \"noop\", \"stream\": \"jobs\", \"group\": \"g\"}", "", 0);
    freeReplyObject(sl_test_cmd(rc, "XADD jobs * type t data {}"));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs g 0"));
    o = run(argv);
    ck_assert_msg(o.code == 0, "sluice stats exit %d: %s", o.code, o.err);
    doc = parse_json(o.out);
    ck_assert(json_is_array(doc));
    r = stats_row(doc, "jobs", "g");
    ck_assert_msg(json_is_real(json_object_get(r, "window_s")), "%s", o.out);
    ck_assert(json_real_value(json_object_get(r, "window_s")) > 0.5);
    most = json_max_digits(o.out, worst, sizeof(worst));
    ck_assert_msg(most >= 1 && most <= JSON_MAX_DIGITS, "%d significant digits in %s: %s",
                  most, worst, o.out);
    json_decref(doc);
    out_free(&o);
}
END_TEST

/* Fails unless every line of the table `out` has as many blank-separated
 * cells as align has letters, and cell k of each row lines up with the
 * header's: the same start for an 'l' (left-aligned) column, the same end
 * for an 'r' one. */
static void assert_aligned(const char *what, const char *out, const char *align)
{
    size_t ncol = strlen(align), k;
    long hs[32], he[32];
    const char *line = out;
    int first = 1, rows = 0;

    ck_assert(ncol <= 32);
    while (*line != '\0') {
        const char *end = strchr(line, '\n'), *p = line;
        long s[32], e[32];
        size_t n = 0;

        if (end == NULL)
            end = line + strlen(line);
        while (p < end) {
            while (p < end && *p == ' ')
                p++;
            if (p == end)
                break;
            ck_assert_msg(n < 32, "%s: too many cells in: %.*s", what, (int)(end - line), line);
            s[n] = p - line;
            while (p < end && *p != ' ')
                p++;
            e[n++] = p - line;
        }
        if (n > 0) {
            ck_assert_msg(n == ncol, "%s: %zu cells, not %zu, in line: %.*s\n%s", what, n, ncol,
                          (int)(end - line), line, out);
            for (k = 0; k < n; k++) {
                if (first) {
                    hs[k] = s[k];
                    he[k] = e[k];
                } else {
                    ck_assert_msg(align[k] == 'l' ? s[k] == hs[k] : e[k] == he[k],
                                  "%s: column %zu out of line (%s-aligned, header %ld..%ld, "
                                  "row %ld..%ld):\n%s", what, k + 1, align[k] == 'l' ? "left" : "right",
                                  hs[k], he[k], s[k], e[k], out);
                }
            }
            rows += !first;
            first = 0;
        }
        line = *end == '\n' ? end + 1 : end;
    }
    ck_assert_msg(rows >= 2, "%s: %d rows under the header:\n%s", what, rows, out);
}

/* A 60-character stream name and a long group name: the columns of
 * `sluice workers` and `sluice stats` widen to them, and those of
 * `sluice pending` to a 60-character consumer name, so every row's
 * cells still start (left-aligned) or end (right-aligned) where the
 * header's do. Before, the long cell pushed the rest of its own row to
 * the right. */
START_TEST(test_admin_tables_align_long_names)
{
    static const char lng[] = "orders-eu-west-1-priority-high-retries-2026-backfill-archive";
    static const char grp[] = "settlement-reconciliation-group";
    const char *wrk[] = { sl_test_bin(), "workers", "--redis", srv.url, NULL };
    const char *stats[] = { sl_test_bin(), "stats", "-c", NULL, NULL };
    const char *pend[] = { sl_test_bin(), "pending", "s", "--redis", srv.url, NULL };
    char cfg[800], workers[400];
    struct out o;

    ck_assert_int_eq(strlen(lng), 60);
    freeReplyObject(sl_test_cmd(rc, "HSET sluice:worker:a pid 1 host h handler noop stream %s "
                                "group g started_at 1 last_beat 2 processed 3 failed 0", lng));
    freeReplyObject(sl_test_cmd(rc, "HSET sluice:worker:b pid 22 host h handler noop stream s "
                                "group %s started_at 1 last_beat 2 processed 12345 failed 1", grp));
    freeReplyObject(sl_test_cmd(rc, "ZADD sluice:workers 9999999999999 a 9999999999999 b"));
    o = run(wrk);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    assert_aligned("workers", o.out, "lrlllrrrrllr");
    out_free(&o);

    snprintf(workers, sizeof(workers),
             "{\"handler\": \"noop\", \"stream\": \"%s\", \"group\": \"g\"},"
             "{\"handler\": \"noop\", \"stream\": \"s\", \"group\": \"%s\"}", lng, grp);
    stats[3] = write_config(cfg, sizeof(cfg), "align", workers, "", 0);
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE %s g 0 MKSTREAM", lng));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE s %s 0 MKSTREAM", grp));
    freeReplyObject(sl_test_cmd(rc, "XADD s * type t data {}"));
    o = run(stats);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    assert_aligned("stats", o.out, "llrrrrrrrrrrrr");
    out_free(&o);

    /* pending: a consumer as long as a pod's host name, beside a short one. */
    freeReplyObject(sl_test_cmd(rc, "XADD s * type t data {}"));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP %s %s COUNT 1 STREAMS s >", grp, lng));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP %s c COUNT 1 STREAMS s >", grp));
    o = run(pend);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    {
        char *cons = strstr(o.out, "\n  CONSUMER"), *ents = strstr(o.out, "\n  ID ");
        ck_assert_msg(cons != NULL && ents != NULL && cons < ents, "%s", o.out);
        ents[0] = '\0';
        assert_aligned("pending consumers", cons + 1, "ll");
        assert_aligned("pending entries", ents + 1, "llrrr");
    }
    out_free(&o);
}
END_TEST

/* ---------------------------------------------------------------------
 * sluice workers
 * ------------------------------------------------------------------ */

/* With a running pool of two noop children and one probe child: the JSON
 * lists exactly the three heartbeats, sorted, with the children's real
 * pids, this host, their handler, stream and group, and processed counts
 * that add up to the entries given (7 to noop, none to probe). The table
 * shows the same rows. Once the pool stops, the heartbeats expire and the
 * list is empty. */
START_TEST(test_admin_workers_table_and_json)
{
    static const char *const sfx[3] = { "noop:0", "noop:1", "probe:0" };
    const char *jargv[] = { sl_test_bin(), "workers", "--json", "--redis", srv.url, NULL };
    const char *targv[] = { sl_test_bin(), "workers", "--redis", srv.url, NULL };
    struct pool p;
    struct out o;
    json_t *doc = NULL;
    char name[300], *line, *save = NULL;
    long long sum = -1, t0 = (long long)time(NULL) * 1000;
    int i, rows = 0;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"wa\", \"group\": \"ga\", \"processes\": 2},"
                   "{\"handler\": \"probe\", \"stream\": \"wb\", \"group\": \"gb\"}", "", 0, 3);
    for (i = 0; i < 7; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD wa * type t data {}"));
    {
        long long dl = sl_test_deadline(10000);
        for (;;) {
            o = run(jargv);
            ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
            doc = parse_json(o.out);
            out_free(&o);
            if (json_array_size(doc) == 3)
                sum = jint(json_array_get(doc, 0), "processed") + jint(json_array_get(doc, 1), "processed");
            if (sum == 7 || !sl_test_tick(dl))
                break;
            json_decref(doc);
        }
    }
    ck_assert_msg(sum == 7, "heartbeats never showed 7 processed");
    /* The beats list the three in the registry of live workers. */
    ck_assert_int_eq(sl_test_int(rc, "ZCARD sluice:workers"), 3);
    for (i = 0; i < 3; i++) {
        json_t *wk = json_array_get(doc, (size_t)i);
        snprintf(name, sizeof(name), "%s:%s", host, sfx[i]);
        ck_assert_str_eq(jstr(wk, "consumer"), name);
        ck_assert_int_eq(jint(wk, "pid"), child_pid(&p, sfx[i]));
        ck_assert_str_eq(jstr(wk, "host"), host);
        ck_assert_str_eq(jstr(wk, "handler"), i < 2 ? "noop" : "probe");
        ck_assert_str_eq(jstr(wk, "stream"), i < 2 ? "wa" : "wb");
        ck_assert_str_eq(jstr(wk, "group"), i < 2 ? "ga" : "gb");
        ck_assert_int_eq(jint(wk, "failed"), 0);
        ck_assert(jint(wk, "started_at") >= t0 - 60000 && jint(wk, "started_at") <= jint(wk, "last_beat"));
    }
    ck_assert_int_eq(jint(json_array_get(doc, 2), "processed"), 0);

    o = run(targv);
    ck_assert_int_eq(o.code, 0);
    for (line = strtok_r(o.out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char cons[300], handler[32], stream[32], group[32];
        long long pid, up, beat, processed, failed;
        if (rows == 0) {
            ck_assert_msg(strncmp(line, "CONSUMER", 8) == 0 && strstr(line, "PROCESSED") != NULL,
                          "header: %s", line);
            rows++;
            continue;
        }
        ck_assert_int_le(rows, 3);
        ck_assert_int_eq(sscanf(line, "%299s %lld %31s %31s %31s %lld %lld %lld %lld", cons, &pid,
                                handler, stream, group, &up, &beat, &processed, &failed), 9);
        snprintf(name, sizeof(name), "%s:%s", host, sfx[rows - 1]);
        ck_assert_str_eq(cons, name);
        ck_assert_int_eq(pid, child_pid(&p, sfx[rows - 1]));
        ck_assert_str_eq(handler, rows <= 2 ? "noop" : "probe");
        ck_assert_str_eq(stream, rows <= 2 ? "wa" : "wb");
        ck_assert_int_eq(processed, jint(json_array_get(doc, (size_t)rows - 1), "processed"));
        ck_assert_int_eq(failed, 0);
        ck_assert_msg(up >= 0 && beat >= 0 && beat < 5000LL * sl_test_slow_factor(), "up %lld beat %lld", up, beat);
        rows++;
    }
    ck_assert_int_eq(rows, 4);
    out_free(&o);
    json_decref(doc);

    pool_stop(&p);
    SL_TEST_ASSERT_EVENTUALLY(5000, count_keys("sluice:worker:*") == 0);
    /* A graceful stop takes the names out of the registry with the keys. */
    ck_assert_int_eq(sl_test_int(rc, "ZCARD sluice:workers"), 0);
    o = run(jargv);
    ck_assert_int_eq(o.code, 0);
    ck_assert_str_eq(o.out, "[]\n");
    out_free(&o);
}
END_TEST

/* Keys under sluice:worker: that no worker wrote: a heartbeat whose name
 * is not UTF-8 is listed with \xNN for its odd bytes (before, jansson
 * refused the name and the sort crashed on a NULL string: exit 139), and
 * a key of the wrong type is reported and skipped; the command exits 0
 * with exactly the two hashes, sorted. */
START_TEST(test_admin_workers_odd_keys)
{
    const char *jargv[] = { sl_test_bin(), "workers", "--json", "--redis", srv.url, NULL };
    const char *targv[] = { sl_test_bin(), "workers", "--redis", srv.url, NULL };
    static const char bad[] = "sluice:worker:\xff\xfe";
    struct out o;
    json_t *doc;

    freeReplyObject(sl_test_cmd(rc, "HSET %b pid 11 host h handler x stream s group g "
                                "started_at 1 last_beat 2 processed 3 failed 4", bad, sizeof(bad) - 1));
    freeReplyObject(sl_test_cmd(rc, "HSET sluice:worker:zz pid 12 host h handler x stream s "
                                "group g started_at 1 last_beat 2 processed 5 failed 0"));
    freeReplyObject(sl_test_cmd(rc, "SET sluice:worker:str x"));
    /* Listed in the registry of live workers, as a beat would. */
    freeReplyObject(sl_test_cmd(rc, "ZADD sluice:workers 9999999999999 %b 9999999999999 zz "
                                "9999999999999 str", bad + 14, sizeof(bad) - 15));
    o = run(jargv);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.err, "WRONGTYPE") != NULL, "%s", o.err);
    doc = parse_json(o.out);
    out_free(&o);
    ck_assert_int_eq(json_array_size(doc), 2);
    ck_assert_str_eq(jstr(json_array_get(doc, 0), "consumer"), "\\xff\\xfe");
    ck_assert_int_eq(jint(json_array_get(doc, 0), "pid"), 11);
    ck_assert_int_eq(jint(json_array_get(doc, 0), "processed"), 3);
    ck_assert_str_eq(jstr(json_array_get(doc, 1), "consumer"), "zz");
    ck_assert_int_eq(jint(json_array_get(doc, 1), "pid"), 12);
    json_decref(doc);
    o = run(targv);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.out, "\n\\xff\\xfe  ") != NULL && strstr(o.out, "\nzz  ") != NULL,
                  "%s", o.out);
    out_free(&o);
}
END_TEST

/* Admin commands against keys of the wrong type print Redis's reason
 * and exit 1 (never crash, never report success); a dead letter whose
 * field name is not UTF-8 keeps that field in --json, its odd byte
 * shown as \xff. */
START_TEST(test_admin_wrong_type_keys)
{
    static const char *const cmds[][4] = {
        { "pending", "str", NULL, NULL }, { "pending", "str", "g", NULL },
        { "pending", "hash", NULL, NULL }, { "dlq", "list", "str", NULL },
        { "dlq", "show", "1-0", "str" }, { "dlq", "purge", "str", "--yes" },
        { "dlq", "replay", "str", "--all" }, { "dlq", "replay", "1-0", "str" },
        { "enqueue", "str", "t", "{}" },
    };
    const char *lst[] = { sl_test_bin(), "dlq", "list", "bin", "--json", "--redis", srv.url, NULL };
    static const char fname[] = "\xfftype";
    struct out o;
    json_t *doc, *f;
    size_t i;

    freeReplyObject(sl_test_cmd(rc, "SET str x"));
    freeReplyObject(sl_test_cmd(rc, "SET str:dead x"));
    freeReplyObject(sl_test_cmd(rc, "HSET hash a b"));
    for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        const char *argv[10];
        int n = 0, j;
        argv[n++] = sl_test_bin();
        for (j = 0; j < 4 && cmds[i][j] != NULL; j++)
            argv[n++] = cmds[i][j];
        argv[n++] = "--redis";
        argv[n++] = srv.url;
        argv[n] = NULL;
        o = run(argv);
        ck_assert_msg(o.code == 1, "%s %s: exit %d: %s", cmds[i][0], cmds[i][1], o.code, o.err);
        ck_assert_msg(strstr(o.err, "WRONGTYPE") != NULL, "%s %s: %s", cmds[i][0], cmds[i][1], o.err);
        out_free(&o);
    }
    freeReplyObject(sl_test_cmd(rc, "XADD bin:dead 5-1 %b v error boom", fname, sizeof(fname) - 1));
    o = run(lst);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    doc = parse_json(o.out);
    out_free(&o);
    ck_assert_int_eq(json_array_size(doc), 1);
    f = json_object_get(json_array_get(doc, 0), "fields");
    ck_assert_int_eq(json_object_size(f), 2);
    ck_assert_str_eq(jstr(f, "\\xfftype"), "v");
    ck_assert_str_eq(jstr(f, "error"), "boom");
    json_decref(doc);
}
END_TEST

/* Asserts that the table text `out` of command `what` holds `want` and
 * nothing a terminal would act on: no byte below 0x20 but '\n', no DEL,
 * no C1 control (0x9b alone, or U+009B as 0xc2 0x9b) and no byte that
 * is not UTF-8 (0xff). */
static void assert_table_safe(const char *what, const char *out, const char *want)
{
    const unsigned char *p;

    ck_assert_msg(strstr(out, want) != NULL, "%s: no \"%s\" in:\n%s", what, want, out);
    for (p = (const unsigned char *)out; *p != '\0'; p++)
        ck_assert_msg((*p >= 0x20 || *p == '\n') && *p != 0x7f && *p != 0x9b && *p != 0xff,
                      "%s: raw byte 0x%02x at offset %td", what, *p, (const char *)p - out);
    ck_assert_msg(strstr(out, "\xc2\x9b") == NULL, "%s: a raw C1 control", what);
}

/* Every admin table escapes what it prints from Redis: entry types,
 * data, errors, consumer, group and heartbeat names holding ESC [31m,
 * CR, BEL, DEL, C1 controls and bytes that are not UTF-8 are shown as
 * \xNN, valid UTF-8 (é) as it is; --json stays exact JSON (jansson
 * escapes control characters) and keeps a name that is not UTF-8 with
 * all its odd bytes as \xNN. Before, the tables wrote the raw bytes to the
 * terminal, and `pending` and `stats --json` dropped a consumer or group
 * whose name is not UTF-8. */
START_TEST(test_admin_tables_escape_control_chars)
{
    static const char type[] = "t\x1b[31m\r", data[] = "{\"d\":1}\x1b[31m\xc2\x9b";
    static const char err[] = "boom\x1b[31m\x9b \xc3\xa9", cons[] = "c\x1b]0;x\x07";
    static const char grp[] = "g\x1b[31m", grp2[] = "h\xff", reader[] = "r\x1b[31m\r\xff";
    static const char wkey[] = "sluice:worker:w\x1b[31m\x7f", hnd[] = "x\x1b[31m";
    const char *list[] = { sl_test_bin(), "dlq", "list", "e", "--redis", srv.url, NULL };
    const char *show[] = { sl_test_bin(), "dlq", "show", "5-1", "e", "--redis", srv.url, NULL };
    const char *jlist[] = { sl_test_bin(), "dlq", "list", "e", "--json", "--redis", srv.url, NULL };
    const char *pend[] = { sl_test_bin(), "pending", "s", "--redis", srv.url, NULL };
    const char *jpend[] = { sl_test_bin(), "pending", "s", "--json", "--redis", srv.url, NULL };
    const char *wrk[] = { sl_test_bin(), "workers", "--redis", srv.url, NULL };
    const char *stats[] = { sl_test_bin(), "stats", "-c", NULL, NULL };
    char cfg[600];
    struct out o;
    json_t *doc, *f;
    redisReply *r;

    r = sl_test_cmd(rc, "XADD e:dead 5-1 type %b data %b error %b source_id 1-1 deliveries 1 "
                    "consumer %b", type, sizeof(type) - 1, data, sizeof(data) - 1, err,
                    sizeof(err) - 1, cons, sizeof(cons) - 1);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    o = run(list);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    assert_table_safe("dlq list", o.out, "t\\x1b[31m\\x0d");
    assert_table_safe("dlq list", o.out, "boom\\x1b[31m\\x9b \xc3\xa9");
    out_free(&o);
    o = run(show);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    assert_table_safe("dlq show", o.out, "type: t\\x1b[31m\\x0d\n");
    assert_table_safe("dlq show", o.out, "data: {\"d\":1}\\x1b[31m\\xc2\\x9b\n");
    assert_table_safe("dlq show", o.out, "error: boom\\x1b[31m\\x9b \xc3\xa9\n");
    assert_table_safe("dlq show", o.out, "consumer: c\\x1b]0;x\\x07\n");
    out_free(&o);
    o = run(jlist);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    doc = parse_json(o.out);
    out_free(&o);
    f = json_object_get(json_array_get(doc, 0), "fields");
    ck_assert_str_eq(jstr(f, "type"), type);
    ck_assert_str_eq(jstr(f, "consumer"), cons);
    ck_assert_str_eq(jstr(f, "error"), "boom\\x1b[31m\\x9b \xc3\xa9");
    json_decref(doc);

    /* pending: group and consumer names. */
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE s %b 0 MKSTREAM", grp, sizeof(grp) - 1));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE s %b 0", grp2, sizeof(grp2) - 1));
    freeReplyObject(sl_test_cmd(rc, "XADD s 1-1 a b"));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP %b %b STREAMS s >", grp, sizeof(grp) - 1,
                                reader, sizeof(reader) - 1));
    o = run(pend);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    assert_table_safe("pending", o.out, "stream s group g\\x1b[31m: 1 pending");
    assert_table_safe("pending", o.out, "stream s group h\\xff: 0 pending");
    assert_table_safe("pending", o.out, "\n  r\\x1b[31m\\x0d\\xff ");
    assert_table_safe("pending", o.out, "\n  1-1 ");
    out_free(&o);
    o = run(jpend);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    doc = parse_json(o.out);
    out_free(&o);
    ck_assert_int_eq(json_array_size(doc), 2);
    f = json_array_get(doc, 0);
    ck_assert_str_eq(jstr(f, "group"), grp);
    ck_assert_str_eq(jstr(json_array_get(json_object_get(f, "consumers"), 0), "consumer"),
                     "r\\x1b[31m\\x0d\\xff");
    ck_assert_str_eq(jstr(json_array_get(json_object_get(f, "entries"), 0), "consumer"),
                     "r\\x1b[31m\\x0d\\xff");
    ck_assert_str_eq(jstr(json_array_get(doc, 1), "group"), "h\\xff");
    json_decref(doc);

    /* workers: the heartbeat's name and fields. */
    freeReplyObject(sl_test_cmd(rc, "HSET %b pid 1 host h handler %b stream s group %b "
                                "started_at 1 last_beat 2 processed 3 failed 0", wkey,
                                sizeof(wkey) - 1, hnd, sizeof(hnd) - 1, grp, sizeof(grp) - 1));
    freeReplyObject(sl_test_cmd(rc, "ZADD sluice:workers 9999999999999 %b", wkey + 14,
                                sizeof(wkey) - 15));
    o = run(wrk);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    assert_table_safe("workers", o.out, "\nw\\x1b[31m\\x7f ");
    assert_table_safe("workers", o.out, " x\\x1b[31m ");
    assert_table_safe("workers", o.out, " g\\x1b[31m ");
    out_free(&o);

    /* stats: the group names of a configured stream. */
    stats[3] = write_config(cfg, sizeof(cfg), "esc",
                            "{\"handler\":\"noop\",\"stream\":\"s\",\"group\":\"g\",\"processes\":1}",
                            "", 0);
    o = run(stats);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    assert_table_safe("stats", o.out, "\ns                g\\x1b[31m ");
    assert_table_safe("stats", o.out, "\ns                h\\xff ");
    out_free(&o);
    doc = stats_json(cfg, NULL, NULL);
    ck_assert_int_eq(json_array_size(doc), 2);
    ck_assert_int_eq(jint(stats_row(doc, "s", grp), "pending"), 1);
    ck_assert_int_eq(jint(stats_row(doc, "s", "h\\xff"), "pending"), 0);
    json_decref(doc);
}
END_TEST

/* Condition: the rate samples of "steady" span at least 10 s. */
static int rate_span_10s(void *arg)
{
    redisReply *r = sl_test_cmd(rc, "XRANGE %s - +", arg ? (const char *)arg : "sluice:rate:steady:sg");
    int yes;

    yes = r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
          strtoll(r->element[r->elements - 1]->element[0]->str, NULL, 10) -
          strtoll(r->element[0]->element[0]->str, NULL, 10) >= 10000;
    freeReplyObject(r);
    return yes;
}

/* μ is exact: at a steady 1,000 entries a second, with the default
 * timings, every one-shot `stats` shows λ and μ within 5% of 1,000, over
 * the window it shows (at least 9 s of the pool's samples of Redis's own
 * group counters). Before, μ was the change of heartbeat counters written
 * once a second, over a window of about a second: off by 12% on average,
 * up to 69%. Skipped under the sanitizers and valgrind, which slow the
 * worker below the rate. */
START_TEST(test_admin_stats_mu_exact)
{
    struct pool p;
    struct producer pr;
    json_t *doc, *r;
    int i;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"steady\", \"group\": \"sg\", \"processes\": 2}",
               ", \"block_ms\": 2000, \"heartbeat_ms\": 1000, \"reclaim_idle_ms\": 30000, "
               "\"reclaim_interval_ms\": 5000, \"retry_backoff_ms\": [1000, 60000]", 0, 2);
    if (sl_test_instrumented(child_pid(&p, "noop:0"))) {
        fprintf(stderr, "admin: test_admin_stats_mu_exact skipped under a memory checker\n");
        pool_stop(&p);
        return;
    }
    producer_start(&pr, "steady", 1000);
    SL_TEST_ASSERT_EVENTUALLY(10000, pr.produced >= 2000);
    /* Samples from before the producer started would lower the rates:
     * they go, and the window starts again from here. */
    freeReplyObject(sl_test_cmd(rc, "DEL sluice:rate:steady:sg"));
    SL_TEST_ASSERT_EVENTUALLY(30000, rate_span_10s(NULL));
    for (i = 0; i < 5; i++) {
        double lambda, mu, win;

        doc = stats_json(p.cfg, NULL, NULL);
        r = stats_row(doc, "steady", "sg");
        lambda = jnum(r, "lambda");
        mu = jnum(r, "mu");
        win = json_number_value(json_object_get(r, "window_s"));
        fprintf(stderr, "admin: stats %d: lambda %.1f mu %.1f over %.1f s\n", i, lambda, mu, win);
        ck_assert_msg(fabs(lambda - 1000) <= 50, "call %d: lambda %g", i, lambda);
        ck_assert_msg(fabs(mu - 1000) <= 50, "call %d: mu %g", i, mu);
        ck_assert_msg(win >= 9 && win <= 61, "window %g s", win);
        json_decref(doc);
    }
    producer_stop(&pr);
    pool_stop(&p);
}
END_TEST

/* Returns the entry of type `type` in the "types" array of a stats row
 * (borrowed), failing when there is none. */
static json_t *type_row(json_t *row, const char *type)
{
    json_t *a = json_object_get(row, "types");
    size_t i;

    ck_assert_msg(json_is_array(a), "no types in the stats row");
    for (i = 0; i < json_array_size(a); i++)
        if (!strcmp(jstr(json_array_get(a, i), "type"), type))
            return json_array_get(a, i);
    ck_abort_msg("no type %s in the stats row", type);
    return NULL;
}

/* λ and μ per event type: a stream that carries two types, at a steady
 * 600/s and 300/s, shows per type, on every one-shot `stats` call, λ and
 * μ within 5% of the truth, over the same window as the row (the pool's
 * samples of the workers' per-type counters), in --json and as rows
 * under the stream row of the table. Default timings and batch. Skipped
 * under the sanitizers and valgrind, which slow the worker below the
 * rate. */
START_TEST(test_admin_stats_per_type_rates)
{
    struct pool p;
    struct producer a, b;
    json_t *doc, *r, *t;
    struct out o;
    int i;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"mixed\", \"group\": \"mg\", \"processes\": 2}",
               ", \"block_ms\": 2000, \"heartbeat_ms\": 1000, \"reclaim_idle_ms\": 30000, "
               "\"reclaim_interval_ms\": 5000, \"retry_backoff_ms\": [1000, 60000]", 0, 2);
    if (sl_test_instrumented(child_pid(&p, "noop:0"))) {
        fprintf(stderr, "admin: test_admin_stats_per_type_rates skipped under a memory checker\n");
        pool_stop(&p);
        return;
    }
    static char rkey[] = "sluice:rate:mixed:mg";

    producer_start_typed(&a, "mixed", "order.created", 600);
    producer_start_typed(&b, "mixed", "payment.result", 300);
    SL_TEST_ASSERT_EVENTUALLY(10000, a.produced >= 1200);
    /* Samples from before the producers started would lower the rates. */
    freeReplyObject(sl_test_cmd(rc, "DEL sluice:rate:mixed:mg sluice:rate:mixed:mg:types"));
    SL_TEST_ASSERT_EVENTUALLY(30000, rate_span_10s(rkey));
    for (i = 0; i < 3; i++) {
        static const char *const types[] = { "order.created", "payment.result" };
        static const double truth[] = { 600, 300 };
        int k;

        doc = stats_json(p.cfg, NULL, NULL);
        r = stats_row(doc, "mixed", "mg");
        for (k = 0; k < 2; k++) {
            double lambda, mu;
            t = type_row(r, types[k]);
            lambda = jnum(t, "lambda");
            mu = jnum(t, "mu");
            fprintf(stderr, "admin: stats %d: %s lambda %.1f mu %.1f over %.1f s\n", i, types[k],
                    lambda, mu, jnum(r, "window_s"));
            ck_assert_msg(fabs(lambda - truth[k]) <= 0.05 * truth[k], "call %d: %s lambda %g",
                          i, types[k], lambda);
            ck_assert_msg(fabs(mu - truth[k]) <= 0.05 * truth[k], "call %d: %s mu %g", i, types[k], mu);
        }
        ck_assert_int_eq((int)json_array_size(json_object_get(r, "types")), 2);
        json_decref(doc);
    }
    /* The table: one row per type under the stream's row. */
    {
        const char *argv[] = { sl_test_bin(), "stats", "-c", p.cfg, NULL };
        const char *row, *t1, *t2;
        o = run(argv);
        ck_assert_int_eq(o.code, 0);
        row = strstr(o.out, "\nmixed ");
        ck_assert_msg(row != NULL, "stats: %s", o.out);
        t1 = strstr(row, "\n  type           order.created ");
        t2 = strstr(row, "\n  type           payment.result ");
        ck_assert_msg(t1 != NULL && t2 != NULL, "stats: %s", o.out);
        out_free(&o);
    }
    producer_stop(&a);
    producer_stop(&b);
    pool_stop(&p);
}
END_TEST

/* Condition: sluice:rate:fmt:g holds at least two samples. */
static int two_samples(void *arg)
{
    (void)arg;
    return sl_test_int(rc, "XLEN sluice:rate:fmt:g") >= 2;
}

/* The supervisor's housekeeping, at the default period: samples the
 * group into sluice:rate:<stream>:<group> in the agreed format (entry ID
 * = sample time; fields added, read, pending, lag; nothing else), at
 * least 4.5 s apart; and drops from the registry of live workers a name
 * that expired more than a minute ago. */
START_TEST(test_admin_housekeeping_rates_and_registry)
{
    static const char *const names[] = { "added", "read", "pending", "lag" };
    long long now = (long long)time(NULL) * 1000, t0, t1;
    struct pool p;
    redisReply *r;
    size_t i;
    int k;

    freeReplyObject(sl_test_cmd(rc, "ZADD sluice:workers %lld ghost", now - 120000));
    for (k = 0; k < 3; k++)
        freeReplyObject(sl_test_cmd(rc, "XADD fmt * type t data {}"));
    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"fmt\", \"group\": \"g\"}",
               ", \"reclaim_interval_ms\": 5000", 0, 1);
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_int(rc, "ZCOUNT sluice:workers -inf %lld", now - 60000) == 0);
    SL_TEST_ASSERT_EVENTUALLY(10000, group_backlog("fmt", "g") == 0);
    SL_TEST_ASSERT_EVENTUALLY(20000, two_samples(NULL));
    r = sl_test_cmd(rc, "XREVRANGE sluice:rate:fmt:g + - COUNT 2");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->elements, 2);
    t1 = strtoll(r->element[0]->element[0]->str, NULL, 10);
    t0 = strtoll(r->element[1]->element[0]->str, NULL, 10);
    ck_assert_msg(t1 - t0 >= 4500, "samples %lld ms apart", t1 - t0);
    ck_assert_int_eq(r->element[0]->element[1]->elements, 8);
    for (i = 0; i < 4; i++) {
        const redisReply *f = r->element[0]->element[1];
        ck_assert_str_eq(f->element[2 * i]->str, names[i]);
        ck_assert_msg(strspn(f->element[2 * i + 1]->str, "0123456789") == strlen(f->element[2 * i + 1]->str),
                      "%s = %s", names[i], f->element[2 * i + 1]->str);
    }
    ck_assert_str_eq(r->element[0]->element[1]->element[1]->str, "3");   /* added */
    ck_assert_str_eq(r->element[0]->element[1]->element[3]->str, "3");   /* read */
    ck_assert_str_eq(r->element[0]->element[1]->element[5]->str, "0");   /* pending */
    freeReplyObject(r);
    pool_stop(&p);
}
END_TEST

/* Returns the calls of every command since the last CONFIG RESETSTAT
 * (INFO commandstats), leaving out INFO and CONFIG themselves, and sets
 * *scans to the SCAN calls among them. */
static long long commands_since_reset(long long *scans)
{
    redisReply *r = sl_test_cmd(rc, "INFO commandstats");
    long long total = 0;
    const char *p;

    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    *scans = 0;
    for (p = strstr(r->str, "cmdstat_"); p != NULL; p = strstr(p + 1, "cmdstat_")) {
        const char *c = strstr(p, ":calls=");
        long long n;

        ck_assert_ptr_nonnull(c);
        n = strtoll(c + strlen(":calls="), NULL, 10);
        if (!strncmp(p, "cmdstat_info:", 13) || !strncmp(p, "cmdstat_config", 14))
            continue;
        if (!strncmp(p, "cmdstat_scan:", 13))
            *scans += n;
        total += n;
    }
    freeReplyObject(r);
    return total;
}

/* `stats` and `workers` cost O(streams + workers), not O(keys): with
 * 1,000,000 unrelated keys in Redis, two streams and five workers, they
 * send no SCAN and a handful of commands (INFO commandstats after CONFIG
 * RESETSTAT). Before the registry of live workers, each walked the whole
 * keyspace with SCAN MATCH sluice:worker:* (2,000 SCANs a walk here),
 * blocking Redis for seconds. */
START_TEST(test_admin_stats_workers_no_scan)
{
    char cfg[600];
    const char *wargv[] = { sl_test_bin(), "workers", "--json", "--redis", srv.url, NULL };
    long long calls, scans, far = (long long)time(NULL) * 1000 + 3600000;
    struct out o;
    json_t *doc;
    int i;

    write_config(cfg, sizeof(cfg), "scale",
                 "{\"handler\": \"noop\", \"stream\": \"wa\", \"group\": \"ga\", \"processes\": 3},"
                 "{\"handler\": \"probe\", \"stream\": \"wb\", \"group\": \"gb\", \"processes\": 2}", "", 0);
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE wa ga $ MKSTREAM"));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE wb gb $ MKSTREAM"));
    for (i = 0; i < 5; i++) {
        freeReplyObject(sl_test_cmd(rc, "HSET sluice:worker:w%d pid %d host h handler %s stream %s "
                                    "group %s started_at 1 last_beat 2 processed %d failed 0",
                                    i, 100 + i, i < 3 ? "noop" : "probe", i < 3 ? "wa" : "wb",
                                    i < 3 ? "ga" : "gb", i));
        freeReplyObject(sl_test_cmd(rc, "ZADD sluice:workers %lld w%d", far, i));
    }
    /* 1,000,000 keys, 100,000 per script call. */
    for (i = 0; i < 10; i++)
        freeReplyObject(sl_test_cmd(rc, "EVAL %s 0 %d",
                                    "for i = 1, 100000 do redis.call('SET', 'junk:' .. ARGV[1] .. ':' .. i, 'x') end",
                                    i));
    ck_assert_int_ge(sl_test_int(rc, "DBSIZE"), 1000000);

    freeReplyObject(sl_test_cmd(rc, "CONFIG RESETSTAT"));
    doc = stats_json(cfg, NULL, NULL);
    calls = commands_since_reset(&scans);
    fprintf(stderr, "admin: one stats call sent %lld commands, %lld SCAN\n", calls, scans);
    ck_assert_int_eq(json_array_size(doc), 2);
    ck_assert_int_eq(jint(stats_row(doc, "wb", "gb"), "processed"), 3 + 4);
    json_decref(doc);
    ck_assert_int_eq(scans, 0);
    /* Per sample: 4 per stream (XINFO STREAM, XINFO GROUPS, XPENDING,
     * XLEN of the dead letters), 1 for the registry, 1 per worker; two
     * samples; and a few to connect and read the rates. */
    ck_assert_msg(calls <= 2 * (4 * 2 + 1 + 5) + 12, "stats sent %lld commands", calls);

    freeReplyObject(sl_test_cmd(rc, "CONFIG RESETSTAT"));
    o = run(wargv);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    doc = parse_json(o.out);
    out_free(&o);
    ck_assert_int_eq(json_array_size(doc), 5);
    json_decref(doc);
    calls = commands_since_reset(&scans);
    fprintf(stderr, "admin: one workers call sent %lld commands, %lld SCAN\n", calls, scans);
    ck_assert_int_eq(scans, 0);
    ck_assert_msg(calls <= 1 + 5 + 4, "workers sent %lld commands", calls);
}
END_TEST

/* A registry entry whose heartbeat key is gone is not listed, even one
 * that says it lives (expiry in the future) and one long past its expiry
 * (a worker that died, which only the janitor drops: readers only read). */
START_TEST(test_admin_workers_registry_stale)
{
    const char *wargv[] = { sl_test_bin(), "workers", "--json", "--redis", srv.url, NULL };
    long long now = (long long)time(NULL) * 1000;
    struct out o;
    json_t *doc;

    freeReplyObject(sl_test_cmd(rc, "HSET sluice:worker:live pid 1 host h handler x stream s "
                                "group g started_at 1 last_beat 2 processed 0 failed 0"));
    freeReplyObject(sl_test_cmd(rc, "ZADD sluice:workers %lld live %lld gone %lld dead", now + 60000,
                                now + 60000, now - 120000));
    o = run(wargv);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    doc = parse_json(o.out);
    out_free(&o);
    ck_assert_int_eq(json_array_size(doc), 1);
    ck_assert_str_eq(jstr(json_array_get(doc, 0), "consumer"), "live");
    json_decref(doc);
    ck_assert_int_eq(sl_test_int(rc, "ZCARD sluice:workers"), 3);
}
END_TEST

Suite *admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc;

    tc = ops_server_case(s, "pending", 30);
    tcase_add_test(tc, test_admin_pending_json_exact);
    tcase_add_test(tc, test_admin_pending_idle_and_count_filters);
    tcase_add_test(tc, test_admin_pending_table);
    tcase_add_test(tc, test_admin_pending_all_groups);
    tcase_add_test(tc, test_admin_pending_errors);

    tc = ops_server_case(s, "stats", 60);
    tcase_add_test(tc, test_admin_stats_known_state_exact);
    tcase_add_test(tc, test_admin_stats_paced_rate);
    tcase_add_test(tc, test_admin_stats_mu_survives_restart);
    tcase_add_test(tc, test_admin_stats_errors);
    tcase_add_test(tc, test_admin_stats_workers_no_scan);

    tc = ops_server_case(s, "rates", 90);
    tcase_add_test(tc, test_admin_stats_mu_exact);
    tcase_add_test(tc, test_admin_stats_per_type_rates);
    tcase_add_test(tc, test_admin_housekeeping_rates_and_registry);

    tc = ops_server_case(s, "workers", 40);
    tcase_add_test(tc, test_admin_workers_table_and_json);
    tcase_add_test(tc, test_admin_workers_odd_keys);
    tcase_add_test(tc, test_admin_workers_registry_stale);
    tcase_add_test(tc, test_admin_wrong_type_keys);
    tcase_add_test(tc, test_admin_tables_escape_control_chars);

    /* How the tables and documents look to an operator. */
    tc = ops_server_case(s, "format", 40);
    tcase_add_test(tc, test_admin_stats_json_precision);
    tcase_add_test(tc, test_admin_tables_align_long_names);
    return s;
}
