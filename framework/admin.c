/* admin.c -- the admin subcommands: enqueue, dlq, pending, workers.
 *
 * They use a synchronous connection with the configured connect and
 * command timeouts: an admin command that cannot reach Redis exits 1
 * with the reason, never hangs. Tables are aligned text; --json prints
 * one JSON document built with jansson.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include "internal.h"
#include "admin.h"
#include "scripts.h"
#include "heartbeat.h"

/* Checks the reply r of a command on c: prints the error and returns
 * NULL when it failed (connection or error reply, which is freed), else
 * returns r. New: freeReplyObject(). */
static redisReply *checked(struct sl_sync *c, redisReply *r)
{
    if (r == NULL) {
        fprintf(stderr, "sluice: redis: %s\n", c->errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOAUTH", 6) == 0)  /* the password was changed meanwhile */
            fprintf(stderr, "sluice: redis: authentication failed: %s\n", r->str);
        else
            fprintf(stderr, "sluice: redis: %s\n", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Runs a command; prints the error and returns NULL when it failed
 * (connection or error reply). New: freeReplyObject(). */
static redisReply *run(struct sl_sync *c, int argc, const char **argv)
{
    return checked(c, sl__sync_argv(c, argc, argv, NULL));
}

/* Runs framework script `which` through the one EVALSHA path of
 * scripts.c; prints the error and returns NULL like run(). */
static redisReply *run_script(struct sl_sync *c, int which, int nkeys, const char *const *keys,
                              int nargs, const char *const *args)
{
    return checked(c, sl__script_call(c, sl__script(which), nkeys, keys, nargs, args));
}

/* Prints a JSON document and frees it. */
static void print_json(json_t *doc)
{
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | SL_JSON_DIGITS);

    if (s != NULL) {
        puts(s);
        free(s);
    }
    json_decref(doc);
}

/* Parses a non-negative integer option; returns -1 when malformed. */
static long long opt_int(const char *s, long long dflt)
{
    char *end;
    long long v;

    if (s == NULL)
        return dflt;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < 0)
        return -1;
    return v;
}

/* Returns 1 when r is a string reply (the only kind with a usable str
 * besides errors, which run() already turned away). */
static int is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

/* Returns a flat field array of a stream entry as a JSON object (values
 * as strings; text that is not UTF-8 is escaped by sl__json_text, so
 * the output stays JSON and keeps every field). */
static json_t *fields_json(const redisReply *f)
{
    json_t *o = json_object();
    size_t i;

    for (i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *fv = f->element[i + 1];
        json_t *name, *v;
        if (!is_str(k) || !is_str(fv))
            continue;
        v = sl__json_text(fv->str, (size_t)fv->len);
        /* A name that is not UTF-8 would make jansson drop the field. */
        if ((name = sl__json_text(k->str, (size_t)k->len)) != NULL)
            json_object_set_new(o, json_string_value(name), v);
        else
            json_decref(v);
        json_decref(name);
    }
    return o;
}

/* Returns the value of field name in a flat field array, escaped for a
 * table in slot i of c (see sl__cell), or "" when there is no such field. */
static const char *field(struct sl_cells *c, int i, const redisReply *f, const char *name)
{
    size_t j;

    for (j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2)
        if (is_str(f->element[j]) && is_str(f->element[j + 1]) &&
            strcmp(f->element[j]->str, name) == 0)
            return sl__cell(c, i, f->element[j + 1]->str, (size_t)f->element[j + 1]->len);
    return "";
}

/* Returns the JSON string member key of o escaped for a table in slot i
 * of c; "" when o has no such string. */
static const char *jcell(struct sl_cells *c, int i, const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_string(v))
        return "";
    return sl__cell(c, i, json_string_value(v), json_string_length(v));
}

/* ------------------------------------------------------------------ */
/* checks shared by enqueue and dlq replay --data                      */
/* ------------------------------------------------------------------ */

/* Runs the checks a worker with tunables t and handler h (NULL: not in
 * this binary's registry, so any type and parsed JSON) makes before its
 * handler runs on the entry {type, data}: sl__msg_prepare(), the same
 * function, with no TTL (a new entry is never expired). Returns 0, or -1
 * with the dead-letter error it would get in err. */
static int check_one(const struct sl_tunables *t, const struct sl_handler *h, const char *type,
                     const char *data, size_t len, char *err, size_t errlen)
{
    struct sl_field f[2];
    struct sl_msg msg;
    struct sl_ctx *ctx;
    const char **types = NULL;
    int any = 1, rc;

    if (h != NULL && (types = sl__handler_types_new(h, &any)) == NULL && !any) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    f[0].name = "type";
    f[0].name_len = 4;
    f[0].value = type;
    f[0].value_len = strlen(type);
    f[1].name = "data";
    f[1].name_len = 4;
    f[1].value = data;
    f[1].value_len = len;
    memset(&msg, 0, sizeof(msg));
    msg.id = "0-0";
    msg.stream = "";
    msg.fields = f;
    msg.nfields = 2;
    if ((ctx = sl__ctx_new(NULL)) == NULL) {
        free(types);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = sl__msg_prepare(ctx, &msg, t, h != NULL && (h->flags & SL_HANDLER_RAW) != 0,
                         types, 0);
    if (rc != 0)
        snprintf(err, errlen, "%s", ctx->err);
    json_decref(msg.data);
    sl__ctx_free(ctx);
    free(types);
    return rc == 0 ? 0 : -1;
}

/* Checks the entry {type, data} for stream as every worker entry of the
 * configuration that consumes stream would (each group gets its own
 * copy, so each must accept it): size, encoding, JSON and the type its
 * handler declares. A stream no worker entry names gets the defaults'
 * limits and any type. An entry that would only be dead-lettered is so
 * refused before anything is written. Returns 0, or -1 with a message in
 * err that names the handler. */
static int check_entry(const struct sl_config *cfg, const struct sl_handler *const *reg,
                       const char *stream, const char *type, const char *data, size_t len,
                       char *err, size_t errlen)
{
    char why[SL_ERRLEN];
    int seen = 0;
    size_t i;

    for (i = 0; i < cfg->nworkers; i++) {
        const struct sl_worker_conf *wc = &cfg->workers[i];
        const struct sl_handler *h;

        if (strcmp(wc->stream, stream) != 0)
            continue;
        seen = 1;
        h = reg != NULL ? sl__registry_find(reg, wc->handler) : NULL;
        if (check_one(&wc->t, h, type, data, len, why, sizeof(why)) != 0) {
            if (strncmp(why, "unknown_type", 12) == 0) {
                char known[512] = "";
                int any = 0;
                const char **types = h != NULL ? sl__handler_types_new(h, &any) : NULL;
                size_t k, o = 0;
                for (k = 0; types != NULL && types[k] != NULL && o < sizeof(known); k++)
                    o += (size_t)snprintf(known + o, sizeof(known) - o, "%s%s", k ? ", " : "",
                                          types[k]);
                free(types);
                snprintf(err, errlen, "handler %s (stream %s, group %s) does not accept type "
                         "\"%s\" (%s); it accepts: %s", wc->handler, stream, wc->group, type,
                         why, known);
            } else {
                snprintf(err, errlen, "handler %s (stream %s) would dead-letter it: %s",
                         wc->handler, stream, why);
            }
            return -1;
        }
    }
    if (!seen && check_one(&cfg->defaults, NULL, type, data, len, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "a worker would dead-letter it: %s", why);
        return -1;
    }
    return 0;
}

/* Returns 1 when s is a complete stream entry ID, MS-SEQ (decimal
 * digits, both parts), else 0: what an ID argument must look like, so
 * that a stream name in its place is told apart before Redis sees it.
 * The short form MS is refused: XRANGE reads it as a range of IDs and
 * XDEL as MS-0, so one command could act on two different entries. */
static int is_entry_id(const char *s)
{
    const char *p = s;

    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p++ != '-' || *p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    return *p == '\0';
}

/* ------------------------------------------------------------------ */
/* enqueue                                                             */
/* ------------------------------------------------------------------ */

/* XADDs {type, data} to stream. Returns the reply (a string: the new
 * ID) or NULL after printing the error. New: freeReplyObject(). */
static redisReply *xadd_entry(struct sl_sync *c, const char *stream, const char *type,
                              const char *data, size_t len)
{
    const char *argv[7] = { "XADD", stream, "*", "type", type, "data", data };
    size_t argl[7] = { 4, strlen(stream), 1, 4, strlen(type), 4, len };
    redisReply *r;

    /* To the stream's master; never resent after a lost connection: the
     * entry may have been added, and a resend would add it twice. */
    sl__sync_route(c, stream, 0);
    r = checked(c, sl__sync_argv(c, 7, argv, argl));

    if (r != NULL && r->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "sluice: redis: unexpected reply to XADD\n");
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Parses one line of `sluice enqueue STREAM -`: either a JSON object
 * {"type": T, "data": {...}} (data an object, or a string holding the
 * JSON text), or `TYPE DATA`: the type up to the first space, the data
 * after it. Sets *type and *data (new: free()) and returns 0, or -1
 * with the reason in err. */
static int parse_line(const char *line, char **type, char **data, char *err, size_t errlen)
{
    const char *sp;

    *type = *data = NULL;
    if (line[0] == '{') {
        json_error_t jerr;
        json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr), *t, *d;

        if (o == NULL) {
            snprintf(err, errlen, "JSON: %s at column %d", jerr.text, jerr.column);
            return -1;
        }
        t = json_object_get(o, "type");
        d = json_object_get(o, "data");
        if (!json_is_string(t) || d == NULL || json_object_size(o) != 2) {
            snprintf(err, errlen, "a JSON line must be {\"type\": TYPE, \"data\": DATA}");
            json_decref(o);
            return -1;
        }
        *type = strdup(json_string_value(t));
        if (json_is_string(d))
            *data = strdup(json_string_value(d));
        else
            *data = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        json_decref(o);
    } else {
        if ((sp = strchr(line, ' ')) == NULL || sp == line) {
            snprintf(err, errlen, "expected TYPE DATA or a JSON object");
            return -1;
        }
        *type = strndup(line, (size_t)(sp - line));
        *data = strdup(sp + 1);
    }
    if (*type == NULL || *data == NULL) {
        free(*type);
        free(*data);
        *type = *data = NULL;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Prints the new ID of one added entry, or adds it to doc with --json. */
static void report_added(const struct sl_args *a, json_t *doc, long line, const char *id)
{
    if (!a->json)
        printf("%s\n", id);
    else if (line > 0)
        json_array_append_new(doc, json_pack("{s:I,s:s}", "line", (json_int_t)line, "id", id));
    else
        json_object_set_new(doc, "id", json_string(id));
}

/* sluice enqueue STREAM -: one entry per line of stdin (see
 * parse_line). Every line is read and checked first; only when all of
 * them pass is anything sent, so a bad line leaves the stream as it was
 * and its number is in the error. Blank lines are skipped. */
static int enqueue_stdin(const struct sl_args *a, struct sl_sync **cp, const struct sl_config *cfg,
                         const struct sl_handler *const *reg, const char *stream)
{
    char **types = NULL, **datas = NULL, *line = NULL, err[SL_ERRLEN + 256];
    long *lines = NULL;
    size_t n = 0, cap = 0, i, lcap = 0;
    long lineno = 0;
    ssize_t got;
    json_t *doc = NULL;
    int rc = 2;

    while ((got = getline(&line, &lcap, stdin)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (got == 0)
            continue;
        if ((size_t)got != strlen(line)) {
            fprintf(stderr, "sluice: stdin line %ld: holds a NUL byte\n", lineno);
            goto out;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nt = realloc(types, nc * sizeof(*nt)), **nd;
            long *nl;
            if (nt != NULL)
                types = nt;
            nd = nt != NULL ? realloc(datas, nc * sizeof(*nd)) : NULL;
            if (nd != NULL)
                datas = nd;
            nl = nd != NULL ? realloc(lines, nc * sizeof(*nl)) : NULL;
            if (nl == NULL) {
                fprintf(stderr, "sluice: out of memory\n");
                rc = 1;
                goto out;
            }
            lines = nl;
            cap = nc;
        }
        if (parse_line(line, &types[n], &datas[n], err, sizeof(err)) != 0 ||
            check_entry(cfg, reg, stream, types[n], datas[n], strlen(datas[n]),
                        err, sizeof(err)) != 0) {
            fprintf(stderr, "sluice: stdin line %ld: %s (nothing was added)\n", lineno, err);
            if (types[n] != NULL)
                n++;
            goto out;
        }
        lines[n++] = lineno;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "sluice: stdin: %s (nothing was added)\n", strerror(errno));
        rc = 1;
        goto out;
    }
    if ((*cp = sl__admin_connect(cfg)) == NULL) {
        rc = 1;
        goto out;
    }
    doc = json_array();
    rc = 0;
    for (i = 0; i < n && doc != NULL; i++) {
        redisReply *r = xadd_entry(*cp, stream, types[i], datas[i], strlen(datas[i]));
        if (r == NULL) {
            /* Lines before this one are in the stream: say which. */
            fprintf(stderr, "sluice: stdin line %ld not added; %zu line(s) before it were\n",
                    lines[i], i);
            rc = 1;
            break;
        }
        report_added(a, doc, lines[i], r->str);
        freeReplyObject(r);
    }
    if (doc == NULL)
        rc = 1;
    else if (a->json && rc == 0)
        print_json(json_incref(doc));
out:
    json_decref(doc);
    for (i = 0; i < n; i++) {
        free(types[i]);
        free(datas[i]);
    }
    free(types);
    free(datas);
    free(lines);
    free(line);
    return rc;
}

/* sluice enqueue STREAM TYPE JSON, or STREAM - (lines of stdin): checks
 * each entry as the stream's configured handlers would (check_entry)
 * before anything is sent, then XADDs it with `*`. */
static int cmd_enqueue(const struct sl_args *a, struct sl_sync **cp, const struct sl_config *cfg,
                       const struct sl_handler *const *reg)
{
    char err[SL_ERRLEN + 256];
    redisReply *r;
    json_t *doc;

    if (a->npos == 3 && strcmp(a->pos[2], "-") == 0)
        return enqueue_stdin(a, cp, cfg, reg, a->pos[1]);
    if (a->npos != 4) {
        fprintf(stderr, "sluice: usage: sluice enqueue STREAM TYPE JSON | STREAM - [--json]\n");
        return 2;
    }
    if (a->pos[1][0] == '\0' || strlen(a->pos[1]) > SL_NAME_MAX) {
        fprintf(stderr, "sluice: STREAM must be 1 to %d bytes\n", SL_NAME_MAX);
        return 2;
    }
    if (check_entry(cfg, reg, a->pos[1], a->pos[2], a->pos[3], strlen(a->pos[3]),
                    err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice: %s (nothing was added)\n", err);
        return 2;
    }
    if ((*cp = sl__admin_connect(cfg)) == NULL)
        return 1;
    if ((r = xadd_entry(*cp, a->pos[1], a->pos[2], a->pos[3], strlen(a->pos[3]))) == NULL)
        return 1;
    if (a->json && (doc = json_object()) != NULL) {
        report_added(a, doc, 0, r->str);
        print_json(doc);
    } else if (!a->json) {
        report_added(a, NULL, 0, r->str);
    }
    freeReplyObject(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* dlq                                                                 */
/* ------------------------------------------------------------------ */

#define DLQ_PAGE 500              /* entries per purge script and per replay read */
#define DLQ_LIST_DEFAULT 100      /* dlq list's default --count */
#define DLQ_LIST_MAX 100000       /* its largest: one page is one reply held in memory */

/* Returns the ID of the newest entry of dkey into last (size bytes):
 * where replay --all and purge stop, so that what is dead-lettered
 * while they run is never touched. Returns 1 found, 0 for an empty or
 * missing stream, -1 after printing an error. */
static int dlq_last(struct sl_sync *c, const char *dkey, char *last, size_t size)
{
    const char *argv[] = { "XREVRANGE", dkey, "+", "-", "COUNT", "1" };
    redisReply *r = run(c, 6, argv);
    int rc = 0;

    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "sluice: redis: unexpected reply to XREVRANGE\n");
        rc = -1;
    } else if (r->elements > 0) {
        const redisReply *e = r->element[0];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 || !is_str(e->element[0])) {
            fprintf(stderr, "sluice: redis: unexpected reply to XREVRANGE\n");
            rc = -1;
        } else {
            snprintf(last, size, "%s", e->element[0]->str);
            rc = 1;
        }
    }
    freeReplyObject(r);
    return rc;
}

/* Parses a duration: a whole number followed by ms, s, m, h or d.
 * Returns milliseconds, or -1 when malformed or too large. */
static long long parse_duration_ms(const char *s)
{
    static const struct { const char *unit; long long ms; } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
    };
    char *end;
    long long v;
    size_t i;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0)
        return -1;
    for (i = 0; i < SL_NELEM(units); i++)
        if (strcmp(end, units[i].unit) == 0)
            return v > LLONG_MAX / units[i].ms ? -1 : v * units[i].ms;
    return -1;
}

/* Prints one dead letter's fields, one "name: value" line each. */
static void show_entry(const redisReply *e)
{
    struct sl_cells cells = { { NULL } };
    const redisReply *f = e->element[1];
    size_t j;

    printf("id: %s\n", sl__cell(&cells, 0, e->element[0]->str, (size_t)e->element[0]->len));
    for (j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2)
        if (is_str(f->element[j]) && is_str(f->element[j + 1]))
            printf("%s: %s\n", sl__cell(&cells, 0, f->element[j]->str, (size_t)f->element[j]->len),
                   sl__cell(&cells, 1, f->element[j + 1]->str, (size_t)f->element[j + 1]->len));
    sl__cells_free(&cells);
}

/* Returns 1 when e is an entry of an XRANGE reply: [id, fields]. */
static int is_entry(const redisReply *e)
{
    return e->type == REDIS_REPLY_ARRAY && e->elements >= 2 && is_str(e->element[0]);
}

static const struct sl_col dlq_list_table[] = {
    { "ID", -22 }, { "SOURCE_ID", -22 }, { "TYPE", -20 }, { "DELIVERIES", -10 }, { "ATTEMPTS", -8 },
    { "ERROR", -1 }
};

/* dlq list STREAM [--after ID] [--count N] and dlq show ID STREAM.
 * list reads one entry more than it shows, to know whether there is a
 * next page; it then prints the cursor for it (the last ID shown). */
static int dlq_list(const struct sl_args *a, struct sl_sync *c, const char *dkey, const char *id)
{
    char start[64], cnt[24], next[64] = "";
    const char *argv[] = { "XRANGE", dkey, "-", "+", "COUNT", cnt };
    long long n = id != NULL ? 1 : opt_int(a->count, DLQ_LIST_DEFAULT);
    json_t *doc;
    redisReply *r;
    size_t i, shown;
    struct sl_table t;
    const char *row[6];
    int bad = 0;

    if (n <= 0 || n > DLQ_LIST_MAX) {
        fprintf(stderr, "sluice: --count: expected an integer from 1 to %d\n", DLQ_LIST_MAX);
        return 2;
    }
    if (a->after != NULL && !is_entry_id(a->after)) {
        fprintf(stderr, "sluice: --after \"%s\": expected an entry ID (MS-SEQ)\n", a->after);
        return 2;
    }
    if (id != NULL) {
        argv[2] = argv[3] = id;
    } else if (a->after != NULL) {
        snprintf(start, sizeof(start), "(%s", a->after);
        argv[2] = start;
    }
    snprintf(cnt, sizeof(cnt), "%lld", n + (id == NULL));
    if ((r = run(c, 6, argv)) == NULL)
        return 1;
    if (r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "sluice: redis: unexpected reply to XRANGE\n");
        freeReplyObject(r);
        return 1;
    }
    if (id != NULL && (r->elements == 0 || !is_entry(r->element[0]))) {
        fprintf(stderr, "sluice: no dead letter %s in %s\n", id, dkey);
        freeReplyObject(r);
        return 1;
    }
    shown = r->elements > (size_t)n ? (size_t)n : r->elements;
    if (r->elements > (size_t)n && is_entry(r->element[shown - 1]))
        snprintf(next, sizeof(next), "%s", r->element[shown - 1]->element[0]->str);
    if (id != NULL && !a->json) {
        show_entry(r->element[0]);
        freeReplyObject(r);
        return 0;
    }
    doc = json_array();
    sl__table_init(&t, dlq_list_table, (int)SL_NELEM(dlq_list_table));
    for (i = 0; i < shown && doc != NULL; i++) {
        const redisReply *e = r->element[i];
        struct sl_cells cells = { { NULL } };
        /* The fields of a deleted entry can be nil. */
        if (!is_entry(e))
            continue;
        if (a->json) {
            json_t *o = json_object();
            json_object_set_new(o, "id", json_string(e->element[0]->str));
            json_object_set_new(o, "fields", fields_json(e->element[1]));
            json_array_append_new(doc, o);
            continue;
        }
        /* Every cell comes from the entry, which anyone who can XADD
         * wrote: escaped, so it cannot drive the terminal. A type is
         * shown whole (a cut could split a UTF-8 character): the column
         * widens to the longest. */
        row[0] = sl__cell(&cells, 0, e->element[0]->str, (size_t)e->element[0]->len);
        row[1] = field(&cells, 1, e->element[1], "source_id");
        row[2] = field(&cells, 2, e->element[1], "type");
        row[3] = field(&cells, 3, e->element[1], "deliveries");
        row[4] = field(&cells, 4, e->element[1], "attempts");
        row[5] = field(&cells, 5, e->element[1], "error");
        (void)sl__table_add(&t, 6, row);
        sl__cells_free(&cells);
    }
    if (doc == NULL) {
        sl__table_free(&t);
        freeReplyObject(r);
        return 1;
    }
    if (!a->json && sl__table_print(&t, stdout) != 0)
        bad = 1;
    sl__table_free(&t);
    if (a->json)
        print_json(id != NULL ? json_incref(json_array_get(doc, 0)) : json_incref(doc));
    /* The cursor: on stdout under the table, on stderr with --json so
     * the document stays one JSON array. */
    if (next[0] != '\0')
        fprintf(a->json ? stderr : stdout, "next: --after %s (more dead letters follow)\n", next);
    json_decref(doc);
    freeReplyObject(r);
    return bad;
}

/* dlq purge [ID] STREAM [--code CODE] [--older-than DURATION] [--yes].
 * One ID: XDEL. Otherwise pages of DLQ_PAGE entries, each one atomic
 * script (dlq_purge.lua), from the start up to the newest entry at the
 * start (or up to the age limit): a purge never blocks Redis for long,
 * and never removes what was dead-lettered while it ran. */
static int dlq_purge(const struct sl_args *a, struct sl_sync *c, const char *dkey, const char *id)
{
    char stop[64], from[80] = "-", page[24];
    long long purged = 0, age = -1;
    int rc;

    if (id != NULL && (a->code != NULL || a->older_than != NULL)) {
        fprintf(stderr, "sluice: dlq purge ID STREAM takes no --code or --older-than\n");
        return 2;
    }
    if (a->code != NULL && (a->code[0] == '\0' || strchr(a->code, ':') != NULL)) {
        fprintf(stderr, "sluice: --code \"%s\": expected a code such as invalid_json\n", a->code);
        return 2;
    }
    if (a->older_than != NULL && (age = parse_duration_ms(a->older_than)) < 0) {
        fprintf(stderr, "sluice: --older-than \"%s\": expected a duration such as 90s, 30m, "
                "12h or 7d\n", a->older_than);
        return 2;
    }
    if (id == NULL && a->code == NULL && a->older_than == NULL && !a->yes) {
        fprintf(stderr, "sluice: dlq purge of every dead letter of the stream needs --yes "
                "(or a filter: ID, --code, --older-than)\n");
        return 2;
    }
    if (id != NULL) {
        const char *argv[] = { "XDEL", dkey, id };
        redisReply *r = run(c, 3, argv);
        if (r == NULL)
            return 1;
        purged = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
        if (purged == 0) {
            fprintf(stderr, "sluice: no dead letter %s in %s\n", id, dkey);
            return 1;
        }
        goto done;
    }
    if ((rc = dlq_last(c, dkey, stop, sizeof(stop))) < 0)
        return 1;
    if (rc == 0)
        goto done;
    if (age >= 0) {
        /* A dead letter's ID is the time it was written, by Redis's
         * clock: the cut-off is now - age on that same clock. */
        const char *tm[] = { "TIME" };
        redisReply *r = run(c, 1, tm);
        long long now, cut;
        if (r == NULL)
            return 1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_str(r->element[0]) ||
            !is_str(r->element[1])) {
            fprintf(stderr, "sluice: redis: unexpected reply to TIME\n");
            freeReplyObject(r);
            return 1;
        }
        now = strtoll(r->element[0]->str, NULL, 10) * 1000 +
              strtoll(r->element[1]->str, NULL, 10) / 1000;
        freeReplyObject(r);
        cut = now - age;
        if (cut <= 0)
            goto done;
        if (strtoll(stop, NULL, 10) >= cut)
            snprintf(stop, sizeof(stop), "%lld", cut - 1);
    }
    snprintf(page, sizeof(page), "%d", DLQ_PAGE);
    for (;;) {
        const char *keys[] = { dkey };
        const char *args[] = { from, stop, page, a->code != NULL ? a->code : "" };
        redisReply *r = run_script(c, SL_SCRIPT_DLQ_PURGE, (int)SL_NELEM(keys), keys,
                                   (int)SL_NELEM(args), args);
        if (r == NULL)
            return 1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_str(r->element[0]) ||
            r->element[1]->type != REDIS_REPLY_INTEGER ||
            (size_t)r->element[0]->len >= sizeof(from)) {
            fprintf(stderr, "sluice: redis: unexpected reply to the purge script\n");
            freeReplyObject(r);
            return 1;
        }
        purged += r->element[1]->integer;
        snprintf(from, sizeof(from), "%s", r->element[0]->str);
        freeReplyObject(r);
        if (from[0] == '\0')
            break;
    }
