/* slot.h -- the slot a worker process shares with its supervisor: one
 * protocol in one place. The writer side (the worker, the only writer of
 * its slot) is inline here, since it runs per entry; the reader side (the
 * supervisor: lease renewal, handler timeouts, the entry a crashed child
 * held, /metrics) is slot.c.
 */
#ifndef SL_SLOT_H
#define SL_SLOT_H

#include <stdint.h>
#include <string.h>
#include "internal.h"

/* One per child, in a MAP_SHARED mapping made before fork. The child is
 * the only writer; the supervisor reads it to renew leases, enforce
 * handler_timeout_ms, learn which entry a crashed child held, and serve
 * /metrics. Strings are guarded by a sequence counter (odd while the
 * child writes); counters are single-writer and read with relaxed atomics. */

#define SL_IDLEN 48               /* room for "18446744073709551615-18446744073709551615" */
_Static_assert(SL_IDLEN == SL_IDLEN_CTX, "an in-flight context's ID fits a slot's");
#define SL_HIST_N 12              /* handler-duration histogram buckets */

extern const double sl__hist_bounds[SL_HIST_N]; /* upper bounds, seconds */

enum sl_counter {
    SL_C_PROCESSED,               /* entries whose fate was decided */
    SL_C_ACKED,                   /* acked, with or without effects */
    SL_C_RETRIED,                 /* left pending for a retry */
    SL_C_DEAD,                    /* dead-lettered */
    SL_C_FAILED,                  /* retried + dead: attempts that failed */
    SL_C_RECLAIMED,               /* taken from another consumer */
    SL_C_DELETED,                 /* pending entries whose data was gone: acked */
    SL_C_DISCARDED,               /* commits refused by the ownership fence */
    SL_C_RECONNECTS,              /* Redis connections re-established */
    SL_C_HANDLER_US,              /* total handler time, microseconds */
    SL_C_WAITS,                   /* WAITs sent after a batch's commits (wait_replicas) */
    SL_C_WAIT_SHORT,              /* of those, answered by fewer replicas than asked */
    SL_NCOUNTERS
};

struct sl_slot {
    uint32_t seq;                 /* even: stable; odd: child is writing the strings */
    int32_t pid;                  /* child pid, 0 when none */
    char cur_id[SL_IDLEN];        /* entry whose handler runs now, "" when none */
    uint64_t cur_started_ms;      /* sl__now_ms() when that handler started */
    char first_id[SL_IDLEN];      /* lowest ID of the batch in hand, "" when none */
    char last_id[SL_IDLEN];       /* highest ID of the batch in hand */
    uint64_t batch_started_ms;    /* sl__now_ms() when the batch was received */
    uint32_t batch_len;           /* entries in the batch in hand */
    int32_t redis_up;             /* 1 while the child's connections are ready */
    uint64_t counters[SL_NCOUNTERS]; /* enum sl_counter */
    uint64_t hist[SL_HIST_N + 1]; /* handler durations per bucket, last = +Inf */
    /* Async handlers (worker.c). */
    uint64_t loop_ms;             /* sl__now_ms() of the loop's last in-flight tick, 0 before the first */
    int32_t serial;               /* set by the supervisor: recover own entries one at a time
                                     (suspects of a crash); the child clears it once running */
    uint32_t inflight_n;          /* async entries in flight (written under seq) */
    char inflight[SL_INFLIGHT_MAX][SL_IDLEN]; /* their IDs, first inflight_n used (under seq) */
};

/* A consistent copy of the strings of a child's slot. */
struct sl_slot_view {
    char cur_id[SL_IDLEN];        /* entry whose handler runs, "" when none */
    uint64_t cur_started_ms;      /* when that handler started (monotonic ms) */
    char first_id[SL_IDLEN];      /* batch in hand: lowest ID, "" when none */
    char last_id[SL_IDLEN];       /* batch in hand: highest ID */
    uint64_t batch_started_ms;    /* when the batch arrived (monotonic ms) */
    uint32_t batch_len;           /* entries in the batch */
};

/* Reads s's strings consistently (the seqlock's reader). Returns 0, or
 * -1 if they kept changing. (slot.c) */
int sl__slot_read(const struct sl_slot *s, struct sl_slot_view *v);

