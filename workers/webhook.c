/* webhook.c -- the "webhook" worker: tells a merchant's server what
 * happened, by POSTing each entry of its stream (by default
 * `notifications`) as JSON, following the Standard Webhooks convention.
 *
 * It is an async handler: `handle` starts the HTTP request on the
 * worker's event loop with libevent's client and returns SL_PENDING; the
 * request's callback completes the entry. With `concurrency` 64 one
 * process has 64 deliveries in flight.
 *
 * Each request carries three headers:
 *   webhook-id         the notification's own `id` field: stable across
 *                      retries and dead-letter replays (msg->id is not),
 *                      so the receiver can drop a repeat;
 *   webhook-timestamp  Unix seconds of this attempt;
 *   webhook-signature  "v1," + base64(HMAC-SHA256(secret, id.timestamp.body)).
 * The body is the entry's `data`, byte for byte.
 *
 * Outcomes: 2xx acks. 408, 429, 5xx, a timeout, a refused or broken
 * connection retry, no sooner than the receiver's Retry-After (seconds)
 * and than this worker's own schedule (5 s doubling, at most an hour:
 * with max_deliveries 12 a delivery is tried for over two hours, so an
 * outage of 15 minutes dead-letters nothing). 1xx and 3xx retry too: a
 * redirect is not followed (the signature names this URL), and a
 * receiver that answers one is misconfigured for now, not refusing the
 * notification. Any other 4xx is dead as `webhook_rejected: <status>`. An https:// certificate that does not
 * verify retries too, as `webhook_tls` with OpenSSL's reason, also logged
 * (event=webhook_tls_refused) so that it is not taken for an outage.
 *
 * Settings come from the environment (docs/configuration.md, "The webhook
 * worker"), read once at init: SLUICE_WEBHOOK_URL (http:// or https://),
 * SLUICE_WEBHOOK_SECRET_FILE or SLUICE_WEBHOOK_SECRET (never argv, never
 * logged), SLUICE_WEBHOOK_TIMEOUT_MS, SLUICE_WEBHOOK_RETRY_FIRST_MS,
 * SLUICE_WEBHOOK_CA_FILE.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/x509v3.h>
#include "sluice.h"

#define WEBHOOK_TIMEOUT_MS 10000  /* default request timeout, ms */
#define WEBHOOK_FIRST_MS 5000     /* first retry of the schedule, ms */
#define WEBHOOK_CAP_MS 3600000    /* longest delay of the schedule, ms (an hour) */
#define WEBHOOK_SECRET_MAX 1024   /* bytes of a secret */

/* The worker's state, one per process. */
struct webhook {
    char scheme[8];               /* "http" or "https" */
    char host[256];               /* from the URL */
    int port;                     /* from the URL, or 80 / 443 */
    char path[2048];              /* path and query, "/" when none */
    unsigned char key[WEBHOOK_SECRET_MAX]; /* HMAC key (wiped at destroy) */
    size_t keylen;                /* bytes in key */
    long long timeout_ms;         /* per request */
    long long first_ms;           /* first delay of the retry schedule, ms */
    SSL_CTX *ssl;                 /* https only: verifies the peer (owned) */
};

/* One delivery in flight. */
struct delivery {
    struct webhook *wh;           /* borrowed */
    struct sl_ctx *ctx;           /* the entry's context until completed */
    struct evhttp_connection *conn; /* freed on completion by libevent */
    char id[128];                 /* webhook-id */
    int attempts;                 /* failed attempts before this one */
    long verify_err;              /* https: the first X509_V_ERR_* of the handshake, 0 when none */
};

/* ---------------------------------------------------------------------
 * Settings
 * ------------------------------------------------------------------ */

/* Decodes standard base64 src into dst (cap bytes). Returns the length,
 * or -1 on bad input or overflow. */
static int b64_decode(const char *src, unsigned char *dst, size_t cap)
{
    size_t len = strlen(src);
    int n;

    if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap)
        return -1;
    n = EVP_DecodeBlock(dst, (const unsigned char *)src, (int)len);
    if (n < 0)
        return -1;
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    if (src[len - 1] == '=')
        n--;
    if (src[len - 2] == '=')
        n--;
    return n;
}

/* Loads the secret into wh->key: the content of $SLUICE_WEBHOOK_SECRET_FILE
 * (one final newline removed), else $SLUICE_WEBHOOK_SECRET. A secret
 * "whsec_<base64>" (the Standard Webhooks form) is the decoded bytes;
 * any other is used as it is. Returns 0, or -1 with why in err (never the
 * secret). */
