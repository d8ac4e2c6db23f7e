/* check_durability.c -- wait_replicas: a worker that WAITs for replicas
 * after each batch's commits, on the connection of those commits, and
 * counts the WAITs answered by fewer replicas than it asked for. On a
 * standalone master with one replica started here (replicaof), then with
 * that replica stopped.
 *
 * The shared helpers and fixtures are ops.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <hiredis.h>
#include <jansson.h>

#include "sluice.h"
#include "harness.h"
#include "ops.h"
#include "sut.h"

/* 1 when the master of the suite (rc) counts `want` replicas online. */
static int replicas_online(long long want)
{
    char *info = sl_test_str(rc, "INFO replication");
    char needle[64];
    int ok;

    snprintf(needle, sizeof(needle), "connected_slaves:%lld\r\n", want);
    ok = info != NULL && strstr(info, needle) != NULL
         && (want == 0 || strstr(info, "state=online") != NULL);
    free(info);
    return ok;
}

/* With wait_replicas 1 and a replica in sync, every batch's WAIT is
 * answered by the replica (sluice_wait_total moves, the short counter
 * stays 0: the timeout is a minute, so only a replica that stops
 * answering could make it short); a worker with the default (0) sends no
 * WAIT. Then, with the replica stopped and a pool whose timeout is
 * 300 ms, the WAITs end with 0 replicas: counted as short, and the
 * entries are still acknowledged. */
START_TEST(test_durability_wait_replicas)
{
    struct sl_test_redis rep;
    char args[64];
    struct pool p;
    int i;

    memset(&rep, 0, sizeof(rep));
    snprintf(args, sizeof(args), "--replicaof 127.0.0.1 %d", srv.port);
    ck_assert_int_eq(sl_test_redis_start(&rep, args), 0);
    SL_TEST_ASSERT_EVENTUALLY(20000, replicas_online(1));

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"dw\", \"group\": \"g\", "
                   "\"wait_replicas\": 1, \"wait_timeout_ms\": 60000},"
                   "{\"handler\": \"noop\", \"stream\": \"dn\", \"group\": \"g\"}", "", 1, 2);
    for (i = 0; i < 20; i++) {
        freeReplyObject(sl_test_cmd(rc, "XADD dw * type t data {}"));
        freeReplyObject(sl_test_cmd(rc, "XADD dn * type t data {}"));
    }
    SL_TEST_ASSERT_EVENTUALLY(10000, scrape_value(&p, "sluice_acked_total", "noop", "dw", "g") == 20
                                     && scrape_value(&p, "sluice_acked_total", "noop", "dn", "g") == 20);
    ck_assert(scrape_value(&p, "sluice_wait_total", "noop", "dw", "g") >= 1);
    ck_assert(scrape_value(&p, "sluice_wait_short_total", "noop", "dw", "g") == 0);
    ck_assert(scrape_value(&p, "sluice_wait_total", "noop", "dn", "g") == 0);
    ck_assert(scrape_value(&p, "sluice_wait_short_total", "noop", "dn", "g") == 0);
    {
        char *text = scrape(&p);

        assert_exposition(text);
        free(text);
    }
    pool_stop(&p);
    unlink(p.log);              /* the next pool's lines only */

    sl_test_redis_stop(&rep);
    SL_TEST_ASSERT_EVENTUALLY(20000, replicas_online(0));
    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"dw\", \"group\": \"g\", "
                   "\"wait_replicas\": 1, \"wait_timeout_ms\": 300}", "", 1, 1);
    for (i = 0; i < 5; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD dw * type t data {}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, scrape_value(&p, "sluice_acked_total", "noop", "dw", "g") == 5);
    SL_TEST_ASSERT_EVENTUALLY(5000, scrape_value(&p, "sluice_wait_short_total", "noop", "dw", "g") >= 1);
    ck_assert(scrape_value(&p, "sluice_wait_short_total", "noop", "dw", "g")
              <= scrape_value(&p, "sluice_wait_total", "noop", "dw", "g"));
    ck_assert_int_eq(group_backlog("dw", "g"), 0);
    pool_stop(&p);
    sl_test_redis_cleanup(&rep);
}
END_TEST

/* A wait_timeout_ms out of range is refused with the configuration. */
START_TEST(test_durability_config_range)
{
    char cfg[1024];
    const char *argv[] = { sl_test_bin(), "workers", "-c", cfg, NULL };
    struct out o;

    write_config(cfg, sizeof(cfg), "bad", "{\"handler\": \"noop\", \"stream\": \"dw\", "
                 "\"group\": \"g\", \"wait_replicas\": 1, \"wait_timeout_ms\": 0}", "", 0);
    o = run(argv);
    ck_assert_msg(o.code == 2 && strstr(o.err, "wait_timeout_ms") != NULL,
                  "exit %d: %s", o.code, o.err);
    out_free(&o);
}
END_TEST

/* The suite: one server per TCase, a replica started by the test. */
Suite *durability_suite(void)
{
    Suite *s = suite_create("durability");
    TCase *tc = ops_server_case(s, "durability", 90);

    tcase_add_test(tc, test_durability_wait_replicas);
    tcase_add_test(tc, test_durability_config_range);
    return s;
}
