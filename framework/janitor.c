/* janitor.c -- removes consumers that have no heartbeat and nothing
 * pending, in slices, on a connection of its own (see struct
 * sl_janitor), with janitor.lua; and, on the same connection, adds each
 * group's rate sample (rate.lua) every housekeeping period.
 *
 * On a Redis Cluster each group's keys (its stream, its heartbeats, its
 * rate samples, its registry) live on the master of the stream's slot:
 * the connection is pinned (conn.c) to the slot of the group at hand,
 * and moved to the next group's slot when that differs. A group's rate
 * sample and its registry's stale names are then handled as the pass
 * reaches the group; fingerprint expiry (one global key) is not run.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include "cluster.h"
#include "conn.h"
#include "internal.h"
#include "pool.h"
#include "scripts.h"
#include "heartbeat.h"
#include "typecount.h"

#define JANITOR_SLICE 200         /* consumers looked at per step of the janitor */
#define EXPIRE_COUNT 2000         /* records one expire.lua call forgets at most */
#define EXPIRE_CALLS 5            /* expire.lua calls per housekeeping period */

/* One group a janitor pass goes through. Copies: a reload may free the
 * configuration while the pass runs. */
struct jan_group {
    char *stream;
    char *group;
    long long idle_ms;            /* removes consumers idle longer than this */
};

/* The janitor removes consumers with no heartbeat and nothing pending, in
 * slices, so that it never holds the supervisor's loop for long: with
 * 50,000 such consumers, listing them takes tens of milliseconds of
 * parsing and removing them one call each took seconds. It has a
 * connection of its own, asynchronous, so the list of a group (XINFO
 * CONSUMERS, which cannot be paged) is read and parsed a socket read at a
 * time while the loop goes on. The consumers are then looked at
 * JANITOR_SLICE at a time, each slice in a turn of the loop of its own and
 * in one script call; the next slice follows the reply. */
struct sl_janitor {
    struct sl_pool *p;
    struct sl_conn *conn;         /* its connection, NULL until first needed */
    int connecting;               /* connect started, neither ready nor lost yet */
    int closing;                  /* being freed: callbacks only return */
    int busy;                     /* a command is in flight */
    int slot;                     /* cluster: the slot conn is pinned to, -1 none */
    struct event *step_ev;        /* runs the next step in a turn of its own */
    struct jan_group *groups;     /* the current pass's groups (owned), NULL between passes */
    size_t ngroups, cur;          /* how many; the one being worked on */
    redisReply **list;            /* its XINFO CONSUMERS entries, taken from the reply (owned) */
    size_t nlist;                 /* entries in list */
    size_t done;                  /* list[0..done) are freed already */
    size_t next;                  /* list[done..next) are the slice in flight */
    const char *cand[JANITOR_SLICE]; /* that slice's candidates (names inside list) */
    long long cand_idle[JANITOR_SLICE]; /* and their idle times */
    size_t ncand;
    char keys[JANITOR_SLICE][400]; /* their heartbeat keys, for the script call */
};

static void jan_step(struct sl_janitor *j);
static void jan_group_extras(struct sl_janitor *j, const struct jan_group *g);

/* Frees the entries of the current list from `done` to `upto`. */
static void jan_free_entries(struct sl_janitor *j, size_t upto)
{
    for (; j->done < upto; j->done++) {
        freeReplyObject(j->list[j->done]);
        j->list[j->done] = NULL;
    }
}

/* Drops the current group's list. */
static void jan_drop_list(struct sl_janitor *j)
{
    if (j->list != NULL) {
        jan_free_entries(j, j->nlist);
        free(j->list);
    }
    j->list = NULL;
    j->nlist = j->done = j->next = j->ncand = 0;
}

/* Ends the current pass (done, or given up until the next period). */
static void jan_end_pass(struct sl_janitor *j)
{
    size_t i;

    jan_drop_list(j);
    for (i = 0; i < j->ngroups; i++) {
        free(j->groups[i].stream);
        free(j->groups[i].group);
    }
    free(j->groups);
    j->groups = NULL;
    j->ngroups = j->cur = 0;
}

