/* internal.h -- declarations shared by the framework/ sources only.
 *
 * Nothing here is part of the public interface: struct layouts may change
 * at any time. Workers and main() include sluice.h alone.
 */
#ifndef SL_INTERNAL_H
#define SL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include "sluice.h"

/* The number of elements of an array (not a pointer). */
#define SL_NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define SL_ASSERT(cond) \
    ((cond) ? (void)0 : sl__assert_fail(#cond, __FILE__, __LINE__))
void sl__assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));

/* ---------------------------------------------------------------------
 * Configuration (config.c)
 * ------------------------------------------------------------------ */

#define SL_TRIM_NONE  0
#define SL_TRIM_ACKED 1

/* The tunables of section 3's "defaults", also settable per worker. */
struct sl_tunables {
    long long batch;              /* COUNT of one XREADGROUP, 1..10000 */
    int batch_set;                /* 1: `batch` was given in the configuration */
    long long block_ms;           /* BLOCK of one XREADGROUP, ms, >= 1 */
    long long reclaim_idle_ms;    /* idle time after which a peer reclaims, ms */
    long long reclaim_interval_ms;/* period of the reclaim sweep, ms */
    long long max_deliveries;     /* failed attempts before dead-lettering */
    long long max_fields;         /* more fields than this: too_large */
    long long heartbeat_ms;       /* period of the worker heartbeat, ms */
    long long retry_backoff_ms[2];/* first retry delay and cap, ms */
    long long handler_timeout_ms; /* a handler running longer is killed, ms */
    long long shutdown_timeout_ms;/* graceful stop budget, ms */
    long long message_ttl_ms;     /* 0 = none; older entries are "expired", ms */
    long long idempotency_retention_ms; /* 0 = forever; how long fingerprints of
                                     finished work are kept, ms */
    long long max_payload_bytes;  /* largest accepted `data`, bytes */
    int trim;                     /* SL_TRIM_ACKED or SL_TRIM_NONE */
    long long dead_letter_max_len;    /* keep at most this many dead letters; 0 = all */
    long long dead_letter_max_age_ms; /* drop dead letters older than this, ms; 0 = never */
    long long concurrency;        /* entries an async handler has in flight per process, 1..SL_INFLIGHT_MAX */
    long long wait_replicas;      /* WAIT for this many replicas after a batch's commits; 0: no WAIT */
    long long wait_timeout_ms;    /* that WAIT's timeout, ms */
};

/* One entry of "workers". */
struct sl_worker_conf {
    char *handler;                /* handler name (owned) */
    char *stream;                 /* stream key (owned) */
    char *group;                  /* consumer group (owned) */
    int processes;                /* children to run, >= 1 */
    struct sl_tunables t;         /* defaults merged with the worker's own keys */
};

/* The longest stream or group name, in bytes. Keys are built from them
 * ("<stream>:dead", "sluice:attempts:<len>:<stream>:<group>") in buffers
 * of SL_KEYLEN bytes, which this bound makes always large enough. */
#define SL_NAME_MAX 200
#define SL_KEYLEN 512
#define SL_FP_EXPIRY "sluice:fp:expiry" /* fingerprints due to expire (janitor.c, expire.lua) */

/* The largest configuration file, in bytes. */
#define SL_CONFIG_MAX 1048576

/* A parsed redis:// URL. */
struct sl_redis_url {
    char host[256];               /* host name or address */
    int port;                     /* TCP port */
    char user[256];               /* ACL user name, empty for the default user */
    char password[256];           /* empty when none */
    int db;                       /* database index */
    int tls;                      /* rediss://: connect through TLS */
};

/* TLS settings of the "redis" object (redis.tls_*). */
struct sl_tls {
    char *ca_file;                /* CA certificates (PEM, owned), NULL: the system's */
    char *cert_file;              /* client certificate (PEM, owned), NULL when none */
    char *key_file;               /* its private key (PEM, owned), NULL: in cert_file */
    char *server_name;            /* SNI and the name checked, NULL: the URL's host */
    int insecure;                 /* 1: do not verify the server (explicit, warned) */
};

/* Deep-copies src into dst (dst's old strings are not freed). Returns 0
 * or -1 when out of memory (dst then cleared). */
int sl__tls_copy(struct sl_tls *dst, const struct sl_tls *src);
/* Frees the strings of t and zeroes it. */
void sl__tls_clear(struct sl_tls *t);

