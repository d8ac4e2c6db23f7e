/* acl.c -- `sluice acl`: the Redis ACL rules a configuration needs, so an
 * operator can run sluice as a user that may touch nothing else.
 *
 * The commands come from two places: the ones the framework sends itself
 * (a fixed list below: the workers' reads and heartbeats, the
 * supervisor's, the admin commands'), and the ones its Lua scripts and
 * the configured handlers' scripts call, found by reading the scripts'
 * sources for redis.call('...'), since Redis checks a script's commands
 * against the caller's ACL too. The keys are each configured stream, its
 * dead-letter stream and attempts hash, the heartbeats and their registry,
 * the rate samples, the fingerprints' expiry stream, and the patterns
 * the handlers declare in their `keys` field.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "scripts.h"
#include "heartbeat.h"
#include "typecount.h"

#define MAX_RULES 256             /* distinct commands or key patterns in one output */
#define RULE_LEN  (2 * SL_KEYLEN) /* longest rule, escaped */

/* The commands the framework sends outside of scripts, lower case,
 * "cmd|sub" for one subcommand. */
static const char *const fw_commands[] = {
    "ping", "select", "client|id", "client|unblock",   /* connections, stop */
    "xreadgroup", "xack", "xadd", "xlen", "xrange", "xpending",
    "xgroup|create", "xinfo|stream", "xinfo|groups", "xinfo|consumers",
    "scan", "hset", "hmget", "pexpire", "pttl", "del", "exists", "type", "time",
    "xdel", "xrevrange",
    "zadd", "zrange", "zrem", "zremrangebyscore",     /* the registry of live workers */
    "hincrby", "hgetall",                        /* the per-type counters (typecount.h) */
    "evalsha", "eval", "script|load",            /* eval: the housekeeping's rate.lua, expire.lua */
};

/* Commands whose first argument names a subcommand that the ACL can
 * grant alone. */
static const char *const with_sub[] = { "xgroup", "xinfo", "client", "script", "object" };

/* A set of rules in the order first added. */
struct rules {
    char *v[MAX_RULES];           /* the rules (owned) */
    size_t n;                     /* how many */
    int full;                     /* one did not fit */
};

/* Adds s to r unless it is there already. */
static void add(struct rules *r, const char *s)
{
    size_t i;

    for (i = 0; i < r->n; i++)
        if (strcmp(r->v[i], s) == 0)
            return;
    if (r->n == MAX_RULES || (r->v[r->n] = strdup(s)) == NULL) {
        r->full = 1;
        return;
    }
    r->n++;
}

/* Frees r's rules. */
static void rules_free(struct rules *r)
{
    while (r->n > 0)
        free(r->v[--r->n]);
}

/* Adds the key pattern "~<name>" with the glob characters of a literal
 * name escaped (a stream called "a*" must not grant every key starting
 * with "a"). */
static void add_literal_key(struct rules *keys, const char *name)
{
    char buf[RULE_LEN];
    size_t n = 0;

    buf[n++] = '~';
    for (; *name != '\0' && n + 3 < sizeof(buf); name++) {
        if (strchr("*?[]\\", *name) != NULL)
            buf[n++] = '\\';
        buf[n++] = *name;
    }
    buf[n] = '\0';
    add(keys, buf);
}

/* Adds the key pattern "~<prefix>*", the prefix taken literally. */
static void add_prefix_key(struct rules *keys, const char *prefix)
{
    char buf[RULE_LEN];
    size_t n = 0;

    buf[n++] = '~';
    for (; *prefix != '\0' && n + 4 < sizeof(buf); prefix++) {
        if (strchr("*?[]\\", *prefix) != NULL)
            buf[n++] = '\\';
        buf[n++] = *prefix;
    }
    buf[n++] = '*';
    buf[n] = '\0';
    add(keys, buf);
}

/* Reads one quoted Lua string literal at *pp (after blanks) into buf,
 * lower case. Returns 0 and advances *pp, or -1 when there is none. */
static int lua_literal(const char **pp, char *buf, size_t size)
{
    const char *p = *pp;
    char q;
    size_t n = 0;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '\'' && *p != '"')
        return -1;
    q = *p++;
    while (*p != '\0' && *p != q && n + 1 < size) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return -1;
        buf[n++] = (char)tolower((unsigned char)*p++);
    }
    if (*p != q || n == 0)
        return -1;
    buf[n] = '\0';
    *pp = p + 1;
    return 0;
}

/* Adds the commands that src calls through redis.call / redis.pcall.
 * Returns the number of calls whose command is not a literal (those the
 * rules cannot cover). */
