/* check_dlq.c -- the operator's commands on dead letters and on new
 * entries: `sluice dlq` (list pages, show, replay bounded and with
 * corrected data, purge with filters) and `sluice enqueue` (types checked
 * against the stream's handler, many entries from stdin, --json), run as
 * the real binary against a real redis-server, most of them while a
 * `sluice run` pool with the configuration's defaults consumes the stream.
 *
 * The `probe` test handler (tests/handlers/probe.c) dead-letters an entry
 * whose data says {"dead": "CODE"} every time it sees it: a handler that
 * always fails.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <check.h>
#include <hiredis.h>
#include <jansson.h>
#include "harness.h"
#include "config.h"
#include "sut.h"

static struct sl_test_redis srv;  /* the TCase's server (unchecked fixture) */
static redisContext *rc;          /* this test's connection (checked fixture) */
static char *dir;                 /* this test's temporary directory */
static char cfgpath[512];         /* <dir>/sluice.json */
static char logpath[512];         /* <dir>/sluice.log: the pool's stderr */
static pid_t pool_pid;            /* the `sluice run` under test, 0 when none */
static int runs;                  /* commands run: names their output files */

/* What one command printed and how it ended. */
struct out {
    int code;                     /* exit code */
    char *out;                    /* stdout (new: free()) */
    char *err;                    /* stderr (new: free()) */
};

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* Runs `sluice ARGS... -c CFG --redis URL` (args NULL-terminated, at most
 * 20) with stdin from the text `in` (NULL: /dev/null), to completion. */
static struct out sluice_in(const char *in, const char *const *args)
{
    char opath[600], epath[600], ipath[600];
    const char *argv[32];
    struct out o = { 0, NULL, NULL };
    int n = 0, status = 0, fd;
    pid_t pid;

    runs++;
    snprintf(opath, sizeof opath, "%s/run-%d.out", dir, runs);
    snprintf(epath, sizeof epath, "%s/run-%d.err", dir, runs);
    snprintf(ipath, sizeof ipath, "%s/run-%d.in", dir, runs);
    fd = open(ipath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    if (in != NULL)
        ck_assert_int_eq(write(fd, in, strlen(in)), (ssize_t)strlen(in));
    close(fd);
    argv[n++] = sl_test_bin();
    while (*args != NULL && n < 24)
        argv[n++] = *args++;
    argv[n++] = "-c";
    argv[n++] = cfgpath;
    argv[n++] = "--redis";
    argv[n++] = srv.url;
    argv[n] = NULL;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int i0 = open(ipath, O_RDONLY), o1 = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0600),
            e2 = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (i0 < 0 || o1 < 0 || e2 < 0 || dup2(i0, 0) < 0 || dup2(o1, 1) < 0 || dup2(e2, 2) < 0)
            _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    ck_assert_msg(sl_test_wait_exit(pid, 20000, &status), "sluice %s did not exit", args[0]);
    ck_assert_msg(WIFEXITED(status), "sluice died");
    o.code = WEXITSTATUS(status);
    o.out = sl_test_read_file(opath);
    o.err = sl_test_read_file(epath);
    ck_assert(o.out != NULL && o.err != NULL);
    return o;
}

/* sluice_in() without stdin. */
static struct out sluice(const char *const *args)
{
    return sluice_in(NULL, args);
}

/* Frees what a command printed. */
static void out_free(struct out *o)
{
    free(o->out);
    free(o->err);
}

/* Writes the configuration: the built-in defaults except trim "none"
 * (the test counts every entry ever added to the stream), and the given
 * elements of "workers". */
static void write_config(const char *workers)
{
    struct sl_test_config c = { srv.url, NULL, "\"trim\": \"none\"", NULL, workers, NULL };

    ck_assert_int_eq(sl_test_config_write(cfgpath, &c), 0);
}

/* Starts `sluice run` and waits until its children run. */
static void pool_start(int children)
{
    const char *extra[] = { "--redis", srv.url, NULL };

    pool_pid = sl_test_pool_spawn_args(cfgpath, logpath, extra);
    ck_assert_int_gt(pool_pid, 0);
    ck_assert_int_eq(sl_test_pool_wait_running(pool_pid, logpath, children, 20000), 0);
}

/* XLEN of key. */
static long long xlen(const char *key)
{
    return sl_test_int(rc, "XLEN %s", key);
}

