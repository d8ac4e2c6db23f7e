/* bench.h -- declarations shared by the files of `sluice-bench`.
 *
 * sluice-bench measures sluice against a ceiling measured in the same run
 * on the same redis-server: a minimal C client of our own (bench_client.c)
 * that does nothing but the Redis work a perfect framework would do. The
 * files are:
 *
 *   bench_main.c     options, the plan of runs, the table;
 *   bench_redis.c    its own redis-server, synchronous helpers, pre-fill,
 *                    drain detection, /proc readings;
 *   bench_client.c   the ceiling clients, run as child processes (the
 *                    binary re-executes itself, so their RSS is their own);
 *   bench_sluice.c   `sluice run` spawned with a config in a temp dir;
 *   bench_latency.c  the paced producer and the MONITOR-based ack clock.
 *
 * Only this benchmark includes it. Nothing here is part of sluice.
 */
#ifndef SL_BENCH_H
#define SL_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <hiredis.h>
#include "server.h"

/* ---------------------------------------------------------------------
 * Redis server and synchronous helpers (bench_redis.c)
 * ------------------------------------------------------------------ */

/* One redis-server this benchmark started, through the test support
 * library's launcher (tests/support/server.c, which needs no Check). */
struct sl_bench_redis {
    struct sl_test_redis srv;     /* the server: port, directory, pid */
    pid_t pid;                    /* server process, 0 when none */
    int port;                     /* loopback TCP port */
    char url[128];                /* "redis://127.0.0.1:<port>/0" */
    int aof;                      /* 1: appendonly yes, appendfsync everysec */
};

/* Starts ${REDIS_SERVER:-redis-server} on a free loopback port with no
 * persistence (or, with aof, appendonly yes + appendfsync everysec and no
 * background rewrite) in a fresh directory, and waits for PING. Returns 0
 * or -1 (message on stderr). r is borrowed and filled. */
int sl_bench_redis_start(struct sl_bench_redis *r, int aof);

/* Stops the server (SIGTERM, then SIGKILL), reaps it and removes its
 * directory. Safe on a zeroed struct. */
void sl_bench_redis_stop(struct sl_bench_redis *r);

/* Connects to the server with a 2 s connect and 30 s command timeout.
 * Returns a new context (redisFree()) or NULL. */
redisContext *sl_bench_connect(const struct sl_bench_redis *r);

/* Runs a command and returns its reply (new: freeReplyObject()). Exits
 * the benchmark with a message when there is no reply or, unless
 * `allow_error`, on an error reply: a benchmark that silently measures
 * nothing is worse than one that stops. */
redisReply *sl_bench_cmd(redisContext *c, int allow_error, const char *fmt, ...);

/* Prints a message to stderr and exits with status 1. */
void sl_bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Microseconds of CLOCK_MONOTONIC and of CLOCK_REALTIME. */
int64_t sl_bench_mono_us(void);
int64_t sl_bench_wall_us(void);

/* Sleeps for ms milliseconds (a poll interval, never an effect wait). */
void sl_bench_pause_ms(int ms);

/* Builds `len` bytes of JSON object text for entry i into buf (which has
 * room for len + 1 bytes), padded with a "pad" member so that the text
 * has exactly len bytes (len >= 64). Returns buf. */
char *sl_bench_json(char *buf, size_t len, long long i);

/* Appends n entries {type, data} to `stream` with pipelined XADDs, data
 * of data_len bytes from sl_bench_json() with indexes first..first+n-1.
 * Writes the ID of the last entry into last_id (SL_BENCH_IDLEN bytes).
 * Exits on any error. */
#define SL_BENCH_IDLEN 48
void sl_bench_prefill(redisContext *c, const char *stream, const char *type,
                      long long first, long long n, size_t data_len,
                      char *last_id);

/* Creates `users` users u-00000.. as workers/user.c lays them out
 * (user:<id> hash with name, email and balance_cents), each with a
 * balance that covers every payment of the benchmark, so that every
 * payment takes the full path (debit, ledger, payment hash, follow-up). */
void sl_bench_create_users(redisContext *c, int users);

