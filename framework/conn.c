/* conn.c -- one asynchronous Redis connection with deadlines, on the
 * transport of link.c (plain or TLS).
 *
 * Each connection carries a libevent timer that is armed while a command
 * is outstanding: when no reply arrives in time (a SIGSTOPped or
 * black-holed server), the link is closed, every pending callback gets a
 * NULL reply, and the owner is told the connection was lost. The owner is
 * always told from a deferred event, never from inside a reply callback,
 * so it may close, free and reconnect freely.
 *
 * A connection may be pinned to a hash slot of a Redis Cluster
 * (sl__conn_pin): connecting then finds the slot's master first (CLUSTER
 * SLOTS on the last hint or the next seed, then that master) and is ready
 * only once the master it reached says it serves the slot. Any answer
 * meaning "not here, not now" (MOVED, ASK, TRYAGAIN, CLUSTERDOWN,
 * LOADING, UNBLOCKED, READONLY, MASTERDOWN) is handed to the caller as a lost
 * connection: the command did not run (or a blocked read ended), and the
 * owner's reconnect path, which recovers its own pending entries and
 * whose commits are fenced, is the one place that recovers from it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include <hiredis.h>
#include "internal.h"
#include "conn.h"
#include "link.h"
#include "cluster.h"

#define PIN_HOPS 3                /* nodes one pinned connect may try in turn */

/* One outstanding command. Recycled through a free list so that the hot
 * path does not allocate. */
struct cmd {
    struct sl_conn *c;            /* connection it was sent on */
    sl_conn_cb *cb;               /* owner's callback, may be NULL */
    void *priv;                   /* owner's argument */
    long long timeout_ms;         /* deadline for this reply, ms */
    int take;                     /* the callback takes the reply (synchronous callers) */
    struct cmd *next;             /* queue or free list link */
};

struct sl_conn {
    struct event_base *base;      /* loop it runs on (borrowed) */
    struct sl_link *link;         /* NULL when not connected */
    struct cmd *head, *tail;      /* commands awaiting a reply, oldest first */
    struct event *deadline;       /* fires when a reply is overdue */
    struct event *lost_ev;        /* deferred "connection lost" notice */
    struct event *setup_ev;       /* deferred AUTH/SELECT after connect */
    struct sl_redis_url url;      /* where to connect */
    char *password_file;          /* redis.password_file (owned), NULL when none */
    struct sl_tls tls;            /* TLS settings (strings owned) */
    char password[256];           /* the password AUTH was sent with, for redacting its reply */
    long long connect_timeout_ms; /* deadline of the connect phase, ms */
    long long command_timeout_ms; /* default reply deadline, ms */
    uint64_t due_us;              /* when the armed deadline falls due (monotonic us), 0 when disarmed */
    int inflight;                 /* commands awaiting a reply */
    int ready;                    /* connected, authenticated, db selected */
    int closing;                  /* we are freeing the context ourselves */
    int setup_pending;            /* AUTH/SELECT replies still expected */
    sl_conn_event *on_ready;      /* called once the connection is usable */
    sl_conn_event *on_lost;       /* called once when it is lost */
    void *arg;                    /* argument of both */
    struct cmd *free_cmds;        /* recycled command records */
    char *pin_seeds;              /* cluster seeds "h:p,h:p" (owned), NULL: not pinned */
    int pin_slot;                 /* the slot whose master we want, -1: not pinned */
    int pin_seed_next;            /* seed the next connect without a hint asks */
    int pin_hops;                 /* nodes tried by this connect */
    int pin_verified;             /* this link reached the slot's master */
    char pin_hint[256];           /* node to try first (a MOVED, a map), "" when none */
    int pin_hint_port;
    struct event *pin_ev;         /* deferred connect to the next node */
    char name[16];                /* "reader", "cmd": for logs */
    char errstr[160];             /* why it was lost */
};

