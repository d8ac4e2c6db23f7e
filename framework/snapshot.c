/* snapshot.c -- what the HTTP side (metrics.c) shows from Redis, read by
 * the supervisor on its own connection when a request waits for it: a
 * PING for /healthz, and for /metrics each group's pending and lag (XINFO
 * GROUPS), the idle time of its oldest pending entry (XPENDING), and each
 * stream's dead letters by code (dlq_count.lua, a few pages per snapshot:
 * only what is new is read, and only the counts cross the network). The
 * first call that finds Redis unreachable ends the snapshot, so one taken
 * during an outage costs one timeout at most.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include "internal.h"
#include "pool.h"
#include "scripts.h"

#define DEAD_PAGE 200             /* dead letters per dlq_count.lua call */
#define DEAD_PAGES 10             /* calls per stream and snapshot at most */

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

/* Reads the age of the oldest pending entry of wc's group into *oldest:
 * now_ms (Redis's clock) minus the time in its ID, so the age an entry
 * has been waiting since it was added, which neither a lease renewal nor
 * a reclaim resets (Redis's idle time is reset by both); 0 when nothing
 * is pending; left as it is when unknown. Returns 0, or -1 when Redis
 * was unreachable. */
static int group_oldest(struct sl_pool *p, const struct sl_worker_conf *wc, long long now_ms,
                        long long *oldest)
{
    const char *argv[] = { "XPENDING", wc->stream, wc->group, "-", "+", "1" };
    redisReply *r = sl__pool_cmd(p, 6, argv);

    if (r == NULL)
        return -1;
    /* [[id, consumer, idle ms, deliveries]], [] when none; an error when
     * the stream or group is missing (unknown then). */
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
        *oldest = 0;
    } else if (r->type == REDIS_REPLY_ARRAY && r->element[0]->type == REDIS_REPLY_ARRAY &&
               r->element[0]->elements >= 1 &&
               r->element[0]->element[0]->type == REDIS_REPLY_STRING) {
        long long ms = strtoll(r->element[0]->element[0]->str, NULL, 10);
        *oldest = now_ms > ms ? now_ms - ms : 0;
    }
    freeReplyObject(r);
    return 0;
}

/* Returns Redis's clock in ms (TIME), 0 when unknown, -1 when Redis was
 * unreachable. */
static long long redis_now_ms(struct sl_pool *p)
{
    const char *argv[] = { "TIME" };
    redisReply *r = sl__pool_cmd(p, 1, argv);
    long long ms = 0;

    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING)
        ms = strtoll(r->element[0]->str, NULL, 10) * 1000 +
             strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return ms;
}

/* Forgets what tally t counted, so that the next read starts over. */
static void tally_reset(struct sl_dead_tally *t)
{
    snprintf(t->next, sizeof(t->next), "-");
    t->counted = 0;
    t->ncodes = 0;
    t->in_sync = 0;
}

/* Adds n dead letters of code (len bytes) to tally t. Past
 * SL_DEAD_CODES - 1 codes, the rest share "(other)": the codes are
 * whatever anyone wrote into the stream, and each is a series. */
static void tally_add(struct sl_dead_tally *t, const char *code, size_t len, long long n)
{
    size_t i;

    if (len > SL_DEAD_CODE_MAX)
        len = SL_DEAD_CODE_MAX;
    for (i = 0; i < t->ncodes; i++)
        if (strlen(t->codes[i].code) == len && memcmp(t->codes[i].code, code, len) == 0)
            break;
    if (i == t->ncodes) {
        if (t->ncodes == SL_DEAD_CODES - 1) {
            code = "(other)";
            len = strlen(code);
            for (i = 0; i < t->ncodes; i++)
                if (strcmp(t->codes[i].code, code) == 0)
                    break;
        }
        if (i == t->ncodes) {
            memcpy(t->codes[i].code, code, len);
            t->codes[i].code[len] = '\0';
            t->codes[i].n = 0;
            t->ncodes++;
        }
    }
    t->codes[i].n += n;
    t->counted += n;
}

