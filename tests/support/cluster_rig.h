/* cluster_rig.h -- a local Redis Cluster for tests (cluster_rig.c): three masters
 * and three replicas, each a redis-server of server.h on free loopback
 * ports (client port and cluster bus port both chosen free), joined by
 * `redis-cli --cluster create --cluster-replicas 1`. Needs no Check.
 *
 * Every timeout is scaled by SLUICE_TEST_SLOW like server.h's. Only the
 * servers started here are ever signalled, by PID.
 */
#ifndef SL_TEST_CLUSTER_RIG_H
#define SL_TEST_CLUSTER_RIG_H

#include <hiredis.h>
#include "server.h"

#define SL_TEST_CLUSTER_NODES 6   /* 3 masters + 3 replicas */

struct sl_test_cluster {
    struct sl_test_redis node[SL_TEST_CLUSTER_NODES];
    int n;                        /* servers started */
    char seeds[256];              /* "127.0.0.1:p1,127.0.0.1:p2,..." (every node) */
};

/* Starts the six servers with cluster mode on (cluster-node-timeout 2000,
 * nothing saved), creates the cluster and waits until every node reports
 * cluster_state:ok and agrees on all 16384 slots. Returns 0, or -1 after
 * printing why to stderr (the servers started are stopped again). */
int sl_test_cluster_start(struct sl_test_cluster *c);

/* Waits up to timeout_ms (scaled) until every running node answers
 * CLUSTER INFO with cluster_state:ok, all slots served and six nodes
 * known, and its replication link is up. Returns 1 or 0. */
int sl_test_cluster_wait_ok(struct sl_test_cluster *c, int timeout_ms);

/* The index in c->node of the master serving `slot` as node `asker` sees
 * it (CLUSTER SLOTS), or -1. */
int sl_test_cluster_master_of(struct sl_test_cluster *c, int asker, int slot);

/* The index of a replica of master m (CLUSTER REPLICAS of m's node ID),
 * or -1. */
int sl_test_cluster_replica_of(struct sl_test_cluster *c, int m);

/* The node ID of node i as a new string (free()), or NULL. */
char *sl_test_cluster_node_id(struct sl_test_cluster *c, int i);

/* A synchronous connection to node i (redisFree()), or NULL. */
redisContext *sl_test_cluster_connect(struct sl_test_cluster *c, int i);

/* Stops every server (SIGTERM, then SIGKILL) and deletes their
 * directories. Safe on a zeroed or half-started cluster. */
void sl_test_cluster_stop(struct sl_test_cluster *c);

#endif /* SL_TEST_CLUSTER_RIG_H */
