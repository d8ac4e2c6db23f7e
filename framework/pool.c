/* pool.c -- `sluice run`: the supervisor of a pool of worker processes.
 *
 * Like nginx's master, the supervisor handles no entries itself. It forks
 * `processes` children per configured worker, each under its stable
 * consumer name <host>:<handler>:<slot>, restarts any that die (with a
 * per-slot backoff so a crash loop costs little), and watches them through
 * a shared-memory slot each child writes:
 *   - a handler running past handler_timeout_ms gets its process killed;
 *   - a batch in hand for long gets its lease renewed (idle time reset
 *     without raising the delivery count), since a handler that blocks
 *     cannot renew its own;
 *   - when a child dies holding an entry, that counts as a failed attempt
 *     of the entry, with the exit status or signal as its reason, so a
 *     poison entry that crashes every worker ends in the dead-letter
 *     stream instead of crash-looping the pool.
 * The supervisor's own Redis connection is synchronous with timeouts: it
 * makes a few small calls a second at most.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <event2/event.h>
#include <hiredis.h>
#include "internal.h"
#include "pool.h"
#include "scripts.h"
#include "heartbeat.h"

#define TICK_MS 50                /* supervisor timer period */
#define HOUSEKEEPING_MS 5000      /* janitor and trim period */
#define RESTART_BASE_MS 100       /* first restart delay of a crashing slot */
#define RESTART_CAP_MS 10000      /* longest restart delay */
#define STABLE_MS 10000           /* a child that lived this long resets its backoff */
#define RECORD_HOLD_MS 500        /* longest wait of a restart for its crash record */
#define DRAIN_MS 1000             /* longest wait for Redis's last replies at a stop */

/* ------------------------------------------------------------------ */
/* Children                                                            */
/* ------------------------------------------------------------------ */

/* Returns the number of descriptors this process has open, or -1 when
 * /proc cannot tell. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;                 /* less the directory's own */
}

/* In a child whose worker failed (mostly: could not start): logs why, in
 * the pool's log format, so that the supervisor's child_exited line that
 * follows has its reason next to it. Some start failures (an event base
 * or a pipe that cannot be made) are told only by libevent's own lines,
 * so the last errno and the descriptor count, the usual culprit, are
 * given here. err is an errno value, or 0. */
static void log_child_failed(int rc, int err)
{
    struct rlimit rl;
    long long limit = -1;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        limit = (long long)rl.rlim_cur;
    sl__log(SL_LOG_ERROR, "child_failed", "status=%d error=%s open_fds=%d fd_limit=%lld", rc,
            sl__logq(err != 0 ? strerror(err) : "none reported"), open_fds(), limit);
}

/* libevent's log callback: its warnings and errors, such as a descriptor
 * it could not get, become lines of the pool's log (event=libevent)
 * rather than bare "[warn] ..." lines, so that they carry the process and
 * its role like every other line. */
static void on_libevent_log(int severity, const char *msg)
{
    int level = severity >= EVENT_LOG_ERR ? SL_LOG_ERROR :
                severity == EVENT_LOG_WARN ? SL_LOG_WARN : SL_LOG_DEBUG;

    sl__log(level, "libevent", "message=%s", sl__logq(msg));
}

/* The supervisor's pid, for on_libevent_fatal. */
static pid_t fatal_supervisor;

/* libevent's fatal-error callback, instead of its bare exit(1): a child
 * whose worker cannot make its event base (its signal socket pair, for
 * want of a descriptor) ends here, so the reason is logged as
 * child_failed before the supervisor logs the exit status. code is
 * libevent's exit code; errno still tells what failed. */
static void on_libevent_fatal(int code)
{
    int err = errno;

    if (getpid() != fatal_supervisor) {
        log_child_failed(code, err);
        _exit(code);
    }
    sl__log(SL_LOG_ERROR, "libevent_fatal", "code=%d error=%s", code,
            sl__logq(err != 0 ? strerror(err) : "none reported"));
    exit(code);
}