static void notify_lost(struct sl_conn *c, const char *why);
static void on_pin_slots(struct sl_conn *c, redisReply *r, void *priv);
static int connect_link(struct sl_conn *c);

/* Returns a command record, from the free list when possible. */
static struct cmd *cmd_get(struct sl_conn *c)
{
    struct cmd *k = c->free_cmds;

    if (k != NULL) {
        c->free_cmds = k->next;
        return k;
    }
    return malloc(sizeof(*k));
}

/* Returns the monotonic clock in microseconds. */
static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Re-arms the deadline for the oldest outstanding reply, or disarms it. */
static void arm(struct sl_conn *c, long long ms)
{
    struct timeval tv;

    if (c->inflight <= 0 && !c->setup_pending && c->ready) {
        event_del(c->deadline);
        c->due_us = 0;
        return;
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    c->due_us = now_us() + (uint64_t)ms * 1000u;
    event_add(c->deadline, &tv);
}

/* Puts k back on the free list. */
static void cmd_put(struct sl_conn *c, struct cmd *k)
{
    k->next = c->free_cmds;
    c->free_cmds = k;
}

/* Hands a NULL reply to every command still waiting, oldest first. The
 * queue is detached first, so a callback that sends or closes meets an
 * empty one. */
static void fail_pending(struct sl_conn *c)
{
    struct cmd *k = c->head, *next;

    c->head = c->tail = NULL;
    c->inflight = 0;
    for (; k != NULL; k = next) {
        sl_conn_cb *cb = k->cb;
        void *priv = k->priv;

        next = k->next;
        cmd_put(c, k);
        if (cb != NULL)
            cb(c, NULL, priv);
    }
}

/* 1 when error reply r starts with word followed by a space or its end. */
static int is_error(const redisReply *r, const char *word)
{
    size_t n = strlen(word);

    return r->type == REDIS_REPLY_ERROR && r->len >= n && memcmp(r->str, word, n) == 0
           && (r->len == n || r->str[n] == ' ');
}

/* On a pinned connection: 1 when r says the slot is not served here or
 * not now, after recording why as the reason the connection is lost
 * (and a MOVED or ASK address as the node to try first); 0 for any
 * other reply. */
static int pin_refused(struct sl_conn *c, const redisReply *r)
{
    static const char *const words[] = { "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN",
                                         "LOADING", "UNBLOCKED", "READONLY", "MASTERDOWN" };
    char buf[200];
    size_t i;

    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    for (i = 0; i < SL_NELEM(words); i++)
        if (is_error(r, words[i]))
            break;
    if (i == SL_NELEM(words))
        return 0;
    if (i <= 1) {
        const char *host;
        size_t hostlen;
        int slot, port;

        if (sl__cluster_redirect(r->str, &slot, &host, &hostlen, &port) == 0 && hostlen > 0
            && hostlen < sizeof(c->pin_hint)) {
            memcpy(c->pin_hint, host, hostlen);
            c->pin_hint[hostlen] = '\0';
            c->pin_hint_port = port;
        }
    }
    snprintf(buf, sizeof(buf), "cluster: slot %d: %.150s", c->pin_slot, r->str);
    notify_lost(c, buf);
    return 1;
}

/* The link's reply callback: the reply belongs to the oldest command
 * (Redis answers in order). Accounts for it, keeps the deadline honest,
 * then hands it to the owner, and frees it unless the owner takes it. */
static void on_reply(struct sl_link *l, redisReply *r, void *arg)
{
    struct sl_conn *c = arg;
    struct cmd *k = c->head;
    sl_conn_cb *cb;
    void *priv;
    int take;

    (void)l;
    if (k == NULL) {
        /* Nothing asked for it (a push message): not ours to keep. */
        freeReplyObject(r);
        return;
    }
    c->head = k->next;
    if (c->head == NULL)
        c->tail = NULL;
    cb = k->cb;
    priv = k->priv;
    take = k->take;
    c->inflight--;
    cmd_put(c, k);
    if (c->pin_slot >= 0 && !c->closing && pin_refused(c, r)) {
        /* Not run here (or a blocked read ended): as if the link had
         * dropped before the reply, for this command and every later one. */
        if (cb != NULL)
            cb(c, NULL, priv);
        freeReplyObject(r);
        sl__conn_close(c);
        return;
    }
    if (!c->closing)
        arm(c, c->command_timeout_ms);
    if (cb != NULL)
        cb(c, r, priv);
    if (!take || cb == NULL)
        freeReplyObject(r);
}

/* Fires when a reply (or the connect) is overdue: the server is hung or
 * unreachable. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct sl_conn *c = arg;

    (void)fd;
    (void)what;
    notify_lost(c, c->ready ? "reply timed out" : "connect timed out");
    sl__conn_close(c);
}

/* Delivers the deferred "lost" notice to the owner. */
static void on_lost_ev(evutil_socket_t fd, short what, void *arg)
{
    struct sl_conn *c = arg;

    (void)fd;
    (void)what;
    if (c->on_lost != NULL)
        c->on_lost(c, c->arg);
}

/* Records why the connection is gone and schedules the owner's notice.
 * Only the first reason is kept. */
static void notify_lost(struct sl_conn *c, const char *why)
{
    if (event_pending(c->lost_ev, EV_TIMEOUT, NULL) || c->closing)
        return;
    snprintf(c->errstr, sizeof(c->errstr), "%s", why);
    c->ready = 0;
    event_active(c->lost_ev, EV_TIMEOUT, 0);
}

/* The deferred connect to the node the map named. */
static void on_pin_ev(evutil_socket_t fd, short what, void *arg)
{
    struct sl_conn *c = arg;

    (void)fd;
    (void)what;
    if (c->link == NULL)
        (void)connect_link(c);
}

/* Reply to CLUSTER SLOTS on a pinned connection: ready when this node is
 * the slot's master, else on to the master it names (a few hops at
 * most), else lost, the next attempt starting from another seed. */
static void on_pin_slots(struct sl_conn *c, redisReply *r, void *priv)
{
    const char *host = NULL;
    size_t hostlen = 0, i;
    int lo, hi, port = 0, found = 0;
    char buf[200];

    (void)priv;
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(buf, sizeof(buf), "cluster: CLUSTER SLOTS on %.60s:%d: %.100s", c->url.host,
                 c->url.port, r->str);
        notify_lost(c, buf);
        return;
    }
    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && !found; i++)
        if (sl__cluster_slots_range(r->element[i], &lo, &hi, &host, &hostlen, &port) == 0
            && lo <= c->pin_slot && c->pin_slot <= hi)
            found = 1;
    if (!found) {
        snprintf(buf, sizeof(buf), "cluster: %.60s:%d knows no master for slot %d",
                 c->url.host, c->url.port, c->pin_slot);
        notify_lost(c, buf);
        return;
    }
    /* "" or "?": the node does not know its own address; it is this one. */
    if (hostlen == 0 || (hostlen == 1 && host[0] == '?') ||
        (port == c->url.port && hostlen == strlen(c->url.host) &&
         memcmp(host, c->url.host, hostlen) == 0)) {
        c->pin_verified = 1;
        c->ready = 1;
        arm(c, c->command_timeout_ms);
        if (c->on_ready != NULL)
            c->on_ready(c, c->arg);
        return;
    }
    if (++c->pin_hops >= PIN_HOPS || hostlen >= sizeof(c->pin_hint)) {
        snprintf(buf, sizeof(buf), "cluster: slot %d: no master found in %d hops",
                 c->pin_slot, PIN_HOPS);
        notify_lost(c, buf);
        return;
    }
    memcpy(c->pin_hint, host, hostlen);
    c->pin_hint[hostlen] = '\0';
    c->pin_hint_port = port;
    sl__conn_close(c);
    c->closing = 0;
    event_active(c->pin_ev, EV_TIMEOUT, 0);
}

