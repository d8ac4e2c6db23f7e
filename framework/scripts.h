/* scripts.h -- the one table of the framework's Lua scripts and the one
 * way to run them: EVALSHA, with a SCRIPT LOAD and one more EVALSHA after
 * a NOSCRIPT reply (scripts.c). The sources are the .lua files of framework/lua/,
 * embedded at build time by scripts/embed-lua.sh; their key and argument
 * counts come from each file's `-- KEYS:` and `-- ARGV:` header line. */
#ifndef SL_SCRIPTS_H
#define SL_SCRIPTS_H

#include <stddef.h>
#include <hiredis.h>
#include "internal.h"
#include "fw_lua.h"           /* generated from framework/lua/ */

#define SL_SCRIPT_COMMIT  0       /* commit.lua: ack / retry / dead of one entry, fenced */
#define SL_SCRIPT_FAIL    1       /* fail.lua: a failed attempt recorded by the supervisor */
#define SL_SCRIPT_CLAIM   2       /* claim.lua: own recovery, due retries, reclaim from peers */
#define SL_SCRIPT_RENEW   3       /* renew.lua: lease renewal */
#define SL_SCRIPT_REPLAY  4       /* replay.lua: dlq replay of one entry */
#define SL_SCRIPT_JANITOR 5       /* janitor.lua: removal of dead consumers */
#define SL_SCRIPT_TRIM    6       /* trim.lua: safe trimming of a stream */
#define SL_SCRIPT_RELEASE 7       /* release.lua: a graceful stop deletes its own heartbeat */
#define SL_SCRIPT_DLQ_PURGE 8     /* dlq_purge.lua: one page of `sluice dlq purge` */
#define SL_SCRIPT_DLQ_RETAIN 9    /* dlq_retain.lua: dead-letter retention */
#define SL_SCRIPT_DLQ_COUNT 10    /* dlq_count.lua: dead letters by code, for /metrics */
#define SL_SCRIPT_RATE    11      /* rate.lua: one sample of a group's counters */
#define SL_SCRIPT_EXPIRE  12      /* expire.lua: fingerprints past their retention */
#define SL_NSCRIPTS       13

/* One script. */
struct sl_lua {
    const char *name;             /* file name without ".lua", for logs */
    const char *src;              /* the source (static, or owned by an effect) */
    int nkeys;                    /* keys of the header line (the fixed ones) */
    int more_keys;                /* 1: more keys may follow (a "..." header word) */
    int nargs;                    /* arguments of the header line (the fixed ones) */
    int more_args;                /* 1: more arguments may follow */
    char sha[41];                 /* SHA1 once SCRIPT LOAD told it, "" before */
    int slot_warned;              /* standalone: a mixed key set was logged once */
};

/* Returns framework script `which` (SL_SCRIPT_*), borrowed for the life
 * of the process. Its sha is learned by the first load. */
struct sl_lua *sl__script(int which);

/* Sets l->sha from l's source (SHA1), as SCRIPT LOAD would. */
void sl__script_sha(struct sl_lua *l);

/* Returns a handler's effect script: its body wrapped by effect.lua
 * (fence, then the disposition its result picks). New: free with
 * sl__script_effect_free(). NULL when memory ran out. */
struct sl_lua *sl__script_effect_new(const struct sl_script *s);
void sl__script_effect_free(struct sl_lua *l);

/* The source of an effect script as one string (new: free()), or NULL:
 * for tests and the bench, which run it themselves. */
char *sl__script_effect_source(const struct sl_script *s);

/* The framework keys and arguments before an effect's own: the fixed
 * words of effect.lua's header (commit.lua and fail.lua take the same). */
#define SL_FW_KEYS SL__LUA_EFFECT_NKEYS
#define SL_FW_ARGS SL__LUA_EFFECT_NARGS

/* Commit script return values. */
#define SL_COMMIT_NOT_OWNER 0
#define SL_COMMIT_ACKED     1
#define SL_COMMIT_RETRIED   2
#define SL_COMMIT_DEAD      3

