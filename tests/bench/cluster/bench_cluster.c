/* bench_cluster.c -- `sluice-bench-cluster`: the no-op drain on one
 * redis-server and on a Redis Cluster of 1, 2 and 3 masters, in one run.
 *
 *   sluice-bench-cluster [--entries N] [--streams S] [--rounds R] [--keep]
 *
 * Every row drains the same work: S tagged streams `bench:{pK}` (S a
 * multiple of 6, default 12) holding N no-op entries between them (plus
 * one release entry each), through one `sluice run` pool of the noop
 * handler with the defaults a user gets (but trim "none", see
 * write_config()) and one worker process per
 * stream (S processes: a worker consumes one stream, so that is the
 * fewest that drains them all). The cluster rows give the pool the
 * masters as `redis.cluster_nodes`; the cluster has masters only, no
 * replicas (a replica costs its master the replication stream, which a
 * standalone server does not pay either).
 *
 * The tags are picked by computing their hash slots (CRC16 of the tag,
 * modulo 16384, checked against CLUSTER KEYSLOT), so that on 1, 2 and 3
 * masters, whose slots are split in equal ranges, each master holds the
 * same number of streams.
 *
 * What is measured per row: msgs/s from the release of the entries to
 * the first poll that sees every group drained, and each server's CPU
 * (INFO cpu, used_cpu_sys + used_cpu_user) over the same span, per
 * message. Per master: the entries of its streams, its share of the
 * whole against an even split, its CPU. The cluster rows' Redis CPU per
 * message (summed over the masters) is compared with the standalone
 * row's.
 *
 * The four rows run R times (default 5), every other round in reverse
 * order; the table shows each row's median drain time and the median of
 * each server's CPU, and one line lists each round's CPU ratios, because
 * a shared two-core machine moves single runs by tens of percent.
 *
 * Only counts are checked: every stream must hold the entries added to
 * it (the pool does not trim), its group must have delivered the
 * stream's last entry and have nothing pending, and no entry may be
 * dead-lettered.
 * A wrong count exits 1; speed and balance are reported, never judged.
 *
 * The payment flow has no cluster key layout yet, so it is not here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include "../bench.h"
#include "config.h"

#define MAX_NODES   3             /* masters of the largest cluster */
#define MAX_STREAMS 60            /* --streams at most */
#define SLOTS       16384         /* hash slots of Redis Cluster */
#define GROUP       "g"           /* the consumer group of every stream */
#define ENTRY_LEN   150           /* bytes of each entry's data, as `make bench` */
#define READY_MS    60000         /* the pool's readers all blocked */
#define CLUSTER_MS  60000         /* a new cluster reports itself whole */
#define MAX_ROUNDS  9             /* --rounds at most */

/* The servers of one row: one standalone server or a cluster's masters. */
struct rig {
    int n;                        /* servers */
    int cluster;                  /* 1: cluster mode, slots split in n ranges */
    struct sl_test_redis node[MAX_NODES];
    int bus[MAX_NODES];           /* cluster bus ports */
    redisContext *ctx[MAX_NODES]; /* one connection per server */
};

/* The results of one row. */
struct result {
    char name[24];                /* "standalone", "cluster-2", ... */
    int n;                        /* servers */
    long long entries[MAX_NODES]; /* entries of each server's streams */
    int streams[MAX_NODES];       /* streams on each server */
    long long cpu_us[MAX_NODES];  /* each server's CPU over the drain */
    long long cpu_all;            /* all servers' CPU over the drain */
    long long total;              /* entries drained */
    double secs;                  /* release to drained */
};

static int nstreams = 12;
static long long nentries = 240000;
static int rounds = 5;
static int keep;
static char stream_name[MAX_STREAMS][32];
static int stream_slot[MAX_STREAMS];

/* CRC16-CCITT (XMODEM), the hash Redis Cluster uses for key slots. */
static unsigned crc16(const char *s, size_t len)
{
    unsigned crc = 0;
    size_t i;
    int b;

    for (i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)s[i] << 8;
        for (b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
        crc &= 0xffff;
    }
    return crc;
}

