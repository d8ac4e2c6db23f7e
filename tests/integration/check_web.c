/* check_web.c -- the dashboard over HTTP (docs/dashboard.md): every
 * endpoint's JSON, paging, limits, the read-only rule (403), methods
 * (405), cross-origin writes, the page's write token, the site token,
 * oversized requests, and the read-only pages on the pool's listener.
 * Redis is seeded by each test; the rate samples are written the way a
 * pool keeps them (sluice:rate:<stream>:<group>, ID = time in ms).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <hiredis.h>
#include <jansson.h>

#include "sluice.h"
#include "harness.h"
#include "ops.h"
#include "sut.h"

/* One `sluice web`. */
struct web {
    pid_t pid;
    int port;
    char cfg[600];
    char log[600];
    char csrf[80];                /* the page's write token */
};

/* Writes a configuration with one noop worker on orders/g1. */
static void web_config(struct web *w)
{
    write_config(w->cfg, sizeof(w->cfg), "web",
                 "{\"handler\": \"noop\", \"stream\": \"orders\", \"group\": \"g1\"}", "", 0);
}

/* Starts `sluice web -c CFG --listen 127.0.0.1:0` plus extra arguments
 * (NULL-terminated), waits for its port, and reads the page's token. */
static void web_start(struct web *w, const char *const *extra)
{
    const char *argv[100];
    int n = 0, i;
    long long dl = sl_test_deadline(10000);

    memset(w, 0, sizeof(*w));
    web_config(w);
    snprintf(w->log, sizeof(w->log), "%s/web.log", tmp);
    argv[n++] = sl_test_bin();
    argv[n++] = "web";
    argv[n++] = "-c";
    argv[n++] = w->cfg;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    for (i = 0; extra != NULL && extra[i] != NULL && n < 99; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    w->pid = sl_test_spawn(argv, w->log);
    ck_assert_int_gt(w->pid, 0);
    track(w->pid);
    while ((w->port = (int)file_last_number(w->log, "event=web_listening addr=127.0.0.1:")) <= 0) {
        ck_assert_msg(sl_test_pid_alive(w->pid), "sluice web exited; see %s", w->log);
        ck_assert_msg(sl_test_tick(dl), "sluice web did not listen within 10 s");
    }
}

/* Sends one request (HTTP/1.0, so the server closes after it); a body
 * goes as JSON. */
static struct sl_test_http req(const struct web *w, const char *method, const char *path,
                               const char *headers, const char *body)
{
    size_t blen = body != NULL ? strlen(body) : 0;
    size_t cap = strlen(path) + (headers ? strlen(headers) : 0) + blen + 256;
    char *r = malloc(cap);
    struct sl_test_http h;
    int n;

    ck_assert_ptr_nonnull(r);
    if (body != NULL)
        n = snprintf(r, cap, "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n%sContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s", method, path, w->port, headers ? headers : "",
                     blen, body);
    else
        n = snprintf(r, cap, "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n%s\r\n", method, path, w->port,
                     headers ? headers : "");
    h = sl_test_http_request(w->port, r, (size_t)n, 0);
    free(r);
    return h;
}

/* GETs path and returns its JSON body (new), failing unless the status is `status`. */
static json_t *get_json(const struct web *w, const char *path, int status)
{
    struct sl_test_http h = req(w, "GET", path, NULL, NULL);
    json_t *j;

    ck_assert_msg(h.status == status, "GET %s: %d, want %d: %s", path, h.status, status,
                  h.body ? h.body : "");
    j = parse_json(h.body);
    sl_test_http_free(&h);
    return j;
}

/* Returns 1 when the head of h holds header line `line` (case as sent). */
static int has_header(const struct sl_test_http *h, const char *line)
{
    return h->head != NULL && strstr(h->head, line) != NULL;
}

/* Reads the write token from the page. */
static void read_csrf(struct web *w)
{
    struct sl_test_http h = req(w, "GET", "/", NULL, NULL);
    const char *m;

    ck_assert_int_eq(h.status, 200);
    m = strstr(h.body, "name=\"sluice-csrf\" content=\"");
    ck_assert_ptr_nonnull(m);
    m += strlen("name=\"sluice-csrf\" content=\"");
    ck_assert_int_eq((int)strcspn(m, "\""), 64);
    memcpy(w->csrf, m, 64);
    w->csrf[64] = '\0';
    sl_test_http_free(&h);
}

/* Milliseconds since the epoch (the rate samples' and heartbeats' clock). */
static long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Adds n dead letters to orders:dead with the given code, data `data`. */
static void seed_dead(int n, const char *code, const char *data)
{
    int i;

    for (i = 0; i < n; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD orders:dead * type order.created data %s error %s:%s "
                                        "source_id 1-%d deliveries 5 consumer c failed_at 1700000000000",
                                    data, code, " detail", i));
}

/* Seeds orders with group g1 (3 entries, none read), one dead letter and
 * 11 rate samples a minute apart ending now: λ = 1/s, μ = 50/60 per s. */
static void seed_overview(void)
{
    long long now = wall_ms();
    int k;

    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE orders g1 $ MKSTREAM"));
    for (k = 0; k < 3; k++)
        freeReplyObject(sl_test_cmd(rc, "XADD orders * type order.created data {}"));
    seed_dead(1, "invalid_json", "x");
    for (k = 10; k >= 0; k--)
        freeReplyObject(sl_test_cmd(rc, "XADD sluice:rate:orders:g1 %lld-0 added %d read %d pending 5 lag 10",
                                    now - k * 60000LL, 1000 - k * 60, 900 - k * 50));
}

/* Returns the row of the overview for stream and group (NULL group: the
 * row of a stream without groups), borrowed from doc. */
static json_t *row_of(json_t *doc, const char *stream, const char *group)
{
    json_t *rows = json_object_get(doc, "rows"), *r;
    size_t i;

    json_array_foreach(rows, i, r) {
        json_t *g = json_object_get(r, "group");
        if (strcmp(jstr(r, "stream"), stream) == 0 &&
            (group == NULL ? json_is_null(g) : json_is_string(g) && !strcmp(json_string_value(g), group)))
            return r;
    }
    return NULL;
}

