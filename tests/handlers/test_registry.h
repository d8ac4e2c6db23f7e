/* test_registry.h -- the registry of the test binary (registry.c). */
#ifndef SL_TEST_REGISTRY_H
#define SL_TEST_REGISTRY_H

#include "sluice.h"

extern const struct sl_handler *const sl_test_handlers[];

#endif /* SL_TEST_REGISTRY_H */