/* Marks one setup reply received; the last one makes the connection
 * ready. */
static void setup_done(struct sl_conn *c)
{
    if (--c->setup_pending == 0 && c->pin_slot >= 0 && !c->pin_verified) {
        static const char *const argv[] = { "CLUSTER", "SLOTS" };

        /* Pinned: ready only once this node says it is the slot's master. */
        if (sl__conn_command(c, on_pin_slots, NULL, 0, 2, (const char **)argv, NULL) != 0)
            notify_lost(c, "cluster: cannot send CLUSTER SLOTS");
        return;
    }
    if (c->setup_pending == 0) {
        c->ready = 1;
        arm(c, c->command_timeout_ms);
        if (c->on_ready != NULL)
            c->on_ready(c, c->arg);
    }
}

/* Reply to AUTH during setup. A refusal is reported as "authentication
 * failed: <Redis's reason>", the password never included; the owner
 * treats it like any lost connection and retries with backoff, reading
 * the password (file) anew each time. */
static void on_auth_reply(struct sl_conn *c, redisReply *r, void *priv)
{
    char buf[sizeof(c->errstr)];

    (void)priv;
    if (r == NULL) {
        memset(c->password, 0, sizeof(c->password));
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        sl__auth_error(buf, sizeof(buf), r->str, c->password);
        memset(c->password, 0, sizeof(c->password));
        notify_lost(c, buf);
        return;
    }
    memset(c->password, 0, sizeof(c->password));
    setup_done(c);
}

