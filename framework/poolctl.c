/* poolctl.c -- the supervisor's slower duties: the start check, SIGHUP
 * reloads with a rolling restart, and housekeeping (the janitor that
 * removes dead consumers, and safe trimming). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include "conn.h"
#include "internal.h"
#include "pool.h"

#define HOUSEKEEPING_MS 5000      /* janitor and trim period */
#define JANITOR_SLICE 200         /* consumers looked at per step of the janitor */
#define HELD_MARGIN_MS 100        /* past a heartbeat's expiry before it counts as renewed */

/* Of up to JANITOR_SLICE consumers of one group, removes each that has
 * nothing pending and no heartbeat, each in one atomic step (XGROUP
 * DELCONSUMER drops pending entries, so the check and the delete must not
 * be separable). KEYS: stream, then each consumer's heartbeat key. ARGV:
 * group, then the consumers in the same order. Returns the positions
 * (from 1) of those removed. */
static const char janitor_src[] =
"#!lua\n"
"local removed = {}\n"
"for i = 2, #KEYS do\n"
"  if redis.call('EXISTS', KEYS[i]) == 0 then\n"
"    local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[i])\n"
"    if #p == 0 then\n"
"      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[i])\n"
"      removed[#removed + 1] = i - 1\n"
"    end\n"
"  end\n"
"end\n"
"return removed\n";

/* Trims a stream below the oldest entry any group still needs: its
 * oldest pending entry, or the first entry after its last-delivered-id.
 * Every group counts, sluice's or not. A stream without groups is left
 * alone. KEYS: stream. Returns the number of entries removed.
 * The two parts of an ID are 64-bit and Lua's numbers are doubles, which
 * round above 2^53 (an explicit ID 1-9007199254740995 would become ...996
 * and its entry be trimmed), so IDs are compared and incremented as
 * decimal strings. */
static const char trim_src[] =
"#!lua\n"
"local MAX = '18446744073709551615'\n"
"local function parse(id)\n"
"  return string.match(id, '^(%d+)-(%d+)$')\n"
"end\n"
"local function numless(a, b)\n"
"  if #a ~= #b then return #a < #b end\n"
"  return a < b\n"
"end\n"
"local function less(a, b)\n"
"  if a[1] ~= b[1] then return numless(a[1], b[1]) end\n"
"  return numless(a[2], b[2])\n"
"end\n"
"local function incr(s)\n"
"  local i = #s\n"
"  while i > 0 and string.sub(s, i, i) == '9' do i = i - 1 end\n"
"  if i == 0 then return '1' .. string.rep('0', #s) end\n"
"  return string.sub(s, 1, i - 1) .. string.char(string.byte(s, i) + 1) ..\n"
"         string.rep('0', #s - i)\n"
"end\n"
"local function after(ms, seq)\n"
"  if seq ~= MAX then return {ms, incr(seq)} end\n"
"  if ms ~= MAX then return {incr(ms), '0'} end\n"
"  return {ms, seq}\n"
"end\n"
"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
"local groups = redis.call('XINFO', 'GROUPS', KEYS[1])\n"
"if #groups == 0 then return 0 end\n"
"local floor = nil\n"
"for _, g in ipairs(groups) do\n"
"  local name, last\n"
"  for i = 1, #g, 2 do\n"
"    if g[i] == 'name' then name = g[i+1] end\n"
"    if g[i] == 'last-delivered-id' then last = g[i+1] end\n"
"  end\n"
"  local ms, seq = parse(last)\n"
"  local need = after(ms, seq)\n"
"  local s = redis.call('XPENDING', KEYS[1], name)\n"
"  if s[1] > 0 then\n"
"    local pms, pseq = parse(s[2])\n"
"    if less({pms, pseq}, need) then need = {pms, pseq} end\n"
"  end\n"
"  if floor == nil or less(need, floor) then floor = need end\n"
"end\n"
"return redis.call('XTRIM', KEYS[1], 'MINID', floor[1] .. '-' .. floor[2])\n";

