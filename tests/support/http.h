/* http.h -- a plain-socket HTTP client for tests (http.c). */
#ifndef SL_TEST_HTTP_H
#define SL_TEST_HTTP_H

#include <stddef.h>

/* One HTTP response. */
struct sl_test_http {
    int status;                   /* status code, -1 when no answer */
    char *head;                   /* status line and headers (new) */
    char *body;                   /* body (new) */
};

/* Frees the texts of h. */
void sl_test_http_free(struct sl_test_http *h);

/* Connects a TCP socket to 127.0.0.1:port with 10 s send and receive
 * timeouts. Returns the fd, or -1. */
int sl_test_http_connect(int port);

/* Sends the len bytes of req, then `extra` zero bytes, and reads the
 * answer to the end (10 s at most). Status -1: no answer. */
struct sl_test_http sl_test_http_request(int port, const char *req, size_t len, size_t extra);

/* GETs path with HTTP/1.0 and reads to the end. */
struct sl_test_http sl_test_http_get(int port, const char *path);

#endif /* SL_TEST_HTTP_H */
