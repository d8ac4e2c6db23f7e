/* metrics.c -- the supervisor's HTTP endpoint (libevent evhttp):
 *   GET /metrics  Prometheus text format, summed over every child of a
 *                 worker from the shared slots, plus pending and lag;
 *   GET /healthz  200 "ok" when every child is up and Redis answers,
 *                 503 and a one-line reason otherwise.
 *
 * This file never talks to Redis. What a reply needs from Redis (a PING,
 * each group's pending and lag) is the supervisor's snapshot (snapshot.c):
 * a request waits in its connection's record until the supervisor's next
 * tick (TICK_MS) takes a snapshot and calls sl__metrics_answer(), so every
 * answer is as fresh as the request, and one snapshot serves every
 * request that came meanwhile.
 *
 * Each worker entry of the configuration is one label set
 * {worker, stream, group}; entries that share all three are summed into
 * one, since the text format allows no duplicate series. A child counts
 * as up while its process runs: not when it has exited (or not yet been
 * restarted), and not while it is stopped (SIGSTOP, a debugger), since a
 * stopped process handles nothing however long it keeps its pid.
 *
 * The listener faces whatever can reach its port, so it is bounded in
 * every resource a client controls (libevent 2.1's evhttp bounds none by
 * default):
 *   - at most HTTP_MAX_CONNS connections; one more closes the oldest, so
 *     a probe of /healthz still gets through while idle or slow clients
 *     hold every slot (nginx drains its oldest idle connections the same
 *     way when it runs out);
 *   - HTTP_REQUEST_MS to deliver each request, from the connection's
 *     opening or its previous request, however slowly the bytes trickle
 *     (a header timeout, which evhttp's per-read timeout is not), and
 *     HTTP_IO_TIMEOUT_S without any byte read or written;
 *   - HTTP_MAX_HEADERS bytes of request line and headers, HTTP_MAX_BODY of
 *     body: 413 or a closed connection beyond, never a buffer that grows;
 *   - GET and HEAD only: 405 with an Allow header otherwise;
 *   - when accept() fails (no descriptor left: EMFILE, ENFILE), the
 *     listener pauses for HTTP_ACCEPT_PAUSE_MS instead of retrying at
 *     once (the pending connection keeps the socket readable, so the
 *     loop would spin), and logs once per doubling of the failures;
 *   - a forked child closes every socket of the listener's port, accepted
 *     connections included, since it never serves HTTP and a descriptor
 *     it kept would hold the connection open and count against its own
 *     descriptor limit.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>
#include "internal.h"
#include "pool.h"
#include "web.h"

#define HTTP_MAX_CONNS 64         /* open connections at most */
#define HTTP_REQUEST_MS 10000     /* to deliver each request (header timeout, idle timeout) */
#define HTTP_IO_TIMEOUT_S 10      /* without a byte read or written */
#define HTTP_MAX_HEADERS 8192     /* bytes of request line and headers */
#define HTTP_MAX_BODY 4096        /* bytes of request body */
#define HTTP_ACCEPT_PAUSE_MS 500  /* listener pause after accept() ran out of descriptors */
#define HTTP_SWEEP_MS 250         /* period of the request-deadline check */

#define WAIT_METRICS 1            /* a GET /metrics waits for the snapshot */
#define WAIT_HEALTHZ 2            /* a GET /healthz waits for the snapshot */
#define WAIT_WEB 3                /* a dashboard request waits for the snapshot (web.c) */

/* One accepted connection. evhttp owns the connection; this record
 * follows it from evhttp's bufferevent factory (on_new_conn), the only
 * per-connection hook of libevent 2.1's server, to the connection's close
 * callback (on_conn_close), which is set once evhttp has built the
 * connection: until then the record is pending and holds a reference on
 * the bufferevent, so that it outlives a connection evhttp fails to set
 * up and frees at once. */
