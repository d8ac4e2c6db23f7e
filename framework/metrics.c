/* metrics.c -- the supervisor's HTTP endpoint (libevent evhttp):
 *   GET /metrics  Prometheus text format, summed over every child of a
 *                 worker from the shared slots, plus pending and lag read
 *                 from Redis at scrape time;
 *   GET /healthz  200 "ok" when every child is up and Redis answers,
 *                 503 and a one-line reason otherwise.
 *
 * Each worker entry of the configuration is one label set
 * {worker, stream, group}; entries that share all three are summed into
 * one, since the text format allows no duplicate series. A child counts
 * as up while its process runs: not when it has exited (or not yet been
 * restarted), and not while it is stopped (SIGSTOP, a debugger), since a
 * stopped process handles nothing however long it keeps its pid.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>
#include "internal.h"
#include "pool.h"

/* Upper bounds of the handler-duration histogram, in seconds. */
const double sl__hist_bounds[SL_HIST_N] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10
};

/* Names, help texts and kinds of the slot counters, in enum order. */
static const struct {
    const char *name;
    const char *help;
} counters[SL_NCOUNTERS] = {
    { "sluice_processed_total", "Entries whose fate was decided." },
    { "sluice_acked_total", "Entries acknowledged, with or without effects." },
    { "sluice_retried_total", "Failed attempts left pending for a retry." },
    { "sluice_dead_lettered_total", "Entries moved to the dead-letter stream." },
    { "sluice_failed_total", "Failed attempts (retried plus dead-lettered)." },
    { "sluice_reclaimed_total", "Entries reclaimed from other consumers." },
    { "sluice_deleted_total", "Pending entries whose data was trimmed or deleted." },
    { "sluice_effects_discarded_total", "Commits discarded by the ownership fence." },
    { "sluice_redis_reconnects_total", "Redis reconnections of worker processes." },
    { NULL, NULL },
};

/* Appends a label set for worker i. Quotes and backslashes in names are
 * escaped as the text format requires. */
static void labels(struct evbuffer *b, const struct sl_worker_conf *wc, const char *extra)
{
    const char *vals[3] = { wc->handler, wc->stream, wc->group };
    const char *keys[3] = { "worker", "stream", "group" };
    int i;

    evbuffer_add(b, "{", 1);
    for (i = 0; i < 3; i++) {
        const char *s;
        evbuffer_add_printf(b, "%s%s=\"", i ? "," : "", keys[i]);
        for (s = vals[i]; *s; s++) {
            if (*s == '"' || *s == '\\')
                evbuffer_add(b, "\\", 1);
            if (*s == '\n')
                evbuffer_add(b, "\\n", 2);
            else
                evbuffer_add(b, s, 1);
        }
        evbuffer_add(b, "\"", 1);
    }
    if (extra != NULL)
        evbuffer_add_printf(b, ",%s", extra);
    evbuffer_add(b, "}", 1);
}

/* Returns 1 when worker entries a and b have the same label set. */
static int same_labels(const struct sl_worker_conf *a, const struct sl_worker_conf *b)
{
    return strcmp(a->handler, b->handler) == 0 && strcmp(a->stream, b->stream) == 0 &&
           strcmp(a->group, b->group) == 0;
}

/* Returns 1 when worker entry w is the first one of its label set, so
 * each label set is listed once: two series with the same name and
 * labels would make the whole exposition invalid. */
static int first_of_labels(const struct sl_config *cfg, size_t w)
{
    size_t i;

    for (i = 0; i < w; i++)
        if (same_labels(&cfg->workers[i], &cfg->workers[w]))
            return 0;
    return 1;
}

/* Sums counter k (or histogram bucket k when hist) over the children of
 * every worker entry with wc's label set. */
static uint64_t sum(const struct sl_pool *p, const struct sl_worker_conf *wc, int k, int hist)
{
    uint64_t n = 0;
    size_t i;

    for (i = 0; i < p->nchildren; i++)
        if (same_labels(p->children[i].wc, wc))
            n += __atomic_load_n(hist ? &p->children[i].slot->hist[k]
                                      : &p->children[i].slot->counters[k], __ATOMIC_RELAXED) +
                 (hist ? p->children[i].carried_hist[k] : p->children[i].carried[k]);
    return n;
}

/* Returns why child ch is not up ("is down", "is stopped"), or NULL when
 * its process runs. A process whose state cannot be read counts as
 * running: only what is known to be wrong makes the pool unhealthy. */
