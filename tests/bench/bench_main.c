/* bench_main.c -- `sluice-bench`: sluice against the ceiling, one table.
 *
 *   sluice-bench [--n N] [--payment-n N] [--latency-secs S] [--repeat R]
 *                [--latency-repeat L]
 *                [--only noop,payment,flow,aof,latency,scaling] [--batch B]
 *                [--keep] [--perf DIR] [--commandstats]
 *
 * N (default 1,000,000, or $BENCH_N) entries of ~150-byte JSON are
 * pre-filled once per server with pipelined XADDs; every drain then uses
 * a fresh consumer group on the same stream, so the ceiling and sluice
 * drain exactly the same entries.
 *
 * What a drain row measures: from the moment the entries are released
 * to the first poll of XINFO GROUPS (every 1 ms) that shows the group's
 * last-delivered-id at the stream's last entry and nothing pending.
 *   - ceiling: the children are connected and waiting on a pipe; the
 *     release is the byte that starts them.
 *   - sluice: the group is created at "$" before `sluice run` starts, so
 *     its workers start up, recover and block on an empty group; once
 *     every worker is blocked in XREADGROUP, the group is moved back to
 *     0 (XGROUP SETID) and one more entry is added, which wakes them.
 * Neither process start-up nor connection set-up is measured.
 *
 * Worker RSS is the largest VmHWM of a worker process; worker CPU is the
 * utime + stime the worker processes spent in the drain, per entry (for
 * the ceiling, its whole life: it does nothing else); Redis CPU is the
 * same for redis-server. Each sluice row shows its ratio to the ceiling
 * row with the same processes in the same section of the same run.
 *
 * Profiling hooks: --perf DIR records `perf record -e cpu-clock -g` of the
 * worker processes of every drain; $BENCH_SLUICE_WRAP and
 * $BENCH_CEILING_WRAP put words (e.g. valgrind --tool=callgrind ...) in
 * front of `sluice run` and of the ceiling clients.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "bench.h"
#include "invariants.h"

#define PAYMENT_USERS 10000       /* users the payments are spread over */
#define FLOW_USERS PAYMENT_USERS  /* users the flow rows create through the user worker */
#define FLOW_REPORT (64 << 10)    /* bytes of an invariant violation report */
#define SCALE_BUDGET (512LL << 20)/* bytes of payload per scaling stream */
#define TUNED_BATCH 500           /* sluice's tuned COUNT, the ceiling's COUNT */
#define DEFAULT_BATCH 64          /* sluice's default COUNT (docs/configuration.md) */

/* The batch to configure for a row of `batch`: none at all for a row at
 * the default, so that sluice runs as a user who never set it does
 * (the default grows on a deep backlog; an explicit 64 does not). */
#define CONF_BATCH(b) ((b) == DEFAULT_BATCH ? 0 : (b))

/* What a run asked for on the command line. */
struct opts {
    long long n;                  /* entries per drain */
    long long payment_n;          /* entries per payment drain */
    double latency_secs;          /* seconds per latency run */
    int lat_repeat;               /* pairs of latency runs per rate */
    int repeat;                   /* runs per row; the median is shown */
    int keep;                     /* keep sluice's temp dirs */
    char only[256];               /* sections to run, "" = all */
    const char *perf;             /* directory for perf profiles, or NULL */
    int batch;                    /* sluice's tuned batch (second noop rows) */
    int cmdstats;                 /* print INFO commandstats per drain */
};

/* One line of the table. */
struct row {
    char section[16];             /* "noop", "payment", ... */
    char name[48];                /* what ran */
    int procs;                    /* worker processes */
    int batch;                    /* COUNT of one read */
    long long n;                  /* entries drained or sent */
    double rate;                  /* msgs/s (drain) or achieved offered rate */
    double ratio;                 /* vs the ceiling row; 0 for the ceiling itself */
    int latency;                  /* 1: p50/p99/p999 are set */
    double p50, p99, p999, max;   /* enqueue-to-ack, us (latency rows: medians over runs) */
    int runs;                     /* latency rows: runs the medians are taken over */
    double pair[8];               /* latency, sluice: p99.9 / the ceiling's in each pair of runs */
    double ratio99;               /* latency, sluice: median of the pairs' p99 ratios */
    double psi;                   /* latency: % of the run some task waited for a CPU, -1 unknown */
    double side50, side999;       /* latency: XADD-to-XACK p50 and p99.9 (the consumer's side), us */
    double rss_mib;               /* peak RSS of a worker process, MiB */
    double cpu_us;                /* worker CPU per message, us */
    double redis_us;              /* redis-server CPU per message, us */
    int ok;                       /* 0 when the run failed */
};

#define MAX_ROWS 64
#define SL_NELEM_BENCH(a) (sizeof(a) / sizeof((a)[0]))
static struct row rows[MAX_ROWS];
static int nrows;
static int group_seq;             /* makes group names unique */

/* ---------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------ */

/* Returns 1 when the section is selected by --only. */
static int selected(const struct opts *o, const char *section)
{
    char buf[256], *tok, *save = NULL;

    if (o->only[0] == '\0')
        return 1;
    snprintf(buf, sizeof(buf), "%s", o->only);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (strcmp(tok, section) == 0)
            return 1;
    return 0;
}

/* Returns the number of entries in a stream. */
static long long xlen(redisContext *c, const char *stream)
{
    redisReply *r = sl_bench_cmd(c, 0, "XLEN %s", stream);
    long long n = r->integer;

    freeReplyObject(r);
    return n;
}

/* Returns the ID of the stream's last entry into id. */
static void last_entry(redisContext *c, const char *stream, char *id)
{
    redisReply *r = sl_bench_cmd(c, 0, "XREVRANGE %s + - COUNT 1", stream);

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1)
        sl_bench_die("%s is empty", stream);
    snprintf(id, SL_BENCH_IDLEN, "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
}

/* Runs a command whose reply does not matter beyond not being an error. */
static void run(redisContext *c, const char *fmt, const char *a, const char *b)
{
    redisReply *r = sl_bench_cmd(c, 0, fmt, a, b);

    freeReplyObject(r);
}

/* Returns redis-server's CPU time so far, us. */
static long long redis_cpu(const struct sl_bench_redis *r)
{
    struct sl_bench_proc p;

    if (sl_bench_proc_read(r->pid, &p) < 0)
        return 0;
    return p.cpu_us;
}

/* Resets redis-server's command statistics when --commandstats was
 * given, so that the next commandstats_print() covers one drain only. */
static void commandstats_reset(const struct opts *o, redisContext *c)
{
    redisReply *r;

    if (!o->cmdstats)
        return;
    r = sl_bench_cmd(c, 0, "CONFIG RESETSTAT");
    freeReplyObject(r);
}

/* Prints, with --commandstats, where redis-server's time went in the
 * drain of n entries: every command of INFO commandstats with its calls
 * and its microseconds per entry, on stderr. A script's line includes
 * the commands it ran, which also have lines of their own (Redis counts
 * both); the benchmark's own XINFO polling is listed too. */
