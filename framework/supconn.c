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
 * ------------------------------------------------------------------ */

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

/* The connection is gone: reconnect after a backoff, logged once per
 * doubling of attempts. */
static void async_lost(struct sl_conn *c, void *arg)
{
    struct sl_pool *p = arg;
    struct timeval tv;
    long long ms;

    if (p->ac_fails == 0 || (p->ac_fails & (p->ac_fails - 1)) == 0)
        sl__log(SL_LOG_WARN, "redis_unavailable", "attempt=%d error=%s", p->ac_fails + 1,
                sl__logq(sl__conn_error(c)));
    sl__conn_close(c);
    p->ac_fails++;
    ms = sl__backoff_ms(200, 5000, p->ac_fails);
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    event_add(p->ac_retry, &tv);
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

/* Creates the asynchronous connection and starts connecting. Returns 0
 * or -1 when out of memory. */
int sl__pool_async_start(struct sl_pool *p)
{
    if (p->ac != NULL)
        return 0;
    p->ac = sl__conn_new(p->base, "supervisor", p->cfg, async_ready, async_lost, p);
    p->ac_retry = evtimer_new(p->base, async_retry, p);
    if (p->ac == NULL || p->ac_retry == NULL)
        return -1;
    async_connect(p);
    return 0;
}

/* Tells whether the asynchronous connection can take commands now. */
int sl__pool_async_ready(const struct sl_pool *p)
{
    return p->ac != NULL && sl__conn_ready(p->ac);
}

/* Closes and frees the asynchronous connection (pending callbacks get a
 * NULL reply). */
void sl__pool_async_free(struct sl_pool *p)
{
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

    if (fd >= 0)
        close(fd);
}

/* Sends one command; cb (may be NULL) gets the reply, or NULL when the
 * connection is lost first. Returns 0, or -1 when the connection is down
 * (cb is not called). */
int sl__pool_send(struct sl_pool *p, sl_conn_cb *cb, void *arg, int argc, const char **argv)
{
    if (!sl__pool_async_ready(p))
        return -1;
    return sl__conn_command(p->ac, cb, arg, 0, argc, argv, NULL);
}

/* The same, cb taking the reply (new: freeReplyObject). */
int sl__pool_send_take(struct sl_pool *p, sl_conn_cb *cb, void *arg, int argc, const char **argv)
{
    if (!sl__pool_async_ready(p))
        return -1;
    return sl__conn_command_take(p->ac, cb, arg, 0, argc, argv, NULL);
}

/* What a script call remembers until its reply. */
struct script_call {
    struct sl_pool *p;            /* the pool */
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
        k->p->ac_loaded[k->which] = 0;
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
    int argc, rc = -1;

    if (!sl__pool_async_ready(p))
        return -1;
    if (l->sha[0] == '\0')
        sl__script_sha(l);
    if (!p->ac_loaded[which]) {
        const char *load[3];
        sl__script_load_argv(l, load);
        if (sl__conn_command(p->ac, script_loaded, l, 0, 3, load, NULL) != 0)
            return -1;
        p->ac_loaded[which] = 1;
    }
    argv = malloc((size_t)(3 + nkeys + nargs) * sizeof(*argv));
    argvlen = malloc((size_t)(3 + nkeys + nargs) * sizeof(*argvlen));
    k = malloc(sizeof(*k));
    if (argv == NULL || argvlen == NULL || k == NULL)
        goto out;
    k->p = p;
    k->which = which;
    k->cb = cb;
    k->arg = arg;
    argc = sl__script_argv(l, nk, nkeys, keys, NULL, nargs, args, NULL, argv, argvlen);
    rc = sl__conn_command(p->ac, script_reply, k, 0, argc, argv, argvlen);
    if (rc == 0)
        k = NULL;
out:
    free(k);
    free(argv);
    free(argvlen);
    return rc;
}