struct sl_config {
    char *path;                   /* file read (owned), NULL for built-in defaults */
    char *redis_url;              /* effective URL text (owned) */
    struct sl_redis_url redis;    /* redis_url parsed */
    long long connect_timeout_ms; /* connect deadline, ms */
    long long command_timeout_ms; /* reply deadline (BLOCK excluded), ms */
    struct sl_tunables defaults;  /* the "defaults" object */
    struct sl_worker_conf *workers; /* array of nworkers (owned) */
    size_t nworkers;
    char *metrics_listen;         /* "host:port" (owned), or NULL when disabled */
    int metrics_dashboard;        /* 1: the dashboard's pages (read-only) on that listener */
    char *password_file;          /* redis.password_file (owned), NULL when none */
    char *cluster_nodes;          /* redis.cluster_nodes joined, "h:p,h:p" (owned), NULL: standalone */
    struct sl_tls tls;            /* redis.tls_* (used for rediss:// URLs) */
};

/* Work done by the last sl__config_load() calls, in scanner and
 * comparison steps: a test hook showing that loading is linear.
 * (jsonpos.c) */
extern unsigned long sl__config_steps;

/* Loads `path`. When the file does not exist and `must_exist` is 0, the
 * built-in defaults are returned (path NULL). Every problem gives NULL and
 * a message "FILE:LINE:COL: KEY.PATH: what was expected" in err. New:
 * free with sl__config_free(). */
struct sl_config *sl__config_load(const char *path, int must_exist,
                                  char *err, size_t errlen);

/* Picks the configuration file of a command: `flag` (-c) when given, else
 * `env` ($SLUICE_CONFIG) when set and not empty, else the first of the
 * NULL-terminated `places` that exists. Returns that path (borrowed), to
 * be loaded with must_exist set: a file the user named that is missing is
 * an error. Returns NULL when no place exists: the built-in defaults. */
const char *sl__config_find(const char *flag, const char *env,
                            const char *const *places);

/* Returns the built-in defaults of docs/configuration.md. New. */
struct sl_config *sl__config_default(void);

/* Replaces the Redis URL (from --redis or SLUICE_REDIS_URL); `origin`
 * names the source in the error message. Returns 0 or -1 with err set. */
int sl__config_set_url(struct sl_config *cfg, const char *url,
                       const char *origin, char *err, size_t errlen);

/* Frees cfg and everything it owns; NULL is ignored. */
void sl__config_free(struct sl_config *cfg);

/* One worker of the built-in "workers" array (builtin.c). */
struct sl_builtin_worker {
    const char *handler;          /* handler name */
    const char *stream;           /* stream key */
    const char *group;            /* consumer group */
    int processes;                /* children to run */
};
extern const struct sl_builtin_worker sl__builtin_workers[];
extern const size_t sl__builtin_nworkers;

/* A worker the configuration gains by itself (builtin.c): when the
 * environment variable `env` is set and not empty, a worker `beside`
 * runs, and no worker of the configuration reads w.stream, then w is
 * appended with the merged defaults and its own concurrency and
 * max_deliveries. Listing a worker of w.stream turns it off (its
 * settings win). */
struct sl_builtin_auto {
    const char *env;              /* the variable that turns it on */
    const char *beside;           /* the handler whose output it reads */
    struct sl_builtin_worker w;   /* handler, stream, group, processes */
    long long concurrency;        /* entries in flight per process */
    long long max_deliveries;     /* failed attempts before dead-lettering */
};
extern const struct sl_builtin_auto sl__builtin_auto[];
extern const size_t sl__builtin_nauto;

/* ---------------------------------------------------------------------
 * Positions in JSON text (jsonpos.c)
 * ------------------------------------------------------------------ */

/* One step of a key path: an object key, or an array index. */
struct sl_json_step {
    const char *key;              /* borrowed object key, or NULL for an index */
    size_t index;                 /* array index when key is NULL */
};

/* Finds the line (from 1) and column (characters, from 1) of the value
 * at path[0..depth) in the len bytes of valid JSON at text, or of its
 * key when at_key. */
void sl__json_locate(const char *text, size_t len, const struct sl_json_step *path, int depth,
                     int at_key, int *line, int *col);

/* ---------------------------------------------------------------------
 * redis:// URLs, the password, listen addresses (url.c)
 * ------------------------------------------------------------------ */

/* Reads the password file at path into buf (size bytes), one final "\n"
 * or "\r\n" removed. Returns 0, or -1 with a message naming the file in
 * err (never the password). */
