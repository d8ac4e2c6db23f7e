/* check_config.c -- unit tests of config.c: the built-in defaults, loading
 * config/sluice.json with every validation message (exact text, line and
 * column included), per-worker overrides and redis:// URLs.
 *
 * Each test writes its configuration to a mkstemp() file, so messages
 * start with that file's name; expect_error() puts it in front of the
 * expected "LINE:COL: KEY.PATH: message" part.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <check.h>

#include "internal.h"

/* ---------------------------------------------------------------------
 * Fixture: a temporary configuration file
 * ------------------------------------------------------------------ */

static char path[64];             /* the current test's file, "" when none */
static char err[1024];            /* the last error message */
static struct sl_config *cfg;     /* the last configuration loaded */

/* Starts each test with no file, no error and no configuration. */
static void setup(void)
{
    path[0] = '\0';
    err[0] = '\0';
    cfg = NULL;
}

/* Removes the test's file and frees its configuration. */
static void teardown(void)
{
    if (path[0] != '\0')
        unlink(path);
    sl__config_free(cfg);
    cfg = NULL;
}

/* Writes `text` to a fresh temporary file whose name goes to `path`. */
static void write_config(const char *text)
{
    size_t len = strlen(text);
    int fd;

    if (path[0] != '\0')
        unlink(path);
    snprintf(path, sizeof(path), "/tmp/sluice-config-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Loads `text` and asserts that it is accepted; the result is in cfg. */
static void expect_ok(const char *text)
{
    write_config(text);
    sl__config_free(cfg);
    cfg = sl__config_load(path, 1, err, sizeof(err));
    ck_assert_msg(cfg != NULL, "unexpected error: %s", err);
}

/* Loads `text` and asserts that it fails with "<file>:<rest>". */
static void expect_error(const char *text, const char *rest)
{
    char want[1024];

    write_config(text);
    sl__config_free(cfg);
    cfg = sl__config_load(path, 1, err, sizeof(err));
    ck_assert_msg(cfg == NULL, "accepted: %s", text);
    snprintf(want, sizeof(want), "%s:%s", path, rest);
    ck_assert_str_eq(err, want);
}

/* Asserts that t holds the built-in defaults of docs/configuration.md. */
static void assert_builtin_tunables(const struct sl_tunables *t)
{
    ck_assert_int_eq(t->batch, 64);
    ck_assert_int_eq(t->block_ms, 2000);
    ck_assert_int_eq(t->reclaim_idle_ms, 30000);
    ck_assert_int_eq(t->reclaim_interval_ms, 5000);
    ck_assert_int_eq(t->max_deliveries, 5);
    ck_assert_int_eq(t->max_fields, 1024);
    ck_assert_int_eq(t->heartbeat_ms, 1000);
    ck_assert_int_eq(t->retry_backoff_ms[0], 1000);
    ck_assert_int_eq(t->retry_backoff_ms[1], 60000);
    ck_assert_int_eq(t->handler_timeout_ms, 60000);
    ck_assert_int_eq(t->shutdown_timeout_ms, 10000);
    ck_assert_int_eq(t->message_ttl_ms, 0);
    ck_assert_int_eq(t->max_payload_bytes, 1048576);
    ck_assert_int_eq(t->trim, SL_TRIM_ACKED);
    ck_assert_int_eq(t->dead_letter_max_len, 0);
    ck_assert_int_eq(t->dead_letter_max_age_ms, 0);
    ck_assert_int_eq(t->concurrency, 1);
}

/* Asserts that c is the built-in configuration apart from its path. */
static void assert_builtin(const struct sl_config *c)
{
    static const char *const want[3][3] = {
        { "user", "users", "user-workers" },
        { "order", "orders", "order-workers" },
        { "payment", "payments", "payment-workers" },
    };
    static const int procs[3] = { 1, 2, 2 };
    size_t i;

    ck_assert_str_eq(c->redis_url, "redis://127.0.0.1:6379/0");
    ck_assert_str_eq(c->redis.host, "127.0.0.1");
    ck_assert_int_eq(c->redis.port, 6379);
    ck_assert_int_eq(c->redis.db, 0);
    ck_assert_str_eq(c->redis.password, "");
    ck_assert_int_eq(c->connect_timeout_ms, 2000);
    ck_assert_int_eq(c->command_timeout_ms, 5000);
    assert_builtin_tunables(&c->defaults);
    ck_assert_uint_eq(c->nworkers, 3);
    for (i = 0; i < 3; i++) {
        ck_assert_str_eq(c->workers[i].handler, want[i][0]);
        ck_assert_str_eq(c->workers[i].stream, want[i][1]);
        ck_assert_str_eq(c->workers[i].group, want[i][2]);
        ck_assert_int_eq(c->workers[i].processes, procs[i]);
        assert_builtin_tunables(&c->workers[i].t);
    }
    ck_assert_str_eq(c->metrics_listen, "127.0.0.1:9121");
}

/* ---------------------------------------------------------------------
 * defaults
 * ------------------------------------------------------------------ */

START_TEST(test_config_builtin_defaults)
{
    cfg = sl__config_default();
    ck_assert_ptr_nonnull(cfg);
    ck_assert_ptr_null(cfg->path);
    assert_builtin(cfg);
}
END_TEST

START_TEST(test_config_missing_file_gives_defaults)
{
    cfg = sl__config_load("/nonexistent/sluice.json", 0, err, sizeof(err));
    ck_assert_ptr_nonnull(cfg);
    ck_assert_ptr_null(cfg->path);
    assert_builtin(cfg);
}
END_TEST

START_TEST(test_config_missing_file_must_exist)
{
    cfg = sl__config_load("/nonexistent/sluice.json", 1, err, sizeof(err));
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err, "/nonexistent/sluice.json: cannot open: No such file or directory");
}
END_TEST

START_TEST(test_config_empty_object_gives_defaults)
{
    expect_ok("{}");
    ck_assert_str_eq(cfg->path, path);
    assert_builtin(cfg);
}
END_TEST

START_TEST(test_config_spec_example_file)
{
    /* The file of docs/configuration.md, comments removed. */
    expect_ok("{\n"
              "  \"redis\":   { \"url\": \"redis://127.0.0.1:6379/0\",\n"
              "               \"connect_timeout_ms\": 2000,\n"
              "               \"command_timeout_ms\": 5000 },\n"
              "  \"defaults\": {\n"
              "    \"batch\": 64, \"block_ms\": 2000, \"reclaim_idle_ms\": 30000,\n"
              "    \"reclaim_interval_ms\": 5000, \"max_deliveries\": 5, \"max_fields\": 1024,\n"
              "    \"heartbeat_ms\": 1000, \"retry_backoff_ms\": [1000, 60000],\n"
              "    \"handler_timeout_ms\": 60000, \"shutdown_timeout_ms\": 10000,\n"
              "    \"message_ttl_ms\": 0, \"max_payload_bytes\": 1048576, \"trim\": \"acked\"\n"
              "  },\n"
              "  \"workers\": [\n"
              "    { \"handler\": \"user\",    \"stream\": \"users\",    \"group\": \"user-workers\",    \"processes\": 1 },\n"
              "    { \"handler\": \"order\",   \"stream\": \"orders\",   \"group\": \"order-workers\",   \"processes\": 2 },\n"
              "    { \"handler\": \"payment\", \"stream\": \"payments\", \"group\": \"payment-workers\", \"processes\": 2 }\n"
              "  ],\n"
              "  \"metrics\": { \"listen\": \"127.0.0.1:9121\" }\n"
              "}\n");
    assert_builtin(cfg);
}
END_TEST

/* ---------------------------------------------------------------------
 * overrides
 * ------------------------------------------------------------------ */

START_TEST(test_config_worker_overrides_defaults)
{
    /* "workers" before "defaults": workers still start from the file's defaults. */
    expect_ok("{\"workers\": [\n"
              "  {\"handler\": \"order\", \"stream\": \"o\", \"group\": \"g\", \"batch\": 7,\n"
              "   \"retry_backoff_ms\": [5, 5], \"trim\": \"none\", \"processes\": 256},\n"
              "  {\"handler\": \"order\", \"stream\": \"o\", \"group\": \"g2\"}\n"
              "],\n"
              "\"defaults\": {\"batch\": 100, \"message_ttl_ms\": 60000, \"shutdown_timeout_ms\": 0}}");
    ck_assert_int_eq(cfg->defaults.batch, 100);
    ck_assert_int_eq(cfg->defaults.block_ms, 2000);
    ck_assert_uint_eq(cfg->nworkers, 2);
    ck_assert_int_eq(cfg->workers[0].t.batch, 7);
    ck_assert_int_eq(cfg->workers[0].t.message_ttl_ms, 60000);
    ck_assert_int_eq(cfg->workers[0].t.shutdown_timeout_ms, 0);
    ck_assert_int_eq(cfg->workers[0].t.retry_backoff_ms[0], 5);
    ck_assert_int_eq(cfg->workers[0].t.retry_backoff_ms[1], 5);
    ck_assert_int_eq(cfg->workers[0].t.trim, SL_TRIM_NONE);
    ck_assert_int_eq(cfg->workers[0].processes, 256);
    ck_assert_int_eq(cfg->workers[1].t.batch, 100);
    ck_assert_int_eq(cfg->workers[1].t.trim, SL_TRIM_ACKED);
    ck_assert_int_eq(cfg->workers[1].t.retry_backoff_ms[0], 1000);
    ck_assert_int_eq(cfg->workers[1].processes, 1);
}
END_TEST

START_TEST(test_config_defaults_reach_builtin_workers)
{
    expect_ok("{\"defaults\": {\"max_deliveries\": 9}}");
    ck_assert_uint_eq(cfg->nworkers, 3);
    ck_assert_int_eq(cfg->workers[2].t.max_deliveries, 9);
    ck_assert_int_eq(cfg->workers[2].processes, 2);
}
END_TEST

/* SLUICE_WEBHOOK_URL beside an order worker adds the webhook worker
 * (after the listed ones, from the merged defaults, concurrency 64,
 * max_deliveries 12); a listed worker of notifications wins; no order
 * worker or no URL adds nothing. */
START_TEST(test_config_webhook_url_adds_webhook_worker)
{
    setenv("SLUICE_WEBHOOK_URL", "http://127.0.0.1:1/h", 1);
    expect_ok("{\"defaults\": {\"batch\": 9, \"trim\": \"none\"}}");
    ck_assert_uint_eq(cfg->nworkers, 4);
    ck_assert_str_eq(cfg->workers[3].handler, "webhook");
    ck_assert_str_eq(cfg->workers[3].stream, "notifications");
    ck_assert_str_eq(cfg->workers[3].group, "webhook-workers");
    ck_assert_int_eq(cfg->workers[3].processes, 1);
    ck_assert_int_eq(cfg->workers[3].t.concurrency, 64);
    ck_assert_int_eq(cfg->workers[3].t.max_deliveries, 12);
    ck_assert_int_eq(cfg->workers[3].t.batch, 9);
    ck_assert_int_eq(cfg->workers[3].t.trim, SL_TRIM_NONE);
    sl__config_free(cfg);
    cfg = sl__config_default();
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(cfg->nworkers, 4);
    ck_assert_int_eq(cfg->workers[3].t.trim, SL_TRIM_ACKED);
    expect_ok("{\"workers\": [{\"handler\": \"order\", \"stream\": \"orders\", \"group\": \"o\"},"
              " {\"handler\": \"webhook\", \"stream\": \"notifications\", \"group\": \"mine\","
              " \"concurrency\": 8}]}");
    ck_assert_uint_eq(cfg->nworkers, 2);
    ck_assert_str_eq(cfg->workers[1].group, "mine");
    ck_assert_int_eq(cfg->workers[1].t.concurrency, 8);
    expect_ok("{\"workers\": [{\"handler\": \"user\", \"stream\": \"users\", \"group\": \"u\"}]}");
    ck_assert_uint_eq(cfg->nworkers, 1);
    setenv("SLUICE_WEBHOOK_URL", "", 1);
    expect_ok("{}");
    ck_assert_uint_eq(cfg->nworkers, 3);
    unsetenv("SLUICE_WEBHOOK_URL");
    expect_ok("{}");
    ck_assert_uint_eq(cfg->nworkers, 3);
}
END_TEST

START_TEST(test_config_redis_and_metrics)
{
    expect_ok("{\"redis\": {\"url\": \"redis://:s3cret@db.local:6380/3\", \"command_timeout_ms\": 1},"
              " \"metrics\": {\"listen\": null}}");
    ck_assert_str_eq(cfg->redis_url, "redis://:s3cret@db.local:6380/3");
    ck_assert_str_eq(cfg->redis.host, "db.local");
    ck_assert_str_eq(cfg->redis.password, "s3cret");
    ck_assert_int_eq(cfg->redis.port, 6380);
    ck_assert_int_eq(cfg->redis.db, 3);
    ck_assert_int_eq(cfg->command_timeout_ms, 1);
    ck_assert_int_eq(cfg->connect_timeout_ms, 2000);
    ck_assert_ptr_null(cfg->metrics_listen);
    expect_ok("{\"metrics\": {\"listen\": \"0.0.0.0:0\"}}");
    ck_assert_str_eq(cfg->metrics_listen, "0.0.0.0:0");
}
END_TEST

/* ---------------------------------------------------------------------
 * errors: syntax and structure
 * ------------------------------------------------------------------ */

START_TEST(test_config_syntax_error)
{
    expect_error("{\"a\": }", "1:7: unexpected token near '}'");
    expect_error("{\n  \"defaults\": {\"batch\": 1,}\n}", "2:27: string or '}' expected near '}'");
}
END_TEST

START_TEST(test_config_duplicate_key)
{
    expect_error("{\"defaults\": {\"batch\": 1, \"batch\": 2}}",
                 "1:33: duplicate object key near '\"batch\"'");
}
END_TEST

START_TEST(test_config_root_not_object)
{
    expect_error("[1]", "1:1: expected an object");
    expect_error("\n  5", "2:3: expected an object");
}
END_TEST

START_TEST(test_config_unknown_keys)
{
    expect_error("{\"defaults\": {\"bacth\": 1}}", "1:15: defaults.bacth: unknown key");
    expect_error("{\n  \"redis\": {},\n  \"worker\": []\n}", "3:3: worker: unknown key");
    expect_error("{\"redis\": {\"host\": \"x\"}}", "1:12: redis.host: unknown key");
    expect_error("{\"metrics\": {\"port\": 1}}", "1:14: metrics.port: unknown key");
    expect_error("{\"workers\": [{\"handler\": \"a\", \"stream\": \"s\", \"group\": \"g\"},\n"
                 "  {\"handler\": \"b\", \"stream\": \"s\", \"group\": \"g\", \"bacth\": 3}]}",
                 "2:49: workers[1].bacth: unknown key");
}
END_TEST

START_TEST(test_config_escaped_key_position)
{
    /* "\u0062atch" is "batch": the scanner decodes keys as jansson does. */
    expect_error("{\n  \"defaults\": {\n    \"\\u0062atch\": 0\n  }\n}",
                 "3:19: defaults.batch: expected an integer from 1 to 10000");
}
END_TEST

START_TEST(test_config_column_counts_characters)
{
    expect_error("{\"workers\": [{\"handler\": \"\xc3\xa9\xe2\x82\xac\", \"stream\": \"s\", "
                 "\"group\": \"g\", \"processes\": 0}]}",
                 "1:74: workers[0].processes: expected a positive integer");
}
END_TEST

START_TEST(test_config_spec_message_example)
{
    expect_error("{\n"
                 "  \"redis\": {\n"
                 "    \"url\": \"redis://127.0.0.1:6379/0\"\n"
                 "  },\n"
                 "  \"defaults\": {\n"
                 "    \"batch\": 64\n"
                 "  },\n"
                 "  \"workers\": [\n"
                 "    { \"handler\": \"user\", \"stream\": \"users\", \"group\": \"user-workers\" },\n"
                 "    {\n"
                 "      \"handler\": \"order\", \"stream\": \"orders\", \"group\": \"order-workers\",\n"
                 "      \"processes\": 0\n"
                 "    }\n"
                 "  ]\n"
                 "}\n",
                 "12:20: workers[1].processes: expected a positive integer");
}
END_TEST

START_TEST(test_config_sections_must_be_objects)
{
    expect_error("{\"defaults\": []}", "1:14: defaults: expected an object");
    expect_error("{\"redis\": \"redis://x\"}", "1:11: redis: expected an object");
    expect_error("{\"metrics\": null}", "1:13: metrics: expected an object");
}
END_TEST

/* ---------------------------------------------------------------------
 * errors: values
 * ------------------------------------------------------------------ */

/* Expects `{"defaults": {<member>}}` to fail at column 15 + the key's
 * length + 3 with "defaults.<key>: <what>". */
static void expect_default_error(const char *key, const char *value, const char *what)
{
    char text[256], rest[256];

    snprintf(text, sizeof(text), "{\"defaults\": {\"%s\": %s}}", key, value);
    snprintf(rest, sizeof(rest), "1:%zu: defaults.%s: %s", strlen(key) + 19, key, what);
    expect_error(text, rest);
}

START_TEST(test_config_integer_ranges)
{
    expect_default_error("batch", "0", "expected an integer from 1 to 10000");
    expect_default_error("batch", "10001", "expected an integer from 1 to 10000");
    expect_default_error("batch", "5.0", "expected an integer from 1 to 10000");
    expect_default_error("batch", "\"64\"", "expected an integer from 1 to 10000");
    expect_default_error("batch", "true", "expected an integer from 1 to 10000");
    expect_default_error("block_ms", "3600001", "expected an integer from 1 to 3600000");
    expect_default_error("reclaim_idle_ms", "0", "expected an integer from 1 to 604800000");
    expect_default_error("reclaim_interval_ms", "-1", "expected an integer from 1 to 604800000");
    expect_default_error("heartbeat_ms", "1e3", "expected an integer from 1 to 604800000");
    expect_default_error("handler_timeout_ms", "null", "expected an integer from 1 to 604800000");
    expect_default_error("max_deliveries", "1001", "expected an integer from 1 to 1000");
    expect_default_error("max_deliveries", "0", "expected an integer from 1 to 1000");
    expect_default_error("max_fields", "0", "expected a positive integer");
    expect_default_error("heartbeat_ms", "604800001", "expected an integer from 1 to 604800000");
    expect_default_error("shutdown_timeout_ms", "-1", "expected an integer from 0 to 604800000");
    expect_default_error("message_ttl_ms", "-5", "expected an integer from 0 to 3153600000000");
    expect_default_error("message_ttl_ms", "0.5", "expected an integer from 0 to 3153600000000");
    expect_default_error("max_payload_bytes", "536870913",
                         "expected an integer from 1 to 536870912");
    expect_default_error("max_payload_bytes", "0", "expected an integer from 1 to 536870912");
}
END_TEST

START_TEST(test_config_integer_bounds_accepted)
{
    expect_ok("{\"defaults\": {\"batch\": 10000, \"block_ms\": 3600000, \"max_deliveries\": 1000,"
              " \"max_payload_bytes\": 536870912, \"shutdown_timeout_ms\": 0, \"max_fields\": 1,"
              " \"reclaim_idle_ms\": 1}}");
    ck_assert_int_eq(cfg->defaults.batch, 10000);
    ck_assert_int_eq(cfg->defaults.block_ms, 3600000);
    ck_assert_int_eq(cfg->defaults.max_deliveries, 1000);
    ck_assert_int_eq(cfg->defaults.max_payload_bytes, 536870912);
    ck_assert_int_eq(cfg->defaults.max_fields, 1);
}
END_TEST

START_TEST(test_config_retry_backoff)
{
    static const char *const bad[] = {
        "[5, 1]", "[0, 1]", "[1]", "[1, 2, 3]", "\"1000\"", "[1.0, 2]", "[1, \"2\"]", "[]", "{}",
        "[1, 604800001]",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_default_error("retry_backoff_ms", bad[i],
                             "expected [first, cap] with 1 <= first <= cap <= 604800000");
    expect_ok("{\"defaults\": {\"retry_backoff_ms\": [1, 1]}}");
    ck_assert_int_eq(cfg->defaults.retry_backoff_ms[0], 1);
    ck_assert_int_eq(cfg->defaults.retry_backoff_ms[1], 1);
}
END_TEST

START_TEST(test_config_trim)
{
    expect_default_error("trim", "\"all\"", "expected \"acked\" or \"none\"");
    expect_default_error("trim", "0", "expected \"acked\" or \"none\"");
    expect_ok("{\"defaults\": {\"trim\": \"none\"}}");
    ck_assert_int_eq(cfg->defaults.trim, SL_TRIM_NONE);
}
END_TEST

/* Dead-letter retention: off by default (see assert_builtin_tunables),
 * a count and an age, per worker too. */
START_TEST(test_config_dead_letter_retention)
{
    expect_default_error("dead_letter_max_len", "-1", "expected an integer >= 0");
    expect_default_error("dead_letter_max_len", "\"10\"", "expected an integer >= 0");
    expect_default_error("dead_letter_max_age_ms", "-1",
                         "expected an integer from 0 to 3153600000000");
    expect_ok("{\"defaults\": {\"dead_letter_max_len\": 1000, "
              "\"dead_letter_max_age_ms\": 604800000},"
              " \"workers\": [{\"handler\": \"user\", \"stream\": \"users\", \"group\": \"g\","
              " \"dead_letter_max_len\": 5}]}");
    ck_assert_int_eq(cfg->defaults.dead_letter_max_len, 1000);
    ck_assert_int_eq(cfg->defaults.dead_letter_max_age_ms, 604800000);
    ck_assert_int_eq(cfg->workers[0].t.dead_letter_max_len, 5);
    ck_assert_int_eq(cfg->workers[0].t.dead_letter_max_age_ms, 604800000);
}
END_TEST

/* concurrency: 1 by default (assert_builtin_tunables), 1 to 256, per
 * worker too. */
START_TEST(test_config_concurrency)
{
    expect_default_error("concurrency", "0", "expected an integer from 1 to 256");
    expect_default_error("concurrency", "257", "expected an integer from 1 to 256");
    expect_ok("{\"defaults\": {\"concurrency\": 8},"
              " \"workers\": [{\"handler\": \"user\", \"stream\": \"users\", \"group\": \"g\","
              " \"concurrency\": 64}]}");
    ck_assert_int_eq(cfg->defaults.concurrency, 8);
    ck_assert_int_eq(cfg->workers[0].t.concurrency, 64);
}
END_TEST

START_TEST(test_config_redis_values)
{
    expect_error("{\"redis\": {\"url\": \"http://x:1\"}}",
                 "1:19: redis.url: redis URL \"http://x:1\": expected redis://[[user]:password@]host:port[/db] (rediss:// for TLS)");
    expect_error("{\"redis\": {\"url\": 6379}}", "1:19: redis.url: expected a string");
    expect_error("{\"redis\": {\"connect_timeout_ms\": 0}}",
                 "1:34: redis.connect_timeout_ms: expected an integer from 1 to 604800000");
    expect_error("{\"redis\": {\"command_timeout_ms\": 5.5}}",
                 "1:34: redis.command_timeout_ms: expected an integer from 1 to 604800000");
}
END_TEST

START_TEST(test_config_metrics_values)
{
    expect_error("{\"metrics\": {\"listen\": 9121}}",
                 "1:24: metrics.listen: expected \"host:port\" or null");
    expect_error("{\"metrics\": {\"listen\": \"localhost\"}}",
                 "1:24: metrics.listen: expected \"host:port\" or null");
    expect_error("{\"metrics\": {\"listen\": \":9121\"}}",
                 "1:24: metrics.listen: expected \"host:port\" or null");
    expect_error("{\"metrics\": {\"listen\": \"h:65536\"}}",
                 "1:24: metrics.listen: expected \"host:port\" or null");
    expect_error("{\"metrics\": {\"dashboard\": \"yes\"}}",
                 "1:27: metrics.dashboard: expected true or false");
}
END_TEST

/* The dashboard on the pool's listener is off unless asked for. */
START_TEST(test_config_metrics_dashboard)
{
    expect_ok("{\"metrics\": {\"listen\": \"127.0.0.1:0\"}}");
    ck_assert_int_eq(cfg->metrics_dashboard, 0);
    expect_ok("{\"metrics\": {\"listen\": \"127.0.0.1:0\", \"dashboard\": true}}");
    ck_assert_int_eq(cfg->metrics_dashboard, 1);
}
END_TEST

/* ---------------------------------------------------------------------
 * errors: workers
 * ------------------------------------------------------------------ */

START_TEST(test_config_workers_array)
{
    expect_error("{\"workers\": []}", "1:13: workers: expected a non-empty array");
    expect_error("{\"workers\": {}}", "1:13: workers: expected a non-empty array");
    expect_error("{\"workers\": [\"user\"]}", "1:14: workers[0]: expected an object");
}
END_TEST

START_TEST(test_config_worker_names)
{
    expect_error("{\"workers\": [{\"handler\": \"\", \"stream\": \"s\", \"group\": \"g\"}]}",
                 "1:26: workers[0].handler: expected a non-empty string");
    expect_error("{\"workers\": [{\"handler\": \"h\", \"stream\": 5, \"group\": \"g\"}]}",
                 "1:41: workers[0].stream: expected a non-empty string");
    expect_error("{\"workers\": [{\"handler\": \"h\", \"stream\": \"s\", \"group\": null}]}",
                 "1:55: workers[0].group: expected a non-empty string");
    expect_error("{\"workers\": [{\"handler\": \"a\", \"stream\": \"s\"}]}",
                 "1:14: workers[0]: missing \"group\" (expected a non-empty string)");
    expect_error("{\"workers\": [{\"stream\": \"s\", \"group\": \"g\"}]}",
                 "1:14: workers[0]: missing \"handler\" (expected a non-empty string)");
}
END_TEST

START_TEST(test_config_worker_processes)
{
    static const char *const head = "{\"workers\": [{\"handler\": \"h\", \"stream\": \"s\", "
                                    "\"group\": \"g\", \"processes\": ";
    char text[256];

    snprintf(text, sizeof(text), "%s0}]}", head);
    expect_error(text, "1:73: workers[0].processes: expected a positive integer");
    snprintf(text, sizeof(text), "%s2.0}]}", head);
    expect_error(text, "1:73: workers[0].processes: expected a positive integer");
    snprintf(text, sizeof(text), "%s\"2\"}]}", head);
    expect_error(text, "1:73: workers[0].processes: expected a positive integer");
    snprintf(text, sizeof(text), "%s257}]}", head);
    expect_error(text, "1:73: workers[0].processes: expected an integer from 1 to 256");
}
END_TEST

START_TEST(test_config_worker_tunable_error)
{
    expect_error("{\"workers\": [{\"handler\": \"h\", \"stream\": \"s\", \"group\": \"g\",\n"
                 "               \"block_ms\": 0}]}",
                 "2:28: workers[0].block_ms: expected an integer from 1 to 3600000");
}
END_TEST

START_TEST(test_config_duplicate_worker)
{
    expect_error("{\"workers\": [\n"
                 "  {\"handler\": \"a\", \"stream\": \"s\", \"group\": \"g\"},\n"
                 "  {\"handler\": \"a\", \"stream\": \"t\", \"group\": \"g\"},\n"
                 "  {\"group\": \"g\", \"stream\": \"s\", \"handler\": \"a\", \"processes\": 3}\n"
                 "]}",
                 "4:3: workers[2]: duplicate worker (same handler, stream and group as workers[0])");
}
END_TEST

/* ---------------------------------------------------------------------
 * URLs
 * ------------------------------------------------------------------ */

START_TEST(test_config_url_good)
{
    struct sl_redis_url u;

    ck_assert_int_eq(sl__url_parse("redis://127.0.0.1:6379/0", &u, err, sizeof(err)), 0);
    ck_assert_str_eq(u.host, "127.0.0.1");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(u.db, 0);
    ck_assert_str_eq(u.password, "");

    ck_assert_int_eq(sl__url_parse("redis://:p@ss:w/rd@cache:7000/15", &u, err, sizeof(err)), 0);
    ck_assert_str_eq(u.password, "p@ss:w/rd");
    ck_assert_str_eq(u.host, "cache");
    ck_assert_int_eq(u.port, 7000);
    ck_assert_int_eq(u.db, 15);

    ck_assert_int_eq(sl__url_parse("redis://cache", &u, err, sizeof(err)), 0);
    ck_assert_str_eq(u.host, "cache");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(u.db, 0);

    ck_assert_int_eq(sl__url_parse("redis://cache:6390", &u, err, sizeof(err)), 0);
    ck_assert_int_eq(u.port, 6390);
    ck_assert_int_eq(u.db, 0);

    ck_assert_int_eq(sl__url_parse("redis://cache/4", &u, err, sizeof(err)), 0);
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(u.db, 4);

    ck_assert_int_eq(sl__url_parse("redis://[::1]:6380/2", &u, err, sizeof(err)), 0);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_int_eq(u.port, 6380);
    ck_assert_int_eq(u.db, 2);

    ck_assert_int_eq(sl__url_parse("redis://h:1/", &u, err, sizeof(err)), 0);
    ck_assert_int_eq(u.port, 1);
    ck_assert_int_eq(u.db, 0);
}
END_TEST

START_TEST(test_config_url_bad)
{
    static const char *const bad[] = {
        "", "http://h:1", "redis:/h:1", "redis://", "redis://h:0", "redis://h:65536", "redis://h:", "redis://h:abc",
        "redis://h:1/x", "redis://h:1/0?timeout=1", "redis://h:1/0/1", "redis://h:-1",
        "redis://[::1", "redis://[]:1", "redis://h h:1", "redis://h:1/99999999999",
    };
    struct sl_redis_url u;
    char want[256];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(sl__url_parse(bad[i], &u, err, sizeof(err)) == -1, "accepted %s", bad[i]);
        snprintf(want, sizeof(want),
                 "redis URL \"%s\": expected redis://[[user]:password@]host:port[/db] (rediss:// for TLS)", bad[i]);
        ck_assert_str_eq(err, want);
    }
    ck_assert_int_eq(sl__url_parse(NULL, &u, err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_config_url_error_hides_password)
{
    struct sl_redis_url u;

    ck_assert_int_eq(sl__url_parse("redis://:hunter2@h:99999", &u, err, sizeof(err)), -1);
    ck_assert_str_eq(err,
                     "redis URL \"redis://:***@h:99999\": expected redis://[[user]:password@]host:port[/db] (rediss:// for TLS)");
    ck_assert_ptr_null(strstr(err, "hunter2"));
}
END_TEST

START_TEST(test_config_set_url)
{
    cfg = sl__config_default();
    ck_assert_ptr_nonnull(cfg);
    ck_assert_int_eq(sl__config_set_url(cfg, "redis://10.0.0.5:7001/1", "--redis",
                                        err, sizeof(err)), 0);
    ck_assert_str_eq(cfg->redis_url, "redis://10.0.0.5:7001/1");
    ck_assert_str_eq(cfg->redis.host, "10.0.0.5");
    ck_assert_int_eq(cfg->redis.port, 7001);
    ck_assert_int_eq(cfg->redis.db, 1);

    ck_assert_int_eq(sl__config_set_url(cfg, "localhost:6379", "SLUICE_REDIS_URL",
                                        err, sizeof(err)), -1);
    ck_assert_str_eq(err, "SLUICE_REDIS_URL: redis URL \"localhost:6379\": "
                          "expected redis://[[user]:password@]host:port[/db] (rediss:// for TLS)");
    /* A failed replacement leaves the previous URL in place. */
    ck_assert_str_eq(cfg->redis_url, "redis://10.0.0.5:7001/1");
    ck_assert_int_eq(cfg->redis.port, 7001);

    ck_assert_int_eq(sl__config_set_url(cfg, "redis://x:1/2x", "--redis", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "--redis: redis URL \"redis://x:1/2x\": "
                          "expected redis://[[user]:password@]host:port[/db] (rediss:// for TLS)");
}
END_TEST


/* ---------------------------------------------------------------------
 * Secrets: no password in any message, whatever the URL's form
 * ------------------------------------------------------------------ */

/* Asserts that parsing `url` fails with a message that shows `shown`
 * (the URL redacted) and `why`, and never the text "hunter2". */
static void expect_url_refused(const char *url, const char *shown, const char *why)
{
    struct sl_redis_url u;

    err[0] = '\0';
    ck_assert_msg(sl__url_parse(url, &u, err, sizeof(err)) == -1, "accepted %s", url);
    ck_assert_msg(strstr(err, "hunter2") == NULL, "password shown: %s", err);
    ck_assert_msg(strstr(err, shown) != NULL, "\"%s\" not in: %s", shown, err);
    ck_assert_msg(strstr(err, why) != NULL, "\"%s\" not in: %s", why, err);
}

START_TEST(test_config_url_errors_never_show_the_password)
{
    expect_url_refused("rediss://:hunter2@h:99999", "\"rediss://:***@h:99999\"",
                       "expected redis://");
    expect_url_refused("REDISS://:hunter2%@h", "\"REDISS://:***@h\"", "bad password");
    expect_url_refused("redis://user:hunter2%0@h:1", "\"redis://user:***@h:1\"", "bad password");
    expect_url_refused("redis://user:hunter2%00@h:1", "\"redis://user:***@h:1\"", "bad password");
    expect_url_refused("redis://us%zr:hunter2@h:1", "\"redis://us%zr:***@h:1\"", "bad user name");
    expect_url_refused("REDIS://:hunter2@h:99999", "\"REDIS://:***@h:99999\"", "expected redis://");
    expect_url_refused("redis://:hunter2@h:1/x", "\"redis://:***@h:1/x\"", "expected redis://");
    expect_url_refused("redis://:hunter2", "\"redis://:***\"", "expected redis://");
    expect_url_refused("redis://:6379", "\"redis://:***\"", "expected redis://");
    expect_url_refused("http://:hunter2@h", "\"http://:***@h\"", "expected redis://");
    expect_url_refused("hunter2@h:1", "\"***@h:1\"", "expected redis://");
    expect_url_refused("redis://:pw@x:hunter2@h:0", "\"redis://:***@h:0\"", "expected redis://");
    expect_url_refused("redis://:hunter2@", "\"redis://:***@\"", "expected redis://");
    {
        char longpw[400];

        memset(longpw, 'p', sizeof(longpw));
        memcpy(longpw, "redis://:hunter2", 16);
        snprintf(longpw + 300, sizeof(longpw) - 300, "@h:1");
        expect_url_refused(longpw, "\"redis://:***@h:1\"", "password longer than 255 bytes");
    }
}
END_TEST

/* rediss:// asks for TLS; an ACL user and its password come before the
 * '@', each percent-decoded; "user@" alone names the user and leaves the
 * password to SLUICE_REDIS_PASSWORD or redis.password_file. */
START_TEST(test_config_url_tls_and_acl_user)
{
    struct sl_redis_url u;

    ck_assert_int_eq(sl__url_parse("rediss://app%40x:p%3Ass%25@cache:6380/2", &u, err,
                                   sizeof(err)), 0);
    ck_assert_int_eq(u.tls, 1);
    ck_assert_str_eq(u.user, "app@x");
    ck_assert_str_eq(u.password, "p:ss%");
    ck_assert_str_eq(u.host, "cache");
    ck_assert_int_eq(u.port, 6380);
    ck_assert_int_eq(u.db, 2);
    ck_assert_int_eq(sl__url_parse("REDISS://cache", &u, err, sizeof(err)), 0);
    ck_assert_int_eq(u.tls, 1);
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(sl__url_parse("redis://sluice@cache:1", &u, err, sizeof(err)), 0);
    ck_assert_int_eq(u.tls, 0);
    ck_assert_str_eq(u.user, "sluice");
    ck_assert_str_eq(u.password, "");
    ck_assert_int_eq(sl__url_parse("redis://:p@ss@cache", &u, err, sizeof(err)), 0);
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "p@ss");
}
END_TEST

START_TEST(test_config_url_scheme_is_case_insensitive)
{
    struct sl_redis_url u;

    ck_assert_int_eq(sl__url_parse("REDIS://:pw@cache:7000/3", &u, err, sizeof(err)), 0);
    ck_assert_str_eq(u.host, "cache");
    ck_assert_str_eq(u.password, "pw");
    ck_assert_int_eq(u.port, 7000);
    ck_assert_int_eq(u.db, 3);
}
END_TEST

START_TEST(test_config_url_error_in_file_and_overrides_hides_password)
{
    expect_error("{\"redis\": {\"url\": \"rediss://:hunter2%@h:1\"}}",
                 "1:19: redis.url: redis URL \"rediss://:***@h:1\": bad password: a NUL byte, "
                 "or a '%' not followed by two hex digits (write '%25' for '%')");
    ck_assert_ptr_null(strstr(err, "hunter2"));
    cfg = sl__config_default();
    ck_assert_ptr_nonnull(cfg);
    ck_assert_int_eq(sl__config_set_url(cfg, "redis://admin:hunter2@h:1/x", "--redis",
                                        err, sizeof(err)), -1);
    ck_assert_ptr_null(strstr(err, "hunter2"));
    ck_assert_ptr_nonnull(strstr(err, "--redis: redis URL \"redis://admin:***@h:1/x\""));
    ck_assert_int_eq(sl__config_set_url(cfg, "REDIS://:hunter2@h:0", "SLUICE_REDIS_URL",
                                        err, sizeof(err)), -1);
    ck_assert_ptr_null(strstr(err, "hunter2"));
}
END_TEST

START_TEST(test_config_url_redact_every_form)
{
    static const char *const cases[][2] = {
        { "redis://:hunter2@h:1/0", "redis://:***@h:1/0" },
        { "REDIS://:hunter2@h", "REDIS://:***@h" },
        { "rediss://:hunter2@h", "rediss://:***@h" },
        { "redis://user:hunter2@h", "redis://user:***@h" },
        { "redis://hunter2@h", "redis://***@h" },
        { "redis://:hun@ter2@h", "redis://:***@h" },
        { "redis://:hunter2", "redis://:***" },
        { "hunter2@h", "***@h" },
        { "redis://h:1/0", "redis://h:1/0" },
        { "redis://[::1]:1", "redis://[::1]:1" },
        { "", "" },
    };
    char buf[64];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl__url_redact(cases[i][0], buf, sizeof(buf));
        ck_assert_str_eq(buf, cases[i][1]);
    }
    /* Cut to the buffer, never past it; control bytes do not reach a
     * terminal. */
    sl__url_redact("redis://:hunter2@a-very-long-host-name", buf, 12);
    ck_assert_str_eq(buf, "redis://:**");
    sl__url_redact("redis://h\033[2J:1", buf, sizeof(buf));
    ck_assert_str_eq(buf, "redis://h?[2J:1");
}
END_TEST

/* ---------------------------------------------------------------------
 * Passwords from a file or the environment
 * ------------------------------------------------------------------ */

START_TEST(test_config_password_sources)
{
    char pwfile[64], pw[256], text[256];
    struct sl_redis_url u;
    int fd;

    snprintf(pwfile, sizeof(pwfile), "/tmp/sluice-pw-XXXXXX");
    fd = mkstemp(pwfile);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "from-file\n", 10), 10);
    close(fd);
    snprintf(text, sizeof(text), "{\"redis\": {\"url\": \"redis://h:1\", \"password_file\": \"%s\"}}",
             pwfile);
    unsetenv("SLUICE_REDIS_PASSWORD");
    expect_ok(text);
    ck_assert_str_eq(cfg->password_file, pwfile);
    /* The file, its final newline removed. */
    ck_assert_int_eq(sl__redis_password(&cfg->redis, cfg->password_file, pw, sizeof(pw),
                                        err, sizeof(err)), 0);
    ck_assert_str_eq(pw, "from-file");
    /* Re-read at each call: a rotated password is used. */
    fd = open(pwfile, O_WRONLY | O_TRUNC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "rotated", 7), 7);
    close(fd);
    ck_assert_int_eq(sl__redis_password(&cfg->redis, cfg->password_file, pw, sizeof(pw),
                                        err, sizeof(err)), 0);
    ck_assert_str_eq(pw, "rotated");
    /* The environment beats the file... */
    setenv("SLUICE_REDIS_PASSWORD", "from-env", 1);
    ck_assert_int_eq(sl__redis_password(&cfg->redis, cfg->password_file, pw, sizeof(pw),
                                        err, sizeof(err)), 0);
    ck_assert_str_eq(pw, "from-env");
    /* ...and a password in the URL beats both. */
    ck_assert_int_eq(sl__url_parse("redis://:from-url@h:1", &u, err, sizeof(err)), 0);
    ck_assert_int_eq(sl__redis_password(&u, cfg->password_file, pw, sizeof(pw),
                                        err, sizeof(err)), 0);
    ck_assert_str_eq(pw, "from-url");
    unsetenv("SLUICE_REDIS_PASSWORD");
    /* A file that went away: an error naming the file, not a password. */
    unlink(pwfile);
    ck_assert_int_eq(sl__redis_password(&cfg->redis, cfg->password_file, pw, sizeof(pw),
                                        err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, pwfile));
    /* At load, an unreadable file is a configuration error. */
    expect_error("{\"redis\": {\"password_file\": \"/nonexistent/pw\"}}",
                 "1:29: redis.password_file: cannot read \"/nonexistent/pw\": "
                 "No such file or directory");
    expect_error("{\"redis\": {\"password_file\": \"\"}}",
                 "1:29: redis.password_file: expected a non-empty string");
}
END_TEST

