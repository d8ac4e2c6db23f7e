/* supconn.c -- the supervisor's Redis connection: asynchronous, on the
 * supervisor's own loop, reconnecting with backoff; the one way the
 * supervisor's files send Redis a command or a script.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <hiredis.h>
#include "internal.h"
#include "pool.h"
#include "scripts.h"
#include "cluster.h"
#include "conn.h"

/* ---------------------------------------------------------------------
 * The asynchronous connection
 *
 * The supervisor's Redis work (the start check, records of crashed
 * attempts, lease renewals, heartbeats of busy children, the snapshot
 * for /metrics and /healthz, trimming) goes through one connection on
 * the supervisor's own loop, so a hung Redis delays none
 * of its other duties: restarting children, reaping, signals, answering
 * HTTP. A command sent while the connection is down is refused at once
 * (the caller tries again at a later tick); replies come to callbacks.
 *
 * On a Redis Cluster the work of a stream must go to the master of its
 * hash slot (all of a stream's keys share its tag). There, that one
 * connection is pinned (conn.c) to the slot of the first worker's
 * stream, and each other slot a command names gets a pinned connection
 * of its own, opened on first use and kept: a few, one per distinct
 * stream tag. The rule is the same: while a slot's connection is down,
 * its commands are refused and retried at a later tick.
 * ------------------------------------------------------------------ */

/* A further pinned connection of the supervisor (cluster mode). */
struct sl_supc_pin {
    struct sl_pool *p;
    int slot;                     /* the hash slot it serves */
    struct sl_conn *c;
    struct event *retry;          /* reconnect backoff */
    int fails;                    /* consecutive failed connects */
    int loaded[32];               /* per SL_SCRIPT_*: SCRIPT LOAD sent on it */
};

/* One flag per framework script in struct sl_pool. */
_Static_assert(SL_NSCRIPTS <= (int)(sizeof(((struct sl_pool *)0)->ac_loaded) / sizeof(int)),
               "sl_pool.ac_loaded is too small for SL_NSCRIPTS");

static void async_connect(struct sl_pool *p);

/* The connection is set up: scripts must be loaded again on it. */
static void async_ready(struct sl_conn *c, void *arg)
{
    struct sl_pool *p = arg;

    (void)c;
    memset(p->ac_loaded, 0, sizeof(p->ac_loaded));
    if (p->ac_fails > 0)
        sl__log(SL_LOG_INFO, "redis_reconnected", "attempts=%d", p->ac_fails);
    p->ac_fails = 0;
}

/* A connection of the supervisor is gone: closes it and arms `retry`
 * after a backoff from 200 ms to 5 s, counting the attempt in *fails and
 * logging it once per doubling of attempts (slot >= 0: a pinned
 * connection's slot, named in the log). */
static void lost_backoff(struct sl_conn *c, int *fails, struct event *retry, int slot)
{
    struct timeval tv;
    long long ms;

    if (*fails == 0 || (*fails & (*fails - 1)) == 0) {
        if (slot >= 0)
            sl__log(SL_LOG_WARN, "redis_unavailable", "slot=%d attempt=%d error=%s", slot,
                    *fails + 1, sl__logq(sl__conn_error(c)));
        else
            sl__log(SL_LOG_WARN, "redis_unavailable", "attempt=%d error=%s", *fails + 1,
                    sl__logq(sl__conn_error(c)));
    }
    sl__conn_close(c);
    (*fails)++;
    ms = sl__backoff_ms(200, 5000, *fails);
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    event_add(retry, &tv);
}

/* The connection is gone: reconnect after a backoff. */
static void async_lost(struct sl_conn *c, void *arg)
{
    struct sl_pool *p = arg;

    lost_backoff(c, &p->ac_fails, p->ac_retry, -1);
}

/* The backoff passed: connect again. */
static void async_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    async_connect(arg);
}

/* Starts connecting (the outcome arrives as async_ready or async_lost). */
static void async_connect(struct sl_pool *p)
{
    if (p->ac != NULL && !sl__conn_ready(p->ac) && sl__conn_fd(p->ac) < 0)
        (void)sl__conn_connect(p->ac);
}

/* A pinned connection is set up: its scripts must be loaded again. */
static void pin_ready(struct sl_conn *c, void *arg)
{
    struct sl_supc_pin *k = arg;

    (void)c;
    memset(k->loaded, 0, sizeof(k->loaded));
    k->fails = 0;
}

/* A pinned connection is gone: reconnect after a backoff. */
static void pin_lost(struct sl_conn *c, void *arg)
{
    struct sl_supc_pin *k = arg;

    lost_backoff(c, &k->fails, k->retry, k->slot);
}