/* Pending entries of group g of stream s (0 when there is no group). */
static long long pending(const char *s, const char *g)
{
    redisReply *r = sl_test_cmd(rc, "XPENDING %s %s", s, g);
    long long n = 0;

    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* Adds a dead letter by hand: fields as a worker writes them. Returns its
 * ID in id (64 bytes). */
static void dead_add(char id[64], const char *stream, const char *type, const char *data,
                     const char *error)
{
    char *s = sl_test_str(rc, "XADD %s:dead * type %s data %s error %s source_id 1-1 "
                              "deliveries 1 attempts 1 consumer c failed_at 1",
                          stream, type, data, error);

    ck_assert_ptr_nonnull(s);
    snprintf(id, 64, "%s", s);
    free(s);
}

/* The value of field name of the (first) entry of an XRANGE reply, or
 * NULL. Borrowed from r. */
static const char *xfield(const redisReply *r, size_t i, const char *name)
{
    const redisReply *f;
    size_t j;

    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    f = r->element[i]->element[1];
    for (j = 0; j + 1 < f->elements; j += 2)
        if (strcmp(f->element[j]->str, name) == 0)
            return f->element[j + 1]->str;
    return NULL;
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

/* Before each test: an empty server, a fresh directory, a configuration
 * without workers. */
static void test_up(void)
{
    rc = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(rc);
    ck_assert_int_eq(sl_test_int(rc, "FLUSHALL"), 0);
    dir = sl_test_tmpdir();
    ck_assert_ptr_nonnull(dir);
    snprintf(cfgpath, sizeof cfgpath, "%s/sluice.json", dir);
    snprintf(logpath, sizeof logpath, "%s/sluice.log", dir);
    pool_pid = 0;
    runs = 0;
    write_config("{ \"handler\": \"probe\", \"stream\": \"unused\", \"group\": \"g\" }");
}

/* After each test: the pool stopped, the directory removed. */
static void test_down(void)
{
    sl_test_pool_kill(&pool_pid, 10000);
    redisFree(rc);
    rc = NULL;
    if (dir != NULL) {
        sl_test_rmtree(dir);
        free(dir);
    }
    dir = NULL;
}

/* ------------------------------------------------------------------------
 * TCase "dlq"
 * ------------------------------------------------------------------------ */

/* replay --all while the pool runs a handler that fails every entry:
 * each of the 3 dead letters is replayed exactly once per call, however
 * fast the pool dead-letters the replays again (before, the command
 * chased them until the dead-letter stream happened to be empty: some
 * 280 cycles). The dead letters carry `attempts` beside `deliveries`. */
START_TEST(test_dlq_replay_all_bounded)
{
    const char *replay[] = { "dlq", "replay", "--all", "s", NULL };
    struct out o;
    redisReply *r;
    size_t i;
    int call;

    write_config("{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\" }");
    pool_start(1);
    for (i = 0; i < 3; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD s * type t data {\"dead\":\"always\"}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, xlen("s:dead") == 3 && pending("s", "g") == 0);
    for (call = 1; call <= 2; call++) {
        o = sluice(replay);
        /* Only the end of the output: the old code printed hundreds of lines. */
        ck_assert_msg(o.code == 0, "replay --all: %d %.300s", o.code, o.err);
        ck_assert_msg(strstr(o.out, "replayed 3 dead letters\n") != NULL,
                      "replay --all (%zu bytes of output) ends: %s", strlen(o.out),
                      o.out + (strlen(o.out) > 200 ? strlen(o.out) - 200 : 0));
        out_free(&o);
        /* The pool dead-letters the 3 replays again; the stream then
         * holds the originals and 3 replays per call, no more. */
        SL_TEST_ASSERT_EVENTUALLY(10000, xlen("s:dead") == 3 && pending("s", "g") == 0);
        ck_assert_int_eq(xlen("s"), 3 + 3 * call);
    }
    r = sl_test_cmd(rc, "XRANGE s:dead - +");
    for (i = 0; i < r->elements; i++) {
        ck_assert_str_eq(xfield(r, i, "error"), "always");
        ck_assert_str_eq(xfield(r, i, "attempts"), "1");
        ck_assert_str_eq(xfield(r, i, "deliveries"), "1");
    }
    freeReplyObject(r);
}
END_TEST

/* An entry that fails every attempt: its dead letter says `attempts`
 * max_deliveries (5 by default), while Redis's `deliveries` says less
 * (the retries were taken back by the same consumer). */
START_TEST(test_dlq_attempts_field)
{
    redisReply *r;

    write_config("{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", "
                 "\"retry_backoff_ms\": [200, 200] }");
    pool_start(1);
    freeReplyObject(sl_test_cmd(rc, "XADD s * type t data {\"retry\":1000}"));
    SL_TEST_ASSERT_EVENTUALLY(20000, xlen("s:dead") == 1);
    r = sl_test_cmd(rc, "XRANGE s:dead - +");
    ck_assert_str_eq(xfield(r, 0, "attempts"), "5");
    ck_assert(strncmp(xfield(r, 0, "error"), "max_deliveries_exceeded", 23) == 0);
    ck_assert_int_lt(strtoll(xfield(r, 0, "deliveries"), NULL, 10), 5);
    freeReplyObject(r);
}
END_TEST

/* `sluice pending` (table and JSON) shows sluice's own attempt count of
 * a pending entry, read from its bookkeeping hash. */
START_TEST(test_dlq_pending_attempts)
{
    const char *tab[] = { "pending", "s", "g", NULL };
    const char *js[] = { "pending", "s", "g", "--json", NULL };
    char *id;
    struct out o;
    json_t *doc, *e;
    json_error_t jerr;

    id = sl_test_str(rc, "XADD s * type t data {}");
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE s g 0"));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP g c1 COUNT 1 STREAMS s >"));
    ck_assert_int_eq(sl_test_int(rc, "HSET sluice:attempts:1:s:g %s 3:0:boom", id), 1);
    o = sluice(js);
    ck_assert_msg(o.code == 0, "pending: %s", o.err);
    doc = json_loads(o.out, 0, &jerr);
    ck_assert_msg(doc != NULL, "pending --json: %s", o.out);
    e = json_array_get(json_object_get(json_array_get(doc, 0), "entries"), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "attempts")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "deliveries")), 1);
    json_decref(doc);
    out_free(&o);
    o = sluice(tab);
    ck_assert_msg(o.code == 0 && strstr(o.out, "ATTEMPTS") != NULL, "pending: %s", o.out);
    ck_assert_msg(strstr(o.out, "          1        3\n") != NULL, "pending: %s", o.out);
    out_free(&o);
    free(id);
}
END_TEST

