/* harness.h -- the Check side of sluice's test support library: what
 * server.h offers (Redis server, polling, processes, files), plus
 * synchronous Redis helpers that fail the Check test when Redis does not
 * answer, and SL_TEST_ASSERT_EVENTUALLY. All prefixed sl_test_.
 */
#ifndef SL_TEST_HARNESS_H
#define SL_TEST_HARNESS_H

#include <sys/types.h>
#include <check.h>
#include <hiredis.h>
#include "server.h"

/* Runs a hiredis-format command. Returns a new reply (free it with
 * freeReplyObject()); error replies are returned too. Fails the test when
 * there is no reply at all (connection lost, timeout). */
redisReply *sl_test_cmd(redisContext *c, const char *fmt, ...);

/* Runs a command and returns its integer reply, 0 for nil, or a string or
 * status reply converted with strtoll. Fails the test on an error reply,
 * an array, or no reply. */
long long sl_test_int(redisContext *c, const char *fmt, ...);

/* Runs a command and returns its string or status reply (an integer reply
 * is formatted in decimal) as a new string (free it with free()), or NULL
 * for nil. Fails the test on an error reply, an array, or no reply. */
char *sl_test_str(redisContext *c, const char *fmt, ...);

/* Fails the test unless `expr` becomes true within timeout_ms (scaled);
 * `expr` is evaluated again every SL_TEST_POLL_MS. */
#define SL_TEST_ASSERT_EVENTUALLY(timeout_ms, expr)                          \
    do {                                                                     \
        long long sl_test_dl_ = sl_test_deadline(timeout_ms);                \
        while (!(expr)) {                                                    \
            if (!sl_test_tick(sl_test_dl_))                                  \
                ck_abort_msg("not true within %d ms: %s",                    \
                             (int)(timeout_ms), #expr);                      \
        }                                                                    \
    } while (0)

#endif /* SL_TEST_HARNESS_H */