/* Applies --workers NAME[:N],... (process counts per handler; a handler
 * not named keeps its count, a handler named but not configured is an
 * error) and --metrics ADDR. Returns 0 or -1 with err. */
int sl__pool_apply_overrides(struct sl_pool *p, struct sl_config *cfg,
                             char *err, size_t errlen)
{
    char *list, *tok, *save = NULL;
    int rc = 0;

    if (p->metrics_override != NULL) {
        free(cfg->metrics_listen);
        cfg->metrics_listen = strcmp(p->metrics_override, "none") == 0 ? NULL :
                              strdup(p->metrics_override);
    }
    if (p->workers_override == NULL)
        return 0;
    list = strdup(p->workers_override);
    if (list == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        long n = 1;
        size_t i;
        int found = 0;

        if (colon != NULL) {
            char *end;
            *colon = '\0';
            errno = 0;
            n = strtol(colon + 1, &end, 10);
            if (errno || *end || end == colon + 1 || n < 0 || n > 256) {
                snprintf(err, errlen, "--workers: \"%s\": expected a count from 0 to 256",
                         colon + 1);
                rc = -1;
                break;
            }
        }
        for (i = 0; i < cfg->nworkers; i++)
            if (strcmp(cfg->workers[i].handler, tok) == 0) {
                cfg->workers[i].processes = (int)n;
                found = 1;
            }
        if (!found) {
            snprintf(err, errlen, "--workers: \"%s\": no worker with that handler in the configuration",
                     tok);
            rc = -1;
            break;
        }
    }
    free(list);
    return rc;
}

/* Start check of one consumer name. A heartbeat younger than its expiry
 * is live, whatever its pid: a pool in another PID namespace (a second
 * container with the same host name) has pids that do not exist here, or
 * that belong to unrelated processes, and nothing in a heartbeat proves
 * which namespace wrote it. So a heartbeat found on a name is waited for
 * until it must have expired (p->held_until, the latest such time over
 * all names, so that a refusal names the first name held). Gone by then,
 * its writer stopped beating and the name is free; still there, someone
 * renewed it (the process's own beats, or its supervisor's while it is
 * busy) and the name is held. A heartbeat without an expiry (its writer
 * died between setting it and giving it one) is stale once it has stayed
 * unchanged for three of our beats. Returns 0 when the name is free, 1
 * while waiting, -1 when the check cannot go on this tick (Redis trouble,
 * or the start refused). */
