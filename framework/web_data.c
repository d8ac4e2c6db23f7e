/* web_data.c -- what the dashboard shows, read from Redis into JSON
 * (docs/dashboard.md). Nothing here scans the keyspace: the streams are
 * the configured ones plus those named on the command line, their
 * groups come from XINFO GROUPS, and every read is bounded (a page of
 * dead letters, a count of pending entries, SL_WEB_SCAN_MAX entries for
 * a filtered page or one purge step).
 *
 * The overview is read in two pipelined rounds, whatever the number of
 * streams: first XINFO STREAM, XINFO GROUPS and XLEN <stream>:dead of
 * every stream; then, per group, its oldest pending entry and the rate
 * samples it has not read yet, and per stream with dead letters the
 * codes of the latest ones. So 1,000 streams cost two round trips plus
 * the replies, never one round trip per key.
 *
 * Dead letters by code: complete counts, kept per stream between reads
 * as /metrics keeps them (dlq_count.lua: a page of dead letters counted
 * inside Redis, only the counts cross the network; then only what is
 * new). Each overview counts at most DEAD_PAGES pages of DEAD_PAGE,
 * shared round-robin by the streams, so a refresh costs bounded work
 * whatever the streams hold; until a stream's count has caught up, its
 * codes are those of its latest DEAD_CODES_SAMPLE dead letters, marked
 * "dead_codes_complete": false. On the pool's listener the snapshot's own
 * tallies (snapshot.c, brought up to date just before) are used instead.
 *
 * Rates: the samples a pool keeps in Redis, the stream
 * sluice:rate:<stream>:<group> (one entry per sample, ID = sample time
 * in ms, fields added, read, pending and lag), are read incrementally:
 * the first read takes the last hour, later ones only what is new.
 * λ = Δadded/Δt and μ = Δ(read - pending)/Δt between the two latest
 * samples; the chart keeps one point per minute. A stream without
 * samples (no pool keeps them) gets λ and μ from this process's own
 * readings, SLOW_MARK_MS apart, marked "rate_source": "live". Since the
 * samples live in Redis, a restart of the dashboard loses no history.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include "internal.h"
#include "heartbeat.h"
#include "scripts.h"
#include "web.h"
#include "pool.h"

#define RATE_PREFIX "sluice:rate:"  /* rate samples: RATE_PREFIX<stream>:<group> */
#define HOUR_MS 3600000LL          /* the chart's span */
#define CHART_STEP_MS 60000LL      /* one chart point per minute */
#define SAMPLE_FRESH_MS 60000LL    /* samples older than this: no sampler runs now */
#define OWN_MARK_MS 5000ULL        /* own readings at least this far apart */
#define RATE_READ_MAX 1000         /* rate samples read per group per overview */
#define DEAD_CODES_SAMPLE 100      /* latest dead letters whose codes are shown until the tally is complete */
#define DEAD_PAGE 500             /* dead letters one dlq_count.lua call counts */
#define DEAD_PAGES 10             /* dlq_count.lua calls per overview, all streams together */
#define RHO_NOISE 1.02            /* ρ above this asks for attention (2% of measuring noise) */
#define PURGE_PAGE 500            /* dead letters one dlq_purge.lua call reads */
#define PREVIEW_BYTES 160          /* bytes of data shown in a dead-letter list */
#define STR_(x) #x
#define XSTR(x) STR_(x)             /* a number macro as a string literal */

/* One rate sample, or one reading of our own. */
struct pt {
    long long t;                  /* ms since the epoch */
    double added;                 /* the stream's entries-added */
    double done;                  /* group entries-read minus pending, -1 unknown */
    long long lag;                /* group lag, -1 unknown */
    long long dead;               /* dead letters (own readings only) */
};

/* What the overview keeps about one stream and group between reads. */
struct row {
    char *stream;                 /* stream key (owned) */
    char *group;                  /* group name (owned) */
    char last_id[48];             /* last rate sample read, "" none yet */
    struct pt pts[SL_WEB_CHART_PTS + 1]; /* chart points, one a minute at most, oldest first */
    int npts;
    struct pt raw[2];             /* the two latest samples, older first */
    int nraw;
    struct pt own[2];             /* own readings OWN_MARK_MS apart, older first */
    int nown;
    int live;                     /* live workers (heartbeats) in the last read */
    int used;                     /* seen in the last read */
};