static void commandstats_print(const struct opts *o, redisContext *c, const char *tag,
                               long long n)
{
    redisReply *r;
    char *line, *save = NULL;

    if (!o->cmdstats || n <= 0)
        return;
    r = sl_bench_cmd(c, 0, "INFO commandstats");
    if (r->type != REDIS_REPLY_STRING)
        sl_bench_die("INFO commandstats: not a string");
    fprintf(stderr, "    commandstats of %s (us per entry, calls per entry):\n", tag);
    for (line = strtok_r(r->str, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        char name[64];
        long long calls, usec;
        if (sscanf(line, "cmdstat_%63[^:]:calls=%lld,usec=%lld", name, &calls, &usec) == 3)
            fprintf(stderr, "      %-24s %8.3f us  %6.2f calls\n", name,
                    (double)usec / (double)n, (double)calls / (double)n);
    }
    freeReplyObject(r);
}

/* Starts `perf record` on the given pids into dir/<tag>.data when --perf
 * was given. Returns its pid, or 0. */
static pid_t perf_start(const struct opts *o, const char *tag, const pid_t *pids, int n)
{
    char out[512], list[256] = "";
    size_t len = 0;
    pid_t pid;
    int i;

    if (o->perf == NULL)
        return 0;
    for (i = 0; i < n; i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%ld", i ? "," : "",
                                (long)pids[i]);
    snprintf(out, sizeof(out), "%s/", o->perf);
    for (i = 0, len = strlen(out); tag[i] != '\0' && len + 6 < sizeof(out); i++)
        out[len++] = isalnum((unsigned char)tag[i]) || tag[i] == '-' ? tag[i] : '_';
    snprintf(out + len, sizeof(out) - len, ".data");
    pid = fork();
    if (pid == 0) {
        execlp("perf", "perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-g",
               "-o", out, "-p", list, (char *)NULL);
        _exit(127);
    }
    sl_bench_pause_ms(300);       /* perf needs a moment to attach */
    return pid > 0 ? pid : 0;
}

/* Stops a perf record started by perf_start(). */
static void perf_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGINT);
    waitpid(pid, NULL, 0);
}

/* Returns a timeout for one drain of n entries, ms: generous, since a
 * run under valgrind or on a loaded machine may be very slow. */
static long long drain_timeout_ms(long long n)
{
    return 120000 + n / 2;
}

/* ---------------------------------------------------------------------
 * Drains
 * ------------------------------------------------------------------ */

/* Drains `stream` with ceiling children. The row gets the results. */
static void drain_ceiling(const struct opts *o, const struct sl_bench_redis *srv,
                          redisContext *c, const char *stream, int mode, int procs,
                          struct row *rw)
{
    struct sl_bench_clients cl;
    struct sl_bench_child_result res;
    char group[32], last[SL_BENCH_IDLEN], tag[160];
    long long n = xlen(c, stream), rcpu0;
    int64_t t0, t1;
    pid_t perf;

    snprintf(group, sizeof(group), "g%d", ++group_seq);
    last_entry(c, stream, last);
    run(c, "XGROUP CREATE %s %s 0", stream, group);
    if (sl_bench_clients_start(&cl, srv, procs, mode, stream, group, TUNED_BATCH) < 0)
        sl_bench_die("cannot start the ceiling clients");
    snprintf(tag, sizeof(tag), "%.15s-%.47s-%dp", rw->section, rw->name, procs);
    perf = perf_start(o, tag, cl.pid, cl.n);
    commandstats_reset(o, c);
    rcpu0 = redis_cpu(srv);
    t0 = sl_bench_mono_us();
    sl_bench_clients_go(&cl);
    t1 = sl_bench_wait_drained(c, stream, group, last, drain_timeout_ms(n));
    perf_stop(perf);
    rw->redis_us = (double)(redis_cpu(srv) - rcpu0) / (double)n;
    commandstats_print(o, c, tag, n);
    rw->ok = sl_bench_clients_finish(&cl, 0, 60000, &res) == 0 && t1 > 0;
    if (res.done != n) {
        fprintf(stderr, "sluice-bench: %s: the ceiling acked %lld of %lld\n",
                rw->name, res.done, n);
        rw->ok = 0;
    }
    rw->n = n;
    rw->rate = t1 > t0 ? (double)n * 1e6 / (double)(t1 - t0) : 0;
    rw->rss_mib = (double)res.hwm_kb / 1024.0;
    rw->cpu_us = (double)res.cpu_us / (double)n;
}

/* The entry added to release the sluice workers: what `add` appends. */
typedef void add_fn(redisContext *c, const char *stream, long long index, char *last_id);

/* Drains `stream` (plus one entry that `add` appends) with `sluice run`. */
static void drain_sluice(const struct opts *o, const struct sl_bench_redis *srv,
                         redisContext *c, const char *stream, const char *handler,
                         int procs, int batch, add_fn *add, struct row *rw)
{
    struct sl_bench_sluice s;
    struct sl_bench_proc p0, p1;
    char group[32], last[SL_BENCH_IDLEN], tag[160];
    long long n, rcpu0;
    int64_t t0, t1;
    pid_t perf;
    redisReply *r;

    snprintf(group, sizeof(group), "g%d", ++group_seq);
    run(c, "XGROUP CREATE %s %s $", stream, group);
    if (sl_bench_sluice_start(&s, srv, c, handler, stream, group, procs, CONF_BATCH(batch)) < 0)
        sl_bench_die("cannot start sluice run");
    snprintf(tag, sizeof(tag), "%.15s-%.47s-%dp-b%d", rw->section, handler, procs, batch);
    perf = perf_start(o, tag, s.child, s.nchild);
    if (sl_bench_sluice_proc(&s, &p0) < 0)
        sl_bench_die("cannot read the workers' /proc");
    n = xlen(c, stream) + 1;
    commandstats_reset(o, c);
    rcpu0 = redis_cpu(srv);
    t0 = sl_bench_mono_us();
    r = sl_bench_cmd(c, 0, "XGROUP SETID %s %s 0", stream, group);
    freeReplyObject(r);
    add(c, stream, n - 1, last);
    t1 = sl_bench_wait_drained(c, stream, group, last, drain_timeout_ms(n));
    rw->redis_us = (double)(redis_cpu(srv) - rcpu0) / (double)n;
    commandstats_print(o, c, tag, n);
    perf_stop(perf);
    rw->ok = sl_bench_sluice_proc(&s, &p1) == 0 && t1 > 0;
    if (sl_bench_sluice_stop(&s, o->keep) != 0)
        rw->ok = 0;
    if (t1 <= 0)
        fprintf(stderr, "sluice-bench: %s: not drained in time\n", rw->name);
    rw->n = n;
    rw->rate = t1 > t0 ? (double)n * 1e6 / (double)(t1 - t0) : 0;
    rw->rss_mib = (double)p1.hwm_kb / 1024.0;
    rw->cpu_us = (double)(p1.cpu_us - p0.cpu_us) / (double)n;
}

/* Appends one ~150-byte noop entry. */
static void add_noop(redisContext *c, const char *stream, long long index, char *last_id)
{
    sl_bench_prefill(c, stream, "bench.noop", index, 1, 150, last_id);
}

/* Appends one payment.requested entry. */
static void add_payment(redisContext *c, const char *stream, long long index, char *last_id)
{
    sl_bench_prefill_payments(c, stream, index, 1, PAYMENT_USERS, last_id);
}

/* Payload size of the scaling section's current stream, for add_sized(). */
static size_t sized_len;

/* Appends one entry of sized_len bytes. */
static void add_sized(redisContext *c, const char *stream, long long index, char *last_id)
{
    sl_bench_prefill(c, stream, "bench.noop", index, 1, sized_len, last_id);
}

/* ---------------------------------------------------------------------
 * Rows, repetitions, medians
 * ------------------------------------------------------------------ */

/* Adds a row and returns it. */
static struct row *new_row(const char *section, const char *name, int procs, int batch)
{
    struct row *rw;

    if (nrows == MAX_ROWS)
        sl_bench_die("too many rows");
    rw = &rows[nrows++];
    memset(rw, 0, sizeof(*rw));
    snprintf(rw->section, sizeof(rw->section), "%s", section);
    snprintf(rw->name, sizeof(rw->name), "%s", name);
    rw->procs = procs;
    rw->batch = batch;
    return rw;
}

