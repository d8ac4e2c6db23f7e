/* startcheck.c -- the start check: before the first child starts, every
 * consumer name the pool is about to use must be free, that is without a
 * live heartbeat of another process (a second pool on the same host and
 * configuration, or the previous one still stopping). A refusal names
 * the first name held; the check waits until every heartbeat found must
 * have expired.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <hiredis.h>
#include "internal.h"
#include "pool.h"
#include "heartbeat.h"

#define HELD_MARGIN_MS 100        /* past a heartbeat's expiry before it counts as renewed */

/* Start check of one consumer name. A heartbeat younger than its expiry
 * is live, whatever its pid: a pool in another PID namespace (a second
 * container with the same host name) has pids that do not exist here, or
 * that belong to unrelated processes, and nothing in a heartbeat proves
 * which namespace wrote it. So a heartbeat found on a name is waited for
 * until it must have expired (p->held_until, the latest such time over
 * all names, so that a refusal names the first name held). Gone by then,
 * its writer stopped beating and the name is free; still there, someone
 * renewed it (the process's own beats, or its supervisor's while it is
 * busy) and the name is held. A heartbeat without an expiry (its writer
 * died between setting it and giving it one) is stale once it has stayed
 * unchanged for three of our beats. Returns 0 when the name is free, 1
 * while waiting, -1 when the check cannot go on this tick (Redis trouble,
 * or the start refused). */
static int check_name(struct sl_pool *p, struct sl_child *ch, const redisReply *r,
                      const redisReply *t)
{
    char key[400];
    const char *beat;
    long long ttl;
    uint64_t until, now;
    long pid;

    sl__hb_key_of(key, sizeof(key), ch->cfg->cluster_nodes != NULL, ch->wc->stream,
                  ch->consumer);
    if (r == NULL)
        return -1;              /* Redis went away: try again next tick */
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) != 0) {
        /* LOADING, BUSY, NOPERM...: the heartbeat was not read, so the
         * name is not known to be free; try again next tick. */
        if ((p->start_fails & (p->start_fails - 1)) == 0)
            sl__log(SL_LOG_WARN, "redis_unavailable", "attempt=%d phase=start_check error=%s",
                    p->start_fails + 1, sl__logq(r->str));
        p->start_fails++;
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        ch->held_seen = 0;
        return 0;               /* no heartbeat: the name is free */
    }
    if (t == NULL || t->type != REDIS_REPLY_INTEGER) {
        /* Not known: try again next tick, saying why once per doubling
         * of attempts, like the HMGET above. */
        if ((p->start_fails & (p->start_fails - 1)) == 0)
            sl__log(SL_LOG_WARN, "redis_unavailable", "attempt=%d phase=start_check error=%s",
                    p->start_fails + 1,
                    sl__logq(t == NULL ? "no reply" :
                             t->type == REDIS_REPLY_ERROR ? t->str : "unexpected PTTL reply"));
        p->start_fails++;
        return -1;
    }
    ttl = t->integer;
    /* The lifetime was read now, not at the start of the tick: connecting
     * and the names checked before this one may have taken a while, and
     * a deadline from the older clock would look again before the key
     * expired and refuse a name whose writer is gone. */
    now = sl__now_ms();
    if (ttl == -2) {
        ch->held_seen = 0;
        return 0;               /* expired since the HMGET */
    }
    pid = strtol(r->element[1]->str, NULL, 10);
    beat = r->element[2]->type == REDIS_REPLY_STRING ? r->element[2]->str : "";
    if (!ch->held_seen) {
        until = now + (uint64_t)(ttl >= 0 ? ttl : 3 * ch->wc->t.heartbeat_ms) + HELD_MARGIN_MS;
        if (until > p->held_until)
            p->held_until = until;
        ch->held_seen = 1;
        snprintf(ch->held_beat, sizeof(ch->held_beat), "%s", beat);
        sl__log(SL_LOG_INFO, "start_waiting", "consumer=%s old_pid=%ld old_host=%s ttl_ms=%lld",
                sl__logq(ch->consumer), pid, sl__logq(r->element[0]->str), ttl);
        return 1;
    }
    if (ttl == -1 && strcmp(beat, ch->held_beat) == 0) {
        const char *del[] = { "DEL", key };

        /* Sent before any child can start: the connection keeps the
         * order, so it lands before the new process's first beat. */
        (void)sl__pool_send(p, NULL, NULL, 2, del);
        sl__log(SL_LOG_INFO, "stale_heartbeat", "consumer=%s old_pid=%ld",
                sl__logq(ch->consumer), pid);
        ch->held_seen = 0;
        return 0;
    }
    fprintf(stderr, "sluice: consumer %s is held by a live process (pid %ld on host %s); "
            "is another `sluice run` using this configuration?\n",
            ch->consumer, pid, r->element[0]->str);
    p->exit_code = 1;
    p->stopping = 1;
    event_base_loopbreak(p->base);
    return -1;
}