struct sl_web_state {
    char **streams;               /* streams shown (owned) */
    size_t nstreams;
    struct row *rows;             /* every stream x group seen (owned) */
    size_t nrows, caprows;
    struct sl_dead_tally *tally;  /* dead letters by code, one per stream (owned) */
    size_t tally_next;            /* the stream whose tally is brought up to date first */
    struct sl_dead_tally *ext;    /* a copy of the pool snapshot's tallies, used instead (owned), or NULL */
    size_t next_ext;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/* Formats a failure into err and returns NULL. */
static void *fail(char *err, size_t errlen, const struct sl_sync *c, const char *what)
{
    sl__put_err(err, errlen, "%s: %s", what, c != NULL && c->err ? c->errstr : "unexpected reply");
    return NULL;
}

/* The same for a read through io: a replay that mismatched says so. */
static void *io_fail(char *err, size_t errlen, const struct sl_web_io *io, const char *what)
{
    if (io->rp != NULL && io->rp->mismatch) {
        sl__put_err(err, errlen, "%s: the commands of a read changed while it ran", what);
        return NULL;
    }
    return fail(err, errlen, io->sync, what);
}

/* Returns the reply of a flat name/value array for `name`, or NULL. */
static const redisReply *kv(const redisReply *r, const char *name)
{
    size_t i;

    for (i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1];
    return NULL;
}

/* Returns the integer at `name` of a flat reply (an integer reply, or a
 * string holding one), or dflt. */
static long long kv_int(const redisReply *r, const char *name, long long dflt)
{
    const redisReply *v = kv(r, name);

    if (v == NULL)
        return dflt;
    if (v->type == REDIS_REPLY_INTEGER)
        return v->integer;
    if (v->type == REDIS_REPLY_STRING && v->len > 0)
        return strtoll(v->str, NULL, 10);
    return dflt;
}

/* Returns 1 when r is a string reply. */
static int is_str(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* Returns the integer of an integer reply, else 0. */
static long long int_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

/* Returns the text of r as JSON (new), or json_null() when r is no string. */
static json_t *jtext(const redisReply *r)
{
    return is_str(r) ? sl__json_text(r->str, (size_t)r->len) : json_null();
}

/* Writes "<stream>:dead" into buf. Returns 0, or -1 when it does not fit. */
static int dead_key(char *buf, size_t size, const char *stream)
{
    int n = snprintf(buf, size, "%s:dead", stream);

    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Returns 1 when id is a stream ID a client may name: "MS" or "MS-SEQ",
 * digits only, so that "-", "+" or "(" can never widen a read. */
static int id_ok(const char *id)
{
    size_t i = 0, d = 0;

    if (id == NULL)
        return 0;
    while (id[i] >= '0' && id[i] <= '9')
        i++, d++;
    if (d == 0 || d > 20)
        return 0;
    if (id[i] == '\0')
        return 1;
    if (id[i++] != '-')
        return 0;
    for (d = 0; id[i] >= '0' && id[i] <= '9'; i++)
        d++;
    return d > 0 && d <= 20 && id[i] == '\0';
}

/* Writes the code of a dead letter's error (see web.h). */
void sl__web_code(const char *error, size_t len, char *code, size_t size)
{
    size_t n = 0;

    while (n < len && n + 1 < size && error[n] != ':')
        n++;
    memcpy(code, error, n);
    code[n] = '\0';
}

/* ------------------------------------------------------------------ */
/* State                                                               */
/* ------------------------------------------------------------------ */

/* Adds name to st's streams unless it is there already. Returns 0, or -1
 * when memory ran out. */
static int add_stream(struct sl_web_state *st, const char *name)
{
    if (sl__web_stream_known(st, name) || st->nstreams >= SL_WEB_MAX_STREAMS)
        return 0;
    if ((st->streams[st->nstreams] = strdup(name)) == NULL)
        return -1;
    st->nstreams++;
    return 0;
}

/* Makes the state (see web.h). */
struct sl_web_state *sl__web_state_new(const struct sl_config *cfg, const char *const *extra,
                                       size_t nextra)
{
    struct sl_web_state *st = calloc(1, sizeof(*st));
    size_t i;

    if (st == NULL)
        return NULL;
    st->streams = calloc(cfg->nworkers + nextra + 1, sizeof(*st->streams));
    st->tally = calloc(cfg->nworkers + nextra + 1, sizeof(*st->tally));
    if (st->streams == NULL || st->tally == NULL)
        goto err;
    for (i = 0; i < cfg->nworkers; i++)
        if (add_stream(st, cfg->workers[i].stream) < 0)
            goto err;
    for (i = 0; i < nextra; i++)
        if (add_stream(st, extra[i]) < 0)
            goto err;
    return st;
err:
    sl__web_state_free(st);
    return NULL;
}

/* Frees st and everything it owns; NULL is ignored. */
void sl__web_state_free(struct sl_web_state *st)
{
    size_t i;

    if (st == NULL)
        return;
    for (i = 0; st->streams != NULL && i < st->nstreams; i++)
        free(st->streams[i]);
    free(st->streams);
    free(st->tally);
    free(st->ext);
    for (i = 0; i < st->nrows; i++) {
        free(st->rows[i].stream);
        free(st->rows[i].group);
    }
    free(st->rows);
    free(st);
}

/* Tells whether st shows stream (see web.h). */
int sl__web_stream_known(const struct sl_web_state *st, const char *stream)
{
    size_t i;

    for (i = 0; stream != NULL && i < st->nstreams; i++)
        if (strcmp(st->streams[i], stream) == 0)
            return 1;
    return 0;
}

/* Returns the i-th stream (see web.h). */
const char *sl__web_stream_at(const struct sl_web_state *st, size_t i)
{
    return i < st->nstreams ? st->streams[i] : NULL;
}

/* Returns the row of stream and group, made when new (starting the search
 * at *hint, where the previous read found its successor, so that a read
 * in the same order as the last costs one comparison per row). Returns
 * NULL when memory ran out or SL_WEB_MAX_ROWS are taken. */
static struct row *row_get(struct sl_web_state *st, const char *stream, const char *group,
                           size_t *hint)
{
    size_t i, k;
    struct row *r;

    for (k = 0; k < st->nrows; k++) {
        i = (*hint + k) % st->nrows;
        r = &st->rows[i];
        if (strcmp(r->stream, stream) == 0 && strcmp(r->group, group) == 0) {
            *hint = i + 1;
            return r;
        }
    }
    if (st->nrows >= SL_WEB_MAX_ROWS)
        return NULL;
    if (st->nrows == st->caprows) {
        size_t cap = st->caprows ? 2 * st->caprows : 16;
        struct row *n = realloc(st->rows, cap * sizeof(*n));
        if (n == NULL)
            return NULL;
        st->rows = n;
        st->caprows = cap;
    }
    r = &st->rows[st->nrows];
    memset(r, 0, sizeof(*r));
    r->stream = strdup(stream);
    r->group = strdup(group);
    if (r->stream == NULL || r->group == NULL) {
        free(r->stream);
        free(r->group);
        return NULL;
    }
    *hint = ++st->nrows;
    return r;
}

/* Takes one rate sample into row r: the two latest are kept for the
 * current rates, and one a minute for the chart. */
static void row_sample(struct row *r, const struct pt *p)
{
    if (r->nraw == 2)
        r->raw[0] = r->raw[1];
    r->raw[r->nraw == 2 ? 1 : r->nraw++] = *p;
    if (r->npts == 0 || p->t - r->pts[r->npts - 1].t >= CHART_STEP_MS) {
        if (r->npts == SL_WEB_CHART_PTS + 1) {
            memmove(r->pts, r->pts + 1, SL_WEB_CHART_PTS * sizeof(r->pts[0]));
            r->npts--;
        }
        r->pts[r->npts++] = *p;
    }
}

/* Takes our own reading p into row r, keeping two OWN_MARK_MS apart. */
static void row_own(struct row *r, const struct pt *p)
{
    /* A group that had read nothing yet has no entries-read: its marks
     * start again at the first reading that has one, so μ is known one
     * mark later instead of two. */
    if (r->nown > 0 && r->own[r->nown - 1].done < 0 && p->done >= 0)
        r->nown = 0;
    if (r->nown == 0) {
        r->own[r->nown++] = *p;
    } else if (p->t - r->own[r->nown - 1].t >= (long long)OWN_MARK_MS) {
        if (r->nown == 2)
            r->own[0] = r->own[1];
        r->own[r->nown == 2 ? 1 : r->nown++] = *p;
    }
}

/* Computes λ and μ per second between a and b into *lambda and *mu (-1
 * when unknown). A counter that went down (the stream was deleted and
 * made again) counts from 0. */
static void rates(const struct pt *a, const struct pt *b, double *lambda, double *mu)
{
    double dt = (double)(b->t - a->t) / 1000.0;

    *lambda = *mu = -1;
    if (dt <= 0)
        return;
    *lambda = (b->added >= a->added ? b->added - a->added : b->added) / dt;
    if (a->done >= 0 && b->done >= 0)
        *mu = (b->done >= a->done ? b->done - a->done : 0) / dt;
}

/* ------------------------------------------------------------------ */
/* Pipelines                                                           */
/* ------------------------------------------------------------------ */

/* Pipelines and replays. `sluice web` reads through a synchronous
 * connection. The pool's supervisor never waits on Redis, so there the
 * same code runs against a replay (io->rp): each run issues its commands
 * in the same order, given the same replies; a reply that has not come
 * yet makes the run stop (io_ready() is 0) before anything is kept, web.c
 * sends the commands the run added on the supervisor's asynchronous
 * connection and runs it again once their replies are in. The commands
 * of a run depend only on the replies and on what the state kept from
 * earlier reads (which a stopped run does not change), so a later run
 * issues the same ones again; a run whose commands differ from those
 * recorded fails instead of using the wrong replies. */

/* Returns a deep copy of r (new), or NULL when memory ran out. */
static redisReply *reply_copy(const redisReply *r)
{
    redisReply *c = calloc(1, sizeof(*c));
    size_t i;

    if (c == NULL)
        return NULL;
    c->type = r->type;
    c->integer = r->integer;
    if (r->str != NULL) {
        if ((c->str = malloc((size_t)r->len + 1)) == NULL) {
            free(c);
            return NULL;
        }
        memcpy(c->str, r->str, (size_t)r->len);
        c->str[r->len] = '\0';
        c->len = r->len;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        if ((c->element = calloc(r->elements, sizeof(*c->element))) == NULL) {
            freeReplyObject(c);
            return NULL;
        }
        c->elements = r->elements;
        for (i = 0; i < r->elements; i++)
            if ((c->element[i] = reply_copy(r->element[i])) == NULL) {
                freeReplyObject(c);
                return NULL;
            }
    }
    return c;
}

/* Grows rp's arrays to hold one more command. Returns 0 or -1. */
static int replay_grow(struct sl_web_replay *rp)
{
    size_t cap = rp->cap ? 2 * rp->cap : 64;
    struct sl_web_cmd *cmd;
    size_t *fifo;

    if (rp->n < rp->cap)
        return 0;
    if ((cmd = realloc(rp->cmd, cap * sizeof(*cmd))) == NULL)
        return -1;
    rp->cmd = cmd;
    if ((fifo = realloc(rp->fifo, cap * sizeof(*fifo))) == NULL)
        return -1;
    rp->fifo = fifo;
    rp->cap = cap;
    return 0;
}

/* Issues one command of a replay's run: checks it against the one
 * recorded at its place, or records it (to be sent). Returns its index,
 * or -1 (out of memory, or a mismatch: rp->mismatch). */
static long replay_issue(struct sl_web_replay *rp, int argc, const char **argv)
{
    size_t i = rp->issued, k;
    struct sl_web_cmd *m;

    if (rp->mismatch)
        return -1;
    if (i < rp->n) {
        m = &rp->cmd[i];
        for (k = 0; m->argc == argc && k < (size_t)argc; k++)
            if (strcmp(m->argv[k], argv[k]) != 0)
                break;
        if (m->argc != argc || k < (size_t)argc) {
            rp->mismatch = 1;
            return -1;
        }
    } else {
        if (replay_grow(rp) < 0 || rp->issued >= SL_WEB_REPLAY_MAX)
            return -1;
        m = &rp->cmd[rp->n];
        memset(m, 0, sizeof(*m));
        if ((m->argv = calloc((size_t)argc, sizeof(*m->argv))) == NULL)
            return -1;
        for (k = 0; k < (size_t)argc; k++)
            if ((m->argv[k] = strdup(argv[k])) == NULL) {
                while (k-- > 0)
                    free(m->argv[k]);
                free(m->argv);
                return -1;
            }
        m->argc = argc;
        rp->n++;
    }
    rp->issued++;
    return (long)i;
}

/* The reply of command i (new: a copy), or NULL when it has not come
 * (the run is then pending) or memory ran out. `fake`: hand a nil reply
 * instead of NULL when it has not come, so that a walk goes on and
 * issues all its commands in this run (io_ready() is 0 all the same). */
static redisReply *replay_reply(struct sl_web_replay *rp, long i, int fake)
{
    const struct sl_web_cmd *m = &rp->cmd[i];

    if (m->have && m->reply != NULL)
        return reply_copy(m->reply);
    if (m->have) {
        rp->failed = 1;           /* the connection failed it */
        return NULL;
    }
    rp->pending = 1;
    return fake ? calloc(1, sizeof(redisReply)) : NULL;  /* type 0: not any reply type */
}

/* Appends one command (see the section comment). Returns 0 or -1. */
static int append(struct sl_web_io *io, int argc, const char **argv)
{
    struct sl_web_replay *rp = io->rp;
    long i;

    if (rp == NULL)
        return sl__sync_append(io->sync, argc, argv, NULL);
    if ((i = replay_issue(rp, argc, argv)) < 0)
        return -1;
    rp->fifo[rp->nfifo++] = (size_t)i;
    return 0;
}

/* Reads the next pipelined reply (new), or NULL when the connection
 * failed (or, replayed, the reply has not come yet). */
static redisReply *next_reply(struct sl_web_io *io)
{
    struct sl_web_replay *rp = io->rp;

    if (rp == NULL)
        return sl__sync_get_reply(io->sync);
    if (rp->fifo_rd >= rp->nfifo)
        return NULL;
    return replay_reply(rp, (long)rp->fifo[rp->fifo_rd++], 0);
}

/* Runs one command and returns its reply (new), or NULL. Replayed, a
 * reply that has not come is a nil reply (see replay_reply). */
static redisReply *io_call(struct sl_web_io *io, int argc, const char **argv)
{
    long i;

    if (io->rp == NULL)
        return sl__sync_argv(io->sync, argc, argv, NULL);
    if ((i = replay_issue(io->rp, argc, argv)) < 0)
        return NULL;
    return replay_reply(io->rp, i, 1);
}

/* Returns 1 when every command issued so far has its reply: what a run
 * may keep is kept only then. A synchronous connection always has. */
static int io_ready(const struct sl_web_io *io)
{
    const struct sl_web_replay *rp = io->rp;
    size_t i;

    if (rp == NULL)
        return 1;
    if (rp->pending || rp->mismatch || rp->failed)
        return 0;
    for (i = 0; i < rp->issued; i++)
        if (!rp->cmd[i].have)
            return 0;
    return 1;
}

/* The clock of a read: a replay keeps the time its first run began, so
 * that its commands (which name times) stay the same run after run. */
static long long io_now(const struct sl_web_io *io)
{
    return io->rp != NULL && io->rp->now > 0 ? io->rp->now : (long long)sl__wall_ms();
}

/* Starts one run of a replay: nothing issued yet. */
void sl__web_replay_rewind(struct sl_web_replay *rp)
{
    rp->issued = 0;
    rp->nfifo = 0;
    rp->fifo_rd = 0;
    rp->pending = 0;
}

/* Frees what rp holds and empties it (for a new read). */
void sl__web_replay_clear(struct sl_web_replay *rp)
{
    size_t i;
    int k;

    for (i = 0; i < rp->n; i++) {
        for (k = 0; k < rp->cmd[i].argc; k++)
            free(rp->cmd[i].argv[k]);
        free(rp->cmd[i].argv);
        freeReplyObject(rp->cmd[i].reply);
    }
    free(rp->cmd);
    free(rp->fifo);
    memset(rp, 0, sizeof(*rp));
}

/* What the first round learnt about one stream. */
struct sinfo {
    redisReply *info;             /* XINFO STREAM, or an error reply (new) */
    redisReply *groups;           /* XINFO GROUPS (new) */
    long long dead;               /* XLEN <stream>:dead */
};

/* A heartbeat walk through io: the runner's and the visitor's argument. */
struct hb_io {
    struct sl_web_io *io;         /* where the commands go */
    sl_hb_visit *visit;           /* the visitor */
    void *arg;                    /* its argument */
};

/* Runs one command of the heartbeat walk. */
static redisReply *hb_run(struct sl_sync *c, int argc, const char **argv, void *arg)
{
    struct hb_io *h = arg;

    (void)c;
    return io_call(h->io, argc, argv);
}

/* Hands one heartbeat to the walk's own visitor. */
static int hb_visit(const char *consumer, size_t len, const redisReply *fields, void *arg)
{
    struct hb_io *h = arg;

    return h->visit(consumer, len, fields, h->arg);
}

/* Walks the live heartbeats through io (sl__hb_walk's return). */
static int io_walk(struct sl_web_io *io, const char *const *fields, int nfields,
                   sl_hb_visit *visit, void *arg)
{
    struct hb_io h;

    h.io = io;
    h.visit = visit;
    h.arg = arg;
    /* On a cluster (a synchronous connection with the configuration):
     * the registry of each configured stream's hash tag, on its master. */
    if (io->rp == NULL && io->cfg != NULL)
        return sl__hb_walk_cfg(io->sync, io->cfg, fields, nfields, hb_run, hb_visit, &h);
    return sl__hb_walk(io->sync, fields, nfields, hb_run, hb_visit, &h);
}

/* Heartbeat walk for the overview: counts live workers per row. */
struct beats {
    struct sl_web_state *st;      /* its rows (those marked used are this read's) */
    size_t hint;                  /* where the last heartbeat's row was */
};


/* Counts one heartbeat (fields stream, group) on its row. */
static int hb_count(const char *consumer, size_t len, const redisReply *h, void *arg)
{
    struct beats *b = arg;
    size_t i;

    (void)consumer;
    (void)len;
    if (h->type != REDIS_REPLY_ARRAY || h->elements != 2 || !is_str(h->element[0]) ||
        !is_str(h->element[1]))
        return 0;
    for (i = 0; i < b->st->nrows; i++) {
        struct row *r = &b->st->rows[(b->hint + i) % b->st->nrows];
        if (r->used && strcmp(r->stream, h->element[0]->str) == 0 &&
            strcmp(r->group, h->element[1]->str) == 0) {
            r->live++;
            b->hint = (size_t)(r - b->st->rows);
            break;
        }
    }
    return 0;
}

/* Builds the JSON chart of row r: λ and μ per minute over the last hour. */
static json_t *row_chart(const struct row *r, long long now)
{
    json_t *t = json_array(), *l = json_array(), *m = json_array();
    int i;

    for (i = 1; i < r->npts; i++) {
        double lambda, mu;
        if (r->pts[i].t < now - HOUR_MS)
            continue;
        rates(&r->pts[i - 1], &r->pts[i], &lambda, &mu);
        json_array_append_new(t, json_integer(r->pts[i].t));
        json_array_append_new(l, lambda >= 0 ? json_real(lambda) : json_null());
        json_array_append_new(m, mu >= 0 ? json_real(mu) : json_null());
    }
    return json_pack("{s:o,s:o,s:o}", "t", t, "lambda", l, "mu", m);
}

/* Brings tally t of `stream` towards its dead letters (dead of them now)
 * with at most *budget dlq_count.lua calls, taken from *budget. Sets
 * t->in_sync when it covers them all. Returns 0, or -1 when Redis failed
 * (reported by the caller). Only on a synchronous connection (`sluice
 * web`): the pool uses its snapshot's tallies. A stream whose count went down
 * (replayed, purged, trimmed) is counted again from its start. */
static int tally_update(struct sl_web_io *io, const char *stream, struct sl_dead_tally *t,
                        long long dead, int *budget)
{
    const struct sl_lua *l = sl__script(SL_SCRIPT_DLQ_COUNT);
    char dkey[2 * SL_KEYLEN];

    if (dead_key(dkey, sizeof(dkey), stream) < 0)
        return 0;
    t->in_sync = 0;
    if (t->next[0] == '\0' || t->counted > dead)
        sl__tally_reset(t);         /* new (zeroed), or dead letters went: from the start */
    while (*budget > 0) {
        const char *argv[] = { "EVAL", l->src, "1", dkey, t->next, XSTR(DEAD_PAGE) };
        redisReply *r = io_call(io, (int)SL_NELEM(argv), argv);
        const redisReply *codes;
        long long len;
        size_t j;
        int end;

        (*budget)--;
        if (r == NULL)
            return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !is_str(r->element[0]) ||
            r->element[0]->len > 60 || r->element[1]->type != REDIS_REPLY_INTEGER ||
            r->element[2]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);     /* a wrong type, a script error: no tally */
            sl__tally_reset(t);
            return 0;
        }
        len = r->element[1]->integer;
        codes = r->element[2];
        for (j = 0; j + 1 < codes->elements; j += 2)
            if (is_str(codes->element[j]) && codes->element[j + 1]->type == REDIS_REPLY_INTEGER)
                sl__tally_add(t, codes->element[j]->str, (size_t)codes->element[j]->len,
                          codes->element[j + 1]->integer);
        if (r->element[0]->len > 0)
            snprintf(t->next, sizeof(t->next), "(%s", r->element[0]->str);
        end = r->element[0]->len == 0 || len < t->counted;
        freeReplyObject(r);
        if (end) {
            if (len == t->counted) {
                t->in_sync = 1;
                return 0;
            }
            sl__tally_reset(t);         /* entries went meanwhile: again, next time */
            return 0;
        }
    }
    return 0;
}

/* Returns the tally that covers stream i of st now (the pool's, else our
 * own), or NULL when none does. */
static const struct sl_dead_tally *tally_of(const struct sl_web_state *st, size_t i, long long dead)
{
    const struct sl_dead_tally *t = NULL;
    size_t k;

    for (k = 0; st->ext != NULL && k < st->next_ext; k++)
        if (strcmp(st->ext[k].stream, st->streams[i]) == 0) {
            /* The snapshot clears in_sync as each of its rounds starts,
             * which is when this copy is taken: its count, from the last
             * round, covers the stream when it matches the length. */
            t = &st->ext[k];
            return t->counted == dead ? t : NULL;
        }
    if (st->ext == NULL)
        t = &st->tally[i];
    return t != NULL && t->in_sync && t->counted == dead ? t : NULL;
}

/* Uses a copy of the pool snapshot's tallies (n of them) instead of
 * counting: see web.h. A copy, so that every run of one replayed read
 * sees the same tallies (and so issues the same commands), whatever the
 * snapshot counts meanwhile. Returns 0, or -1 when out of memory (then
 * no tallies are used: the latest dead letters are). */
int sl__web_state_tallies(struct sl_web_state *st, const struct sl_dead_tally *t, size_t n)
{
    free(st->ext);
    st->ext = NULL;
    st->next_ext = 0;
    if (t == NULL || n == 0)
        return 0;
    if ((st->ext = malloc(n * sizeof(*t))) == NULL)
        return -1;
    memcpy(st->ext, t, n * sizeof(*t));
    st->next_ext = n;
    return 0;
}

/* Reads the overview (see web.h and the file comment). */
json_t *sl__web_overview(struct sl_web_state *st, struct sl_web_io *io, char *err, size_t errlen)
{
    struct sinfo *si = calloc(st->nstreams + 1, sizeof(*si));
    size_t *rowof = NULL;         /* each group's row, in reply order: an index, since
                                   * st->rows moves when it grows */
    size_t *rowstream = NULL;     /* the stream index of each of those */
    json_t *doc = NULL, *rows = NULL, *out = NULL;
    long long now = io_now(io);
    size_t s, g, nr = 0, hint = 0, maxr = 0;
    struct beats beats;
    static const char *const hbf[] = { "stream", "group" };
    char key[2 * SL_KEYLEN];
    int truncated = 0;

    if (si == NULL)
        return fail(err, errlen, NULL, "out of memory");
    /* Round one: every stream's info, groups and dead-letter count. */
    for (s = 0; s < st->nstreams; s++) {
        const char *a1[] = { "XINFO", "STREAM", st->streams[s] };
        const char *a2[] = { "XINFO", "GROUPS", st->streams[s] };
        const char *a3[] = { "XLEN", key };
        if (dead_key(key, sizeof(key), st->streams[s]) < 0 || append(io, 3, a1) < 0 ||
            append(io, 3, a2) < 0 || append(io, 2, a3) < 0)
            goto redis_fail;
    }
    for (s = 0; s < st->nstreams; s++) {
        redisReply *d;
        if ((si[s].info = next_reply(io)) == NULL || (si[s].groups = next_reply(io)) == NULL ||
            (d = next_reply(io)) == NULL)
            goto redis_fail;
        si[s].dead = d->type == REDIS_REPLY_INTEGER ? d->integer : 0;
        freeReplyObject(d);
        if (si[s].groups->type == REDIS_REPLY_ARRAY)
            maxr += si[s].groups->elements;
    }
    /* The dead-letter tallies, within this overview's budget. */
    if (st->ext == NULL && io->rp == NULL && st->nstreams > 0) {
        int budget = DEAD_PAGES;
        size_t i;
        for (i = 0; i < st->nstreams; i++) {
            size_t k = (st->tally_next + i) % st->nstreams;
            struct sl_dead_tally *t = &st->tally[k];
            if (si[k].dead <= 0) {
                sl__tally_reset(t);
                t->in_sync = 1;     /* none: complete */
                continue;
            }
            if (budget == 0)
                break;              /* the others keep what they had, in sync or not */
            /* Also when in sync: one call sees what is new, and a dead
             * letter removed while another came (same length) makes the
             * count go past the length, so it starts over. */
            if (tally_update(io, st->streams[k], t, si[k].dead, &budget) < 0)
                goto redis_fail;
            if (budget == 0)
                st->tally_next = (k + 1) % st->nstreams;
        }
    }
    rowof = calloc(maxr + 1, sizeof(*rowof));
    rowstream = calloc(maxr + 1, sizeof(*rowstream));
    if (rowof == NULL || rowstream == NULL) {
        fail(err, errlen, NULL, "out of memory");
        goto out;
    }
    for (g = 0; g < st->nrows; g++)
        st->rows[g].used = st->rows[g].live = 0;
    /* Round two: per group its oldest pending entry and new rate samples;
     * per stream with dead letters, the latest ones. */
    for (s = 0; s < st->nstreams; s++) {
        const redisReply *gr = si[s].groups;
        if (si[s].dead > 0 && tally_of(st, s, si[s].dead) == NULL) {
            const char *a[] = { "XREVRANGE", key, "+", "-", "COUNT", XSTR(DEAD_CODES_SAMPLE) };
            dead_key(key, sizeof(key), st->streams[s]);
            if (append(io, 6, a) < 0)
                goto redis_fail;
        }
        for (g = 0; gr->type == REDIS_REPLY_ARRAY && g < gr->elements; g++) {
            const redisReply *gname = kv(gr->element[g], "name");
            struct row *r;
            char from[64], rkey[2 * SL_KEYLEN + 16];
            const char *xp[] = { "XPENDING", st->streams[s], "", "-", "+", "1" };
            const char *xr[] = { "XRANGE", rkey, from, "+", "COUNT", XSTR(RATE_READ_MAX) };

            if (!is_str(gname))
                continue;
            if ((r = row_get(st, st->streams[s], gname->str, &hint)) == NULL) {
                truncated = 1;
                continue;
            }
            r->used = 1;
            rowof[nr] = (size_t)(r - st->rows);
            rowstream[nr++] = s;
            xp[2] = r->group;
            snprintf(rkey, sizeof(rkey), RATE_PREFIX "%s:%s", r->stream, r->group);
            if (r->last_id[0] != '\0')
                snprintf(from, sizeof(from), "(%s", r->last_id);
            else
                snprintf(from, sizeof(from), "%lld", now - HOUR_MS);
            if (append(io, 6, xp) < 0 || append(io, 6, xr) < 0)
                goto redis_fail;
        }
    }
    /* Live workers per row, from the heartbeats (the rows this read uses
     * are marked above; nothing else is kept yet). */
    beats.st = st;
    beats.hint = 0;
    if (st->nrows > 0 && io_walk(io, hbf, (int)SL_NELEM(hbf), hb_count, &beats) == -1 &&
        io_ready(io))
        goto redis_fail;
    /* A replayed run stops here until every reply has come: what follows
     * keeps rate samples and readings in st. */
    if (!io_ready(io))
        goto redis_fail;
    rows = json_array();
    doc = json_object();
    if (rows == NULL || doc == NULL) {
        fail(err, errlen, NULL, "out of memory");
        goto out;
    }
    g = 0;
    for (s = 0; s < st->nstreams; s++) {
        json_t *codes = json_object();
        long long length = kv_int(si[s].info, "length", 0);
        long long added = kv_int(si[s].info, "entries-added", 0);
        int exists = si[s].info->type == REDIS_REPLY_ARRAY;
        const struct sl_dead_tally *tl = tally_of(st, s, si[s].dead);
        size_t k, ng = 0;

        if (codes == NULL)
            goto oom;
        for (k = 0; tl != NULL && k < tl->ncodes; k++) {
            char code[64];
            json_t *n;
            sl__web_code(tl->codes[k].code, strlen(tl->codes[k].code), code, sizeof(code));
            n = json_object_get(codes, code);
            json_object_set_new(codes, code, json_integer((n ? json_integer_value(n) : 0) +
                                                          tl->codes[k].n));
        }
        if (si[s].dead > 0 && tl == NULL) {
            redisReply *d = next_reply(io);
            if (d == NULL) {
                json_decref(codes);
                goto redis_fail;
            }
            for (k = 0; d->type == REDIS_REPLY_ARRAY && k < d->elements; k++) {
                const redisReply *e = d->element[k], *er;
                char code[64];
                json_t *n;
                if (e->type != REDIS_REPLY_ARRAY || e->elements < 2)
                    continue;
                er = kv(e->element[1], "error");
                sl__web_code(is_str(er) ? er->str : "", is_str(er) ? (size_t)er->len : 0,
                             code, sizeof(code));
                n = json_object_get(codes, code);
                json_object_set_new(codes, code, json_integer(n ? json_integer_value(n) + 1 : 1));
            }
            freeReplyObject(d);
        }
        if (!exists) {
            /* No such stream yet: one row says so. */
            json_t *o = json_pack("{s:o,s:n,s:b,s:I,s:o}", "stream",
                                  sl__json_text(st->streams[s], strlen(st->streams[s])),
                                  "group", "exists", 0, "dead", (json_int_t)si[s].dead,
                                  "dead_codes", codes);
            if (o != NULL)
                json_array_append_new(rows, o);
            continue;
        }
        for (; g < nr && rowstream[g] == s; g++, ng++) {
            struct row *r = &st->rows[rowof[g]];
            const redisReply *gi = NULL;
            redisReply *xp, *xr;
            struct pt own;
            double lambda = -1, mu = -1, rho = -1, w = -1;
            long long lag, pending, consumers, oldest = -1, L, read;
            const char *source = NULL;
            json_t *o, *att;

            for (k = 0; k < si[s].groups->elements; k++) {
                const redisReply *n = kv(si[s].groups->element[k], "name");
                if (is_str(n) && strcmp(n->str, r->group) == 0)
                    gi = si[s].groups->element[k];
            }
            if ((xp = next_reply(io)) == NULL)
                goto redis_fail;
            if ((xr = next_reply(io)) == NULL) {
                freeReplyObject(xp);
                goto redis_fail;
            }
            if (xp->type == REDIS_REPLY_ARRAY && xp->elements == 1 &&
                xp->element[0]->type == REDIS_REPLY_ARRAY && xp->element[0]->elements == 4 &&
                xp->element[0]->element[2]->type == REDIS_REPLY_INTEGER)
                oldest = xp->element[0]->element[2]->integer;
            freeReplyObject(xp);
            for (k = 0; xr->type == REDIS_REPLY_ARRAY && k < xr->elements; k++) {
                const redisReply *e = xr->element[k];
                struct pt p;
                long long rd;
                if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !is_str(e->element[0]))
                    continue;
                snprintf(r->last_id, sizeof(r->last_id), "%s", e->element[0]->str);
                p.t = strtoll(e->element[0]->str, NULL, 10);
                p.added = (double)kv_int(e->element[1], "added", 0);
                rd = kv_int(e->element[1], "read", -1);
                p.done = rd >= 0 ? (double)(rd - kv_int(e->element[1], "pending", 0)) : -1;
                p.lag = kv_int(e->element[1], "lag", -1);
                p.dead = -1;
                row_sample(r, &p);
            }
            freeReplyObject(xr);
            lag = kv_int(gi, "lag", -1);
            pending = kv_int(gi, "pending", 0);
            consumers = kv_int(gi, "consumers", 0);
            read = kv_int(gi, "entries-read", -1);
            own.t = now;
            own.added = (double)added;
            own.done = read >= 0 ? (double)(read - pending) : -1;
            own.lag = lag;
            own.dead = si[s].dead;
            row_own(r, &own);
            if (r->nraw == 2 && now - r->raw[1].t <= SAMPLE_FRESH_MS) {
                rates(&r->raw[0], &r->raw[1], &lambda, &mu);
                source = "samples";
            } else if (r->nown == 2) {
                /* The latest reading against the older mark. */
                rates(&r->own[0], &own, &lambda, &mu);
                source = "live";
            }
            L = (lag > 0 ? lag : 0) + pending;
            if (mu > 0 && lambda >= 0)
                rho = lambda / mu;
            if (lambda > 0)
                w = (double)L / lambda;
            att = json_array();
            /* Acks measured are throughput, not capacity: a pool that
             * keeps up acks exactly what arrives, ρ = 1. Only more
             * arrivals than acks, beyond RHO_NOISE, asks for attention. */
            if (rho > RHO_NOISE)
                json_array_append_new(att, json_string("rho > 1"));
            else if (mu == 0 && lambda > 0)
                json_array_append_new(att, json_string("no service"));
            if (r->nown == 2 && lag > 0 && r->own[0].lag >= 0 && lag > r->own[0].lag)
                json_array_append_new(att, json_string("lag growing"));
            if (r->nown == 2 && si[s].dead > r->own[0].dead)
                json_array_append_new(att, json_string("dead letters rising"));
            o = json_pack("{s:o,s:o,s:b,s:I,s:I,s:I,s:I,s:I,s:I}",
                          "stream", sl__json_text(r->stream, strlen(r->stream)),
                          "group", sl__json_text(r->group, strlen(r->group)), "exists", 1,
                          "length", (json_int_t)length, "pending", (json_int_t)pending,
                          "consumers", (json_int_t)consumers, "dead", (json_int_t)si[s].dead,
                          "entries_added", (json_int_t)added, "L", (json_int_t)L);
            if (o == NULL || att == NULL) {
                json_decref(o);
                json_decref(att);
                json_decref(codes);
                goto oom;
            }
            json_object_set_new(o, "lag", lag >= 0 ? json_integer(lag) : json_null());
            json_object_set_new(o, "oldest_pending_ms", oldest >= 0 ? json_integer(oldest) : json_null());
            json_object_set_new(o, "lambda", lambda >= 0 ? json_real(lambda) : json_null());
            json_object_set_new(o, "mu", mu >= 0 ? json_real(mu) : json_null());
            json_object_set_new(o, "rho", rho >= 0 ? json_real(rho) : json_null());
            json_object_set_new(o, "W", w >= 0 ? json_real(w) : json_null());
            json_object_set_new(o, "rate_source", source ? json_string(source) : json_null());
            json_object_set_new(o, "dead_codes", json_deep_copy(codes));
            json_object_set_new(o, "dead_codes_complete", json_boolean(tl != NULL || si[s].dead == 0));
            json_object_set_new(o, "chart", row_chart(r, now));
            json_object_set_new(o, "attention", att);
            json_array_append_new(rows, o);
        }
        if (ng == 0) {
            /* A stream without groups: its length and dead letters still show. */
            json_t *o = json_pack("{s:o,s:n,s:b,s:I,s:I,s:I,s:O}", "stream",
                                  sl__json_text(st->streams[s], strlen(st->streams[s])), "group",
                                  "exists", 1, "length", (json_int_t)length,
                                  "entries_added", (json_int_t)added, "dead", (json_int_t)si[s].dead,
                                  "dead_codes", codes);
            if (o != NULL) {
                json_object_set_new(o, "dead_codes_complete", json_boolean(tl != NULL || si[s].dead == 0));
                json_array_append_new(rows, o);
            }
        }
        json_decref(codes);
    }
    /* Then "no live consumer" where the walk above found none. */
    for (g = 0, s = 0; g < json_array_size(rows); g++) {
        json_t *o = json_array_get(rows, g);
        if (!json_is_string(json_object_get(o, "group")))
            continue;
        json_object_set_new(o, "live_workers", json_integer(st->rows[rowof[s]].live));
        if (st->rows[rowof[s]].live == 0)
            json_array_append_new(json_object_get(o, "attention"), json_string("no live consumer"));
        s++;
    }
    json_object_set_new(doc, "generated_ms", json_integer(now));
    json_object_set_new(doc, "streams", json_integer((json_int_t)st->nstreams));
    json_object_set_new(doc, "truncated", json_boolean(truncated));
    json_object_set_new(doc, "rows", rows);
    rows = NULL;
    out = doc;
    doc = NULL;
    goto out;
oom:
    fail(err, errlen, NULL, "out of memory");
    goto out;
redis_fail:
    io_fail(err, errlen, io, "redis");
    /* A pipeline left half read cannot be reused. */
    if (io->sync != NULL && io->sync->err == 0) {
        io->sync->err = 1;
        snprintf(io->sync->errstr, sizeof(io->sync->errstr), "pipeline failed");
    }
out:
    for (s = 0; s < st->nstreams; s++) {
        freeReplyObject(si[s].info);
        freeReplyObject(si[s].groups);
    }
    free(si);
    free(rowof);
    free(rowstream);
    json_decref(rows);
    json_decref(doc);
    return out;
}

