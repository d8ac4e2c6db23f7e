/* pool.h -- the supervisor's state, shared by the supervisor's files
 * (pool.c, supconn.c, plan.c, startcheck.c, reload.c, janitor.c, trim.c,
 * snapshot.c) and metrics.c, which only reads it. */
#ifndef SL_POOL_H
#define SL_POOL_H

#include <sys/types.h>
#include <hiredis.h>
#include "internal.h"
#include "slot.h"
#include "conn.h"

struct event_base;
struct evhttp;
struct evhttp_request;
struct sl_http;
struct sl_web_state;
struct sl_janitor;

#define SL_MAX_CHILDREN 1024      /* slots in the shared mapping */
#define SL_DEAD_CODES 32          /* error codes counted per dead-letter stream (the last: "(other)") */
#define SL_DEAD_CODE_MAX 64       /* bytes of one counted code; longer ones are cut */

/* One child process slot. */
struct sl_child {
    struct sl_config *cfg;        /* configuration it runs with (borrowed) */
    const struct sl_worker_conf *wc; /* its worker entry in cfg */
    const struct sl_handler *h;   /* its handler */
    char consumer[320];           /* stable consumer name */
    struct sl_slot *slot;         /* shared memory with the child */
    pid_t pid;                    /* 0 when not running */
    uint64_t started_ms;          /* when it was forked (monotonic ms) */
    uint64_t restart_at;          /* when to fork again (monotonic ms) */
    int crashes;                  /* consecutive early crashes: restart backoff step */
    int timed_out;                /* killed by us for handler_timeout_ms */
    uint64_t last_renew_ms;       /* last lease renewal (monotonic ms) */
    uint64_t last_beat_ms;        /* last heartbeat kept alive for it (monotonic ms) */
    char failed_id[SL_IDLEN];     /* entry held at a crash, to record; "" when none */
    char failed_why[128];         /* its reason: "last crash signal 11" */
    int record_tries;             /* attempts to record it */
    int record_pending;           /* its record was sent, reply awaited */
    uint64_t record_since;        /* when it was sent (monotonic ms) */
    int retired;                  /* replaced by a reload: not restarted */
    uint64_t carried[SL_NCOUNTERS]; /* counters of this slot's earlier processes */
    uint64_t carried_hist[SL_HIST_N + 1]; /* their handler-duration buckets */
    int held_seen;                /* start check: a heartbeat was found on this name */
    char held_beat[32];           /* its last_beat then */
    const char *killed_for;       /* killed by us for an operator's reason ("shutdown_timeout"), NULL */
    int rolling;                  /* released by a reload in place of an old child, not yet connected */
    uint64_t rolled_ms;           /* when the reload released it (monotonic ms) */
    int changing_hands;           /* a reload is moving its name (reload.c, every tick): /healthz counts it up */
    uint64_t stop_asked_ms;       /* when a reload asked it to stop (monotonic ms) */
    int serial;                   /* its next process recovers one entry at a time: the last
                                     one crashed with several async entries in flight */
    int stalled;                  /* killed by us: its loop stood still with entries in flight */
};

/* What the HTTP side shows from Redis, read by the supervisor when a
 * request waits for it (snapshot.c). */
/* One error code of a dead-letter stream and how many dead letters have it. */
struct sl_dead_code {
    char code[SL_DEAD_CODE_MAX + 1]; /* the error up to its first ':' (cut, escaped later) */
    long long n;                  /* dead letters with it */
};

/* The dead letters of one configured stream by code, kept up to date a
 * few pages per snapshot (snapshot.c, dlq_count.lua). */
struct sl_dead_tally {
    char stream[SL_NAME_MAX + 1]; /* the source stream; its dead letters are in stream:dead */
    char next[80];                /* XRANGE start of the next read: "-" or "(" and an ID */
    long long counted;            /* dead letters tallied so far */
    int in_sync;                  /* the tally covered the whole stream at the last snapshot */
    struct sl_dead_code codes[SL_DEAD_CODES]; /* codes seen; the last one is "(other)" when full */
    size_t ncodes;                /* entries used in codes */
    int page;                     /* pages read in the snapshot in flight */
    int restarted;                /* the tally started over in it */
};

/* Forgets what tally t counted, so that the next read starts over. */
void sl__tally_reset(struct sl_dead_tally *t);