/* Returns the sum of counter k (hist 0) or histogram bucket k (hist 1)
 * of s, read with relaxed atomics. (slot.c) */
uint64_t sl__slot_counter(const struct sl_slot *s, int k, int hist);

/* Tells whether the child said its connections are ready. (slot.c) */
int sl__slot_redis_up(const struct sl_slot *s);

/* Copies the IDs of the async entries in flight into ids (room for
 * SL_INFLIGHT_MAX) consistently. Returns their number, or -1 if they
 * kept changing. (slot.c) */
int sl__slot_inflight(const struct sl_slot *s, char (*ids)[SL_IDLEN]);

/* Empties the slot for a new process (the supervisor, before fork, when
 * no process writes it). (slot.c) */
void sl__slot_reset(struct sl_slot *s);

/* ---------------------------------------------------------------------
 * The writer's side (the worker process)
 * ------------------------------------------------------------------ */

/* Adds n to a counter of the slot. The process is its only writer, so an
 * atomic load and store (the supervisor never reads a torn value) is
 * enough: no locked read-modify-write on the per-entry path. */
static inline void sl__slot_add(uint64_t *c, uint64_t n)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* Adds n to counter k. */
static inline void sl__slot_count(struct sl_slot *s, enum sl_counter k, uint64_t n)
{
    sl__slot_add(&s->counters[k], n);
}

/* Records one handler duration of us microseconds: its total and its
 * histogram bucket. */
static inline void sl__slot_observe(struct sl_slot *s, uint64_t us)
{
    int i;

    sl__slot_count(s, SL_C_HANDLER_US, us);
    for (i = 0; i < SL_HIST_N; i++)
        if ((double)us / 1e6 <= sl__hist_bounds[i])
            break;
    sl__slot_add(&s->hist[i], 1);
}

/* Says whether the process's connections are ready. */
static inline void sl__slot_set_redis_up(struct sl_slot *s, int up)
{
    __atomic_store_n(&s->redis_up, up, __ATOMIC_RELAXED);
}

/* Begins a write of the slot's strings (seq becomes odd). Single writer:
 * a store, then a release fence, so that the strings written next cannot
 * be seen before the odd value (on x86 neither costs a locked
 * instruction). */
static inline void sl__slot_begin(struct sl_slot *s)
{
    __atomic_store_n(&s->seq, __atomic_load_n(&s->seq, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

/* Ends a write of the slot's strings (seq becomes even). */
static inline void sl__slot_end(struct sl_slot *s)
{
    __atomic_store_n(&s->seq, __atomic_load_n(&s->seq, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELEASE);
}

/* Copies len bytes of an ID into a slot field, cut to fit. Call between
 * sl__slot_begin() and sl__slot_end(). */
static inline void sl__slot_copy_id(char *dst, const char *id, size_t len)
{
    size_t n = len < SL_IDLEN - 1 ? len : SL_IDLEN - 1;

    memcpy(dst, id, n);
    dst[n] = '\0';
}

/* Adds an async entry to the list in flight (the supervisor reads it
 * after a crash to know which entries the process held). */
static inline void sl__slot_inflight_add(struct sl_slot *s, const char *id)
{
    uint32_t n = __atomic_load_n(&s->inflight_n, __ATOMIC_RELAXED);

    if (n >= SL_INFLIGHT_MAX)
        return;
    sl__slot_begin(s);
    sl__slot_copy_id(s->inflight[n], id, strlen(id));
    __atomic_store_n(&s->inflight_n, n + 1, __ATOMIC_RELAXED);
    sl__slot_end(s);
}

/* Removes an async entry from the list in flight: the last one moves
 * into its place. */
static inline void sl__slot_inflight_del(struct sl_slot *s, const char *id)
{
    uint32_t n = __atomic_load_n(&s->inflight_n, __ATOMIC_RELAXED), i;

    for (i = 0; i < n; i++)
        if (strcmp(s->inflight[i], id) == 0)
            break;
    if (i == n)
        return;
    sl__slot_begin(s);
    if (i != n - 1)
        memcpy(s->inflight[i], s->inflight[n - 1], SL_IDLEN);
    __atomic_store_n(&s->inflight_n, n - 1, __ATOMIC_RELAXED);
    sl__slot_end(s);
}

#endif /* SL_SLOT_H */
