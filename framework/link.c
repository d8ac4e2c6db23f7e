/* link.c -- the byte transport under every Redis connection: a libevent
 * bufferevent, on a plain socket or through OpenSSL, carrying commands
 * formatted by hiredis (redisFormatCommandArgv) and replies parsed by
 * hiredis's own reader (redisReader). Nothing here knows about
 * deadlines, AUTH or reconnects: conn.c builds those on top, for the
 * workers' loops and, on a private loop, for the synchronous callers.
 *
 * hiredis 0.14 cannot speak TLS; its parser and formatter do not care
 * where the bytes travel, so they are used as they are and the socket is
 * libevent's.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "link.h"

struct sl_link {
    struct bufferevent *bev;      /* the connection (owned) */
    SSL *ssl;                     /* its TLS session (owned by bev), NULL when plain */
    redisReader *reader;          /* reply parser (owned) */
    sl_link_reply_cb *on_reply;   /* owner's reply callback */
    sl_link_state_cb *on_state;   /* owner's up/down callback */
    void *arg;                    /* argument of both */
    int up;                       /* connected (and the TLS handshake done) */
    int down;                     /* the down notice was given: call nothing more */
    int dispatching;              /* inside one of our callbacks */
    int freed;                    /* sl__link_free() was called while dispatching */
};

/* ---------------------------------------------------------------------
 * TLS
 * ------------------------------------------------------------------ */

/* Writes the oldest queued OpenSSL error (or `fallback`) into buf and
 * clears the queue. */
static void ssl_error_text(char *buf, size_t size, const char *fallback)
{
    unsigned long e = ERR_get_error();

    if (e == 0) {
        snprintf(buf, size, "%s", fallback);
    } else {
        ERR_error_string_n(e, buf, size);
    }
    ERR_clear_error();
}

/* Builds the TLS context of tls: the CA file (or the system's store),
 * the client certificate and key when given, peer verification unless
 * tls->insecure. Returns the context (new: SSL_CTX_free()), or NULL with
 * the reason in err, naming the file that failed. */
static SSL_CTX *tls_ctx(const struct sl_tls *tls, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[160];

    if (ctx == NULL) {
        ssl_error_text(why, sizeof(why), "out of memory");
        sl__put_err(err, errlen, "TLS: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (tls->key_file != NULL && tls->cert_file == NULL) {
        sl__put_err(err, errlen, "TLS: redis.tls_key_file is set without redis.tls_cert_file");
        goto fail;
    }
    if (tls->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, tls->ca_file, NULL) != 1) {
            ssl_error_text(why, sizeof(why), "unreadable");
            sl__put_err(err, errlen, "TLS: cannot load CA file \"%s\": %s", tls->ca_file, why);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ssl_error_text(why, sizeof(why), "unreadable");
        sl__put_err(err, errlen, "TLS: cannot load the system's CA store: %s", why);
        goto fail;
    }
    if (tls->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert_file) != 1) {
            ssl_error_text(why, sizeof(why), "unreadable");
            sl__put_err(err, errlen, "TLS: cannot load certificate \"%s\": %s",
                        tls->cert_file, why);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, tls->key_file != NULL ? tls->key_file :
                                        tls->cert_file, SSL_FILETYPE_PEM) != 1) {
            /* The key's content is never shown: only OpenSSL's reason. */
            ssl_error_text(why, sizeof(why), "unreadable");
            sl__put_err(err, errlen, "TLS: cannot load key \"%s\": %s",
                        tls->key_file != NULL ? tls->key_file : tls->cert_file, why);
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            ssl_error_text(why, sizeof(why), "mismatch");
            sl__put_err(err, errlen, "TLS: key \"%s\" does not match certificate \"%s\"",
                        tls->key_file != NULL ? tls->key_file : tls->cert_file,
                        tls->cert_file);
            goto fail;
        }
    }
    SSL_CTX_set_verify(ctx, tls->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Creates the TLS session for a connection to host: SNI (not for an
 * address, RFC 6066), and the name or address the server's certificate
 * must carry. Returns it (new), or NULL with err. */
static SSL *tls_session(const struct sl_tls *tls, const char *host, char *err, size_t errlen)
{
    const char *name = tls->server_name != NULL ? tls->server_name : host;
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    SSL_CTX *ctx = tls_ctx(tls, err, errlen);
    SSL *ssl;
    char why[160];

    if (ctx == NULL)
        return NULL;
    if (tls->insecure) {
        /* Once per process: the supervisor says it before any child
         * starts, and every admin command says it. */
        static int warned;
        if (!warned)
            sl__log(SL_LOG_WARN, "tls_verify_off", "redis_host=%s detail=%s", sl__logq(host),
                    sl__logq("redis.tls_verify is false: the server's certificate is not "
                             "checked, anyone on the path can read and change the traffic"));
        warned = 1;
    }
    ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);                /* the session holds its own reference */
    if (ssl == NULL)
        goto nomem;
    if (!is_ip && SSL_set_tlsext_host_name(ssl, name) != 1)
        goto nomem;
    if (!tls->insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

        if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1 :
                    X509_VERIFY_PARAM_set1_host(vp, name, 0) != 1)
            goto nomem;
    }
    return ssl;

