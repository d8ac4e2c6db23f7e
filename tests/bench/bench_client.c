/* bench_client.c -- the ceiling: minimal clients of our own.
 *
 * Each child is this binary re-executed (`sluice-bench --child ...`, by
 * posix_spawn, so that no page of the parent is counted in its RSS;
 * behind the words of $BENCH_CEILING_WRAP when set, e.g. a profiler). It
 * connects with hiredis's synchronous API, tells the parent it is ready,
 * waits for the start byte, and then loops:
 *
 *   noop:    [XACK of the previous batch] + XREADGROUP COUNT n ... >
 *            written in one go, both replies read back (the shape of the
 *            issue's ceiling);
 *   ahead:   the same commands, but the read of batch k+1 goes out before
 *            batch k is acked (shown for information);
 *   payment: the payment worker's own effect script
 *            (sl__script_effect_source() of payment_handler.scripts[0],
 *            fenced, with the framework's keys and arguments) as EVALSHA,
 *            committing each run of consecutive entries of one read that
 *            declared the same script in one call (effect.lua's kind
 *            "run", at most RUN_MAX entries), as the worker does, and
 *            reading one batch ahead so that the client's work overlaps
 *            Redis's (without it a single sluice process, which overlaps
 *            them too, beat this "ceiling"). The script's arguments come
 *            from the payment handler itself, called directly on a
 *            context, so the ceiling sends exactly what sluice sends: only
 *            the framework is missing;
 *   block:   like noop with BLOCK 100, until SIGTERM (latency rows);
 *   flow-user, flow-order, flow-payment: like payment, with the user
 *            worker's scripts (user.created, user.credited), the order
 *            worker's (order.created and the payment results) or the
 *            payment worker's, and BLOCK 100 until SIGTERM, since in the
 *            whole-flow rows the entries arrive while the flow runs.
 *
 * It stops when a read returns nothing (the pre-filled stream is drained),
 * and reports "done hwm_kb cpu_us" on stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <jansson.h>
#include "internal.h"
#include "scripts.h"
#include "bench.h"

extern char **environ;
extern const struct sl_handler payment_handler;
extern const struct sl_handler order_handler;
extern const struct sl_handler user_handler;

/* ---------------------------------------------------------------------
 * The child
 * ------------------------------------------------------------------ */

static volatile sig_atomic_t child_stop; /* SIGTERM seen (block mode) */

/* Async-signal-safe: remember that we were asked to stop. */
static void on_term(int sig)
{
    (void)sig;
    child_stop = 1;
}

/* A run's bounds, the worker's (framework/worker.c RUN_MAX and
 * friends, which are static there): a run longer than sluice's would
 * make the ceiling cheaper than anything sluice can do for a reason
 * that is not the framework's overhead. */
#define RUN_MAX 64                /* entries of one run */
#define RUN_VALUES_MAX 4000       /* handler keys and arguments of one run */
#define RUN_BYTES_MAX (1 << 20)   /* bytes of handler keys and arguments of one run */

/* The effects of a run not sent yet: each entry's ID, its handler keys
 * and arguments, copied out of the context (which the next entry resets). */
struct run {
    int n;                        /* entries in the run */
    int script;                   /* their effect script (index into esha) */
    const char *id[RUN_MAX];      /* entry IDs, borrowed from the read reply */
    size_t idlen[RUN_MAX];        /* their lengths */
    int nkeys[RUN_MAX], nargs[RUN_MAX]; /* each entry's handler keys and arguments */
    char *buf;                    /* the values, each followed by a NUL */
    size_t len, cap;              /* bytes used and allocated in buf */
    size_t *off, *vlen;           /* each value's offset in buf and length */
    size_t nval, valcap;          /* values used and allocated */
    char lay[RUN_MAX * 48];       /* the layout argument: "nk na 0" per entry */
};

/* What one child needs while it runs. */
struct child {
    redisContext *c;              /* its only connection */
    const char *stream, *group, *consumer; /* from argv */
    char count[16];               /* COUNT as text */
    int mode;                     /* SL_BENCH_MODE_* */
    long long done;               /* entries acked */
    const struct sl_handler *h;   /* payment, flow: the handler whose effects run */
    int block;                    /* 1: BLOCK 100 reads until SIGTERM */
    struct sl_ctx *ctx;           /* payment: the handler's context */
    char esha[4][41];             /* payment: SHA1 of each effect script */
    char akey[512], dkey[512];    /* payment: attempts hash, dead letters */
    const char **argv;            /* payment: EVALSHA argument vector */
    size_t *argvlen;              /* its lengths */
    size_t argcap;                /* entries allocated in both */
    struct run run;               /* payment, flow: the run in hand */
    size_t calls;                 /* payment, flow: script calls sent for the batch in hand */
};

