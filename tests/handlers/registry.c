/* registry.c -- the registry of the test binary (build/sluice-test): the
 * production workers of workers/registry.c plus the handlers only tests
 * use (`echo`; `probe`, which aborts on request; its async twin
 * `aprobe`). The production
 * binary build/sluice never contains them. */
#include <stddef.h>
#include "sluice.h"
#include "test_registry.h"

extern const struct sl_handler user_handler;
extern const struct sl_handler order_handler;
extern const struct sl_handler payment_handler;
extern const struct sl_handler noop_handler;
extern const struct sl_handler webhook_handler;
extern const struct sl_handler echo_handler;
extern const struct sl_handler probe_handler;
extern const struct sl_handler aprobe_handler;

const struct sl_handler *const sl_test_handlers[] = {
    &user_handler,
    &order_handler,
    &payment_handler,
    &noop_handler,
    &webhook_handler,
    &echo_handler,
    &probe_handler,
    &aprobe_handler,
    NULL,
};