/* A pinned connection's backoff passed: connect again. */
static void pin_retry(evutil_socket_t fd, short what, void *arg)
{
    struct sl_supc_pin *k = arg;

    (void)fd;
    (void)what;
    if (!sl__conn_ready(k->c) && sl__conn_fd(k->c) < 0)
        (void)sl__conn_connect(k->c);
}

/* 1 in cluster mode, once the connections exist. */
static int clustered(const struct sl_pool *p)
{
    return p->ac != NULL && p->ac_slot >= 0;
}

/* The connection for slot (-1: any) and its script flags: ac, or in
 * cluster mode the slot's own, opened on first use. Returns NULL when
 * that connection cannot take commands now. */
static struct sl_conn *route(struct sl_pool *p, int slot, int **loaded)
{
    struct sl_supc_pin *k, **grown;
    size_t i;

    *loaded = p->ac_loaded;
    if (!clustered(p) || slot < 0 || slot == p->ac_slot)
        return sl__pool_async_ready(p) ? p->ac : NULL;
    for (i = 0; i < p->npins; i++)
        if (p->pins[i]->slot == slot) {
            *loaded = p->pins[i]->loaded;
            return sl__conn_ready(p->pins[i]->c) ? p->pins[i]->c : NULL;
        }
    grown = realloc(p->pins, (p->npins + 1) * sizeof(*p->pins));
    if (grown == NULL)
        return NULL;
    p->pins = grown;
    k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    k->p = p;
    k->slot = slot;
    k->c = sl__conn_new(p->base, "supervisor", p->cfg, pin_ready, pin_lost, k);
    k->retry = evtimer_new(p->base, pin_retry, k);
    if (k->c == NULL || k->retry == NULL || sl__conn_pin(k->c, p->cfg->cluster_nodes, slot) != 0) {
        sl__conn_free(k->c);
        if (k->retry != NULL)
            event_free(k->retry);
        free(k);
        return NULL;
    }
    p->pins[p->npins++] = k;
    (void)sl__conn_connect(k->c);
    return NULL;
}

/* The slot of a command the supervisor sends: of its key, the second
 * word (the third for XINFO's subcommands); -1 for none (PING, TIME). */
static int command_slot(const struct sl_pool *p, int argc, const char **argv)
{
    int at = strcasecmp(argv[0], "XINFO") == 0 ? 2 : 1;

    if (!clustered(p) || argc <= at)
        return -1;
    return sl__cluster_keyslot(argv[at], strlen(argv[at]));
}

/* Creates the asynchronous connection and starts connecting; in cluster
 * mode pinned to the slot of the first worker's stream, and the other
 * streams' connections opened too. Returns 0 or -1 when out of memory. */
int sl__pool_async_start(struct sl_pool *p)
{
    size_t i;
    int *loaded;

    if (p->ac != NULL)
        return 0;
    p->ac_slot = -1;
    p->ac = sl__conn_new(p->base, "supervisor", p->cfg, async_ready, async_lost, p);
    p->ac_retry = evtimer_new(p->base, async_retry, p);
    if (p->ac == NULL || p->ac_retry == NULL)
        return -1;
    if (p->cfg->cluster_nodes != NULL) {
        const char *first = p->cfg->nworkers > 0 ? p->cfg->workers[0].stream : "";

        p->ac_slot = sl__cluster_keyslot(first, strlen(first));
        if (sl__conn_pin(p->ac, p->cfg->cluster_nodes, p->ac_slot) != 0)
            return -1;
    }
    async_connect(p);
    for (i = 0; p->ac_slot >= 0 && i < p->cfg->nworkers; i++)
        (void)route(p, sl__cluster_keyslot(p->cfg->workers[i].stream,
                                           strlen(p->cfg->workers[i].stream)), &loaded);
    return 0;
}

/* Tells whether the asynchronous connection can take commands now. */
int sl__pool_async_ready(const struct sl_pool *p)
{
    return p->ac != NULL && sl__conn_ready(p->ac);
}

/* The replies the supervisor's connections (those up) still await. */
int sl__pool_async_inflight(const struct sl_pool *p)
{
    int n = p->ac != NULL && sl__conn_ready(p->ac) ? sl__conn_inflight(p->ac) : 0;
    size_t i;

    for (i = 0; i < p->npins; i++)
        if (sl__conn_ready(p->pins[i]->c))
            n += sl__conn_inflight(p->pins[i]->c);
    return n;
}

/* Closes and frees the asynchronous connection (pending callbacks get a
 * NULL reply). */
void sl__pool_async_free(struct sl_pool *p)
{
    size_t i;

    for (i = 0; i < p->npins; i++) {
        sl__conn_free(p->pins[i]->c);
        event_free(p->pins[i]->retry);
        free(p->pins[i]);
    }
    free(p->pins);
    p->pins = NULL;
    p->npins = 0;
    sl__conn_free(p->ac);
    p->ac = NULL;
    if (p->ac_retry != NULL)
        event_free(p->ac_retry);
    p->ac_retry = NULL;
}

