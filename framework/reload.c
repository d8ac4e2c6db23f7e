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

/* One step of a rolling restart, run every tick: stops the next old child,
 * and once it is gone releases the new child of the same name. */
void sl__pool_roll(struct sl_pool *p)
{
    size_t i;

    if (p->old == NULL)
        return;
    while (p->roll_next < p->nold) {
        struct sl_child *o = &p->old[p->roll_next];
        if (o->pid > 0) {
            if (!o->timed_out && o->restart_at != UINT64_MAX - 1) {
                kill(o->pid, SIGTERM);
                o->restart_at = UINT64_MAX - 1;   /* marks "asked to stop" */
            }
            return;
        }
        if (o->failed_id[0] != '\0')
            return;                 /* its crash is still to be recorded */
        for (i = 0; i < p->nchildren; i++)
            if (strcmp(p->children[i].consumer, o->consumer) == 0 &&
                p->children[i].restart_at == UINT64_MAX) {
                p->children[i].restart_at = 0;
                return;             /* wait for it to start before the next */
            }
        p->roll_next++;
    }
    for (i = 0; i < p->nchildren; i++) {
        if (p->children[i].restart_at == UINT64_MAX)
            p->children[i].restart_at = 0;
        if (p->children[i].pid == 0)
            return;                 /* not all new children run yet */
    }
    sl__pool_free_retired(p);
    sl__log(SL_LOG_INFO, "reloaded", "children=%zu", p->nchildren);
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