/* Appends XREADGROUP ... >, with BLOCK 100 when `block`. */
static void append_read(struct child *ch, int block)
{
    const char *argv[] = { "XREADGROUP", "GROUP", ch->group, ch->consumer, "COUNT",
                           ch->count, "BLOCK", "100", "STREAMS", ch->stream, ">" };
    const char *nb[] = { "XREADGROUP", "GROUP", ch->group, ch->consumer, "COUNT",
                         ch->count, "STREAMS", ch->stream, ">" };

    if (block)
        redisAppendCommandArgv(ch->c, 11, argv, NULL);
    else
        redisAppendCommandArgv(ch->c, 9, nb, NULL);
}

/* Returns the list of [id, fields] entries of an XREADGROUP reply, or
 * NULL when it holds none. */
static const redisReply *entries_of(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return NULL;
    r = r->element[0];
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY || r->element[1]->elements == 0)
        return NULL;
    return r->element[1];
}

/* Appends one XACK for every entry of `list`. */
static void append_ack(struct child *ch, const redisReply *list)
{
    size_t n = list->elements, i;
    const char **argv = malloc((n + 3) * sizeof(*argv));
    size_t *len = malloc((n + 3) * sizeof(*len));

    if (argv == NULL || len == NULL)
        sl_bench_die("out of memory");
    argv[0] = "XACK";
    len[0] = 4;
    argv[1] = ch->stream;
    len[1] = strlen(ch->stream);
    argv[2] = ch->group;
    len[2] = strlen(ch->group);
    for (i = 0; i < n; i++) {
        const redisReply *id = list->element[i]->element[0];
        argv[3 + i] = id->str;
        len[3 + i] = (size_t)id->len;
    }
    redisAppendCommandArgv(ch->c, (int)(n + 3), argv, len);
    free(argv);
    free(len);
}

/* Makes room for n EVALSHA arguments. */
static void args_reserve(struct child *ch, size_t n)
{
    if (n <= ch->argcap)
        return;
    ch->argv = realloc(ch->argv, n * sizeof(*ch->argv));
    ch->argvlen = realloc(ch->argvlen, n * sizeof(*ch->argvlen));
    if (ch->argv == NULL || ch->argvlen == NULL)
        sl_bench_die("out of memory");
    ch->argcap = n;
}

/* Sets argument i to a C string. */
static void arg(struct child *ch, size_t i, const char *s)
{
    ch->argv[i] = s;
    ch->argvlen[i] = strlen(s);
}

/* Writes everything appended so far to the socket. */
static void flush_out(struct child *ch)
{
    int done = 0;

    do {
        if (redisBufferWrite(ch->c, &done) != REDIS_OK)
            sl_bench_die("child %s: write: %s", ch->consumer, ch->c->errstr);
    } while (!done);
}

/* Sends the run in hand as one call of its effect script, laid out as
 * framework/worker.c's run_flush() lays it out (effect.lua, kind "run"):
 * keys are the framework's three, then each entry's own; arguments the
 * framework's ten (the ID range in ID and error, the layout in trim),
 * then each entry's ID followed by its own arguments. Empties the run. */
