/* snapshot.c -- what the HTTP side (metrics.c) shows from Redis, read by
 * the supervisor on its asynchronous connection when a request waits for
 * it: a PING for /healthz, and for /metrics each group's pending and lag
 * (XINFO GROUPS), the age of its oldest pending entry (TIME, XPENDING),
 * and each stream's dead letters by code (dlq_count.lua, a few pages per
 * snapshot: only what is new is read, and only the counts cross the
 * network). Nothing here waits: the commands go out together, the pages
 * of a tally follow each other as their replies come, and a hung Redis
 * makes the snapshot say so after SNAP_WAIT_MS. When the pool serves the
 * dashboard's pages (web.c), a request for them also starts the reading of
 * its overview and workers, on the same connection and as asynchronously.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include "internal.h"
#include "pool.h"
#include "web.h"
#include "scripts.h"

#define DEAD_PAGE 200             /* dead letters per dlq_count.lua call */
#define DEAD_PAGES 10             /* calls per stream and snapshot at most */
#define SNAP_WAIT_MS 500          /* longest wait for Redis's replies */

#define K_PING   0                /* kinds of reply */
#define K_TIME   1
#define K_GROUPS 2
#define K_OLDEST 3
#define K_DEAD   4

/* What one reply of a snapshot needs to find its place. */
struct snap_call {
    struct sl_pool *p;            /* the pool */
    unsigned gen;                 /* the snapshot it belongs to */
    int kind;                     /* K_* */
    size_t i;                     /* the worker entry (K_GROUPS, K_OLDEST) or tally (K_DEAD) */
};

/* Reads pending and lag of wc's group from an XINFO GROUPS reply (left
 * as they are when unknown). */
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

/* Reads the age of the oldest pending entry of a group from the reply to
 * XPENDING stream group - + 1 into *oldest: now_ms (Redis's clock) minus
 * the time in its ID, so the age an entry has been waiting since it was
 * added, which neither a lease renewal nor a reclaim resets (Redis's idle
 * time is reset by both); 0 when nothing is pending; left as it is when
 * unknown (an error: the stream or group is missing). */
static void group_oldest(const redisReply *r, long long now_ms, long long *oldest)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
        *oldest = 0;
    } else if (r->type == REDIS_REPLY_ARRAY && r->element[0]->type == REDIS_REPLY_ARRAY &&
               r->element[0]->elements >= 1 &&
               r->element[0]->element[0]->type == REDIS_REPLY_STRING) {
        long long ms = strtoll(r->element[0]->element[0]->str, NULL, 10);
        *oldest = now_ms > ms ? now_ms - ms : 0;
    }
}

static int snap_send(struct sl_pool *p, int kind, size_t i, int argc, const char **argv);
static int dead_send(struct sl_pool *p, size_t k);

/* Takes one page of dead letters for tally t (the reply to
 * dlq_count.lua). Returns 1 when another page should be read, else 0.
 * When the stream holds fewer dead letters than were counted (some were
 * replayed, purged or expired), or a different number once everything
 * was read, the tally starts over (once per snapshot); t->in_sync says
 * whether it covers the stream now. */
static int tally_page(struct sl_dead_tally *t, const redisReply *r)
{
    const redisReply *codes;
    long long len;
    size_t j;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len > 60 ||
        r->element[1]->type != REDIS_REPLY_INTEGER || r->element[2]->type != REDIS_REPLY_ARRAY) {
        /* A wrong type, a script error: nothing to show. */
        sl__tally_reset(t);
        return 0;
    }
    len = r->element[1]->integer;
    codes = r->element[2];
    for (j = 0; j + 1 < codes->elements; j += 2)
        if (codes->element[j]->type == REDIS_REPLY_STRING &&
            codes->element[j + 1]->type == REDIS_REPLY_INTEGER)
            sl__tally_add(t, codes->element[j]->str, (size_t)codes->element[j]->len,
                      codes->element[j + 1]->integer);
    if (r->element[0]->len > 0)
        snprintf(t->next, sizeof(t->next), "(%s", r->element[0]->str);
    if (r->element[0]->len == 0 || len < t->counted) {
        /* Read to the end (or already past what is there). */
        if (len == t->counted) {
            t->in_sync = 1;
            return 0;
        }
        if (t->restarted)
            return 0;
        sl__tally_reset(t);
        t->restarted = 1;
    }
    return ++t->page < DEAD_PAGES;
}

/* Makes the tallies follow the configuration's streams: one per
 * distinct stream, keeping what was counted for a stream that stays.
 * Returns 0, or -1 when out of memory (the tallies stay as they were). */
