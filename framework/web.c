/* web.c -- the dashboard's HTTP side (docs/dashboard.md): `sluice web`,
 * its own process with its own Redis connection, and the same pages,
 * read-only, on the pool's listener when metrics.dashboard is true.
 *
 * Paths:
 *   GET  /  /app.js  /app.css         the page, from memory (embedded at build time)
 *   GET  /api/info                    mode, writes allowed, the streams shown
 *   GET  /api/overview                every stream x group (web_data.c)
 *   GET  /api/workers                 live heartbeats
 *   GET  /api/group?stream=&group=    one group          (sluice web only)
 *   GET  /api/dead?stream=&cursor=&count=&code=  a page  (sluice web only)
 *   GET  /api/dead/entry?stream=&id=  one dead letter    (sluice web only)
 *   POST /api/dead/replay {stream,id[,data]}   (sluice web --allow-writes only)
 *   POST /api/dead/purge  {stream,id} or {stream,code[,cursor,until]}
 *
 * The rules, in the order they are applied:
 *   - with a token (SLUICE_WEB_TOKEN or SLUICE_WEB_TOKEN_FILE, never an
 *     argument), every request carries it: "Authorization: Bearer T", or
 *     Basic with any user name and T as the password (so a browser can
 *     ask for it); else 401. Compared in constant time.
 *   - a path that exists answers 405 (with Allow) to a method it never
 *     takes: reads take GET and HEAD, writes POST only;
 *   - a write without --allow-writes (and always on the pool) is 403:
 *     the server refuses it, whatever the page shows;
 *   - a write from another origin is 403: Sec-Fetch-Site must be
 *     same-origin or none when sent, else Origin must be http://<Host>
 *     when sent;
 *   - a write without the page's token (X-Sluice-Token, a random value
 *     made at start and written into the page) is 403.
 * Every answer has a Content-Security-Policy without 'unsafe-inline'
 * (the script is its own file), nosniff, frame-ancestors 'none', and no
 * CORS header at all. Counts, cursors and names are checked and clamped
 * here; the listener's sizes, deadlines and connection cap are
 * metrics.c's.
 *
 * On the pool, the overview and workers come from the supervisor's
 * snapshot (snapshot.c calls sl__web_pool_snapshot), read at most once
 * per WEB_SNAP_MS for every viewer; a request never makes the
 * supervisor wait on Redis. `sluice web` keeps its overview for
 * WEB_SNAP_MS as well, so a hundred open pages cost one read.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <hiredis.h>
#include "internal.h"
#include "pool.h"
#include "web.h"
#include "web_assets.h"           /* generated from framework/web/ */

#define WEB_SNAP_MS 1000          /* an overview serves every request for this long */
#define WEB_MAX_BODY 65536        /* bytes of a write's body (corrected data) */
#define WEB_DEFAULT_LISTEN "127.0.0.1:9122"
#define WEB_TOKEN_MAX 256         /* bytes of the site token */

/* The dashboard of one process. */
struct sl_web {
    const struct sl_config *cfg;  /* `sluice web`: borrowed (the pool's is p->cfg, which a reload replaces) */
    struct sl_pool *pool;         /* the pool whose listener serves it, NULL for `sluice web` */
    struct event_base *base;      /* borrowed (the pool's) or owned */
    struct evhttp *http;          /* borrowed (the pool's) or owned */
    struct sl_http *lim;          /* the listener's limits (metrics.c) */
    struct sl_sync *rc;           /* `sluice web`: its connection, NULL while down */
    struct sl_web_read *rd;       /* the pool: its read of the overview in flight, or NULL */
    struct sl_web_state *st;      /* `sluice web`: the overview's state */
    json_t *ov;                   /* `sluice web`: the last overview (owned) */
    uint64_t ov_at;               /* when it was read (monotonic ms) */
    int allow_writes;             /* --allow-writes */
    char csrf[65];                /* the page's write token (hex) */
    char token[WEB_TOKEN_MAX + 1]; /* the site token, "" when none */
    char *page;                   /* index.html with csrf and mode filled in (owned) */
    size_t page_len;
};

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

/* Adds the headers every answer carries. */
static void secure_headers(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                      "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "Cache-Control", "no-store");
}

