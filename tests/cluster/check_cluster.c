/* check_cluster.c -- the cluster router (framework/cluster.c) against a
 * local Redis Cluster of 3 masters + 3 replicas (tests/support/cluster.c):
 * hash slots as Redis computes them, MOVED from a wrong node, ASK during a
 * hand-driven migration of one slot, TRYAGAIN while a multi-key command's
 * keys are split by that migration, CLUSTERDOWN while a master serves an
 * incomplete map, a CLUSTER FAILOVER while a read is blocked, and a
 * master SIGKILLed under a command that may be repeated.
 *
 * Then the worker pool (`sluice run`, the test binary's probe handler) on
 * a cluster of its own: a tagged stream drained with every effect applied
 * once; the same through a CLUSTER FAILOVER, a hand-driven move of the
 * stream's slot to another master, and a SIGKILL of the stream's master;
 * and an untagged stream refused.
 *
 * Its own runner (make test-cluster): six servers are too many for the
 * valgrind run. The cluster is started once in the runner; each test runs
 * in a forked child and looks the current masters up itself, since the
 * tests move slots and masters.
 */
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <check.h>
#include <event2/event.h>
#include <hiredis.h>
#include <jansson.h>
#include "sluice.h"
#include "internal.h"
#include "cluster.h"
#include "harness.h"
#include "cluster_rig.h"
#include "config.h"
#include "sut.h"
#include "http.h"

static struct sl_test_cluster rig;

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* What a test keeps of one routed command's outcome (the reply is freed
 * when the callback returns). */
struct outcome {
    int done;
    int type;                     /* REDIS_REPLY_*, or -1 for no reply */
    long long integer;
    char str[256];                /* a string, status or error reply; why for none */
    char first_id[64];            /* XREADGROUP: the first entry's ID */
};

/* Records the outcome. */
static void on_done(struct sl_cluster *cl, redisReply *r, const char *why, void *priv)
{
    struct outcome *o = priv;

    (void)cl;
    o->done = 1;
    if (r == NULL) {
        o->type = -1;
        snprintf(o->str, sizeof(o->str), "%s", why);
        return;
    }
    o->type = r->type;
    o->integer = r->integer;
    if (r->str != NULL)
        snprintf(o->str, sizeof(o->str), "%s", r->str);
    /* [[stream, [[id, fields], ...]]] */
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0
        && r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2
        && r->element[0]->element[1]->type == REDIS_REPLY_ARRAY
        && r->element[0]->element[1]->elements > 0
        && r->element[0]->element[1]->element[0]->type == REDIS_REPLY_ARRAY
        && r->element[0]->element[1]->element[0]->elements > 0
        && r->element[0]->element[1]->element[0]->element[0]->type == REDIS_REPLY_STRING)
        snprintf(o->first_id, sizeof(o->first_id), "%s",
                 r->element[0]->element[1]->element[0]->element[0]->str);
}

