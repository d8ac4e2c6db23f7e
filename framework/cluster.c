/* cluster.c -- the Redis Cluster router: sluice's own cluster client on
 * the connections of conn.c (Debian ships no C cluster client that links
 * with hiredis 0.14).
 *
 * The caller routes every command itself, by the keys it put there (or by
 * a slot), so there is no command table and no guessing of key
 * positions. The router keeps slot -> master from CLUSTER SLOTS, one
 * connection per master (opened on first use), and handles what a
 * cluster answers besides the reply:
 *
 *   MOVED slot addr  the map was stale: that slot is updated at once, the
 *                    command resent, and a full re-read of the map is
 *                    scheduled (one MOVED usually means many slots moved);
 *   ASK slot addr    the slot is migrating and this key has moved: the
 *                    command goes once to addr, after ASKING on the same
 *                    connection; the map is left alone;
 *   TRYAGAIN, CLUSTERDOWN, LOADING
 *                    transient (a multi-key command mid-migration, a
 *                    failover, a restart): resent after a backoff that
 *                    doubles up to 1 s, until the retry time (default 30 s,
 *                    longer than a failover) has passed;
 *   a lost connection  the map is re-read; a command marked idempotent or
 *                    fenced (SL_CLUSTER_RESEND) is resent like the above,
 *                    any other is failed to its caller, who knows whether
 *                    it may be repeated.
 *
 * Redirects are limited (a map that never settles cannot loop forever);
 * CROSSSLOT is a bug in the caller and is never retried. Nodes are only
 * ever added, never freed while the router lives, and commands refer to
 * them by index, so swapping the slot map with commands in flight cannot
 * leave a dangling pointer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <hiredis.h>
#include "internal.h"
#include "conn.h"
#include "cluster.h"

#define MAX_NODES       128       /* distinct addresses a router will know */
#define MAX_REDIRECTS   16        /* MOVED/ASK hops of one command */
#define BACKOFF_MIN_MS  10        /* first pause before a retry */
#define BACKOFF_MAX_MS  1000      /* the longest pause between two retries */
#define REFRESH_MIN_MS  250       /* at most one map read per this */
#define REFRESH_EVERY_MS 30000    /* the periodic map read */

/* ------------------------------------------------------------------------
 * The router's state
 * ------------------------------------------------------------------------ */

enum { NODE_IDLE, NODE_CONNECTING, NODE_READY };

struct req;

/* One master (or seed) the router has heard of. */
struct node {
    struct sl_cluster *cl;        /* owner */
    int idx;                      /* index in cl->nodes */
    char host[256];               /* address as the cluster names it */
    int port;
    char addr[280];               /* "host:port", for logs and tests */
    struct sl_conn *conn;         /* NULL until first used */
    int state;                    /* NODE_* */
    struct req *wait_head, *wait_tail; /* commands waiting for the connection */
};

/* One command the caller gave us, until its callback has run. */
struct req {
    struct sl_cluster *cl;
    char *cmd;                    /* the command in the Redis protocol (owned) */
    size_t len;
    int slot;                     /* -1: sent to `target` (a map read) */
    int target;                   /* node for slot -1 */
    int ask;                      /* node of a pending ASK, or -1 */
    int flags;                    /* SL_CLUSTER_* */
    int redirects;                /* MOVED and ASK followed so far */
    int attempts;                 /* retries so far (backoff exponent) */
    uint64_t deadline;            /* no retry after this (monotonic ms) */
    long long timeout_ms;         /* reply deadline on the connection */
    sl_cluster_cb *cb;
    void *priv;
    struct event *timer;          /* the backoff pause */
    struct req *next;             /* a node's wait queue */
    struct req *prev_all, *next_all; /* every live request, for free */
};

struct sl_cluster {
    struct event_base *base;      /* borrowed */
    struct sl_config cfg;         /* a shallow copy, host/port set per node */
    struct node *nodes[MAX_NODES];
    int nnodes;
    int nseeds;                   /* nodes[0..nseeds) came from the seed list */
    short slot_node[SL_CLUSTER_SLOTS]; /* -1: not known */
    struct req *all;              /* every live request */
    int refreshing;               /* a map read is in flight */
    int refresh_next;             /* node the next map read asks */
    uint64_t last_refresh;        /* when the last map read was sent */
    unsigned long map_failures;   /* map reads failed in a row */
    char map_err[200];            /* why the last map read failed, "" after a success */
    struct event *refresh_ev;     /* a throttled map read, or the periodic one */
    long long retry_ms;           /* see sl__cluster_set_retry_ms() */
    int freeing;                  /* sl__cluster_free() runs: no callbacks */
    struct sl_cluster_stats st;
};