/* Sends len bytes of type `ctype` with status code. */
static void reply_bytes(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                        const char *bytes, size_t len)
{
    struct evbuffer *b = evbuffer_new();

    secure_headers(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    if (b == NULL || evbuffer_add(b, bytes, len) < 0) {
        if (b != NULL)
            evbuffer_free(b);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    sl__http_send(req, code, reason, b);
    evbuffer_free(b);
}

/* Sends doc (borrowed) as JSON. */
static void reply_json(struct evhttp_request *req, int code, const char *reason, const json_t *doc)
{
    char *s = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY | SL_JSON_DIGITS);

    if (s == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    reply_bytes(req, code, reason, "application/json; charset=utf-8", s, strlen(s));
    free(s);
}

/* Sends {"error": msg} with status code. */
static void reply_err(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
    json_t *o = json_pack("{s:o}", "error", sl__json_text(msg, strlen(msg)));

    if (o == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    reply_json(req, code, reason, o);
    json_decref(o);
}

/* Sends doc (taken) as 200, or the failure: NULL is 503 (Redis), JSON
 * null 404 with err. */
static void reply_doc(struct evhttp_request *req, json_t *doc, const char *err)
{
    if (doc == NULL)
        reply_err(req, 503, "Service Unavailable", err[0] ? err : "redis failed");
    else if (json_is_null(doc))
        reply_err(req, 404, "Not Found", err[0] ? err : "not found");
    else
        reply_json(req, 200, "OK", doc);
    json_decref(doc);
}

/* ------------------------------------------------------------------ */
/* Checks                                                              */
/* ------------------------------------------------------------------ */

/* Compares a (alen bytes) with b in time that depends only on the
 * lengths. Returns 1 when equal. */
static int same_secret(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b), i;
    unsigned char d = alen != blen;

    for (i = 0; i < alen && blen > 0; i++)
        d |= (unsigned char)(a[i] ^ b[i % blen]);
    return d == 0;
}

/* Decodes base64 text s into out (size bytes). Returns the length, or
 * -1 when s is not base64 or does not fit. */
static long b64_decode(const char *s, char *out, size_t size)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned long acc = 0;
    int bits = 0;
    size_t n = 0;

    for (; *s && *s != '='; s++) {
        const char *p = strchr(tab, *s);
        if (p == NULL || *s == '\0')
            return -1;
        acc = (acc << 6) | (unsigned long)(p - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= size)
                return -1;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = '\0';
    return (long)n;
}

/* Returns 1 when req carries the site token (or none is set). */
static int authorized(const struct sl_web *w, struct evhttp_request *req)
{
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    char dec[2 * WEB_TOKEN_MAX + 8];
    const char *colon;
    long n;

    if (w->token[0] == '\0')
        return 1;
    if (a == NULL)
        return 0;
    if (strncmp(a, "Bearer ", 7) == 0)
        return same_secret(a + 7, strlen(a + 7), w->token);
    if (strncmp(a, "Basic ", 6) != 0 || strlen(a + 6) > 4 * sizeof(dec) / 3 ||
        (n = b64_decode(a + 6, dec, sizeof(dec))) < 0 || (colon = memchr(dec, ':', (size_t)n)) == NULL)
        return 0;
    return same_secret(colon + 1, (size_t)(dec + n - (colon + 1)), w->token);
}

/* Returns NULL when a write may come from req's origin, else why not:
 * the rule of Go's CrossOriginProtection (Sec-Fetch-Site, else Origin
 * against Host; a request with neither comes from no browser). */
static const char *cross_origin(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *site = evhttp_find_header(in, "Sec-Fetch-Site");
    const char *origin = evhttp_find_header(in, "Origin");
    const char *host = evhttp_find_header(in, "Host");

    if (site != NULL)
        return strcmp(site, "same-origin") == 0 || strcmp(site, "none") == 0 ? NULL :
               "cross-origin request refused";
    if (origin != NULL) {
        if (host == NULL || strncmp(origin, "http://", 7) != 0 || strcmp(origin + 7, host) != 0)
            return "cross-origin request refused";
    }
    return NULL;
}

/* Returns query parameter `name` of q, or NULL. */
static const char *param(struct evkeyvalq *q, const char *name)
{
    return evhttp_find_header(q, name);
}

/* Returns a count parameter clamped to 1..max (dflt when absent or bad). */
static long count_param(struct evkeyvalq *q, long dflt, long max)
{
    const char *s = param(q, "count");
    char *end;
    long n;

    if (s == NULL)
        return dflt;
    n = strtol(s, &end, 10);
    if (*end != '\0' || end == s || n < 1)
        return dflt;
    return n > max ? max : n;
}

/* ------------------------------------------------------------------ */
/* `sluice web`: Redis and the read paths                              */
/* ------------------------------------------------------------------ */

/* Returns the connection, made again when it broke, or NULL with err. */
static struct sl_sync *conn(struct sl_web *w, char *err, size_t errlen)
{
    if (w->rc != NULL && w->rc->err == 0)
        return w->rc;
    if (w->rc != NULL)
        sl__sync_free(w->rc);
    w->rc = sl__redis_connect(w->cfg, err, errlen);
    return w->rc;
}

/* Returns the overview (borrowed until the next call), read again when
 * older than WEB_SNAP_MS; NULL with err when Redis failed. */
static json_t *overview(struct sl_web *w, char *err, size_t errlen)
{
    uint64_t now = sl__now_ms();
    struct sl_web_io io = { NULL, NULL, NULL };
    json_t *doc;

    if (w->ov != NULL && now - w->ov_at < WEB_SNAP_MS)
        return w->ov;
    if ((io.sync = conn(w, err, errlen)) == NULL)
        return NULL;
    io.cfg = w->cfg;
    if ((doc = sl__web_overview(w->st, &io, err, errlen)) == NULL)
        return NULL;
    json_decref(w->ov);
    w->ov = doc;
    w->ov_at = now;
    return doc;
}

/* The stream parameter, which must be one the dashboard shows. Answers
 * 400 or 404 and returns NULL otherwise. */
static const char *stream_param(const struct sl_web *w, struct evhttp_request *req,
                                struct evkeyvalq *q)
{
    const char *s = param(q, "stream");

    if (s == NULL || *s == '\0' || strlen(s) > SL_NAME_MAX) {
        reply_err(req, 400, "Bad Request", "stream: expected a stream name");
        return NULL;
    }
    if (!sl__web_stream_known(w->st, s)) {
        reply_err(req, 404, "Not Found", "stream: not one the dashboard shows");
        return NULL;
    }
    return s;
}

/* The GET paths of `sluice web` that read Redis. */
static void read_path(struct sl_web *w, struct evhttp_request *req, const char *path,
                      struct evkeyvalq *q)
{
    char err[256] = "";
    struct sl_sync *c;
    const char *stream = NULL, *s;

    if (strcmp(path, "/api/overview") == 0) {
        json_t *doc = overview(w, err, sizeof(err));
        if (doc == NULL)
            reply_err(req, 503, "Service Unavailable", err);
        else
            reply_json(req, 200, "OK", doc);
        return;
    }
    if (strcmp(path, "/api/workers") != 0 && (stream = stream_param(w, req, q)) == NULL)
        return;
    if ((c = conn(w, err, sizeof(err))) == NULL) {
        reply_err(req, 503, "Service Unavailable", err);
        return;
    }
    if (strcmp(path, "/api/workers") == 0) {
        struct sl_web_io io = { NULL, NULL, NULL };
        io.sync = c;
        io.cfg = w->cfg;
        reply_doc(req, sl__web_workers(&io, err, sizeof(err)), err);
        return;
    }
    /* Every key read below is the stream's or carries its hash tag: on a
     * cluster they live on the stream's master. Reads: safe to resend. */
    sl__sync_route(c, stream, 1);
    if (strcmp(path, "/api/group") == 0) {
        s = param(q, "group");
        if (s == NULL || *s == '\0' || strlen(s) > SL_NAME_MAX)
            reply_err(req, 400, "Bad Request", "group: expected a group name");
        else
            reply_doc(req, sl__web_group(c, stream, s, count_param(q, 20, SL_WEB_PAGE_MAX), err,
                                         sizeof(err)), err);
    } else if (strcmp(path, "/api/dead") == 0) {
        const char *cursor = param(q, "cursor"), *code = param(q, "code");
        if (code != NULL && *code == '\0')
            code = NULL;            /* an empty filter is none */
        if (code != NULL && strlen(code) > 63) {
            reply_err(req, 400, "Bad Request", "code: at most 63 bytes");
            return;
        }
        if (cursor != NULL && (strspn(cursor, "0123456789-") != strlen(cursor) ||
                               strlen(cursor) > 41)) {
            reply_err(req, 400, "Bad Request", "cursor: expected an entry ID");
            return;
        }
        reply_doc(req, sl__web_dead_page(c, stream, cursor, count_param(q, 50, SL_WEB_PAGE_MAX),
                                         code, err, sizeof(err)), err);
    } else {
        s = param(q, "id");
        reply_doc(req, sl__web_dead_entry(c, stream, s != NULL ? s : "", err, sizeof(err)), err);
    }
}

/* The POST paths: replay and purge, after every check of the file
 * comment has passed. The body is a JSON object. */
static void write_path(struct sl_web *w, struct evhttp_request *req, const char *path)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char err[256] = "";
    char body[WEB_MAX_BODY + 1];
    const char *stream, *id, *code, *data;
    json_t *j;
    struct sl_sync *c;

    if (len > WEB_MAX_BODY) {
        reply_err(req, 413, "Payload Too Large", "body too large");
        return;
    }
    evbuffer_copyout(in, body, len);
    body[len] = '\0';
    if ((j = json_loadb(body, len, 0, NULL)) == NULL || !json_is_object(j)) {
        json_decref(j);
        reply_err(req, 400, "Bad Request", "expected a JSON object");
        return;
    }
    stream = json_string_value(json_object_get(j, "stream"));
    id = json_string_value(json_object_get(j, "id"));
    code = json_string_value(json_object_get(j, "code"));
    data = json_string_value(json_object_get(j, "data"));
    if (stream == NULL || !sl__web_stream_known(w->st, stream)) {
        reply_err(req, 404, "Not Found", "stream: not one the dashboard shows");
        json_decref(j);
        return;
    }
    if ((c = conn(w, err, sizeof(err))) == NULL) {
        reply_err(req, 503, "Service Unavailable", err);
        json_decref(j);
        return;
    }
    /* Replay and purge run scripts on the stream and its dead letters:
     * on a cluster the script is loaded and run on the stream's master
     * (loaded on one master and run on another it would be unknown
     * there). A move is never sent twice after a lost connection. */
    sl__sync_route(c, stream, 0);
    if (strcmp(path, "/api/dead/replay") == 0) {
        if (id == NULL)
            reply_err(req, 400, "Bad Request", "id: expected an entry ID");
        else
            reply_doc(req, sl__web_replay(c, stream, id, data, err, sizeof(err)), err);
        if (id != NULL)
            sl__log(SL_LOG_INFO, "web_replay", "stream=%s id=%s corrected=%d", sl__logq(stream),
                    sl__logq(id), data != NULL);
    } else if (id != NULL) {
        reply_doc(req, sl__web_purge_id(c, stream, id, err, sizeof(err)), err);
        sl__log(SL_LOG_INFO, "web_purge", "stream=%s id=%s", sl__logq(stream), sl__logq(id));
    } else if (code != NULL && *code != '\0' && strlen(code) < 64) {
        reply_doc(req, sl__web_purge_code(c, stream, code,
                                          json_string_value(json_object_get(j, "cursor")),
                                          json_string_value(json_object_get(j, "until")),
                                          err, sizeof(err)), err);
        sl__log(SL_LOG_INFO, "web_purge", "stream=%s code=%s", sl__logq(stream), sl__logq(code));
    } else {
        reply_err(req, 400, "Bad Request", "expected id or code");
    }
    json_decref(j);
}

/* ------------------------------------------------------------------ */
/* Routing                                                             */
/* ------------------------------------------------------------------ */

/* What a path is. */
enum kind { K_NONE, K_STATIC, K_READ, K_WRITE };

/* Returns the kind of path. */
static enum kind path_kind(const char *path)
{
    static const char *const statics[] = { "/", "/index.html", "/app.js", "/app.css", "/api/info" };
    static const char *const reads[] = { "/api/overview", "/api/workers", "/api/group", "/api/dead",
                                         "/api/dead/entry" };
    static const char *const writes[] = { "/api/dead/replay", "/api/dead/purge" };
    size_t i;

    for (i = 0; i < SL_NELEM(statics); i++)
        if (strcmp(path, statics[i]) == 0)
            return K_STATIC;
    for (i = 0; i < SL_NELEM(reads); i++)
        if (strcmp(path, reads[i]) == 0)
            return K_READ;
    for (i = 0; i < SL_NELEM(writes); i++)
        if (strcmp(path, writes[i]) == 0)
            return K_WRITE;
    return K_NONE;
}

/* Answers /api/info: the mode, whether writes are allowed, the streams
 * shown (on the pool, those of its workers). */
static void info(struct sl_web *w, struct evhttp_request *req)
{
    json_t *streams = json_array(), *doc;
    const char *s;
    size_t i, k;

    if (streams == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    for (i = 0; w->pool != NULL && i < w->pool->cfg->nworkers; i++) {
        s = w->pool->cfg->workers[i].stream;
        for (k = 0; k < i && strcmp(w->pool->cfg->workers[k].stream, s) != 0; k++)
            ;
        if (k == i)
            json_array_append_new(streams, sl__json_text(s, strlen(s)));
    }
    for (i = 0; w->pool == NULL && (s = sl__web_stream_at(w->st, i)) != NULL; i++)
        json_array_append_new(streams, sl__json_text(s, strlen(s)));
    doc = json_pack("{s:s,s:b,s:s,s:o,s:i}", "mode", w->pool ? "pool" : "web",
                    "allow_writes", w->allow_writes && w->pool == NULL, "version", SL_VERSION,
                    "streams", streams, "refresh_min_ms", 2000);
    if (doc == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    reply_json(req, 200, "OK", doc);
    json_decref(doc);
}

/* Answers the static paths. */
static void static_path(struct sl_web *w, struct evhttp_request *req, const char *path)
{
    if (strcmp(path, "/app.js") == 0)
        reply_bytes(req, 200, "OK", "text/javascript; charset=utf-8", sl__web_app_js, sl__web_app_js_len);
    else if (strcmp(path, "/app.css") == 0)
        reply_bytes(req, 200, "OK", "text/css; charset=utf-8", sl__web_app_css, sl__web_app_css_len);
    else if (strcmp(path, "/api/info") == 0)
        info(w, req);
    else
        reply_bytes(req, 200, "OK", "text/html; charset=utf-8", w->page, w->page_len);
}

/* Every request of the dashboard: the checks of the file comment, then
 * its path. */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct sl_web *w = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    const char *why;
    struct evkeyvalq q;
    enum kind k;

    if (w->lim != NULL)
        sl__http_seen(w->lim, req);
    if (!authorized(w, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Basic realm=\"sluice\", charset=\"UTF-8\"");
        reply_err(req, 401, "Unauthorized", "a token is required");
        return;
    }
    k = path != NULL ? path_kind(path) : K_NONE;
    if (k == K_NONE) {
        reply_err(req, 404, "Not Found", "no such page");
        return;
    }
    if (k != K_WRITE && !(cmd & (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD))) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply_err(req, 405, "Method Not Allowed", "GET or HEAD only");
        return;
    }
    if (k == K_WRITE && cmd != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        reply_err(req, 405, "Method Not Allowed", "POST only");
        return;
    }
    if (k == K_WRITE) {
        const char *t = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Sluice-Token");
        if (!w->allow_writes || w->pool != NULL) {
            reply_err(req, 403, "Forbidden", w->pool != NULL ?
                      "read-only: writes go through sluice web --allow-writes" :
                      "read-only: start sluice web with --allow-writes");
            return;
        }
        if ((why = cross_origin(req)) != NULL) {
            reply_err(req, 403, "Forbidden", why);
            return;
        }
        if (t == NULL || !same_secret(t, strlen(t), w->csrf)) {
            reply_err(req, 403, "Forbidden", "missing or wrong X-Sluice-Token");
            return;
        }
        write_path(w, req, path);
        return;
    }
    if (k == K_STATIC) {
        static_path(w, req, path);
        return;
    }
    if (w->pool != NULL) {
        if (strcmp(path, "/api/overview") == 0 || strcmp(path, "/api/workers") == 0)
            sl__metrics_defer_web(w->pool, req);
        else
            reply_err(req, 404, "Not Found", "served by sluice web only");
        return;
    }
    TAILQ_INIT(&q);
    if (query != NULL && evhttp_parse_query_str(query, &q) < 0) {
        evhttp_clear_headers(&q);
        reply_err(req, 400, "Bad Request", "malformed query");
        return;
    }
    read_path(w, req, path, &q);
    evhttp_clear_headers(&q);
}

/* ------------------------------------------------------------------ */
/* Setting up                                                          */
/* ------------------------------------------------------------------ */

/* Fills w->csrf with 32 random bytes in hex. Returns 0 or -1. */
static int make_csrf(struct sl_web *w)
{
    unsigned char r[32];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t i;
    ssize_t n;

    if (fd < 0)
        return -1;
    n = read(fd, r, sizeof(r));
    close(fd);
    if (n != (ssize_t)sizeof(r))
        return -1;
    for (i = 0; i < sizeof(r); i++)
        snprintf(w->csrf + 2 * i, 3, "%02x", r[i]);
    return 0;
}

/* Makes the page: index.html with @CSRF@ and @MODE@ filled in. Returns 0 or -1. */
static int make_page(struct sl_web *w)
{
    const char *mode = w->pool != NULL ? "pool" : w->allow_writes ? "writes" : "read-only";
    const char *src = sl__web_index_html, *at;
    size_t cap = sl__web_index_html_len + 2 * sizeof(w->csrf) + 64, n = 0;

    if ((w->page = malloc(cap)) == NULL)
        return -1;
    while ((at = strchr(src, '@')) != NULL) {
        const char *val = NULL;
        size_t skip = 0;
        if (strncmp(at, "@CSRF@", 6) == 0)
            val = w->csrf, skip = 6;
        else if (strncmp(at, "@MODE@", 6) == 0)
            val = mode, skip = 6;
        memcpy(w->page + n, src, (size_t)(at - src) + (val == NULL));
        n += (size_t)(at - src) + (val == NULL);
        if (val != NULL) {
            memcpy(w->page + n, val, strlen(val));
            n += strlen(val);
        }
        src = at + (val != NULL ? skip : 1);
    }
    memcpy(w->page + n, src, strlen(src));
    n += strlen(src);
    w->page_len = n;
    return 0;
}

/* Reads the site token from SLUICE_WEB_TOKEN, else the file named by
 * SLUICE_WEB_TOKEN_FILE (its first line). Returns 0 (also when neither
 * is set), or -1 with err. */
static int load_token(struct sl_web *w, char *err, size_t errlen)
{
    const char *t = getenv("SLUICE_WEB_TOKEN"), *f = getenv("SLUICE_WEB_TOKEN_FILE");
    char buf[WEB_TOKEN_MAX + 2] = "";

    if (t != NULL && *t != '\0') {
        snprintf(buf, sizeof(buf), "%s", t);
    } else if (f != NULL && *f != '\0') {
        FILE *fp = fopen(f, "r");
        if (fp == NULL) {
            sl__put_err(err, errlen, "SLUICE_WEB_TOKEN_FILE: %s: %s", f, strerror(errno));
            return -1;
        }
        if (fgets(buf, sizeof(buf), fp) == NULL)
            buf[0] = '\0';
        fclose(fp);
        buf[strcspn(buf, "\r\n")] = '\0';
        if (buf[0] == '\0') {
            sl__put_err(err, errlen, "SLUICE_WEB_TOKEN_FILE: %s: empty", f);
            return -1;
        }
    }
    if (strlen(buf) > WEB_TOKEN_MAX) {
        sl__put_err(err, errlen, "the web token is longer than %d bytes", WEB_TOKEN_MAX);
        return -1;
    }
    memcpy(w->token, buf, strlen(buf) + 1);   /* fits: checked above */
    explicit_bzero(buf, sizeof(buf));
    return 0;
}

static void pool_answer(struct sl_pool *p, struct evhttp_request *req);

/* Attaches the read-only pages to the pool's listener (pool.c calls it
 * after starting the listener, when metrics.dashboard is true). Returns
 * 0 or -1. */
int sl__web_pool_attach(struct sl_pool *p)
{
    struct sl_web *w = calloc(1, sizeof(*w));
    char err[256] = "";

    if (w == NULL)
        return -1;
    w->pool = p;
    w->base = p->base;
    w->http = p->http;
    w->lim = p->http_state;
    if (make_csrf(w) < 0 || make_page(w) < 0 || load_token(w, err, sizeof(err)) < 0) {
        if (err[0])
            fprintf(stderr, "sluice: %s\n", err);
        free(w->page);
        free(w);
        return -1;
    }
    evhttp_set_gencb(p->http, on_request, w);
    p->web = w;
    p->web_answer = pool_answer;
    return 0;
}

/* The pool's read of the overview and the workers: two replays
 * (web_data.c; one each, since a walk's commands depend on its first
 * reply) whose commands go out on the supervisor's asynchronous
 * connection, run again each time all the replies awaited have come. The
 * supervisor never waits for it. */
struct sl_web_chan {
    struct sl_web_read *rd;       /* the read it belongs to */
    struct sl_web_replay rp;      /* its commands and replies so far */
    size_t recv;                  /* replies come in sending order: the next one's index */
    int awaiting;                 /* commands sent, replies not come */
};

struct sl_web_read {
    struct sl_pool *p;            /* the pool */
    struct sl_web_chan ov;        /* the overview's replay */
    struct sl_web_chan wk;        /* the workers' */
    int orphan;                   /* the read is over: free it once nothing is awaited */
    void (*done)(struct sl_pool *p, unsigned gen); /* told when the read ends */
    unsigned gen;                 /* its argument */
};

/* Replies rd still awaits. */
static int read_awaiting(const struct sl_web_read *rd)
{
    return rd->ov.awaiting + rd->wk.awaiting;
}

/* Frees rd. */
static void read_free(struct sl_web_read *rd)
{
    sl__web_replay_clear(&rd->ov.rp);
    sl__web_replay_clear(&rd->wk.rp);
    free(rd);
}

/* Ends rd: tells the snapshot (unless the pool is stopping), then frees
 * rd, or leaves it to its last reply. */
static void read_end(struct sl_web_read *rd)
{
    struct sl_pool *p = rd->p;

    if (p->web != NULL && p->web->rd == rd)
        p->web->rd = NULL;
    rd->orphan = 1;
    if (rd->done != NULL)
        rd->done(p, rd->gen);
    if (read_awaiting(rd) == 0)
        read_free(rd);
}

static void read_run(struct sl_web_read *rd);

/* One reply of a channel (taken; NULL when the connection failed it). */
static void on_read_reply(struct sl_conn *c, redisReply *r, void *arg)
{
    struct sl_web_chan *ch = arg;
    struct sl_web_read *rd = ch->rd;

    (void)c;
    ch->awaiting--;
    if (ch->recv < ch->rp.n) {
        ch->rp.cmd[ch->recv].reply = r;
        ch->rp.cmd[ch->recv].have = 1;
        ch->recv++;
    } else {
        freeReplyObject(r);
    }
    if (rd->orphan) {
        if (read_awaiting(rd) == 0)
            read_free(rd);
        return;
    }
    if (read_awaiting(rd) == 0)
        read_run(rd);
}

/* Sends the commands ch's last run added. Returns 0 or -1. */
static int chan_send(struct sl_pool *p, struct sl_web_chan *ch)
{
    size_t i;

    for (i = ch->recv + (size_t)ch->awaiting; i < ch->rp.n; i++) {
        struct sl_web_cmd *m = &ch->rp.cmd[i];
        if (sl__pool_send_take(p, on_read_reply, ch, m->argc, (const char **)m->argv) != 0)
            return -1;
        m->sent = 1;
        ch->awaiting++;
    }
    return 0;
}

/* Returns 1 when ch's last run failed for good (not for want of a
 * reply), with the reason in err when it had none. */
static int chan_failed(const struct sl_web_chan *ch)
{
    return ch->rp.failed || ch->rp.mismatch || (!ch->rp.pending && ch->recv == ch->rp.n);
}

/* One run of the read: keeps the documents when every reply is in,
 * else sends the commands the run added. */
static void read_run(struct sl_web_read *rd)
{
    struct sl_pool *p = rd->p;
    struct sl_snapshot *s = &p->snap;
    struct sl_web_io io = { NULL, NULL, NULL };
    char err[sizeof(s->web_err)] = "";
    json_t *ov, *wk;

    sl__web_replay_rewind(&rd->wk.rp);
    io.rp = &rd->wk.rp;
    wk = sl__web_workers(&io, err, sizeof(err));
    sl__web_replay_rewind(&rd->ov.rp);
    io.rp = &rd->ov.rp;
    ov = sl__web_overview(s->web_state, &io, err, sizeof(err));
    if (ov != NULL && wk != NULL) {
        json_decref(s->web_overview);
        json_decref(s->web_workers);
        s->web_overview = ov;
        s->web_workers = wk;
        s->web_err[0] = '\0';
        s->web_at = sl__now_ms();
        read_end(rd);
        return;
    }
    json_decref(ov);
    json_decref(wk);
    if (rd->ov.rp.failed || rd->wk.rp.failed) {
        snprintf(s->web_err, sizeof(s->web_err), "redis: %s",
                 p->ac != NULL && sl__conn_error(p->ac)[0] ? sl__conn_error(p->ac) :
                 "connection lost");
        read_end(rd);
        return;
    }
    if ((ov == NULL && chan_failed(&rd->ov)) || (wk == NULL && chan_failed(&rd->wk))) {
        snprintf(s->web_err, sizeof(s->web_err), "%s", err[0] ? err : "redis: unexpected reply");
        read_end(rd);
        return;
    }
    if (chan_send(p, &rd->wk) < 0 || chan_send(p, &rd->ov) < 0) {
        snprintf(s->web_err, sizeof(s->web_err), "redis unreachable");
        read_end(rd);
    }
}

/* Starts reading the overview and the workers into the snapshot, at most
 * once per WEB_SNAP_MS (snapshot.c calls it when a dashboard request
 * waits). Returns 1 when a read began, which calls done(p, gen) when it
 * ends (never from here); 0 when none did (fresh enough, one in flight,
 * or it failed at once: web_err says why). */
int sl__web_pool_snapshot(struct sl_pool *p, void (*done)(struct sl_pool *p, unsigned gen),
                          unsigned gen)
{
    struct sl_snapshot *s = &p->snap;
    uint64_t now = sl__now_ms();
    struct sl_web_read *rd;

    if (p->web == NULL || p->web->rd != NULL)
        return 0;
    if (s->web_at != 0 && now - s->web_at < WEB_SNAP_MS && s->web_overview != NULL &&
        s->web_cfg == p->cfg)
        return 0;
    if (s->web_cfg != p->cfg) {
        /* A reload may have changed the streams: start again from them. */
        sl__web_state_free(s->web_state);
        s->web_state = NULL;
        s->web_cfg = p->cfg;
    }
    if (s->web_state == NULL && (s->web_state = sl__web_state_new(p->cfg, NULL, 0)) == NULL) {
        snprintf(s->web_err, sizeof(s->web_err), "out of memory");
        return 0;
    }
    if (!sl__pool_async_ready(p)) {
        snprintf(s->web_err, sizeof(s->web_err), "redis unreachable");
        return 0;
    }
    /* The snapshot's dead-letter tallies, as they are now: the overview
     * shows them instead of counting again (a copy: every run of this
     * read sees the same). */
    (void)sl__web_state_tallies(s->web_state, s->dead, s->ndead);
    if ((rd = calloc(1, sizeof(*rd))) == NULL) {
        snprintf(s->web_err, sizeof(s->web_err), "out of memory");
        return 0;
    }
    rd->p = p;
    rd->ov.rd = rd->wk.rd = rd;
    rd->ov.rp.now = rd->wk.rp.now = (long long)sl__wall_ms();
    p->web->rd = rd;
    read_run(rd);                 /* sends the first round; no reply can come yet */
    if (p->web->rd != rd)
        return 0;                 /* it failed at once (read_end ran, done unset) */
    rd->done = done;
    rd->gen = gen;
    return 1;
}

/* Frees the pool's dashboard (after evhttp_free). */
void sl__web_pool_detach(struct sl_pool *p)
{
    if (p->web == NULL)
        return;
    if (p->web->rd != NULL) {
        /* Its replies come when the connection closes, after this. */
        p->web->rd->orphan = 1;
        if (read_awaiting(p->web->rd) == 0)
            read_free(p->web->rd);
        p->web->rd = NULL;
    }
    free(p->web->page);
    free(p->web);
    p->web = NULL;
    p->web_answer = NULL;
}

/* Answers a waiting /api/overview or /api/workers from the snapshot
 * (metrics.c calls it through p->web_answer). */
static void pool_answer(struct sl_pool *p, struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : "";
    const json_t *doc = strcmp(path != NULL ? path : "", "/api/workers") == 0 ?
                        p->snap.web_workers : p->snap.web_overview;

    if (doc == NULL || p->snap.web_err[0] != '\0')
        reply_err(req, 503, "Service Unavailable",
                  p->snap.web_err[0] ? p->snap.web_err : "redis unreachable");
    else
        reply_json(req, 200, "OK", doc);
}

/* ------------------------------------------------------------------ */
/* sluice web                                                          */
/* ------------------------------------------------------------------ */

/* SIGINT, SIGTERM: stop the loop. */
static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopexit(arg, NULL);
}