/* Forks the child of slot i. In the child this never returns. */
void sl__pool_spawn(struct sl_pool *p, struct sl_child *ch)
{
    pid_t pid;
    int i;

    sigset_t block, saved;

    /* The slot starts from zero for the new process; what the previous
     * one counted is carried, so /metrics counters never go backwards. */
    for (i = 0; i < SL_NCOUNTERS; i++)
        ch->carried[i] += sl__slot_counter(ch->slot, i, 0);
    for (i = 0; i <= SL_HIST_N; i++)
        ch->carried_hist[i] += sl__slot_counter(ch->slot, i, 1);
    sl__slot_reset(ch->slot);
    ch->slot->serial = ch->serial;
    /* The child inherits libevent's handlers, which would write a signal
     * meant for the child into the supervisor's own signal socket (a
     * SIGTERM to a fresh child read as a second SIGTERM to the pool). So
     * the stop signals stay blocked across fork until the child has reset
     * them; the worker unblocks them once its own handler is in place. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &saved);
    pid = fork();
    if (pid != 0)
        sigprocmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0) {
        sl__log(SL_LOG_ERROR, "fork_failed", "consumer=%s error=%s",
                sl__logq(ch->consumer), sl__logq(strerror(errno)));
        ch->restart_at = sl__now_ms() + 1000;
        return;
    }
    if (pid == 0) {
        int rc;
        sigset_t none;

        /* Die with the supervisor: no orphan may keep consuming under a
         * name the next supervisor will reuse. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != p->pid)
            _exit(0);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGHUP, SIG_IGN);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        /* SIGTERM and SIGINT stay blocked: sl__worker_run unblocks them
         * after installing its handler, so one sent now is not lost. */
        sigemptyset(&none);
        sigaddset(&none, SIGTERM);
        sigaddset(&none, SIGINT);
        sigprocmask(SIG_SETMASK, &none, NULL);
        sl__pool_child_cleanup(p);
        sl__metrics_child_close(p);
        errno = 0;
        rc = sl__worker_run(ch->cfg, ch->wc, ch->h, ch->consumer, ch->slot);
        if (rc != 0)
            log_child_failed(rc, errno);
        _exit(rc);
    }
    ch->pid = pid;
    ch->started_ms = sl__now_ms();
    ch->timed_out = 0;
    ch->stalled = 0;
    ch->killed_for = NULL;
    ch->last_renew_ms = 0;
    sl__log(SL_LOG_INFO, "child_started", "consumer=%s child=%ld",
            sl__logq(ch->consumer), (long)pid);
}

/* Returns the child (current or being rolled out) called consumer, or
 * NULL: a reply may come after a reload replaced the arrays. */
static struct sl_child *find_child(struct sl_pool *p, const char *consumer)
{
    size_t i;

    for (i = 0; i < p->nchildren; i++)
        if (strcmp(p->children[i].consumer, consumer) == 0)
            return &p->children[i];
    for (i = 0; i < p->nold; i++)
        if (strcmp(p->old[i].consumer, consumer) == 0)
            return &p->old[i];
    return NULL;
}

/* What a reply about one child needs: the pool and the child's name
 * (the child itself may be gone or moved by then). */
struct child_call {
    struct sl_pool *p;            /* the pool */
    char consumer[320];           /* the child's consumer name */
    char id[SL_IDLEN];            /* the entry concerned, when any */
};

/* Returns a new child_call for ch, or NULL when out of memory. */
static struct child_call *child_call_new(struct sl_pool *p, const struct sl_child *ch)
{
    struct child_call *k = malloc(sizeof(*k));

    if (k == NULL)
        return NULL;
    k->p = p;
    snprintf(k->consumer, sizeof(k->consumer), "%s", ch->consumer);
    snprintf(k->id, sizeof(k->id), "%s", ch->failed_id);
    return k;
}

/* The reply to fail.lua: the attempt is recorded (the child's failed_id
 * cleared, unless a newer crash replaced it), or it is tried again at a
 * later tick, 40 times at most. */
static void on_recorded(struct sl_conn *c, redisReply *r, void *arg)
{
    struct child_call *k = arg;
    struct sl_child *ch = find_child(k->p, k->consumer);

    (void)c;
    if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        sl__log(SL_LOG_INFO, "attempt_failed", "consumer=%s id=%s reason=%s outcome=%s",
                sl__logq(k->consumer), k->id, sl__logq(ch != NULL ? ch->failed_why : ""),
                r->integer == SL_COMMIT_DEAD ? "dead_letter" :
                r->integer == SL_COMMIT_RETRIED ? "retry" : "not_pending");
        if (ch != NULL && strcmp(ch->failed_id, k->id) == 0)
            ch->failed_id[0] = '\0';
    } else if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        sl__log(SL_LOG_WARN, "attempt_record_failed", "id=%s error=%s", k->id, sl__logq(r->str));
    }
    if (ch != NULL) {
        ch->record_pending = 0;
        if (ch->failed_id[0] != '\0' && ++ch->record_tries >= 40)
            ch->failed_id[0] = '\0';
    }
    free(k);
}

