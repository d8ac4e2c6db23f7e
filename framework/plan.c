/* plan.c -- what the pool runs: the children of a configuration, each
 * under its stable consumer name, bound to shared slots; and the command
 * line's overrides of a configuration (--workers, --metrics).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cluster.h"
#include "internal.h"
#include "pool.h"

/* Writes the consumer name of process j of worker entry i:
 * <host>:<handler>:<j>, or <host>:<handler>:<i>.<j> when another entry
 * has the same handler. Every name sluice gives a consumer comes from
 * here (the pool's children, `sluice health`'s heartbeat check). */
void sl__consumer_name(char *buf, size_t size, const char *host, const struct sl_config *cfg,
                       size_t i, int j)
{
    if (cfg->nworkers > 1 && sl__pool_name_taken(cfg, i))
        snprintf(buf, size, "%s:%s:%zu.%d", host, cfg->workers[i].handler, i, j);
    else
        snprintf(buf, size, "%s:%s:%d", host, cfg->workers[i].handler, j);
}

/* Builds the children of a configuration: `processes` per worker, or the
 * counts of --workers. Returns 0 or -1 with err set. */
int sl__pool_plan(struct sl_pool *p, struct sl_config *cfg, struct sl_child **out,
                  size_t *nout, char *err, size_t errlen)
{
    struct sl_child *c;
    size_t i, n = 0, k = 0;
    int j;

    for (i = 0; i < cfg->nworkers; i++) {
        const char *st = cfg->workers[i].stream;
        size_t off, tl;

        /* On a Redis Cluster every key of a worker's scripts must share
         * its stream's slot, and sluice names the stream's own keys
         * (dead letters, attempts, counts, heartbeats) with the stream's
         * hash tag: a stream without one cannot run there. */
        if (cfg->cluster_nodes != NULL && cfg->workers[i].processes > 0 &&
            !sl__cluster_tag(st, strlen(st), &off, &tl)) {
            snprintf(err, errlen, "workers[%zu].stream \"%s\": on a Redis Cluster "
                     "(redis.cluster_nodes) a stream needs a hash tag, such as \"%s:{0}\" "
                     "or \"{%s}\", so that its keys share one slot", i, st, st, st);
            return -1;
        }
        n += (size_t)cfg->workers[i].processes;
    }
    if (n > SL_MAX_CHILDREN) {
        snprintf(err, errlen, "%zu processes in all: at most %d", n, SL_MAX_CHILDREN);
        return -1;
    }
    c = calloc(n + 1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < cfg->nworkers; i++) {
        const struct sl_handler *h = sl__registry_find(p->registry, cfg->workers[i].handler);
        if (h == NULL) {
            snprintf(err, errlen, "workers[%zu].handler: unknown handler \"%s\"", i,
                     cfg->workers[i].handler);
            free(c);
            return -1;
        }
        for (j = 0; j < cfg->workers[i].processes; j++, k++) {
            c[k].cfg = cfg;
            c[k].wc = &cfg->workers[i];
            c[k].h = h;
            sl__consumer_name(c[k].consumer, sizeof(c[k].consumer), p->host, cfg, i, j);
        }
    }
    *out = c;
    *nout = n;
    return 0;
}

/* Returns 1 when another worker entry before or after i uses the same
 * handler name, so slot numbers alone would not keep consumer names of
 * one stream apart... only where the streams are the same. */
int sl__pool_name_taken(const struct sl_config *cfg, size_t i)
{
    size_t j;

    for (j = 0; j < cfg->nworkers; j++)
        if (j != i && strcmp(cfg->workers[j].handler, cfg->workers[i].handler) == 0)
            return 1;
    return 0;
}

/* Assigns shared slots to children, in order. */
void sl__pool_bind_slots(struct sl_pool *p, struct sl_child *c, size_t n, size_t first)
{
    size_t i;

    for (i = 0; i < n; i++)
        c[i].slot = &p->slots[(first + i) % SL_MAX_CHILDREN];
}

/* Applies --workers NAME[:N],... (process counts per handler; a handler
 * not named keeps its count, a handler named but not configured is an
 * error) and --metrics ADDR. Returns 0 or -1 with err. */
int sl__pool_apply_overrides(struct sl_pool *p, struct sl_config *cfg,
                             char *err, size_t errlen)
{
    char *list, *tok, *save = NULL;
    int rc = 0;

    if (p->metrics_override != NULL) {
        free(cfg->metrics_listen);
        cfg->metrics_listen = strcmp(p->metrics_override, "none") == 0 ? NULL :
                              strdup(p->metrics_override);
    }
    if (p->workers_override == NULL)
        return 0;
    list = strdup(p->workers_override);
    if (list == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        long n = 1;
        size_t i;
        int found = 0;

        if (colon != NULL) {
            char *end;
            *colon = '\0';
            errno = 0;
            n = strtol(colon + 1, &end, 10);
            if (errno || *end || end == colon + 1 || n < 0 || n > 256) {
                snprintf(err, errlen, "--workers: \"%s\": expected a count from 0 to 256",
                         colon + 1);
                rc = -1;
                break;
            }
        }
        for (i = 0; i < cfg->nworkers; i++)
            if (strcmp(cfg->workers[i].handler, tok) == 0) {
                cfg->workers[i].processes = (int)n;
                found = 1;
            }
        if (!found) {
            snprintf(err, errlen, "--workers: \"%s\": no worker with that handler in the configuration",
                     tok);
            rc = -1;
            break;
        }
    }
    free(list);
    return rc;
}