/* Compares rows by rate for qsort. */
static int cmp_rate(const void *a, const void *b)
{
    double x = ((const struct row *)a)->rate, y = ((const struct row *)b)->rate;

    return (x > y) - (x < y);
}

/* Replaces dst with the median (by rate) of the k samples. */
static void keep_median(struct row *dst, struct row *samples, int k)
{
    qsort(samples, (size_t)k, sizeof(*samples), cmp_rate);
    *dst = samples[k / 2];
}

/* Prints one finished row as progress on stderr. */
static void progress(const struct row *rw)
{
    if (rw->latency)
        fprintf(stderr, "  %-8s %-26s %dp  %7.0f msgs/s offered  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  XADD->XACK p50 %.3f p99.9 %.3f ms  cpu pressure %.0f%%%s\n",
                rw->section, rw->name, rw->procs, rw->rate, rw->p50 / 1000, rw->p99 / 1000,
                rw->p999 / 1000, rw->max / 1000, rw->side50 / 1000, rw->side999 / 1000, rw->psi,
                rw->ok ? "" : "  FAILED");
    else
        fprintf(stderr, "  %-8s %-26s %dp  %9.0f msgs/s  rss %.1f MiB  cpu %.2f us/msg  redis %.2f us/msg%s\n",
                rw->section, rw->name, rw->procs, rw->rate, rw->rss_mib, rw->cpu_us,
                rw->redis_us, rw->ok ? "" : "  FAILED");
}

/* ---------------------------------------------------------------------
 * Sections
 * ------------------------------------------------------------------ */

/* A drain to run: the ceiling (handler NULL) or sluice with a handler. */
struct drain {
    const char *name;             /* row name */
    const char *handler;          /* NULL: the ceiling */
    int mode;                     /* ceiling mode */
    int procs;                    /* processes */
    int batch;                    /* COUNT */
    int ref;                      /* 1: the ceiling the other rows are compared with */
};

/* Runs a list of drains on one pre-filled stream, `repeat` times each in
 * interleaved order, and adds the median of each as a row. `refill`
 * (may be NULL) is called before every drain to rebuild the stream from
 * scratch (for payments, whose effects must not be applied twice). */
static void run_drains(const struct opts *o, const struct sl_bench_redis *srv,
                       redisContext *c, const char *section, const char *stream,
                       const struct drain *d, int nd, add_fn *add,
                       void (*refill)(redisContext *c, const char *stream, long long n,
                                      int for_sluice),
                       long long n)
{
    struct row samples[16][8];
    int i, k, first = nrows;

    if (nd > 16)
        sl_bench_die("too many drains in a section");
    for (k = 0; k < o->repeat; k++) {
        for (i = 0; i < nd; i++) {
            struct row *rw = &samples[i][k];
            memset(rw, 0, sizeof(*rw));
            snprintf(rw->section, sizeof(rw->section), "%s", section);
            snprintf(rw->name, sizeof(rw->name), "%s", d[i].name);
            rw->procs = d[i].procs;
            rw->batch = d[i].batch;
            if (refill != NULL)
                refill(c, stream, n, d[i].handler != NULL);
            if (d[i].handler == NULL)
                drain_ceiling(o, srv, c, stream, d[i].mode, d[i].procs, rw);
            else
                drain_sluice(o, srv, c, stream, d[i].handler, d[i].procs, d[i].batch,
                             add, rw);
            progress(rw);
        }
    }
    for (i = 0; i < nd; i++) {
        struct row *rw = new_row(section, d[i].name, d[i].procs, d[i].batch);
        keep_median(rw, samples[i], o->repeat);
    }
    /* Ratios against the reference ceiling with the same processes. */
    for (i = first; i < nrows; i++) {
        int j;
        if (d[i - first].ref)
            continue;
        for (j = first; j < nrows; j++)
            if (d[j - first].ref && rows[j].procs == rows[i].procs && rows[j].rate > 0)
                rows[i].ratio = rows[i].rate / rows[j].rate;
    }
}

/* Rebuilds the payment stream from nothing: FLUSHALL, the users, and n
 * entries (n - 1 for sluice, whose release adds the last one). */
static void refill_payments(redisContext *c, const char *stream, long long n, int for_sluice)
{
    char last[SL_BENCH_IDLEN];
    redisReply *r = sl_bench_cmd(c, 0, "FLUSHALL");

    freeReplyObject(r);
    sl_bench_create_users(c, PAYMENT_USERS);
    sl_bench_prefill_payments(c, stream, 0, for_sluice ? n - 1 : n, PAYMENT_USERS, last);
}

/* The no-op drains: the ceiling and sluice at batch 64 and 500, 1 and 2
 * processes. With aof, the same on a server with appendonly yes. */
static void section_noop(const struct opts *o, const struct sl_bench_redis *srv,
                         redisContext *c, const char *section)
{
    const struct drain d[] = {
        { "ceiling", NULL, SL_BENCH_MODE_NOOP, 1, TUNED_BATCH, 1 },
        { "ceiling, read-ahead", NULL, SL_BENCH_MODE_AHEAD, 1, TUNED_BATCH, 0 },
        { "sluice noop", "noop", 0, 1, DEFAULT_BATCH, 0 },
        { "sluice noop", "noop", 0, 1, o->batch, 0 },
        { "ceiling", NULL, SL_BENCH_MODE_NOOP, 2, TUNED_BATCH, 1 },
        { "ceiling, read-ahead", NULL, SL_BENCH_MODE_AHEAD, 2, TUNED_BATCH, 0 },
        { "sluice noop", "noop", 0, 2, DEFAULT_BATCH, 0 },
        { "sluice noop", "noop", 0, 2, o->batch, 0 },
    };
    char last[SL_BENCH_IDLEN];
    const char *stream = "bench:noop";

    fprintf(stderr, "%s: pre-filling %lld entries...\n", section, o->n - 1);
    sl_bench_prefill(c, stream, "bench.noop", 0, o->n - 1, 150, last);
    run_drains(o, srv, c, section, stream, d, 8, add_noop, NULL, o->n);
}

/* The payment drains: ceiling and sluice payment, 1 and 2 processes,
 * each on a freshly built stream and user set. */
static void section_payment(const struct opts *o, const struct sl_bench_redis *srv,
                            redisContext *c, const char *section)
{
    static const struct drain d[] = {
        { "payment ceiling", NULL, SL_BENCH_MODE_PAYMENT, 1, TUNED_BATCH, 1 },
        { "sluice payment", "payment", 0, 1, DEFAULT_BATCH, 0 },
        { "payment ceiling", NULL, SL_BENCH_MODE_PAYMENT, 2, TUNED_BATCH, 1 },
        { "sluice payment", "payment", 0, 2, DEFAULT_BATCH, 0 },
    };

    fprintf(stderr, "%s: %lld payment.requested entries, %d users\n", section,
            o->payment_n, PAYMENT_USERS);
    run_drains(o, srv, c, section, "payments", d, 4, add_payment, refill_payments,
               o->payment_n);
}

/* Builds the whole-flow state from nothing: FLUSHALL, FLOW_USERS
 * user.created entries on `users` and n order.created entries on
 * `orders` (one fewer of each for sluice, whose releases add the last
 * ones). The ID of the last user entry goes into ulast. */
static void refill_flow(redisContext *c, long long n, int for_sluice, char *ulast)
{
    char last[SL_BENCH_IDLEN];
    redisReply *r = sl_bench_cmd(c, 0, "FLUSHALL");

    freeReplyObject(r);
    sl_bench_prefill_users(c, "users", 0, for_sluice ? FLOW_USERS - 1 : FLOW_USERS, ulast);
    sl_bench_prefill_orders(c, "orders", 0, for_sluice ? n - 1 : n, FLOW_USERS, last);
}