/* replay ID --data: the corrected data is checked as enqueue checks it
 * (the stream's handler, its types, JSON) before anything is written; a
 * good one is re-added with the other fields kept and processed. */
START_TEST(test_dlq_replay_with_data)
{
    char id[64];
    struct out o;
    redisReply *r;

    write_config("{ \"handler\": \"order\", \"stream\": \"orders\", \"group\": \"g\" }");
    dead_add(id, "orders", "order.created", "{\"order_id\":\"o-1\"}", "missing_field: user_id");
    {
        const char *bad[] = { "dlq", "replay", id, "orders", "--data", "{\"order_id\":", NULL };
        o = sluice(bad);
        ck_assert_msg(o.code == 2 && strstr(o.err, "invalid_json") != NULL, "bad data: %d %s",
                      o.code, o.err);
        out_free(&o);
    }
    {
        const char *arr[] = { "dlq", "replay", id, "orders", "--data", "[1]", NULL };
        o = sluice(arr);
        ck_assert_msg(o.code == 2 && strstr(o.err, "invalid_schema") != NULL, "array: %d %s",
                      o.code, o.err);
        out_free(&o);
    }
    ck_assert_int_eq(xlen("orders:dead"), 1);
    ck_assert_int_eq(sl_test_int(rc, "EXISTS orders"), 0);
    {
        const char *good[] = { "dlq", "replay", id, "orders", "--data",
                               "{\"order_id\":\"o-1\",\"user_id\":\"u-1\",\"amount_cents\":100,"
                               "\"currency\":\"USD\"}", NULL };
        o = sluice(good);
        ck_assert_msg(o.code == 0 && strstr(o.out, "replayed ") != NULL, "good: %d %s %s",
                      o.code, o.out, o.err);
        out_free(&o);
    }
    ck_assert_int_eq(xlen("orders:dead"), 0);
    r = sl_test_cmd(rc, "XRANGE orders - +");
    ck_assert_int_eq(r->elements, 1);
    ck_assert_int_eq(r->element[0]->element[1]->elements, 4);
    ck_assert_str_eq(xfield(r, 0, "type"), "order.created");
    ck_assert_str_eq(xfield(r, 0, "data"), "{\"order_id\":\"o-1\",\"user_id\":\"u-1\","
                                           "\"amount_cents\":100,\"currency\":\"USD\"}");
    freeReplyObject(r);
    pool_start(1);
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_int(rc, "EXISTS order:o-1") == 1);
    ck_assert_int_eq(xlen("orders:dead"), 0);
}
END_TEST

/* show: one ID; the arguments swapped (STREAM before ID) is a usage
 * error that says which comes first, exit 2, not a Redis error. */
