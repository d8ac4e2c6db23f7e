/* builtin.c -- the "workers" array of docs/configuration.md, used when no
 * configuration file exists: the project's payment flow. Data only, kept
 * apart so that the configuration loader knows no worker by name. */
#include <stddef.h>
#include "internal.h"

/* The built-in workers, in order. */
const struct sl_builtin_worker sl__builtin_workers[] = {
    { "user",    "users",    "user-workers",    1 },
    { "order",   "orders",   "order-workers",   2 },
    { "payment", "payments", "payment-workers", 2 },
};

/* Entries in sl__builtin_workers. */
const size_t sl__builtin_nworkers = SL_NELEM(sl__builtin_workers);

/* The webhook worker: the order worker adds a `notifications` entry for
 * each final order when SLUICE_WEBHOOK_URL is set, so a pool that runs
 * the order worker with that URL also runs the worker that delivers
 * them, and its group exists from the start (the stream is trimmed like
 * any other). 64 deliveries in flight; 12 attempts on the worker's own
 * retry schedule ride out a long receiver outage. */
const struct sl_builtin_auto sl__builtin_auto[] = {
    { "SLUICE_WEBHOOK_URL", "order", { "webhook", "notifications", "webhook-workers", 1 }, 64, 12 },
};

/* Entries in sl__builtin_auto. */
const size_t sl__builtin_nauto = SL_NELEM(sl__builtin_auto);