/* Adds n dead letters of code (len bytes) to tally t. Past
 * SL_DEAD_CODES - 1 codes, the rest share "(other)": the codes are
 * whatever anyone wrote into the stream, and each is a series. One tally
 * for /metrics (snapshot.c) and the dashboard (web_data.c). */
void sl__tally_add(struct sl_dead_tally *t, const char *code, size_t len, long long n);

struct sl_snapshot {
    int wanted;                   /* a request waits: take one on the next tick */
    int redis_ok;                 /* Redis answered the PING */
    char redis_err[128];          /* why not: the error, or "unreachable" */
    long long *pending;           /* per worker entry of the configuration, -1 unknown (owned) */
    long long *lag;               /* likewise, inside the same allocation */
    long long *oldest_ms;         /* age (by its ID) of each group's oldest pending entry, ms (0: none), -1 unknown; same allocation */
    size_t n;                     /* entries in pending, lag and oldest_ms */
    struct sl_dead_tally *dead;   /* one per distinct configured stream (owned) */
    size_t ndead;                 /* entries in dead */
    int inflight;                 /* its commands were sent, replies awaited */
    int outstanding;              /* replies still awaited */
    unsigned gen;                 /* number of the snapshot in flight (late replies ignored) */
    uint64_t started_ms;          /* when it was sent (monotonic ms) */
    long long redis_now;          /* Redis's clock (TIME) in this snapshot, ms; 0 unknown */
    int web_wanted;               /* a dashboard request waits for the documents below */
    uint64_t web_at;              /* when they were read (monotonic ms), 0 never */
    json_t *web_overview;         /* the dashboard's overview (owned), NULL when unread */
    json_t *web_workers;          /* its workers list (owned), NULL when unread */
    char web_err[128];            /* why the last read failed, "" when it did not */
    struct sl_web_state *web_state; /* what the overview keeps between reads (web_data.c) */
    const struct sl_config *web_cfg; /* the configuration web_state was made for (compared only) */
};

struct sl_supc_pin;

struct sl_pool {
    struct sl_config *cfg;        /* current configuration (owned after a reload) */
    struct sl_config *cfg_caller; /* the one sl__pool_run was given (borrowed: never freed here) */
    const char *cfg_path;         /* file to re-read on SIGHUP */
    int cfg_explicit;             /* -c was given: the file must exist */
    const char *redis_override;   /* --redis, or NULL */
    const char *workers_override; /* --workers, or NULL */
    const char *metrics_override; /* --metrics, or NULL */
    const struct sl_handler *const *registry;
    pid_t pid;                    /* the supervisor's pid */
    char host[256];               /* gethostname() */
    struct event_base *base;
    struct sl_conn *ac;           /* asynchronous connection on base (all work after the start check) */
    struct event *ac_retry;       /* its reconnect backoff timer */
    int ac_fails;                 /* its consecutive failed connects */
    int ac_loaded[32];            /* per SL_SCRIPT_*: SCRIPT LOAD sent on this connection */
    int ac_slot;                  /* cluster: the hash slot ac is pinned to; -1 standalone */
    struct sl_supc_pin **pins;    /* cluster: one more connection per other slot (supconn.c) */
    size_t npins;

    struct sl_slot *slots;        /* MAP_SHARED array of slots */
    size_t next_slot;             /* next free slot index (wraps) */
    struct sl_child *children;    /* current children (owned) */
    size_t nchildren;
    struct sl_child *old;         /* children being rolled out by a reload (owned) */
    size_t nold;
    size_t roll_next;             /* next old child to stop */
    struct sl_config *old_cfg;    /* configuration the old children run (owned unless cfg_caller) */
    int started;                  /* the start check passed; children run */
    int start_fails;              /* start checks refused so far (LOADING...) */
    struct redisReply **sc_replies; /* start check: the round's replies, HMGET and PTTL per child (owned) */
    size_t sc_n;                  /* entries of sc_replies */
    int sc_outstanding;           /* replies of the round still awaited */
    int sc_inflight;              /* a round was sent */
    unsigned sc_gen;              /* number of the round (late replies dropped) */
    uint64_t held_until;          /* start check: when every heartbeat found on our
                                   * names must have expired (monotonic ms), 0 if none */
    int stopping;                 /* SIGTERM/SIGINT received */
    uint64_t stop_deadline;       /* when to SIGKILL the rest (monotonic ms) */
    uint64_t drain_until;         /* all children gone: last replies awaited until then (ms) */
    int exit_code;                /* process exit code */
    uint64_t next_housekeeping;   /* janitor and trim (monotonic ms) */
    struct sl_janitor *janitor;   /* the janitor's state (janitor.c), NULL until first run */
    struct evhttp *http;          /* metrics server, NULL when disabled */
    int http_fd;                  /* its listening socket, -1 when none */
    struct sl_http *http_state;   /* its limits and connections (metrics.c), NULL when none */
    struct sl_snapshot snap;      /* Redis as the HTTP side shows it (snapshot.c) */
    unsigned long long reload_failures; /* SIGHUP reloads refused (bad file, roll still running) */
    uint64_t last_reload_ms;      /* wall ms of the start or of the last reload accepted */
    struct sl_web *web;           /* the dashboard on the listener (web.c), NULL when off */
    void (*web_answer)(struct sl_pool *p, struct evhttp_request *req); /* web.c's answer to a
                                   * request that waited for the snapshot, NULL when off */
};

