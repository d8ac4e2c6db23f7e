/* enqueue.c -- the producer API of sluice.h: sl_producer_new(),
 * sl_enqueue_check(), sl_enqueue(), sl_producer_free().
 *
 * A producer needs nothing from sluice but an XADD with `type` and
 * `data` (docs/messages.md). What this file adds for C programs is the
 * connection rules of the rest of sluice (URL, password, timeouts) and
 * the checks a worker makes before its handler runs, made before the
 * entry is sent: an entry that would only be dead-lettered is refused
 * here with the very error its dead letter would carry. The checks are
 * the workers' own (sl__msg_prepare()), so the two cannot drift apart.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include "internal.h"
#include "admin.h"

/* One synchronous connection and what the last call left behind. */
struct sl_producer {
    struct sl_config *cfg;        /* URL, password and timeouts (owned) */
    struct sl_sync *c;              /* the connection (owned), NULL after a broken one */
    size_t max_payload;           /* largest `data` sent, bytes; 0: no limit */
    char errstr[SL_ERRLEN];       /* why the last call failed, "" after a success */
};

/* ---------------------------------------------------------------------
 * Checks without Redis
 * ------------------------------------------------------------------ */

/* Runs the framework's pre-handler checks on the entry {type, data} that
 * sl_enqueue() would add (see sluice.h): the same function, in the same
 * order, as a worker with max_payload_bytes = max_payload, no field
 * limit to meet (two fields), no TTL and no list of types (a producer
 * does not know the worker's). The first failing check gives the error a
 * dead letter would carry. */
int sl_enqueue_check(const char *type, const char *json, size_t len,
                     size_t max_payload, char *err, size_t errlen)
{
    struct sl_tunables t;
    struct sl_field f[2];
    struct sl_msg msg;
    struct sl_ctx *ctx;
    int rc;

    if (type == NULL || (json == NULL && len > 0)) {
        sl__put_err(err, errlen, "%s is NULL", type == NULL ? "type" : "json");
        return SL_EINVAL;
    }
    if ((unsigned long long)max_payload > (unsigned long long)LLONG_MAX)
        max_payload = 0;
    memset(&t, 0, sizeof(t));
    t.max_payload_bytes = (long long)max_payload;
    f[0].name = "type";
    f[0].name_len = 4;
    f[0].value = type;
    f[0].value_len = strlen(type);
    f[1].name = "data";
    f[1].name_len = 4;
    f[1].value = json != NULL ? json : "";
    f[1].value_len = len;
    memset(&msg, 0, sizeof(msg));
    msg.id = "0-0";
    msg.stream = "";
    msg.fields = f;
    msg.nfields = 2;
    if ((ctx = sl__ctx_new(NULL)) == NULL) {
        sl__put_err(err, errlen, "out of memory");
        return SL_ENOMEM;
    }
    rc = sl__msg_prepare(ctx, &msg, &t, 0, NULL, 0);
    if (rc != 0)
        sl__put_err(err, errlen, "%s", ctx->err);
    json_decref(msg.data);
    sl__ctx_free(ctx);
    return rc == 0 ? SL_OK : SL_EINVAL;
}

/* ---------------------------------------------------------------------
 * The producer
 * ------------------------------------------------------------------ */

/* Connects p->c with sl__redis_connect(), the admin commands' own
 * connection (timeouts, AUTH, SELECT). Returns 0, or SL_EREDIS with
 * p->errstr set. */
static int connect_or_fail(struct sl_producer *p)
{
    sl__sync_free(p->c);
    p->c = sl__redis_connect(p->cfg, p->errstr, sizeof(p->errstr));
    return p->c != NULL ? SL_OK : SL_EREDIS;
}

/* Creates a producer and connects it (see sluice.h). The URL goes
 * through the configuration's own parser, so it follows the rules of
 * --redis: redis:// or rediss://, an ACL user and password, both
 * percent-decoded. */
struct sl_producer *sl_producer_new(const char *redis_url, char *err, size_t errlen)
{
    return sl_producer_new_cluster(redis_url, NULL, err, errlen);
}

/* Creates a producer on a cluster, or on one Redis when cluster_nodes is
 * NULL or empty (see sluice.h). The seeds are checked by the cluster
 * client itself when it connects. */
