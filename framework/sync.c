/* sync.c -- the synchronous calls of the admin commands, `sluice
 * health` and the producer API: the connection of conn.c on a private
 * event loop, each call sending one command and running that loop until
 * the reply or the connection's deadline.
 *
 * With redis.cluster_nodes set, the same calls go through the cluster
 * router of cluster.c on that private loop instead: one slot map, one
 * connection per master opened when first needed, each command sent to
 * the master of the slot its caller named (sl__sync_route()), MOVED and
 * ASK followed, TRYAGAIN, CLUSTERDOWN and LOADING retried with backoff to
 * the router's deadline. A command whose connection is lost after it was
 * written is resent only when the caller said it is safe to repeat; an
 * XADD is never, so its caller reports that the entry may or may not have
 * been added, as on a single Redis.
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <hiredis.h>
#include "internal.h"
#include "conn.h"
#include "cluster.h"

/* The connection is set up. */
static void sync_ready(struct sl_conn *c, void *arg)
{
    struct sl_sync *s = arg;

    (void)c;
    s->ready = 1;
}

/* The connection is gone: every later call fails with the reason. */
static void sync_lost(struct sl_conn *c, void *arg)
{
    struct sl_sync *s = arg;

    s->lost = 1;
    if (!s->err) {
        s->err = 1;
        snprintf(s->errstr, sizeof(s->errstr), "%s",
                 sl__conn_error(c)[0] ? sl__conn_error(c) : "connection lost");
    }
}

/* The awaited reply (taken), or NULL. */
static void sync_reply(struct sl_conn *c, redisReply *r, void *priv)
{
    struct sl_sync *s = priv;

    (void)c;
    s->reply = r;
    s->done = 1;
}

/* Runs the private loop until *flag is set or the connection is lost;
 * the connection's own deadlines bound the wait.
 *
 * SIGPIPE is held back meanwhile: libevent writes the socket with plain
 * writes, and a write after Redis closed the connection (its FIN, then
 * the reset our next bytes drew) raises SIGPIPE, whose default action
 * ended an admin command, or a program using the producer API, without a
 * word. Held back, the write fails with EPIPE, the connection is lost
 * with that reason, and the caller reports it. The signal the write left
 * pending is taken away again, unless one was pending before we came;
 * the process's own disposition is never changed, so its stdout keeps
 * the usual behaviour (`sluice dlq list ... | head -1` ends quietly). */
static void sync_wait(struct sl_sync *s, const int *flag)
{
    static const struct timespec now = { 0, 0 };
    sigset_t pipe_only, old, pending;
    int was_pending;

    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    while (!*flag && !s->lost)
        if (event_base_loop(s->base, EVLOOP_ONCE) < 0)
            break;
    if (!was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE))
        (void)sigtimedwait(&pipe_only, NULL, &now);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Waits for the reply of the command just sent (rc its sending's
 * outcome). Returns it (new), or NULL with s->err set. */
static redisReply *sync_finish(struct sl_sync *s, int rc)
{
    redisReply *r;

    if (rc != 0) {
        s->err = 1;
        snprintf(s->errstr, sizeof(s->errstr), "%s",
                 s->conn != NULL && sl__conn_error(s->conn)[0] ? sl__conn_error(s->conn)
                 : "cannot send the command");
        return NULL;
    }
    sync_wait(s, &s->done);
    r = s->reply;
    s->reply = NULL;
    if (r == NULL && !s->err) {
        s->err = 1;
        snprintf(s->errstr, sizeof(s->errstr), "%s",
                 s->conn != NULL && sl__conn_error(s->conn)[0] ? sl__conn_error(s->conn)
                 : "no reply");
    }
    return r;
}

/* ---------------------------------------------------------------------
 * Cluster mode
 * ------------------------------------------------------------------ */

/* A deep copy of r (the router frees its replies when the callback
 * returns; the synchronous callers keep theirs). hiredis 0.14 builds and
 * frees replies with malloc and free, so freeReplyObject() frees this
 * copy as it would the original. Returns NULL when out of memory. */
static redisReply *reply_dup(const redisReply *r)
{
    redisReply *d = calloc(1, sizeof(*d));
    size_t i;

    if (d == NULL)
        return NULL;
    d->type = r->type;
    d->integer = r->integer;
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        if ((d->str = malloc(r->len + 1)) == NULL) {
            free(d);
            return NULL;
        }
        if (r->len > 0)
            memcpy(d->str, r->str, r->len);
        d->str[r->len] = '\0';
        d->len = r->len;
        break;
    case REDIS_REPLY_ARRAY:
        if (r->elements == 0)
            break;
        if ((d->element = calloc(r->elements, sizeof(*d->element))) == NULL) {
            free(d);
            return NULL;
        }
        d->elements = r->elements;
        for (i = 0; i < r->elements; i++)
            if ((d->element[i] = reply_dup(r->element[i])) == NULL) {
                freeReplyObject(d);
                return NULL;
            }
        break;
    default:
        break;
    }
    return d;
}