/* Returns 1 when the array at key of o holds the string s. */
static int array_has(const json_t *o, const char *key, const char *s)
{
    json_t *a = json_object_get(o, key), *v;
    size_t i;

    json_array_foreach(a, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------ */

START_TEST(test_web_overview_shape)
{
    struct web w;
    const char *extra[] = { "--stream", "missing", NULL };
    json_t *doc, *r, *chart;

    seed_overview();
    web_start(&w, extra);
    doc = get_json(&w, "/api/overview", 200);
    ck_assert_int_eq(jint(doc, "streams"), 2);
    r = row_of(doc, "orders", "g1");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(jint(r, "length"), 3);
    ck_assert_int_eq(jint(r, "lag"), 3);
    ck_assert_int_eq(jint(r, "pending"), 0);
    ck_assert_int_eq(jint(r, "consumers"), 0);
    ck_assert_int_eq(jint(r, "dead"), 1);
    ck_assert_int_eq(jint(json_object_get(r, "dead_codes"), "invalid_json"), 1);
    ck_assert_int_eq(jint(r, "L"), 3);
    ck_assert(json_is_null(json_object_get(r, "oldest_pending_ms")));
    ck_assert_double_eq_tol(jnum(r, "lambda"), 1.0, 1e-9);
    ck_assert_double_eq_tol(jnum(r, "mu"), 50.0 / 60.0, 1e-6); /* six significant digits */
    ck_assert_double_eq_tol(jnum(r, "rho"), 1.2, 1e-9);
    ck_assert_double_eq_tol(jnum(r, "W"), 3.0, 1e-9);
    ck_assert_str_eq(jstr(r, "rate_source"), "samples");
    chart = json_object_get(r, "chart");
    ck_assert_int_eq((int)json_array_size(json_object_get(chart, "t")), 10);
    ck_assert_int_eq((int)json_array_size(json_object_get(chart, "lambda")), 10);
    ck_assert_double_eq_tol(json_real_value(json_array_get(json_object_get(chart, "mu"), 9)), 50.0 / 60.0, 1e-6);
    ck_assert(array_has(r, "attention", "rho > 1"));
    ck_assert(array_has(r, "attention", "no live consumer"));
    ck_assert_int_eq(jint(r, "live_workers"), 0);
    r = row_of(doc, "missing", NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert(json_is_false(json_object_get(r, "exists")));
    json_decref(doc);
    /* No key of another stream was read: only the shown ones. */
    doc = get_json(&w, "/api/info", 200);
    ck_assert_str_eq(jstr(doc, "mode"), "web");
    ck_assert(json_is_false(json_object_get(doc, "allow_writes")));
    ck_assert_int_eq((int)json_array_size(json_object_get(doc, "streams")), 2);
    json_decref(doc);
}
END_TEST

/* More rows than the first allocation of the overview's state (16):
 * the state grows while an overview is read, and every row must still
 * carry its own stream's numbers. */
START_TEST(test_web_overview_many_streams)
{
    struct web w;
    const char *extra[2 * 40 + 1];
    char names[40][16];
    json_t *doc, *r;
    int i, k, pass;

    for (i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "st%d", i);
        extra[2 * i] = "--stream";
        extra[2 * i + 1] = names[i];
        freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE %s g $ MKSTREAM", names[i]));
        for (k = 0; k < i % 5; k++)
            freeReplyObject(sl_test_cmd(rc, "XADD %s * type t data {}", names[i]));
    }
    extra[80] = NULL;
    web_start(&w, extra);
    for (pass = 0; pass < 2; pass++) {
        doc = get_json(&w, "/api/overview", 200);
        for (i = 0; i < 40; i++) {
            r = row_of(doc, names[i], "g");
            ck_assert_msg(r != NULL, "no row for %s", names[i]);
            ck_assert_int_eq(jint(r, "length"), i % 5);
            ck_assert_int_eq(jint(r, "live_workers"), 0);
        }
        json_decref(doc);
        usleep(1100000);            /* past the 1 s cache: read again */
    }
}
END_TEST

START_TEST(test_web_overview_live_rates_and_workers)
{
    struct web w;
    json_t *doc, *r, *wk;
    long long now = wall_ms();

    /* No samples in Redis: λ comes from the dashboard's own readings. A
     * heartbeat of a worker of orders/g1 makes it live. */
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE orders g1 $ MKSTREAM"));
    freeReplyObject(sl_test_cmd(rc, "HSET sluice:worker:h-noop-0 pid 42 host h handler noop stream orders "
                                    "group g1 started_at %lld last_beat %lld processed 7 failed 1",
                                now - 60000, now));
    freeReplyObject(sl_test_cmd(rc, "PEXPIRE sluice:worker:h-noop-0 60000"));
    /* A beat also lists the worker in the registry of live workers. */
    freeReplyObject(sl_test_cmd(rc, "ZADD sluice:workers %lld h-noop-0", now + 60000));
    web_start(&w, NULL);
    doc = get_json(&w, "/api/overview", 200);
    r = row_of(doc, "orders", "g1");
    ck_assert(json_is_null(json_object_get(r, "lambda")));
    ck_assert_int_eq(jint(r, "live_workers"), 1);
    ck_assert(!array_has(r, "attention", "no live consumer"));
    json_decref(doc);
    freeReplyObject(sl_test_cmd(rc, "XADD orders * type t data {}"));
    /* The next reading at least 5 s later gives a rate. */
    {
        long long dl = sl_test_deadline(30000);
        for (;;) {
            doc = get_json(&w, "/api/overview", 200);
            r = row_of(doc, "orders", "g1");
            if (json_is_real(json_object_get(r, "lambda")))
                break;
            json_decref(doc);
            ck_assert_msg(sl_test_tick(dl), "no live rate within 30 s");
            usleep(200000);
        }
        ck_assert_str_eq(jstr(r, "rate_source"), "live");
        ck_assert(jnum(r, "lambda") > 0);
        ck_assert(array_has(r, "attention", "lag growing"));
        json_decref(doc);
    }
    /* A rate of one entry over about five seconds is a long fraction:
     * the JSON carries six significant digits, as the admin commands'. */
    {
        struct sl_test_http h = req(&w, "GET", "/api/overview", NULL, NULL);
        const char *p = h.body != NULL ? strstr(h.body, "\"lambda\":") : NULL;
        int digits = 0;

        ck_assert_msg(p != NULL, "no lambda in %s", h.body ? h.body : "(nothing)");
        for (p += strlen("\"lambda\":"); *p != '\0' && strchr("0123456789.eE+-", *p); p++) {
            if (*p == 'e' || *p == 'E')
                break;
            if (*p >= '0' && *p <= '9' && (digits > 0 || *p != '0'))
                digits++;
        }
        ck_assert_msg(digits <= 6, "lambda printed with %d significant digits: %.200s", digits,
                      strstr(h.body, "\"lambda\":"));
        sl_test_http_free(&h);
    }
    wk = get_json(&w, "/api/workers", 200);
    ck_assert_int_eq((int)json_array_size(wk), 1);
    r = json_array_get(wk, 0);
    ck_assert_str_eq(jstr(r, "consumer"), "h-noop-0");
    ck_assert_str_eq(jstr(r, "handler"), "noop");
    ck_assert_int_eq(jint(r, "processed"), 7);
    ck_assert_int_eq(jint(r, "failed"), 1);
    ck_assert_int_eq(jint(r, "pid"), 42);
    ck_assert(jint(r, "uptime_ms") >= 60000);
    json_decref(wk);
}
END_TEST

/* Polls the overview of w until the row of stream/group has (want 1) or
 * has not (want 0) the attention flag `flag`, for up to 30 s; returns
 * the overview (new). */
static json_t *overview_until_flag(const struct web *w, const char *stream, const char *group,
                                   const char *flag, int want)
{
    long long dl = sl_test_deadline(30000);
    json_t *doc;

    for (;;) {
        doc = get_json(w, "/api/overview", 200);
        if (array_has(row_of(doc, stream, group), "attention", flag) == want)
            return doc;
        json_decref(doc);
        ck_assert_msg(sl_test_tick(dl), "%s/%s: attention \"%s\" never %s", stream, group, flag,
                      want ? "raised" : "cleared");
        usleep(200000);
    }
}

/* "dead letters rising": a row whose stream gained dead letters since
 * the dashboard's reading of at least 5 s before stands out; a stream
 * whose dead letters stay as they are does not, and the flag goes once
 * the count has stopped rising. */
START_TEST(test_web_overview_dead_letters_rising)
{
    struct web w;
    const char *extra[] = { "--stream", "payments", NULL };
    json_t *doc;

    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE orders g1 $ MKSTREAM"));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE payments g2 $ MKSTREAM"));
    seed_dead(1, "invalid_json", "x");
    freeReplyObject(sl_test_cmd(rc, "XADD payments:dead * type t data x error invalid_json:x"));
    web_start(&w, extra);
    doc = get_json(&w, "/api/overview", 200);
    ck_assert(!array_has(row_of(doc, "orders", "g1"), "attention", "dead letters rising"));
    ck_assert(!array_has(row_of(doc, "payments", "g2"), "attention", "dead letters rising"));
    json_decref(doc);
    seed_dead(3, "handler_dead", "y");
    doc = overview_until_flag(&w, "orders", "g1", "dead letters rising", 1);
    ck_assert_int_eq(jint(row_of(doc, "orders", "g1"), "dead"), 4);
    ck_assert(!array_has(row_of(doc, "payments", "g2"), "attention", "dead letters rising"));
    json_decref(doc);
    /* No more: two readings later the count has not risen since. */
    doc = overview_until_flag(&w, "orders", "g1", "dead letters rising", 0);
    ck_assert_int_eq(jint(row_of(doc, "orders", "g1"), "dead"), 4);
    json_decref(doc);
}
END_TEST