START_TEST(test_dlq_show_one_and_swapped)
{
    char id[64], id2[64];
    struct out o;

    dead_add(id, "s", "t", "{}", "invalid_schema");
    dead_add(id2, "s", "t2", "{}", "invalid_schema");
    {
        const char *show[] = { "dlq", "show", id, "s", NULL };
        o = sluice(show);
        ck_assert_msg(o.code == 0, "show: %s", o.err);
        ck_assert_msg(strstr(o.out, "type: t\n") != NULL && strstr(o.out, "t2") == NULL &&
                      strstr(o.out, "attempts: 1\n") != NULL, "show: %s", o.out);
        out_free(&o);
    }
    {
        const char *swapped[] = { "dlq", "show", "s", id, NULL };
        o = sluice(swapped);
        ck_assert_int_eq(o.code, 2);
        ck_assert_msg(strstr(o.err, "is not an entry ID") != NULL && strstr(o.err, id) != NULL &&
                      strstr(o.err, "ERR") == NULL, "swapped: %s", o.err);
        out_free(&o);
    }
    {
        const char *swapped[] = { "dlq", "replay", "s", id, NULL };
        o = sluice(swapped);
        ck_assert_int_eq(o.code, 2);
        out_free(&o);
    }
    ck_assert_int_eq(xlen("s:dead"), 2);
    /* The short form MS of an ID is refused: XRANGE reads "5" as the
     * range 5-0..5-max and XDEL as 5-0, so replaying dead letter 5-3 by
     * "5" re-added it and left it in place (before: exit 0, the entry in
     * both streams). */
    freeReplyObject(sl_test_cmd(rc, "XADD t:dead 5-3 type t data {} error e"));
    {
        const char *shortid[] = { "dlq", "replay", "5", "t", NULL };
        o = sluice(shortid);
        ck_assert_msg(o.code == 2 && strstr(o.err, "not an entry ID") != NULL, "short ID: %d %s",
                      o.code, o.err);
        out_free(&o);
    }
    ck_assert_int_eq(xlen("t:dead"), 1);
    ck_assert_int_eq(sl_test_int(rc, "EXISTS t"), 0);
}
END_TEST

/* The characters of UTF-8 text from a up to b: its bytes other than
 * continuation bytes. */
static long chars(const char *a, const char *b)
{
    long n = 0;

    for (; a < b; a++)
        n += ((unsigned char)*a & 0xC0) != 0x80;
    return n;
}

/* list shows a type whole: the column widens to the longest type, as
 * the other admin tables do; it was cut at 20 bytes, which could split a
 * UTF-8 character in two (before: "payment.requested.a\xc3" and no
 * "été"). Both rows put their ERROR column at the same character. */
START_TEST(test_dlq_list_type_whole)
{
    char id[64], id2[64];
    const char *type = "payment.requested.a\xc3\xa9t\xc3\xa9.v2";
    const char *tab[] = { "dlq", "list", "s", NULL };
    struct out o;
    const char *line;

    dead_add(id, "s", type, "{}", "invalid_schema");
    dead_add(id2, "s", "t", "{}", "invalid_schema");
    o = sluice(tab);
    ck_assert_msg(o.code == 0, "list: %s", o.err);
    line = strstr(o.out, id);
    ck_assert_msg(line != NULL && strstr(line, type) != NULL, "list: %s", o.out);
    /* Both rows put their ERROR column at the same place. */
    {
        const char *a = strstr(o.out, id), *b = strstr(o.out, id2);
        const char *ea, *eb, *la, *lb;

        ck_assert(a != NULL && b != NULL);
        for (la = a; la > o.out && la[-1] != '\n'; la--)
            ;
        for (lb = b; lb > o.out && lb[-1] != '\n'; lb--)
            ;
        ea = strstr(la, "invalid_schema");
        eb = strstr(lb, "invalid_schema");
        ck_assert(ea != NULL && eb != NULL);
        ck_assert_msg(chars(la, ea) == chars(lb, eb), "ERROR columns differ: %s", o.out);
    }
    out_free(&o);
}
END_TEST

/* list pages with a cursor: --count N shows N and prints the cursor of
 * the next page; following the cursors visits every dead letter exactly
 * once, past the old silent stop at 1000. */
