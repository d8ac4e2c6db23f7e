/* sluice.h -- the public interface of libsluice.
 *
 * A worker is a `const struct sl_handler` (a vtable) listed in a
 * NULL-terminated registry that main() hands to sl_main(). The framework
 * reads entries from a Redis stream through a consumer group, validates
 * them, calls the handler's `handle` hook for each one and applies the
 * disposition the hook returns: SL_ACK, SL_RETRY or SL_DEAD.
 *
 * A handler never writes to Redis itself. Effects that live in Redis are
 * *declared* on the context with sl_ctx_effect(): a Lua script registered
 * in the handler's `scripts` table plus its keys and arguments. The
 * framework runs that script, the XACK and its own bookkeeping as one
 * atomic step, fenced by ownership of the entry (see README, "Effects").
 */
#ifndef SL_SLUICE_H
#define SL_SLUICE_H

#include <stddef.h>
#include <jansson.h>

#define SL_VERSION "0.1.0"
#define SL_ABI_VERSION 2          /* bumped on any change to the structs below
                                     (2: struct sl_handler gained `routes`) */

/* Error codes: functions that can fail return 0 or one of these. */
#define SL_OK       0
#define SL_ERR     -1             /* generic failure, see the context's errstr */
#define SL_ENOMEM  -2             /* allocation failed */
#define SL_EINVAL  -3             /* bad argument */
#define SL_EEXIST  -4             /* something was already declared */
#define SL_EREDIS  -5             /* Redis unreachable, refused us, or refused the command */

/* Returns the text of an SL_* code ("out of memory", ...), static. */
const char *sl_strerror(int code);

/* What the framework does with an entry once `handle` returns. */
enum sl_disposition {
    SL_ACK = 0,                   /* done: apply declared effects, then XACK */
    SL_RETRY = 1,                 /* failed this time: deliver again after backoff */
    SL_DEAD = 2,                  /* permanent failure: move to <stream>:dead */
    SL_PENDING = 3                /* in progress: the handler finishes it later with
                                     sl_ctx_complete(), from a callback on the loop of
                                     sl_ctx_base() (an async handler) */
};

/* Handler flags. */
#define SL_HANDLER_RAW 0x1        /* do not parse `data`: msg->data is NULL */

struct sl_ctx;                    /* per-entry handling context, opaque */
struct event_base;                /* libevent's loop (event2/event.h) */

/* One field of a stream entry. Names and values are binary-safe: use the
 * lengths. Both pointers are borrowed, valid until `handle` returns. */
struct sl_field {
    const char *name;             /* borrowed; not NUL-terminated in general */
    size_t name_len;              /* bytes */
    const char *value;            /* borrowed; not NUL-terminated in general */
    size_t value_len;             /* bytes */
};

/* A message handed to `handle`. The struct and everything it points to are
 * borrowed and valid only until `handle` returns: copy what you keep, or
 * json_incref() the parts of `data` you keep. */
struct sl_msg {
    const char *id;               /* borrowed: entry ID "ms-seq", NUL-terminated */
    const char *stream;           /* borrowed: stream name, NUL-terminated */
    const char *type;             /* borrowed: the `type` field, NUL-terminated, never empty */
    const struct sl_field *fields;/* borrowed: every field of the entry, in order */
    size_t nfields;               /* number of entries in `fields` */
    json_t *data;                 /* borrowed: the parsed `data` object, NULL with SL_HANDLER_RAW */
    const char *raw_data;         /* borrowed: the `data` bytes as stored */
    size_t raw_data_len;          /* bytes in raw_data */
    long long deliveries;         /* Redis's delivery count of the entry */
    int attempts;                 /* failed attempts before this one (0 the first time) */
};

/* What a worker process runs as; passed to `init`. Every pointer is
 * borrowed and valid for the life of the process. */
struct sl_worker_info {
    const char *handler;          /* handler name, e.g. "payment" */
    const char *stream;           /* stream consumed */
    const char *group;            /* consumer group */
    const char *consumer;         /* this process's consumer name */
    long long idempotency_retention_ms; /* how long a handler should keep the
                                     fingerprints of finished work, ms; 0:
                                     forever (the default) */
};

/* A Lua script a handler may declare as its effect. `body` is ordinary
 * Redis Lua that uses KEYS and ARGV as given to sl_ctx_effect(); it runs
 * atomically with the entry's XACK, and only while the entry is still
 * pending for this consumer. It must do every read and check before its
 * first write (Lua has no rollback). Its return value decides the entry:
 *   - anything but the two forms below: SL_ACK;
 *   - {'retry', 'reason'}: SL_RETRY (write nothing before returning it);
 *   - {'dead', 'code: detail'}: SL_DEAD (write nothing before returning it).
 * The framework loads each script once per connection and again after a
 * NOSCRIPT reply. */
