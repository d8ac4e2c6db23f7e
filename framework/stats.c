/* stats.c -- `sluice stats`: per stream and group, the numbers of
 * docs/operations.md and the queueing view of them.
 *
 * The rates come from Redis's own counters: arrivals λ = Δ entries-added
 * / Δt (the stream's), and completions μ = Δ (entries-read - pending) /
 * Δt (the group's: an entry read and no longer pending was acked or
 * dead-lettered), so any machine that runs `stats` sees the same. Then
 * ρ = λ/μ, L = lag + pending, and W = L/λ by Little's law ("-" when λ is
 * 0: an idle queue has no mean time in system to speak of).
 *
 * The window: a one-shot `stats` reads the samples the supervisors keep
 * in sluice:rate:<stream>:<group> (rate.lua, one every 5 s) and takes the
 * last RATE_WINDOW_S seconds of them, long enough that a batch acked a
 * moment earlier or later moves μ by a fraction of a percent (one second
 * of acks moved it by tens of percent). Without recent samples (no pool
 * of this version runs), and with --watch, the window is the time between
 * two samples taken here.
 *
 * When Redis cannot tell entries-read (after some deletions), μ falls
 * back to the workers' heartbeats: Δ processed summed per consumer. A
 * worker's counter starts again from 0 when its process is restarted: a
 * consumer seen in both samples with the same start time adds its
 * difference; one that started during the window adds all it has done;
 * anything else adds nothing, so a restart never makes μ negative.
 *
 * Per event type, for a stream that carries several (orders carries
 * order.created and the payment results): the workers count, per type,
 * the entries the group read for the first time ("in") and those decided
 * for good ("done"), in sluice:count:<stream>:<group> (typecount.h), and
 * each rate sample copies those counters into
 * sluice:rate:<stream>:<group>:types under the sample's own ID. Over the
 * same window as the row: μ of a type = Δ done / Δt; λ of a type = the
 * row's λ x its share of Δ in, the type mix of what the group read. While
 * the group keeps up that is exactly the arrivals of each type; while it
 * lags, the mix is that of older arrivals. Without rate samples the
 * counters are read at both ends of the live window.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <hiredis.h>
#include "internal.h"
#include "admin.h"
#include "heartbeat.h"
#include "typecount.h"

#define MAXROWS 256               /* stream/group rows shown */
#define MAXBEATS 1024             /* worker heartbeats read per sample */
#define RATE_WINDOW_S 60          /* the window a one-shot stats reads, seconds */
#define RATE_MIN_S 9              /* a shorter span of samples is not used */
#define RATE_FRESH_S 15           /* the newest sample must be this recent, else
                                     no supervisor samples that group now */
#define MAXTYPES 24               /* event types shown per row */

/* The per-type counters of a group at one instant. */
struct tcount {
    char name[SL_TC_NAMELEN + 8]; /* the type */
    long long in;                 /* entries read for the first time */
    long long done;               /* entries decided for good */
};

/* The rates of one type over a row's window. */
struct trate {
    char name[SL_TC_NAMELEN + 8]; /* the type */
    double lambda;                /* arrivals per second, < 0 when unknown */
    double mu;                    /* completions per second */
};

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
    long long read;               /* entries-read of the group, -1 when Redis cannot tell */
    double t;                     /* sample time, seconds */
    double win;                   /* span of the rate samples used, seconds; 0: none */
    double win_lambda;            /* λ over those samples, per second */
    double win_mu;                /* μ over those samples, per second */
    struct tcount cnt[MAXTYPES];  /* per-type counters at t */
    int ncnt;
    struct tcount wcnt[2][MAXTYPES]; /* per-type counters at the window's ends (oldest, newest) */
    int nwcnt[2];                 /* 0 each when the samples have none */
};

/* One worker heartbeat at one instant. */
struct beat {
    char consumer[320];           /* consumer name (the key without its prefix) */
    int row;                      /* index of its stream/group in the same sample, -1 none */
    long long started;            /* started_at: process start, ms since the epoch */
    long long processed;          /* its processed counter */
};