/* The first slot of server i of n (equal ranges, as below). */
static int range_lo(int i, int n)
{
    return (int)((long)SLOTS * i / n);
}

/* The server of n that serves slot: the ranges are
 * [SLOTS*i/n, SLOTS*(i+1)/n). */
static int owner(int slot, int n)
{
    int i;

    for (i = n - 1; i > 0; i--)
        if (slot >= range_lo(i, n))
            return i;
    return 0;
}

/* Picks the stream names: tags p0, p1, ... taken in turn when their slot
 * falls in a cell that still has room. The 2- and 3-master ranges cut
 * the slots into four cells, (0,0) (0,1) (1,1) (1,2) by (master of 2,
 * master of 3), which take S/3, S/6, S/6 and S/3 streams: then each of
 * 3 masters gets S/3 and each of 2 masters S/2. */
static void pick_streams(void)
{
    int quota[4], have[4] = { 0, 0, 0, 0 }, k, n = 0;

    quota[0] = quota[3] = nstreams / 3;
    quota[1] = quota[2] = nstreams / 6;
    for (k = 0; n < nstreams && k < 100000; k++) {
        char tag[16];
        int slot, cell;

        snprintf(tag, sizeof(tag), "p%d", k);
        slot = (int)(crc16(tag, strlen(tag)) % SLOTS);
        cell = owner(slot, 2) + owner(slot, 3);
        if (have[cell] >= quota[cell])
            continue;
        have[cell]++;
        snprintf(stream_name[n], sizeof(stream_name[n]), "bench:{%s}", tag);
        stream_slot[n++] = slot;
    }
    if (n < nstreams)
        sl_bench_die("could not pick %d stream tags", nstreams);
}

/* The server of rig g that holds stream s. */
static int stream_node(const struct rig *g, int s)
{
    return g->cluster ? owner(stream_slot[s], g->n) : 0;
}

/* A free loopback port (bind :0, read it back, release it), for a
 * cluster bus. Returns the port or -1. */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd, port = -1;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0
        && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Runs a command whose reply must not be an error, and drops the reply. */
static void cmd(redisContext *c, const char *fmt, const char *a, const char *b)
{
    freeReplyObject(sl_bench_cmd(c, 0, fmt, a, b));
}

/* 1 when node i of g says its cluster is whole: state ok, every slot
 * served, all g->n masters known. */
static int node_whole(struct rig *g, int i)
{
    redisReply *r = sl_bench_cmd(g->ctx[i], 0, "CLUSTER INFO");
    char known[48];
    int ok;

    snprintf(known, sizeof(known), "cluster_known_nodes:%d\r", g->n);
    ok = r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") != NULL
         && strstr(r->str, "cluster_slots_ok:16384") != NULL && strstr(r->str, known) != NULL;
    freeReplyObject(r);
    return ok;
}

/* Stops every server of g and removes their directories. */
static void rig_stop(struct rig *g)
{
    int i;

    for (i = 0; i < g->n; i++) {
        if (g->ctx[i] != NULL)
            redisFree(g->ctx[i]);
        g->ctx[i] = NULL;
        sl_test_redis_cleanup(&g->node[i]);
    }
    g->n = 0;
}

/* Starts n servers: one plain server when !cluster, else n masters in
 * cluster mode, each given an equal range of slots by hand (redis-cli
 * --cluster create wants three masters at least), joined with CLUSTER
 * MEET, and waits until every one says the cluster is whole. Exits on
 * failure. */