struct http_conn {
    struct sl_http *h;            /* listener state */
    struct bufferevent *bev;      /* evhttp's bufferevent (one reference ours while pending) */
    struct evhttp_connection *evcon; /* evhttp's connection, NULL while pending */
    uint64_t since_ms;            /* opened or last request dispatched (monotonic ms) */
    struct evhttp_request *waiting; /* a request waiting for the next snapshot (evhttp's), or NULL */
    int waiting_kind;             /* WAIT_METRICS or WAIT_HEALTHZ */
    struct http_conn *prev, *next; /* in h's list, oldest first */
};

/* The listener's state, beside the evhttp it drives. */
struct sl_http {
    struct sl_pool *p;
    struct evconnlistener *lev;   /* evhttp's listener (evhttp's) */
    struct event *resume_ev;      /* re-enables lev after an accept pause */
    struct event *sweep_ev;       /* closes connections past their request deadline */
    struct event *resolve_ev;     /* resolves pending records after an accept */
    struct http_conn *head, *tail; /* open connections, oldest first */
    int nconns;                   /* records in the list */
    int family;                   /* AF_INET or AF_INET6 of the listener */
    int port;                     /* its port */
    unsigned long accept_fails;   /* accept() failures in the current burst */
    unsigned long evictions;      /* connections closed by the cap in all */
    struct http_conn *closing;    /* record conn_close is closing, until its callback */
};

/* The state of the one listener of this process (the supervisor's): the
 * listener's error callback receives evhttp's argument, not ours, since
 * evhttp sets the listener's callback argument to itself. */
static struct sl_http *the_http;

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
    { "sluice_wait_total", "WAITs for replicas sent after a batch's commits (wait_replicas)." },
    { "sluice_wait_short_total", "WAITs answered by fewer replicas than wait_replicas asked for." },
};

/* Appends the label value s, quoted, with quotes, backslashes and
 * newlines escaped as the text format requires. */
