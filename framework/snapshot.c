/* snapshot.c -- what the HTTP side (metrics.c) shows from Redis, read by
 * the supervisor on its asynchronous connection when a request waits for
 * it: a PING for /healthz, and each group's pending and lag (XINFO
 * GROUPS) for /metrics. Nothing here waits: a hung Redis makes the
 * snapshot say so after SNAP_WAIT_MS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include "internal.h"
#include "pool.h"

#define SNAP_WAIT_MS 500          /* longest wait for Redis's replies */

/* What one reply of a snapshot needs to find its place. */
struct snap_call {
    struct sl_pool *p;            /* the pool */
    unsigned gen;                 /* the snapshot it belongs to */
    long w;                       /* the worker entry, -1 for the PING */
};

/* Answers the requests waiting for the snapshot, copying the values of
 * entries that share a stream and group with an earlier one. */
static void finish(struct sl_pool *p)
{
    struct sl_snapshot *s = &p->snap;
    const struct sl_config *cfg = p->cfg;
    size_t w, k;

    s->inflight = 0;
    s->outstanding = 0;
    for (w = 0; w < s->n && w < cfg->nworkers; w++) {
        for (k = 0; k < w; k++)
            if (strcmp(cfg->workers[k].stream, cfg->workers[w].stream) == 0 &&
                strcmp(cfg->workers[k].group, cfg->workers[w].group) == 0)
                break;
        if (k < w) {
            s->pending[w] = s->pending[k];
            s->lag[w] = s->lag[k];
        }
    }
    sl__metrics_answer(p);
}

/* Reads the pending and lag of wc's group from an XINFO GROUPS reply. */
static void group_gauges(const redisReply *r, const struct sl_worker_conf *wc,
                         long long *pending, long long *lag)
{
    size_t i, j;

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
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
}

/* One reply of the snapshot: the PING's, or a group's XINFO GROUPS. A
 * reply to a snapshot already answered (it waited too long) is dropped. */
static void on_snap_reply(struct sl_conn *c, redisReply *r, void *arg)
{
    struct snap_call *k = arg;
    struct sl_pool *p = k->p;
    struct sl_snapshot *s = &p->snap;

    (void)c;
    if (k->gen == s->gen && s->inflight) {
        if (k->w < 0) {
            s->redis_ok = r != NULL && r->type != REDIS_REPLY_ERROR;
            snprintf(s->redis_err, sizeof(s->redis_err), "%s",
                     r == NULL ? "connection lost" : r->type == REDIS_REPLY_ERROR ? r->str : "");
        } else if (r != NULL && (size_t)k->w < s->n && (size_t)k->w < p->cfg->nworkers) {
            group_gauges(r, &p->cfg->workers[k->w], &s->pending[k->w], &s->lag[k->w]);
        }
        if (--s->outstanding == 0)
            finish(p);
    }
    free(k);
}

/* Sends one command of the snapshot. Returns 0, or -1 when it could not
 * be sent. */
static int snap_send(struct sl_pool *p, long w, int argc, const char **argv)
{
    struct snap_call *k = malloc(sizeof(*k));

    if (k == NULL)
        return -1;
    k->p = p;
    k->gen = p->snap.gen;
    k->w = w;
    if (sl__pool_send(p, on_snap_reply, k, argc, argv) != 0) {
        free(k);
        return -1;
    }
    p->snap.outstanding++;
    return 0;
}

/* Takes a snapshot for the current configuration, or looks after the
 * one in flight (see pool.h): the PING and one XINFO GROUPS per stream
 * and group go out at once on the asynchronous connection, and the
 * waiting requests are answered when the last reply is in. When Redis is
 * not connected, or has not answered within SNAP_WAIT_MS (a hung
 * server), they are answered at once with the reason, so /healthz never
 * waits on Redis. */
void sl__snapshot_take(struct sl_pool *p)
{
    struct sl_snapshot *s = &p->snap;
    const struct sl_config *cfg = p->cfg;
    const char *ping[] = { "PING" };
    uint64_t now = sl__now_ms();
    size_t w, k;

    if (s->inflight) {
        if (now - s->started_ms < SNAP_WAIT_MS)
            return;
        s->redis_ok = 0;
        snprintf(s->redis_err, sizeof(s->redis_err), "no reply within %d ms", SNAP_WAIT_MS);
        s->gen++;                 /* the late replies are dropped */
        finish(p);
        return;
    }
    s->wanted = 0;
    if (s->n != cfg->nworkers || s->pending == NULL) {
        free(s->pending);
        s->n = 0;
        s->pending = calloc(2 * cfg->nworkers + 1, sizeof(*s->pending));
        if (s->pending != NULL)
            s->n = cfg->nworkers;
        s->lag = s->pending != NULL ? s->pending + cfg->nworkers : NULL;
    }
    for (w = 0; w < s->n; w++)
        s->pending[w] = s->lag[w] = -1;
    s->gen++;
    s->inflight = 1;
    s->outstanding = 0;
    s->started_ms = now;
    s->redis_ok = 0;
    if (snap_send(p, -1, 1, ping) != 0) {
        snprintf(s->redis_err, sizeof(s->redis_err), "unreachable%s%s",
                 p->ac != NULL && sl__conn_error(p->ac)[0] ? ": " : "",
                 p->ac != NULL ? sl__conn_error(p->ac) : "");
        finish(p);
        return;
    }
    for (w = 0; w < s->n; w++) {
        const struct sl_worker_conf *wc = &cfg->workers[w];
        const char *argv[] = { "XINFO", "GROUPS", wc->stream };

        for (k = 0; k < w; k++)
            if (strcmp(cfg->workers[k].stream, wc->stream) == 0 &&
                strcmp(cfg->workers[k].group, wc->group) == 0)
                break;
        if (k == w)
            (void)snap_send(p, (long)w, 3, argv);
    }
}

/* Frees the snapshot's arrays. */
void sl__snapshot_free(struct sl_pool *p)
{
    free(p->snap.pending);
    p->snap.pending = p->snap.lag = NULL;
    p->snap.n = 0;
}