static void dispatch(struct req *q);
static void refresh_now(struct sl_cluster *cl);

/* ------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------ */

/* The node for host:port, added when new. Returns its index or -1 (out
 * of memory, or MAX_NODES known). */
static int node_get(struct sl_cluster *cl, const char *host, size_t hostlen, int port)
{
    struct node *n;
    int i;

    if (hostlen >= sizeof(n->host) || port <= 0 || port > 65535)
        return -1;
    for (i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i]->port == port && strlen(cl->nodes[i]->host) == hostlen
            && memcmp(cl->nodes[i]->host, host, hostlen) == 0)
            return i;
    if (cl->nnodes >= MAX_NODES || (n = calloc(1, sizeof(*n))) == NULL)
        return -1;
    n->cl = cl;
    n->idx = cl->nnodes;
    memcpy(n->host, host, hostlen);
    n->host[hostlen] = '\0';
    n->port = port;
    snprintf(n->addr, sizeof(n->addr), "%s:%d", n->host, port);
    cl->nodes[cl->nnodes] = n;
    return cl->nnodes++;
}

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------ */

/* Releases q (not its callback's business any more). */
static void req_free(struct req *q)
{
    struct sl_cluster *cl = q->cl;

    if (q->prev_all != NULL)
        q->prev_all->next_all = q->next_all;
    else
        cl->all = q->next_all;
    if (q->next_all != NULL)
        q->next_all->prev_all = q->prev_all;
    if (q->timer != NULL)
        event_free(q->timer);
    free(q->cmd);
    free(q);
}

/* Hands the outcome to the caller and releases q. */
static void finish(struct req *q, redisReply *r, const char *why)
{
    sl_cluster_cb *cb = q->cb;
    void *priv = q->priv;
    struct sl_cluster *cl = q->cl;

    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        cl->st.failed++;
    req_free(q);
    if (cb != NULL)
        cb(cl, r, r == NULL ? (why ? why : "no reply") : NULL, priv);
}

/* The backoff pause is over: try again. */
static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dispatch(arg);
}

/* Sends q again after a pause, or, when its retry time has passed, hands
 * the caller r (the last error, may be NULL) or why. */
static void retry_later(struct req *q, redisReply *r, const char *why)
{
    long long ms;
    struct timeval tv;

    if (sl__now_ms() >= q->deadline) {
        char buf[200];

        snprintf(buf, sizeof(buf), "cluster unavailable: %.160s", why);
        finish(q, r, buf);
        return;
    }
    ms = BACKOFF_MIN_MS << (q->attempts < 7 ? q->attempts : 7);
    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    q->attempts++;
    q->cl->st.retried++;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    if (q->timer == NULL && (q->timer = evtimer_new(q->cl->base, on_retry, q)) == NULL) {
        finish(q, r, "out of memory");
        return;
    }
    evtimer_add(q->timer, &tv);
}

/* A redirect's slot and the node of its address. Returns 0 or -1. */
static int parse_redirect(struct sl_cluster *cl, const char *s, int *slot, int *node)
{
    const char *host;
    size_t hostlen;
    int port;

    if (sl__cluster_redirect(s, slot, &host, &hostlen, &port) != 0)
        return -1;
    /* An empty host ("MOVED 1 :6380") means: the node that answered. */
    *node = node_get(cl, host, hostlen, port);
    return *node < 0 ? -1 : 0;
}

/* 1 when the error reply starts with word followed by a space or end. */
static int is_error(const redisReply *r, const char *word)
{
    size_t n = strlen(word);

    return r->type == REDIS_REPLY_ERROR && r->len >= n && memcmp(r->str, word, n) == 0
           && (r->len == n || r->str[n] == ' ');
}