/* Everything one sample saw. */
struct sample {
    struct row rows[MAXROWS];     /* stream/group rows */
    int nrows;
    struct beat beats[MAXBEATS];  /* heartbeats of workers of those rows */
    int nbeats;
    double t;                     /* when the sample started, seconds since the epoch */
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

/* Runs one command of the heartbeat walk: a NULL reply (the connection
 * failed) ends the sample. */
static redisReply *beat_cmd(struct sl_sync *c, int argc, const char **argv, void *arg)
{
    (void)arg;
    /* Every command of the walk names its key first (the registry, a
     * heartbeat): in a cluster it goes to that key's master. */
    sl__sync_route(c, argc > 1 ? argv[1] : NULL, 1);
    return sl__sync_argv(c, argc, argv, NULL);
}

/* Keeps one heartbeat whose stream and group are a row of the sample,
 * and adds its processed counter to that row. */
static int beat_seen(const char *consumer, size_t len, const redisReply *h, void *arg)
{
    struct sample *s = arg;
    struct beat *b;
    int j;

    (void)len;
    if (s->nbeats >= MAXBEATS)
        return 1;
    b = &s->beats[s->nbeats];
    if (h->type == REDIS_REPLY_ARRAY && h->elements == 4 &&
        h->element[0]->type == REDIS_REPLY_STRING && h->element[1]->type == REDIS_REPLY_STRING &&
        h->element[2]->type == REDIS_REPLY_STRING && h->element[3]->type == REDIS_REPLY_STRING) {
        snprintf(b->consumer, sizeof(b->consumer), "%s", consumer);
        b->processed = strtoll(h->element[2]->str, NULL, 10);
        b->started = strtoll(h->element[3]->str, NULL, 10);
        b->row = -1;
        for (j = 0; j < s->nrows; j++)
            if (!strcmp(s->rows[j].stream, h->element[0]->str) &&
                !strcmp(s->rows[j].group, h->element[1]->str)) {
                b->row = j;
                s->rows[j].processed += b->processed;
            }
        if (b->row >= 0)
            s->nbeats++;
    }
    return 0;
}

/* Reads every heartbeat into s->beats and adds each processed counter to
 * its row. On a cluster the heartbeats live beside the streams, one
 * registry per hash tag, so it reads each configured stream's on that
 * stream's master. Returns 0, or -1 when Redis failed. */
static int sample_beats(struct sl_sync *c, const struct sl_config *cfg, struct sample *s)
{
    static const char *const fields[] = { "stream", "group", "processed", "started_at" };

    return sl__hb_walk_cfg(c, cfg, fields, (int)SL_NELEM(fields), beat_cmd, beat_seen, s) == 0 ? 0 : -1;
}

/* Reads the per-type counters out of a flat name/value reply (HGETALL,
 * or a per-type sample's fields) into out. Returns how many types. */
static int parse_counts(const redisReply *f, struct tcount *out)
{
    int n = 0, k;
    size_t i;

    for (i = 0; f != NULL && f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        const redisReply *nm = f->element[i], *v = f->element[i + 1];
        const char *t;
        int in;

        if (nm->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (!strncmp(nm->str, "in:", 3))
            in = 1, t = nm->str + 3;
        else if (!strncmp(nm->str, "done:", 5))
            in = 0, t = nm->str + 5;
        else
            continue;
        for (k = 0; k < n && strcmp(out[k].name, t) != 0; k++)
            ;
        if (k == n) {
            if (n >= MAXTYPES || strlen(t) >= sizeof(out[k].name))
                continue;
            memset(&out[k], 0, sizeof(out[k]));
            snprintf(out[k].name, sizeof(out[k].name), "%s", t);
            n++;
        }
        if (in)
            out[k].in = strtoll(v->str, NULL, 10);
        else
            out[k].done = strtoll(v->str, NULL, 10);
    }
    return n;
}

/* Reads row r's per-type counters (one HGETALL) into r->cnt. */
static void sample_counts(struct sl_sync *c, struct row *r)
{
    char key[600];
    redisReply *x;

    r->ncnt = 0;
    if ((size_t)sl__tc_key(key, sizeof(key), r->stream, r->group) >= sizeof(key))
        return;
    x = sl__sync_cmd(c, "HGETALL %s", key);
    r->ncnt = parse_counts(x, r->cnt);
    freeReplyObject(x);
}

/* Computes the rates per type between counters a (na types) and b (nb)
 * taken dt seconds apart, the row's λ being `lambda`, into out (see the
 * file comment). Returns how many. A counter that went down (the hash
 * was deleted) counts from 0. */
static int type_rates(const struct tcount *a, int na, const struct tcount *b, int nb,
                      double dt, double lambda, struct trate *out)
{
    long long din[MAXTYPES], total = 0;
    int i, j;

    for (i = 0; i < nb; i++) {
        const struct tcount *o = NULL;
        long long dd;

        for (j = 0; j < na && o == NULL; j++)
            if (!strcmp(a[j].name, b[i].name))
                o = &a[j];
        din[i] = o == NULL || b[i].in < o->in ? b[i].in : b[i].in - o->in;
        dd = o == NULL || b[i].done < o->done ? b[i].done : b[i].done - o->done;
        total += din[i];
        snprintf(out[i].name, sizeof(out[i].name), "%s", b[i].name);
        out[i].mu = dt > 0 ? (double)dd / dt : 0;
    }
    for (i = 0; i < nb; i++)
        out[i].lambda = total > 0 ? lambda * (double)din[i] / (double)total : -1;
    return nb;
}

/* Reads the per-type sample with exactly the ID `id` into out. Returns
 * how many types (0 when there is none). */
static int types_at(struct sl_sync *c, const char *key, const char *id, struct tcount *out)
{
    redisReply *x = sl__sync_cmd(c, "XRANGE %s %s %s", key, id, id);
    int n = 0;

    if (x != NULL && x->type == REDIS_REPLY_ARRAY && x->elements == 1 &&
        x->element[0]->type == REDIS_REPLY_ARRAY && x->element[0]->elements == 2)
        n = parse_counts(x->element[0]->element[1], out);
    freeReplyObject(x);
    return n;
}

/* Samples every group of every configured stream into s. Returns 0, or
 * -1 when Redis failed (a stream that does not exist yet is no failure). */
static int sample(struct sl_sync *c, const struct sl_config *cfg, struct sample *s)
{
    size_t w, i;

    s->nrows = s->nbeats = 0;
    s->t = now_s();
    for (w = 0; w < cfg->nworkers; w++) {
        const char *stream = cfg->workers[w].stream;
        redisReply *info, *groups;
        int seen = 0;

        for (i = 0; i < w; i++)
            seen |= strcmp(cfg->workers[i].stream, stream) == 0;
        if (seen)
            continue;
        /* In a cluster, every key read below is the stream's or carries
         * its hash tag: all of them go to the stream's master. */
        sl__sync_route(c, stream, 1);
        info = sl__sync_cmd(c, "XINFO STREAM %s", stream);
        if (info == NULL)
            return -1;
        if (info->type == REDIS_REPLY_ERROR) {
            int missing = strstr(info->str, "no such key") != NULL;
            if (!missing)
                fprintf(stderr, "sluice: redis: XINFO STREAM %s: %s\n", stream, info->str);
            freeReplyObject(info);
            if (missing)
                continue;       /* no such stream yet */
            return -1;
        }
        groups = sl__sync_cmd(c, "XINFO GROUPS %s", stream);
        if (groups == NULL) {
            freeReplyObject(info);
            return -1;
        }
        for (i = 0; groups->type == REDIS_REPLY_ARRAY && i < groups->elements && s->nrows < MAXROWS; i++) {
            const redisReply *g = groups->element[i];
            struct row *r = &s->rows[s->nrows++];
            redisReply *x;

            memset(r, 0, sizeof(*r));
            snprintf(r->stream, sizeof(r->stream), "%s", stream);
            snprintf(r->group, sizeof(r->group), "%s", fstr(g, "name"));
            r->length = fint(info, "length", 0);
            r->added = fint(info, "entries-added", 0);
            r->lag = fint(g, "lag", -1);
            r->pending = fint(g, "pending", 0);
            r->read = fint(g, "entries-read", -1);
            r->consumers = fint(g, "consumers", 0);
            r->oldest_ms = -1;
            x = sl__sync_cmd(c, "XPENDING %s %s - + 1", stream, r->group);
            if (x != NULL && x->type == REDIS_REPLY_ARRAY && x->elements == 1 &&
                x->element[0]->type == REDIS_REPLY_ARRAY && x->element[0]->elements == 4 &&
                x->element[0]->element[2]->type == REDIS_REPLY_INTEGER)
                r->oldest_ms = x->element[0]->element[2]->integer;
            freeReplyObject(x);
            x = sl__sync_cmd(c, "XLEN %s:dead", stream);
            if (x != NULL && x->type == REDIS_REPLY_INTEGER)
                r->dead = x->integer;
            freeReplyObject(x);
            sample_counts(c, r);
            r->t = now_s();
        }
        freeReplyObject(groups);
        freeReplyObject(info);
    }
    return sample_beats(c, cfg, s);
}

/* Returns the number of field `name` in a stream entry's flat field
 * list, or -1 when it is missing. */
static long long efield(const redisReply *f, const char *name)
{
    size_t i;

    for (i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2)
        if (f->element[i]->type == REDIS_REPLY_STRING && !strcmp(f->element[i]->str, name) &&
            f->element[i + 1]->type == REDIS_REPLY_STRING)
            return strtoll(f->element[i + 1]->str, NULL, 10);
    return -1;
}

/* Reads row r's rate samples of the last RATE_WINDOW_S seconds (one
 * XREVRANGE) and sets r->win, r->win_lambda and r->win_mu when they span
 * at least RATE_MIN_S and the newest is fresh; leaves r->win 0 otherwise.
 * `now` is this machine's clock, seconds; the sample IDs are Redis's. */
static void rate_window(struct sl_sync *c, struct row *r, double now)
{
    char key[600];
    redisReply *x;
    const redisReply *nw, *od;
    long long t1, t0, a1, a0, d1, d0;

    r->win = 0;
    r->nwcnt[0] = r->nwcnt[1] = 0;
    if ((size_t)sl__rate_key(key, sizeof(key), r->stream, r->group) >= sizeof(key))
        return;
    sl__sync_route(c, r->stream, 1);    /* the stream's master in a cluster */
    x = sl__sync_cmd(c, "XREVRANGE %s + - COUNT %d", key, RATE_WINDOW_S / 5 + 1);
    if (x == NULL || x->type != REDIS_REPLY_ARRAY || x->elements < 2)
        goto done;
    nw = x->element[0];
    od = x->element[x->elements - 1];
    if (nw->type != REDIS_REPLY_ARRAY || nw->elements != 2 || od->type != REDIS_REPLY_ARRAY ||
        od->elements != 2 || nw->element[0]->type != REDIS_REPLY_STRING ||
        od->element[0]->type != REDIS_REPLY_STRING)
        goto done;
    t1 = strtoll(nw->element[0]->str, NULL, 10);
    t0 = strtoll(od->element[0]->str, NULL, 10);
    a1 = efield(nw->element[1], "added");
    a0 = efield(od->element[1], "added");
    d1 = efield(nw->element[1], "read") - efield(nw->element[1], "pending");
    d0 = efield(od->element[1], "read") - efield(od->element[1], "pending");
    /* Redis's clock against ours: a host whose clock is off by more
     * than RATE_FRESH_S sees no fresh samples and measures live. */
    if (t1 - t0 < RATE_MIN_S * 1000 || (double)t1 / 1000.0 < now - RATE_FRESH_S ||
        a1 < a0 || a0 < 0 || d1 < d0)
        goto done;      /* too short, stale, or the stream was made anew */
    r->win = (double)(t1 - t0) / 1000.0;
    r->win_lambda = (double)(a1 - a0) / r->win;
    r->win_mu = (double)(d1 - d0) / r->win;
    /* The per-type counters sampled under the same two IDs. */
    if ((size_t)sl__tc_types_key(key, sizeof(key), r->stream, r->group) < sizeof(key)) {
        r->nwcnt[0] = types_at(c, key, od->element[0]->str, r->wcnt[0]);
        r->nwcnt[1] = r->nwcnt[0] > 0 ? types_at(c, key, nw->element[0]->str, r->wcnt[1]) : 0;
    }
done:
    freeReplyObject(x);
}

/* Returns the entries processed between samples a and b by the workers of
 * row `rb` of b, counted per consumer (see the file comment). */
static long long processed_between(const struct sample *a, const struct sample *b, int rb)
{
    long long n = 0;
    int i, j;

    for (i = 0; i < b->nbeats; i++) {
        const struct beat *nb = &b->beats[i];
        const struct beat *ob = NULL;
        if (nb->row != rb)
            continue;
        for (j = 0; j < a->nbeats && ob == NULL; j++)
            if (!strcmp(a->beats[j].consumer, nb->consumer))
                ob = &a->beats[j];
        if (ob != NULL && ob->started == nb->started)
            n += nb->processed > ob->processed ? nb->processed - ob->processed : 0;
        else if ((double)nb->started / 1000.0 >= a->t)
            n += nb->processed;     /* started during the window */
    }
    return n;
}

/* The table of `sluice stats`: the narrowest widths; a longer stream
 * or group name widens its column on every row. */
static const struct sl_col stats_table[] = {
    { "STREAM", -16 }, { "GROUP", -18 }, { "LENGTH", 8 }, { "LAG", 8 }, { "PENDING", 8 },
    { "CONS", 5 }, { "OLDEST_MS", 10 }, { "DEAD", 6 }, { "LAMBDA/s", 9 }, { "MU/s", 9 },
    { "RHO", 6 }, { "L", 8 }, { "W_s", 9 }, { "WIN_s", 6 }
};

/* Prints (or adds to doc) the figures between samples a and b. */
static void report(const struct sample *a, const struct sample *b, int json, json_t *doc)
{
    struct sl_table t;
    int i, j;

    sl__table_init(&t, stats_table, (int)SL_NELEM(stats_table));
    for (i = 0; i < b->nrows; i++) {
        const struct row *r = &b->rows[i];
        const struct row *o = NULL;
        double dt = 0, lambda = 0, mu = 0, rho = -1, w = -1, win = 0;
        long long l, added;
        char rho_s[16] = "-", w_s[24] = "-";
        struct trate tr[MAXTYPES];
        int ntr = 0, k;

        for (j = 0; j < a->nrows; j++)
            if (!strcmp(a->rows[j].stream, r->stream) && !strcmp(a->rows[j].group, r->group))
                o = &a->rows[j];
        if (o != NULL && (dt = r->t - o->t) > 0) {
            /* A stream deleted and created again restarts entries-added. */
            added = r->added >= o->added ? r->added - o->added : r->added;
            lambda = (double)added / dt;
            if (r->read >= 0 && o->read >= 0 && r->read - r->pending >= o->read - o->pending)
                mu = (double)((r->read - r->pending) - (o->read - o->pending)) / dt;
            else
                mu = (double)processed_between(a, b, i) / dt;
            win = dt;
        }
        if (r->win > 0) {
            lambda = r->win_lambda;
            mu = r->win_mu;
            win = r->win;
        }
        if (r->win > 0 && r->nwcnt[0] > 0 && r->nwcnt[1] > 0)
            ntr = type_rates(r->wcnt[0], r->nwcnt[0], r->wcnt[1], r->nwcnt[1], r->win, lambda, tr);
        else if (r->win <= 0 && o != NULL && dt > 0 && r->ncnt > 0)
            ntr = type_rates(o->cnt, o->ncnt, r->cnt, r->ncnt, dt, lambda, tr);
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
            /* A group name is bytes anyone can choose: sl__json_text
             * keeps one that is not UTF-8, which "s" would refuse. */
            json_t *o2 = json_pack("{s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:I}",
                                   "stream", sl__json_text(r->stream, strlen(r->stream)),
                                   "group", sl__json_text(r->group, strlen(r->group)),
                                   "length", (json_int_t)r->length, "pending", (json_int_t)r->pending,
                                   "consumers", (json_int_t)r->consumers,
                                   "dead", (json_int_t)r->dead, "entries_added", (json_int_t)r->added,
                                   "processed", (json_int_t)r->processed,
                                   "lambda", lambda, "mu", mu, "L", (json_int_t)l);
            if (o2 == NULL)
                continue;
            json_object_set_new(o2, "lag", r->lag >= 0 ? json_integer(r->lag) : json_null());
            json_object_set_new(o2, "oldest_pending_ms",
                                r->oldest_ms >= 0 ? json_integer(r->oldest_ms) : json_null());
            json_object_set_new(o2, "rho", rho >= 0 ? json_real(rho) : json_null());
            /* The seconds λ and μ are measured over. */
            json_object_set_new(o2, "window_s", win > 0 ? json_real(win) : json_null());
            json_object_set_new(o2, "W", w >= 0 ? json_real(w) : json_null());
            /* λ and μ per event type, over the same window. */
            {
                json_t *ta = json_array();
                for (k = 0; ta != NULL && k < ntr; k++) {
                    json_t *t = json_object();
                    if (t == NULL)
                        break;
                    json_object_set_new(t, "type", sl__json_text(tr[k].name, strlen(tr[k].name)));
                    json_object_set_new(t, "lambda", tr[k].lambda >= 0 ? json_real(tr[k].lambda) :
                                                                         json_null());
                    json_object_set_new(t, "mu", json_real(tr[k].mu));
                    json_array_append_new(ta, t);
                }
                if (ta != NULL)
                    json_object_set_new(o2, "types", ta);
            }
            json_array_append_new(doc, o2);
        } else {
            char len_s[24], lag_s[24], pend_s[24], cons_s[24], old_s[24], dead_s[24];
            char lam_s[32], mu_s[32], l_s[24], win_s[32];
            struct sl_cells cells = { { NULL } };
            const char *row[SL_NELEM(stats_table)];

            snprintf(len_s, sizeof(len_s), "%lld", r->length);
            snprintf(lag_s, sizeof(lag_s), r->lag >= 0 ? "%lld" : "-", r->lag);
            snprintf(pend_s, sizeof(pend_s), "%lld", r->pending);
            snprintf(cons_s, sizeof(cons_s), "%lld", r->consumers);
            snprintf(old_s, sizeof(old_s), r->oldest_ms >= 0 ? "%lld" : "-", r->oldest_ms);
            snprintf(dead_s, sizeof(dead_s), "%lld", r->dead);
            snprintf(lam_s, sizeof(lam_s), "%.1f", lambda);
            snprintf(mu_s, sizeof(mu_s), "%.1f", mu);
            snprintf(l_s, sizeof(l_s), "%lld", l);
            snprintf(win_s, sizeof(win_s), "%.1f", win);
            /* Names are escaped: a group name could drive the terminal. */
            row[0] = sl__cell(&cells, 0, r->stream, strlen(r->stream));
            row[1] = sl__cell(&cells, 1, r->group, strlen(r->group));
            row[2] = len_s;
            row[3] = lag_s;
            row[4] = pend_s;
            row[5] = cons_s;
            row[6] = old_s;
            row[7] = dead_s;
            row[8] = lam_s;
            row[9] = mu_s;
            row[10] = rho_s;
            row[11] = l_s;
            row[12] = w_s;
            row[13] = win_s;
            (void)sl__table_add(&t, (int)SL_NELEM(row), row);
            /* A stream that carries several types: one row per type
             * under it, with its λ and μ (the row ends at MU/s). */
            for (k = 0; ntr > 1 && k < ntr; k++) {
                const char *trow[10] = { "  type", NULL, "", "", "", "", "", "", lam_s, mu_s };
                snprintf(lam_s, sizeof(lam_s), "-");
                if (tr[k].lambda >= 0)
                    snprintf(lam_s, sizeof(lam_s), "%.1f", tr[k].lambda);
                snprintf(mu_s, sizeof(mu_s), "%.1f", tr[k].mu);
                trow[1] = sl__cell(&cells, 2, tr[k].name, strlen(tr[k].name));
                (void)sl__table_add(&t, (int)SL_NELEM(trow), trow);
            }
            sl__cells_free(&cells);
        }
    }
    if (!json && sl__table_print(&t, stdout) != 0)
        fprintf(stderr, "sluice: out of memory: a row is missing\n");
    sl__table_free(&t);
}

/* Sleeps s seconds (fractions allowed). */
static void nap(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

    while (nanosleep(&ts, &ts) < 0)
        ;
}

/* sluice stats [--json] [--watch SECONDS]: one report over a 1 s window,
 * or with --watch one every SECONDS (the window) until interrupted.
 * Returns the exit code: 0, 1 when Redis fails, 2 for bad usage. */
int sl__stats(const struct sl_args *a, const struct sl_config *cfg)
{
    static struct sample s1, s2;
    struct sample *before = &s1, *after = &s2, *tmp;
    double window = 1.0;
    struct sl_sync *c;
    int tty = isatty(STDOUT_FILENO), reports = 0;

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
    if ((c = sl__admin_connect(cfg)) == NULL)
        return 1;
    if (sample(c, cfg, before) < 0)
        goto fail;
    for (;;) {
        json_t *doc = json_array();
        nap(window);
        if (sample(c, cfg, after) < 0) {
            json_decref(doc);
            goto fail;
        }
        if (!a->watch) {
            int k;
            for (k = 0; k < after->nrows; k++)
                rate_window(c, &after->rows[k], now_s());
        }
        /* Clearing the screen is for a terminal: into a pipe or a file,
         * each report follows the last after a blank line. */
        if (a->watch && !a->json) {
            if (tty)
                printf("\033[H\033[2J");
            else if (reports > 0)
                putchar('\n');
        }
        reports++;
        report(before, after, a->json, doc);
        if (a->json) {
            char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | SL_JSON_DIGITS);
            if (s)
                puts(s);
            free(s);
        }
        json_decref(doc);
        fflush(stdout);
        if (!a->watch)
            break;
        tmp = before;
        before = after;
        after = tmp;
    }
    sl__sync_free(c);
    return 0;
fail:
    fprintf(stderr, "sluice: redis: %s\n", c->errstr[0] ? c->errstr : "unexpected reply");
    sl__sync_free(c);
    return 1;
}
