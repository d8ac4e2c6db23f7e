/* check_http.c -- the HTTP listener's limits: the connection cap, request deadlines,
 * methods, sizes, sockets closed in children, descriptor exhaustion.
 *
 * Split out of the former check_ops.c; the shared helpers and fixtures
 * are ops.c's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <hiredis.h>
#include <jansson.h>

#include "sluice.h"
#include "harness.h"
#include "ops.h"
#include "config.h"
#include "sut.h"



/* ---------------------------------------------------------------------
 * The HTTP listener's limits
 * ------------------------------------------------------------------ */

#define HTTP_CAP 64               /* the listener's connection cap (metrics.c) */
#define CHILD_FAIL_NOFILE 9       /* descriptors enough for the supervisor (8), not a child (11) */

/* Returns 1 when the server has closed the connection fd (EOF or reset
 * waiting to be read), 0 while it is open. Reads nothing. */
static int peer_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Returns how many of the n connections in fds the server has closed. */
static int count_closed(const int *fds, int n)
{
    int i, k = 0;

    for (i = 0; i < n; i++)
        k += peer_closed(fds[i]);
    return k;
}

/* Returns the value in kB of `key` ("VmHWM:") in /proc/<pid>/status, or
 * -1. */
static long proc_status_kb(pid_t pid, const char *key)
{
    char path[64], *s, *p;
    long v = -1;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    s = sl_test_read_file(path);
    if (s != NULL && (p = strstr(s, key)) != NULL)
        v = strtol(p + strlen(key), NULL, 10);
    free(s);
    return v;
}

/* Returns the CPU time of pid (user + system) in clock ticks, or -1. */
static long long proc_cpu_ticks(pid_t pid)
{
    char path[64], *s, *p;
    long long ut = -1, st = -1;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    s = sl_test_read_file(path);
    /* Fields 14 and 15, counted after the ")" that ends the name. */
    if (s != NULL && (p = strrchr(s, ')')) != NULL &&
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st) != 2)
        ut = st = -1;
    free(s);
    return ut < 0 ? -1 : ut + st;
}

/* Collects in inodes (up to max) the socket inodes of every TCP socket
 * whose local port is `port`, from /proc/net/tcp and tcp6. Returns how
 * many. */
static int port_inodes(int port, unsigned long *inodes, int max)
{
    const char *files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
    int f, n = 0;

    for (f = 0; f < 2; f++) {
        char *s = sl_test_read_file(files[f]);
        char *line, *save = NULL;
        for (line = s ? strtok_r(s, "\n", &save) : NULL; line != NULL;
             line = strtok_r(NULL, "\n", &save)) {
            char local[80];
            unsigned lport;
            unsigned long ino;
            char *colon;
            if (sscanf(line, " %*d: %79s %*s %*x %*s %*s %*s %*d %*d %lu", local, &ino) != 2)
                continue;          /* the header line */
            colon = strrchr(local, ':');
            if (colon != NULL && sscanf(colon + 1, "%x", &lport) == 1 && (int)lport == port &&
                n < max)
                inodes[n++] = ino;
        }
        free(s);
    }
    return n;
}

/* Returns how many of pid's descriptors are sockets among inodes. */
static int pid_sockets_among(pid_t pid, const unsigned long *inodes, int n)
{
    char dir[64], path[400], link[128];
    DIR *d;
    struct dirent *e;
    int k = 0, i;

    snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
    d = opendir(dir);
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        ssize_t len;
        unsigned long ino;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        len = readlink(path, link, sizeof(link) - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        if (sscanf(link, "socket:[%lu]", &ino) != 1)
            continue;
        for (i = 0; i < n; i++)
            k += inodes[i] == ino;
    }
    closedir(d);
    return k;
}

/* Starts a pool of one noop child with metrics, like pool_start(), but
 * under `prlimit --nofile=nofile` (sl_test_spawn_nofile). */