/* A stream whose dead letters fit in one refresh's budget shows complete
 * counts at the first overview: 150 of one code then 120 of another,
 * more than the latest 100. */
START_TEST(test_web_dead_codes_first_read)
{
    struct web w;
    json_t *doc, *r, *codes;

    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE orders g1 $ MKSTREAM"));
    seed_dead(150, "invalid_json", "x");
    seed_dead(120, "handler_dead", "y");
    web_start(&w, NULL);
    doc = get_json(&w, "/api/overview", 200);
    r = row_of(doc, "orders", "g1");
    codes = json_object_get(r, "dead_codes");
    ck_assert_msg(json_is_true(json_object_get(r, "dead_codes_complete")), "incomplete at the first read");
    ck_assert_int_eq(jint(r, "dead"), 270);
    ck_assert_int_eq(jint(codes, "invalid_json"), 150);
    ck_assert_int_eq(jint(codes, "handler_dead"), 120);
    ck_assert_int_eq((int)json_object_size(codes), 2);
    json_decref(doc);
}
END_TEST

/* Dead letters by code are complete counts, not those of the latest
 * 100: 5,200 of one code then 100 of another. The first overview counts
 * a bounded amount (10 pages of 500), so it shows the latest 100, marked
 * incomplete; a later one has counted everything, and then a new dead
 * letter is counted on top, and a removed one leaves the count. */
START_TEST(test_web_dead_codes_complete)
{
    struct web w;
    json_t *doc, *r, *codes;
    long long dl;
    redisReply *x;

    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE orders g1 $ MKSTREAM"));
    seed_dead(5200, "invalid_json", "x");
    seed_dead(100, "handler_dead", "y");
    web_start(&w, NULL);
    doc = get_json(&w, "/api/overview", 200);
    r = row_of(doc, "orders", "g1");
    ck_assert_int_eq(jint(r, "dead"), 5300);
    ck_assert(json_is_false(json_object_get(r, "dead_codes_complete")));
    codes = json_object_get(r, "dead_codes");
    ck_assert_int_eq(jint(codes, "handler_dead"), 100);
    ck_assert_ptr_null(json_object_get(codes, "invalid_json"));
    json_decref(doc);
    dl = sl_test_deadline(20000);
    for (;;) {
        doc = get_json(&w, "/api/overview", 200);
        r = row_of(doc, "orders", "g1");
        if (json_is_true(json_object_get(r, "dead_codes_complete")))
            break;
        json_decref(doc);
        ck_assert_msg(sl_test_tick(dl), "the dead-letter count never completed");
        usleep(200000);
    }
    codes = json_object_get(r, "dead_codes");
    ck_assert_int_eq(jint(codes, "invalid_json"), 5200);
    ck_assert_int_eq(jint(codes, "handler_dead"), 100);
    ck_assert_int_eq((int)json_object_size(codes), 2);
    json_decref(doc);
    /* One more of a third code, and the oldest one gone (replayed, say):
     * the same length, other counts. */
    x = sl_test_cmd(rc, "XRANGE orders:dead - + COUNT 1");
    ck_assert_int_eq(x->type, REDIS_REPLY_ARRAY);
    freeReplyObject(sl_test_cmd(rc, "XDEL orders:dead %s", x->element[0]->element[0]->str));
    freeReplyObject(x);
    seed_dead(1, "expired", "z");
    dl = sl_test_deadline(20000);
    for (;;) {
        doc = get_json(&w, "/api/overview", 200);
        r = row_of(doc, "orders", "g1");
        codes = json_object_get(r, "dead_codes");
        if (json_is_true(json_object_get(r, "dead_codes_complete")) &&
            json_object_get(codes, "expired") != NULL)
            break;
        json_decref(doc);
        ck_assert_msg(sl_test_tick(dl), "the new dead letter was never counted");
        usleep(200000);
    }
    ck_assert_int_eq(jint(r, "dead"), 5300);
    ck_assert_int_eq(jint(codes, "invalid_json"), 5199);
    ck_assert_int_eq(jint(codes, "handler_dead"), 100);
    ck_assert_int_eq(jint(codes, "expired"), 1);
    json_decref(doc);
}
END_TEST