/* Reply to SELECT sent during setup. */
static void on_setup_reply(struct sl_conn *c, redisReply *r, void *priv)
{
    (void)priv;
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char buf[160];
        snprintf(buf, sizeof(buf), "setup failed: %.120s", r->str);
        notify_lost(c, buf);
        return;
    }
    setup_done(c);
}

/* Sends AUTH and SELECT as needed, from a deferred event rather than
 * from inside the link's callback. The password is looked up now, at
 * every connect (URL, then SLUICE_REDIS_PASSWORD, then
 * redis.password_file), so that a rotated password file works after the
 * next reconnect. */
static void on_setup_ev(evutil_socket_t fd, short what, void *arg)
{
    struct sl_conn *c = arg;
    struct sl_session ss;
    char buf[sizeof(c->errstr)];

    (void)fd;
    (void)what;
    if (c->link == NULL)
        return;
    if (sl__session_begin(&c->url, c->password_file, &ss, buf, sizeof(buf)) != 0) {
        notify_lost(c, buf);
        return;
    }
    /* Kept until AUTH's reply, to hide it in a refusal's text. */
    snprintf(c->password, sizeof(c->password), "%s", ss.password);
    c->setup_pending = 1;            /* guards against an early "ready" */
    if (ss.nauth > 0) {
        c->setup_pending++;
        sl__conn_command(c, on_auth_reply, NULL, 0, ss.nauth, ss.auth, NULL);
    }
    if (ss.nselect > 0) {
        c->setup_pending++;
        sl__conn_command(c, on_setup_reply, NULL, 0, ss.nselect, ss.select, NULL);
    }
    sl__session_end(&ss);
    setup_done(c);
}

/* The link's up/down callback. Up: the setup follows from a deferred
 * event. Down: every waiting command gets a NULL reply, then the owner
 * hears of it (deferred). The link is freed here: link.c releases it
 * once its own dispatch returns. */
static void on_state(struct sl_link *l, int up, const char *why, void *arg)
{
    struct sl_conn *c = arg;

    if (up) {
        event_active(c->setup_ev, EV_TIMEOUT, 0);
        return;
    }
    if (c->link != l)
        return;
    c->link = NULL;
    c->ready = 0;
    sl__link_free(l);
    notify_lost(c, why);
    fail_pending(c);
}

