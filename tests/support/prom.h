/* prom.h -- the Prometheus text-format checker of the tests (prom.c). */
#ifndef SL_TEST_PROM_H
#define SL_TEST_PROM_H

#include <stddef.h>

/* Checks that text is a valid exposition (see prom.c for the rules).
 * Returns 0, or -1 with the first problem in why (wl bytes). */
int sl_test_prom_check(const char *text, char *why, size_t wl);

/* Returns the value of the sample `series` (name and label set exactly
 * as written, e.g. sluice_acked_total{worker="noop",...}) in an
 * exposition, or -1 when there is no such sample. */
double sl_test_prom_sample(const char *text, const char *series);

#endif /* SL_TEST_PROM_H */