static void label_value(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            evbuffer_add(b, "\\", 1);
        if (*s == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
}

/* Appends a label set for worker i. */
static void labels(struct evbuffer *b, const struct sl_worker_conf *wc, const char *extra)
{
    const char *vals[3] = { wc->handler, wc->stream, wc->group };
    const char *keys[3] = { "worker", "stream", "group" };
    int i;

    evbuffer_add(b, "{", 1);
    for (i = 0; i < 3; i++) {
        evbuffer_add_printf(b, "%s%s=", i ? "," : "", keys[i]);
        label_value(b, vals[i]);
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
            n += sl__slot_counter(p->children[i].slot, k, hist) +
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

/* ------------------------------------------------------------------ */
/* Connections: cap, deadlines, accept errors                          */
/* ------------------------------------------------------------------ */

/* Returns 1 when n is a power of two: logging on those counts gives one
 * line per doubling of a repeated failure. */
static int doubling(unsigned long n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

/* Removes c from the list and frees it. */
static void conn_forget(struct sl_http *h, struct http_conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        h->tail = c->prev;
    h->nconns--;
    free(c);
}

/* evhttp's close callback: the connection is going away, whoever closed
 * it (the client, a timeout, a reply with "Connection: close", or us). */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct http_conn *c = arg;

    (void)evcon;
    if (c->h->closing == c)
        c->h->closing = NULL;
    conn_forget(c->h, c);
}

/* Closes the resolved connection c now: evhttp frees it and its requests,
 * and its close callback forgets c (which is gone on return). Never
 * called from a callback of c's own connection: only from the accept of
 * another one and from the sweep timer. */
static void conn_close(struct sl_http *h, struct http_conn *c)
{
    h->closing = c;
    evhttp_connection_free(c->evcon);
    if (h->closing == c) {
        /* No close callback came (evhttp calls it only for a connection
         * it still counts as connected): forget c here. */
        h->closing = NULL;
        conn_forget(h, c);
    }
}

/* Completes every pending record: evhttp has built its connection by now
 * (it does so before accepting the next one), and passes the connection
 * as its bufferevent's callback argument. A bufferevent without
 * callbacks was freed by evhttp on a failure (bufferevent_free clears
 * them): its record goes, and with it the last reference. */
static void resolve_pending(struct sl_http *h)
{
    struct http_conn *c, *next;

    for (c = h->head; c != NULL; c = next) {
        bufferevent_data_cb rd = NULL;
        void *evcon = NULL;

        next = c->next;
        if (c->evcon != NULL)
            continue;
        bufferevent_getcb(c->bev, &rd, NULL, NULL, &evcon);
        if (rd != NULL && evcon != NULL) {
            c->evcon = evcon;
            evhttp_connection_set_closecb(c->evcon, on_conn_close, c);
        }
        bufferevent_decref(c->bev);
        if (c->evcon == NULL)
            conn_forget(h, c);
    }
}

/* Deferred after an accept: resolves the record of the last connection
 * accepted, which the next accept would otherwise resolve. */
static void on_resolve(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resolve_pending(arg);
}

/* evhttp's bufferevent factory, called once per accepted connection
 * before evhttp sets it up: this is where connections are counted. Makes
 * room under the cap by closing the oldest connections (their close
 * callback forgets them at once), and returns a socket bufferevent
 * (evhttp gives it the fd), or NULL when out of memory (evhttp then makes
 * its own, uncounted). */
static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
    struct sl_http *h = arg;
    struct http_conn *c;
    struct bufferevent *bev;

    if (h->accept_fails > 0) {
        sl__log(SL_LOG_INFO, "http_accept_resumed", "failures=%lu", h->accept_fails);
        h->accept_fails = 0;
    }
    resolve_pending(h);
    /* All but the one being accepted are resolved now: the oldest goes. */
    while (h->nconns >= HTTP_MAX_CONNS && h->head != NULL && h->head->evcon != NULL) {
        if (doubling(++h->evictions))
            sl__log(SL_LOG_WARN, "http_connection_limit", "max=%d closed_oldest=%lu",
                    HTTP_MAX_CONNS, h->evictions);
        conn_close(h, h->head);
    }
    c = calloc(1, sizeof(*c));
    bev = c != NULL ? bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (bev == NULL) {
        free(c);
        return NULL;
    }
    bufferevent_incref(bev);
    c->h = h;
    c->bev = bev;
    c->since_ms = sl__now_ms();
    c->prev = h->tail;
    if (h->tail != NULL)
        h->tail->next = c;
    else
        h->head = c;
    h->tail = c;
    h->nconns++;
    event_active(h->resolve_ev, EV_TIMEOUT, 0);
    return bev;
}

/* Marks the connection of req as having delivered a request now, which
 * starts its next request deadline (see web.h). */
void sl__http_seen(struct sl_http *h, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct http_conn *c;

    for (c = h->head; c != NULL && evcon != NULL; c = c->next)
        if (c->evcon == evcon) {
            c->since_ms = sl__now_ms();
            return;
        }
}

/* Timer: closes every connection that has not delivered a complete
 * request within HTTP_REQUEST_MS of its opening or its previous request,
 * idle or trickling. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct sl_http *h = arg;
    uint64_t now = sl__now_ms();
    struct http_conn *c, *next;

    (void)fd;
    (void)what;
    for (c = h->head; c != NULL; c = next) {
        next = c->next;
        if (c->evcon != NULL && now - c->since_ms > HTTP_REQUEST_MS) {
            sl__log(SL_LOG_DEBUG, "http_request_timeout", "open_ms=%llu",
                    (unsigned long long)(now - c->since_ms));
            conn_close(h, c);
        }
    }
}

/* The listener's error callback: accept() failed with something other
 * than "try again". libevent would log every failure and retry at once,
 * and since the connection that could not be taken keeps the socket
 * readable, a full descriptor table made the loop spin. The listener is
 * paused instead, and a burst of failures is logged once per doubling. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct sl_http *h = the_http;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = { 0, HTTP_ACCEPT_PAUSE_MS * 1000 };

    (void)arg;
    if (h == NULL)
        return;
    if (doubling(++h->accept_fails))
        sl__log(SL_LOG_WARN, "http_accept_failed", "error=%s failures=%lu pause_ms=%d",
                sl__logq(evutil_socket_error_to_string(err)), h->accept_fails,
                HTTP_ACCEPT_PAUSE_MS);
    if (evconnlistener_disable(lev) < 0 || evtimer_add(h->resume_ev, &tv) < 0)
        sl__log(SL_LOG_ERROR, "http_accept_pause_failed", NULL);
}

/* Timer: ends an accept pause. */
static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct sl_http *h = arg;

    (void)fd;
    (void)what;
    evconnlistener_enable(h->lev);
}

/* Sends req's reply with body b (borrowed, drained). A HEAD gets the
 * headers a GET would, Content-Length included, and no body: evhttp 2.1
 * would send the body after the headers of a HEAD reply, which the client
 * then reads as the start of its next response. */
void sl__http_send(struct evhttp_request *req, int code, const char *reason,
                   struct evbuffer *b)
{
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD && b != NULL) {
        char n[24];
        snprintf(n, sizeof(n), "%zu", evbuffer_get_length(b));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", n);
        evbuffer_drain(b, evbuffer_get_length(b));
    }
    evhttp_send_reply(req, code, reason, b);
}

