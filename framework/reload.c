/* reload.c -- SIGHUP: the configuration read again and applied with a
 * rolling restart (one old child stopped at a time, each as its
 * replacement runs), or refused whole with the pool unchanged.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"
#include "pool.h"

#define ROLL_BUSY_MS 500          /* a stopping child still busy after this no longer holds up a reload */
#define ROLL_CONNECT_MS 5000      /* a child started by a reload counts as up while connecting, this long */

/* Picks a shared slot that no child, current or old, is bound to. */
static struct sl_slot *free_slot(struct sl_pool *p, struct sl_child *fresh, size_t nfresh)
{
    size_t tries, i;

    for (tries = 0; tries < SL_MAX_CHILDREN; tries++) {
        struct sl_slot *s = &p->slots[p->next_slot++ % SL_MAX_CHILDREN];
        int used = 0;
        for (i = 0; i < p->nchildren && !used; i++)
            used = p->children[i].slot == s;
        for (i = 0; i < p->nold && !used; i++)
            used = p->old[i].slot == s;
        for (i = 0; i < nfresh && !used; i++)
            used = fresh[i].slot == s;
        if (!used) {
            memset(s, 0, sizeof(*s));   /* a retired child's counts */
            return s;
        }
    }
    return NULL;
}

/* SIGHUP: re-reads the configuration. A bad one is refused with its error
 * and the running pool stays as it is; a good one replaces the children
 * one at a time (sl__pool_roll), each new child starting only after the
 * old one holding its consumer name has exited. */
void sl__pool_reload(struct sl_pool *p)
{
    char err[512];
    struct sl_config *cfg;
    struct sl_child *fresh;
    size_t nfresh, i, j;
    const char *env = getenv("SLUICE_REDIS_URL");

    if (p->stopping)
        return;
    if (p->old != NULL) {
        sl__log(SL_LOG_WARN, "reload_refused", "reason=%s", sl__logq("a rolling restart is still running"));
        p->reload_failures++;
        return;
    }
    cfg = sl__config_load(p->cfg_path, p->cfg_explicit, err, sizeof(err));
    if (cfg != NULL && env != NULL && *env &&
        sl__config_set_url(cfg, env, "SLUICE_REDIS_URL", err, sizeof(err)) < 0) {
        sl__config_free(cfg);
        cfg = NULL;
    }
    if (cfg != NULL && p->redis_override != NULL &&
        sl__config_set_url(cfg, p->redis_override, "--redis", err, sizeof(err)) < 0) {
        sl__config_free(cfg);
        cfg = NULL;
    }
    if (cfg != NULL && (sl__pool_apply_overrides(p, cfg, err, sizeof(err)) < 0 ||
                        sl__pool_plan(p, cfg, &fresh, &nfresh, err, sizeof(err)) < 0)) {
        sl__config_free(cfg);
        cfg = NULL;
    }
    if (cfg == NULL) {
        sl__log(SL_LOG_ERROR, "reload_failed", "error=%s", sl__logq(err));
        fprintf(stderr, "sluice: reload refused: %s\n", err);
        p->reload_failures++;       /* sluice_reload_failures_total */
        return;
    }
    for (i = 0; i < nfresh; i++) {
        fresh[i].restart_at = UINT64_MAX;   /* held until its turn */
        for (j = 0; j < p->nchildren; j++)
            if (strcmp(p->children[j].consumer, fresh[i].consumer) == 0) {
                fresh[i].slot = p->children[j].slot;
                memcpy(fresh[i].carried, p->children[j].carried, sizeof(fresh[i].carried));
                memcpy(fresh[i].carried_hist, p->children[j].carried_hist,
                       sizeof(fresh[i].carried_hist));
            }
    }
    for (i = 0; i < nfresh; i++)
        if (fresh[i].slot == NULL)
            fresh[i].slot = free_slot(p, fresh, nfresh);
    p->old = p->children;
    p->nold = p->nchildren;
    for (i = 0; i < p->nold; i++)
        p->old[i].retired = 1;
    p->old_cfg = p->cfg;
    p->children = fresh;
    p->nchildren = nfresh;
    p->cfg = cfg;
    p->roll_next = 0;
    sl__janitor_free(p);
    p->last_reload_ms = sl__wall_ms();
    sl__log(SL_LOG_INFO, "reloading", "children=%zu", nfresh);
}

/* Returns the new child that takes over old child o's consumer name,
 * or NULL when the reload drops that name. */
static struct sl_child *successor(struct sl_pool *p, const struct sl_child *o)
{
    size_t i;

    for (i = 0; i < p->nchildren; i++)
        if (strcmp(p->children[i].consumer, o->consumer) == 0)
            return &p->children[i];
    return NULL;
}

/* Returns 1 when old child ch, asked to stop ROLL_BUSY_MS ago or
 * more, is still in the middle of a batch (a handler runs or entries are
 * in hand): it exits only when its handler returns, however long that
 * is, so the roll stops waiting for it. A handler of milliseconds is
 * over well before that, and the roll stays one process at a time. */