/* Sends the record of a failed attempt of the entry a dead child held,
 * with its reason (the reply comes to on_recorded). Returns 0 when sent,
 * -1 when Redis is not connected now. */
static int record_failure(struct sl_pool *p, struct sl_child *ch)
{
    struct sl_commit_args ca;
    struct child_call *k;

    if (ch->failed_id[0] == '\0' || ch->record_pending)
        return 0;
    if ((k = child_call_new(p, ch)) == NULL)
        return -1;
    sl__commit_args_init(&ca, ch->wc->stream, ch->wc->group, ch->consumer, &ch->wc->t);
    sl__commit_args_set(&ca, ch->failed_id, "retry", ch->failed_why, 0);
    if (sl__pool_send_script(p, SL_SCRIPT_FAIL, (int)SL_NELEM(ca.keys), ca.keys,
                             (int)SL_NELEM(ca.args), ca.args, on_recorded, k) != 0) {
        free(k);
        return -1;
    }
    ch->record_pending = 1;
    ch->record_since = sl__now_ms();
    return 0;
}

/* Deletes the heartbeat of a child that stopped gracefully (exit 0),
 * fenced by its pid and host: release.lua leaves a beat that another
 * process wrote meanwhile. The child deleted it itself before exiting;
 * this covers a keep-alive of ours that landed after that, and a child
 * that could not reach Redis on its way out. A failure here only leaves
 * the key to expire, so nothing waits for the reply. */
static void release_beat(struct sl_pool *p, struct sl_child *ch, pid_t pid)
{
    char key[SL_HB_KEYLEN], reg[SL_HB_KEYLEN], spid[24];
    const char *keys[] = { key, reg };
    const char *args[] = { spid, p->host, ch->consumer };
    int cluster = ch->cfg->cluster_nodes != NULL;

    sl__hb_key_of(key, sizeof(key), cluster, ch->wc->stream, ch->consumer);
    sl__hb_registry(reg, sizeof(reg), cluster, ch->wc->stream);
    snprintf(spid, sizeof(spid), "%ld", (long)pid);
    (void)sl__pool_send_script(p, SL_SCRIPT_RELEASE, (int)SL_NELEM(keys), keys,
                               (int)SL_NELEM(args), args, NULL, NULL);
}

/* Decides whom a child that died abnormally is charged to, from the
 * entries its slot says it held: the one whose blocking `handle` ran
 * (cur_id), and the async entries in flight. Exactly one: that one, its
 * ID left in v->cur_id; returns 1. None: returns 0. Several: nobody can
 * tell which of them killed the process, and charging them all would
 * dead-letter innocent entries after a few crashes. So none is charged;
 * the next process of the slot recovers them one at a time (ch->serial),
 * and whichever crashes it again alone is charged then. Returns their
 * number. A blocking handler past handler_timeout_ms is charged alone
 * whatever else was in flight: its own call was what overran. */
static int suspects(struct sl_child *ch, struct sl_slot_view *v)
{
    static char ids[SL_INFLIGHT_MAX][SL_IDLEN];
    int n = sl__slot_inflight(ch->slot, ids), total;

    if (n < 0)
        n = 0;
    if (ch->timed_out && v->cur_id[0] != '\0')
        return 1;
    total = n + (v->cur_id[0] != '\0');
    if (total == 1 && v->cur_id[0] == '\0')
        snprintf(v->cur_id, sizeof(v->cur_id), "%s", ids[0]);
    if (total >= 2) {
        ch->serial = 1;
        sl__log(SL_LOG_WARN, "crash_suspects", "consumer=%s count=%d charged=none "
                "next=serial_recovery", sl__logq(ch->consumer), total);
    }
    return total;
}