/* Runs the next step in a turn of the loop of its own, after whatever
 * else is ready: the loop never does two steps at once. */
static void jan_schedule(struct sl_janitor *j)
{
    event_active(j->step_ev, EV_TIMEOUT, 0);
}

/* Reply to XINFO CONSUMERS: takes the entries over from the reply
 * (the reply itself is freed when this returns, an empty array then, so
 * freeing 50,000 entries is spread over the steps too). */
static void jan_on_consumers(struct sl_conn *c, redisReply *r, void *arg)
{
    struct sl_janitor *j = arg;
    const struct jan_group *g;

    (void)c;
    j->busy = 0;
    if (j->closing || j->groups == NULL)
        return;
    if (r == NULL) {
        jan_end_pass(j);        /* connection lost: again next period */
        return;
    }
    g = &j->groups[j->cur];
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
        j->cur++;               /* no consumers */
    } else if (r->type == REDIS_REPLY_ARRAY) {
        j->list = r->element;
        j->nlist = r->elements;
        r->element = NULL;
        r->elements = 0;
        j->done = j->next = 0;
    } else {
        /* No such stream or group yet: nothing to remove. */
        sl__log(SL_LOG_DEBUG, "janitor_skipped", "stream=%s group=%s error=%s",
                sl__logq(g->stream), sl__logq(g->group),
                sl__logq(r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply"));
        j->cur++;
    }
    jan_schedule(j);
}

/* Reply to the SCRIPT LOAD of janitor.lua: its sha is known from now on
 * (scripts.c keeps it for every caller), and the pass goes on. */
static void jan_on_loaded(struct sl_conn *c, redisReply *r, void *arg)
{
    struct sl_janitor *j = arg;

    (void)c;
    j->busy = 0;
    if (r != NULL && sl__script_loaded(sl__script(SL_SCRIPT_JANITOR), r) < 0)
        sl__log(SL_LOG_WARN, "janitor_failed", "error=%s",
                sl__logq(r->type == REDIS_REPLY_ERROR ? r->str : "SCRIPT LOAD gave no sha"));
    if (!j->closing)
        jan_schedule(j);
}

/* Loads janitor.lua on the janitor's connection: when it connects, and
 * after a NOSCRIPT reply (the server forgot it). Returns 0 when sent. */
static int jan_load(struct sl_janitor *j)
{
    const char *argv[3];

    sl__script_load_argv(sl__script(SL_SCRIPT_JANITOR), argv);
    if (sl__conn_command(j->conn, jan_on_loaded, j, 0, 3, argv, NULL) < 0)
        return -1;
    j->busy = 1;
    return 0;
}

/* Reply to a slice's script call: logs each consumer removed. */
static void jan_on_removed(struct sl_conn *c, redisReply *r, void *arg)
{
    struct sl_janitor *j = arg;
    const struct jan_group *g;
    size_t i;

    (void)c;
    j->busy = 0;
    if (j->closing || j->groups == NULL)
        return;
    if (r == NULL) {
        jan_end_pass(j);
        return;
    }
    g = &j->groups[j->cur];
    if (sl__script_noscript(r)) {
        /* Flushed or restarted: load it again; the consumers of this
         * slice wait for the next pass. */
        sl__script(SL_SCRIPT_JANITOR)->sha[0] = '\0';
        j->ncand = 0;
        if (jan_load(j) < 0)
            jan_end_pass(j);
        return;
    }
    if (r->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < r->elements; i++) {
            long long k = r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : 0;
            if (k >= 1 && (size_t)k <= j->ncand)
                sl__log(SL_LOG_INFO, "consumer_removed",
                        "stream=%s group=%s consumer=%s idle_ms=%lld", sl__logq(g->stream),
                        sl__logq(g->group), sl__logq(j->cand[k - 1]), j->cand_idle[k - 1]);
        }
    } else {
        /* The group went away meanwhile (NOGROUP), or the script failed:
         * the rest of this group waits for the next pass. */
        sl__log(SL_LOG_WARN, "janitor_failed", "stream=%s group=%s error=%s",
                sl__logq(g->stream), sl__logq(g->group),
                sl__logq(r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply"));
        jan_drop_list(j);
        j->cur++;
    }
    j->ncand = 0;
    jan_schedule(j);
}

/* Picks the candidates of the next slice of the list: consumers with
 * nothing pending, idle past the group's threshold. */
static void jan_pick(struct sl_janitor *j, const struct jan_group *g)
{
    size_t end = j->next + JANITOR_SLICE < j->nlist ? j->next + JANITOR_SLICE : j->nlist;
    size_t k;

    j->ncand = 0;
    for (; j->next < end; j->next++) {
        const redisReply *e = j->list[j->next];
        const char *name = NULL;
        long long pending = -1, idle = 0;

        if (e == NULL || e->type != REDIS_REPLY_ARRAY)
            continue;
        for (k = 0; k + 1 < e->elements; k += 2) {
            const redisReply *key = e->element[k], *v = e->element[k + 1];
            if (key->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(key->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
                name = v->str;
            else if (strcmp(key->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                pending = v->integer;
            else if (strcmp(key->str, "idle") == 0 && v->type == REDIS_REPLY_INTEGER)
                idle = v->integer;
        }
        /* A name whose heartbeat key would not fit is kept: its
         * heartbeat could not be checked. */
        if (name != NULL && pending == 0 && idle > g->idle_ms &&
            (size_t)sl__hb_key_of(NULL, 0, j->p->cfg->cluster_nodes != NULL, g->stream, name)
                < sizeof(j->keys[0])) {
            j->cand[j->ncand] = name;
            j->cand_idle[j->ncand] = idle;
            j->ncand++;
        }
    }
}

/* Sends the script call for the candidates picked. Returns 0, or -1 when
 * it could not be sent. */
static int jan_send_slice(struct sl_janitor *j, const struct jan_group *g)
{
    enum { MAXKA = 2 + 2 * JANITOR_SLICE };
    const char *ka[MAXKA], *argv[3 + MAXKA];
    size_t argvlen[3 + MAXKA];
    char nk[16];
    size_t i, nkeys = 0;
    int argc;

    if (sl__script(SL_SCRIPT_JANITOR)->sha[0] == '\0')
        return jan_load(j);  /* not loaded yet: this slice waits for the next pass */
    /* KEYS: the stream, then each candidate's heartbeat key; ARGV: the
     * group, then the candidates in the same order (janitor.lua). */
    ka[nkeys++] = g->stream;
    for (i = 0; i < j->ncand; i++) {
        sl__hb_key_of(j->keys[i], sizeof(j->keys[i]), j->p->cfg->cluster_nodes != NULL,
                      g->stream, j->cand[i]);
        ka[nkeys++] = j->keys[i];
    }
    ka[nkeys] = g->group;
    for (i = 0; i < j->ncand; i++)
        ka[nkeys + 1 + i] = j->cand[i];
    argc = sl__script_argv(sl__script(SL_SCRIPT_JANITOR), nk, (int)nkeys, ka, NULL,
                           (int)j->ncand + 1, ka + nkeys, NULL, argv, argvlen);
    return sl__conn_command(j->conn, jan_on_removed, j, 0, argc, argv, argvlen);
}

/* One step of a pass: asks for the next group's consumers, or looks at
 * the next slice of the current list and sends its script call. Each
 * step is bounded (JANITOR_SLICE consumers) and waits for no reply. */
static void jan_step(struct sl_janitor *j)
{
    const struct jan_group *g;

    if (j->busy || j->groups == NULL || j->closing)
        return;
    if (j->p->stopping || !sl__conn_ready(j->conn)) {
        jan_end_pass(j);
        return;
    }
    if (j->cur >= j->ngroups) {
        jan_end_pass(j);
        return;
    }
    g = &j->groups[j->cur];
    if (j->list == NULL && j->p->cfg->cluster_nodes != NULL) {
        int slot = sl__cluster_keyslot(g->stream, strlen(g->stream));

        if (slot != j->slot) {
            /* Another master's group: move the connection there; its
             * ready (and the script load) bring the next step. */
            sl__conn_close(j->conn);
            if (sl__conn_pin(j->conn, j->p->cfg->cluster_nodes, slot) != 0) {
                jan_end_pass(j);
                return;
            }
            j->slot = slot;
            j->connecting = 1;
            sl__conn_connect(j->conn);
            return;
        }
        jan_group_extras(j, g);
    }
    if (j->list == NULL) {
        const char *argv[] = { "XINFO", "CONSUMERS", g->stream, g->group };
        if (sl__conn_command(j->conn, jan_on_consumers, j, 0, 4, argv, NULL) < 0) {
            jan_end_pass(j);
            return;
        }
        j->busy = 1;
        return;
    }
    jan_free_entries(j, j->next);       /* the last slice: its reply came */
    if (j->next >= j->nlist) {
        jan_drop_list(j);
        j->cur++;
        jan_schedule(j);
        return;
    }
    jan_pick(j, g);
    if (j->ncand == 0) {
        jan_schedule(j);
        return;
    }
    if (jan_send_slice(j, g) < 0) {
        jan_end_pass(j);
        return;
    }
    j->busy = 1;
}

/* The step event. */
static void jan_on_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    jan_step(arg);
}

/* The janitor's connection is usable: the pass waiting for it begins. */
static void jan_on_ready(struct sl_conn *c, void *arg)
{
    struct sl_janitor *j = arg;

    (void)c;
    j->connecting = 0;
    if (jan_load(j) < 0)
        jan_schedule(j);
}

/* The janitor's connection was lost (or never made): the pass is given
 * up, and the next period connects again. */
static void jan_on_lost(struct sl_conn *c, void *arg)
{
    struct sl_janitor *j = arg;

    j->connecting = 0;
    sl__log(SL_LOG_DEBUG, "janitor_disconnected", "error=%s", sl__logq(sl__conn_error(c)));
    sl__conn_close(c);
    jan_end_pass(j);
}

/* Reply to a rate sample or an expiry call: nothing to do but report a
 * failure (a key of another type is skipped by the scripts themselves).
 * Touches no janitor state, so it may come after the janitor was freed. */
static void jan_on_rate(struct sl_conn *c, redisReply *r, void *arg)
{
    (void)c;
    (void)arg;
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        sl__log(SL_LOG_DEBUG, "housekeeping_failed", "error=%s", sl__logq(r->str));
}

/* Sends rate.lua for one stream and group, its reply not waited for.
 * The script is sent whole (EVAL): a few hundred bytes every period
 * spares the NOSCRIPT dance. Returns 0, or -1 when it could not be sent. */
static int jan_sample_rate(struct sl_janitor *j, const char *stream, const char *group)
{
    const struct sl_lua *l = sl__script(SL_SCRIPT_RATE);
    char key[600], ckey[600], tkey[600], gap[24], maxlen[24];
    const char *argv[] = { "EVAL", l->src, "4", key, stream, ckey, tkey, group, gap, maxlen };

    snprintf(gap, sizeof(gap), "%d", SL_RATE_GAP_MS);
    snprintf(maxlen, sizeof(maxlen), "%d", SL_RATE_MAXLEN);
    if ((size_t)sl__rate_key(key, sizeof(key), stream, group) >= sizeof(key) ||
        (size_t)sl__tc_key(ckey, sizeof(ckey), stream, group) >= sizeof(ckey) ||
        (size_t)sl__tc_types_key(tkey, sizeof(tkey), stream, group) >= sizeof(tkey))
        return 0;
    return sl__conn_command(j->conn, jan_on_rate, j, 0, (int)SL_NELEM(argv), argv, NULL) < 0
           ? -1 : 0;
}

/* Sends one rate.lua call per configured stream and group, pipelined on
 * the janitor's connection, without waiting for the replies: the
 * supervisor's loop never blocks on them. */
static void jan_sample_rates(struct sl_janitor *j)
{
    const struct sl_config *cfg = j->p->cfg;
    size_t i, k;

    for (i = 0; i < cfg->nworkers; i++) {
        const struct sl_worker_conf *wc = &cfg->workers[i];

        for (k = 0; k < i; k++)
            if (strcmp(cfg->workers[k].stream, wc->stream) == 0 &&
                strcmp(cfg->workers[k].group, wc->group) == 0)
                break;
        if (k == i && jan_sample_rate(j, wc->stream, wc->group) < 0)
            return;
    }
}

/* Sends up to EXPIRE_CALLS expire.lua calls (pipelined, replies not
 * waited for) when the configuration keeps fingerprints for a limited
 * time: the longest idempotency_retention_ms of its workers, so that no
 * fingerprint goes before its own worker's retention. Each call handles
 * at most EXPIRE_COUNT records, so Redis serves other clients between
 * them. */
static void jan_expire(struct sl_janitor *j)
{
    const struct sl_config *cfg = j->p->cfg;
    const struct sl_lua *l = sl__script(SL_SCRIPT_EXPIRE);
    long long keep = 0;
    char ret[24], count[24];
    size_t i;
    int k;

    for (i = 0; i < cfg->nworkers; i++)
        if (cfg->workers[i].t.idempotency_retention_ms > keep)
            keep = cfg->workers[i].t.idempotency_retention_ms;
    if (keep <= 0)
        return;
    snprintf(ret, sizeof(ret), "%lld", keep);
    snprintf(count, sizeof(count), "%d", EXPIRE_COUNT);
    for (k = 0; k < EXPIRE_CALLS; k++) {
        const char *argv[] = { "EVAL", l->src, "1", SL_FP_EXPIRY, ret, count };
        if (sl__conn_command(j->conn, jan_on_rate, j, 0, (int)SL_NELEM(argv), argv, NULL) < 0)
            return;
    }
}

/* Drops the names of registry `reg` that expired SL_HB_STALE_MS ago
 * (workers that died without a graceful stop), so that names of hosts
 * gone for good (containers) do not pile up when nobody runs `stats`. */
static void jan_drop_stale_in(struct sl_janitor *j, const char *reg)
{
    char stale[32];
    const char *argv[] = { "ZREMRANGEBYSCORE", reg, "-inf", stale };

    snprintf(stale, sizeof(stale), "(%llu", (unsigned long long)(sl__wall_ms() - SL_HB_STALE_MS));
    sl__conn_command(j->conn, jan_on_rate, j, 0, (int)SL_NELEM(argv), argv, NULL);
}

/* The same for the one registry of a server. */
static void jan_drop_stale(struct sl_janitor *j)
{
    jan_drop_stale_in(j, SL_HB_REGISTRY);
}

/* Cluster: what the janitor does per period for group g, sent as the
 * pass reaches it on the connection pinned to its slot: its rate sample
 * and the stale names of its tag's registry. */
static void jan_group_extras(struct sl_janitor *j, const struct jan_group *g)
{
    char reg[SL_HB_KEYLEN];

    if (j->p->stopping || jan_sample_rate(j, g->stream, g->group) < 0)
        return;
    if ((size_t)sl__hb_registry(reg, sizeof(reg), 1, g->stream) < sizeof(reg))
        jan_drop_stale_in(j, reg);
}

/* Starts a janitor pass over every configured group, unless the last one
 * is still going, and takes the groups' rate samples, expires old
 * fingerprints and drops stale registry names when the connection is up.
 * Returns 0, or -1 when out of memory. */
int sl__janitor_start(struct sl_pool *p)
{
    struct sl_janitor *j = p->janitor;
    size_t i, k;

    if (j == NULL) {
        j = calloc(1, sizeof(*j));
        if (j == NULL)
            return -1;
        j->p = p;
        j->slot = -1;
        j->step_ev = event_new(p->base, -1, 0, jan_on_step, j);
        if (j->step_ev == NULL) {
            free(j);
            return -1;
        }
        p->janitor = j;
    }
    /* On a cluster these go per group, on the pass (jan_group_extras). */
    if (j->conn != NULL && sl__conn_ready(j->conn) && !p->stopping &&
        p->cfg->cluster_nodes == NULL) {
        jan_sample_rates(j);
        jan_expire(j);
        jan_drop_stale(j);
    }
    if (j->groups != NULL)
        return 0;
    j->groups = calloc(p->cfg->nworkers + 1, sizeof(*j->groups));
    if (j->groups == NULL)
        return -1;
    for (i = 0; i < p->cfg->nworkers; i++) {
        const struct sl_worker_conf *wc = &p->cfg->workers[i];
        long long idle_ms = wc->t.reclaim_idle_ms > 10 * wc->t.heartbeat_ms ?
                            wc->t.reclaim_idle_ms : 10 * wc->t.heartbeat_ms;

        /* A group served by two worker entries is gone through once,
         * with the lower threshold. */
        for (k = 0; k < j->ngroups; k++)
            if (strcmp(j->groups[k].stream, wc->stream) == 0 &&
                strcmp(j->groups[k].group, wc->group) == 0)
                break;
        if (k < j->ngroups) {
            if (idle_ms < j->groups[k].idle_ms)
                j->groups[k].idle_ms = idle_ms;
            continue;
        }
        j->groups[k].stream = strdup(wc->stream);
        j->groups[k].group = strdup(wc->group);
        j->groups[k].idle_ms = idle_ms;
        j->ngroups++;
        if (j->groups[k].stream == NULL || j->groups[k].group == NULL) {
            jan_end_pass(j);
            return -1;
        }
    }
    if (j->conn == NULL) {
        j->conn = sl__conn_new(p->base, "janitor", p->cfg, jan_on_ready, jan_on_lost, j);
        /* Cluster: pinned to the first group's slot to begin with. */
        if (j->conn != NULL && p->cfg->cluster_nodes != NULL && j->ngroups > 0) {
            j->slot = sl__cluster_keyslot(j->groups[0].stream, strlen(j->groups[0].stream));
            if (sl__conn_pin(j->conn, p->cfg->cluster_nodes, j->slot) != 0) {
                sl__conn_free(j->conn);
                j->conn = NULL;
            }
        }
    }
    if (j->conn == NULL) {
        jan_end_pass(j);
        return -1;
    }
    if (sl__conn_ready(j->conn))
        jan_schedule(j);
    else if (!j->connecting) {
        j->connecting = 1;
        sl__conn_connect(j->conn);      /* on_ready or on_lost follows */
    }
    return 0;
}

/* Stops and frees the janitor (at exit, and on a reload, whose
 * configuration may name another server: the next pass connects anew). */
void sl__janitor_free(struct sl_pool *p)
{
    struct sl_janitor *j = p->janitor;

    if (j == NULL)
        return;
    j->closing = 1;
    sl__conn_free(j->conn);     /* callbacks in flight return at once */
    jan_end_pass(j);
    event_free(j->step_ev);
    free(j);
    p->janitor = NULL;
}

/* In a forked child: closes the inherited copy of the janitor's socket,
 * without any I/O or change to the supervisor's loop. */
void sl__janitor_child_close(struct sl_pool *p)
{
    int fd = p->janitor != NULL ? sl__conn_fd(p->janitor->conn) : -1;

    if (fd >= 0)
        close(fd);
}