/* ---------------------------------------------------------------------
 * Limits
 * ------------------------------------------------------------------ */

/* Returns a configuration with one worker whose stream is `slen` bytes
 * of 's' and group `glen` bytes of 'g' (new: free()). */
static char *name_config(size_t slen, size_t glen)
{
    char *s = malloc(slen + 1), *g = malloc(glen + 1), *text = malloc(slen + glen + 200);

    ck_assert(s != NULL && g != NULL && text != NULL);
    memset(s, 's', slen);
    s[slen] = '\0';
    memset(g, 'g', glen);
    g[glen] = '\0';
    sprintf(text, "{\"workers\": [{\"handler\": \"h\", \"stream\": \"%s\", \"group\": \"%s\"}]}", s, g);
    free(s);
    free(g);
    return text;
}

START_TEST(test_config_name_length_limit)
{
    char *text, attempts[600], want[128];

    text = name_config(SL_NAME_MAX, SL_NAME_MAX);
    expect_ok(text);
    free(text);
    ck_assert_uint_eq(strlen(cfg->workers[0].stream), SL_NAME_MAX);
    /* A name at the maximum gives whole keys. */
    ck_assert_int_lt(sl__attempts_key(attempts, sizeof(attempts), cfg->workers[0].stream,
                                      cfg->workers[0].group), SL_KEYLEN);
    text = name_config(SL_NAME_MAX + 1, 1);
    snprintf(want, sizeof(want), "1:41: workers[0].stream: longer than %d bytes", SL_NAME_MAX);
    expect_error(text, want);
    free(text);
    text = name_config(1, SL_NAME_MAX + 1);
    snprintf(want, sizeof(want), "1:55: workers[0].group: longer than %d bytes", SL_NAME_MAX);
    expect_error(text, want);
    free(text);
}
END_TEST