/* Reaps every child that exited and decides what follows. */
static void reap(struct sl_pool *p)
{
    int status;
    pid_t pid;
    size_t i;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct sl_child *ch = NULL;
        struct sl_slot_view v;
        uint64_t now = sl__now_ms();
        int abnormal;

        for (i = 0; i < p->nchildren; i++)
            if (p->children[i].pid == pid)
                ch = &p->children[i];
        for (i = 0; i < p->nold; i++)
            if (p->old[i].pid == pid)
                ch = &p->old[i];
        if (ch == NULL)
            continue;
        ch->pid = 0;
        if (__atomic_load_n(&ch->slot->serial, __ATOMIC_RELAXED) == 0)
            ch->serial = 0;     /* the process got past its serial recovery */
        abnormal = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
        if (!abnormal)
            release_beat(p, ch, pid);
        if (WIFSIGNALED(status))
            sl__log(p->stopping ? SL_LOG_INFO : SL_LOG_WARN, "child_exited",
                    "consumer=%s child=%ld signal=%d", sl__logq(ch->consumer),
                    (long)pid, WTERMSIG(status));
        else
            sl__log(abnormal && !p->stopping ? SL_LOG_WARN : SL_LOG_INFO, "child_exited",
                    "consumer=%s child=%ld status=%d", sl__logq(ch->consumer),
                    (long)pid, WEXITSTATUS(status));
        if (abnormal && ch->killed_for != NULL && WIFSIGNALED(status) &&
            WTERMSIG(status) == SIGKILL) {
            /* Our own kill for an operator's reason: not the entry's
             * fault, nothing to charge (kill_for logged it). */
        } else if (abnormal && sl__slot_read(ch->slot, &v) == 0 &&
                   suspects(ch, &v) == 1) {
            snprintf(ch->failed_id, sizeof(ch->failed_id), "%s", v.cur_id);
            if (ch->stalled)
                snprintf(ch->failed_why, sizeof(ch->failed_why),
                         "last attempt's loop stood still for %lld ms", ch->wc->t.handler_timeout_ms);
            else if (ch->timed_out)
                snprintf(ch->failed_why, sizeof(ch->failed_why),
                         "last attempt timed out after %lld ms", ch->wc->t.handler_timeout_ms);
            else if (WIFSIGNALED(status))
                snprintf(ch->failed_why, sizeof(ch->failed_why), "last crash signal %d",
                         WTERMSIG(status));
            else
                snprintf(ch->failed_why, sizeof(ch->failed_why), "last crash exit status %d",
                         WEXITSTATUS(status));
            ch->record_tries = 0;
        }
        if (ch->retired)
            continue;
        if (abnormal && now - ch->started_ms < STABLE_MS)
            ch->crashes++;
        else
            ch->crashes = 0;
        ch->restart_at = now + (abnormal ?
            (uint64_t)sl__retry_delay_ms(RESTART_BASE_MS, RESTART_CAP_MS, ch->crashes) : 0);
    }
}

/* The reply to renew.lua. */
static void on_renewed(struct sl_conn *c, redisReply *r, void *arg)
{
    struct child_call *k = arg;

    (void)c;
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        sl__log(SL_LOG_DEBUG, "lease_renewed", "consumer=%s count=%lld",
                sl__logq(k->consumer), r->integer);
    free(k);
}

/* Renews the lease of a child's batch in hand (a renewal that cannot be
 * sent now is made at the next period). */
static void renew(struct sl_pool *p, struct sl_child *ch, const struct sl_slot_view *v)
{
    char cnt[24];
    const char *keys[] = { ch->wc->stream };
    const char *args[] = { ch->wc->group, ch->consumer, v->first_id, v->last_id, cnt };
    struct child_call *k = child_call_new(p, ch);

    if (k == NULL)
        return;
    snprintf(cnt, sizeof(cnt), "%u", v->batch_len > 0 ? v->batch_len : 1);
    if (sl__pool_send_script(p, SL_SCRIPT_RENEW, (int)SL_NELEM(keys), keys,
                             (int)SL_NELEM(args), args, on_renewed, k) != 0)
        free(k);
}

/* Returns 1 when the kernel reports pid stopped ('T', by SIGSTOP or a
 * job-control signal) or stopped under a tracer ('t'), else 0. */
static int child_stopped(pid_t pid)
{
    char st = sl__proc_state((long)pid);

    return st == 'T' || st == 't';
}

/* Looks after one running child: handler timeout and lease renewal. A
 * stopped child is not renewed: renewal vouches for a handler that is
 * alive and working, and a process frozen by SIGSTOP is neither, so its
 * entries must become idle and be reclaimed by a peer like those of a
 * hung process (the ownership fence discards its late commit if it is
 * ever continued). The handler timeout still applies to it. */