/* The reply of q's command on its connection. */
static void on_reply(struct sl_conn *c, redisReply *r, void *priv)
{
    struct req *q = priv;
    struct sl_cluster *cl = q->cl;
    int slot, node;

    if (cl->freeing) {
        req_free(q);
        return;
    }
    if (r == NULL) {
        char why[200];

        snprintf(why, sizeof(why), "connection lost: %.160s",
                 sl__conn_error(c)[0] ? sl__conn_error(c) : "closed");
        if (q->slot >= 0)
            sl__cluster_refresh(cl);
        if (q->flags & SL_CLUSTER_RESEND)
            retry_later(q, NULL, why);
        else
            finish(q, NULL, why);
        return;
    }
    if (q->slot >= 0 && (is_error(r, "MOVED") || is_error(r, "ASK"))) {
        int moved = is_error(r, "MOVED");

        if (parse_redirect(cl, r->str, &slot, &node) != 0 || ++q->redirects > MAX_REDIRECTS) {
            finish(q, r, NULL);
            return;
        }
        if (moved) {
            cl->st.moved++;
            /* The server knows the key's slot: route by its word. */
            q->slot = slot;
            cl->slot_node[slot] = (short)node;
            sl__cluster_refresh(cl);
        } else {
            cl->st.ask++;
            q->ask = node;
        }
        dispatch(q);
        return;
    }
    if (is_error(r, "TRYAGAIN") || is_error(r, "CLUSTERDOWN") || is_error(r, "LOADING")) {
        if (is_error(r, "CLUSTERDOWN"))
            sl__cluster_refresh(cl);
        retry_later(q, r, r->str);
        return;
    }
    finish(q, r, NULL);
}

/* Puts q on the wire of node n (ready). */
static void send_on(struct req *q, struct node *n)
{
    static const char asking[] = "*1\r\n$6\r\nASKING\r\n";

    if (q->ask >= 0) {
        q->ask = -1;
        if (sl__conn_command_raw(n->conn, NULL, NULL, 0, asking, sizeof(asking) - 1) != 0) {
            retry_later(q, NULL, "cannot send ASKING");
            return;
        }
    }
    if (sl__conn_command_raw(n->conn, on_reply, q, q->timeout_ms, q->cmd, q->len) != 0) {
        retry_later(q, NULL, "cannot send");
        return;
    }
}

/* The connection of node n is usable: send what waited for it. */
static void on_node_ready(struct sl_conn *c, void *arg)
{
    struct node *n = arg;
    struct req *q;

    (void)c;
    n->state = NODE_READY;
    while ((q = n->wait_head) != NULL) {
        n->wait_head = q->next;
        if (n->wait_head == NULL)
            n->wait_tail = NULL;
        q->next = NULL;
        send_on(q, n);
    }
    sl__conn_flush(n->conn);
}

/* The connection of node n is gone (or never came up): what waited for
 * it is retried later, through a fresh map. Commands in flight on it have
 * had their NULL reply already. */
static void on_node_lost(struct sl_conn *c, void *arg)
{
    struct node *n = arg;
    struct sl_cluster *cl = n->cl;
    struct req *q;
    char why[200];

    snprintf(why, sizeof(why), "%.40s: %.150s", n->addr,
             sl__conn_error(c)[0] ? sl__conn_error(c) : "connection lost");
    sl__conn_close(c);
    n->state = NODE_IDLE;
    while ((q = n->wait_head) != NULL) {
        n->wait_head = q->next;
        if (n->wait_head == NULL)
            n->wait_tail = NULL;
        q->next = NULL;
        retry_later(q, NULL, why);
    }
    sl__cluster_refresh(cl);
}

/* Sends q to the node its slot (or an ASK, or its target) names,
 * connecting first when needed. */