START_TEST(test_config_file_size_limit)
{
    char *text = malloc(SL_CONFIG_MAX + 64), want[256];

    ck_assert_ptr_nonnull(text);
    /* Valid JSON padded with white space past the limit. */
    memset(text, ' ', SL_CONFIG_MAX + 10);
    memcpy(text, "{}", 2);
    text[SL_CONFIG_MAX + 10] = '\0';
    write_config(text);
    free(text);
    cfg = sl__config_load(path, 1, err, sizeof(err));
    ck_assert_ptr_null(cfg);
    snprintf(want, sizeof(want), "%s: larger than %d bytes, the limit of a configuration file",
             path, SL_CONFIG_MAX);
    ck_assert_str_eq(err, want);
    /* A device that never ends fails fast instead of filling memory. */
    cfg = sl__config_load("/dev/zero", 1, err, sizeof(err));
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err, "/dev/zero: larger than 1048576 bytes, the limit of a configuration file");
}
END_TEST

/* Loads a generated configuration of n distinct workers and returns the
 * loader's step count (sl__config_steps). */
static unsigned long load_workers_steps(size_t n)
{
    size_t cap = n * 96 + 64, len = 0, i;
    char *text = malloc(cap);
    unsigned long steps;

    ck_assert_ptr_nonnull(text);
    len += (size_t)snprintf(text + len, cap - len, "{\"workers\": [\n");
    for (i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "{\"handler\": \"h\", \"stream\": \"s%zu\", \"group\": \"g\"}%s\n",
                                i, i + 1 < n ? "," : "");
    snprintf(text + len, cap - len, "]}\n");
    write_config(text);
    free(text);
    sl__config_free(cfg);
    sl__config_steps = 0;
    cfg = sl__config_load(path, 1, err, sizeof(err));
    ck_assert_msg(cfg != NULL, "unexpected error: %s", err);
    ck_assert_uint_eq(cfg->nworkers, n);
    steps = sl__config_steps;
    return steps;
}