void sl__pool_watch(struct sl_pool *p, struct sl_child *ch, uint64_t now)
{
    struct sl_slot_view v;
    const struct sl_tunables *t = &ch->wc->t;
    uint64_t every = (uint64_t)(t->reclaim_idle_ms / 3 > 0 ? t->reclaim_idle_ms / 3 : 1);

    if (sl__slot_read(ch->slot, &v) < 0)
        return;
    /* The child may have stamped its clock after `now` was read: such a
     * handler has not run long, however large the unsigned difference. */
    if (v.cur_id[0] != '\0' && !ch->timed_out && v.cur_started_ms <= now &&
        now - v.cur_started_ms > (uint64_t)t->handler_timeout_ms) {
        sl__log(SL_LOG_WARN, "handler_timeout", "consumer=%s child=%ld id=%s timeout_ms=%lld",
                sl__logq(ch->consumer), (long)ch->pid, v.cur_id, t->handler_timeout_ms);
        ch->timed_out = 1;
        kill(ch->pid, SIGKILL);
        return;
    }
    if (v.cur_id[0] == '\0' && !ch->timed_out &&
        __atomic_load_n(&ch->slot->inflight_n, __ATOMIC_RELAXED) > 0) {
        /* Async entries in flight and no `handle` running: the loop must
         * answer, stamping loop_ms every tick. One that stood still for
         * handler_timeout_ms is stuck in a callback. */
        uint64_t lm = __atomic_load_n(&ch->slot->loop_ms, __ATOMIC_RELAXED);
        if (lm > 0 && lm <= now && now - lm > (uint64_t)t->handler_timeout_ms &&
            !child_stopped(ch->pid)) {
            sl__log(SL_LOG_WARN, "loop_stalled", "consumer=%s child=%ld timeout_ms=%lld",
                    sl__logq(ch->consumer), (long)ch->pid, t->handler_timeout_ms);
            ch->timed_out = 1;
            ch->stalled = 1;
            kill(ch->pid, SIGKILL);
            return;
        }
    }
    if (v.first_id[0] != '\0' && v.batch_started_ms <= now && now - v.batch_started_ms >= every &&
        now - ch->last_renew_ms >= every && !child_stopped(ch->pid)) {
        ch->last_renew_ms = now;
        renew(p, ch, &v);
    }
}

/* Keeps the heartbeat of a child that is busy with a batch fresh. The
 * child beats itself only between entries, so a handler that blocks for
 * longer than three beats would let the key expire: the child would
 * vanish from `sluice workers`, and a second supervisor would see its name
 * as free and run another process under it. So the supervisor, which
 * sees the child's slot, beats for it meanwhile: the identity fields and
 * last_beat (the child is alive and working: `sluice workers` shows it
 * fresh, not 30 s silent), then the expiry. The counts stay the child's
 * own, written at its next beat. A child frozen by SIGSTOP still holds
 * its name (the expiry is extended) but gets no last_beat: it is not
 * working, and `sluice workers` shows its beat growing old. */
static void keep_beat(struct sl_pool *p, struct sl_child *ch, uint64_t now)
{
    const struct sl_tunables *t = &ch->wc->t;
    struct sl_slot_view v;
    struct sl_hb b;
    char beat[24];

    if (now - ch->last_beat_ms < (uint64_t)t->heartbeat_ms || sl__slot_read(ch->slot, &v) < 0 ||
        (v.cur_id[0] == '\0' && v.first_id[0] == '\0'))
        return;
    ch->last_beat_ms = now;
    sl__hb_fill(&b, ch->cfg->cluster_nodes != NULL, ch->consumer, (long)ch->pid, p->host,
                ch->h->name, ch->wc->stream, ch->wc->group, t->heartbeat_ms, 0, 0, 0, 0);
    snprintf(beat, sizeof(beat), "%llu", (unsigned long long)sl__wall_ms());
    SL_ASSERT(b.nhset + 2 <= (int)SL_NELEM(b.hset));
    if (!child_stopped(ch->pid)) {
        b.hset[b.nhset++] = "last_beat";
        b.hset[b.nhset++] = beat;
    }
    /* The entry in hand, since when: the handler's start in wall time
     * (the slot keeps the monotonic clock; now is from the same one). A
     * child between two entries of a batch shows the batch's first. */
    {
        const char *id = v.cur_id[0] != '\0' ? v.cur_id : v.first_id;
        uint64_t t0 = v.cur_id[0] != '\0' ? v.cur_started_ms : v.batch_started_ms;
        uint64_t mono = sl__now_ms(), wall = sl__wall_ms();
        uint64_t ago = mono > t0 ? mono - t0 : 0;
        sl__hb_entry(&b, id, wall > ago ? wall - ago : wall);
    }
    /* Sent, not awaited: the supervisor never waits on Redis. The
     * commands go out in order on the one connection, so the expiry
     * follows the fields, and the registry entry's expiry follows the
     * key's (heartbeat.h). A failure shows as the key lapsing, as it
     * would if the supervisor were gone. */
    if (sl__pool_send(p, NULL, NULL, b.nhset, b.hset) == 0 &&
        sl__pool_send(p, NULL, NULL, 3, b.pexpire) == 0)
        (void)sl__pool_send(p, NULL, NULL, 4, b.zadd);
}