START_TEST(test_web_group)
{
    struct web w;
    json_t *doc, *c, *p;
    int k;

    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE orders g1 $ MKSTREAM"));
    for (k = 0; k < 5; k++)
        freeReplyObject(sl_test_cmd(rc, "XADD orders * type t data {}"));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP g1 alice COUNT 3 STREAMS orders >"));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP g1 bob COUNT 1 STREAMS orders >"));
    web_start(&w, NULL);
    doc = get_json(&w, "/api/group?stream=orders&group=g1&count=2", 200);
    c = json_object_get(doc, "consumers");
    ck_assert_int_eq((int)json_array_size(c), 2);
    ck_assert_str_eq(jstr(json_array_get(c, 0), "name"), "alice");
    ck_assert_int_eq(jint(json_array_get(c, 0), "pending"), 3);
    ck_assert(json_is_null(json_object_get(json_array_get(c, 0), "beat_age_ms")));
    p = json_object_get(doc, "oldest_pending");
    ck_assert_int_eq((int)json_array_size(p), 2);     /* count=2 */
    ck_assert_str_eq(jstr(json_array_get(p, 0), "consumer"), "alice");
    ck_assert_int_eq(jint(json_array_get(p, 0), "deliveries"), 1);
    json_decref(doc);
    json_decref(get_json(&w, "/api/group?stream=orders&group=nope", 404));
    json_decref(get_json(&w, "/api/group?stream=other&group=g1", 404));
    json_decref(get_json(&w, "/api/group?stream=orders", 400));
}
END_TEST

START_TEST(test_web_dead_paging)
{
    struct web w;
    json_t *doc, *items;
    char path[256], cursor[64] = "", first[64];
    int pages = 0, seen = 0;

    seed_dead(70, "invalid_json", "x");
    seed_dead(50, "unknown_type", "y");
    web_start(&w, NULL);
    /* Page by cursor to the end: every dead letter once. */
    for (;;) {
        snprintf(path, sizeof(path), "/api/dead?stream=orders&count=50%s%s", cursor[0] ? "&cursor=" : "", cursor);
        doc = get_json(&w, path, 200);
        ck_assert_int_eq(jint(doc, "total"), 120);
        items = json_object_get(doc, "items");
        if (pages == 0)
            snprintf(first, sizeof(first), "%s", jstr(json_array_get(items, 0), "id"));
        seen += (int)json_array_size(items);
        pages++;
        if (json_is_null(json_object_get(doc, "next_cursor"))) {
            json_decref(doc);
            break;
        }
        ck_assert_int_eq((int)json_array_size(items), 50);
        snprintf(cursor, sizeof(cursor), "%s", jstr(doc, "next_cursor"));
        json_decref(doc);
        ck_assert_int_lt(pages, 10);
    }
    ck_assert_int_eq(seen, 120);
    ck_assert_int_eq(pages, 3);
    /* A count is clamped to 200. */
    doc = get_json(&w, "/api/dead?stream=orders&count=100000", 200);
    ck_assert_int_eq((int)json_array_size(json_object_get(doc, "items")), 120);
    json_decref(doc);
    /* By code: only those. */
    doc = get_json(&w, "/api/dead?stream=orders&code=unknown_type&count=200", 200);
    items = json_object_get(doc, "items");
    ck_assert_int_eq((int)json_array_size(items), 50);
    ck_assert_str_eq(jstr(json_array_get(items, 0), "code"), "unknown_type");
    ck_assert_str_eq(jstr(json_array_get(items, 0), "error"), "unknown_type: detail");
    json_decref(doc);
    /* By exact ID. */
    snprintf(path, sizeof(path), "/api/dead/entry?stream=orders&id=%s", first);
    doc = get_json(&w, path, 200);
    ck_assert_str_eq(jstr(doc, "id"), first);
    ck_assert_str_eq(json_string_value(json_array_get(json_array_get(json_object_get(doc, "fields"), 1), 1)), "x");
    json_decref(doc);
    json_decref(get_json(&w, "/api/dead/entry?stream=orders&id=1-1", 404));
    /* "-" or "+" would widen XRANGE to the first entry: refused. */
    json_decref(get_json(&w, "/api/dead/entry?stream=orders&id=-", 404));
    json_decref(get_json(&w, "/api/dead/entry?stream=orders&id=%2B", 404));
    json_decref(get_json(&w, "/api/dead?stream=orders&cursor=abc", 400));
    json_decref(get_json(&w, "/api/dead?stream=secret", 404));
}
END_TEST

START_TEST(test_web_static_headers_and_size)
{
    struct web w;
    struct sl_test_http h;
    size_t total = 0;
    const char *paths[] = { "/", "/app.js", "/app.css" };
    size_t i;

    web_start(&w, NULL);
    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        h = req(&w, "GET", paths[i], NULL, NULL);
        ck_assert_int_eq(h.status, 200);
        ck_assert(has_header(&h, "Content-Security-Policy: default-src 'none'; script-src 'self';"));
        ck_assert(strstr(h.head, "unsafe-inline") == NULL);
        ck_assert(strstr(h.head, "frame-ancestors 'none'") != NULL);
        ck_assert(has_header(&h, "X-Content-Type-Options: nosniff"));
        ck_assert(has_header(&h, "X-Frame-Options: DENY"));
        ck_assert(strstr(h.head, "Access-Control-") == NULL);
        total += strlen(h.body);
        if (i == 0) {
            /* No inline script: the page loads its script from /app.js. */
            ck_assert(strstr(h.body, "<script src=\"/app.js\"") != NULL);
            ck_assert(strstr(h.body, "<script>") == NULL);
            ck_assert(strstr(h.body, "http://") == NULL && strstr(h.body, "https://") == NULL);
        }
        if (i == 1) {
            ck_assert(has_header(&h, "Content-Type: text/javascript"));
            ck_assert(strstr(h.body, "innerHTML") == NULL);
        }
        sl_test_http_free(&h);
    }
    ck_assert_msg(total < 60 * 1024, "the page weighs %zu bytes", total);
    h = req(&w, "GET", "/nope", NULL, NULL);
    ck_assert_int_eq(h.status, 404);
    sl_test_http_free(&h);
    h = req(&w, "HEAD", "/app.js", NULL, NULL);
    ck_assert_int_eq(h.status, 200);
    ck_assert(h.body == NULL || h.body[0] == '\0');
    sl_test_http_free(&h);
}
END_TEST

