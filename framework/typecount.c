/* typecount.c -- the per-type counters (see typecount.h): their keys,
 * the counting a worker does per entry, and the batched HINCRBYs.
 */
#include <stdio.h>
#include <string.h>
#include "typecount.h"
#include "heartbeat.h"
#include "conn.h"

/* Writes "sluice:count:<stream>:<group>". */
int sl__tc_key(char *buf, size_t size, const char *stream, const char *group)
{
    return snprintf(buf, size, "%s%s:%s", SL_TC_PREFIX, stream, group);
}

/* Writes "sluice:rate:<stream>:<group>:types". */
int sl__tc_types_key(char *buf, size_t size, const char *stream, const char *group)
{
    return snprintf(buf, size, "%s%s:%s%s", SL_RATE_PREFIX, stream, group, SL_TC_TYPES_SUFFIX);
}

/* Empties tc: no names, nothing to send. */
void sl__tc_init(struct sl_typecount *tc, const char *stream, const char *group)
{
    memset(tc, 0, sizeof(*tc));
    sl__tc_key(tc->key, sizeof(tc->key), stream, group);
    snprintf(tc->t[SL_TC_MAX].name, sizeof(tc->t[SL_TC_MAX].name), "%s", SL_TC_OTHER);
    tc->flushed_ms = sl__now_ms();
}

/* Returns the slot of type name (len bytes), taking a free one while
 * there is one; SL_TC_OTHER's beyond that, or for a name too long. */
static struct sl_tc_type *slot_of(struct sl_typecount *tc, const char *name, size_t len)
{
    int i;

    if (len > SL_TC_NAMELEN || memchr(name, '\0', len) != NULL)
        return &tc->t[SL_TC_MAX];
    for (i = 0; i < tc->n; i++)
        if (strlen(tc->t[i].name) == len && memcmp(tc->t[i].name, name, len) == 0)
            return &tc->t[i];
    if (tc->n >= SL_TC_MAX)
        return &tc->t[SL_TC_MAX];
    memcpy(tc->t[tc->n].name, name, len);
    tc->t[tc->n].name[len] = '\0';
    return &tc->t[tc->n++];
}

/* Counts one entry under the value of its "type" field. */
void sl__tc_add(struct sl_typecount *tc, const redisReply *fields, int in, int done)
{
    const char *name = SL_TC_NONE;
    size_t len = strlen(SL_TC_NONE), i;
    struct sl_tc_type *t;

    if (!in && !done)
        return;
    for (i = 0; fields->type == REDIS_REPLY_ARRAY && i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && k->len == 4 && memcmp(k->str, "type", 4) == 0 &&
            v->type == REDIS_REPLY_STRING) {
            name = v->str;
            len = (size_t)v->len;
            break;
        }
    }
    t = slot_of(tc, name, len);
    t->in += in != 0;
    t->done += done != 0;
}

/* See typecount.h. */
void sl__tc_done(struct sl_typecount *tc, const char *type)
{
    const char *name = type != NULL && type[0] != '\0' ? type : SL_TC_NONE;

    slot_of(tc, name, strlen(name))->done++;
}

/* A reply to an increment: nothing to do (a failure is a count less). */
static void on_incr(struct sl_conn *c, redisReply *r, void *priv)
{
    (void)c;
    (void)r;
    (void)priv;
}

/* Sends one HINCRBY of "<what>:<name>" by n. */
static void incr(struct sl_typecount *tc, struct sl_conn *c, const char *what,
                 const char *name, long long n)
{
    char field[SL_TC_NAMELEN + 16], by[24];
    const char *argv[] = { "HINCRBY", tc->key, field, by };

    snprintf(field, sizeof(field), "%s:%s", what, name);
    snprintf(by, sizeof(by), "%lld", n);
    sl__conn_command(c, on_incr, tc, 0, 4, argv, NULL);
}

/* Sends the counts that moved, when due (see typecount.h). */
void sl__tc_flush(struct sl_typecount *tc, struct sl_conn *c, int force)
{
    uint64_t now = sl__now_ms();
    int i;

    if (!force && now - tc->flushed_ms < SL_TC_FLUSH_MS)
        return;
    tc->flushed_ms = now;
    if (c == NULL || !sl__conn_ready(c))
        return;     /* kept: sent with the next flush on a ready connection */
    for (i = 0; i <= SL_TC_MAX; i++) {
        if (tc->t[i].in > 0)
            incr(tc, c, "in", tc->t[i].name, tc->t[i].in);
        if (tc->t[i].done > 0)
            incr(tc, c, "done", tc->t[i].name, tc->t[i].done);
        tc->t[i].in = tc->t[i].done = 0;
    }
}
