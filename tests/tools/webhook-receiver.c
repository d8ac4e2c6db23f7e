/* webhook-receiver.c -- a small merchant server for the webhook worker:
 * `make run` starts it so the README tour shows a delivered, signed
 * webhook, and check_webhook.c starts it in its failure modes.
 *
 *   webhook-receiver [--port N] [--delay-ms N] [--fail-pct P] [--hang]
 *                    [--tls-cert PEM --tls-key PEM]
 *
 * It listens on 127.0.0.1:N (0, the default: a free port), verifies the
 * Standard Webhooks signature of every POST with the secret of
 * $SLUICE_WEBHOOK_SECRET_FILE or $SLUICE_WEBHOOK_SECRET (as the worker
 * reads it), and logs one line per delivery on stdout:
 *   event=delivery webhook_id=ID timestamp=T verified=1 status=204 body=...
 * It answers 204 after --delay-ms; 401 to a signature that does not
 * verify; 400 to a body holding "reject":true (a merchant refusing it);
 * 503 with Retry-After: 1 to --fail-pct percent of requests at random;
 * never, with --hang. Its first line is event=receiver_listening port=N.
 * With --tls-cert and --tls-key it speaks HTTPS only (the certificate
 * chain and key in PEM), so the worker's certificate check can be tested.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>

static unsigned char key[1024];   /* HMAC key */
static size_t keylen;             /* bytes in key */
static long delay_ms;             /* answer after this long */
static int fail_pct;              /* answer 503 to this percentage */
static int hang;                  /* never answer */
static struct event_base *base;   /* the loop */
static SSL_CTX *tls;              /* --tls-cert: the server's TLS context */

/* A request waiting for its delayed answer. */
struct later {
    struct evhttp_request *req;   /* borrowed until answered */
    struct event *ev;             /* the delay's timer (owned) */
    int status;                   /* the answer */
};

/* Loads the secret as the webhook worker does ("whsec_<base64>" is the
 * decoded bytes). Returns 0 or -1. */
static int load_secret(void)
{
    const char *file = getenv("SLUICE_WEBHOOK_SECRET_FILE"), *env = getenv("SLUICE_WEBHOOK_SECRET");
    char buf[1100];
    size_t n = 0;

    if (file != NULL && file[0] != '\0') {
        FILE *f = fopen(file, "r");
        if (f == NULL)
            return -1;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
    } else if (env != NULL && strlen(env) < sizeof(buf)) {
        n = strlen(env);
        memcpy(buf, env, n + 1);
    }
    if (n == 0)
        return -1;
    if (strncmp(buf, "whsec_", 6) == 0) {
        size_t l = strlen(buf + 6);
        int k;
        if (l == 0 || l % 4 != 0 || l / 4 * 3 > sizeof(key))
            return -1;
        k = EVP_DecodeBlock(key, (unsigned char *)buf + 6, (int)l);
        if (k < 0)
            return -1;
        k -= (buf[6 + l - 1] == '=') + (buf[6 + l - 2] == '=');
        keylen = (size_t)k;
    } else {
        memcpy(key, buf, n);
        keylen = n;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

/* Tells whether sig ("v1,<base64> [v1,...]") holds the signature of
 * id.ts.body. */
static int verified(const char *id, const char *ts, const char *body, size_t len,
                    const char *sig)
{
    unsigned char mac[EVP_MAX_MD_SIZE], *m;
    unsigned int maclen = 0;
    char want[100];
    size_t il = strlen(id), tl = strlen(ts);
    const char *p;

    if ((m = malloc(il + tl + len + 2)) == NULL)
        return 0;
    memcpy(m, id, il);
    m[il] = '.';
    memcpy(m + il + 1, ts, tl);
    m[il + 1 + tl] = '.';
    memcpy(m + il + tl + 2, body, len);
    HMAC(EVP_sha256(), key, (int)keylen, m, il + tl + len + 2, mac, &maclen);
    free(m);
    memcpy(want, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)want + 3, mac, (int)maclen);
    /* Space-separated signatures: any one may match. */
    for (p = sig; p != NULL && *p != '\0'; p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL) {
        size_t wl = strlen(want);
        if (strncmp(p, want, wl) == 0 && (p[wl] == '\0' || p[wl] == ' '))
            return 1;
    }
    return 0;
}

/* Answers a delayed request. */
static void on_later(evutil_socket_t fd, short what, void *arg)
{
    struct later *l = arg;

    (void)fd;
    (void)what;
    evhttp_send_reply(l->req, l->status, l->status == 204 ? "No Content" : "Error", NULL);
    event_free(l->ev);
    free(l);
}

/* Every request: verify, log, answer. */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const char *id = evhttp_find_header(h, "webhook-id");
    const char *ts = evhttp_find_header(h, "webhook-timestamp");
    const char *sig = evhttp_find_header(h, "webhook-signature");
    size_t len = evbuffer_get_length(in);
    char *body = malloc(len + 1);
    int ok, status;
    struct later *l;
    struct timeval tv;

    (void)arg;
    if (body == NULL) {
        evhttp_send_reply(req, 500, "Error", NULL);
        return;
    }
    evbuffer_copyout(in, body, len);
    body[len] = '\0';
    ok = id != NULL && ts != NULL && sig != NULL && verified(id, ts, body, len, sig);
    if (!ok)
        status = 401;
    else if (strstr(body, "\"reject\":true") != NULL)
        status = 400;
    else if (fail_pct > 0 && random() % 100 < fail_pct)
        status = 503;
    else
        status = 204;
    printf("event=delivery webhook_id=%s timestamp=%s verified=%d status=%d body=%s\n",
           id != NULL ? id : "-", ts != NULL ? ts : "-", ok, hang ? 0 : status, body);
    fflush(stdout);
    free(body);
    if (hang)
        return;                   /* never answered: the client times out */
    if (status == 503)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
    if (delay_ms <= 0 || (l = calloc(1, sizeof(*l))) == NULL) {
        evhttp_send_reply(req, status, status == 204 ? "No Content" : "Error", NULL);
        return;
    }
    l->req = req;
    l->status = status;
    l->ev = evtimer_new(base, on_later, l);
    tv.tv_sec = delay_ms / 1000;
    tv.tv_usec = (delay_ms % 1000) * 1000;
    if (l->ev == NULL || evtimer_add(l->ev, &tv) < 0) {
        evhttp_send_reply(req, status, "Error", NULL);
        if (l->ev != NULL)
            event_free(l->ev);
        free(l);
    }
}