static int tallies_follow(struct sl_snapshot *s, const struct sl_config *cfg)
{
    struct sl_dead_tally *t = calloc(cfg->nworkers + 1, sizeof(*t));
    size_t n = 0, w, k;

    if (t == NULL)
        return -1;
    for (w = 0; w < cfg->nworkers; w++) {
        const char *stream = cfg->workers[w].stream;
        for (k = 0; k < n; k++)
            if (strcmp(t[k].stream, stream) == 0)
                break;
        if (k < n)
            continue;
        for (k = 0; k < s->ndead; k++)
            if (strcmp(s->dead[k].stream, stream) == 0)
                break;
        if (k < s->ndead) {
            t[n] = s->dead[k];
        } else {
            snprintf(t[n].stream, sizeof(t[n].stream), "%s", stream);
            sl__tally_reset(&t[n]);
        }
        n++;
    }
    free(s->dead);
    s->dead = t;
    s->ndead = n;
    return 0;
}

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
            s->oldest_ms[w] = s->oldest_ms[k];
        }
    }
    if (!s->redis_ok)
        for (k = 0; k < s->ndead; k++)
            s->dead[k].in_sync = 0;
    sl__metrics_answer(p);
}

/* The dashboard's read (web.c) of snapshot gen ended. */
static void web_done(struct sl_pool *p, unsigned gen)
{
    struct sl_snapshot *s = &p->snap;

    if (s->inflight && s->gen == gen && --s->outstanding == 0)
        finish(p);
}

/* One reply of the snapshot. A reply to a snapshot already answered (it
 * waited too long) is dropped. */
static void on_snap_reply(struct sl_conn *c, redisReply *r, void *arg)
{
    struct snap_call *k = arg;
    struct sl_pool *p = k->p;
    struct sl_snapshot *s = &p->snap;
    const struct sl_config *cfg = p->cfg;

    (void)c;
    if (k->gen != s->gen || !s->inflight) {
        free(k);
        return;
    }
    switch (k->kind) {
    case K_PING:
        s->redis_ok = r != NULL && r->type != REDIS_REPLY_ERROR;
        snprintf(s->redis_err, sizeof(s->redis_err), "%s",
                 r == NULL ? "connection lost" : r->type == REDIS_REPLY_ERROR ? r->str : "");
        break;
    case K_TIME:
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING)
            s->redis_now = strtoll(r->element[0]->str, NULL, 10) * 1000 +
                           strtoll(r->element[1]->str, NULL, 10) / 1000;
        break;
    case K_GROUPS:
        if (r != NULL && k->i < s->n && k->i < cfg->nworkers)
            group_gauges(r, &cfg->workers[k->i], &s->pending[k->i], &s->lag[k->i]);
        break;
    case K_OLDEST:
        /* Its XINFO GROUPS reply came first (one connection keeps the
         * order): a group that does not exist stays unknown. */
        if (r != NULL && k->i < s->n && s->pending[k->i] >= 0 && s->redis_now > 0)
            group_oldest(r, s->redis_now, &s->oldest_ms[k->i]);
        break;
    case K_DEAD:
        if (k->i < s->ndead) {
            if (r == NULL)
                s->dead[k->i].in_sync = 0;
            else if (tally_page(&s->dead[k->i], r) && s->redis_ok)
                (void)dead_send(p, k->i);
        }
        break;
    }
    free(k);
    if (--s->outstanding == 0)
        finish(p);
}

/* Sends one command of the snapshot. Returns 0, or -1 when it could not
 * be sent. */
static int snap_send(struct sl_pool *p, int kind, size_t i, int argc, const char **argv)
{
    struct snap_call *k = malloc(sizeof(*k));

    if (k == NULL)
        return -1;
    k->p = p;
    k->gen = p->snap.gen;
    k->kind = kind;
    k->i = i;
    if (sl__pool_send(p, on_snap_reply, k, argc, argv) != 0) {
        free(k);
        return -1;
    }
    p->snap.outstanding++;
    return 0;
}