int sl__password_file_read(const char *path, char *buf, size_t size, char *err, size_t errlen);

/* Writes url into buf (size bytes, always NUL-terminated, cut to fit)
 * with any password or user information replaced by "***" and control
 * bytes by '?', whatever the URL's form. Every message that shows a Redis
 * URL shows it through here. */
void sl__url_redact(const char *url, char *buf, size_t size);

/* Tells whether s is "host:port" with a port from 0 to 65535 (0: any
 * free port). */
int sl__host_port_valid(const char *s);

/* Finds the Redis password: the URL's own when it has one, else
 * SLUICE_REDIS_PASSWORD when set and not empty, else the content of
 * password_file (may be NULL; read anew at each call, a final newline
 * removed), else none (""). Returns 0 with the password in buf, or -1
 * with a message in err (never containing a password). */
int sl__redis_password(const struct sl_redis_url *u, const char *password_file,
                       char *buf, size_t size, char *err, size_t errlen);

/* Writes "authentication failed: <reply>" into buf (size bytes), the
 * password, if the reply held it, replaced by "***". */
void sl__auth_error(char *buf, size_t size, const char *reply, const char *password);

/* Parses redis[s]://[[user]:password@]host:port[/db], user and password
 * percent-decoded. Returns 0 or -1 with err. */
int sl__url_parse(const char *url, struct sl_redis_url *out,
                  char *err, size_t errlen);

/* ---------------------------------------------------------------------
 * Opening a Redis session (session.c)
 * ------------------------------------------------------------------ */

/* The commands that open a connection, prepared by sl__session_begin(). */
struct sl_session {
    char password[256];           /* the password found, "" when none (wiped by _end) */
    char db[16];                  /* the database index as text */
    const char *auth[3];          /* AUTH [user] password */
    int nauth;                    /* 0, 2, or 3 with an ACL user */
    const char *select[2];        /* SELECT db, when nselect is 2 */
    int nselect;                  /* 0 or 2 */
};

/* Looks up the password of u (the URL's, else SLUICE_REDIS_PASSWORD,
 * else password_file, read anew) and prepares AUTH and SELECT. Returns 0,
 * or -1 with "authentication failed: redis.password_file: ..." in err.
 * Call sl__session_end() after sending. */
int sl__session_begin(const struct sl_redis_url *u, const char *password_file,
                      struct sl_session *ss, char *err, size_t errlen);
/* Wipes the password. */
void sl__session_end(struct sl_session *ss);

/* Prints to stdout the Redis ACL rules cfg needs (`sluice acl`): one
 * ACL SETUSER line with the commands and key patterns of the framework,
 * the admin commands and the configured handlers of registry. Returns
 * the exit code. */
int sl__acl(const struct sl_config *cfg, const struct sl_handler *const *registry);

/* A synchronous connection: the connection of conn.c on a private event
 * loop, each call sending one command and running that loop until the
 * reply or the deadline. */
struct sl_sync_pend;
struct sl_sync {
    struct event_base *base;      /* the private loop (owned) */
    struct sl_conn *conn;         /* the connection (owned) */
    int err;                      /* nonzero once the connection broke: every call fails */
    char errstr[160];             /* why (never a secret) */
    struct redisReply *reply;     /* the reply being waited for (taken by the caller) */
    int done;                     /* the awaited callback ran */
    int lost;                     /* the connection was lost */
    int ready;                    /* the connection is set up */
    struct sl_sync_pend *head;    /* appended commands whose replies are unread, oldest first */
    struct sl_sync_pend *tail;    /* the newest of them */
    /* Cluster mode (redis.cluster_nodes): conn is NULL and every command
     * goes through the router of cluster.c on the private loop. */
    struct sl_cluster *cl;        /* the router (owned), NULL on a single Redis */
    int slot;                     /* where commands go (sl__sync_route), -1: any master */
    int resend;                   /* they may be sent again after a lost connection */
};

/* Connects with the configured timeouts, AUTH and SELECT, then PINGs (so
 * that a server wanting a password says so here). NULL with the reason in
 * err ("cannot reach redis at HOST:PORT: ...", "authentication failed:
 * ...", never a password). Used by the admin commands, `sluice health`
 * and the producer API (sync.c). New: sl__sync_free(). */
struct sl_sync *sl__redis_connect(const struct sl_config *cfg, char *err, size_t errlen);

/* The same, printing why and returning NULL when that fails. New:
 * sl__sync_free(). */