/* ---------------------------------------------------------------------
 * Writes and the rules
 * ------------------------------------------------------------------ */

/* Returns the ID of the first dead letter of orders (static buffer). */
static const char *first_dead(void)
{
    static char id[64];
    redisReply *r = sl_test_cmd(rc, "XRANGE orders:dead - + COUNT 1");

    ck_assert_int_eq((int)r->elements, 1);
    snprintf(id, sizeof(id), "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
    return id;
}

START_TEST(test_web_readonly_refuses_writes)
{
    struct web w;
    struct sl_test_http h;
    char body[256];

    seed_dead(1, "invalid_json", "x");
    web_start(&w, NULL);
    read_csrf(&w);
    snprintf(body, sizeof(body), "{\"stream\":\"orders\",\"id\":\"%s\"}", first_dead());
    {
        char hdr[200];
        snprintf(hdr, sizeof(hdr), "Sec-Fetch-Site: same-origin\r\nX-Sluice-Token: %s\r\n", w.csrf);
        h = req(&w, "POST", "/api/dead/replay", hdr, body);
    }
    ck_assert_int_eq(h.status, 403);
    ck_assert(strstr(h.body, "read-only") != NULL);
    sl_test_http_free(&h);
    ck_assert_int_eq(sl_test_int(rc, "XLEN orders:dead"), 1);
    ck_assert_int_eq(sl_test_int(rc, "EXISTS orders"), 0);
    /* A method a path never takes: 405 with Allow. */
    h = req(&w, "PUT", "/api/overview", NULL, NULL);
    ck_assert_int_eq(h.status, 405);
    ck_assert(has_header(&h, "Allow: GET, HEAD"));
    sl_test_http_free(&h);
    h = req(&w, "GET", "/api/dead/replay", NULL, NULL);
    ck_assert_int_eq(h.status, 405);
    ck_assert(has_header(&h, "Allow: POST"));
    sl_test_http_free(&h);
    h = req(&w, "POST", "/api/overview", NULL, "{}");
    ck_assert_int_eq(h.status, 405);
    sl_test_http_free(&h);
}
END_TEST

START_TEST(test_web_writes_checked)
{
    struct web w;
    const char *extra[] = { "--allow-writes", NULL };
    struct sl_test_http h;
    char body[256], hdr[256];
    const char *id;
    redisReply *r;

    seed_dead(1, "invalid_json", "<img src=x onerror=alert(1)>");
    seed_dead(1, "invalid_json", "bad");
    web_start(&w, extra);
    read_csrf(&w);
    id = first_dead();
    snprintf(body, sizeof(body), "{\"stream\":\"orders\",\"id\":\"%s\"}", id);
    /* No token, a wrong one, another site, another origin: 403 each. */
    h = req(&w, "POST", "/api/dead/replay", "Sec-Fetch-Site: same-origin\r\n", body);
    ck_assert_int_eq(h.status, 403);
    ck_assert(strstr(h.body, "X-Sluice-Token") != NULL);
    sl_test_http_free(&h);
    h = req(&w, "POST", "/api/dead/replay", "Sec-Fetch-Site: same-origin\r\nX-Sluice-Token: 0000\r\n", body);
    ck_assert_int_eq(h.status, 403);
    sl_test_http_free(&h);
    snprintf(hdr, sizeof(hdr), "Sec-Fetch-Site: cross-site\r\nX-Sluice-Token: %s\r\n", w.csrf);
    h = req(&w, "POST", "/api/dead/replay", hdr, body);
    ck_assert_int_eq(h.status, 403);
    ck_assert(strstr(h.body, "cross-origin") != NULL);
    sl_test_http_free(&h);
    snprintf(hdr, sizeof(hdr), "Origin: http://evil.example\r\nX-Sluice-Token: %s\r\n", w.csrf);
    h = req(&w, "POST", "/api/dead/replay", hdr, body);
    ck_assert_int_eq(h.status, 403);
    sl_test_http_free(&h);
    ck_assert_int_eq(sl_test_int(rc, "XLEN orders:dead"), 2);
    /* Same origin (by Origin) with the token: replayed. */
    snprintf(hdr, sizeof(hdr), "Origin: http://127.0.0.1:%d\r\nX-Sluice-Token: %s\r\n", w.port, w.csrf);
    h = req(&w, "POST", "/api/dead/replay", hdr, body);
    ck_assert_msg(h.status == 200, "%d %s", h.status, h.body);
    sl_test_http_free(&h);
    ck_assert_int_eq(sl_test_int(rc, "XLEN orders:dead"), 1);
    r = sl_test_cmd(rc, "XRANGE orders - +");
    ck_assert_int_eq((int)r->elements, 1);
    ck_assert_str_eq(sl_test_kv(r->element[0]->element[1], "data")->str, "<img src=x onerror=alert(1)>");
    ck_assert_ptr_null(sl_test_kv(r->element[0]->element[1], "error"));
    freeReplyObject(r);
    /* Replay with corrected data. */
    id = first_dead();
    snprintf(body, sizeof(body), "{\"stream\":\"orders\",\"id\":\"%s\",\"data\":\"{\\\"fixed\\\":1}\"}", id);
    snprintf(hdr, sizeof(hdr), "Sec-Fetch-Site: same-origin\r\nX-Sluice-Token: %s\r\n", w.csrf);
    h = req(&w, "POST", "/api/dead/replay", hdr, body);
    ck_assert_msg(h.status == 200, "%d %s", h.status, h.body);
    sl_test_http_free(&h);
    r = sl_test_cmd(rc, "XREVRANGE orders + - COUNT 1");
    ck_assert_str_eq(sl_test_kv(r->element[0]->element[1], "data")->str, "{\"fixed\":1}");
    ck_assert_str_eq(sl_test_kv(r->element[0]->element[1], "type")->str, "order.created");
    freeReplyObject(r);
    ck_assert_int_eq(sl_test_int(rc, "XLEN orders:dead"), 0);
    /* Replay of one that is gone: 404. */
    h = req(&w, "POST", "/api/dead/replay", hdr, body);
    ck_assert_int_eq(h.status, 404);
    sl_test_http_free(&h);
    /* Purge by ID, then by code (in bounded steps, to the end). */
    seed_dead(3, "invalid_json", "a");
    seed_dead(2500, "unknown_type", "b");
    snprintf(body, sizeof(body), "{\"stream\":\"orders\",\"id\":\"%s\"}", first_dead());
    h = req(&w, "POST", "/api/dead/purge", hdr, body);
    ck_assert_int_eq(h.status, 200);
    ck_assert(strstr(h.body, "\"purged\":1") != NULL);
    sl_test_http_free(&h);
    {
        char cursor[64] = "", until[64] = "";
        long long purged = 0;
        int steps = 0;
        for (;;) {
            json_t *j;
            snprintf(body, sizeof(body), "{\"stream\":\"orders\",\"code\":\"unknown_type\",\"cursor\":\"%s\",\"until\":\"%s\"}",
                     cursor, until);
            h = req(&w, "POST", "/api/dead/purge", hdr, body);
            ck_assert_msg(h.status == 200, "%d %s", h.status, h.body);
            j = parse_json(h.body);
            sl_test_http_free(&h);
            purged += jint(j, "purged");
            steps++;
            snprintf(cursor, sizeof(cursor), "%s", jstr(j, "cursor"));
            snprintf(until, sizeof(until), "%s", jstr(j, "until"));
            if (json_is_true(json_object_get(j, "done"))) {
                json_decref(j);
                break;
            }
            json_decref(j);
            ck_assert_int_lt(steps, 10);
        }
        ck_assert_int_eq(purged, 2500);
        ck_assert_int_ge(steps, 2);           /* 2000 entries read per step at most */
    }
    ck_assert_int_eq(sl_test_int(rc, "XLEN orders:dead"), 2);
    /* A stream the dashboard does not show: never written. */
    freeReplyObject(sl_test_cmd(rc, "XADD other:dead * error x data y"));
    snprintf(body, sizeof(body), "{\"stream\":\"other\",\"code\":\"x\"}");
    h = req(&w, "POST", "/api/dead/purge", hdr, body);
    ck_assert_int_eq(h.status, 404);
    sl_test_http_free(&h);
    ck_assert_int_eq(sl_test_int(rc, "XLEN other:dead"), 1);
}
END_TEST

START_TEST(test_web_site_token)
{
    struct web w;
    struct sl_test_http h;
    /* base64("anyone:s3cret-token") */
    const char *basic = "Authorization: Basic YW55b25lOnMzY3JldC10b2tlbg==\r\n";

    setenv("SLUICE_WEB_TOKEN", "s3cret-token", 1);
    web_start(&w, NULL);
    unsetenv("SLUICE_WEB_TOKEN");
    h = req(&w, "GET", "/api/overview", NULL, NULL);
    ck_assert_int_eq(h.status, 401);
    ck_assert(has_header(&h, "WWW-Authenticate: Basic realm=\"sluice\""));
    sl_test_http_free(&h);
    h = req(&w, "GET", "/", "Authorization: Bearer s3cret-tokeN\r\n", NULL);
    ck_assert_int_eq(h.status, 401);
    sl_test_http_free(&h);
    h = req(&w, "GET", "/", "Authorization: Bearer s3cret-token-longer\r\n", NULL);
    ck_assert_int_eq(h.status, 401);
    sl_test_http_free(&h);
    h = req(&w, "GET", "/api/info", "Authorization: Bearer s3cret-token\r\n", NULL);
    ck_assert_int_eq(h.status, 200);
    sl_test_http_free(&h);
    h = req(&w, "GET", "/", basic, NULL);
    ck_assert_int_eq(h.status, 200);
    sl_test_http_free(&h);
}
END_TEST

START_TEST(test_web_oversized_requests)
{
    struct web w;
    const char *extra[] = { "--allow-writes", NULL };
    struct sl_test_http h;
    char *big, hdr[256];
    size_t n = 70000;

    web_start(&w, extra);
    read_csrf(&w);
    big = malloc(n + 64);
    ck_assert_ptr_nonnull(big);
    /* A body over 64 KB: 413, never read into memory whole. */
    snprintf(big, n + 64, "{\"stream\":\"orders\",\"id\":\"1-1\",\"data\":\"");
    memset(big + strlen(big), 'a', n - strlen(big));
    snprintf(big + n, 64, "\"}");
    snprintf(hdr, sizeof(hdr), "Sec-Fetch-Site: same-origin\r\nX-Sluice-Token: %s\r\n", w.csrf);
    h = req(&w, "POST", "/api/dead/replay", hdr, big);
    ck_assert_msg(h.status == 413 || h.status == -1, "status %d", h.status);
    sl_test_http_free(&h);
    /* Headers over 8 KB: refused. */
    memset(big, 'b', 9000);
    memcpy(big, "X-Big: ", 7);
    memcpy(big + 8998, "\r\n", 3);
    h = req(&w, "GET", "/api/info", big, NULL);
    ck_assert_msg(h.status == 400 || h.status == 413 || h.status == 431 || h.status == -1,
                  "status %d", h.status);
    sl_test_http_free(&h);
    free(big);
    /* Not JSON: 400. */
    h = req(&w, "POST", "/api/dead/replay", hdr, "not json");
    ck_assert_int_eq(h.status, 400);
    sl_test_http_free(&h);
    /* Still serving. */
    json_decref(get_json(&w, "/api/info", 200));
}
END_TEST

/* ---------------------------------------------------------------------
 * On the pool's listener
 * ------------------------------------------------------------------ */

/* Starts a pool of `workers` (extra tunables `extra`, see write_config)
 * with metrics on a free port and metrics.dashboard set to `dash` (not
 * written at all when -1: the default). */
static void dash_pool_of(struct pool *p, int dash, const char *workers, const char *extra)
{
    char *text, *at;
    FILE *f;
    int rv;

    memset(p, 0, sizeof(*p));
    write_config(p->cfg, sizeof(p->cfg), "pool", workers, extra, 1);
    if (dash >= 0) {
        text = sl_test_read_file(p->cfg);
        ck_assert_ptr_nonnull(text);
        at = strstr(text, "\"listen\": \"127.0.0.1:0\"}");
        ck_assert_ptr_nonnull(at);
        f = fopen(p->cfg, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "%.*s\"listen\": \"127.0.0.1:0\", \"dashboard\": %s}%s", (int)(at - text), text,
                dash ? "true" : "false", at + strlen("\"listen\": \"127.0.0.1:0\"}"));
        fclose(f);
        free(text);
    }
    snprintf(p->log, sizeof(p->log), "%s/pool.log", tmp);
    p->pid = sl_test_pool_spawn(p->cfg, p->log);
    ck_assert_int_gt(p->pid, 0);
    track(p->pid);
    rv = sl_test_pool_wait_running(p->pid, p->log, 1, 10000);
    ck_assert_msg(rv == 0, "pool not running; see %s", p->log);
    p->port = (int)file_last_number(p->log, "event=metrics_listening addr=127.0.0.1:");
    ck_assert_int_gt(p->port, 0);
}

/* Starts a pool of one noop worker on orders/g1 (see dash_pool_of). */
static void dash_pool(struct pool *p, int dash)
{
    dash_pool_of(p, dash, "{\"handler\": \"noop\", \"stream\": \"orders\", \"group\": \"g1\"}", "");
}

/* The workers page says what a worker has in hand: a probe handler
 * sleeping on one entry shows busy, with that entry's ID and an age that
 * grows, in /api/workers and in `sluice workers` (text and --json); once
 * the entry is done the worker's own beat says idle again. At the default
 * heartbeat (1 s). */
START_TEST(test_web_workers_busy_entry)
{
    struct pool p;
    struct web w;
    json_t *doc = NULL, *o = NULL;
    long long dl, age1;
    char id[64];
    const char *argv[6];
    struct out out;
    redisReply *r;

    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE orders g1 $ MKSTREAM"));
    dash_pool_of(&p, 1, "{\"handler\": \"probe\", \"stream\": \"orders\", \"group\": \"g1\"}",
                 ", \"heartbeat_ms\": 1000, \"block_ms\": 2000");
    memset(&w, 0, sizeof(w));
    w.port = p.port;
    /* Idle first: the worker's own beat. */
    dl = sl_test_deadline(10000);
    for (;;) {
        doc = get_json(&w, "/api/workers", 200);
        if (json_array_size(doc) == 1)
            break;
        json_decref(doc);
        ck_assert_msg(sl_test_tick(dl), "the pool's worker is not listed");
    }
    o = json_array_get(doc, 0);
    ck_assert(json_is_false(json_object_get(o, "busy")));
    ck_assert(json_is_null(json_object_get(o, "entry")));
    ck_assert(json_is_null(json_object_get(o, "entry_age_ms")));
    json_decref(doc);
    r = sl_test_cmd(rc, "XADD orders * type t data {\"sleep_ms\":%d}", 6000 * sl_test_slow_factor());
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    snprintf(id, sizeof(id), "%s", r->str);
    freeReplyObject(r);
    /* Busy, with that entry, from the supervisor's beat for the child. */
    dl = sl_test_deadline(5000);
    for (;;) {
        doc = get_json(&w, "/api/workers", 200);
        o = json_array_get(doc, 0);
        if (o != NULL && json_is_true(json_object_get(o, "busy")))
            break;
        json_decref(doc);
        ck_assert_msg(sl_test_tick(dl), "the worker never showed busy");
    }
    ck_assert_str_eq(jstr(o, "entry"), id);
    ck_assert(json_is_integer(json_object_get(o, "entry_age_ms")));
    age1 = jint(o, "entry_age_ms");
    ck_assert_int_ge(age1, 0);
    json_decref(doc);
    /* The age grows with the next beat (one a second). */
    dl = sl_test_deadline(5000);
    for (;;) {
        doc = get_json(&w, "/api/workers", 200);
        o = json_array_get(doc, 0);
        if (o != NULL && json_is_true(json_object_get(o, "busy")) &&
            jint(o, "entry_age_ms") >= age1 + 900)
            break;
        ck_assert_msg(o == NULL || json_is_true(json_object_get(o, "busy")),
                      "the worker went idle before its sleep was over");
        json_decref(doc);
        ck_assert_msg(sl_test_tick(dl), "the entry's age did not grow");
    }
    ck_assert_str_eq(jstr(o, "entry"), id);
    json_decref(doc);
    /* `sluice workers` says the same. */
    argv[0] = sl_test_bin();
    argv[1] = "workers";
    argv[2] = "--redis";
    argv[3] = srv.url;
    argv[4] = NULL;
    out = run(argv);
    ck_assert_int_eq(out.code, 0);
    ck_assert_msg(strstr(out.out, "STATE") && strstr(out.out, "ENTRY_MS") &&
                  strstr(out.out, " busy ") && strstr(out.out, id), "sluice workers: %s", out.out);
    out_free(&out);
    argv[4] = "--json";
    argv[5] = NULL;
    out = run(argv);
    ck_assert_int_eq(out.code, 0);
    doc = parse_json(out.out);
    out_free(&out);
    o = json_array_get(doc, 0);
    ck_assert_ptr_nonnull(o);
    ck_assert(json_is_true(json_object_get(o, "busy")));
    ck_assert_str_eq(jstr(o, "entry"), id);
    ck_assert(json_is_integer(json_object_get(o, "entry_age_ms")));
    json_decref(doc);
    /* Done: idle again at the worker's next own beat. */
    dl = sl_test_deadline(20000);
    for (;;) {
        doc = get_json(&w, "/api/workers", 200);
        o = json_array_get(doc, 0);
        if (o != NULL && json_is_false(json_object_get(o, "busy")))
            break;
        json_decref(doc);
        ck_assert_msg(sl_test_tick(dl), "the worker never went idle again");
    }
    ck_assert(json_is_null(json_object_get(o, "entry")));
    json_decref(doc);
    /* Its ack went out before that beat, on the same connection. */
    r = sl_test_cmd(rc, "XPENDING orders g1");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->element[0]->integer, 0);
    freeReplyObject(r);
    pool_stop(&p);
}
END_TEST