/* evhttp's bufferevent factory in TLS mode: each accepted connection
 * is a server-side OpenSSL bufferevent. */
static struct bufferevent *tls_bev(struct event_base *b, void *arg)
{
    SSL *ssl = SSL_new(tls);
    struct bufferevent *bev;

    (void)arg;
    if (ssl == NULL)
        return NULL;
    bev = bufferevent_openssl_socket_new(b, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    return bev;
}

/* Makes the server's TLS context from a PEM chain and key. Returns 0 or
 * -1 (after printing why). */
static int load_tls(const char *cert, const char *keyfile)
{
    if ((tls = SSL_CTX_new(TLS_server_method())) == NULL ||
        SSL_CTX_use_certificate_chain_file(tls, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(tls, keyfile, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(tls) != 1) {
        fprintf(stderr, "webhook-receiver: cannot use %s and %s\n", cert, keyfile);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct evhttp *http;
    struct evhttp_bound_socket *bs;
    int port = 0, i;
    const char *cert = NULL, *keyfile = NULL;
    struct sockaddr_storage ss;
    ev_socklen_t sl = sizeof(ss);

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc)
            delay_ms = atol(argv[++i]);
        else if (strcmp(argv[i], "--fail-pct") == 0 && i + 1 < argc)
            fail_pct = atoi(argv[++i]);
        else if (strcmp(argv[i], "--hang") == 0)
            hang = 1;
        else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc)
            cert = argv[++i];
        else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc)
            keyfile = argv[++i];
        else {
            fprintf(stderr, "usage: webhook-receiver [--port N] [--delay-ms N] "
                    "[--fail-pct P] [--hang] [--tls-cert PEM --tls-key PEM]\n");
            return 2;
        }
    }
    if (load_secret() < 0) {
        fprintf(stderr, "webhook-receiver: set SLUICE_WEBHOOK_SECRET_FILE or "
                "SLUICE_WEBHOOK_SECRET\n");
        return 2;
    }
    if ((cert != NULL) != (keyfile != NULL)) {
        fprintf(stderr, "webhook-receiver: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (cert != NULL && load_tls(cert, keyfile) < 0)
        return 1;
    srandom((unsigned)(getpid() ^ time(NULL)));
    if ((base = event_base_new()) == NULL || (http = evhttp_new(base)) == NULL)
        return 1;
    evhttp_set_gencb(http, on_request, NULL);
    if (tls != NULL)
        evhttp_set_bevcb(http, tls_bev, NULL);
    if ((bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", (unsigned short)port)) == NULL) {
        fprintf(stderr, "webhook-receiver: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    printf("event=receiver_listening port=%d\n", port);
    fflush(stdout);
    event_base_dispatch(base);
    evhttp_free(http);
    event_base_free(base);
    SSL_CTX_free(tls);
    return 0;
}