/* Answers 405 with the methods allowed, and returns 1, unless req is a
 * GET or a HEAD (evhttp leaves out the body of a HEAD reply itself). The
 * request also counts as delivered for the connection's deadline. */
static int refuse_method(struct sl_pool *p, struct evhttp_request *req)
{
    struct evbuffer *b;

    sl__http_seen(p->http_state, req);
    if (evhttp_request_get_command(req) & (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD))
        return 0;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    b = evbuffer_new();
    if (b != NULL)
        evbuffer_add_printf(b, "method not allowed: GET or HEAD only\n");
    evhttp_send_reply(req, 405, "Method Not Allowed", b);
    if (b != NULL)
        evbuffer_free(b);
    return 1;
}

/* Appends the families about the pool and Redis as a whole, and those
 * of the snapshot that are not per worker entry: the oldest pending
 * entry's idle time per group, the dead letters per stream and code
 * (only for a stream whose count is complete: a partial count would look
 * like a drop), whether Redis answered, the build, and the reloads. */
static void pool_families(struct sl_pool *p, struct evbuffer *b)
{
    const struct sl_config *cfg = p->cfg;
    const struct sl_snapshot *snap = &p->snap;
    int known = snap->n == cfg->nworkers && snap->oldest_ms != NULL;
    size_t w, k, c;

    evbuffer_add_printf(b, "# HELP sluice_oldest_pending_age_seconds Age (since it was added) "
                        "of the group's oldest pending entry (0: none pending).\n"
                        "# TYPE sluice_oldest_pending_age_seconds gauge\n");
    for (w = 0; known && w < cfg->nworkers; w++) {
        if (!first_of_labels(cfg, w) || snap->oldest_ms[w] < 0)
            continue;
        evbuffer_add_printf(b, "sluice_oldest_pending_age_seconds");
        labels(b, &cfg->workers[w], NULL);
        evbuffer_add_printf(b, " %.3f\n", (double)snap->oldest_ms[w] / 1000.0);
    }
    evbuffer_add_printf(b, "# HELP sluice_dead_letters Dead letters in STREAM:dead, by error "
                        "code.\n# TYPE sluice_dead_letters gauge\n");
    for (k = 0; k < snap->ndead; k++) {
        const struct sl_dead_tally *t = &snap->dead[k];
        if (!t->in_sync)
            continue;
        for (c = 0; c < t->ncodes; c++) {
            if (t->codes[c].n <= 0)
                continue;
            evbuffer_add_printf(b, "sluice_dead_letters{stream=");
            label_value(b, t->stream);
            evbuffer_add_printf(b, ",code=");
            label_value(b, t->codes[c].code);
            evbuffer_add_printf(b, "} %lld\n", t->codes[c].n);
        }
    }
    evbuffer_add_printf(b, "# HELP sluice_redis_up Whether Redis answered the supervisor's "
                        "last PING.\n# TYPE sluice_redis_up gauge\nsluice_redis_up %d\n",
                        snap->redis_ok ? 1 : 0);
    evbuffer_add_printf(b, "# HELP sluice_build_info The sluice version and handler ABI of "
                        "this pool.\n# TYPE sluice_build_info gauge\n"
                        "sluice_build_info{version=\"%s\",abi=\"%d\"} 1\n",
                        SL_VERSION, SL_ABI_VERSION);
    evbuffer_add_printf(b, "# HELP sluice_reload_failures_total SIGHUP reloads refused (a bad "
                        "configuration, or a rolling restart still running).\n"
                        "# TYPE sluice_reload_failures_total counter\n"
                        "sluice_reload_failures_total %llu\n", p->reload_failures);
    evbuffer_add_printf(b, "# HELP sluice_last_reload_success_timestamp_seconds Unix time of "
                        "the start or of the last reload accepted.\n"
                        "# TYPE sluice_last_reload_success_timestamp_seconds gauge\n"
                        "sluice_last_reload_success_timestamp_seconds %.3f\n",
                        (double)p->last_reload_ms / 1000.0);
}