/* Waits until the flow of n orders is over: `orders` holds n + n
 * entries (each order and its payment result) and its group has
 * delivered and acked them all. Returns the monotonic time (us) of the
 * poll that saw it, or -1 after timeout_ms. */
static int64_t wait_flow(redisContext *c, const char *group, long long n, long long timeout_ms)
{
    int64_t deadline = sl_bench_mono_us() + timeout_ms * 1000;

    while (sl_bench_mono_us() < deadline) {
        if (xlen(c, "orders") >= 2 * n) {
            char last[SL_BENCH_IDLEN];
            struct sl_bench_group g;

            last_entry(c, "orders", last);
            sl_bench_group_state(c, "orders", group, &g);
            if (g.found && g.pending == 0 && strcmp(g.last_delivered, last) == 0)
                return sl_bench_mono_us();
        }
        sl_bench_pause_ms(1);
    }
    return -1;
}

/* Checks a finished flow run: every user created, every order
 * o-00000000.. paid, nothing dead-lettered (every user can pay every
 * order), and every invariant of the payment flow as sluice-check checks
 * them on a quiet system (money conserved, the ledger replays to every
 * balance, each payment applied once, every group read to the end with
 * nothing pending). Returns 1 when all hold; otherwise prints what
 * failed and returns 0. */
static int flow_check(redisContext *c, long long n, const char *name)
{
    long long i, paid = 0, users = 0, dead;
    char *report;
    int bad;
    redisReply *r;

    for (i = 0; i < n; i++)
        redisAppendCommand(c, "HGET order:o-%08lld status", i);
    for (i = 0; i < n; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            sl_bench_die("HGET: %s", c->errstr);
        paid += r->type == REDIS_REPLY_STRING && strcmp(r->str, "paid") == 0;
        freeReplyObject(r);
    }
    for (i = 0; i < FLOW_USERS; i++)
        redisAppendCommand(c, "HEXISTS user:u-%05lld fp", i);
    for (i = 0; i < FLOW_USERS; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            sl_bench_die("HEXISTS: %s", c->errstr);
        users += r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
    }
    dead = xlen(c, "users:dead") + xlen(c, "orders:dead") + xlen(c, "payments:dead");
    if (paid != n || users != FLOW_USERS || dead != 0)
        fprintf(stderr, "sluice-bench: %s: %lld of %d users created, %lld of %lld orders "
                "paid, %lld dead letters\n", name, users, FLOW_USERS, paid, n, dead);
    if ((report = malloc(FLOW_REPORT)) == NULL)
        sl_bench_die("out of memory");
    bad = sl_test_invariants(c, report, FLOW_REPORT);
    if (bad != 0)
        fprintf(stderr, "sluice-bench: %s: %s of the payment flow's invariants:\n%s",
                name, bad < 0 ? "cannot check" : "violations", report);
    free(report);
    return paid == n && users == FLOW_USERS && dead == 0 && bad == 0;
}

/* Readings at one instant of a flow run: Redis's CPU and the workers'. */
struct flow_mark {
    int64_t t;                    /* monotonic, us */
    long long rcpu;               /* redis-server CPU so far, us */
    struct sl_bench_proc p;       /* sluice's workers (sluice rows only) */
};

/* Takes a mark; for sluice also the workers' /proc. Returns 0, or -1 when
 * a worker is gone. */
static int flow_mark(const struct sl_bench_redis *srv, const struct sl_bench_sluice *s,
                     struct flow_mark *m)
{
    m->rcpu = redis_cpu(srv);
    m->t = sl_bench_mono_us();
    memset(&m->p, 0, sizeof(m->p));
    return s != NULL ? sl_bench_sluice_proc(s, &m->p) : 0;
}

/* Fills one phase's row from its marks: n entries from a to b (b.t <= 0
 * when the phase did not finish; the caller puts the drain poll's time
 * into b.t), worker CPU `cpu` us, peak RSS hwm KiB. */
static void flow_row(struct row *rw, long long n, const struct flow_mark *a,
                     const struct flow_mark *b, long long cpu, long long hwm)
{
    rw->n = n;
    rw->rate = b->t > a->t ? (double)n * 1e6 / (double)(b->t - a->t) : 0;
    rw->redis_us = (double)(b->rcpu - a->rcpu) / (double)n;
    rw->cpu_us = (double)cpu / (double)n;
    rw->rss_mib = (double)hwm / 1024.0;
}

/* One whole-flow run through all three workers, in two phases in one run
 * of the same processes: first FLOW_USERS user.created entries, each
 * creating a user with its opening balance (timed until the users group
 * is drained), then n orders from order.created to paid (timed until
 * every order's payment result is acked). Either sluice (`sluice run`
 * with the user, order and payment workers, `procs` processes each) or
 * ceiling clients running the same scripts. ru and ro get the rows of
 * the two phases; both fail unless flow_check() passes. */