START_TEST(test_config_load_is_linear_in_workers)
{
    unsigned long a = load_workers_steps(1000), b = load_workers_steps(4000);

    /* Four times the workers: four times the work (quadratic would be 16). */
    ck_assert_msg(b < 8 * a, "1000 workers: %lu steps, 4000 workers: %lu", a, b);
}
END_TEST

START_TEST(test_config_metrics_address)
{
    ck_assert(sl__host_port_valid("127.0.0.1:9121"));
    ck_assert(sl__host_port_valid("127.0.0.1:0"));
    ck_assert(sl__host_port_valid("[::1]:65535"));
    ck_assert(!sl__host_port_valid("127.0.0.1:82838"));
    ck_assert(!sl__host_port_valid("127.0.0.1:65536"));
    ck_assert(!sl__host_port_valid("127.0.0.1:-1"));
    ck_assert(!sl__host_port_valid("127.0.0.1:"));
    ck_assert(!sl__host_port_valid("127.0.0.1:80x"));
    ck_assert(!sl__host_port_valid(":80"));
    ck_assert(!sl__host_port_valid("localhost"));
    expect_error("{\"metrics\": {\"listen\": \"127.0.0.1:82838\"}}",
                 "1:24: metrics.listen: expected \"host:port\" or null");
}
END_TEST

