/* admin.c -- the admin subcommands: enqueue, dlq, pending, workers.
 *
 * They use a synchronous connection with the configured connect and
 * command timeouts: an admin command that cannot reach Redis exits 1
 * with the reason, never hangs. Tables are aligned text; --json prints
 * one JSON document built with jansson.
 */
#include <errno.h>
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
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

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
/* enqueue                                                             */
/* ------------------------------------------------------------------ */

/* sluice enqueue STREAM TYPE JSON: checks that JSON is an object before
 * anything is sent, then XADDs it with `*`. */
static int cmd_enqueue(const struct sl_args *a, struct sl_sync **cp, const struct sl_config *cfg)
{
    json_error_t jerr;
    json_t *data;
    redisReply *r;
    const char *argv[7];

    if (a->npos != 4) {
        fprintf(stderr, "sluice: usage: sluice enqueue STREAM TYPE JSON\n");
        return 2;
    }
    data = json_loadb(a->pos[3], strlen(a->pos[3]), JSON_REJECT_DUPLICATES, &jerr);
    if (data == NULL) {
        fprintf(stderr, "sluice: JSON: %s at line %d column %d\n", jerr.text, jerr.line, jerr.column);
        return 2;
    }
    if (!json_is_object(data)) {
        fprintf(stderr, "sluice: JSON: data must be a JSON object\n");
        json_decref(data);
        return 2;
    }
    json_decref(data);
    if (a->pos[2][0] == '\0') {
        fprintf(stderr, "sluice: TYPE must not be empty\n");
        return 2;
    }
    if ((*cp = sl__admin_connect(cfg)) == NULL)
        return 1;
    argv[0] = "XADD"; argv[1] = a->pos[1]; argv[2] = "*";
    argv[3] = "type"; argv[4] = a->pos[2]; argv[5] = "data"; argv[6] = a->pos[3];
    if ((r = run(*cp, 7, argv)) == NULL)
        return 1;
    if (!is_str(r)) {
        fprintf(stderr, "sluice: redis: unexpected reply to XADD\n");
        freeReplyObject(r);
        return 1;
    }
    printf("%s\n", r->str);
    freeReplyObject(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* dlq                                                                 */
/* ------------------------------------------------------------------ */

/* sluice dlq list|show ID|replay [ID|--all]|purge STREAM. STREAM is the
 * source stream; its dead letters are in STREAM:dead. */
static int cmd_dlq(const struct sl_args *a, struct sl_sync **cp, const struct sl_config *cfg)
{
    const char *verb = a->npos > 1 ? a->pos[1] : "";
    const char *id = NULL, *stream;
    char dkey[1024];
    redisReply *r;
    int want;
    size_t i;

    want = !strcmp(verb, "show") || (!strcmp(verb, "replay") && !a->all) ? 4 : 3;
    if ((strcmp(verb, "list") && strcmp(verb, "show") && strcmp(verb, "replay") &&
         strcmp(verb, "purge")) || a->npos != want) {
        fprintf(stderr, "sluice: usage: sluice dlq list|show ID|replay [ID|--all]|purge STREAM [--json]\n");
        return 2;
    }
    if (want == 4) {
        id = a->pos[2];
        stream = a->pos[3];
    } else {
        stream = a->pos[2];
    }
    snprintf(dkey, sizeof(dkey), "%s:dead", stream);
    if ((*cp = sl__admin_connect(cfg)) == NULL)
        return 1;

    if (!strcmp(verb, "list") || !strcmp(verb, "show")) {
        const char *argv[] = { "XRANGE", dkey, id ? id : "-", id ? id : "+", "COUNT", "" };
        char cnt[24];
        long long n = opt_int(a->count, 1000);
        json_t *doc = json_array();
        struct sl_cells cells = { { NULL } };

        if (n <= 0) {
            fprintf(stderr, "sluice: --count: expected a positive integer\n");
            json_decref(doc);
            return 2;
        }
        snprintf(cnt, sizeof(cnt), "%lld", n);
        argv[5] = cnt;
        if ((r = run(*cp, 6, argv)) == NULL) {
            json_decref(doc);
            return 1;
        }
        if (r->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "sluice: redis: unexpected reply to XRANGE\n");
            freeReplyObject(r);
            json_decref(doc);
            return 1;
        }
        if (id != NULL && r->elements == 0) {
            fprintf(stderr, "sluice: no dead letter %s in %s\n", id, dkey);
            freeReplyObject(r);
            json_decref(doc);
            return 1;
        }
        if (!a->json && id == NULL)
            printf("%-22s %-22s %-20s %-10s %s\n", "ID", "SOURCE_ID", "TYPE", "DELIVERIES", "ERROR");
        for (i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            const redisReply *f;
            /* [id, fields]; the fields of a deleted entry can be nil. */
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !is_str(e->element[0]))
                continue;
            f = e->element[1];
            if (a->json) {
                json_t *o = json_object();
                json_object_set_new(o, "id", json_string(e->element[0]->str));
                json_object_set_new(o, "fields", fields_json(f));
                json_array_append_new(doc, o);
            } else if (id == NULL) {
                /* Every cell comes from the entry, which anyone who can
                 * XADD wrote: escaped, so it cannot drive the terminal. */
                printf("%-22s %-22s %-20.20s %-10s %s\n",
                       sl__cell(&cells, 0, e->element[0]->str, (size_t)e->element[0]->len),
                       field(&cells, 1, f, "source_id"), field(&cells, 2, f, "type"),
                       field(&cells, 3, f, "deliveries"), field(&cells, 4, f, "error"));
            } else {
                size_t j;
                printf("id: %s\n", sl__cell(&cells, 0, e->element[0]->str, (size_t)e->element[0]->len));
                for (j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2)
                    if (is_str(f->element[j]) && is_str(f->element[j + 1]))
                        printf("%s: %s\n",
                               sl__cell(&cells, 0, f->element[j]->str, (size_t)f->element[j]->len),
                               sl__cell(&cells, 1, f->element[j + 1]->str,
                                        (size_t)f->element[j + 1]->len));
            }
        }
        if (a->json)
            print_json(id ? json_incref(json_array_get(doc, 0)) : json_incref(doc));
        sl__cells_free(&cells);
        json_decref(doc);
        freeReplyObject(r);
        return 0;
    }

    if (!strcmp(verb, "purge")) {
        const char *argv[] = { "DEL", dkey };
        const char *len[] = { "XLEN", dkey };
        long long n;
        if ((r = run(*cp, 2, len)) == NULL)
            return 1;
        n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
        if ((r = run(*cp, 2, argv)) == NULL)
            return 1;
        freeReplyObject(r);
        if (a->json)
            print_json(json_pack("{s:I}", "purged", (json_int_t)n));
        else
            printf("purged %lld dead letters from %s\n", n, dkey);
        return 0;
    }

    /* replay: one atomic script per entry (re-add, then XDEL). */
    {
        json_t *doc = json_array();
        long long replayed = 0;
        int rc = 0;

        if (doc == NULL)
            return 1;
        for (;;) {
            const char *rng[] = { "XRANGE", dkey, "-", "+", "COUNT", "100" };
            redisReply *lr = NULL;
            size_t nids = 0, k;

            if (id != NULL) {
                nids = 1;
            } else {
                if ((lr = run(*cp, 6, rng)) == NULL) {
                    rc = 1;
                    break;
                }
                nids = lr->type == REDIS_REPLY_ARRAY ? lr->elements : 0;
            }
            for (k = 0; k < nids; k++) {
                const redisReply *le = id ? NULL : lr->element[k];
                const char *one;
                if (le != NULL && (le->type != REDIS_REPLY_ARRAY || le->elements < 1 ||
                                   !is_str(le->element[0]))) {
                    /* Not an entry: stop rather than loop over it for ever. */
                    fprintf(stderr, "sluice: redis: unexpected reply to XRANGE\n");
                    rc = 1;
                    break;
                }
                one = id ? id : le->element[0]->str;
                const char *keys[] = { dkey, stream };
                const char *args[] = { one };
                if ((r = run_script(*cp, SL_SCRIPT_REPLAY, (int)SL_NELEM(keys), keys,
                                    (int)SL_NELEM(args), args)) == NULL) {
                    rc = 1;
                    break;
                }
                if (r->type == REDIS_REPLY_NIL) {
                    fprintf(stderr, "sluice: no dead letter %s in %s\n", one, dkey);
                    rc = 1;
                } else if (!is_str(r)) {
                    fprintf(stderr, "sluice: redis: unexpected reply to the replay script\n");
                    rc = 1;
                } else {
                    replayed++;
                    if (a->json)
                        json_array_append_new(doc, json_pack("{s:s,s:s}", "dead_id", one,
                                                             "new_id", r->str));
                    else
                        printf("replayed %s as %s in %s\n", one, r->str, stream);
                }
                freeReplyObject(r);
            }
            freeReplyObject(lr);
            if (id != NULL || nids == 0 || rc != 0)
                break;
        }
        if (a->json)
            print_json(json_incref(doc));
        else if (id == NULL)
            printf("replayed %lld dead letters\n", replayed);
        json_decref(doc);
        return rc;
    }
}

