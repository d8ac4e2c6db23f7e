/* cluster_rig.c -- a local Redis Cluster of three masters and three replicas
 * for tests (see cluster_rig.h). Each server is an ordinary server.h
 * redis-server with cluster mode on; its cluster bus gets a port of its
 * own (cluster-port), picked free, because the default client port +
 * 10000 lies past 65535 for many of the ports the kernel hands out.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <hiredis.h>
#include "cluster_rig.h"

#define CREATE_MS 60000           /* redis-cli --cluster create, scaled */
#define OK_MS     60000           /* every node says cluster_state:ok, scaled */
#define START_TRIES 3             /* a bus port taken by someone else: retry */

/* A free loopback port, as server.c finds one (bind :0, read it back,
 * release it). Returns the port or -1. */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd, port = -1;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0
        && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Connects to node i with short timeouts (a probe). */
redisContext *sl_test_cluster_connect(struct sl_test_cluster *c, int i)
{
    if (i < 0 || i >= c->n || c->node[i].port <= 0)
        return NULL;
    return sl_test_connect_timeout(&c->node[i], 500, 2000);
}

/* Starts one server of the cluster, retrying with a fresh bus port when
 * it cannot start (most likely the bus port was taken meanwhile). */
static int start_node(struct sl_test_redis *r)
{
    char extra[200];
    int t;

    for (t = 0; t < START_TRIES; t++) {
        int bus = free_port();

        if (bus <= 0)
            return -1;
        snprintf(extra, sizeof extra,
                 "--cluster-enabled yes --cluster-config-file nodes.conf "
                 "--cluster-node-timeout 2000 --cluster-port %d", bus);
        if (sl_test_redis_start(r, extra) == 0)
            return 0;
    }
    return -1;
}

/* 1 when node i's CLUSTER INFO says the cluster is whole (state ok,
 * every slot served, all six nodes known) and its replication link is
 * up (a master has its replica, a replica its master). */
static int node_ok(struct sl_test_cluster *c, int i)
{
    redisContext *ctx = sl_test_cluster_connect(c, i);
    redisReply *r;
    int ok = 0;

    if (ctx == NULL)
        return 0;
    if (ctx->err == 0) {
        r = redisCommand(ctx, "CLUSTER INFO");
        if (r != NULL && r->type == REDIS_REPLY_STRING)
            ok = strstr(r->str, "cluster_state:ok") != NULL
                 && strstr(r->str, "cluster_slots_ok:16384") != NULL
                 && strstr(r->str, "cluster_known_nodes:6") != NULL;
        if (r != NULL)
            freeReplyObject(r);
        /* A master with no replica in sync cannot fail over: wait for
         * the replication links too. */
        r = ok ? redisCommand(ctx, "INFO replication") : NULL;
        ok = r != NULL && r->type == REDIS_REPLY_STRING
             && (strstr(r->str, "connected_slaves:1") != NULL
                 || strstr(r->str, "master_link_status:up") != NULL);
        if (r != NULL)
            freeReplyObject(r);
    }
    redisFree(ctx);
    return ok;
}

/* Copies the value of "name:" in an INFO text into buf (up to the end
 * of its line), or "?" when absent. */
static const char *info_field(const redisReply *r, const char *name, char *buf, size_t size)
{
    const char *p = r != NULL && r->type == REDIS_REPLY_STRING ? strstr(r->str, name) : NULL;
    size_t n;

    if (p == NULL) {
        snprintf(buf, size, "?");
        return buf;
    }
    p += strlen(name);
    n = strcspn(p, "\r\n");
    snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), p);
    return buf;
}

/* Prints each node's view (state, slots served, role, replication
 * link) to stderr: what a test that timed out waiting for the cluster
 * shows. */
static void describe(struct sl_test_cluster *c)
{
    int i;

    for (i = 0; i < c->n; i++) {
        redisContext *ctx = sl_test_cluster_connect(c, i);
        redisReply *a = NULL, *b = NULL;
        char f[6][32];

        if (ctx == NULL || ctx->err) {
            fprintf(stderr, "sl_test_cluster: node %d (port %d): unreachable\n", i, c->node[i].port);
            if (ctx != NULL)
                redisFree(ctx);
            continue;
        }
        a = redisCommand(ctx, "CLUSTER INFO");
        b = redisCommand(ctx, "INFO replication");
        fprintf(stderr, "sl_test_cluster: node %d (port %d): state %s slots_ok %s "
                "known %s role %s link %s replicas %s\n", i, c->node[i].port,
                info_field(a, "cluster_state:", f[0], sizeof f[0]),
                info_field(a, "cluster_slots_ok:", f[1], sizeof f[1]),
                info_field(a, "cluster_known_nodes:", f[2], sizeof f[2]),
                info_field(b, "role:", f[3], sizeof f[3]),
                info_field(b, "master_link_status:", f[4], sizeof f[4]),
                info_field(b, "connected_slaves:", f[5], sizeof f[5]));
        if (a != NULL)
            freeReplyObject(a);
        if (b != NULL)
            freeReplyObject(b);
        redisFree(ctx);
    }
}

/* Polls every running node until all say the cluster is whole. */
int sl_test_cluster_wait_ok(struct sl_test_cluster *c, int timeout_ms)
{
    long long deadline = sl_test_deadline(timeout_ms);

    for (;;) {
        int i, all = 1;

        for (i = 0; i < c->n && all; i++)
            if (sl_test_redis_pid(&c->node[i]) > 0 && sl_test_pid_alive(sl_test_redis_pid(&c->node[i])))
                all = node_ok(c, i);
        if (all)
            return 1;
        if (!sl_test_tick(deadline)) {
            describe(c);
            return 0;
        }
    }
}

