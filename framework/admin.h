/* admin.h -- the command line's parsed arguments and the admin
 * subcommands (cli.c, admin.c). */
#ifndef SL_ADMIN_H
#define SL_ADMIN_H

#include "internal.h"

#define SL_MAXPOS 8
#define SL_MAXSTREAMS 64          /* --stream options of `sluice web` */

/* The command line, split (all pointers borrowed from argv). */
struct sl_args {
    const char *pos[SL_MAXPOS];   /* positionals: subcommand first */
    int npos;
    const char *config;           /* -c FILE */
    const char *redis;            /* --redis URL */
    const char *workers;          /* --workers NAME[:N],... */
    const char *metrics;          /* --metrics ADDR */
    const char *idle;             /* --idle MS */
    const char *count;            /* --count N */
    const char *watch;            /* --watch SECONDS */
    const char *after;            /* --after ID (dlq list: the cursor) */
    const char *data;             /* --data JSON (dlq replay: corrected data) */
    const char *code;             /* --code CODE (dlq purge: one error code) */
    const char *older_than;       /* --older-than DURATION (dlq purge) */
    int yes;                      /* --yes (dlq purge without a filter) */
    const char *listen;           /* web: --listen ADDR */
    int allow_writes;             /* web: --allow-writes */
    const char *streams[SL_MAXSTREAMS]; /* web: each --stream S */
    int nstreams;
    int json;                     /* --json */
    int all;                      /* --all */
    int help;                     /* -h, --help */
    int version;                  /* --version */
};

/* Runs pending, stats, workers, dlq or enqueue. registry (borrowed) is
 * the binary's handler table: enqueue and dlq replay --data check an
 * entry's type against the handler the configuration gives its stream.
 * Returns the exit code. */
int sl__admin(const char *cmd, const struct sl_args *a, const struct sl_config *cfg,
              const struct sl_handler *const *registry);

/* sluice stats (stats.c). Returns the exit code. */
int sl__stats(const struct sl_args *a, const struct sl_config *cfg);

/* sluice health (health.c): exit 0 when the local pool is healthy, else
 * 1 with one line saying what is wrong. `metrics` overrides the
 * configuration's metrics.listen ("none" disables it), like run's
 * --metrics. Returns the exit code. */
int sl__health(const struct sl_config *cfg, const char *metrics);

#endif /* SL_ADMIN_H */