/* ------------------------------------------------------------------ */
/* Workers and groups                                                  */
/* ------------------------------------------------------------------ */

/* The fields of a heartbeat the dashboard shows, as `sluice workers`. */
static const char *const worker_cols[] = { "pid", "host", "handler", "stream", "group",
                                           "started_at", "last_beat", "processed", "failed",
                                           "busy", "entry", "entry_since" };
#define WORKER_NUMS 9             /* worker_cols before this one are the beat's own; after, the entry in hand */

/* Adds one heartbeat to the array arg. */
static int worker_seen(const char *consumer, size_t len, const redisReply *h, void *arg)
{
    json_t *doc = arg, *o;
    long long now = (long long)sl__wall_ms(), started, beat;
    size_t j;

    if (h->type != REDIS_REPLY_ARRAY || h->elements != SL_NELEM(worker_cols) ||
        !is_str(h->element[0]) || (o = json_object()) == NULL)
        return 0;
    json_object_set_new(o, "consumer", sl__json_text(consumer, len));
    sl__hb_entry_json(o, h->element[WORKER_NUMS], h->element[WORKER_NUMS + 1],
                      h->element[WORKER_NUMS + 2]);
    for (j = 0; j < WORKER_NUMS; j++) {
        const redisReply *v = h->element[j];
        if (j == 0 || j >= 5)
            json_object_set_new(o, worker_cols[j],
                                json_integer(is_str(v) ? strtoll(v->str, NULL, 10) : 0));
        else
            json_object_set_new(o, worker_cols[j], jtext(v));
    }
    started = (long long)json_integer_value(json_object_get(o, "started_at"));
    beat = (long long)json_integer_value(json_object_get(o, "last_beat"));
    json_object_set_new(o, "uptime_ms", started > 0 ? json_integer(now - started) : json_null());
    json_object_set_new(o, "beat_age_ms", beat > 0 ? json_integer(now - beat) : json_null());
    json_array_append_new(doc, o);
    return 0;
}

