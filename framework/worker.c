/* worker.c -- one worker process: read, handle, commit.
 *
 * A worker owns two connections: the reader, which only
 * ever runs the blocking XREADGROUP, and the command connection, which
 * carries acks, commits, claims and heartbeats, so an ack never waits
 * behind a BLOCK. Its life is a small state machine:
 *
 *   DOWN --connect both--> INIT --scripts, group, reader id--> RECOVER
 *   RECOVER --own pending entries, page by page--> RUN
 *   any error in any state --> reset: close both, back off, DOWN
 *
 * Recovery takes this consumer's own pending entries first (after a
 * restart or a reconnect they may have been assigned without ever
 * arriving), then RUN reads new entries with ">". In RUN, timers sweep
 * for due retries and reclaim entries left by dead peers.
 *
 * A batch is handled entry by entry inside the reply callback; the
 * outcomes go out on the command connection pipelined in one write (one
 * XACK for all plain acks, one EVALSHA per run of consecutive entries
 * with the same effect script, one per retry or dead letter), and the
 * next read is already on its way meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include "internal.h"
#include "conn.h"
#include "cluster.h"
#include "slot.h"
#include "heartbeat.h"
#include "scripts.h"
#include "typecount.h"

#define W_DOWN    0               /* no usable connections */
#define W_INIT    1               /* loading scripts, creating the group */
#define W_RECOVER 2               /* taking own pending entries */
#define W_RUN     3               /* reading new entries */

#define CLAIM_OWN   0
#define CLAIM_RETRY 1
#define CLAIM_ANY   2

#define MAX_COMMIT_BATCHES 3      /* batches whose commits may be in flight */
#define SWEEP_SLICE_MS 250        /* a sweep pages on for this long, then rests, ms */
#define SWEEP_REST_MS 25          /* the rest between two slices of one sweep, ms */
#define READ_BUDGET_PAYLOADS 2    /* one reply's entries hold at most this many max_payload_bytes */
#define READ_AHEAD_MAX_US 5000    /* read ahead only after batches handled faster, us */
#define PREFETCH_US 100000        /* a read brings at most this much handler time, us */
#define GROWN_READ 512            /* the largest read of a default `batch` on a deep backlog */
#define STALL_TELL_US 1000        /* handler time told to the connections' deadlines in steps of, us */
#define INFLIGHT_TICK_MS 100      /* period of the in-flight timer (loop stamp, leases, timeouts), ms */
#define BACKOFF_BASE_MS 100       /* first reconnect delay */
#define BACKOFF_CAP_MS 5000       /* longest reconnect delay */
/* A run (effect.lua's kind "run") commits consecutive effect entries of
 * one batch in one script call. Its bounds keep one call short: Redis
 * runs nothing else meanwhile, and 64 payments are about 2 ms of Redis
 * CPU, while the fixed part a run shares (EVALSHA, the framework's
 * arguments, the fence, the ack) is already down to a few percent of an
 * entry's cost at that size. The value and byte bounds keep the command
 * and effect.lua's tables small (unpack() takes a few thousand values);
 * an entry that alone exceeds them is committed by itself. */
#define RUN_MAX 64                /* entries of one run */
#define RUN_VALUES_MAX 4000       /* handler keys and arguments of one run */
#define RUN_BYTES_MAX (1 << 20)   /* bytes of handler keys and arguments of one run */

/* One entry to handle, pointing into a reply that lives until the batch
 * is handled. */
struct entry {
    const redisReply *id;         /* the entry ID (string reply) */
    const redisReply *fields;     /* flat name/value array, or a NIL reply */
    long long deliveries;         /* Redis's delivery count */
    long long attempts;           /* failed attempts recorded by sluice */
    const char *why;              /* last failure reason, "" when none */
    long long data_left;          /* bytes of `data` the claim script left in Redis (too_large), 0 when none */
};

/* The outcomes of one batch awaiting their replies. Allocated once per
 * batch with one record per scripted commit. */
struct batch {
    struct worker *w;             /* owner */
    int outstanding;              /* replies still expected */
    int failed;                   /* an infrastructure error was seen */
    int n;                        /* records in use */
    int async;                    /* the commit of one async entry, listed in w->abatches */
    struct batch *anext, *aprev;  /* in w->abatches while async */
    struct commit {
        struct batch *b;          /* back pointer */
        char id[SL_IDLEN];        /* entry ID */
        int effect;               /* 1 for an effect script, 2 the first entry of a run, 0 commit, -1 plain XACK */
        int count;                /* plain XACK: IDs sent; a run: its entries (this and the next count - 1) */
        struct sl_ctx *ctx;       /* context holding the effect (effect 1), borrowed until sent */
        long long least_ms;       /* least delay of a retry (sl_ctx_retry_after), ms */
        char err[160];            /* retry/dead reason, cut, for the log */
    } c[];
};

struct worker {
    const struct sl_config *cfg;  /* borrowed, outlives the worker */
    const struct sl_worker_conf *wc; /* borrowed */
    const struct sl_tunables *t;  /* &wc->t */
    const struct sl_handler *h;   /* borrowed, static */
    void *priv;                   /* the handler's state from init */
    struct sl_ctx *ctx;           /* per-entry context, reused */
    const char *consumer;         /* this process's consumer name */
    struct sl_slot *slot;         /* shared with the supervisor */
    struct event_base *base;
    struct sl_conn *rd;           /* blocking reads only */
    struct sl_conn *cmd;          /* everything else */
    int state;                    /* W_* */
    int init_pending;             /* INIT replies still expected */
    int fails;                    /* consecutive failures: the backoff step */
    int reading;                  /* an XREADGROUP is in flight */
    int claiming;                 /* a claim script is in flight */
    int claim_mode;               /* CLAIM_* of that claim */
    struct sweep {                /* one sweep mode's state, indexed by CLAIM_* */
        int wanted;               /* its timer fired: a new sweep starts when the last one ends */
        char cursor[SL_IDLEN + 2];/* where the sweep in progress goes on; "" when none */
        uint64_t slice_ms;        /* monotonic start of its current slice, ms */
        uint64_t rest_until_ms;   /* resting after a slice until then (monotonic), ms */
    } sw[3];
    int last_mode;                /* CLAIM_* of the last page sent, to alternate */
    long long read_n;             /* COUNT of the last read or claim page, 0 before the first */
    long long read_sent;          /* COUNT of the read in flight */
    int read_full;                /* the last read brought as many entries as it asked for */
    long long entry_bytes;        /* largest entry of the last non-empty reply, bytes of its fields */
    int commit_batches;           /* batches whose commits are in flight */
    int stopping;                 /* asked to stop: finish and exit */
    int stop_seen;                /* on_signal_pipe has run (and ended the read) */
    int releasing;                /* stopping, all done: deleting its heartbeat, no more beats */
    int read_ahead;               /* the read in flight went out before the batch before it was handled */
    int ahead_ok;                 /* the last batch took < READ_AHEAD_MAX_US: reading ahead is allowed */
    int finish_batch;             /* from a read-ahead: a stop finishes it while fast */
    int exit_code;                /* returned by sl__worker_run */
    long long reader_id;          /* CLIENT ID of the reader, for CLIENT UNBLOCK */
    int unblocking;               /* a CLIENT UNBLOCK of the read is in flight (sweep_pump) */
    struct sl_commit_args ca;     /* framework keys and arguments of the commit scripts */
    char host[256];               /* gethostname() */
    const char **types;           /* the types the handler accepts (owned array), NULL: any */
    struct sl_lua **eff;          /* each handler script, wrapped by effect.lua (owned) */
    int neff;                     /* handler scripts */
    uint64_t started_wall_ms;     /* process start, ms since the epoch */
    uint64_t clock_ms;            /* last monotonic clock reading of handle_batch, ms */
    uint64_t handler_us;          /* smoothed handler time per entry, us; 0 until one ran */
    uint64_t batch_us;            /* handler time of the batch in hand so far, us */
    uint64_t batch_calls;         /* handler calls of the batch in hand so far */
    uint64_t stall_us;            /* handler time not yet told to the connections, us */
    struct event *reconnect_ev;   /* fires after the backoff delay */
    struct event *reset_ev;       /* deferred reset */
    struct event *retry_ev;       /* due-retry sweep period */
    struct event *reclaim_ev;     /* reclaim sweep period */
    struct event *pump_ev;        /* one-shot: a sweep's rest is over */
    struct event *beat_ev;        /* heartbeat period */
    struct event *sig_ev;         /* self-pipe of the stop signals */
    struct entry *ents;           /* batch being handled (reused) */
    size_t entcap;                /* entries allocated */
    struct sl_field *fields;      /* fields of the entry being handled (reused) */
    size_t fieldcap;              /* fields allocated */
    const char **argv;            /* argument vector being built (reused) */
    size_t *argvlen;              /* its lengths */
    const char **kav;             /* keys then arguments of a script call (reused) */
    size_t *kalen;                /* their lengths */
    size_t argcap;                /* entries allocated in each of the four */
    const char **ackv;            /* XACK stream group id... (reused) */
    size_t *acklen;               /* its lengths */
    size_t ackcap;                /* entries allocated in both */
    struct run {                  /* effect entries of the batch in hand not sent yet */
        struct commit *first;     /* the commit of its first entry (the rest follow it in b->c), NULL: none */
        int n;                    /* entries */
        int script;               /* their handler script */
        char *buf;                /* their keys and arguments, each with its NUL (owned) */
        size_t len, cap;          /* bytes used and allocated in buf */
        struct run_val {          /* one key or argument in buf */
            size_t off, len;      /* where, and its length without the NUL */
        } *val;                   /* entries' keys and arguments in entry order (owned) */
        size_t nval, valcap;      /* values used and allocated */
        struct run_ent {          /* one entry */
            int nkeys, nargs;     /* its keys and arguments (in val, keys first) */
            long long least_ms;   /* least delay of a retry its effect asks for, ms */
        } ent[RUN_MAX];
        char lay[RUN_MAX * 48];   /* the layout argument being built */
    } run;
    struct sl_slot local;         /* used when no supervisor gave a slot */
    /* Async handlers: entries in flight after `handle` returned SL_PENDING. */
    struct sl_ctx *inflight;      /* contexts in flight (list) */
    int ninflight;                /* entries in it */
    struct sl_ctx *abandoned;     /* contexts past their timeout, awaiting their completion (list) */
    struct sl_ctx *spare;         /* contexts ready for the next entry (list) */
    int async_seen;               /* the handler returned SL_PENDING once: `concurrency` bounds reads */
    int serial;                   /* recovering suspects of a crash: one entry at a time */
    int recover_wait;             /* serial recovery paused until the entry in flight completes */
    char recover_next[SL_IDLEN + 2]; /* where that recovery goes on, "" for the end */
    int own_left;                 /* own entries were left unhandled (concurrency full): sweep them */
    long long reserved_read;      /* places the read in flight may fill (async handlers) */
    long long reserved_claim;     /* places the claim page in flight may fill (async handlers) */
    int exiting;                  /* the loop has ended: completions are dropped */
    struct batch *abatches;       /* async entries' commits awaiting their replies (list) */
    struct event *inflight_ev;    /* timer: stamps the loop, renews leases, enforces timeouts */
    struct sl_typecount *tc;      /* per-type counts not yet sent (owned) */
    int tc_fresh;                 /* the batch in hand was read with ">": its entries count as in */
};

static volatile sig_atomic_t stop_signalled; /* set by the signal handler */
static int sig_pipe[2] = { -1, -1 };         /* wakes the loop on a signal */

