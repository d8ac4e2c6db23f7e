/* stats.c -- `sluice stats`: per stream and group, the numbers of
 * SPEC section 8 and the queueing view of them.
 *
 * Two samples `window` seconds apart give the rates: arrivals
 * λ = Δ entries-added / Δt (the stream's own counter), and acks
 * μ = Δ processed / Δt summed over the heartbeats of the workers of that
 * stream and group, so any machine that runs `stats` sees the same. Then
 * ρ = λ/μ, L = lag + pending, and W = L/λ by Little's law ("-" when λ is
 * 0: an idle queue has no mean time in system to speak of).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <hiredis.h>
#include "internal.h"
#include "admin.h"

#define MAXROWS 256

/* One stream and group at one instant. */
struct row {
    char stream[256];             /* stream key */
    char group[256];              /* group name */
    long long length;             /* XLEN */
    long long added;              /* entries-added */
    long long lag;                /* lag, -1 when Redis cannot tell */
    long long pending;            /* entries pending */
    long long consumers;          /* consumers of the group */
    long long oldest_ms;          /* idle time of the oldest pending entry, -1 none */
    long long dead;               /* XLEN <stream>:dead */
    long long processed;          /* sum of the workers' processed counters */
    double t;                     /* sample time, seconds */
};

/* Returns the integer of field `name` in a flat name/value reply, or dflt. */
static long long fint(const redisReply *r, const char *name, long long dflt)
{
    size_t i;

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && !strcmp(r->element[i]->str, name))
            return r->element[i + 1]->type == REDIS_REPLY_INTEGER ? r->element[i + 1]->integer : dflt;
    return dflt;
}

/* Returns the string of field `name` in a flat reply, or "". */
static const char *fstr(const redisReply *r, const char *name)
{
    size_t i;

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && !strcmp(r->element[i]->str, name))
            return r->element[i + 1]->type == REDIS_REPLY_STRING ? r->element[i + 1]->str : "";
    return "";
}

/* Returns the wall clock in seconds. */
static double now_s(void)
{
    return (double)sl__wall_ms() / 1000.0;
}

/* Samples every group of every configured stream. Returns the row count,
 * or -1 when Redis failed. */