/* Starts the servers, runs redis-cli --cluster create over them, waits
 * for the cluster to be whole. */
int sl_test_cluster_start(struct sl_test_cluster *c)
{
    const char *argv[SL_TEST_CLUSTER_NODES + 8];
    char addr[SL_TEST_CLUSTER_NODES][32], log[300];
    size_t off = 0;
    int i, n = 0, status = -1;
    pid_t pid;

    memset(c, 0, sizeof *c);
    for (i = 0; i < SL_TEST_CLUSTER_NODES; i++) {
        if (start_node(&c->node[i]) != 0) {
            fprintf(stderr, "sl_test_cluster: node %d did not start\n", i);
            goto fail;
        }
        c->n++;
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", c->node[i].port);
        off += (size_t)snprintf(c->seeds + off, sizeof c->seeds - off, "%s%s",
                                i ? "," : "", addr[i]);
    }
    argv[n++] = getenv("REDIS_CLI") && *getenv("REDIS_CLI") ? getenv("REDIS_CLI") : "redis-cli";
    argv[n++] = "--cluster";
    argv[n++] = "create";
    for (i = 0; i < SL_TEST_CLUSTER_NODES; i++)
        argv[n++] = addr[i];
    argv[n++] = "--cluster-replicas";
    argv[n++] = "1";
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    snprintf(log, sizeof log, "%s/cluster-create.log", c->node[0].dir);
    pid = sl_test_spawn(argv, log);
    if (pid < 0 || !sl_test_wait_exit(pid, CREATE_MS, &status) || status != 0) {
        char *text = sl_test_read_file(log);

        fprintf(stderr, "sl_test_cluster: redis-cli --cluster create failed (status %d):\n%s\n",
                status, text ? text : "(no log)");
        free(text);
        if (pid > 0)
            sl_test_kill(pid, 9);
        goto fail;
    }
    if (!sl_test_cluster_wait_ok(c, OK_MS)) {
        fprintf(stderr, "sl_test_cluster: cluster_state:ok not reached\n");
        goto fail;
    }
    return 0;

fail:
    sl_test_cluster_stop(c);
    return -1;
}

/* Finds the node listening on port, or -1. */
static int by_port(struct sl_test_cluster *c, long long port)
{
    int i;

    for (i = 0; i < c->n; i++)
        if (c->node[i].port == port)
            return i;
    return -1;
}

/* Asks node `asker` for CLUSTER SLOTS and finds the master of slot. */
int sl_test_cluster_master_of(struct sl_test_cluster *c, int asker, int slot)
{
    redisContext *ctx = sl_test_cluster_connect(c, asker);
    redisReply *r;
    size_t i;
    int found = -1;

    if (ctx == NULL)
        return -1;
    r = ctx->err ? NULL : redisCommand(ctx, "CLUSTER SLOTS");
    if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < r->elements && found < 0; i++) {
            redisReply *e = r->element[i];

            if (e->type != REDIS_REPLY_ARRAY || e->elements < 3
                || e->element[0]->type != REDIS_REPLY_INTEGER
                || e->element[1]->type != REDIS_REPLY_INTEGER
                || e->element[2]->type != REDIS_REPLY_ARRAY
                || e->element[2]->elements < 2
                || e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
                continue;
            if (slot >= e->element[0]->integer && slot <= e->element[1]->integer)
                found = by_port(c, e->element[2]->element[1]->integer);
        }
    }
    if (r != NULL)
        freeReplyObject(r);
    redisFree(ctx);
    return found;
}

/* CLUSTER MYID of node i. */
char *sl_test_cluster_node_id(struct sl_test_cluster *c, int i)
{
    redisContext *ctx = sl_test_cluster_connect(c, i);
    redisReply *r;
    char *id = NULL;

    if (ctx == NULL)
        return NULL;
    r = ctx->err ? NULL : redisCommand(ctx, "CLUSTER MYID");
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        id = strdup(r->str);
    if (r != NULL)
        freeReplyObject(r);
    redisFree(ctx);
    return id;
}

/* Asks master m for its replicas; the first line's "ip:port@bus" names
 * one of ours. */
int sl_test_cluster_replica_of(struct sl_test_cluster *c, int m)
{
    char *id = sl_test_cluster_node_id(c, m);
    redisContext *ctx;
    redisReply *r = NULL;
    int found = -1;

    if (id == NULL)
        return -1;
    ctx = sl_test_cluster_connect(c, m);
    if (ctx != NULL && !ctx->err)
        r = redisCommand(ctx, "CLUSTER REPLICAS %s", id);
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0
        && r->element[0]->type == REDIS_REPLY_STRING) {
        const char *colon = strchr(r->element[0]->str, ':');

        if (colon != NULL)
            found = by_port(c, strtoll(colon + 1, NULL, 10));
    }
    if (r != NULL)
        freeReplyObject(r);
    if (ctx != NULL)
        redisFree(ctx);
    free(id);
    return found;
}

/* Stops and removes every server started. */
void sl_test_cluster_stop(struct sl_test_cluster *c)
{
    int i;

    for (i = 0; i < c->n; i++)
        sl_test_redis_cleanup(&c->node[i]);
    c->n = 0;
}