static const char *child_down(const struct sl_child *ch)
{
    char st;

    if (ch->pid <= 0)
        return "is down";
    st = sl__proc_state((long)ch->pid);
    if (st == 'T' || st == 't')
        return "is stopped";
    if (st == 'Z' || st == 'X')
        return "is down";
    return NULL;
}

/* Reads pending and lag of wc's group from Redis into *pending and *lag,
 * -1 when unknown. *redis_ok starts at 1; once a call of this scrape has
 * found Redis unreachable it is 0 and no further call is made, so a
 * scrape during an outage waits for one timeout at most, not one per
 * worker. */
static void group_gauges(struct sl_pool *p, const struct sl_worker_conf *wc,
                         long long *pending, long long *lag, int *redis_ok)
{
    const char *argv[] = { "XINFO", "GROUPS", wc->stream };
    redisReply *r;
    size_t i, j;

    *pending = *lag = -1;
    if (!*redis_ok)
        return;
    r = sl__pool_cmd(p, 3, argv);
    if (r == NULL)
        *redis_ok = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return;
    }
    for (i = 0; i < r->elements; i++) {
        const redisReply *g = r->element[i];
        int mine = 0;
        long long pe = -1, la = -1;
        if (g->type != REDIS_REPLY_ARRAY)
            continue;
        for (j = 0; j + 1 < g->elements; j += 2) {
            const redisReply *k = g->element[j], *v = g->element[j + 1];
            if (k->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(k->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
                mine = strcmp(v->str, wc->group) == 0;
            else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                pe = v->integer;
            else if (strcmp(k->str, "lag") == 0 && v->type == REDIS_REPLY_INTEGER)
                la = v->integer;
        }
        if (mine) {
            *pending = pe;
            *lag = la;
        }
    }
    freeReplyObject(r);
}

/* Appends one gauge family (HELP, TYPE, then one sample per label set
 * whose value is known, >= 0). vals holds a value per worker entry. */
static void gauge_family(struct evbuffer *b, const struct sl_config *cfg, const char *name,
                         const char *help, const long long *vals)
{
    size_t w;

    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    for (w = 0; w < cfg->nworkers; w++) {
        if (!first_of_labels(cfg, w) || vals[w] < 0)
            continue;
        evbuffer_add_printf(b, "%s", name);
        labels(b, &cfg->workers[w], NULL);
        evbuffer_add_printf(b, " %lld\n", vals[w]);
    }
}

/* GET /metrics. Every family is written as one block (HELP, TYPE, its
 * samples), as the text format requires. */
static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct sl_pool *p = arg;
    const struct sl_config *cfg = p->cfg;
    struct evbuffer *b = evbuffer_new();
    long long *vals = calloc(3 * cfg->nworkers + 1, sizeof(*vals));
    long long *up, *pending, *lag;    /* per worker entry, in vals */
    int redis_ok = 1;
    size_t w, i;
    int k;

    if (b == NULL || vals == NULL) {
        if (b != NULL)
            evbuffer_free(b);
        free(vals);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    up = vals;
    pending = vals + cfg->nworkers;
    lag = vals + 2 * cfg->nworkers;
    for (k = 0; counters[k].name != NULL; k++) {
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s counter\n", counters[k].name,
                            counters[k].help, counters[k].name);
        for (w = 0; w < cfg->nworkers; w++) {
            if (!first_of_labels(cfg, w))
                continue;
            evbuffer_add_printf(b, "%s", counters[k].name);
            labels(b, &cfg->workers[w], NULL);
            evbuffer_add_printf(b, " %llu\n", (unsigned long long)sum(p, &cfg->workers[w], k, 0));
        }
    }
    evbuffer_add_printf(b, "# HELP sluice_handler_duration_seconds Time spent in handle().\n"
                           "# TYPE sluice_handler_duration_seconds histogram\n");
    for (w = 0; w < cfg->nworkers; w++) {
        const struct sl_worker_conf *wc = &cfg->workers[w];
        uint64_t cum = 0;
        char le[48];
        if (!first_of_labels(cfg, w))
            continue;
        for (i = 0; i <= SL_HIST_N; i++) {
            cum += sum(p, wc, (int)i, 1);
            if (i < SL_HIST_N)
                snprintf(le, sizeof(le), "le=\"%g\"", sl__hist_bounds[i]);
            else
                snprintf(le, sizeof(le), "le=\"+Inf\"");
            evbuffer_add_printf(b, "sluice_handler_duration_seconds_bucket");
            labels(b, wc, le);
            evbuffer_add_printf(b, " %llu\n", (unsigned long long)cum);
        }
        evbuffer_add_printf(b, "sluice_handler_duration_seconds_sum");
        labels(b, wc, NULL);
        evbuffer_add_printf(b, " %.6f\n", (double)sum(p, wc, SL_C_HANDLER_US, 0) / 1e6);
        evbuffer_add_printf(b, "sluice_handler_duration_seconds_count");
        labels(b, wc, NULL);
        evbuffer_add_printf(b, " %llu\n", (unsigned long long)cum);
    }
    for (w = 0; w < cfg->nworkers; w++) {
        for (i = 0; i < p->nchildren; i++)
            up[w] += same_labels(p->children[i].wc, &cfg->workers[w]) &&
                     child_down(&p->children[i]) == NULL;
        if (first_of_labels(cfg, w))
            group_gauges(p, &cfg->workers[w], &pending[w], &lag[w], &redis_ok);
    }
    gauge_family(b, cfg, "sluice_children_up", "Worker processes running (not exited, not stopped).", up);
    gauge_family(b, cfg, "sluice_pending", "Entries delivered to the group and not yet acknowledged.",
                 pending);
    gauge_family(b, cfg, "sluice_lag", "Entries not yet delivered to the group.", lag);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
    free(vals);
}