/* pool.c: the loop, the children. */
void sl__pool_spawn(struct sl_pool *p, struct sl_child *ch);
void sl__pool_watch(struct sl_pool *p, struct sl_child *ch, uint64_t now);
void sl__pool_child_cleanup(struct sl_pool *p);

/* supconn.c: the asynchronous connection (see there). Each send returns
 * 0 (cb runs once, with NULL when the connection is lost) or -1 when the
 * connection is down (cb never runs). */
int sl__pool_async_start(struct sl_pool *p);
int sl__pool_async_ready(const struct sl_pool *p);
int sl__pool_async_inflight(const struct sl_pool *p);
void sl__pool_async_free(struct sl_pool *p);
void sl__pool_async_child_close(struct sl_pool *p);
int sl__pool_send(struct sl_pool *p, sl_conn_cb *cb, void *arg, int argc, const char **argv);
int sl__pool_send_take(struct sl_pool *p, sl_conn_cb *cb, void *arg, int argc, const char **argv);
int sl__pool_send_script(struct sl_pool *p, int which, int nkeys, const char *const *keys,
                         int nargs, const char *const *args, sl_conn_cb *cb, void *arg);

/* plan.c: children of a configuration, consumer names, overrides. */
void sl__consumer_name(char *buf, size_t size, const char *host, const struct sl_config *cfg,
                       size_t i, int j);
int sl__pool_plan(struct sl_pool *p, struct sl_config *cfg, struct sl_child **out,
                  size_t *nout, char *err, size_t errlen);
int sl__pool_name_taken(const struct sl_config *cfg, size_t i);
void sl__pool_bind_slots(struct sl_pool *p, struct sl_child *c, size_t n, size_t first);
int sl__pool_apply_overrides(struct sl_pool *p, struct sl_config *cfg,
                             char *err, size_t errlen);

/* startcheck.c: the consumer names must be free before children start. */
void sl__pool_try_start(struct sl_pool *p);

/* reload.c: SIGHUP and the rolling restart. */
void sl__pool_reload(struct sl_pool *p);
void sl__pool_roll(struct sl_pool *p);
void sl__pool_free_retired(struct sl_pool *p);

/* janitor.c: dead consumers removed in the background. */
int sl__janitor_start(struct sl_pool *p);
void sl__janitor_free(struct sl_pool *p);
void sl__janitor_child_close(struct sl_pool *p);

/* trim.c */
void sl__trim_streams(struct sl_pool *p);

/* snapshot.c: what the HTTP side shows from Redis. */
void sl__snapshot_take(struct sl_pool *p);
void sl__snapshot_free(struct sl_pool *p);

/* web.c: the dashboard's pages on the pool's listener (metrics.dashboard):
 * attached by pool.c after the listener starts and detached after it
 * stops; snapshot.c reads its documents. metrics.c calls it only through
 * p->web_answer, since web.c calls metrics.c. */
struct sl_web;
int sl__web_pool_attach(struct sl_pool *p);
void sl__web_pool_detach(struct sl_pool *p);
int sl__web_pool_snapshot(struct sl_pool *p, void (*done)(struct sl_pool *p, unsigned gen),
                          unsigned gen);

/* metrics.c: the HTTP endpoint. */
int sl__metrics_start(struct sl_pool *p);
void sl__metrics_answer(struct sl_pool *p);
void sl__metrics_stop(struct sl_pool *p);
void sl__metrics_child_close(struct sl_pool *p);
void sl__metrics_defer_web(struct sl_pool *p, struct evhttp_request *req);

#endif /* SL_POOL_H */