/* One appended command: its reply, kept until the caller reads it. */
struct sl_sync_pend {
    struct sl_sync_pend *next;    /* the next newer one */
    redisReply *reply;            /* its reply (owned), NULL when none */
    int done;                     /* its callback ran (reply NULL: it failed) */
    struct sl_sync *owner;        /* cluster mode: the connection it was sent on */
};

/* Records the final outcome of a routed command in *reply and *done: a
 * copy of r, or, with none, the reason in s (every later call then
 * fails, as after a lost connection on a single Redis). */
static void cl_record(struct sl_sync *s, redisReply *r, const char *why, redisReply **reply,
                      int *done)
{
    *done = 1;
    *reply = r != NULL ? reply_dup(r) : NULL;
    if (*reply == NULL && !s->err) {
        s->err = 1;
        snprintf(s->errstr, sizeof(s->errstr), "%s", r != NULL ? "out of memory"
                 : why != NULL ? why : "no reply");
    }
}

/* The outcome of the one command a synchronous call waits for. */
static void cl_call_done(struct sl_cluster *cl, redisReply *r, const char *why, void *priv)
{
    struct sl_sync *s = priv;

    (void)cl;
    cl_record(s, r, why, &s->reply, &s->done);
}

/* The outcome of an appended command. */
static void cl_pend_done(struct sl_cluster *cl, redisReply *r, const char *why, void *priv)
{
    struct sl_sync_pend *q = priv;

    (void)cl;
    cl_record(q->owner, r, why, &q->reply, &q->done);
}

/* Hands a formatted command (len bytes of cmd) to the router, routed as
 * sl__sync_route() said; q NULL: the synchronous call's own command,
 * else an appended one. Returns 0, or -1 with s->err set. */
static int cl_send(struct sl_sync *s, const char *cmd, size_t len, struct sl_sync_pend *q)
{
    if (sl__cluster_command_formatted(s->cl, s->slot >= 0 ? s->slot : 0,
                                      s->resend ? SL_CLUSTER_RESEND : 0,
                                      q != NULL ? cl_pend_done : cl_call_done,
                                      q != NULL ? (void *)q : (void *)s, 0, cmd, len) == 0)
        return 0;
    s->err = 1;
    snprintf(s->errstr, sizeof(s->errstr), "out of memory");
    return -1;
}

/* The same for an argument vector. */
static int cl_send_argv(struct sl_sync *s, int argc, const char **argv, const size_t *argvlen,
                        struct sl_sync_pend *q)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen), rc;

    if (len < 0 || cmd == NULL) {
        s->err = 1;
        snprintf(s->errstr, sizeof(s->errstr), "out of memory");
        return -1;
    }
    rc = cl_send(s, cmd, (size_t)len, q);
    redisFreeCommand(cmd);
    return rc;
}

/* Routes later commands by key (see internal.h). */
void sl__sync_route(struct sl_sync *s, const char *key, int resend)
{
    if (s == NULL || s->cl == NULL)
        return;
    s->slot = key != NULL ? sl__cluster_keyslot(key, strlen(key)) : -1;
    s->resend = resend;
}

/* Sends one command and waits for its reply (see internal.h). */
redisReply *sl__sync_argv(struct sl_sync *s, int argc, const char **argv, const size_t *argvlen)
{
    if (s->err)
        return NULL;
    s->done = 0;
    s->reply = NULL;
    if (s->cl != NULL)
        return sync_finish(s, cl_send_argv(s, argc, argv, argvlen, NULL));
    return sync_finish(s, sl__conn_command_take(s->conn, sync_reply, s, 0, argc, argv, argvlen));
}

/* The same with a hiredis format string (see internal.h). */
redisReply *sl__sync_cmd(struct sl_sync *s, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (s->err)
        return NULL;
    s->done = 0;
    s->reply = NULL;
    va_start(ap, fmt);
    if (s->cl != NULL) {
        char *cmd = NULL;
        int len = redisvFormatCommand(&cmd, fmt, ap);

        rc = len < 0 || cmd == NULL ? -1 : cl_send(s, cmd, (size_t)len, NULL);
        redisFreeCommand(cmd);
    } else {
        rc = sl__conn_vcommand_take(s->conn, sync_reply, s, 0, fmt, ap);
    }
    va_end(ap);
    return sync_finish(s, rc);
}

