/* web.h -- the dashboard (docs/dashboard.md), shared by its files:
 * web_data.c reads Redis into JSON documents, web.c serves them over
 * HTTP, from `sluice web` (its own process) or read-only from the pool's
 * listener (metrics.c), where the documents come from the supervisor's
 * snapshot (snapshot.c). */
#ifndef SL_WEB_H
#define SL_WEB_H

#include <stddef.h>
#include <hiredis.h>
#include <jansson.h>
#include "internal.h"

#define SL_WEB_MAX_STREAMS 4096   /* streams shown at most (configured plus --stream) */
#define SL_WEB_MAX_ROWS 8192      /* stream x group rows at most */
#define SL_WEB_CHART_PTS 60       /* points of the last-hour chart of a row */
#define SL_WEB_PAGE_MAX 200       /* dead letters or pending entries per page at most */
#define SL_WEB_SCAN_MAX 2000      /* dead letters one filtered page or purge step reads at most */

struct sl_web_state;

/* Returns the reader's state for the streams of cfg's workers plus the
 * `nextra` names in `extra` (copied), in that order, each once. New:
 * sl__web_state_free(). NULL when memory ran out. */
struct sl_web_state *sl__web_state_new(const struct sl_config *cfg, const char *const *extra,
                                       size_t nextra);
void sl__web_state_free(struct sl_web_state *st);

/* Returns 1 when `stream` is one of the streams st shows: every request
 * naming a stream is checked against them, so the dashboard never reads
 * or writes a key it was not given. */
int sl__web_stream_known(const struct sl_web_state *st, const char *stream);

/* Returns the i-th stream st shows (borrowed), or NULL past the last. */
const char *sl__web_stream_at(const struct sl_web_state *st, size_t i);

/* Runs `sluice web` on `listen` (NULL: 127.0.0.1:9122) until SIGINT or
 * SIGTERM, showing cfg's streams plus `streams` (borrowed). Returns the
 * exit code: 0 stopped, 1 runtime failure, 2 usage. */
int sl__web_run(const struct sl_config *cfg, const char *listen, int allow_writes,
                const char *const *streams, size_t nstreams);

#define SL_WEB_REPLAY_MAX 200000  /* commands one replayed read issues at most */

/* One command of a replayed read (web_data.c) and its reply. */
struct sl_web_cmd {
    int argc;
    char **argv;                  /* its arguments (owned) */
    redisReply *reply;            /* its reply (owned), NULL while awaited or failed */
    int sent;                     /* sent on the supervisor's connection */
    int have;                     /* its reply came (reply NULL: the connection failed it) */
};

/* A read of the overview and workers that the supervisor makes without
 * waiting: the commands its runs issued and the replies that came
 * (web_data.c explains). */
struct sl_web_replay {
    struct sl_web_cmd *cmd;       /* every command recorded, in issue order (owned) */
    size_t n, cap;
    size_t *fifo;                 /* this run's appended commands, in order (owned) */
    size_t nfifo, fifo_rd;        /* of those, appended and read */
    size_t issued;                /* commands this run issued */
    long long now;                /* the read's clock (ms since the epoch) */
    int pending;                  /* this run needed a reply that has not come */
    int mismatch;                 /* this run issued other commands than recorded */
    int failed;                   /* a reply it needed failed (connection lost) */
};

/* Where the overview and workers reads go: a synchronous connection
 * (`sluice web`: sync set, rp NULL), or a replay (the pool: rp set). */
struct sl_web_io {
    struct sl_sync *sync;
    struct sl_web_replay *rp;
    /* The configuration whose streams name the heartbeat registries on a
     * cluster, one per hash tag (borrowed; only read with sync): NULL
     * walks the one registry of a single Redis. */
    const struct sl_config *cfg;
};

/* Starts one run of rp; frees what it holds and empties it. */
void sl__web_replay_rewind(struct sl_web_replay *rp);
void sl__web_replay_clear(struct sl_web_replay *rp);

/* Reads the overview (every stream x group, see docs/dashboard.md)
 * through io and keeps what the next read needs (rate history,
 * dead-letter counts). Returns the document (new), or NULL when Redis
 * failed (err says why) or, replayed, a reply has not come yet. */