/* Creates an unconnected connection. New: sl__conn_free(). */
struct sl_conn *sl__conn_new(struct event_base *base, const char *name,
                             const struct sl_config *cfg,
                             sl_conn_event *on_ready, sl_conn_event *on_lost,
                             void *arg)
{
    struct sl_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->base = base;
    c->url = cfg->redis;
    c->connect_timeout_ms = cfg->connect_timeout_ms;
    c->command_timeout_ms = cfg->command_timeout_ms;
    c->on_ready = on_ready;
    c->on_lost = on_lost;
    c->arg = arg;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->deadline = evtimer_new(base, on_deadline, c);
    c->lost_ev = event_new(base, -1, 0, on_lost_ev, c);
    c->setup_ev = event_new(base, -1, 0, on_setup_ev, c);
    c->pin_ev = event_new(base, -1, 0, on_pin_ev, c);
    c->pin_slot = -1;
    if (c->deadline == NULL || c->lost_ev == NULL || c->setup_ev == NULL || c->pin_ev == NULL
        || sl__tls_copy(&c->tls, &cfg->tls) != 0
        || (cfg->password_file != NULL && (c->password_file = strdup(cfg->password_file)) == NULL)) {
        sl__conn_free(c);
        return NULL;
    }
    return c;
}

/* Sets the address a pinned connect goes to: the hint (a MOVED's or the
 * map's, used once), else the next seed in turn, so that a dead node is
 * not asked twice in a row. A new attempt (not a hop) starts counting
 * hops. Returns 0 or -1 with the reason in err. */
static int pin_target(struct sl_conn *c, char *err, size_t errlen)
{
    int rc;

    event_del(c->pin_ev);
    c->pin_verified = 0;
    if (c->pin_hint[0] != '\0') {
        snprintf(c->url.host, sizeof(c->url.host), "%s", c->pin_hint);
        c->url.port = c->pin_hint_port;
        c->pin_hint[0] = '\0';
        return 0;
    }
    rc = sl__cluster_seed(c->pin_seeds, c->pin_seed_next++, c->url.host, sizeof(c->url.host),
                          &c->url.port, err, errlen);
    if (rc == 1) {
        c->pin_seed_next = 1;
        rc = sl__cluster_seed(c->pin_seeds, 0, c->url.host, sizeof(c->url.host),
                              &c->url.port, err, errlen);
    }
    if (rc == 1)
        snprintf(err, errlen, "cluster: no seed node");
    return rc == 0 ? 0 : -1;
}

/* Pins c to the master of `slot` of the cluster whose seeds are `seeds`
 * ("h:p,h:p", copied): see the top of this file. Call before connecting.
 * Returns 0, or -1 (out of memory, bad slot). */
int sl__conn_pin(struct sl_conn *c, const char *seeds, int slot)
{
    char *copy;

    if (slot < 0 || slot >= SL_CLUSTER_SLOTS || (copy = strdup(seeds)) == NULL)
        return -1;
    free(c->pin_seeds);
    c->pin_seeds = copy;
    c->pin_slot = slot;
    c->pin_seed_next = 0;
    c->pin_hint[0] = '\0';
    c->url.db = 0;
    return 0;
}

/* Starts connecting. The outcome arrives as on_ready or on_lost. Returns
 * 0, or -1 when even the attempt could not start (on_lost follows). */
int sl__conn_connect(struct sl_conn *c)
{
    c->pin_hops = 0;
    return connect_link(c);
}

/* Opens the link (to the pinned slot's next candidate when pinned). */
static int connect_link(struct sl_conn *c)
{
    char buf[sizeof(c->errstr)];

    SL_ASSERT(c->link == NULL);
    c->closing = 0;
    c->ready = 0;
    c->errstr[0] = '\0';
    if (c->pin_slot >= 0 && pin_target(c, buf, sizeof(buf)) != 0) {
        notify_lost(c, buf);
        return -1;
    }
    c->link = sl__link_new(c->base, &c->url, &c->tls, on_reply, on_state, c, buf, sizeof(buf));
    if (c->link == NULL) {
        notify_lost(c, buf);
        return -1;
    }
    arm(c, c->connect_timeout_ms);
    return 0;
}