/* ---------------------------------------------------------------------
 * Suite
 * ------------------------------------------------------------------ */

/* redis.cluster_nodes: seeds kept joined; bad ones and a database other
 * than 0 refused with the key named; absent, standalone (NULL). */
START_TEST(test_config_cluster_nodes)
{
    static const char *const bad[] = {
        "{\"redis\": {\"cluster_nodes\": []}}",
        "{\"redis\": {\"cluster_nodes\": \"127.0.0.1:7000\"}}",
        "{\"redis\": {\"cluster_nodes\": [\"127.0.0.1\"]}}",
        "{\"redis\": {\"cluster_nodes\": [\"a:1,b:2\"]}}",
        "{\"redis\": {\"url\": \"redis://h:1/3\", \"cluster_nodes\": [\"a:1\"]}}",
    };
    size_t i;

    expect_ok("{}");
    ck_assert_ptr_null(cfg->cluster_nodes);
    expect_ok("{\"redis\": {\"url\": \"redis://sluice@h:1\", "
              "\"cluster_nodes\": [\"10.0.0.1:7000\", \"[::1]:7001\", \"redis-2:7002\"]}}");
    ck_assert_str_eq(cfg->cluster_nodes, "10.0.0.1:7000,[::1]:7001,redis-2:7002");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_config(bad[i]);
        sl__config_free(cfg);
        cfg = sl__config_load(path, 1, err, sizeof(err));
        ck_assert_msg(cfg == NULL, "accepted: %s", bad[i]);
        ck_assert_msg(strstr(err, "redis.cluster_nodes") != NULL, "%s: %s", bad[i], err);
    }
}
END_TEST