/* On the pool's listener, the overview's dead letters by code are the
 * pool snapshot's complete tallies (those of /metrics): 300 of one code
 * then 150 of another, more than the latest 100. */
START_TEST(test_web_on_pool_dead_codes_complete)
{
    struct pool p;
    struct web w;
    json_t *doc, *r = NULL, *codes;
    long long dl;

    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE orders g1 $ MKSTREAM"));
    seed_dead(300, "invalid_json", "x");
    seed_dead(150, "handler_dead", "y");
    dash_pool(&p, 1);
    memset(&w, 0, sizeof(w));
    w.port = p.port;
    dl = sl_test_deadline(10000);
    for (;;) {
        doc = get_json(&w, "/api/overview", 200);
        r = row_of(doc, "orders", "g1");
        if (r != NULL && json_is_true(json_object_get(r, "dead_codes_complete")))
            break;
        json_decref(doc);
        ck_assert_msg(sl_test_tick(dl), "the dead-letter count never completed");
        usleep(200000);
    }
    codes = json_object_get(r, "dead_codes");
    ck_assert_int_eq(jint(r, "dead"), 450);
    ck_assert_int_eq(jint(codes, "invalid_json"), 300);
    ck_assert_int_eq(jint(codes, "handler_dead"), 150);
    ck_assert_int_eq((int)json_object_size(codes), 2);
    json_decref(doc);
    pool_stop(&p);
}
END_TEST