/* Returns 1 when host is a loopback name or address. */
static int loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
           strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
}

/* Runs `sluice web` (see web.h). */
int sl__web_run(const struct sl_config *cfg, const char *listen, int allow_writes,
                const char *const *streams, size_t nstreams)
{
    struct sl_web w;
    struct evhttp_bound_socket *bs;
    struct event *sigint = NULL, *sigterm = NULL;
    char host[256], err[256] = "";
    const char *colon;
    int port, rc = 1;

    memset(&w, 0, sizeof(w));
    if (listen == NULL)
        listen = WEB_DEFAULT_LISTEN;
    colon = strrchr(listen, ':');
    if (!sl__host_port_valid(listen) || colon == NULL || colon == listen ||
        (size_t)(colon - listen) >= sizeof(host)) {
        fprintf(stderr, "sluice: --listen \"%s\": expected host:port\n", listen);
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = atoi(colon + 1);
    w.cfg = cfg;
    w.allow_writes = allow_writes;
    if (load_token(&w, err, sizeof(err)) < 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return 2;
    }
    if (!loopback(host) && w.token[0] == '\0')
        sl__log(SL_LOG_WARN, "web_open", "addr=%s note=%s", sl__logq(listen),
                sl__logq("listening beyond loopback without SLUICE_WEB_TOKEN"));
    signal(SIGPIPE, SIG_IGN);
    if (make_csrf(&w) < 0 || make_page(&w) < 0 ||
        (w.st = sl__web_state_new(cfg, streams, nstreams)) == NULL ||
        (w.base = event_base_new()) == NULL || (w.http = evhttp_new(w.base)) == NULL ||
        (w.lim = sl__http_limits_new(w.base, w.http)) == NULL) {
        fprintf(stderr, "sluice: web: out of memory\n");
        goto out;
    }
    evhttp_set_max_body_size(w.http, WEB_MAX_BODY);
    evhttp_set_gencb(w.http, on_request, &w);
    if ((bs = evhttp_bind_socket_with_handle(w.http, host, (ev_uint16_t)port)) == NULL) {
        fprintf(stderr, "sluice: --listen \"%s\": cannot listen there\n", listen);
        goto out;
    }
    port = sl__http_limits_listen(w.lim, bs, port);
    sigint = evsignal_new(w.base, SIGINT, on_signal, w.base);
    sigterm = evsignal_new(w.base, SIGTERM, on_signal, w.base);
    if (sigint == NULL || sigterm == NULL || event_add(sigint, NULL) < 0 ||
        event_add(sigterm, NULL) < 0) {
        fprintf(stderr, "sluice: web: cannot watch signals\n");
        goto out;
    }
    /* A first connection now, so that a wrong URL or password shows at
     * start; the pages say so too when Redis goes away later. */
    if (conn(&w, err, sizeof(err)) == NULL)
        sl__log(SL_LOG_WARN, "redis_unavailable", "error=%s", sl__logq(err));
    sl__log(SL_LOG_INFO, "web_listening", "addr=%s:%d writes=%d auth=%d streams=%zu", host, port,
            allow_writes, w.token[0] != '\0', nstreams + cfg->nworkers);
    event_base_dispatch(w.base);
    sl__log(SL_LOG_INFO, "web_stopped", NULL);
    rc = 0;
out:
    if (sigint != NULL)
        event_free(sigint);
    if (sigterm != NULL)
        event_free(sigterm);
    if (w.lim != NULL)
        sl__http_resolve(w.lim);
    if (w.http != NULL)
        evhttp_free(w.http);
    sl__http_limits_free(w.lim);
    if (w.base != NULL)
        event_base_free(w.base);
    if (w.rc != NULL)
        sl__sync_free(w.rc);
    sl__web_state_free(w.st);
    json_decref(w.ov);
    free(w.page);
    explicit_bzero(w.token, sizeof(w.token));
    return rc;
}