/* ------------------------------------------------------------------ */
/* pending                                                             */
/* ------------------------------------------------------------------ */

/* Prints the pending view of one group; adds it to doc with --json. */
static int pending_group(struct sl_sync *c, const struct sl_args *a, const char *stream,
                         const char *group, long long idle, long long count, json_t *doc)
{
    const char *sum[] = { "XPENDING", stream, group };
    char idle_s[24], count_s[24];
    const char *ext[] = { "XPENDING", stream, group, "IDLE", idle_s, "-", "+", count_s };
    redisReply *s, *e;
    json_t *g = json_object(), *cons = json_array(), *ents = json_array();
    size_t i;

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
    for (i = 0; i < e->elements; i++) {
        const redisReply *p = e->element[i];
        /* [id, consumer, idle ms, deliveries] */
        if (p->type != REDIS_REPLY_ARRAY || p->elements < 4 || !is_str(p->element[0]) ||
            !is_str(p->element[1]) || p->element[2]->type != REDIS_REPLY_INTEGER ||
            p->element[3]->type != REDIS_REPLY_INTEGER)
            continue;
        json_array_append_new(ents, json_pack("{s:o,s:o,s:I,s:I}",
                              "id", sl__json_text(p->element[0]->str, (size_t)p->element[0]->len),
                              "consumer", sl__json_text(p->element[1]->str, (size_t)p->element[1]->len),
                              "idle_ms", (json_int_t)p->element[2]->integer,
                              "deliveries", (json_int_t)p->element[3]->integer));
    }
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
            printf("  %-40s %s\n", "CONSUMER", "PENDING");
            for (i = 0; i < json_array_size(cons); i++) {
                json_t *o = json_array_get(cons, i);
                printf("  %-40s %lld\n", jcell(&cells, 0, o, "consumer"),
                       (long long)json_integer_value(json_object_get(o, "pending")));
            }
        }
        if (json_array_size(ents) > 0) {
            printf("  %-24s %-40s %10s %10s\n", "ID", "CONSUMER", "IDLE_MS", "DELIVERIES");
            for (i = 0; i < json_array_size(ents); i++) {
                json_t *o = json_array_get(ents, i);
                printf("  %-24s %-40s %10lld %10lld\n",
                       jcell(&cells, 0, o, "id"), jcell(&cells, 1, o, "consumer"),
                       (long long)json_integer_value(json_object_get(o, "idle_ms")),
                       (long long)json_integer_value(json_object_get(o, "deliveries")));
            }
        }
        sl__cells_free(&cells);
    }
    json_array_append_new(doc, g);
    freeReplyObject(s);
    freeReplyObject(e);
    return 0;
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
                                           "started_at", "last_beat", "processed", "failed" };

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

    if (h->type != REDIS_REPLY_ARRAY || h->elements != 9 ||
        h->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    o = json_object();
    json_object_set_new(o, "consumer", sl__json_text(consumer, len));
    for (j = 0; j < 9; j++) {
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
    switch (sl__hb_scan(*cp, worker_cols, (int)SL_NELEM(worker_cols), worker_cmd, worker_seen, doc)) {
    case 0:
        break;
    case -2:
        fprintf(stderr, "sluice: redis: unexpected reply to SCAN\n");
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

        printf("%-36s %8s %-10s %-12s %-18s %8s %8s %10s %8s\n", "CONSUMER", "PID", "HANDLER",
               "STREAM", "GROUP", "UP_S", "BEAT_MS", "PROCESSED", "FAILED");
        for (i = 0; i < json_array_size(doc); i++) {
            json_t *o = json_array_get(doc, i);
            long long started = json_integer_value(json_object_get(o, "started_at"));
            long long beat = json_integer_value(json_object_get(o, "last_beat"));
            printf("%-36s %8lld %-10s %-12s %-18s %8lld %8lld %10lld %8lld\n",
                   jcell(&cells, 0, o, "consumer"),
                   (long long)json_integer_value(json_object_get(o, "pid")),
                   jcell(&cells, 1, o, "handler"), jcell(&cells, 2, o, "stream"),
                   jcell(&cells, 3, o, "group"),
                   now > started ? (now - started) / 1000 : 0, now > beat ? now - beat : 0,
                   (long long)json_integer_value(json_object_get(o, "processed")),
                   (long long)json_integer_value(json_object_get(o, "failed")));
        }
        sl__cells_free(&cells);
    }
    json_decref(doc);
    return 0;
}

/* Runs the admin subcommand cmd with its connection, which is closed
 * whatever happened. Returns the exit code. */
int sl__admin(const char *cmd, const struct sl_args *a, const struct sl_config *cfg)
{
    struct sl_sync *c = NULL;
    int rc;

    if (!strcmp(cmd, "enqueue"))
        rc = cmd_enqueue(a, &c, cfg);
    else if (!strcmp(cmd, "dlq"))
        rc = cmd_dlq(a, &c, cfg);
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