static int sample(redisContext *c, const struct sl_config *cfg, struct row *rows)
{
    int n = 0;
    size_t w, i, j;
    char cursor[32] = "0";

    for (w = 0; w < cfg->nworkers; w++) {
        const char *stream = cfg->workers[w].stream;
        redisReply *info, *groups;
        int seen = 0;

        for (i = 0; i < w; i++)
            seen |= strcmp(cfg->workers[i].stream, stream) == 0;
        if (seen)
            continue;
        info = redisCommand(c, "XINFO STREAM %s", stream);
        if (info == NULL)
            return -1;
        if (info->type == REDIS_REPLY_ERROR) {
            freeReplyObject(info);
            continue;           /* no such stream yet */
        }
        groups = redisCommand(c, "XINFO GROUPS %s", stream);
        if (groups == NULL) {
            freeReplyObject(info);
            return -1;
        }
        for (i = 0; groups->type == REDIS_REPLY_ARRAY && i < groups->elements && n < MAXROWS; i++) {
            const redisReply *g = groups->element[i];
            struct row *r = &rows[n++];
            redisReply *x;

            memset(r, 0, sizeof(*r));
            snprintf(r->stream, sizeof(r->stream), "%s", stream);
            snprintf(r->group, sizeof(r->group), "%s", fstr(g, "name"));
            r->length = fint(info, "length", 0);
            r->added = fint(info, "entries-added", 0);
            r->lag = fint(g, "lag", -1);
            r->pending = fint(g, "pending", 0);
            r->consumers = fint(g, "consumers", 0);
            r->oldest_ms = -1;
            x = redisCommand(c, "XPENDING %s %s - + 1", stream, r->group);
            if (x != NULL && x->type == REDIS_REPLY_ARRAY && x->elements == 1)
                r->oldest_ms = x->element[0]->element[2]->integer;
            freeReplyObject(x);
            x = redisCommand(c, "XLEN %s:dead", stream);
            if (x != NULL && x->type == REDIS_REPLY_INTEGER)
                r->dead = x->integer;
            freeReplyObject(x);
            r->t = now_s();
        }
        freeReplyObject(groups);
        freeReplyObject(info);
    }
    /* The workers' processed counters, from their heartbeats. */
    do {
        redisReply *s = redisCommand(c, "SCAN %s MATCH sluice:worker:* COUNT 500", cursor);
        if (s == NULL || s->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(s);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", s->element[0]->str);
        for (i = 0; i < s->element[1]->elements; i++) {
            redisReply *h = redisCommand(c, "HMGET %s stream group processed",
                                         s->element[1]->element[i]->str);
            if (h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements == 3 &&
                h->element[0]->type == REDIS_REPLY_STRING && h->element[1]->type == REDIS_REPLY_STRING &&
                h->element[2]->type == REDIS_REPLY_STRING)
                for (j = 0; j < (size_t)n; j++)
                    if (!strcmp(rows[j].stream, h->element[0]->str) &&
                        !strcmp(rows[j].group, h->element[1]->str))
                        rows[j].processed += strtoll(h->element[2]->str, NULL, 10);
            freeReplyObject(h);
        }
        freeReplyObject(s);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

/* Prints (or adds to doc) the figures between two samples. */
static void report(const struct row *a, int na, const struct row *b, int nb, int json, json_t *doc)
{
    int i, j;

    if (!json)
        printf("%-16s %-18s %8s %8s %8s %5s %10s %6s %9s %9s %6s %8s %9s\n", "STREAM", "GROUP",
               "LENGTH", "LAG", "PENDING", "CONS", "OLDEST_MS", "DEAD", "LAMBDA/s", "MU/s", "RHO",
               "L", "W_s");
    for (i = 0; i < nb; i++) {
        const struct row *r = &b[i];
        const struct row *o = NULL;
        double dt, lambda = 0, mu = 0, rho = -1, w = -1;
        long long l;
        char rho_s[16] = "-", w_s[24] = "-";

        for (j = 0; j < na; j++)
            if (!strcmp(a[j].stream, r->stream) && !strcmp(a[j].group, r->group))
                o = &a[j];
        if (o != NULL && (dt = r->t - o->t) > 0) {
            lambda = (double)(r->added - o->added) / dt;
            mu = (double)(r->processed - o->processed) / dt;
        }
        l = (r->lag > 0 ? r->lag : 0) + r->pending;
        if (mu > 0) {
            rho = lambda / mu;
            snprintf(rho_s, sizeof(rho_s), "%.2f", rho);
        }
        if (lambda > 0) {
            w = (double)l / lambda;
            snprintf(w_s, sizeof(w_s), "%.3f", w);
        }
        if (json) {
            json_t *o2 = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:I}",
                                   "stream", r->stream, "group", r->group,
                                   "length", (json_int_t)r->length, "pending", (json_int_t)r->pending,
                                   "consumers", (json_int_t)r->consumers,
                                   "dead", (json_int_t)r->dead, "entries_added", (json_int_t)r->added,
                                   "processed", (json_int_t)r->processed,
                                   "lambda", lambda, "mu", mu, "L", (json_int_t)l);
            json_object_set_new(o2, "lag", r->lag >= 0 ? json_integer(r->lag) : json_null());
            json_object_set_new(o2, "oldest_pending_ms",
                                r->oldest_ms >= 0 ? json_integer(r->oldest_ms) : json_null());
            json_object_set_new(o2, "rho", rho >= 0 ? json_real(rho) : json_null());
            json_object_set_new(o2, "W", w >= 0 ? json_real(w) : json_null());
            json_array_append_new(doc, o2);
        } else {
            char lag_s[24], old_s[24];
            snprintf(lag_s, sizeof(lag_s), r->lag >= 0 ? "%lld" : "-", r->lag);
            snprintf(old_s, sizeof(old_s), r->oldest_ms >= 0 ? "%lld" : "-", r->oldest_ms);
            printf("%-16s %-18s %8lld %8s %8lld %5lld %10s %6lld %9.1f %9.1f %6s %8lld %9s\n",
                   r->stream, r->group, r->length, lag_s, r->pending, r->consumers, old_s,
                   r->dead, lambda, mu, rho_s, l, w_s);
        }
    }
}

/* Sleeps s seconds (fractions allowed). */
static void nap(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

    while (nanosleep(&ts, &ts) < 0)
        ;
}

int sl__stats(const struct sl_args *a, const struct sl_config *cfg)
{
    static struct row before[MAXROWS], after[MAXROWS];
    struct timeval ct = { cfg->connect_timeout_ms / 1000, (cfg->connect_timeout_ms % 1000) * 1000 };
    struct timeval rt = { cfg->command_timeout_ms / 1000, (cfg->command_timeout_ms % 1000) * 1000 };
    double window = 1.0;
    redisContext *c;
    int na, nb, rc = 0;

    if (a->npos != 1) {
        fprintf(stderr, "sluice: usage: sluice stats [--json] [--watch SECONDS]\n");
        return 2;
    }
    if (a->watch != NULL) {
        char *end;
        window = strtod(a->watch, &end);
        if (*end || end == a->watch || !(window > 0) || window > 86400) {
            fprintf(stderr, "sluice: --watch: expected a number of seconds > 0\n");
            return 2;
        }
    }
    c = redisConnectWithTimeout(cfg->redis.host, cfg->redis.port, ct);
    if (c == NULL || c->err) {
        fprintf(stderr, "sluice: cannot reach redis at %s:%d: %s\n", cfg->redis.host,
                cfg->redis.port, c ? c->errstr : "out of memory");
        redisFree(c);
        return 1;
    }
    redisSetTimeout(c, rt);
    if (cfg->redis.password[0])
        freeReplyObject(redisCommand(c, "AUTH %s", cfg->redis.password));
    if (cfg->redis.db)
        freeReplyObject(redisCommand(c, "SELECT %d", cfg->redis.db));
    if ((na = sample(c, cfg, before)) < 0)
        goto fail;
    for (;;) {
        json_t *doc = json_array();
        nap(a->watch ? window : 1.0);
        if ((nb = sample(c, cfg, after)) < 0) {
            json_decref(doc);
            goto fail;
        }
        if (a->watch && !a->json)
            printf("\033[H\033[2J");
        report(before, na, after, nb, a->json, doc);
        if (a->json) {
            char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            if (s)
                puts(s);
            free(s);
        }
        json_decref(doc);
        fflush(stdout);
        if (!a->watch)
            break;
        memcpy(before, after, sizeof(after));
        na = nb;
    }
    redisFree(c);
    return rc;
fail:
    fprintf(stderr, "sluice: redis: %s\n", c->errstr[0] ? c->errstr : "unexpected reply");
    redisFree(c);
    return 1;
}