static void dispatch(struct req *q)
{
    struct sl_cluster *cl = q->cl;
    struct node *n;
    int idx = q->ask >= 0 ? q->ask : q->slot >= 0 ? cl->slot_node[q->slot] : q->target;

    if (idx < 0) {
        refresh_now(cl);
        retry_later(q, NULL, "no master known for the slot");
        return;
    }
    n = cl->nodes[idx];
    if (n->state == NODE_READY && sl__conn_ready(n->conn)) {
        send_on(q, n);
        sl__conn_flush(n->conn);
        return;
    }
    if (n->wait_tail != NULL)
        n->wait_tail->next = q;
    else
        n->wait_head = q;
    n->wait_tail = q;
    q->next = NULL;
    if (n->state == NODE_CONNECTING)
        return;
    if (n->conn == NULL) {
        struct sl_config c = cl->cfg;

        snprintf(c.redis.host, sizeof(c.redis.host), "%s", n->host);
        c.redis.port = n->port;
        c.redis.db = 0;
        n->conn = sl__conn_new(cl->base, "cluster", &c, on_node_ready, on_node_lost, n);
        if (n->conn == NULL) {
            n->wait_head = n->wait_tail = NULL;
            retry_later(q, NULL, "out of memory");
            return;
        }
    }
    n->state = NODE_CONNECTING;
    sl__conn_close(n->conn);       /* a connection lost but not yet told */
    /* A failure here still reports through on_node_lost (deferred). */
    sl__conn_connect(n->conn);
}

/* Makes a request of the formatted command (taken). */
static struct req *req_new(struct sl_cluster *cl, char *cmd, size_t len, int slot, int flags,
                           sl_cluster_cb *cb, void *priv, long long timeout_ms)
{
    struct req *q = calloc(1, sizeof(*q));

    if (q == NULL) {
        free(cmd);
        return NULL;
    }
    q->cl = cl;
    q->cmd = cmd;
    q->len = len;
    q->slot = slot;
    q->target = -1;
    q->ask = -1;
    q->flags = flags;
    q->cb = cb;
    q->priv = priv;
    q->timeout_ms = timeout_ms;
    q->deadline = sl__now_ms() + (uint64_t)cl->retry_ms;
    q->next_all = cl->all;
    if (cl->all != NULL)
        cl->all->prev_all = q;
    cl->all = q;
    return q;
}

/* Formats argv into a malloc'd protocol buffer. Returns its length or -1. */
static long long format_argv(char **out, int argc, const char **argv, const size_t *argvlen)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);

    if (len < 0 || cmd == NULL)
        return -1;
    /* redisFormatCommandArgv allocates with hiredis's allocator (malloc in
     * 0.14); copy so that free() is right whatever it is. */
    *out = malloc((size_t)len);
    if (*out == NULL) {
        redisFreeCommand(cmd);
        return -1;
    }
    memcpy(*out, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return len;
}

/* Sends argv to the master of slot (see cluster.h). */
int sl__cluster_command(struct sl_cluster *cl, int slot, int flags, sl_cluster_cb *cb,
                        void *priv, long long timeout_ms, int argc, const char **argv,
                        const size_t *argvlen)
{
    struct req *q;
    char *cmd;
    long long len;

    if (slot < 0 || slot >= SL_CLUSTER_SLOTS)
        return -1;
    len = format_argv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return -1;
    q = req_new(cl, cmd, (size_t)len, slot, flags, cb, priv, timeout_ms);
    if (q == NULL)
        return -1;
    dispatch(q);
    return 0;
}

/* Sends a command already in the protocol (copied) to the master of
 * slot (see cluster.h). */
int sl__cluster_command_formatted(struct sl_cluster *cl, int slot, int flags, sl_cluster_cb *cb,
                                  void *priv, long long timeout_ms, const char *cmd, size_t len)
{
    struct req *q;
    char *copy;

    if (slot < 0 || slot >= SL_CLUSTER_SLOTS || len == 0 || (copy = malloc(len)) == NULL)
        return -1;
    memcpy(copy, cmd, len);
    q = req_new(cl, copy, len, slot, flags, cb, priv, timeout_ms);
    if (q == NULL)
        return -1;
    dispatch(q);
    return 0;
}