json_t *sl__web_overview(struct sl_web_state *st, struct sl_web_io *io, char *err, size_t errlen);

/* Makes the overviews of st show the dead letters by code of the n
 * tallies t (the pool snapshot's, copied; NULL: none) instead of
 * counting them itself: the pool counts them for /metrics already.
 * Returns 0, or -1 when out of memory. */
struct sl_dead_tally;
int sl__web_state_tallies(struct sl_web_state *st, const struct sl_dead_tally *t, size_t n);

/* Reads every live worker heartbeat. Returns an array (new) or NULL. */
json_t *sl__web_workers(struct sl_web_io *io, char *err, size_t errlen);

/* Reads one group: consumers, pending per consumer, the oldest pending
 * entries (at most `count`). Returns the document (new) or NULL. */
json_t *sl__web_group(struct sl_sync *c, const char *stream, const char *group, long count,
                      char *err, size_t errlen);

/* Reads one page of stream's dead letters after `cursor` (exclusive;
 * NULL or "" from the start), `count` at most, only those whose code is
 * `code` when not NULL (reading SL_WEB_SCAN_MAX at most, so a page may
 * hold fewer: next_cursor says where to go on). Returns the page (new)
 * or NULL. */
json_t *sl__web_dead_page(struct sl_sync *c, const char *stream, const char *cursor, long count,
                          const char *code, char *err, size_t errlen);

/* Reads the dead letter `id` of stream with every field. Returns the
 * entry (new), json_null() when there is none, or NULL on failure. */
json_t *sl__web_dead_entry(struct sl_sync *c, const char *stream, const char *id,
                           char *err, size_t errlen);

/* Moves dead letter `id` back to stream, with its data replaced by `data`
 * when not NULL. Returns {"new_id":...} (new), json_null() when there is
 * no such dead letter, or NULL on failure. */
json_t *sl__web_replay(struct sl_sync *c, const char *stream, const char *id, const char *data,
                       char *err, size_t errlen);

/* Deletes dead letter `id`. Returns {"purged":0|1} (new) or NULL. */
json_t *sl__web_purge_id(struct sl_sync *c, const char *stream, const char *id,
                         char *err, size_t errlen);

/* Deletes the dead letters whose code is `code`, from `cursor` on and up
 * to the last one there was when the purge began (`until`, "" to take
 * it now), reading SL_WEB_SCAN_MAX at most. Returns {"purged", "cursor",
 * "until", "done"} (new) so the caller repeats it until done, or NULL. */
json_t *sl__web_purge_code(struct sl_sync *c, const char *stream, const char *code,
                           const char *cursor, const char *until, char *err, size_t errlen);

/* The code of a dead letter's error: the text before the first ":", cut
 * to fit (as `sluice dlq purge --code` and /metrics read it). */
void sl__web_code(const char *error, size_t len, char *code, size_t size);

/* ------------------------------------------------------------------
 * metrics.c: the HTTP listener's limits (connection cap, request
 * deadlines, sizes, accept pauses), which the dashboard's own listener
 * shares. One listener per process.
 * ------------------------------------------------------------------ */
struct event_base;
struct evhttp;
struct evhttp_request;
struct evhttp_bound_socket;
struct evbuffer;
struct sl_http;

/* Applies the limits to http. Returns the state (new:
 * sl__http_limits_free, after evhttp_free), or NULL. */
struct sl_http *sl__http_limits_new(struct event_base *base, struct evhttp *http);
void sl__http_limits_free(struct sl_http *h);
/* Puts bound socket s under the limits. Returns its port. */
int sl__http_limits_listen(struct sl_http *h, struct evhttp_bound_socket *s, int port);
/* Call before evhttp_free. */
void sl__http_resolve(struct sl_http *h);
/* A request arrived on req's connection: its next deadline starts now. */
void sl__http_seen(struct sl_http *h, struct evhttp_request *req);
/* Sends a reply (b borrowed, drained); a HEAD gets no body. */
void sl__http_send(struct evhttp_request *req, int code, const char *reason, struct evbuffer *b);

#endif /* SL_WEB_H */