/* Brings tally t up to date: reads what was dead-lettered since the last
 * read, at most DEAD_PAGES pages. When the stream holds fewer dead
 * letters than were counted (some were replayed, purged or expired), or
 * a different number once everything was read, the tally starts over;
 * t->in_sync says whether it covers the stream now. Returns 0, or -1
 * when Redis was unreachable. */
static int tally_update(struct sl_pool *p, struct sl_dead_tally *t)
{
    char dkey[SL_KEYLEN], cnt[16];
    int page, restarted = 0;

    snprintf(dkey, sizeof(dkey), "%s:dead", t->stream);
    snprintf(cnt, sizeof(cnt), "%d", DEAD_PAGE);
    t->in_sync = 0;
    for (page = 0; page < DEAD_PAGES; page++) {
        const char *keys[] = { dkey };
        const char *args[] = { t->next, cnt };
        redisReply *r = sl__pool_script(p, SL_SCRIPT_DLQ_COUNT, 1, keys, 2, args);
        const redisReply *codes;
        long long len;
        size_t j;

        if (r == NULL)
            return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len > 60 ||
            r->element[1]->type != REDIS_REPLY_INTEGER ||
            r->element[2]->type != REDIS_REPLY_ARRAY) {
            /* A wrong type, a script error: nothing to show. */
            freeReplyObject(r);
            tally_reset(t);
            return 0;
        }
        len = r->element[1]->integer;
        codes = r->element[2];
        for (j = 0; j + 1 < codes->elements; j += 2)
            if (codes->element[j]->type == REDIS_REPLY_STRING &&
                codes->element[j + 1]->type == REDIS_REPLY_INTEGER)
                tally_add(t, codes->element[j]->str, (size_t)codes->element[j]->len,
                          codes->element[j + 1]->integer);
        if (r->element[0]->len > 0)
            snprintf(t->next, sizeof(t->next), "(%s", r->element[0]->str);
        if (r->element[0]->len == 0 || len < t->counted) {
            /* Read to the end (or already past what is there). */
            int same = len == t->counted;
            freeReplyObject(r);
            if (same) {
                t->in_sync = 1;
                return 0;
            }
            if (restarted)
                return 0;
            tally_reset(t);
            restarted = 1;
            continue;
        }
        freeReplyObject(r);
    }
    return 0;
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
            tally_reset(&t[n]);
        }
        n++;
    }
    free(s->dead);
    s->dead = t;
    s->ndead = n;
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
    long long now = 0;
    size_t w, k;
    int up;

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
    r = sl__pool_cmd(p, 1, ping);
    s->redis_ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    snprintf(s->redis_err, sizeof(s->redis_err), "%s",
             r == NULL ? "unreachable" : r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    up = s->redis_ok;
    if (up && (now = redis_now_ms(p)) < 0)
        up = 0;
    for (w = 0; w < s->n && up; w++) {
        const struct sl_worker_conf *wc = &cfg->workers[w];

        for (k = 0; k < w; k++)
            if (strcmp(cfg->workers[k].stream, wc->stream) == 0 &&
                strcmp(cfg->workers[k].group, wc->group) == 0)
                break;
        if (k < w) {
            s->pending[w] = s->pending[k];
            s->lag[w] = s->lag[k];
            s->oldest_ms[w] = s->oldest_ms[k];
        } else if (group_gauges(p, wc, &s->pending[w], &s->lag[w]) < 0 ||
                   (s->pending[w] >= 0 && now > 0 &&
                    group_oldest(p, wc, now, &s->oldest_ms[w]) < 0)) {
            up = 0;
        }
    }
    for (k = 0; k < s->ndead; k++) {
        if (!up) {
            s->dead[k].in_sync = 0;
            continue;
        }
        if (tally_update(p, &s->dead[k]) < 0)
            up = 0;
    }
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
}