/* Reads every live heartbeat (see web.h). */
json_t *sl__web_workers(struct sl_web_io *io, char *err, size_t errlen)
{
    json_t *doc = json_array();

    if (doc == NULL)
        return fail(err, errlen, NULL, "out of memory");
    if (io_walk(io, worker_cols, (int)SL_NELEM(worker_cols), worker_seen, doc) != 0 ||
        !io_ready(io)) {
        json_decref(doc);
        return io_fail(err, errlen, io, "redis");
    }
    return doc;
}

/* Reads one group (see web.h). */
json_t *sl__web_group(struct sl_sync *c, const char *stream, const char *group, long count,
                      char *err, size_t errlen)
{
    redisReply *cons = NULL, *pend = NULL;
    json_t *doc = NULL, *jc = NULL, *jp = NULL;
    char cnt[24];
    size_t i;

    cons = sl__sync_cmd(c, "XINFO CONSUMERS %s %s", stream, group);
    if (cons == NULL)
        return fail(err, errlen, c, "redis");
    if (cons->type == REDIS_REPLY_ERROR) {
        sl__put_err(err, errlen, "no such group");
        freeReplyObject(cons);
        return json_null();
    }
    snprintf(cnt, sizeof(cnt), "%ld", count);
    pend = sl__sync_cmd(c, "XPENDING %s %s - + %s", stream, group, cnt);
    if (pend == NULL) {
        freeReplyObject(cons);
        return fail(err, errlen, c, "redis");
    }
    jc = json_array();
    jp = json_array();
    for (i = 0; jc != NULL && cons->type == REDIS_REPLY_ARRAY && i < cons->elements && i < 1000; i++) {
        const redisReply *e = cons->element[i], *name = kv(e, "name");
        char hkey[SL_HB_KEYLEN];
        redisReply *hb;
        json_t *o;

        if (!is_str(name))
            continue;
        o = json_pack("{s:o,s:I,s:I}", "name", jtext(name),
                      "pending", (json_int_t)kv_int(e, "pending", 0),
                      "idle_ms", (json_int_t)kv_int(e, "idle", 0));
        if (o == NULL)
            continue;
        json_object_set_new(o, "inactive_ms", kv(e, "inactive") != NULL ?
                            json_integer(kv_int(e, "inactive", -1)) : json_null());
        /* Its heartbeat, read by key: no walk for one name (on a
         * cluster the name carries the stream's tag, beside it). */
        sl__hb_key_of(hkey, sizeof(hkey), c->cl != NULL, stream, name->str);
        hb = sl__sync_cmd(c, "HMGET %s last_beat pid host", hkey);
        if (hb == NULL) {
            json_decref(o);
            goto redis_fail;
        }
        if (hb->type == REDIS_REPLY_ARRAY && hb->elements == 3 && is_str(hb->element[0])) {
            long long beat = strtoll(hb->element[0]->str, NULL, 10);
            json_object_set_new(o, "beat_age_ms",
                                json_integer((long long)sl__wall_ms() - beat));
            json_object_set_new(o, "pid", json_integer(is_str(hb->element[1]) ?
                                                       strtoll(hb->element[1]->str, NULL, 10) : 0));
            json_object_set_new(o, "host", jtext(hb->element[2]));
        } else {
            json_object_set_new(o, "beat_age_ms", json_null());
        }
        freeReplyObject(hb);
        json_array_append_new(jc, o);
    }
    for (i = 0; jp != NULL && pend->type == REDIS_REPLY_ARRAY && i < pend->elements; i++) {
        const redisReply *e = pend->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 4)
            continue;
        json_array_append_new(jp, json_pack("{s:o,s:o,s:I,s:I}", "id", jtext(e->element[0]),
                                            "consumer", jtext(e->element[1]),
                                            "idle_ms", (json_int_t)int_of(e->element[2]),
                                            "deliveries", (json_int_t)int_of(e->element[3])));
    }
    doc = json_pack("{s:o,s:o,s:o,s:o}", "stream", sl__json_text(stream, strlen(stream)),
                    "group", sl__json_text(group, strlen(group)), "consumers", jc, "oldest_pending", jp);
    jc = jp = NULL;
    freeReplyObject(cons);
    freeReplyObject(pend);
    if (doc == NULL)
        return fail(err, errlen, NULL, "out of memory");
    return doc;