/* An appended command's reply (taken), or NULL when it failed. */
static void pend_reply(struct sl_conn *c, redisReply *r, void *priv)
{
    struct sl_sync_pend *q = priv;

    (void)c;
    q->reply = r;
    q->done = 1;
}

/* Sends without waiting (see internal.h). */
int sl__sync_append(struct sl_sync *s, int argc, const char **argv, const size_t *argvlen)
{
    struct sl_sync_pend *q;

    if (s->err)
        return -1;
    if ((q = calloc(1, sizeof(*q))) == NULL) {
        s->err = 1;
        snprintf(s->errstr, sizeof(s->errstr), "out of memory");
        return -1;
    }
    if (s->cl != NULL) {
        q->owner = s;
        if (cl_send_argv(s, argc, argv, argvlen, q) != 0) {
            free(q);
            return -1;
        }
    } else if (sl__conn_command_take(s->conn, pend_reply, q, 0, argc, argv, argvlen) != 0) {
        free(q);
        s->err = 1;
        snprintf(s->errstr, sizeof(s->errstr), "%s",
                 sl__conn_error(s->conn)[0] ? sl__conn_error(s->conn) : "cannot send the command");
        return -1;
    }
    if (s->tail != NULL)
        s->tail->next = q;
    else
        s->head = q;
    s->tail = q;
    return 0;
}

/* Reads the oldest appended reply (see internal.h). */
redisReply *sl__sync_get_reply(struct sl_sync *s)
{
    struct sl_sync_pend *q = s->head;
    redisReply *r;

    if (q == NULL) {
        if (!s->err) {
            s->err = 1;
            snprintf(s->errstr, sizeof(s->errstr), "no command appended");
        }
        return NULL;
    }
    sync_wait(s, &q->done);
    if (!q->done)
        return NULL;      /* lost: s->err is set, q stays queued until the callback runs */
    s->head = q->next;
    if (s->head == NULL)
        s->tail = NULL;
    r = q->reply;
    free(q);
    if (r == NULL && !s->err) {
        s->err = 1;
        snprintf(s->errstr, sizeof(s->errstr), "%s",
                 s->conn != NULL && sl__conn_error(s->conn)[0] ? sl__conn_error(s->conn)
                 : "no reply");
    }
    return r;
}

/* Closes and frees s. Accepts NULL. The connection's close hands every
 * appended command its (NULL) reply first, so the queue is freed after. */
void sl__sync_free(struct sl_sync *s)
{
    struct sl_sync_pend *q;

    if (s == NULL)
        return;
    sl__conn_free(s->conn);
    /* Callbacks still pending are dropped: their waits were on the stack
     * of a call that has returned, or are the queue freed below. */
    sl__cluster_free(s->cl);
    while ((q = s->head) != NULL) {
        s->head = q->next;
        freeReplyObject(q->reply);
        free(q);
    }
    if (s->base != NULL)
        event_base_free(s->base);
    memset(s->errstr, 0, sizeof(s->errstr));
    free(s);
}

/* Rewrites the connection's reason for failing as the synchronous
 * callers have always shown it: "cannot reach redis at HOST:PORT: why",
 * an authentication failure as it is. */
static void connect_error(const struct sl_config *cfg, const char *why, char *err, size_t errlen)
{
    static const char *const strip[] = { "connect failed: ", "disconnected: " };
    size_t i;

    if (strncmp(why, "authentication failed", 21) == 0) {
        snprintf(err, errlen, "%s", why);
        return;
    }
    if (strncmp(why, "setup failed: ", 14) == 0) {
        snprintf(err, errlen, "redis SELECT failed: %s", why + 14);
        return;
    }
    for (i = 0; i < SL_NELEM(strip); i++)
        if (strncmp(why, strip[i], strlen(strip[i])) == 0)
            why += strlen(strip[i]);
    snprintf(err, errlen, "cannot reach redis at %s:%d: %s", cfg->redis.host,
             cfg->redis.port, why);
}

/* Cluster mode of sl__redis_connect(): a router over the seeds of
 * redis.cluster_nodes on the private loop, and a PING to a master, which
 * waits for the first slot map and proves the credentials. The PING is
 * retried for the connect and command timeouts together (time for one
 * slow seed and the next), not the router's long retry time, meant for a
 * failover under way: a cluster none of whose seeds answers is reported
 * within seconds. Returns the connection, or NULL with err set. */
