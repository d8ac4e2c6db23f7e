/* proxy.c -- the loopback TCP proxy of proxy.h: a forked poll()
 * forwarder between the pool under test and Redis, steered by one
 * command byte at a time over a pipe.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "harness.h"

#define PROXY_MAX 256             /* connections the proxy holds at once */
#define PROXY_BUF 65536           /* bytes buffered per direction */

/* One forwarded connection inside the proxy process. */
struct pconn {
    int cfd;                      /* the client's side (the pool) */
    int ufd;                      /* the upstream side (redis-server) */
    char c2u[PROXY_BUF];          /* bytes read from cfd, not yet written */
    size_t c2u_len;               /* bytes in c2u */
    char u2c[PROXY_BUF];          /* bytes read from ufd, not yet written */
    size_t u2c_len;               /* bytes in u2c */
    int held;                     /* partial black hole: nothing moves */
};

/* Closes both sockets of a proxied connection. With `rst` both are
 * closed with SO_LINGER 0, so the pool (and Redis) see a reset. */
static void pconn_close(struct pconn *p, int rst)
{
    struct linger lg = { 1, 0 };

    if (rst) {
        setsockopt(p->cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        setsockopt(p->ufd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(p->cfd);
    close(p->ufd);
    p->cfd = p->ufd = -1;
    p->c2u_len = p->u2c_len = 0;
}

/* Closes a connection after one side ended: what the client had sent
 * still goes to Redis first (blocking, bounded by a 1 s send timeout),
 * as TCP would deliver it after a partition heals, so a command whose
 * client already gave up on it can still run: a late commit that the
 * fencing must cope with. */
static void pconn_drain_close(struct pconn *p)
{
    struct timeval tv = { 1, 0 };
    size_t off = 0;

    if (p->c2u_len > 0) {
        fcntl(p->ufd, F_SETFL, fcntl(p->ufd, F_GETFL) & ~O_NONBLOCK);
        setsockopt(p->ufd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        while (off < p->c2u_len) {
            ssize_t n = write(p->ufd, p->c2u + off, p->c2u_len - off);

            if (n <= 0)
                break;
            off += (size_t)n;
        }
    }
    pconn_close(p, 0);
}

/* Moves bytes from fd into buf (up to its free space). Returns 0, or -1
 * on EOF or a hard error. */
static int pump_in(int fd, char *buf, size_t *len)
{
    ssize_t n;

    if (*len == PROXY_BUF)
        return 0;
    n = read(fd, buf + *len, PROXY_BUF - *len);
    if (n > 0) {
        *len += (size_t)n;
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    return -1;
}

/* Writes what buf holds to fd and keeps the rest. Returns 0 or -1. */
static int pump_out(int fd, char *buf, size_t *len)
{
    ssize_t n = write(fd, buf, *len);

    if (n > 0) {
        memmove(buf, buf + n, *len - (size_t)n);
        *len -= (size_t)n;
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    return -1;
}

/* Connects to the upstream port on loopback (blocking: local and quick),
 * then makes the socket non-blocking. Returns the fd or -1 (refused
 * while redis-server is down). */
static int upstream_connect(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* The proxy process's loop; never returns. Commands on ctl: the modes
 * of proxy.h (SL_TEST_PROXY_PASS, _HOLE, _PARTIAL: every open connection
 * with an odd slot is held, _RESET) and 'q' quit. Each command is
 * acknowledged with one byte on ack once it has taken effect. */
static void proxy_loop(int lfd, int ctl, int ack, int target)
{
    static struct pconn conns[PROXY_MAX];
    struct pollfd pfd[2 + 2 * PROXY_MAX];
    int map[2 + 2 * PROXY_MAX];
    int hole = 0;
    size_t i;

    for (i = 0; i < PROXY_MAX; i++)
        conns[i].cfd = conns[i].ufd = -1;
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        nfds_t n = 0;

        pfd[n].fd = ctl;
        pfd[n].events = POLLIN;
        map[n++] = -1;
        pfd[n].fd = lfd;
        pfd[n].events = hole ? 0 : POLLIN;
        map[n++] = -1;
        for (i = 0; i < PROXY_MAX && !hole; i++) {
            struct pconn *p = &conns[i];

            if (p->cfd < 0 || p->held)
                continue;
            pfd[n].fd = p->cfd;
            pfd[n].events = (p->c2u_len < PROXY_BUF ? POLLIN : 0) | (p->u2c_len ? POLLOUT : 0);
            map[n++] = (int)i;
            pfd[n].fd = p->ufd;
            pfd[n].events = (p->u2c_len < PROXY_BUF ? POLLIN : 0) | (p->c2u_len ? POLLOUT : 0);
            map[n++] = (int)i;
        }
        if (poll(pfd, n, 100) < 0 && errno != EINTR)
            _exit(1);
        if (pfd[0].revents) {
            char cmd;

            if (read(ctl, &cmd, 1) != 1)
                _exit(0);
            if (cmd == 'q')
                _exit(0);
            hole = cmd == SL_TEST_PROXY_HOLE;
            for (i = 0; i < PROXY_MAX; i++)
                conns[i].held = cmd == SL_TEST_PROXY_PARTIAL && conns[i].cfd >= 0 && i % 2 == 1;
            if (cmd == SL_TEST_PROXY_RESET)
                for (i = 0; i < PROXY_MAX; i++)
                    if (conns[i].cfd >= 0)
                        pconn_close(&conns[i], 1);
            if (write(ack, &cmd, 1) != 1)
                _exit(1);
            continue;
        }
        if (hole)
            continue;
        if (pfd[1].revents & POLLIN) {
            int cfd = accept(lfd, NULL, NULL);

            if (cfd >= 0) {
                int ufd = upstream_connect(target);

                for (i = 0; i < PROXY_MAX && conns[i].cfd >= 0; i++)
                    ;
                if (ufd < 0 || i == PROXY_MAX) {
                    struct linger lg = { 1, 0 };

                    setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                    close(cfd);
                    if (ufd >= 0)
                        close(ufd);
                } else {
                    fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) | O_NONBLOCK);
                    conns[i].cfd = cfd;
                    conns[i].ufd = ufd;
                    conns[i].c2u_len = conns[i].u2c_len = 0;
                    conns[i].held = 0;
                }
            }
        }
        for (i = 2; i < n; i++) {
            struct pconn *p = &conns[map[i]];
            int bad = 0;

            if (p->cfd < 0 || pfd[i].revents == 0)
                continue;
            if (pfd[i].fd == p->cfd) {
                if (pfd[i].revents & POLLOUT)
                    bad |= pump_out(p->cfd, p->u2c, &p->u2c_len);
                if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                    bad |= pump_in(p->cfd, p->c2u, &p->c2u_len);
            } else {
                if (pfd[i].revents & POLLOUT)
                    bad |= pump_out(p->ufd, p->c2u, &p->c2u_len);
                if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                    bad |= pump_in(p->ufd, p->u2c, &p->u2c_len);
            }
            if (bad)
                pconn_drain_close(p);
        }
    }
}

/* Starts a proxy to 127.0.0.1:target on a free loopback port. The
 * listening socket is bound here, before the fork, so the port is known
 * and taken. The child dies with this process. Returns 0 or -1. */
int sl_test_proxy_start(struct sl_test_proxy *p, int target)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int to[2], from[2], lfd;
    pid_t parent = getpid();

    memset(p, 0, sizeof *p);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 64) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &len) < 0 || pipe(to) < 0) {
        close(lfd);
        return -1;
    }
    if (pipe(from) < 0) {
        close(to[0]);
        close(to[1]);
        close(lfd);
        return -1;
    }
    p->pid = fork();
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        close(to[1]);
        close(from[0]);
        proxy_loop(lfd, to[0], from[1], target);
    }
    close(lfd);
    close(to[0]);
    close(from[1]);
    p->ctl = to[1];
    p->ack = from[0];
    p->port = ntohs(a.sin_port);
    snprintf(p->url, sizeof p->url, "redis://127.0.0.1:%d", p->port);
    return p->pid > 0 ? 0 : -1;
}

/* Sends one command byte to the proxy and waits (up to 5 s, times the
 * slow factor) for it to take effect. Returns 0, or -1 when the proxy
 * does not answer. */
int sl_test_proxy_cmd(struct sl_test_proxy *p, char cmd)
{
    struct pollfd pf = { p->ack, POLLIN, 0 };
    char got = 0;

    if (write(p->ctl, &cmd, 1) != 1 || poll(&pf, 1, 5000 * sl_test_slow_factor()) != 1 ||
        read(p->ack, &got, 1) != 1 || got != cmd)
        return -1;
    return 0;
}

/* Stops the proxy, if one runs, and reaps it. */
void sl_test_proxy_stop(struct sl_test_proxy *p)
{
    char q = 'q';

    if (p->pid <= 0)
        return;
    if (write(p->ctl, &q, 1) != 1)
        sl_test_kill(p->pid, SIGKILL);
    if (!sl_test_wait_exit(p->pid, 3000, NULL)) {
        sl_test_kill(p->pid, SIGKILL);
        sl_test_wait_exit(p->pid, 3000, NULL);
    }
    close(p->ctl);
    close(p->ack);
    memset(p, 0, sizeof *p);
}