static int scan_lua(struct rules *cmds, const char *src)
{
    const char *p = src;
    char cmd[64], sub[64], rule[140];
    int unknown = 0;
    size_t i;

    while ((p = strstr(p, "redis.")) != NULL) {
        p += 6;
        if (strncmp(p, "call(", 5) == 0)
            p += 5;
        else if (strncmp(p, "pcall(", 6) == 0)
            p += 6;
        else
            continue;
        if (lua_literal(&p, cmd, sizeof(cmd)) != 0) {
            unknown++;
            continue;
        }
        snprintf(rule, sizeof(rule), "%s", cmd);
        for (i = 0; i < SL_NELEM(with_sub); i++) {
            const char *q = p;
            while (*q == ' ' || *q == '\t')
                q++;
            if (strcmp(cmd, with_sub[i]) == 0 && *q == ',') {
                q++;
                if (lua_literal(&q, sub, sizeof(sub)) == 0)
                    snprintf(rule, sizeof(rule), "%s|%s", cmd, sub);
                else
                    snprintf(rule, sizeof(rule), "%s", cmd);
            }
        }
        add(cmds, rule);
    }
    return unknown;
}

/* Prints the rules for cfg (see internal.h). */
int sl__acl(const struct sl_config *cfg, const struct sl_handler *const *registry)
{
    struct rules keys = { { NULL }, 0, 0 }, cmds = { { NULL }, 0, 0 };
    const char *user = cfg->redis.user[0] != '\0' ? cfg->redis.user : "sluice";
    char buf[RULE_LEN];
    int unknown = 0, rc = 0;
    size_t i, j;

    for (i = 0; i < SL_NELEM(fw_commands); i++)
        add(&cmds, fw_commands[i]);
    for (i = 0; i < SL_NSCRIPTS; i++)
        unknown += scan_lua(&cmds, sl__script((int)i)->src);
    if (cfg->cluster_nodes != NULL) {
        /* The slot map, and the one-off redirect of a slot mid-migration. */
        add(&cmds, "cluster|slots");
        add(&cmds, "asking");
    }
    add(&keys, "~" SL_HB_PREFIX "*");
    add(&keys, "~" SL_HB_REGISTRY);
    add(&keys, "~" SL_RATE_PREFIX "*");
    add(&keys, "~" SL_TC_PREFIX "*");
    add(&keys, "~" SL_FP_EXPIRY);
    printf("# The Redis ACL rules of this configuration (sluice acl), for the user\n"
           "# \"%s\": the commands and keys of the framework, of the admin commands\n"
           "# and of each configured handler, nothing more.\n", user);
    for (i = 0; i < cfg->nworkers; i++) {
        const struct sl_worker_conf *wc = &cfg->workers[i];
        const struct sl_handler *h = sl__registry_find(registry, wc->handler);

        add_literal_key(&keys, wc->stream);
        snprintf(buf, sizeof(buf), "%s:dead", wc->stream);
        add_literal_key(&keys, buf);
        sl__attempts_key(buf, sizeof(buf), wc->stream, wc->group);
        add_literal_key(&keys, buf);
        if (cfg->cluster_nodes != NULL) {
            /* The heartbeats of a cluster carry the stream's tag. */
            sl__hb_registry(buf, sizeof(buf), 1, wc->stream);
            add_literal_key(&keys, buf);
            sl__hb_key_of(buf, sizeof(buf), 1, wc->stream, "");
            add_prefix_key(&keys, buf);
        }
        if (h == NULL)
            continue;
        for (j = 0; h->scripts != NULL && h->scripts[j] != NULL; j++) {
            char *src = sl__script_effect_source(h->scripts[j]);
            if (src == NULL) {
                fprintf(stderr, "sluice: out of memory\n");
                rc = 1;
                goto out;
            }
            unknown += scan_lua(&cmds, src);
            free(src);
        }
        if (h->scripts != NULL && h->scripts[0] != NULL && h->keys == NULL)
            printf("# handler \"%s\" declares no key patterns (its `keys` field): add\n"
                   "# the keys its scripts touch to the line below yourself.\n", h->name);
        for (j = 0; h->keys != NULL && h->keys[j] != NULL; j++) {
            snprintf(buf, sizeof(buf), "~%s", h->keys[j]);
            add(&keys, buf);
        }
    }
    if (unknown > 0)
        printf("# %d script call(s) name their command in a variable: not covered.\n", unknown);
    if (keys.full || cmds.full) {
        fprintf(stderr, "sluice: acl: more than %d rules\n", MAX_RULES);
        rc = 1;
        goto out;
    }
    /* resetkeys and -@all first, so that running the line again replaces
     * the user's rules; the password is left alone (none is printed). */
    printf("ACL SETUSER %s on resetkeys resetchannels -@all", user);
    for (i = 0; i < keys.n; i++)
        printf(" %s", keys.v[i]);
    for (i = 0; i < cmds.n; i++)
        printf(" +%s", cmds.v[i]);
    printf("\n# Then give it a password (not shown here): ACL SETUSER %s >PASSWORD\n", user);
out:
    rules_free(&keys);
    rules_free(&cmds);
    return rc;
}