/* The opening balance of every benchmark user, cents: more than all the
 * payments of a run can take (at most 9,999 cents each). */
#define SL_BENCH_OPENING_CENTS 100000000000LL

/* Appends n user.created entries for users u-<first+i> (u-00000..), each
 * with the opening balance SL_BENCH_OPENING_CENTS, so that the user
 * worker creates them as sl_bench_create_users() lays them out, with
 * their fingerprint and their opening ledger entry. last_id as above. */
void sl_bench_prefill_users(redisContext *c, const char *stream, long long first,
                            long long n, char *last_id);

/* Appends n payment.requested entries with payment IDs p-<first+i>
 * spread over `users` users. last_id as above. */
void sl_bench_prefill_payments(redisContext *c, const char *stream, long long first,
                               long long n, int users, char *last_id);

/* Appends n order.created entries with order IDs o-<first+i> spread
 * over `users` users (amounts as sl_bench_prefill_payments'). last_id as
 * above. */
void sl_bench_prefill_orders(redisContext *c, const char *stream, long long first,
                             long long n, int users, char *last_id);

/* The state of a consumer group from XINFO GROUPS. */
struct sl_bench_group {
    long long pending;            /* entries delivered, not acked */
    char last_delivered[SL_BENCH_IDLEN]; /* last-delivered-id */
    int found;                    /* 1 when the group exists */
};

/* Reads one group's state. Exits on a Redis error. */
void sl_bench_group_state(redisContext *c, const char *stream, const char *group,
                          struct sl_bench_group *g);

/* Polls XINFO GROUPS every ms until the group has delivered last_id and
 * has nothing pending, or timeout_ms passes. Returns the monotonic time
 * (us) of the first poll that saw it drained, or -1 on timeout. */
int64_t sl_bench_wait_drained(redisContext *c, const char *stream, const char *group,
                              const char *last_id, long long timeout_ms);

/* Counts clients blocked in XREADGROUP (CLIENT LIST, flags with 'b'). */
int sl_bench_blocked_readers(redisContext *c);

/* Waits until at least n clients are blocked in XREADGROUP, up to
 * timeout_ms. Returns 0, or -1 on timeout. */
int sl_bench_wait_blocked(redisContext *c, int n, long long timeout_ms);

/* What /proc says about a process: peak RSS and CPU time so far. */
struct sl_bench_proc {
    long long hwm_kb;             /* VmHWM, KiB; -1 when unreadable */
    long long cpu_us;             /* utime + stime, microseconds; -1 when unreadable */
};

/* Reads /proc/<pid>/status and /proc/<pid>/stat. Returns 0 or -1. */
int sl_bench_proc_read(pid_t pid, struct sl_bench_proc *p);

/* ---------------------------------------------------------------------
 * Ceiling clients (bench_client.c), run as `sluice-bench --child ...`
 * ------------------------------------------------------------------ */

#define SL_BENCH_MODE_NOOP    0   /* XREADGROUP + XACK only */
#define SL_BENCH_MODE_PAYMENT 1   /* the payment worker's script, one call per run of entries */
#define SL_BENCH_MODE_BLOCK   2   /* like NOOP, but BLOCKing until stopped */
#define SL_BENCH_MODE_AHEAD   3   /* like NOOP, reading one batch ahead */
#define SL_BENCH_MODE_FLOW_ORDER   4 /* the order worker's scripts in runs, BLOCKing until stopped */
#define SL_BENCH_MODE_FLOW_PAYMENT 5 /* the payment worker's script in runs, BLOCKing until stopped */
#define SL_BENCH_MODE_FLOW_USER    6 /* the user worker's scripts in runs, BLOCKing until stopped */

/* A running set of ceiling children. */
struct sl_bench_clients {
    int n;                        /* processes */
    pid_t pid[8];                 /* their pids */
    int go_fd;                    /* write end of the start pipe */
    int out_fd[8];                /* read ends of their result pipes */
};

/* Result of one ceiling child, read from its pipe when it exits. */
struct sl_bench_child_result {
    long long done;               /* entries it acked (or committed) */
    long long hwm_kb;             /* its VmHWM at exit, KiB */
    long long cpu_us;             /* its utime + stime at exit, us */
};