/* Looks after one running child: its handler timeout and lease
 * (sl__pool_watch), then its heartbeat. Each reads the clock afresh: the
 * Redis calls made earlier in the same tick take time, and a handler that
 * a child started meanwhile has a start time later than a clock read at
 * the beginning of the tick, which the unsigned "now - start" of the
 * timeout check would turn into an enormous running time. */
static void watch_and_beat(struct sl_pool *p, struct sl_child *ch)
{
    sl__pool_watch(p, ch, sl__now_ms());
    if (ch->pid > 0 && !ch->timed_out)
        keep_beat(p, ch, sl__now_ms());
}

/* Returns the number of children still running. */
static size_t running(const struct sl_pool *p)
{
    size_t i, n = 0;

    for (i = 0; i < p->nchildren; i++)
        n += p->children[i].pid > 0;
    for (i = 0; i < p->nold; i++)
        n += p->old[i].pid > 0;
    return n;
}

/* Kills one child for an operator's reason (the shutdown timeout ran
 * out, a second stop signal): logged as such, with the entry it held,
 * and remembered, so that reap() does not charge that entry a failed
 * attempt. The entry was not at fault: it stays pending with its attempts
 * as they were, and is handled again (deliveries still count it, so the
 * backstop of 4 x max_deliveries + 10 holds even against an operator who
 * kills every attempt). */
static void kill_for(struct sl_child *ch, const char *reason)
{
    struct sl_slot_view v;

    if (sl__slot_read(ch->slot, &v) < 0)
        v.cur_id[0] = '\0';
    sl__log(SL_LOG_WARN, "child_killed", "consumer=%s child=%ld reason=%s id=%s",
            sl__logq(ch->consumer), (long)ch->pid, reason, v.cur_id[0] ? v.cur_id : "none");
    ch->killed_for = reason;
    kill(ch->pid, SIGKILL);
}

/* Sends sig to every running child; a SIGKILL is an operator's kill for
 * `reason` (see kill_for). */
static void signal_all(struct sl_pool *p, int sig, const char *reason)
{
    size_t i;

    for (i = 0; i < p->nchildren; i++)
        if (p->children[i].pid > 0) {
            if (sig == SIGKILL)
                kill_for(&p->children[i], reason);
            else
                kill(p->children[i].pid, sig);
        }
    for (i = 0; i < p->nold; i++)
        if (p->old[i].pid > 0) {
            if (sig == SIGKILL)
                kill_for(&p->old[i], reason);
            else
                kill(p->old[i].pid, sig);
        }
}

/* Janitor and trimming, every HOUSEKEEPING_MS (or the shortest
 * reclaim_interval_ms when that is shorter). The janitor's pass runs in
 * the background (see struct sl_janitor); trimming is one call per
 * stream. */
void sl__pool_housekeeping(struct sl_pool *p, uint64_t now)
{
    long long every = HOUSEKEEPING_MS;
    size_t i;

    for (i = 0; i < p->cfg->nworkers; i++)
        if (p->cfg->workers[i].t.reclaim_interval_ms < every)
            every = p->cfg->workers[i].t.reclaim_interval_ms;
    if (now < p->next_housekeeping || p->stopping)
        return;
    p->next_housekeeping = now + (uint64_t)every;
    if (sl__janitor_start(p) < 0)
        sl__log(SL_LOG_WARN, "janitor_failed", "error=%s", sl__logq("out of memory"));
    if (!sl__pool_async_ready(p))
        return;
    sl__trim_streams(p);
}