done:
    if (a->json)
        print_json(json_pack("{s:I}", "purged", (json_int_t)purged));
    else
        printf("purged %lld dead letters from %s\n", purged, dkey);
    return 0;
}

/* Replays dead letter one of dkey into stream (replay.lua; data, when
 * not NULL, replaces its `data`). Returns 0 and adds it to doc or prints
 * it; 1 after printing why not. */
static int replay_one(const struct sl_args *a, struct sl_sync *c, const char *dkey,
                      const char *stream, const char *one, const char *data, json_t *doc)
{
    const char *keys[] = { dkey, stream };
    const char *args[] = { one, data != NULL ? "1" : "0", data != NULL ? data : "" };
    redisReply *r = run_script(c, SL_SCRIPT_REPLAY, (int)SL_NELEM(keys), keys,
                               (int)SL_NELEM(args), args);
    int rc = 0;

    if (r == NULL)
        return 1;
    if (r->type == REDIS_REPLY_NIL) {
        fprintf(stderr, "sluice: no dead letter %s in %s\n", one, dkey);
        rc = 1;
    } else if (!is_str(r)) {
        fprintf(stderr, "sluice: redis: unexpected reply to the replay script\n");
        rc = 1;
    } else if (a->json) {
        json_array_append_new(doc, json_pack("{s:s,s:s}", "dead_id", one, "new_id", r->str));
    } else {
        printf("replayed %s as %s in %s\n", one, r->str, stream);
    }
    freeReplyObject(r);
    return rc;
}

