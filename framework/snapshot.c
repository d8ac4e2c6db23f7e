/* snapshot.c -- what the HTTP side (metrics.c) shows from Redis, read by
 * the supervisor on its own connection when a request waits for it: a
 * PING for /healthz, and each group's pending and lag (XINFO GROUPS) for
 * /metrics, and the dashboard's overview and workers when the pool
 * serves its pages (web.c). The first call that finds Redis unreachable ends the
 * snapshot, so one taken during an outage costs one timeout at most.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include "internal.h"
#include "pool.h"
#include "web.h"

/* Reads pending and lag of wc's group into *pending and *lag (left as
 * they are when unknown). Returns 0, or -1 when Redis was unreachable. */
static int group_gauges(struct sl_pool *p, const struct sl_worker_conf *wc,
                        long long *pending, long long *lag)
{
    const char *argv[] = { "XINFO", "GROUPS", wc->stream };
    redisReply *r = sl__pool_cmd(p, 3, argv);
    size_t i, j;

    if (r == NULL)
        return -1;
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
    freeReplyObject(r);
    return 0;
}

/* Takes a snapshot for the current configuration (see pool.h). A worker
 * entry with the same stream and group as an earlier one copies its
 * values instead of asking again. */
void sl__snapshot_take(struct sl_pool *p)
{
    struct sl_snapshot *s = &p->snap;
    const struct sl_config *cfg = p->cfg;
    const char *ping[] = { "PING" };
    redisReply *r;
    size_t w, k;
    int up;

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
    r = sl__pool_cmd(p, 1, ping);
    s->redis_ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    snprintf(s->redis_err, sizeof(s->redis_err), "%s",
             r == NULL ? "unreachable" : r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    up = s->redis_ok;
    for (w = 0; w < s->n && up; w++) {
        const struct sl_worker_conf *wc = &cfg->workers[w];

        for (k = 0; k < w; k++)
            if (strcmp(cfg->workers[k].stream, wc->stream) == 0 &&
                strcmp(cfg->workers[k].group, wc->group) == 0)
                break;
        if (k < w) {
            s->pending[w] = s->pending[k];
            s->lag[w] = s->lag[k];
        } else if (group_gauges(p, wc, &s->pending[w], &s->lag[w]) < 0) {
            up = 0;
        }
    }
    /* The dashboard's documents, when one of its requests waits. */
    if (s->web_wanted && up)
        sl__web_pool_snapshot(p);
    s->web_wanted = 0;
}

/* Frees the snapshot's arrays. */
void sl__snapshot_free(struct sl_pool *p)
{
    free(p->snap.pending);
    p->snap.pending = p->snap.lag = NULL;
    p->snap.n = 0;
    json_decref(p->snap.web_overview);
    json_decref(p->snap.web_workers);
    p->snap.web_overview = p->snap.web_workers = NULL;
    sl__web_state_free(p->snap.web_state);
    p->snap.web_state = NULL;
}
