/* config.c -- config/sluice.json and the built-in defaults. URLs and the
 * password are url.c's, value positions jsonpos.c's, the built-in worker
 * list builtin.c's.
 *
 * The file is parsed with jansson and checked key by key: types, ranges,
 * and unknown keys at every level, because a typo must not pass silently
 * (docs/configuration.md). Every message names the file, the line and column of
 * the offending value and its key path, e.g.
 *
 *     config/sluice.json:14:9: workers[1].processes: expected a positive integer
 *
 * jansson keeps no positions once a document is parsed, so jsonpos.c
 * walks the (already valid) text along the key path to find them.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define DEFAULT_URL     "redis://127.0.0.1:6379/0"
#define DEFAULT_METRICS "127.0.0.1:9121"

/* ---------------------------------------------------------------------
 * Built-in defaults (docs/configuration.md)
 * ------------------------------------------------------------------ */

/* The "defaults" object of docs/configuration.md. */
static const struct sl_tunables builtin_tunables = {
    .batch = 64,
    .block_ms = 2000,
    .reclaim_idle_ms = 30000,
    .reclaim_interval_ms = 5000,
    .max_deliveries = 5,
    .max_fields = 1024,
    .heartbeat_ms = 1000,
    .retry_backoff_ms = { 1000, 60000 },
    .handler_timeout_ms = 60000,
    .shutdown_timeout_ms = 10000,
    .message_ttl_ms = 0,
    .idempotency_retention_ms = 0,
    .max_payload_bytes = 1048576,
    .trim = SL_TRIM_ACKED,
    .dead_letter_max_len = 0,
    .dead_letter_max_age_ms = 0,
    .concurrency = 1,
};

/* ---------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------ */

#define MAXDEPTH 8

/* The state of one sl__config_load() call. */
struct loader {
    const char *file;             /* path as given, for messages */
    const char *text;             /* the whole file (borrowed) */
    size_t len;                   /* bytes in text */
    struct sl_json_step path[MAXDEPTH]; /* key path of the value being checked */
    int depth;                    /* steps used in path */
    char *err;                    /* caller's message buffer */
    size_t errlen;                /* bytes in err */
};