START_TEST(test_web_on_pool_read_only)
{
    struct pool p;
    struct web w;
    json_t *doc, *r;
    struct sl_test_http h;

    seed_overview();
    dash_pool(&p, 1);
    memset(&w, 0, sizeof(w));
    w.port = p.port;
    read_csrf(&w);
    doc = get_json(&w, "/api/info", 200);
    ck_assert_str_eq(jstr(doc, "mode"), "pool");
    ck_assert(json_is_false(json_object_get(doc, "allow_writes")));
    json_decref(doc);
    doc = get_json(&w, "/api/overview", 200);
    r = row_of(doc, "orders", "g1");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(jint(r, "dead"), 1);
    ck_assert_double_eq_tol(jnum(r, "lambda"), 1.0, 1e-9);
    json_decref(doc);
    /* The pool's own worker shows in the workers list. */
    {
        long long dl = sl_test_deadline(10000);
        for (;;) {
            doc = get_json(&w, "/api/workers", 200);
            if (json_array_size(doc) == 1)
                break;
            json_decref(doc);
            ck_assert_msg(sl_test_tick(dl), "the pool's worker is not listed");
        }
        ck_assert_str_eq(jstr(json_array_get(doc, 0), "handler"), "noop");
        json_decref(doc);
    }
    /* Writes never: even with the page's token. */
    {
        char hdr[200];
        snprintf(hdr, sizeof(hdr), "Sec-Fetch-Site: same-origin\r\nX-Sluice-Token: %s\r\n", w.csrf);
        h = req(&w, "POST", "/api/dead/purge", hdr, "{\"stream\":\"orders\",\"code\":\"invalid_json\"}");
    }
    ck_assert_int_eq(h.status, 403);
    sl_test_http_free(&h);
    ck_assert_int_eq(sl_test_int(rc, "XLEN orders:dead"), 1);
    /* Per-request Redis reads are not the supervisor's job. */
    json_decref(get_json(&w, "/api/dead?stream=orders", 404));
    /* /metrics still works beside it. */
    h = req(&w, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(h.status, 200);
    sl_test_http_free(&h);
    pool_stop(&p);
}
END_TEST

/* A reload replaces the pool's configuration: the pages follow the new
 * one (its streams), and never read the old one after it is freed. */
START_TEST(test_web_on_pool_follows_reload)
{
    struct pool p;
    struct web w;
    char *text, *at;
    FILE *f;
    long long dl;
    json_t *doc;

    dash_pool(&p, 1);
    memset(&w, 0, sizeof(w));
    w.port = p.port;
    json_decref(get_json(&w, "/api/overview", 200));
    text = sl_test_read_file(p.cfg);
    ck_assert_ptr_nonnull(text);
    at = strstr(text, "{\"handler\": \"noop\", \"stream\": \"orders\", \"group\": \"g1\"}");
    ck_assert_ptr_nonnull(at);
    at += strlen("{\"handler\": \"noop\", \"stream\": \"orders\", \"group\": \"g1\"}");
    f = fopen(p.cfg, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%.*s, {\"handler\": \"noop\", \"stream\": \"more\", \"group\": \"mg\"}%s",
            (int)(at - text), text, at);
    fclose(f);
    free(text);
    sl_test_kill(p.pid, SIGHUP);
    dl = sl_test_deadline(20000);
    for (;;) {
        doc = get_json(&w, "/api/info", 200);
        if (json_array_size(json_object_get(doc, "streams")) == 2)
            break;
        json_decref(doc);
        ck_assert_msg(sl_test_tick(dl), "the pages do not show the reloaded streams; see %s", p.log);
    }
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(doc, "streams"), 1)), "more");
    json_decref(doc);
    dl = sl_test_deadline(20000);
    for (;;) {
        doc = get_json(&w, "/api/overview", 200);
        if (row_of(doc, "more", "mg") != NULL)
            break;
        json_decref(doc);
        ck_assert_msg(sl_test_tick(dl), "the overview does not show the reloaded stream");
    }
    json_decref(doc);
    pool_stop(&p);
}
END_TEST

