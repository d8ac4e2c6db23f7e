/* proxy.h -- a loopback TCP proxy between the pool under test and Redis,
 * for injecting network faults (tests/integration/check_faults.c and
 * tests/chaos/chaos.c).
 *
 * The proxy is a forked poll() forwarder: sl_test_proxy_start() binds a
 * free loopback port (before the fork, so the port is known and taken)
 * and forwards every connection made to it to 127.0.0.1:<target>. The
 * test steers it with one command byte at a time, each acknowledged by
 * the proxy once it is in effect:
 *
 *   SL_TEST_PROXY_PASS     forward everything (the initial mode);
 *   SL_TEST_PROXY_HOLE     black hole: no byte moves, no connection is
 *                          accepted, every socket stays open;
 *   SL_TEST_PROXY_PARTIAL  partial black hole: every other open
 *                          connection is held (nothing moves on it), the
 *                          rest and new ones pass, so some of a worker's
 *                          connections hang while others go on;
 *   SL_TEST_PROXY_RESET    every connection closed with RST, then pass.
 *
 * When one side of a connection ends, what the client had sent still
 * goes to Redis first, as TCP would deliver it after a partition heals:
 * a command whose client gave up on it can still run late.
 *
 * The proxy process dies with the process that started it (parent-death
 * signal); sl_test_proxy_stop() ends and reaps it by its PID.
 */
#ifndef SL_TEST_PROXY_H
#define SL_TEST_PROXY_H

#include <sys/types.h>

#define SL_TEST_PROXY_PASS 'p'    /* forward everything */
#define SL_TEST_PROXY_HOLE 'h'    /* black hole */
#define SL_TEST_PROXY_PARTIAL 'H' /* every other open connection held */
#define SL_TEST_PROXY_RESET 'r'   /* every connection reset, then pass */

/* The proxy as the test sees it. Zero it, or let sl_test_proxy_start()
 * fill it; all fields are read-only for tests. */
struct sl_test_proxy {
    pid_t pid;                    /* the forwarder process, 0 if none */
    int port;                     /* its loopback listening port */
    int ctl;                      /* pipe to it: one command byte */
    int ack;                      /* pipe from it: one byte per command done */
    char url[64];                 /* redis://127.0.0.1:<port> */
};

/* Starts a proxy to 127.0.0.1:target on a free loopback port and fills
 * *p. Returns 0, or -1 (then *p holds no process). */
int sl_test_proxy_start(struct sl_test_proxy *p, int target);

/* Sends the command byte cmd (one of SL_TEST_PROXY_...) to the proxy and
 * waits up to 5 s (times SLUICE_TEST_SLOW) until it is in effect.
 * Returns 0, or -1 when the proxy did not acknowledge it. */
int sl_test_proxy_cmd(struct sl_test_proxy *p, char cmd);

/* Stops the proxy, if one runs (asks it to quit, SIGKILL when it does
 * not within 3 s), reaps it, closes the pipes and zeroes *p. */
void sl_test_proxy_stop(struct sl_test_proxy *p);

#endif