/* The framework's keys and arguments of commit.lua, fail.lua and
 * effect.lua, in their order: built in this one place. The pointers
 * borrow the strings given (and this struct's own buffers). */
struct sl_commit_args {
    const char *keys[SL_FW_KEYS]; /* stream, attempts hash, dead-letter stream */
    const char *args[SL_FW_ARGS]; /* group consumer id max first cap kind error trim least */
    char akey[SL_KEYLEN];         /* the attempts hash's name */
    char dkey[SL_KEYLEN];         /* "<stream>:dead" */
    char num[3][24];              /* max_deliveries, first delay, cap, as text */
    char least[24];               /* least delay of this entry's retry, ms, as text */
};

/* Fills what stays the same for every entry of one worker: keys, group,
 * consumer (both borrowed) and the tunables' numbers. */
void sl__commit_args_init(struct sl_commit_args *c, const char *stream, const char *group,
                          const char *consumer, const struct sl_tunables *t);
/* Sets one entry's ID, kind ("ack", "retry", "dead"), error and trim
 * flag; the strings are borrowed until the command is sent. */
void sl__commit_args_set(struct sl_commit_args *c, const char *id, const char *kind,
                         const char *err, int trim);
/* Sets the least delay (ms) of the entry's retry; sl__commit_args_set()
 * resets it to 0. */
void sl__commit_args_least(struct sl_commit_args *c, long long ms);

/* Writes the EVALSHA command of script l with its keys then its
 * arguments into argv/argvlen (room for 3 + nkeys + nargs; lengths of
 * NULL klen/alen are strlen()), using nkbuf (16 bytes) for the key
 * count. The counts must match the script's header line (SL_ASSERT: a
 * programmer error). Returns argc. */
int sl__script_argv(struct sl_lua *l, char nkbuf[16],
                    int nkeys, const char *const *keys, const size_t *klen,
                    int nargs, const char *const *args, const size_t *alen,
                    const char **argv, size_t *argvlen);

/* Checks that the keys of one run of script l share one hash slot, as a
 * script must in a Redis Cluster (Redis refuses a mixed set with
 * CROSSSLOT, or worse, runs part of it). In cluster mode (cluster 1) a
 * mixed set is refused: -1 and err names the script, two keys and their
 * slots. Standalone (cluster 0) it returns 0, and logs a warning once per
 * script when the keys are in more than one slot although one of them
 * carries a hash tag (untagged names are the standalone layout: their
 * slots mean nothing; a tag says the keys are meant for a cluster).
 * klen may be NULL for C strings. sl__script_argv() does the standalone
 * check on every command it builds. */
int sl__script_check_slots(struct sl_lua *l, int nkeys, const char *const *keys,
                           const size_t *klen, int cluster, char *err, size_t errlen);

/* The SCRIPT LOAD command of l, for a connection's setup. */
void sl__script_load_argv(const struct sl_lua *l, const char *argv[3]);

/* Learns l's sha from a SCRIPT LOAD reply. Returns 0, or -1 when the
 * reply is not a sha. */
int sl__script_loaded(struct sl_lua *l, const redisReply *r);

/* Tells whether r is a NOSCRIPT error (the server forgot the script:
 * flushed, or restarted without persistence). */
int sl__script_noscript(const redisReply *r);

/* Runs script l on a synchronous connection: EVALSHA, after a SCRIPT
 * LOAD when the sha is not known yet, and once more after a SCRIPT LOAD
 * when the server answers NOSCRIPT. Returns the reply (new:
 * freeReplyObject), which may be an error reply, or NULL when the
 * connection failed (c->err says why). */
redisReply *sl__script_call(struct sl_sync *c, struct sl_lua *l,
                            int nkeys, const char *const *keys,
                            int nargs, const char *const *args);

#endif /* SL_SCRIPTS_H */
