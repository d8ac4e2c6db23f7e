/* scripts.c -- the one table of the framework's Lua scripts, the one
 * place their framework keys and arguments are built, and the one path
 * that runs a script: EVALSHA, reloading after NOSCRIPT.
 *
 * Every step that changes an entry's fate (ack with effects, retry, dead
 * letter, claim, lease renewal) is one `#!lua` script in framework/lua/,
 * so that it is fenced (it acts only while the entry is pending for the
 * consumer that asks), all-or-nothing under OOM (a shebang script is
 * refused whole), and never half applied by a crash of either side. The
 * files say what each takes and returns; scripts/embed-lua.sh embeds
 * them and counts the words of their `-- KEYS:` and `-- ARGV:` lines,
 * which sl__script_argv() checks every call against.
 *
 * Line numbers: a `--@include lib` line becomes lib.lua on one line, so
 * a Redis error "user_script:N" names line N of the .lua file (N = the
 * include line for an error inside lib.lua). In an effect script, line N
 * is line N-2 of the handler's body (effect.lua's first two lines come
 * before it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "scripts.h"
#include "cluster.h"

/* A table entry from the generated names of framework/lua/NAME.lua. */
#define SCRIPT(name, NAME) \
    { #name, sl__lua_##name, SL__LUA_##NAME##_NKEYS, SL__LUA_##NAME##_MORE_KEYS, \
      SL__LUA_##NAME##_NARGS, SL__LUA_##NAME##_MORE_ARGS, "" }

static struct sl_lua table[SL_NSCRIPTS] = {
    [SL_SCRIPT_COMMIT] = SCRIPT(commit, COMMIT),
    [SL_SCRIPT_FAIL] = SCRIPT(fail, FAIL),
    [SL_SCRIPT_CLAIM] = SCRIPT(claim, CLAIM),
    [SL_SCRIPT_RENEW] = SCRIPT(renew, RENEW),
    [SL_SCRIPT_REPLAY] = SCRIPT(replay, REPLAY),
    [SL_SCRIPT_JANITOR] = SCRIPT(janitor, JANITOR),
    [SL_SCRIPT_TRIM] = SCRIPT(trim, TRIM),
    [SL_SCRIPT_RELEASE] = SCRIPT(release, RELEASE),
    [SL_SCRIPT_DLQ_PURGE] = SCRIPT(dlq_purge, DLQ_PURGE),
    [SL_SCRIPT_DLQ_RETAIN] = SCRIPT(dlq_retain, DLQ_RETAIN),
    [SL_SCRIPT_DLQ_COUNT] = SCRIPT(dlq_count, DLQ_COUNT),
    [SL_SCRIPT_RATE] = SCRIPT(rate, RATE),
    [SL_SCRIPT_EXPIRE] = SCRIPT(expire, EXPIRE),
};

/* commit.lua, fail.lua and effect.lua share one calling convention. */
_Static_assert(SL__LUA_COMMIT_NKEYS == SL_FW_KEYS && SL__LUA_COMMIT_NARGS == SL_FW_ARGS &&
               SL__LUA_FAIL_NKEYS == SL_FW_KEYS && SL__LUA_FAIL_NARGS == SL_FW_ARGS,
               "commit.lua, fail.lua and effect.lua disagree on the framework's keys");

/* The marker in effect.lua where a handler's body goes. */
#define BODY_MARK "--@body"

/* Returns framework script `which`. */
struct sl_lua *sl__script(int which)
{
    SL_ASSERT(which >= 0 && which < SL_NSCRIPTS);
    return &table[which];
}

/* Returns effect.lua with the handler's body put at its --@body marker
 * (new: free()), or NULL when memory ran out. */
char *sl__script_effect_source(const struct sl_script *s)
{
    const char *mark = strstr(sl__lua_effect, BODY_MARK);
    size_t head, blen, tlen;
    char *src;

    SL_ASSERT(mark != NULL);
    head = (size_t)(mark - sl__lua_effect);
    blen = strlen(s->body);
    tlen = strlen(mark + strlen(BODY_MARK));
    if ((src = malloc(head + blen + tlen + 1)) == NULL)
        return NULL;
    memcpy(src, sl__lua_effect, head);
    memcpy(src + head, s->body, blen);
    memcpy(src + head + blen, mark + strlen(BODY_MARK), tlen + 1);
    return src;
}

/* Returns a handler's effect script entry (new: sl__script_effect_free). */
struct sl_lua *sl__script_effect_new(const struct sl_script *s)
{
    struct sl_lua *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    if ((l->src = sl__script_effect_source(s)) == NULL) {
        free(l);
        return NULL;
    }
    l->name = s->name;
    l->nkeys = SL_FW_KEYS;
    l->more_keys = 1;
    l->nargs = SL_FW_ARGS;
    l->more_args = 1;
    return l;
}

/* Frees an effect script entry; NULL is ignored. */
void sl__script_effect_free(struct sl_lua *l)
{
    if (l == NULL)
        return;
    free((char *)l->src);
    free(l);
}

/* Fills the parts of the framework's keys and arguments that one worker
 * (or one failed child) keeps for every entry. */
void sl__commit_args_init(struct sl_commit_args *c, const char *stream, const char *group,
                          const char *consumer, const struct sl_tunables *t)
{
    sl__attempts_key(c->akey, sizeof(c->akey), stream, group);
    snprintf(c->dkey, sizeof(c->dkey), "%s:dead", stream);
    snprintf(c->num[0], sizeof(c->num[0]), "%lld", t->max_deliveries);
    snprintf(c->num[1], sizeof(c->num[1]), "%lld", t->retry_backoff_ms[0]);
    snprintf(c->num[2], sizeof(c->num[2]), "%lld", t->retry_backoff_ms[1]);
    c->keys[0] = stream;
    c->keys[1] = c->akey;
    c->keys[2] = c->dkey;
    c->args[0] = group;
    c->args[1] = consumer;
    c->args[2] = "";
    c->args[3] = c->num[0];
    c->args[4] = c->num[1];
    c->args[5] = c->num[2];
    c->args[6] = "ack";
    c->args[7] = "";
    c->args[8] = "0";
    c->args[9] = "0";
}

/* Sets the per-entry arguments. */
void sl__commit_args_set(struct sl_commit_args *c, const char *id, const char *kind,
                         const char *err, int trim)
{
    c->args[2] = id;
    c->args[6] = kind;
    c->args[7] = err;
    c->args[8] = trim ? "1" : "0";
    c->args[9] = "0";
}

/* Sets the least delay of the entry's retry (see scripts.h). */
void sl__commit_args_least(struct sl_commit_args *c, long long ms)
{
    snprintf(c->least, sizeof(c->least), "%lld", ms);
    c->args[9] = c->least;
}

/* 1 when key (len bytes) has a hash tag: a '{' with a '}' after it and
 * at least one byte between (the rule of CLUSTER KEYSLOT). */
static int has_tag(const char *key, size_t len)
{
    const char *o = memchr(key, '{', len), *c;

    if (o == NULL)
        return 0;
    c = memchr(o + 1, '}', len - (size_t)(o + 1 - key));
    return c != NULL && c > o + 1;
}

/* Checks the slots of one run's keys (see scripts.h). */
int sl__script_check_slots(struct sl_lua *l, int nkeys, const char *const *keys,
                           const size_t *klen, int cluster, char *err, size_t errlen)
{
    int i, first = -1, tagged = 0, other = -1;

    /* Standalone, the hot path: nothing to say once warned, nor when no
     * key has a tag (a '{' scan, no hashing). */
    if (!cluster) {
        if (l->slot_warned)
            return 0;
        for (i = 0; i < nkeys && !tagged; i++)
            tagged = has_tag(keys[i], klen != NULL ? klen[i] : strlen(keys[i]));
        if (!tagged)
            return 0;
    }
    for (i = 0; i < nkeys; i++) {
        size_t len = klen != NULL ? klen[i] : strlen(keys[i]);
        int slot = sl__cluster_keyslot(keys[i], len);

        if (i == 0)
            first = slot;
        else if (slot != first && other < 0)
            other = i;
    }
    if (other < 0)
        return 0;
    if (cluster) {
        snprintf(err, errlen, "script %s: keys \"%.100s\" (slot %d) and \"%.100s\" (slot %d) "
                 "are in different hash slots; in a cluster every key of a script must "
                 "carry the hash tag of its stream, e.g. orders:{p0}", l->name,
                 keys[0], first, keys[other],
                 sl__cluster_keyslot(keys[other], klen != NULL ? klen[other] : strlen(keys[other])));
        return -1;
    }
    if (!l->slot_warned) {
        l->slot_warned = 1;
        sl__log(SL_LOG_WARN, "script_crossslot", "script=%s key=%s other_key=%s "
                "hint=%s", sl__logq(l->name), sl__logq(keys[0]), sl__logq(keys[other]),
                sl__logq("its keys are in different hash slots: a Redis Cluster would refuse it"));
    }
    return 0;
}

/* Builds EVALSHA sha nkeys keys... args... (see scripts.h). */
int sl__script_argv(struct sl_lua *l, char nkbuf[16],
                    int nkeys, const char *const *keys, const size_t *klen,
                    int nargs, const char *const *args, const size_t *alen,
                    const char **argv, size_t *argvlen)
{
    int i, n = 0;

    SL_ASSERT(nkeys == l->nkeys || (l->more_keys && nkeys >= l->nkeys));
    SL_ASSERT(nargs == l->nargs || (l->more_args && nargs >= l->nargs));
    sl__script_check_slots(l, nkeys, keys, klen, 0, NULL, 0);
    snprintf(nkbuf, 16, "%d", nkeys);
    argv[n] = "EVALSHA";
    argvlen[n++] = 7;
    argv[n] = l->sha;
    argvlen[n++] = strlen(l->sha);
    argv[n] = nkbuf;
    argvlen[n++] = strlen(nkbuf);
    for (i = 0; i < nkeys; i++, n++) {
        argv[n] = keys[i];
        argvlen[n] = klen != NULL ? klen[i] : strlen(keys[i]);
    }
    for (i = 0; i < nargs; i++, n++) {
        argv[n] = args[i];
        argvlen[n] = alen != NULL ? alen[i] : strlen(args[i]);
    }
    return n;
}

/* Writes SCRIPT LOAD <source>. */
void sl__script_load_argv(const struct sl_lua *l, const char *argv[3])
{
    argv[0] = "SCRIPT";
    argv[1] = "LOAD";
    argv[2] = l->src;
}

/* Computes l's sha (SHA1 of its source, in hex, as Redis names it)
 * without asking Redis, so that SCRIPT LOAD and EVALSHA can be sent in
 * one round trip. */
void sl__script_sha(struct sl_lua *l)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;

    if (EVP_Digest(l->src, strlen(l->src), md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        return;
    for (i = 0; i < n; i++)
        snprintf(l->sha + 2 * i, 3, "%02x", md[i]);
}

/* Stores the sha of a SCRIPT LOAD reply. */
int sl__script_loaded(struct sl_lua *l, const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING || r->len != 40)
        return -1;
    memcpy(l->sha, r->str, 40);
    l->sha[40] = '\0';
    return 0;
}

/* Tells whether r is a NOSCRIPT error. */
int sl__script_noscript(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Loads l on c and learns its sha. Returns NULL when that worked (or,
 * with *lost set, when the connection failed); else the reply to hand
 * back to the caller (an error, or not a sha). */
static redisReply *load(struct sl_sync *c, struct sl_lua *l, int *lost)
{
    const char *argv[3];
    redisReply *r;

    sl__script_load_argv(l, argv);
    r = sl__sync_argv(c, 3, argv, NULL);
    *lost = r == NULL;
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        return r;
    if (sl__script_loaded(l, r) < 0) {
        /* Not a sha: hand back what came, the caller reports it. */
        return r;
    }
    freeReplyObject(r);
    return NULL;
}

/* Runs l on a synchronous connection (see scripts.h). */
redisReply *sl__script_call(struct sl_sync *c, struct sl_lua *l,
                            int nkeys, const char *const *keys,
                            int nargs, const char *const *args)
{
    const char **argv = malloc((size_t)(3 + nkeys + nargs) * sizeof(*argv));
    size_t *argvlen = malloc((size_t)(3 + nkeys + nargs) * sizeof(*argvlen));
    char nk[16];
    redisReply *r = NULL;
    int argc, tries, lost = 0;

    if (argv == NULL || argvlen == NULL) {
        free(argv);
        free(argvlen);
        c->err = REDIS_ERR_OOM;
        snprintf(c->errstr, sizeof(c->errstr), "out of memory");
        return NULL;
    }
    for (tries = 0; tries < 2; tries++) {
        if (l->sha[0] == '\0' && (r = load(c, l, &lost)) != NULL)
            break;
        if (lost)
            break;
        argc = sl__script_argv(l, nk, nkeys, keys, NULL, nargs, args, NULL, argv, argvlen);
        r = sl__sync_argv(c, argc, argv, argvlen);
        if (!sl__script_noscript(r) || tries == 1)
            break;              /* a reply, or NOSCRIPT right after a load: hand it back */
        /* The server forgot it (SCRIPT FLUSH, a restart without
         * persistence): load it again and retry once. */
        freeReplyObject(r);
        r = NULL;
        l->sha[0] = '\0';
    }
    free(argv);
    free(argvlen);
    return r;
}