static void run_flush(struct child *ch)
{
    struct run *u = &ch->run;
    size_t nkeys = SL_FW_KEYS, nargs, n = 0, kp, ap, v = 0, pos = 0;
    char nk[16], hi[64];
    int i, j;

    if (u->n == 0)
        return;
    for (i = 0; i < u->n; i++) {
        nkeys += (size_t)u->nkeys[i];
        /* At most 45 bytes per entry: snprintf never cuts. */
        pos += (size_t)snprintf(u->lay + pos, sizeof(u->lay) - pos, "%s%d %d 0",
                                i > 0 ? " " : "", u->nkeys[i], u->nargs[i]);
    }
    nargs = SL_FW_ARGS + (size_t)u->n + (u->nval - (nkeys - SL_FW_KEYS));
    args_reserve(ch, 3 + nkeys + nargs);
    /* Entries of one XREADGROUP ... > come in ID order: the range is
     * the first ID to the last. */
    snprintf(hi, sizeof(hi), "%.*s", (int)u->idlen[u->n - 1], u->id[u->n - 1]);
    snprintf(nk, sizeof(nk), "%zu", nkeys);
    arg(ch, n++, "EVALSHA");
    arg(ch, n++, ch->esha[u->script]);
    arg(ch, n++, nk);
    arg(ch, n++, ch->stream);
    arg(ch, n++, ch->akey);
    arg(ch, n++, ch->dkey);
    kp = n;
    ap = n + (nkeys - SL_FW_KEYS);
    n = ap;
    arg(ch, n++, ch->group);
    arg(ch, n++, ch->consumer);
    ch->argv[n] = u->id[0];
    ch->argvlen[n++] = u->idlen[0];
    arg(ch, n++, "5");
    arg(ch, n++, "1000");
    arg(ch, n++, "60000");
    arg(ch, n++, "run");
    arg(ch, n++, hi);
    arg(ch, n++, u->lay);
    arg(ch, n++, "0");
    ap = n;
    for (i = 0; i < u->n; i++) {
        for (j = 0; j < u->nkeys[i]; j++, v++, kp++) {
            ch->argv[kp] = u->buf + u->off[v];
            ch->argvlen[kp] = u->vlen[v];
        }
        ch->argv[ap] = u->id[i];
        ch->argvlen[ap++] = u->idlen[i];
        for (j = 0; j < u->nargs[i]; j++, v++, ap++) {
            ch->argv[ap] = u->buf + u->off[v];
            ch->argvlen[ap] = u->vlen[v];
        }
    }
    if (ap != 3 + nkeys + nargs)
        sl_bench_die("run layout: %zu arguments, expected %zu", ap, 3 + nkeys + nargs);
    redisAppendCommandArgv(ch->c, (int)ap, ch->argv, ch->argvlen);
    /* Out at once: Redis runs this run while the handler works on the
     * next entries of the batch, so a 500-entry batch does not keep Redis
     * idle for its whole handler time. */
    flush_out(ch);
    ch->calls++;
    u->n = 0;
    u->len = 0;
    u->nval = 0;
}

/* Parses one entry, lets the handler (payment, order or user) declare
 * its effect, and adds it to the run in hand, sending the run first
 * when the script differs or a bound would be passed, as the worker
 * does. The entry's ID stays borrowed from the read reply, which lives
 * until the run is sent. */
static void add_effect(struct child *ch, const redisReply *e)
{
    const redisReply *id = e->element[0], *f = e->element[1];
    struct run *u = &ch->run;
    struct sl_msg msg;
    json_t *data = NULL;
    const char *type = NULL;
    size_t i, nv, bytes = 0;
    int k;

    memset(&msg, 0, sizeof(msg));
    for (i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        const redisReply *name = f->element[i], *v = f->element[i + 1];
        if (strcmp(name->str, "type") == 0)
            type = v->str;
        else if (strcmp(name->str, "data") == 0) {
            msg.raw_data = v->str;
            msg.raw_data_len = (size_t)v->len;
            data = json_loadb(v->str, (size_t)v->len, JSON_REJECT_DUPLICATES, NULL);
        }
    }
    if (type == NULL || data == NULL)
        sl_bench_die("%s entry %s: no type or unparsable data", ch->h->name, id->str);
    msg.id = id->str;
    msg.stream = ch->stream;
    msg.type = type;
    msg.data = data;
    msg.deliveries = 1;
    sl__ctx_reset(ch->ctx);
    if (sl_handler_call(ch->h, ch->ctx, &msg, NULL) != SL_ACK || ch->ctx->script < 0 ||
        ch->ctx->script >= 4)
        sl_bench_die("%s entry %s: handler refused it: %s", ch->h->name, id->str, ch->ctx->err);
    json_decref(data);

    nv = (size_t)(ch->ctx->nkeys + ch->ctx->nargs);
    for (k = 0; k < (int)nv; k++) {
        size_t len;
        (void)sl__ctx_effect_arg(ch->ctx, k, &len);
        bytes += len + 1;
    }
    if (nv > RUN_VALUES_MAX || bytes > RUN_BYTES_MAX)
        sl_bench_die("%s entry %s: an effect too large for a run", ch->h->name, id->str);
    if (u->n > 0 && (u->script != ch->ctx->script || u->n == RUN_MAX ||
                     u->nval + nv > RUN_VALUES_MAX || u->len + bytes > RUN_BYTES_MAX))
        run_flush(ch);
    if (u->len + bytes > u->cap) {
        size_t cap = u->cap ? u->cap : 4096;
        while (cap < u->len + bytes)
            cap *= 2;
        if ((u->buf = realloc(u->buf, cap)) == NULL)
            sl_bench_die("out of memory");
        u->cap = cap;
    }
    if (u->nval + nv > u->valcap) {
        size_t cap = u->valcap ? u->valcap : 256;
        while (cap < u->nval + nv)
            cap *= 2;
        u->off = realloc(u->off, cap * sizeof(*u->off));
        u->vlen = realloc(u->vlen, cap * sizeof(*u->vlen));
        if (u->off == NULL || u->vlen == NULL)
            sl_bench_die("out of memory");
        u->valcap = cap;
    }
    for (k = 0; k < (int)nv; k++) {
        size_t len;
        const char *s = sl__ctx_effect_arg(ch->ctx, k, &len);

        memcpy(u->buf + u->len, s, len);
        u->buf[u->len + len] = '\0';
        u->off[u->nval] = u->len;
        u->vlen[u->nval++] = len;
        u->len += len + 1;
    }
    u->script = ch->ctx->script;
    u->id[u->n] = id->str;
    u->idlen[u->n] = (size_t)id->len;
    u->nkeys[u->n] = ch->ctx->nkeys;
    u->nargs[u->n] = ch->ctx->nargs;
    u->n++;
}

