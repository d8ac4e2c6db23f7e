/* config.h -- the one writer of a `sluice run` configuration file for
 * tests, the chaos runner and the benchmark (config.c). No Check. */
#ifndef SL_TEST_CONFIG_H
#define SL_TEST_CONFIG_H

/* What goes into the file. Every text member is JSON without its
 * enclosing braces or brackets (a leading comma is ignored), or NULL for
 * none. */
struct sl_test_config {
    const char *url;              /* redis.url */
    const char *redis;            /* more members of "redis" (timeouts, password_file) */
    const char *defaults;         /* members of "defaults": the suite's base */
    const char *overrides;        /* members of "defaults" that replace or join the base */
    const char *workers;          /* the elements of "workers" */
    const char *metrics_listen;   /* metrics.listen, or NULL for null (off) */
};

/* Writes c to path in a fixed layout, so that a test may name positions
 * in it: line 2 `  "redis": {"url": ...}`, line 3 `  "defaults": {...}`
 * (the merged members, on one line), line 4 `  "workers": [...]` (the
 * elements as given, from column 15), line 5 "metrics". Returns 0,
 * or -1 when a member is not valid JSON or the file cannot be written. */
int sl_test_config_write(const char *path, const struct sl_test_config *c);

#endif /* SL_TEST_CONFIG_H */