static void reset(struct worker *w, const char *why);
static void read_next(struct worker *w);
static void claim_next(struct worker *w, int mode, const char *start);
static void sweep_pump(struct worker *w);
static void sweep_paged(struct worker *w, int mode, const char *next);
static void maybe_exit(struct worker *w);
static void go_run(struct worker *w);
static int full(const struct worker *w);
static int in_flight(const struct worker *w, const redisReply *id);
static int take_spare(struct worker *w);
static void go_pending(struct worker *w, const struct entry *e);
static int complete(struct sl_ctx *ctx, enum sl_disposition d);

/* ------------------------------------------------------------------ */
/* Slot: what the supervisor sees (the protocol is slot.h's)           */
/* ------------------------------------------------------------------ */

/* Adds n to one of the slot's counters. */
static void count(struct worker *w, enum sl_counter k, uint64_t n)
{
    sl__slot_count(w->slot, k, n);
}

/* Copies a reply string into a fixed slot field, cut to fit. */
static void copy_id(char *dst, const redisReply *r)
{
    sl__slot_copy_id(dst, r->str, (size_t)r->len);
}

/* ------------------------------------------------------------------ */
/* Argument vectors                                                    */
/* ------------------------------------------------------------------ */

/* Makes room for n arguments. Returns 0 or -1. */
static int argv_reserve(struct worker *w, size_t n)
{
    const char **a;
    size_t *l;

    if (n <= w->argcap)
        return 0;
    a = realloc(w->argv, n * sizeof(*a));
    if (a == NULL)
        return -1;
    w->argv = a;
    l = realloc(w->argvlen, n * sizeof(*l));
    if (l == NULL)
        return -1;
    w->argvlen = l;
    a = realloc(w->kav, n * sizeof(*a));
    if (a == NULL)
        return -1;
    w->kav = a;
    l = realloc(w->kalen, n * sizeof(*l));
    if (l == NULL)
        return -1;
    w->kalen = l;
    w->argcap = n;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* Returns 1 when an error reply means the group or stream is gone. */
static int group_lost(const redisReply *r)
{
    return strncmp(r->str, "NOGROUP", 7) == 0 || strncmp(r->str, "UNBLOCKED", 9) == 0;
}

/* Returns 1 when an error text (an error reply's, or one entry's in a
 * run's reply) says Redis cannot run the command now
 * (docs/semantics.md: never the message's fault), 0 when the command itself
 * failed. Inside a script, Redis 7 passes a failing call's own error code
 * through ("WRONGTYPE ... script: ..."), so a handler's effect can fail
 * with codes other than ERR; only this list is transient. */
static int transient_text(const char *msg)
{
    static const char *const codes[] = {
        "LOADING", "BUSY", "OOM", "MISCONF", "NOSCRIPT", "NOGROUP", "UNBLOCKED",
        "READONLY", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN", "NOAUTH",
        "NOPERM", NULL
    };
    int i;

    for (i = 0; codes[i] != NULL; i++)
        if (strncmp(msg, codes[i], strlen(codes[i])) == 0)
            return 1;
    return 0;
}

/* transient_text() of an error reply. */
static int transient(const redisReply *r)
{
    return transient_text(r->str);
}

/* ------------------------------------------------------------------ */
/* Commits                                                             */
/* ------------------------------------------------------------------ */

/* The rest of batch_done(), once the batch's WAIT (if any) is over. */
static void batch_finish(struct batch *b)
{
    struct worker *w = b->w;

    w->commit_batches--;
    if (!b->failed)
        w->fails = 0;
    if (b->async) {
        if (b->aprev != NULL)
            b->aprev->anext = b->anext;
        else
            w->abatches = b->anext;
        if (b->anext != NULL)
            b->anext->aprev = b->aprev;
    }
    free(b);
    /* A due sweep before the read: an async handler's read takes every
     * place left, and under a steady load a sweep pumped after it would
     * never find one, so due retries would wait for the load to stop. */
    sweep_pump(w);
    if (w->state == W_RUN && !w->reading)
        read_next(w);
    maybe_exit(w);
}

/* The reply to a batch's WAIT: the number of replicas that have every
 * write of this connection so far. Fewer than asked is counted, not
 * retried: the commits stand either way (see batch_done()). */
static void on_waited(struct sl_conn *c, redisReply *r, void *priv)
{
    struct batch *b = priv;
    struct worker *w = b->w;

    (void)c;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer < w->t->wait_replicas) {
        count(w, SL_C_WAIT_SHORT, 1);
        if (r != NULL && r->type == REDIS_REPLY_ERROR)
            sl__log(SL_LOG_WARN, "wait_failed", "error=%s", sl__logq(r->str));
    }
    batch_finish(b);
}

/* Called when every reply of a batch has arrived (or was lost). With
 * wait_replicas set, a WAIT follows on the same connection as the
 * commits (WAIT counts only the writes of its own connection), and the
 * batch is over when it answers: the worker reads no more until its
 * writes have reached the replicas or the timeout passed. This narrows
 * the writes a failover can lose to about one batch; it does not close
 * the window (replication stays asynchronous, and the writes were
 * visible before the WAIT). */
static void batch_done(struct batch *b)
{
    struct worker *w = b->w;
    char n[24], ms[24];
    const char *argv[3] = { "WAIT", n, ms };

    if (w->t->wait_replicas > 0 && b->n > 0 && !b->failed && sl__conn_ready(w->cmd)) {
        snprintf(n, sizeof(n), "%lld", w->t->wait_replicas);
        snprintf(ms, sizeof(ms), "%lld", w->t->wait_timeout_ms);
        /* Its deadline: the WAIT's own timeout plus the usual one. */
        if (sl__conn_command(w->cmd, on_waited, b, w->t->wait_timeout_ms + w->cfg->command_timeout_ms,
                             3, argv, NULL) == 0) {
            count(w, SL_C_WAITS, 1);
            return;
        }
    }
    batch_finish(b);
}

static void send_commit(struct worker *w, struct batch *b, struct commit *k,
                        const char *kind, const char *err, int trim);

/* Counts the integer result of one entry's commit script (SL_COMMIT_*)
 * and logs what the operator should see. */
static void commit_result(struct worker *w, const struct commit *k, long long res)
{
    switch (res) {
    case SL_COMMIT_NOT_OWNER:
        count(w, SL_C_DISCARDED, 1);
        sl__log(SL_LOG_INFO, "commit_discarded", "id=%s reason=not_owner", k->id);
        break;
    case SL_COMMIT_ACKED:     count(w, SL_C_ACKED, 1); break;
    case SL_COMMIT_RETRIED:   count(w, SL_C_RETRIED, 1); count(w, SL_C_FAILED, 1); break;
    case SL_COMMIT_DEAD:
        count(w, SL_C_DEAD, 1);
        count(w, SL_C_FAILED, 1);
        sl__log(SL_LOG_INFO, "dead_letter", "id=%s error=%s", k->id, sl__logq(k->err));
        break;
    default: break;
    }
}

/* An entry's effect failed with error text msg (an error reply, or one
 * entry's error in a run's reply). A code that says Redis cannot run the
 * command now is never the entry's fault: the batch fails and the
 * connection is reset (the entry, still pending, is handled again after
 * recovery). Any other error is the effect's fault: a retry commit
 * records it as a failed attempt. Returns 1 when it reset. */
static int effect_error(struct worker *w, struct commit *k, const char *msg)
{
    struct batch *b = k->b;
    char err[SL_ERRLEN];

    if (transient_text(msg)) {
        b->failed = 1;
        sl__log(SL_LOG_WARN, "commit_refused", "id=%s error=%s", k->id, sl__logq(msg));
        reset(w, msg);
        return 1;
    }
    snprintf(err, sizeof(err), "effect_failed: %.400s", msg);
    sl__log(SL_LOG_WARN, "effect_failed", "id=%s error=%s", k->id, sl__logq(msg));
    k->effect = 0;
    b->outstanding++;
    send_commit(w, b, k, "retry", err, 0);
    return 0;
}

/* The reply to a run (effect.lua's kind "run"): one result per entry,
 * each counted and logged as the reply of that entry's own commit would
 * be; an error reply of the whole call stands for every entry's. */
static void run_reply(struct worker *w, struct commit *k, const redisReply *r)
{
    struct batch *b = k->b;
    int i, n = k->count;

    if (r->type == REDIS_REPLY_ERROR) {
        for (i = 0; i < n; i++)
            if (effect_error(w, &k[i], r->str))
                return;
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)n) {
        b->failed = 1;
        sl__log(SL_LOG_WARN, "commit_refused", "id=%s error=%s", k->id,
                sl__logq("a run's reply is not one result per entry"));
        reset(w, "bad reply to a run");
        return;
    }
    for (i = 0; i < n; i++) {
        const redisReply *e = r->element[i];

        k[i].effect = 1;
        if (e->type == REDIS_REPLY_INTEGER)
            commit_result(w, &k[i], e->integer);
        else if ((e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_ERROR ||
                  e->type == REDIS_REPLY_STATUS) && effect_error(w, &k[i], e->str))
            return;
    }
}

/* Reply to one commit of a batch. A refused commit (OOM, LOADING, BUSY,
 * MISCONF, NOSCRIPT, a lost group) is never the entry's fault: the
 * connection is reset and the entry, still pending, is recovered and
 * handled again after the backoff. Any other error of a handler's effect
 * (a Lua runtime error, a call refused with WRONGTYPE...) is the effect's
 * fault: it counts as a failed attempt. */
static void on_commit(struct sl_conn *c, redisReply *r, void *priv)
{
    struct commit *k = priv;
    struct batch *b = k->b;
    struct worker *w = b->w;

    (void)c;
    if (r == NULL) {
        b->failed = 1;
    } else if (k->effect == 2) {
        run_reply(w, k, r);
    } else if (r->type == REDIS_REPLY_ERROR) {
        if (k->effect == 1 && !transient(r)) {
            effect_error(w, k, r->str);
        } else {
            b->failed = 1;
            sl__log(SL_LOG_WARN, "commit_refused", "id=%s error=%s",
                    k->effect < 0 ? "(acks)" : k->id, sl__logq(r->str));
            reset(w, r->str);
        }
    } else if (r->type == REDIS_REPLY_INTEGER) {
        if (k->effect < 0)
            count(w, SL_C_ACKED, (uint64_t)r->integer);
        else
            commit_result(w, k, r->integer);
    }
    if (--b->outstanding == 0)
        batch_done(b);
}

/* Sends the commit script (kind "ack", "retry" or "dead") or, when the
 * context declared one, the effect script of one entry. */
static void send_commit(struct worker *w, struct batch *b, struct commit *k,
                        const char *kind, const char *err, int trim)
{
    char nk[16];
    struct sl_ctx *ctx = k->effect == 1 ? k->ctx : NULL;
    int script = ctx != NULL ? ctx->script : -1;
    struct sl_lua *l = script >= 0 ? w->eff[script] : sl__script(SL_SCRIPT_COMMIT);
    int ek = script >= 0 ? ctx->nkeys : 0, ea = script >= 0 ? ctx->nargs : 0;
    int nkeys = SL_FW_KEYS + ek, nargs = SL_FW_ARGS + ea;
    int i, n;

    if (argv_reserve(w, 3 + (size_t)(nkeys + nargs)) < 0) {
        b->failed = 1;
        b->outstanding--;
        reset(w, "out of memory");
        return;
    }
    /* Keys: the framework's, then the effect's; arguments likewise. */
    sl__commit_args_set(&w->ca, k->id, kind, err, trim);
    if (k->least_ms > 0)
        sl__commit_args_least(&w->ca, k->least_ms);
    for (i = 0; i < SL_FW_KEYS; i++) {
        w->kav[i] = w->ca.keys[i];
        w->kalen[i] = strlen(w->ca.keys[i]);
    }
    for (i = 0; i < ek; i++)
        w->kav[SL_FW_KEYS + i] = sl__ctx_effect_arg(ctx, i, &w->kalen[SL_FW_KEYS + i]);
    for (i = 0; i < SL_FW_ARGS; i++) {
        w->kav[nkeys + i] = w->ca.args[i];
        w->kalen[nkeys + i] = strlen(w->ca.args[i]);
    }
    for (i = 0; i < ea; i++)
        w->kav[nkeys + SL_FW_ARGS + i] = sl__ctx_effect_arg(ctx, ek + i,
                                                            &w->kalen[nkeys + SL_FW_ARGS + i]);
    n = sl__script_argv(l, nk, nkeys, w->kav, w->kalen, nargs, w->kav + nkeys,
                        w->kalen + nkeys, w->argv, w->argvlen);
    if (sl__conn_command(w->cmd, on_commit, k, 0, (int)n, w->argv, w->argvlen) < 0) {
        b->failed = 1;
        if (--b->outstanding == 0)
            batch_done(b);
    }
}