static int check_name(struct sl_pool *p, struct sl_child *ch, uint64_t now)
{
    char key[400];
    const char *argv[] = { "HMGET", key, "host", "pid", "last_beat" };
    const char *pttl[] = { "PTTL", key };
    redisReply *r, *t;
    const char *beat;
    long long ttl;
    uint64_t until;
    long pid;

    snprintf(key, sizeof(key), "sluice:worker:%s", ch->consumer);
    r = sl__pool_cmd(p, 5, argv);
    if (r == NULL)
        return -1;              /* Redis went away: try again next tick */
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) != 0) {
        /* LOADING, BUSY, NOPERM...: the heartbeat was not read, so the
         * name is not known to be free; try again next tick. */
        if ((p->start_fails & (p->start_fails - 1)) == 0)
            sl__log(SL_LOG_WARN, "redis_unavailable", "attempt=%d phase=start_check error=%s",
                    p->start_fails + 1, sl__logq(r->str));
        p->start_fails++;
        freeReplyObject(r);
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        ch->held_seen = 0;
        return 0;               /* no heartbeat: the name is free */
    }
    t = sl__pool_cmd(p, 2, pttl);
    if (t == NULL || t->type != REDIS_REPLY_INTEGER) {
        /* Not known: try again next tick, saying why once per doubling
         * of attempts, like the HMGET above. */
        if ((p->start_fails & (p->start_fails - 1)) == 0)
            sl__log(SL_LOG_WARN, "redis_unavailable", "attempt=%d phase=start_check error=%s",
                    p->start_fails + 1,
                    sl__logq(t == NULL ? "no reply" :
                             t->type == REDIS_REPLY_ERROR ? t->str : "unexpected PTTL reply"));
        p->start_fails++;
        freeReplyObject(t);
        freeReplyObject(r);
        return -1;
    }
    ttl = t->integer;
    freeReplyObject(t);
    /* The lifetime was read now, not at the start of the tick: connecting
     * and the names checked before this one may have taken a while, and
     * a deadline from the older clock would look again before the key
     * expired and refuse a name whose writer is gone. */
    now = sl__now_ms();
    if (ttl == -2) {
        freeReplyObject(r);
        ch->held_seen = 0;
        return 0;               /* expired since the HMGET */
    }
    pid = strtol(r->element[1]->str, NULL, 10);
    beat = r->element[2]->type == REDIS_REPLY_STRING ? r->element[2]->str : "";
    if (!ch->held_seen) {
        until = now + (uint64_t)(ttl >= 0 ? ttl : 3 * ch->wc->t.heartbeat_ms) + HELD_MARGIN_MS;
        if (until > p->held_until)
            p->held_until = until;
        ch->held_seen = 1;
        snprintf(ch->held_beat, sizeof(ch->held_beat), "%s", beat);
        sl__log(SL_LOG_INFO, "start_waiting", "consumer=%s old_pid=%ld old_host=%s ttl_ms=%lld",
                sl__logq(ch->consumer), pid, sl__logq(r->element[0]->str), ttl);
        freeReplyObject(r);
        return 1;
    }
    if (ttl == -1 && strcmp(beat, ch->held_beat) == 0) {
        const char *del[] = { "DEL", key };
        redisReply *d = sl__pool_cmd(p, 2, del);

        freeReplyObject(d);
        sl__log(SL_LOG_INFO, "stale_heartbeat", "consumer=%s old_pid=%ld",
                sl__logq(ch->consumer), pid);
        freeReplyObject(r);
        ch->held_seen = 0;
        return 0;
    }
    fprintf(stderr, "sluice: consumer %s is held by a live process (pid %ld on host %s); "
            "is another `sluice run` using this configuration?\n",
            ch->consumer, pid, r->element[0]->str);
    freeReplyObject(r);
    p->exit_code = 1;
    p->stopping = 1;
    event_base_loopbreak(p->base);
    return -1;
}

/* The start check, repeated every tick until it passes: every consumer
 * name must be free (see check_name). Refuses to start when another live
 * process holds one of them; waits while a heartbeat may still be live.
 * Redis is not asked again before p->held_until: the heartbeats found
 * are live until then by that rule. */
void sl__pool_try_start(struct sl_pool *p)
{
    uint64_t now = sl__now_ms();
    int waiting = 0, rc;
    size_t i;

    if (p->started || p->stopping || now < p->held_until || sl__pool_redis(p) == NULL)
        return;
    for (i = 0; i < p->nchildren; i++) {
        rc = check_name(p, &p->children[i], now);
        if (rc < 0)
            return;
        waiting |= rc;
    }
    if (waiting)
        return;
    p->started = 1;
    sl__log(SL_LOG_INFO, "pool_started", "children=%zu", p->nchildren);
}

/* ------------------------------------------------------------------ */
/* The janitor                                                         */
/* ------------------------------------------------------------------ */

/* One group a janitor pass goes through. Copies: a reload may free the
 * configuration while the pass runs. */
struct jan_group {
    char *stream;
    char *group;
    long long idle_ms;            /* removes consumers idle longer than this */
};

/* The janitor removes consumers with no heartbeat and nothing pending, in
 * slices, so that it never holds the supervisor's loop for long: with
 * 50,000 such consumers, listing them takes tens of milliseconds of
 * parsing and removing them one call each took seconds. It has a
 * connection of its own, asynchronous, so the list of a group (XINFO
 * CONSUMERS, which cannot be paged) is read and parsed a socket read at a
 * time while the loop goes on. The consumers are then looked at
 * JANITOR_SLICE at a time, each slice in a turn of the loop of its own and
 * in one script call; the next slice follows the reply. */