/* Reads one reply; dies on a lost connection or an error reply. */
static redisReply *get_reply(struct child *ch, const char *what)
{
    redisReply *r;

    if (redisGetReply(ch->c, (void **)&r) != REDIS_OK)
        sl_bench_die("child %s: %s: %s", ch->consumer, what, ch->c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        sl_bench_die("child %s: %s: %s", ch->consumer, what, r->str);
    return r;
}

/* Loads the handler's effect scripts (at most 4) and prepares the
 * framework's keys. */
static void effect_setup(struct child *ch)
{
    int k;

    ch->ctx = sl__ctx_new(ch->h);
    if (ch->ctx == NULL)
        sl_bench_die("out of memory");
    for (k = 0; ch->h->scripts[k] != NULL; k++) {
        char *src = sl__script_effect_source(ch->h->scripts[k]);
        redisReply *r;

        if (src == NULL || k >= 4)
            sl_bench_die("%s: cannot load script %d", ch->h->name, k);
        r = redisCommand(ch->c, "SCRIPT LOAD %s", src);
        if (r == NULL || r->type != REDIS_REPLY_STRING)
            sl_bench_die("SCRIPT LOAD of a %s script failed", ch->h->name);
        snprintf(ch->esha[k], sizeof(ch->esha[k]), "%s", r->str);
        freeReplyObject(r);
        free(src);
    }
    sl__attempts_key(ch->akey, sizeof(ch->akey), ch->stream, ch->group);
    snprintf(ch->dkey, sizeof(ch->dkey), "%s:dead", ch->stream);
}

/* Appends the commits of one batch: one XACK for all its entries, or
 * one effect script call per run. Returns the number of replies owed. */
static size_t append_commits(struct child *ch, const redisReply *list)
{
    size_t i;

    if (ch->h == NULL) {
        append_ack(ch, list);
        return 1;
    }
    ch->calls = 0;
    for (i = 0; i < list->elements; i++)
        add_effect(ch, list->element[i]);
    run_flush(ch);
    return ch->calls;
}

/* Reads n commit replies and counts the entries they acked: a plain
 * XACK's count, or each entry of a run's reply that says 1 (acked; 0 is
 * an entry no longer ours, a string an effect that failed). */
static void collect(struct child *ch, size_t n)
{
    size_t i, j;

    for (i = 0; i < n; i++) {
        redisReply *r = get_reply(ch, "ack");
        if (ch->h != NULL) {
            if (r->type != REDIS_REPLY_ARRAY)
                sl_bench_die("child %s: a run's reply is not an array", ch->consumer);
            for (j = 0; j < r->elements; j++)
                ch->done += r->element[j]->type == REDIS_REPLY_INTEGER &&
                            r->element[j]->integer == 1;
        } else if (r->type == REDIS_REPLY_INTEGER)
            ch->done += r->integer;
        freeReplyObject(r);
    }
}

/* The loop the issue prescribes: each round trip carries the previous
 * batch's commits and the next read, so the client's work and Redis's
 * work on one connection alternate. */
static void serial_loop(struct child *ch)
{
    redisReply *prev = NULL;      /* the batch whose acks go out next */

    for (;;) {
        const redisReply *list = prev ? entries_of(prev) : NULL;
        size_t owed = list != NULL ? append_commits(ch, list) : 0;

        append_read(ch, ch->block);
        collect(ch, owed);
        if (prev != NULL)
            freeReplyObject(prev);
        prev = get_reply(ch, "XREADGROUP");
        if (entries_of(prev) == NULL) {
            freeReplyObject(prev);
            prev = NULL;
            if (!ch->block || child_stop)
                return;
        }
    }
}

/* The read-ahead loop: the read of batch k+1 goes out before the client
 * works on batch k, and batch k's commits go out before the replies of
 * batch k-1's are read, so the client's work (parsing, the handler)
 * overlaps Redis's. The order of replies on the connection is then
 * C(k-1), READ(k+1), C(k). */
static void ahead_loop(struct child *ch)
{
    redisReply *cur;
    size_t owed = 0;              /* commit replies sent, not yet read */

    append_read(ch, 0);
    cur = get_reply(ch, "XREADGROUP");
    while (entries_of(cur) != NULL || (ch->block && !child_stop)) {
        redisReply *next;
        size_t n = 0;

        /* A BLOCKing read would hold up the commits queued behind it on
         * the connection: block only when there is nothing to commit. */
        append_read(ch, ch->block && entries_of(cur) == NULL && owed == 0);
        flush_out(ch);
        if (entries_of(cur) != NULL)
            n = append_commits(ch, entries_of(cur));
        flush_out(ch);
        collect(ch, owed);
        next = get_reply(ch, "XREADGROUP");
        freeReplyObject(cur);
        cur = next;
        owed = n;
    }
    freeReplyObject(cur);
    collect(ch, owed);
}

/* argv: mode port stream group consumer count. stdin carries the start
 * byte, stdout the ready byte and then the result line. */
int sl_bench_child_main(int argc, char **argv)
{
    struct child ch;
    struct rusage ru;
    struct sl_bench_proc self;
    struct sigaction sa;
    char b;
    int port;

    if (argc != 6)
        sl_bench_die("--child: expected mode port stream group consumer count");
    memset(&ch, 0, sizeof(ch));
    ch.mode = atoi(argv[0]);
    port = atoi(argv[1]);
    ch.stream = argv[2];
    ch.group = argv[3];
    ch.consumer = argv[4];
    snprintf(ch.count, sizeof(ch.count), "%s", argv[5]);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);

    ch.c = redisConnect("127.0.0.1", port);
    if (ch.c == NULL || ch.c->err)
        sl_bench_die("child: cannot connect to port %d", port);
    if (ch.mode == SL_BENCH_MODE_PAYMENT || ch.mode == SL_BENCH_MODE_FLOW_PAYMENT)
        ch.h = &payment_handler;
    else if (ch.mode == SL_BENCH_MODE_FLOW_ORDER)
        ch.h = &order_handler;
    else if (ch.mode == SL_BENCH_MODE_FLOW_USER)
        ch.h = &user_handler;
    ch.block = ch.mode == SL_BENCH_MODE_BLOCK || ch.mode == SL_BENCH_MODE_FLOW_ORDER ||
               ch.mode == SL_BENCH_MODE_FLOW_PAYMENT || ch.mode == SL_BENCH_MODE_FLOW_USER;
    if (ch.h != NULL)
        effect_setup(&ch);
    if (write(1, "R", 1) != 1 || read(0, &b, 1) != 1)
        return 1;
    if (ch.h != NULL || ch.mode == SL_BENCH_MODE_AHEAD)
        ahead_loop(&ch);
    else
        serial_loop(&ch);

    getrusage(RUSAGE_SELF, &ru);
    sl_bench_proc_read(getpid(), &self);
    printf("%lld %lld %lld\n", ch.done, self.hwm_kb,
           (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    fflush(stdout);
    sl__ctx_free(ch.ctx);
    free(ch.argv);
    free(ch.argvlen);
    free(ch.run.buf);
    free(ch.run.off);
    free(ch.run.vlen);
    redisFree(ch.c);
    return 0;
}

/* ---------------------------------------------------------------------
 * The parent's side
 * ------------------------------------------------------------------ */

/* Makes a pipe whose both ends close on exec. Returns 0 or -1. */
static int cloexec_pipe(int fd[2])
{
    if (pipe(fd) < 0)
        return -1;
    fcntl(fd[0], F_SETFD, FD_CLOEXEC);
    fcntl(fd[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

/* Reads exactly one byte from fd within timeout_ms. Returns 0 or -1. */
static int read_byte(int fd, long long timeout_ms)
{
    struct pollfd p = { fd, POLLIN, 0 };
    char b;

    if (poll(&p, 1, (int)timeout_ms) != 1)
        return -1;
    return read(fd, &b, 1) == 1 ? 0 : -1;
}

/* Spawns the children and waits until each is connected. */
int sl_bench_clients_start(struct sl_bench_clients *cl, const struct sl_bench_redis *r,
                           int n, int mode, const char *stream, const char *group,
                           int count)
{
    int go[2], i, nw = 0;
    char smode[16], sport[16], scount[16], consumer[64], exe[512] = "";
    char *argv[32], *wrap = NULL, *tok, *save = NULL;

    memset(cl, 0, sizeof(*cl));
    if (n < 1 || n > 8 || cloexec_pipe(go) < 0)
        return -1;
    cl->go_fd = go[1];
    snprintf(smode, sizeof(smode), "%d", mode);
    snprintf(sport, sizeof(sport), "%d", r->port);
    snprintf(scount, sizeof(scount), "%d", count);
    if (readlink("/proc/self/exe", exe, sizeof(exe) - 1) < 0)
        return -1;
    if (getenv("BENCH_CEILING_WRAP") != NULL)
        wrap = strdup(getenv("BENCH_CEILING_WRAP"));
    for (tok = wrap ? strtok_r(wrap, " ", &save) : NULL; tok != NULL && nw < 16;
         tok = strtok_r(NULL, " ", &save))
        argv[nw++] = tok;
    argv[nw + 0] = exe;
    argv[nw + 1] = (char *)"--child";
    argv[nw + 2] = smode;
    argv[nw + 3] = sport;
    argv[nw + 4] = (char *)stream;
    argv[nw + 5] = (char *)group;
    argv[nw + 6] = consumer;
    argv[nw + 7] = scount;
    argv[nw + 8] = NULL;
    for (i = 0; i < n; i++) {
        posix_spawn_file_actions_t fa;
        int out[2], rc;

        snprintf(consumer, sizeof(consumer), "ceiling-%d", i);
        if (cloexec_pipe(out) < 0)
            return -1;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, go[0], 0);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        rc = posix_spawnp(&cl->pid[i], argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(out[1]);
        if (rc != 0) {
            close(out[0]);
            fprintf(stderr, "sluice-bench: posix_spawn: %s\n", strerror(rc));
            return -1;
        }
        cl->out_fd[i] = out[0];
        cl->n++;
    }
    close(go[0]);
    free(wrap);
    for (i = 0; i < n; i++)
        if (read_byte(cl->out_fd[i], 60000) < 0) {
            fprintf(stderr, "sluice-bench: ceiling child %d did not get ready\n", i);
            return -1;
        }
    return 0;
}

/* Writes one start byte per child. */
void sl_bench_clients_go(struct sl_bench_clients *cl)
{
    char buf[8] = { 'g', 'g', 'g', 'g', 'g', 'g', 'g', 'g' };

    if (write(cl->go_fd, buf, (size_t)cl->n) != (ssize_t)cl->n)
        sl_bench_die("cannot start the ceiling children");
}

/* Collects every child's result line and exit status. */
int sl_bench_clients_finish(struct sl_bench_clients *cl, int stop,
                            long long timeout_ms, struct sl_bench_child_result *sum)
{
    int i, rc = 0;

    memset(sum, 0, sizeof(*sum));
    for (i = 0; i < cl->n && stop; i++)
        kill(cl->pid[i], SIGTERM);
    for (i = 0; i < cl->n; i++) {
        struct pollfd p = { cl->out_fd[i], POLLIN, 0 };
        char line[128];
        ssize_t got = 0;
        long long done, hwm, cpu;
        int status;

        if (poll(&p, 1, (int)timeout_ms) == 1)
            got = read(cl->out_fd[i], line, sizeof(line) - 1);
        line[got > 0 ? got : 0] = '\0';
        if (sscanf(line, "%lld %lld %lld", &done, &hwm, &cpu) == 3) {
            sum->done += done;
            sum->cpu_us += cpu;
            if (hwm > sum->hwm_kb)
                sum->hwm_kb = hwm;
        } else {
            fprintf(stderr, "sluice-bench: ceiling child %d reported nothing\n", i);
            kill(cl->pid[i], SIGKILL);
            rc = -1;
        }
        if (waitpid(cl->pid[i], &status, 0) == cl->pid[i] &&
            !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            rc = -1;
        close(cl->out_fd[i]);
    }
    close(cl->go_fd);
    cl->n = 0;
    return rc;
}
