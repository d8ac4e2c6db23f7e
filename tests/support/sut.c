/* sut.c -- the helpers of sut.h for the pool under test and its log. */
#include "sut.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "harness.h"

/* Spawns `sluice run -c cfgpath` with its output appended to logpath. */
pid_t sl_test_pool_spawn(const char *cfgpath, const char *logpath)
{
    return sl_test_pool_spawn_args(cfgpath, logpath, NULL);
}

/* Spawns `sluice run -c cfgpath` followed by the NULL-terminated extra
 * arguments (NULL for none; at most 16 are passed). Returns its PID, or
 * -1. */
pid_t sl_test_pool_spawn_args(const char *cfgpath, const char *logpath,
                              const char *const *extra)
{
    const char *argv[4 + 16 + 1];
    int n = 0, i;

    argv[n++] = sl_test_bin();
    argv[n++] = "run";
    argv[n++] = "-c";
    argv[n++] = cfgpath;
    for (i = 0; extra != NULL && extra[i] != NULL && i < 16; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return sl_test_spawn(argv, logpath);
}

/* Polls the log until `want` event=running lines are there, the pool
 * exited (-1) or the deadline passed (-2). */
int sl_test_pool_wait_running(pid_t pid, const char *logpath, int want, int timeout_ms)
{
    long long deadline = sl_test_deadline(timeout_ms);

    while (sl_test_log_count(logpath, " event=running ") < want) {
        if (!sl_test_pid_alive(pid))
            return -1;
        if (!sl_test_tick(deadline))
            return -2;
    }
    return 0;
}

/* SIGTERM, a grace period, then SIGKILL; clears *pid. */
void sl_test_pool_kill(pid_t *pid, int grace_ms)
{
    if (*pid <= 0)
        return;
    sl_test_kill(*pid, SIGTERM);
    if (!sl_test_wait_exit(*pid, grace_ms, NULL)) {
        sl_test_kill(*pid, SIGKILL);
        sl_test_wait_exit(*pid, 5000, NULL);
    }
    *pid = 0;
}

/* Parses the space-separated PIDs the kernel lists as pid's children. */
int sl_test_pool_children(pid_t pid, pid_t *pids, int max)
{
    char path[64];
    char *s, *p, *end;
    int n = 0;

    if (pid <= 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", (long)pid, (long)pid);
    s = sl_test_read_file(path);
    if (s == NULL)
        return 0;
    for (p = s; n < max; p = end) {
        long v = strtol(p, &end, 10);

        if (end == p)
            break;
        pids[n++] = (pid_t)v;
    }
    free(s);
    return n;
}

/* Counts the (non-overlapping) occurrences of needle in the file. */
int sl_test_log_count(const char *path, const char *needle)
{
    char *s = sl_test_read_file(path);
    const char *p;
    int n = 0;

    if (s == NULL)
        return 0;
    for (p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(s);
    return n;
}

/* Finds the start of the last `lines` lines and prints from there. */
void sl_test_log_tail(const char *path, int lines)
{
    char *s = sl_test_read_file(path);
    char *p;
    int n = 0;

    if (s == NULL)
        return;
    for (p = s + strlen(s); p > s; p--)
        if (p[-1] == '\n' && ++n > lines)
            break;
    fprintf(stderr, "---- last lines of %s ----\n%s---- end ----\n", path, p);
    free(s);
}

/* Scans the reply's even elements for a string equal to name. */
const redisReply *sl_test_kv(const redisReply *r, const char *name)
{
    size_t i;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1];
    return NULL;
}

/* Appends one line to report (len bytes, kept NUL-terminated). */
static void report_line(char *report, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report_line(char *report, size_t len, const char *fmt, ...)
{
    size_t used;
    va_list ap;

    if (report == NULL || len == 0)
        return;
    used = strlen(report);
    if (used + 1 >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(report + used, len - used, fmt, ap);
    va_end(ap);
}

/* The one quiescence rule of the tests (see sut.h). */
int sl_test_unquiet(redisContext *c, const char *const *streams, size_t n, int require_group,
                    char *report, size_t len)
{
    redisReply *x, *r;
    size_t i, g;
    int bad = 0;

    if (report != NULL && len > 0)
        report[0] = '\0';
    if (c == NULL || (r = redisCommand(c, "MULTI")) == NULL)
        return -1;
    freeReplyObject(r);
    for (i = 0; i < n; i++) {
        freeReplyObject(redisCommand(c, "XINFO STREAM %s", streams[i]));
        freeReplyObject(redisCommand(c, "XINFO GROUPS %s", streams[i]));
    }
    x = redisCommand(c, "EXEC");
    if (x == NULL || x->type != REDIS_REPLY_ARRAY || x->elements != 2 * n) {
        if (x != NULL)
            freeReplyObject(x);
        return -1;
    }
    for (i = 0; i < n; i++) {
        const redisReply *s = x->element[2 * i], *gs = x->element[2 * i + 1];
        const redisReply *last = sl_test_kv(s, "last-generated-id");

        if (last == NULL || gs->type != REDIS_REPLY_ARRAY || gs->elements == 0) {
            /* No such stream, or nobody reads it. */
            if (require_group) {
                bad++;
                report_line(report, len, "  stuck: %s has no group\n", streams[i]);
            }
            continue;
        }
        for (g = 0; g < gs->elements; g++) {
            const redisReply *pend = sl_test_kv(gs->element[g], "pending");
            const redisReply *ld = sl_test_kv(gs->element[g], "last-delivered-id");
            const redisReply *name = sl_test_kv(gs->element[g], "name");

            if (pend == NULL || pend->type != REDIS_REPLY_INTEGER || pend->integer != 0 ||
                ld == NULL || ld->type != REDIS_REPLY_STRING || strcmp(ld->str, last->str) != 0) {
                bad++;
                report_line(report, len, "  stuck: %s/%s pending %lld, last delivered %s of %s\n",
                            streams[i], name != NULL && name->type == REDIS_REPLY_STRING ? name->str : "?",
                            pend != NULL && pend->type == REDIS_REPLY_INTEGER ? pend->integer : -1,
                            ld != NULL && ld->type == REDIS_REPLY_STRING ? ld->str : "?", last->str);
            }
        }
    }
    freeReplyObject(x);
    return bad;
}

/* The three streams of the payment flow. */
const char *const sl_test_flow_streams[3] = { "users", "orders", "payments" };

/* Returns 1 when pid runs under a memory checker (AddressSanitizer's
 * runtime or valgrind mapped in, or SLUICE_WRAP set): rates and memory
 * measured then say nothing about sluice's own. */
int sl_test_instrumented(pid_t pid)
{
    char path[64], *maps;
    int yes;

    if (getenv("SLUICE_WRAP") != NULL && getenv("SLUICE_WRAP")[0] != '\0')
        return 1;
    snprintf(path, sizeof path, "/proc/%ld/maps", (long)pid);
    if ((maps = sl_test_read_file(path)) == NULL)
        return 0;
    yes = strstr(maps, "libasan") != NULL || strstr(maps, "vgpreload") != NULL;
    free(maps);
    return yes;
}