static void pool_start_nofile(struct pool *p, const char *stream, int nofile)
{
    char workers[200];
    const char *argv[] = { sl_test_bin(), "run", "-c", p->cfg, NULL };

    memset(p, 0, sizeof(*p));
    snprintf(workers, sizeof(workers),
             "{\"handler\": \"noop\", \"stream\": \"%s\", \"group\": \"g\"}", stream);
    write_config(p->cfg, sizeof(p->cfg), "pool", workers, "", 1);
    snprintf(p->log, sizeof(p->log), "%s/pool.log", tmp);
    p->pid = sl_test_spawn_nofile(argv, p->log, nofile);
    ck_assert_int_gt(p->pid, 0);
    track(p->pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, file_count(p->log, "event=running ") >= 1 ||
                                     !sl_test_pid_alive(p->pid));
    ck_assert_msg(sl_test_pid_alive(p->pid), "the pool exited; see %s", p->log);
    p->port = (int)file_last_number(p->log, "event=metrics_listening addr=127.0.0.1:");
    ck_assert_int_gt(p->port, 0);
}

/* Connections beyond the cap close the oldest ones, and /healthz still
 * answers while idle clients hold every slot. (Before, every connection
 * stayed open for good.) */
START_TEST(test_http_connection_cap)
{
    struct pool p;
    int fds[HTTP_CAP + 10], i, closed;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hc\", \"group\": \"g\"}", "", 1, 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    for (i = 0; i < HTTP_CAP + 10; i++) {
        fds[i] = sl_test_http_connect(p.port);
        ck_assert_int_ge(fds[i], 0);
    }
    SL_TEST_ASSERT_EVENTUALLY(5000, count_closed(fds, HTTP_CAP + 10) >= 10);
    ck_assert_msg(healthz_is(&p, 200, "ok\n"), "/healthz did not answer with every slot taken");
    closed = count_closed(fds, HTTP_CAP + 10);
    ck_assert_msg(closed >= 10 && closed <= 11, "%d of %d connections closed", closed,
                  HTTP_CAP + 10);
    /* The oldest went first. */
    for (i = 0; i < 10; i++)
        ck_assert_msg(peer_closed(fds[i]), "connection %d of the oldest is open", i);
    ck_assert_int_ge(file_count(p.log, "event=http_connection_limit max=64"), 1);
    for (i = 0; i < HTTP_CAP + 10; i++)
        close(fds[i]);
    pool_stop(&p);
}
END_TEST

/* With the default timeouts, an idle connection and one that trickles
 * its headers a byte at a time (never idle for long) are both closed
 * within the 10 s request deadline, and neither well before it. (Before,
 * both stayed open for good.) */
START_TEST(test_http_timeouts)
{
    struct pool p;
    const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    long long start, dl, closed_idle = -1, closed_slow = -1, next_byte;
    int idle, slow;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"ht\", \"group\": \"g\"}", "", 1, 1);
    idle = sl_test_http_connect(p.port);
    slow = sl_test_http_connect(p.port);
    ck_assert(idle >= 0 && slow >= 0);
    ck_assert_int_eq(write(slow, head, strlen(head)), (ssize_t)strlen(head));
    start = next_byte = sl_test_now_ms();
    dl = sl_test_deadline(25000);
    while ((closed_idle < 0 || closed_slow < 0) && sl_test_tick(dl)) {
        long long now = sl_test_now_ms();
        if (closed_idle < 0 && peer_closed(idle))
            closed_idle = now - start;
        if (closed_slow < 0 && peer_closed(slow))
            closed_slow = now - start;
        if (closed_slow < 0 && now >= next_byte) {
            /* May fail when the server has just closed: seen next poll. */
            if (send(slow, "a", 1, MSG_NOSIGNAL) < 0)
                next_byte = now;
            next_byte = now + 500;
        }
    }
    ck_assert_msg(closed_idle >= 0, "the idle connection is still open after 25 s");
    ck_assert_msg(closed_slow >= 0, "the trickling connection is still open after 25 s");
    ck_assert_msg(closed_idle >= 8000, "the idle connection closed after %lld ms", closed_idle);
    ck_assert_msg(closed_slow >= 8000, "the trickling connection closed after %lld ms",
                  closed_slow);
    close(idle);
    close(slow);
    ck_assert_msg(healthz_is(&p, 200, "ok\n"), "/healthz after the timeouts");
    pool_stop(&p);
}
END_TEST