redis_fail:
    json_decref(jc);
    json_decref(jp);
    freeReplyObject(cons);
    freeReplyObject(pend);
    return fail(err, errlen, c, "redis");
}

/* ------------------------------------------------------------------ */
/* Dead letters                                                        */
/* ------------------------------------------------------------------ */

/* Returns the summary of one dead letter [id, fields] (new), or NULL. */
static json_t *dead_summary(const redisReply *e)
{
    const redisReply *f = e->element[1], *er = kv(f, "error"), *data = kv(f, "data");
    char code[64];
    json_t *o;

    sl__web_code(is_str(er) ? er->str : "", is_str(er) ? (size_t)er->len : 0, code, sizeof(code));
    o = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id", jtext(e->element[0]), "error", jtext(er),
                  "code", sl__json_text(code, strlen(code)), "type", jtext(kv(f, "type")),
                  "source_id", jtext(kv(f, "source_id")), "consumer", jtext(kv(f, "consumer")),
                  "data_preview", is_str(data) ? sl__json_text(data->str, data->len > PREVIEW_BYTES ?
                                                               PREVIEW_BYTES : (size_t)data->len) :
                  json_null());
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "data_bytes", json_integer(is_str(data) ? data->len : 0));
    json_object_set_new(o, "deliveries", json_integer(kv_int(f, "deliveries", 0)));
    json_object_set_new(o, "failed_at", json_integer(kv_int(f, "failed_at", 0)));
    return o;
}