START_TEST(test_dlq_list_pages)
{
    const int total = 1205;
    char after[64] = "";
    int seen = 0, pages = 0, i;
    redisContext *c = rc;

    for (i = 0; i < total; i++)
        redisAppendCommand(c, "XADD s:dead * type t data {} error e%d source_id 1-1", i);
    for (i = 0; i < total; i++) {
        redisReply *r = NULL;
        ck_assert_int_eq(redisGetReply(c, (void **)&r), REDIS_OK);
        freeReplyObject(r);
    }
    for (;;) {
        const char *first[] = { "dlq", "list", "s", "--json", "--count", "500", NULL };
        const char *next[] = { "dlq", "list", "s", "--json", "--count", "500", "--after", after,
                               NULL };
        struct out o = sluice(after[0] ? next : first);
        json_error_t jerr;
        json_t *doc = json_loads(o.out, 0, &jerr);
        const char *p;
        size_t k;

        ck_assert_msg(o.code == 0 && doc != NULL, "list: %d %s", o.code, o.err);
        for (k = 0; k < json_array_size(doc); k++) {
            char want[32];
            snprintf(want, sizeof want, "e%d", seen + (int)k);
            ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
                json_array_get(doc, k), "fields"), "error")), want);
        }
        seen += (int)json_array_size(doc);
        pages++;
        json_decref(doc);
        p = strstr(o.err, "next: --after ");
        if (p == NULL) {
            out_free(&o);
            break;
        }
        ck_assert_int_eq(sscanf(p + 14, "%63s", after), 1);
        out_free(&o);
        ck_assert_int_lt(pages, 10);
    }
    ck_assert_int_eq(seen, total);
    ck_assert_int_eq(pages, 3);
    /* The table: the default page, then the cursor line. */
    {
        const char *tab[] = { "dlq", "list", "s", NULL };
        struct out o = sluice(tab);
        ck_assert_msg(o.code == 0 && strstr(o.out, "\nnext: --after ") != NULL, "list: %s",
                      o.out);
        ck_assert_msg(strstr(o.out, " e99\n") != NULL && strstr(o.out, " e100\n") == NULL,
                      "list: %s", o.out);
        out_free(&o);
    }
}
END_TEST

/* purge: without a filter and without --yes it refuses (exit 2, nothing
 * deleted); one ID; by code, across several pages of 500, counting what
 * it deleted; by age; all with --yes. */
START_TEST(test_dlq_purge_filters)
{
    char id[64], keep[64];
    struct out o;
    int i;

    for (i = 0; i < 1100; i++)
        redisAppendCommand(rc, "XADD s:dead * type t data {} error %s source_id 1-1",
                           i % 2 ? "invalid_json: line 1" : "unknown_type");
    for (i = 0; i < 1100; i++) {
        redisReply *r = NULL;
        ck_assert_int_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
        freeReplyObject(r);
    }
    dead_add(id, "s", "t", "{}", "invalid_schema");
    dead_add(keep, "s", "t", "{}", "invalid_schema");
    {
        const char *all[] = { "dlq", "purge", "s", NULL };
        o = sluice(all);
        ck_assert_msg(o.code == 2 && strstr(o.err, "--yes") != NULL, "purge: %d %s", o.code,
                      o.err);
        out_free(&o);
        ck_assert_int_eq(xlen("s:dead"), 1102);
    }
    {
        const char *one[] = { "dlq", "purge", id, "s", NULL };
        o = sluice(one);
        ck_assert_msg(o.code == 0 && strstr(o.out, "purged 1 dead letters from s:dead") != NULL,
                      "purge ID: %s %s", o.out, o.err);
        out_free(&o);
        ck_assert_int_eq(xlen("s:dead"), 1101);
    }
    {
        const char *code[] = { "dlq", "purge", "s", "--code", "invalid_json", NULL };
        o = sluice(code);
        ck_assert_msg(o.code == 0 && strstr(o.out, "purged 550 dead letters from s:dead") != NULL,
                      "purge --code: %s %s", o.out, o.err);
        out_free(&o);
        ck_assert_int_eq(xlen("s:dead"), 551);
    }
    {
        /* Nothing is a day old: nothing goes. */
        const char *old[] = { "dlq", "purge", "s", "--older-than", "1d", "--json", NULL };
        o = sluice(old);
        ck_assert_msg(o.code == 0 && strstr(o.out, "\"purged\": 0") != NULL, "purge old: %s %s",
                      o.out, o.err);
        out_free(&o);
        ck_assert_int_eq(xlen("s:dead"), 551);
    }
    {
        /* A dead letter from 2001 (its ID is its time) is. */
        const char *old[] = { "dlq", "purge", "s", "--older-than", "1d", NULL };
        freeReplyObject(sl_test_cmd(rc, "XADD s:old:dead 1000000000000-0 type t data {} "
                                        "error old"));
        freeReplyObject(sl_test_cmd(rc, "XADD s:old:dead * type t data {} error new"));
        old[2] = "s:old";
        o = sluice(old);
        ck_assert_msg(o.code == 0 && strstr(o.out, "purged 1 dead letters") != NULL,
                      "purge old: %s %s", o.out, o.err);
        out_free(&o);
        ck_assert_int_eq(xlen("s:old:dead"), 1);
    }
    {
        const char *bad[] = { "dlq", "purge", "s", "--older-than", "7", NULL };
        o = sluice(bad);
        ck_assert_int_eq(o.code, 2);
        out_free(&o);
    }
    {
        const char *yes[] = { "dlq", "purge", "s", "--yes", NULL };
        o = sluice(yes);
        ck_assert_msg(o.code == 0 && strstr(o.out, "purged 551 dead letters") != NULL,
                      "purge --yes: %s %s", o.out, o.err);
        out_free(&o);
        ck_assert_int_eq(xlen("s:dead"), 0);
    }
}
END_TEST