struct sl_janitor {
    struct sl_pool *p;
    struct sl_conn *conn;         /* its connection, NULL until first needed */
    int connecting;               /* connect started, neither ready nor lost yet */
    int closing;                  /* being freed: callbacks only return */
    int busy;                     /* a command is in flight */
    struct event *step_ev;        /* runs the next step in a turn of its own */
    struct jan_group *groups;     /* the current pass's groups (owned), NULL between passes */
    size_t ngroups, cur;          /* how many; the one being worked on */
    redisReply **list;            /* its XINFO CONSUMERS entries, taken from the reply (owned) */
    size_t nlist;                 /* entries in list */
    size_t done;                  /* list[0..done) are freed already */
    size_t next;                  /* list[done..next) are the slice in flight */
    const char *cand[JANITOR_SLICE]; /* that slice's candidates (names inside list) */
    long long cand_idle[JANITOR_SLICE]; /* and their idle times */
    size_t ncand;
    char keys[JANITOR_SLICE][400]; /* their heartbeat keys, for the script call */
};

static void jan_step(struct sl_janitor *j);

/* Frees the entries of the current list from `done` to `upto`. */
static void jan_free_entries(struct sl_janitor *j, size_t upto)
{
    for (; j->done < upto; j->done++) {
        freeReplyObject(j->list[j->done]);
        j->list[j->done] = NULL;
    }
}

/* Drops the current group's list. */
static void jan_drop_list(struct sl_janitor *j)
{
    if (j->list != NULL) {
        jan_free_entries(j, j->nlist);
        free(j->list);
    }
    j->list = NULL;
    j->nlist = j->done = j->next = j->ncand = 0;
}

/* Ends the current pass (done, or given up until the next period). */
static void jan_end_pass(struct sl_janitor *j)
{
    size_t i;

    jan_drop_list(j);
    for (i = 0; i < j->ngroups; i++) {
        free(j->groups[i].stream);
        free(j->groups[i].group);
    }
    free(j->groups);
    j->groups = NULL;
    j->ngroups = j->cur = 0;
}

/* Runs the next step in a turn of the loop of its own, after whatever
 * else is ready: the loop never does two steps at once. */
static void jan_schedule(struct sl_janitor *j)
{
    event_active(j->step_ev, EV_TIMEOUT, 0);
}

/* Reply to XINFO CONSUMERS: takes the entries over from the reply
 * (the reply itself is freed when this returns, an empty array then, so
 * freeing 50,000 entries is spread over the steps too). */
