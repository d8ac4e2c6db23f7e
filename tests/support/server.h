/* server.h -- the part of the test support library that needs no Check,
 * so that any test program (the benchmark, the chaos runner, the
 * invariant checker) can use it (server.c):
 *
 *   1. a real redis-server on a free loopback port, in its own mkdtemp
 *      directory, that a test can stop, SIGKILL, restart on the same port
 *      (to reload its AOF), SIGSTOP and SIGCONT;
 *   2. a synchronous hiredis connection to it;
 *   3. polling to a deadline (never a bare sleep);
 *   4. control of the process under test (spawn, wait, signal) and files;
 *   5. the CPU time a process has used, for "does not spin" tests.
 *
 * Every timeout given here is multiplied by the environment variable
 * SLUICE_TEST_SLOW (a positive integer, default 1), so a valgrind run can
 * stretch all of them at once. The client timeouts of sl_test_connect()
 * are the only exception: they bound a round trip to Redis, which
 * valgrind does not slow down.
 *
 * Only PIDs this library started are ever signalled; nothing here looks
 * processes up by name.
 *
 * Check's fork mode: an unchecked fixture starts the server in the runner
 * process and each test runs in a forked child. A test that kills and
 * restarts the server therefore changes its PID in the child's copy of the
 * struct only. The library copes: the server writes <dir>/redis.pid, and
 * sl_test_redis_pid(), sl_test_redis_stop() and friends read it (checking
 * that the process really runs in <dir>), so the next test and the
 * fixture's teardown find the new server.
 */
#ifndef SL_TEST_SERVER_H
#define SL_TEST_SERVER_H

#include <sys/types.h>
#include <hiredis.h>

/* ------------------------------------------------------------------------
 * 1. Redis server control
 * ------------------------------------------------------------------------ */

/* One redis-server started by the harness. Zero it (or let
 * sl_test_redis_start() fill it); all fields are read-only for tests. */
struct sl_test_redis {
    pid_t pid;                    /* server this process started, 0 if none;
                                     see sl_test_redis_pid() in fork mode */
    int port;                     /* loopback TCP port, kept by restart */
    char dir[256];                /* mkdtemp working dir: redis.log,
                                     redis.pid, AOF files */
    char url[128];                /* "redis://127.0.0.1:<port>" */
    char extra[256];              /* extra args given to start, reused by
                                     restart */
    pid_t pgid;                   /* process group every (re)started server
                                     joins: that of the process that called
                                     start, so Check's killpg() of a forked
                                     test does not take a restarted server
                                     with it */
};

/* Starts redis-server (${REDIS_SERVER:-redis-server}, which must exec the
 * server itself) on a free loopback port with a fresh directory, plus
 * `extra_args` split on spaces (may be NULL), and waits up to 10 s for
 * PING. The server logs to <dir>/redis.log; its stdout and stderr (where
 * it reports bad options) go to <dir>/redis.stderr. Returns 0, or -1 after
 * printing both to stderr. Fills *r; r is borrowed. */
int sl_test_redis_start(struct sl_test_redis *r, const char *extra_args);

/* Stops the server if it still runs (SIGTERM), then starts it again on the
 * same port and directory with the same arguments, and waits until it
 * answers PING without LOADING. Returns 0 or -1. */
int sl_test_redis_restart(struct sl_test_redis *r);

/* SIGTERM, up to 5 s of grace, then SIGKILL; reaps our child. Keeps the
 * directory. Safe on a stopped or zeroed struct. */
void sl_test_redis_stop(struct sl_test_redis *r);

/* SIGKILL (no shutdown at all) and waits until the process is gone. Keeps
 * the directory, so sl_test_redis_restart() can reload it. */
void sl_test_redis_kill(struct sl_test_redis *r);

/* sl_test_redis_stop(), then deletes the directory and zeroes *r. */
void sl_test_redis_cleanup(struct sl_test_redis *r);

/* Freezes (SIGSTOP) or thaws (SIGCONT) the server and waits until the
 * kernel reports it stopped or running. Returns 0 or -1. */
int sl_test_redis_sigstop(struct sl_test_redis *r);
int sl_test_redis_sigcont(struct sl_test_redis *r);

/* The PID of the server running now (even if another test process
 * restarted it), or r->pid when that cannot be told, 0 for none. */
pid_t sl_test_redis_pid(const struct sl_test_redis *r);

/* ------------------------------------------------------------------------
 * 2. Synchronous client
 * ------------------------------------------------------------------------ */

