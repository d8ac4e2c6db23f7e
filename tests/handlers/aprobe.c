/* aprobe.c -- the async twin of `probe`, for the integration tests of
 * async handlers (check_async.c). `handle` returns SL_PENDING and a timer
 * on the worker's loop (sl_ctx_base) completes the entry later. The
 * `data` object may hold:
 *   "delay_ms": N       complete N ms after `handle` (default 0)
 *   "first_delay_ms": N the first attempt only (attempts 0) waits N ms instead
 *   "crash": true       abort() the process when the timer fires
 *   "retry": N          complete SL_RETRY while fewer than N attempts failed
 *   "dead": "code"      complete SL_DEAD with that error
 *   "inline": true      complete inside `handle`, before returning SL_PENDING
 *   "effect": true      declare probe's effect (probe_effect.lua: INCR
 *                       probe:count:<id>, RPUSH probe:by:<id>, probe:order)
 *   "trace": true       log "event=aprobe_call id=.. active=N" at the call,
 *                       N counting the entries of this process in flight. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include "sluice.h"
#include "th_lua.h"            /* generated from tests/handlers/lua/ */

/* The same Lua as probe's, listed in this handler's own table (a script
 * is found by pointer identity). */
static const struct sl_script aprobe_effect = {
    .name = "probe_effect",
    .body = test_lua_probe_effect,
};

static const struct sl_script *const aprobe_scripts[] = { &aprobe_effect, NULL };

/* The handler's state: the consumer name and what is in flight. */
struct aprobe {
    const char *consumer;         /* borrowed from the worker info */
    int active;                   /* entries in flight in this process */
    struct pend *head;            /* those entries, for destroy */
};

/* One entry in flight. */
struct pend {
    struct aprobe *ap;            /* owner */
    struct sl_ctx *ctx;           /* the entry's context, until completed */
    struct event *ev;             /* the completion timer (owned) */
    char id[64];                  /* entry ID (copied: msg is borrowed) */
    int crash;                    /* abort() when the timer fires */
    int effect;                   /* declare probe's effect */
    int retry;                    /* retry (1) or not (0) */
    char dead[64];                /* dead-letter code, "" when none */
    struct pend *next, *prev;     /* in ap->head */
};

/* Allocates the state. Returns 0 or SL_ENOMEM. */
static int aprobe_init(const struct sl_worker_info *info, void **privdata)
{
    struct aprobe *ap = calloc(1, sizeof(*ap));

    if (ap == NULL)
        return SL_ENOMEM;
    ap->consumer = info->consumer;
    *privdata = ap;
    return 0;
}

/* Unlinks and frees one entry's state. */
static void pend_free(struct pend *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        p->ap->head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    p->ap->active--;
    if (p->ev != NULL)
        event_free(p->ev);
    free(p);
}

/* Frees the state and any entry still in flight (without completing:
 * the process is exiting, and those entries stay pending). */
static void aprobe_destroy(void *privdata)
{
    struct aprobe *ap = privdata;

    while (ap != NULL && ap->head != NULL)
        pend_free(ap->head);
    free(ap);
}

/* Declares the outcome chosen for p on its context and completes it. */
static void finish(struct pend *p)
{
    struct sl_ctx *ctx = p->ctx;
    enum sl_disposition d = SL_ACK;

    if (p->dead[0] != '\0') {
        d = sl_ctx_fail(ctx, SL_DEAD, p->dead, NULL);
    } else if (p->retry) {
        d = sl_ctx_fail(ctx, SL_RETRY, "aprobe_retry", NULL);
    } else if (p->effect) {
        char k1[128], k2[128];
        const char *keys[] = { k1, k2, "probe:order" };
        const char *args[] = { p->ap->consumer, p->id };

        snprintf(k1, sizeof(k1), "probe:count:%s", p->id);
        snprintf(k2, sizeof(k2), "probe:by:%s", p->id);
        if (sl_ctx_effect(ctx, &aprobe_effect, TEST_LUA_PROBE_EFFECT_NKEYS, keys,
                          TEST_LUA_PROBE_EFFECT_NARGS, args) != 0)
            d = sl_ctx_fail(ctx, SL_RETRY, "aprobe_effect", "cannot declare");
    }
    sl_ctx_complete(ctx, d);
}

/* Timer: the "remote call" answered. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pend *p = arg;

    (void)fd;
    (void)what;
    if (p->crash)
        abort();
    finish(p);
    pend_free(p);
}

/* Starts the entry's timer and returns SL_PENDING. */
static enum sl_disposition aprobe_handle(struct sl_ctx *ctx, const struct sl_msg *msg,
                                         void *privdata)
{
    struct aprobe *ap = privdata;
    struct pend *p;
    json_t *v;
    long long ms = 0;
    struct timeval tv;

    if ((p = calloc(1, sizeof(*p))) == NULL)
        return sl_ctx_fail(ctx, SL_RETRY, "aprobe_oom", NULL);
    p->ap = ap;
    p->ctx = ctx;
    snprintf(p->id, sizeof(p->id), "%s", msg->id);
    p->crash = json_is_true(json_object_get(msg->data, "crash"));
    p->effect = json_is_true(json_object_get(msg->data, "effect"));
    if ((v = json_object_get(msg->data, "retry")) != NULL && json_is_integer(v))
        p->retry = msg->attempts < json_integer_value(v);
    if ((v = json_object_get(msg->data, "dead")) != NULL && json_is_string(v))
        snprintf(p->dead, sizeof(p->dead), "%s", json_string_value(v));
    if ((v = json_object_get(msg->data, "delay_ms")) != NULL && json_is_integer(v))
        ms = json_integer_value(v);
    if ((v = json_object_get(msg->data, "first_delay_ms")) != NULL && json_is_integer(v) &&
        msg->attempts == 0)
        ms = json_integer_value(v);
    p->next = ap->head;
    if (ap->head != NULL)
        ap->head->prev = p;
    ap->head = p;
    ap->active++;
    if (json_is_true(json_object_get(msg->data, "trace"))) {
        char line[400];
        struct timespec ts;
        int n;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        n = snprintf(line, sizeof(line), "event=aprobe_call id=%s consumer=%s pid=%ld "
                     "attempts=%d active=%d mono_ms=%lld\n", msg->id, ap->consumer,
                     (long)getpid(), msg->attempts, ap->active,
                     (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        if (n > 0 && (size_t)n < sizeof(line) && write(STDERR_FILENO, line, (size_t)n) < 0) {
            /* A lost trace line only makes the test that asked for it fail. */
        }
    }
    if (json_is_true(json_object_get(msg->data, "inline"))) {
        finish(p);
        pend_free(p);
        return SL_PENDING;
    }
    p->ev = evtimer_new(sl_ctx_base(ctx), on_timer, p);
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    if (p->ev == NULL || evtimer_add(p->ev, &tv) < 0) {
        pend_free(p);
        return sl_ctx_fail(ctx, SL_RETRY, "aprobe_timer", NULL);
    }
    return SL_PENDING;
}

const struct sl_handler aprobe_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "aprobe",
    .scripts = aprobe_scripts,
    .init = aprobe_init,
    .handle = aprobe_handle,
    .destroy = aprobe_destroy,
};
