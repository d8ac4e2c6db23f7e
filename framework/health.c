/* health.c -- `sluice health`: is the pool on this host working? For a
 * container HEALTHCHECK or a service monitor, which need an exit code and
 * have no HTTP client at hand (the image has neither curl nor wget).
 *
 * When the configuration (or --metrics) gives the pool a metrics listener
 * on a fixed port, the answer is the pool's own: GET /healthz over
 * loopback, healthy only on 200. The pool knows best whether every child
 * runs and is connected. A wildcard listen address (0.0.0.0, ::) is
 * reached through the loopback address of its family.
 *
 * Without a listener, the check goes to Redis: it must answer PING, and
 * each configured worker must have at least one live heartbeat among the
 * consumer names a pool on this host gives it. Heartbeat keys expire
 * after three missed beats, so a key that exists is a live process. The
 * names are computed as the supervisor computes them, so no SCAN is
 * needed. Run it on the pool's host (inside its container): the names
 * start with the host name.
 *
 * Exit 0 when healthy (one line on stdout), 1 with one line on stderr
 * saying what is wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <hiredis.h>
#include "internal.h"
#include "admin.h"
#include "pool.h"
#include "heartbeat.h"

/* The whole HTTP exchange must fit in this: a health check that hangs is
 * worse than one that fails. The pool's /healthz answers at once unless
 * its PING to Redis is slow, which is worth reporting as unhealthy. */
#define HEALTH_TIMEOUT_MS 5000

/* ------------------------------------------------------------------ */
/* /healthz                                                            */
/* ------------------------------------------------------------------ */

/* Splits "host:port" ("[v6]:port" too) into a host to connect to and a
 * port. A wildcard or empty host becomes the loopback address of its
 * family. Returns 0, or -1 when the text is not host:port. */
static int split_listen(const char *listen, char *host, size_t hostlen, char *port,
                        size_t portlen)
{
    const char *colon = strrchr(listen, ':');
    size_t n;

    if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) >= portlen)
        return -1;
    n = (size_t)(colon - listen);
    if (n >= 2 && listen[0] == '[' && listen[n - 1] == ']') {
        listen++;
        n -= 2;
    }
    if (n >= hostlen)
        return -1;
    memcpy(host, listen, n);
    host[n] = '\0';
    snprintf(port, portlen, "%s", colon + 1);
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
        snprintf(host, hostlen, "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        snprintf(host, hostlen, "::1");
    return 0;
}

/* Milliseconds left until `deadline` (sl__now_ms() based), at least 0. */
static int left_ms(uint64_t deadline)
{
    uint64_t now = sl__now_ms();

    return now >= deadline ? 0 : (int)(deadline - now);
}

/* Connects to host:port without blocking past `deadline`. Returns the
 * socket, or -1 with the reason in why. */