/* Sends one command, formatted in cmd (len bytes, borrowed). timeout_ms
 * 0 means the connection's command timeout; a blocking command passes
 * its BLOCK time plus that. Returns 0 and the callback runs exactly once
 * (reply NULL if the connection is lost); or -1 and it never runs. */
static int command(struct sl_conn *c, sl_conn_cb *cb, void *priv, int take,
                   long long timeout_ms, const char *cmd, int len)
{
    struct cmd *k;

    if (c->link == NULL || c->closing || len < 0)
        return -1;
    k = cmd_get(c);
    if (k == NULL)
        return -1;
    k->c = c;
    k->cb = cb;
    k->priv = priv;
    k->take = take;
    k->next = NULL;
    k->timeout_ms = timeout_ms > 0 ? timeout_ms : c->command_timeout_ms;
    if (sl__link_send(c->link, cmd, (size_t)len) != 0) {
        cmd_put(c, k);
        return -1;
    }
    if (c->tail != NULL)
        c->tail->next = k;
    else
        c->head = k;
    c->tail = k;
    c->inflight++;
    /* A longer deadline (BLOCK) replaces a shorter one; otherwise the
     * armed deadline, counted from the last reply, already covers it. */
    if (c->inflight == 1 || k->timeout_ms > c->command_timeout_ms)
        arm(c, k->timeout_ms);
    return 0;
}

/* Formats argv and sends it (see command()). */
static int command_argv(struct sl_conn *c, sl_conn_cb *cb, void *priv, int take,
                        long long timeout_ms, int argc, const char **argv,
                        const size_t *argvlen)
{
    char *cmd = NULL;
    int len, rc;

    if (c->link == NULL || c->closing)
        return -1;
    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0 || cmd == NULL)
        return -1;
    rc = command(c, cb, priv, take, timeout_ms, cmd, len);
    redisFreeCommand(cmd);
    return rc;
}

/* Sends one command, binary-safe (argvlen may be NULL for C strings);
 * see command(). The reply is freed when the callback returns. */
int sl__conn_command(struct sl_conn *c, sl_conn_cb *cb, void *priv,
                     long long timeout_ms, int argc, const char **argv,
                     const size_t *argvlen)
{
    return command_argv(c, cb, priv, 0, timeout_ms, argc, argv, argvlen);
}

/* Sends one command whose callback takes the reply (new:
 * freeReplyObject), for callers that keep it past the callback. */
int sl__conn_command_take(struct sl_conn *c, sl_conn_cb *cb, void *priv,
                          long long timeout_ms, int argc, const char **argv,
                          const size_t *argvlen)
{
    return command_argv(c, cb, priv, 1, timeout_ms, argc, argv, argvlen);
}

/* Sends one command already in the Redis protocol (len bytes of cmd,
 * borrowed), for a caller that keeps it formatted to send again (the
 * cluster router resends after a redirect); see command(). */
int sl__conn_command_raw(struct sl_conn *c, sl_conn_cb *cb, void *priv,
                         long long timeout_ms, const char *cmd, size_t len)
{
    if (len > (size_t)0x7fffffff)
        return -1;
    return command(c, cb, priv, 0, timeout_ms, cmd, (int)len);
}

/* The same with a hiredis format string and its arguments. */
int sl__conn_vcommand_take(struct sl_conn *c, sl_conn_cb *cb, void *priv,
                           long long timeout_ms, const char *fmt, va_list ap)
{
    char *cmd = NULL;
    int len, rc;

    if (c->link == NULL || c->closing)
        return -1;
    len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0 || cmd == NULL)
        return -1;
    rc = command(c, cb, priv, 1, timeout_ms, cmd, len);
    redisFreeCommand(cmd);
    return rc;
}