/* Dead-letter retention, applied by the supervisor's housekeeping at its
 * default period: a count keeps the newest N, an age drops the old ones
 * (by Redis's clock), and a stream without either keeps everything. */
START_TEST(test_dlq_retention)
{
    int i;

    write_config("{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\", "
                 "  \"dead_letter_max_len\": 2 },"
                 "{ \"handler\": \"probe\", \"stream\": \"a\", \"group\": \"g\", "
                 "  \"dead_letter_max_age_ms\": 3600000 },"
                 "{ \"handler\": \"probe\", \"stream\": \"k\", \"group\": \"g\" }");
    freeReplyObject(sl_test_cmd(rc, "XADD a:dead 1000000000000-0 type t data {} error old"));
    freeReplyObject(sl_test_cmd(rc, "XADD k:dead 1000000000000-0 type t data {} error old"));
    pool_start(3);
    for (i = 0; i < 5; i++) {
        freeReplyObject(sl_test_cmd(rc, "XADD s * type t data {\"dead\":\"x%d\"}", i));
        freeReplyObject(sl_test_cmd(rc, "XADD a * type t data {\"dead\":\"x\"}"));
        freeReplyObject(sl_test_cmd(rc, "XADD k * type t data {\"dead\":\"x\"}"));
    }
    SL_TEST_ASSERT_EVENTUALLY(20000, pending("s", "g") == 0 && pending("a", "g") == 0 &&
                                     pending("k", "g") == 0 && xlen("k:dead") == 6);
    SL_TEST_ASSERT_EVENTUALLY(20000, xlen("s:dead") == 2 && xlen("a:dead") == 5);
    {
        redisReply *r = sl_test_cmd(rc, "XRANGE s:dead - +");
        ck_assert_str_eq(xfield(r, 0, "error"), "x3");
        ck_assert_str_eq(xfield(r, 1, "error"), "x4");
        freeReplyObject(r);
    }
    ck_assert_int_eq(sl_test_int(rc, "XLEN a:dead"), 5);
    ck_assert_int_eq(sl_test_int(rc, "XLEN k:dead"), 6);
    /* Logged when the script's reply comes back, so after Redis already
     * shows the trim: waited for (under valgrind a single look came too
     * early). */
    SL_TEST_ASSERT_EVENTUALLY(5000, sl_test_log_count(logpath, "event=dead_letters_expired") >= 2);
}
END_TEST

/* ------------------------------------------------------------------------
 * TCase "enqueue"
 * ------------------------------------------------------------------------ */

/* The type is checked against the handler the configuration gives the
 * stream: a type the order handler does not accept is refused with exit
 * 2 and nothing written; a stream no worker names accepts any type;
 * --json prints {"id": ...}. */
START_TEST(test_enqueue_type_checked_and_json)
{
    struct out o;
    json_error_t jerr;
    json_t *doc;

    write_config("{ \"handler\": \"order\", \"stream\": \"orders\", \"group\": \"g\" }");
    {
        const char *bad[] = { "enqueue", "orders", "order.refunded", "{\"order_id\":\"o-1\"}",
                              NULL };
        o = sluice(bad);
        ck_assert_msg(o.code == 2 && strstr(o.err, "order.refunded") != NULL &&
                      strstr(o.err, "handler order") != NULL, "bad type: %d %s", o.code, o.err);
        out_free(&o);
        ck_assert_int_eq(sl_test_int(rc, "EXISTS orders"), 0);
    }
    {
        const char *good[] = { "enqueue", "orders", "order.created", "{\"order_id\":\"o-1\"}",
                               "--json", NULL };
        o = sluice(good);
        ck_assert_msg(o.code == 0, "good: %d %s", o.code, o.err);
        doc = json_loads(o.out, 0, &jerr);
        ck_assert_msg(doc != NULL && json_is_string(json_object_get(doc, "id")), "--json: %s",
                      o.out);
        ck_assert_int_eq(sl_test_int(rc, "XLEN orders"), 1);
        json_decref(doc);
        out_free(&o);
    }
    {
        const char *any[] = { "enqueue", "other", "whatever", "{}", NULL };
        o = sluice(any);
        ck_assert_msg(o.code == 0, "unconfigured stream: %d %s", o.code, o.err);
        out_free(&o);
    }
}
END_TEST