struct sl_sync *sl__admin_connect(const struct sl_config *cfg);

/* Sends one command (argvlen may be NULL for C strings) and waits for
 * its reply. Returns it (new: freeReplyObject), or NULL with s->err and
 * s->errstr set when the connection broke or the reply timed out. */
struct redisReply *sl__sync_argv(struct sl_sync *s, int argc, const char **argv,
                                 const size_t *argvlen);

/* The same with a hiredis format string ("XLEN %s"). */
struct redisReply *sl__sync_cmd(struct sl_sync *s, const char *fmt, ...);

/* Pipelining: sends one command without waiting (argvlen may be NULL).
 * Its reply is read, in the order the commands were appended, by
 * sl__sync_get_reply(). Returns 0, or -1 with s->err set. */
int sl__sync_append(struct sl_sync *s, int argc, const char **argv, const size_t *argvlen);

/* Waits for the reply of the oldest appended command not read yet.
 * Returns it (new: freeReplyObject), or NULL with s->err set (the
 * connection broke, the reply timed out, or nothing was appended). */
struct redisReply *sl__sync_get_reply(struct sl_sync *s);

/* Closes and frees s. Accepts NULL. */
void sl__sync_free(struct sl_sync *s);

/* Routes the commands sent on s from now on to the master of key's hash
 * slot: the key sluice itself put in them (the stream, or a key that
 * carries the stream's hash tag). key NULL: any master (PING, TIME).
 * resend: they are reads or otherwise safe to repeat, so the cluster
 * client may send them again after a lost connection; otherwise such a
 * loss is reported (an XADD whose reply was lost may have been applied).
 * On a single Redis this does nothing. */
void sl__sync_route(struct sl_sync *s, const char *key, int resend);


/* ---------------------------------------------------------------------
 * Logging (log.c): one logfmt line per event on stderr.
 * ------------------------------------------------------------------ */

#define SL_LOG_DEBUG 0
#define SL_LOG_INFO  1
#define SL_LOG_WARN  2
#define SL_LOG_ERROR 3

extern int sl__log_level;         /* lines below this level are dropped */
extern int sl__log_json;          /* 1: one JSON object per line instead of logfmt (SLUICE_LOG_FORMAT=json) */
extern const char *sl__log_role;  /* "supervisor", or the consumer name */

/* Logs `event` with extra key=value pairs formatted from fmt (which must
 * already be logfmt, values quoted with sl__logq where needed). */
void sl__log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Returns `s` quoted for logfmt in a rotating static buffer (up to 8
 * results stay valid at once; long values are cut). */
const char *sl__logq(const char *s);

/* ---------------------------------------------------------------------
 * Small helpers (util.c)
 * ------------------------------------------------------------------ */

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t sl__now_ms(void);
/* Milliseconds since the epoch. */
uint64_t sl__wall_ms(void);

/* Capped exponential backoff with jitter: base * 2^(step), at most cap,
 * then a random 50-100% of that. Returns ms. */
long long sl__backoff_ms(long long base, long long cap, int step);

/* The delay before retry number `attempts` (>= 1) of docs/semantics.md:
 * first * 2^(attempts-1), at most cap, without overflow. */
long long sl__retry_delay_ms(long long first, long long cap, long long attempts);

/* Returns the /proc state letter of a process ('T' stopped, 'Z' zombie,
 * ...), or 0 when it cannot be read. */
char sl__proc_state(long pid);

/* Returns a copy of the len bytes at s (NULs included) that a terminal
 * shows as plain text: control bytes, DEL, C1 controls and bytes that
 * are not UTF-8 become \xNN. New: free(). NULL when memory ran out. */
/* Formats into err when err is not NULL and errlen is not 0, so a caller
 * may pass a NULL buffer when it does not want the text (config, URL and
 * producer errors). */
void sl__put_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

char *sl__escape_text(const char *s, size_t len);

/* Returns the len bytes at s as a JSON string, escaped as by
 * sl__escape_text() when they are not UTF-8 (jansson refuses those).
 * New reference; NULL only when memory ran out. */
json_t *sl__json_text(const char *s, size_t len);

/* The json_dumps() flag of every document an admin command prints: a
 * rate or a time with six significant digits (999.9), where jansson's
 * default gives a double's seventeen (999.89999999999998). */
#define SL_JSON_DIGITS JSON_REAL_PRECISION(6)

/* The escaped cells of one table row (see sl__cell). Start it zeroed,
 * and release it with sl__cells_free(). */
