/* heartbeat.h -- the heartbeat key, one protocol in one place
 * (heartbeat.c): "sluice:worker:<consumer>", a hash written by the worker
 * process every heartbeat_ms (and kept alive by its supervisor while the
 * process is busy in a handler), expiring after 3 x heartbeat_ms, or
 * deleted by a graceful stop (release.lua, fenced by pid and host); read by
 * the supervisor's start check and janitor, `sluice stats`, `sluice
 * workers` and `sluice health`.
 *
 * Every beat also scores the consumer in the registry "sluice:workers", a
 * sorted set of consumer names by expiry (ms since the epoch, the
 * writer's clock), so that whoever lists the live workers reads that set
 * instead of scanning the keyspace for heartbeat keys: a SCAN walks every
 * key of the database, and blocks Redis while it does, to find a handful.
 * release.lua removes the name with the key; a name whose worker died
 * stays until the supervisor's janitor drops it, SL_HB_STALE_MS after its
 * expiry (readers skip it meanwhile: its key is gone).
 *
 * On a Redis Cluster every key a script touches must share one hash slot,
 * and release.lua takes the heartbeat key and the registry together,
 * beside the worker's stream. So in cluster mode both carry the hash tag
 * of the worker's stream: "sluice:{<tag>}:worker:<consumer>" and one
 * registry per tag, "sluice:{<tag>}:workers" (a stream "orders:{p0}" has
 * the tag "p0"). sl__hb_key_of() and sl__hb_registry() are the one place
 * that names them; standalone names stay as above. */
#ifndef SL_HEARTBEAT_H
#define SL_HEARTBEAT_H

#include <stddef.h>
#include <hiredis.h>
#include "internal.h"

#define SL_HB_PREFIX "sluice:worker:" /* the key is this plus the consumer name */
#define SL_HB_KEYLEN 400          /* room for the prefix and any consumer name sluice makes */
#define SL_HB_REGISTRY "sluice:workers" /* sorted set: consumer name -> expiry, ms */
#define SL_HB_STALE_MS 60000      /* a registry entry this far past its expiry is
                                     dropped: far beyond any TTL, so that a
                                     writer whose clock is behind the reader's
                                     is not dropped while it lives (and it
                                     would be back at its next beat) */

/* The rate samples: "sluice:rate:<stream>:<group>", a stream with one
 * entry per RATE_GAP of the group's own counters (framework/lua/rate.lua),
 * added by the supervisors' housekeeping and read by `sluice stats`. */
#define SL_RATE_PREFIX "sluice:rate:"
#define SL_RATE_GAP_MS 4500       /* no sample when the newest is younger: the
                                     housekeeping period is 5 s */
#define SL_RATE_MAXLEN 800        /* samples kept (MAXLEN ~): over an hour */

/* Writes the rate key of stream and group into buf. Returns the length it
 * needed (cut to fit like snprintf). */
int sl__rate_key(char *buf, size_t size, const char *stream, const char *group);

/* Writes the heartbeat key of `consumer` into buf. Returns the length it
 * needed (cut to fit like snprintf). */
int sl__hb_key(char *buf, size_t size, const char *consumer);

/* Writes the heartbeat key of `consumer`, a worker of `stream`: the
 * standalone name, or with cluster 1 "sluice:{<stream's tag>}:worker:
 * <consumer>". Returns the length it needed (cut to fit like snprintf). */
int sl__hb_key_of(char *buf, size_t size, int cluster, const char *stream, const char *consumer);

/* Writes the registry key of the workers of `stream`: SL_HB_REGISTRY, or
 * with cluster 1 "sluice:{<stream's tag>}:workers" (one per tag: a
 * reader of a cluster walks the registry of each configured stream's
 * tag). Returns the length it needed (cut to fit like snprintf). */
int sl__hb_registry(char *buf, size_t size, int cluster, const char *stream);

/* Returns the consumer name inside a heartbeat key (borrowed from key),
 * or NULL when key is not one. */
const char *sl__hb_consumer(const char *key);

/* The TTL of a heartbeat, ms: three periods, so that one late beat does
 * not make a live worker look dead. */
long long sl__hb_ttl_ms(long long heartbeat_ms);

