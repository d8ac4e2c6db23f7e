/* supconn.c -- the supervisor's synchronous Redis connection: connected
 * on demand, backing off while Redis is away or hung, and the one way the
 * supervisor's files send it a command or a script.
 */
#include <stdio.h>
#include <hiredis.h>
#include "internal.h"
#include "pool.h"
#include "scripts.h"

/* Returns a usable synchronous connection, connecting when needed, or
 * NULL while Redis is unreachable or refuses our password (retried at
 * most once per backoff, logged once per doubling of attempts with the
 * reason, "authentication failed: ..." included; never a password). */
struct sl_sync *sl__pool_redis(struct sl_pool *p)
{
    uint64_t now = sl__now_ms();
    char err[SL_ERRLEN];

    if (p->rc != NULL && !p->rc->err)
        return p->rc;
    if (p->rc != NULL) {
        sl__sync_free(p->rc);
        p->rc = NULL;
    }
    if (now < p->redis_retry_at)
        return NULL;
    p->rc = sl__redis_connect(p->cfg, err, sizeof(err));
    if (p->rc != NULL)
        return p->rc;
    if (p->redis_fails == 0 || (p->redis_fails & (p->redis_fails - 1)) == 0)
        sl__log(SL_LOG_WARN, "redis_unavailable", "attempt=%d error=%s", p->redis_fails + 1,
                sl__logq(err));
    p->redis_fails++;
    p->redis_retry_at = now + (uint64_t)sl__backoff_ms(200, 5000, p->redis_fails);
    return NULL;
}

/* Runs one command (argv form); returns the reply (new: freeReplyObject)
 * or NULL when Redis is unreachable or the connection broke. */
/* Handles the outcome of one synchronous call on c: a NULL reply means
 * the connection broke or timed out. Returns r. */
static redisReply *after_call(struct sl_pool *p, struct sl_sync *c, redisReply *r)
{
    if (r == NULL) {
        /* A hung server (SIGSTOP, a black hole) still accepts connections:
         * reconnecting at once would block the supervisor's loop for
         * another command timeout per call, and a tick makes many calls,
         * delaying signals, reaping and the shutdown deadline. So a
         * timeout backs off like a failed connect, growing until a reply
         * comes. */
        if ((p->redis_fails & (p->redis_fails - 1)) == 0)
            sl__log(SL_LOG_WARN, "redis_unavailable", "attempt=%d error=%s", p->redis_fails + 1,
                    sl__logq(c->errstr[0] ? c->errstr : "no reply"));
        sl__sync_free(p->rc);
        p->rc = NULL;
        p->redis_fails++;
        p->redis_retry_at = sl__now_ms() + (uint64_t)sl__backoff_ms(200, 5000, p->redis_fails);
    } else {
        p->redis_fails = 0;
    }
    return r;
}

/* Runs one command (argv form); returns the reply (new: freeReplyObject)
 * or NULL when Redis is unreachable or the connection broke. */
redisReply *sl__pool_cmd(struct sl_pool *p, int argc, const char **argv)
{
    struct sl_sync *c = sl__pool_redis(p);

    if (c == NULL)
        return NULL;
    return after_call(p, c, sl__sync_argv(c, argc, argv, NULL));
}

/* Runs framework script `which` (the one EVALSHA path of scripts.c);
 * returns like sl__pool_cmd(). */
redisReply *sl__pool_script(struct sl_pool *p, int which, int nkeys, const char *const *keys,
                            int nargs, const char *const *args)
{
    struct sl_sync *c = sl__pool_redis(p);

    if (c == NULL)
        return NULL;
    return after_call(p, c, sl__script_call(c, sl__script(which), nkeys, keys, nargs, args));
}

