/* session.c -- what opens every connection to Redis: the password looked
 * up anew (URL, SLUICE_REDIS_PASSWORD, redis.password_file), AUTH when
 * there is one, SELECT when the database is not 0 -- written once here
 * and used by the asynchronous connections (conn.c) and by the
 * synchronous one of the supervisor and the admin commands, which this
 * file also opens.
 */
#include <stdio.h>
#include <string.h>
#include <hiredis.h>
#include "internal.h"

/* Looks up the password and prepares the AUTH and SELECT commands (see
 * internal.h). */
int sl__session_begin(const struct sl_redis_url *u, const char *password_file,
                      struct sl_session *ss, char *err, size_t errlen)
{
    char perr[SL_ERRLEN];

    memset(ss, 0, sizeof(*ss));
    if (sl__redis_password(u, password_file, ss->password, sizeof(ss->password),
                           perr, sizeof(perr)) != 0) {
        snprintf(err, errlen, "authentication failed: redis.password_file: %.100s", perr);
        return -1;
    }
    if (ss->password[0] != '\0') {
        ss->auth[0] = "AUTH";
        ss->auth[1] = ss->password;
        ss->nauth = 2;
    }
    if (u->db != 0) {
        snprintf(ss->db, sizeof(ss->db), "%d", u->db);
        ss->select[0] = "SELECT";
        ss->select[1] = ss->db;
        ss->nselect = 2;
    }
    return 0;
}

/* Wipes the password from ss. */
void sl__session_end(struct sl_session *ss)
{
    memset(ss->password, 0, sizeof(ss->password));
}

/* Connects with the configured timeouts, authenticates and selects the
 * database (see internal.h). The password is looked up at every call (URL,
 * SLUICE_REDIS_PASSWORD, redis.password_file), so a supervisor that
 * reconnects picks up a rotated password file. Without a password a PING
 * is sent, so that a server that wants one is reported as an
 * authentication failure here rather than as a puzzling error on the
 * first real command. Returns the context, or NULL with err set. */
redisContext *sl__redis_connect(const struct sl_config *cfg, char *err, size_t errlen)
{
    struct timeval ct = { cfg->connect_timeout_ms / 1000, (cfg->connect_timeout_ms % 1000) * 1000 };
    struct timeval rt = { cfg->command_timeout_ms / 1000, (cfg->command_timeout_ms % 1000) * 1000 };
    struct sl_session ss;
    const char *pw = ss.password;
    redisContext *c = NULL;
    redisReply *r = NULL;

    if (sl__session_begin(&cfg->redis, cfg->password_file, &ss, err, errlen) != 0)
        goto fail;
    c = redisConnectWithTimeout(cfg->redis.host, cfg->redis.port, ct);
    if (c == NULL || c->err) {
        snprintf(err, errlen, "cannot reach redis at %s:%d: %s", cfg->redis.host,
                 cfg->redis.port, c ? c->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(c, rt);
    if (ss.nauth > 0) {
        r = redisCommandArgv(c, ss.nauth, ss.auth, NULL);
    } else {
        r = redisCommand(c, "PING");
    }
    if (r == NULL) {
        snprintf(err, errlen, "cannot reach redis at %s:%d: %s", cfg->redis.host,
                 cfg->redis.port, c->errstr[0] ? c->errstr : "no reply");
        goto fail;
    }
    /* AUTH refused (WRONGPASS), or NOAUTH to the PING. Any other error
     * to the PING (LOADING...) is not about credentials: the connection
     * is kept, and the caller's own commands meet that error and report
     * it as they always did. */
    if (r->type == REDIS_REPLY_ERROR && (pw[0] != '\0' || strncmp(r->str, "NOAUTH", 6) == 0)) {
        sl__auth_error(err, errlen, r->str, pw);
        goto fail;
    }
    freeReplyObject(r);
    r = NULL;
    if (ss.nselect > 0) {
        r = redisCommandArgv(c, ss.nselect, ss.select, NULL);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "redis SELECT failed: %s", r ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
    }
    sl__session_end(&ss);
    return c;

fail:
    sl__session_end(&ss);
    freeReplyObject(r);
    redisFree(c);
    return NULL;
}

/* Connects as sl__redis_connect() does; prints why and returns NULL when
 * Redis cannot be reached or refuses us. New: redisFree(). */
redisContext *sl__admin_connect(const struct sl_config *cfg)
{
    char err[SL_ERRLEN];
    redisContext *c = sl__redis_connect(cfg, err, sizeof(err));

    if (c == NULL)
        fprintf(stderr, "sluice: %s\n", err);
    return c;
}