/* Answers GET /metrics: counters from the slots, pending and lag from the
 * snapshot (no sample when unknown). Every family is written as one block
 * (HELP, TYPE, its samples), as the text format requires. */
static void answer_metrics(struct sl_pool *p, struct evhttp_request *req)
{
    const struct sl_config *cfg = p->cfg;
    const struct sl_snapshot *snap = &p->snap;
    int known = snap->n == cfg->nworkers && snap->pending != NULL;
    struct evbuffer *b = evbuffer_new();
    long long *vals = calloc(3 * cfg->nworkers + 1, sizeof(*vals));
    long long *up, *pending, *lag;    /* per worker entry, in vals */
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
    for (k = 0; k < SL_NCOUNTERS; k++) {
        if (counters[k].name == NULL)
            continue;           /* handler time: the histogram's _sum below */
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
        pending[w] = known ? snap->pending[w] : -1;
        lag[w] = known ? snap->lag[w] : -1;
    }
    gauge_family(b, cfg, "sluice_children_up", "Worker processes running (not exited, not stopped).", up);
    gauge_family(b, cfg, "sluice_pending", "Entries delivered to the group and not yet acknowledged.",
                 pending);
    gauge_family(b, cfg, "sluice_lag", "Entries not yet delivered to the group.", lag);
    pool_families(p, b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    sl__http_send(req, 200, "OK", b);
    evbuffer_free(b);
    free(vals);
}

/* Answers GET /healthz: 200 "ok" when the pool runs, every child is up
 * and connected, and Redis answered the snapshot's PING; else 503 with
 * the first reason found. */
static void answer_healthz(struct sl_pool *p, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    const char *why;
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
        if (p->children[i].changing_hands)
            continue;           /* a reload is moving its name: not down */
        if ((why = child_down(&p->children[i])) != NULL) {
            evbuffer_add_printf(b, "child %s %s\n", p->children[i].consumer, why);
            code = 503;
        } else if (!sl__slot_redis_up(p->children[i].slot)) {
            evbuffer_add_printf(b, "child %s is not connected to redis\n", p->children[i].consumer);
            code = 503;
        }
    }
    if (code == 200 && !p->snap.redis_ok) {
        evbuffer_add_printf(b, "redis does not answer: %s\n", p->snap.redis_err);
        code = 503;
    }
    if (code == 200)
        evbuffer_add_printf(b, "ok\n");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    sl__http_send(req, code, code == 200 ? "OK" : "Service Unavailable", b);
    evbuffer_free(b);
}

/* Answers req (a WAIT_* kind) from the current snapshot. */
static void answer(struct sl_pool *p, struct evhttp_request *req, int kind)
{
    if (kind == WAIT_METRICS)
        answer_metrics(p, req);
    else if (kind == WAIT_WEB && p->web_answer != NULL)
        p->web_answer(p, req);   /* set by web.c, which calls metrics.c: no call back */
    else
        answer_healthz(p, req);
}

