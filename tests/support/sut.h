/* sut.h -- the system under test: helpers for a `sluice run` pool that a
 * test or the chaos runner starts, and for its log (the pool's stderr,
 * logfmt lines), shared by tests/integration/check_faults.c,
 * tests/integration/check_flow.c and tests/chaos/chaos.c.
 *
 * None of these fails a Check test by itself: each returns what it found
 * and the caller decides (ck_abort, an anomaly counted, ...).
 */
#ifndef SL_TEST_SUT_H
#define SL_TEST_SUT_H

#include <sys/types.h>
#include <hiredis.h>

/* Spawns `sluice run -c cfgpath` (sl_test_bin()) with its stdout and
 * stderr appended to logpath, without waiting for it. Returns its PID,
 * or -1. */
pid_t sl_test_pool_spawn(const char *cfgpath, const char *logpath);

/* The same with more arguments after `-c cfgpath` (NULL-terminated, at
 * most 16; NULL for none), e.g. { "--redis", url, NULL }. */
pid_t sl_test_pool_spawn_args(const char *cfgpath, const char *logpath,
                              const char *const *extra);

/* Waits up to timeout_ms (times SLUICE_TEST_SLOW) until the log at
 * logpath holds `want` event=running lines in all. Returns 0 then, -1
 * when the pool pid exited first, -2 at the deadline. */
int sl_test_pool_wait_running(pid_t pid, const char *logpath, int want, int timeout_ms);

/* Stops the pool *pid, if one runs (*pid > 0): SIGTERM, up to grace_ms
 * for it to exit, then SIGKILL and up to 5 s more; sets *pid to 0. Its
 * children die with it. Never fails the test. */
void sl_test_pool_kill(pid_t *pid, int grace_ms);

/* Reads the PIDs of pid's children from /proc/<pid>/task/<pid>/children
 * into pids (up to max). Returns how many; 0 when pid <= 0. */
int sl_test_pool_children(pid_t pid, pid_t *pids, int max);

/* Returns how many times needle occurs in the file at path (0 when it
 * cannot be read). */
int sl_test_log_count(const char *path, const char *needle);

/* Prints the last `lines` lines of the file at path to stderr between
 * two marker lines, so that a failure shows what the pool did. */
void sl_test_log_tail(const char *path, int lines);

/* Returns the value after `name` in a flat name/value array reply (as
 * XINFO gives), or NULL (also when r is NULL or not an array). */
const redisReply *sl_test_kv(const redisReply *r, const char *name);

/* The one quiescence rule of the tests: in one atomic snapshot (MULTI,
 * XINFO STREAM and XINFO GROUPS of each stream, EXEC), every group of
 * every stream has nothing pending and has been delivered its stream's
 * last entry. Effects are atomic with acks, so nothing is in flight then.
 * A stream that does not exist or has no group is not quiet when
 * `require_group` (every stream must be consumed), and ignored otherwise.
 * Returns the number of streams and groups that are not quiet (0: quiet),
 * each named on a line of report (len bytes, may be NULL), or -1 when
 * Redis could not be asked. */
int sl_test_unquiet(redisContext *c, const char *const *streams, size_t n, int require_group,
                    char *report, size_t len);

/* users, orders and payments: the streams of the payment flow. */
extern const char *const sl_test_flow_streams[3];

/* Returns 1 when pid runs under a memory checker (ASan, valgrind, or
 * SLUICE_WRAP set): its rates and memory say nothing of sluice's own. */
int sl_test_instrumented(pid_t pid);

#endif