/* Returns the config suite: defaults, overrides, syntax, values, workers
 * and URLs. New: the runner frees it. */
Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("defaults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_config_builtin_defaults);
    tcase_add_test(tc, test_config_missing_file_gives_defaults);
    tcase_add_test(tc, test_config_missing_file_must_exist);
    tcase_add_test(tc, test_config_empty_object_gives_defaults);
    tcase_add_test(tc, test_config_spec_example_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("overrides");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_config_worker_overrides_defaults);
    tcase_add_test(tc, test_config_defaults_reach_builtin_workers);
    tcase_add_test(tc, test_config_redis_and_metrics);
    suite_add_tcase(s, tc);

    tc = tcase_create("syntax");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_config_syntax_error);
    tcase_add_test(tc, test_config_duplicate_key);
    tcase_add_test(tc, test_config_root_not_object);
    tcase_add_test(tc, test_config_unknown_keys);
    tcase_add_test(tc, test_config_escaped_key_position);
    tcase_add_test(tc, test_config_column_counts_characters);
    tcase_add_test(tc, test_config_spec_message_example);
    tcase_add_test(tc, test_config_sections_must_be_objects);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_config_integer_ranges);
    tcase_add_test(tc, test_config_integer_bounds_accepted);
    tcase_add_test(tc, test_config_retry_backoff);
    tcase_add_test(tc, test_config_trim);
    tcase_add_test(tc, test_config_dead_letter_retention);
    tcase_add_test(tc, test_config_concurrency);
    tcase_add_test(tc, test_config_redis_values);
    tcase_add_test(tc, test_config_metrics_values);
    tcase_add_test(tc, test_config_metrics_dashboard);
    suite_add_tcase(s, tc);

    tc = tcase_create("workers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_config_workers_array);
    tcase_add_test(tc, test_config_worker_names);
    tcase_add_test(tc, test_config_worker_processes);
    tcase_add_test(tc, test_config_worker_tunable_error);
    tcase_add_test(tc, test_config_duplicate_worker);
    suite_add_tcase(s, tc);

    tc = tcase_create("url");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_config_url_good);
    tcase_add_test(tc, test_config_url_bad);
    tcase_add_test(tc, test_config_url_error_hides_password);
    tcase_add_test(tc, test_config_set_url);
    tcase_add_test(tc, test_config_url_errors_never_show_the_password);
    tcase_add_test(tc, test_config_url_scheme_is_case_insensitive);
    tcase_add_test(tc, test_config_url_tls_and_acl_user);
    tcase_add_test(tc, test_config_url_error_in_file_and_overrides_hides_password);
    tcase_add_test(tc, test_config_url_redact_every_form);
    tcase_add_test(tc, test_config_password_sources);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_config_name_length_limit);
    tcase_add_test(tc, test_config_file_size_limit);
    tcase_add_test(tc, test_config_load_is_linear_in_workers);
    tcase_add_test(tc, test_config_metrics_address);
    tcase_add_test(tc, test_config_webhook_url_adds_webhook_worker);
    tcase_add_test(tc, test_config_cluster_nodes);
    suite_add_tcase(s, tc);

    return s;
}