/* Returns 1 when dead letter e's code is `code`. */
static int code_is(const redisReply *e, const char *code)
{
    const redisReply *er = kv(e->element[1], "error");
    char c[64];

    sl__web_code(is_str(er) ? er->str : "", is_str(er) ? (size_t)er->len : 0, c, sizeof(c));
    return strcmp(c, code) == 0;
}

/* Reads one page of dead letters (see web.h). */
json_t *sl__web_dead_page(struct sl_sync *c, const char *stream, const char *cursor, long count,
                          const char *code, char *err, size_t errlen)
{
    char key[SL_KEYLEN + 8], from[48], cnt[24];
    json_t *items = json_array(), *doc;
    long long scanned = 0, total;
    int more = 1;
    redisReply *r;

    if (items == NULL || dead_key(key, sizeof(key), stream) < 0) {
        json_decref(items);
        return fail(err, errlen, NULL, "bad stream");
    }
    if (cursor != NULL && *cursor != '\0')
        snprintf(from, sizeof(from), "(%s", cursor);
    else
        snprintf(from, sizeof(from), "-");
    /* Without a code, count + 1 tells whether a next page exists. */
    snprintf(cnt, sizeof(cnt), "%ld", code != NULL ? 500L : count + 1);
    while (more && (long)json_array_size(items) < count && scanned < SL_WEB_SCAN_MAX) {
        const char *argv[] = { "XRANGE", key, from, "+", "COUNT", cnt };
        size_t i;

        if ((r = sl__sync_argv(c, 6, argv, NULL)) == NULL || r->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            json_decref(items);
            return fail(err, errlen, c, "redis");
        }
        more = r->elements == (size_t)atol(cnt);
        for (i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !is_str(e->element[0]))
                continue;
            if ((long)json_array_size(items) >= count) {
                more = 1;
                break;
            }
            scanned++;
            snprintf(from, sizeof(from), "(%s", e->element[0]->str);
            if (code == NULL || code_is(e, code))
                json_array_append_new(items, dead_summary(e));
        }
        freeReplyObject(r);
        if (code == NULL)
            break;
    }
    r = sl__sync_cmd(c, "XLEN %s", key);
    if (r == NULL) {
        json_decref(items);
        return fail(err, errlen, c, "redis");
    }
    total = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    doc = json_pack("{s:o,s:o,s:I,s:I}", "stream", sl__json_text(stream, strlen(stream)),
                    "items", items, "total", (json_int_t)total, "scanned", (json_int_t)scanned);
    if (doc == NULL)
        return fail(err, errlen, NULL, "out of memory");
    json_object_set_new(doc, "next_cursor", more ? json_string(from + 1) : json_null());
    json_object_set_new(doc, "code", code ? sl__json_text(code, strlen(code)) : json_null());
    return doc;
}

