/* registry.c -- the workers this binary knows, by name. Adding a worker
 * takes one file and one line here. */
#include <stddef.h>
#include "sluice.h"
#include "registry.h"

extern const struct sl_handler user_handler;
extern const struct sl_handler order_handler;
extern const struct sl_handler payment_handler;
extern const struct sl_handler noop_handler;
extern const struct sl_handler echo_handler;
extern const struct sl_handler probe_handler;

const struct sl_handler *const sl_handlers[] = {
    &user_handler,
    &order_handler,
    &payment_handler,
    &noop_handler,
    &echo_handler,
    &probe_handler,
    NULL,
};