static void jan_on_consumers(struct sl_conn *c, redisReply *r, void *arg)
{
    struct sl_janitor *j = arg;
    const struct jan_group *g;

    (void)c;
    j->busy = 0;
    if (j->closing || j->groups == NULL)
        return;
    if (r == NULL) {
        jan_end_pass(j);        /* connection lost: again next period */
        return;
    }
    g = &j->groups[j->cur];
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
        j->cur++;               /* no consumers */
    } else if (r->type == REDIS_REPLY_ARRAY) {
        j->list = r->element;
        j->nlist = r->elements;
        r->element = NULL;
        r->elements = 0;
        j->done = j->next = 0;
    } else {
        /* No such stream or group yet: nothing to remove. */
        sl__log(SL_LOG_DEBUG, "janitor_skipped", "stream=%s group=%s error=%s",
                sl__logq(g->stream), sl__logq(g->group),
                sl__logq(r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply"));
        j->cur++;
    }
    jan_schedule(j);
}

/* Reply to a slice's script call: logs each consumer removed. */
static void jan_on_removed(struct sl_conn *c, redisReply *r, void *arg)
{
    struct sl_janitor *j = arg;
    const struct jan_group *g;
    size_t i;

    (void)c;
    j->busy = 0;
    if (j->closing || j->groups == NULL)
        return;
    if (r == NULL) {
        jan_end_pass(j);
        return;
    }
    g = &j->groups[j->cur];
    if (r->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < r->elements; i++) {
            long long k = r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : 0;
            if (k >= 1 && (size_t)k <= j->ncand)
                sl__log(SL_LOG_INFO, "consumer_removed",
                        "stream=%s group=%s consumer=%s idle_ms=%lld", sl__logq(g->stream),
                        sl__logq(g->group), sl__logq(j->cand[k - 1]), j->cand_idle[k - 1]);
        }
    } else {
        /* The group went away meanwhile (NOGROUP), or the script failed:
         * the rest of this group waits for the next pass. */
        sl__log(SL_LOG_WARN, "janitor_failed", "stream=%s group=%s error=%s",
                sl__logq(g->stream), sl__logq(g->group),
                sl__logq(r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply"));
        jan_drop_list(j);
        j->cur++;
    }
    j->ncand = 0;
    jan_schedule(j);
}

/* Picks the candidates of the next slice of the list: consumers with
 * nothing pending, idle past the group's threshold. */
static void jan_pick(struct sl_janitor *j, const struct jan_group *g)
{
    size_t end = j->next + JANITOR_SLICE < j->nlist ? j->next + JANITOR_SLICE : j->nlist;
    size_t k;

    j->ncand = 0;
    for (; j->next < end; j->next++) {
        const redisReply *e = j->list[j->next];
        const char *name = NULL;
        long long pending = -1, idle = 0;

        if (e == NULL || e->type != REDIS_REPLY_ARRAY)
            continue;
        for (k = 0; k + 1 < e->elements; k += 2) {
            const redisReply *key = e->element[k], *v = e->element[k + 1];
            if (key->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(key->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
                name = v->str;
            else if (strcmp(key->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                pending = v->integer;
            else if (strcmp(key->str, "idle") == 0 && v->type == REDIS_REPLY_INTEGER)
                idle = v->integer;
        }
        /* A name whose heartbeat key would not fit is kept: its
         * heartbeat could not be checked. */
        if (name != NULL && pending == 0 && idle > g->idle_ms &&
            strlen(name) < sizeof(j->keys[0]) - sizeof("sluice:worker:")) {
            j->cand[j->ncand] = name;
            j->cand_idle[j->ncand] = idle;
            j->ncand++;
        }
    }
}

/* Sends the script call for the candidates picked. Returns 0, or -1 when
 * it could not be sent. */
static int jan_send_slice(struct sl_janitor *j, const struct jan_group *g)
{
    enum { MAXARGS = 5 + 2 * JANITOR_SLICE };
    const char *argv[MAXARGS];
    char nkeys[24];
    size_t i;
    int argc = 0;

    snprintf(nkeys, sizeof(nkeys), "%zu", j->ncand + 1);
    argv[argc++] = "EVAL";
    argv[argc++] = janitor_src;
    argv[argc++] = nkeys;
    argv[argc++] = g->stream;
    for (i = 0; i < j->ncand; i++) {
        snprintf(j->keys[i], sizeof(j->keys[i]), "sluice:worker:%s", j->cand[i]);
        argv[argc++] = j->keys[i];
    }
    argv[argc++] = g->group;
    for (i = 0; i < j->ncand; i++)
        argv[argc++] = j->cand[i];
    return sl__conn_command(j->conn, jan_on_removed, j, 0, argc, argv, NULL);
}

/* One step of a pass: asks for the next group's consumers, or looks at
 * the next slice of the current list and sends its script call. Each
 * step is bounded (JANITOR_SLICE consumers) and waits for no reply. */
static void jan_step(struct sl_janitor *j)
{
    const struct jan_group *g;

    if (j->busy || j->groups == NULL || j->closing)
        return;
    if (j->p->stopping || !sl__conn_ready(j->conn)) {
        jan_end_pass(j);
        return;
    }
    if (j->cur >= j->ngroups) {
        jan_end_pass(j);
        return;
    }
    g = &j->groups[j->cur];
    if (j->list == NULL) {
        const char *argv[] = { "XINFO", "CONSUMERS", g->stream, g->group };
        if (sl__conn_command(j->conn, jan_on_consumers, j, 0, 4, argv, NULL) < 0) {
            jan_end_pass(j);
            return;
        }
        j->busy = 1;
        return;
    }
    jan_free_entries(j, j->next);       /* the last slice: its reply came */
    if (j->next >= j->nlist) {
        jan_drop_list(j);
        j->cur++;
        jan_schedule(j);
        return;
    }
    jan_pick(j, g);
    if (j->ncand == 0) {
        jan_schedule(j);
        return;
    }
    if (jan_send_slice(j, g) < 0) {
        jan_end_pass(j);
        return;
    }
    j->busy = 1;
}

/* The step event. */
static void jan_on_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    jan_step(arg);
}

/* The janitor's connection is usable: the pass waiting for it begins. */
static void jan_on_ready(struct sl_conn *c, void *arg)
{
    struct sl_janitor *j = arg;

    (void)c;
    j->connecting = 0;
    jan_schedule(j);
}

/* The janitor's connection was lost (or never made): the pass is given
 * up, and the next period connects again. */
static void jan_on_lost(struct sl_conn *c, void *arg)
{
    struct sl_janitor *j = arg;

    j->connecting = 0;
    sl__log(SL_LOG_DEBUG, "janitor_disconnected", "error=%s", sl__logq(sl__conn_error(c)));
    sl__conn_close(c);
    jan_end_pass(j);
}

/* Starts a janitor pass over every configured group, unless the last one
 * is still going. Returns 0, or -1 when out of memory. */
static int jan_start(struct sl_pool *p)
{
    struct sl_janitor *j = p->janitor;
    size_t i, k;

    if (j == NULL) {
        j = calloc(1, sizeof(*j));
        if (j == NULL)
            return -1;
        j->p = p;
        j->step_ev = event_new(p->base, -1, 0, jan_on_step, j);
        if (j->step_ev == NULL) {
            free(j);
            return -1;
        }
        p->janitor = j;
    }
    if (j->groups != NULL)
        return 0;
    j->groups = calloc(p->cfg->nworkers + 1, sizeof(*j->groups));
    if (j->groups == NULL)
        return -1;
    for (i = 0; i < p->cfg->nworkers; i++) {
        const struct sl_worker_conf *wc = &p->cfg->workers[i];
        long long idle_ms = wc->t.reclaim_idle_ms > 10 * wc->t.heartbeat_ms ?
                            wc->t.reclaim_idle_ms : 10 * wc->t.heartbeat_ms;

        /* A group served by two worker entries is gone through once,
         * with the lower threshold. */
        for (k = 0; k < j->ngroups; k++)
            if (strcmp(j->groups[k].stream, wc->stream) == 0 &&
                strcmp(j->groups[k].group, wc->group) == 0)
                break;
        if (k < j->ngroups) {
            if (idle_ms < j->groups[k].idle_ms)
                j->groups[k].idle_ms = idle_ms;
            continue;
        }
        j->groups[k].stream = strdup(wc->stream);
        j->groups[k].group = strdup(wc->group);
        j->groups[k].idle_ms = idle_ms;
        j->ngroups++;
        if (j->groups[k].stream == NULL || j->groups[k].group == NULL) {
            jan_end_pass(j);
            return -1;
        }
    }
    if (j->conn == NULL)
        j->conn = sl__conn_new(p->base, "janitor", p->cfg, jan_on_ready, jan_on_lost, j);
    if (j->conn == NULL) {
        jan_end_pass(j);
        return -1;
    }
    if (sl__conn_ready(j->conn))
        jan_schedule(j);
    else if (!j->connecting) {
        j->connecting = 1;
        sl__conn_connect(j->conn);      /* on_ready or on_lost follows */
    }
    return 0;
}

/* Stops and frees the janitor (at exit, and on a reload, whose
 * configuration may name another server: the next pass connects anew). */
void sl__pool_janitor_free(struct sl_pool *p)
{
    struct sl_janitor *j = p->janitor;

    if (j == NULL)
        return;
    j->closing = 1;
    sl__conn_free(j->conn);     /* callbacks in flight return at once */
    jan_end_pass(j);
    event_free(j->step_ev);
    free(j);
    p->janitor = NULL;
}

/* In a forked child: closes the inherited copy of the janitor's socket,
 * without any I/O or change to the supervisor's loop. */
static void jan_child_cleanup(struct sl_pool *p)
{
    int fd = p->janitor != NULL ? sl__conn_fd(p->janitor->conn) : -1;

    if (fd >= 0)
        close(fd);
}

/* Trims one stream safely (see trim_src). */
static void trim(struct sl_pool *p, const char *stream)
{
    const char *argv[] = { "EVAL", trim_src, "1", stream };
    redisReply *r = sl__pool_cmd(p, 4, argv);

    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        sl__log(SL_LOG_DEBUG, "trimmed", "stream=%s count=%lld", sl__logq(stream), r->integer);
    else if (r != NULL && r->type == REDIS_REPLY_ERROR)
        sl__log(SL_LOG_WARN, "trim_failed", "stream=%s error=%s", sl__logq(stream),
                sl__logq(r->str));
    freeReplyObject(r);
}

/* Janitor and trimming, every HOUSEKEEPING_MS (or the shortest
 * reclaim_interval_ms when that is shorter). The janitor's pass runs in
 * the background (see struct sl_janitor); trimming is one call per
 * stream. */
void sl__pool_housekeeping(struct sl_pool *p, uint64_t now)
{
    long long every = HOUSEKEEPING_MS;
    size_t i, j;

    for (i = 0; i < p->cfg->nworkers; i++)
        if (p->cfg->workers[i].t.reclaim_interval_ms < every)
            every = p->cfg->workers[i].t.reclaim_interval_ms;
    if (now < p->next_housekeeping || p->stopping)
        return;
    p->next_housekeeping = now + (uint64_t)every;
    if (jan_start(p) < 0)
        sl__log(SL_LOG_WARN, "janitor_failed", "error=%s", sl__logq("out of memory"));
    if (sl__pool_redis(p) == NULL)
        return;
    for (i = 0; i < p->cfg->nworkers; i++) {
        const struct sl_worker_conf *wc = &p->cfg->workers[i];
        int first = 1;

        for (j = 0; j < i; j++)
            if (strcmp(p->cfg->workers[j].stream, wc->stream) == 0)
                first = 0;
        if (first && wc->t.trim == SL_TRIM_ACKED)
            trim(p, wc->stream);
    }
}

/* Picks a shared slot that no child, current or old, is bound to. */
static struct sl_slot *free_slot(struct sl_pool *p, struct sl_child *fresh, size_t nfresh)
{
    size_t tries, i;

    for (tries = 0; tries < 1024; tries++) {
        struct sl_slot *s = &p->slots[p->next_slot++ % 1024];
        int used = 0;
        for (i = 0; i < p->nchildren && !used; i++)
            used = p->children[i].slot == s;
        for (i = 0; i < p->nold && !used; i++)
            used = p->old[i].slot == s;
        for (i = 0; i < nfresh && !used; i++)
            used = fresh[i].slot == s;
        if (!used) {
            memset(s, 0, sizeof(*s));   /* a retired child's counts */
            return s;
        }
    }
    return NULL;
}

/* SIGHUP: re-reads the configuration. A bad one is refused with its error
 * and the running pool stays as it is; a good one replaces the children
 * one at a time (sl__pool_roll), each new child starting only after the
 * old one holding its consumer name has exited. */
void sl__pool_reload(struct sl_pool *p)
{
    char err[512];
    struct sl_config *cfg;
    struct sl_child *fresh;
    size_t nfresh, i, j;
    const char *env = getenv("SLUICE_REDIS_URL");

    if (p->stopping)
        return;
    if (p->old != NULL) {
        sl__log(SL_LOG_WARN, "reload_refused", "reason=%s", sl__logq("a rolling restart is still running"));
        return;
    }
    cfg = sl__config_load(p->cfg_path, p->cfg_explicit, err, sizeof(err));
    if (cfg != NULL && env != NULL && *env &&
        sl__config_set_url(cfg, env, "SLUICE_REDIS_URL", err, sizeof(err)) < 0) {
        sl__config_free(cfg);
        cfg = NULL;
    }
    if (cfg != NULL && p->redis_override != NULL &&
        sl__config_set_url(cfg, p->redis_override, "--redis", err, sizeof(err)) < 0) {
        sl__config_free(cfg);
        cfg = NULL;
    }
    if (cfg != NULL && (sl__pool_apply_overrides(p, cfg, err, sizeof(err)) < 0 ||
                        sl__pool_plan(p, cfg, &fresh, &nfresh, err, sizeof(err)) < 0)) {
        sl__config_free(cfg);
        cfg = NULL;
    }
    if (cfg == NULL) {
        sl__log(SL_LOG_ERROR, "reload_failed", "error=%s", sl__logq(err));
        fprintf(stderr, "sluice: reload refused: %s\n", err);
        return;
    }
    for (i = 0; i < nfresh; i++) {
        fresh[i].restart_at = UINT64_MAX;   /* held until its turn */
        for (j = 0; j < p->nchildren; j++)
            if (strcmp(p->children[j].consumer, fresh[i].consumer) == 0) {
                fresh[i].slot = p->children[j].slot;
                memcpy(fresh[i].carried, p->children[j].carried, sizeof(fresh[i].carried));
                memcpy(fresh[i].carried_hist, p->children[j].carried_hist,
                       sizeof(fresh[i].carried_hist));
            }
    }
    for (i = 0; i < nfresh; i++)
        if (fresh[i].slot == NULL)
            fresh[i].slot = free_slot(p, fresh, nfresh);
    p->old = p->children;
    p->nold = p->nchildren;
    for (i = 0; i < p->nold; i++)
        p->old[i].retired = 1;
    p->old_cfg = p->cfg;
    p->children = fresh;
    p->nchildren = nfresh;
    p->cfg = cfg;
    p->roll_next = 0;
    sl__pool_janitor_free(p);
    sl__log(SL_LOG_INFO, "reloading", "children=%zu", nfresh);
}

/* One step of a rolling restart, run every tick: stops the next old child,
 * and once it is gone releases the new child of the same name. */
void sl__pool_roll(struct sl_pool *p)
{
    size_t i;

    if (p->old == NULL)
        return;
    while (p->roll_next < p->nold) {
        struct sl_child *o = &p->old[p->roll_next];
        if (o->pid > 0) {
            if (!o->timed_out && o->restart_at != UINT64_MAX - 1) {
                kill(o->pid, SIGTERM);
                o->restart_at = UINT64_MAX - 1;   /* marks "asked to stop" */
            }
            return;
        }
        if (o->failed_id[0] != '\0')
            return;                 /* its crash is still to be recorded */
        for (i = 0; i < p->nchildren; i++)
            if (strcmp(p->children[i].consumer, o->consumer) == 0 &&
                p->children[i].restart_at == UINT64_MAX) {
                p->children[i].restart_at = 0;
                return;             /* wait for it to start before the next */
            }
        p->roll_next++;
    }
    for (i = 0; i < p->nchildren; i++) {
        if (p->children[i].restart_at == UINT64_MAX)
            p->children[i].restart_at = 0;
        if (p->children[i].pid == 0)
            return;                 /* not all new children run yet */
    }
    sl__pool_free_retired(p);
    sl__log(SL_LOG_INFO, "reloaded", "children=%zu", p->nchildren);
}

/* Frees the children and configuration a finished reload left behind.
 * The configuration of the first generation belongs to sl__pool_run's
 * caller, which frees it itself. */
void sl__pool_free_retired(struct sl_pool *p)
{
    free(p->old);
    p->old = NULL;
    p->nold = 0;
    if (p->old_cfg != p->cfg_caller)
        sl__config_free(p->old_cfg);
    p->old_cfg = NULL;
}

/* In a freshly forked child: closes what belongs to the supervisor. */
void sl__pool_child_cleanup(struct sl_pool *p)
{
    if (p->http_fd >= 0)
        close(p->http_fd);
    jan_child_cleanup(p);
}