/* Routes by the keys at argv[first_key..first_key+nkeys). */
int sl__cluster_command_keys(struct sl_cluster *cl, int first_key, int nkeys, int flags,
                             sl_cluster_cb *cb, void *priv, long long timeout_ms,
                             int argc, const char **argv, const size_t *argvlen,
                             char *err, size_t errlen)
{
    int slot;

    if (first_key < 0 || nkeys < 0 || first_key + nkeys > argc) {
        snprintf(err, errlen, "key positions out of range");
        return -1;
    }
    slot = sl__cluster_keys_slot(nkeys, argv + first_key, argvlen ? argvlen + first_key : NULL);
    if (slot == -2) {
        snprintf(err, errlen, "CROSSSLOT: the keys of %.40s hash to different slots "
                 "(give them one hash tag)", argv[0]);
        return -1;
    }
    if (slot == -1)
        slot = 0;
    if (sl__cluster_command(cl, slot, flags, cb, priv, timeout_ms, argc, argv, argvlen) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The slot map
 * ------------------------------------------------------------------------ */

/* Applies a CLUSTER SLOTS reply from node `asked`: every range's master
 * becomes the node of its slots; slots in no range are unknown. Returns
 * 0, or -1 when the reply is not a slot map (the old map stays). */
static int apply_slots(struct sl_cluster *cl, const redisReply *r, int asked)
{
    short *map;
    size_t i;

    if (r->type != REDIS_REPLY_ARRAY)
        return -1;
    map = malloc(sizeof(cl->slot_node));
    if (map == NULL)
        return -1;
    for (i = 0; i < SL_CLUSTER_SLOTS; i++)
        map[i] = -1;
    for (i = 0; i < r->elements; i++) {
        const char *host;
        size_t hostlen;
        int lo, hi, port, s, idx;

        if (sl__cluster_slots_range(r->element[i], &lo, &hi, &host, &hostlen, &port) != 0)
            goto bad;
        /* "" or "?": the node does not know its own address; it is the
         * one we asked. */
        if (hostlen == 0 || (hostlen == 1 && host[0] == '?')) {
            host = cl->nodes[asked]->host;
            hostlen = strlen(host);
        }
        idx = node_get(cl, host, hostlen, port);
        if (idx < 0)
            goto bad;
        for (s = lo; s <= hi; s++)
            map[s] = (short)idx;
    }
    memcpy(cl->slot_node, map, sizeof(cl->slot_node));
    free(map);
    return 0;

bad:
    free(map);
    return -1;
}

/* The reply of a map read. */
static void on_slots(struct sl_cluster *cl, redisReply *r, const char *why, void *priv)
{
    int asked = (int)(intptr_t)priv;

    cl->refreshing = 0;
    if (r != NULL && apply_slots(cl, r, asked) == 0) {
        cl->st.refreshes++;
        cl->map_failures = 0;
        cl->map_err[0] = '\0';
        return;
    }
    /* Kept for a caller that must say why no master is known (a
     * synchronous client that cannot reach any seed). */
    if (r != NULL)
        snprintf(cl->map_err, sizeof(cl->map_err), "%.40s: %.150s", cl->nodes[asked]->addr,
                 r->type == REDIS_REPLY_ERROR ? r->str : "not a slot map");
    else
        snprintf(cl->map_err, sizeof(cl->map_err), "%.190s",
                 strncmp(why, "cluster unavailable: ", 21) == 0 ? why + 21 : why);
    /* Every node is asked in turn, four times a second while none
     * answers: log the first failure and then one in twenty. */
    if (cl->map_failures++ % 20 == 0)
        sl__log(SL_LOG_WARN, "cluster_map", "node=%s failures=%lu error=%s",
                sl__logq(cl->nodes[asked]->addr), cl->map_failures,
                sl__logq(r != NULL ? (r->type == REDIS_REPLY_ERROR ? r->str : "not a slot map") : why));
    /* Ask the next node, after the throttle. */
    sl__cluster_refresh(cl);
}

/* Sends CLUSTER SLOTS to the next node in turn (masters and seeds
 * alike), unless a read is already in flight. */
static void refresh_now(struct sl_cluster *cl)
{
    static const char cmd[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
    struct req *q;
    char *buf;
    int target;

    if (cl->refreshing || cl->nnodes == 0)
        return;
    target = cl->refresh_next++ % cl->nnodes;
    buf = malloc(sizeof(cmd) - 1);
    if (buf == NULL)
        return;
    memcpy(buf, cmd, sizeof(cmd) - 1);
    q = req_new(cl, buf, sizeof(cmd) - 1, -1, 0, on_slots, (void *)(intptr_t)target, 0);
    if (q == NULL)
        return;
    q->target = target;
    q->deadline = 0;               /* no retry: the next read asks another node */
    cl->refreshing = 1;
    cl->last_refresh = sl__now_ms();
    dispatch(q);
}

/* The throttle's or the period's timer. */
static void on_refresh_ev(evutil_socket_t fd, short what, void *arg)
{
    struct sl_cluster *cl = arg;
    struct timeval tv = { REFRESH_EVERY_MS / 1000, 0 };

    (void)fd;
    (void)what;
    refresh_now(cl);
    evtimer_add(cl->refresh_ev, &tv);
}

/* A map read now, or when the throttle allows. */
void sl__cluster_refresh(struct sl_cluster *cl)
{
    uint64_t now = sl__now_ms(), due = cl->last_refresh + REFRESH_MIN_MS;
    struct timeval tv;

    if (cl->refreshing)
        return;
    if (now >= due) {
        refresh_now(cl);
        return;
    }
    tv.tv_sec = 0;
    tv.tv_usec = (long)(due - now) * 1000;
    evtimer_add(cl->refresh_ev, &tv);
}

/* ------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------ */

/* Parses "host:port,host:port" into seed nodes. */
static int add_seeds(struct sl_cluster *cl, const char *seeds, char *err, size_t errlen)
{
    char host[256];
    int i, port, rc;

    for (i = 0; (rc = sl__cluster_seed(seeds, i, host, sizeof(host), &port, err, errlen)) == 0; i++)
        if (node_get(cl, host, strlen(host), port) < 0) {
            snprintf(err, errlen, "cluster node \"%.80s\": cannot add", host);
            return -1;
        }
    if (rc < 0)
        return -1;
    if (cl->nnodes == 0) {
        snprintf(err, errlen, "no cluster node given");
        return -1;
    }
    cl->nseeds = cl->nnodes;
    return 0;
}

/* Creates the router and starts the first map read. */
struct sl_cluster *sl__cluster_new(struct event_base *base, const struct sl_config *cfg,
                                   const char *seeds, char *err, size_t errlen)
{
    struct sl_cluster *cl;
    struct timeval tv = { REFRESH_EVERY_MS / 1000, 0 };
    int i;

    if (cfg->redis.db != 0) {
        snprintf(err, errlen, "a cluster has only database 0 (the URL selects %d)", cfg->redis.db);
        return NULL;
    }
    cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cl->base = base;
    cl->cfg = *cfg;
    cl->retry_ms = SL_CLUSTER_RETRY_MS;
    for (i = 0; i < SL_CLUSTER_SLOTS; i++)
        cl->slot_node[i] = -1;
    cl->refresh_ev = evtimer_new(base, on_refresh_ev, cl);
    if (cl->refresh_ev == NULL) {
        snprintf(err, errlen, "out of memory");
        sl__cluster_free(cl);
        return NULL;
    }
    if (add_seeds(cl, seeds, err, errlen) != 0) {
        sl__cluster_free(cl);
        return NULL;
    }
    evtimer_add(cl->refresh_ev, &tv);
    refresh_now(cl);
    return cl;
}

/* Sets the retry time of commands sent from now on. */
void sl__cluster_set_retry_ms(struct sl_cluster *cl, long long ms)
{
    cl->retry_ms = ms > 0 ? ms : 0;
}

/* Copies the counters. */
void sl__cluster_stats(const struct sl_cluster *cl, struct sl_cluster_stats *st)
{
    *st = cl->st;
}

/* The address of slot's master in the map. */
const char *sl__cluster_slot_addr(const struct sl_cluster *cl, int slot)
{
    if (slot < 0 || slot >= SL_CLUSTER_SLOTS || cl->slot_node[slot] < 0)
        return NULL;
    return cl->nodes[cl->slot_node[slot]]->addr;
}

/* Why the last map read failed (see cluster.h). */
const char *sl__cluster_map_error(const struct sl_cluster *cl)
{
    return cl->map_err;
}

/* Frees everything; pending callbacks are dropped. */
void sl__cluster_free(struct sl_cluster *cl)
{
    int i;

    if (cl == NULL)
        return;
    cl->freeing = 1;
    /* Closing a connection hands its in-flight requests a NULL reply,
     * which frees them silently (cl->freeing). */
    for (i = 0; i < cl->nnodes; i++)
        sl__conn_free(cl->nodes[i]->conn);
    while (cl->all != NULL)
        req_free(cl->all);
    for (i = 0; i < cl->nnodes; i++)
        free(cl->nodes[i]);
    if (cl->refresh_ev != NULL)
        event_free(cl->refresh_ev);
    free(cl);
}