static int load_secret(struct webhook *wh, char *err, size_t errlen)
{
    char buf[WEBHOOK_SECRET_MAX + 2];
    const char *file = getenv("SLUICE_WEBHOOK_SECRET_FILE"), *env = getenv("SLUICE_WEBHOOK_SECRET");
    size_t n = 0;
    int rc = -1;

    if (file != NULL && file[0] != '\0') {
        FILE *f = fopen(file, "r");
        if (f == NULL) {
            snprintf(err, errlen, "SLUICE_WEBHOOK_SECRET_FILE %s: %s", file, strerror(errno));
            return -1;
        }
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        if (n > WEBHOOK_SECRET_MAX) {
            snprintf(err, errlen, "SLUICE_WEBHOOK_SECRET_FILE %s: longer than %d bytes", file,
                     WEBHOOK_SECRET_MAX);
            goto out;
        }
        buf[n] = '\0';
        if (n > 0 && buf[n - 1] == '\n')
            buf[--n] = '\0';
        if (n > 0 && buf[n - 1] == '\r')
            buf[--n] = '\0';
    } else if (env != NULL && env[0] != '\0') {
        n = strlen(env);
        if (n > WEBHOOK_SECRET_MAX) {
            snprintf(err, errlen, "SLUICE_WEBHOOK_SECRET: longer than %d bytes", WEBHOOK_SECRET_MAX);
            return -1;
        }
        memcpy(buf, env, n + 1);
    } else {
        snprintf(err, errlen, "no secret: set SLUICE_WEBHOOK_SECRET_FILE or SLUICE_WEBHOOK_SECRET");
        return -1;
    }
    if (n == 0) {
        snprintf(err, errlen, "the webhook secret is empty");
        goto out;
    }
    if (strncmp(buf, "whsec_", 6) == 0) {
        int k = b64_decode(buf + 6, wh->key, sizeof(wh->key));
        if (k <= 0) {
            snprintf(err, errlen, "the webhook secret whsec_... is not valid base64");
            goto out;
        }
        wh->keylen = (size_t)k;
    } else {
        memcpy(wh->key, buf, n);
        wh->keylen = n;
    }
    rc = 0;
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

/* Parses $SLUICE_WEBHOOK_URL into wh. Returns 0, or -1 with why in err. */
static int load_url(struct webhook *wh, char *err, size_t errlen)
{
    const char *url = getenv("SLUICE_WEBHOOK_URL");
    struct evhttp_uri *u;
    const char *scheme, *host, *path, *query;
    int rc = -1;

    if (url == NULL || url[0] == '\0') {
        snprintf(err, errlen, "SLUICE_WEBHOOK_URL is not set");
        return -1;
    }
    if ((u = evhttp_uri_parse(url)) == NULL) {
        snprintf(err, errlen, "SLUICE_WEBHOOK_URL is not a URL");
        return -1;
    }
    scheme = evhttp_uri_get_scheme(u);
    host = evhttp_uri_get_host(u);
    path = evhttp_uri_get_path(u);
    query = evhttp_uri_get_query(u);
    if (scheme == NULL || (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        snprintf(err, errlen, "SLUICE_WEBHOOK_URL: expected http:// or https://");
        goto out;
    }
    if (host == NULL || host[0] == '\0' || strlen(host) >= sizeof(wh->host)) {
        snprintf(err, errlen, "SLUICE_WEBHOOK_URL: no host");
        goto out;
    }
    snprintf(wh->scheme, sizeof(wh->scheme), "%s", strcasecmp(scheme, "https") == 0 ? "https" : "http");
    snprintf(wh->host, sizeof(wh->host), "%s", host);
    wh->port = evhttp_uri_get_port(u);
    if (wh->port <= 0)
        wh->port = strcmp(wh->scheme, "https") == 0 ? 443 : 80;
    if ((size_t)snprintf(wh->path, sizeof(wh->path), "%s%s%s",
                         path != NULL && path[0] != '\0' ? path : "/",
                         query != NULL ? "?" : "", query != NULL ? query : "") >= sizeof(wh->path)) {
        snprintf(err, errlen, "SLUICE_WEBHOOK_URL: path too long");
        goto out;
    }
    rc = 0;
out:
    evhttp_uri_free(u);
    return rc;
}

/* The certificate check's callback: keeps OpenSSL's verdict, and notes
 * the first reason a certificate was refused on the delivery (the SSL's
 * app data), because libevent reports a failed handshake only as a
 * failed request, after its connection (and the SSL) is gone. */
static int on_verify(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct delivery *dv = ssl != NULL ? SSL_get_app_data(ssl) : NULL;

    if (!ok && dv != NULL && dv->verify_err == 0)
        dv->verify_err = X509_STORE_CTX_get_error(x);
    return ok;
}

/* Makes the TLS context of an https:// URL: the system's trusted
 * certificates (or $SLUICE_WEBHOOK_CA_FILE), peer verification on.
 * Returns 0, or -1 with why in err. */
static int load_tls(struct webhook *wh, char *err, size_t errlen)
{
    const char *ca = getenv("SLUICE_WEBHOOK_CA_FILE");

    if ((wh->ssl = SSL_CTX_new(TLS_client_method())) == NULL) {
        snprintf(err, errlen, "cannot create a TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(wh->ssl, TLS1_2_VERSION);
    SSL_CTX_set_verify(wh->ssl, SSL_VERIFY_PEER, on_verify);
    if ((ca != NULL && ca[0] != '\0') ? SSL_CTX_load_verify_locations(wh->ssl, ca, NULL) != 1
                                      : SSL_CTX_set_default_verify_paths(wh->ssl) != 1) {
        snprintf(err, errlen, "cannot load the trusted certificates%s%s",
                 ca != NULL && ca[0] != '\0' ? " of " : "", ca != NULL ? ca : "");
        return -1;
    }
    return 0;
}

/* Reads the duration in ms of environment variable name into *out
 * (dflt when unset or empty). Returns 0, or -1 with why in err. */
static int env_ms(const char *name, long long dflt, long long *out, char *err, size_t errlen)
{
    const char *t = getenv(name);
    char *end;
    long long v;

    *out = dflt;
    if (t == NULL || t[0] == '\0')
        return 0;
    v = strtoll(t, &end, 10);
    if (*end != '\0' || v < 1 || v > WEBHOOK_CAP_MS) {
        snprintf(err, errlen, "%s: expected 1 to %d", name, WEBHOOK_CAP_MS);
        return -1;
    }
    *out = v;
    return 0;
}

/* Reads the settings. Returns 0, or a negative SL_E* code after logging
 * why (the process exits). */
static int webhook_init(const struct sl_worker_info *info, void **privdata)
{
    struct webhook *wh = calloc(1, sizeof(*wh));
    char err[300];

    (void)info;
    if (wh == NULL)
        return SL_ENOMEM;
    if (env_ms("SLUICE_WEBHOOK_TIMEOUT_MS", WEBHOOK_TIMEOUT_MS, &wh->timeout_ms, err,
               sizeof(err)) < 0 ||
        env_ms("SLUICE_WEBHOOK_RETRY_FIRST_MS", WEBHOOK_FIRST_MS, &wh->first_ms, err,
               sizeof(err)) < 0)
        goto fail;
    if (load_url(wh, err, sizeof(err)) < 0 || load_secret(wh, err, sizeof(err)) < 0)
        goto fail;
    if (strcmp(wh->scheme, "https") == 0 && load_tls(wh, err, sizeof(err)) < 0)
        goto fail;
    *privdata = wh;
    return 0;
fail:
    fprintf(stderr, "level=error event=webhook_config error=\"%s\"\n", err);
    if (wh->ssl != NULL)
        SSL_CTX_free(wh->ssl);
    OPENSSL_cleanse(wh->key, sizeof(wh->key));
    free(wh);
    return SL_EINVAL;
}

/* Frees the state, wiping the key. */
static void webhook_destroy(void *privdata)
{
    struct webhook *wh = privdata;

    if (wh == NULL)
        return;
    if (wh->ssl != NULL)
        SSL_CTX_free(wh->ssl);
    OPENSSL_cleanse(wh->key, sizeof(wh->key));
    free(wh);
}

/* ---------------------------------------------------------------------
 * Delivery
 * ------------------------------------------------------------------ */

/* Writes "v1," + base64(HMAC-SHA256(key, id.ts.body)) into out (room
 * for 64 bytes). Returns 0 or -1 (out of memory). */
static int sign(const struct webhook *wh, const char *id, const char *ts,
                const char *body, size_t len, char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t il = strlen(id), tl = strlen(ts);
    unsigned char *m = malloc(il + tl + len + 2);

    if (m == NULL)
        return -1;
    memcpy(m, id, il);
    m[il] = '.';
    memcpy(m + il + 1, ts, tl);
    m[il + 1 + tl] = '.';
    memcpy(m + il + tl + 2, body, len);
    if (HMAC(EVP_sha256(), wh->key, (int)wh->keylen, m, il + tl + len + 2, mac, &maclen) == NULL) {
        free(m);
        return -1;
    }
    free(m);
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen);
    return 0;
}

/* The delay this worker wants before retry number attempts + 1: the
 * first delay (WEBHOOK_FIRST_MS unless set) doubling, at most
 * WEBHOOK_CAP_MS. */
static long long schedule_ms(const struct webhook *wh, int attempts)
{
    long long d = wh->first_ms;
    int i;

    for (i = 0; i < attempts && d < WEBHOOK_CAP_MS; i++)
        d *= 2;
    return d < WEBHOOK_CAP_MS ? d : WEBHOOK_CAP_MS;
}

/* Returns the Retry-After of a response in ms (delta seconds only; an
 * HTTP date or nonsense gives 0), at most WEBHOOK_CAP_MS. */
static long long retry_after_ms(struct evhttp_request *req)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "Retry-After");
    char *end;
    long long s;

    if (v == NULL)
        return 0;
    s = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || s < 0)
        return 0;
    return s > WEBHOOK_CAP_MS / 1000 ? WEBHOOK_CAP_MS : s * 1000;
}