/* Checks corrected data for dead letter id before anything is written:
 * reads the dead letter's type and runs check_entry() on {type, data}.
 * Returns 0, 1 (Redis failed, or no such dead letter) or 2 (refused). */
static int replay_check(struct sl_sync *c, const struct sl_config *cfg,
                        const struct sl_handler *const *reg, const char *dkey,
                        const char *stream, const char *id, const char *data)
{
    const char *argv[] = { "XRANGE", dkey, id, id };
    char err[SL_ERRLEN + 256], type[SL_TYPELEN] = "";
    redisReply *r = run(c, 4, argv);
    const redisReply *f;
    size_t j;
    int rc = 0;

    if (r == NULL)
        return 1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0 || !is_entry(r->element[0])) {
        fprintf(stderr, "sluice: no dead letter %s in %s\n", id, dkey);
        freeReplyObject(r);
        return 1;
    }
    f = r->element[0]->element[1];
    for (j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2)
        if (is_str(f->element[j]) && is_str(f->element[j + 1]) &&
            strcmp(f->element[j]->str, "type") == 0)
            snprintf(type, sizeof(type), "%s", f->element[j + 1]->str);
    if (check_entry(cfg, reg, stream, type, data, strlen(data), err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice: --data: %s (nothing was replayed)\n", err);
        rc = 2;
    }
    freeReplyObject(r);
    return rc;
}