/* In a freshly forked child: closes what belongs to the supervisor. */
void sl__pool_child_cleanup(struct sl_pool *p)
{
    if (p->http_fd >= 0)
        close(p->http_fd);
    sl__janitor_child_close(p);
    sl__pool_async_child_close(p);
}

/* Tells whether a dead child's restart waits for the record of its
 * failed attempt, so that the new process already sees the attempt: only
 * while the record is on its way, and RECORD_HOLD_MS at most, so that a
 * hung Redis does not hold a restart. */
static int held_for_record(const struct sl_child *ch, uint64_t now)
{
    return ch->failed_id[0] != '\0' && ch->record_pending && now - ch->record_since < RECORD_HOLD_MS;
}

/* The supervisor's timer: restarts, timeouts, leases, shutdown. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sl_pool *p = arg;
    uint64_t now = sl__now_ms();
    size_t i;

    (void)fd;
    (void)what;
    reap(p);
    for (i = 0; i < p->nold; i++) {
        struct sl_child *ch = &p->old[i];
        if (ch->pid > 0)
            watch_and_beat(p, ch);
        else if (ch->failed_id[0] != '\0' &&
                 record_failure(p, ch) < 0 && ++ch->record_tries >= 40)
            ch->failed_id[0] = '\0';
    }
    for (i = 0; i < p->nchildren; i++) {
        struct sl_child *ch = &p->children[i];
        if (ch->failed_id[0] != '\0' && ch->pid == 0 &&
            record_failure(p, ch) < 0 && ++ch->record_tries >= 40)
            ch->failed_id[0] = '\0';    /* Redis stays away: the backstop counter remains */
        if (ch->pid > 0)
            watch_and_beat(p, ch);
        else if (!p->stopping && !ch->retired && p->started && now >= ch->restart_at &&
                 !held_for_record(ch, now))
            sl__pool_spawn(p, ch);
    }
    sl__pool_roll(p);
    if (p->snap.wanted || p->snap.inflight)
        sl__snapshot_take(p);       /* answers the HTTP requests when done */
    if (!p->started)
        sl__pool_try_start(p);
    if (p->started)
        sl__pool_housekeeping(p, now);
    if (p->stopping && running(p) == 0) {
        /* Let the last replies in (release of heartbeats, records), a
         * second at most: then stop. */
        if (p->drain_until == 0)
            p->drain_until = now + DRAIN_MS;
        if (sl__pool_async_inflight(p) > 0 && now < p->drain_until)
            return;
        event_base_loopbreak(p->base);
        return;
    }
    if (p->stopping && now >= p->stop_deadline) {
        sl__log(SL_LOG_WARN, "shutdown_timeout", "running=%zu", running(p));
        signal_all(p, SIGKILL, "shutdown_timeout");
        p->exit_code = 1;
        p->stop_deadline = UINT64_MAX;
    }
}

/* SIGTERM / SIGINT: the first stops gracefully, the second at once. */
static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct sl_pool *p = arg;
    long long budget = 0;
    size_t i;

    (void)what;
    if (p->stopping) {
        sl__log(SL_LOG_WARN, "stop_now", "signal=%d", (int)sig);
        signal_all(p, SIGKILL, "stop_now");
        p->exit_code = 1;
        return;
    }
    for (i = 0; i < p->cfg->nworkers; i++)
        if (p->cfg->workers[i].t.shutdown_timeout_ms > budget)
            budget = p->cfg->workers[i].t.shutdown_timeout_ms;
    sl__log(SL_LOG_INFO, "stopping", "signal=%d running=%zu timeout_ms=%lld",
            (int)sig, running(p), budget);
    p->stopping = 1;
    p->stop_deadline = sl__now_ms() + (uint64_t)budget;
    signal_all(p, SIGTERM, NULL);
}

/* SIGCHLD: reap now rather than at the next tick. */
static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    reap(arg);
}

/* SIGHUP: reload the configuration and roll the children. */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    sl__pool_reload(arg);
}