/* ------------------------------------------------------------------ */
/* Runs: consecutive effect entries committed in one script call       */
/* ------------------------------------------------------------------ */

/* Returns 1 when stream ID a is lower than b ("ms-seq", both decimal). */
static int id_less(const char *a, const char *b)
{
    unsigned long long ams, aseq = 0, bms, bseq = 0;
    char *end;

    ams = strtoull(a, &end, 10);
    if (*end == '-')
        aseq = strtoull(end + 1, NULL, 10);
    bms = strtoull(b, &end, 10);
    if (*end == '-')
        bseq = strtoull(end + 1, NULL, 10);
    return ams < bms || (ams == bms && aseq < bseq);
}

/* Sends the run in hand as one call of its effect script (effect.lua,
 * kind "run") and empties it. Its commits get one reply (run_reply). */
static void run_flush(struct worker *w, struct batch *b)
{
    struct run *u = &w->run;
    struct commit *k = u->first;
    const char *lo, *hi;
    size_t total, nkeys, nargs, v, pos;
    char nk[16];
    int i, j, n, run_n;

    if (k == NULL)
        return;
    u->first = NULL;
    run_n = u->n;
    u->n = 0;
    /* The fence asks for the ID range of the run: a batch from a claim
     * page need not be in ID order. */
    lo = hi = k[0].id;
    for (i = 1; i < run_n; i++) {
        if (id_less(k[i].id, lo))
            lo = k[i].id;
        if (id_less(hi, k[i].id))
            hi = k[i].id;
    }
    /* At most 45 bytes per entry ("%d %d %lld" and a space), and lay
     * holds 48 per entry of RUN_MAX: snprintf never cuts. */
    pos = 0;
    for (i = 0; i < run_n; i++)
        pos += (size_t)snprintf(u->lay + pos, sizeof(u->lay) - pos, "%s%d %d %lld",
                                i > 0 ? " " : "", u->ent[i].nkeys, u->ent[i].nargs,
                                u->ent[i].least_ms);
    nkeys = SL_FW_KEYS;
    for (i = 0; i < run_n; i++)
        nkeys += (size_t)u->ent[i].nkeys;
    nargs = SL_FW_ARGS + (size_t)run_n + (u->nval - (nkeys - SL_FW_KEYS));
    total = nkeys + nargs;
    if (argv_reserve(w, 3 + total) < 0) {
        u->len = 0;
        u->nval = 0;
        b->failed = 1;
        reset(w, "out of memory");
        return;
    }
    /* Keys: the framework's, then each entry's; arguments: the
     * framework's, then each entry's ID and its own. */
    sl__commit_args_set(&w->ca, lo, "run", hi, 0);
    w->ca.args[8] = u->lay;
    for (i = 0; i < SL_FW_KEYS; i++) {
        w->kav[i] = w->ca.keys[i];
        w->kalen[i] = strlen(w->ca.keys[i]);
    }
    for (i = 0; i < SL_FW_ARGS; i++) {
        w->kav[nkeys + (size_t)i] = w->ca.args[i];
        w->kalen[nkeys + (size_t)i] = strlen(w->ca.args[i]);
    }
    {
        size_t kp = SL_FW_KEYS, ap = nkeys + SL_FW_ARGS;

        v = 0;
        for (i = 0; i < run_n; i++) {
            for (j = 0; j < u->ent[i].nkeys; j++, v++, kp++) {
                w->kav[kp] = u->buf + u->val[v].off;
                w->kalen[kp] = u->val[v].len;
            }
            w->kav[ap] = k[i].id;
            w->kalen[ap++] = strlen(k[i].id);
            for (j = 0; j < u->ent[i].nargs; j++, v++, ap++) {
                w->kav[ap] = u->buf + u->val[v].off;
                w->kalen[ap] = u->val[v].len;
            }
        }
    }
    n = sl__script_argv(w->eff[u->script], nk, (int)nkeys, w->kav, w->kalen, (int)nargs,
                        w->kav + nkeys, w->kalen + nkeys, w->argv, w->argvlen);
    u->len = 0;
    u->nval = 0;
    k->effect = 2;
    k->count = run_n;
    b->outstanding++;
    if (sl__conn_command(w->cmd, on_commit, k, 0, n, w->argv, w->argvlen) < 0) {
        b->failed = 1;
        b->outstanding--;
    }
}

/* Adds the effect declared on w->ctx for commit k (the next record of b
 * after the run's) to the run in hand, copying its keys and arguments
 * out of the context, which the next entry resets. A run is sent first
 * when it is full or its script differs. Returns 0, or -1 when the entry
 * is too large for a run (the caller sends it alone, run sent) or memory
 * ran out (run sent). */