/* Makes req wait in its connection's record for the supervisor's next
 * snapshot. A request on a connection that has no record (evhttp made
 * its own when ours could not be allocated) or that already waits is
 * answered at once from the last snapshot. */
static void defer(struct sl_pool *p, struct evhttp_request *req, int kind)
{
    struct sl_http *h = p->http_state;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct http_conn *c;

    /* A record resolved now has its close callback set, which drops the
     * request if the connection goes away meanwhile. */
    resolve_pending(h);
    for (c = h->head; c != NULL && evcon != NULL; c = c->next)
        if (c->evcon == evcon && c->waiting == NULL) {
            c->waiting = req;
            c->waiting_kind = kind;
            p->snap.wanted = 1;
            return;
        }
    answer(p, req, kind);
}

/* A dashboard request (web.c) that needs the snapshot's documents: waits
 * for the next one like /metrics. */
void sl__metrics_defer_web(struct sl_pool *p, struct evhttp_request *req)
{
    p->snap.web_wanted = 1;
    defer(p, req, WAIT_WEB);
}

/* GET /metrics: waits for the snapshot. */
static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct sl_pool *p = arg;

    if (!refuse_method(p, req))
        defer(p, req, WAIT_METRICS);
}

/* GET /healthz: waits for the snapshot. */
static void on_healthz(struct evhttp_request *req, void *arg)
{
    struct sl_pool *p = arg;

    if (!refuse_method(p, req))
        defer(p, req, WAIT_HEALTHZ);
}

/* Answers every request waiting for a snapshot; the supervisor calls it
 * right after taking one. The requests are taken off their records
 * first: a reply may end its connection. */
void sl__metrics_answer(struct sl_pool *p)
{
    struct sl_http *h = p->http_state;
    struct evhttp_request *reqs[HTTP_MAX_CONNS + 1];
    int kinds[HTTP_MAX_CONNS + 1];
    struct http_conn *c;
    int n = 0, i;

    if (h == NULL)
        return;
    for (c = h->head; c != NULL && n < HTTP_MAX_CONNS + 1; c = c->next)
        if (c->waiting != NULL) {
            reqs[n] = c->waiting;
            kinds[n++] = c->waiting_kind;
            c->waiting = NULL;
        }
    for (i = 0; i < n; i++)
        answer(p, reqs[i], kinds[i]);
}


/* ------------------------------------------------------------------ */
/* Start, stop, fork                                                   */
/* ------------------------------------------------------------------ */

/* Applies the limits of the file comment to a new evhttp and creates the
 * state that enforces the rest (also for the dashboard's own listener,
 * see web.h). Returns the state (new: sl__http_limits_free), or NULL
 * when out of memory. */
struct sl_http *sl__http_limits_new(struct event_base *base, struct evhttp *http)
{
    struct sl_http *h = calloc(1, sizeof(*h));
    struct timeval sweep = { 0, HTTP_SWEEP_MS * 1000 };

    if (h == NULL)
        return NULL;
    h->resume_ev = evtimer_new(base, on_accept_resume, h);
    h->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, h);
    h->resolve_ev = event_new(base, -1, 0, on_resolve, h);
    if (h->resume_ev == NULL || h->sweep_ev == NULL || h->resolve_ev == NULL ||
        event_add(h->sweep_ev, &sweep) < 0) {
        if (h->resume_ev != NULL)
            event_free(h->resume_ev);
        if (h->sweep_ev != NULL)
            event_free(h->sweep_ev);
        if (h->resolve_ev != NULL)
            event_free(h->resolve_ev);
        free(h);
        return NULL;
    }
    /* Every method reaches the callbacks, which answer 405 to all but GET
     * and HEAD: a method evhttp refuses itself gets 501 Not Implemented,
     * which tells a client the server lacks the method altogether. */
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                               EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                               EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(http, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(http, HTTP_MAX_BODY);
    evhttp_set_timeout(http, HTTP_IO_TIMEOUT_S);
    evhttp_set_bevcb(http, on_new_conn, h);
    return h;
}