#define SL_CELLS 8
struct sl_cells {
    char *v[SL_CELLS];            /* escaped texts (owned), NULL when unused */
};

/* Returns the escaped text of the len bytes at s in slot i (0 ..
 * SL_CELLS-1) of c, replacing what the slot held: valid until the slot is
 * reused or c is freed. Every cell an admin table prints from Redis goes
 * through here. Returns "?" when memory ran out. */
const char *sl__cell(struct sl_cells *c, int i, const char *s, size_t len);

/* Frees every slot of c, leaving it empty (and reusable). */
void sl__cells_free(struct sl_cells *c);

/* One column of an admin table: its header and its narrowest width,
 * negative for a left-aligned column, as in printf's "%-Ns". */
struct sl_col {
    const char *name;
    int width;
};

/* A text table whose columns widen to their longest cell, so a long
 * stream or group name moves the columns after it on every row alike
 * instead of pushing its own row out of line. Start it with
 * sl__table_init(), add rows, print it once, free it. */
struct sl_table {
    const struct sl_col *cols;    /* the columns (borrowed) */
    int ncols;
    const char *indent;           /* printed before every line; NULL: none */
    char **cell;                  /* nrows * ncols copies; NULL past a short row's end */
    size_t nrows, cap;
    int failed;                   /* memory ran out: a row is missing */
};

/* Starts t with the ncols columns cols (borrowed; they must outlive t). */
void sl__table_init(struct sl_table *t, const struct sl_col *cols, int ncols);

/* Adds a row of n cells (copied; n <= the columns, and a row with fewer
 * cells ends early). Returns 0, or -1 when memory ran out (the row is
 * missing and sl__table_print() reports it). */
int sl__table_add(struct sl_table *t, int n, const char *const *cells);

/* Prints the header and every row to f, each column as wide as its
 * widest cell, one space between columns, no blanks at the end of a
 * line. Returns 0, or -1 when a row is missing (memory ran out). */
int sl__table_print(const struct sl_table *t, FILE *f);

/* Frees the rows of t (the columns stay the caller's). */
void sl__table_free(struct sl_table *t);

/* The key under which sluice keeps its per-entry bookkeeping for one
 * stream and group: "sluice:attempts:<len>:<stream>:<group>". The length
 * keeps names that contain ':' apart. Writes at most size bytes; returns
 * the length it needed. */
int sl__attempts_key(char *buf, size_t size, const char *stream, const char *group);

/* ---------------------------------------------------------------------
 * The per-entry context and message checks (ctx.c, message.c)
 * ------------------------------------------------------------------ */

#define SL_ERRLEN 512
#define SL_TYPELEN 256           /* bytes for a `type` and its NUL; longer types are unknown_type */

#define SL_IDLEN_CTX 48           /* bytes of an entry ID and its NUL (slot.h's SL_IDLEN) */
#define SL_INFLIGHT_MAX 256       /* the largest `concurrency` */
#define SL_PHASE_IDLE 0           /* not handed to a handler */
#define SL_PHASE_HANDLE 1         /* inside `handle` */
#define SL_PHASE_PENDING 2        /* `handle` returned SL_PENDING; waiting for sl_ctx_complete() */
#define SL_PHASE_ABANDONED 3      /* timed out and recorded as failed; a completion is discarded */

/* What a handler (or the framework's checks) decided about one entry.
 * One context serves every entry of a process: sl__ctx_reset() between
 * entries keeps its buffers, so the hot path allocates nothing. */