/* Connects to r with a 1 s connect and 5 s command timeout. Returns a new
 * context (free it with redisFree()), or NULL when Redis cannot be reached. */
redisContext *sl_test_connect(const struct sl_test_redis *r);

/* The same with explicit timeouts in milliseconds (not scaled). */
redisContext *sl_test_connect_timeout(const struct sl_test_redis *r,
                                      int connect_ms, int command_ms);

/* ------------------------------------------------------------------------
 * 3. Polling to a deadline
 * ------------------------------------------------------------------------ */

#define SL_TEST_POLL_MS 10        /* pause between two polls, milliseconds */

/* SLUICE_TEST_SLOW as a positive integer (1 when unset or invalid). */
int sl_test_slow_factor(void);

/* Milliseconds on the monotonic clock. */
long long sl_test_now_ms(void);

/* A deadline `timeout_ms` (scaled) from now, on the sl_test_now_ms() clock. */
long long sl_test_deadline(int timeout_ms);

/* Returns 0 if `deadline` has passed; otherwise pauses for
 * SL_TEST_POLL_MS (never past the deadline) and returns 1. */
int sl_test_tick(long long deadline);

/* Calls cond(arg) every SL_TEST_POLL_MS until it returns nonzero (returns
 * 1) or timeout_ms (scaled) passes (returns 0). cond is always called at
 * least once, and once more at the deadline. arg is borrowed. */
int sl_test_wait_for(int timeout_ms, int (*cond)(void *arg), void *arg);

/* ------------------------------------------------------------------------
 * 4. Processes and files
 * ------------------------------------------------------------------------ */

/* Starts argv[0] (searched in PATH) with stdin from /dev/null and stdout
 * and stderr appended to `logpath` (created if missing; NULL means
 * /dev/null). When SLUICE_WRAP is set, its space-separated words go
 * before argv (e.g. "valgrind -q --error-exitcode=99"). The child gets
 * SIGKILL if the calling process dies, and exits 127 with a message in the
 * log if exec fails. Returns the PID, or -1. argv and logpath are
 * borrowed. */
pid_t sl_test_spawn(const char *const argv[], const char *logpath);

/* Like sl_test_spawn(), under `prlimit --nofile=nofile` (soft and hard
 * limit). SLUICE_WRAP's words go after prlimit, and when they run
 * valgrind the limit is raised by the descriptors valgrind keeps for
 * itself, so argv sees `nofile` either way. */
pid_t sl_test_spawn_nofile(const char *const argv[], const char *logpath, int nofile);

/* Returns 1 when SLUICE_WRAP runs the processes under test under valgrind
 * (`make valgrind`), for the few checks whose outcome valgrind's own
 * emulation decides. */
int sl_test_wrap_is_valgrind(void);

/* The binary under test: $SLUICE_BIN, or "build/sluice". Borrowed. */
const char *sl_test_bin(void);

/* Waits up to timeout_ms (scaled) for pid to exit. Returns 1 if it has
 * exited, storing the wait status in *status (may be NULL; -1 when pid
 * was not our child, so its status is unknown), else 0. */
int sl_test_wait_exit(pid_t pid, int timeout_ms, int *status);

/* Sends sig to pid. Does nothing when pid <= 0, so an unset PID never
 * turns into "every process in the group". */
void sl_test_kill(pid_t pid, int sig);

/* 1 if pid exists and is not a zombie (a stopped process counts), else 0. */
int sl_test_pid_alive(pid_t pid);

/* Creates /tmp/sluice-test-XXXXXX. Returns the new path (free it with
 * free()), or NULL. */
char *sl_test_tmpdir(void);

/* Deletes path and, if it is a directory, everything below it, without
 * following symlinks. Returns 0 (also when path does not exist) or -1. */
int sl_test_rmtree(const char *path);

/* Writes printf-formatted text to path, replacing it atomically (write to
 * a temporary file, then rename). Returns 0 or -1. */
int sl_test_write_file(const char *path, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Returns the whole file as a new NUL-terminated string (free it with
 * free()), or NULL if it cannot be read. */
char *sl_test_read_file(const char *path);

/* 1 if the file exists and contains needle, else 0. */
int sl_test_file_contains(const char *path, const char *needle);

/* ------------------------------------------------------------------------
 * 5. CPU usage
 * ------------------------------------------------------------------------ */

/* User plus system CPU time pid has used, in milliseconds, from
 * /proc/<pid>/stat; -1 if it cannot be read. */
long long sl_test_cpu_ms(pid_t pid);

#endif /* SL_TEST_SERVER_H */