/* Runs the loop until *done or timeout_ms (scaled) passes. */
static int run_until(struct event_base *base, const int *done, int timeout_ms)
{
    long long deadline = sl_test_deadline(timeout_ms);

    while (!*done && sl_test_now_ms() < deadline) {
        struct timeval tv = { 0, 20000 };

        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    return *done;
}

/* A configuration with the defaults (no file). */
static struct sl_config *defaults(void)
{
    char err[256];
    struct sl_config *cfg = sl__config_load("/nonexistent/sluice-cluster.json", 0, err, sizeof(err));

    ck_assert_msg(cfg != NULL, "config: %s", err);
    return cfg;
}

/* A router over every node of the rig, once the cluster is whole, its
 * map read. */
static struct sl_cluster *router(struct event_base *base, struct sl_config *cfg)
{
    char err[256];
    struct sl_cluster *cl = sl__cluster_new(base, cfg, rig.seeds, err, sizeof(err));
    struct sl_cluster_stats st;
    long long deadline = sl_test_deadline(10000);

    ck_assert_msg(cl != NULL, "router: %s", err);
    /* A test before may have left the cluster healing. */
    ck_assert_msg(sl_test_cluster_wait_ok(&rig, 60000), "the cluster is not ok");
    for (;;) {
        struct timeval tv = { 0, 20000 };

        sl__cluster_stats(cl, &st);
        if (st.refreshes > 0)
            break;
        ck_assert_msg(sl_test_now_ms() < deadline, "no slot map read");
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    return cl;
}

/* Sends a C-string command routed by its keys and waits for the outcome. */
static void call_keys(struct sl_cluster *cl, struct event_base *base, struct outcome *o,
                      int first_key, int nkeys, long long timeout_ms, int argc, const char **argv)
{
    char err[256];

    memset(o, 0, sizeof(*o));
    ck_assert_msg(sl__cluster_command_keys(cl, first_key, nkeys, 0, on_done, o, timeout_ms,
                                           argc, argv, NULL, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(run_until(base, &o->done, 40000), "%s: no outcome", argv[0]);
}

/* Runs a command on node i of the rig and checks it is not an error. */
static void node_ok_cmd(int i, const char *fmt, ...)
{
    redisContext *c = sl_test_cluster_connect(&rig, i);
    redisReply *r;
    va_list ap;

    ck_assert_msg(c != NULL && !c->err, "node %d unreachable", i);
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "node %d: no reply to %s", i, fmt);
    ck_assert_msg(r->type != REDIS_REPLY_ERROR, "node %d: %s: %s", i, fmt, r->str);
    freeReplyObject(r);
    redisFree(c);
}

/* The index of the master of slot, as node 0..5 (any live one) sees it. */
static int master_of(int slot)
{
    int i, m = -1;

    for (i = 0; i < rig.n && m < 0; i++)
        m = sl_test_cluster_master_of(&rig, i, slot);
    ck_assert_msg(m >= 0, "no master for slot %d", slot);
    return m;
}

/* Another master than m (the master of a slot far from m's). */
static int other_master(int m)
{
    static const int probe[] = { 0, 6000, 12000, 16383 };
    size_t i;

    for (i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
        int o = master_of(probe[i]);

        if (o != m)
            return o;
    }
    ck_abort_msg("one master only");
    return -1;
}

/* Tells every master (from the slot's new owner on) that slot belongs to
 * node `to`. */
static void setslot_node(int slot, int to)
{
    char *id = sl_test_cluster_node_id(&rig, to);
    int i;

    ck_assert(id != NULL);
    node_ok_cmd(to, "CLUSTER SETSLOT %d NODE %s", slot, id);
    for (i = 0; i < rig.n; i++) {
        redisContext *c;
        redisReply *r;

        if (i == to)
            continue;
        c = sl_test_cluster_connect(&rig, i);
        if (c == NULL)
            continue;
        /* Replicas refuse SETSLOT; they follow their master. */
        r = c->err ? NULL : redisCommand(c, "CLUSTER SETSLOT %d NODE %s", slot, id);
        if (r != NULL)
            freeReplyObject(r);
        redisFree(c);
    }
    free(id);
}

/* ------------------------------------------------------------------------
 * Slots
 * ------------------------------------------------------------------------ */

/* The slot of each key is the one Redis computes (CLUSTER KEYSLOT),
 * hash tags included. */
START_TEST(test_keyslot)
{
    static const char *const keys[] = {
        "123456789", "foo", "foo{bar}{zap}", "foo{{bar}}zap", "foo{}{bar}",
        "sluice:{p7}:x", "orders:{p7}", "{", "}", "{}", "a{b", "a}b{c}", "",
    };
    redisContext *c = sl_test_cluster_connect(&rig, 0);
    size_t i;

    ck_assert(c != NULL && !c->err);
    ck_assert_int_eq(sl__cluster_keyslot("123456789", 9), 12739);
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        long long want = sl_test_int(c, "CLUSTER KEYSLOT %s", keys[i]);

        ck_assert_msg(sl__cluster_keyslot(keys[i], strlen(keys[i])) == want,
                      "%s: %d, Redis says %lld", keys[i],
                      sl__cluster_keyslot(keys[i], strlen(keys[i])), want);
    }
    redisFree(c);
    {
        const char *same[] = { "sluice:{p7}:x", "orders:{p7}" };
        const char *mixed[] = { "orders:{p7}", "orders:{p8}" };

        ck_assert_int_eq(sl__cluster_keys_slot(2, same, NULL), sl__cluster_keyslot("p7", 2));
        ck_assert_int_eq(sl__cluster_keys_slot(2, mixed, NULL), -2);
        ck_assert_int_eq(sl__cluster_keys_slot(0, mixed, NULL), -1);
    }
}
END_TEST

/* Keys in two slots are refused before anything is sent. */
START_TEST(test_crossslot_refused)
{
    struct event_base *base = event_base_new();
    struct sl_config *cfg = defaults();
    struct sl_cluster *cl = router(base, cfg);
    const char *argv[] = { "EVAL", "return 1", "2", "orders:{p7}", "orders:{p8}" };
    struct outcome o;
    char err[256] = "";

    memset(&o, 0, sizeof(o));
    ck_assert_int_eq(sl__cluster_command_keys(cl, 3, 2, 0, on_done, &o, 0, 5, argv, NULL,
                                              err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "CROSSSLOT") != NULL, "%s", err);
    ck_assert_int_eq(o.done, 0);
    sl__cluster_free(cl);
    sl__config_free(cfg);
    event_base_free(base);
}
END_TEST

/* ------------------------------------------------------------------------
 * Redirects
 * ------------------------------------------------------------------------ */

/* A command sent to the wrong master (routed by another slot) gets MOVED,
 * lands on the right one, and the map learns the slot. */
START_TEST(test_moved)
{
    struct event_base *base = event_base_new();
    struct sl_config *cfg = defaults();
    struct sl_cluster *cl = router(base, cfg);
    int slot = sl__cluster_keyslot("moved:{m}", 9), wrong;
    const char *argv[] = { "XADD", "moved:{m}", "*", "k", "v" };
    struct sl_cluster_stats st;
    struct outcome o;

    /* A slot served by another master than the key's. */
    wrong = sl__cluster_keyslot("moved:{m}", 9) < 8000 ? 16000 : 100;
    while (master_of(wrong) == master_of(slot))
        wrong = (wrong + 3000) % SL_CLUSTER_SLOTS;
    memset(&o, 0, sizeof(o));
    ck_assert_int_eq(sl__cluster_command(cl, wrong, 0, on_done, &o, 0, 5, argv, NULL), 0);
    ck_assert(run_until(base, &o.done, 20000));
    ck_assert_msg(o.type == REDIS_REPLY_STRING, "type %d: %s", o.type, o.str);
    sl__cluster_stats(cl, &st);
    ck_assert_uint_eq(st.moved, 1);
    ck_assert_uint_eq(st.ask, 0);
    {
        redisContext *c = sl_test_cluster_connect(&rig, master_of(slot));

        ck_assert_int_eq(sl_test_int(c, "XLEN moved:{m}"), 1);
        redisFree(c);
    }
    sl__cluster_free(cl);
    sl__config_free(cfg);
    event_base_free(base);
}
END_TEST

/* What the TRYAGAIN test's timer finishes: the migration of the slot. */
struct migration {
    int slot, from, to;
    const char *key;
};

/* Moves the last key of the slot and hands the slot over (runs from a
 * timer while the router is retrying). */
static void finish_migration(evutil_socket_t fd, short what, void *arg)
{
    struct migration *m = arg;

    (void)fd;
    (void)what;
    node_ok_cmd(m->from, "MIGRATE 127.0.0.1 %d %s 0 5000", rig.node[m->to].port, m->key);
    setslot_node(m->slot, m->to);
}

/* A hand-driven migration of one slot: a key already moved is reached
 * through ASK (ASKING on the target, the map untouched); a two-key script
 * over one moved and one unmoved key gets TRYAGAIN, is retried with
 * backoff, and succeeds once the migration is finished. */
START_TEST(test_ask_and_tryagain)
{
    struct event_base *base = event_base_new();
    struct sl_config *cfg = defaults();
    struct sl_cluster *cl = router(base, cfg);
    int slot = sl__cluster_keyslot("mig", 3);
    int from = master_of(slot), to = other_master(from);
    char *from_id = sl_test_cluster_node_id(&rig, from), *to_id = sl_test_cluster_node_id(&rig, to);
    const char *xlen[] = { "XLEN", "{mig}:a" };
    const char *both[] = { "EVAL", "return redis.call('XLEN', KEYS[1]) + redis.call('XLEN', KEYS[2])",
                           "2", "{mig}:a", "{mig}:b" };
    struct migration mig = { slot, from, to, "{mig}:b" };
    struct event *ev = evtimer_new(base, finish_migration, &mig);
    struct timeval half = { 0, 500000 };
    struct sl_cluster_stats st;
    struct outcome o;

    ck_assert(from_id != NULL && to_id != NULL && ev != NULL);
    node_ok_cmd(from, "XADD {mig}:a * k v");
    node_ok_cmd(from, "XADD {mig}:a * k v");
    node_ok_cmd(from, "XADD {mig}:b * k v");
    node_ok_cmd(to, "CLUSTER SETSLOT %d IMPORTING %s", slot, from_id);
    node_ok_cmd(from, "CLUSTER SETSLOT %d MIGRATING %s", slot, to_id);
    node_ok_cmd(from, "MIGRATE 127.0.0.1 %d {mig}:a 0 5000", rig.node[to].port);

    call_keys(cl, base, &o, 1, 1, 0, 2, xlen);
    ck_assert_msg(o.type == REDIS_REPLY_INTEGER && o.integer == 2, "type %d %lld: %s",
                  o.type, o.integer, o.str);
    sl__cluster_stats(cl, &st);
    ck_assert_uint_eq(st.ask, 1);
    ck_assert_uint_eq(st.moved, 0);
    /* ASK leaves the map alone: the slot is still the source's. */
    ck_assert_int_eq(atoi(strrchr(sl__cluster_slot_addr(cl, slot), ':') + 1),
                     rig.node[from].port);

    /* Split keys: TRYAGAIN until the timer finishes the migration. */
    evtimer_add(ev, &half);
    call_keys(cl, base, &o, 3, 2, 0, 5, both);
    ck_assert_msg(o.type == REDIS_REPLY_INTEGER && o.integer == 3, "type %d %lld: %s",
                  o.type, o.integer, o.str);
    sl__cluster_stats(cl, &st);
    ck_assert_msg(st.retried >= 1, "retried %lu", st.retried);

    /* The slot is now the target's: the map learns it (MOVED or a read). */
    call_keys(cl, base, &o, 1, 1, 0, 2, xlen);
    ck_assert_int_eq(o.integer, 2);
    SL_TEST_ASSERT_EVENTUALLY(5000, (event_base_loop(base, EVLOOP_NONBLOCK),
                              sl__cluster_slot_addr(cl, slot) != NULL
                              && atoi(strrchr(sl__cluster_slot_addr(cl, slot), ':') + 1)
                                     == rig.node[to].port));
    event_free(ev);
    free(from_id);
    free(to_id);
    sl__cluster_free(cl);
    sl__config_free(cfg);
    event_base_free(base);
}
END_TEST

/* The CLUSTERDOWN test's timer: gives the slot back. */
struct down {
    int node, slot;
};

/* Re-adds the slot the test took from its master. */
static void give_back(evutil_socket_t fd, short what, void *arg)
{
    struct down *d = arg;

    (void)fd;
    (void)what;
    node_ok_cmd(d->node, "CLUSTER ADDSLOTS %d", d->slot);
}

/* 1 when the node answers a command with CLUSTERDOWN. */
static int says_clusterdown(redisContext *c)
{
    redisReply *r = redisCommand(c, "XLEN {down}:s");
    int down = r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "CLUSTERDOWN", 11) == 0;

    if (r != NULL)
        freeReplyObject(r);
    return down;
}

/* A master missing one of its slots says CLUSTERDOWN to everything: the
 * router retries with backoff and gets through once the slot is back. */
START_TEST(test_clusterdown)
{
    struct event_base *base = event_base_new();
    struct sl_config *cfg = defaults();
    struct sl_cluster *cl = router(base, cfg);
    int slot = sl__cluster_keyslot("down", 4), m = master_of(slot), spare;
    const char *argv[] = { "XADD", "{down}:s", "*", "k", "v" };
    struct down d;
    struct event *ev = evtimer_new(base, give_back, &d);
    struct timeval later = { 1, 0 };
    struct sl_cluster_stats st;
    struct outcome o;
    redisContext *c;

    /* Another slot of the same master, empty: removing it breaks the
     * coverage in that master's own view. */
    for (spare = 0; spare < SL_CLUSTER_SLOTS; spare++)
        if (spare != slot && sl_test_cluster_master_of(&rig, m, spare) == m)
            break;
    ck_assert(spare < SL_CLUSTER_SLOTS && ev != NULL);
    d.node = m;
    d.slot = spare;
    node_ok_cmd(m, "CLUSTER DELSLOTS %d", spare);
    c = sl_test_cluster_connect(&rig, m);
    SL_TEST_ASSERT_EVENTUALLY(10000, says_clusterdown(c));
    redisFree(c);

    evtimer_add(ev, &later);
    call_keys(cl, base, &o, 1, 1, 0, 5, argv);
    ck_assert_msg(o.type == REDIS_REPLY_STRING, "type %d: %s", o.type, o.str);
    sl__cluster_stats(cl, &st);
    ck_assert_msg(st.retried >= 1, "retried %lu", st.retried);
    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
    event_free(ev);
    sl__cluster_free(cl);
    sl__config_free(cfg);
    event_base_free(base);
}
END_TEST

/* ------------------------------------------------------------------------
 * Failover
 * ------------------------------------------------------------------------ */

/* What the failover test's timer does: CLUSTER FAILOVER on the replica. */
static void do_failover(evutil_socket_t fd, short what, void *arg)
{
    int *replica = arg;

    (void)fd;
    (void)what;
    node_ok_cmd(*replica, "CLUSTER FAILOVER");
}

/* A read blocked on a master that a CLUSTER FAILOVER demotes ends (with
 * -UNBLOCKED or a closed connection, as Redis chooses); the consumer's
 * own PEL, re-read through the router, comes from the new master. */
START_TEST(test_failover_blocked_read)
{
    struct event_base *base = event_base_new();
    struct sl_config *cfg = defaults();
    struct sl_cluster *cl = router(base, cfg);
    int slot = sl__cluster_keyslot("fo", 2), m = master_of(slot), replica;
    const char *read_new[] = { "XREADGROUP", "GROUP", "g", "c1", "COUNT", "10",
                               "STREAMS", "{fo}:s", ">" };
    const char *block[] = { "XREADGROUP", "GROUP", "g", "c1", "COUNT", "10", "BLOCK", "5000",
                            "STREAMS", "{fo}:s", ">" };
    const char *read_pel[] = { "XREADGROUP", "GROUP", "g", "c1", "COUNT", "10",
                               "STREAMS", "{fo}:s", "0" };
    struct event *ev;
    struct timeval soon = { 0, 300000 };
    struct outcome o;
    char id[64];
    long long t0;

    replica = sl_test_cluster_replica_of(&rig, m);
    ck_assert_msg(replica >= 0, "master %d has no replica", m);
    ev = evtimer_new(base, do_failover, &replica);
    ck_assert(ev != NULL);
    node_ok_cmd(m, "XGROUP CREATE {fo}:s g $ MKSTREAM");
    node_ok_cmd(m, "XADD {fo}:s * k v");
    node_ok_cmd(m, "WAIT 1 5000");
    call_keys(cl, base, &o, 7, 1, 0, 9, read_new);
    ck_assert_msg(o.first_id[0] != '\0', "first read: type %d %s", o.type, o.str);
    snprintf(id, sizeof(id), "%s", o.first_id);
    node_ok_cmd(m, "WAIT 1 5000");            /* the PEL reaches the replica */

    evtimer_add(ev, &soon);
    t0 = sl_test_now_ms();
    call_keys(cl, base, &o, 9, 1, 5000 + cfg->command_timeout_ms, 11, block);
    ck_assert_msg(o.type == -1 || (o.type == REDIS_REPLY_ERROR && strncmp(o.str, "UNBLOCKED", 9) == 0),
                  "blocked read ended with type %d: %s", o.type, o.str);
    ck_assert_msg(sl_test_now_ms() - t0 < 5000, "the read waited out its BLOCK");

    /* The own PEL, from the slot's new master. */
    memset(&o, 0, sizeof(o));
    {
        char err[256];

        ck_assert(sl__cluster_command_keys(cl, 7, 1, SL_CLUSTER_RESEND, on_done, &o, 0, 9,
                                           read_pel, NULL, err, sizeof(err)) == 0);
    }
    ck_assert(run_until(base, &o.done, 40000));
    ck_assert_msg(strcmp(o.first_id, id) == 0, "PEL re-read: type %d %s id \"%s\", want %s",
                  o.type, o.str, o.first_id, id);
    ck_assert_int_eq(atoi(strrchr(sl__cluster_slot_addr(cl, slot), ':') + 1),
                     rig.node[replica].port);
    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
    event_free(ev);
    sl__cluster_free(cl);
    sl__config_free(cfg);
    event_base_free(base);
}
END_TEST

/* A master SIGKILLed: a command marked safe to repeat keeps being
 * retried (connection refused, CLUSTERDOWN, a stale map) until the
 * replica is promoted, and lands there. The cluster is left with one
 * master dead and no replica for the promoted one: this test runs last. */
START_TEST(test_master_killed)
{
    struct event_base *base = event_base_new();
    struct sl_config *cfg = defaults();
    struct sl_cluster *cl = router(base, cfg);
    int slot = sl__cluster_keyslot("kill", 4), m = master_of(slot), replica;
    const char *argv[] = { "XADD", "{kill}:s", "*", "k", "v" };
    struct sl_cluster_stats st;
    struct outcome o;
    char err[256];

    replica = sl_test_cluster_replica_of(&rig, m);
    ck_assert_msg(replica >= 0, "master %d has no replica", m);
    sl_test_redis_kill(&rig.node[m]);

    memset(&o, 0, sizeof(o));
    ck_assert(sl__cluster_command_keys(cl, 1, 1, SL_CLUSTER_RESEND, on_done, &o, 0, 5, argv,
                                       NULL, err, sizeof(err)) == 0);
    ck_assert(run_until(base, &o.done, 60000));
    ck_assert_msg(o.type == REDIS_REPLY_STRING, "type %d: %s", o.type, o.str);
    sl__cluster_stats(cl, &st);
    ck_assert_msg(st.retried >= 1, "retried %lu", st.retried);
    ck_assert_int_eq(atoi(strrchr(sl__cluster_slot_addr(cl, slot), ':') + 1),
                     rig.node[replica].port);
    sl__cluster_free(cl);
    sl__config_free(cfg);
    event_base_free(base);
}
END_TEST


/* ------------------------------------------------------------------------
 * The synchronous path: sluice enqueue, the producer API, the admin
 * commands (framework/sync.c over the router)
 * ------------------------------------------------------------------------ */

/* The three masters, by the slots of the cluster's first layout. */
static void three_masters(int m[3])
{
    m[0] = master_of(0);
    m[1] = master_of(8000);
    m[2] = master_of(16000);
    ck_assert_msg(m[0] != m[1] && m[1] != m[2] && m[0] != m[2], "masters %d %d %d",
                  m[0], m[1], m[2]);
}

/* Writes into key (size bytes) "<prefix>:{<tag>N}" for the first N whose
 * slot master m serves. */
static void key_on(int m, const char *prefix, const char *tag, char *key, size_t size)
{
    int n;

    for (n = 0; n < 1000; n++) {
        char t[64];

        snprintf(t, sizeof(t), "%s%d", tag, n);
        if (master_of(sl__cluster_keyslot(t, strlen(t))) == m) {
            snprintf(key, size, "%s:{%s}", prefix, t);
            return;
        }
    }
    ck_abort_msg("no tag %s* on master %d", tag, m);
}

/* "127.0.0.1:PORT" of node i. */
static void node_addr(int i, char *buf, size_t size)
{
    snprintf(buf, size, "127.0.0.1:%d", rig.node[i].port);
}

/* A directory of the test's own, its config.json naming node `seed` as
 * the only seed (the URL's server does not exist: it must not be used)
 * and one noop worker per stream of `streams` (NULL-terminated). Returns
 * the directory (free()). */
static char *ops_config(int seed, const char *const *streams)
{
    char *dir = sl_test_tmpdir(), path[PATH_MAX], addr[64], workers[2048] = "";
    size_t i, o = 0;

    ck_assert(dir != NULL);
    node_addr(seed, addr, sizeof(addr));
    for (i = 0; streams[i] != NULL; i++)
        o += (size_t)snprintf(workers + o, sizeof(workers) - o,
                              "%s{\"handler\": \"noop\", \"stream\": \"%s\", \"group\": \"g\"}",
                              i ? ", " : "", streams[i]);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    ck_assert(sl_test_write_file(path, "{\n  \"redis\": {\"url\": \"redis://127.0.0.1:1/0\", "
                                 "\"cluster_nodes\": [\"%s\"]},\n  \"workers\": [%s]\n}\n",
                                 addr, workers) == 0);
    return dir;
}

/* Runs the binary under test with -c dir/config.json and args
 * (NULL-terminated), its output in dir/out.log. Returns the exit code. */
static int ops_cli(const char *dir, const char *const *args)
{
    const char *argv[24];
    char cfg[PATH_MAX], log[PATH_MAX];
    int status = -1, i, n = 0;
    pid_t pid;

    snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
    snprintf(log, sizeof(log), "%s/out.log", dir);
    unlink(log);
    argv[n++] = sl_test_bin();
    for (i = 0; args[i] != NULL && n < 20; i++)
        argv[n++] = args[i];
    argv[n++] = "-c";
    argv[n++] = cfg;
    argv[n] = NULL;
    pid = sl_test_spawn(argv, log);
    ck_assert_int_gt(pid, 0);
    ck_assert_msg(sl_test_wait_exit(pid, 60000, &status), "%s %s: still running", argv[1], argv[2]);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* dir/out.log (new: free()). */
static char *ops_out(const char *dir)
{
    char log[PATH_MAX];
    char *t;

    snprintf(log, sizeof(log), "%s/out.log", dir);
    t = sl_test_read_file(log);
    ck_assert(t != NULL);
    return t;
}

/* XLEN of key on node i. */
static long long xlen_on(int i, const char *key)
{
    redisContext *c = sl_test_cluster_connect(&rig, i);
    long long n;

    ck_assert(c != NULL && !c->err);
    n = sl_test_int(c, "XLEN %s", key);
    redisFree(c);
    return n;
}

/* XLEN of key on node i, which imports its slot: after ASKING, as a
 * client told ASK must. */
static long long xlen_asking(int i, const char *key)
{
    redisContext *c = sl_test_cluster_connect(&rig, i);
    redisReply *r;
    long long n;

    ck_assert(c != NULL && !c->err);
    r = redisCommand(c, "ASKING");
    ck_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    n = sl_test_int(c, "XLEN %s", key);
    redisFree(c);
    return n;
}

/* `sluice enqueue` and the producer API, seeded with one master only,
 * put each entry on the master of its stream's slot, on every master;
 * a cluster none of whose seeds answers is reported as such. */
START_TEST(test_sync_enqueue_each_master)
{
    char keys[3][64], seed[64], err[256], id[SL_ENQUEUE_IDLEN];
    const char *streams[4];
    struct sl_producer *p;
    char *dir, *out;
    int m[3], i;

    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
    three_masters(m);
    for (i = 0; i < 3; i++) {
        key_on(m[i], "enq", "e", keys[i], sizeof(keys[i]));
        streams[i] = keys[i];
    }
    streams[3] = NULL;
    dir = ops_config(m[0], streams);
    for (i = 0; i < 3; i++) {
        const char *args[] = { "enqueue", keys[i], "t", "{\"n\": 1}", NULL };
        int rc = ops_cli(dir, args);

        out = ops_out(dir);
        ck_assert_msg(rc == 0, "enqueue %s: exit %d: %s", keys[i], rc, out);
        ck_assert_msg(strchr(out, '-') != NULL, "enqueue %s: no ID: %s", keys[i], out);
        free(out);
        ck_assert_int_eq(xlen_on(m[i], keys[i]), 1);
    }

    node_addr(m[0], seed, sizeof(seed));
    p = sl_producer_new_cluster("redis://127.0.0.1:1/0", seed, err, sizeof(err));
    ck_assert_msg(p != NULL, "producer: %s", err);
    for (i = 0; i < 3; i++) {
        ck_assert_msg(sl_enqueue(p, keys[i], "t", "{}", 2, id, sizeof(id)) == SL_OK, "%s: %s",
                      keys[i], sl_producer_errstr(p));
        ck_assert_int_eq(xlen_on(m[i], keys[i]), 2);
    }
    sl_producer_free(p);

    p = sl_producer_new_cluster(NULL, "127.0.0.1:1", err, sizeof(err));
    ck_assert(p == NULL);
    ck_assert_msg(strstr(err, "cannot reach the redis cluster at 127.0.0.1:1") != NULL, "%s", err);
    sl_test_rmtree(dir);
    free(dir);
}
END_TEST

/* The stats entry (a JSON object) of stream in the `stats --json`
 * output text, or NULL. Borrowed from doc. */
static json_t *stats_row(json_t *doc, const char *stream)
{
    size_t i;

    for (i = 0; i < json_array_size(doc); i++) {
        json_t *o = json_array_get(doc, i);

        if (strcmp(json_string_value(json_object_get(o, "stream")), stream) == 0)
            return o;
    }
    return NULL;
}

/* stats, pending and dlq list / replay / purge over streams on two
 * masters, the seed being one of them: each stream's figures come from
 * its own master. */
START_TEST(test_sync_ops_across_masters)
{
    char keys[2][64], dead[80];
    const char *streams[3];
    char *dir, *out;
    int m[3], i, rc;

    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
    three_masters(m);
    for (i = 0; i < 2; i++) {
        key_on(m[i], "ops", "o", keys[i], sizeof(keys[i]));
        streams[i] = keys[i];
        node_ok_cmd(m[i], "XGROUP CREATE %s g 0 MKSTREAM", keys[i]);
        node_ok_cmd(m[i], "XADD %s * type t data {}", keys[i]);
        node_ok_cmd(m[i], "XADD %s * type t data {}", keys[i]);
        node_ok_cmd(m[i], "XREADGROUP GROUP g c%d COUNT 1 STREAMS %s >", i, keys[i]);
        node_ok_cmd(m[i], "XADD %s:dead * source_id 1-1 type t data {} error boom%d "
                    "deliveries 1 attempts 1", keys[i], i);
    }
    streams[2] = NULL;
    /* Seeded with the second master: the first stream is elsewhere. */
    dir = ops_config(m[1], streams);

    {
        const char *args[] = { "stats", "--json", NULL };
        json_error_t jerr;
        json_t *doc;

        rc = ops_cli(dir, args);
        out = ops_out(dir);
        ck_assert_msg(rc == 0, "stats: exit %d: %s", rc, out);
        doc = json_loads(out, 0, &jerr);
        ck_assert_msg(doc != NULL, "stats: %s: %s", jerr.text, out);
        for (i = 0; i < 2; i++) {
            json_t *o = stats_row(doc, keys[i]);

            ck_assert_msg(o != NULL, "stats: no row for %s: %s", keys[i], out);
            ck_assert_int_eq(json_integer_value(json_object_get(o, "length")), 2);
            ck_assert_int_eq(json_integer_value(json_object_get(o, "pending")), 1);
            ck_assert_int_eq(json_integer_value(json_object_get(o, "dead")), 1);
        }
        json_decref(doc);
        free(out);
    }
    for (i = 0; i < 2; i++) {
        const char *args[] = { "pending", keys[i], NULL };
        char want[16];

        rc = ops_cli(dir, args);
        out = ops_out(dir);
        snprintf(want, sizeof(want), "c%d", i);
        ck_assert_msg(rc == 0 && strstr(out, "1 pending") != NULL && strstr(out, want) != NULL,
                      "pending %s: exit %d: %s", keys[i], rc, out);
        free(out);
    }
    for (i = 0; i < 2; i++) {
        const char *list[] = { "dlq", "list", keys[i], NULL };
        char want[16];

        rc = ops_cli(dir, list);
        out = ops_out(dir);
        snprintf(want, sizeof(want), "boom%d", i);
        ck_assert_msg(rc == 0 && strstr(out, want) != NULL, "dlq list %s: exit %d: %s",
                      keys[i], rc, out);
        free(out);
    }
    {
        const char *replay[] = { "dlq", "replay", "--all", keys[0], NULL };
        const char *purge[] = { "dlq", "purge", keys[1], "--yes", NULL };

        rc = ops_cli(dir, replay);
        out = ops_out(dir);
        ck_assert_msg(rc == 0 && strstr(out, "replayed 1 dead letters") != NULL,
                      "dlq replay: exit %d: %s", rc, out);
        free(out);
        snprintf(dead, sizeof(dead), "%s:dead", keys[0]);
        ck_assert_int_eq(xlen_on(m[0], dead), 0);
        ck_assert_int_eq(xlen_on(m[0], keys[0]), 3);

        rc = ops_cli(dir, purge);
        out = ops_out(dir);
        ck_assert_msg(rc == 0 && strstr(out, "purged 1 dead letters") != NULL,
                      "dlq purge: exit %d: %s", rc, out);
        free(out);
        snprintf(dead, sizeof(dead), "%s:dead", keys[1]);
        ck_assert_int_eq(xlen_on(m[1], dead), 0);
    }
    sl_test_rmtree(dir);
    free(dir);
}
END_TEST

/* A producer whose slot map is stale: while the stream's slot is being
 * migrated by hand and the stream has moved, an entry reaches it through
 * ASK; once the slot is handed over, through MOVED. No entry is lost or
 * doubled. */
START_TEST(test_sync_ask_and_moved)
{
    char key[64], seed[64], err[256], id[SL_ENQUEUE_IDLEN], *from_id, *to_id;
    struct sl_producer *p;
    int m[3], slot, from, to;

    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
    three_masters(m);
    from = m[2];
    to = m[0];
    key_on(from, "mig", "g", key, sizeof(key));
    slot = sl__cluster_keyslot(strchr(key, '{') + 1, strlen(strchr(key, '{') + 1) - 1);
    node_addr(to, seed, sizeof(seed));
    p = sl_producer_new_cluster(NULL, seed, err, sizeof(err));
    ck_assert_msg(p != NULL, "producer: %s", err);
    ck_assert_msg(sl_enqueue(p, key, "t", "{}", 2, id, sizeof(id)) == SL_OK, "%s",
                  sl_producer_errstr(p));
    ck_assert_int_eq(xlen_on(from, key), 1);

    from_id = sl_test_cluster_node_id(&rig, from);
    to_id = sl_test_cluster_node_id(&rig, to);
    ck_assert(from_id != NULL && to_id != NULL);
    node_ok_cmd(to, "CLUSTER SETSLOT %d IMPORTING %s", slot, from_id);
    node_ok_cmd(from, "CLUSTER SETSLOT %d MIGRATING %s", slot, to_id);
    node_ok_cmd(from, "MIGRATE 127.0.0.1 %d %s 0 5000", rig.node[to].port, key);
    /* The map still says `from`, which answers ASK. */
    ck_assert_msg(sl_enqueue(p, key, "t", "{}", 2, id, sizeof(id)) == SL_OK, "ASK: %s",
                  sl_producer_errstr(p));
    ck_assert_int_eq(xlen_asking(to, key), 2);

    setslot_node(slot, to);
    /* `from` now answers MOVED. */
    ck_assert_msg(sl_enqueue(p, key, "t", "{}", 2, id, sizeof(id)) == SL_OK, "MOVED: %s",
                  sl_producer_errstr(p));
    ck_assert_int_eq(xlen_on(to, key), 3);
    {
        char *dir;
        const char *streams[] = { key, NULL };
        const char *args[] = { "enqueue", key, "t", "{}", NULL };
        char *out;
        int rc;

        /* The CLI, seeded with the old master, finds the new one. */
        dir = ops_config(from, streams);
        rc = ops_cli(dir, args);
        out = ops_out(dir);
        ck_assert_msg(rc == 0, "enqueue: exit %d: %s", rc, out);
        free(out);
        ck_assert_int_eq(xlen_on(to, key), 4);
        sl_test_rmtree(dir);
        free(dir);
    }
    sl_producer_free(p);
    free(from_id);
    free(to_id);
}
END_TEST

/* An XADD whose reply is lost (here: the master holds writes back, and
 * the command times out) is not sent again: sl_enqueue() says the entry
 * may or may not have been added, as on a single Redis, and returns
 * before the master lets writes through again; nothing is added twice.
 * A read on the same cluster afterwards works (a new connection). */
START_TEST(test_sync_lost_reply_not_resent)
{
    char key[64], seed[64], err[256], id[SL_ENQUEUE_IDLEN];
    struct sl_producer *p;
    int m[3], pause_ms = 4 * 5000 * sl_test_slow_factor();
    long long t0, took;
    redisContext *c;
    int rc;

    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
    three_masters(m);
    key_on(m[1], "lost", "l", key, sizeof(key));
    node_addr(m[0], seed, sizeof(seed));
    p = sl_producer_new_cluster(NULL, seed, err, sizeof(err));
    ck_assert_msg(p != NULL, "producer: %s", err);
    ck_assert(sl_enqueue(p, key, "t", "{}", 2, id, sizeof(id)) == SL_OK);

    node_ok_cmd(m[1], "CLIENT PAUSE %d WRITE", pause_ms);
    t0 = sl_test_now_ms();
    rc = sl_enqueue(p, key, "t", "{}", 2, id, sizeof(id));
    took = sl_test_now_ms() - t0;
    node_ok_cmd(m[1], "CLIENT UNPAUSE");
    ck_assert_msg(rc == SL_EREDIS, "rc %d after %lld ms", rc, took);
    ck_assert_msg(strstr(sl_producer_errstr(p), "may or may not have been added") != NULL, "%s",
                  sl_producer_errstr(p));
    ck_assert_msg(took < pause_ms, "returned after %lld ms, the pause was %d", took, pause_ms);
    /* Nothing doubled: the held-back XADD ran once at most. */
    c = sl_test_cluster_connect(&rig, m[1]);
    ck_assert(c != NULL && !c->err);
    ck_assert_int_le(sl_test_int(c, "XLEN %s", key), 2);
    redisFree(c);
    /* The producer connects again for the next entry. */
    ck_assert_msg(sl_enqueue(p, key, "t", "{}", 2, id, sizeof(id)) == SL_OK, "%s",
                  sl_producer_errstr(p));
    sl_producer_free(p);
}
END_TEST

/* ------------------------------------------------------------------------
 * The worker pool on the cluster
 * ------------------------------------------------------------------------ */

/* One pool test's files and process. */
struct pooltest {
    char *dir;                    /* its directory (owned) */
    char cfg[600];                /* the configuration file */
    char log[600];                /* the pool's stdout and stderr */
    char stream[64];              /* "orders:{<tag>}" */
    const char *tag;              /* the stream's hash tag, also the probe's effect tag */
    int slot;                     /* the stream's slot */
    pid_t pid;                    /* the pool, 0 when none */
    char ids[1000][32];           /* the IDs of the entries added */
    int nids;
};

/* The node that serves slot by its own account (a node just demoted or
 * promoted may disagree with the others for a moment), or -1. */
static int live_master(int slot)
{
    int i;

    for (i = 0; i < rig.n; i++)
        if (sl_test_cluster_master_of(&rig, i, slot) == i)
            return i;
    return -1;
}

/* Names t after its tag: its stream "orders:{<tag>}" and that slot. */
static void pool_names(struct pooltest *t, const char *tag)
{
    memset(t, 0, sizeof(*t));
    t->tag = tag;
    snprintf(t->stream, sizeof(t->stream), "orders:{%s}", tag);
    t->slot = sl__cluster_keyslot(t->stream, strlen(t->stream));
}

/* Names t (pool_names) and writes its configuration in a directory of
 * its own: the rig's seeds, the defaults with `overrides` (NULL: none),
 * and `workers` (elements of "workers"; NULL: one probe worker with two
 * processes on t's stream). */
static void pool_config(struct pooltest *t, const char *tag, const char *overrides,
                        const char *workers)
{
    char url[64], redis[512], wk[512], *p;
    const char *s;
    struct sl_test_config c = { url, redis, NULL, overrides, NULL, NULL };

    pool_names(t, tag);
    t->dir = sl_test_tmpdir();
    ck_assert(t->dir != NULL);
    snprintf(t->cfg, sizeof(t->cfg), "%s/sluice.json", t->dir);
    snprintf(t->log, sizeof(t->log), "%s/pool.log", t->dir);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", rig.node[0].port);
    /* "h:p,h:p" -> "cluster_nodes": ["h:p", "h:p"] */
    p = redis + snprintf(redis, sizeof(redis), "\"cluster_nodes\": [\"");
    for (s = rig.seeds; *s != '\0'; s++)
        p += *s == ',' ? sprintf(p, "\", \"") : sprintf(p, "%c", *s);
    sprintf(p, "\"]");
    if (workers == NULL) {
        snprintf(wk, sizeof(wk), "{\"handler\": \"probe\", \"stream\": \"%s\", \"group\": \"g\", "
                 "\"processes\": 2}", t->stream);
        workers = wk;
    }
    c.workers = workers;
    ck_assert_int_eq(sl_test_config_write(t->cfg, &c), 0);
}

/* Starts the pool of t and waits until its children run. */
static void pool_start(struct pooltest *t, int children)
{
    t->pid = sl_test_pool_spawn(t->cfg, t->log);
    ck_assert(t->pid > 0);
    if (sl_test_pool_wait_running(t->pid, t->log, children, 30000) != 0) {
        sl_test_log_tail(t->log, 40);
        ck_abort_msg("the pool did not start its %d children", children);
    }
}

/* Stops the pool and removes t's files. */
static void pool_end(struct pooltest *t)
{
    sl_test_pool_kill(&t->pid, 10000);
    if (t->dir != NULL && getenv("SLUICE_TEST_KEEP") == NULL)
        sl_test_rmtree(t->dir);
    free(t->dir);
    t->dir = NULL;
}

/* Adds n entries to t's stream on node m, each asking the probe for its
 * tagged effect (and to sleep sleep_ms), in pipelined batches, then
 * waits for the replica to have them (WAIT), so that a failover cannot
 * lose what the test counts as added. */
static void pool_add(struct pooltest *t, int m, int n, int sleep_ms)
{
    redisContext *c = sl_test_cluster_connect(&rig, m);
    redisReply *r;
    char data[128];
    int i, j;

    ck_assert_msg(c != NULL && !c->err, "node %d unreachable", m);
    snprintf(data, sizeof(data), "{\"effect\": \"%s\", \"sleep_ms\": %d}", t->tag, sleep_ms);
    for (i = 0; i < n; i += 100) {
        for (j = i; j < n && j < i + 100; j++)
            redisAppendCommand(c, "XADD %s * type probe data %s", t->stream, data);
        for (j = i; j < n && j < i + 100; j++) {
            ck_assert(redisGetReply(c, (void **)&r) == REDIS_OK && r != NULL);
            ck_assert_msg(r->type == REDIS_REPLY_STRING, "XADD: %s", r->str);
            ck_assert(t->nids < (int)SL_NELEM(t->ids));
            snprintf(t->ids[t->nids++], sizeof(t->ids[0]), "%s", r->str);
            freeReplyObject(r);
        }
    }
    r = sl_test_cmd(c, "WAIT 1 10000");
    ck_assert_msg(r->type == REDIS_REPLY_INTEGER && r->integer == 1, "WAIT answered %lld",
                  r->integer);
    freeReplyObject(r);
    redisFree(c);
}

/* 1 when t's group has read every entry and has nothing pending, as the
 * slot's current master says. */
static int pool_quiet(void *arg)
{
    struct pooltest *t = arg;
    const char *streams[] = { t->stream };
    int m = live_master(t->slot);
    redisContext *c;
    int bad;

    if (m < 0 || (c = sl_test_cluster_connect(&rig, m)) == NULL)
        return 0;
    bad = c->err ? -1 : sl_test_unquiet(c, streams, 1, 1, NULL, 0);
    redisFree(c);
    return bad == 0;
}

/* The number of effects applied (LLEN of the probe's order list) on the
 * slot's master, or -1 when it cannot be asked. */
static long long pool_applied(struct pooltest *t)
{
    int m = live_master(t->slot);
    redisContext *c;
    redisReply *r;
    long long n = -1;

    if (m < 0 || (c = sl_test_cluster_connect(&rig, m)) == NULL)
        return -1;
    r = c->err ? NULL : redisCommand(c, "LLEN probe:{%s}:order", t->tag);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        n = r->integer;
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return n;
}

/* Waits until the pool has drained t's stream, then checks on the slot's
 * master that each of the `want` entries added had its effect applied
 * exactly once (the probe counts per ID), and no other effect was. (The
 * stream itself is trimmed of acknowledged entries as it goes.) */
static void pool_check_once(struct pooltest *t, long long want)
{
    redisContext *c;
    int i, m;

    if (!sl_test_wait_for(90000, pool_quiet, t)) {
        sl_test_log_tail(t->log, 60);
        ck_abort_msg("%s was not drained (pending entries or unread ones)", t->stream);
    }
    m = live_master(t->slot);
    ck_assert(m >= 0);
    c = sl_test_cluster_connect(&rig, m);
    ck_assert(c != NULL && !c->err);
    ck_assert_int_eq(t->nids, want);
    for (i = 0; i < t->nids; i++) {
        long long n = sl_test_int(c, "GET probe:{%s}:count:%s", t->tag, t->ids[i]);

        ck_assert_msg(n == 1, "entry %s: its effect applied %lld times", t->ids[i], n);
    }
    ck_assert_int_eq(sl_test_int(c, "LLEN probe:{%s}:order", t->tag), want);
    redisFree(c);
}

/* The default case: a probe pool on a tagged stream drains it with every
 * effect applied once, and its heartbeats carry the stream's tag (so the
 * release script's keys share the stream's slot). */
START_TEST(test_pool_drains)
{
    struct pooltest t;
    redisContext *c;
    char key[128];
    int m;

    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
    pool_config(&t, "cp1", NULL, NULL);
    m = live_master(t.slot);
    ck_assert(m >= 0);
    pool_add(&t, m, 300, 0);
    pool_start(&t, 2);
    pool_check_once(&t, 300);
    c = sl_test_cluster_connect(&rig, m);
    ck_assert(c != NULL && !c->err);
    snprintf(key, sizeof(key), "sluice:{%s}:workers", t.tag);
    /* The first beats come one heartbeat period after the start. */
    SL_TEST_ASSERT_EVENTUALLY(30000, sl_test_int(c, "ZCARD %s", key) == 2);
    redisFree(c);
    /* A graceful stop releases both heartbeats and their names. */
    sl_test_pool_kill(&t.pid, 10000);
    c = sl_test_cluster_connect(&rig, m);
    ck_assert(c != NULL && !c->err);
    ck_assert_int_eq(sl_test_int(c, "ZCARD %s", key), 0);
    redisFree(c);
    ck_assert_int_eq(sl_test_log_count(t.log, "script_crossslot"), 0);
    pool_end(&t);
}
END_TEST

/* The start of a fault test: a pool on tag's stream (two probe
 * processes, defaults), 600 entries of 5 ms each added on the stream's
 * master, and a wait until 50 or more, but not all, are applied, so
 * that the fault (`what`) strikes mid-drain. Sets *m to the stream's
 * master and *replica to its replica; returns the entries applied. */
static long long pool_mid_drain(struct pooltest *t, const char *tag, const char *what, int *m,
                                int *replica)
{
    long long done;

    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
    pool_config(t, tag, NULL, NULL);
    *m = live_master(t->slot);
    ck_assert(*m >= 0);
    *replica = sl_test_cluster_replica_of(&rig, *m);
    ck_assert(*replica >= 0);
    pool_add(t, *m, 600, 5);
    pool_start(t, 2);
    SL_TEST_ASSERT_EVENTUALLY(30000, (done = pool_applied(t)) >= 50);
    ck_assert_msg(done < 600, "drained before the %s (%lld): nothing was tested", what, done);
    return done;
}

/* A CLUSTER FAILOVER of the stream's master mid-drain: the workers'
 * reads end (UNBLOCKED, then a closed connection), they find the new
 * master, re-read their own pending entries there and go on. A manual
 * failover loses nothing, so every entry's effect is applied once. */
START_TEST(test_pool_failover)
{
    struct pooltest t;
    int m, replica;

    (void)pool_mid_drain(&t, "cp2", "failover", &m, &replica);
    node_ok_cmd(replica, "CLUSTER FAILOVER");
    SL_TEST_ASSERT_EVENTUALLY(30000, live_master(t.slot) == replica);
    pool_check_once(&t, 600);
    ck_assert_msg(sl_test_log_count(t.log, "event=redis_unavailable") >= 1,
                  "the workers did not see the failover");
    pool_end(&t);
    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
}
END_TEST

/* The stream's slot moved by hand to another master (IMPORTING,
 * MIGRATING, every key MIGRATEd, SETSLOT NODE) while the pool runs: the
 * workers are told MOVED (or ASK while keys move), follow the slot, and
 * drain what is added on the new master, every effect applied once. */
START_TEST(test_pool_slot_moved)
{
    struct pooltest t;
    char *from_id, *to_id;
    int from, to;
    long long deadline;

    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
    pool_config(&t, "cp3", NULL, NULL);
    from = live_master(t.slot);
    ck_assert(from >= 0);
    to = other_master(from);
    pool_add(&t, from, 200, 0);
    pool_start(&t, 2);
    SL_TEST_ASSERT_EVENTUALLY(60000, pool_quiet(&t));

    from_id = sl_test_cluster_node_id(&rig, from);
    to_id = sl_test_cluster_node_id(&rig, to);
    ck_assert(from_id != NULL && to_id != NULL);
    node_ok_cmd(to, "CLUSTER SETSLOT %d IMPORTING %s", t.slot, from_id);
    node_ok_cmd(from, "CLUSTER SETSLOT %d MIGRATING %s", t.slot, to_id);
    /* Keys are only created on the target now (the source answers ASK
     * for a missing one): move until the source holds none. */
    deadline = sl_test_deadline(30000);
    for (;;) {
        redisContext *c = sl_test_cluster_connect(&rig, from);
        redisReply *r;
        size_t i, n;

        ck_assert(c != NULL && !c->err);
        r = sl_test_cmd(c, "CLUSTER GETKEYSINSLOT %d 100", t.slot);
        ck_assert(r->type == REDIS_REPLY_ARRAY);
        n = r->elements;
        for (i = 0; i < n; i++) {
            redisReply *mr = sl_test_cmd(c, "MIGRATE 127.0.0.1 %d %b 0 5000", rig.node[to].port,
                                         r->element[i]->str, (size_t)r->element[i]->len);
            freeReplyObject(mr);
        }
        freeReplyObject(r);
        redisFree(c);
        if (n == 0)
            break;
        ck_assert_msg(sl_test_now_ms() < deadline, "the slot's keys did not all move");
    }
    setslot_node(t.slot, to);
    SL_TEST_ASSERT_EVENTUALLY(30000, live_master(t.slot) == to);
    pool_add(&t, to, 200, 0);
    pool_check_once(&t, 400);
    ck_assert_msg(sl_test_log_count(t.log, "cluster: slot") >= 1,
                  "no worker was told the slot moved");
    free(from_id);
    free(to_id);
    pool_end(&t);
}
END_TEST

/* Names t after the first tag "<prefix>N" (N from 0) whose slot a live
 * master other than `not` serves (-1: any), and returns that master. */
static int names_off(struct pooltest *t, const char *prefix, char *tag, size_t size, int not)
{
    int i, m;

    for (i = 0; i < 100; i++) {
        snprintf(tag, size, "%s%d", prefix, i);
        pool_names(t, tag);
        if ((m = live_master(t->slot)) >= 0 && m != not)
            return m;
    }
    ck_abort_msg("no tag %s* off master %d", prefix, not);
    return -1;
}

/* Writes into a's directory the configuration of one pool of two probe
 * workers, on first's stream then second's (a and b in some order), with
 * the defaults `overrides` (NULL: none); b logs where a does. Names a
 * again after `tag` (pool_config), so a's tag must be that. */
static void two_probe_config(struct pooltest *a, struct pooltest *b, const char *tag,
                             const char *overrides, const struct pooltest *first,
                             const struct pooltest *second)
{
    char workers[600];

    snprintf(workers, sizeof(workers),
             "{\"handler\": \"probe\", \"stream\": \"%s\", \"group\": \"g\"},\n"
             "{\"handler\": \"probe\", \"stream\": \"%s\", \"group\": \"g\"}",
             first->stream, second->stream);
    pool_config(a, tag, overrides, workers);
    snprintf(b->log, sizeof(b->log), "%s", a->log);
}

/* 1 when the pool's log says a consumer "ghost" was removed twice. */
static int ghosts_gone(void *arg)
{
    const struct pooltest *t = arg;

    return sl_test_log_count(t->log, "consumer=ghost") >= 2;
}

/* Two workers on streams served by two masters: the supervisor and the
 * workers reach each stream's master (both drained, effects once), and
 * the janitor, moving its connection from one master to the other, takes
 * each group's rate sample and removes a consumer of each group that has
 * no heartbeat and nothing pending. (Short heartbeat and idle settings:
 * the janitor's threshold is ten heartbeats at least.) */
START_TEST(test_pool_two_masters_janitor)
{
    struct pooltest a, b;
    char tag[16];
    int ma, mb, i;
    redisContext *c;

    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
    pool_names(&a, "cp6");
    ma = live_master(a.slot);
    ck_assert(ma >= 0);
    mb = names_off(&b, "cq", tag, sizeof(tag), ma);     /* a second tag on another master */
    two_probe_config(&a, &b, "cp6", "\"heartbeat_ms\": 100, \"reclaim_idle_ms\": 500, "
                     "\"reclaim_interval_ms\": 200", &a, &b);
    /* The groups, each with a consumer nobody runs. */
    node_ok_cmd(ma, "XGROUP CREATE %s g 0 MKSTREAM", a.stream);
    node_ok_cmd(ma, "XGROUP CREATECONSUMER %s g ghost", a.stream);
    node_ok_cmd(mb, "XGROUP CREATE %s g 0 MKSTREAM", b.stream);
    node_ok_cmd(mb, "XGROUP CREATECONSUMER %s g ghost", b.stream);
    pool_add(&a, ma, 100, 0);
    pool_add(&b, mb, 100, 0);
    pool_start(&a, 2);
    pool_check_once(&a, 100);
    pool_check_once(&b, 100);
    if (!sl_test_wait_for(30000, ghosts_gone, &a)) {
        sl_test_log_tail(a.log, 40);
        ck_abort_msg("the janitor did not remove both ghosts");
    }
    for (i = 0; i < 2; i++) {
        const struct pooltest *t = i == 0 ? &a : &b;

        c = sl_test_cluster_connect(&rig, i == 0 ? ma : mb);
        ck_assert(c != NULL && !c->err);
        SL_TEST_ASSERT_EVENTUALLY(30000, sl_test_int(c, "EXISTS sluice:rate:%s:g", t->stream) == 1);
        redisFree(c);
    }
    pool_end(&a);
}
END_TEST

/* What the operators' views of a pool on two masters are polled for. */
struct opsview {
    const char *dir;              /* the pool's directory, config.json in it */
    const char *sa, *sb;          /* its two streams, on two masters */
    long long want;               /* entries each stream's worker processed */
    char *out;                    /* the last command's output (owned) */
};

/* Runs `sluice <args>` (NULL-terminated) on v's configuration, keeping
 * its output in v->out. Returns the parsed --json output (new), or NULL
 * when it failed or printed no JSON. */
static json_t *ops_json(struct opsview *v, const char *const *args)
{
    int rc = ops_cli(v->dir, args);

    free(v->out);
    v->out = ops_out(v->dir);
    return rc == 0 ? json_loads(v->out, 0, NULL) : NULL;
}

/* 1 when the JSON array doc (taken: freed here) lists exactly one
 * worker of stream sa and one of sb. */
static int one_worker_each(json_t *doc, const char *sa, const char *sb)
{
    size_t i;
    int na = 0, nb = 0;

    for (i = 0; i < json_array_size(doc); i++) {
        const char *st = json_string_value(json_object_get(json_array_get(doc, i), "stream"));

        na += st != NULL && !strcmp(st, sa);
        nb += st != NULL && !strcmp(st, sb);
    }
    json_decref(doc);
    return na == 1 && nb == 1;
}

/* 1 when `sluice workers --json` lists the one worker of each stream. */
static int workers_both(void *arg)
{
    static const char *const args[] = { "workers", "--json", NULL };
    struct opsview *v = arg;
    json_t *doc = ops_json(v, args);

    return one_worker_each(doc, v->sa, v->sb);
}

/* 1 when `sluice stats --json` shows, on each stream's row, the
 * processed count its worker's heartbeat reports. */
static int stats_both(void *arg)
{
    static const char *const args[] = { "stats", "--json", NULL };
    struct opsview *v = arg;
    json_t *doc = ops_json(v, args);
    size_t i;
    int na = 0, nb = 0;

    for (i = 0; i < json_array_size(doc); i++) {
        json_t *o = json_array_get(doc, i);
        const char *st = json_string_value(json_object_get(o, "stream"));
        long long p = json_integer_value(json_object_get(o, "processed"));

        na += st != NULL && !strcmp(st, v->sa) && p == v->want;
        nb += st != NULL && !strcmp(st, v->sb) && p == v->want;
    }
    json_decref(doc);
    return na == 1 && nb == 1;
}

/* The operators' views of a pool (the defaults) on two streams on two
 * masters, seeded with one node: `sluice workers` lists the workers of
 * both (their heartbeats and registries carry each stream's tag, on its
 * own master), `sluice stats` adds each one's processed count to its
 * stream's row, and `sluice health --metrics none` finds each worker's
 * heartbeat on its master: healthy while the pool runs, unhealthy naming
 * the worker once it stopped. */
START_TEST(test_ops_views_two_masters)
{
    static const char *const health[] = { "health", "--metrics", "none", NULL };
    struct pooltest a, b;
    struct opsview v;
    char tag[16], path[PATH_MAX];
    int ma, mb, rc;

    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
    pool_names(&a, "cv7");
    ma = live_master(a.slot);
    ck_assert(ma >= 0);
    mb = names_off(&b, "cw", tag, sizeof(tag), ma);
    two_probe_config(&a, &b, "cv7", NULL, &a, &b);
    snprintf(path, sizeof(path), "%s/config.json", a.dir);
    ck_assert(symlink(a.cfg, path) == 0);
    node_ok_cmd(ma, "XGROUP CREATE %s g 0 MKSTREAM", a.stream);
    node_ok_cmd(mb, "XGROUP CREATE %s g 0 MKSTREAM", b.stream);
    pool_add(&a, ma, 50, 0);
    pool_add(&b, mb, 50, 0);
    pool_start(&a, 2);
    pool_check_once(&a, 50);
    pool_check_once(&b, 50);

    memset(&v, 0, sizeof(v));
    v.dir = a.dir;
    v.sa = a.stream;
    v.sb = b.stream;
    v.want = 50;
    if (!sl_test_wait_for(30000, workers_both, &v))
        ck_abort_msg("sluice workers did not list one worker of %s and one of %s:\n%s",
                     a.stream, b.stream, v.out);
    if (!sl_test_wait_for(60000, stats_both, &v))
        ck_abort_msg("sluice stats did not show 50 processed on %s and on %s:\n%s",
                     a.stream, b.stream, v.out);
    rc = ops_cli(a.dir, health);
    free(v.out);
    v.out = ops_out(a.dir);
    ck_assert_msg(rc == 0 && strstr(v.out, "healthy") != NULL,
                  "sluice health exited %d:\n%s", rc, v.out);

    /* Stopped gracefully, the workers delete their heartbeats. */
    sl_test_pool_kill(&a.pid, 10000);
    rc = ops_cli(a.dir, health);
    free(v.out);
    v.out = ops_out(a.dir);
    ck_assert_msg(rc == 1 && strstr(v.out, "no live heartbeat") != NULL &&
                  strstr(v.out, a.stream) != NULL,
                  "sluice health after the stop exited %d:\n%s", rc, v.out);
    free(v.out);
    pool_end(&a);
}
END_TEST

/* A running `sluice web` of a test. */
struct webtest {
    pid_t pid;                    /* its process */
    int port;                     /* where it listens */
    char log[PATH_MAX];           /* its output */
    char csrf[80];                /* the page's write token */
    char *body;                   /* the last answer's body (owned) */
};

/* Starts `sluice web --allow-writes` on cfg (the port chosen by the
 * kernel, read from its log line) and reads the page's write token. */
static void web_start(struct webtest *w, const char *cfg, const char *dir)
{
    const char *argv[] = { sl_test_bin(), "web", "-c", cfg, "--listen", "127.0.0.1:0",
                           "--allow-writes", NULL };
    static const char mark[] = "event=web_listening addr=127.0.0.1:";
    long long dl = sl_test_deadline(20000);
    struct sl_test_http h;
    const char *m;

    memset(w, 0, sizeof(*w));
    snprintf(w->log, sizeof(w->log), "%s/web.log", dir);
    w->pid = sl_test_spawn(argv, w->log);
    ck_assert_int_gt(w->pid, 0);
    while (w->port <= 0) {
        char *t = sl_test_read_file(w->log);

        if (t != NULL && (m = strstr(t, mark)) != NULL)
            w->port = atoi(m + strlen(mark));
        free(t);
        if (w->port > 0)
            break;
        ck_assert_msg(sl_test_pid_alive(w->pid), "sluice web exited; see %s", w->log);
        ck_assert_msg(sl_test_tick(dl), "sluice web did not listen in time");
    }
    h = sl_test_http_get(w->port, "/");
    ck_assert_int_eq(h.status, 200);
    m = strstr(h.body, "name=\"sluice-csrf\" content=\"");
    ck_assert_ptr_nonnull(m);
    m += strlen("name=\"sluice-csrf\" content=\"");
    ck_assert_int_eq((int)strcspn(m, "\""), 64);
    memcpy(w->csrf, m, 64);
    w->csrf[64] = '\0';
    sl_test_http_free(&h);
}

/* GETs path; returns its status, the body kept in w->body. */
static int web_get(struct webtest *w, const char *path)
{
    struct sl_test_http h = sl_test_http_get(w->port, path);
    int st = h.status;

    free(w->body);
    w->body = h.body;
    h.body = NULL;
    sl_test_http_free(&h);
    return st;
}

/* POSTs the JSON body to path as the page would (same origin, with the
 * token); returns the status, the answer's body in w->body. */
static int web_post(struct webtest *w, const char *path, const char *body)
{
    char req[2048];
    struct sl_test_http h;
    int n, st;

    n = snprintf(req, sizeof(req), "POST %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n"
                 "Sec-Fetch-Site: same-origin\r\nX-Sluice-Token: %s\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 path, w->port, w->csrf, strlen(body), body);
    ck_assert(n > 0 && (size_t)n < sizeof(req));
    h = sl_test_http_request(w->port, req, (size_t)n, 0);
    st = h.status;
    free(w->body);
    w->body = h.body;
    h.body = NULL;
    sl_test_http_free(&h);
    return st;
}

/* Stops the web server and frees what w holds. */
static void web_stop(struct webtest *w)
{
    int status;

    if (w->pid > 0) {
        kill(w->pid, SIGTERM);
        if (!sl_test_wait_exit(w->pid, 10000, &status)) {
            kill(w->pid, SIGKILL);
            sl_test_wait_exit(w->pid, 10000, &status);
        }
        w->pid = 0;
    }
    free(w->body);
    w->body = NULL;
}

/* What /api/workers is polled for: one worker of each of two streams. */
struct webview {
    struct webtest *w;
    const char *sa, *sb;          /* the streams */
    const char *path;             /* a group page's path */
};

/* 1 when /api/workers lists the one worker of each stream. */
static int web_workers_both(void *arg)
{
    struct webview *v = arg;
    json_t *doc;

    if (web_get(v->w, "/api/workers") != 200)
        return 0;
    doc = json_loads(v->w->body, 0, NULL);
    return one_worker_each(doc, v->sa, v->sb);
}

/* 1 when the group page v->path shows one consumer, with its beat. */
static int web_group_beat(void *arg)
{
    struct webview *v = arg;
    json_t *doc, *cons;
    int ok;

    if (web_get(v->w, v->path) != 200)
        return 0;
    doc = json_loads(v->w->body, 0, NULL);
    cons = json_object_get(doc, "consumers");
    ok = json_array_size(cons) == 1 &&
         json_is_integer(json_object_get(json_array_get(cons, 0), "beat_age_ms"));
    json_decref(doc);
    return ok;
}

/* The dashboard (`sluice web`) of a pool on two streams on two masters,
 * one of them not the master of slot 0 (where a command nobody routed
 * goes): /api/workers lists the workers of both, the group page finds
 * the heartbeat of that stream's consumer, and replaying a dead letter
 * of that stream moves it back (its script loaded and run on the
 * stream's master). b's worker comes first in the file, so the last
 * command of the workers' walk went to a's master: a replay that went
 * where the previous command did would load its script there. */
START_TEST(test_ops_dashboard_two_masters)
{
    struct pooltest a, b;
    struct webtest w;
    struct webview v;
    char tagA[16], tagB[16], path[300], body[300], id[64];
    int m0, ma, mb;
    redisContext *c;
    redisReply *r;

    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
    m0 = live_master(0);
    ck_assert(m0 >= 0);
    mb = names_off(&b, "db", tagB, sizeof(tagB), m0);
    ma = names_off(&a, "da", tagA, sizeof(tagA), mb);
    two_probe_config(&a, &b, tagA, NULL, &b, &a);
    node_ok_cmd(ma, "XGROUP CREATE %s g 0 MKSTREAM", a.stream);
    node_ok_cmd(mb, "XGROUP CREATE %s g 0 MKSTREAM", b.stream);
    /* A dead letter of b's stream, as a worker would have left it. */
    c = sl_test_cluster_connect(&rig, mb);
    ck_assert(c != NULL && !c->err);
    snprintf(body, sizeof(body), "{\"effect\": \"%s\", \"sleep_ms\": 0}", tagB);
    r = redisCommand(c, "XADD %s:dead * type probe data %s error %s source_id 1-0 deliveries 5 "
                     "consumer c failed_at 1700000000000", b.stream, body, "handler_failed: x");
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    snprintf(id, sizeof(id), "%s", r->str);
    freeReplyObject(r);
    /* An entry for b's worker: a consumer shows in its group once it
     * has read one. */
    pool_add(&b, mb, 1, 0);
    pool_start(&a, 2);
    web_start(&w, a.cfg, a.dir);

    v.w = &w;
    v.sa = a.stream;
    v.sb = b.stream;
    if (!sl_test_wait_for(30000, web_workers_both, &v))
        ck_abort_msg("/api/workers did not list one worker of %s and one of %s:\n%s",
                     a.stream, b.stream, w.body != NULL ? w.body : "(no answer)");
    /* The group page of b's stream: its consumer (there once the worker
     * read) and that one's beat. */
    snprintf(path, sizeof(path), "/api/group?stream=orders:%%7B%s%%7D&group=g", tagB);
    v.path = path;
    if (!sl_test_wait_for(30000, web_group_beat, &v))
        ck_abort_msg("GET %s: no consumer with a heartbeat:\n%s", path,
                     w.body != NULL ? w.body : "(no answer)");
    /* Replay b's dead letter through the dashboard. */
    snprintf(body, sizeof(body), "{\"stream\":\"%s\",\"id\":\"%s\"}", b.stream, id);
    ck_assert_msg(web_post(&w, "/api/dead/replay", body) == 200, "replay: %s", w.body);
    ck_assert_int_eq(sl_test_int(c, "XLEN %s:dead", b.stream), 0);
    SL_TEST_ASSERT_EVENTUALLY(30000, sl_test_int(c, "LLEN probe:{%s}:order", tagB) == 2);
    redisFree(c);
    web_stop(&w);
    pool_end(&a);
}
END_TEST

/* 1 when the pool's log says a reply timed out twice (both workers). */
static int timed_out(void *arg)
{
    const struct pooltest *t = arg;

    return sl_test_log_count(t->log, "timed out") >= 2;
}

/* The stream's master frozen (SIGSTOP) mid-drain, longer than the node
 * timeout: nothing answers the workers until their reads' and commands'
 * deadlines, the replica is promoted meanwhile, and the workers go on
 * there (the master is kept frozen until both gave up on it); when the old master wakes up it becomes a replica, and what it
 * may still have run of the workers' last commands is discarded with its
 * data. Every effect is applied once, as the new master counts. */
START_TEST(test_pool_master_frozen)
{
    struct pooltest t;
    int m, replica;
    long long t0;
    pid_t pid;

    (void)pool_mid_drain(&t, "cp7", "freeze", &m, &replica);
    pid = sl_test_redis_pid(&rig.node[m]);
    ck_assert(pid > 0);
    t0 = sl_test_now_ms();
    sl_test_kill(pid, SIGSTOP);
    SL_TEST_ASSERT_EVENTUALLY(60000, sl_test_cluster_master_of(&rig, replica, t.slot) == replica);
    /* Frozen until the workers gave up on it by their own deadlines (a
     * read's BLOCK plus the command timeout at most), not woken first. */
    if (!sl_test_wait_for(60000, timed_out, &t)) {
        sl_test_kill(pid, SIGCONT);
        sl_test_log_tail(t.log, 40);
        ck_abort_msg("no worker gave up on the frozen master");
    }
    sl_test_kill(pid, SIGCONT);
    pool_check_once(&t, 600);
    fprintf(stderr, "test_pool_master_frozen: drained %lld ms after the freeze\n",
            sl_test_now_ms() - t0);
    pool_end(&t);
    ck_assert(sl_test_cluster_wait_ok(&rig, 60000));
}
END_TEST

/* A stream without a hash tag cannot keep its keys in one slot: `sluice
 * run` refuses the configuration (exit 2) and says why. */
START_TEST(test_pool_untagged_refused)
{
    struct pooltest t;
    int status = 0;
    char *log;

    pool_config(&t, "cp4", NULL, "{\"handler\": \"probe\", \"stream\": \"plain\", \"group\": \"g\"}");
    t.pid = sl_test_pool_spawn(t.cfg, t.log);
    ck_assert(t.pid > 0);
    ck_assert(sl_test_wait_exit(t.pid, 20000, &status));
    t.pid = 0;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %d", status);
    log = sl_test_read_file(t.log);
    ck_assert(log != NULL);
    ck_assert_msg(strstr(log, "workers[0].stream \"plain\"") != NULL &&
                  strstr(log, "hash tag") != NULL, "stderr: %s", log);
    free(log);
    pool_end(&t);
}
END_TEST

/* The stream's master SIGKILLed mid-drain: the workers lose their
 * connections, find the promoted replica (after the node timeout) and
 * finish there. Entries were WAITed onto the replica before the kill, so
 * Redis loses none of them; a commit acknowledged by the dead master and
 * not yet replicated is lost with its ack, consistently (one slot), and
 * the entry is handled again on the new master: each effect is still
 * applied once, as the new master counts. What Redis itself lost of the
 * effects is what the old master had applied beyond the replica: it is
 * printed, not asserted. Leaves a master dead: runs last. */
START_TEST(test_pool_master_killed)
{
    struct pooltest t;
    int m, replica;
    long long before, after, t0, t1;

    before = pool_mid_drain(&t, "cp5", "kill", &m, &replica);
    t0 = sl_test_now_ms();
    sl_test_redis_kill(&rig.node[m]);
    SL_TEST_ASSERT_EVENTUALLY(60000, live_master(t.slot) == replica);
    t1 = sl_test_now_ms();
    after = pool_applied(&t);
    pool_check_once(&t, 600);
    fprintf(stderr, "test_pool_master_killed: effects applied before the kill >= %lld, "
            "on the promoted replica %lld (the difference, if any, Redis lost: async "
            "replication); replica promoted %lld ms after the kill, drained %lld ms after\n",
            before, after, t1 - t0, sl_test_now_ms() - t0);
    pool_end(&t);
}
END_TEST

/* ------------------------------------------------------------------------
 * Runner
 * ------------------------------------------------------------------------ */

/* Starts the cluster in the runner (every test's child inherits it). */
static void cluster_up(void)
{
    if (sl_test_cluster_start(&rig) != 0) {
        fprintf(stderr, "check_cluster: no local cluster\n");
        exit(1);
    }
}

/* Stops it. */
static void cluster_down(void)
{
    sl_test_cluster_stop(&rig);
}

/* The suite. */
static Suite *cluster_suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("router");

    tcase_add_unchecked_fixture(tc, cluster_up, cluster_down);
    tcase_set_timeout(tc, 120.0 * sl_test_slow_factor());
    tcase_add_test(tc, test_keyslot);
    tcase_add_test(tc, test_crossslot_refused);
    tcase_add_test(tc, test_moved);
    tcase_add_test(tc, test_ask_and_tryagain);
    tcase_add_test(tc, test_clusterdown);
    tcase_add_test(tc, test_failover_blocked_read);
    tcase_add_test(tc, test_master_killed);      /* last: leaves a master dead */
    suite_add_tcase(s, tc);

    /* The synchronous path, on a cluster of its own (the router's tests
     * leave one master dead). */
    tc = tcase_create("sync");
    tcase_add_unchecked_fixture(tc, cluster_up, cluster_down);
    tcase_set_timeout(tc, 180.0 * sl_test_slow_factor());
    tcase_add_test(tc, test_sync_enqueue_each_master);
    tcase_add_test(tc, test_sync_ops_across_masters);
    tcase_add_test(tc, test_sync_lost_reply_not_resent);
    tcase_add_test(tc, test_sync_ask_and_moved);         /* last: moves a slot */
    suite_add_tcase(s, tc);

    /* The operators' commands over a pool on two masters. */
    tc = tcase_create("ops");
    tcase_add_unchecked_fixture(tc, cluster_up, cluster_down);
    tcase_set_timeout(tc, 240.0 * sl_test_slow_factor());
    tcase_add_test(tc, test_ops_views_two_masters);
    tcase_add_test(tc, test_ops_dashboard_two_masters);
    suite_add_tcase(s, tc);

    /* The pool gets a cluster of its own: the router's tests leave one
     * master dead. */
    tc = tcase_create("pool");
    tcase_add_unchecked_fixture(tc, cluster_up, cluster_down);
    tcase_set_timeout(tc, 240.0 * sl_test_slow_factor());
    tcase_add_test(tc, test_pool_untagged_refused);
    tcase_add_test(tc, test_pool_drains);
    tcase_add_test(tc, test_pool_failover);
    tcase_add_test(tc, test_pool_slot_moved);
    tcase_add_test(tc, test_pool_two_masters_janitor);
    tcase_add_test(tc, test_pool_master_frozen);
    tcase_add_test(tc, test_pool_master_killed);  /* last: leaves a master dead */
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cluster_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