/* Starts n ceiling children (posix_spawn of /proc/self/exe --child ...)
 * on stream/group in `mode` with XREADGROUP COUNT count; they connect and
 * wait for sl_bench_clients_go(). Returns 0 or -1. */
int sl_bench_clients_start(struct sl_bench_clients *cl, const struct sl_bench_redis *r,
                           int n, int mode, const char *stream, const char *group,
                           int count);

/* Releases the children: they start reading at once. */
void sl_bench_clients_go(struct sl_bench_clients *cl);

/* Asks BLOCK-mode children to stop (SIGTERM), then, for every mode,
 * waits up to timeout_ms for each child, reads its result, and sums
 * them into *sum (done and cpu_us added, hwm_kb the largest). Returns 0,
 * or -1 when a child failed or had to be killed. */
int sl_bench_clients_finish(struct sl_bench_clients *cl, int stop,
                            long long timeout_ms, struct sl_bench_child_result *sum);

/* The body of a child process: argv after "--child". Returns the exit
 * code. */
int sl_bench_child_main(int argc, char **argv);

/* ---------------------------------------------------------------------
 * sluice run (bench_sluice.c)
 * ------------------------------------------------------------------ */

/* A `sluice run` this benchmark started. */
struct sl_bench_sluice {
    pid_t pid;                    /* the supervisor */
    int nchild;                   /* worker children seen in its log */
    pid_t child[8];               /* their pids */
    char dir[256];                /* temp dir: sluice.json, sluice.log */
};

/* Extra members (JSON, without the leading comma) of the worker object
 * the next sl_bench_sluice_start() writes, "" for none. */
extern char sl_bench_worker_extra[256];

/* Writes a config (handler on stream/group, `processes` children, COUNT
 * `batch` or, when 0, no batch key at all, trim none, metrics off) and starts `$SLUICE_BIN run -c` on it.
 * Waits until its children are blocked in XREADGROUP (so nothing of the
 * startup is measured). Returns 0 or -1 (with the log on stderr). */
int sl_bench_sluice_start(struct sl_bench_sluice *s, const struct sl_bench_redis *r,
                          redisContext *c, const char *handler, const char *stream,
                          const char *group, int processes, int batch);

/* The same with several workers: `workers` is the text of the config's
 * workers array members (JSON objects separated by commas), `readers`
 * the number of processes to wait for in XREADGROUP. */
int sl_bench_sluice_start_workers(struct sl_bench_sluice *s, const struct sl_bench_redis *r,
                                  redisContext *c, const char *workers, int readers,
                                  int batch);

/* Sums /proc readings over the children: cpu_us added, hwm_kb the
 * largest. Returns 0 or -1 when a child is gone. */
int sl_bench_sluice_proc(const struct sl_bench_sluice *s, struct sl_bench_proc *sum);

/* SIGTERM, waits up to 15 s (then SIGKILL), removes the temp dir unless
 * `keep`. Returns the supervisor's exit status, or -1. */
int sl_bench_sluice_stop(struct sl_bench_sluice *s, int keep);

/* ---------------------------------------------------------------------
 * Latency (bench_latency.c)
 * ------------------------------------------------------------------ */

/* Percentiles of one latency run, in microseconds. */
struct sl_bench_lat {
    long long sent;               /* entries the producer sent */
    long long seen;               /* of which an XACK was seen */
    double rate;                  /* achieved offered rate, msgs/s */
    double p50, p99, p999, max;   /* enqueue-to-ack, us */
    double side_p50, side_p999;   /* XADD-to-XACK as Redis stamped both, us */
};

/* Offers `rate` msgs/s to `stream` for `secs` seconds from a paced
 * producer, each entry's send time in its payload, and times each entry's
 * XACK as Redis executed it (MONITOR). The consumers must already be
 * blocked on the stream's group. Returns 0 or -1. */
int sl_bench_latency_run(const struct sl_bench_redis *r, const char *stream,
                         double rate, double secs, struct sl_bench_lat *out);

#endif /* SL_BENCH_H */