nomem:
    ssl_error_text(why, sizeof(why), "out of memory");
    sl__put_err(err, errlen, "TLS: %s", why);
    SSL_free(ssl);
    return NULL;
}

/* Explains a failed or closed TLS connection into buf: the certificate
 * check's verdict when that is what failed ("server certificate verify
 * failed: certificate has expired"), else OpenSSL's reason (an alert
 * from a server refusing our certificate, "sslv3 alert certificate
 * expired"). A server that refuses our certificate under TLS 1.3 does so
 * after our side of the handshake is done: our first write may then meet
 * the closed socket, and the alert waits unread, so it is read here.
 * Returns 1 when a reason was found, 0 for a plain close. */
static int tls_failure(struct sl_link *l, char *buf, size_t size)
{
    unsigned long e, first = 0;
    long v = SSL_get_verify_result(l->ssl);
    char why[160];
    const char *p;

    /* libevent also queues SSL_get_error()'s small codes: skip those. */
    while ((e = bufferevent_get_openssl_error(l->bev)) != 0)
        if (first == 0 && ERR_GET_LIB(e) != 0)
            first = e;
    if (first == 0 && l->up) {
        /* Only after the handshake: before it, SSL_read would start one
         * and write to a socket that failed. */
        char b;
        ERR_clear_error();
        if (SSL_read(l->ssl, &b, 1) <= 0)
            first = ERR_peek_last_error();
        ERR_clear_error();
    }
    if (v != X509_V_OK && !l->up) {
        snprintf(buf, size, "TLS: server certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
        return 1;
    }
    if (first == 0)
        return 0;
    /* OpenSSL's long form, "error:0A000415:SSL routines::sslv3 alert
     * certificate expired": the part after the last ':' is the readable
     * one. */
    ERR_error_string_n(first, why, sizeof(why));
    p = strrchr(why, ':');
    snprintf(buf, size, "TLS: %s", p != NULL && p[1] != '\0' ? p + 1 : why);
    return 1;
}

/* ---------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------ */

/* Gives the down notice once and stops reading. */
static void go_down(struct sl_link *l, const char *why)
{
    if (l->down)
        return;
    l->down = 1;
    l->up = 0;
    bufferevent_disable(l->bev, EV_READ | EV_WRITE);
    if (l->on_state != NULL && !l->freed)
        l->on_state(l, 0, why, l->arg);
}

/* Ends a dispatch: frees the link if the owner asked for it meanwhile.
 * Returns 1 when it was freed. */
static int leave(struct sl_link *l)
{
    if (--l->dispatching > 0 || !l->freed)
        return 0;
    l->freed = 0;                     /* with dispatching 0, sl__link_free() frees */
    sl__link_free(l);
    return 1;
}

/* Feeds what arrived to the reader and hands every complete reply to
 * the owner, in order. A protocol error takes the link down. */
static void on_read(struct bufferevent *bev, void *arg)
{
    struct sl_link *l = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[8];
    int n, i;
    void *reply;

    l->dispatching++;
    while ((n = evbuffer_peek(in, -1, NULL, v, 8)) > 0) {
        size_t total = 0;
        for (i = 0; i < n && i < 8; i++) {
            if (redisReaderFeed(l->reader, v[i].iov_base, v[i].iov_len) != REDIS_OK)
                break;
            total += v[i].iov_len;
        }
        evbuffer_drain(in, total);
        if (i < n && i < 8)
            break;
    }
    while (!l->down && !l->freed) {
        reply = NULL;
        if (redisReaderGetReply(l->reader, &reply) != REDIS_OK) {
            char buf[160];
            snprintf(buf, sizeof(buf), "disconnected: %.120s", l->reader->errstr);
            go_down(l, buf);
            break;
        }
        if (reply == NULL)
            break;
        if (l->on_reply != NULL)
            l->on_reply(l, reply, l->arg);
        else
            freeReplyObject(reply);
    }
    leave(l);
}

/* Connected, closed, or failed. */
static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct sl_link *l = arg;
    char buf[200], why[170];
    int e = EVUTIL_SOCKET_ERROR();

    (void)bev;
    l->dispatching++;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        (void)setsockopt(bufferevent_getfd(l->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        l->up = 1;
        if (l->on_state != NULL)
            l->on_state(l, 1, NULL, l->arg);
    } else if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        if (l->ssl != NULL && tls_failure(l, why, sizeof(why))) {
            /* why says it */
        } else if (what & BEV_EVENT_EOF) {
            snprintf(why, sizeof(why), "%s", l->up ? "closed" : "connection closed by the server");
        } else {
            snprintf(why, sizeof(why), "%s", e ? evutil_socket_error_to_string(e) : "error");
        }
        /* Replies that came with the close are still handed over. */
        if (!l->freed && evbuffer_get_length(bufferevent_get_input(l->bev)) > 0)
            on_read(l->bev, l);
        snprintf(buf, sizeof(buf), "%s: %s", l->up ? "disconnected" : "connect failed", why);
        go_down(l, buf);
    }
    leave(l);
}

