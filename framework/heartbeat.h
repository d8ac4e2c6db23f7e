/* heartbeat.h -- the heartbeat key, one protocol in one place
 * (heartbeat.c): "sluice:worker:<consumer>", a hash written by the worker
 * process every heartbeat_ms (and kept alive by its supervisor while the
 * process is busy in a handler), expiring after 3 x heartbeat_ms, or
 * deleted by a graceful stop (release.lua, fenced by pid and host); read by
 * the supervisor's start check and janitor, `sluice stats`, `sluice
 * workers` and `sluice health`. */
#ifndef SL_HEARTBEAT_H
#define SL_HEARTBEAT_H

#include <stddef.h>
#include <hiredis.h>
#include "internal.h"

#define SL_HB_PREFIX "sluice:worker:" /* the key is this plus the consumer name */
#define SL_HB_KEYLEN 400          /* room for the prefix and any consumer name sluice makes */

/* Writes the heartbeat key of `consumer` into buf. Returns the length it
 * needed (cut to fit like snprintf). */
int sl__hb_key(char *buf, size_t size, const char *consumer);

/* Returns the consumer name inside a heartbeat key (borrowed from key),
 * or NULL when key is not one. */
const char *sl__hb_consumer(const char *key);

/* The TTL of a heartbeat, ms: three periods, so that one late beat does
 * not make a live worker look dead. */
long long sl__hb_ttl_ms(long long heartbeat_ms);

/* What a heartbeat says. Counters and times are sent as text. */
struct sl_hb {
    char key[SL_HB_KEYLEN];       /* the heartbeat key */
    char pid[24];                 /* process id */
    char started[24];             /* process start, ms since the epoch */
    char beat[24];                /* this beat, ms since the epoch */
    char processed[24];           /* entries decided by the process */
    char failed[24];              /* attempts that failed */
    char ttl[24];                 /* sl__hb_ttl_ms() as text */
    const char *hset[20];         /* HSET key field value... */
    int nhset;                    /* arguments in hset */
    const char *pexpire[3];       /* PEXPIRE key ttl */
};

/* Fills b for one beat of `consumer` (pid, host, handler, stream and
 * group borrowed until the commands are sent). `full` (the worker's own
 * beat) adds started_at, last_beat, processed and failed; the
 * supervisor's keep-alive sets the identity fields only. */
void sl__hb_fill(struct sl_hb *b, const char *consumer, long pid, const char *host,
                 const char *handler, const char *stream, const char *group,
                 long long heartbeat_ms, int full, uint64_t started_ms,
                 uint64_t processed, uint64_t failed);

/* Runs one command for sl__hb_scan(): returns the reply (new), or NULL
 * after the runner reported a failure. */
typedef redisReply *sl_hb_run(struct sl_sync *c, int argc, const char **argv, void *arg);

/* Visits one heartbeat: `consumer` (borrowed, len bytes) and the reply
 * to HMGET of the fields asked for (borrowed; may be an error reply).
 * Returns 0 to go on. */
typedef int sl_hb_visit(const char *consumer, size_t len, const redisReply *fields, void *arg);

/* Visits every heartbeat (SCAN MATCH, then HMGET of `fields` per key)
 * on c through `run`. Returns 0; -1 when a SCAN failed (reported by the
 * runner); -2 when SCAN gave an unexpected reply (not reported: a cursor
 * that cannot be read would scan for ever, so the walk stops). */
int sl__hb_scan(struct sl_sync *c, const char *const *fields, int nfields,
                sl_hb_run *run, sl_hb_visit *visit, void *arg);

#endif /* SL_HEARTBEAT_H */