static struct sl_sync *cluster_connect(const struct sl_config *cfg, char *err, size_t errlen)
{
    struct sl_sync *s = calloc(1, sizeof(*s));
    const char *ping[] = { "PING" };
    redisReply *r = NULL;
    char why[SL_ERRLEN];

    if (s == NULL || (s->base = event_base_new()) == NULL) {
        snprintf(err, errlen, "redis cluster: out of memory");
        goto fail;
    }
    s->slot = -1;
    if ((s->cl = sl__cluster_new(s->base, cfg, cfg->cluster_nodes, why, sizeof(why))) == NULL) {
        snprintf(err, errlen, "redis cluster: %s", why);
        goto fail;
    }
    sl__cluster_set_retry_ms(s->cl, cfg->connect_timeout_ms + cfg->command_timeout_ms);
    s->resend = 1;
    r = sl__sync_argv(s, 1, ping, NULL);
    s->resend = 0;
    sl__cluster_set_retry_ms(s->cl, SL_CLUSTER_RETRY_MS);
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0) {
        sl__auth_error(err, errlen, r->str, NULL);
        goto fail;
    }
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        /* No master known: the seeds' own failure says more than "no
         * master known for the slot". */
        const char *m = sl__cluster_map_error(s->cl);

        snprintf(why, sizeof(why), "%s", m[0] != '\0' ? m : r != NULL ? r->str : s->errstr);
        if (strstr(why, "authentication failed") != NULL)
            snprintf(err, errlen, "%s", strstr(why, "authentication failed"));
        else if (strstr(why, "NOAUTH") != NULL)
            sl__auth_error(err, errlen, strstr(why, "NOAUTH"), NULL);
        else
            snprintf(err, errlen, "cannot reach the redis cluster at %s: %s", cfg->cluster_nodes,
                     why);
        goto fail;
    }
    freeReplyObject(r);
    s->err = 0;
    s->errstr[0] = '\0';
    return s;

fail:
    freeReplyObject(r);
    sl__sync_free(s);
    return NULL;
}

/* Connects with the configured timeouts, authenticates and selects the
 * database (see internal.h). The password is looked up at every call
 * (URL, SLUICE_REDIS_PASSWORD, redis.password_file), so a supervisor that
 * reconnects picks up a rotated password file. A PING follows, so that a
 * server that wants a password we do not have is reported as an
 * authentication failure here rather than as a puzzling error on the
 * first real command. Returns the connection, or NULL with err set. */
struct sl_sync *sl__redis_connect(const struct sl_config *cfg, char *err, size_t errlen)
{
    struct sl_sync *s;
    redisReply *r = NULL;
    const char *ping[] = { "PING" };

    if (cfg->cluster_nodes != NULL)
        return cluster_connect(cfg, err, errlen);
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->base = event_base_new()) == NULL
        || (s->conn = sl__conn_new(s->base, "sync", cfg, sync_ready, sync_lost, s)) == NULL) {
        snprintf(err, errlen, "cannot reach redis at %s:%d: out of memory", cfg->redis.host,
                 cfg->redis.port);
        goto fail;
    }
    (void)sl__conn_connect(s->conn);
    sync_wait(s, &s->ready);
    if (!s->ready) {
        connect_error(cfg, s->errstr[0] ? s->errstr : sl__conn_error(s->conn), err, errlen);
        goto fail;
    }
    r = sl__sync_argv(s, 1, ping, NULL);
    if (r == NULL) {
        connect_error(cfg, s->errstr, err, errlen);
        goto fail;
    }
    /* NOAUTH to the PING: a server that wants a password we lack. Any
     * other error (LOADING...) is not about credentials: the connection
     * is kept, and the caller's own commands meet that error and report
     * it as they always did. */
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0) {
        sl__auth_error(err, errlen, r->str, NULL);
        goto fail;
    }
    freeReplyObject(r);
    return s;

fail:
    freeReplyObject(r);
    sl__sync_free(s);
    return NULL;
}

/* Connects as sl__redis_connect() does; prints why and returns NULL when
 * Redis cannot be reached or refuses us. New: sl__sync_free(). */
struct sl_sync *sl__admin_connect(const struct sl_config *cfg)
{
    char err[SL_ERRLEN];
    struct sl_sync *c = sl__redis_connect(cfg, err, sizeof(err));

    if (c == NULL)
        fprintf(stderr, "sluice: %s\n", err);
    return c;
}
