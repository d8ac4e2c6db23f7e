/* cluster.h -- the Redis Cluster router (cluster.c): a slot map from
 * CLUSTER SLOTS, one connection of conn.c per master, and the redirects
 * and transient errors of a cluster handled in one place; and the hash
 * slots, tags and parsers it shares with conn.c's pinned connections
 * (keyslot.c). Shared by framework files only.
 */
#ifndef SL_CLUSTER_H
#define SL_CLUSTER_H

#include <stddef.h>
#include <hiredis.h>

struct event_base;
struct sl_config;
struct sl_cluster;

#define SL_CLUSTER_SLOTS 16384

/* The hash tag of a key (the text between its first '{' and the next
 * '}', when not empty): 1 with its offset and length, or 0 when none. */
int sl__cluster_tag(const char *key, size_t len, size_t *off, size_t *taglen);

/* The hash slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole
 * key when it has none, modulo 16384. */
int sl__cluster_keyslot(const char *key, size_t len);

/* The one slot shared by nkeys keys (lens may be NULL for C strings):
 * the slot, -1 when nkeys is 0, or -2 when they do not all share one. */
int sl__cluster_keys_slot(int nkeys, const char *const *keys, const size_t *lens);

/* Parses seed number i (from 0) of "host:port,host:port" (an IPv6 host
 * in brackets, which are dropped): 0 with host and port set, 1 when there
 * is no seed i, or -1 with the reason in err. */
int sl__cluster_seed(const char *seeds, int i, char *host, size_t hostlen, int *port,
                     char *err, size_t errlen);

/* Parses the text of a "MOVED slot host:port" or "ASK ..." error: the
 * slot, and host (borrowed from s, hostlen bytes, empty meaning the node
 * that answered) and port. Returns 0 or -1. */
int sl__cluster_redirect(const char *s, int *slot, const char **host, size_t *hostlen, int *port);

/* Reads element e of a CLUSTER SLOTS reply: its slots lo..hi and their
 * master's host (borrowed from e, hostlen bytes; "" or "?" means the node
 * asked) and port. Returns 0, or -1 when e is not a slot range. */
int sl__cluster_slots_range(const redisReply *e, int *lo, int *hi, const char **host,
                            size_t *hostlen, int *port);

/* A reply callback. r is the final reply (freed when the callback
 * returns), or NULL with why saying what went wrong ("connection lost:
 * ...", "cluster unavailable: ..."). */
typedef void sl_cluster_cb(struct sl_cluster *cl, redisReply *r, const char *why, void *priv);

/* Flags of a command. */
#define SL_CLUSTER_RESEND 1       /* idempotent or fenced: resent after a lost connection */

/* Counters, for metrics and tests. */
struct sl_cluster_stats {
    unsigned long moved;          /* MOVED redirects followed */
    unsigned long ask;            /* ASK redirects followed */
    unsigned long retried;        /* TRYAGAIN, CLUSTERDOWN, LOADING, lost: resent later */
    unsigned long refreshes;      /* slot maps read */
    unsigned long failed;         /* commands given up on (NULL reply or the error) */
};

/* Creates a router over the seed nodes in `seeds` ("host:port,host:port",
 * at least one), connecting with cfg's credentials, TLS settings and
 * timeouts (its database must be 0; its host and port are not used). The
 * slot map is read at once, in the background. Returns the router (new:
 * sl__cluster_free()) or NULL with the reason in err. cfg is borrowed. */
struct sl_cluster *sl__cluster_new(struct event_base *base, const struct sl_config *cfg,
                                   const char *seeds, char *err, size_t errlen);

/* Sends argv to the master of `slot` (0..16383) and calls cb exactly once
 * with the final reply: redirects (MOVED, ASK) are followed up to a
 * limit, TRYAGAIN, CLUSTERDOWN and LOADING retried with backoff until the
 * router's retry time has passed, then handed over as they are.
 * timeout_ms as conn.c's (0: the command timeout; a blocking command
 * passes its BLOCK plus that). Returns 0, or -1 (out of memory, bad slot)
 * and cb never runs. */
int sl__cluster_command(struct sl_cluster *cl, int slot, int flags, sl_cluster_cb *cb,
                        void *priv, long long timeout_ms, int argc, const char **argv,
                        const size_t *argvlen);

/* The same, routed by the nkeys arguments from argv[first_key] on (the
 * keys sluice put there itself: the stream of XADD, the KEYS of EVALSHA).
 * Keys in more than one slot are refused before anything is sent (-1,
 * "CROSSSLOT: ..." in err); a command with no key goes to any master. */
int sl__cluster_command_keys(struct sl_cluster *cl, int first_key, int nkeys, int flags,
                             sl_cluster_cb *cb, void *priv, long long timeout_ms,
                             int argc, const char **argv, const size_t *argvlen,
                             char *err, size_t errlen);

/* Asks for a new slot map (at most one read at a time, and not more than
 * one every few hundred milliseconds). */
void sl__cluster_refresh(struct sl_cluster *cl);

/* The retry time (default SL_CLUSTER_RETRY_MS): how long a command keeps
 * being retried through TRYAGAIN, CLUSTERDOWN, LOADING or a lost
 * connection before its callback is told. */
#define SL_CLUSTER_RETRY_MS 30000
void sl__cluster_set_retry_ms(struct sl_cluster *cl, long long ms);

/* Copies the counters into *st. */
void sl__cluster_stats(const struct sl_cluster *cl, struct sl_cluster_stats *st);

/* "host:port" of the master the map holds for slot, or NULL (borrowed,
 * valid until the next call). */
const char *sl__cluster_slot_addr(const struct sl_cluster *cl, int slot);

/* The same as sl__cluster_command() with the command already in the
 * Redis protocol (len bytes of cmd, copied): for a caller that formats
 * with a hiredis format string. Returns 0, or -1 and cb never runs. */
int sl__cluster_command_formatted(struct sl_cluster *cl, int slot, int flags, sl_cluster_cb *cb,
                                  void *priv, long long timeout_ms, const char *cmd, size_t len);

/* Why the last read of the slot map failed ("host:port: reason"), or ""
 * after one succeeded: what a caller shows when no master is known.
 * Borrowed, valid until the next read. */
const char *sl__cluster_map_error(const struct sl_cluster *cl);

/* Closes every connection and frees the router. Callbacks of commands
 * still pending are not called. Accepts NULL. */
void sl__cluster_free(struct sl_cluster *cl);

#endif /* SL_CLUSTER_H */
