/* probe.c -- a handler whose behaviour each entry chooses, for the
 * integration tests of the delivery rules. The `data` object may hold:
 *   "retry": N      return SL_RETRY while fewer than N attempts failed
 *   "sleep_ms": N   block N ms in the handler before deciding
 *   "crash": true   abort() the process (every attempt)
 *   "dead": "code"  return SL_DEAD with that error
 *   "retry_after_ms": N  a retry waits at least N ms (sl_ctx_retry_after)
 *   "effect": true  declare an effect that INCRs probe:count:<id>
 *                   RPUSHes the consumer name to probe:by:<id> and
 *                   the ID to probe:order, so a test sees exactly how
 *                   often, by whom and in which order it was applied;
 *   "effect": "T"   the same with the keys tagged for a Redis Cluster:
 *                   probe:{T}:count:<id>, probe:{T}:by:<id>,
 *                   probe:{T}:order (T the stream's hash tag). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "sluice.h"
#include "th_lua.h"            /* generated from tests/handlers/lua/ */

/* Its KEYS and ARGV: tests/handlers/lua/probe_effect.lua. */
static const struct sl_script probe_effect = {
    .name = "probe_effect",
    .body = test_lua_probe_effect,
};

static const struct sl_script *const probe_scripts[] = { &probe_effect, NULL };

/* Remembers the consumer name for the effect's argument. */
static int probe_init(const struct sl_worker_info *info, void **privdata)
{
    *privdata = (void *)info->consumer;
    return 0;
}

/* Sleeps ms milliseconds, resuming after signals. */
static void sleep_ms(long long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0)
        ;
}

/* Writes the trace line of one call with a single write(2), so lines of
 * concurrent processes sharing the log stay whole. */
static void trace(const struct sl_msg *msg, const char *consumer)
{
    char line[512];
    struct timespec ts;
    int n;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    n = snprintf(line, sizeof(line),
                 "event=probe_call id=%s consumer=%s pid=%ld attempts=%d deliveries=%lld "
                 "mono_ms=%lld\n", msg->id, consumer, (long)getpid(), msg->attempts,
                 msg->deliveries, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    if (n > 0 && (size_t)n < sizeof(line) && write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* A lost trace line only makes the test that asked for it fail. */
    }
}

/* Does what the entry asks. */
static enum sl_disposition probe_handle(struct sl_ctx *ctx, const struct sl_msg *msg,
                                        void *privdata)
{
    json_t *v;

    if (json_is_true(json_object_get(msg->data, "trace")))
        trace(msg, privdata);
    if ((v = json_object_get(msg->data, "sleep_ms")) != NULL && json_is_integer(v))
        sleep_ms(json_integer_value(v));
    if (json_is_true(json_object_get(msg->data, "crash")))
        abort();
    if ((v = json_object_get(msg->data, "dead")) != NULL && json_is_string(v))
        return sl_ctx_fail(ctx, SL_DEAD, json_string_value(v), NULL);
    if ((v = json_object_get(msg->data, "retry")) != NULL && json_is_integer(v) &&
        msg->attempts < json_integer_value(v)) {
        json_t *ra = json_object_get(msg->data, "retry_after_ms");
        if (json_is_integer(ra) && sl_ctx_retry_after(ctx, json_integer_value(ra)) != 0)
            return sl_ctx_fail(ctx, SL_DEAD, "probe_retry_after", "refused");
        return sl_ctx_fail(ctx, SL_RETRY, "probe_retry", "attempt %d", msg->attempts + 1);
    }
    v = json_object_get(msg->data, "effect");
    if (json_is_true(v) || json_is_string(v)) {
        char k1[160], k2[160], k3[160];
        const char *keys[] = { k1, k2, k3 };
        const char *args[] = { privdata, msg->id };
        if (json_is_string(v)) {
            snprintf(k1, sizeof(k1), "probe:{%.40s}:count:%s", json_string_value(v), msg->id);
            snprintf(k2, sizeof(k2), "probe:{%.40s}:by:%s", json_string_value(v), msg->id);
            snprintf(k3, sizeof(k3), "probe:{%.40s}:order", json_string_value(v));
        } else {
            snprintf(k1, sizeof(k1), "probe:count:%s", msg->id);
            snprintf(k2, sizeof(k2), "probe:by:%s", msg->id);
            snprintf(k3, sizeof(k3), "probe:order");
        }
        _Static_assert(sizeof(keys) / sizeof(keys[0]) == TEST_LUA_PROBE_EFFECT_NKEYS &&
                       sizeof(args) / sizeof(args[0]) == TEST_LUA_PROBE_EFFECT_NARGS,
                       "the counts of probe_effect.lua's header");
        if (sl_ctx_effect(ctx, &probe_effect, TEST_LUA_PROBE_EFFECT_NKEYS, keys,
                          TEST_LUA_PROBE_EFFECT_NARGS, args) != 0)
            return sl_ctx_fail(ctx, SL_RETRY, "probe_effect", "cannot declare");
    }
    return SL_ACK;
}

const struct sl_handler probe_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "probe",
    .scripts = probe_scripts,
    .init = probe_init,
    .handle = probe_handle,
};