/* Frees the state. Called after evhttp_free, whose close callbacks have
 * emptied the list of resolved records; none is pending (see
 * sl__metrics_stop), but any left is freed. NULL is ignored. */
void sl__http_limits_free(struct sl_http *h)
{
    if (h == NULL)
        return;
    while (h->head != NULL)
        conn_forget(h, h->head);
    event_free(h->resume_ev);
    event_free(h->sweep_ev);
    event_free(h->resolve_ev);
    free(h);
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
    p->http_state = sl__http_limits_new(p->base, p->http);
    if (p->http_state == NULL) {
        fprintf(stderr, "sluice: metrics.listen \"%s\": out of memory\n", listen);
        evhttp_free(p->http);
        p->http = NULL;
        return -1;
    }
    evhttp_set_cb(p->http, "/metrics", on_metrics, p);
    evhttp_set_cb(p->http, "/healthz", on_healthz, p);
    s = evhttp_bind_socket_with_handle(p->http, host, (ev_uint16_t)port);
    if (s == NULL) {
        fprintf(stderr, "sluice: metrics.listen \"%s\": cannot listen there\n", listen);
        sl__metrics_stop(p);
        return -1;
    }
    p->http_state->p = p;
    port = sl__http_limits_listen(p->http_state, s, port);
    p->http_fd = evhttp_bound_socket_get_fd(s);
    sl__log(SL_LOG_INFO, "metrics_listening", "addr=%s:%d", host, port);
    return 0;
}

/* Puts the listener of bound socket s under h's limits (the accept
 * pause) and notes its family and port for sl__metrics_child_close.
 * Returns the port s listens on (`port` when it cannot be read). */
int sl__http_limits_listen(struct sl_http *h, struct evhttp_bound_socket *s, int port)
{
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof(ss);

    h->lev = evhttp_bound_socket_get_listener(s);
    the_http = h;
    evconnlistener_set_error_cb(h->lev, on_accept_error);
    if (getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss, &len) == 0) {
        h->family = ss.ss_family;
        if (ss.ss_family == AF_INET)
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    h->port = port;
    return port;
}

/* Completes the connection records evhttp has built (see
 * resolve_pending); before evhttp_free, which would not release the
 * reference a pending record holds. */
void sl__http_resolve(struct sl_http *h)
{
    if (h != NULL)
        resolve_pending(h);
}

/* Stops the HTTP server: evhttp_free closes the listener and every
 * connection. */
void sl__metrics_stop(struct sl_pool *p)
{
    /* Pending records hold a reference evhttp_free would not release. */
    if (p->http_state != NULL)
        resolve_pending(p->http_state);
    if (p->http != NULL)
        evhttp_free(p->http);
    p->http = NULL;
    if (the_http == p->http_state)
        the_http = NULL;
    sl__http_limits_free(p->http_state);
    p->http_state = NULL;
}

/* In a freshly forked child: closes every socket whose local address is
 * the listener's port, the listener and each accepted connection alike,
 * found through /proc/self/fd and getsockname(). Asking the kernel rather
 * than walking our list also catches a connection evhttp has let go but
 * libevent has not yet closed (it closes the socket when it finalizes the
 * bufferevent, a little later). Only close() is called: any libevent call here would change the
 * epoll set the child shares with the supervisor. */
void sl__metrics_child_close(struct sl_pool *p)
{
    const struct sl_http *h = p->http_state;
    DIR *d;
    struct dirent *e;

    if (h == NULL || (d = opendir("/proc/self/fd")) == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd, port = -1;
        char *end;

        fd = (int)strtol(e->d_name, &end, 10);
        if (*end != '\0' || end == e->d_name || fd <= STDERR_FILENO || fd == dirfd(d))
            continue;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 || ss.ss_family != h->family)
            continue;
        if (ss.ss_family == AF_INET)
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        if (port == h->port)
            close(fd);
    }
    closedir(d);
}