/* GET and HEAD only: other methods get 405 with an Allow header, and a
 * HEAD gets the headers of the GET without its body. (Before, POST, PUT
 * and DELETE answered 200.) */
START_TEST(test_http_methods)
{
    const char *methods[] = { "POST", "PUT", "DELETE", "PATCH", "OPTIONS" };
    const char *paths[] = { "/healthz", "/metrics" };
    struct pool p;
    struct sl_test_http h;
    char req[256];
    size_t i, j;
    int n;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hm\", \"group\": \"g\"}", "", 1, 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        for (j = 0; j < 2; j++) {
            n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nContent-Length: 3\r\n\r\nx=1",
                         methods[i], paths[j]);
            h = sl_test_http_request(p.port, req, (size_t)n, 0);
            ck_assert_msg(h.status == 405, "%s %s answered %d", methods[i], paths[j], h.status);
            ck_assert_msg(strstr(h.head, "\r\nAllow: GET, HEAD") != NULL, "%s %s: %s",
                          methods[i], paths[j], h.head);
            sl_test_http_free(&h);
        }
    n = snprintf(req, sizeof(req), "HEAD /healthz HTTP/1.0\r\n\r\n");
    h = sl_test_http_request(p.port, req, (size_t)n, 0);
    ck_assert_int_eq(h.status, 200);
    ck_assert_msg(strstr(h.head, "\r\nContent-Length: 3") != NULL, "HEAD: %s", h.head);
    ck_assert_msg(strcmp(h.body, "") == 0, "HEAD answered a body: %s", h.body);
    sl_test_http_free(&h);
    pool_stop(&p);
}
END_TEST

/* A 10 MB body (with a length, or chunked) gets 413 or a closed
 * connection and the supervisor's peak memory does not grow by more than
 * a few MB; headers over the limit are refused. (Before, the body was
 * read into memory and answered 200, and so were the headers.) */