/* dlq replay --all STREAM: every dead letter up to the newest one at the
 * start, each once. Entries dead-lettered during the replay (a replayed
 * one that fails again, say) have larger IDs and are left for the next
 * call: with a handler that always fails, the loop would otherwise chase
 * its own tail for as long as the pool keeps up. */
static int replay_all(const struct sl_args *a, struct sl_sync *c, const char *dkey,
                      const char *stream, json_t *doc, long long *replayed)
{
    char stop[64], from[80] = "-", cnt[24];
    int rc = dlq_last(c, dkey, stop, sizeof(stop));

    if (rc <= 0)
        return rc < 0 ? 1 : 0;
    snprintf(cnt, sizeof(cnt), "%d", DLQ_PAGE);
    for (;;) {
        const char *rng[] = { "XRANGE", dkey, from, stop, "COUNT", cnt };
        redisReply *lr = run(c, 6, rng);
        size_t k;

        if (lr == NULL)
            return 1;
        if (lr->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "sluice: redis: unexpected reply to XRANGE\n");
            freeReplyObject(lr);
            return 1;
        }
        for (k = 0; k < lr->elements; k++) {
            const redisReply *le = lr->element[k];
            if (le->type != REDIS_REPLY_ARRAY || le->elements < 1 || !is_str(le->element[0]) ||
                (size_t)le->element[0]->len + 2 > sizeof(from)) {
                fprintf(stderr, "sluice: redis: unexpected reply to XRANGE\n");
                freeReplyObject(lr);
                return 1;
            }
            if (replay_one(a, c, dkey, stream, le->element[0]->str, NULL, doc) != 0) {
                freeReplyObject(lr);
                return 1;
            }
            (*replayed)++;
            snprintf(from, sizeof(from), "(%s", le->element[0]->str);
        }
        k = lr->elements;
        freeReplyObject(lr);
        if (k < (size_t)DLQ_PAGE)
            return 0;
    }
}

