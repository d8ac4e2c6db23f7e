/* heartbeat.c -- the heartbeat key (see heartbeat.h): its name, its TTL,
 * what a beat writes, and the walk over every heartbeat that `sluice
 * stats` and `sluice workers` make.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "heartbeat.h"

#define SCAN_COUNT "500"          /* keys asked for per SCAN call */
#define MAX_FIELDS 16             /* fields one sl__hb_scan() call may ask for */

/* Writes "sluice:worker:<consumer>". */
int sl__hb_key(char *buf, size_t size, const char *consumer)
{
    return snprintf(buf, size, "%s%s", SL_HB_PREFIX, consumer);
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

/* Fills the HSET and PEXPIRE of one beat (see heartbeat.h). */
void sl__hb_fill(struct sl_hb *b, const char *consumer, long pid, const char *host,
                 const char *handler, const char *stream, const char *group,
                 long long heartbeat_ms, int full, uint64_t started_ms,
                 uint64_t processed, uint64_t failed)
{
    int n = 0;

    sl__hb_key(b->key, sizeof(b->key), consumer);
    snprintf(b->pid, sizeof(b->pid), "%ld", pid);
    snprintf(b->ttl, sizeof(b->ttl), "%lld", sl__hb_ttl_ms(heartbeat_ms));
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
}

/* Walks every heartbeat (see heartbeat.h). */
int sl__hb_scan(struct sl_sync *c, const char *const *fields, int nfields,
                sl_hb_run *run, sl_hb_visit *visit, void *arg)
{
    char cursor[32] = "0";
    const char *hm[2 + MAX_FIELDS];
    size_t i;
    int k;

    SL_ASSERT(nfields > 0 && nfields <= MAX_FIELDS);
    hm[0] = "HMGET";
    for (k = 0; k < nfields; k++)
        hm[2 + k] = fields[k];
    do {
        const char *scan[] = { "SCAN", cursor, "MATCH", SL_HB_PREFIX "*", "COUNT", SCAN_COUNT };
        redisReply *r = run(c, 6, scan, arg);

        if (r == NULL)
            return -1;
        /* [next cursor, [key...]]: anything else would leave the cursor
         * unchanged, so stop instead of scanning for ever. */
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return -2;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (i = 0; i < r->element[1]->elements; i++) {
            const redisReply *kr = r->element[1]->element[i];
            const char *consumer;
            redisReply *h;
            int stop;

            if (kr->type != REDIS_REPLY_STRING || (size_t)kr->len != strlen(kr->str) ||
                (consumer = sl__hb_consumer(kr->str)) == NULL)
                continue;       /* not a name a C string can pass */
            hm[1] = kr->str;
            if ((h = run(c, 2 + nfields, hm, arg)) == NULL)
                continue;       /* reported; a broken connection fails the next SCAN */
            stop = visit(consumer, strlen(consumer), h, arg);
            freeReplyObject(h);
            if (stop != 0) {
                freeReplyObject(r);
                return 0;
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}