/* Reads one dead letter with every field (see web.h). */
json_t *sl__web_dead_entry(struct sl_sync *c, const char *stream, const char *id,
                           char *err, size_t errlen)
{
    char key[SL_KEYLEN + 8];
    const char *argv[] = { "XRANGE", key, id, id };
    redisReply *r;
    json_t *fields, *doc;
    size_t i;

    if (!id_ok(id) || dead_key(key, sizeof(key), stream) < 0) {
        sl__put_err(err, errlen, "bad id");
        return json_null();
    }
    if ((r = sl__sync_argv(c, 4, argv, NULL)) == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return fail(err, errlen, c, "redis");
    }
    if (r->elements != 1 || r->element[0]->type != REDIS_REPLY_ARRAY ||
        r->element[0]->elements < 2 || r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        sl__put_err(err, errlen, "no such dead letter");
        return json_null();
    }
    /* Fields as an array of [name, value]: names may repeat, and their
     * order is the entry's. */
    fields = json_array();
    for (i = 0; fields != NULL && i + 1 < r->element[0]->element[1]->elements; i += 2)
        json_array_append_new(fields, json_pack("[o,o]", jtext(r->element[0]->element[1]->element[i]),
                                                jtext(r->element[0]->element[1]->element[i + 1])));
    doc = json_pack("{s:o,s:o,s:o}", "stream", sl__json_text(stream, strlen(stream)),
                    "id", jtext(r->element[0]->element[0]), "fields", fields);
    freeReplyObject(r);
    return doc != NULL ? doc : fail(err, errlen, NULL, "out of memory");
}