/* The verbs that take an ID before STREAM. */
static int verb_takes_id(const char *verb, const struct sl_args *a)
{
    if (!strcmp(verb, "show"))
        return 1;
    if (!strcmp(verb, "replay"))
        return !a->all;
    if (!strcmp(verb, "purge"))
        return a->npos == 4;
    return 0;
}

/* sluice dlq list|show ID|replay [ID|--all]|purge [ID] STREAM. STREAM is
 * the source stream; its dead letters are in STREAM:dead. An ID
 * argument must look like an entry ID, so swapped arguments are a usage
 * error that says so, not a Redis error. */
static int cmd_dlq(const struct sl_args *a, struct sl_sync **cp, const struct sl_config *cfg,
                   const struct sl_handler *const *reg)
{
    const char *verb = a->npos > 1 ? a->pos[1] : "";
    const char *id = NULL, *stream;
    char dkey[SL_KEYLEN];
    int want, rc;

    want = verb_takes_id(verb, a) ? 4 : 3;
    if ((strcmp(verb, "list") && strcmp(verb, "show") && strcmp(verb, "replay") &&
         strcmp(verb, "purge")) || a->npos != want) {
        fprintf(stderr, "sluice: usage: sluice dlq list|show ID|replay [ID|--all]|purge [ID] "
                "STREAM (see sluice help dlq)\n");
        return 2;
    }
    if (want == 4) {
        id = a->pos[2];
        stream = a->pos[3];
        if (!is_entry_id(id)) {
            if (is_entry_id(stream))
                fprintf(stderr, "sluice: dlq %s: \"%s\" is not an entry ID; the ID comes "
                        "first: sluice dlq %s %s %s\n", verb, id, verb, stream, id);
            else
                fprintf(stderr, "sluice: dlq %s: \"%s\" is not an entry ID (MS-SEQ)\n", verb, id);
            return 2;
        }
    } else {
        stream = a->pos[2];
    }
    if (a->data != NULL && id == NULL) {
        fprintf(stderr, "sluice: dlq replay --data needs one ID: sluice dlq replay ID STREAM "
                "--data JSON\n");
        return 2;
    }
    snprintf(dkey, sizeof(dkey), "%s:dead", stream);
    if ((*cp = sl__admin_connect(cfg)) == NULL)
        return 1;
    /* In a cluster every command of a dlq verb goes to the master of the
     * dead letters (which share the stream's hash tag, and so its slot);
     * list and show only read, so they may be resent after a lost
     * connection; purge and replay write and are not. */
    sl__sync_route(*cp, dkey, !strcmp(verb, "list") || !strcmp(verb, "show"));
    if (!strcmp(verb, "list") || !strcmp(verb, "show"))
        return dlq_list(a, *cp, dkey, id);
    if (!strcmp(verb, "purge"))
        return dlq_purge(a, *cp, dkey, id);

    /* replay */
    {
        json_t *doc = json_array();
        long long replayed = 0;

        if (doc == NULL)
            return 1;
        if (id != NULL) {
            rc = a->data != NULL ? replay_check(*cp, cfg, reg, dkey, stream, id, a->data) : 0;
            if (rc == 0)
                rc = replay_one(a, *cp, dkey, stream, id, a->data, doc);
        } else {
            rc = replay_all(a, *cp, dkey, stream, doc, &replayed);
        }
        if (a->json && rc == 0)
            print_json(json_incref(doc));
        else if (id == NULL && !a->json)
            printf("replayed %lld dead letters\n", replayed);
        json_decref(doc);
        return rc;
    }
}

