/* trim.c -- safe trimming: each stream whose workers say "trim":
 * "acked" is cut below the oldest entry any of its groups still needs
 * (trim.lua), once per housekeeping period; and the optional retention
 * of each stream's dead letters (dead_letter_max_len,
 * dead_letter_max_age_ms; dlq_retain.lua) in the same pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include "internal.h"
#include "pool.h"
#include "scripts.h"

/* The reply to trim.lua for the stream named by arg (freed here). */
static void on_trimmed(struct sl_conn *c, redisReply *r, void *arg)
{
    char *stream = arg;

    (void)c;
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        sl__log(SL_LOG_DEBUG, "trimmed", "stream=%s count=%lld", sl__logq(stream), r->integer);
    else if (r != NULL && r->type == REDIS_REPLY_ERROR)
        sl__log(SL_LOG_WARN, "trim_failed", "stream=%s error=%s", sl__logq(stream),
                sl__logq(r->str));
    free(stream);
}

/* Trims one stream safely (see framework/lua/trim.lua), without waiting
 * for the reply: a trim that cannot be sent now is made next period. */
static void trim_one(struct sl_pool *p, const char *stream)
{
    const char *keys[] = { stream };
    char *copy = strdup(stream);

    if (copy != NULL && sl__pool_send_script(p, SL_SCRIPT_TRIM, (int)SL_NELEM(keys), keys, 0, NULL,
                                             on_trimmed, copy) != 0)
        free(copy);
}

/* The reply to dlq_retain.lua for the stream named by arg (freed here). */
static void on_retained(struct sl_conn *c, redisReply *r, void *arg)
{
    char *stream = arg;

    (void)c;
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        sl__log(SL_LOG_INFO, "dead_letters_expired", "stream=%s count=%lld", sl__logq(stream),
                r->integer);
    else if (r != NULL && r->type == REDIS_REPLY_ERROR)
        sl__log(SL_LOG_WARN, "dead_letter_retention_failed", "stream=%s error=%s",
                sl__logq(stream), sl__logq(r->str));
    free(stream);
}

/* Applies the dead-letter retention of t to stream's dead letters,
 * without waiting for the reply. */
static void retain_dead(struct sl_pool *p, const char *stream, const struct sl_tunables *t)
{
    char dkey[SL_KEYLEN], len[24], age[24];
    const char *keys[] = { dkey };
    const char *args[] = { len, age };
    char *copy = strdup(stream);

    if (copy == NULL)
        return;
    snprintf(dkey, sizeof(dkey), "%s:dead", stream);
    snprintf(len, sizeof(len), "%lld", t->dead_letter_max_len);
    snprintf(age, sizeof(age), "%lld", t->dead_letter_max_age_ms);
    if (sl__pool_send_script(p, SL_SCRIPT_DLQ_RETAIN, (int)SL_NELEM(keys), keys,
                             (int)SL_NELEM(args), args, on_retained, copy) != 0)
        free(copy);
}

/* Trims every stream of the configuration that asks for it, once each
 * (the first worker entry of a stream decides), and applies the
 * retention of its dead letters when one is set. */
void sl__trim_streams(struct sl_pool *p)
{
    size_t i, j;

    for (i = 0; i < p->cfg->nworkers; i++) {
        const struct sl_worker_conf *wc = &p->cfg->workers[i];
        int first = 1;

        for (j = 0; j < i; j++)
            if (strcmp(p->cfg->workers[j].stream, wc->stream) == 0)
                first = 0;
        if (first && wc->t.trim == SL_TRIM_ACKED)
            trim_one(p, wc->stream);
        if (first && (wc->t.dead_letter_max_len > 0 || wc->t.dead_letter_max_age_ms > 0))
            retain_dead(p, wc->stream, &wc->t);
    }
}