static void rig_start(struct rig *g, int n, int cluster)
{
    int64_t deadline;
    int i, t;

    memset(g, 0, sizeof(*g));
    g->cluster = cluster;
    for (i = 0; i < n; i++) {
        char extra[200];
        int started = 0;

        /* A bus port taken by someone else meanwhile: try another. */
        for (t = 0; t < 3 && !started; t++) {
            g->bus[i] = free_port();
            if (g->bus[i] <= 0)
                break;
            snprintf(extra, sizeof(extra),
                     "--cluster-enabled yes --cluster-config-file nodes.conf "
                     "--cluster-node-timeout 5000 --cluster-port %d", g->bus[i]);
            started = sl_test_redis_start(&g->node[i], cluster ? extra : NULL) == 0;
        }
        if (!started) {
            rig_stop(g);
            sl_bench_die("redis-server %d did not start", i);
        }
        g->n++;
        g->ctx[i] = sl_test_connect_timeout(&g->node[i], 2000, 30000);
        if (g->ctx[i] == NULL || g->ctx[i]->err)
            sl_bench_die("cannot connect to redis-server %d", i);
    }
    if (!cluster)
        return;
    for (i = 0; i < n; i++) {
        redisReply *r = sl_bench_cmd(g->ctx[i], 0, "CLUSTER ADDSLOTSRANGE %d %d",
                                     range_lo(i, n), range_lo(i + 1, n) - 1);
        freeReplyObject(r);
    }
    for (i = 1; i < n; i++) {
        redisReply *r = sl_bench_cmd(g->ctx[0], 0, "CLUSTER MEET 127.0.0.1 %d %d",
                                     g->node[i].port, g->bus[i]);
        freeReplyObject(r);
    }
    deadline = sl_bench_mono_us() + CLUSTER_MS * 1000LL;
    for (;;) {
        int whole = 1;

        for (i = 0; i < n && whole; i++)
            whole = node_whole(g, i);
        if (whole)
            break;
        if (sl_bench_mono_us() > deadline) {
            rig_stop(g);
            sl_bench_die("the %d-master cluster did not become whole", n);
        }
        sl_bench_pause_ms(50);
    }
    /* Our slot arithmetic must be the cluster's. */
    for (i = 0; i < nstreams; i++) {
        redisReply *r = sl_bench_cmd(g->ctx[0], 0, "CLUSTER KEYSLOT %s", stream_name[i]);

        if (r->type != REDIS_REPLY_INTEGER || r->integer != stream_slot[i])
            sl_bench_die("%s: slot %d here, not what CLUSTER KEYSLOT says", stream_name[i],
                         stream_slot[i]);
        freeReplyObject(r);
    }
}

/* A server's CPU so far (INFO cpu: used_cpu_sys + used_cpu_user), us. */
static long long server_cpu(redisContext *c)
{
    redisReply *r = sl_bench_cmd(c, 0, "INFO cpu");
    const char *sys, *user;
    long long us;

    if (r->type != REDIS_REPLY_STRING
        || (sys = strstr(r->str, "used_cpu_sys:")) == NULL
        || (user = strstr(r->str, "used_cpu_user:")) == NULL)
        sl_bench_die("INFO cpu: no used_cpu_sys/used_cpu_user");
    us = (long long)(strtod(sys + 13, NULL) * 1e6 + strtod(user + 14, NULL) * 1e6);
    freeReplyObject(r);
    return us;
}

/* Writes the pool's configuration into dir/sluice.json: the noop handler,
 * one process on each stream, the defaults but trim "none", metrics off;
 * on a cluster every master as a seed. Not trimming is what makes the
 * measurement possible: the groups start at the end of their pre-filled
 * streams, so the default trim would delete every entry before the
 * release, as `make bench` explains. Exits on failure. */
static void write_config(const struct rig *g, const char *dir)
{
    char path[320], url[64], redis[512], *workers, *p;
    size_t size = (size_t)nstreams * 128 + 16;
    struct sl_test_config c = { url, NULL, "\"trim\": \"none\"", NULL, NULL, NULL };
    int i;

    workers = malloc(size);
    if (workers == NULL)
        sl_bench_die("out of memory");
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", g->node[0].port);
    if (g->cluster) {
        p = redis + snprintf(redis, sizeof(redis), "\"cluster_nodes\": [");
        for (i = 0; i < g->n; i++)
            p += sprintf(p, "%s\"127.0.0.1:%d\"", i ? ", " : "", g->node[i].port);
        sprintf(p, "]");
        c.redis = redis;
    }
    p = workers;
    for (i = 0; i < nstreams; i++)
        p += sprintf(p, "%s{\"handler\": \"noop\", \"stream\": \"%s\", \"group\": \"%s\", "
                     "\"processes\": 1}", i ? ", " : "", stream_name[i], GROUP);
    c.workers = workers;
    snprintf(path, sizeof(path), "%s/sluice.json", dir);
    if (sl_test_config_write(path, &c) != 0)
        sl_bench_die("cannot write %s", path);
    free(workers);
}