/* The request's callback: decides the entry from the status. req is NULL
 * (or has status 0) on a timeout, a refused or broken connection, a TLS
 * failure. */
static void on_response(struct evhttp_request *req, void *arg)
{
    struct delivery *dv = arg;
    struct sl_ctx *ctx = dv->ctx;
    int status = req != NULL ? evhttp_request_get_response_code(req) : 0;
    long long wait;
    enum sl_disposition d;

    if (ctx == NULL) {
        free(dv);               /* the request failed to start: decided already */
        return;
    }
    if (status >= 200 && status < 300) {
        d = SL_ACK;
    } else if (status == 0 || status == 408 || status == 429 || status >= 500 || status < 400) {
        /* The schedule of its own, or the receiver's Retry-After when
         * that is longer. */
        wait = req != NULL && status != 0 ? retry_after_ms(req) : 0;
        sl_ctx_retry_after(ctx, wait > schedule_ms(dv->wh, dv->attempts) ? wait
                                                                 : schedule_ms(dv->wh, dv->attempts));
        /* A refused certificate is retried too (a receiver's renewal
         * gone wrong is fixed in time), but named, so that it is not
         * mistaken for an outage. */
        if (status == 0 && dv->verify_err != 0) {
            const char *why = X509_verify_cert_error_string(dv->verify_err);

            /* On stderr like the init error: the operator must see it. */
            fprintf(stderr, "level=warn event=webhook_tls_refused webhook_id=%s "
                    "error=\"certificate verification failed: %s\"\n", dv->id, why);
            d = sl_ctx_fail(ctx, SL_RETRY, "webhook_tls", "certificate verification failed: %s",
                            why);
        }
        else if (status == 0)
            d = sl_ctx_fail(ctx, SL_RETRY, "webhook_unreachable", "%s",
                            "timeout, refused or broken connection");
        else
            d = sl_ctx_fail(ctx, SL_RETRY, "webhook_failed", "%d", status);
    } else {
        d = sl_ctx_fail(ctx, SL_DEAD, "webhook_rejected", "%d", status);
    }
    free(dv);
    sl_ctx_complete(ctx, d);
}