static int run_add(struct worker *w, struct batch *b, struct commit *k)
{
    struct run *u = &w->run;
    const struct sl_ctx *ctx = w->ctx;
    size_t nv = (size_t)(ctx->nkeys + ctx->nargs), i;

    if (u->first != NULL && (u->script != ctx->script || u->n == RUN_MAX ||
                             u->nval + nv > RUN_VALUES_MAX || u->len + ctx->buflen > RUN_BYTES_MAX))
        run_flush(w, b);
    if (nv > RUN_VALUES_MAX || ctx->buflen > RUN_BYTES_MAX)
        return -1;
    if (u->len + ctx->buflen > u->cap) {
        size_t cap = u->cap ? u->cap : 4096;
        char *nb;

        while (cap < u->len + ctx->buflen)
            cap *= 2;
        if ((nb = realloc(u->buf, cap)) == NULL) {
            run_flush(w, b);
            return -1;
        }
        u->buf = nb;
        u->cap = cap;
    }
    if (u->nval + nv > u->valcap) {
        size_t cap = u->valcap ? u->valcap : 256;
        struct run_val *nval;

        while (cap < u->nval + nv)
            cap *= 2;
        if ((nval = realloc(u->val, cap * sizeof(*nval))) == NULL) {
            run_flush(w, b);
            return -1;
        }
        u->val = nval;
        u->valcap = cap;
    }
    /* The context keeps its keys then arguments in one buffer, each with
     * its NUL: one copy, then their places. */
    if (ctx->buflen > 0)
        memcpy(u->buf + u->len, ctx->buf, ctx->buflen);
    for (i = 0; i < nv; i++) {
        u->val[u->nval + i].off = u->len + ctx->offs[i];
        u->val[u->nval + i].len = ((i + 1 < nv) ? ctx->offs[i + 1] : ctx->buflen) - ctx->offs[i] - 1;
    }
    u->len += ctx->buflen;
    u->nval += nv;
    if (u->first == NULL) {
        u->first = k;
        u->script = ctx->script;
    }
    SL_ASSERT(k == u->first + u->n);
    u->ent[u->n].nkeys = ctx->nkeys;
    u->ent[u->n].nargs = ctx->nargs;
    u->ent[u->n].least_ms = k->least_ms;
    u->n++;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Handling a batch                                                    */
/* ------------------------------------------------------------------ */

/* Makes room for n entries. Returns 0 or -1. */
static int ents_reserve(struct worker *w, size_t n)
{
    struct entry *e;

    if (n <= w->entcap)
        return 0;
    e = realloc(w->ents, n * sizeof(*e));
    if (e == NULL)
        return -1;
    w->ents = e;
    w->entcap = n;
    return 0;
}

/* Fills w->fields from a flat reply array. Returns the count, or -1. */
static long fill_fields(struct worker *w, const redisReply *f)
{
    size_t n = f->elements / 2, i;

    if (n > w->fieldcap) {
        struct sl_field *nf = realloc(w->fields, n * sizeof(*nf));
        if (nf == NULL)
            return -1;
        w->fields = nf;
        w->fieldcap = n;
    }
    for (i = 0; i < n; i++) {
        const redisReply *k = f->element[2 * i], *v = f->element[2 * i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return -1;
        w->fields[i].name = k->str;
        w->fields[i].name_len = (size_t)k->len;
        w->fields[i].value = v->str;
        w->fields[i].value_len = (size_t)v->len;
    }
    return (long)n;
}

/* Records a handler's duration in the histogram and for the prefetch
 * bound, and tells both connections that the loop stood still meanwhile
 * (their deadlines count only time in which a reply could be read). */
static void observe(struct worker *w, uint64_t us, int hist)
{
    if (hist)
        sl__slot_observe(w->slot, us);
    w->batch_us += us;
    w->batch_calls++;
    /* Handlers of microseconds add up to a stall worth telling only
     * every millisecond or so: no clock reads per entry for them. */
    w->stall_us += us;
    if (w->stall_us >= STALL_TELL_US) {
        sl__conn_stalled(w->rd, w->stall_us);
        sl__conn_stalled(w->cmd, w->stall_us);
        w->stall_us = 0;
    }
}

/* After a batch: folds its mean handler time per entry into the smoothed
 * one that read_count() bounds the prefetch with. Half old, half new, so
 * a handler that turns slow is seen after one batch. */
static void measure_time(struct worker *w)
{
    uint64_t mean;

    if (w->batch_calls == 0)
        return;
    mean = w->batch_us / w->batch_calls;
    if (mean == 0)
        mean = 1;
    w->handler_us = w->handler_us == 0 ? mean : (w->handler_us + mean) / 2;
    if (w->handler_us == 0)
        w->handler_us = 1;
    w->batch_us = 0;
    w->batch_calls = 0;
}

/* Decides one entry: the checks that come before the handler (delivery
 * limits, then the dead-letter table via sl__msg_prepare), then the handler.
 * Returns the disposition; the context holds the error and effect. */
static enum sl_disposition decide(struct worker *w, struct entry *e,
                                  struct sl_msg *msg, int *trim)
{
    long long backstop = 4 * w->t->max_deliveries + 10;
    enum sl_disposition d;
    struct timespec t0, t1;
    long nf;

    *trim = 0;
    if (e->attempts >= w->t->max_deliveries)
        return sl_ctx_fail(w->ctx, SL_DEAD, "max_deliveries_exceeded", "%s",
                           e->why[0] ? e->why : "attempts exhausted");
    if (e->deliveries > backstop)
        return sl_ctx_fail(w->ctx, SL_DEAD, "max_deliveries_exceeded",
                           "delivered %lld times", e->deliveries);
    nf = fill_fields(w, e->fields);
    if (nf < 0)
        return sl_ctx_fail(w->ctx, SL_DEAD, "invalid_encoding", "%s",
                           "unreadable fields");
    msg->id = w->slot->cur_id;
    msg->stream = w->wc->stream;
    msg->fields = w->fields;
    msg->nfields = (size_t)nf;
    msg->deliveries = e->deliveries;
    msg->attempts = (int)e->attempts;
    msg->data = NULL;
    w->ctx->data_left = (size_t)e->data_left;
    if (sl__msg_prepare(w->ctx, msg, w->t, (w->h->flags & SL_HANDLER_RAW) != 0,
                        w->types, w->t->message_ttl_ms > 0 ? sl__wall_ms() : 0) < 0) {
        *trim = w->ctx->dead_trim_fields;
        return SL_DEAD;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    w->ctx->phase = SL_PHASE_HANDLE;
    d = sl_handler_call(w->h, w->ctx, msg, w->priv);
    w->ctx->phase = SL_PHASE_IDLE;
    /* A completion made while `handle` ran stands for what it returned. */
    if (d == SL_PENDING && w->ctx->early != 0)
        d = (enum sl_disposition)(w->ctx->early - 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    w->clock_ms = (uint64_t)t1.tv_sec * 1000u + (uint64_t)t1.tv_nsec / 1000000u;
    /* An entry in progress is timed when it completes: only the loop's
     * stall is told now, not a handler duration. */
    observe(w, (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000LL +
                          (t1.tv_nsec - t0.tv_nsec) / 1000), d != SL_PENDING);
    if (msg->data != NULL)
        json_decref(msg->data);
    if (d != SL_ACK && d != SL_RETRY && d != SL_DEAD && d != SL_PENDING)
        return sl_ctx_fail(w->ctx, SL_DEAD, "handler_error",
                           "handle returned %d", (int)d);
    if (d == SL_RETRY && w->ctx->err[0] == '\0')
        sl_ctx_fail(w->ctx, SL_RETRY, "handler_retry", NULL);
    if (d == SL_DEAD && w->ctx->err[0] == '\0')
        sl_ctx_fail(w->ctx, SL_DEAD, "handler_dead", NULL);
    return d;
}

/* Makes room for n plain acks after the three fixed XACK arguments. */
static int ackv_reserve(struct worker *w, size_t n)
{
    const char **a;
    size_t *l;

    if (n + 3 <= w->ackcap)
        return 0;
    a = realloc(w->ackv, (n + 3) * sizeof(*a));
    if (a == NULL)
        return -1;
    w->ackv = a;
    l = realloc(w->acklen, (n + 3) * sizeof(*l));
    if (l == NULL)
        return -1;
    w->acklen = l;
    w->ackcap = n + 3;
    return 0;
}

/* Handles n entries of w->ents and sends their outcomes pipelined: one
 * EVALSHA per run of consecutive effects of one script (run_add) and per
 * retry or dead letter, in stream order, then one XACK for every entry
 * that was simply done. The entries point into a reply that stays valid
 * until this returns. */
static void handle_batch(struct worker *w, size_t n)
{
    struct batch *b;
    struct sl_msg msg;
    size_t i, nplain = 0;
    int trim;

    if (n == 0)
        return;
    b = calloc(1, sizeof(*b) + (n + 1) * sizeof(b->c[0]));
    if (b == NULL || ackv_reserve(w, n) < 0) {
        free(b);
        reset(w, "out of memory");
        return;
    }
    b->w = w;
    b->outstanding = 1;             /* held until every command is sent */
    w->commit_batches++;

    sl__slot_begin(w->slot);
    copy_id(w->slot->first_id, w->ents[0].id);
    copy_id(w->slot->last_id, w->ents[n - 1].id);
    w->slot->batch_started_ms = w->clock_ms = sl__now_ms();
    w->slot->batch_len = (uint32_t)n;
    sl__slot_end(w->slot);

    for (i = 0; i < n; i++) {
        struct entry *e = &w->ents[i];
        struct commit *k;
        enum sl_disposition d;

        if (stop_signalled)
            w->stopping = 1;
        /* The rest stays pending, recovered later. A read-ahead batch is
         * finished only while it stays as fast as the batch that let it
         * be read: that read may have blocked and brought slow entries
         * that came later, and a stop finishes the entry in hand, not
         * seconds of handlers more. */
        if (w->stopping && (!w->finish_batch ||
                            w->clock_ms - w->slot->batch_started_ms >= READ_AHEAD_MAX_US / 1000))
            break;
        /* Own entries claimed again while their async handler still
         * runs (recovery after a reconnect) are that handler's. */
        if ((w->ninflight > 0 || w->abatches != NULL) && in_flight(w, e->id))
            continue;
        if (full(w)) {
            /* An async handler holds `concurrency` entries: the rest stays
             * pending for this consumer, swept up as entries complete. */
            w->own_left = 1;
            break;
        }
        if (take_spare(w) < 0) {
            reset(w, "out of memory");
            break;
        }
        count(w, SL_C_PROCESSED, 1);
        if (e->fields->type != REDIS_REPLY_ARRAY) {
            /* Trimmed or deleted while pending: ack, count, never handle. */
            count(w, SL_C_DELETED, 1);
            w->ackv[3 + nplain] = e->id->str;
            w->acklen[3 + nplain] = (size_t)e->id->len;
            nplain++;
            continue;
        }
        sl__ctx_reset(w->ctx);
        sl__slot_begin(w->slot);
        copy_id(w->slot->cur_id, e->id);
        /* The last clock reading (the batch's start or the previous
         * handler's end) is at most microseconds old: one clock read
         * less per entry. */
        w->slot->cur_started_ms = w->clock_ms;
        sl__slot_end(w->slot);
        d = decide(w, e, &msg, &trim);
        if (d == SL_PENDING)
            go_pending(w, e);   /* before cur_id clears: the entry is never unlisted */
        sl__slot_begin(w->slot);
        w->slot->cur_id[0] = '\0';
        sl__slot_end(w->slot);
        sl__tc_add(w->tc, e->fields, w->tc_fresh, d != SL_RETRY && d != SL_PENDING);
        if (d == SL_PENDING)
            continue;

        if (d == SL_ACK && w->ctx->script < 0 && e->attempts == 0) {
            w->ackv[3 + nplain] = e->id->str;
            w->acklen[3 + nplain] = (size_t)e->id->len;
            nplain++;
            continue;
        }
        k = &b->c[b->n++];
        k->b = b;
        k->ctx = w->ctx;
        copy_id(k->id, e->id);
        k->least_ms = w->ctx->retry_after_ms;
        if (d == SL_ACK && w->ctx->script >= 0) {
            /* Consecutive effects of one script go in one call, in stream
             * order (an order's creation and its payment result may sit
             * in one batch); anything else sends the run first. */
            k->effect = 1;
            snprintf(k->err, sizeof(k->err), "see the dead-letter entry (decided by the effect)");
            if (run_add(w, b, k) == 0)
                continue;
            b->outstanding++;
            send_commit(w, b, k, "ack", "", 0);
        } else if (d == SL_ACK) {
            run_flush(w, b);
            b->outstanding++;
            k->effect = 0;
            snprintf(k->err, sizeof(k->err), "see the dead-letter entry (decided by the effect)");
            send_commit(w, b, k, "ack", "", 0);
        } else {
            run_flush(w, b);
            b->outstanding++;
            k->effect = 0;
            if (d == SL_DEAD)
                sl__log(SL_LOG_DEBUG, "dead_letter_decided", "id=%s error=%s", k->id,
                        sl__logq(w->ctx->err));
            /* A retry that used up the attempts comes back dead. */
            snprintf(k->err, sizeof(k->err), "%s%.120s",
                     d == SL_RETRY ? "max_deliveries_exceeded: " : "", w->ctx->err);
            send_commit(w, b, k, d == SL_RETRY ? "retry" : "dead", w->ctx->err, trim);
        }
    }
    run_flush(w, b);
    if (nplain > 0) {
        struct commit *p = &b->c[b->n++];
        p->b = b;
        p->effect = -1;
        p->count = (int)nplain;
        w->ackv[0] = "XACK";
        w->acklen[0] = 4;
        w->ackv[1] = w->wc->stream;
        w->acklen[1] = strlen(w->wc->stream);
        w->ackv[2] = w->wc->group;
        w->acklen[2] = strlen(w->wc->group);
        b->outstanding++;
        if (sl__conn_command(w->cmd, on_commit, p, 0, (int)(3 + nplain),
                             w->ackv, w->acklen) < 0) {
            b->failed = 1;
            b->outstanding--;
        }
    }
    sl__slot_begin(w->slot);
    w->slot->first_id[0] = '\0';
    w->slot->batch_len = 0;
    sl__slot_end(w->slot);
    measure_time(w);
    sl__tc_flush(w->tc, w->cmd, 0);
    if (--b->outstanding == 0)
        batch_done(b);
}

/* ------------------------------------------------------------------ */
/* Async entries: in flight after `handle` returned SL_PENDING         */
/* ------------------------------------------------------------------ */

/* Links ctx at the head of a list. */
static void ctx_push(struct sl_ctx **head, struct sl_ctx *ctx)
{
    ctx->prev = NULL;
    ctx->next = *head;
    if (*head != NULL)
        (*head)->prev = ctx;
    *head = ctx;
}

/* Unlinks ctx from the list it is in. */
static void ctx_unlink(struct sl_ctx **head, struct sl_ctx *ctx)
{
    if (ctx->prev != NULL)
        ctx->prev->next = ctx->next;
    else
        *head = ctx->next;
    if (ctx->next != NULL)
        ctx->next->prev = ctx->prev;
    ctx->next = ctx->prev = NULL;
}

/* Frees every context of a list. */
static void ctx_free_list(struct sl_ctx *head)
{
    struct sl_ctx *n;

    for (; head != NULL; head = n) {
        n = head->next;
        sl__ctx_free(head);
    }
}

/* Makes sure a spare context waits for the next entry, so that handing
 * the current one to an async entry never fails half-way. A blocking
 * handler allocates it once and never uses it. Returns 0, or -1 when
 * memory ran out. */
static int take_spare(struct worker *w)
{
    struct sl_ctx *c;

    if (w->spare != NULL)
        return 0;
    if ((c = sl__ctx_new(w->h)) == NULL)
        return -1;
    c->base = w->base;
    c->owner = w;
    c->complete = complete;
    w->spare = c;
    return 0;
}

/* Returns a finished context to the spares. The spares never outnumber
 * the most contexts ever in use at once (concurrency, plus the abandoned
 * ones, plus the one in hand), so nothing grows without bound. */
static void ctx_release(struct worker *w, struct sl_ctx *ctx)
{
    sl__ctx_reset(ctx);
    ctx->phase = SL_PHASE_IDLE;
    ctx->id[0] = '\0';
    ctx_push(&w->spare, ctx);
}

/* Tells whether an async handler has `concurrency` entries in flight:
 * then nothing more is read, claimed or handled. Before the handler
 * first returns SL_PENDING, a blocking handler's reads are unbounded by
 * it (its entries are in flight only while `handle` runs). */
static int full(const struct worker *w)
{
    return w->async_seen &&
           w->ninflight + w->reserved_read + w->reserved_claim >= w->t->concurrency;
}

/* Tells whether the entry `id` is in flight in this process: its async
 * handler runs, or its commit awaits the reply. The second matters
 * because a claim page sent while the handler ran answers before the
 * commit sent after it (one connection, in order): the page still lists
 * the entry, which is done here all the same. */
static int in_flight(const struct worker *w, const redisReply *id)
{
    const struct sl_ctx *c;
    const struct batch *b;

    for (c = w->inflight; c != NULL; c = c->next)
        if ((size_t)id->len == strlen(c->id) && memcmp(c->id, id->str, (size_t)id->len) == 0)
            return 1;
    for (b = w->abatches; b != NULL; b = b->anext)
        if ((size_t)id->len == strlen(b->c[0].id) &&
            memcmp(b->c[0].id, id->str, (size_t)id->len) == 0)
            return 1;
    return 0;
}

/* `handle` returned SL_PENDING for e: the context now belongs to the
 * entry until its completion, and a spare one (take_spare() made sure
 * of it) serves the next entry. The entry is listed in the slot before
 * cur_id is cleared, so a crash at any moment finds it. */
static void go_pending(struct worker *w, const struct entry *e)
{
    struct sl_ctx *c = w->ctx;
    uint64_t now = sl__now_ms();

    sl__slot_copy_id(c->id, e->id->str, (size_t)e->id->len);
    c->attempts = e->attempts;
    c->started_ms = now;
    c->renewed_ms = now;
    c->phase = SL_PHASE_PENDING;
    ctx_push(&w->inflight, c);
    w->ninflight++;
    sl__slot_inflight_add(w->slot, c->id);
    w->async_seen = 1;
    w->ctx = w->spare;
    ctx_unlink(&w->spare, w->ctx);
}

/* Takes ctx out of the list in flight (and the slot's). */
static void unlist(struct worker *w, struct sl_ctx *ctx)
{
    ctx_unlink(&w->inflight, ctx);
    w->ninflight--;
    sl__slot_inflight_del(w->slot, ctx->id);
}

/* The serial recovery waits for nothing now: page on, or start running. */
static void recover_resume(struct worker *w)
{
    if (!w->recover_wait || w->ninflight > 0 || w->state != W_RECOVER)
        return;
    w->recover_wait = 0;
    if (w->recover_next[0] != '\0' && !w->stopping)
        claim_next(w, CLAIM_OWN, w->recover_next);
    else
        go_run(w);
}

/* Sends the commit of one async entry in a batch of its own: kind "ack"
 * (with ctx's effect when declared), "retry" or "dead" with err. The
 * effect's keys and arguments are copied into the command before this
 * returns, so ctx may be released afterwards. */
static void commit_one(struct worker *w, struct sl_ctx *ctx, const char *kind, const char *err)
{
    struct batch *b = calloc(1, sizeof(*b) + sizeof(b->c[0]));
    struct commit *k;

    if (b == NULL) {
        /* The entry stays pending and is handled again after the reset's
         * recovery. */
        reset(w, "out of memory");
        return;
    }
    b->w = w;
    b->outstanding = 2;             /* the command, and this function's hold */
    b->n = 1;
    b->async = 1;
    b->anext = w->abatches;
    if (w->abatches != NULL)
        w->abatches->aprev = b;
    w->abatches = b;
    w->commit_batches++;
    k = &b->c[0];
    k->b = b;
    k->ctx = ctx;
    snprintf(k->id, sizeof(k->id), "%s", ctx->id);
    k->least_ms = ctx->retry_after_ms;
    if (strcmp(kind, "ack") == 0) {
        k->effect = ctx->script >= 0 ? 1 : 0;
        snprintf(k->err, sizeof(k->err), "see the dead-letter entry (decided by the effect)");
    } else {
        k->effect = 0;
        snprintf(k->err, sizeof(k->err), "%s%.120s",
                 strcmp(kind, "retry") == 0 ? "max_deliveries_exceeded: " : "", err);
    }
    send_commit(w, b, k, kind, err, 0);
    if (--b->outstanding == 0)
        batch_done(b);
}

/* Completes an async entry (sl_ctx_complete(), through ctx->complete):
 * commits it as a blocking handler's entry would be, or discards the completion of an entry that
 * was abandoned at its timeout. That entry's failed attempt is already
 * recorded, and it may be running again here or elsewhere: a late
 * completion must change nothing. */
static int complete(struct sl_ctx *ctx, enum sl_disposition d)
{
    struct worker *w = ctx->owner;

    if (w == NULL)
        return SL_EINVAL;
    if (ctx->phase == SL_PHASE_ABANDONED || w->exiting) {
        if (ctx->phase == SL_PHASE_ABANDONED) {
            ctx_unlink(&w->abandoned, ctx);
            count(w, SL_C_DISCARDED, 1);
            sl__log(SL_LOG_INFO, "commit_discarded", "id=%s reason=late_completion", ctx->id);
        } else {
            unlist(w, ctx);
        }
        ctx_release(w, ctx);
        return SL_ERR;
    }
    unlist(w, ctx);
    sl__slot_observe(w->slot, (sl__now_ms() - ctx->started_ms) * 1000u);
    if (d == SL_RETRY && ctx->err[0] == '\0')
        sl_ctx_fail(ctx, SL_RETRY, "handler_retry", NULL);
    if (d == SL_DEAD && ctx->err[0] == '\0')
        sl_ctx_fail(ctx, SL_DEAD, "handler_dead", NULL);
    commit_one(w, ctx, d == SL_ACK ? "ack" : d == SL_RETRY ? "retry" : "dead", ctx->err);
    if (d != SL_RETRY)
        sl__tc_done(w->tc, ctx->type);
    ctx_release(w, ctx);
    recover_resume(w);
    maybe_exit(w);
    return 0;
}

/* Reply to a lease renewal: a failure is harmless, the next tick renews
 * again, and a lost connection is handled elsewhere. */
static void on_renewed(struct sl_conn *c, redisReply *r, void *priv)
{
    (void)c;
    (void)r;
    (void)priv;
}

/* Renews the lease of one entry in flight: renew.lua resets its idle time
 * only while it is still pending for this consumer. */
static void renew_one(struct worker *w, struct sl_ctx *ctx)
{
    const char *keys[] = { w->wc->stream };
    const char *args[] = { w->wc->group, w->consumer, ctx->id, ctx->id, "1" };
    const char *argv[3 + SL_NELEM(keys) + SL_NELEM(args)];
    size_t argvlen[SL_NELEM(argv)];
    char nk[16];
    int argc;

    argc = sl__script_argv(sl__script(SL_SCRIPT_RENEW), nk, (int)SL_NELEM(keys), keys, NULL,
                           (int)SL_NELEM(args), args, NULL, argv, argvlen);
    sl__conn_command(w->cmd, on_renewed, w, 0, argc, argv, argvlen);
}

/* Timer: the loop is answering (the supervisor kills a process whose
 * loop stands still while entries are in flight); each entry in flight
 * gets its lease renewed every reclaim_idle_ms / 3, as the supervisor
 * renews a blocking handler's batch; an entry past handler_timeout_ms is
 * abandoned as a failed attempt ("handler_timeout"), which frees its
 * place, and its late completion is discarded. The process goes on: its
 * loop answered, so nothing else is at fault. */
static void on_inflight_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t now = sl__now_ms();
    uint64_t every = (uint64_t)(w->t->reclaim_idle_ms / 3 > 0 ? w->t->reclaim_idle_ms / 3 : 1);
    struct sl_ctx *c, *n;
    int ready = (w->state == W_RUN || w->state == W_RECOVER) && sl__conn_ready(w->cmd);

    (void)fd;
    (void)what;
    __atomic_store_n(&w->slot->loop_ms, now, __ATOMIC_RELAXED);
    for (c = w->inflight; c != NULL; c = n) {
        n = c->next;
        if (now - c->started_ms > (uint64_t)w->t->handler_timeout_ms) {
            char err[SL_ERRLEN];

            if (!ready)
                continue;       /* recorded once Redis answers again */
            snprintf(err, sizeof(err), "handler_timeout: no completion within %lld ms",
                     w->t->handler_timeout_ms);
            sl__log(SL_LOG_WARN, "handler_timeout", "id=%s timeout_ms=%lld", c->id,
                    w->t->handler_timeout_ms);
            unlist(w, c);
            c->phase = SL_PHASE_ABANDONED;
            ctx_push(&w->abandoned, c);
            commit_one(w, c, "retry", err);
            recover_resume(w);
            maybe_exit(w);
        } else if (ready && now - c->renewed_ms >= every) {
            c->renewed_ms = now;
            renew_one(w, c);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

/* Returns the bytes an entry's fields hold in a reply (names and values),
 * 0 for the NIL of a deleted entry. */
static long long entry_size(const redisReply *fields)
{
    long long n = 0;
    size_t i;

    if (fields->type != REDIS_REPLY_ARRAY)
        return 0;
    for (i = 0; i < fields->elements; i++)
        if (fields->element[i]->type == REDIS_REPLY_STRING)
            n += (long long)fields->element[i]->len;
    return n;
}

/* Returns the COUNT of the next read or claim page: this function is the
 * one place that decides it. Two bounds apply, then `batch`:
 *
 * Time (no hoarding). What a process reads it holds until handled, out
 * of reach of an idle peer, so a read brings at most PREFETCH_US of
 * handler time at the measured time per entry: 1 entry at a time for a
 * 1.5 s handler, so a burst spreads over every process; a whole `batch`
 * for a handler of microseconds, which keeps its throughput. Until a
 * handler has run there is no measure, and the count stays 1: a pool that
 * sat idle must not take a burst whole with its first read.
 *
 * Memory. One reply holds COUNT whole entries, and hiredis keeps all of
 * them until the batch is handled, so `batch` entries of 32 MB each would
 * be 2 GB. The count doubles with every reply up to `batch`, but never
 * beyond what keeps the entries of one reply, at the size of the largest
 * entry of the last reply, within READ_BUDGET_PAYLOADS x
 * max_payload_bytes. What that bounds, honestly: with entries up to
 * max_payload_bytes (plus small other fields) a reply holds about 2 x
 * max_payload_bytes, and hiredis's buffer at most one entry more. Claims
 * never bring a `data` over max_payload_bytes (the script leaves it in
 * Redis), but a read cannot leave one behind: one such entry, up to
 * Redis's 512 MB, is held whole, once, before the count drops to 1. And a
 * sudden jump in entry size can still bring up to `batch` entries of the
 * new size in one reply.
 *
 * Backlog. `batch` left at its default (64) is not a limit the user
 * chose: while reads come back full, a deep backlog is waiting, and a
 * read (not a claim page) may grow on to GROWN_READ, within both bounds
 * above. 64 entries per round trip cost Redis about 1.6 times the CPU
 * per entry of 500, and a process drained a backlog at two thirds of the
 * rate of a client reading 500 at a time. The first read that is not
 * full brings the limit back to `batch`. An explicit `batch` is always
 * the largest COUNT. */
static long long read_count(struct worker *w, int reading)
{
    long long budget = READ_BUDGET_PAYLOADS * w->t->max_payload_bytes;
    long long n = w->read_n > 0 ? 2 * w->read_n : 1;
    long long most = w->t->batch;

    if (w->handler_us == 0)
        n = 1;
    else if ((uint64_t)n > PREFETCH_US / w->handler_us)
        n = (long long)(PREFETCH_US / w->handler_us);
    if (w->entry_bytes > 0 && n > budget / w->entry_bytes)
        n = budget / w->entry_bytes;
    if (reading && w->read_full && !w->t->batch_set && most < GROWN_READ)
        most = GROWN_READ;
    if (n > most)
        n = most;
    /* An async handler's entries stay in flight after `handle`: a read
     * brings no more than the places left. A serial recovery takes one
     * entry at a time. */
    if (w->async_seen &&
        n > w->t->concurrency - w->ninflight - w->reserved_read - w->reserved_claim)
        n = w->t->concurrency - w->ninflight - w->reserved_read - w->reserved_claim;
    if (w->serial && w->state == W_RECOVER)
        n = 1;
    if (n < 1)
        n = 1;
    w->read_n = n;
    return n;
}

/* Remembers the largest of the n entries in w->ents, for read_count().
 * A `data` the claim script left in Redis counts too: the size describes
 * the stream's entries, which the next read would bring whole. */
static void measure(struct worker *w, size_t n)
{
    long long big = 0, b;
    size_t i;

    if (n == 0)
        return;
    for (i = 0; i < n; i++)
        if ((b = entry_size(w->ents[i].fields) + w->ents[i].data_left) > big)
            big = b;
    w->entry_bytes = big;
}

/* Reply to XREADGROUP ... >. */
static void on_read(struct sl_conn *c, redisReply *r, void *priv)
{
    struct worker *w = priv;
    const redisReply *list;
    struct timespec t0, t1;
    size_t i, n = 0;
    int ahead = w->read_ahead;

    (void)c;
    w->reading = 0;
    w->read_ahead = 0;
    w->reserved_read = 0;
    w->unblocking = 0;
    if (r == NULL)
        return;                    /* the lost-connection path takes over */
    if (r->type == REDIS_REPLY_ERROR) {
        if (group_lost(r))
            sl__log(SL_LOG_WARN, "group_lost", "stream=%s group=%s error=%s",
                    sl__logq(w->wc->stream), sl__logq(w->wc->group), sl__logq(r->str));
        reset(w, r->str);
        return;
    }
    if (r->type == REDIS_REPLY_NIL) {
        w->fails = 0;               /* a quiet, healthy round trip */
        w->read_full = 0;
        /* A sweep that was waiting for this read's places goes first
         * (sweep_pump unblocked the read for it). */
        sweep_pump(w);
        read_next(w);
        maybe_exit(w);
        return;
    }
    /* [[stream, [[id, fields], ...]]] */
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements < 2 ||
        r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
        reset(w, "unexpected XREADGROUP reply");
        return;
    }
    list = r->element[0]->element[1];
    w->read_full = list->elements >= (size_t)w->read_sent;
    if (ents_reserve(w, list->elements) < 0) {
        reset(w, "out of memory");
        return;
    }
    for (i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        w->ents[n].id = e->element[0];
        w->ents[n].fields = e->element[1];
        w->ents[n].deliveries = 1;
        w->ents[n].attempts = 0;
        w->ents[n].why = "";
        w->ents[n].data_left = 0;
        n++;
    }
    measure(w, n);
    /* Read ahead: after a full batch more entries are probably waiting, so
     * the next read is written at once, before this batch is handled, and
     * Redis serves it while the handler runs. Still at most one read is in
     * flight, so BLOCK, the deadline and CLIENT UNBLOCK work as before.
     * Only after a batch that was handled fast: for a slow handler it gains
     * nothing, and a stop must then find nothing read that is not in hand.
     * A read-ahead batch that arrives after a stop is finished while it
     * stays fast (handle_batch), so a graceful stop under a fast load
     * leaves nothing pending. */
    /* Not for an async handler: the batch in hand is about to take its
     * places, which a read sent now would not know of. */
    if (n > 0 && w->ahead_ok && !w->stopping && !stop_signalled && !w->async_seen &&
        list->elements >= (size_t)w->t->batch) {
        read_next(w);
        if (w->reading) {
            w->read_ahead = 1;
            sl__conn_flush(w->rd);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    w->finish_batch = ahead;
    w->tc_fresh = 1;
    handle_batch(w, n);
    w->tc_fresh = 0;
    w->finish_batch = 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    w->ahead_ok = (t1.tv_sec - t0.tv_sec) * 1000000LL + (t1.tv_nsec - t0.tv_nsec) / 1000 <
                  READ_AHEAD_MAX_US;
    read_next(w);
    maybe_exit(w);
}

/* Issues the next blocking read unless one is in flight, the worker is
 * stopping, or too many commits are still unanswered (back-pressure). */
static void read_next(struct worker *w)
{
    char count_s[24], block_s[24];
    const char *argv[] = { "XREADGROUP", "GROUP", w->wc->group, w->consumer,
                           "COUNT", count_s, "BLOCK", block_s,
                           "STREAMS", w->wc->stream, ">" };

    if (w->state != W_RUN || w->reading || w->stopping || stop_signalled || full(w) ||
        w->commit_batches >= MAX_COMMIT_BATCHES || !sl__conn_ready(w->rd))
        return;
    long long n = read_count(w, 1);

    w->read_sent = n;
    snprintf(count_s, sizeof(count_s), "%lld", n);
    snprintf(block_s, sizeof(block_s), "%lld", w->t->block_ms);
    if (sl__conn_command(w->rd, on_read, w, w->t->block_ms + w->cfg->command_timeout_ms,
                         11, argv, NULL) == 0) {
        w->reading = 1;
        /* What this read brings must find a place: a claim or another
         * read sent meanwhile counts without it. */
        w->reserved_read = w->async_seen ? n : 0;
    }
}

/* ------------------------------------------------------------------ */
/* Claims: recovery, due retries, reclaim                              */
/* ------------------------------------------------------------------ */

/* Reply to the claim script: {next, deleted, {{id, deliveries, attempts,
 * why, fields}...}}. Handles what was claimed, then pages on. */
static void on_claim(struct sl_conn *c, redisReply *r, void *priv)
{
    struct worker *w = priv;
    const redisReply *list;
    char next[SL_IDLEN + 2] = "";
    size_t i, n = 0;
    int mode = w->claim_mode;

    (void)c;
    w->claiming = 0;
    w->reserved_claim = 0;
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        reset(w, r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[2]->type != REDIS_REPLY_ARRAY) {
        reset(w, "unexpected claim reply");
        return;
    }
    if (r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len > 0)
        snprintf(next, sizeof(next), "%.*s", (int)r->element[0]->len, r->element[0]->str);
    if (r->element[1]->type == REDIS_REPLY_INTEGER && r->element[1]->integer > 0) {
        count(w, SL_C_DELETED, (uint64_t)r->element[1]->integer);
        sl__log(SL_LOG_INFO, "deleted_pending", "count=%lld", r->element[1]->integer);
    }
    list = r->element[2];
    if (ents_reserve(w, list->elements) < 0) {
        reset(w, "out of memory");
        return;
    }
    for (i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];
        /* An entry of another shape is skipped: it stays pending, and is
         * neither handled nor acked on counts that were not read. */
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 6 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_INTEGER ||
            e->element[5]->type != REDIS_REPLY_INTEGER)
            continue;
        w->ents[n].id = e->element[0];
        w->ents[n].deliveries = e->element[1]->integer;
        w->ents[n].attempts = e->element[2]->integer;
        w->ents[n].why = e->element[3]->type == REDIS_REPLY_STRING ? e->element[3]->str : "";
        w->ents[n].fields = e->element[4];
        /* The script only ever leaves a `data` over max_payload_bytes
         * behind; anything else would be judged on the "" it sent. */
        w->ents[n].data_left = e->element[5]->integer > w->t->max_payload_bytes ?
                               e->element[5]->integer : 0;
        n++;
    }
    measure(w, n);
    if (mode == CLAIM_ANY && n > 0) {
        count(w, SL_C_RECLAIMED, n);
        sl__log(SL_LOG_INFO, "reclaimed", "count=%zu", n);
    }
    handle_batch(w, n);
    if (w->state == W_DOWN)
        return;
    if (mode == CLAIM_OWN && w->state == W_RECOVER && w->serial && w->ninflight > 0) {
        /* Suspects of a crash go one at a time: the next page (or RUN)
         * waits until the entry in flight completes. */
        snprintf(w->recover_next, sizeof(w->recover_next), "%s", next);
        w->recover_wait = 1;
        maybe_exit(w);
        return;
    }
    if (mode != CLAIM_OWN) {
        sweep_paged(w, mode, next);
    } else if (next[0] != '\0' && !w->stopping && !(w->state == W_RUN && full(w))) {
        claim_next(w, CLAIM_OWN, next);
        return;
    } else if (w->state == W_RECOVER) {
        go_run(w);
    } else if (next[0] != '\0') {
        w->own_left = 1;        /* full again: the sweep starts over later */
    }
    sweep_pump(w);
    /* The places this claim held are free again (an async handler's read
     * waits for them when the sweep went first). */
    if (w->state == W_RUN && !w->reading)
        read_next(w);
    maybe_exit(w);
}

/* Recovery is over: read new entries. A serial recovery has let every
 * suspect run alone, so the supervisor's mark is cleared. */
static void go_run(struct worker *w)
{
    w->state = W_RUN;
    if (w->serial) {
        w->serial = 0;
        __atomic_store_n(&w->slot->serial, 0, __ATOMIC_RELAXED);
        sl__log(SL_LOG_INFO, "suspects_cleared", NULL);
    }
    sl__slot_set_redis_up(w->slot, 1);
    sl__log(SL_LOG_INFO, "running", "stream=%s group=%s",
            sl__logq(w->wc->stream), sl__logq(w->wc->group));
    read_next(w);
    sweep_pump(w);
    maybe_exit(w);
}

/* Sends one page of the claim script in `mode` from `start`. */
static void claim_next(struct worker *w, int mode, const char *start)
{
    char minidle[24], cnt[24];
    const char *name = mode == CLAIM_OWN ? "own" : mode == CLAIM_RETRY ? "retry" : "any";
    char maxp[24];
    const char *keys[] = { w->wc->stream, w->ca.akey };
    const char *args[] = { w->wc->group, w->consumer, name, minidle, start, cnt, maxp };
    const char *argv[3 + SL_NELEM(keys) + SL_NELEM(args)];
    size_t argvlen[SL_NELEM(argv)];
    char nk[16];
    int argc;

    snprintf(minidle, sizeof(minidle), "%lld",
             mode == CLAIM_ANY ? w->t->reclaim_idle_ms : 0LL);
    long long n = read_count(w, 0);

    snprintf(cnt, sizeof(cnt), "%lld", n);
    snprintf(maxp, sizeof(maxp), "%lld", w->t->max_payload_bytes);
    w->claim_mode = mode;
    if (mode != CLAIM_OWN)
        w->last_mode = mode;
    argc = sl__script_argv(sl__script(SL_SCRIPT_CLAIM), nk, (int)SL_NELEM(keys), keys, NULL,
                           (int)SL_NELEM(args), args, NULL, argv, argvlen);
    if (sl__conn_command(w->cmd, on_claim, w, 0, argc, argv, argvlen) == 0) {
        w->claiming = 1;
        w->reserved_claim = w->async_seen ? n : 0;
    }
}

/* Records where the sweep in `mode` goes on after a page: at `next`, or
 * nowhere ("") when the page reached the end of the pending list. A sweep
 * goes on for as long as it finds pending entries, not for a fixed number
 * of pages, so a backlog of any size left by a dead peer is reclaimed in
 * one pass; what bounds it is time. After SWEEP_SLICE_MS of paging it
 * rests SWEEP_REST_MS, during which reads, their commits and the other
 * mode's sweep have the command connection to themselves, then goes on
 * from its cursor. */
static void sweep_paged(struct worker *w, int mode, const char *next)
{
    struct sweep *s = &w->sw[mode];
    uint64_t now = sl__now_ms();
    struct timeval tv = { 0, SWEEP_REST_MS * 1000 };

    snprintf(s->cursor, sizeof(s->cursor), "%s", next);
    if (next[0] != '\0' && now - s->slice_ms >= SWEEP_SLICE_MS) {
        s->rest_until_ms = now + SWEEP_REST_MS;
        s->slice_ms = s->rest_until_ms;
        event_add(w->pump_ev, &tv);
    }
}

/* Reply to CLIENT UNBLOCK: nothing to do, the read returns by itself. */
static void on_unblock(struct sl_conn *c, redisReply *r, void *priv)
{
    (void)c;
    (void)r;
    (void)priv;
}

/* Tells whether a sweep waits to send a page: its timer fired, it has a
 * page to go on from (and is not resting), or a full batch left own
 * entries unhandled. */
static int sweep_waiting(const struct worker *w)
{
    uint64_t now = sl__now_ms();
    int m;

    if (w->own_left)
        return 1;
    for (m = CLAIM_RETRY; m <= CLAIM_ANY; m++)
        if (w->sw[m].wanted || (w->sw[m].cursor[0] != '\0' && now >= w->sw[m].rest_until_ms))
            return 1;
    return 0;
}

/* An async handler's blocked read holds every place left (it reads as
 * many entries as there are places), so a sweep could never start while
 * the stream is quiet: the read blocks for block_ms and the next one is
 * sent the moment it returns. Due retries of an idle webhook worker then
 * waited for new traffic, for ever. So when a sweep waits and only the
 * read's reservation is in the way, the read is ended at once with
 * CLIENT UNBLOCK; its NIL reply pumps the sweep before the next read. */
static void unblock_for_sweep(struct worker *w)
{
    char id[24];
    const char *argv[] = { "CLIENT", "UNBLOCK", id };

    if (!w->reading || w->unblocking || w->reader_id <= 0 || w->read_ahead ||
        w->ninflight + w->reserved_claim >= w->t->concurrency || !sweep_waiting(w))
        return;
    snprintf(id, sizeof(id), "%lld", w->reader_id);
    if (sl__conn_command(w->cmd, on_unblock, w, 0, 3, argv, NULL) == 0)
        w->unblocking = 1;
}

/* Sends the next page of the retry or reclaim sweep, when one is due and
 * the command connection is free for it (one claim in flight at a time,
 * and no more than MAX_COMMIT_BATCHES batches awaiting their commits).
 * The two modes alternate page by page, so neither waits for the other's
 * whole sweep. A timer tick only marks its mode wanted; the sweep starts
 * here as soon as nothing is in the way, which is why no tick is ever
 * lost to another sweep in flight: every timer keeps its period. Called
 * by the timers and whenever something that blocked a page ends (a
 * claim's reply, a batch's commits, a rest, the start of RUN). */
static void sweep_pump(struct worker *w)
{
    uint64_t now;
    int i, first;

    if (w->claiming || w->stopping || stop_signalled || w->state != W_RUN ||
        w->commit_batches >= MAX_COMMIT_BATCHES || !sl__conn_ready(w->cmd))
        return;
    if (full(w)) {
        unblock_for_sweep(w);
        return;
    }
    if (w->own_left) {
        /* Entries a full batch left unhandled, now that places are free
         * (those in flight are skipped when the page comes back). */
        w->own_left = 0;
        claim_next(w, CLAIM_OWN, "-");
        return;
    }
    now = sl__now_ms();
    first = w->last_mode == CLAIM_RETRY ? CLAIM_ANY : CLAIM_RETRY;
    for (i = 0; i < 2; i++) {
        int mode = i == 0 ? first : CLAIM_RETRY + CLAIM_ANY - first;
        struct sweep *s = &w->sw[mode];

        if (now < s->rest_until_ms)
            continue;
        if (s->cursor[0] == '\0') {
            if (!s->wanted)
                continue;
            s->wanted = 0;
            snprintf(s->cursor, sizeof(s->cursor), "-");
            s->slice_ms = now;
        }
        claim_next(w, mode, s->cursor);
        return;
    }
}

/* Timer: retries whose delay has passed. */
static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    w->sw[CLAIM_RETRY].wanted = 1;
    sweep_pump(w);
}

/* Timer: entries that dead or hung peers left behind. */
static void on_reclaim_timer(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    w->sw[CLAIM_ANY].wanted = 1;
    sweep_pump(w);
}

/* One-shot timer: a sweep's rest is over. */
static void on_pump(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sweep_pump(arg);
}

/* ------------------------------------------------------------------ */
/* Heartbeat                                                           */
/* ------------------------------------------------------------------ */

/* Reply to the heartbeat commands: failures are harmless (the next beat
 * tries again), a lost connection is handled elsewhere. */
static void on_beat(struct sl_conn *c, redisReply *r, void *priv)
{
    (void)c;
    (void)r;
    (void)priv;
}

/* Sends the three commands of a heartbeat (the hash, its expiry, the
 * registry entry) with cb and priv for each reply. Returns how many were
 * sent. */
static int send_beat(struct worker *w, sl_conn_cb *cb, void *priv)
{
    struct sl_hb b;

    sl__hb_fill(&b, w->cfg->cluster_nodes != NULL, w->consumer, (long)getpid(), w->host,
                w->h->name, w->wc->stream, w->wc->group, w->t->heartbeat_ms, 1, w->started_wall_ms,
                sl__slot_counter(w->slot, SL_C_PROCESSED, 0),
                sl__slot_counter(w->slot, SL_C_FAILED, 0));
    sl__hb_entry(&b, NULL, 0);      /* sent between batches: nothing in hand */
    return (sl__conn_command(w->cmd, cb, priv, 0, b.nhset, b.hset, NULL) == 0) +
           (sl__conn_command(w->cmd, cb, priv, 0, 3, b.pexpire, NULL) == 0) +
           (sl__conn_command(w->cmd, cb, priv, 0, 4, b.zadd, NULL) == 0);
}

/* Timer: refreshes sluice:worker:<consumer>. */
static void on_beat_timer(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    /* RECOVER too: a serial recovery waits for each suspect alone, for
     * as long as its handler takes, and nobody else beats for an async
     * entry; the key lapsing would free the name for a second pool. */
    if ((w->state != W_RUN && w->state != W_RECOVER) || w->releasing ||
        !sl__conn_ready(w->cmd))
        return;
    sl__tc_flush(w->tc, w->cmd, 1);
    send_beat(w, on_beat, w);
}

/* ------------------------------------------------------------------ */
/* Connecting and initialising                                         */
/* ------------------------------------------------------------------ */

static struct worker *the_worker; /* one per process; for INIT replies */

/* Reply to one command of the INIT sequence: SCRIPT LOADs, XGROUP
 * CREATE, CLIENT ID, the first heartbeat. priv says which: >= 0 a
 * framework script, <= -10 a handler script, -1 the group, -2 the
 * reader's id, -3 the heartbeat. */
static void on_init_reply(struct sl_conn *c, redisReply *r, void *priv)
{
    struct worker *w = the_worker;
    long which = (long)(intptr_t)priv;

    (void)c;
    if (r == NULL || w->state != W_INIT)
        return;
    if (r->type == REDIS_REPLY_ERROR &&
        !(which == -1 && strncmp(r->str, "BUSYGROUP", 9) == 0)) {
        reset(w, r->str);
        return;
    }
    if (which >= 0 && sl__script_loaded(sl__script((int)which), r) < 0) {
        reset(w, "SCRIPT LOAD did not answer a sha");
        return;
    } else if (which <= -10 && sl__script_loaded(w->eff[-which - 10], r) < 0) {
        reset(w, "SCRIPT LOAD did not answer a sha");
        return;
    } else if (which == -2 && r->type == REDIS_REPLY_INTEGER)
        w->reader_id = r->integer;
    if (--w->init_pending == 0) {
        w->state = W_RECOVER;
        /* Connected and working from here: a recovery can take long (a
         * serial one waits for each suspect alone), and /healthz must not
         * call the process disconnected meanwhile. */
        sl__slot_set_redis_up(w->slot, 1);
        if (!w->stopping && sl__conn_ready(w->cmd))
            claim_next(w, CLAIM_OWN, "-");
        if (!w->claiming)
            reset(w, "cannot send the recovery claim");
    }
}

/* Both connections are usable: load the scripts, create the group (at 0,
 * with MKSTREAM, so entries added before any worker ran are processed),
 * and learn the reader's client id. */
static void start_init(struct worker *w)
{
    const char *grp[] = { "XGROUP", "CREATE", w->wc->stream, w->wc->group, "0", "MKSTREAM" };
    const char *cid[] = { "CLIENT", "ID" };
    int i, ok = 1;

    w->state = W_INIT;
    w->init_pending = 0;
    static const int used[] = { SL_SCRIPT_COMMIT, SL_SCRIPT_CLAIM, SL_SCRIPT_RELEASE,
                                SL_SCRIPT_RENEW };
    const char *argv[3];

    for (i = 0; i < (int)SL_NELEM(used) && ok; i++) {
        sl__script_load_argv(sl__script(used[i]), argv);
        ok = sl__conn_command(w->cmd, on_init_reply, (void *)(intptr_t)used[i], 0, 3, argv,
                              NULL) == 0;
        w->init_pending += ok;
    }
    for (i = 0; i < w->neff && ok; i++) {
        sl__script_load_argv(w->eff[i], argv);
        ok = sl__conn_command(w->cmd, on_init_reply, (void *)(intptr_t)(-10 - i), 0, 3, argv, NULL) == 0;
        w->init_pending += ok;
    }
    if (ok) {
        ok = sl__conn_command(w->cmd, on_init_reply, (void *)(intptr_t)-1, 0, 6, grp, NULL) == 0;
        w->init_pending += ok;
    }
    if (ok) {
        ok = sl__conn_command(w->rd, on_init_reply, (void *)(intptr_t)-2, 0, 2, cid, NULL) == 0;
        w->init_pending += ok;
    }
    /* The first heartbeat is part of INIT: the process counts as up
     * (/healthz) only once its heartbeat is there for `sluice health`
     * and for peers deciding whether its entries are orphaned; the beat
     * timer would write it up to heartbeat_ms later. */
    if (ok) {
        int sent = send_beat(w, on_init_reply, (void *)(intptr_t)-3);

        w->init_pending += sent;
        ok = sent == 3;
    }
    if (!ok)
        reset(w, "cannot send the init sequence");
}

/* A connection became usable; INIT starts once both are. */
static void on_ready(struct sl_conn *c, void *arg)
{
    struct worker *w = arg;

    (void)c;
    if (w->state == W_DOWN && sl__conn_ready(w->rd) && sl__conn_ready(w->cmd))
        start_init(w);
}

/* A connection was lost (its own deadline, the server, the network). */
static void on_lost(struct sl_conn *c, void *arg)
{
    reset(arg, sl__conn_error(c));
}

/* Timer: the backoff is over; connect both. */
static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    if (w->stopping || stop_signalled)
        return;
    count(w, SL_C_RECONNECTS, w->fails > 0);
    sl__conn_connect(w->rd);
    sl__conn_connect(w->cmd);
}

/* Deferred part of reset(): runs outside every hiredis callback. */
static void on_reset_ev(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    long long delay;
    struct timeval tv;

    (void)fd;
    (void)what;
    sl__conn_close(w->rd);
    sl__conn_close(w->cmd);
    w->reading = 0;
    w->read_ahead = 0;
    w->claiming = 0;
    w->reserved_read = 0;
    w->reserved_claim = 0;
    if (w->stopping || stop_signalled) {
        event_base_loopbreak(w->base);
        return;
    }
    delay = sl__backoff_ms(BACKOFF_BASE_MS, BACKOFF_CAP_MS, w->fails);
    w->fails++;
    tv.tv_sec = delay / 1000;
    tv.tv_usec = (delay % 1000) * 1000;
    event_add(w->reconnect_ev, &tv);
}

/* Gives up the connections after an error, logs why once, and schedules a
 * reconnect after a capped, jittered backoff. Safe from any callback: the
 * closing itself is deferred. Nothing is acked or dead-lettered here:
 * whatever was in hand stays pending and is recovered afterwards. */
static void reset(struct worker *w, const char *why)
{
    if (w->state == W_DOWN && event_pending(w->reset_ev, EV_TIMEOUT, NULL))
        return;
    if (w->state != W_DOWN || !event_pending(w->reconnect_ev, EV_TIMEOUT, NULL))
        sl__log(SL_LOG_WARN, "redis_unavailable", "step=%d error=%s", w->fails,
                sl__logq(why));
    w->state = W_DOWN;
    sl__slot_set_redis_up(w->slot, 0);
    event_active(w->reset_ev, EV_TIMEOUT, 0);
}

/* ------------------------------------------------------------------ */
/* Stopping                                                            */
/* ------------------------------------------------------------------ */

/* Reply to release.lua: the heartbeat is gone (or was not ours, or the
 * script failed and the key expires as after a crash); exit. */
static void on_released(struct sl_conn *c, redisReply *r, void *priv)
{
    struct worker *w = priv;

    (void)c;
    (void)r;
    event_base_loopbreak(w->base);
}

/* Sends release.lua for this process's own heartbeat (fenced by pid and
 * host: a beat another process wrote meanwhile stays). Returns 0 when
 * sent. */
static int release_beat(struct worker *w)
{
    char key[SL_HB_KEYLEN], reg[SL_HB_KEYLEN], pid[24], nk[16];
    const char *keys[] = { key, reg };
    const char *args[] = { pid, w->host, w->consumer };
    const char *argv[3 + SL_NELEM(keys) + SL_NELEM(args)];
    size_t argvlen[SL_NELEM(argv)];
    int argc;

    sl__tc_flush(w->tc, w->cmd, 1);   /* the last counts, before the exit */
    sl__hb_key_of(key, sizeof(key), w->cfg->cluster_nodes != NULL, w->wc->stream, w->consumer);
    sl__hb_registry(reg, sizeof(reg), w->cfg->cluster_nodes != NULL, w->wc->stream);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    argc = sl__script_argv(sl__script(SL_SCRIPT_RELEASE), nk, (int)SL_NELEM(keys), keys, NULL,
                           (int)SL_NELEM(args), args, NULL, argv, argvlen);
    return sl__conn_command(w->cmd, on_released, w, 0, argc, argv, argvlen);
}

/* Exits the loop once nothing is in flight: no read, claim or commit.
 * A stop that got that far is graceful: the heartbeat is deleted first,
 * so the next `sluice run` need not wait for it to expire. A crash or a
 * kill never gets here and leaves the key to expire, which is what keeps
 * a second pool from taking the names of a process that may still run. */
static void maybe_exit(struct worker *w)
{
    if (!w->stopping || w->releasing)
        return;
    if (w->state != W_RUN && w->state != W_RECOVER) {
        event_base_loopbreak(w->base);
        return;
    }
    if (!w->reading && !w->claiming && w->commit_batches == 0 && w->ninflight == 0) {
        w->releasing = 1;
        if (!sl__conn_ready(w->cmd) || release_beat(w) < 0)
            event_base_loopbreak(w->base);
    }
}

/* SIGTERM/SIGINT arrived (through the self-pipe): stop reading, let the
 * blocked read return at once (CLIENT UNBLOCK), flush commits, exit. */
static void on_signal_pipe(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    char buf[16];

    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    /* Not `stopping`: handle_batch sets it when it sees the signal
     * between two entries, before this runs, and the read in flight then
     * (one sent ahead of the batch, or the read beside a claim page) must
     * still be ended here, or the exit waits for its whole block_ms. */
    if (w->stop_seen)
        return;
    w->stop_seen = 1;
    w->stopping = 1;
    sl__log(SL_LOG_INFO, "stopping", NULL);
    if (w->reading && w->reader_id > 0 && sl__conn_ready(w->cmd)) {
        char id[24];
        const char *argv[] = { "CLIENT", "UNBLOCK", id };
        snprintf(id, sizeof(id), "%lld", w->reader_id);
        sl__conn_command(w->cmd, on_unblock, w, 0, 3, argv, NULL);
    }
    maybe_exit(w);
}

/* Async-signal-safe handler: set the flag, wake the loop. */
static void on_stop_signal(int sig)
{
    int saved = errno;

    (void)sig;
    stop_signalled = 1;
    if (sig_pipe[1] >= 0 && write(sig_pipe[1], "x", 1) < 0) {
        /* The pipe is full: the loop is already being woken. */
    }
    errno = saved;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

/* Adds a persistent timer of period ms. Returns the event or NULL. */
static struct event *periodic(struct worker *w, long long ms,
                              void (*cb)(evutil_socket_t, short, void *))
{
    struct event *ev = event_new(w->base, -1, EV_PERSIST, cb, w);
    struct timeval tv;

    if (ev == NULL)
        return NULL;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    event_add(ev, &tv);
    return ev;
}

/* Returns a new event base. hiredis's libevent adapter adds the write
 * event with every command and deletes it once the output is written, so
 * every command costs two epoll_ctl calls; with libevent's changelist
 * those are coalesced and made at most once per turn of the loop. */
static struct event_base *new_base(void)
{
    struct event_config *ec = event_config_new();
    struct event_base *base;

    if (ec == NULL)
        return NULL;
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(ec);
    event_config_free(ec);
    return base;
}

/* Frees everything the worker owns. */
static void worker_free(struct worker *w)
{
    int i;

    sl__conn_free(w->rd);
    sl__conn_free(w->cmd);
    if (w->reconnect_ev) event_free(w->reconnect_ev);
    if (w->reset_ev) event_free(w->reset_ev);
    if (w->retry_ev) event_free(w->retry_ev);
    if (w->reclaim_ev) event_free(w->reclaim_ev);
    if (w->pump_ev) event_free(w->pump_ev);
    if (w->beat_ev) event_free(w->beat_ev);
    if (w->sig_ev) event_free(w->sig_ev);
    if (w->inflight_ev) event_free(w->inflight_ev);
    if (w->base) event_base_free(w->base);
    for (i = 0; i < w->neff; i++)
        sl__script_effect_free(w->eff[i]);
    free(w->eff);
    free(w->types);
    free(w->ents);
    free(w->fields);
    free(w->argv);
    free(w->argvlen);
    free(w->kav);
    free(w->run.buf);
    free(w->run.val);
    free(w->kalen);
    free(w->ackv);
    free(w->acklen);
    free(w->tc);
    sl__ctx_free(w->ctx);
    ctx_free_list(w->inflight);
    ctx_free_list(w->abandoned);
    ctx_free_list(w->spare);
}

/* Wraps each of the handler's scripts in effect.lua, and lists the
 * types it accepts. Returns 0 or -1 (out of memory). */
static int load_sources(struct worker *w)
{
    int i, n = 0, any;

    w->types = sl__handler_types_new(w->h, &any);
    if (w->types == NULL && !any)
        return -1;
    if (w->h->scripts != NULL)
        while (w->h->scripts[n] != NULL)
            n++;
    if ((w->eff = calloc((size_t)n + 1, sizeof(*w->eff))) == NULL)
        return -1;
    for (i = 0; i < n; i++, w->neff++)
        if ((w->eff[i] = sl__script_effect_new(w->h->scripts[i])) == NULL)
            return -1;
    return 0;
}

int sl__worker_run(const struct sl_config *cfg, const struct sl_worker_conf *wc,
                   const struct sl_handler *h, const char *consumer,
                   struct sl_slot *slot)
{
    static struct worker wk;
    struct worker *w = &wk;
    struct sigaction sa;
    long long retry_tick;
    int rc = 1;

    memset(w, 0, sizeof(*w));
    the_worker = w;
    w->cfg = cfg;
    w->wc = wc;
    w->t = &wc->t;
    w->h = h;
    w->consumer = consumer;
    w->slot = slot != NULL ? slot : &w->local;
    w->slot->pid = (int32_t)getpid();
    w->started_wall_ms = sl__wall_ms();
    sl__log_role = consumer;
    srandom((unsigned)(getpid() ^ sl__now_ms()));
    if (gethostname(w->host, sizeof(w->host)) < 0)
        snprintf(w->host, sizeof(w->host), "localhost");
    sl__commit_args_init(&w->ca, wc->stream, wc->group, consumer, &wc->t);

    if (pipe(sig_pipe) < 0 || fcntl(sig_pipe[0], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK) < 0) {
        sl__log(SL_LOG_ERROR, "startup_failed", "error=%s", sl__logq(strerror(errno)));
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* The supervisor forks with the stop signals blocked; one that came
     * meanwhile is delivered here, to the handler just installed. */
    sigemptyset(&sa.sa_mask);
    sigprocmask(SIG_SETMASK, &sa.sa_mask, NULL);

    w->ctx = sl__ctx_new(h);
    w->base = new_base();
    w->tc = malloc(sizeof(*w->tc));
    if (w->ctx == NULL || w->base == NULL || w->tc == NULL || load_sources(w) < 0)
        goto out;
    w->ctx->base = w->base;
    w->ctx->owner = w;
    w->ctx->complete = complete;
    w->serial = __atomic_load_n(&w->slot->serial, __ATOMIC_RELAXED) != 0;
    if (w->serial)
        sl__log(SL_LOG_INFO, "suspects_serial", "reason=%s",
                sl__logq("the last process crashed with several entries in flight"));
    sl__tc_init(w->tc, wc->stream, wc->group);
    w->rd = sl__conn_new(w->base, "reader", cfg, on_ready, on_lost, w);
    w->cmd = sl__conn_new(w->base, "cmd", cfg, on_ready, on_lost, w);
    /* On a cluster both connections go to the master of the stream's
     * slot, which holds every key the worker's scripts touch (one hash
     * tag); anything else that master answers (MOVED, a failover's
     * UNBLOCKED) is a lost connection, recovered like any other. */
    if (cfg->cluster_nodes != NULL && w->rd != NULL && w->cmd != NULL) {
        int slot = sl__cluster_keyslot(wc->stream, strlen(wc->stream));

        if (sl__conn_pin(w->rd, cfg->cluster_nodes, slot) != 0 ||
            sl__conn_pin(w->cmd, cfg->cluster_nodes, slot) != 0)
            goto out;
    }
    w->reconnect_ev = evtimer_new(w->base, on_reconnect, w);
    w->reset_ev = event_new(w->base, -1, 0, on_reset_ev, w);
    w->sig_ev = event_new(w->base, sig_pipe[0], EV_READ | EV_PERSIST, on_signal_pipe, w);
    retry_tick = w->t->retry_backoff_ms[0] / 4;
    if (retry_tick < 10)
        retry_tick = 10;
    if (retry_tick > 1000)
        retry_tick = 1000;
    w->retry_ev = periodic(w, retry_tick, on_retry_timer);
    w->reclaim_ev = periodic(w, w->t->reclaim_interval_ms, on_reclaim_timer);
    w->beat_ev = periodic(w, w->t->heartbeat_ms, on_beat_timer);
    w->pump_ev = evtimer_new(w->base, on_pump, w);
    w->inflight_ev = periodic(w, INFLIGHT_TICK_MS, on_inflight_tick);
    if (w->inflight_ev == NULL || w->rd == NULL || w->cmd == NULL || w->reconnect_ev == NULL ||
        w->reset_ev == NULL || w->sig_ev == NULL || w->retry_ev == NULL ||
        w->reclaim_ev == NULL || w->beat_ev == NULL || w->pump_ev == NULL)
        goto out;
    event_add(w->sig_ev, NULL);

    if (h->init != NULL) {
        struct sl_worker_info info = { h->name, wc->stream, wc->group, consumer,
                                       w->t->idempotency_retention_ms };
        if (h->init(&info, &w->priv) < 0) {
            sl__log(SL_LOG_ERROR, "handler_init_failed", "handler=%s", h->name);
            goto out;
        }
    }
    sl__log(SL_LOG_INFO, "worker_started", "handler=%s stream=%s group=%s",
            h->name, sl__logq(wc->stream), sl__logq(wc->group));
    /* A stop signal that came before this point has left a byte in the
     * pipe: the loop sees it at once and exits without connecting. */
    event_active(w->reconnect_ev, EV_TIMEOUT, 0);
    event_base_dispatch(w->base);
    w->exiting = 1;
    sl__log(SL_LOG_INFO, "worker_stopped", "processed=%llu",
            (unsigned long long)w->slot->counters[SL_C_PROCESSED]);
    rc = 0;
    if (h->destroy != NULL)
        h->destroy(w->priv);
out:
    worker_free(w);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    sig_pipe[0] = sig_pipe[1] = -1;
    return rc;
}
