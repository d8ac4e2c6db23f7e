/* heartbeat.c -- the heartbeat key (see heartbeat.h): its name, its TTL,
 * what a beat writes, and the walk over every heartbeat, through the
 * registry, that `sluice stats` and `sluice workers` make.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "heartbeat.h"
#include "cluster.h"

#define MAX_FIELDS 16             /* fields one sl__hb_walk() call may ask for */

/* Writes "sluice:worker:<consumer>". */
int sl__hb_key(char *buf, size_t size, const char *consumer)
{
    return snprintf(buf, size, "%s%s", SL_HB_PREFIX, consumer);
}

/* The hash tag of stream, for the cluster names: its length, *tag set
 * (borrowed from stream). A stream without one (refused by the
 * configuration in cluster mode) gives its whole name, so the key is at
 * least well formed. */
static int stream_tag(const char *stream, const char **tag)
{
    size_t off, n;

    if (sl__cluster_tag(stream, strlen(stream), &off, &n)) {
        *tag = stream + off;
        return (int)n;
    }
    *tag = stream;
    return (int)strlen(stream);
}

/* Writes the heartbeat key of consumer, which works on stream. */
int sl__hb_key_of(char *buf, size_t size, int cluster, const char *stream, const char *consumer)
{
    const char *tag;
    int n;

    if (!cluster)
        return sl__hb_key(buf, size, consumer);
    n = stream_tag(stream, &tag);
    return snprintf(buf, size, "sluice:{%.*s}:worker:%s", n, tag, consumer);
}

/* Writes the registry key of the workers of stream. */
int sl__hb_registry(char *buf, size_t size, int cluster, const char *stream)
{
    const char *tag;
    int n;

    if (!cluster)
        return snprintf(buf, size, "%s", SL_HB_REGISTRY);
    n = stream_tag(stream, &tag);
    return snprintf(buf, size, "sluice:{%.*s}:workers", n, tag);
}

/* Writes "sluice:rate:<stream>:<group>". */
int sl__rate_key(char *buf, size_t size, const char *stream, const char *group)
{
    return snprintf(buf, size, "%s%s:%s", SL_RATE_PREFIX, stream, group);
}

/* Returns what follows the prefix, or NULL. */
const char *sl__hb_consumer(const char *key)
{
    size_t n = strlen(SL_HB_PREFIX);

    return strncmp(key, SL_HB_PREFIX, n) == 0 ? key + n : NULL;
}

/* Three heartbeat periods. */
long long sl__hb_ttl_ms(long long heartbeat_ms)
{
    return 3 * heartbeat_ms;
}

/* Fills the HSET, PEXPIRE and ZADD of one beat (see heartbeat.h). */
void sl__hb_fill(struct sl_hb *b, int cluster, const char *consumer, long pid, const char *host,
                 const char *handler, const char *stream, const char *group,
                 long long heartbeat_ms, int full, uint64_t started_ms,
                 uint64_t processed, uint64_t failed)
{
    int n = 0;

    sl__hb_key_of(b->key, sizeof(b->key), cluster, stream, consumer);
    sl__hb_registry(b->registry, sizeof(b->registry), cluster, stream);
    snprintf(b->pid, sizeof(b->pid), "%ld", pid);
    snprintf(b->ttl, sizeof(b->ttl), "%lld", sl__hb_ttl_ms(heartbeat_ms));
    snprintf(b->expiry, sizeof(b->expiry), "%llu",
             (unsigned long long)sl__wall_ms() + (unsigned long long)sl__hb_ttl_ms(heartbeat_ms));
    b->hset[n++] = "HSET";
    b->hset[n++] = b->key;
    b->hset[n++] = "pid";
    b->hset[n++] = b->pid;
    b->hset[n++] = "host";
    b->hset[n++] = host;
    b->hset[n++] = "handler";
    b->hset[n++] = handler;
    b->hset[n++] = "stream";
    b->hset[n++] = stream;
    b->hset[n++] = "group";
    b->hset[n++] = group;
    if (full) {
        snprintf(b->started, sizeof(b->started), "%llu", (unsigned long long)started_ms);
        snprintf(b->beat, sizeof(b->beat), "%llu", (unsigned long long)sl__wall_ms());
        snprintf(b->processed, sizeof(b->processed), "%llu", (unsigned long long)processed);
        snprintf(b->failed, sizeof(b->failed), "%llu", (unsigned long long)failed);
        b->hset[n++] = "started_at";
        b->hset[n++] = b->started;
        b->hset[n++] = "last_beat";
        b->hset[n++] = b->beat;
        b->hset[n++] = "processed";
        b->hset[n++] = b->processed;
        b->hset[n++] = "failed";
        b->hset[n++] = b->failed;
    }
    b->nhset = n;
    b->pexpire[0] = "PEXPIRE";
    b->pexpire[1] = b->key;
    b->pexpire[2] = b->ttl;
    b->zadd[0] = "ZADD";
    b->zadd[1] = b->registry;
    b->zadd[2] = b->expiry;
    b->zadd[3] = consumer;
}

/* Appends busy, entry and entry_since (see heartbeat.h). */
void sl__hb_entry(struct sl_hb *b, const char *entry, uint64_t since_ms)
{
    int busy = entry != NULL && entry[0] != '\0';

    SL_ASSERT(b->nhset + 6 <= (int)SL_NELEM(b->hset));
    snprintf(b->since, sizeof(b->since), "%llu", busy ? (unsigned long long)since_ms : 0ULL);
    b->hset[b->nhset++] = "busy";
    b->hset[b->nhset++] = busy ? "1" : "0";
    b->hset[b->nhset++] = "entry";
    b->hset[b->nhset++] = busy ? entry : "";
    b->hset[b->nhset++] = "entry_since";
    b->hset[b->nhset++] = b->since;
}

