/* http.c -- a plain-socket HTTP client for the tests of /metrics,
 * /healthz and the listener's limits: requests are written byte for
 * byte, so a test can send what no library would (slow, huge, odd
 * methods). No Check: usable by any test program.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include "http.h"

/* Frees the texts of h. */
void sl_test_http_free(struct sl_test_http *h)
{
    free(h->head);
    free(h->body);
    h->head = h->body = NULL;
}

/* Connects a TCP socket to 127.0.0.1:port with 10 s send and receive
 * timeouts. Returns the fd, or -1 when the connection is refused. */
int sl_test_http_connect(int port)
{
    struct sockaddr_in a;
    struct timeval tv = { 10, 0 };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends the len bytes of req (a whole HTTP request, which should ask the
 * server to close) to 127.0.0.1:port, then `extra` more zero bytes (a
 * body sent in 64 KiB writes; the server may close before it has them
 * all), and reads to the end. Gives up after 10 s. Status -1: no
 * answer. */
struct sl_test_http sl_test_http_request(int port, const char *req, size_t len, size_t extra)
{
    struct sl_test_http h = { -1, NULL, NULL };
    static const char zeros[65536];
    char *buf = NULL, *sep;
    size_t cap = 0;
    ssize_t n;
    int fd = sl_test_http_connect(port);

    if (fd < 0)
        return h;
    /* MSG_NOSIGNAL: a server that closes early makes this fail with EPIPE
     * rather than kill the test with SIGPIPE. */
    if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
        close(fd);
        return h;
    }
    while (extra > 0) {
        n = send(fd, zeros, extra < sizeof(zeros) ? extra : sizeof(zeros), MSG_NOSIGNAL);
        if (n <= 0)
            break;              /* closed by the server: read what it said */
        extra -= (size_t)n;
    }
    len = 0;
    for (;;) {
        if (cap - len < 4096) {
            char *nb;

            cap = cap * 2 + 8192;
            if ((nb = realloc(buf, cap)) == NULL) {
                free(buf);
                close(fd);
                return h;       /* out of memory: no answer */
            }
            buf = nb;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (buf == NULL)
        return h;
    buf[len] = '\0';
    if ((sep = strstr(buf, "\r\n\r\n")) != NULL && sscanf(buf, "HTTP/1.%*d %d", &h.status) == 1) {
        h.body = strdup(sep + 4);
        *sep = '\0';
        h.head = strdup(buf);
    } else {
        h.status = -1;
    }
    free(buf);
    return h;
}

/* GETs path from 127.0.0.1:port with HTTP/1.0 over a plain socket and
 * reads to the end (the server closes). Gives up after 10 s. */
struct sl_test_http sl_test_http_get(int port, const char *path)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);

    return sl_test_http_request(port, req, (size_t)n, 0);
}