static void flow_run(const struct opts *o, const struct sl_bench_redis *srv, redisContext *c,
                     int sluice, int procs, long long n, struct row *ru, struct row *ro)
{
    char og[32], pg[32], ug[32], tag[160], ulast[SL_BENCH_IDLEN], last[SL_BENCH_IDLEN];
    struct flow_mark m0, m1, m2;
    int64_t t;
    long long ucpu = 0, ocpu = 0, uhwm = 0, ohwm = 0;
    int ok = 1;
    redisReply *r;

    memset(&m0, 0, sizeof(m0));
    memset(&m1, 0, sizeof(m1));
    memset(&m2, 0, sizeof(m2));
    snprintf(og, sizeof(og), "g%d", ++group_seq);
    snprintf(pg, sizeof(pg), "g%d", ++group_seq);
    snprintf(ug, sizeof(ug), "g%d", ++group_seq);
    refill_flow(c, n, sluice, ulast);
    if (sluice) {
        struct sl_bench_sluice s;
        char workers[1024];

        run(c, "XGROUP CREATE users %s $", ug, NULL);
        run(c, "XGROUP CREATE orders %s $", og, NULL);
        snprintf(workers, sizeof(workers),
                 "{ \"handler\": \"user\", \"stream\": \"users\", \"group\": \"%s\", \"processes\": %d },\n"
                 "    { \"handler\": \"order\", \"stream\": \"orders\", \"group\": \"%s\", \"processes\": %d },\n"
                 "    { \"handler\": \"payment\", \"stream\": \"payments\", \"group\": \"%s\", \"processes\": %d }",
                 ug, procs, og, procs, pg, procs);
        if (sl_bench_sluice_start_workers(&s, srv, c, workers, 3 * procs, 0) < 0)
            sl_bench_die("cannot start sluice run");
        commandstats_reset(o, c);
        if (flow_mark(srv, &s, &m0) < 0)
            sl_bench_die("cannot read the workers' /proc");
        /* Users: the group goes back to 0 and one more user wakes it. */
        r = sl_bench_cmd(c, 0, "XGROUP SETID users %s 0", ug);
        freeReplyObject(r);
        sl_bench_prefill_users(c, "users", FLOW_USERS - 1, 1, ulast);
        t = sl_bench_wait_drained(c, "users", ug, ulast, drain_timeout_ms(FLOW_USERS));
        ok = flow_mark(srv, &s, &m1) == 0 && t > 0;
        m1.t = t;
        snprintf(tag, sizeof(tag), "flow-sluice-%dp-users", procs);
        commandstats_print(o, c, tag, FLOW_USERS);
        commandstats_reset(o, c);
        /* Orders, the same way, with every user in place. */
        r = sl_bench_cmd(c, 0, "XGROUP SETID orders %s 0", og);
        freeReplyObject(r);
        sl_bench_prefill_orders(c, "orders", n - 1, 1, FLOW_USERS, last);
        t = wait_flow(c, og, n, drain_timeout_ms(3 * n));
        ok = flow_mark(srv, &s, &m2) == 0 && t > 0 && ok;
        m2.t = t;
        snprintf(tag, sizeof(tag), "flow-sluice-%dp-orders", procs);
        commandstats_print(o, c, tag, n);
        if (sl_bench_sluice_stop(&s, o->keep) != 0)
            ok = 0;
        ucpu = m1.p.cpu_us - m0.p.cpu_us;
        ocpu = m2.p.cpu_us - m1.p.cpu_us;
        uhwm = m1.p.hwm_kb;
        ohwm = m2.p.hwm_kb;
    } else {
        struct sl_bench_clients cu, co, cp;
        struct sl_bench_child_result rsu, rso, rsp;

        run(c, "XGROUP CREATE users %s 0", ug, NULL);
        run(c, "XGROUP CREATE orders %s 0", og, NULL);
        run(c, "XGROUP CREATE payments %s 0 MKSTREAM", pg, NULL);
        if (sl_bench_clients_start(&cu, srv, procs, SL_BENCH_MODE_FLOW_USER, "users", ug,
                                   TUNED_BATCH) < 0 ||
            sl_bench_clients_start(&co, srv, procs, SL_BENCH_MODE_FLOW_ORDER, "orders", og,
                                   TUNED_BATCH) < 0 ||
            sl_bench_clients_start(&cp, srv, procs, SL_BENCH_MODE_FLOW_PAYMENT, "payments", pg,
                                   TUNED_BATCH) < 0)
            sl_bench_die("cannot start the ceiling clients");
        commandstats_reset(o, c);
        flow_mark(srv, NULL, &m0);
        sl_bench_clients_go(&cu);
        t = sl_bench_wait_drained(c, "users", ug, ulast, drain_timeout_ms(FLOW_USERS));
        flow_mark(srv, NULL, &m1);
        ok = t > 0;
        m1.t = t;
        snprintf(tag, sizeof(tag), "flow-ceiling-%dp-users", procs);
        commandstats_print(o, c, tag, FLOW_USERS);
        commandstats_reset(o, c);
        sl_bench_clients_go(&co);
        sl_bench_clients_go(&cp);
        t = wait_flow(c, og, n, drain_timeout_ms(3 * n));
        flow_mark(srv, NULL, &m2);
        ok = t > 0 && ok;
        m2.t = t;
        snprintf(tag, sizeof(tag), "flow-ceiling-%dp-orders", procs);
        commandstats_print(o, c, tag, n);
        ok = sl_bench_clients_finish(&cu, 1, 60000, &rsu) == 0 && ok;
        ok = sl_bench_clients_finish(&co, 1, 60000, &rso) == 0 && ok;
        ok = sl_bench_clients_finish(&cp, 1, 60000, &rsp) == 0 && ok;
        if (rsu.done != FLOW_USERS || rso.done != 2 * n || rsp.done != n) {
            fprintf(stderr, "sluice-bench: flow ceiling: committed %lld of %d users, %lld of "
                    "%lld order entries and %lld of %lld payments\n", rsu.done, FLOW_USERS,
                    rso.done, 2 * n, rsp.done, n);
            ok = 0;
        }
        ucpu = rsu.cpu_us;
        ocpu = rso.cpu_us + rsp.cpu_us;
        uhwm = rsu.hwm_kb;
        ohwm = rso.hwm_kb > rsp.hwm_kb ? rso.hwm_kb : rsp.hwm_kb;
    }
    if (m1.t <= 0 || m2.t <= 0)
        fprintf(stderr, "sluice-bench: %s: the flow did not finish in time\n", ro->name);
    ok = ok && flow_check(c, n, ro->name);
    flow_row(ru, FLOW_USERS, &m0, &m1, ucpu, uhwm);
    flow_row(ro, n, &m1, &m2, ocpu, ohwm);
    ru->ok = ro->ok = ok;
}

/* The whole flow through all three workers: users per second (each
 * user.created applied) and then orders per second from order.created to
 * paid (three scripts per order: order_created, payment_requested,
 * order_payment_result), with worker and Redis CPU per user and per
 * order, sluice at its defaults against ceiling clients running the same
 * scripts, 1 and 2 processes per stream, every run checked against the
 * flow's invariants. */
static void section_flow(const struct opts *o, const struct sl_bench_redis *srv,
                         redisContext *c)
{
    static const int procs[] = { 1, 2 };
    static const char *const names[2][2] = {
        { "flow ceiling: users", "flow ceiling: orders" },
        { "sluice users", "sluice orders" },
    };
    long long n = o->payment_n;
    size_t i;
    int k, sluice, ph;

    fprintf(stderr, "flow: %d user.created, then %lld order.created\n", FLOW_USERS, n);
    for (i = 0; i < 2; i++) {
        struct row samples[2][2][8];  /* [sluice][phase][run] */
        int first = nrows;

        for (k = 0; k < o->repeat; k++)
            for (sluice = 0; sluice < 2; sluice++) {
                for (ph = 0; ph < 2; ph++) {
                    struct row *rw = &samples[sluice][ph][k];
                    memset(rw, 0, sizeof(*rw));
                    snprintf(rw->section, sizeof(rw->section), "flow");
                    snprintf(rw->name, sizeof(rw->name), "%s", names[sluice][ph]);
                    rw->procs = procs[i];
                    rw->batch = sluice ? DEFAULT_BATCH : TUNED_BATCH;
                }
                flow_run(o, srv, c, sluice, procs[i], n, &samples[sluice][0][k],
                         &samples[sluice][1][k]);
                progress(&samples[sluice][0][k]);
                progress(&samples[sluice][1][k]);
            }
        /* Rows: ceiling users, sluice users, ceiling orders, sluice orders. */
        for (ph = 0; ph < 2; ph++)
            for (sluice = 0; sluice < 2; sluice++) {
                struct row *rw = new_row("flow", names[sluice][ph], procs[i],
                                         samples[sluice][ph][0].batch);
                keep_median(rw, samples[sluice][ph], o->repeat);
            }
        for (ph = 0; ph < 2; ph++)
            if (rows[first + 2 * ph].rate > 0)
                rows[first + 2 * ph + 1].ratio = rows[first + 2 * ph + 1].rate /
                                                  rows[first + 2 * ph].rate;
    }
}

/* Drains of 100 B, 1 KB and 10 KB payloads, 1 process, at most
 * SCALE_BUDGET bytes of payload per stream. */
static void section_scaling(const struct opts *o, const struct sl_bench_redis *srv,
                            redisContext *c)
{
    static const size_t sizes[] = { 100, 1024, 10240 };
    size_t i;

    for (i = 0; i < 3; i++) {
        struct drain d[2] = {
            { NULL, NULL, SL_BENCH_MODE_NOOP, 1, TUNED_BATCH, 1 },
            { NULL, "noop", 0, 1, DEFAULT_BATCH, 0 },
        };
        char stream[64], cname[48], sname[48], section[16], last[SL_BENCH_IDLEN];
        long long n = o->n;
        redisReply *r;

        if (n > SCALE_BUDGET / (long long)sizes[i])
            n = SCALE_BUDGET / (long long)sizes[i];
        snprintf(stream, sizeof(stream), "bench:size:%zu", sizes[i]);
        snprintf(section, sizeof(section), "%s", sizes[i] < 1024 ? "100 B" :
                 sizes[i] < 10240 ? "1 KB" : "10 KB");
        snprintf(cname, sizeof(cname), "ceiling");
        snprintf(sname, sizeof(sname), "sluice noop");
        d[0].name = cname;
        d[1].name = sname;
        sized_len = sizes[i];
        fprintf(stderr, "scaling: pre-filling %lld entries of %zu bytes...\n", n - 1, sizes[i]);
        sl_bench_prefill(c, stream, "bench.noop", 0, n - 1, sizes[i], last);
        run_drains(o, srv, c, section, stream, d, 2, add_sized, NULL, n);
        r = sl_bench_cmd(c, 0, "DEL %s", stream);
        freeReplyObject(r);
    }
}