/* In a forked child: closes the inherited socket only. */
void sl__pool_async_child_close(struct sl_pool *p)
{
    int fd = p->ac != NULL ? sl__conn_fd(p->ac) : -1;
    size_t i;

    if (fd >= 0)
        close(fd);
    for (i = 0; i < p->npins; i++)
        if ((fd = sl__conn_fd(p->pins[i]->c)) >= 0)
            close(fd);
}

/* Sends one command; cb (may be NULL) gets the reply, or NULL when the
 * connection is lost first. Returns 0, or -1 when the connection is down
 * (cb is not called). */
int sl__pool_send(struct sl_pool *p, sl_conn_cb *cb, void *arg, int argc, const char **argv)
{
    int *loaded;
    struct sl_conn *c = route(p, command_slot(p, argc, argv), &loaded);

    if (c == NULL)
        return -1;
    return sl__conn_command(c, cb, arg, 0, argc, argv, NULL);
}

/* The same, cb taking the reply (new: freeReplyObject). */
int sl__pool_send_take(struct sl_pool *p, sl_conn_cb *cb, void *arg, int argc, const char **argv)
{
    int *loaded;
    struct sl_conn *c = route(p, command_slot(p, argc, argv), &loaded);

    if (c == NULL)
        return -1;
    return sl__conn_command_take(c, cb, arg, 0, argc, argv, NULL);
}

/* What a script call remembers until its reply. */
struct script_call {
    struct sl_pool *p;            /* the pool */
    int *loaded;                  /* the script flags of the connection it went on */
    int which;                    /* SL_SCRIPT_* */
    sl_conn_cb *cb;               /* the caller's callback, may be NULL */
    void *arg;                    /* its argument */
};

/* A script's reply: a NOSCRIPT (the server forgot it: a restart, SCRIPT
 * FLUSH) marks it to be loaded again with the next call, which the
 * caller makes at a later tick like after any failure. */
static void script_reply(struct sl_conn *c, redisReply *r, void *arg)
{
    struct script_call *k = arg;

    if (sl__script_noscript(r))
        k->loaded[k->which] = 0;
    if (k->cb != NULL)
        k->cb(c, r, k->arg);
    free(k);
}

/* The reply to SCRIPT LOAD: records the sha (a mismatch with ours is
 * left to the EVALSHA that follows, which then fails NOSCRIPT). */
static void script_loaded(struct sl_conn *c, redisReply *r, void *arg)
{
    (void)c;
    if (r != NULL && r->type != REDIS_REPLY_ERROR)
        (void)sl__script_loaded(arg, r);
}

/* Runs framework script `which` with EVALSHA, the SCRIPT LOAD pipelined
 * before it when this connection has not loaded it yet (the sha is
 * computed here, so both go in one round trip). Returns like
 * sl__pool_send(). */
int sl__pool_send_script(struct sl_pool *p, int which, int nkeys, const char *const *keys,
                         int nargs, const char *const *args, sl_conn_cb *cb, void *arg)
{
    struct sl_lua *l = sl__script(which);
    const char **argv = NULL;
    size_t *argvlen = NULL;
    struct script_call *k = NULL;
    char nk[16];
    int argc, rc = -1, slot = -1, *loaded;
    struct sl_conn *c;

    if (clustered(p) && nkeys > 0) {
        slot = sl__cluster_keys_slot(nkeys, keys, NULL);
        if (slot == -2)
            return -1;          /* refused: the worker configuration is checked */
    }
    if ((c = route(p, slot, &loaded)) == NULL)
        return -1;
    if (l->sha[0] == '\0')
        sl__script_sha(l);
    if (!loaded[which]) {
        const char *load[3];
        sl__script_load_argv(l, load);
        if (sl__conn_command(c, script_loaded, l, 0, 3, load, NULL) != 0)
            return -1;
        loaded[which] = 1;
    }
    argv = malloc((size_t)(3 + nkeys + nargs) * sizeof(*argv));
    argvlen = malloc((size_t)(3 + nkeys + nargs) * sizeof(*argvlen));
    k = malloc(sizeof(*k));
    if (argv == NULL || argvlen == NULL || k == NULL)
        goto out;
    k->p = p;
    k->loaded = loaded;
    k->which = which;
    k->cb = cb;
    k->arg = arg;
    argc = sl__script_argv(l, nk, nkeys, keys, NULL, nargs, args, NULL, argv, argvlen);
    rc = sl__conn_command(c, script_reply, k, 0, argc, argv, argvlen);
    if (rc == 0)
        k = NULL;
out:
    free(k);
    free(argv);
    free(argvlen);
    return rc;
}