static int connect_by(const char *host, const char *port, uint64_t deadline, char *why,
                      size_t whylen)
{
    struct addrinfo hints, *res = NULL, *ai;
    int fd = -1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    snprintf(why, whylen, "no address for %s", host);
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        struct pollfd pfd;
        int err = 0;
        socklen_t elen = sizeof(err);

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            snprintf(why, whylen, "socket: %s", strerror(errno));
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS) {
            pfd.fd = fd;
            pfd.events = POLLOUT;
            rc = poll(&pfd, 1, left_ms(deadline));
            if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)
                break;
            errno = rc == 0 ? ETIMEDOUT : err != 0 ? err : errno;
        }
        snprintf(why, whylen, "cannot connect to %s port %s: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* GETs /healthz from the listener at `listen`. Returns the exit code
 * after printing the one line. */
static int check_http(const char *listen)
{
    char host[256], port[16], why[512], resp[1024];
    uint64_t deadline = sl__now_ms() + HEALTH_TIMEOUT_MS;
    size_t got = 0, sent = 0, reqlen;
    const char *req = "GET /healthz HTTP/1.0\r\nConnection: close\r\n\r\n";
    const char *body;
    char *eol;
    int fd, status = 0;

    if (split_listen(listen, host, sizeof(host), port, sizeof(port)) < 0) {
        fprintf(stderr, "sluice: unhealthy: metrics.listen \"%s\": expected host:port\n", listen);
        return 1;
    }
    if ((fd = connect_by(host, port, deadline, why, sizeof(why))) < 0) {
        fprintf(stderr, "sluice: unhealthy: /healthz: %s\n", why);
        return 1;
    }
    /* Send the request, then read until the pool closes the connection,
     * the buffer is full or time is up. */
    reqlen = strlen(req);
    while (left_ms(deadline) > 0) {
        struct pollfd pfd = { fd, sent < reqlen ? POLLOUT : POLLIN, 0 };
        ssize_t n;

        int ready = poll(&pfd, 1, left_ms(deadline));

        if (ready < 0 && errno != EINTR)
            break;
        if (ready <= 0)
            continue;
        if (sent < reqlen) {
            n = send(fd, req + sent, reqlen - sent, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                break;
            sent += n > 0 ? (size_t)n : 0;
            continue;
        }
        n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
        got += n > 0 ? (size_t)n : 0;
        if (got == sizeof(resp) - 1)
            break;
    }
    close(fd);
    resp[got] = '\0';
    if (sscanf(resp, "HTTP/%*d.%*d %d", &status) != 1) {
        fprintf(stderr, "sluice: unhealthy: http://%s:%s/healthz: %s\n", host, port,
                got == 0 ? "no answer" : "not an HTTP answer");
        return 1;
    }
    /* The body is one line: "ok", or the pool's first reason. */
    body = strstr(resp, "\r\n\r\n");
    body = body != NULL ? body + 4 : "";
    if ((eol = strchr(body, '\n')) != NULL)
        *eol = '\0';
    if (status != 200) {
        /* Whatever listens on that port wrote the body: shown escaped. */
        char *shown = sl__escape_text(body, strlen(body));

        fprintf(stderr, "sluice: unhealthy: http://%s:%s/healthz answered %d: %s\n", host, port,
                status, shown == NULL ? "(out of memory)" : *shown ? shown : "(no reason given)");
        free(shown);
        return 1;
    }
    printf("healthy: http://%s:%s/healthz answered 200\n", host, port);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Redis and heartbeats                                                */
/* ------------------------------------------------------------------ */

/* Returns 1 when one of the heartbeat keys of worker entry i exists, 0
 * when none does, -1 after printing a failure. */
static int worker_alive(struct sl_sync *c, const struct sl_config *cfg, size_t i, const char *host)
{
    const struct sl_worker_conf *wc = &cfg->workers[i];
    int shared = cfg->nworkers > 1 && sl__pool_name_taken(cfg, i);
    int n = wc->processes, j, rc = -1;
    const char **argv = calloc((size_t)n + 1, sizeof(*argv));
    char (*keys)[SL_HB_KEYLEN] = calloc((size_t)n, sizeof(*keys));
    redisReply *r = NULL;

    if (argv == NULL || keys == NULL) {
        fprintf(stderr, "sluice: out of memory\n");
        goto out;
    }
    /* The consumer names of pool.c: <host>:<handler>:<slot>, or
     * <host>:<handler>:<entry>.<slot> when a handler appears twice. */
    argv[0] = "EXISTS";
    for (j = 0; j < n; j++) {
        char consumer[SL_HB_KEYLEN];

        if (shared)
            snprintf(consumer, sizeof(consumer), "%s:%s:%zu.%d", host, wc->handler, i, j);
        else
            snprintf(consumer, sizeof(consumer), "%s:%s:%d", host, wc->handler, j);
        sl__hb_key_of(keys[j], sizeof(keys[j]), cfg->cluster_nodes != NULL, wc->stream,
                      consumer);
        argv[j + 1] = keys[j];
    }
    /* On a cluster the keys carry the stream's hash tag: they live on
     * the stream's master, so the EXISTS goes there (a read: safe to
     * send again). */
    sl__sync_route(c, wc->stream, 1);
    r = sl__sync_argv(c, n + 1, argv, NULL);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        fprintf(stderr, "sluice: unhealthy: redis: %s\n",
                r == NULL ? c->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply to EXISTS");
        goto out;
    }
    rc = r->integer > 0;
out:
    freeReplyObject(r);
    free(keys);
    free(argv);
    return rc;
}

/* Redis answers PING and every worker entry has a live heartbeat. Returns
 * the exit code after printing the one line. */
static int check_redis(const struct sl_config *cfg)
{
    char host[256];
    struct sl_sync *c;
    redisReply *r;
    size_t i;
    int rc = 0;

    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    if ((c = sl__admin_connect(cfg)) == NULL)
        return 1;               /* it printed why */
    r = sl__sync_cmd(c, "PING");
    if (r == NULL || r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0) {
        fprintf(stderr, "sluice: unhealthy: redis at %s:%d does not answer PING: %s\n",
                cfg->redis.host, cfg->redis.port,
                r == NULL ? c->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        sl__sync_free(c);
        return 1;
    }
    freeReplyObject(r);
    for (i = 0; i < cfg->nworkers && rc == 0; i++) {
        int alive = worker_alive(c, cfg, i, host);

        if (alive < 0)
            rc = 1;
        else if (alive == 0) {
            fprintf(stderr, "sluice: unhealthy: worker %s (stream %s, group %s) has no live "
                    "heartbeat on host %s\n", cfg->workers[i].handler, cfg->workers[i].stream,
                    cfg->workers[i].group, host);
            rc = 1;
        }
    }
    sl__sync_free(c);
    if (rc == 0)
        printf("healthy: redis at %s:%d answers, %zu worker(s) beating on host %s\n",
               cfg->redis.host, cfg->redis.port, cfg->nworkers, host);
    return rc;
}

int sl__health(const struct sl_config *cfg, const char *metrics)
{
    const char *listen = cfg->metrics_listen;
    const char *colon;

    if (metrics != NULL)
        listen = strcmp(metrics, "none") == 0 ? NULL : metrics;
    /* Port 0 lets the kernel choose: nobody else can know it, so such a
     * listener cannot be asked and the check goes to Redis instead. */
    colon = listen != NULL ? strrchr(listen, ':') : NULL;
    if (listen != NULL && *listen != '\0' && !(colon != NULL && strcmp(colon + 1, "0") == 0))
        return check_http(listen);
    return check_redis(cfg);
}
