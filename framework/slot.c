/* slot.c -- the supervisor's side of the slot protocol (slot.h): the
 * seqlock's reader and the counters, plus the histogram's bounds that
 * both sides use.
 */
#include <string.h>
#include "slot.h"

/* Upper bounds of the handler-duration histogram, in seconds. */
const double sl__hist_bounds[SL_HIST_N] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10
};

/* Reads a child's slot consistently (seqlock): its current entry, its
 * batch range and their start times. Returns 0, or -1 if it kept
 * changing. */
int sl__slot_read(const struct sl_slot *s, struct sl_slot_view *v)
{
    int tries;

    for (tries = 0; tries < 100; tries++) {
        uint32_t a = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        if (a & 1)
            continue;
        memcpy(v->cur_id, s->cur_id, SL_IDLEN);
        v->cur_started_ms = s->cur_started_ms;
        memcpy(v->first_id, s->first_id, SL_IDLEN);
        memcpy(v->last_id, s->last_id, SL_IDLEN);
        v->batch_started_ms = s->batch_started_ms;
        v->batch_len = s->batch_len;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) == a) {
            v->cur_id[SL_IDLEN - 1] = v->first_id[SL_IDLEN - 1] = v->last_id[SL_IDLEN - 1] = '\0';
            return 0;
        }
    }
    return -1;
}

/* Copies the IDs of the entries in flight (see slot.h). */
int sl__slot_inflight(const struct sl_slot *s, char (*ids)[SL_IDLEN])
{
    int tries;

    for (tries = 0; tries < 100; tries++) {
        uint32_t a = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE), n, i;
        if (a & 1)
            continue;
        n = __atomic_load_n(&s->inflight_n, __ATOMIC_RELAXED);
        if (n > SL_INFLIGHT_MAX)
            n = SL_INFLIGHT_MAX;
        memcpy(ids, s->inflight, (size_t)n * SL_IDLEN);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) == a) {
            for (i = 0; i < n; i++)
                ids[i][SL_IDLEN - 1] = '\0';
            return (int)n;
        }
    }
    return -1;
}

/* Returns counter k, or histogram bucket k when hist (see slot.h). */
uint64_t sl__slot_counter(const struct sl_slot *s, int k, int hist)
{
    return __atomic_load_n(hist ? &s->hist[k] : &s->counters[k], __ATOMIC_RELAXED);
}

/* Tells whether the child's connections are ready (see slot.h). */
int sl__slot_redis_up(const struct sl_slot *s)
{
    return __atomic_load_n(&s->redis_up, __ATOMIC_RELAXED) != 0;
}

/* Empties the slot (see slot.h). */
void sl__slot_reset(struct sl_slot *s)
{
    memset(s, 0, sizeof(*s));
}