/* ---------------------------------------------------------------------
 * The link
 * ------------------------------------------------------------------ */

/* Resolves host:port, IPv4 first as hiredis does, so that "localhost"
 * reaches a server bound to 127.0.0.1. Returns the list (new:
 * freeaddrinfo()), or NULL with err. */
static struct addrinfo *resolve(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char ps[8];
    int rc;

    snprintf(ps, sizeof(ps), "%d", port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, ps, &hints, &res)) != 0) {
        hints.ai_family = AF_INET6;
        if ((rc = getaddrinfo(host, ps, &hints, &res)) != 0) {
            sl__put_err(err, errlen, "connect failed: %s", gai_strerror(rc));
            return NULL;
        }
    }
    return res;
}

/* Starts connecting (see link.h). */
struct sl_link *sl__link_new(struct event_base *base, const struct sl_redis_url *u,
                             const struct sl_tls *tls, sl_link_reply_cb *on_reply,
                             sl_link_state_cb *on_state, void *arg,
                             char *err, size_t errlen)
{
    struct sl_link *l = calloc(1, sizeof(*l));
    struct addrinfo *ai = NULL;

    if (l == NULL) {
        sl__put_err(err, errlen, "connect failed: out of memory");
        return NULL;
    }
    l->on_reply = on_reply;
    l->on_state = on_state;
    l->arg = arg;
    if ((l->reader = redisReaderCreate()) == NULL) {
        sl__put_err(err, errlen, "connect failed: out of memory");
        goto fail;
    }
    if ((ai = resolve(u->host, u->port, err, errlen)) == NULL)
        goto fail;
    if (u->tls) {
        static const struct sl_tls none = { NULL, NULL, NULL, NULL, 0 };
        char terr[200];

        if ((l->ssl = tls_session(tls != NULL ? tls : &none, u->host, terr, sizeof(terr))) == NULL) {
            sl__put_err(err, errlen, "connect failed: %s", terr);
            goto fail;
        }
        l->bev = bufferevent_openssl_socket_new(base, -1, l->ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (l->bev == NULL) {
            SSL_free(l->ssl);
            l->ssl = NULL;
        } else {
            /* A server that closes without close_notify is an EOF. */
            bufferevent_openssl_set_allow_dirty_shutdown(l->bev, 1);
        }
    } else {
        l->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (l->bev == NULL) {
        sl__put_err(err, errlen, "connect failed: out of memory");
        goto fail;
    }
    bufferevent_setcb(l->bev, on_read, NULL, on_event, l);
    if (bufferevent_enable(l->bev, EV_READ | EV_WRITE) != 0) {
        sl__put_err(err, errlen, "connect failed: cannot attach to the event loop");
        goto fail;
    }
    if (bufferevent_socket_connect(l->bev, ai->ai_addr, (int)ai->ai_addrlen) != 0) {
        int e = EVUTIL_SOCKET_ERROR();
        sl__put_err(err, errlen, "connect failed: %s",
                    e ? evutil_socket_error_to_string(e) : "cannot connect");
        goto fail;
    }
    freeaddrinfo(ai);
    return l;

fail:
    if (ai != NULL)
        freeaddrinfo(ai);
    l->on_state = NULL;
    sl__link_free(l);
    return NULL;
}

/* Queues one formatted command (see link.h). */
int sl__link_send(struct sl_link *l, const char *cmd, size_t len)
{
    if (l == NULL || l->down || l->freed)
        return -1;
    return bufferevent_write(l->bev, cmd, len) == 0 ? 0 : -1;
}

/* Writes the queued bytes now on a plain, connected socket (see
 * link.h). A write error is left for the loop to report: the socket
 * stays readable and the next read meets it. */
void sl__link_flush(struct sl_link *l)
{
    struct evbuffer *out;
    int fd;

    if (l == NULL || l->ssl != NULL || !l->up || l->down || l->freed)
        return;
    out = bufferevent_get_output(l->bev);
    fd = bufferevent_getfd(l->bev);
    if (fd >= 0 && evbuffer_get_length(out) > 0)
        (void)evbuffer_write(out, fd);
}

/* Returns the socket, or -1. */
int sl__link_fd(const struct sl_link *l)
{
    return l != NULL && l->bev != NULL ? (int)bufferevent_getfd(l->bev) : -1;
}

/* Closes and frees (see link.h). */
void sl__link_free(struct sl_link *l)
{
    if (l == NULL)
        return;
    if (l->dispatching > 0) {
        l->freed = 1;
        if (l->bev != NULL)
            bufferevent_disable(l->bev, EV_READ | EV_WRITE);
        return;
    }
    if (l->bev != NULL)
        bufferevent_free(l->bev);     /* frees l->ssl and closes the socket */
    if (l->reader != NULL)
        redisReaderFree(l->reader);
    free(l);
}

/* ---------------------------------------------------------------------
 * TLS settings
 * ------------------------------------------------------------------ */

/* Copies one optional string into *dst. Returns 0 or -1. */
static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    return (*dst = strdup(src)) != NULL ? 0 : -1;
}

/* Deep-copies src into dst (see internal.h). */
int sl__tls_copy(struct sl_tls *dst, const struct sl_tls *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->insecure = src->insecure;
    if (dup_opt(&dst->ca_file, src->ca_file) != 0 || dup_opt(&dst->cert_file, src->cert_file) != 0
        || dup_opt(&dst->key_file, src->key_file) != 0
        || dup_opt(&dst->server_name, src->server_name) != 0) {
        sl__tls_clear(dst);
        return -1;
    }
    return 0;
}

/* Frees the strings of t (see internal.h). */
void sl__tls_clear(struct sl_tls *t)
{
    free(t->ca_file);
    free(t->cert_file);
    free(t->key_file);
    free(t->server_name);
    memset(t, 0, sizeof(*t));
}
