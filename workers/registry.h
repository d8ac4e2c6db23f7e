/* registry.h -- the static table of workers (registry.c). */
#ifndef SL_REGISTRY_H
#define SL_REGISTRY_H

#include "sluice.h"

extern const struct sl_handler *const sl_handlers[];

#endif /* SL_REGISTRY_H */