struct sl_script {
    const char *name;             /* for logs and metrics */
    const char *body;             /* Lua source, without a shebang line */
};

/* The function that decides one entry: `ctx` and `msg` are borrowed
 * until it returns; `privdata` is what `init` stored. May block (the
 * framework renews the entry's lease meanwhile); must not write to Redis
 * itself. */
typedef enum sl_disposition sl_handle_fn(struct sl_ctx *ctx, const struct sl_msg *msg,
                                         void *privdata);

/* One `type` a handler accepts and the function that decides its
 * entries. A handler's `routes` is an array of these ending with
 * {NULL, NULL}; each type is written once, there. */
struct sl_route {
    const char *type;             /* the `type` field's value, NUL-terminated */
    sl_handle_fn *handle;         /* decides entries of that type */
};

/* The vtable a worker exports. Fill it with designated initializers.
 * Either `routes` (the accepted types, each with its function) or
 * `handle` (one function for every type, with `types` listing the
 * accepted ones, or NULL for any) must be set, not both. A handler written
 * for ABI 1 (`.types` + `.handle`) compiles and runs unchanged. */
struct sl_handler {
    int abi_version;              /* SL_ABI_VERSION */
    const char *name;             /* registry name, as in the config's "handler" */
    unsigned flags;               /* SL_HANDLER_* */
    const char *const *types;     /* with `handle`: NULL-terminated accepted `type`s; NULL accepts any */
    const struct sl_script *const *scripts; /* NULL-terminated scripts for sl_ctx_effect(), or NULL */

    /* Optional. Called once per worker process before the first entry.
     * Stores the worker's state in *privdata (new: freed by `destroy`).
     * Returns 0, or a negative SL_E* code to make the process exit. */
    int (*init)(const struct sl_worker_info *info, void **privdata);

    /* Decides every entry, whatever its type (see sl_handle_fn). NULL
     * when `routes` is set. */
    sl_handle_fn *handle;

    /* Optional. Frees what `init` stored. */
    void (*destroy)(void *privdata);

    /* The accepted types, each with its function, ending with {NULL,
     * NULL}; an entry of any other type is dead-lettered as unknown_type
     * before any function is called. NULL when `handle` is set. */
    const struct sl_route *routes;

    /* Optional. NULL-terminated Redis glob patterns ("order:*") of the
     * keys the handler's scripts touch, for `sluice acl`; NULL when not
     * declared. Borrowed for the life of the process. */
    const char *const *keys;
};

/* Calls the function of h that decides msg: the route of msg->type, or
 * `handle`. An entry of a type h does not route is SL_DEAD with
 * "unknown_type: <type>" on ctx. This is what the framework calls; tests
 * of a handler call it too. */
enum sl_disposition sl_handler_call(const struct sl_handler *h, struct sl_ctx *ctx,
                                    const struct sl_msg *msg, void *privdata);

/* Declares the entry's effect: `script` (which must be listed in the
 * handler's `scripts`) with `nkeys` keys and `nargs` arguments. Keys and
 * arguments are NUL-terminated strings, copied before the call returns
 * (the caller keeps ownership). At most one effect per entry. Returns 0,
 * SL_EEXIST when an effect was already declared, SL_EINVAL for a script
 * the handler did not list (or a negative count), SL_ENOMEM;
 * sl_strerror() gives the text of each. */
int sl_ctx_effect(struct sl_ctx *ctx, const struct sl_script *script,
                  int nkeys, const char *const *keys,
                  int nargs, const char *const *args);

/* Records why the entry is being retried or dead-lettered: the error is
 * `code`, or `code: detail` when fmt is not NULL. Strings are copied; a
 * later call replaces an earlier one. Returns the disposition `d`, so a
 * handler can write `return sl_ctx_fail(ctx, SL_DEAD, "invalid_id", ...)`. */