int sl__pool_run(struct sl_config *cfg, const char *cfg_path, int cfg_explicit,
                 const char *redis_override, const char *workers_override,
                 const char *metrics_override,
                 const struct sl_handler *const *registry)
{
    struct sl_pool pool, *p = &pool;
    struct event *ev_term = NULL, *ev_int = NULL, *ev_chld = NULL, *ev_hup = NULL, *tick = NULL;
    struct timeval tv = { 0, TICK_MS * 1000 };
    char err[512];
    int rc = 1;

    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
    p->cfg_caller = cfg;
    p->cfg_path = cfg_path;
    p->cfg_explicit = cfg_explicit;
    p->redis_override = redis_override;
    p->workers_override = workers_override;
    p->metrics_override = metrics_override;
    p->registry = registry;
    p->pid = getpid();
    p->http_fd = -1;
    p->last_reload_ms = sl__wall_ms();  /* the start's configuration is the first good one */
    sl__log_role = "supervisor";
    if (gethostname(p->host, sizeof(p->host)) < 0)
        snprintf(p->host, sizeof(p->host), "localhost");
    p->host[sizeof(p->host) - 1] = '\0';

    if (sl__pool_apply_overrides(p, cfg, err, sizeof(err)) < 0 ||
        sl__pool_plan(p, cfg, &p->children, &p->nchildren, err, sizeof(err)) < 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return 2;
    }
    p->slots = mmap(NULL, SL_MAX_CHILDREN * sizeof(struct sl_slot), PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p->slots == MAP_FAILED) {
        fprintf(stderr, "sluice: cannot map shared memory: %s\n", strerror(errno));
        free(p->children);
        return 1;
    }
    sl__pool_bind_slots(p, p->children, p->nchildren, 0);
    p->next_slot = p->nchildren;

    signal(SIGPIPE, SIG_IGN);
    fatal_supervisor = p->pid;
    event_set_log_callback(on_libevent_log);
    event_set_fatal_callback(on_libevent_fatal);
    p->base = event_base_new();
    if (p->base == NULL)
        goto out;
    ev_term = evsignal_new(p->base, SIGTERM, on_stop, p);
    ev_int = evsignal_new(p->base, SIGINT, on_stop, p);
    ev_chld = evsignal_new(p->base, SIGCHLD, on_sigchld, p);
    ev_hup = evsignal_new(p->base, SIGHUP, on_sighup, p);
    tick = event_new(p->base, -1, EV_PERSIST, on_tick, p);
    if (ev_term == NULL || ev_int == NULL || ev_chld == NULL || ev_hup == NULL || tick == NULL)
        goto out;
    event_add(ev_term, NULL);
    event_add(ev_int, NULL);
    event_add(ev_chld, NULL);
    event_add(ev_hup, NULL);
    event_add(tick, &tv);
    if (sl__metrics_start(p) < 0 || sl__pool_async_start(p) < 0)
        goto out;
    /* The dashboard's pages on the same listener (web.c). */
    if (p->http != NULL && p->cfg->metrics_dashboard && sl__web_pool_attach(p) < 0) {
        fprintf(stderr, "sluice: metrics.dashboard: out of memory\n");
        goto out;
    }
    sl__log(SL_LOG_INFO, "pool_starting", "children=%zu redis=%s:%d", p->nchildren,
            sl__logq(cfg->redis.host), cfg->redis.port);
    sl__pool_try_start(p);
    if (p->exit_code == 0)
        event_base_dispatch(p->base);
    /* Last reap: children killed just before the loop ended. */
    while (running(p) > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        size_t i;
        if (pid < 0)
            break;
        for (i = 0; i < p->nchildren; i++)
            if (p->children[i].pid == pid)
                p->children[i].pid = 0;
        for (i = 0; i < p->nold; i++)
            if (p->old[i].pid == pid)
                p->old[i].pid = 0;
    }
    rc = p->exit_code;
    sl__log(SL_LOG_INFO, "pool_stopped", "exit_code=%d", rc);
out:
    sl__metrics_stop(p);
    sl__web_pool_detach(p);       /* after evhttp_free: its callbacks point at it */
    sl__snapshot_free(p);
    sl__janitor_free(p);
    sl__pool_async_free(p);
    if (ev_term) event_free(ev_term);
    if (ev_int) event_free(ev_int);
    if (ev_chld) event_free(ev_chld);
    if (ev_hup) event_free(ev_hup);
    if (tick) event_free(tick);
    if (p->base) event_base_free(p->base);
    sl__pool_free_retired(p);
    free(p->children);
    if (p->cfg != cfg)
        sl__config_free(p->cfg);        /* loaded by a reload: ours */
    munmap(p->slots, SL_MAX_CHILDREN * sizeof(struct sl_slot));
    return rc;
}