/* ------------------------------------------------------------------ */
/* pending                                                             */
/* ------------------------------------------------------------------ */

/* Returns sluice's bookkeeping of the entries of the XPENDING reply e of
 * stream and group: an HMGET of the attempts hash with one reply element
 * per element of e (nil where an element is not an entry or has no
 * field), and one more (a placeholder). NULL after printing an error. New: freeReplyObject(). */
static redisReply *pending_attempts(struct sl_sync *c, const char *stream, const char *group,
                                    const redisReply *e)
{
    char akey[SL_KEYLEN];
    const char **argv = calloc(e->elements + 3, sizeof(*argv));
    redisReply *r;
    size_t i;

    if (argv == NULL) {
        fprintf(stderr, "sluice: out of memory\n");
        return NULL;
    }
    sl__attempts_key(akey, sizeof(akey), stream, group);
    argv[0] = "HMGET";
    argv[1] = akey;
    for (i = 0; i < e->elements; i++) {
        const redisReply *p = e->element[i];
        /* A placeholder ID keeps the reply aligned with e. */
        argv[i + 2] = p->type == REDIS_REPLY_ARRAY && p->elements > 0 && is_str(p->element[0]) ?
                      p->element[0]->str : "-";
    }
    /* One more placeholder: HMGET needs a field even when e is empty. */
    argv[e->elements + 2] = "-";
    r = run(c, (int)e->elements + 3, argv);
    free(argv);
    if (r != NULL && (r->type != REDIS_REPLY_ARRAY || r->elements != e->elements + 1)) {
        fprintf(stderr, "sluice: redis: unexpected reply to HMGET\n");
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* The tables of `sluice pending`: the narrowest widths; a longer
 * consumer name widens its column on every row. */
static const struct sl_col pending_cons_table[] = { { "CONSUMER", -40 }, { "PENDING", -1 } };
static const struct sl_col pending_ent_table[] = {
    { "ID", -24 }, { "CONSUMER", -40 }, { "IDLE_MS", 10 }, { "DELIVERIES", 10 }, { "ATTEMPTS", 8 }
};

/* Prints the pending view of one group; adds it to doc with --json. */
static int pending_group(struct sl_sync *c, const struct sl_args *a, const char *stream,
                         const char *group, long long idle, long long count, json_t *doc)
{
    const char *sum[] = { "XPENDING", stream, group };
    char idle_s[24], count_s[24];
    const char *ext[] = { "XPENDING", stream, group, "IDLE", idle_s, "-", "+", count_s };
    redisReply *s, *e, *att;
    json_t *g = json_object(), *cons = json_array(), *ents = json_array();
    size_t i;
    int bad = 0;

    snprintf(idle_s, sizeof(idle_s), "%lld", idle);
    snprintf(count_s, sizeof(count_s), "%lld", count);
    if ((s = run(c, 3, sum)) == NULL || (e = run(c, 8, ext)) == NULL) {
        freeReplyObject(s);
        json_decref(g);
        json_decref(cons);
        json_decref(ents);
        return 1;
    }
    /* Summary: [count, min id, max id, [[consumer, count]...] or nil]. */
    if (s->type != REDIS_REPLY_ARRAY || s->elements < 4 ||
        s->element[0]->type != REDIS_REPLY_INTEGER || e->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "sluice: redis: unexpected reply to XPENDING\n");
        freeReplyObject(s);
        freeReplyObject(e);
        json_decref(g);
        json_decref(cons);
        json_decref(ents);
        return 1;
    }
    /* Names come from Redis as bytes: sl__json_text keeps those that are
     * not UTF-8 (json_string would refuse them and drop the member). */
    json_object_set_new(g, "stream", sl__json_text(stream, strlen(stream)));
    json_object_set_new(g, "group", sl__json_text(group, strlen(group)));
    json_object_set_new(g, "pending", json_integer(s->element[0]->integer));
    json_object_set_new(g, "min_id", s->element[1]->type == REDIS_REPLY_STRING ?
                        sl__json_text(s->element[1]->str, (size_t)s->element[1]->len) : json_null());
    json_object_set_new(g, "max_id", s->element[2]->type == REDIS_REPLY_STRING ?
                        sl__json_text(s->element[2]->str, (size_t)s->element[2]->len) : json_null());
    if (s->element[3]->type == REDIS_REPLY_ARRAY)
        for (i = 0; i < s->element[3]->elements; i++) {
            const redisReply *p = s->element[3]->element[i];
            if (p->type != REDIS_REPLY_ARRAY || p->elements < 2 || !is_str(p->element[0]) ||
                !is_str(p->element[1]))
                continue;
            json_array_append_new(cons, json_pack("{s:o,s:I}", "consumer",
                                  sl__json_text(p->element[0]->str, (size_t)p->element[0]->len),
                                  "pending", (json_int_t)strtoll(p->element[1]->str, NULL, 10)));
        }
    if ((att = pending_attempts(c, stream, group, e)) == NULL) {
        freeReplyObject(s);
        freeReplyObject(e);
        json_decref(g);
        json_decref(cons);
        json_decref(ents);
        return 1;
    }
    for (i = 0; i < e->elements; i++) {
        const redisReply *p = e->element[i];
        /* [id, consumer, idle ms, deliveries] */
        if (p->type != REDIS_REPLY_ARRAY || p->elements < 4 || !is_str(p->element[0]) ||
            !is_str(p->element[1]) || p->element[2]->type != REDIS_REPLY_INTEGER ||
            p->element[3]->type != REDIS_REPLY_INTEGER)
            continue;
        /* attempts: sluice's own count of failed attempts, from its
         * bookkeeping hash ("<n>:<not before>:<reason>"; no field: 0). */
        json_array_append_new(ents, json_pack("{s:o,s:o,s:I,s:I,s:I}",
                              "id", sl__json_text(p->element[0]->str, (size_t)p->element[0]->len),
                              "consumer", sl__json_text(p->element[1]->str, (size_t)p->element[1]->len),
                              "idle_ms", (json_int_t)p->element[2]->integer,
                              "deliveries", (json_int_t)p->element[3]->integer,
                              "attempts", (json_int_t)(i < att->elements &&
                                                       is_str(att->element[i]) ?
                                                       strtoll(att->element[i]->str, NULL, 10) : 0)));
    }
    freeReplyObject(att);
    json_object_set_new(g, "consumers", cons);
    json_object_set_new(g, "entries", ents);
    if (!a->json) {
        /* Group and consumer names are anyone's to choose: escaped. */
        struct sl_cells cells = { { NULL } };

        printf("stream %s group %s: %lld pending", jcell(&cells, 0, g, "stream"),
               jcell(&cells, 1, g, "group"), s->element[0]->integer);
        if (json_is_string(json_object_get(g, "min_id")) &&
            json_is_string(json_object_get(g, "max_id")))
            printf(" (%s .. %s)", jcell(&cells, 0, g, "min_id"), jcell(&cells, 1, g, "max_id"));
        printf("\n");
        if (json_array_size(cons) > 0) {
            struct sl_table t;
            sl__table_init(&t, pending_cons_table, (int)SL_NELEM(pending_cons_table));
            t.indent = "  ";
            for (i = 0; i < json_array_size(cons); i++) {
                json_t *o = json_array_get(cons, i);
                char n_s[24];
                const char *row[2];
                snprintf(n_s, sizeof(n_s), "%lld",
                         (long long)json_integer_value(json_object_get(o, "pending")));
                row[0] = jcell(&cells, 0, o, "consumer");
                row[1] = n_s;
                (void)sl__table_add(&t, 2, row);
            }
            if (sl__table_print(&t, stdout) != 0)
                bad = 1;
            sl__table_free(&t);
        }
        if (json_array_size(ents) > 0) {
            struct sl_table t;
            sl__table_init(&t, pending_ent_table, (int)SL_NELEM(pending_ent_table));
            t.indent = "  ";
            for (i = 0; i < json_array_size(ents); i++) {
                json_t *o = json_array_get(ents, i);
                char age_s[24], del_s[24], att_s[24];
                const char *row[5];
                snprintf(age_s, sizeof(age_s), "%lld",
                         (long long)json_integer_value(json_object_get(o, "idle_ms")));
                snprintf(del_s, sizeof(del_s), "%lld",
                         (long long)json_integer_value(json_object_get(o, "deliveries")));
                snprintf(att_s, sizeof(att_s), "%lld",
                         (long long)json_integer_value(json_object_get(o, "attempts")));
                row[0] = jcell(&cells, 0, o, "id");
                row[1] = jcell(&cells, 1, o, "consumer");
                row[2] = age_s;
                row[3] = del_s;
                row[4] = att_s;
                (void)sl__table_add(&t, 5, row);
            }
            if (sl__table_print(&t, stdout) != 0)
                bad = 1;
            sl__table_free(&t);
        }
        sl__cells_free(&cells);
        if (bad)
            fprintf(stderr, "sluice: out of memory: a row is missing\n");
    }
    json_array_append_new(doc, g);
    freeReplyObject(s);
    freeReplyObject(e);
    return bad;
}

/* sluice pending STREAM [GROUP] [--idle MS] [--count N] [--json]. */
static int cmd_pending(const struct sl_args *a, struct sl_sync **cp, const struct sl_config *cfg)
{
    long long idle = opt_int(a->idle, 0), count = opt_int(a->count, 10);
    json_t *doc;
    int rc = 0;
    size_t i;

    if (a->npos < 2 || a->npos > 3) {
        fprintf(stderr, "sluice: usage: sluice pending STREAM [GROUP] [--idle MS] [--count N] [--json]\n");
        return 2;
    }
    if (idle < 0 || count <= 0) {
        fprintf(stderr, "sluice: %s: expected a %s integer\n", idle < 0 ? "--idle" : "--count",
                idle < 0 ? "non-negative" : "positive");
        return 2;
    }
    if ((*cp = sl__admin_connect(cfg)) == NULL)
        return 1;
    sl__sync_route(*cp, a->pos[1], 1);  /* reads, on the stream's master in a cluster */
    doc = json_array();
    if (a->npos == 3) {
        rc = pending_group(*cp, a, a->pos[1], a->pos[2], idle, count, doc);
    } else {
        const char *argv[] = { "XINFO", "GROUPS", a->pos[1] };
        redisReply *r = sl__sync_argv(*cp, 3, argv, NULL);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            if (r != NULL && r->type == REDIS_REPLY_ERROR && strstr(r->str, "no such key") != NULL)
                fprintf(stderr, "sluice: no stream %s\n", a->pos[1]);
            else
                fprintf(stderr, "sluice: redis: %s\n", r == NULL ? (*cp)->errstr :
                        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply to XINFO GROUPS");
            freeReplyObject(r);
            json_decref(doc);
            return 1;
        }
        if (r->elements == 0 && !a->json)
            printf("stream %s has no consumer groups\n", a->pos[1]);
        for (i = 0; i < r->elements && rc == 0; i++) {
            const redisReply *g = r->element[i];
            size_t j;
            for (j = 0; g->type == REDIS_REPLY_ARRAY && j + 1 < g->elements; j += 2)
                if (is_str(g->element[j]) && is_str(g->element[j + 1]) &&
                    !strcmp(g->element[j]->str, "name"))
                    rc = pending_group(*cp, a, a->pos[1], g->element[j + 1]->str, idle, count, doc);
        }
        freeReplyObject(r);
    }
    if (a->json && rc == 0)
        print_json(json_incref(doc));
    json_decref(doc);
    return rc;
}

/* ------------------------------------------------------------------ */
/* workers                                                             */
/* ------------------------------------------------------------------ */

/* The columns of `sluice workers`: the heartbeat's fields, in order. */
static const char *const worker_cols[] = { "pid", "host", "handler", "stream", "group",
                                           "started_at", "last_beat", "processed", "failed",
                                           "busy", "entry", "entry_since" };
#define WORKER_NUMS 9             /* worker_cols before this one are the beat's own; after, the entry in hand */

/* The table of `sluice workers`: the narrowest widths; a longer name
 * widens its column on every row. */
static const struct sl_col worker_table[] = {
    { "CONSUMER", -36 }, { "PID", 8 }, { "HANDLER", -10 }, { "STREAM", -12 }, { "GROUP", -18 },
    { "UP_S", 8 }, { "BEAT_MS", 8 }, { "PROCESSED", 10 }, { "FAILED", 8 }, { "STATE", -5 },
    { "ENTRY", -24 }, { "ENTRY_MS", 8 }
};

/* Runs one command of the heartbeat walk, printing a failure. */
static redisReply *worker_cmd(struct sl_sync *c, int argc, const char **argv, void *arg)
{
    (void)arg;
    return run(c, argc, argv);
}

/* Adds one heartbeat to the document (the array arg). */
static int worker_seen(const char *consumer, size_t len, const redisReply *h, void *arg)
{
    json_t *doc = arg, *o;
    size_t j;

    if (h->type != REDIS_REPLY_ARRAY || h->elements != SL_NELEM(worker_cols) ||
        h->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    o = json_object();
    json_object_set_new(o, "consumer", sl__json_text(consumer, len));
    sl__hb_entry_json(o, h->element[WORKER_NUMS], h->element[WORKER_NUMS + 1],
                      h->element[WORKER_NUMS + 2]);
    for (j = 0; j < WORKER_NUMS; j++) {
        const char *v = h->element[j]->type == REDIS_REPLY_STRING ? h->element[j]->str : "";
        if (j == 0 || j >= 5)
            json_object_set_new(o, worker_cols[j], json_integer(strtoll(v, NULL, 10)));
        else
            json_object_set_new(o, worker_cols[j], sl__json_text(v, strlen(v)));
    }
    json_array_append_new(doc, o);
    return 0;
}

/* sluice workers [--json]: every live heartbeat, sorted by name. */
static int cmd_workers(const struct sl_args *a, struct sl_sync **cp, const struct sl_config *cfg)
{
    json_t *doc = json_array();
    long long now;
    size_t i, j;

    if (a->npos != 1) {
        fprintf(stderr, "sluice: usage: sluice workers [--json]\n");
        json_decref(doc);
        return 2;
    }
    if ((*cp = sl__admin_connect(cfg)) == NULL) {
        json_decref(doc);
        return 1;
    }
    /* On a cluster: the registry of each configured stream's tag, on its
     * master. */
    switch (sl__hb_walk_cfg(*cp, cfg, worker_cols, (int)SL_NELEM(worker_cols), worker_cmd,
                            worker_seen, doc)) {
    case 0:
        break;
    case -2:
        fprintf(stderr, "sluice: redis: unexpected reply to ZRANGE\n");
        /* fall through */
    default:
        json_decref(doc);
        return 1;
    }

    /* Sort by consumer name so the table is stable. */
    for (i = 1; i < json_array_size(doc); i++)
        for (j = i; j > 0 && strcmp(json_string_value(json_object_get(json_array_get(doc, j - 1), "consumer")),
                                    json_string_value(json_object_get(json_array_get(doc, j), "consumer"))) > 0; j--) {
            json_t *x = json_incref(json_array_get(doc, j));
            json_array_remove(doc, j);
            json_array_insert_new(doc, j - 1, x);
        }
    /* The clock is read after every heartbeat was, so a beat that landed
     * during the scan cannot look younger than now; a worker on a host
     * whose clock is ahead shows 0, not a negative age. */
    now = (long long)sl__wall_ms();
    if (a->json) {
        print_json(json_incref(doc));
    } else {
        /* A heartbeat is a hash anyone can write: its names are escaped. */
        struct sl_cells cells = { { NULL } };
        struct sl_table t;
        int bad = 0;

        sl__table_init(&t, worker_table, (int)SL_NELEM(worker_table));
        for (i = 0; i < json_array_size(doc); i++) {
            json_t *o = json_array_get(doc, i);
            long long started = json_integer_value(json_object_get(o, "started_at"));
            long long beat = json_integer_value(json_object_get(o, "last_beat"));
            json_t *age = json_object_get(o, "entry_age_ms");
            char pid_s[24], up_s[24], beat_s[24], proc_s[24], fail_s[24], age_s[24];
            const char *row[SL_NELEM(worker_table)];

            if (json_is_integer(age))
                snprintf(age_s, sizeof(age_s), "%lld", (long long)json_integer_value(age));
            else
                snprintf(age_s, sizeof(age_s), "-");
            snprintf(pid_s, sizeof(pid_s), "%lld",
                     (long long)json_integer_value(json_object_get(o, "pid")));
            snprintf(up_s, sizeof(up_s), "%lld", now > started ? (now - started) / 1000 : 0);
            snprintf(beat_s, sizeof(beat_s), "%lld", now > beat ? now - beat : 0);
            snprintf(proc_s, sizeof(proc_s), "%lld",
                     (long long)json_integer_value(json_object_get(o, "processed")));
            snprintf(fail_s, sizeof(fail_s), "%lld",
                     (long long)json_integer_value(json_object_get(o, "failed")));
            row[0] = jcell(&cells, 0, o, "consumer");
            row[1] = pid_s;
            row[2] = jcell(&cells, 1, o, "handler");
            row[3] = jcell(&cells, 2, o, "stream");
            row[4] = jcell(&cells, 3, o, "group");
            row[5] = up_s;
            row[6] = beat_s;
            row[7] = proc_s;
            row[8] = fail_s;
            row[9] = json_is_true(json_object_get(o, "busy")) ? "busy" : "idle";
            row[10] = json_is_string(json_object_get(o, "entry")) ? jcell(&cells, 4, o, "entry")
                                                                  : "-";
            row[11] = age_s;
            (void)sl__table_add(&t, (int)SL_NELEM(row), row);
        }
        sl__cells_free(&cells);
        bad = sl__table_print(&t, stdout);
        sl__table_free(&t);
        if (bad) {
            fprintf(stderr, "sluice: out of memory\n");
            json_decref(doc);
            return 1;
        }
    }
    json_decref(doc);
    return 0;
}

/* Runs the admin subcommand cmd with its connection, which is closed
 * whatever happened. Returns the exit code. */
int sl__admin(const char *cmd, const struct sl_args *a, const struct sl_config *cfg,
              const struct sl_handler *const *registry)
{
    struct sl_sync *c = NULL;
    int rc;

    if (!strcmp(cmd, "enqueue"))
        rc = cmd_enqueue(a, &c, cfg, registry);
    else if (!strcmp(cmd, "dlq"))
        rc = cmd_dlq(a, &c, cfg, registry);
    else if (!strcmp(cmd, "pending"))
        rc = cmd_pending(a, &c, cfg);
    else if (!strcmp(cmd, "workers"))
        rc = cmd_workers(a, &c, cfg);
    else if (!strcmp(cmd, "stats"))
        rc = sl__stats(a, cfg);
    else
        rc = 2;
    sl__sync_free(c);
    return rc;
}