/* Closes the connection now. Pending callbacks run with a NULL reply
 * before this returns; on_lost is not called for a close we asked for.
 * Safe inside this connection's own reply callbacks (the link is
 * released when its dispatch returns). */
void sl__conn_close(struct sl_conn *c)
{
    struct sl_link *l;

    if (c == NULL)
        return;
    l = c->link;
    c->ready = 0;
    c->setup_pending = 0;
    event_del(c->deadline);
    c->due_us = 0;
    event_del(c->setup_ev);
    event_del(c->pin_ev);
    if (l == NULL)
        return;
    c->closing = 1;
    c->link = NULL;
    sl__link_free(l);
    fail_pending(c);
}

/* Writes what is queued on the connection now, instead of at the next
 * turn of the event loop, so that a command issued inside a reply
 * callback reaches Redis before the callback's own work is done. No
 * callback runs from here; a write error is reported by the loop as a
 * lost connection, as usual. */
void sl__conn_flush(struct sl_conn *c)
{
    if (c == NULL || c->link == NULL || c->closing)
        return;
    sl__link_flush(c->link);
}

/* Tells the connection that its loop could not run for `us`
 * microseconds (the owner ran a handler that blocked): a deadline counts
 * only time in which the loop could have read the reply, so the armed one
 * moves that much later. Without this, a handler blocking longer than
 * command_timeout_ms expired the deadline of a command sent before it
 * (often not even written yet), and the connection was dropped as if
 * Redis had hung. What is left of the deadline after the move may be 0:
 * the loop then reads whatever arrived before it gives up, since libevent
 * runs the socket's callback, which re-arms, before the expired timer. */
void sl__conn_stalled(struct sl_conn *c, uint64_t us)
{
    uint64_t now;
    struct timeval tv;

    if (c == NULL)
        return;
    /* libevent counts a timer from the time it cached when this turn of
     * the loop began, which is `us` old now: refreshed, the deadlines
     * armed from here on count from the present. */
    event_base_update_cache_time(c->base);
    if (c->due_us == 0 || !event_pending(c->deadline, EV_TIMEOUT, NULL))
        return;
    c->due_us += us;
    now = now_us();
    us = c->due_us > now ? c->due_us - now : 0;
    tv.tv_sec = (time_t)(us / 1000000u);
    tv.tv_usec = (suseconds_t)(us % 1000000u);
    event_add(c->deadline, &tv);
}

/* Returns 1 when commands can be sent. */
int sl__conn_ready(const struct sl_conn *c)
{
    return c != NULL && c->link != NULL && c->ready && !c->closing;
}

/* Returns the number of commands awaiting a reply. */
int sl__conn_inflight(const struct sl_conn *c)
{
    return c->inflight;
}

/* Returns the connection's socket, or -1 when it has none: a forked
 * child closes its inherited copy without touching the event loop. */
int sl__conn_fd(const struct sl_conn *c)
{
    return c != NULL ? sl__link_fd(c->link) : -1;
}

/* Returns the reason the connection was last lost ("" when none). */
const char *sl__conn_error(const struct sl_conn *c)
{
    return c->errstr;
}

/* Closes and frees the connection. Accepts NULL. */
void sl__conn_free(struct sl_conn *c)
{
    struct cmd *k;

    if (c == NULL)
        return;
    sl__conn_close(c);
    while ((k = c->free_cmds) != NULL) {
        c->free_cmds = k->next;
        free(k);
    }
    if (c->deadline)
        event_free(c->deadline);
    if (c->lost_ev)
        event_free(c->lost_ev);
    if (c->setup_ev)
        event_free(c->setup_ev);
    if (c->pin_ev)
        event_free(c->pin_ev);
    free(c->pin_seeds);
    free(c->password_file);
    sl__tls_clear(&c->tls);
    memset(&c->url, 0, sizeof(c->url));
    memset(c->password, 0, sizeof(c->password));
    free(c);
}