/* Replays one dead letter (see web.h). */
json_t *sl__web_replay(struct sl_sync *c, const char *stream, const char *id, const char *data,
                       char *err, size_t errlen)
{
    char key[SL_KEYLEN + 8];
    const char *keys[] = { key, stream };
    redisReply *r;
    json_t *doc;

    if (!id_ok(id) || dead_key(key, sizeof(key), stream) < 0) {
        sl__put_err(err, errlen, "bad id");
        return json_null();
    }
    {
        /* replay.lua, as `sluice dlq replay [--data]`: one atomic move. */
        const char *args[] = { id, data != NULL ? "1" : "0", data != NULL ? data : "" };
        r = sl__script_call(c, sl__script(SL_SCRIPT_REPLAY), 2, keys, 3, args);
    }
    if (r == NULL)
        return fail(err, errlen, c, "redis");
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        sl__put_err(err, errlen, "no such dead letter");
        return json_null();
    }
    if (!is_str(r) || r->type == REDIS_REPLY_STATUS) {
        sl__put_err(err, errlen, "redis: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return NULL;
    }
    doc = json_pack("{s:s,s:s}", "dead_id", id, "new_id", r->str);
    freeReplyObject(r);
    return doc != NULL ? doc : fail(err, errlen, NULL, "out of memory");
}

/* Deletes one dead letter (see web.h). */
json_t *sl__web_purge_id(struct sl_sync *c, const char *stream, const char *id,
                         char *err, size_t errlen)
{
    char key[SL_KEYLEN + 8];
    const char *argv[] = { "XDEL", key, id };
    redisReply *r;
    json_t *doc;

    if (!id_ok(id) || dead_key(key, sizeof(key), stream) < 0) {
        sl__put_err(err, errlen, "bad id");
        return json_null();
    }
    if ((r = sl__sync_argv(c, 3, argv, NULL)) == NULL || r->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return fail(err, errlen, c, "redis");
    }
    doc = json_pack("{s:I}", "purged", (json_int_t)r->integer);
    freeReplyObject(r);
    return doc;
}

/* Deletes one bounded step of the dead letters of a code (see web.h)
 * with dlq_purge.lua, as `sluice dlq purge --code` does: atomic pages of
 * PURGE_PAGE entries read, SL_WEB_SCAN_MAX per call. `until` fixes the
 * end when the purge begins, so entries dead-lettered meanwhile are not
 * chased for ever (the "retry all" loop other dashboards had). */
json_t *sl__web_purge_code(struct sl_sync *c, const char *stream, const char *code,
                           const char *cursor, const char *until, char *err, size_t errlen)
{
    char key[SL_KEYLEN + 8], from[48], end[48];
    const char *keys[] = { key };
    long long purged = 0, scanned = 0;
    int done = 0;
    redisReply *r;
    json_t *doc;

    if (dead_key(key, sizeof(key), stream) < 0 || (cursor && *cursor && !id_ok(cursor)) ||
        (until && *until && !id_ok(until))) {
        sl__put_err(err, errlen, "bad cursor");
        return json_null();
    }
    if (until != NULL && *until != '\0') {
        snprintf(end, sizeof(end), "%s", until);
    } else {
        const char *argv[] = { "XREVRANGE", key, "+", "-", "COUNT", "1" };
        if ((r = sl__sync_argv(c, 6, argv, NULL)) == NULL || r->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return fail(err, errlen, c, "redis");
        }
        if (r->elements == 0 || r->element[0]->type != REDIS_REPLY_ARRAY ||
            !is_str(r->element[0]->element[0])) {
            freeReplyObject(r);
            return json_pack("{s:i,s:s,s:s,s:b}", "purged", 0, "cursor", "", "until", "", "done", 1);
        }
        snprintf(end, sizeof(end), "%s", r->element[0]->element[0]->str);
        freeReplyObject(r);
    }
    snprintf(from, sizeof(from), cursor && *cursor ? "(%s" : "-", cursor);
    while (!done && scanned < SL_WEB_SCAN_MAX) {
        const char *args[] = { from, end, XSTR(PURGE_PAGE), code };

        r = sl__script_call(c, sl__script(SL_SCRIPT_DLQ_PURGE), 1, keys, 4, args);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            !is_str(r->element[0]) || r->element[1]->type != REDIS_REPLY_INTEGER) {
            if (r != NULL && r->type == REDIS_REPLY_ERROR)
                sl__put_err(err, errlen, "redis: %s", r->str);
            else
                fail(err, errlen, c, "redis");
            freeReplyObject(r);
            return NULL;
        }
        purged += r->element[1]->integer;
        scanned += PURGE_PAGE;
        if (r->element[0]->len == 0)
            done = 1;
        else
            snprintf(from, sizeof(from), "%s", r->element[0]->str);
        freeReplyObject(r);
    }
    doc = json_pack("{s:I,s:s,s:s,s:b}", "purged", (json_int_t)purged, "cursor",
                    from[0] == '(' ? from + 1 : "", "until", end, "done", done);
    return doc != NULL ? doc : fail(err, errlen, NULL, "out of memory");
}