/* Returns the machine's CPU pressure so far (/proc/pressure/cpu, "some"
 * total: microseconds in which at least one task waited for a CPU), or
 * -1 when the kernel does not report it. A latency tail of milliseconds
 * on a machine where others were waiting for a CPU is the machine's. */
static long long cpu_pressure_us(void)
{
    FILE *f = fopen("/proc/pressure/cpu", "r");
    char line[256];
    long long total = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *t = strstr(line, "total=");
        if (strncmp(line, "some ", 5) == 0 && t != NULL)
            total = strtoll(t + 6, NULL, 10);
    }
    fclose(f);
    return total;
}

/* One latency run of S seconds at `rate` msgs/s offered, on a fresh
 * stream: the ceiling (a BLOCKing client, COUNT 500, ack pipelined with
 * the next read) or sluice noop with its default batch, 1 process. rw
 * gets the percentiles. */
static void latency_one(const struct opts *o, const struct sl_bench_redis *srv,
                        redisContext *c, int sluice, double rate, struct row *rw)
{
    char stream[64], group[32];
    struct sl_bench_lat lat;
    struct sl_bench_clients cl;
    struct sl_bench_child_result res;
    struct sl_bench_sluice s;
    redisReply *r;
    long long psi0, psi1;
    int64_t t0, t1;
    int rc;

    snprintf(stream, sizeof(stream), "bench:lat:%d", ++group_seq);
    snprintf(group, sizeof(group), "g%d", group_seq);
    if (sluice) {
        if (sl_bench_sluice_start(&s, srv, c, "noop", stream, group, 1,
                                  CONF_BATCH(DEFAULT_BATCH)) < 0)
            sl_bench_die("cannot start sluice run");
    } else {
        run(c, "XGROUP CREATE %s %s $ MKSTREAM", stream, group);
        if (sl_bench_clients_start(&cl, srv, 1, SL_BENCH_MODE_BLOCK, stream, group,
                                   TUNED_BATCH) < 0)
            sl_bench_die("cannot start the ceiling client");
        sl_bench_clients_go(&cl);
        if (sl_bench_wait_blocked(c, 1, 10000) < 0)
            sl_bench_die("the ceiling client did not block");
    }
    psi0 = cpu_pressure_us();
    t0 = sl_bench_mono_us();
    rc = sl_bench_latency_run(srv, stream, rate, o->latency_secs, &lat);
    psi1 = cpu_pressure_us();
    t1 = sl_bench_mono_us();
    rw->psi = psi0 >= 0 && psi1 >= psi0 && t1 > t0 ? 100.0 * (double)(psi1 - psi0) /
                                                     (double)(t1 - t0) : -1;
    if (sluice)
        rw->ok = sl_bench_sluice_stop(&s, o->keep) == 0;
    else
        rw->ok = sl_bench_clients_finish(&cl, 1, 10000, &res) == 0;
    rw->ok = rw->ok && rc == 0;
    rw->latency = 1;
    rw->n = lat.sent;
    rw->rate = lat.rate;
    rw->p50 = lat.p50;
    rw->p99 = lat.p99;
    rw->p999 = lat.p999;
    rw->max = lat.max;
    rw->side50 = lat.side_p50;
    rw->side999 = lat.side_p999;
    if (lat.seen != lat.sent)
        fprintf(stderr, "sluice-bench: %s: %lld of %lld acks seen\n", rw->name,
                lat.seen, lat.sent);
    r = sl_bench_cmd(c, 0, "DEL %s", stream);
    freeReplyObject(r);
}

