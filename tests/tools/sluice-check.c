/* sluice-check.c -- checks the payment flow's invariants (docs/payment-flow.md)
 * on any Redis and prints what is violated.
 *
 *   sluice-check [--redis URL] [--live]
 *
 * URL is redis://[:password@]host[:port][/db]; without --redis the
 * environment variable SLUICE_REDIS_URL is used, then
 * redis://127.0.0.1:6379/0. By default every invariant is checked,
 * including those that hold only once the system is quiet (every order
 * final, every group drained, no dead letter twice); --live checks only
 * what must hold at any moment, for a system that is still running.
 *
 * Prints one line per violation on stdout and a summary on stderr.
 * Exit codes: 0 nothing violated; 1 something violated, or Redis could
 * not be read (the message says which); 2 usage.
 *
 * The checking itself is tests/support/invariants.c; this is only the
 * command line around it. It reads, never writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include "invariants.h"

#define CHECK_REPORT (1 << 20)     /* bytes of the violation report */
#define CHECK_TIMEOUT_MS 5000      /* connect and command timeout */

/* A parsed redis:// URL. */
struct url {
    char host[256];               /* host name or address */
    int port;                     /* TCP port */
    int db;                       /* database number */
    char password[256];           /* "" when none */
};

/* Prints the usage to f. */
static void usage(FILE *f)
{
    fprintf(f, "usage: sluice-check [--redis URL] [--live]\n"
               "  --redis URL  redis://[:password@]host[:port][/db] "
               "(default $SLUICE_REDIS_URL, then redis://127.0.0.1:6379/0)\n"
               "  --live       only the invariants that hold while workers run\n"
               "exit status: 0 no violation, 1 violations or Redis unreadable, 2 usage\n");
}

/* Parses a decimal integer in [lo, hi] from s[0..len). Returns 0 or -1. */
static int parse_int(const char *s, size_t len, long lo, long hi, int *out)
{
    long v = 0;
    size_t i;

    if (len == 0 || len > 9)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Parses s as redis://[:password@]host[:port][/db] into *u. Returns 0,
 * or -1 when s is not such a URL. */
static int parse_url(const char *s, struct url *u)
{
    const char *p, *at, *end, *colon, *slash;
    size_t n;

    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (strncmp(s, "redis://", 8) != 0)
        return -1;
    p = s + 8;
    end = p + strlen(p);
    slash = strchr(p, '/');
    at = strrchr(p, '@');
    if (at != NULL && (slash == NULL || at < slash)) {
        if (*p != ':' || (size_t)(at - p - 1) >= sizeof u->password)
            return -1;
        memcpy(u->password, p + 1, (size_t)(at - p - 1));
        p = at + 1;
        slash = strchr(p, '/');
    }
    if (slash != NULL) {
        if (slash[1] != '\0' && parse_int(slash + 1, strlen(slash + 1), 0, 1 << 20, &u->db) < 0)
            return -1;
        end = slash;
    }
    colon = memchr(p, ':', (size_t)(end - p));
    if (colon != NULL) {
        if (parse_int(colon + 1, (size_t)(end - colon - 1), 1, 65535, &u->port) < 0)
            return -1;
        end = colon;
    }
    n = (size_t)(end - p);
    if (n == 0 || n >= sizeof u->host)
        return -1;
    memcpy(u->host, p, n);
    u->host[n] = '\0';
    return 0;
}

/* Connects to u, authenticates and selects the database. Returns a new
 * context (redisFree()), or NULL after printing why. */
static redisContext *connect_or_log(const struct url *u, const char *text)
{
    struct timeval tv = { CHECK_TIMEOUT_MS / 1000, (CHECK_TIMEOUT_MS % 1000) * 1000 };
    redisContext *c = redisConnectWithTimeout(u->host, u->port, tv);
    redisReply *r = NULL;

    if (c == NULL || c->err) {
        fprintf(stderr, "sluice-check: %s: cannot connect: %s\n", text,
                c != NULL ? c->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        fprintf(stderr, "sluice-check: %s: cannot set the timeout\n", text);
        goto fail;
    }
    if (u->password[0] != '\0') {
        r = redisCommand(c, "AUTH %s", u->password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "sluice-check: %s: AUTH: %s\n", text,
                    r != NULL ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (u->db != 0) {
        r = redisCommand(c, "SELECT %d", u->db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "sluice-check: %s: SELECT %d: %s\n", text, u->db,
                    r != NULL ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
    }
    return c;
fail:
    if (r != NULL)
        freeReplyObject(r);
    if (c != NULL)
        redisFree(c);
    return NULL;
}

/* Parses the arguments, runs the check and reports. Returns the exit
 * status described at the top of this file. */
int main(int argc, char **argv)
{
    const char *text = getenv("SLUICE_REDIS_URL");
    struct url u;
    redisContext *c;
    char *report;
    int live = 0, i, n;

    if (text == NULL || *text == '\0')
        text = "redis://127.0.0.1:6379/0";
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--live") == 0) {
            live = 1;
        } else if (strcmp(argv[i], "--redis") == 0 && i + 1 < argc) {
            text = argv[++i];
        } else if (strncmp(argv[i], "--redis=", 8) == 0) {
            text = argv[i] + 8;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "sluice-check: %s: %s\n", argv[i],
                    strcmp(argv[i], "--redis") == 0 ? "expected a URL after it" :
                    "unknown argument");
            usage(stderr);
            return 2;
        }
    }
    if (parse_url(text, &u) < 0) {
        fprintf(stderr, "sluice-check: %s: expected redis://[:password@]host[:port][/db]\n",
                text);
        return 2;
    }
    c = connect_or_log(&u, text);
    if (c == NULL)
        return 1;
    report = malloc(CHECK_REPORT);
    if (report == NULL) {
        fprintf(stderr, "sluice-check: out of memory\n");
        redisFree(c);
        return 1;
    }
    n = live ? sl_test_invariants_live(c, report, CHECK_REPORT)
             : sl_test_invariants(c, report, CHECK_REPORT);
    redisFree(c);
    if (n < 0) {
        fprintf(stderr, "sluice-check: %s: cannot read the flow: %s", text, report);
        free(report);
        return 1;
    }
    fputs(report, stdout);
    if (n > 0)
        fprintf(stderr, "sluice-check: %d violation%s (%s check)\n", n, n == 1 ? "" : "s",
                live ? "live" : "full");
    else
        fprintf(stderr, "sluice-check: no violation (%s check)\n", live ? "live" : "full");
    free(report);
    return n > 0 ? 1 : 0;
}