/* What one reply of the start check needs to find its place. */
struct check_call {
    struct sl_pool *p;            /* the pool */
    unsigned gen;                 /* the round it belongs to */
    size_t at;                    /* its index in p->sc_replies */
};

/* Frees the replies of the round and ends it. */
static void end_round(struct sl_pool *p)
{
    size_t i;

    for (i = 0; i < p->sc_n; i++)
        freeReplyObject(p->sc_replies[i]);
    free(p->sc_replies);
    p->sc_replies = NULL;
    p->sc_n = 0;
    p->sc_inflight = 0;
}

/* Every reply of the round is in: checks each name on them, and starts
 * the pool when all are free. */
static void evaluate(struct sl_pool *p)
{
    int waiting = 0, rc = 0;
    size_t i;

    for (i = 0; i < p->nchildren && 2 * i + 1 < p->sc_n; i++) {
        rc = check_name(p, &p->children[i], p->sc_replies[2 * i], p->sc_replies[2 * i + 1]);
        if (rc < 0)
            break;
        waiting |= rc;
    }
    end_round(p);
    if (rc < 0 || waiting || p->stopping)
        return;
    p->started = 1;
    sl__log(SL_LOG_INFO, "pool_started", "children=%zu", p->nchildren);
}

/* One reply of the round (taken: freed with the round). */
static void on_check_reply(struct sl_conn *c, redisReply *r, void *arg)
{
    struct check_call *k = arg;
    struct sl_pool *p = k->p;

    (void)c;
    if (k->gen == p->sc_gen && p->sc_inflight && k->at < p->sc_n) {
        p->sc_replies[k->at] = r;
        if (--p->sc_outstanding == 0)
            evaluate(p);
    } else {
        freeReplyObject(r);
    }
    free(k);
}

/* Sends one command of the round. Returns 0 or -1. */
static int check_send(struct sl_pool *p, size_t at, int argc, const char **argv)
{
    struct check_call *k = malloc(sizeof(*k));

    if (k == NULL)
        return -1;
    k->p = p;
    k->gen = p->sc_gen;
    k->at = at;
    if (sl__pool_send_take(p, on_check_reply, k, argc, argv) != 0) {
        free(k);
        return -1;
    }
    p->sc_outstanding++;
    return 0;
}

/* The start check, repeated every tick until it passes: every consumer
 * name must be free (see check_name). Refuses to start when another live
 * process holds one of them; waits while a heartbeat may still be live.
 * Redis is not asked again before p->held_until: the heartbeats found
 * are live until then by that rule. The HMGET and PTTL of every name go
 * out at once on the asynchronous connection; the names are checked when
 * the last reply is in, so the supervisor's loop never waits on Redis. */
void sl__pool_try_start(struct sl_pool *p)
{
    uint64_t now = sl__now_ms();
    size_t i;

    if (p->started || p->stopping || now < p->held_until || p->sc_inflight ||
        !sl__pool_async_ready(p))
        return;
    p->sc_replies = calloc(2 * p->nchildren + 1, sizeof(*p->sc_replies));
    if (p->sc_replies == NULL)
        return;
    p->sc_n = 2 * p->nchildren;
    p->sc_gen++;
    p->sc_inflight = 1;
    p->sc_outstanding = 1;          /* held until every command is sent */
    for (i = 0; i < p->nchildren; i++) {
        char key[400];
        const char *hmget[] = { "HMGET", key, "host", "pid", "last_beat" };
        const char *pttl[] = { "PTTL", key };

        sl__hb_key_of(key, sizeof(key), p->children[i].cfg->cluster_nodes != NULL,
                      p->children[i].wc->stream, p->children[i].consumer);
        if (check_send(p, 2 * i, 5, hmget) != 0 || check_send(p, 2 * i + 1, 2, pttl) != 0) {
            /* The connection broke: this round is void, the next tick
             * tries again (late replies are dropped by their round). */
            p->sc_gen++;
            end_round(p);
            return;
        }
    }
    if (--p->sc_outstanding == 0)
        evaluate(p);
}