/* GET /healthz: 200 "ok" when the pool runs, every child is up and
 * connected, and Redis answers the supervisor's PING; else 503 with the
 * first reason found. */
static void on_healthz(struct evhttp_request *req, void *arg)
{
    struct sl_pool *p = arg;
    struct evbuffer *b = evbuffer_new();
    const char *ping[] = { "PING" };
    const char *why;
    redisReply *r;
    size_t i;
    int code = 200;

    if (b == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    if (p->stopping) {
        evbuffer_add_printf(b, "pool is stopping\n");
        code = 503;
    } else if (!p->started) {
        evbuffer_add_printf(b, "pool has not started its children yet\n");
        code = 503;
    }
    for (i = 0; i < p->nchildren && code == 200; i++) {
        if ((why = child_down(&p->children[i])) != NULL) {
            evbuffer_add_printf(b, "child %s %s\n", p->children[i].consumer, why);
            code = 503;
        } else if (!__atomic_load_n(&p->children[i].slot->redis_up, __ATOMIC_RELAXED)) {
            evbuffer_add_printf(b, "child %s is not connected to redis\n", p->children[i].consumer);
            code = 503;
        }
    }
    if (code == 200) {
        r = sl__pool_cmd(p, 1, ping);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            evbuffer_add_printf(b, "redis does not answer: %s\n",
                                r ? r->str : "unreachable");
            code = 503;
        }
        freeReplyObject(r);
    }
    if (code == 200)
        evbuffer_add_printf(b, "ok\n");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Service Unavailable", b);
    evbuffer_free(b);
}

/* Starts the HTTP server on cfg->metrics_listen ("host:port"); port 0
 * picks a free one, logged as metrics_listening. Returns 0 (also when
 * disabled) or -1 when the address cannot be bound. */
int sl__metrics_start(struct sl_pool *p)
{
    const char *listen = p->cfg->metrics_listen;
    char host[256];
    const char *colon;
    struct evhttp_bound_socket *s;
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof(ss);
    int port;

    if (listen == NULL || *listen == '\0')
        return 0;
    colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen || (size_t)(colon - listen) >= sizeof(host)) {
        fprintf(stderr, "sluice: metrics.listen \"%s\": expected host:port\n", listen);
        return -1;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = atoi(colon + 1);
    p->http = evhttp_new(p->base);
    if (p->http == NULL)
        return -1;
    evhttp_set_cb(p->http, "/metrics", on_metrics, p);
    evhttp_set_cb(p->http, "/healthz", on_healthz, p);
    s = evhttp_bind_socket_with_handle(p->http, host, (ev_uint16_t)port);
    if (s == NULL) {
        fprintf(stderr, "sluice: metrics.listen \"%s\": cannot listen there\n", listen);
        evhttp_free(p->http);
        p->http = NULL;
        return -1;
    }
    p->http_fd = evhttp_bound_socket_get_fd(s);
    if (getsockname(p->http_fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    sl__log(SL_LOG_INFO, "metrics_listening", "addr=%s:%d", host, port);
    return 0;
}

/* Stops the HTTP server. */
void sl__metrics_stop(struct sl_pool *p)
{
    if (p->http != NULL)
        evhttp_free(p->http);
    p->http = NULL;
}