struct sl_ctx {
    const struct sl_handler *handler; /* borrowed, static */
    char err[SL_ERRLEN];          /* "code" or "code: detail"; "" when none */
    int dead_trim_fields;         /* too_large by field count: the dead letter keeps type and data only */
    long long dropped_fields;     /* fields left out of such a dead letter */
    size_t data_left;             /* > 0: `data` is this long but stayed in Redis (only "" was sent) */
    int script;                   /* index in handler->scripts of the effect, -1 when none */
    int nkeys;                    /* keys of the effect */
    int nargs;                    /* arguments of the effect */
    char *buf;                    /* keys then arguments, NUL-separated (owned) */
    size_t buflen, bufcap;        /* bytes used / allocated in buf */
    size_t *offs;                 /* start of each key/argument in buf (owned) */
    size_t offcap;                /* entries allocated in offs */
    char type[SL_TYPELEN];        /* the entry's `type`, NUL-terminated; "" until sl__msg_prepare() copies it */
    long long retry_after_ms;     /* sl_ctx_retry_after(): least delay of a retry, ms; 0 when none */
    /* Async entries (worker.c): a context handed out with SL_PENDING
     * belongs to its entry until sl_ctx_complete(). */
    struct event_base *base;      /* the worker's loop (borrowed), for sl_ctx_base() */
    void *owner;                  /* the worker (borrowed), NULL outside a worker */
    int (*complete)(struct sl_ctx *ctx, enum sl_disposition d); /* the worker's completion
                                     (a pointer, so that ctx.c does not call into worker.c),
                                     NULL outside a worker */
    int phase;                    /* SL_PHASE_* */
    int early;                    /* 1 + the disposition completed while `handle` ran, 0 when none */
    char id[SL_IDLEN_CTX];        /* entry ID while in flight */
    long long attempts;           /* failed attempts before this one */
    uint64_t started_ms;          /* monotonic start of its handler, ms */
    uint64_t renewed_ms;          /* monotonic time of its last lease renewal, ms */
    struct sl_ctx *next, *prev;   /* in the worker's in-flight or free list */
};



/* Returns a context for handler h (borrowed, must outlive it), or NULL.
 * New: sl__ctx_free(). */
struct sl_ctx *sl__ctx_new(const struct sl_handler *h);
/* Forgets the previous entry's error and effect, keeping the buffers. */
void sl__ctx_reset(struct sl_ctx *ctx);
void sl__ctx_free(struct sl_ctx *ctx);
/* Returns key or argument i of the declared effect (keys first), borrowed
 * until the next reset, with its length in *len. */
const char *sl__ctx_effect_arg(const struct sl_ctx *ctx, int i, size_t *len);
/* Sets the error text directly (no disposition), printf-style. */
void sl__ctx_seterr(struct sl_ctx *ctx, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Runs the checks of the dead-letter table (docs/dead-letters.md) that come before
 * the handler, in the table's order, on an entry whose id, stream, fields
 * and nfields are set in msg: expired (when ttl_ms > 0, against now_ms,
 * ms since the epoch), missing_payload, too_large, invalid_encoding,
 * invalid_json, invalid_schema, unknown_type (against `types` when not
 * NULL). On success fills msg->type, raw_data, raw_data_len and, unless
 * `raw`, msg->data (new reference: the caller json_decref()s it after
 * `handle`) and returns 0. On failure records the error on ctx (and the
 * field-trimming flags for too_large) and returns -1. */
int sl__msg_prepare(struct sl_ctx *ctx, struct sl_msg *msg,
                    const struct sl_tunables *t, int raw,
                    const char *const *types, uint64_t now_ms);

/* ---------------------------------------------------------------------
 * Processes (worker.c, pool.c)
 * ------------------------------------------------------------------ */

struct sl_slot;                   /* slot.h */

/* Runs one worker process until it is told to stop (SIGTERM/SIGINT) or
 * fails for good. `slot` may be NULL (no supervisor). Returns the exit
 * code for the process. */
int sl__worker_run(const struct sl_config *cfg, const struct sl_worker_conf *wc,
                   const struct sl_handler *h, const char *consumer,
                   struct sl_slot *slot);

/* Runs `sluice run`: the supervisor. Returns the exit code. */
int sl__pool_run(struct sl_config *cfg, const char *cfg_path, int cfg_explicit,
                 const char *redis_override, const char *workers_override,
                 const char *metrics_override,
                 const struct sl_handler *const *registry);

/* ---------------------------------------------------------------------
 * The registry (registry.c)
 * ------------------------------------------------------------------ */

/* Finds a handler by name in a NULL-terminated registry, or NULL. */
const struct sl_handler *sl__registry_find(const struct sl_handler *const *reg,
                                           const char *name);

/* Returns 0 when every handler of reg was built for SL_ABI_VERSION and
 * sets either `routes` (each with a function, `types` NULL) or `handle`,
 * else -1 with the first problem in why ("handler NAME was built for ABI
 * N, this is M", ...). */
int sl__registry_check(const struct sl_handler *const *reg, char *why, size_t size);

/* Returns the types h accepts, NULL-terminated: its routes' types, or a
 * copy of its `types`. New: free() the array (not the strings, borrowed
 * from h). NULL with *any set when h accepts any type; NULL with *any
 * clear when memory ran out. */
const char **sl__handler_types_new(const struct sl_handler *h, int *any);

#endif /* SL_INTERNAL_H */
