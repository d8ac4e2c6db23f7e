/* harness.c -- the Check side of the test support library: Redis
 * commands that fail the test when Redis does not answer (see harness.h).
 */
#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sends one command and returns its reply, failing the test (naming the
 * format string and hiredis's error) when there is none. `who` names the
 * public helper for the message. */
static redisReply *vcmd(const char *who, redisContext *c, const char *fmt,
                        va_list ap)
{
    redisReply *reply;

    if (c == NULL)
        ck_abort_msg("%s(\"%s\"): no connection", who, fmt);
    reply = redisvCommand(c, fmt, ap);
    if (reply == NULL)
        ck_abort_msg("%s(\"%s\"): no reply: %s", who, fmt,
                     c->err ? c->errstr : "unknown error");
    return reply;
}

/* Fails the test because `reply` has a type the caller cannot use. The
 * reply is freed first (its text copied out), so that in CK_FORK=no mode,
 * where ck_abort_msg() longjmps back to the runner, valgrind sees no leak. */
static _Noreturn void bad_reply(const char *who, const char *fmt,
                                redisReply *reply)
{
    char what[160];

    if (reply->type == REDIS_REPLY_ERROR)
        snprintf(what, sizeof what, "error reply: %s", reply->str);
    else
        snprintf(what, sizeof what, "unexpected reply type %d", reply->type);
    freeReplyObject(reply);
    ck_abort_msg("%s(\"%s\"): %s", who, fmt, what);
}

/* Runs a command; see harness.h. */
redisReply *sl_test_cmd(redisContext *c, const char *fmt, ...)
{
    redisReply *reply;
    va_list ap;

    va_start(ap, fmt);
    reply = vcmd("sl_test_cmd", c, fmt, ap);
    va_end(ap);
    return reply;
}

/* Runs a command and returns its reply as an integer; see harness.h. */
long long sl_test_int(redisContext *c, const char *fmt, ...)
{
    redisReply *reply;
    long long v = 0;
    va_list ap;

    va_start(ap, fmt);
    reply = vcmd("sl_test_int", c, fmt, ap);
    va_end(ap);
    switch (reply->type) {
    case REDIS_REPLY_INTEGER:
        v = reply->integer;
        break;
    case REDIS_REPLY_NIL:
        v = 0;
        break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        v = strtoll(reply->str, NULL, 10);
        break;
    default:
        bad_reply("sl_test_int", fmt, reply);
    }
    freeReplyObject(reply);
    return v;
}

/* Runs a command and returns its reply as a new string; see harness.h.
 * The copy uses the reply's length, so binary values survive (though a
 * caller using C string functions will stop at the first NUL). */
char *sl_test_str(redisContext *c, const char *fmt, ...)
{
    redisReply *reply;
    char *s = NULL;
    va_list ap;

    va_start(ap, fmt);
    reply = vcmd("sl_test_str", c, fmt, ap);
    va_end(ap);
    switch (reply->type) {
    case REDIS_REPLY_NIL:
        break;
    case REDIS_REPLY_INTEGER:
        s = malloc(32);
        if (s != NULL)
            snprintf(s, 32, "%lld", reply->integer);
        break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        s = malloc(reply->len + 1);
        if (s != NULL) {
            memcpy(s, reply->str, reply->len);
            s[reply->len] = '\0';
        }
        break;
    default:
        bad_reply("sl_test_str", fmt, reply);
    }
    if (s == NULL && reply->type != REDIS_REPLY_NIL) {
        freeReplyObject(reply);
        ck_abort_msg("sl_test_str(\"%s\"): out of memory", fmt);
    }
    freeReplyObject(reply);
    return s;
}