START_TEST(test_http_size_limits)
{
    struct pool p;
    struct sl_test_http h;
    char req[256], *big;
    long hwm0, hwm1;
    int n;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hz\", \"group\": \"g\"}", "", 1, 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    hwm0 = proc_status_kb(p.pid, "VmHWM:");
    ck_assert_int_gt(hwm0, 0);
    n = snprintf(req, sizeof(req), "POST /metrics HTTP/1.0\r\nContent-Length: %d\r\n\r\n",
                 10 << 20);
    h = sl_test_http_request(p.port, req, (size_t)n, (size_t)10 << 20);
    ck_assert_msg(h.status == 413 || h.status == -1, "a 10 MB body answered %d", h.status);
    sl_test_http_free(&h);
    /* One chunk of 10 MB: the length comes first, the limit applies as it
     * is read. */
    n = snprintf(req, sizeof(req),
                 "POST /metrics HTTP/1.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "%x\r\n", 10 << 20);
    h = sl_test_http_request(p.port, req, (size_t)n, (size_t)10 << 20);
    ck_assert_msg(h.status == 413 || h.status == -1, "a 10 MB chunk answered %d", h.status);
    sl_test_http_free(&h);
    hwm1 = proc_status_kb(p.pid, "VmHWM:");
    ck_assert_msg(hwm1 - hwm0 < 4096, "peak RSS grew from %ld kB to %ld kB", hwm0, hwm1);
    /* 16 KiB of headers. */
    big = malloc(17000);
    ck_assert_ptr_nonnull(big);
    n = snprintf(big, 17000, "GET /healthz HTTP/1.0\r\nX-Big: %0*d\r\n\r\n", 16384, 0);
    h = sl_test_http_request(p.port, big, (size_t)n, 0);
    ck_assert_msg(h.status != 200, "16 KiB of headers answered 200");
    sl_test_http_free(&h);
    free(big);
    ck_assert_msg(healthz_is(&p, 200, "ok\n"), "/healthz after the refusals");
    pool_stop(&p);
}
END_TEST

/* A child forked while a client holds a connection holds no socket of
 * the listener's port, neither the listener nor the connection. (Before,
 * every accepted connection open at a fork stayed open in the child.) */
START_TEST(test_http_child_closes_sockets)
{
    struct pool p;
    unsigned long inodes[64];
    int fd, n;
    pid_t child, fresh;
    char needle[512];

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hf\", \"group\": \"g\"}", "", 1, 1);
    fd = sl_test_http_connect(p.port);
    ck_assert_int_ge(fd, 0);
    /* The supervisor holds the listener and the accepted connection. */
    SL_TEST_ASSERT_EVENTUALLY(5000, (n = port_inodes(p.port, inodes, 64)) >= 2 &&
                                    pid_sockets_among(p.pid, inodes, n) >= 2);
    child = child_pid(&p, "noop:0");
    ck_assert_int_gt(child, 0);
    sl_test_kill(child, SIGKILL);
    SL_TEST_ASSERT_EVENTUALLY(5000, (fresh = child_pid(&p, "noop:0")) != child && fresh > 0);
    snprintf(needle, sizeof(needle), "pid=%ld role=%s:noop:0 event=running", (long)fresh, host);
    SL_TEST_ASSERT_EVENTUALLY(5000, file_count(p.log, needle) == 1);
    ck_assert_msg(!peer_closed(fd), "the held connection was closed meanwhile");
    n = port_inodes(p.port, inodes, 64);
    ck_assert_int_ge(n, 2);
    ck_assert_msg(pid_sockets_among(fresh, inodes, n) == 0,
                  "the new child %ld holds %d socket(s) of port %d", (long)fresh,
                  pid_sockets_among(fresh, inodes, n), p.port);
    close(fd);
    pool_stop(&p);
}
END_TEST

/* At the descriptor limit the supervisor neither spins nor floods its log:
 * accept errors are logged a few times, its CPU time stays low, /healthz
 * answers once the clients leave, and a child restarted meanwhile starts
 * (it closes the connections it inherited). (Before, the supervisor
 * logged "Error from accept() call" millions of times at 100% CPU and the
 * restarted child died at start.) */