/* Reads busy, entry and entry_since into o (see heartbeat.h). */
void sl__hb_entry_json(json_t *o, const redisReply *busy, const redisReply *entry,
                       const redisReply *since)
{
    int b = busy->type == REDIS_REPLY_STRING && !strcmp(busy->str, "1") &&
            entry->type == REDIS_REPLY_STRING && entry->len > 0;
    long long t0 = b && since->type == REDIS_REPLY_STRING ? strtoll(since->str, NULL, 10) : 0;
    long long now = (long long)sl__wall_ms();

    json_object_set_new(o, "busy", json_boolean(b));
    json_object_set_new(o, "entry", b ? sl__json_text(entry->str, (size_t)entry->len) : json_null());
    json_object_set_new(o, "entry_age_ms", b && t0 > 0 ? json_integer(now > t0 ? now - t0 : 0) :
                                                         json_null());
}

/* Walks every live heartbeat through the registry (see heartbeat.h).
 * A name whose key is gone (expired or deleted since) is skipped: the
 * key, not the registry, says who lives. It only reads, so an operator's
 * read-only account can run `stats` and `workers`; the janitor drops the
 * stale names. */
int sl__hb_walk(struct sl_sync *c, const char *const *fields, int nfields,
                sl_hb_run *run, sl_hb_visit *visit, void *arg)
{
    return sl__hb_walk_of(c, 0, "", fields, nfields, run, visit, arg);
}

/* The walk over the registry of stream's workers (see heartbeat.h). */
int sl__hb_walk_of(struct sl_sync *c, int cluster, const char *stream,
                   const char *const *fields, int nfields, sl_hb_run *run, sl_hb_visit *visit,
                   void *arg)
{
    char key[SL_HB_KEYLEN], reg[SL_HB_KEYLEN];
    const char *list[] = { "ZRANGE", reg, "0", "-1" };
    const char *hm[2 + MAX_FIELDS];
    redisReply *r;
    size_t i;
    int k;

    SL_ASSERT(nfields > 0 && nfields <= MAX_FIELDS);
    if ((size_t)sl__hb_registry(reg, sizeof(reg), cluster, stream) >= sizeof(reg))
        return -2;
    hm[0] = "HMGET";
    hm[1] = key;
    for (k = 0; k < nfields; k++)
        hm[2 + k] = fields[k];
    if ((r = run(c, 4, list, arg)) == NULL)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -2;
    }
    for (i = 0; i < r->elements; i++) {
        const redisReply *m = r->element[i];
        redisReply *h;
        size_t j, live = 0;
        int stop;

        if (m->type != REDIS_REPLY_STRING || (size_t)m->len != strlen(m->str) ||
            (size_t)sl__hb_key_of(key, sizeof(key), cluster, stream, m->str) >= sizeof(key))
            continue;       /* not a name a C string can pass, or too long for a key */
        if ((h = run(c, 2 + nfields, hm, arg)) == NULL)
            continue;       /* reported; a broken connection fails the caller's next command */
        for (j = 0; h->type == REDIS_REPLY_ARRAY && j < h->elements; j++)
            live += h->element[j]->type != REDIS_REPLY_NIL;
        stop = h->type == REDIS_REPLY_ARRAY && live == 0 ? 0 :
               visit(m->str, strlen(m->str), h, arg);
        freeReplyObject(h);
        if (stop != 0)
            break;
    }
    freeReplyObject(r);
    return 0;
}

/* The runner of a cluster walk: the caller's, with each command routed
 * first to the master of the key it names. */
struct walk_route {
    sl_hb_run *run;               /* the caller's runner */
    sl_hb_visit *visit;           /* the caller's visitor */
    void *arg;                    /* their argument */
};

/* Routes one command of the walk by its key (the registry, a heartbeat:
 * always argv[1]), then runs it through the caller's runner. */
static redisReply *route_run(struct sl_sync *c, int argc, const char **argv, void *arg)
{
    struct walk_route *w = arg;

    sl__sync_route(c, argc > 1 ? argv[1] : NULL, 1);
    return w->run(c, argc, argv, w->arg);
}

/* Hands one heartbeat to the caller's visitor. */
static int route_visit(const char *consumer, size_t len, const redisReply *fields, void *arg)
{
    struct walk_route *w = arg;

    return w->visit(consumer, len, fields, w->arg);
}

/* The walk over every configured worker's registry (see heartbeat.h). */
int sl__hb_walk_cfg(struct sl_sync *c, const struct sl_config *cfg,
                    const char *const *fields, int nfields, sl_hb_run *run, sl_hb_visit *visit,
                    void *arg)
{
    struct walk_route w;
    size_t i, j;
    int rc = 0;

    if (cfg->cluster_nodes == NULL)
        return sl__hb_walk(c, fields, nfields, run, visit, arg);
    w.run = run;
    w.visit = visit;
    w.arg = arg;
    for (i = 0; i < cfg->nworkers && rc == 0; i++) {
        char reg[SL_HB_KEYLEN], prev[SL_HB_KEYLEN];
        int seen = 0;

        /* Streams that share a tag share a registry: walk it once. */
        sl__hb_registry(reg, sizeof(reg), 1, cfg->workers[i].stream);
        for (j = 0; j < i && !seen; j++) {
            sl__hb_registry(prev, sizeof(prev), 1, cfg->workers[j].stream);
            seen = strcmp(prev, reg) == 0;
        }
        if (!seen)
            rc = sl__hb_walk_of(c, 1, cfg->workers[i].stream, fields, nfields, route_run,
                                route_visit, &w);
    }
    return rc;
}