/* Prints the pool's log to stderr (after a failure). */
static void dump_log(const char *dir)
{
    char path[320], line[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/sluice.log", dir);
    if ((f = fopen(path, "r")) == NULL)
        return;
    fprintf(stderr, "---- %s ----\n", path);
    while (fgets(line, sizeof(line), f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

/* Starts `$SLUICE_BIN run -c dir/sluice.json`, its log in dir/sluice.log,
 * and waits until every stream's reader is blocked in XREADGROUP, so that
 * none of the startup is measured. Returns the supervisor's pid; exits on
 * failure. */
static pid_t pool_start(struct rig *g, const char *dir)
{
    const char *bin = getenv("SLUICE_BIN") ? getenv("SLUICE_BIN") : "build/sluice";
    char cfg[320], logp[320];
    pid_t parent = getpid(), pid;
    int64_t deadline;

    snprintf(cfg, sizeof(cfg), "%s/sluice.json", dir);
    snprintf(logp, sizeof(logp), "%s/sluice.log", dir);
    pid = fork();
    if (pid < 0)
        sl_bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int in = open("/dev/null", O_RDONLY);

        /* A benchmark killed half-way must not leave a pool behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent || fd < 0 || in < 0)
            _exit(126);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "run", "-c", cfg, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    deadline = sl_bench_mono_us() + READY_MS * 1000LL;
    for (;;) {
        int i, blocked = 0, status;

        for (i = 0; i < g->n; i++)
            blocked += sl_bench_blocked_readers(g->ctx[i]);
        if (blocked >= nstreams)
            return pid;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            dump_log(dir);
            sl_bench_die("sluice run exited early");
        }
        if (sl_bench_mono_us() > deadline) {
            dump_log(dir);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            sl_bench_die("sluice run: %d of %d readers blocked after %d ms", blocked,
                         nstreams, READY_MS);
        }
        sl_bench_pause_ms(20);
    }
}

/* SIGTERM to the pool, up to 15 s, then SIGKILL. Returns 1 when it
 * stopped by itself with status 0. */
static int pool_stop(pid_t pid)
{
    int status = -1, i;

    kill(pid, SIGTERM);
    for (i = 0; i < 1500; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0;
        sl_bench_pause_ms(10);
    }
    fprintf(stderr, "sluice-bench-cluster: sluice run ignored SIGTERM; killing it\n");
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return 0;
}

/* Removes dir/sluice.json, dir/sluice.log and dir. */
static void remove_dir(const char *dir)
{
    char path[320];

    snprintf(path, sizeof(path), "%s/sluice.json", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/sluice.log", dir);
    unlink(path);
    rmdir(dir);
}

/* Runs one row: servers up, streams filled, pool started, entries
 * released, drained, counted, everything stopped. Returns the number of
 * count errors (0 when every entry was acked). */
static int run_row(const char *name, int n, int cluster, struct result *res)
{
    struct rig g;
    char dir[64], last[MAX_STREAMS][SL_BENCH_IDLEN];
    long long per = nentries / nstreams, cpu0[MAX_NODES], n_drained;
    int drained[MAX_STREAMS], left = nstreams, i, s, errors = 0;
    int64_t t0, t1 = 0, deadline;
    pid_t pool;

    memset(res, 0, sizeof(*res));
    snprintf(res->name, sizeof(res->name), "%s", name);
    res->n = n;
    fprintf(stderr, "%s: starting %d server%s\n", name, n,
            n > 1 ? "s" : "");
    rig_start(&g, n, cluster);

    /* The entries go in before the group exists at "$": the pool starts
     * on empty groups, and they are released (SETID 0 plus one entry
     * that wakes the blocked reader) only once every reader blocks. */
    for (s = 0; s < nstreams; s++) {
        redisContext *c = g.ctx[stream_node(&g, s)];

        sl_bench_prefill(c, stream_name[s], "bench.noop", 0, per, ENTRY_LEN, last[s]);
        cmd(c, "XGROUP CREATE %s %s $", stream_name[s], GROUP);
    }
    snprintf(dir, sizeof(dir), "/tmp/sluice-bench-cluster-XXXXXX");
    if (mkdtemp(dir) == NULL)
        sl_bench_die("mkdtemp: %s", strerror(errno));
    write_config(&g, dir);
    pool = pool_start(&g, dir);

    for (i = 0; i < n; i++)
        cpu0[i] = server_cpu(g.ctx[i]);
    t0 = sl_bench_mono_us();
    for (s = 0; s < nstreams; s++) {
        redisContext *c = g.ctx[stream_node(&g, s)];

        cmd(c, "XGROUP SETID %s %s 0", stream_name[s], GROUP);
        sl_bench_prefill(c, stream_name[s], "bench.noop", per, 1, ENTRY_LEN, last[s]);
        drained[s] = 0;
    }
    /* Polled every 10 ms, not every 1 ms: the polls cost the servers
     * CPU too, and this run compares that CPU. */
    deadline = t0 + (60 + nentries / 500) * 1000000LL;
    while (left > 0) {
        for (s = 0; s < nstreams; s++) {
            struct sl_bench_group st;

            if (drained[s])
                continue;
            sl_bench_group_state(g.ctx[stream_node(&g, s)], stream_name[s], GROUP, &st);
            if (st.found && st.pending == 0 && strcmp(st.last_delivered, last[s]) == 0) {
                drained[s] = 1;
                left--;
                t1 = sl_bench_mono_us();
            }
        }
        if (left > 0 && sl_bench_mono_us() > deadline)
            break;
        if (left > 0)
            sl_bench_pause_ms(10);
    }
    for (i = 0; i < n; i++) {
        res->cpu_us[i] = server_cpu(g.ctx[i]) - cpu0[i];
        res->cpu_all += res->cpu_us[i];
    }
    if (!pool_stop(pool)) {
        fprintf(stderr, "sluice-bench-cluster: %s: sluice run did not stop cleanly\n", name);
        dump_log(dir);
    }

    /* The counts: each group delivered its stream's last entry and has
     * nothing pending, and nothing went to the dead letters. */
    n_drained = 0;
    for (s = 0; s < nstreams; s++) {
        redisContext *c = g.ctx[stream_node(&g, s)];
        struct sl_bench_group st;
        redisReply *r;
        long long dead;

        char tail[SL_BENCH_IDLEN] = "";
        long long len;

        sl_bench_group_state(c, stream_name[s], GROUP, &st);
        r = sl_bench_cmd(c, 0, "XLEN %s:dead", stream_name[s]);
        dead = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        freeReplyObject(r);
        r = sl_bench_cmd(c, 0, "XLEN %s", stream_name[s]);
        len = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        freeReplyObject(r);
        /* The stream's own last entry, not the one we remember adding:
         * an entry that came from elsewhere must be acked too. */
        r = sl_bench_cmd(c, 0, "XREVRANGE %s + - COUNT 1", stream_name[s]);
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1
            && r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements > 0
            && r->element[0]->element[0]->type == REDIS_REPLY_STRING)
            snprintf(tail, sizeof(tail), "%s", r->element[0]->element[0]->str);
        freeReplyObject(r);
        if (!st.found || st.pending != 0 || strcmp(st.last_delivered, tail) != 0
            || strcmp(tail, last[s]) != 0 || len != per + 1 || dead != 0) {
            fprintf(stderr, "sluice-bench-cluster: %s: %s: group %s, pending %lld, last "
                    "delivered %s, stream's last entry %s (ours %s), %lld entries of %lld, "
                    "%lld dead letters\n", name, stream_name[s],
                    st.found ? "found" : "missing", st.pending, st.last_delivered, tail,
                    last[s], len, per + 1, dead);
            errors++;
            continue;
        }
        res->entries[stream_node(&g, s)] += per + 1;
        res->streams[stream_node(&g, s)]++;
        n_drained += per + 1;
    }
    if (errors > 0 && !keep)
        dump_log(dir);
    res->total = n_drained;
    res->secs = t1 > t0 ? (double)(t1 - t0) / 1e6 : 0;
    if (keep)
        fprintf(stderr, "sluice-bench-cluster: %s: kept %s and the servers' directories\n",
                name, dir);
    else
        remove_dir(dir);
    if (keep)
        for (i = 0; i < n; i++) {
            redisFree(g.ctx[i]);
            g.ctx[i] = NULL;
            sl_test_redis_stop(&g.node[i]);
        }
    else
        rig_stop(&g);
    return errors;
}

/* The sum of a row's server CPU, us. */
static long long cpu_sum(const struct result *r)
{
    return r->cpu_all;
}

/* The sum of the (median) CPU of a row's servers, us: what each
 * server's share of the CPU is taken of. */
static long long cpu_parts(const struct result *r)
{
    long long sum = 0;
    int i;

    for (i = 0; i < r->n; i++)
        sum += r->cpu_us[i];
    return sum;
}

/* Prints the table: one line per row, then one per master of a cluster
 * row. */
static void print_table(const struct result *rows, int nrows)
{
    double base = rows[0].total > 0 ? (double)cpu_sum(&rows[0]) / (double)rows[0].total : 0;
    int k, i;

    printf("%-11s %-6s %7s %8s %9s %7s %8s %9s %9s %8s %9s\n", "run", "master", "streams",
           "entries", "msgs/s", "share", "vs even", "cpu ms", "cpu share", "us/msg",
           "vs stand.");
    for (k = 0; k < nrows; k++) {
        const struct result *r = &rows[k];
        double per = r->total > 0 ? (double)cpu_sum(r) / (double)r->total : 0;

        printf("%-11s %-6s %7d %8lld %9.0f %7s %8s %9.1f %9s %8.2f %8.2fx\n", r->name, "all",
               nstreams, r->total, r->secs > 0 ? (double)r->total / r->secs : 0, "100%", "",
               (double)cpu_sum(r) / 1000.0, "100%", per, base > 0 ? per / base : 0);
        if (r->n < 2)
            continue;
        for (i = 0; i < r->n; i++) {
            double share = r->total > 0 ? (double)r->entries[i] / (double)r->total : 0;
            double cshare = cpu_parts(r) > 0 ? (double)r->cpu_us[i] / (double)cpu_parts(r) : 0;
            char m[16], sh[32], dev[32], csh[48];

            snprintf(m, sizeof(m), "%d", i);
            snprintf(sh, sizeof(sh), "%.1f%%", share * 100);
            snprintf(dev, sizeof(dev), "%+.1f%%", (share * r->n - 1) * 100);
            snprintf(csh, sizeof(csh), "%.1f%% %+.0f%%", cshare * 100, (cshare * r->n - 1) * 100);
            printf("%-11s %-6s %7d %8lld %9s %7s %8s %9.1f %9s %8.2f %9s\n", "", m,
                   r->streams[i], r->entries[i], "", sh, dev, (double)r->cpu_us[i] / 1000.0,
                   csh, r->entries[i] > 0 ? (double)r->cpu_us[i] / (double)r->entries[i] : 0,
                   "");
        }
    }
}

/* Prints the header: date, machine, load, and what the run does. */
static void print_header(void)
{
    struct utsname u;
    time_t now = time(NULL);
    char when[64];
    double load[3] = { 0, 0, 0 };

    strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&now));
    if (uname(&u) != 0)
        snprintf(u.machine, sizeof(u.machine), "?");
    if (getloadavg(load, 3) < 0)
        load[0] = load[1] = load[2] = -1;
    printf("sluice-bench-cluster  %s  %ld cpus (%s)  load %.2f %.2f %.2f\n", when,
           sysconf(_SC_NPROCESSORS_ONLN), u.machine, load[0], load[1], load[2]);
    printf("no-op drain of %lld entries (+%d release entries) on %d tagged streams, "
           "one `sluice run` (noop handler, defaults, %d processes); cluster rows: "
           "masters only\n", nentries - nentries % nstreams, nstreams, nstreams, nstreams);
}

/* Sorts doubles (qsort). */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The median of n values (n <= MAX_ROUNDS); v is reordered. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Folds the rounds of each row into one result: the median over the
 * rounds of the drain time, of the servers' summed CPU and of each
 * server's CPU (the counts are the same in every round that passed its
 * check). */
static void fold(struct result all[][4], int rounds, struct result *out)
{
    double v[MAX_ROUNDS];
    int k, i, r;

    for (k = 0; k < 4; k++) {
        out[k] = all[0][k];
        for (r = 0; r < rounds; r++)
            v[r] = all[r][k].secs;
        out[k].secs = median(v, rounds);
        for (r = 0; r < rounds; r++)
            v[r] = (double)all[r][k].cpu_all;
        out[k].cpu_all = (long long)median(v, rounds);
        for (i = 0; i < out[k].n; i++) {
            for (r = 0; r < rounds; r++)
                v[r] = (double)all[r][k].cpu_us[i];
            out[k].cpu_us[i] = (long long)median(v, rounds);
        }
    }
}

/* Options, the rounds of four rows, the table. Exits 1 when a count was
 * wrong. */
int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "entries", required_argument, NULL, 'n' },
        { "streams", required_argument, NULL, 's' },
        { "rounds", required_argument, NULL, 'r' },
        { "keep", no_argument, NULL, 'k' },
        { NULL, 0, NULL, 0 },
    };
    static struct result all[MAX_ROUNDS][4];
    struct result rows[4];
    int opt, errors = 0, k, r;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'n':
            nentries = strtoll(optarg, NULL, 10);
            break;
        case 's':
            nstreams = atoi(optarg);
            break;
        case 'r':
            rounds = atoi(optarg);
            break;
        case 'k':
            keep = 1;
            break;
        default:
            fprintf(stderr, "usage: %s [--entries N] [--streams S] [--rounds R] [--keep]\n",
                    argv[0]);
            return 2;
        }
    }
    if (nstreams < 6 || nstreams > MAX_STREAMS || nstreams % 6 != 0 || nentries < nstreams
        || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "%s: --streams must be a multiple of 6 up to %d, --entries at "
                "least --streams, --rounds 1 to %d\n", argv[0], MAX_STREAMS, MAX_ROUNDS);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    pick_streams();
    print_header();
    fflush(stdout);
    for (r = 0; r < rounds; r++) {
        /* Odd rounds run the rows backwards, so that a drift of the
         * machine's load does not always favour the same row. */
        for (k = 0; k < 4; k++) {
            int row = r % 2 ? 3 - k : k;
            char name[24];

            if (row == 0)
                snprintf(name, sizeof(name), "standalone");
            else
                snprintf(name, sizeof(name), "cluster-%d", row);
            fprintf(stderr, "sluice-bench-cluster: round %d of %d: ", r + 1, rounds);
            errors += run_row(name, row ? row : 1, row > 0, &all[r][row]);
        }
    }
    fold(all, rounds, rows);
    print_table(rows, 4);
    printf("each round's cluster Redis CPU per message / standalone's:");
    for (r = 0; r < rounds; r++) {
        double base = (double)cpu_sum(&all[r][0]) / (double)(all[r][0].total ? all[r][0].total : 1);

        printf("  round %d:", r + 1);
        for (k = 1; k < 4; k++)
            printf(" %.2fx", base > 0 ? (double)cpu_sum(&all[r][k])
                   / (double)(all[r][k].total ? all[r][k].total : 1) / base : 0);
    }
    printf("\n");
    if (errors > 0) {
        printf("FAILED: %d stream%s not fully acked (see above)\n", errors,
               errors > 1 ? "s" : "");
        return 1;
    }
    printf("counts: every entry acked, nothing pending, no dead letters\n");
    return 0;
}