/* Finds the notification's `id` (the webhook-id) in data: a string of 1
 * to 127 characters of [A-Za-z0-9_.:-] (an order ID of up to 64 and its
 * outcome fit). Returns 0 with it in *out (borrowed from data), or -1
 * with missing_field, wrong_type or invalid_id on ctx. */
static int note_id(struct sl_ctx *ctx, json_t *data, const char **out)
{
    json_t *v = json_object_get(data, "id");
    const char *s;
    size_t i, n;

    if (v == NULL)
        return sl_ctx_fail(ctx, SL_DEAD, "missing_field", "id"), -1;
    if (!json_is_string(v))
        return sl_ctx_fail(ctx, SL_DEAD, "wrong_type", "id: expected a string"), -1;
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > 127)
        return sl_ctx_fail(ctx, SL_DEAD, "invalid_id", "id: expected 1-127 characters"), -1;
    for (i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || (s[i] != '\0' && strchr("_.:-", s[i]) != NULL)))
            return sl_ctx_fail(ctx, SL_DEAD, "invalid_id", "id: unexpected character"), -1;
    *out = s;
    return 0;
}

/* Starts the delivery of one notification and returns SL_PENDING, or
 * decides at once when it cannot be sent (no `id`: dead; out of memory:
 * retry). */