/* Writes ld's key path ("workers[1].processes") into buf. */
static void path_text(const struct loader *ld, char *buf, size_t size)
{
    size_t n = 0;
    int d, w;

    buf[0] = '\0';
    for (d = 0; d < ld->depth && n < size; d++) {
        if (ld->path[d].key != NULL)
            w = snprintf(buf + n, size - n, "%s%s", d > 0 ? "." : "", ld->path[d].key);
        else
            w = snprintf(buf + n, size - n, "[%zu]", ld->path[d].index);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

/* Records "FILE:LINE:COL: KEY.PATH: <message>" for the value at ld's
 * current path (or its key, when at_key) and returns -1, so a check can
 * end with `return fail(...)`. */
static int fail(struct loader *ld, int at_key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct loader *ld, int at_key, const char *fmt, ...)
{
    char path[256], msg[384];
    int line = 1, col = 1;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sl__json_locate(ld->text, ld->len, ld->path, ld->depth, at_key, &line, &col);
    path_text(ld, path, sizeof(path));
    if (ld->depth == 0)
        sl__put_err(ld->err, ld->errlen, "%s:%d:%d: %s", ld->file, line, col, msg);
    else
        sl__put_err(ld->err, ld->errlen, "%s:%d:%d: %s: %s", ld->file, line, col, path, msg);
    return -1;
}

/* Records an allocation failure and returns -1. */
static int fail_nomem(struct loader *ld)
{
    sl__put_err(ld->err, ld->errlen, "%s: out of memory", ld->file);
    return -1;
}

/* Enters the object key `key` of the current path. */
static void push_key(struct loader *ld, const char *key)
{
    SL_ASSERT(ld->depth < MAXDEPTH);
    ld->path[ld->depth].key = key;
    ld->path[ld->depth].index = 0;
    ld->depth++;
}

/* Enters the array index `i` of the current path. */
static void push_index(struct loader *ld, size_t i)
{
    SL_ASSERT(ld->depth < MAXDEPTH);
    ld->path[ld->depth].key = NULL;
    ld->path[ld->depth].index = i;
    ld->depth++;
}

/* Leaves the innermost step of the current path. */
static void pop(struct loader *ld)
{
    ld->depth--;
}

/* Checks that v is a JSON integer (not a real, not a string) with
 * lo <= v <= hi and stores it in *out. The message names the range in
 * the friendliest words: "a positive integer", "an integer >= 0", or
 * "an integer from lo to hi". Returns 0 or -1 (message recorded). */
static int get_int(struct loader *ld, json_t *v, long long lo, long long hi, long long *out)
{
    long long n;

    if (json_is_integer(v)) {
        n = (long long)json_integer_value(v);
        if (n >= lo && n <= hi) {
            *out = n;
            return 0;
        }
    }
    if (hi != LLONG_MAX)
        return fail(ld, 0, "expected an integer from %lld to %lld", lo, hi);
    if (lo == 1)
        return fail(ld, 0, "expected a positive integer");
    return fail(ld, 0, "expected an integer >= %lld", lo);
}

/* Checks that v is a non-empty string of at most max bytes (0: no
 * limit) and stores a copy in *out (new, replacing and freeing the
 * previous value). Returns 0 or -1. */
static int get_name(struct loader *ld, json_t *v, size_t max, char **out)
{
    char *copy;

    if (!json_is_string(v) || json_string_length(v) == 0)
        return fail(ld, 0, "expected a non-empty string");
    if (max > 0 && json_string_length(v) > max)
        return fail(ld, 0, "longer than %zu bytes", max);
    copy = strdup(json_string_value(v));
    if (copy == NULL)
        return fail_nomem(ld);
    free(*out);
    *out = copy;
    return 0;
}

/* An integer tunable: its key, where it lives and its range. */
struct tunable_def {
    const char *name;             /* key in "defaults" and in a worker */
    size_t off;                   /* offset of the long long in struct sl_tunables */
    long long lo, hi;             /* accepted range, inclusive */
};

/* The longest period any *_ms key accepts: a week. Longer values are
 * surely typos, and the bound keeps sums like 3 x heartbeat_ms and
 * now + handler_timeout_ms far from overflow. */
#define MS_MAX 604800000LL
/* The longest message_ttl_ms: a hundred years. */
#define TTL_MAX 3153600000000LL

/* The integer tunables; retry_backoff_ms and trim are handled apart. */
static const struct tunable_def tunable_defs[] = {
    { "batch",               offsetof(struct sl_tunables, batch),               1, 10000 },
    { "block_ms",            offsetof(struct sl_tunables, block_ms),            1, 3600000 },
    { "reclaim_idle_ms",     offsetof(struct sl_tunables, reclaim_idle_ms),     1, MS_MAX },
    { "reclaim_interval_ms", offsetof(struct sl_tunables, reclaim_interval_ms), 1, MS_MAX },
    { "max_deliveries",      offsetof(struct sl_tunables, max_deliveries),      1, 1000 },
    { "max_fields",          offsetof(struct sl_tunables, max_fields),          1, LLONG_MAX },
    { "heartbeat_ms",        offsetof(struct sl_tunables, heartbeat_ms),        1, MS_MAX },
    { "handler_timeout_ms",  offsetof(struct sl_tunables, handler_timeout_ms),  1, MS_MAX },
    { "shutdown_timeout_ms", offsetof(struct sl_tunables, shutdown_timeout_ms), 0, MS_MAX },
    { "message_ttl_ms",      offsetof(struct sl_tunables, message_ttl_ms),      0, TTL_MAX },
    { "max_payload_bytes",   offsetof(struct sl_tunables, max_payload_bytes),   1, 536870912 },
    { "idempotency_retention_ms", offsetof(struct sl_tunables, idempotency_retention_ms), 0, TTL_MAX },
    /* Dead-letter retention, applied by the housekeeping (trim.c). */
    { "dead_letter_max_len", offsetof(struct sl_tunables, dead_letter_max_len), 0, LLONG_MAX },
    { "dead_letter_max_age_ms", offsetof(struct sl_tunables, dead_letter_max_age_ms), 0, TTL_MAX },
    /* Entries an async handler has in flight per process (worker.c). */
    { "concurrency",         offsetof(struct sl_tunables, concurrency),         1, SL_INFLIGHT_MAX },
};

/* Applies the tunable `key` = v to t when key names one. Returns 0 when
 * applied, 1 when key is not a tunable (the caller decides), -1 on a bad
 * value (message recorded). The caller has pushed `key` on the path. */
static int load_tunable(struct loader *ld, const char *key, json_t *v, struct sl_tunables *t)
{
    size_t i;
    json_t *a, *b;

    for (i = 0; i < sizeof(tunable_defs) / sizeof(tunable_defs[0]); i++) {
        const struct tunable_def *d = &tunable_defs[i];

        if (strcmp(key, d->name) == 0) {
            /* An explicit batch is the largest COUNT; the default may
             * grow on a deep backlog (worker.c's read_count()). */
            if (d->off == offsetof(struct sl_tunables, batch))
                t->batch_set = 1;
            return get_int(ld, v, d->lo, d->hi, (long long *)((char *)t + d->off));
        }
    }
    if (strcmp(key, "retry_backoff_ms") == 0) {
        a = json_array_get(v, 0);
        b = json_array_get(v, 1);
        if (!json_is_array(v) || json_array_size(v) != 2 ||
            !json_is_integer(a) || !json_is_integer(b) ||
            json_integer_value(a) < 1 || json_integer_value(a) > json_integer_value(b) ||
            json_integer_value(b) > MS_MAX)
            return fail(ld, 0, "expected [first, cap] with 1 <= first <= cap <= %lld", MS_MAX);
        t->retry_backoff_ms[0] = (long long)json_integer_value(a);
        t->retry_backoff_ms[1] = (long long)json_integer_value(b);
        return 0;
    }
    if (strcmp(key, "trim") == 0) {
        if (json_is_string(v) && strcmp(json_string_value(v), "acked") == 0)
            t->trim = SL_TRIM_ACKED;
        else if (json_is_string(v) && strcmp(json_string_value(v), "none") == 0)
            t->trim = SL_TRIM_NONE;
        else
            return fail(ld, 0, "expected \"acked\" or \"none\"");
        return 0;
    }
    return 1;
}

/* Loads the "defaults" object into cfg->defaults. Returns 0 or -1. */
static int load_defaults(struct loader *ld, json_t *obj, struct sl_config *cfg)
{
    const char *key;
    json_t *v;
    int rc;

    if (!json_is_object(obj))
        return fail(ld, 0, "expected an object");
    json_object_foreach(obj, key, v) {
        push_key(ld, key);
        rc = load_tunable(ld, key, v, &cfg->defaults);
        if (rc == 1)
            rc = fail(ld, 1, "unknown key");
        if (rc != 0)
            return -1;
        pop(ld);
    }
    return 0;
}

/* Loads one redis.tls_* key into t: the CA file, the client certificate
 * and key (each must be readable now, so a typo stops the start instead
 * of failing every connect), the server name, and tls_verify, which only
 * an explicit false turns off. Returns 0 or -1. */
static int load_tls_key(struct loader *ld, const char *key, json_t *v, struct sl_tls *t)
{
    char **file = strcmp(key, "tls_ca_file") == 0 ? &t->ca_file :
                  strcmp(key, "tls_cert_file") == 0 ? &t->cert_file :
                  strcmp(key, "tls_key_file") == 0 ? &t->key_file : NULL;
    FILE *f;

    if (file != NULL) {
        if (get_name(ld, v, 0, file) != 0)
            return -1;
        if ((f = fopen(*file, "r")) == NULL)
            return fail(ld, 0, "cannot read \"%s\": %s", *file, strerror(errno));
        fclose(f);
        return 0;
    }
    if (strcmp(key, "tls_server_name") == 0)
        return get_name(ld, v, 255, &t->server_name);
    if (strcmp(key, "tls_verify") == 0) {
        if (!json_is_boolean(v))
            return fail(ld, 0, "expected true or false");
        t->insecure = !json_is_true(v);
        return 0;
    }
    return fail(ld, 1, "unknown key");
}

/* Loads redis.cluster_nodes: a non-empty array of "host:port" seeds,
 * kept joined by commas (the form the cluster router takes). */
static int load_cluster_nodes(struct loader *ld, json_t *v, struct sl_config *cfg)
{
    size_t i, len = 0;
    char *joined;

    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(ld, 0, "expected a non-empty array of \"host:port\"");
    for (i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);

        if (!json_is_string(e) || !sl__host_port_valid(json_string_value(e))
            || strchr(json_string_value(e), ',') != NULL)
            return fail(ld, 0, "element %zu: expected \"host:port\"", i);
        len += json_string_length(e) + 1;
    }
    joined = malloc(len);
    if (joined == NULL)
        return fail_nomem(ld);
    joined[0] = '\0';
    for (i = 0; i < json_array_size(v); i++) {
        if (i > 0)
            strcat(joined, ",");
        strcat(joined, json_string_value(json_array_get(v, i)));
    }
    free(cfg->cluster_nodes);
    cfg->cluster_nodes = joined;
    return 0;
}

/* Loads the "redis" object: url, password_file, connect_timeout_ms,
 * command_timeout_ms, tls_*. The password file must be readable now, so that a
 * typo in its path stops the start (exit 2) instead of being retried
 * forever; it is read again at every connect. Returns 0 or -1. */
static int load_redis(struct loader *ld, json_t *obj, struct sl_config *cfg)
{
    char uerr[SL_ERRLEN], *copy;
    struct sl_redis_url u;
    const char *key;
    json_t *v;
    int rc;

    if (!json_is_object(obj))
        return fail(ld, 0, "expected an object");
    json_object_foreach(obj, key, v) {
        push_key(ld, key);
        if (strcmp(key, "url") == 0) {
            if (!json_is_string(v))
                return fail(ld, 0, "expected a string");
            if (sl__url_parse(json_string_value(v), &u, uerr, sizeof(uerr)) != 0)
                return fail(ld, 0, "%s", uerr);
            copy = strdup(json_string_value(v));
            if (copy == NULL)
                return fail_nomem(ld);
            free(cfg->redis_url);
            cfg->redis_url = copy;
            cfg->redis = u;
            rc = 0;
        } else if (strcmp(key, "password_file") == 0) {
            char pw[sizeof(u.password)];

            rc = get_name(ld, v, 0, &cfg->password_file);
            if (rc == 0 && sl__password_file_read(cfg->password_file, pw, sizeof(pw),
                                              uerr, sizeof(uerr)) != 0)
                rc = fail(ld, 0, "%s", uerr);
            memset(pw, 0, sizeof(pw));
        } else if (strcmp(key, "connect_timeout_ms") == 0) {
            rc = get_int(ld, v, 1, MS_MAX, &cfg->connect_timeout_ms);
        } else if (strcmp(key, "command_timeout_ms") == 0) {
            rc = get_int(ld, v, 1, MS_MAX, &cfg->command_timeout_ms);
        } else if (strncmp(key, "tls_", 4) == 0) {
            rc = load_tls_key(ld, key, v, &cfg->tls);
        } else if (strcmp(key, "cluster_nodes") == 0) {
            rc = load_cluster_nodes(ld, v, cfg);
        } else {
            rc = fail(ld, 1, "unknown key");
        }
        if (rc != 0)
            return -1;
        pop(ld);
    }
    /* A cluster has database 0 only: SELECT n fails on every node. */
    if (cfg->cluster_nodes != NULL && cfg->redis.db != 0) {
        push_key(ld, "cluster_nodes");
        return fail(ld, 0, "a Redis Cluster has database 0 only, and redis.url selects %d",
                    cfg->redis.db);
    }
    return 0;
}

/* Loads the "metrics" object: "listen" is "host:port", or null to turn
 * the HTTP endpoint off; "dashboard" a boolean. Returns 0 or -1. */
static int load_metrics(struct loader *ld, json_t *obj, struct sl_config *cfg)
{
    const char *key;
    char *copy;
    json_t *v;

    if (!json_is_object(obj))
        return fail(ld, 0, "expected an object");
    json_object_foreach(obj, key, v) {
        push_key(ld, key);
        if (strcmp(key, "dashboard") == 0) {
            /* The dashboard's pages, read-only, on the same listener. */
            if (!json_is_boolean(v))
                return fail(ld, 0, "expected true or false");
            cfg->metrics_dashboard = json_is_true(v);
            pop(ld);
            continue;
        }
        if (strcmp(key, "listen") != 0)
            return fail(ld, 1, "unknown key");
        if (json_is_null(v)) {
            free(cfg->metrics_listen);
            cfg->metrics_listen = NULL;
        } else if (json_is_string(v) && sl__host_port_valid(json_string_value(v))) {
            copy = strdup(json_string_value(v));
            if (copy == NULL)
                return fail_nomem(ld);
            free(cfg->metrics_listen);
            cfg->metrics_listen = copy;
        } else {
            return fail(ld, 0, "expected \"host:port\" or null");
        }
        pop(ld);
    }
    return 0;
}

/* Frees the strings of n workers and the array itself. */
static void free_workers(struct sl_worker_conf *w, size_t n)
{
    size_t i;

    if (w == NULL)
        return;
    for (i = 0; i < n; i++) {
        free(w[i].handler);
        free(w[i].stream);
        free(w[i].group);
    }
    free(w);
}

/* Loads worker object `obj` (workers[i]) into w, starting from the
 * merged defaults. handler, stream and group are required; processes
 * defaults to 1. Returns 0 or -1. */
static int load_worker(struct loader *ld, json_t *obj, const struct sl_config *cfg,
                       struct sl_worker_conf *w)
{
    static const char *const required[] = { "handler", "stream", "group" };
    const char *key;
    long long n = 1;
    json_t *v;
    size_t i;
    int rc;

    if (!json_is_object(obj))
        return fail(ld, 0, "expected an object");
    w->t = cfg->defaults;
    w->processes = 1;
    json_object_foreach(obj, key, v) {
        push_key(ld, key);
        if (strcmp(key, "handler") == 0) {
            rc = get_name(ld, v, 0, &w->handler);
        } else if (strcmp(key, "stream") == 0) {
            rc = get_name(ld, v, SL_NAME_MAX, &w->stream);
        } else if (strcmp(key, "group") == 0) {
            rc = get_name(ld, v, SL_NAME_MAX, &w->group);
        } else if (strcmp(key, "processes") == 0) {
            /* the documented example says "a positive integer" for 0; the
             * upper bound is only named when it is what was crossed. */
            if (!json_is_integer(v) || json_integer_value(v) < 1)
                rc = fail(ld, 0, "expected a positive integer");
            else
                rc = get_int(ld, v, 1, 256, &n);
            if (rc == 0)
                w->processes = (int)n;
        } else {
            rc = load_tunable(ld, key, v, &w->t);
            if (rc == 1)
                rc = fail(ld, 1, "unknown key");
        }
        if (rc != 0)
            return -1;
        pop(ld);
    }
    for (i = 0; i < 3; i++) {
        char *const *field = i == 0 ? &w->handler : i == 1 ? &w->stream : &w->group;

        if (*field == NULL)
            return fail(ld, 0, "missing \"%s\" (expected a non-empty string)", required[i]);
    }
    return 0;
}

/* Returns a new string that names worker w's handler, stream and group
 * unambiguously (each but the last prefixed by its length), as the key of
 * the duplicate check, or NULL when out of memory. */
static char *worker_id(const struct sl_worker_conf *w)
{
    size_t hl = strlen(w->handler), sl = strlen(w->stream), gl = strlen(w->group);
    size_t size = hl + sl + gl + 48;
    char *id = malloc(size);

    if (id != NULL)
        snprintf(id, size, "%zu:%s%zu:%s%s", hl, w->handler, sl, w->stream, w->group);
    return id;
}

/* Loads the "workers" array, replacing the built-in workers. Runs after
 * "defaults" has been loaded, wherever it stands in the file, so that
 * every worker starts from the merged defaults. Duplicates are found
 * through a hash table (a jansson object from worker to index), so that
 * loading stays linear in the number of workers. Returns 0 or -1. */
static int load_workers(struct loader *ld, json_t *arr, struct sl_config *cfg)
{
    struct sl_worker_conf *w;
    json_t *seen, *prev;
    size_t n, i;
    char *id;
    int rc = -1;

    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return fail(ld, 0, "expected a non-empty array");
    n = json_array_size(arr);
    w = calloc(n, sizeof(*w));
    seen = json_object();
    if (w == NULL || seen == NULL) {
        free(w);
        json_decref(seen);
        return fail_nomem(ld);
    }
    free_workers(cfg->workers, cfg->nworkers);
    cfg->workers = w;
    cfg->nworkers = 0;
    for (i = 0; i < n; i++) {
        push_index(ld, i);
        cfg->nworkers = i + 1;    /* so that sl__config_free() sees its strings */
        if (load_worker(ld, json_array_get(arr, i), cfg, &w[i]) != 0)
            goto out;
        if ((id = worker_id(&w[i])) == NULL) {
            fail_nomem(ld);
            goto out;
        }
        sl__config_steps++;
        prev = json_object_get(seen, id);
        if (prev != NULL) {
            free(id);
            fail(ld, 0, "duplicate worker (same handler, stream and group as workers[%lld])",
                 (long long)json_integer_value(prev));
            goto out;
        }
        if (json_object_set_new_nocheck(seen, id, json_integer((json_int_t)i)) != 0) {
            free(id);
            fail_nomem(ld);
            goto out;
        }
        free(id);
        pop(ld);
    }
    rc = 0;
out:
    json_decref(seen);
    return rc;
}

/* Checks the whole document and fills cfg, which holds the built-in
 * defaults on entry. The top-level keys are checked in file order, except
 * that "workers" waits until "defaults" is known. Returns 0 or -1. */
static int load_root(struct loader *ld, json_t *root, struct sl_config *cfg)
{
    json_t *v, *workers = NULL;
    const char *key;
    int rc;

    if (!json_is_object(root))
        return fail(ld, 0, "expected an object");
    json_object_foreach(root, key, v) {
        push_key(ld, key);
        if (strcmp(key, "redis") == 0)
            rc = load_redis(ld, v, cfg);
        else if (strcmp(key, "defaults") == 0)
            rc = load_defaults(ld, v, cfg);
        else if (strcmp(key, "metrics") == 0)
            rc = load_metrics(ld, v, cfg);
        else if (strcmp(key, "workers") == 0)
            rc = (workers = v, 0);
        else
            rc = fail(ld, 1, "unknown key");
        if (rc != 0)
            return -1;
        pop(ld);
    }
    if (workers != NULL) {
        push_key(ld, "workers");
        if (load_workers(ld, workers, cfg) != 0)
            return -1;
        pop(ld);
    } else {
        for (size_t i = 0; i < cfg->nworkers; i++)
            cfg->workers[i].t = cfg->defaults;
    }
    return 0;
}

/* Reads the whole file into a new NUL-terminated buffer (free() it) and
 * its length into *lenp. Returns NULL with errno set on failure, EFBIG
 * when it holds more than SL_CONFIG_MAX bytes. The size is checked while
 * reading, not taken from stat(): a device or a pipe (-c /dev/zero) has
 * no size and may never end. */
static char *read_file(const char *path, size_t *lenp)
{
    FILE *f;
    char *buf = NULL, *p;
    size_t len = 0, cap = 0, got;
    int saved = 0;

    f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    for (;;) {
        if (cap - len < 4096 + 1) {
            cap = cap ? cap * 2 : 8192;
            p = realloc(buf, cap);
            if (p == NULL) {
                saved = ENOMEM;
                goto err;
            }
            buf = p;
        }
        got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (len > SL_CONFIG_MAX) {
            saved = EFBIG;
            goto err;
        }
        if (got == 0) {
            if (ferror(f)) {
                saved = errno ? errno : EIO;
                goto err;
            }
            break;
        }
    }
    fclose(f);
    buf[len] = '\0';
    *lenp = len;
    return buf;

err:
    fclose(f);
    free(buf);
    errno = saved;
    return NULL;
}

static struct sl_config *config_base(void);

/* Returns 1 when cfg has a worker whose handler (field 0) or stream
 * (field 1) is name. */
static int has_worker(const struct sl_config *cfg, int field, const char *name)
{
    size_t i;

    for (i = 0; i < cfg->nworkers; i++)
        if (strcmp(field == 0 ? cfg->workers[i].handler : cfg->workers[i].stream, name) == 0)
            return 1;
    return 0;
}

/* Appends the workers of sl__builtin_auto that the environment turns on
 * and the configuration does not already cover (see internal.h), so that
 * their groups are created at start like those of the listed workers.
 * Returns 0, or -1 when out of memory (cfg then holds what it held). */
static int add_auto_workers(struct sl_config *cfg)
{
    size_t i;

    for (i = 0; i < sl__builtin_nauto; i++) {
        const struct sl_builtin_auto *a = &sl__builtin_auto[i];
        const char *on = getenv(a->env);
        struct sl_worker_conf *w, *grown;

        if (on == NULL || on[0] == '\0' || !has_worker(cfg, 0, a->beside) ||
            has_worker(cfg, 1, a->w.stream))
            continue;
        grown = realloc(cfg->workers, (cfg->nworkers + 1) * sizeof(*grown));
        if (grown == NULL)
            return -1;
        cfg->workers = grown;
        w = &grown[cfg->nworkers];
        memset(w, 0, sizeof(*w));
        w->handler = strdup(a->w.handler);
        w->stream = strdup(a->w.stream);
        w->group = strdup(a->w.group);
        if (w->handler == NULL || w->stream == NULL || w->group == NULL) {
            free(w->handler);
            free(w->stream);
            free(w->group);
            return -1;
        }
        w->processes = a->w.processes;
        w->t = cfg->defaults;
        w->t.concurrency = a->concurrency;
        w->t.max_deliveries = a->max_deliveries;
        cfg->nworkers++;
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * Public (framework-wide) entry points
 * ------------------------------------------------------------------ */

/* Returns the built-in configuration of docs/configuration.md (see internal.h),
 * or NULL when out of memory. New: sl__config_free(). */
struct sl_config *sl__config_default(void)
{
    struct sl_config *cfg = config_base();

    if (cfg != NULL && add_auto_workers(cfg) != 0) {
        sl__config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* The built-in configuration without the workers the environment adds,
 * the start of every load (whose "workers" may replace the built-in
 * ones before those are added). NULL when out of memory. */
static struct sl_config *config_base(void)
{
    struct sl_config *cfg = calloc(1, sizeof(*cfg));
    size_t i, n = sl__builtin_nworkers;

    if (cfg == NULL)
        return NULL;
    cfg->redis_url = strdup(DEFAULT_URL);
    cfg->metrics_listen = strdup(DEFAULT_METRICS);
    cfg->workers = calloc(n, sizeof(*cfg->workers));
    if (cfg->redis_url == NULL || cfg->metrics_listen == NULL || cfg->workers == NULL)
        goto err;
    if (sl__url_parse(DEFAULT_URL, &cfg->redis, NULL, 0) != 0)
        goto err;
    cfg->connect_timeout_ms = 2000;
    cfg->command_timeout_ms = 5000;
    cfg->defaults = builtin_tunables;
    for (i = 0; i < n; i++) {
        struct sl_worker_conf *w = &cfg->workers[i];

        cfg->nworkers = i + 1;
        w->handler = strdup(sl__builtin_workers[i].handler);
        w->stream = strdup(sl__builtin_workers[i].stream);
        w->group = strdup(sl__builtin_workers[i].group);
        if (w->handler == NULL || w->stream == NULL || w->group == NULL)
            goto err;
        w->processes = sl__builtin_workers[i].processes;
        w->t = builtin_tunables;
    }
    return cfg;

err:
    sl__config_free(cfg);
    return NULL;
}

/* Loads and checks `path` (see internal.h). A missing file is fine when
 * must_exist is 0 (the built-in defaults are returned, path NULL); any
 * other problem returns NULL with a message in err. New. */
struct sl_config *sl__config_load(const char *path, int must_exist,
                                  char *err, size_t errlen)
{
    struct sl_config *cfg = NULL;
    struct loader ld;
    json_error_t jerr;
    json_t *root = NULL;
    char *text = NULL;
    size_t len = 0;

    if (path == NULL) {
        sl__put_err(err, errlen, "no configuration file given");
        return NULL;
    }
    text = read_file(path, &len);
    if (text == NULL) {
        if (errno == ENOENT && !must_exist)
            return sl__config_default();
        if (errno == EFBIG) {
            sl__put_err(err, errlen, "%s: larger than %d bytes, the limit of a configuration file",
                    path, SL_CONFIG_MAX);
            return NULL;
        }
        sl__put_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        sl__put_err(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        goto err;
    }
    cfg = config_base();
    if (cfg == NULL) {
        sl__put_err(err, errlen, "%s: out of memory", path);
        goto err;
    }
    memset(&ld, 0, sizeof(ld));
    ld.file = path;
    ld.text = text;
    ld.len = len;
    ld.err = err;
    ld.errlen = errlen;
    if (load_root(&ld, root, cfg) != 0)
        goto err;
    if (add_auto_workers(cfg) != 0) {
        sl__put_err(err, errlen, "%s: out of memory", path);
        goto err;
    }
    cfg->path = strdup(path);
    if (cfg->path == NULL) {
        sl__put_err(err, errlen, "%s: out of memory", path);
        goto err;
    }
    json_decref(root);
    free(text);
    return cfg;

err:
    sl__config_free(cfg);
    json_decref(root);
    free(text);
    return NULL;
}

/* Replaces the Redis URL with `url` from `origin` ("--redis",
 * "SLUICE_REDIS_URL"). The configuration is unchanged on failure.
 * Returns 0, or -1 with "<origin>: <problem>" in err. */
int sl__config_set_url(struct sl_config *cfg, const char *url,
                       const char *origin, char *err, size_t errlen)
{
    char uerr[SL_ERRLEN], *copy;
    struct sl_redis_url u;

    if (origin == NULL)
        origin = "redis URL";
    if (cfg == NULL) {
        sl__put_err(err, errlen, "%s: no configuration", origin);
        return -1;
    }
    if (sl__url_parse(url, &u, uerr, sizeof(uerr)) != 0) {
        sl__put_err(err, errlen, "%s: %s", origin, uerr);
        return -1;
    }
    copy = strdup(url);
    if (copy == NULL) {
        sl__put_err(err, errlen, "%s: out of memory", origin);
        return -1;
    }
    free(cfg->redis_url);
    cfg->redis_url = copy;
    cfg->redis = u;
    return 0;
}

/* Frees a configuration and everything it owns. Accepts NULL. */
void sl__config_free(struct sl_config *cfg)
{
    if (cfg == NULL)
        return;
    free_workers(cfg->workers, cfg->nworkers);
    free(cfg->path);
    free(cfg->redis_url);
    free(cfg->metrics_listen);
    free(cfg->password_file);
    free(cfg->cluster_nodes);
    sl__tls_clear(&cfg->tls);
    free(cfg);
}
