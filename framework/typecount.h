/* typecount.h -- the per-type counters of one stream and group, one
 * protocol in one place (typecount.c): "sluice:count:<stream>:<group>",
 * a hash of "in:<type>" (entries of that type the group read for the
 * first time) and "done:<type>" (entries of that type a worker decided
 * for good: acked or dead-lettered), added to by the workers with
 * HINCRBY, batched: a process adds up its counts in memory and sends
 * them at most every SL_TC_FLUSH_MS (and at each heartbeat), so the
 * increments cost a few commands a second per type, not one per entry.
 *
 * The supervisors' housekeeping copies the hash, in the same script and
 * under the same ID as each rate sample (rate.lua), into the stream
 * "sluice:rate:<stream>:<group>:types", whose entries `sluice stats`
 * reads for λ and μ per type. The rate samples' own format is left as it
 * is: another reader relies on it.
 *
 * What the counts are, honestly: an entry counted done whose commit was
 * then lost (a reset, the ownership fence) is counted again when it is
 * handled again; a retry that the commit script turns into a dead letter
 * (attempts used up) is not counted done; counts not yet sent when a
 * process dies (at most SL_TC_FLUSH_MS of them) are lost. Rates over the
 * 60 s window of `stats` hardly notice. */
#ifndef SL_TYPECOUNT_H
#define SL_TYPECOUNT_H

#include <stdint.h>
#include <hiredis.h>
#include "internal.h"

struct sl_conn;

#define SL_TC_PREFIX "sluice:count:" /* the hash is this plus <stream>:<group> */
#define SL_TC_TYPES_SUFFIX ":types" /* the rate key plus this: the per-type samples */
#define SL_TC_MAX 16              /* types one process counts by name; more go to SL_TC_OTHER */
#define SL_TC_NAMELEN 64          /* a longer type counts as SL_TC_OTHER */
#define SL_TC_OTHER "(other)"     /* the type name of everything beyond those bounds */
#define SL_TC_NONE "(none)"       /* the type name of an entry without a type field */
#define SL_TC_FLUSH_MS 100        /* counts are sent at most this often */

/* One process's counts not yet sent. The names stay once taken (up to
 * SL_TC_MAX), so the hash has a bounded number of fields per process
 * whatever types producers write. */
struct sl_typecount {
    char key[SL_KEYLEN];          /* sluice:count:<stream>:<group> */
    int n;                        /* names in use */
    uint64_t flushed_ms;          /* sl__now_ms() of the last send */
    struct sl_tc_type {
        char name[SL_TC_NAMELEN + 8]; /* the type */
        long long in;             /* first reads not yet sent */
        long long done;           /* final decisions not yet sent */
    } t[SL_TC_MAX + 1];           /* the last one is SL_TC_OTHER */
};

/* Writes "sluice:count:<stream>:<group>" into buf. Returns the length it
 * needed (cut to fit like snprintf). */
int sl__tc_key(char *buf, size_t size, const char *stream, const char *group);

/* Writes "sluice:rate:<stream>:<group>:types" into buf. Returns the
 * length it needed (cut to fit like snprintf). */
int sl__tc_types_key(char *buf, size_t size, const char *stream, const char *group);

/* Empties tc for stream and group. */
void sl__tc_init(struct sl_typecount *tc, const char *stream, const char *group);

/* Counts one entry, of the type in its flat field reply `fields`
 * (borrowed): `in` when the group read it for the first time, `done`
 * when it was decided for good. */
void sl__tc_add(struct sl_typecount *tc, const redisReply *fields, int in, int done);

/* Counts one entry of `type` ("" or NULL: an entry without one) done
 * later than it was read: an async handler's entry, done when it
 * completes rather than when its handler returned SL_PENDING. */
void sl__tc_done(struct sl_typecount *tc, const char *type);

/* Sends what tc holds on c (one HINCRBY per counter that moved, replies
 * ignored: a lost increment is a count less) when `force` or when the
 * last send is SL_TC_FLUSH_MS old, and forgets it. */
void sl__tc_flush(struct sl_typecount *tc, struct sl_conn *c, int force);

#endif /* SL_TYPECOUNT_H */