/* Compares doubles for qsort. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Returns the median of k values (sorts v). */
static double median(double *v, int k)
{
    qsort(v, (size_t)k, sizeof(*v), cmp_double);
    return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

/* Latency at 2,000 and 20,000 msgs/s offered, the ceiling against sluice
 * noop, 1 process each. A p99.9 moves a lot from run to run on a shared
 * machine (a single stall of a few ms in a run moves it), so each rate
 * runs R pairs, alternating which of the two goes first (ceiling, sluice,
 * sluice, ceiling, ...) so that a drift of the machine's load hits both
 * alike; each run has rate x S samples (S = --latency-secs). A row shows
 * the median over its R runs of each percentile, and sluice's ratio is
 * the median of the R pairs' ratios of p99.9 (the pairs are also listed
 * in the latency table). The table also shows the consumer's side alone,
 * XADD to XACK as Redis stamped both: a producer that woke late or a
 * Redis that was not scheduled delays an entry before any consumer could
 * see it, and that part of the tail is the machine's. */
static void section_latency(const struct opts *o, const struct sl_bench_redis *srv,
                            redisContext *c)
{
    static const double rates[] = { 2000, 20000 };
    int R = o->lat_repeat;
    size_t i;
    int k, j, sluice;

    for (i = 0; i < SL_NELEM_BENCH(rates); i++) {
        struct row samp[2][8];
        double v[8];
        struct row *rw[2];

        fprintf(stderr, "latency: %.0f msgs/s offered, %d pair(s) of %.0f s runs\n", rates[i],
                R, o->latency_secs);
        for (k = 0; k < R; k++)
            for (j = 0; j < 2; j++) {
                struct row *x;
                sluice = (k % 2 == 0) ? j : 1 - j;
                x = &samp[sluice][k];
                memset(x, 0, sizeof(*x));
                snprintf(x->section, sizeof(x->section), "latency");
                snprintf(x->name, sizeof(x->name), "%s @ %.0f/s",
                         sluice ? "sluice noop" : "ceiling", rates[i]);
                x->procs = 1;
                x->batch = sluice ? DEFAULT_BATCH : TUNED_BATCH;
                latency_one(o, srv, c, sluice, rates[i], x);
                progress(x);
            }
        for (sluice = 0; sluice < 2; sluice++) {
            struct row *x = rw[sluice] = new_row("latency", samp[sluice][0].name, 1,
                                                 samp[sluice][0].batch);
            x->latency = 1;
            x->ok = 1;
            x->runs = R;
            for (k = 0; k < R; k++) {
                x->ok = x->ok && samp[sluice][k].ok;
                x->n += samp[sluice][k].n;
                v[k] = samp[sluice][k].rate;
            }
            x->rate = median(v, R);
            for (k = 0; k < R; k++)
                v[k] = samp[sluice][k].p50;
            x->p50 = median(v, R);
            for (k = 0; k < R; k++)
                v[k] = samp[sluice][k].p99;
            x->p99 = median(v, R);
            for (k = 0; k < R; k++)
                v[k] = samp[sluice][k].p999;
            x->p999 = median(v, R);
            for (k = 0; k < R; k++)
                v[k] = samp[sluice][k].max;
            x->max = median(v, R);
            for (k = 0; k < R; k++)
                v[k] = samp[sluice][k].psi;
            x->psi = median(v, R);
            for (k = 0; k < R; k++)
                v[k] = samp[sluice][k].side50;
            x->side50 = median(v, R);
            for (k = 0; k < R; k++)
                v[k] = samp[sluice][k].side999;
            x->side999 = median(v, R);
        }
        for (k = 0; k < R; k++) {
            rw[1]->pair[k] = samp[0][k].p999 > 0 ? samp[1][k].p999 / samp[0][k].p999 : 0;
            v[k] = rw[1]->pair[k];
        }
        rw[1]->ratio = median(v, R);
        for (k = 0; k < R; k++)
            v[k] = samp[0][k].p99 > 0 ? samp[1][k].p99 / samp[0][k].p99 : 0;
        rw[1]->ratio99 = median(v, R);
        fprintf(stderr, "latency: %.0f/s: sluice p99.9 / ceiling p99.9, median of %d pair(s): "
                "%.2f; of p99: %.2f\n", rates[i], R, rw[1]->ratio, rw[1]->ratio99);
    }
}

/* ---------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------ */

/* Prints the latency rows again with their maximum and, for sluice, the
 * p99.9 ratio of every pair of runs, when there are latency rows. */
static void print_latency_table(void)
{
    int i, k, any = 0;

    for (i = 0; i < nrows; i++) {
        const struct row *rw = &rows[i];
        char pairs[128] = "", ratio[48] = "(ceiling)";
        size_t len = 0;

        if (!rw->latency)
            continue;
        if (!any++)
            printf("\n| latency row | runs | entries per run | p50 ms | p99 ms | p99.9 ms "
                   "| max ms | XADD→XACK p50 ms | XADD→XACK p99.9 ms | CPU pressure "
                   "| p99.9 vs ceiling, each pair | median (p99.9) | median (p99) |\n"
                   "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
                   "| ---: | ---: |\n");
        for (k = 0; rw->ratio > 0 && k < rw->runs && len < sizeof(pairs); k++)
            len += (size_t)snprintf(pairs + len, sizeof(pairs) - len, "%s%.2f",
                                    k ? ", " : "", rw->pair[k]);
        if (rw->ratio > 0)
            snprintf(ratio, sizeof(ratio), "%.2f× | %.2f×", rw->ratio, rw->ratio99);
        else
            snprintf(ratio, sizeof(ratio), "(ceiling) | ");
        printf("| %s%s | %d | %lld | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.0f%% | %s | %s |\n",
               rw->name, rw->ok ? "" : " (FAILED)", rw->runs,
               rw->runs > 0 ? rw->n / rw->runs : rw->n, rw->p50 / 1000, rw->p99 / 1000,
               rw->p999 / 1000, rw->max / 1000, rw->side50 / 1000, rw->side999 / 1000, rw->psi,
               pairs, ratio);
    }
}

/* Prints every row as one Markdown table on stdout. */
static void print_table(const struct opts *o)
{
    int i;

    printf("\nsluice-bench: N=%lld, payment N=%lld, %d run(s) per row (median), "
           "redis-server %s\n\n",
           o->n, o->payment_n, o->repeat, "on loopback");
    printf("| section | row | procs | batch | entries | msgs/s | vs ceiling "
           "| p50 ms | p99 ms | p99.9 ms | worker RSS MiB | worker CPU µs/msg | redis CPU µs/msg |\n");
    printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (i = 0; i < nrows; i++) {
        const struct row *rw = &rows[i];
        char ratio[32] = "", p50[16] = "", p99[16] = "", p999[16] = "";
        char rss[16] = "", cpu[16] = "", rcpu[16] = "";

        if (rw->latency) {
            snprintf(p50, sizeof(p50), "%.3f", rw->p50 / 1000);
            snprintf(p99, sizeof(p99), "%.3f", rw->p99 / 1000);
            snprintf(p999, sizeof(p999), "%.3f", rw->p999 / 1000);
            if (rw->ratio > 0)
                snprintf(ratio, sizeof(ratio), "p99.9 %.2f×", rw->ratio);
            else
                snprintf(ratio, sizeof(ratio), "(ceiling)");
        } else {
            if (rw->ratio > 0)
                snprintf(ratio, sizeof(ratio), "%.2f×", rw->ratio);
            else
                snprintf(ratio, sizeof(ratio), "(ceiling)");
            snprintf(rss, sizeof(rss), "%.1f", rw->rss_mib);
            snprintf(cpu, sizeof(cpu), "%.2f", rw->cpu_us);
            snprintf(rcpu, sizeof(rcpu), "%.2f", rw->redis_us);
        }
        printf("| %s | %s%s | %d | %d | %lld | %.0f | %s | %s | %s | %s | %s | %s | %s |\n",
               rw->section, rw->name, rw->ok ? "" : " (FAILED)", rw->procs, rw->batch,
               rw->n, rw->rate, ratio, p50, p99, p999, rss, cpu, rcpu);
    }
    printf("\nbatch 64 rows run sluice with no batch key (the default, which grows on a "
           "deep backlog); other batches are set explicitly. ");
    printf("vs ceiling: msgs/s of the row / msgs/s of the ceiling row with the same "
           "processes in the same section; for latency rows, the median over the pairs of "
           "runs of sluice's p99.9 / the ceiling's p99.9 at the same rate (lower is better). "
           "Latency rows: msgs/s is the offered rate achieved, entries the number sent "
           "over all runs, the percentiles medians over the runs. Flow rows: users are "
           "user.created entries applied, orders go from order.created to paid. Webhook "
           "rows: deliveries/s over the ideal concurrency / 0.05 s (the receiver's answer "
           "time).\n");
    print_latency_table();
    fflush(stdout);
}

/* ---------------------------------------------------------------------
 * The webhook worker (async handlers)
 * ------------------------------------------------------------------ */

#define WEBHOOK_LATENCY_MS 50     /* the local receiver's answer time */

/* Appends one notification, its webhook-id "n-<index>". */
static void add_note(redisContext *c, const char *stream, long long index, char *last_id)
{
    redisReply *r = sl_bench_cmd(c, 0, "XADD %s * type order.paid data "
                                 "{\"id\":\"n-%lld\",\"order_id\":\"o-%lld\"}",
                                 stream, index, index);

    if (r->type == REDIS_REPLY_STRING)
        snprintf(last_id, SL_BENCH_IDLEN, "%s", r->str);
    freeReplyObject(r);
}

/* Starts build/webhook-receiver (next to $SLUICE_BIN) answering in
 * WEBHOOK_LATENCY_MS on a free port, its output in log. Returns its pid
 * and the port in *port, or -1. */
static pid_t receiver_start(const char *log, int *port)
{
    char path[600], bin[600], line[200], delay[16];
    const char *sb = getenv("SLUICE_BIN") ? getenv("SLUICE_BIN") : "build/sluice";
    const char *slash = strrchr(sb, '/');
    int64_t deadline;
    pid_t pid;

    snprintf(bin, sizeof(bin), "%.*swebhook-receiver", slash ? (int)(slash - sb + 1) : 0, sb);
    snprintf(path, sizeof(path), "%s", log);
    snprintf(delay, sizeof(delay), "%d", WEBHOOK_LATENCY_MS);
    if ((pid = fork()) < 0)
        return -1;
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "--port", "0", "--delay-ms", delay, (char *)NULL);
        _exit(127);
    }
    deadline = sl_bench_mono_us() + 10000000LL;
    *port = 0;
    while (*port == 0 && sl_bench_mono_us() < deadline) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            if (fgets(line, sizeof(line), f) != NULL)
                sscanf(line, "event=receiver_listening port=%d", port);
            fclose(f);
        }
        if (*port == 0)
            sl_bench_pause_ms(10);
    }
    if (*port == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

/* Webhook deliveries per second from one process against a receiver
 * answering in 50 ms: with `concurrency` 64 (the goal: at least 0.8 x
 * 64 / 0.05 s) and, beside it, one at a time, as a blocking handler
 * runs (concurrency 1); the worker's peak RSS with 64 in flight. "vs
 * ceiling" is the rate over the ideal concurrency / 0.05 s. */
static void section_webhook(const struct opts *o, const struct sl_bench_redis *srv,
                            redisContext *c)
{
    static const int conc[] = { 64, 1 };
    char log[64], url[80];
    int i, port;
    pid_t rp;

    snprintf(log, sizeof(log), "/tmp/sluice-bench-receiver-%ld.log", (long)getpid());
    setenv("SLUICE_WEBHOOK_SECRET", "whsec_YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldA==", 1);
    if ((rp = receiver_start(log, &port)) < 0)
        sl_bench_die("cannot start the webhook receiver (make $(BUILD)/webhook-receiver)");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/bench", port);
    setenv("SLUICE_WEBHOOK_URL", url, 1);
    for (i = 0; i < (int)SL_NELEM_BENCH(conc); i++) {
        char name[48], stream[32];
        long long n = conc[i] == 1 ? 100 : 3000;
        struct row *rw;
        double ideal = conc[i] * 1000.0 / WEBHOOK_LATENCY_MS;

        if (n > o->n)
            n = o->n;
        snprintf(name, sizeof(name), "webhook, concurrency %d%s", conc[i],
                 conc[i] == 1 ? " (as blocking)" : "");
        snprintf(stream, sizeof(stream), "notes%d", conc[i]);
        snprintf(sl_bench_worker_extra, sizeof(sl_bench_worker_extra),
                 "\"concurrency\": %d, \"max_deliveries\": 12", conc[i]);
        {
            char last[SL_BENCH_IDLEN];
            long long k;
            for (k = 0; k < n - 1; k++)
                add_note(c, stream, k, last);
        }
        rw = new_row("webhook", name, 1, DEFAULT_BATCH);
        drain_sluice(o, srv, c, stream, "webhook", 1, DEFAULT_BATCH, add_note, rw);
        rw->ratio = rw->rate / ideal;
        fprintf(stderr, "sluice-bench: webhook concurrency %d: %.0f deliveries/s = %.2f x "
                "%d / %.2f s%s, worker RSS %.1f MiB\n", conc[i], rw->rate, rw->ratio, conc[i],
                WEBHOOK_LATENCY_MS / 1000.0, conc[i] == 64 ? " (goal >= 0.80)" : "",
                rw->rss_mib);
        progress(rw);
    }
    sl_bench_worker_extra[0] = '\0';
    kill(rp, SIGTERM);
    waitpid(rp, NULL, 0);
    unlink(log);
}

/* ---------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------ */

/* Prints the usage and exits with status 2. */
static void usage(void)
{
    fprintf(stderr,
            "usage: sluice-bench [--n N] [--payment-n N] [--latency-secs S] [--repeat R]\n"
            "                    [--latency-repeat L]\n"
            "                    [--only noop,payment,flow,aof,latency,scaling,webhook] [--batch B]\n"
            "                    [--keep] [--perf DIR] [--commandstats]\n"
            "  N defaults to $BENCH_N or 1000000; payment N to min(N, 200000);\n"
            "  latency runs last 5 s each (1 s when N < 100000), L pairs of them per\n"
            "  rate (default 3, 1 when N < 100000); B, sluice's tuned batch in the noop\n"
            "  rows, defaults to 500 (the ceiling's COUNT).\n");
    exit(2);
}

/* Parses a positive integer option value or exits. */
static long long positive(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v <= 0)
        usage();
    return v;
}