struct sl_producer *sl_producer_new_cluster(const char *redis_url, const char *cluster_nodes,
                                            char *err, size_t errlen)
{
    const char *origin = "redis_url", *env = getenv("SLUICE_REDIS_URL");
    struct sl_producer *p = calloc(1, sizeof(*p));

    if (p == NULL || (p->cfg = sl__config_default()) == NULL) {
        sl__put_err(err, errlen, "out of memory");
        goto err;
    }
    p->max_payload = SL_PAYLOAD_MAX_DEFAULT;
    if (redis_url == NULL && env != NULL && *env != '\0') {
        redis_url = env;
        origin = "SLUICE_REDIS_URL";
    }
    if (redis_url != NULL &&
        sl__config_set_url(p->cfg, redis_url, origin, p->errstr, sizeof(p->errstr)) != 0) {
        sl__put_err(err, errlen, "%s", p->errstr);
        goto err;
    }
    if (cluster_nodes != NULL && *cluster_nodes != '\0'
        && (p->cfg->cluster_nodes = strdup(cluster_nodes)) == NULL) {
        sl__put_err(err, errlen, "out of memory");
        goto err;
    }
    if (connect_or_fail(p) != SL_OK) {
        sl__put_err(err, errlen, "%s", p->errstr);
        goto err;
    }
    p->errstr[0] = '\0';
    return p;

err:
    sl_producer_free(p);
    return NULL;
}

/* Sets the payload limit (see sluice.h). */
void sl_producer_set_max_payload(struct sl_producer *p, size_t bytes)
{
    if (p != NULL)
        p->max_payload = bytes;
}

/* Checks and sends one entry (see sluice.h). Everything that can be
 * refused is refused before the first byte goes to Redis, so SL_EINVAL
 * always means "not added". The XADD is never retried here: when the
 * connection breaks after it was written, Redis may have stored the
 * entry, and a blind resend would add it twice. The broken context is
 * dropped and the next call connects again. */
int sl_enqueue(struct sl_producer *p, const char *stream, const char *type,
               const char *json, size_t len, char *id_out, size_t id_len)
{
    const char *argv[7];
    size_t argl[7];
    redisReply *r;
    int rc;

    if (p == NULL)
        return SL_EINVAL;
    p->errstr[0] = '\0';
    if (stream == NULL || *stream == '\0' || strlen(stream) > SL_NAME_MAX) {
        snprintf(p->errstr, sizeof(p->errstr), "stream name must be 1 to %d bytes",
                 SL_NAME_MAX);
        return SL_EINVAL;
    }
    if (id_out != NULL && id_len < SL_ENQUEUE_IDLEN) {
        snprintf(p->errstr, sizeof(p->errstr), "id_len %zu is below SL_ENQUEUE_IDLEN", id_len);
        return SL_EINVAL;
    }
    rc = sl_enqueue_check(type, json, len, p->max_payload, p->errstr, sizeof(p->errstr));
    if (rc != SL_OK)
        return rc;
    if (p->c == NULL && (rc = connect_or_fail(p)) != SL_OK)
        return rc;

    argv[0] = "XADD"; argl[0] = 4;
    argv[1] = stream; argl[1] = strlen(stream);
    argv[2] = "*"; argl[2] = 1;
    argv[3] = "type"; argl[3] = 4;
    argv[4] = type; argl[4] = strlen(type);
    argv[5] = "data"; argl[5] = 4;
    argv[6] = json; argl[6] = len;
    sl__sync_route(p->c, stream, 0);    /* the stream's master; never resent */
    r = sl__sync_argv(p->c, 7, argv, argl);
    if (r == NULL) {
        snprintf(p->errstr, sizeof(p->errstr),
                 "redis: %s (the entry may or may not have been added)",
                 p->c->errstr[0] ? p->c->errstr : "no reply");
        sl__sync_free(p->c);
        p->c = NULL;
        return SL_EREDIS;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOAUTH", 6) == 0)
            snprintf(p->errstr, sizeof(p->errstr), "redis: authentication failed: %s", r->str);
        else
            snprintf(p->errstr, sizeof(p->errstr), "redis: %s", r->str);
        freeReplyObject(r);
        return SL_EREDIS;
    }
    if (r->type != REDIS_REPLY_STRING || (size_t)r->len >= SL_ENQUEUE_IDLEN) {
        snprintf(p->errstr, sizeof(p->errstr), "redis: unexpected reply to XADD");
        freeReplyObject(r);
        return SL_EREDIS;
    }
    if (id_out != NULL)
        memcpy(id_out, r->str, (size_t)r->len + 1);
    freeReplyObject(r);
    return SL_OK;
}

/* Returns the last failure of p (see sluice.h). */
const char *sl_producer_errstr(const struct sl_producer *p)
{
    return p != NULL ? p->errstr : "no producer";
}

/* Frees p and closes its connection. Accepts NULL. */
void sl_producer_free(struct sl_producer *p)
{
    if (p == NULL)
        return;
    sl__sync_free(p->c);
    sl__config_free(p->cfg);
    free(p);
}