/* enqueue STREAM -: one entry per line, `TYPE DATA` or a JSON object;
 * all or nothing: one bad line (named by its number) adds none of them. */
START_TEST(test_enqueue_stdin)
{
    const char *args[] = { "enqueue", "orders", "-", NULL };
    const char *jargs[] = { "enqueue", "orders", "-", "--json", NULL };
    struct out o;
    json_error_t jerr;
    json_t *doc;
    redisReply *r;

    write_config("{ \"handler\": \"order\", \"stream\": \"orders\", \"group\": \"g\" }");
    o = sluice_in("order.created {\"order_id\":\"o-1\"}\n"
                  "\n"
                  "{\"type\":\"payment.succeeded\",\"data\":{\"payment_id\":\"p\"}}\n"
                  "order.refunded {}\n", args);
    ck_assert_msg(o.code == 2 && strstr(o.err, "line 4") != NULL &&
                  strstr(o.err, "order.refunded") != NULL, "bad line: %d %s", o.code, o.err);
    out_free(&o);
    ck_assert_int_eq(sl_test_int(rc, "EXISTS orders"), 0);
    o = sluice_in("order.created {\"order_id\":\n", args);
    ck_assert_msg(o.code == 2 && strstr(o.err, "line 1") != NULL &&
                  strstr(o.err, "invalid_json") != NULL, "bad JSON: %d %s", o.code, o.err);
    out_free(&o);

    o = sluice_in("order.created {\"order_id\":\"o-1\"}\n"
                  "\n"
                  "{\"type\":\"payment.succeeded\",\"data\":{\"payment_id\":\"p\"}}\n", jargs);
    ck_assert_msg(o.code == 0, "stdin: %d %s", o.code, o.err);
    doc = json_loads(o.out, 0, &jerr);
    ck_assert_msg(doc != NULL && json_array_size(doc) == 2, "--json: %s", o.out);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(doc, 0), "line")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(doc, 1), "line")), 3);
    json_decref(doc);
    out_free(&o);
    r = sl_test_cmd(rc, "XRANGE orders - +");
    ck_assert_int_eq(r->elements, 2);
    ck_assert_str_eq(xfield(r, 0, "type"), "order.created");
    ck_assert_str_eq(xfield(r, 0, "data"), "{\"order_id\":\"o-1\"}");
    ck_assert_str_eq(xfield(r, 1, "type"), "payment.succeeded");
    ck_assert_str_eq(xfield(r, 1, "data"), "{\"payment_id\":\"p\"}");
    freeReplyObject(r);
}
END_TEST

/* ------------------------------------------------------------------------
 * TCase "log"
 * ------------------------------------------------------------------------ */

/* Checks that text is one JSON object per line, each with string ts,
 * level, pid, role and event. Returns the number of lines. */
static int assert_json_lines(const char *text)
{
    const char *p = text;
    int n = 0;

    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        json_error_t jerr;
        json_t *o;
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        static const char *const keys[] = { "ts", "level", "pid", "role", "event" };
        size_t k;

        o = json_loadb(p, len, 0, &jerr);
        ck_assert_msg(json_is_object(o), "not a JSON object: %.*s (%s)", (int)len, p, jerr.text);
        for (k = 0; k < sizeof keys / sizeof keys[0]; k++)
            ck_assert_msg(json_is_string(json_object_get(o, keys[k])), "no %s in %.*s", keys[k],
                          (int)len, p);
        json_decref(o);
        n++;
        p += len + (nl != NULL);
    }
    return n;
}

/* SLUICE_LOG_FORMAT=json: every line a pool writes is a JSON object with
 * the fields its logfmt line has (the same keys, the same values), a
 * dead letter's event included; an admin command's debug line too. */