/* What a heartbeat says. Counters and times are sent as text. */
struct sl_hb {
    char key[SL_HB_KEYLEN];       /* the heartbeat key */
    char registry[SL_HB_KEYLEN];  /* the registry key */
    char pid[24];                 /* process id */
    char started[24];             /* process start, ms since the epoch */
    char beat[24];                /* this beat, ms since the epoch */
    char processed[24];           /* entries decided by the process */
    char failed[24];              /* attempts that failed */
    char ttl[24];                 /* sl__hb_ttl_ms() as text */
    char expiry[24];              /* now + ttl, ms since the epoch, as text */
    char since[24];               /* entry_since: when the entry in hand was taken up, ms since the epoch */
    const char *hset[26];         /* HSET key field value... */
    int nhset;                    /* arguments in hset */
    const char *pexpire[3];       /* PEXPIRE key ttl */
    const char *zadd[4];          /* ZADD sluice:workers expiry consumer */
};

/* Fills b for one beat of `consumer` (pid, host, handler, stream and
 * group borrowed until the commands are sent; cluster 1 names the keys
 * with the stream's hash tag, see above): the HSET, the PEXPIRE and
 * the ZADD into the registry, sent in that order. `full` (the worker's
 * own beat) adds started_at, last_beat, processed and failed; the
 * supervisor's keep-alive sets the identity fields only. */
void sl__hb_fill(struct sl_hb *b, int cluster, const char *consumer, long pid, const char *host,
                 const char *handler, const char *stream, const char *group,
                 long long heartbeat_ms, int full, uint64_t started_ms,
                 uint64_t processed, uint64_t failed);

/* Adds to b's HSET what the process has in hand: "busy" ("1" or "0"),
 * "entry" (the ID whose handler runs, or of the batch in hand; "" when
 * idle) and "entry_since" (when its handler started, ms since the epoch;
 * "0" when idle). `entry` NULL or "" means idle. The worker's own beat
 * runs between batches, so it always says idle; the supervisor's
 * keep-alive beat for a busy child says what the child's slot holds. A
 * beat after the sl__hb_fill() it extends; `entry` is borrowed. */
void sl__hb_entry(struct sl_hb *b, const char *entry, uint64_t since_ms);

/* Sets "busy" (true/false), "entry" (the ID, or null when idle) and
 * "entry_age_ms" (how long it has been in hand, or null) on o from the
 * HMGET replies of busy, entry and entry_since (borrowed; NIL from a
 * beat written before these fields existed reads as idle). The age is
 * taken against this host's clock; a writer's clock ahead shows 0. */
void sl__hb_entry_json(json_t *o, const redisReply *busy, const redisReply *entry,
                       const redisReply *since);

/* Runs one command for sl__hb_walk(): returns the reply (new), or NULL
 * after the runner reported a failure. */
typedef redisReply *sl_hb_run(struct sl_sync *c, int argc, const char **argv, void *arg);

/* Visits one heartbeat: `consumer` (borrowed, len bytes) and the reply
 * to HMGET of the fields asked for (borrowed; may be an error reply).
 * Returns 0 to go on. */
typedef int sl_hb_visit(const char *consumer, size_t len, const redisReply *fields, void *arg);

/* Visits every live heartbeat on c through `run`: reads the registry
 * (ZRANGE), then HMGET of `fields` per name, and visits those whose
 * heartbeat key exists. That is 1 + workers commands, whatever else the
 * database holds. Returns 0; -1 when ZRANGE failed (reported by the
 * runner); -2 when it gave an unexpected reply (not reported). */
int sl__hb_walk(struct sl_sync *c, const char *const *fields, int nfields,
                sl_hb_run *run, sl_hb_visit *visit, void *arg);

/* The same over the registry of the workers of `stream` (sl__hb_registry:
 * with cluster 1, the registry of the stream's hash tag, and heartbeat
 * keys named by sl__hb_key_of). On a cluster, c must reach the master of
 * the stream's slot, and a reader of every worker walks once per distinct
 * tag of the configured streams. sl__hb_walk() is this with cluster 0. */
int sl__hb_walk_of(struct sl_sync *c, int cluster, const char *stream,
                   const char *const *fields, int nfields, sl_hb_run *run, sl_hb_visit *visit,
                   void *arg);

/* Visits every live heartbeat of the workers `cfg` configures, on c:
 * on a single Redis (cfg->cluster_nodes NULL) the one registry, as
 * sl__hb_walk(); on a cluster the registry of each distinct hash tag of
 * the configured streams, once per tag, with every command routed to the
 * master of the key it names (sl__sync_route, safe to resend: reads).
 * A worker that is not configured in cfg is not seen on a cluster, since
 * nothing names its tag. Returns what sl__hb_walk() does; on a cluster
 * the first failure ends the walk. */
int sl__hb_walk_cfg(struct sl_sync *c, const struct sl_config *cfg,
                    const char *const *fields, int nfields, sl_hb_run *run, sl_hb_visit *visit,
                    void *arg);

#endif /* SL_HEARTBEAT_H */