/* Runs the child body when re-executed as a ceiling client; otherwise
 * parses the options, runs the selected sections on a fresh server (and
 * the AOF rows on a second one), prints the table, and returns 1 when any
 * row failed (a drain that did not finish, a worker that died, a ceiling
 * that acked the wrong count), 0 otherwise. Speed is never judged. */
int main(int argc, char **argv)
{
    struct opts o;
    struct sl_bench_redis srv, aof;
    redisContext *c;
    int i, failed = 0;

    if (argc >= 2 && strcmp(argv[1], "--child") == 0)
        return sl_bench_child_main(argc - 2, argv + 2);

    memset(&o, 0, sizeof(o));
    o.n = getenv("BENCH_N") && *getenv("BENCH_N") ? positive(getenv("BENCH_N")) : 1000000;
    o.repeat = 1;
    o.batch = TUNED_BATCH;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            o.n = positive(argv[++i]);
        else if (strcmp(argv[i], "--payment-n") == 0 && i + 1 < argc)
            o.payment_n = positive(argv[++i]);
        else if (strcmp(argv[i], "--latency-secs") == 0 && i + 1 < argc)
            o.latency_secs = atof(argv[++i]);
        else if (strcmp(argv[i], "--latency-repeat") == 0 && i + 1 < argc)
            o.lat_repeat = (int)positive(argv[++i]);
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            o.repeat = (int)positive(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            snprintf(o.only, sizeof(o.only), "%s", argv[++i]);
        else if (strcmp(argv[i], "--perf") == 0 && i + 1 < argc)
            o.perf = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            o.batch = (int)positive(argv[++i]);
        else if (strcmp(argv[i], "--keep") == 0)
            o.keep = 1;
        else if (strcmp(argv[i], "--commandstats") == 0)
            o.cmdstats = 1;
        else
            usage();
    }
    if (o.n < 2 || o.repeat > 8 || o.lat_repeat > 8 || o.batch > 10000)
        usage();
    if (o.payment_n == 0)
        o.payment_n = o.n < 200000 ? o.n : 200000;
    if (o.latency_secs <= 0)
        o.latency_secs = o.n < 100000 ? 1 : 5;
    if (o.lat_repeat == 0)
        o.lat_repeat = o.n < 100000 ? 1 : 3;
    signal(SIGPIPE, SIG_IGN);

    if (sl_bench_redis_start(&srv, 0) < 0)
        return 1;
    if ((c = sl_bench_connect(&srv)) == NULL)
        sl_bench_die("cannot connect to redis-server");
    fprintf(stderr, "sluice-bench: redis-server pid %ld on port %d, N=%lld\n",
            (long)srv.pid, srv.port, o.n);
    if (selected(&o, "noop"))
        section_noop(&o, &srv, c, "noop");
    if (selected(&o, "payment"))
        section_payment(&o, &srv, c, "payment");
    if (selected(&o, "flow"))
        section_flow(&o, &srv, c);
    if (selected(&o, "latency") || selected(&o, "scaling")) {
        redisReply *r = sl_bench_cmd(c, 0, "FLUSHALL");
        freeReplyObject(r);
    }
    if (selected(&o, "latency"))
        section_latency(&o, &srv, c);
    if (selected(&o, "scaling"))
        section_scaling(&o, &srv, c);
    if (selected(&o, "webhook"))
        section_webhook(&o, &srv, c);
    redisFree(c);
    sl_bench_redis_stop(&srv);

    if (selected(&o, "aof")) {
        if (sl_bench_redis_start(&aof, 1) < 0)
            return 1;
        if ((c = sl_bench_connect(&aof)) == NULL)
            sl_bench_die("cannot connect to redis-server");
        section_noop(&o, &aof, c, "aof");
        redisFree(c);
        sl_bench_redis_stop(&aof);
    }

    print_table(&o);
    for (i = 0; i < nrows; i++)
        failed |= !rows[i].ok;
    return failed ? 1 : 0;
}