/* Sends the next page of tally k (dlq_count.lua). Returns 0 or -1. */
static int dead_send(struct sl_pool *p, size_t i)
{
    struct sl_dead_tally *t = &p->snap.dead[i];
    char dkey[SL_KEYLEN], cnt[16];
    const char *keys[] = { dkey };
    const char *args[] = { t->next, cnt };
    struct snap_call *k = malloc(sizeof(*k));

    if (k == NULL)
        return -1;
    snprintf(dkey, sizeof(dkey), "%s:dead", t->stream);
    snprintf(cnt, sizeof(cnt), "%d", DEAD_PAGE);
    k->p = p;
    k->gen = p->snap.gen;
    k->kind = K_DEAD;
    k->i = i;
    if (sl__pool_send_script(p, SL_SCRIPT_DLQ_COUNT, 1, keys, 2, args, on_snap_reply, k) != 0) {
        free(k);
        t->in_sync = 0;
        return -1;
    }
    p->snap.outstanding++;
    return 0;
}

/* Takes a snapshot for the current configuration, or looks after the
 * one in flight (see pool.h): the PING, TIME, and per stream and group
 * XINFO GROUPS and XPENDING go out at once on the asynchronous
 * connection, with the first page of each dead-letter tally; the waiting
 * requests are answered when the last reply is in. When Redis is not
 * connected, or has not answered within SNAP_WAIT_MS (a hung server),
 * they are answered at once with the reason, so /healthz never waits on
 * Redis. A worker entry with the same stream and group as an earlier one
 * copies its values instead of asking again. */
void sl__snapshot_take(struct sl_pool *p)
{
    struct sl_snapshot *s = &p->snap;
    const struct sl_config *cfg = p->cfg;
    const char *ping[] = { "PING" };
    const char *timecmd[] = { "TIME" };
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
        s->pending = calloc(3 * cfg->nworkers + 1, sizeof(*s->pending));
        if (s->pending != NULL)
            s->n = cfg->nworkers;
        s->lag = s->pending != NULL ? s->pending + cfg->nworkers : NULL;
        s->oldest_ms = s->pending != NULL ? s->pending + 2 * cfg->nworkers : NULL;
    }
    for (w = 0; w < s->n; w++)
        s->pending[w] = s->lag[w] = s->oldest_ms[w] = -1;
    if (tallies_follow(s, cfg) < 0)
        for (k = 0; k < s->ndead; k++)
            s->dead[k].in_sync = 0;
    s->gen++;
    s->inflight = 1;
    s->outstanding = 1;           /* held until every command is sent */
    s->started_ms = now;
    s->redis_ok = 0;
    s->redis_now = 0;
    if (snap_send(p, K_PING, 0, 1, ping) != 0) {
        snprintf(s->redis_err, sizeof(s->redis_err), "unreachable%s%s",
                 p->ac != NULL && sl__conn_error(p->ac)[0] ? ": " : "",
                 p->ac != NULL ? sl__conn_error(p->ac) : "");
        finish(p);
        return;
    }
    (void)snap_send(p, K_TIME, 0, 1, timecmd);
    for (w = 0; w < s->n; w++) {
        const struct sl_worker_conf *wc = &cfg->workers[w];
        const char *groups[] = { "XINFO", "GROUPS", wc->stream };
        const char *pend[] = { "XPENDING", wc->stream, wc->group, "-", "+", "1" };

        for (k = 0; k < w; k++)
            if (strcmp(cfg->workers[k].stream, wc->stream) == 0 &&
                strcmp(cfg->workers[k].group, wc->group) == 0)
                break;
        if (k == w && snap_send(p, K_GROUPS, w, 3, groups) == 0)
            (void)snap_send(p, K_OLDEST, w, 6, pend);
    }
    for (k = 0; k < s->ndead; k++) {
        s->dead[k].in_sync = 0;
        s->dead[k].page = 0;
        s->dead[k].restarted = 0;
        (void)dead_send(p, k);
    }
    /* The dashboard's documents, when one of its requests waits: read
     * on the same connection, as replies come (web.c); the snapshot
     * waits for them too. */
    if (s->web_wanted && sl__web_pool_snapshot(p, web_done, s->gen) == 1)
        s->outstanding++;
    s->web_wanted = 0;
    if (--s->outstanding == 0)
        finish(p);
}

/* Frees the snapshot's arrays and tallies. */
void sl__snapshot_free(struct sl_pool *p)
{
    free(p->snap.pending);
    p->snap.pending = p->snap.lag = p->snap.oldest_ms = NULL;
    p->snap.n = 0;
    free(p->snap.dead);
    p->snap.dead = NULL;
    p->snap.ndead = 0;
    json_decref(p->snap.web_overview);
    json_decref(p->snap.web_workers);
    p->snap.web_overview = p->snap.web_workers = NULL;
    sl__web_state_free(p->snap.web_state);
    p->snap.web_state = NULL;
}