START_TEST(test_web_on_pool_off_by_default)
{
    struct pool p;
    struct web w;
    struct sl_test_http h;

    dash_pool(&p, -1);
    memset(&w, 0, sizeof(w));
    w.port = p.port;
    h = req(&w, "GET", "/", NULL, NULL);
    ck_assert_int_eq(h.status, 404);
    sl_test_http_free(&h);
    h = req(&w, "GET", "/api/overview", NULL, NULL);
    ck_assert_int_eq(h.status, 404);
    sl_test_http_free(&h);
    pool_stop(&p);
}
END_TEST

Suite *web_suite(void)
{
    Suite *s = suite_create("web");
    TCase *reads = tcase_create("reads");
    TCase *writes = tcase_create("writes");
    TCase *pool = tcase_create("pool");

    tcase_add_unchecked_fixture(reads, server_up, server_down);
    tcase_add_checked_fixture(reads, test_up, test_down);
    tcase_set_timeout(reads, 90);
    tcase_add_test(reads, test_web_overview_shape);
    tcase_add_test(reads, test_web_overview_many_streams);
    tcase_add_test(reads, test_web_overview_live_rates_and_workers);
    tcase_add_test(reads, test_web_overview_dead_letters_rising);
    tcase_add_test(reads, test_web_dead_codes_complete);
    tcase_add_test(reads, test_web_dead_codes_first_read);
    tcase_add_test(reads, test_web_group);
    tcase_add_test(reads, test_web_dead_paging);
    tcase_add_test(reads, test_web_static_headers_and_size);
    suite_add_tcase(s, reads);

    tcase_add_unchecked_fixture(writes, server_up, server_down);
    tcase_add_checked_fixture(writes, test_up, test_down);
    tcase_set_timeout(writes, 90);
    tcase_add_test(writes, test_web_readonly_refuses_writes);
    tcase_add_test(writes, test_web_writes_checked);
    tcase_add_test(writes, test_web_site_token);
    tcase_add_test(writes, test_web_oversized_requests);
    suite_add_tcase(s, writes);

    tcase_add_unchecked_fixture(pool, server_up, server_down);
    tcase_add_checked_fixture(pool, test_up, test_down);
    tcase_set_timeout(pool, 90);
    tcase_add_test(pool, test_web_on_pool_read_only);
    tcase_add_test(pool, test_web_on_pool_follows_reload);
    tcase_add_test(pool, test_web_on_pool_off_by_default);
    tcase_add_test(pool, test_web_workers_busy_entry);
    tcase_add_test(pool, test_web_on_pool_dead_codes_complete);
    suite_add_tcase(s, pool);
    return s;
}