START_TEST(test_http_fd_exhaustion)
{
    struct pool p;
    int fds[80], i;
    long long cpu0, cpu1, t0, t1;
    pid_t child, fresh;
    char needle[512];

    pool_start_nofile(&p, "hx", 40);
    for (i = 0; i < 80; i++)
        fds[i] = sl_test_http_connect(p.port);     /* the kernel queues those not accepted */
    SL_TEST_ASSERT_EVENTUALLY(5000, file_count(p.log, "event=http_accept_failed") >= 1 ||
                                    file_count(p.log, "Error from accept() call") >= 1);
    child = child_pid(&p, "noop:0");
    ck_assert_int_gt(child, 0);
    sl_test_kill(child, SIGKILL);
    SL_TEST_ASSERT_EVENTUALLY(5000, (fresh = child_pid(&p, "noop:0")) != child && fresh > 0);
    snprintf(needle, sizeof(needle), "pid=%ld role=%s:noop:0 event=running", (long)fresh, host);
    SL_TEST_ASSERT_EVENTUALLY(5000, file_count(p.log, needle) == 1 ||
                                    file_count(p.log, "event=child_exited") >= 2);
    ck_assert_msg(file_count(p.log, needle) == 1, "the restarted child did not start; see %s",
                  p.log);
    cpu0 = proc_cpu_ticks(p.pid);
    t0 = sl_test_now_ms();
    {
        long long dl = sl_test_deadline(2000);
        while (sl_test_tick(dl))
            ;
    }
    cpu1 = proc_cpu_ticks(p.pid);
    t1 = sl_test_now_ms();
    ck_assert(cpu0 >= 0 && cpu1 >= 0);
    /* Ticks are 10 ms: below a fifth of the time elapsed. */
    ck_assert_msg((cpu1 - cpu0) * 10 * 5 < t1 - t0, "the supervisor used %lld ms of CPU in %lld ms",
                  (cpu1 - cpu0) * 10, t1 - t0);
    ck_assert_int_eq(file_count(p.log, "Error from accept() call"), 0);
    ck_assert_msg(file_count(p.log, "event=http_accept_failed") <= 8,
                  "%d accept error lines", file_count(p.log, "event=http_accept_failed"));
    for (i = 0; i < 80; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    SL_TEST_ASSERT_EVENTUALLY(10000, healthz_is(&p, 200, "ok\n"));
    ck_assert_int_ge(file_count(p.log, "event=http_accept_resumed"), 1);
    pool_stop(&p);
}
END_TEST

/* A child that cannot start (here: no descriptor left for its event
 * base) logs why, in the pool's format, before the supervisor logs its
 * exit status. (Before, libevent wrote a bare "[err] ..." line and called
 * exit(1).) */
START_TEST(test_http_child_start_failure_logged)
{
    const char *argv[] = { sl_test_bin(), "run", "-c", NULL, NULL };
    char limit[40];
    struct pool p;

    memset(&p, 0, sizeof(p));
    write_config(p.cfg, sizeof(p.cfg), "pool",
                 "{\"handler\": \"noop\", \"stream\": \"hl\", \"group\": \"g\"}", "", 1);
    argv[3] = p.cfg;
    snprintf(p.log, sizeof(p.log), "%s/pool.log", tmp);
    p.pid = sl_test_spawn_nofile(argv, p.log, CHILD_FAIL_NOFILE);
    ck_assert_int_gt(p.pid, 0);
    track(p.pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, file_count(p.log, "event=child_exited ") >= 1 ||
                                     !sl_test_pid_alive(p.pid));
    ck_assert_msg(sl_test_pid_alive(p.pid), "the pool exited; see %s", p.log);
    /* Under valgrind the limit is valgrind's: it refuses pipe() past it
     * (EMFILE) but lets socketpair() return a descriptor past it, then
     * refuses every call on that one (EBADF), so libevent's fallback to a
     * socketpair fails with "Bad file descriptor". The reason is still
     * logged, in the pool's format, with the limit it hit. */
    snprintf(limit, sizeof(limit), " fd_limit=%d\n", CHILD_FAIL_NOFILE);
    if (sl_test_wrap_is_valgrind())
        ck_assert_msg(file_count(p.log, "event=child_failed status=1 error=") >= 1 &&
                      file_count(p.log, limit) >= 1,
                      "no reason logged for the child's exit; see %s", p.log);
    else
        ck_assert_msg(file_count(p.log, "event=child_failed status=1 error=\"Too many open files\"") >= 1,
                      "no reason logged for the child's exit; see %s", p.log);
    ck_assert_int_eq(file_count(p.log, "[err]"), 0);
    pool_stop(&p);
}
END_TEST

Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc;

    tc = ops_server_case(s, "http", 90);
    tcase_add_test(tc, test_http_connection_cap);
    tcase_add_test(tc, test_http_timeouts);
    tcase_add_test(tc, test_http_methods);
    tcase_add_test(tc, test_http_size_limits);
    tcase_add_test(tc, test_http_child_closes_sockets);
    tcase_add_test(tc, test_http_fd_exhaustion);
    tcase_add_test(tc, test_http_child_start_failure_logged);
    return s;
}
