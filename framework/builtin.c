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