START_TEST(test_log_json_lines)
{
    const char *list[] = { "dlq", "list", "s", NULL };
    struct out a, b;
    char *log;
    json_t *o;
    json_error_t jerr;

    write_config("{ \"handler\": \"probe\", \"stream\": \"s\", \"group\": \"g\" }");
    setenv("SLUICE_LOG_LEVEL", "debug", 1);
    a = sluice(list);
    setenv("SLUICE_LOG_FORMAT", "json", 1);
    b = sluice(list);
    ck_assert_int_eq(assert_json_lines(b.err), 1);
    o = json_loads(b.err, 0, &jerr);
    ck_assert_str_eq(json_string_value(json_object_get(o, "event")), "config");
    ck_assert_str_eq(json_string_value(json_object_get(o, "path")), cfgpath);
    ck_assert_int_eq(json_object_size(o), 6);
    ck_assert_msg(strstr(a.err, " event=config path=") != NULL && strstr(a.err, cfgpath) != NULL,
                  "logfmt: %s", a.err);
    json_decref(o);
    out_free(&a);
    out_free(&b);
    unsetenv("SLUICE_LOG_LEVEL");

    {
        const char *extra[] = { "--redis", srv.url, NULL };
        pool_pid = sl_test_pool_spawn_args(cfgpath, logpath, extra);
    }
    unsetenv("SLUICE_LOG_FORMAT");
    ck_assert_int_gt(pool_pid, 0);
    SL_TEST_ASSERT_EVENTUALLY(20000, sl_test_log_count(logpath, "\"event\":\"running\"") == 1);
    /* A code with a space, '=' and a quote: quoted in logfmt, exact in JSON. */
    freeReplyObject(sl_test_cmd(rc, "XADD s * type t data %s", "{\"dead\":\"a b=c\\\"d\"}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, xlen("s:dead") == 1);
    sl_test_pool_kill(&pool_pid, 10000);
    log = sl_test_read_file(logpath);
    ck_assert_ptr_nonnull(log);
    ck_assert_int_ge(assert_json_lines(log), 3);
    ck_assert_msg(strstr(log, "\"event\":\"child_started\"") != NULL, "%s", log);
    ck_assert_msg(strstr(log, "ts=") == NULL, "a logfmt line: %s", log);
    /* The dead_letter event, its error exactly the code written. */
    {
        const char *p = strstr(log, "{\"ts\"");
        int seen = 0;
        for (; p != NULL; p = strstr(p + 1, "{\"ts\"")) {
            const char *nl = strchr(p, '\n');
            json_t *e = json_loadb(p, nl != NULL ? (size_t)(nl - p) : strlen(p), 0, &jerr);
            if (e != NULL && strcmp(json_string_value(json_object_get(e, "event")),
                                    "dead_letter") == 0) {
                ck_assert_str_eq(json_string_value(json_object_get(e, "error")), "a b=c\"d");
                ck_assert(json_is_string(json_object_get(e, "id")));
                seen++;
            }
            json_decref(e);
        }
        ck_assert_int_eq(seen, 1);
    }
    free(log);
}
END_TEST

/* ------------------------------------------------------------------------
 * Suite
 * ------------------------------------------------------------------------ */

/* A TCase with its own redis-server and the per-test fixture. */
static TCase *tcase(const char *name, int timeout_s)
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, server_up, server_down);
    tcase_add_checked_fixture(tc, test_up, test_down);
    tcase_set_timeout(tc, timeout_s * sl_test_slow_factor());
    return tc;
}

Suite *dlq_suite(void)
{
    Suite *s = suite_create("dlq");
    TCase *tc;

    tc = tcase("dlq", 90);
    tcase_add_test(tc, test_dlq_replay_all_bounded);
    tcase_add_test(tc, test_dlq_attempts_field);
    tcase_add_test(tc, test_dlq_pending_attempts);
    tcase_add_test(tc, test_dlq_replay_with_data);
    tcase_add_test(tc, test_dlq_show_one_and_swapped);
    tcase_add_test(tc, test_dlq_list_pages);
    tcase_add_test(tc, test_dlq_list_type_whole);
    tcase_add_test(tc, test_dlq_purge_filters);
    tcase_add_test(tc, test_dlq_retention);
    suite_add_tcase(s, tc);

    tc = tcase("log", 60);
    tcase_add_test(tc, test_log_json_lines);
    suite_add_tcase(s, tc);

    tc = tcase("enqueue", 60);
    tcase_add_test(tc, test_enqueue_type_checked_and_json);
    tcase_add_test(tc, test_enqueue_stdin);
    suite_add_tcase(s, tc);
    return s;
}