enum sl_disposition sl_ctx_fail(struct sl_ctx *ctx, enum sl_disposition d,
                                const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Asks that the retry of the current entry wait at least `ms`
 * milliseconds (an HTTP service's Retry-After), even when the backoff of
 * retry_backoff_ms would be shorter; a longer backoff still wins. Applies
 * only when the entry ends SL_RETRY, and does not use up more attempts.
 * Returns 0, or SL_EINVAL for ms below 0 or above 604800000 (7 days). */
int sl_ctx_retry_after(struct sl_ctx *ctx, long long ms);

/* ---------------------------------------------------------------------
 * Async handlers. A handler that waits on the network (an HTTP call, say)
 * need not block its process: it starts the work on the worker's own
 * event loop, returns SL_PENDING, and later, from a callback on that
 * loop, declares the effect or the failure on the same ctx and calls
 * sl_ctx_complete(). Up to the worker's `concurrency` entries are in
 * flight per process, each with its own lease and handler_timeout_ms.
 * `msg` is still borrowed only until `handle` returns: copy what the
 * callback needs. See README, "Blocking or async handlers".
 * ------------------------------------------------------------------ */

/* Returns the event loop of the worker process that handles ctx's entry
 * (borrowed: valid for the life of the process; never run or free it).
 * Add the events of an async handler's I/O to it. NULL for a NULL ctx. */
struct event_base *sl_ctx_base(const struct sl_ctx *ctx);

/* Finishes an entry whose `handle` returned SL_PENDING with disposition
 * d (SL_ACK, SL_RETRY or SL_DEAD): what was declared on ctx (effect,
 * sl_ctx_fail, sl_ctx_retry_after) is committed atomically with the ack,
 * fenced as for a blocking handler. Call it exactly once per SL_PENDING,
 * on the loop's thread; ctx is valid until then and must not be used
 * after. An entry abandoned meanwhile (past handler_timeout_ms, already
 * recorded as a failed attempt) is not committed: the completion is
 * discarded, counted and logged, and the call returns SL_ERR. Called
 * before `handle` returned, it takes effect when `handle` returns
 * SL_PENDING. Returns 0, SL_ERR for a discarded completion, SL_EINVAL
 * for a ctx that is not in progress or a d that is not a final
 * disposition. */
int sl_ctx_complete(struct sl_ctx *ctx, enum sl_disposition d);

/* Returns the error recorded on ctx for the current entry: "code" or
 * "code: detail", "" when none. Borrowed until the next entry. */
const char *sl_ctx_error(const struct sl_ctx *ctx);

/* Returns the value of the first field named `name`, or NULL when the
 * entry has none; the length goes to *len when len is not NULL. The
 * result is borrowed from msg. */
const char *sl_msg_field(const struct sl_msg *msg, const char *name, size_t *len);

/* ---------------------------------------------------------------------
 * Validation helpers for handlers. Each looks up `key` in the JSON object
 * `data`, checks it against the rule of docs/semantics.md, and on failure
 * records the documented error code on ctx and returns -1; on success stores the
 * value and returns 0. Strings stored are borrowed from `data`.
 * ------------------------------------------------------------------ */

/* A required string of 1-64 characters of [A-Za-z0-9_.:-]: missing_field,
 * wrong_type (string) or invalid_id. */
int sl_get_id(struct sl_ctx *ctx, json_t *data, const char *key, const char **out);

/* A required JSON integer with lo <= v <= hi: missing_field, wrong_type
 * (integer; 1e2 and "100" are not integers) or invalid_amount. */
int sl_get_amount(struct sl_ctx *ctx, json_t *data, const char *key,
                  long long lo, long long hi, long long *out);

/* A required string of three upper-case letters: missing_field, wrong_type
 * or invalid_currency. */
int sl_get_currency(struct sl_ctx *ctx, json_t *data, const char *key, const char **out);

/* A required string (any content, may be empty when allow_empty):
 * missing_field or wrong_type. */
int sl_get_string(struct sl_ctx *ctx, json_t *data, const char *key,
                  int allow_empty, const char **out);

/* What one field of an event must be. The order of the enum is also the
 * order in which sl_data_check() checks values (the dead-letter table:
 * invalid_id, then invalid_amount, then invalid_currency; plain strings
 * last, since they can only fail on emptiness). */
enum sl_kind {
    SL_KIND_ID = 0,               /* sl_get_id: 1-64 of [A-Za-z0-9_.:-] */
    SL_KIND_AMOUNT,               /* sl_get_amount: JSON integer, 1 .. SL_MAX_CENTS */
    SL_KIND_BALANCE,              /* sl_get_amount: JSON integer, 0 .. SL_MAX_CENTS */
    SL_KIND_CURRENCY,             /* sl_get_currency: three upper-case letters */
    SL_KIND_TEXT,                 /* sl_get_string: a non-empty string */
    SL_NKINDS                     /* number of kinds, not a kind */
};

/* The largest amount and balance of docs/payment-flow.md, in cents. */
#define SL_MAX_CENTS 1000000000000LL

/* One required field of an event's `data`. */
struct sl_rule {
    const char *key;              /* JSON member name */
    enum sl_kind kind;            /* what its value must be */
};

/* A checked value: `s` for the string kinds, `n` for the integer kinds. */
struct sl_value {
    const char *s;                /* borrowed from data; NULL for integers */
    long long n;                  /* the integer, 0 for string kinds */
};

/* Checks every field of rules[0..n) in the JSON object `data` and stores
 * the values in vals (same order). The first failing check *in the
 * dead-letter table's order* names the error, so an event missing one
 * field and holding a bad identifier in another is missing_field: all
 * fields are checked for presence, then for their JSON type, then for
 * their value kind by kind, each by the validator above. A `data` that is
 * not an object is invalid_schema. Returns 0, or -1 with the error on
 * ctx. */
int sl_data_check(struct sl_ctx *ctx, json_t *data, const struct sl_rule *rules, size_t n,
                  struct sl_value *vals);

/* Returns a canonical text of a JSON value (sorted keys, compact): two
 * values that are equal whatever their key order and white space give the
 * same text. New: free() it. NULL on allocation failure. */
char *sl_json_canonical(const json_t *value);

/* ---------------------------------------------------------------------
 * Producers (enqueue.c): adding entries from C, the way any producer
 * does (XADD STREAM * type TYPE data JSON), with the checks that can be
 * made before sending. Nothing here needs hiredis. See
 * docs/producers.md.
 * ------------------------------------------------------------------ */

#define SL_PAYLOAD_MAX_DEFAULT 1048576 /* bytes: the workers' default max_payload_bytes */
#define SL_ENQUEUE_IDLEN 48       /* bytes that always hold an entry ID and its NUL */

struct sl_producer;               /* one synchronous Redis connection, opaque */

/* Connects to redis_url (redis://[:password@]host:port[/db]; borrowed),
 * or when it is NULL to $SLUICE_REDIS_URL, or else to
 * redis://127.0.0.1:6379/0. The password is the URL's, else
 * $SLUICE_REDIS_PASSWORD. Connect and command timeouts are 2 s and 5 s.
 * Returns a new producer (free it with sl_producer_free()), or NULL with
 * the reason in err (errlen bytes, may be NULL; never holds a password). */
struct sl_producer *sl_producer_new(const char *redis_url, char *err, size_t errlen);

/* The same for a Redis Cluster: cluster_nodes lists seed nodes,
 * "host:port,host:port" (IPv6 in brackets; any one reachable is enough),
 * and redis_url gives only the user, the password and TLS (its database
 * must be 0). Each entry goes to the master of its stream's hash slot,
 * following the cluster's redirects. cluster_nodes NULL or "" is
 * sl_producer_new(). */
struct sl_producer *sl_producer_new_cluster(const char *redis_url, const char *cluster_nodes,
                                            char *err, size_t errlen);

/* Sets the largest `data`, in bytes, that sl_enqueue() sends: it should
 * match the consuming worker's max_payload_bytes. 0 means no limit. The
 * default is SL_PAYLOAD_MAX_DEFAULT. */
void sl_producer_set_max_payload(struct sl_producer *p, size_t bytes);

/* Checks a payload as a worker would before its handler runs: size
 * (max_payload bytes, 0: no limit), strict UTF-8 without NUL or \u0000,
 * JSON without duplicate keys, an object, and `type` non-empty, at most
 * 255 bytes, UTF-8. type and json are borrowed (json is len bytes, need
 * not be NUL-terminated). Returns 0, or SL_EINVAL with the dead-letter
 * error the entry would get ("invalid_json: ...") in err (errlen bytes,
 * may be NULL). Needs no Redis; does not know the handler's own schema. */
int sl_enqueue_check(const char *type, const char *json, size_t len,
                     size_t max_payload, char *err, size_t errlen);

/* Checks the payload with sl_enqueue_check() and XADDs `type` and
 * `data` to stream (never with MAXLEN), reconnecting first when the
 * previous call lost the connection. stream, type and json are borrowed.
 * On success writes the new entry's ID into id_out (id_len bytes,
 * SL_ENQUEUE_IDLEN always suffice; id_out may be NULL) and returns 0.
 * Otherwise returns SL_EINVAL (bad argument or payload: nothing was
 * sent), SL_ENOMEM, or SL_EREDIS (when the connection broke after the
 * command was sent, the entry may have been added: resend only what is
 * idempotent); sl_producer_errstr() says why. */
int sl_enqueue(struct sl_producer *p, const char *stream, const char *type,
               const char *json, size_t len, char *id_out, size_t id_len);

/* Returns why the last call on p failed ("" after a success). Borrowed:
 * valid until the next call on p. */
const char *sl_producer_errstr(const struct sl_producer *p);

/* Closes the connection and frees p. Accepts NULL. */
void sl_producer_free(struct sl_producer *p);

/* The entry point of the `sluice` binary: parses the command line and runs
 * a subcommand with the given registry (borrowed; NULL-terminated, static).
 * Returns the process exit code. */
int sl_main(int argc, char **argv, const struct sl_handler *const *registry);

#endif /* SL_SLUICE_H */