static int busy(const struct sl_child *ch, uint64_t now)
{
    struct sl_slot_view v;

    return now - ch->stop_asked_ms >= ROLL_BUSY_MS && sl__slot_read(ch->slot, &v) == 0 &&
           (v.cur_id[0] != '\0' || v.first_id[0] != '\0');
}

/* Lets new child n run: the supervisor's tick starts it next (within
 * one tick). Until it has connected it counts as changing hands, not
 * down (see changing_hands()). */
static void release(struct sl_child *n, uint64_t now)
{
    n->restart_at = 0;
    n->rolling = 1;
    n->rolled_ms = now;
}

/* Returns 1 when new child ch is not up only because a reload is moving
 * its consumer name, which is served meanwhile: the old process of the
 * name still runs (busy with a handler, or about to be asked to stop), or
 * ch has just replaced it and is starting or connecting (for at most
 * ROLL_CONNECT_MS: a child that cannot connect is reported). /healthz
 * counts such a child as up: it is not down, it is changing hands. */
static int changing_hands(const struct sl_pool *p, struct sl_child *ch, uint64_t now)
{
    size_t i;

    if (ch->rolling) {
        if (now - ch->rolled_ms >= ROLL_CONNECT_MS ||
            (ch->pid > 0 && sl__slot_redis_up(ch->slot)))
            ch->rolling = 0;    /* on its own from now on, reported like any child */
        else
            return 1;
    }
    if (p->old == NULL || ch->restart_at != UINT64_MAX)
        return 0;
    for (i = 0; i < p->nold; i++)
        if (strcmp(p->old[i].consumer, ch->consumer) == 0 && p->old[i].pid > 0)
            return 1;
    return 0;
}

/* One step of a rolling restart, run every tick. Old children are asked
 * to stop (SIGTERM) one at a time, each new child of a name starting only
 * once the old process of that name has exited, so a name never has two
 * live processes. A busy old child does not hold the roll up: it finishes
 * its handler and exits by itself, and its successor starts then, while
 * the roll goes on with the other slots at once. Names that only the new
 * configuration has start at once; names it drops just stop. */
static void roll_step(struct sl_pool *p, uint64_t now)
{
    size_t i;
    int moving = 0;             /* an old child stopping that is not busy, or a crash to record */

    if (p->old == NULL)
        return;
    for (i = 0; i < p->nchildren; i++) {
        struct sl_child *n = &p->children[i];
        size_t j;
        int held = 0;

        for (j = 0; j < p->nold && !held; j++)
            held = strcmp(p->old[j].consumer, n->consumer) == 0;
        if (!held && n->restart_at == UINT64_MAX)
            release(n, now);
    }
    for (i = 0; i < p->nold; i++) {
        struct sl_child *o = &p->old[i];
        struct sl_child *n;

        if (o->pid > 0) {
            if (o->restart_at == UINT64_MAX - 1 && !busy(o, now))
                moving++;
            continue;
        }
        if (o->failed_id[0] != '\0') {
            moving++;           /* its crash is still to be recorded */
            continue;
        }
        if ((n = successor(p, o)) != NULL && n->restart_at == UINT64_MAX)
            release(n, now);
        if (n != NULL && n->rolling && n->pid == 0)
            moving++;           /* released, not started yet: the next waits for it */
    }
    for (i = 0; i < p->nold && moving == 0; i++) {
        struct sl_child *o = &p->old[i];

        if (o->pid > 0 && !o->timed_out && o->restart_at != UINT64_MAX - 1) {
            kill(o->pid, SIGTERM);
            o->restart_at = UINT64_MAX - 1;   /* marks "asked to stop" */
            o->stop_asked_ms = now;
            moving++;
        }
    }
    for (i = 0; i < p->nold; i++)
        if (p->old[i].pid > 0 || p->old[i].failed_id[0] != '\0')
            return;
    for (i = 0; i < p->nchildren; i++)
        if (p->children[i].pid == 0)
            return;                 /* not all new children run yet */
    sl__pool_free_retired(p);
    sl__log(SL_LOG_INFO, "reloaded", "children=%zu", p->nchildren);
}

/* Runs one step of a rolling restart (roll_step), then marks the new
 * children whose name is changing hands, for /healthz: after the step,
 * so that a name whose old process exited since the last tick is seen
 * released, not down. */
void sl__pool_roll(struct sl_pool *p)
{
    uint64_t now = sl__now_ms();
    size_t i;

    roll_step(p, now);
    for (i = 0; i < p->nchildren; i++)
        p->children[i].changing_hands = changing_hands(p, &p->children[i], now);
}

/* Frees the children and configuration a finished reload left behind.
 * The configuration of the first generation belongs to sl__pool_run's
 * caller, which frees it itself. */
void sl__pool_free_retired(struct sl_pool *p)
{
    free(p->old);
    p->old = NULL;
    p->nold = 0;
    if (p->old_cfg != p->cfg_caller)
        sl__config_free(p->old_cfg);
    p->old_cfg = NULL;
}