static enum sl_disposition webhook_handle(struct sl_ctx *ctx, const struct sl_msg *msg,
                                          void *privdata)
{
    struct webhook *wh = privdata;
    struct delivery *dv = NULL;
    struct bufferevent *bev = NULL;
    struct evhttp_request *req = NULL;
    struct evkeyvalq *hd;
    struct timeval tv;
    const char *id;
    char ts[24], sig[64], hostport[300];
    SSL *ssl = NULL;

    if (note_id(ctx, msg->data, &id) < 0)
        return SL_DEAD;
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    if ((dv = calloc(1, sizeof(*dv))) == NULL)
        return sl_ctx_fail(ctx, SL_RETRY, "webhook_oom", NULL);
    dv->wh = wh;
    dv->ctx = ctx;
    dv->attempts = msg->attempts;
    snprintf(dv->id, sizeof(dv->id), "%s", id);
    if (sign(wh, dv->id, ts, msg->raw_data, msg->raw_data_len, sig) < 0)
        goto oom;
    if (wh->ssl != NULL) {
        if ((ssl = SSL_new(wh->ssl)) == NULL)
            goto oom;
        /* Verify that the certificate names this host, and send SNI. */
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, wh->host) != 1 || SSL_set_tlsext_host_name(ssl, wh->host) != 1 ||
            SSL_set_app_data(ssl, dv) != 1)
            goto oom;
        bev = bufferevent_openssl_socket_new(sl_ctx_base(ctx), -1, ssl,
                                             BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (bev == NULL)
            goto oom;
        ssl = NULL;               /* the bufferevent owns it */
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    }
    dv->conn = evhttp_connection_base_bufferevent_new(sl_ctx_base(ctx), NULL, bev, wh->host,
                                                      (unsigned short)wh->port);
    if (dv->conn == NULL)
        goto oom;
    bev = NULL;                   /* the connection owns it */
    tv.tv_sec = wh->timeout_ms / 1000;
    tv.tv_usec = (wh->timeout_ms % 1000) * 1000;
    evhttp_connection_set_timeout_tv(dv->conn, &tv);
    evhttp_connection_set_retries(dv->conn, 0);
    if ((req = evhttp_request_new(on_response, dv)) == NULL)
        goto oom;
    hd = evhttp_request_get_output_headers(req);
    if ((wh->port == 80 && strcmp(wh->scheme, "http") == 0) ||
        (wh->port == 443 && strcmp(wh->scheme, "https") == 0))
        snprintf(hostport, sizeof(hostport), "%s", wh->host);
    else
        snprintf(hostport, sizeof(hostport), "%s:%d", wh->host, wh->port);
    if (evhttp_add_header(hd, "Host", hostport) < 0 ||
        evhttp_add_header(hd, "Content-Type", "application/json") < 0 ||
        /* One connection per delivery, and libevent frees a connection
         * marked free-on-completion only when it closes after its
         * request: without this, a receiver that keeps connections alive
         * leaves each one (its socket and buffers) open for ever. */
        evhttp_add_header(hd, "Connection", "close") < 0 ||
        evhttp_add_header(hd, "User-Agent", "sluice-webhook/" SL_VERSION) < 0 ||
        evhttp_add_header(hd, "webhook-id", dv->id) < 0 ||
        evhttp_add_header(hd, "webhook-timestamp", ts) < 0 ||
        evhttp_add_header(hd, "webhook-signature", sig) < 0 ||
        evbuffer_add(evhttp_request_get_output_buffer(req), msg->raw_data,
                     msg->raw_data_len) < 0)
        goto oom;
    /* The connection is freed by libevent once this request is done. */
    evhttp_connection_free_on_completion(dv->conn);
    if (evhttp_make_request(dv->conn, req, EVHTTP_REQ_POST, wh->path) < 0) {
        /* The connection could not even start (no socket): libevent keeps
         * what it was given, and may still call back, which then only
         * frees dv. */
        dv->ctx = NULL;
        return sl_ctx_fail(ctx, SL_RETRY, "webhook_unreachable", "cannot send the request");
    }
    return SL_PENDING;
oom:
    if (req != NULL)
        evhttp_request_free(req);
    if (dv->conn != NULL)
        evhttp_connection_free(dv->conn);
    if (bev != NULL)
        bufferevent_free(bev);
    if (ssl != NULL)
        SSL_free(ssl);
    free(dv);
    return sl_ctx_fail(ctx, SL_RETRY, "webhook_oom", NULL);
}

const struct sl_handler webhook_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "webhook",
    .flags = 0,
    .init = webhook_init,
    .handle = webhook_handle,
    .destroy = webhook_destroy,
};
