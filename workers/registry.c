/* registry.c -- the workers this binary knows, by name. Adding a worker
 * takes one file and one line here. The test handlers (`echo`, `probe`)
 * are listed in tests/handlers/registry.c, for build/sluice-test only. */
#include <stddef.h>
#include "sluice.h"
#include "registry.h"

extern const struct sl_handler user_handler;
extern const struct sl_handler order_handler;
extern const struct sl_handler payment_handler;
extern const struct sl_handler noop_handler;
extern const struct sl_handler webhook_handler;

const struct sl_handler *const sl_handlers[] = {
    &user_handler,
    &order_handler,
    &payment_handler,
    &noop_handler,
    &webhook_handler,
    NULL,
};
