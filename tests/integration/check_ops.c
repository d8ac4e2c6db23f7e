/* check_ops.c -- the operator's view of sluice, against real
 * redis-servers and the real binary: `sluice pending`, `sluice stats`,
 * `sluice workers`, the supervisor's /metrics and /healthz, the shell
 * scripts, docker-compose.yml, and `make install` with an out-of-tree
 * worker built against the installed library.
 *
 * Every test builds a known state first (a stalled consumer holding
 * pending entries it took with XREADGROUP, a paced producer with a known
 * arrival rate, N entries through the noop handler) and asserts exact
 * numbers where Redis makes them exact, and bands that cannot be met by
 * accident where they are rates.
 *
 * The /metrics output is checked with a Prometheus text-format checker
 * written here (and tested here on broken texts, so it is known to fail),
 * plus `promtool check metrics` when Debian's prometheus package is
 * installed. Tools that may be missing (shellcheck, promtool,
 * docker-compose) make their checks skip with a message, never pass
 * silently.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <hiredis.h>
#include <jansson.h>

#include "sluice.h"
#include "harness.h"

#define MAXTRACKED 16             /* processes a test may leave running */
#define MAXARGS 48                /* words of one command run by run_cmd() */

static struct sl_test_redis srv;  /* the TCase's server (unchecked fixture) */
static redisContext *rc;          /* this test's connection (checked fixture) */
static char *tmp;                 /* this test's scratch directory */
static char host[256];            /* gethostname(): the prefix of consumer names */
static pid_t tracked[MAXTRACKED]; /* processes to kill in teardown */

/* ---------------------------------------------------------------------
 * Processes
 * ------------------------------------------------------------------ */

/* Remembers pid so the teardown kills it if the test does not stop it. */
static void track(pid_t pid)
{
    int i;

    for (i = 0; i < MAXTRACKED; i++)
        if (tracked[i] == 0) {
            tracked[i] = pid;
            return;
        }
    ck_abort_msg("too many processes to track");
}

/* Forgets pid (the test stopped it itself). */
static void untrack(pid_t pid)
{
    int i;

    for (i = 0; i < MAXTRACKED; i++)
        if (tracked[i] == pid)
            tracked[i] = 0;
}

/* Kills every tracked process (SIGKILL; its children die with it) and
 * reaps it. */
static void kill_tracked(void)
{
    int i;

    for (i = 0; i < MAXTRACKED; i++)
        if (tracked[i] > 0) {
            sl_test_kill(tracked[i], SIGKILL);
            sl_test_wait_exit(tracked[i], 5000, NULL);
            tracked[i] = 0;
        }
}

/* What run_cmd() saw. */
struct out {
    int code;                     /* exit code; 128+N for signal N */
    char *out;                    /* standard output (new) */
    char *err;                    /* standard error (new) */
};

/* Frees the texts of o. */
static void out_free(struct out *o)
{
    free(o->out);
    free(o->err);
    o->out = o->err = NULL;
}

/* Runs argv (searched in PATH) with stdout and stderr captured separately
 * and stdin from `in` (NULL: /dev/null), with the environment changes of
 * env applied in the child only ("NAME=value" sets, "-NAME" unsets;
 * NULL-terminated, may be NULL). When argv[0] is the binary under test,
 * SLUICE_WRAP's words go in front (valgrind in `make valgrind`). Waits up
 * to timeout_ms (scaled); a command that does not finish by then is
 * killed and fails the test. Returns the captured result (free with
 * out_free()). */
static struct out run_env(const char *const argv[], const char *const env[], const char *in,
                          int timeout_ms)
{
    char opath[600], epath[600], wrapbuf[512];
    const char *args[MAXARGS + 1];
    const char *wrap = getenv("SLUICE_WRAP");
    struct out o = { -1, NULL, NULL };
    int n = 0, i, status = 0;
    int ofd, efd, ifd;
    pid_t pid;

    if (wrap != NULL && *wrap != '\0' && strcmp(argv[0], sl_test_bin()) == 0) {
        char *save = NULL, *w;
        snprintf(wrapbuf, sizeof(wrapbuf), "%s", wrap);
        for (w = strtok_r(wrapbuf, " ", &save); w != NULL && n < MAXARGS / 2;
             w = strtok_r(NULL, " ", &save))
            args[n++] = w;
    }
    for (i = 0; argv[i] != NULL; i++) {
        ck_assert_int_lt(n, MAXARGS);
        args[n++] = argv[i];
    }
    args[n] = NULL;
    snprintf(opath, sizeof(opath), "%s/run.out", tmp);
    snprintf(epath, sizeof(epath), "%s/run.err", tmp);
    ofd = open(opath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    efd = open(epath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ifd = open(in != NULL ? in : "/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_msg(ofd >= 0 && efd >= 0 && ifd >= 0, "cannot open capture files: %s", strerror(errno));
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (dup2(ifd, 0) < 0 || dup2(ofd, 1) < 0 || dup2(efd, 2) < 0)
            _exit(127);
        signal(SIGPIPE, SIG_DFL);
        for (i = 0; env != NULL && env[i] != NULL; i++) {
            if (env[i][0] == '-')
                unsetenv(env[i] + 1);
            else
                putenv((char *)env[i]);
        }
        execvp(args[0], (char *const *)args);
        dprintf(2, "cannot exec %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    close(ofd);
    close(efd);
    close(ifd);
    if (!sl_test_wait_exit(pid, timeout_ms, &status)) {
        sl_test_kill(pid, SIGKILL);
        sl_test_wait_exit(pid, 5000, NULL);
        ck_abort_msg("%s did not finish within %d ms", argv[0], timeout_ms);
    }
    o.code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
    o.out = sl_test_read_file(opath);
    o.err = sl_test_read_file(epath);
    ck_assert_ptr_nonnull(o.out);
    ck_assert_ptr_nonnull(o.err);
    return o;
}

/* run_env() with no environment changes, stdin from /dev/null and a 20 s
 * deadline. */
static struct out run(const char *const argv[])
{
    return run_env(argv, NULL, NULL, 20000);
}

/* Returns 1 when prog can be found in PATH. */
static int have(const char *prog)
{
    const char *const argv[] = { "/bin/sh", "-c", "command -v \"$0\" >/dev/null 2>&1", prog, NULL };
    struct out o = run(argv);
    int ok = o.code == 0;

    out_free(&o);
    return ok;
}

/* Returns how many times needle occurs in the file at path (0 when it
 * cannot be read). */
static int file_count(const char *path, const char *needle)
{
    char *s = sl_test_read_file(path);
    const char *p;
    int n = 0;

    for (p = s; p != NULL && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(s);
    return n;
}

/* Returns the number that follows the last occurrence of needle in the
 * file at path, or -1 when there is none. */
static long long file_last_number(const char *path, const char *needle)
{
    char *s = sl_test_read_file(path);
    const char *p, *last = NULL;
    long long v = -1;

    for (p = s; p != NULL && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        last = p;
    if (last != NULL)
        v = strtoll(last + strlen(needle), NULL, 10);
    free(s);
    return v;
}

/* Returns a loopback TCP port nothing listens on (bound, then released). */
static int closed_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(fd, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ---------------------------------------------------------------------
 * The pool under test
 * ------------------------------------------------------------------ */

/* One `sluice run`. */
struct pool {
    pid_t pid;                    /* the supervisor */
    char cfg[600];                /* its configuration file */
    char log[600];                /* its stdout and stderr */
    int port;                     /* metrics port, 0 when disabled */
};

/* Writes a configuration for the harness server with short timings:
 * `workers` is the JSON text inside "workers": [...], `extra` more
 * "defaults" keys (text starting with a comma, or ""), and metrics on a
 * free loopback port when `metrics` is set. Returns the path in buf. */
static const char *write_config(char *buf, size_t len, const char *name, const char *workers,
                                const char *extra, int metrics)
{
    snprintf(buf, len, "%s/%s.json", tmp, name);
    ck_assert_int_eq(sl_test_write_file(buf,
        "{\"redis\": {\"url\": \"%s\", \"connect_timeout_ms\": 1000, \"command_timeout_ms\": 2000},\n"
        " \"defaults\": {\"block_ms\": 200, \"heartbeat_ms\": 100, \"reclaim_idle_ms\": 2000,\n"
        "   \"reclaim_interval_ms\": 300, \"retry_backoff_ms\": [50, 400],\n"
        "   \"shutdown_timeout_ms\": 3000, \"max_deliveries\": 5%s},\n"
        " \"workers\": [%s],\n"
        " \"metrics\": {\"listen\": %s}}\n",
        srv.url, extra, workers, metrics ? "\"127.0.0.1:0\"" : "null"), 0);
    return buf;
}

/* Starts `sluice run` on a configuration made by write_config() and waits
 * until `children` workers log event=running (and, with metrics, until
 * the metrics port is logged). */
static void pool_start(struct pool *p, const char *workers, const char *extra, int metrics,
                       int children)
{
    const char *argv[] = { sl_test_bin(), "run", "-c", p->cfg, NULL };

    memset(p, 0, sizeof(*p));
    write_config(p->cfg, sizeof(p->cfg), "pool", workers, extra, metrics);
    snprintf(p->log, sizeof(p->log), "%s/pool.log", tmp);
    p->pid = sl_test_spawn(argv, p->log);
    ck_assert_int_gt(p->pid, 0);
    track(p->pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, file_count(p->log, "event=running ") >= children ||
                                     !sl_test_pid_alive(p->pid));
    ck_assert_msg(sl_test_pid_alive(p->pid), "the pool exited; see %s", p->log);
    if (metrics) {
        p->port = (int)file_last_number(p->log, "event=metrics_listening addr=127.0.0.1:");
        ck_assert_int_gt(p->port, 0);
    }
}

/* Stops the pool with SIGTERM and checks that it exits 0. */
static void pool_stop(struct pool *p)
{
    int status = 0;

    sl_test_kill(p->pid, SIGTERM);
    ck_assert_msg(sl_test_wait_exit(p->pid, 10000, &status), "the pool did not stop");
    untrack(p->pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the pool exited with status 0x%x; see %s", status, p->log);
    p->pid = 0;
}

/* Returns the pid of the child named <host>:<suffix> ("noop:0"), from
 * its last child_started line, or -1. */
static pid_t child_pid(const struct pool *p, const char *suffix)
{
    char needle[512];

    snprintf(needle, sizeof(needle), "event=child_started consumer=%s:%s child=", host, suffix);
    return (pid_t)file_last_number(p->log, needle);
}

/* Returns pending + lag of a group (what is left to do), or -1 when the
 * group does not exist yet. */
static long long group_backlog(const char *stream, const char *group)
{
    redisReply *r = sl_test_cmd(rc, "XINFO GROUPS %s", stream);
    long long left = -1;
    size_t i, j;

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *g = r->element[i];
        long long pe = 0, la = 0;
        int mine = 0;
        for (j = 0; j + 1 < g->elements; j += 2) {
            const char *k = g->element[j]->str;
            const redisReply *v = g->element[j + 1];
            if (!strcmp(k, "name"))
                mine = !strcmp(v->str, group);
            else if (!strcmp(k, "pending"))
                pe = v->integer;
            else if (!strcmp(k, "lag"))
                la = v->type == REDIS_REPLY_INTEGER ? v->integer : 1000000;
        }
        if (mine)
            left = pe + la;
    }
    freeReplyObject(r);
    return left;
}

/* Returns the number of keys matching pattern. */
static size_t count_keys(const char *pattern)
{
    redisReply *r = sl_test_cmd(rc, "KEYS %s", pattern);
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;

    freeReplyObject(r);
    return n;
}

/* ---------------------------------------------------------------------
 * HTTP
 * ------------------------------------------------------------------ */

/* One HTTP response. */
struct http {
    int status;                   /* status code, -1 when no answer */
    char *head;                   /* status line and headers (new) */
    char *body;                   /* body (new) */
};

/* Frees the texts of h. */
static void http_free(struct http *h)
{
    free(h->head);
    free(h->body);
    h->head = h->body = NULL;
}

/* Connects a TCP socket to 127.0.0.1:port with 10 s send and receive
 * timeouts. Returns the fd, or -1 when the connection is refused. */
static int http_connect(int port)
{
    struct sockaddr_in a;
    struct timeval tv = { 10, 0 };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends the len bytes of req (a whole HTTP request, which should ask the
 * server to close) to 127.0.0.1:port, then `extra` more zero bytes (a
 * body sent in 64 KiB writes; the server may close before it has them
 * all), and reads to the end. Gives up after 10 s. Status -1: no
 * answer. */
static struct http http_request(int port, const char *req, size_t len, size_t extra)
{
    struct http h = { -1, NULL, NULL };
    static const char zeros[65536];
    char *buf = NULL, *sep;
    size_t cap = 0;
    ssize_t n;
    int fd = http_connect(port);

    if (fd < 0)
        return h;
    /* MSG_NOSIGNAL: a server that closes early makes this fail with EPIPE
     * rather than kill the test with SIGPIPE. */
    if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
        close(fd);
        return h;
    }
    while (extra > 0) {
        n = send(fd, zeros, extra < sizeof(zeros) ? extra : sizeof(zeros), MSG_NOSIGNAL);
        if (n <= 0)
            break;              /* closed by the server: read what it said */
        extra -= (size_t)n;
    }
    len = 0;
    for (;;) {
        if (cap - len < 4096) {
            cap = cap * 2 + 8192;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (buf == NULL)
        return h;
    buf[len] = '\0';
    if ((sep = strstr(buf, "\r\n\r\n")) != NULL && sscanf(buf, "HTTP/1.%*d %d", &h.status) == 1) {
        h.body = strdup(sep + 4);
        *sep = '\0';
        h.head = strdup(buf);
    } else {
        h.status = -1;
    }
    free(buf);
    return h;
}

/* GETs path from 127.0.0.1:port with HTTP/1.0 over a plain socket and
 * reads to the end (the server closes). Gives up after 10 s. */
static struct http http_get(int port, const char *path)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);

    return http_request(port, req, (size_t)n, 0);
}

/* Returns the value of the sample `series` (name and label set exactly
 * as written, e.g. sluice_acked_total{worker="noop",...}) in an
 * exposition, or -1 when there is no such sample. */
static double sample_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

/* ---------------------------------------------------------------------
 * A Prometheus text-format (0.0.4) checker
 *
 * Stricter than the format where sluice promises more: every family has
 * HELP and TYPE before its samples. The rules checked: lines end in \n;
 * HELP/TYPE name a valid metric name, at most once per family, before
 * its samples; TYPE is a known type; all lines of a family are
 * contiguous; metric and label names have the required syntax; label
 * values are quoted with only \\ \" \n escapes; values are Go floats
 * (or +Inf, -Inf, NaN); an optional timestamp is an integer; no series
 * appears twice; counters are >= 0; every histogram series has buckets
 * with increasing `le`, cumulative counts, a +Inf bucket equal to its
 * _count, and a _sum.
 * ------------------------------------------------------------------ */

#define PROM_MAXFAM 128
#define PROM_MAXSERIES 2048
#define PROM_MAXHIST 128

/* One metric family seen so far. */
struct prom_family {
    char name[128];               /* family name */
    char type[32];                /* "" until TYPE */
    int help;                     /* HELP seen */
    int samples;                  /* samples seen */
    int closed;                   /* another family began after this one */
};

/* One histogram series (labels without le). */
struct prom_hist {
    char key[1024];               /* family + canonical labels */
    double last_le;               /* highest le so far */
    double last_count;            /* cumulative count at last_le */
    int nbuckets;                 /* buckets seen */
    int inf;                      /* +Inf bucket seen */
    double inf_count;             /* its value */
    int has_count, has_sum;       /* _count and _sum seen */
    double count;                 /* _count value */
};

/* The checker's state for one text. */
struct prom {
    struct prom_family fam[PROM_MAXFAM];
    int nfam;
    int cur;                      /* index of the family being read, -1 none */
    char *series[PROM_MAXSERIES]; /* canonical series seen (owned) */
    int nseries;
    struct prom_hist hist[PROM_MAXHIST];
    int nhist;
};

/* Writes a printf-style reason into why (wl bytes; cut when longer) and
 * returns -1, for `return failf(...)`. */
static int failf(char *why, size_t wl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(char *why, size_t wl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, wl, fmt, ap);
    va_end(ap);
    return -1;
}

/* Returns 1 when s[0..n) is a valid metric name. */
static int prom_metric_name(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* Returns 1 when s[0..n) is a valid label name (no reserved __ prefix). */
static int prom_label_name(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || (n >= 2 && s[0] == '_' && s[1] == '_'))
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* Parses a sample value (Go float syntax, or +Inf/-Inf/Inf/NaN) from
 * s[0..n). Returns 0 and the value, or -1. */
static int prom_float(const char *s, size_t n, double *v)
{
    char buf[64], *end;
    size_t i;

    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!strcmp(buf, "+Inf") || !strcmp(buf, "Inf")) {
        *v = INFINITY;
        return 0;
    }
    if (!strcmp(buf, "-Inf")) {
        *v = -INFINITY;
        return 0;
    }
    if (!strcmp(buf, "NaN")) {
        *v = NAN;
        return 0;
    }
    for (i = 0; i < n; i++)
        if (!strchr("0123456789.eE+-", buf[i]))
            return -1;
    errno = 0;
    *v = strtod(buf, &end);
    return *end == '\0' && errno == 0 ? 0 : -1;
}

/* Returns the family index of name, adding it when new. */
static int prom_family(struct prom *pr, const char *name, size_t n)
{
    int i;

    for (i = 0; i < pr->nfam; i++)
        if (strlen(pr->fam[i].name) == n && !strncmp(pr->fam[i].name, name, n))
            return i;
    if (pr->nfam >= PROM_MAXFAM || n >= sizeof(pr->fam[0].name))
        return -1;
    memset(&pr->fam[pr->nfam], 0, sizeof(pr->fam[0]));
    memcpy(pr->fam[pr->nfam].name, name, n);
    return pr->nfam++;
}

/* Makes family f the current one: the one before it is closed, and a
 * closed family may not come back. Returns 0 or -1 with why. */
static int prom_enter(struct prom *pr, int f, char *why, size_t wl)
{
    if (pr->cur == f)
        return 0;
    if (pr->fam[f].closed) {
        failf(why, wl, "family %s is not contiguous", pr->fam[f].name);
        return -1;
    }
    if (pr->cur >= 0)
        pr->fam[pr->cur].closed = 1;
    pr->cur = f;
    return 0;
}

/* Returns the histogram series of key, adding it when new. */
static struct prom_hist *prom_hist(struct prom *pr, const char *key)
{
    int i;

    for (i = 0; i < pr->nhist; i++)
        if (!strcmp(pr->hist[i].key, key))
            return &pr->hist[i];
    if (pr->nhist >= PROM_MAXHIST)
        return NULL;
    memset(&pr->hist[pr->nhist], 0, sizeof(pr->hist[0]));
    snprintf(pr->hist[pr->nhist].key, sizeof(pr->hist[0].key), "%s", key);
    pr->hist[pr->nhist].last_le = -INFINITY;
    return &pr->hist[pr->nhist++];
}

/* One label of a sample. */
struct prom_label {
    char name[64];
    char value[256];
};

/* Compares labels by name, for the canonical form of a series. */
static int prom_label_cmp(const void *a, const void *b)
{
    return strcmp(((const struct prom_label *)a)->name, ((const struct prom_label *)b)->name);
}

/* Checks one sample line. Returns 0 or -1 with why. */
static int prom_sample(struct prom *pr, const char *line, size_t len, char *why, size_t wl)
{
    struct prom_label lab[16];
    int nlab = 0, f, i, is_hist = 0;
    size_t n = 0, p;
    char key[1024], hkey[1024], base[128];
    const char *suffix = "";
    double v, le = 0;
    int has_le = 0;
    struct prom_hist *h;

    while (n < len && line[n] != '{' && line[n] != ' ')
        n++;
    if (!prom_metric_name(line, n)) {
        failf(why, wl, "bad metric name in \"%.*s\"", (int)len, line);
        return -1;
    }
    p = n;
    if (p < len && line[p] == '{') {
        p++;
        while (p < len && line[p] != '}') {
            size_t s = p, vs;
            char *o;
            if (nlab >= 16) {
                failf(why, wl, "too many labels");
                return -1;
            }
            while (p < len && line[p] != '=')
                p++;
            if (p >= len || !prom_label_name(line + s, p - s) || p - s >= sizeof(lab[0].name)) {
                failf(why, wl, "bad label name in \"%.*s\"", (int)len, line);
                return -1;
            }
            memcpy(lab[nlab].name, line + s, p - s);
            lab[nlab].name[p - s] = '\0';
            if (++p >= len || line[p] != '"') {
                failf(why, wl, "label value not quoted in \"%.*s\"", (int)len, line);
                return -1;
            }
            p++;
            o = lab[nlab].value;
            vs = 0;
            while (p < len && line[p] != '"') {
                char c = line[p];
                if (c == '\\') {
                    if (p + 1 >= len || !strchr("\\\"n", line[p + 1])) {
                        failf(why, wl, "bad escape in label value of \"%.*s\"", (int)len, line);
                        return -1;
                    }
                    c = line[p + 1] == 'n' ? '\n' : line[p + 1];
                    p++;
                }
                if (vs + 1 < sizeof(lab[0].value))
                    o[vs++] = c;
                p++;
            }
            o[vs] = '\0';
            if (p >= len) {
                failf(why, wl, "unterminated label value in \"%.*s\"", (int)len, line);
                return -1;
            }
            p++;
            for (i = 0; i < nlab; i++)
                if (!strcmp(lab[i].name, lab[nlab].name)) {
                    failf(why, wl, "label %s twice in \"%.*s\"", lab[i].name, (int)len, line);
                    return -1;
                }
            nlab++;
            if (p < len && line[p] == ',')
                p++;
            else if (p >= len || line[p] != '}') {
                failf(why, wl, "expected , or } in \"%.*s\"", (int)len, line);
                return -1;
            }
        }
        if (p >= len) {
            failf(why, wl, "unterminated label set in \"%.*s\"", (int)len, line);
            return -1;
        }
        p++;
    }
    if (p >= len || line[p] != ' ') {
        failf(why, wl, "expected a space before the value in \"%.*s\"", (int)len, line);
        return -1;
    }
    while (p < len && line[p] == ' ')
        p++;
    {
        size_t s = p;
        while (p < len && line[p] != ' ')
            p++;
        if (prom_float(line + s, p - s, &v) < 0) {
            failf(why, wl, "bad value in \"%.*s\"", (int)len, line);
            return -1;
        }
        while (p < len && line[p] == ' ')
            p++;
        if (p < len) {
            s = p;
            if (line[p] == '-')
                p++;
            while (p < len && line[p] >= '0' && line[p] <= '9')
                p++;
            if (p != len || p == s) {
                failf(why, wl, "bad timestamp in \"%.*s\"", (int)len, line);
                return -1;
            }
        }
    }

    /* The family: a histogram's _bucket/_sum/_count belong to it. */
    snprintf(base, sizeof(base), "%.*s", (int)n, line);
    f = -1;
    {
        static const char *const sfx[] = { "_bucket", "_sum", "_count" };
        for (i = 0; i < 3 && f < 0; i++) {
            size_t sl = strlen(sfx[i]);
            int k;
            if (n <= sl || strcmp(base + n - sl, sfx[i]) != 0)
                continue;
            for (k = 0; k < pr->nfam; k++)
                if (strlen(pr->fam[k].name) == n - sl && !strncmp(pr->fam[k].name, base, n - sl) &&
                    (!strcmp(pr->fam[k].type, "histogram") ||
                     (!strcmp(pr->fam[k].type, "summary") && i > 0))) {
                    f = k;
                    suffix = sfx[i];
                    is_hist = !strcmp(pr->fam[k].type, "histogram");
                }
        }
    }
    if (f < 0 && (f = prom_family(pr, base, n)) < 0) {
        failf(why, wl, "too many families");
        return -1;
    }
    if (prom_enter(pr, f, why, wl) < 0)
        return -1;
    if (!pr->fam[f].help || pr->fam[f].type[0] == '\0') {
        failf(why, wl, "family %s has no HELP or TYPE before its samples", pr->fam[f].name);
        return -1;
    }
    pr->fam[f].samples++;
    if (!strcmp(pr->fam[f].type, "counter") && (isnan(v) || v < 0)) {
        failf(why, wl, "counter %s is %g", base, v);
        return -1;
    }

    /* The canonical series: name and labels sorted by name. */
    qsort(lab, (size_t)nlab, sizeof(lab[0]), prom_label_cmp);
    snprintf(key, sizeof(key), "%s{", base);
    snprintf(hkey, sizeof(hkey), "%s{", pr->fam[f].name);
    for (i = 0; i < nlab; i++) {
        size_t kl = strlen(key), hl = strlen(hkey);
        if (snprintf(key + kl, sizeof(key) - kl, "%s=\"%s\",", lab[i].name, lab[i].value) >=
            (int)(sizeof(key) - kl)) {
            failf(why, wl, "series too long in %s", base);
            return -1;
        }
        if (is_hist && !strcmp(lab[i].name, "le")) {
            has_le = 1;
            if (prom_float(lab[i].value, strlen(lab[i].value), &le) < 0) {
                failf(why, wl, "bad le=\"%s\" in %s", lab[i].value, base);
                return -1;
            }
            continue;
        }
        if (snprintf(hkey + hl, sizeof(hkey) - hl, "%s=\"%s\",", lab[i].name, lab[i].value) >=
            (int)(sizeof(hkey) - hl)) {
            failf(why, wl, "series too long in %s", base);
            return -1;
        }
    }
    for (i = 0; i < pr->nseries; i++)
        if (!strcmp(pr->series[i], key)) {
            failf(why, wl, "series %s appears twice", key);
            return -1;
        }
    if (pr->nseries < PROM_MAXSERIES)
        pr->series[pr->nseries++] = strdup(key);

    if (!is_hist)
        return 0;
    if ((h = prom_hist(pr, hkey)) == NULL) {
        failf(why, wl, "too many histograms");
        return -1;
    }
    if (!strcmp(suffix, "_bucket")) {
        if (!has_le) {
            failf(why, wl, "bucket of %s without le", hkey);
            return -1;
        }
        if (h->inf || !(le > h->last_le)) {
            failf(why, wl, "buckets of %s not in increasing le order", hkey);
            return -1;
        }
        if (h->nbuckets > 0 && v < h->last_count) {
            failf(why, wl, "buckets of %s are not cumulative (le=%g: %g < %g)", hkey, le, v,
                     h->last_count);
            return -1;
        }
        h->last_le = le;
        h->last_count = v;
        h->nbuckets++;
        if (isinf(le)) {
            h->inf = 1;
            h->inf_count = v;
        }
    } else if (!strcmp(suffix, "_count")) {
        h->has_count = 1;
        h->count = v;
    } else {
        h->has_sum = 1;
    }
    return 0;
}

/* Checks a whole exposition. Returns 0, or -1 with the first problem in
 * why. */
static int prom_check(const char *text, char *why, size_t wl)
{
    static struct prom pr;
    const char *line = text;
    int rc = 0, i;

    memset(&pr, 0, sizeof(pr));
    pr.cur = -1;
    if (*text == '\0' || text[strlen(text) - 1] != '\n') {
        failf(why, wl, "the text does not end with a newline");
        return -1;
    }
    while (*line != '\0' && rc == 0) {
        const char *nl = strchr(line, '\n');
        size_t len = (size_t)(nl - line);

        if (len == 0) {
            /* empty lines are ignored */
        } else if (len > 7 && (!strncmp(line, "# HELP ", 7) || !strncmp(line, "# TYPE ", 7))) {
            int is_help = line[2] == 'H';
            const char *name = line + 7;
            size_t n = 0;
            int f;
            while (n < len - 7 && name[n] != ' ')
                n++;
            if (!prom_metric_name(name, n) || (f = prom_family(&pr, name, n)) < 0) {
                failf(why, wl, "bad name in \"%.*s\"", (int)len, line);
                rc = -1;
            } else if (prom_enter(&pr, f, why, wl) < 0) {
                rc = -1;
            } else if (pr.fam[f].samples > 0) {
                failf(why, wl, "%s after samples of %s", is_help ? "HELP" : "TYPE", pr.fam[f].name);
                rc = -1;
            } else if (is_help) {
                if (pr.fam[f].help++) {
                    failf(why, wl, "second HELP for %s", pr.fam[f].name);
                    rc = -1;
                }
            } else {
                char type[32];
                size_t tl = len - 7 - n - 1;
                if (n + 8 > len || tl == 0 || tl >= sizeof(type)) {
                    failf(why, wl, "bad TYPE line \"%.*s\"", (int)len, line);
                    rc = -1;
                } else {
                    memcpy(type, name + n + 1, tl);
                    type[tl] = '\0';
                    if (pr.fam[f].type[0] != '\0') {
                        failf(why, wl, "second TYPE for %s", pr.fam[f].name);
                        rc = -1;
                    } else if (strcmp(type, "counter") && strcmp(type, "gauge") &&
                               strcmp(type, "histogram") && strcmp(type, "summary") &&
                               strcmp(type, "untyped")) {
                        failf(why, wl, "unknown type \"%s\" for %s", type, pr.fam[f].name);
                        rc = -1;
                    } else {
                        snprintf(pr.fam[f].type, sizeof(pr.fam[f].type), "%s", type);
                    }
                }
            }
        } else if (line[0] == '#') {
            /* a comment */
        } else {
            rc = prom_sample(&pr, line, len, why, wl);
        }
        line = nl + 1;
    }
    for (i = 0; i < pr.nhist && rc == 0; i++) {
        const struct prom_hist *h = &pr.hist[i];
        if (!h->inf || !h->has_count || !h->has_sum) {
            failf(why, wl, "histogram %s lacks %s", h->key,
                     !h->inf ? "a +Inf bucket" : !h->has_count ? "_count" : "_sum");
            rc = -1;
        } else if (h->inf_count != h->count) {
            failf(why, wl, "histogram %s: +Inf bucket %g != _count %g", h->key, h->inf_count,
                     h->count);
            rc = -1;
        }
    }
    for (i = 0; i < pr.nseries; i++)
        free(pr.series[i]);
    return rc;
}

/* Fails the test unless text is a valid exposition; also runs
 * `promtool check metrics` on it when promtool is installed. */
static void assert_exposition(const char *text)
{
    static int promtool = -1;
    char why[512] = "", path[600];
    const char *const argv[] = { "promtool", "check", "metrics", NULL };
    struct out o;

    ck_assert_msg(prom_check(text, why, sizeof(why)) == 0, "invalid exposition: %s\n%.2000s", why, text);
    if (promtool < 0) {
        promtool = have("promtool");
        if (!promtool)
            fprintf(stderr, "check_ops: promtool not installed (Debian package prometheus): "
                            "/metrics checked by the built-in checker only\n");
    }
    if (!promtool)
        return;
    snprintf(path, sizeof(path), "%s/metrics.txt", tmp);
    ck_assert_int_eq(sl_test_write_file(path, "%s", text), 0);
    o = run_env(argv, NULL, path, 20000);
    ck_assert_msg(o.code == 0, "promtool check metrics: exit %d: %s%s", o.code, o.out, o.err);
    out_free(&o);
}

/* Scrapes /metrics, checks the status, content type and format, and
 * returns the body (new). */
static char *scrape(const struct pool *p)
{
    struct http h = http_get(p->port, "/metrics");
    char *body;

    ck_assert_msg(h.status == 200, "/metrics answered %d", h.status);
    ck_assert_msg(strstr(h.head, "Content-Type: text/plain; version=0.0.4") != NULL,
                  "/metrics content type: %s", h.head);
    assert_exposition(h.body);
    body = h.body;
    h.body = NULL;
    http_free(&h);
    return body;
}

/* Returns the value of metric name{worker,stream,group} in a fresh
 * scrape. */
static double scrape_value(const struct pool *p, const char *name, const char *worker,
                           const char *stream, const char *group)
{
    char series[512];
    char *text = scrape(p);
    double v;

    snprintf(series, sizeof(series), "%s{worker=\"%s\",stream=\"%s\",group=\"%s\"}", name, worker,
             stream, group);
    v = sample_value(text, series);
    free(text);
    return v;
}

/* ---------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------ */

/* Parses text as one JSON document (new), failing the test otherwise. */
static json_t *parse_json(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);

    ck_assert_msg(j != NULL, "not JSON (%s, line %d): %s", e.text, e.line, text);
    return j;
}

/* Returns the integer member key of o, failing unless it is an integer. */
static long long jint(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    ck_assert_msg(json_is_integer(v), "\"%s\" is not an integer", key);
    return json_integer_value(v);
}

/* Returns the number member key of o (integer or real). */
static double jnum(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    ck_assert_msg(json_is_number(v), "\"%s\" is not a number", key);
    return json_number_value(v);
}

/* Returns the string member key of o, failing unless it is a string. */
static const char *jstr(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    ck_assert_msg(json_is_string(v), "\"%s\" is not a string", key);
    return json_string_value(v);
}

/* ---------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------ */

/* Starts the TCase's redis-server (unchecked fixture, runner process). */
static void server_up(void)
{
    ck_assert_msg(sl_test_redis_start(&srv, NULL) == 0, "redis-server did not start");
}

/* Stops the TCase's server, whichever process last (re)started it. */
static void server_down(void)
{
    sl_test_redis_cleanup(&srv);
}

/* Connects, empties the server, and makes a scratch directory. */
static void test_up(void)
{
    memset(tracked, 0, sizeof(tracked));
    ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
    host[sizeof(host) - 1] = '\0';
    tmp = sl_test_tmpdir();
    ck_assert_ptr_nonnull(tmp);
    rc = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(rc);
    freeReplyObject(sl_test_cmd(rc, "FLUSHALL"));
}

/* Kills whatever the test left running and removes its files. */
static void test_down(void)
{
    kill_tracked();
    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
    if (tmp != NULL)
        sl_test_rmtree(tmp);
    free(tmp);
    tmp = NULL;
}

/* ---------------------------------------------------------------------
 * sluice pending
 * ------------------------------------------------------------------ */

/* The IDs of the stalled state below. */
static const char *const sid[6] = { "1-1", "1-2", "1-3", "1-4", "1-5", "1-6" };

/* Builds a known pending state in stream "jobs", group "g": six entries;
 * consumer stalled-a took 1-1..1-3 and stalled-b 1-4..1-5 with
 * XREADGROUP and never acked; 1-6 is undelivered (lag 1). XCLAIM then
 * sets idle times and delivery counts exactly:
 *   1-1 stalled-a idle 900 s, 4 deliveries
 *   1-2 stalled-a idle 600 s, 2 deliveries
 *   1-3 stalled-a fresh,      1 delivery
 *   1-4 stalled-b idle 700 s, 1 delivery
 *   1-5 stalled-b fresh,      1 delivery */
static void make_stalled(void)
{
    redisReply *r;
    int i;

    for (i = 0; i < 6; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD jobs %s type job data {\"n\":%d}", sid[i], i));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs g 0"));
    r = sl_test_cmd(rc, "XREADGROUP GROUP g stalled-a COUNT 3 STREAMS jobs >");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->element[0]->element[1]->elements, 3);
    freeReplyObject(r);
    r = sl_test_cmd(rc, "XREADGROUP GROUP g stalled-b COUNT 2 STREAMS jobs >");
    ck_assert_int_eq(r->element[0]->element[1]->elements, 2);
    freeReplyObject(r);
    freeReplyObject(sl_test_cmd(rc, "XCLAIM jobs g stalled-a 0 1-1 IDLE 900000 RETRYCOUNT 4 JUSTID"));
    freeReplyObject(sl_test_cmd(rc, "XCLAIM jobs g stalled-a 0 1-2 IDLE 600000 RETRYCOUNT 2 JUSTID"));
    freeReplyObject(sl_test_cmd(rc, "XCLAIM jobs g stalled-b 0 1-4 IDLE 700000 JUSTID"));
}

/* The expected consumer, deliveries and base idle (ms) of each entry. */
static const struct {
    const char *consumer;
    long long deliveries;
    long long idle;
} stalled_want[5] = {
    { "stalled-a", 4, 900000 }, { "stalled-a", 2, 600000 }, { "stalled-a", 1, 0 },
    { "stalled-b", 1, 700000 }, { "stalled-b", 1, 0 },
};

/* Fails unless idle is what make_stalled() set for entry i, give or take
 * the time the test has taken since. */
static void assert_idle(int i, long long idle)
{
    long long lo = stalled_want[i].idle, hi = lo + 60000LL * sl_test_slow_factor();

    ck_assert_msg(idle >= lo && idle <= hi, "entry %s: idle %lld not in [%lld, %lld]", sid[i],
                  idle, lo, hi);
}

/* Runs `sluice pending ARGS... --json` and returns the parsed array. */
static json_t *pending_json(const char *a1, const char *a2, const char *a3, const char *a4,
                            const char *a5, const char *a6)
{
    const char *argv[] = { sl_test_bin(), "pending", "--redis", srv.url, "--json",
                           a1, a2, a3, a4, a5, a6, NULL };
    struct out o = run(argv);
    json_t *j;

    ck_assert_msg(o.code == 0, "sluice pending exit %d: %s", o.code, o.err);
    j = parse_json(o.out);
    ck_assert(json_is_array(j));
    out_free(&o);
    return j;
}

/* Fails unless entries (a JSON array) are exactly the stalled entries
 * whose indexes are listed in want (n of them), with their consumers,
 * delivery counts and idle times. */
static void assert_entries(const json_t *entries, const int *want, int n)
{
    int i;

    ck_assert_msg(json_array_size(entries) == (size_t)n, "%zu entries, expected %d",
                  json_array_size(entries), n);
    for (i = 0; i < n; i++) {
        const json_t *e = json_array_get(entries, (size_t)i);
        ck_assert_str_eq(jstr(e, "id"), sid[want[i]]);
        ck_assert_str_eq(jstr(e, "consumer"), stalled_want[want[i]].consumer);
        ck_assert_int_eq(jint(e, "deliveries"), stalled_want[want[i]].deliveries);
        assert_idle(want[i], jint(e, "idle_ms"));
    }
}

/* --json with a stalled consumer: the summary (count, lowest and highest
 * ID), the consumers with their exact counts, and every pending entry
 * with its consumer, delivery count and idle time. */
START_TEST(test_ops_pending_json_exact)
{
    static const int all[] = { 0, 1, 2, 3, 4 };
    json_t *doc, *g, *cons;

    make_stalled();
    doc = pending_json("jobs", "g", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(json_array_size(doc), 1);
    g = json_array_get(doc, 0);
    ck_assert_str_eq(jstr(g, "stream"), "jobs");
    ck_assert_str_eq(jstr(g, "group"), "g");
    ck_assert_int_eq(jint(g, "pending"), 5);
    ck_assert_str_eq(jstr(g, "min_id"), "1-1");
    ck_assert_str_eq(jstr(g, "max_id"), "1-5");
    cons = json_object_get(g, "consumers");
    ck_assert_int_eq(json_array_size(cons), 2);
    ck_assert_str_eq(jstr(json_array_get(cons, 0), "consumer"), "stalled-a");
    ck_assert_int_eq(jint(json_array_get(cons, 0), "pending"), 3);
    ck_assert_str_eq(jstr(json_array_get(cons, 1), "consumer"), "stalled-b");
    ck_assert_int_eq(jint(json_array_get(cons, 1), "pending"), 2);
    assert_entries(json_object_get(g, "entries"), all, 5);
    json_decref(doc);
}
END_TEST

/* --idle keeps only entries idle at least that long, --count caps the
 * list (oldest first), both together, before or after the positionals;
 * the summary and consumer counts never change with the filters. */
START_TEST(test_ops_pending_idle_and_count_filters)
{
    static const int idle650[] = { 0, 3 }, first2[] = { 0, 1 }, first1[] = { 0 };
    static const int idle550[] = { 0, 1, 3 };
    json_t *doc, *g;

    make_stalled();
    doc = pending_json("jobs", "g", "--idle", "650000", NULL, NULL);
    g = json_array_get(doc, 0);
    ck_assert_int_eq(jint(g, "pending"), 5);
    ck_assert_int_eq(json_array_size(json_object_get(g, "consumers")), 2);
    assert_entries(json_object_get(g, "entries"), idle650, 2);
    json_decref(doc);

    doc = pending_json("--count", "2", "jobs", "g", NULL, NULL);
    g = json_array_get(doc, 0);
    ck_assert_int_eq(jint(g, "pending"), 5);
    assert_entries(json_object_get(g, "entries"), first2, 2);
    json_decref(doc);

    doc = pending_json("jobs", "--idle", "550000", "g", "--count", "3");
    assert_entries(json_object_get(json_array_get(doc, 0), "entries"), idle550, 3);
    json_decref(doc);

    doc = pending_json("jobs", "g", "--idle=650000", "--count=1", NULL, NULL);
    assert_entries(json_object_get(json_array_get(doc, 0), "entries"), first1, 1);
    json_decref(doc);

    doc = pending_json("jobs", "g", "--idle", "2000000", NULL, NULL);
    g = json_array_get(doc, 0);
    ck_assert_int_eq(jint(g, "pending"), 5);
    ck_assert_int_eq(json_array_size(json_object_get(g, "entries")), 0);
    json_decref(doc);
}
END_TEST

/* The table: the summary line, one row per consumer and one per entry,
 * with the same numbers as the JSON. */
START_TEST(test_ops_pending_table)
{
    const char *argv[] = { sl_test_bin(), "pending", "jobs", "g", "--redis", srv.url, NULL };
    struct out o;
    char *line, *save = NULL, a[64], b[64];
    long long x, y;
    int nl = 0, ncons = 0, nent = 0;

    make_stalled();
    o = run(argv);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    ck_assert_str_eq(o.err, "");
    for (line = strtok_r(o.out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save), nl++) {
        if (nl == 0) {
            ck_assert_str_eq(line, "stream jobs group g: 5 pending (1-1 .. 1-5)");
        } else if (nl == 1) {
            ck_assert_int_eq(sscanf(line, " %63s %63s", a, b), 2);
            ck_assert_str_eq(a, "CONSUMER");
            ck_assert_str_eq(b, "PENDING");
        } else if (nl <= 3) {
            ck_assert_int_eq(sscanf(line, " %63s %lld", a, &x), 2);
            ck_assert_str_eq(a, nl == 2 ? "stalled-a" : "stalled-b");
            ck_assert_int_eq(x, nl == 2 ? 3 : 2);
            ncons++;
        } else if (nl == 4) {
            ck_assert_msg(strstr(line, "ID") && strstr(line, "IDLE_MS") && strstr(line, "DELIVERIES"),
                          "entry header: %s", line);
        } else {
            ck_assert_int_lt(nent, 5);
            ck_assert_int_eq(sscanf(line, " %63s %63s %lld %lld", a, b, &x, &y), 4);
            ck_assert_str_eq(a, sid[nent]);
            ck_assert_str_eq(b, stalled_want[nent].consumer);
            assert_idle(nent, x);
            ck_assert_int_eq(y, stalled_want[nent].deliveries);
            nent++;
        }
    }
    ck_assert_int_eq(ncons, 2);
    ck_assert_int_eq(nent, 5);
    out_free(&o);
}
END_TEST

/* Without GROUP every group of the stream is shown, in name order: one
 * with the stalled entries and an empty one (null IDs, no rows). */
START_TEST(test_ops_pending_all_groups)
{
    const char *argv[] = { sl_test_bin(), "pending", "jobs", "--redis", srv.url, NULL };
    json_t *doc, *g;
    struct out o;

    make_stalled();
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs idle-group $"));
    doc = pending_json("jobs", NULL, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(json_array_size(doc), 2);
    g = json_array_get(doc, 0);
    ck_assert_str_eq(jstr(g, "group"), "g");
    ck_assert_int_eq(jint(g, "pending"), 5);
    g = json_array_get(doc, 1);
    ck_assert_str_eq(jstr(g, "group"), "idle-group");
    ck_assert_int_eq(jint(g, "pending"), 0);
    ck_assert(json_is_null(json_object_get(g, "min_id")));
    ck_assert(json_is_null(json_object_get(g, "max_id")));
    ck_assert_int_eq(json_array_size(json_object_get(g, "consumers")), 0);
    ck_assert_int_eq(json_array_size(json_object_get(g, "entries")), 0);
    json_decref(doc);

    o = run(argv);
    ck_assert_int_eq(o.code, 0);
    ck_assert_msg(strstr(o.out, "stream jobs group g: 5 pending (1-1 .. 1-5)\n") != NULL, "%s", o.out);
    ck_assert_msg(strstr(o.out, "stream jobs group idle-group: 0 pending\n") != NULL, "%s", o.out);
    out_free(&o);
}
END_TEST

/* Errors name what is wrong, with the exit codes of docs/configuration.md: a
 * missing group or stream and an unreachable server are 1, bad options
 * 2; a stream without groups is no error. */
START_TEST(test_ops_pending_errors)
{
    char url[64];
    const char *nogroup[] = { sl_test_bin(), "pending", "jobs", "nope", "--redis", srv.url, NULL };
    const char *nostream[] = { sl_test_bin(), "pending", "nothere", "--redis", srv.url, NULL };
    const char *bare[] = { sl_test_bin(), "pending", "bare", "--redis", srv.url, NULL };
    const char *count0[] = { sl_test_bin(), "pending", "jobs", "g", "--count", "0", "--redis", srv.url, NULL };
    const char *idleneg[] = { sl_test_bin(), "pending", "jobs", "g", "--idle", "-5", "--redis", srv.url, NULL };
    const char *toomany[] = { sl_test_bin(), "pending", "a", "b", "c", "--redis", srv.url, NULL };
    const char *down[] = { sl_test_bin(), "pending", "jobs", "g", "--redis", url, NULL };
    struct out o;

    make_stalled();
    freeReplyObject(sl_test_cmd(rc, "XADD bare * type t data {}"));
    o = run(nogroup);
    ck_assert_int_eq(o.code, 1);
    ck_assert_msg(strstr(o.err, "NOGROUP") != NULL, "%s", o.err);
    out_free(&o);
    o = run(nostream);
    ck_assert_int_eq(o.code, 1);
    ck_assert_str_eq(o.err, "sluice: no stream nothere\n");
    out_free(&o);
    o = run(bare);
    ck_assert_int_eq(o.code, 0);
    ck_assert_str_eq(o.out, "stream bare has no consumer groups\n");
    out_free(&o);
    o = run(count0);
    ck_assert_int_eq(o.code, 2);
    ck_assert_msg(strstr(o.err, "--count") != NULL, "%s", o.err);
    out_free(&o);
    o = run(idleneg);
    ck_assert_int_eq(o.code, 2);
    ck_assert_msg(strstr(o.err, "--idle") != NULL, "%s", o.err);
    out_free(&o);
    o = run(toomany);
    ck_assert_int_eq(o.code, 2);
    out_free(&o);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", closed_port());
    o = run(down);
    ck_assert_int_eq(o.code, 1);
    ck_assert_msg(strstr(o.err, "cannot reach redis") != NULL, "%s", o.err);
    out_free(&o);
}
END_TEST

/* ---------------------------------------------------------------------
 * sluice stats
 * ------------------------------------------------------------------ */

/* A producer thread: XADDs `rate` entries a second to `stream` on its own
 * connection until told to stop. Sleeping is its job here (it paces
 * arrivals on an absolute schedule, so a late wake-up is made up for),
 * not a wait for an effect. */
struct producer {
    const char *stream;           /* stream to add to */
    int rate;                     /* entries per second */
    volatile int stop;            /* set by the test to end it */
    long long produced;           /* entries added */
    char error[256];              /* "" or what went wrong */
    pthread_t thread;
};

/* The producer's thread body. */
static void *produce(void *arg)
{
    struct producer *pr = arg;
    redisContext *c = sl_test_connect(&srv);
    struct timespec t0, now, at;
    long long i;

    if (c == NULL) {
        snprintf(pr->error, sizeof(pr->error), "cannot connect");
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; !pr->stop; i++) {
        long long ns = i * (1000000000LL / pr->rate);
        redisReply *r;
        at.tv_sec = t0.tv_sec + (time_t)((t0.tv_nsec + ns) / 1000000000LL);
        at.tv_nsec = (long)((t0.tv_nsec + ns) % 1000000000LL);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec < at.tv_sec || (now.tv_sec == at.tv_sec && now.tv_nsec < at.tv_nsec))
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
                ;
        r = redisCommand(c, "XADD %s * type tick data {}", pr->stream);
        if (r == NULL || r->type != REDIS_REPLY_STRING) {
            snprintf(pr->error, sizeof(pr->error), "XADD failed: %s", r ? r->str : c->errstr);
            freeReplyObject(r);
            break;
        }
        freeReplyObject(r);
        pr->produced++;
    }
    redisFree(c);
    return NULL;
}

/* Starts a producer. */
static void producer_start(struct producer *pr, const char *stream, int rate)
{
    memset(pr, 0, sizeof(*pr));
    pr->stream = stream;
    pr->rate = rate;
    ck_assert_int_eq(pthread_create(&pr->thread, NULL, produce, pr), 0);
}

/* Stops a producer and fails the test if it had failed. */
static void producer_stop(struct producer *pr)
{
    pr->stop = 1;
    pthread_join(pr->thread, NULL);
    ck_assert_msg(pr->error[0] == '\0', "producer: %s", pr->error);
}

/* Runs `sluice stats --json -c cfg` with extra arguments and returns the
 * parsed array. */
static json_t *stats_json(const char *cfg, const char *a1, const char *a2)
{
    const char *argv[] = { sl_test_bin(), "stats", "--json", "-c", cfg, a1, a2, NULL };
    struct out o = run(argv);
    json_t *j;

    ck_assert_msg(o.code == 0, "sluice stats exit %d: %s", o.code, o.err);
    j = parse_json(o.out);
    ck_assert(json_is_array(j));
    out_free(&o);
    return j;
}

/* Returns the row of stream/group in a stats document (borrowed). */
static json_t *stats_row(json_t *doc, const char *stream, const char *group)
{
    size_t i;

    for (i = 0; i < json_array_size(doc); i++) {
        json_t *r = json_array_get(doc, i);
        if (!strcmp(jstr(r, "stream"), stream) && !strcmp(jstr(r, "group"), group))
            return r;
    }
    ck_abort_msg("no stats row for %s/%s", stream, group);
    return NULL;
}

/* A known state without any worker running: every number exact. "jobs"
 * has 10 entries, group g has 4 pending with one consumer and 6 undelivered,
 * group other none; 3 dead letters. "holes" has a deletion past its
 * group's last delivered entry, so Redis cannot tell the lag (null), and
 * L counts its pending entries only. Nothing arrives: lambda 0, mu 0,
 * rho and W null (JSON) or "-" (table). */
START_TEST(test_ops_stats_known_state_exact)
{
    char cfg[600];
    const char *table[] = { sl_test_bin(), "stats", "-c", cfg, NULL };
    json_t *doc, *r;
    struct out o;
    char *line;
    int i;

    write_config(cfg, sizeof(cfg), "stats",
                 "{\"handler\": \"noop\", \"stream\": \"jobs\", \"group\": \"g\"},"
                 "{\"handler\": \"noop\", \"stream\": \"holes\", \"group\": \"h\"},"
                 "{\"handler\": \"noop\", \"stream\": \"never\", \"group\": \"n\"}", "", 0);
    for (i = 0; i < 10; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD jobs * type t data {}"));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs g 0"));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs other $"));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP g c COUNT 4 STREAMS jobs >"));
    for (i = 0; i < 3; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD jobs:dead * type t error x"));
    for (i = 1; i <= 3; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD holes 5-%d type t data {}", i));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE holes h 0"));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP h c COUNT 1 STREAMS holes >"));
    ck_assert_int_eq(sl_test_int(rc, "XDEL holes 5-3"), 1);

    doc = stats_json(cfg, NULL, NULL);
    ck_assert_int_eq(json_array_size(doc), 3);     /* "never" does not exist: no row */
    r = stats_row(doc, "jobs", "g");
    ck_assert_int_eq(jint(r, "length"), 10);
    ck_assert_int_eq(jint(r, "entries_added"), 10);
    ck_assert_int_eq(jint(r, "lag"), 6);
    ck_assert_int_eq(jint(r, "pending"), 4);
    ck_assert_int_eq(jint(r, "consumers"), 1);
    ck_assert_int_eq(jint(r, "dead"), 3);
    ck_assert_int_eq(jint(r, "L"), 10);
    ck_assert_int_eq(jint(r, "processed"), 0);
    ck_assert(jint(r, "oldest_pending_ms") >= 0);
    ck_assert(jnum(r, "lambda") == 0.0);
    ck_assert(jnum(r, "mu") == 0.0);
    ck_assert(json_is_null(json_object_get(r, "rho")));
    ck_assert(json_is_null(json_object_get(r, "W")));
    r = stats_row(doc, "jobs", "other");
    ck_assert_int_eq(jint(r, "lag"), 0);
    ck_assert_int_eq(jint(r, "pending"), 0);
    ck_assert_int_eq(jint(r, "consumers"), 0);
    ck_assert_int_eq(jint(r, "dead"), 3);
    ck_assert_int_eq(jint(r, "L"), 0);
    ck_assert(json_is_null(json_object_get(r, "oldest_pending_ms")));
    ck_assert(json_is_null(json_object_get(r, "W")));
    r = stats_row(doc, "holes", "h");
    ck_assert_int_eq(jint(r, "length"), 2);
    ck_assert_int_eq(jint(r, "entries_added"), 3);
    ck_assert(json_is_null(json_object_get(r, "lag")));
    ck_assert_int_eq(jint(r, "pending"), 1);
    ck_assert_int_eq(jint(r, "L"), 1);
    ck_assert_int_eq(jint(r, "dead"), 0);
    json_decref(doc);

    o = run(table);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    line = strstr(o.out, "\njobs ");
    ck_assert_ptr_nonnull(line);
    {
        char st[64], gr[64], lag[32], old[32], rho[16], w[16];
        long long len, pend, cons, dead, l;
        double lam, mu;
        ck_assert_int_eq(sscanf(line + 1, "%63s %63s %lld %31s %lld %lld %31s %lld %lf %lf %15s %lld %15s",
                                st, gr, &len, lag, &pend, &cons, old, &dead, &lam, &mu, rho, &l, w), 13);
        ck_assert_str_eq(gr, "g");
        ck_assert_int_eq(len, 10);
        ck_assert_str_eq(lag, "6");
        ck_assert_int_eq(pend, 4);
        ck_assert_int_eq(cons, 1);
        ck_assert_int_eq(dead, 3);
        ck_assert(lam == 0.0 && mu == 0.0);
        ck_assert_str_eq(rho, "-");
        ck_assert_int_eq(l, 10);
        ck_assert_str_eq(w, "-");
    }
    ck_assert_msg(strstr(o.out, "STREAM") == o.out, "header: %s", o.out);
    line = strstr(o.out, "\nholes ");
    ck_assert_ptr_nonnull(line);
    {
        char st[64], gr[64], lag[32];
        long long len;
        ck_assert_int_eq(sscanf(line + 1, "%63s %63s %lld %31s", st, gr, &len, lag), 4);
        ck_assert_str_eq(lag, "-");
    }
    out_free(&o);
}
END_TEST

/* Reads JSON documents from the growing file at path (a `stats --watch
 * --json` log) until n are complete; returns them in an array (new). */
static json_t *read_docs(const char *path, size_t n, int timeout_ms)
{
    long long deadline = sl_test_deadline(timeout_ms);
    json_t *docs = NULL;

    for (;;) {
        char *s = sl_test_read_file(path);
        size_t off = 0, len = s ? strlen(s) : 0;
        json_decref(docs);
        docs = json_array();
        while (s != NULL && off < len && json_array_size(docs) < n) {
            json_error_t e;
            json_t *d = json_loadb(s + off, len - off, JSON_DISABLE_EOF_CHECK, &e);
            if (d == NULL)
                break;
            json_array_append_new(docs, d);
            off += (size_t)e.position;
        }
        free(s);
        if (json_array_size(docs) >= n)
            return docs;
        ck_assert_msg(sl_test_tick(deadline), "only %zu of %zu stats documents in %s",
                      json_array_size(docs), n, path);
    }
}

/* A paced producer offers 200 entries/s to a running pool: lambda and mu
 * are near 200 in a band that a wrong formula cannot hit (a rate not
 * divided by the 2 s window would be ~400, a missing one 0), rho near 1,
 * W defined. Once the producer stops and the pool has caught up, every
 * count is exact: entries added = processed = produced, nothing pending,
 * lambda = mu = 0, W null. */
START_TEST(test_ops_stats_paced_rate)
{
    struct pool p;
    struct producer pr;
    char log[600];
    const char *watch[] = { sl_test_bin(), "stats", "--json", "--watch", "2", "-c", NULL, NULL };
    json_t *doc, *r;
    pid_t w;
    long long n;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"paced\", \"group\": \"pg\"}",
               ", \"trim\": \"none\"", 0, 1);
    watch[6] = p.cfg;
    producer_start(&pr, "paced", 200);
    SL_TEST_ASSERT_EVENTUALLY(5000, pr.produced >= 100);

    doc = stats_json(p.cfg, NULL, NULL);
    r = stats_row(doc, "paced", "pg");
    ck_assert_msg(jnum(r, "lambda") >= 100 && jnum(r, "lambda") <= 400, "lambda %g", jnum(r, "lambda"));
    ck_assert_msg(jnum(r, "mu") >= 100 && jnum(r, "mu") <= 400, "mu %g", jnum(r, "mu"));
    ck_assert_msg(jnum(r, "rho") >= 0.5 && jnum(r, "rho") <= 2.0, "rho %g", jnum(r, "rho"));
    ck_assert_msg(json_is_real(json_object_get(r, "W")) && jnum(r, "W") >= 0 && jnum(r, "W") < 5,
                  "W is not a small number");
    ck_assert_int_eq(jint(r, "consumers"), 1);
    json_decref(doc);

    snprintf(log, sizeof(log), "%s/watch.log", tmp);
    w = sl_test_spawn(watch, log);
    ck_assert_int_gt(w, 0);
    track(w);
    doc = read_docs(log, 1, 15000);
    sl_test_kill(w, SIGTERM);
    sl_test_wait_exit(w, 5000, NULL);
    untrack(w);
    r = stats_row(json_array_get(doc, 0), "paced", "pg");
    ck_assert_msg(jnum(r, "lambda") >= 120 && jnum(r, "lambda") <= 320, "2 s window: lambda %g",
                  jnum(r, "lambda"));
    ck_assert_msg(jnum(r, "mu") >= 120 && jnum(r, "mu") <= 320, "2 s window: mu %g", jnum(r, "mu"));
    json_decref(doc);

    producer_stop(&pr);
    n = pr.produced;
    SL_TEST_ASSERT_EVENTUALLY(10000, group_backlog("paced", "pg") == 0);
    /* The heartbeats (every 100 ms) catch up with the last entries; then
     * one more window sees nothing move. */
    {
        long long dl = sl_test_deadline(10000);
        for (;;) {
            doc = stats_json(p.cfg, NULL, NULL);
            if (jint(stats_row(doc, "paced", "pg"), "processed") == n)
                break;
            json_decref(doc);
            ck_assert_msg(sl_test_tick(dl), "the heartbeats never showed %lld processed", n);
        }
        json_decref(doc);
    }
    doc = stats_json(p.cfg, NULL, NULL);
    r = stats_row(doc, "paced", "pg");
    ck_assert_int_eq(jint(r, "entries_added"), n);
    ck_assert_int_eq(jint(r, "length"), n);
    ck_assert_int_eq(jint(r, "pending"), 0);
    ck_assert_int_eq(jint(r, "lag"), 0);
    ck_assert_int_eq(jint(r, "L"), 0);
    ck_assert_int_eq(jint(r, "dead"), 0);
    ck_assert(jnum(r, "lambda") == 0.0);
    ck_assert(jnum(r, "mu") == 0.0);
    ck_assert(json_is_null(json_object_get(r, "W")));
    ck_assert(json_is_null(json_object_get(r, "rho")));
    json_decref(doc);
    pool_stop(&p);
}
END_TEST

/* A worker process restarted during the window starts its processed
 * counter again from 0. mu must stay >= 0 in every window (before the
 * per-consumer sums it went negative), and the restarted worker's work
 * is counted again once it runs. */
START_TEST(test_ops_stats_mu_survives_restart)
{
    struct pool p;
    struct producer pr;
    char log[600];
    const char *watch[] = { sl_test_bin(), "stats", "--json", "--watch", "0.4", "-c", NULL, NULL };
    json_t *docs;
    pid_t w, child;
    size_t i;
    int positive_after = 0;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"r\", \"group\": \"rg\"}", "", 0, 1);
    watch[6] = p.cfg;
    producer_start(&pr, "r", 200);
    SL_TEST_ASSERT_EVENTUALLY(5000, pr.produced >= 100);
    snprintf(log, sizeof(log), "%s/watch.log", tmp);
    w = sl_test_spawn(watch, log);
    ck_assert_int_gt(w, 0);
    track(w);
    json_decref(read_docs(log, 2, 15000));
    child = child_pid(&p, "noop:0");
    ck_assert_int_gt(child, 0);
    sl_test_kill(child, SIGKILL);
    SL_TEST_ASSERT_EVENTUALLY(10000, child_pid(&p, "noop:0") != child);
    docs = read_docs(log, 9, 20000);
    sl_test_kill(w, SIGTERM);
    sl_test_wait_exit(w, 5000, NULL);
    untrack(w);
    producer_stop(&pr);
    for (i = 0; i < json_array_size(docs); i++) {
        json_t *r = stats_row(json_array_get(docs, i), "r", "rg");
        ck_assert_msg(jnum(r, "mu") >= 0, "window %zu: mu %g", i, jnum(r, "mu"));
        ck_assert_msg(jnum(r, "lambda") >= 0, "window %zu: lambda %g", i, jnum(r, "lambda"));
        if (i >= 6 && jnum(r, "mu") > 50)
            positive_after++;
    }
    ck_assert_msg(positive_after > 0, "the restarted worker's work is never counted");
    json_decref(docs);
    pool_stop(&p);
}
END_TEST

/* Usage errors are 2; an unreachable server and a refused AUTH are 1
 * (before, a failed AUTH was ignored and an empty table printed). */
START_TEST(test_ops_stats_errors)
{
    char cfg[600], down[64], badpw[128];
    const char *w0[] = { sl_test_bin(), "stats", "-c", cfg, "--watch", "0", NULL };
    const char *wx[] = { sl_test_bin(), "stats", "-c", cfg, "--watch", "soon", NULL };
    const char *extra[] = { sl_test_bin(), "stats", "jobs", "-c", cfg, NULL };
    const char *unreach[] = { sl_test_bin(), "stats", "-c", cfg, "--redis", down, NULL };
    const char *auth[] = { sl_test_bin(), "stats", "-c", cfg, "--redis", badpw, NULL };
    struct out o;

    write_config(cfg, sizeof(cfg), "stats", "{\"handler\": \"noop\", \"stream\": \"jobs\", \"group\": \"g\"}", "", 0);
    snprintf(down, sizeof(down), "redis://127.0.0.1:%d", closed_port());
    snprintf(badpw, sizeof(badpw), "redis://:wrong@127.0.0.1:%d", srv.port);
    freeReplyObject(sl_test_cmd(rc, "XADD jobs * type t data {}"));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs g 0"));
    o = run(w0);
    ck_assert_int_eq(o.code, 2);
    ck_assert_msg(strstr(o.err, "--watch") != NULL, "%s", o.err);
    out_free(&o);
    o = run(wx);
    ck_assert_int_eq(o.code, 2);
    out_free(&o);
    o = run(extra);
    ck_assert_int_eq(o.code, 2);
    out_free(&o);
    o = run(unreach);
    ck_assert_int_eq(o.code, 1);
    ck_assert_msg(strstr(o.err, "cannot reach redis") != NULL, "%s", o.err);
    out_free(&o);
    o = run(auth);
    ck_assert_msg(o.code == 1, "AUTH refused but exit %d, output: %s", o.code, o.out);
    ck_assert_msg(strstr(o.err, "AUTH") != NULL, "%s", o.err);
    ck_assert_str_eq(o.out, "");
    out_free(&o);
}
END_TEST

/* ---------------------------------------------------------------------
 * sluice workers
 * ------------------------------------------------------------------ */

/* With a running pool of two noop children and one probe child: the JSON
 * lists exactly the three heartbeats, sorted, with the children's real
 * pids, this host, their handler, stream and group, and processed counts
 * that add up to the entries given (7 to noop, none to probe). The table
 * shows the same rows. Once the pool stops, the heartbeats expire and the
 * list is empty. */
START_TEST(test_ops_workers_table_and_json)
{
    static const char *const sfx[3] = { "noop:0", "noop:1", "probe:0" };
    const char *jargv[] = { sl_test_bin(), "workers", "--json", "--redis", srv.url, NULL };
    const char *targv[] = { sl_test_bin(), "workers", "--redis", srv.url, NULL };
    struct pool p;
    struct out o;
    json_t *doc = NULL;
    char name[300], *line, *save = NULL;
    long long sum = -1, t0 = (long long)time(NULL) * 1000;
    int i, rows = 0;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"wa\", \"group\": \"ga\", \"processes\": 2},"
                   "{\"handler\": \"probe\", \"stream\": \"wb\", \"group\": \"gb\"}", "", 0, 3);
    for (i = 0; i < 7; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD wa * type t data {}"));
    {
        long long dl = sl_test_deadline(10000);
        for (;;) {
            o = run(jargv);
            ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
            doc = parse_json(o.out);
            out_free(&o);
            if (json_array_size(doc) == 3)
                sum = jint(json_array_get(doc, 0), "processed") + jint(json_array_get(doc, 1), "processed");
            if (sum == 7 || !sl_test_tick(dl))
                break;
            json_decref(doc);
        }
    }
    ck_assert_msg(sum == 7, "heartbeats never showed 7 processed");
    for (i = 0; i < 3; i++) {
        json_t *wk = json_array_get(doc, (size_t)i);
        snprintf(name, sizeof(name), "%s:%s", host, sfx[i]);
        ck_assert_str_eq(jstr(wk, "consumer"), name);
        ck_assert_int_eq(jint(wk, "pid"), child_pid(&p, sfx[i]));
        ck_assert_str_eq(jstr(wk, "host"), host);
        ck_assert_str_eq(jstr(wk, "handler"), i < 2 ? "noop" : "probe");
        ck_assert_str_eq(jstr(wk, "stream"), i < 2 ? "wa" : "wb");
        ck_assert_str_eq(jstr(wk, "group"), i < 2 ? "ga" : "gb");
        ck_assert_int_eq(jint(wk, "failed"), 0);
        ck_assert(jint(wk, "started_at") >= t0 - 60000 && jint(wk, "started_at") <= jint(wk, "last_beat"));
    }
    ck_assert_int_eq(jint(json_array_get(doc, 2), "processed"), 0);

    o = run(targv);
    ck_assert_int_eq(o.code, 0);
    for (line = strtok_r(o.out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char cons[300], handler[32], stream[32], group[32];
        long long pid, up, beat, processed, failed;
        if (rows == 0) {
            ck_assert_msg(strncmp(line, "CONSUMER", 8) == 0 && strstr(line, "PROCESSED") != NULL,
                          "header: %s", line);
            rows++;
            continue;
        }
        ck_assert_int_le(rows, 3);
        ck_assert_int_eq(sscanf(line, "%299s %lld %31s %31s %31s %lld %lld %lld %lld", cons, &pid,
                                handler, stream, group, &up, &beat, &processed, &failed), 9);
        snprintf(name, sizeof(name), "%s:%s", host, sfx[rows - 1]);
        ck_assert_str_eq(cons, name);
        ck_assert_int_eq(pid, child_pid(&p, sfx[rows - 1]));
        ck_assert_str_eq(handler, rows <= 2 ? "noop" : "probe");
        ck_assert_str_eq(stream, rows <= 2 ? "wa" : "wb");
        ck_assert_int_eq(processed, jint(json_array_get(doc, (size_t)rows - 1), "processed"));
        ck_assert_int_eq(failed, 0);
        ck_assert_msg(up >= 0 && beat >= 0 && beat < 5000LL * sl_test_slow_factor(), "up %lld beat %lld", up, beat);
        rows++;
    }
    ck_assert_int_eq(rows, 4);
    out_free(&o);
    json_decref(doc);

    pool_stop(&p);
    SL_TEST_ASSERT_EVENTUALLY(5000, count_keys("sluice:worker:*") == 0);
    o = run(jargv);
    ck_assert_int_eq(o.code, 0);
    ck_assert_str_eq(o.out, "[]\n");
    out_free(&o);
}
END_TEST

/* Keys under sluice:worker: that no worker wrote: a heartbeat whose name
 * is not UTF-8 is listed with \xNN for its odd bytes (before, jansson
 * refused the name and the sort crashed on a NULL string: exit 139), and
 * a key of the wrong type is reported and skipped; the command exits 0
 * with exactly the two hashes, sorted. */
START_TEST(test_ops_workers_odd_keys)
{
    const char *jargv[] = { sl_test_bin(), "workers", "--json", "--redis", srv.url, NULL };
    const char *targv[] = { sl_test_bin(), "workers", "--redis", srv.url, NULL };
    static const char bad[] = "sluice:worker:\xff\xfe";
    struct out o;
    json_t *doc;

    freeReplyObject(sl_test_cmd(rc, "HSET %b pid 11 host h handler x stream s group g "
                                "started_at 1 last_beat 2 processed 3 failed 4", bad, sizeof(bad) - 1));
    freeReplyObject(sl_test_cmd(rc, "HSET sluice:worker:zz pid 12 host h handler x stream s "
                                "group g started_at 1 last_beat 2 processed 5 failed 0"));
    freeReplyObject(sl_test_cmd(rc, "SET sluice:worker:str x"));
    o = run(jargv);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.err, "WRONGTYPE") != NULL, "%s", o.err);
    doc = parse_json(o.out);
    out_free(&o);
    ck_assert_int_eq(json_array_size(doc), 2);
    ck_assert_str_eq(jstr(json_array_get(doc, 0), "consumer"), "\\xff\\xfe");
    ck_assert_int_eq(jint(json_array_get(doc, 0), "pid"), 11);
    ck_assert_int_eq(jint(json_array_get(doc, 0), "processed"), 3);
    ck_assert_str_eq(jstr(json_array_get(doc, 1), "consumer"), "zz");
    ck_assert_int_eq(jint(json_array_get(doc, 1), "pid"), 12);
    json_decref(doc);
    o = run(targv);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.out, "\n\\xff\\xfe  ") != NULL && strstr(o.out, "\nzz  ") != NULL,
                  "%s", o.out);
    out_free(&o);
}
END_TEST

/* Admin commands against keys of the wrong type print Redis's reason
 * and exit 1 (never crash, never report success); a dead letter whose
 * field name is not UTF-8 keeps that field in --json, its odd byte
 * shown as \xff. */
START_TEST(test_ops_admin_wrong_type_keys)
{
    static const char *const cmds[][4] = {
        { "pending", "str", NULL, NULL }, { "pending", "str", "g", NULL },
        { "pending", "hash", NULL, NULL }, { "dlq", "list", "str", NULL },
        { "dlq", "show", "1-0", "str" }, { "dlq", "purge", "str", NULL },
        { "dlq", "replay", "str", "--all" }, { "dlq", "replay", "1-0", "str" },
        { "enqueue", "str", "t", "{}" },
    };
    const char *lst[] = { sl_test_bin(), "dlq", "list", "bin", "--json", "--redis", srv.url, NULL };
    static const char fname[] = "\xfftype";
    struct out o;
    json_t *doc, *f;
    size_t i;

    freeReplyObject(sl_test_cmd(rc, "SET str x"));
    freeReplyObject(sl_test_cmd(rc, "SET str:dead x"));
    freeReplyObject(sl_test_cmd(rc, "HSET hash a b"));
    for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        const char *argv[10];
        int n = 0, j;
        argv[n++] = sl_test_bin();
        for (j = 0; j < 4 && cmds[i][j] != NULL; j++)
            argv[n++] = cmds[i][j];
        argv[n++] = "--redis";
        argv[n++] = srv.url;
        argv[n] = NULL;
        o = run(argv);
        ck_assert_msg(o.code == 1, "%s %s: exit %d: %s", cmds[i][0], cmds[i][1], o.code, o.err);
        ck_assert_msg(strstr(o.err, "WRONGTYPE") != NULL, "%s %s: %s", cmds[i][0], cmds[i][1], o.err);
        out_free(&o);
    }
    freeReplyObject(sl_test_cmd(rc, "XADD bin:dead 5-1 %b v error boom", fname, sizeof(fname) - 1));
    o = run(lst);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    doc = parse_json(o.out);
    out_free(&o);
    ck_assert_int_eq(json_array_size(doc), 1);
    f = json_object_get(json_array_get(doc, 0), "fields");
    ck_assert_int_eq(json_object_size(f), 2);
    ck_assert_str_eq(jstr(f, "\\xfftype"), "v");
    ck_assert_str_eq(jstr(f, "error"), "boom");
    json_decref(doc);
}
END_TEST

/* Asserts that the table text `out` of command `what` holds `want` and
 * nothing a terminal would act on: no byte below 0x20 but '\n', no DEL,
 * no C1 control (0x9b alone, or U+009B as 0xc2 0x9b) and no byte that
 * is not UTF-8 (0xff). */
static void assert_table_safe(const char *what, const char *out, const char *want)
{
    const unsigned char *p;

    ck_assert_msg(strstr(out, want) != NULL, "%s: no \"%s\" in:\n%s", what, want, out);
    for (p = (const unsigned char *)out; *p != '\0'; p++)
        ck_assert_msg((*p >= 0x20 || *p == '\n') && *p != 0x7f && *p != 0x9b && *p != 0xff,
                      "%s: raw byte 0x%02x at offset %td", what, *p, (const char *)p - out);
    ck_assert_msg(strstr(out, "\xc2\x9b") == NULL, "%s: a raw C1 control", what);
}

/* Every admin table escapes what it prints from Redis: entry types,
 * data, errors, consumer, group and heartbeat names holding ESC [31m,
 * CR, BEL, DEL, C1 controls and bytes that are not UTF-8 are shown as
 * \xNN, valid UTF-8 (é) as it is; --json stays exact JSON (jansson
 * escapes control characters) and keeps a name that is not UTF-8 with
 * all its odd bytes as \xNN. Before, the tables wrote the raw bytes to the
 * terminal, and `pending` and `stats --json` dropped a consumer or group
 * whose name is not UTF-8. */
START_TEST(test_ops_tables_escape_control_chars)
{
    static const char type[] = "t\x1b[31m\r", data[] = "{\"d\":1}\x1b[31m\xc2\x9b";
    static const char err[] = "boom\x1b[31m\x9b \xc3\xa9", cons[] = "c\x1b]0;x\x07";
    static const char grp[] = "g\x1b[31m", grp2[] = "h\xff", reader[] = "r\x1b[31m\r\xff";
    static const char wkey[] = "sluice:worker:w\x1b[31m\x7f", hnd[] = "x\x1b[31m";
    const char *list[] = { sl_test_bin(), "dlq", "list", "e", "--redis", srv.url, NULL };
    const char *show[] = { sl_test_bin(), "dlq", "show", "5-1", "e", "--redis", srv.url, NULL };
    const char *jlist[] = { sl_test_bin(), "dlq", "list", "e", "--json", "--redis", srv.url, NULL };
    const char *pend[] = { sl_test_bin(), "pending", "s", "--redis", srv.url, NULL };
    const char *jpend[] = { sl_test_bin(), "pending", "s", "--json", "--redis", srv.url, NULL };
    const char *wrk[] = { sl_test_bin(), "workers", "--redis", srv.url, NULL };
    const char *stats[] = { sl_test_bin(), "stats", "-c", NULL, NULL };
    char cfg[600];
    struct out o;
    json_t *doc, *f;
    redisReply *r;

    r = sl_test_cmd(rc, "XADD e:dead 5-1 type %b data %b error %b source_id 1-1 deliveries 1 "
                    "consumer %b", type, sizeof(type) - 1, data, sizeof(data) - 1, err,
                    sizeof(err) - 1, cons, sizeof(cons) - 1);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    o = run(list);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    assert_table_safe("dlq list", o.out, "t\\x1b[31m\\x0d");
    assert_table_safe("dlq list", o.out, "boom\\x1b[31m\\x9b \xc3\xa9");
    out_free(&o);
    o = run(show);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    assert_table_safe("dlq show", o.out, "type: t\\x1b[31m\\x0d\n");
    assert_table_safe("dlq show", o.out, "data: {\"d\":1}\\x1b[31m\\xc2\\x9b\n");
    assert_table_safe("dlq show", o.out, "error: boom\\x1b[31m\\x9b \xc3\xa9\n");
    assert_table_safe("dlq show", o.out, "consumer: c\\x1b]0;x\\x07\n");
    out_free(&o);
    o = run(jlist);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    doc = parse_json(o.out);
    out_free(&o);
    f = json_object_get(json_array_get(doc, 0), "fields");
    ck_assert_str_eq(jstr(f, "type"), type);
    ck_assert_str_eq(jstr(f, "consumer"), cons);
    ck_assert_str_eq(jstr(f, "error"), "boom\\x1b[31m\\x9b \xc3\xa9");
    json_decref(doc);

    /* pending: group and consumer names. */
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE s %b 0 MKSTREAM", grp, sizeof(grp) - 1));
    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE s %b 0", grp2, sizeof(grp2) - 1));
    freeReplyObject(sl_test_cmd(rc, "XADD s 1-1 a b"));
    freeReplyObject(sl_test_cmd(rc, "XREADGROUP GROUP %b %b STREAMS s >", grp, sizeof(grp) - 1,
                                reader, sizeof(reader) - 1));
    o = run(pend);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    assert_table_safe("pending", o.out, "stream s group g\\x1b[31m: 1 pending");
    assert_table_safe("pending", o.out, "stream s group h\\xff: 0 pending");
    assert_table_safe("pending", o.out, "\n  r\\x1b[31m\\x0d\\xff ");
    assert_table_safe("pending", o.out, "\n  1-1 ");
    out_free(&o);
    o = run(jpend);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    doc = parse_json(o.out);
    out_free(&o);
    ck_assert_int_eq(json_array_size(doc), 2);
    f = json_array_get(doc, 0);
    ck_assert_str_eq(jstr(f, "group"), grp);
    ck_assert_str_eq(jstr(json_array_get(json_object_get(f, "consumers"), 0), "consumer"),
                     "r\\x1b[31m\\x0d\\xff");
    ck_assert_str_eq(jstr(json_array_get(json_object_get(f, "entries"), 0), "consumer"),
                     "r\\x1b[31m\\x0d\\xff");
    ck_assert_str_eq(jstr(json_array_get(doc, 1), "group"), "h\\xff");
    json_decref(doc);

    /* workers: the heartbeat's name and fields. */
    freeReplyObject(sl_test_cmd(rc, "HSET %b pid 1 host h handler %b stream s group %b "
                                "started_at 1 last_beat 2 processed 3 failed 0", wkey,
                                sizeof(wkey) - 1, hnd, sizeof(hnd) - 1, grp, sizeof(grp) - 1));
    o = run(wrk);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    assert_table_safe("workers", o.out, "\nw\\x1b[31m\\x7f ");
    assert_table_safe("workers", o.out, " x\\x1b[31m ");
    assert_table_safe("workers", o.out, " g\\x1b[31m ");
    out_free(&o);

    /* stats: the group names of a configured stream. */
    stats[3] = write_config(cfg, sizeof(cfg), "esc",
                            "{\"handler\":\"noop\",\"stream\":\"s\",\"group\":\"g\",\"processes\":1}",
                            "", 0);
    o = run(stats);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    assert_table_safe("stats", o.out, "\ns                g\\x1b[31m ");
    assert_table_safe("stats", o.out, "\ns                h\\xff ");
    out_free(&o);
    doc = stats_json(cfg, NULL, NULL);
    ck_assert_int_eq(json_array_size(doc), 2);
    ck_assert_int_eq(jint(stats_row(doc, "s", grp), "pending"), 1);
    ck_assert_int_eq(jint(stats_row(doc, "s", "h\\xff"), "pending"), 0);
    json_decref(doc);
}
END_TEST

/* ---------------------------------------------------------------------
 * /metrics and /healthz
 * ------------------------------------------------------------------ */

/* The checker itself: a valid exposition passes, and each broken one is
 * refused for the right reason, so a passing scrape means something. */
START_TEST(test_ops_metrics_checker_rejects_bad_text)
{
    static const char good[] =
        "# HELP a_total A counter.\n# TYPE a_total counter\n"
        "a_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3\na_total{x=\"2\"} 0 1700000000000\n"
        "# HELP h Durations.\n# TYPE h histogram\n"
        "h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"1e+00\"} 2\nh_bucket{le=\"+Inf\"} 3\n"
        "h_sum 1.5\nh_count 3\n"
        "# HELP g A gauge.\n# TYPE g gauge\ng -1.5e-3\ng{a=\"b\"} NaN\n";
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        { "# HELP a x\n# TYPE a gauge\na 1", "newline" },
        { "a 1\n# HELP a x\n# TYPE a gauge\n", "HELP or TYPE" },
        { "# HELP a x\n# TYPE a gauge\n# HELP b y\n# TYPE b gauge\na 1\nb 2\n", "contiguous" },
        { "# HELP a x\n# TYPE a gauge\na 1\n# HELP b y\n# TYPE b gauge\nb 1\na{l=\"2\"} 2\n", "contiguous" },
        { "# HELP a x\n# TYPE a gauge\n# TYPE a gauge\na 1\n", "second TYPE" },
        { "# HELP a x\n# TYPE a thing\na 1\n", "unknown type" },
        { "# HELP 1a x\n# TYPE 1a gauge\n1a 1\n", "bad name" },
        { "# HELP a x\n# TYPE a gauge\na{1x=\"v\"} 1\n", "label name" },
        { "# HELP a x\n# TYPE a gauge\na{__x=\"v\"} 1\n", "label name" },
        { "# HELP a x\n# TYPE a gauge\na{x=v} 1\n", "not quoted" },
        { "# HELP a x\n# TYPE a gauge\na{x=\"\\q\"} 1\n", "escape" },
        { "# HELP a x\n# TYPE a gauge\na{x=\"v} 1\n", "unterminated" },
        { "# HELP a x\n# TYPE a gauge\na{x=\"v\",x=\"w\"} 1\n", "twice" },
        { "# HELP a x\n# TYPE a gauge\na 1,5\n", "bad value" },
        { "# HELP a x\n# TYPE a gauge\na one\n", "bad value" },
        { "# HELP a x\n# TYPE a gauge\na 1 12.5\n", "timestamp" },
        { "# HELP a x\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n", "twice" },
        { "# HELP a x\n# TYPE a counter\na -1\n", "counter" },
        { "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"2\"} 4\n"
          "h_bucket{le=\"+Inf\"} 5\nh_sum 1\nh_count 5\n", "cumulative" },
        { "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
          "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "increasing" },
        { "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
          "h_sum 1\nh_count 3\n", "_count" },
        { "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "+Inf" },
        { "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", "_sum" },
        { "# HELP h x\n# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n", "without le" },
    };
    char why[512];
    size_t i;

    why[0] = '\0';
    ck_assert_msg(prom_check(good, why, sizeof(why)) == 0, "valid text refused: %s", why);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        ck_assert_msg(prom_check(bad[i].text, why, sizeof(why)) < 0, "case %zu accepted:\n%s", i,
                      bad[i].text);
        ck_assert_msg(strstr(why, bad[i].why) != NULL, "case %zu: \"%s\" does not say \"%s\"", i,
                      why, bad[i].why);
    }
}
END_TEST

/* The counters move with the work, exactly: 40 entries through two noop
 * children are 40 processed, 40 acked, 40 handler observations; a probe
 * entry retried once and one dead-lettered are 3 processed, 1 acked,
 * 1 retried, 1 dead-lettered, 2 failed. Gauges: children up, nothing
 * pending or lagging once done. Every scrape is valid text format. */
START_TEST(test_ops_metrics_counters_move)
{
    struct pool p;
    char *text;
    int i;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"m\", \"group\": \"mg\", \"processes\": 2},"
                   "{\"handler\": \"probe\", \"stream\": \"pr\", \"group\": \"pg\"}", "", 1, 3);
    text = scrape(&p);
    ck_assert(sample_value(text, "sluice_processed_total{worker=\"noop\",stream=\"m\",group=\"mg\"}") == 0);
    ck_assert(sample_value(text, "sluice_children_up{worker=\"noop\",stream=\"m\",group=\"mg\"}") == 2);
    ck_assert(sample_value(text, "sluice_children_up{worker=\"probe\",stream=\"pr\",group=\"pg\"}") == 1);
    ck_assert(sample_value(text, "sluice_pending{worker=\"noop\",stream=\"m\",group=\"mg\"}") == 0);
    ck_assert(sample_value(text, "sluice_lag{worker=\"noop\",stream=\"m\",group=\"mg\"}") == 0);
    free(text);

    for (i = 0; i < 40; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD m * type t data {}"));
    freeReplyObject(sl_test_cmd(rc, "XADD pr * type t data {\"retry\":1}"));
    freeReplyObject(sl_test_cmd(rc, "XADD pr * type t data {\"dead\":\"bad_thing\"}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, scrape_value(&p, "sluice_acked_total", "noop", "m", "mg") == 40);
    SL_TEST_ASSERT_EVENTUALLY(10000, scrape_value(&p, "sluice_acked_total", "probe", "pr", "pg") == 1 &&
                                     group_backlog("pr", "pg") == 0);
    text = scrape(&p);
#define NOOP "{worker=\"noop\",stream=\"m\",group=\"mg\"}"
#define PROBE "{worker=\"probe\",stream=\"pr\",group=\"pg\"}"
    ck_assert(sample_value(text, "sluice_processed_total" NOOP) == 40);
    ck_assert(sample_value(text, "sluice_acked_total" NOOP) == 40);
    ck_assert(sample_value(text, "sluice_retried_total" NOOP) == 0);
    ck_assert(sample_value(text, "sluice_failed_total" NOOP) == 0);
    ck_assert(sample_value(text, "sluice_dead_lettered_total" NOOP) == 0);
    ck_assert(sample_value(text, "sluice_handler_duration_seconds_count" NOOP) == 40);
    ck_assert(sample_value(text, "sluice_handler_duration_seconds_bucket{worker=\"noop\",stream=\"m\","
                                 "group=\"mg\",le=\"+Inf\"}") == 40);
    ck_assert(sample_value(text, "sluice_handler_duration_seconds_sum" NOOP) >= 0);
    ck_assert(sample_value(text, "sluice_pending" NOOP) == 0);
    ck_assert(sample_value(text, "sluice_lag" NOOP) == 0);
    ck_assert(sample_value(text, "sluice_processed_total" PROBE) == 3);
    ck_assert(sample_value(text, "sluice_acked_total" PROBE) == 1);
    ck_assert(sample_value(text, "sluice_retried_total" PROBE) == 1);
    ck_assert(sample_value(text, "sluice_dead_lettered_total" PROBE) == 1);
    ck_assert(sample_value(text, "sluice_failed_total" PROBE) == 2);
    ck_assert(sample_value(text, "sluice_handler_duration_seconds_count" PROBE) == 3);
    ck_assert(sample_value(text, "sluice_effects_discarded_total" PROBE) == 0);
    ck_assert(sample_value(text, "sluice_redis_reconnects_total" PROBE) == 0);
    ck_assert(sample_value(text, "sluice_pending" PROBE) == 0);
#undef NOOP
#undef PROBE
    free(text);
    ck_assert_int_eq(sl_test_int(rc, "XLEN pr:dead"), 1);
    pool_stop(&p);
}
END_TEST

START_TEST(test_ops_metrics_counters_survive_restarts)
{
    struct pool p;
    pid_t kid;
    int i;

    /* A restarted child starts counting from zero in its shared slot; the
     * supervisor carries what the dead one counted, so a Prometheus
     * counter never goes backwards (which rate() would read as a reset). */
    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"m\", \"group\": \"mg\", \"processes\": 1}",
               "", 1, 1);
    for (i = 0; i < 25; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD m * type t data {}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, scrape_value(&p, "sluice_processed_total", "noop", "m", "mg") == 25);
    kid = child_pid(&p, "noop:0");
    ck_assert_int_gt(kid, 0);
    sl_test_kill(kid, SIGKILL);
    SL_TEST_ASSERT_EVENTUALLY(10000, child_pid(&p, "noop:0") != kid && child_pid(&p, "noop:0") > 0);
    ck_assert(scrape_value(&p, "sluice_processed_total", "noop", "m", "mg") == 25);
    for (i = 0; i < 5; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD m * type t data {}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, scrape_value(&p, "sluice_processed_total", "noop", "m", "mg") == 30);
    ck_assert(scrape_value(&p, "sluice_acked_total", "noop", "m", "mg") == 30);
    pool_stop(&p);
}
END_TEST

/* GETs /healthz; stores the status and returns the body (new). */
static char *healthz(const struct pool *p, int *status)
{
    struct http h = http_get(p->port, "/healthz");
    char *body = h.body;

    *status = h.status;
    h.body = NULL;
    http_free(&h);
    return body != NULL ? body : strdup("");
}

/* Returns 1 when /healthz answers `status` with exactly `body`. */
static int healthz_is(const struct pool *p, int status, const char *body)
{
    int st;
    char *b = healthz(p, &st);
    int ok = st == status && strcmp(b, body) == 0;

    free(b);
    return ok;
}

/* A child that was SIGKILLed and not yet restarted makes /healthz 503
 * "child <name> is down"; once restarted it is 200 "ok" again. The down
 * window is the restart backoff (100 ms, doubling with each quick
 * crash); a window the poll missed is tried again with a longer one. */
START_TEST(test_ops_healthz_child_killed)
{
    struct pool p;
    char down[400];
    int seen = 0, kills;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hk\", \"group\": \"hg\"}", "", 1, 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    snprintf(down, sizeof(down), "child %s:noop:0 is down\n", host);
    for (kills = 0; kills < 6 && !seen; kills++) {
        pid_t child = child_pid(&p, "noop:0");
        long long dl = sl_test_deadline(3000);
        ck_assert_int_gt(child, 0);
        sl_test_kill(child, SIGKILL);
        while (!seen && child_pid(&p, "noop:0") == child) {
            seen = healthz_is(&p, 503, down);
            if (!sl_test_tick(dl))
                break;
        }
        /* Restarted before a poll saw it: kill the new one (a longer backoff). */
        SL_TEST_ASSERT_EVENTUALLY(10000, child_pid(&p, "noop:0") != child);
    }
    ck_assert_msg(seen, "/healthz never said \"%s\" after %d kills", down, kills);
    SL_TEST_ASSERT_EVENTUALLY(20000, healthz_is(&p, 200, "ok\n"));
    pool_stop(&p);
}
END_TEST

/* A SIGSTOPped child keeps its pid but handles nothing: /healthz is 503
 * "child <name> is stopped" and the children_up gauge leaves it out;
 * after SIGCONT both recover. (Before, a stopped child counted as up.) */
START_TEST(test_ops_healthz_child_stopped)
{
    struct pool p;
    char stopped[400];
    pid_t child;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hs\", \"group\": \"hg\", \"processes\": 2}",
               "", 1, 2);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    ck_assert(scrape_value(&p, "sluice_children_up", "noop", "hs", "hg") == 2);
    child = child_pid(&p, "noop:1");
    ck_assert_int_gt(child, 0);
    sl_test_kill(child, SIGSTOP);
    snprintf(stopped, sizeof(stopped), "child %s:noop:1 is stopped\n", host);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 503, stopped));
    ck_assert(scrape_value(&p, "sluice_children_up", "noop", "hs", "hg") == 1);
    sl_test_kill(child, SIGCONT);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    ck_assert(scrape_value(&p, "sluice_children_up", "noop", "hs", "hg") == 2);
    ck_assert_int_eq(child_pid(&p, "noop:1"), child);   /* the same process, not a restart */
    pool_stop(&p);
}
END_TEST

/* Returns 1 when /healthz answers 503 with a reason about Redis. */
static int healthz_redis_down(const struct pool *p)
{
    int st;
    char *b = healthz(p, &st);
    int ok = st == 503 && strstr(b, "redis") != NULL && strchr(b, '\n') == b + strlen(b) - 1;

    free(b);
    return ok;
}

/* Redis killed: /healthz says 503 with a one-line reason about Redis;
 * /metrics still answers at once with valid text, the counters, and no
 * pending/lag samples (unknown, not zero). Redis back: 200 "ok". */
START_TEST(test_ops_healthz_redis_down)
{
    struct pool p;
    struct http h;
    long long t0;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hr\", \"group\": \"hg\"}", "", 1, 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    sl_test_redis_kill(&srv);
    SL_TEST_ASSERT_EVENTUALLY(10000, healthz_redis_down(&p));
    t0 = sl_test_now_ms();
    h = http_get(p.port, "/metrics");
    ck_assert_int_eq(h.status, 200);
    ck_assert_msg(sl_test_now_ms() - t0 < 3000LL * sl_test_slow_factor(), "a scrape took %lld ms",
                  sl_test_now_ms() - t0);
    assert_exposition(h.body);
    ck_assert(sample_value(h.body, "sluice_processed_total{worker=\"noop\",stream=\"hr\",group=\"hg\"}") == 0);
    ck_assert(sample_value(h.body, "sluice_pending{worker=\"noop\",stream=\"hr\",group=\"hg\"}") < 0);
    ck_assert(sample_value(h.body, "sluice_lag{worker=\"noop\",stream=\"hr\",group=\"hg\"}") < 0);
    http_free(&h);
    ck_assert_int_eq(sl_test_redis_restart(&srv), 0);
    SL_TEST_ASSERT_EVENTUALLY(20000, healthz_is(&p, 200, "ok\n"));
    pool_stop(&p);
}
END_TEST

/* ---------------------------------------------------------------------
 * scripts/
 * ------------------------------------------------------------------ */

/* The three scripts pass shellcheck as POSIX sh. */
START_TEST(test_ops_scripts_shellcheck)
{
    const char *argv[] = { "shellcheck", "-s", "sh", "scripts/start-pool.sh", "scripts/enqueue.sh",
                           "scripts/pending.sh", NULL };
    struct out o;

    if (!have("shellcheck")) {
        fprintf(stderr, "check_ops: SKIP test_ops_scripts_shellcheck: shellcheck not installed "
                        "(Debian package shellcheck)\n");
        return;
    }
    o = run(argv);
    ck_assert_msg(o.code == 0, "shellcheck: %.3000s%.3000s", o.out, o.err);
    out_free(&o);
}
END_TEST

/* Returns 1 when s is a stream entry ID followed by a newline, exactly. */
static int is_id_line(const char *s)
{
    unsigned long long a, b;
    int n = 0;

    return sscanf(s, "%llu-%llu\n%n", &a, &b, &n) == 2 && n == (int)strlen(s) && s[n - 1] == '\n';
}

/* enqueue.sh adds one entry (type and data exactly as given) that the
 * pool processes: the probe handler applies its effect once. The URL
 * comes from -u or from REDIS_URL. A data that is not an object is
 * refused with 2 and adds nothing. */
START_TEST(test_ops_scripts_enqueue_processed)
{
    const char *one[] = { "scripts/enqueue.sh", "-u", srv.url, "sh", "probe.test", "{\"effect\": true}", NULL };
    const char *two[] = { "scripts/enqueue.sh", "sh", "probe.test", "{\"effect\": true, \"n\": 2}", NULL };
    const char *bad[] = { "scripts/enqueue.sh", "-u", srv.url, "sh", "probe.test", "[1, 2]", NULL };
    char env_url[200];
    const char *env[] = { env_url, "-SLUICE_REDIS_URL", NULL };
    struct pool p;
    struct out o;
    redisReply *r;
    char id1[64], id2[64];

    snprintf(env_url, sizeof(env_url), "REDIS_URL=%s", srv.url);
    pool_start(&p, "{\"handler\": \"probe\", \"stream\": \"sh\", \"group\": \"sg\"}", "", 0, 1);
    o = run(one);
    ck_assert_msg(o.code == 0 && is_id_line(o.out), "exit %d: %s%s", o.code, o.out, o.err);
    snprintf(id1, sizeof(id1), "%.*s", (int)strlen(o.out) - 1, o.out);
    out_free(&o);
    o = run_env(two, env, NULL, 20000);
    ck_assert_msg(o.code == 0 && is_id_line(o.out), "exit %d: %s%s", o.code, o.out, o.err);
    snprintf(id2, sizeof(id2), "%.*s", (int)strlen(o.out) - 1, o.out);
    out_free(&o);

    r = sl_test_cmd(rc, "XRANGE sh %s %s", id1, id1);
    ck_assert_int_eq(r->elements, 1);
    ck_assert_int_eq(r->element[0]->element[1]->elements, 4);
    ck_assert_str_eq(r->element[0]->element[1]->element[0]->str, "type");
    ck_assert_str_eq(r->element[0]->element[1]->element[1]->str, "probe.test");
    ck_assert_str_eq(r->element[0]->element[1]->element[2]->str, "data");
    ck_assert_str_eq(r->element[0]->element[1]->element[3]->str, "{\"effect\": true}");
    freeReplyObject(r);
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_int(rc, "GET probe:count:%s", id1) == 1 &&
                                     sl_test_int(rc, "GET probe:count:%s", id2) == 1);

    o = run(bad);
    ck_assert_int_eq(o.code, 2);
    ck_assert_msg(strstr(o.err, "object") != NULL, "%s", o.err);
    out_free(&o);
    ck_assert_int_eq(sl_test_int(rc, "XLEN sh"), 2);
    ck_assert_int_eq(group_backlog("sh", "sg"), 0);
    pool_stop(&p);
}
END_TEST

/* Bulk mode: every "TYPE JSON" line of the file becomes one entry, in
 * order, with the JSON byte for byte (quotes, backslashes, UTF-8, inner
 * blanks); comments and blank lines are skipped; the IDs are printed one
 * per line; the pool processes them all. A file with one bad line adds
 * nothing and names the line. */
START_TEST(test_ops_scripts_enqueue_bulk)
{
    static const char *const types[4] = { "probe.a", "probe.b", "probe.c", "probe.d" };
    static const char *const datas[4] = {
        "{\"effect\": true, \"s\": \"a \\\"quoted\\\" back\\\\slash\"}",
        "{\"effect\":true,\"name\":\"Zo\xc3\xab  two  blanks\"}",
        "{ \"effect\" : true }",
        "{\"effect\": true, \"tab\": \"x\\ty\"}",
    };
    char file[600], badfile[600], *save = NULL, *line;
    const char *argv[] = { "scripts/enqueue.sh", "-u", srv.url, "-f", file, "bulk", NULL };
    const char *badv[] = { "scripts/enqueue.sh", "-u", srv.url, "-f", badfile, "bulk", NULL };
    const char *stdinv[] = { "scripts/enqueue.sh", "-u", srv.url, "-f", "-", "bulk", NULL };
    struct pool p;
    struct out o;
    redisReply *r;
    int i = 0;

    snprintf(file, sizeof(file), "%s/bulk.txt", tmp);
    snprintf(badfile, sizeof(badfile), "%s/bad.txt", tmp);
    ck_assert_int_eq(sl_test_write_file(file, "# four entries\n\n%s %s\n   %s   %s  \n%s\t%s\r\n%s %s",
                                        types[0], datas[0], types[1], datas[1], types[2], datas[2],
                                        types[3], datas[3]), 0);
    ck_assert_int_eq(sl_test_write_file(badfile, "probe.a {}\nprobe.b {}\nprobe.c [1]\n"), 0);
    pool_start(&p, "{\"handler\": \"probe\", \"stream\": \"bulk\", \"group\": \"bg\"}", "", 0, 1);

    o = run(argv);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    r = sl_test_cmd(rc, "XRANGE bulk - +");
    ck_assert_int_eq(r->elements, 4);
    for (line = strtok_r(o.out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save), i++) {
        const redisReply *f;
        ck_assert_int_lt(i, 4);
        ck_assert_str_eq(line, r->element[i]->element[0]->str);
        f = r->element[i]->element[1];
        ck_assert_int_eq(f->elements, 4);
        ck_assert_str_eq(f->element[1]->str, types[i]);
        ck_assert_str_eq(f->element[3]->str, datas[i]);
    }
    ck_assert_int_eq(i, 4);
    out_free(&o);
    SL_TEST_ASSERT_EVENTUALLY(10000, group_backlog("bulk", "bg") == 0);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(sl_test_int(rc, "GET probe:count:%s", r->element[i]->element[0]->str), 1);
    ck_assert_int_eq(sl_test_int(rc, "XLEN bulk:dead"), 0);
    freeReplyObject(r);

    o = run(badv);
    ck_assert_int_eq(o.code, 2);
    ck_assert_msg(strstr(o.err, "bad.txt:3:") != NULL, "%s", o.err);
    ck_assert_str_eq(o.out, "");
    out_free(&o);
    ck_assert_int_eq(sl_test_int(rc, "XLEN bulk"), 4);

    o = run_env(stdinv, NULL, file, 20000);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    out_free(&o);
    ck_assert_int_eq(sl_test_int(rc, "XLEN bulk"), 8);
    pool_stop(&p);
}
END_TEST

/* pending.sh prints, with redis-cli only, the same numbers as `sluice
 * pending` for the stalled state: stream length and groups, the group's
 * summary with lag, consumers with counts, entries with deliveries. */
START_TEST(test_ops_scripts_pending_sh)
{
    const char *argv[] = { "scripts/pending.sh", "-u", srv.url, "jobs", "g", NULL };
    const char *all[] = { "scripts/pending.sh", "-u", srv.url, "-n", "2", "jobs", NULL };
    const char *nog[] = { "scripts/pending.sh", "-u", srv.url, "jobs", "nope", NULL };
    const char *nos[] = { "scripts/pending.sh", "-u", srv.url, "nothere", NULL };
    struct out o;
    char *line, *save = NULL, a[64], b[64];
    long long x, y;
    int nl = 0, nent = 0;

    make_stalled();
    o = run(argv);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    for (line = strtok_r(o.out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save), nl++) {
        switch (nl) {
        case 0:
            ck_assert_str_eq(line, "stream jobs: length 6, entries-added 6, groups 1, last-generated-id 1-6");
            break;
        case 1:
            ck_assert_str_eq(line, "group g: 5 pending (1-1 .. 1-5), lag 1, consumers 2, last-delivered-id 1-5");
            break;
        case 2:
            ck_assert_msg(strstr(line, "CONSUMER") && strstr(line, "PENDING"), "%s", line);
            break;
        case 3:
        case 4:
            ck_assert_int_eq(sscanf(line, " %63s %lld %lld", a, &x, &y), 3);
            ck_assert_str_eq(a, nl == 3 ? "stalled-a" : "stalled-b");
            ck_assert_int_eq(x, nl == 3 ? 3 : 2);
            break;
        case 5:
            ck_assert_msg(strstr(line, "DELIVERIES") != NULL, "%s", line);
            break;
        default:
            ck_assert_int_lt(nent, 5);
            ck_assert_int_eq(sscanf(line, " %63s %63s %lld %lld", a, b, &x, &y), 4);
            ck_assert_str_eq(a, sid[nent]);
            ck_assert_str_eq(b, stalled_want[nent].consumer);
            assert_idle(nent, x);
            ck_assert_int_eq(y, stalled_want[nent].deliveries);
            nent++;
        }
    }
    ck_assert_int_eq(nent, 5);
    out_free(&o);

    freeReplyObject(sl_test_cmd(rc, "XGROUP CREATE jobs later $"));
    o = run(all);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.out, "\n  1-1 ") != NULL && strstr(o.out, "\n  1-2 ") != NULL &&
                  strstr(o.out, "\n  1-3 ") == NULL, "-n 2: %s", o.out);
    ck_assert_msg(strstr(o.out, "\ngroup later: 0 pending, lag 0, consumers 0, last-delivered-id 1-6\n") != NULL,
                  "%s", o.out);
    out_free(&o);
    o = run(nog);
    ck_assert_int_eq(o.code, 1);
    ck_assert_msg(strstr(o.err, "no group nope") != NULL, "%s", o.err);
    out_free(&o);
    o = run(nos);
    ck_assert_int_eq(o.code, 1);
    ck_assert_msg(strstr(o.err, "no stream nothere") != NULL, "%s", o.err);
    out_free(&o);
}
END_TEST

/* start-pool.sh runs the pool in its own process (exec): the pid it was
 * started as is the supervisor, which processes entries and stops with
 * exit 0 on SIGTERM. REDIS_URL reaches the pool when SLUICE_REDIS_URL is
 * unset (the configuration points at a closed port). */
START_TEST(test_ops_scripts_start_pool)
{
    char cfg[600], log[600], env_url[200], env_bin[700], wrong[64];
    const char *argv[] = { "/usr/bin/env", "-u", "SLUICE_REDIS_URL", env_url, env_bin,
                           "scripts/start-pool.sh", "-c", cfg, NULL };
    int status = 0;
    pid_t pid;

    /* write_config() uses srv.url; point the file elsewhere instead. */
    write_config(cfg, sizeof(cfg), "start", "{\"handler\": \"probe\", \"stream\": \"sp\", \"group\": \"sg\"}", "", 0);
    {
        char *text = sl_test_read_file(cfg), *at;
        ck_assert_ptr_nonnull(text);
        snprintf(wrong, sizeof(wrong), "redis://127.0.0.1:%d", closed_port());
        at = strstr(text, srv.url);
        ck_assert_ptr_nonnull(at);
        *at = '\0';
        ck_assert_int_eq(sl_test_write_file(cfg, "%s%s%s", text, wrong, at + strlen(srv.url)), 0);
        free(text);
    }
    snprintf(env_url, sizeof(env_url), "REDIS_URL=%s", srv.url);
    snprintf(env_bin, sizeof(env_bin), "SLUICE_BIN=%s", sl_test_bin());
    snprintf(log, sizeof(log), "%s/start.log", tmp);
    pid = sl_test_spawn(argv, log);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_file_contains(log, "event=running "));
    ck_assert_int_eq(file_last_number(log, "role=supervisor event=pool_starting children=1 redis=127.0.0.1:"),
                     srv.port);
    {
        char needle[64];
        snprintf(needle, sizeof(needle), "pid=%ld role=supervisor", (long)pid);
        ck_assert_msg(sl_test_file_contains(log, needle), "the supervisor is not pid %ld", (long)pid);
    }
    freeReplyObject(sl_test_cmd(rc, "XADD sp 9-1 type t data {\"effect\":true}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_int(rc, "GET probe:count:9-1") == 1);
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x", status);
    ck_assert(sl_test_file_contains(log, "event=pool_stopped exit_code=0"));
}
END_TEST

/* ---------------------------------------------------------------------
 * docker-compose.yml and Dockerfile
 * ------------------------------------------------------------------ */

/* `docker-compose config` accepts the file (Redis with appendonly yes,
 * the pool built from the Dockerfile and pointed at the redis service,
 * two replicas with host names and host ports of their own) and refuses a copy with a misspelt key, so the check can fail. */
START_TEST(test_ops_compose_config_valid)
{
    const char *argv[] = { "docker-compose", "-f", "docker-compose.yml", "config", NULL };
    char copy[600];
    const char *bad[] = { "docker-compose", "-f", copy, "config", NULL };
    struct out o;
    char *text, *at, *svc, *end;

    if (!have("docker-compose")) {
        fprintf(stderr, "check_ops: SKIP test_ops_compose_config_valid: docker-compose not "
                        "installed (Debian package docker-compose)\n");
        return;
    }
    o = run(argv);
    ck_assert_msg(o.code == 0, "docker-compose config: %s", o.err);
    ck_assert_msg(strstr(o.out, "- --appendonly\n") != NULL && strstr(o.out, "- \"yes\"\n") != NULL,
                  "redis without AOF: %s", o.out);
    ck_assert_msg(strstr(o.out, "SLUICE_REDIS_URL: redis://redis:6379") != NULL, "%s", o.out);
    ck_assert_msg(strstr(o.out, "dockerfile: Dockerfile") != NULL, "%s", o.out);
    ck_assert_msg(strstr(o.out, "condition: service_healthy") != NULL, "%s", o.out);
    /* Two replicas of the pool, each under its own host name (what
     * Docker gives a container unless the file pins one), so their
     * consumer names differ, and each with a host port of its own. */
    svc = strstr(o.out, "\n  sluice:\n");
    ck_assert_msg(svc != NULL, "no sluice service: %s", o.out);
    end = strstr(svc + 1, "\n  redis:\n");
    if (end == NULL || end < svc)
        end = strstr(svc + 1, "\nversion:");
    if (end == NULL)
        end = strstr(svc + 1, "\nvolumes:");
    ck_assert_ptr_nonnull(end);
    *end = '\0';
    ck_assert_msg(strstr(svc, "\n    deploy:\n      replicas: 2\n") != NULL,
                  "the pool does not run two replicas: %s", svc);
    ck_assert_msg(strstr(svc, "\n    hostname:") == NULL && strstr(svc, "\n    container_name:") == NULL,
                  "the replicas would share one host name: %s", svc);
    /* No fixed host port: each replica's is chosen at start. */
    ck_assert_msg(strstr(svc, "- 127.0.0.1::9121/tcp\n") != NULL,
                  "not one host port per replica: %s", svc);
    out_free(&o);

    text = sl_test_read_file("docker-compose.yml");
    ck_assert_ptr_nonnull(text);
    at = strstr(text, "depends_on:");
    ck_assert_ptr_nonnull(at);
    memcpy(at, "depends_an:", 11);
    snprintf(copy, sizeof(copy), "%s/docker-compose.yml", tmp);
    ck_assert_int_eq(sl_test_write_file(copy, "%s", text), 0);
    free(text);
    o = run(bad);
    ck_assert_msg(o.code != 0, "a misspelt key was accepted");
    out_free(&o);
}
END_TEST

/* The Dockerfile builds on Debian 12, and what its build stage COPYs is
 * enough: the same files in an empty directory build and install with
 * the same make commands, and the binary runs. */
START_TEST(test_ops_dockerfile_build_stage)
{
    char *text = sl_test_read_file("Dockerfile"), *line, *save = NULL, ctx[700], script[2048];
    const char *sh[] = { "/bin/sh", "-c", script, NULL };
    const char *env[] = { "-MAKEFLAGS", "-MAKELEVEL", "-MFLAGS", NULL };
    struct out o;
    size_t used = 0;
    int copies = 0;

    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "FROM debian:12") != NULL, "not Debian 12");
    snprintf(ctx, sizeof(ctx), "%s/ctx", tmp);
    used = (size_t)snprintf(script, sizeof(script), "set -e; mkdir -p '%s'; ", ctx);
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char src[256];
        if (strncmp(line, "COPY ", 5) != 0 || strstr(line, "--from") != NULL)
            continue;
        ck_assert_int_eq(sscanf(line + 5, "%255s", src), 1);
        used += (size_t)snprintf(script + used, sizeof(script) - used,
                                 "mkdir -p \"$(dirname '%s/%s')\"; cp -R '%s' '%s/%s'; ", ctx, src,
                                 src, ctx, src);
        copies++;
    }
    free(text);
    ck_assert_int_ge(copies, 3);
    snprintf(script + used, sizeof(script) - used,
             "cd '%s' && make -s -j2 all >build.log 2>&1 && make -s install PREFIX='%s/opt' >>build.log 2>&1 "
             "&& '%s/opt/bin/sluice' --version", ctx, ctx, ctx);
    o = run_env(sh, env, NULL, 180000);
    ck_assert_msg(o.code == 0, "the Dockerfile's build stage fails (exit %d): %s%s", o.code, o.out, o.err);
    ck_assert_str_eq(o.out, "sluice " SL_VERSION "\n");
    out_free(&o);
}
END_TEST

/* ---------------------------------------------------------------------
 * make install and an out-of-tree worker
 * ------------------------------------------------------------------ */

/* `make install PREFIX=...` installs the binary, libsluice.a, sluice.h
 * and sluice.pc; the worker of tests/install (main.c and hello.c) builds
 * out of the tree with nothing but `pkg-config --cflags --libs sluice`;
 * it answers --version, processes an entry against the test Redis (its
 * effect is applied) and dead-letters an invalid one with the framework's
 * code. */
START_TEST(test_ops_install_out_of_tree)
{
    char prefix[600], pcpath[700], script[4096], cfg[600], log[600], path[800], bin[700], envpc[800];
    /* The plain build, whatever build the tests run from: `make asan`
     * and `make valgrind` pass BUILD, SAN and OPT down in the environment,
     * and an instrumented libsluice.a cannot link into a plain program. */
    const char *make[] = { "make", "-s", "install", NULL, "BUILD=build", "SAN=", "OPT=-O2", NULL };
    const char *env_make[] = { "-MAKEFLAGS", "-MAKELEVEL", "-MFLAGS", NULL };
    const char *sh[] = { "/bin/sh", "-c", script, NULL };
    const char *env_pc[] = { envpc, NULL };
    const char *version[] = { bin, "--version", NULL };
    const char *runv[] = { bin, "run", "-c", cfg, NULL };
    static const char *const files[] = { "bin/sluice", "lib/libsluice.a", "include/sluice.h",
                                         "lib/pkgconfig/sluice.pc" };
    char prefix_arg[700];
    struct out o;
    struct stat st;
    redisReply *r;
    int status = 0;
    size_t i;
    pid_t pid;

    snprintf(prefix, sizeof(prefix), "%s/prefix", tmp);
    snprintf(prefix_arg, sizeof(prefix_arg), "PREFIX=%s", prefix);
    make[3] = prefix_arg;
    o = run_env(make, env_make, NULL, 180000);
    ck_assert_msg(o.code == 0, "make install: %.3000s%.3000s", o.out, o.err);
    out_free(&o);
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", prefix, files[i]);
        ck_assert_msg(stat(path, &st) == 0, "%s not installed", path);
    }
    snprintf(pcpath, sizeof(pcpath), "%s/lib/pkgconfig", prefix);
    snprintf(envpc, sizeof(envpc), "PKG_CONFIG_PATH=%s", pcpath);
    snprintf(bin, sizeof(bin), "%s/hello-worker", tmp);
    snprintf(script, sizeof(script),
             "set -e; test \"$(pkg-config --modversion sluice)\" = '%s'; "
             "cc -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags sluice) -o '%s' "
             "tests/install/main.c tests/install/hello.c $(pkg-config --libs sluice)",
             SL_VERSION, bin);
    o = run_env(sh, env_pc, NULL, 120000);
    ck_assert_msg(o.code == 0, "out-of-tree build: %.3000s%.3000s", o.out, o.err);
    out_free(&o);

    o = run(version);
    ck_assert_int_eq(o.code, 0);
    ck_assert_str_eq(o.out, "sluice " SL_VERSION "\n");
    out_free(&o);

    write_config(cfg, sizeof(cfg), "hello", "{\"handler\": \"hello\", \"stream\": \"hello\", \"group\": \"hg\"}",
                 "", 0);
    snprintf(log, sizeof(log), "%s/hello.log", tmp);
    pid = sl_test_spawn(runv, log);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, sl_test_file_contains(log, "event=running "));
    freeReplyObject(sl_test_cmd(rc, "XADD hello * type hello data {\"name\":\"world\"}"));
    {
        char *id = sl_test_str(rc, "XADD hello 9999999999999-1 type hello data %s",
                               "{\"name\": \"not ok!\"}");
        ck_assert_str_eq(id, "9999999999999-1");
        free(id);
    }
    SL_TEST_ASSERT_EVENTUALLY(10000, group_backlog("hello", "hg") == 0);
    {
        char *v = sl_test_str(rc, "GET hello:world");
        ck_assert_ptr_nonnull(v);
        ck_assert_str_eq(v, "hello, world");
        free(v);
    }
    r = sl_test_cmd(rc, "XRANGE hello:dead - +");
    ck_assert_int_eq(r->elements, 1);
    {
        const redisReply *f = r->element[0]->element[1];
        const char *err = NULL, *src = NULL;
        for (i = 0; i + 1 < f->elements; i += 2) {
            if (!strcmp(f->element[i]->str, "error"))
                err = f->element[i + 1]->str;
            if (!strcmp(f->element[i]->str, "source_id"))
                src = f->element[i + 1]->str;
        }
        ck_assert_ptr_nonnull(err);
        ck_assert_msg(strncmp(err, "invalid_id", 10) == 0, "error: %s", err);
        ck_assert_str_eq(src, "9999999999999-1");
    }
    freeReplyObject(r);
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x", status);
}
END_TEST

/* ---------------------------------------------------------------------
 * Secrets: passwords never shown, read from a file, refusals named
 *
 * The server of this TCase starts without a password (the harness waits
 * for PING); each test sets one with CONFIG SET requirepass, and the
 * fixture clears whatever a previous test left.
 * ------------------------------------------------------------------ */

/* Every password a test of this case may set. */
static const char *const secret_pws[] = { "rightpw", "secretpw", "first-pw", "second-pw", NULL };

/* Clears any password a previous test left (it may have failed before
 * its own cleanup), then runs the usual per-test fixture. */
static void secrets_up(void)
{
    redisContext *c = sl_test_connect(&srv);
    redisReply *r;
    int i;

    ck_assert_ptr_nonnull(c);
    for (i = 0; secret_pws[i] != NULL; i++) {
        r = sl_test_cmd(c, "AUTH %s", secret_pws[i]);
        freeReplyObject(r);
    }
    r = sl_test_cmd(c, "CONFIG SET requirepass %s", "");
    ck_assert_msg(r->type == REDIS_REPLY_STATUS, "cannot clear requirepass: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
    redisFree(c);
    test_up();
}

/* Sets the server's password; rc (already connected) stays usable. */
static void set_password(const char *pw)
{
    freeReplyObject(sl_test_cmd(rc, "CONFIG SET requirepass %s", pw));
    freeReplyObject(sl_test_cmd(rc, "AUTH %s", pw));
}

/* Writes a configuration for the harness server whose "redis" object
 * gets `redis_extra` (text starting with a comma, or "") and whose url
 * is `url` (NULL: the server's, without a password). Returns buf. */
static const char *secrets_config(char *buf, size_t len, const char *url, const char *redis_extra,
                                  const char *workers)
{
    snprintf(buf, len, "%s/secrets.json", tmp);
    ck_assert_int_eq(sl_test_write_file(buf,
        "{\"redis\": {\"url\": \"%s\", \"connect_timeout_ms\": 1000, \"command_timeout_ms\": 2000%s},\n"
        " \"defaults\": {\"block_ms\": 200, \"heartbeat_ms\": 100, \"retry_backoff_ms\": [50, 400],\n"
        "   \"shutdown_timeout_ms\": 3000},\n"
        " \"workers\": [%s],\n"
        " \"metrics\": {\"listen\": null}}\n",
        url != NULL ? url : srv.url, redis_extra, workers), 0);
    return buf;
}

/* Asserts that neither output of o holds `secret`. */
static void assert_not_shown(const struct out *o, const char *secret)
{
    ck_assert_msg(strstr(o->out, secret) == NULL, "stdout shows %s: %s", secret, o->out);
    ck_assert_msg(strstr(o->err, secret) == NULL, "stderr shows %s: %s", secret, o->err);
}

/* Every admin command, with a wrong password or none at all, exits 1
 * saying "authentication failed", and never prints the password. */
START_TEST(test_ops_secrets_admin_auth_failed)
{
    char url[256], cfgpath[600];
    const char *const verbs[][5] = {
        { "stats", NULL }, { "workers", NULL }, { "pending", "s", "g", NULL },
        { "dlq", "list", "s", NULL }, { "enqueue", "s", "t", "{}", NULL },
    };
    size_t i, j;

    set_password("rightpw");
    snprintf(url, sizeof(url), "redis://:wrongpw@127.0.0.1:%d", srv.port);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, "", "{\"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\"}");
    for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        const char *argv[12];
        struct out o;
        size_t n = 0;

        argv[n++] = sl_test_bin();
        for (j = 0; verbs[i][j] != NULL; j++)
            argv[n++] = verbs[i][j];
        argv[n++] = "-c";
        argv[n++] = cfgpath;
        argv[n++] = "--redis";
        argv[n++] = url;
        argv[n] = NULL;
        o = run(argv);
        ck_assert_msg(o.code == 1, "%s: exit %d: %s", verbs[i][0], o.code, o.err);
        ck_assert_msg(strstr(o.err, "authentication failed") != NULL, "%s: %s", verbs[i][0], o.err);
        assert_not_shown(&o, "wrongpw");
        out_free(&o);

        /* No password at all: NOAUTH, also an authentication failure. */
        n -= 2;
        argv[n] = NULL;
        o = run(argv);
        ck_assert_msg(o.code == 1, "%s (no password): exit %d: %s", verbs[i][0], o.code, o.err);
        ck_assert_msg(strstr(o.err, "authentication failed") != NULL, "%s: %s", verbs[i][0], o.err);
        out_free(&o);
    }
    /* Nothing was enqueued. */
    ck_assert_int_eq(sl_test_int(rc, "EXISTS s"), 0);
}
END_TEST

/* A URL the parser refuses, from each source and in each form, is shown
 * redacted: exit 2, the password nowhere. */
START_TEST(test_ops_secrets_bad_urls_redacted)
{
    static const char *const urls[] = {
        "rediss://:hunter2@127.0.0.1:1", "redis://admin:hunter2@127.0.0.1:1",
        "REDIS://:hunter2@127.0.0.1:99999", "redis://:hunter2@127.0.0.1:1/x",
        "redis://hunter2@127.0.0.1:1", "redis://:hunter2",
    };
    char cfgpath[600], envvar[300];
    size_t i;

    for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        const char *flag[] = { sl_test_bin(), "workers", "-c", cfgpath, "--redis", urls[i], NULL };
        const char *plain[] = { sl_test_bin(), "workers", "-c", cfgpath, NULL };
        const char *const env[] = { envvar, NULL };
        struct out o;

        secrets_config(cfgpath, sizeof(cfgpath), NULL, "", "{\"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\"}");
        o = run(flag);
        ck_assert_msg(o.code == 2, "%s: exit %d", urls[i], o.code);
        ck_assert_msg(strstr(o.err, "--redis") != NULL, "%s", o.err);
        assert_not_shown(&o, "hunter2");
        out_free(&o);

        secrets_config(cfgpath, sizeof(cfgpath), urls[i], "", "{\"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\"}");
        o = run(plain);
        ck_assert_msg(o.code == 2, "%s in the file: exit %d", urls[i], o.code);
        ck_assert_msg(strstr(o.err, "redis.url") != NULL, "%s", o.err);
        assert_not_shown(&o, "hunter2");
        out_free(&o);

        secrets_config(cfgpath, sizeof(cfgpath), NULL, "", "{\"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\"}");
        snprintf(envvar, sizeof(envvar), "SLUICE_REDIS_URL=%s", urls[i]);
        o = run_env(plain, env, NULL, 20000);
        ck_assert_msg(o.code == 2, "%s from the environment: exit %d", urls[i], o.code);
        ck_assert_msg(strstr(o.err, "SLUICE_REDIS_URL") != NULL, "%s", o.err);
        assert_not_shown(&o, "hunter2");
        out_free(&o);
    }
}
END_TEST

/* Returns 1 when /proc/<pid>/cmdline holds needle (its NULs read as
 * spaces), 0 when not, -1 when it cannot be read. */
static int cmdline_has(pid_t pid, const char *needle)
{
    char path[64], buf[8192];
    size_t n, i;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    for (i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* A pool given its password with --redis: the supervisor's and every
 * child's command line show "redis://:***@", and nothing it prints holds
 * the password. */
START_TEST(test_ops_secrets_password_not_in_cmdline)
{
    char url[256], cfgpath[600], logpath[600];
    const char *argv[] = { sl_test_bin(), "run", "-c", cfgpath, "--redis", url, NULL };
    pid_t pid, kids[2];
    int status, i;

    set_password("secretpw");
    snprintf(url, sizeof(url), "redis://:secretpw@127.0.0.1:%d", srv.port);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, "",
                   "{\"handler\": \"noop\", \"stream\": \"cs\", \"group\": \"cg\", \"processes\": 2}");
    snprintf(logpath, sizeof(logpath), "%s/pool.log", tmp);
    pid = sl_test_spawn(argv, logpath);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(15000, file_count(logpath, "event=running ") >= 2 || !sl_test_pid_alive(pid));
    ck_assert_msg(sl_test_pid_alive(pid), "the pool exited; see %s", logpath);
    freeReplyObject(sl_test_cmd(rc, "XADD cs * type t data {}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, group_backlog("cs", "cg") == 0);

    ck_assert_int_eq(cmdline_has(pid, "secretpw"), 0);
    ck_assert_int_eq(cmdline_has(pid, "redis://:***@127.0.0.1"), 1);
    for (i = 0; i < 2; i++) {
        char needle[512];

        snprintf(needle, sizeof(needle), "event=child_started consumer=%s:noop:%d child=", host, i);
        kids[i] = (pid_t)file_last_number(logpath, needle);
        ck_assert_int_gt(kids[i], 0);
        ck_assert_int_eq(cmdline_has(kids[i], "secretpw"), 0);
        ck_assert_int_eq(cmdline_has(kids[i], "redis://:***@127.0.0.1"), 1);
    }
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);
    ck_assert_int_eq(file_count(logpath, "secretpw"), 0);
}
END_TEST

/* A wrong password: `run` keeps retrying and logs each step as
 * "authentication failed: WRONGPASS ...", never error="" and never the
 * password; once the password is right, the pool starts. */
START_TEST(test_ops_secrets_wrong_password_logged)
{
    char cfgpath[600], logpath[600], pwfile[600];
    const char *argv[] = { sl_test_bin(), "run", "-c", cfgpath, NULL };
    char extra[700];
    pid_t pid;
    int status;

    set_password("rightpw");
    snprintf(pwfile, sizeof(pwfile), "%s/pw", tmp);
    ck_assert_int_eq(sl_test_write_file(pwfile, "wrongpw\n"), 0);
    snprintf(extra, sizeof(extra), ", \"password_file\": \"%s\"", pwfile);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, extra,
                   "{\"handler\": \"noop\", \"stream\": \"ws\", \"group\": \"wg\"}");
    snprintf(logpath, sizeof(logpath), "%s/pool.log", tmp);
    pid = sl_test_spawn(argv, logpath);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, file_count(logpath, "event=redis_unavailable") >= 2);
    ck_assert(sl_test_pid_alive(pid));
    ck_assert_msg(file_count(logpath, "error=\"authentication failed: WRONGPASS") >= 2,
                  "see %s", logpath);
    ck_assert_int_eq(file_count(logpath, "error=\"\""), 0);
    ck_assert_int_eq(file_count(logpath, "wrongpw"), 0);
    ck_assert_int_eq(file_count(logpath, "event=running "), 0);
    /* The file is read again at the next attempt: fixed, the pool runs. */
    ck_assert_int_eq(sl_test_write_file(pwfile, "rightpw\n"), 0);
    SL_TEST_ASSERT_EVENTUALLY(15000, file_count(logpath, "event=running ") >= 1);
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);
    ck_assert_int_eq(file_count(logpath, "rightpw"), 0);
}
END_TEST

/* The same refusal with the password in the URL (the form whose log
 * said error="" before). */
START_TEST(test_ops_secrets_wrong_url_password_logged)
{
    char cfgpath[600], logpath[600], url[256];
    const char *argv[] = { sl_test_bin(), "run", "-c", cfgpath, "--redis", url, NULL };
    pid_t pid;
    int status;

    set_password("rightpw");
    snprintf(url, sizeof(url), "redis://:wrongpw@127.0.0.1:%d", srv.port);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, "",
                   "{\"handler\": \"noop\", \"stream\": \"ws\", \"group\": \"wg\"}");
    snprintf(logpath, sizeof(logpath), "%s/pool.log", tmp);
    pid = sl_test_spawn(argv, logpath);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, file_count(logpath, "event=redis_unavailable") >= 2);
    ck_assert(sl_test_pid_alive(pid));
    ck_assert_msg(file_count(logpath, "error=\"authentication failed: WRONGPASS") >= 2,
                  "see %s", logpath);
    ck_assert_int_eq(file_count(logpath, "error=\"\""), 0);
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);
    ck_assert_int_eq(file_count(logpath, "wrongpw"), 0);
}
END_TEST

/* A pool whose password comes from a file keeps working across a
 * rotation: new password in the file and in Redis, every client killed,
 * and the supervisor and its children reconnect with the new one. */
START_TEST(test_ops_secrets_password_file_rotation)
{
    char cfgpath[600], logpath[600], pwfile[600], extra[700];
    const char *argv[] = { sl_test_bin(), "run", "-c", cfgpath, NULL };
    redisContext *killer;
    pid_t pid;
    int status, i;

    set_password("first-pw");
    snprintf(pwfile, sizeof(pwfile), "%s/pw", tmp);
    ck_assert_int_eq(sl_test_write_file(pwfile, "first-pw\n"), 0);
    snprintf(extra, sizeof(extra), ", \"password_file\": \"%s\"", pwfile);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, extra,
                   "{\"handler\": \"noop\", \"stream\": \"rs\", \"group\": \"rg\", \"processes\": 2}");
    snprintf(logpath, sizeof(logpath), "%s/pool.log", tmp);
    pid = sl_test_spawn(argv, logpath);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(15000, file_count(logpath, "event=running ") >= 2 || !sl_test_pid_alive(pid));
    ck_assert_msg(sl_test_pid_alive(pid), "the pool exited; see %s", logpath);
    for (i = 0; i < 20; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD rs * type t data {}"));
    SL_TEST_ASSERT_EVENTUALLY(10000, group_backlog("rs", "rg") == 0);

    /* Rotate: the file first, then Redis, then drop every connection
     * (CLIENT KILL with a filter spares the caller). */
    ck_assert_int_eq(sl_test_write_file(pwfile, "second-pw\n"), 0);
    set_password("second-pw");
    killer = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(killer);
    freeReplyObject(sl_test_cmd(killer, "AUTH second-pw"));
    ck_assert_int_ge(sl_test_int(killer, "CLIENT KILL TYPE normal SKIPME yes"), 1);
    redisFree(rc);                /* killed too: use the killer's connection */
    rc = killer;

    for (i = 0; i < 20; i++)
        freeReplyObject(sl_test_cmd(rc, "XADD rs * type t data {}"));
    SL_TEST_ASSERT_EVENTUALLY(15000, group_backlog("rs", "rg") == 0);
    ck_assert_int_eq(sl_test_int(rc, "XLEN rs:dead"), 0);
    ck_assert(sl_test_pid_alive(pid));
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);
    ck_assert_int_eq(file_count(logpath, "first-pw"), 0);
    ck_assert_int_eq(file_count(logpath, "second-pw"), 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * Limits
 * ------------------------------------------------------------------ */

/* --metrics with a port that does not fit 16 bits is refused (exit 2)
 * instead of listening on another port. */
START_TEST(test_ops_limits_metrics_address_checked)
{
    char cfgpath[600];
    const char *argv[] = { sl_test_bin(), "run", "-c", cfgpath, "--metrics", "127.0.0.1:82838", NULL };
    struct out o;

    secrets_config(cfgpath, sizeof(cfgpath), NULL, "", "{\"handler\": \"noop\", \"stream\": \"s\", \"group\": \"g\"}");
    o = run_env(argv, NULL, NULL, 10000);
    ck_assert_msg(o.code == 2, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.err, "--metrics \"127.0.0.1:82838\": expected host:port") != NULL, "%s", o.err);
    out_free(&o);
}
END_TEST

/* A configuration file is read up to its size limit: /dev/zero fails
 * fast with exit 2 instead of filling memory. */
START_TEST(test_ops_limits_config_size)
{
    const char *argv[] = { sl_test_bin(), "workers", "-c", "/dev/zero", NULL };
    struct out o = run_env(argv, NULL, NULL, 10000);

    ck_assert_msg(o.code == 2, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.err, "/dev/zero: larger than 1048576 bytes") != NULL, "%s", o.err);
    out_free(&o);
}
END_TEST

/* Stream and group names at the documented maximum (200 bytes) give the
 * right keys end to end: a dead letter lands in "<stream>:dead" and
 * `sluice dlq list` shows it; one byte more is refused at start. */
START_TEST(test_ops_limits_max_length_names)
{
    char stream[201], group[201], longer[202], workers[700], cfgpath[600], logpath[600];
    char deadkey[210], akey[600];
    const char *argv[] = { sl_test_bin(), "run", "-c", cfgpath, NULL };
    const char *list[] = { sl_test_bin(), "dlq", "list", stream, "--redis", srv.url, NULL };
    struct out o;
    pid_t pid;
    int status;

    memset(stream, 'S', 200);
    stream[200] = '\0';
    memset(group, 'G', 200);
    group[200] = '\0';
    snprintf(workers, sizeof(workers), "{\"handler\": \"probe\", \"stream\": \"%s\", \"group\": \"%s\"}",
             stream, group);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, "", workers);
    snprintf(logpath, sizeof(logpath), "%s/pool.log", tmp);
    pid = sl_test_spawn(argv, logpath);
    ck_assert_int_gt(pid, 0);
    track(pid);
    SL_TEST_ASSERT_EVENTUALLY(15000, file_count(logpath, "event=running ") >= 1 || !sl_test_pid_alive(pid));
    ck_assert_msg(sl_test_pid_alive(pid), "the pool exited; see %s", logpath);
    /* One entry dead at once, one dead after its retries (attempts key). */
    freeReplyObject(sl_test_cmd(rc, "XADD %s * type t data %s", stream, "{\"dead\":\"nope\"}"));
    freeReplyObject(sl_test_cmd(rc, "XADD %s * type t data %s", stream, "{\"retry\":1}"));
    snprintf(deadkey, sizeof(deadkey), "%s:dead", stream);
    SL_TEST_ASSERT_EVENTUALLY(15000, sl_test_int(rc, "XLEN %s", deadkey) == 1 &&
                                     group_backlog(stream, group) == 0);
    snprintf(akey, sizeof(akey), "sluice:attempts:200:%s:%s", stream, group);
    /* Nothing went to a truncated key. */
    ck_assert_int_eq(count_keys("*:dead"), 1);
    ck_assert_int_eq(count_keys("sluice:attempts:*"), sl_test_int(rc, "EXISTS %s", akey));
    sl_test_kill(pid, SIGTERM);
    ck_assert(sl_test_wait_exit(pid, 10000, &status));
    untrack(pid);

    o = run(list);
    ck_assert_msg(o.code == 0, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.out, "nope") != NULL, "dlq list shows: %s", o.out);
    out_free(&o);

    memset(longer, 'S', 201);
    longer[201] = '\0';
    snprintf(workers, sizeof(workers), "{\"handler\": \"probe\", \"stream\": \"%s\", \"group\": \"g\"}", longer);
    secrets_config(cfgpath, sizeof(cfgpath), NULL, "", workers);
    o = run_env(argv, NULL, NULL, 10000);
    ck_assert_msg(o.code == 2, "exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.err, "workers[0].stream: longer than 200 bytes") != NULL, "%s", o.err);
    out_free(&o);
}
END_TEST

/* ---------------------------------------------------------------------
 * The HTTP listener's limits
 * ------------------------------------------------------------------ */

#define HTTP_CAP 64               /* the listener's connection cap (metrics.c) */
#define CHILD_FAIL_NOFILE "9"     /* descriptors enough for the supervisor (8), not a child (11) */

/* Returns 1 when the server has closed the connection fd (EOF or reset
 * waiting to be read), 0 while it is open. Reads nothing. */
static int peer_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Returns how many of the n connections in fds the server has closed. */
static int count_closed(const int *fds, int n)
{
    int i, k = 0;

    for (i = 0; i < n; i++)
        k += peer_closed(fds[i]);
    return k;
}

/* Returns the value in kB of `key` ("VmHWM:") in /proc/<pid>/status, or
 * -1. */
static long proc_status_kb(pid_t pid, const char *key)
{
    char path[64], *s, *p;
    long v = -1;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    s = sl_test_read_file(path);
    if (s != NULL && (p = strstr(s, key)) != NULL)
        v = strtol(p + strlen(key), NULL, 10);
    free(s);
    return v;
}

/* Returns the CPU time of pid (user + system) in clock ticks, or -1. */
static long long proc_cpu_ticks(pid_t pid)
{
    char path[64], *s, *p;
    long long ut = -1, st = -1;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    s = sl_test_read_file(path);
    /* Fields 14 and 15, counted after the ")" that ends the name. */
    if (s != NULL && (p = strrchr(s, ')')) != NULL &&
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st) != 2)
        ut = st = -1;
    free(s);
    return ut < 0 ? -1 : ut + st;
}

/* Collects in inodes (up to max) the socket inodes of every TCP socket
 * whose local port is `port`, from /proc/net/tcp and tcp6. Returns how
 * many. */
static int port_inodes(int port, unsigned long *inodes, int max)
{
    const char *files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
    int f, n = 0;

    for (f = 0; f < 2; f++) {
        char *s = sl_test_read_file(files[f]);
        char *line, *save = NULL;
        for (line = s ? strtok_r(s, "\n", &save) : NULL; line != NULL;
             line = strtok_r(NULL, "\n", &save)) {
            char local[80];
            unsigned lport;
            unsigned long ino;
            char *colon;
            if (sscanf(line, " %*d: %79s %*s %*x %*s %*s %*s %*d %*d %lu", local, &ino) != 2)
                continue;          /* the header line */
            colon = strrchr(local, ':');
            if (colon != NULL && sscanf(colon + 1, "%x", &lport) == 1 && (int)lport == port &&
                n < max)
                inodes[n++] = ino;
        }
        free(s);
    }
    return n;
}

/* Returns how many of pid's descriptors are sockets among inodes. */
static int pid_sockets_among(pid_t pid, const unsigned long *inodes, int n)
{
    char dir[64], path[400], link[128];
    DIR *d;
    struct dirent *e;
    int k = 0, i;

    snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
    d = opendir(dir);
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        ssize_t len;
        unsigned long ino;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        len = readlink(path, link, sizeof(link) - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        if (sscanf(link, "socket:[%lu]", &ino) != 1)
            continue;
        for (i = 0; i < n; i++)
            k += inodes[i] == ino;
    }
    closedir(d);
    return k;
}

/* Starts a pool of one noop child with metrics, like pool_start(), but
 * under `prlimit --nofile=nofile` (0: no limit set). */
static void pool_start_nofile(struct pool *p, const char *stream, int nofile)
{
    char workers[200], lim[40];
    const char *argv[] = { "prlimit", lim, sl_test_bin(), "run", "-c", p->cfg, NULL };

    memset(p, 0, sizeof(*p));
    snprintf(workers, sizeof(workers),
             "{\"handler\": \"noop\", \"stream\": \"%s\", \"group\": \"g\"}", stream);
    snprintf(lim, sizeof(lim), "--nofile=%d", nofile);
    write_config(p->cfg, sizeof(p->cfg), "pool", workers, "", 1);
    snprintf(p->log, sizeof(p->log), "%s/pool.log", tmp);
    p->pid = sl_test_spawn(argv, p->log);
    ck_assert_int_gt(p->pid, 0);
    track(p->pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, file_count(p->log, "event=running ") >= 1 ||
                                     !sl_test_pid_alive(p->pid));
    ck_assert_msg(sl_test_pid_alive(p->pid), "the pool exited; see %s", p->log);
    p->port = (int)file_last_number(p->log, "event=metrics_listening addr=127.0.0.1:");
    ck_assert_int_gt(p->port, 0);
}

/* Connections beyond the cap close the oldest ones, and /healthz still
 * answers while idle clients hold every slot. (Before, every connection
 * stayed open for good.) */
START_TEST(test_ops_http_connection_cap)
{
    struct pool p;
    int fds[HTTP_CAP + 10], i, closed;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hc\", \"group\": \"g\"}", "", 1, 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    for (i = 0; i < HTTP_CAP + 10; i++) {
        fds[i] = http_connect(p.port);
        ck_assert_int_ge(fds[i], 0);
    }
    SL_TEST_ASSERT_EVENTUALLY(5000, count_closed(fds, HTTP_CAP + 10) >= 10);
    ck_assert_msg(healthz_is(&p, 200, "ok\n"), "/healthz did not answer with every slot taken");
    closed = count_closed(fds, HTTP_CAP + 10);
    ck_assert_msg(closed >= 10 && closed <= 11, "%d of %d connections closed", closed,
                  HTTP_CAP + 10);
    /* The oldest went first. */
    for (i = 0; i < 10; i++)
        ck_assert_msg(peer_closed(fds[i]), "connection %d of the oldest is open", i);
    ck_assert_int_ge(file_count(p.log, "event=http_connection_limit max=64"), 1);
    for (i = 0; i < HTTP_CAP + 10; i++)
        close(fds[i]);
    pool_stop(&p);
}
END_TEST

/* With the default timeouts, an idle connection and one that trickles
 * its headers a byte at a time (never idle for long) are both closed
 * within the 10 s request deadline, and neither well before it. (Before,
 * both stayed open for good.) */
START_TEST(test_ops_http_timeouts)
{
    struct pool p;
    const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    long long start, dl, closed_idle = -1, closed_slow = -1, next_byte;
    int idle, slow;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"ht\", \"group\": \"g\"}", "", 1, 1);
    idle = http_connect(p.port);
    slow = http_connect(p.port);
    ck_assert(idle >= 0 && slow >= 0);
    ck_assert_int_eq(write(slow, head, strlen(head)), (ssize_t)strlen(head));
    start = next_byte = sl_test_now_ms();
    dl = sl_test_deadline(25000);
    while ((closed_idle < 0 || closed_slow < 0) && sl_test_tick(dl)) {
        long long now = sl_test_now_ms();
        if (closed_idle < 0 && peer_closed(idle))
            closed_idle = now - start;
        if (closed_slow < 0 && peer_closed(slow))
            closed_slow = now - start;
        if (closed_slow < 0 && now >= next_byte) {
            /* May fail when the server has just closed: seen next poll. */
            if (send(slow, "a", 1, MSG_NOSIGNAL) < 0)
                next_byte = now;
            next_byte = now + 500;
        }
    }
    ck_assert_msg(closed_idle >= 0, "the idle connection is still open after 25 s");
    ck_assert_msg(closed_slow >= 0, "the trickling connection is still open after 25 s");
    ck_assert_msg(closed_idle >= 8000, "the idle connection closed after %lld ms", closed_idle);
    ck_assert_msg(closed_slow >= 8000, "the trickling connection closed after %lld ms",
                  closed_slow);
    close(idle);
    close(slow);
    ck_assert_msg(healthz_is(&p, 200, "ok\n"), "/healthz after the timeouts");
    pool_stop(&p);
}
END_TEST

/* GET and HEAD only: other methods get 405 with an Allow header, and a
 * HEAD gets the headers of the GET without its body. (Before, POST, PUT
 * and DELETE answered 200.) */
START_TEST(test_ops_http_methods)
{
    const char *methods[] = { "POST", "PUT", "DELETE", "PATCH", "OPTIONS" };
    const char *paths[] = { "/healthz", "/metrics" };
    struct pool p;
    struct http h;
    char req[256];
    size_t i, j;
    int n;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hm\", \"group\": \"g\"}", "", 1, 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        for (j = 0; j < 2; j++) {
            n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nContent-Length: 3\r\n\r\nx=1",
                         methods[i], paths[j]);
            h = http_request(p.port, req, (size_t)n, 0);
            ck_assert_msg(h.status == 405, "%s %s answered %d", methods[i], paths[j], h.status);
            ck_assert_msg(strstr(h.head, "\r\nAllow: GET, HEAD") != NULL, "%s %s: %s",
                          methods[i], paths[j], h.head);
            http_free(&h);
        }
    n = snprintf(req, sizeof(req), "HEAD /healthz HTTP/1.0\r\n\r\n");
    h = http_request(p.port, req, (size_t)n, 0);
    ck_assert_int_eq(h.status, 200);
    ck_assert_msg(strstr(h.head, "\r\nContent-Length: 3") != NULL, "HEAD: %s", h.head);
    ck_assert_msg(strcmp(h.body, "") == 0, "HEAD answered a body: %s", h.body);
    http_free(&h);
    pool_stop(&p);
}
END_TEST

/* A 10 MB body (with a length, or chunked) gets 413 or a closed
 * connection and the supervisor's peak memory does not grow by more than
 * a few MB; headers over the limit are refused. (Before, the body was
 * read into memory and answered 200, and so were the headers.) */
START_TEST(test_ops_http_size_limits)
{
    struct pool p;
    struct http h;
    char req[256], *big;
    long hwm0, hwm1;
    int n;

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hz\", \"group\": \"g\"}", "", 1, 1);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is(&p, 200, "ok\n"));
    hwm0 = proc_status_kb(p.pid, "VmHWM:");
    ck_assert_int_gt(hwm0, 0);
    n = snprintf(req, sizeof(req), "POST /metrics HTTP/1.0\r\nContent-Length: %d\r\n\r\n",
                 10 << 20);
    h = http_request(p.port, req, (size_t)n, (size_t)10 << 20);
    ck_assert_msg(h.status == 413 || h.status == -1, "a 10 MB body answered %d", h.status);
    http_free(&h);
    /* One chunk of 10 MB: the length comes first, the limit applies as it
     * is read. */
    n = snprintf(req, sizeof(req),
                 "POST /metrics HTTP/1.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "%x\r\n", 10 << 20);
    h = http_request(p.port, req, (size_t)n, (size_t)10 << 20);
    ck_assert_msg(h.status == 413 || h.status == -1, "a 10 MB chunk answered %d", h.status);
    http_free(&h);
    hwm1 = proc_status_kb(p.pid, "VmHWM:");
    ck_assert_msg(hwm1 - hwm0 < 4096, "peak RSS grew from %ld kB to %ld kB", hwm0, hwm1);
    /* 16 KiB of headers. */
    big = malloc(17000);
    ck_assert_ptr_nonnull(big);
    n = snprintf(big, 17000, "GET /healthz HTTP/1.0\r\nX-Big: %0*d\r\n\r\n", 16384, 0);
    h = http_request(p.port, big, (size_t)n, 0);
    ck_assert_msg(h.status != 200, "16 KiB of headers answered 200");
    http_free(&h);
    free(big);
    ck_assert_msg(healthz_is(&p, 200, "ok\n"), "/healthz after the refusals");
    pool_stop(&p);
}
END_TEST

/* A child forked while a client holds a connection holds no socket of
 * the listener's port, neither the listener nor the connection. (Before,
 * every accepted connection open at a fork stayed open in the child.) */
START_TEST(test_ops_http_child_closes_sockets)
{
    struct pool p;
    unsigned long inodes[64];
    int fd, n;
    pid_t child, fresh;
    char needle[512];

    pool_start(&p, "{\"handler\": \"noop\", \"stream\": \"hf\", \"group\": \"g\"}", "", 1, 1);
    fd = http_connect(p.port);
    ck_assert_int_ge(fd, 0);
    /* The supervisor holds the listener and the accepted connection. */
    SL_TEST_ASSERT_EVENTUALLY(5000, (n = port_inodes(p.port, inodes, 64)) >= 2 &&
                                    pid_sockets_among(p.pid, inodes, n) >= 2);
    child = child_pid(&p, "noop:0");
    ck_assert_int_gt(child, 0);
    sl_test_kill(child, SIGKILL);
    SL_TEST_ASSERT_EVENTUALLY(5000, (fresh = child_pid(&p, "noop:0")) != child && fresh > 0);
    snprintf(needle, sizeof(needle), "pid=%ld role=%s:noop:0 event=running", (long)fresh, host);
    SL_TEST_ASSERT_EVENTUALLY(5000, file_count(p.log, needle) == 1);
    ck_assert_msg(!peer_closed(fd), "the held connection was closed meanwhile");
    n = port_inodes(p.port, inodes, 64);
    ck_assert_int_ge(n, 2);
    ck_assert_msg(pid_sockets_among(fresh, inodes, n) == 0,
                  "the new child %ld holds %d socket(s) of port %d", (long)fresh,
                  pid_sockets_among(fresh, inodes, n), p.port);
    close(fd);
    pool_stop(&p);
}
END_TEST

/* At the descriptor limit the supervisor neither spins nor floods its log:
 * accept errors are logged a few times, its CPU time stays low, /healthz
 * answers once the clients leave, and a child restarted meanwhile starts
 * (it closes the connections it inherited). (Before, the supervisor
 * logged "Error from accept() call" millions of times at 100% CPU and the
 * restarted child died at start.) */
START_TEST(test_ops_http_fd_exhaustion)
{
    struct pool p;
    int fds[80], i;
    long long cpu0, cpu1, t0, t1;
    pid_t child, fresh;
    char needle[512];

    pool_start_nofile(&p, "hx", 40);
    for (i = 0; i < 80; i++)
        fds[i] = http_connect(p.port);     /* the kernel queues those not accepted */
    SL_TEST_ASSERT_EVENTUALLY(5000, file_count(p.log, "event=http_accept_failed") >= 1 ||
                                    file_count(p.log, "Error from accept() call") >= 1);
    child = child_pid(&p, "noop:0");
    ck_assert_int_gt(child, 0);
    sl_test_kill(child, SIGKILL);
    SL_TEST_ASSERT_EVENTUALLY(5000, (fresh = child_pid(&p, "noop:0")) != child && fresh > 0);
    snprintf(needle, sizeof(needle), "pid=%ld role=%s:noop:0 event=running", (long)fresh, host);
    SL_TEST_ASSERT_EVENTUALLY(5000, file_count(p.log, needle) == 1 ||
                                    file_count(p.log, "event=child_exited") >= 2);
    ck_assert_msg(file_count(p.log, needle) == 1, "the restarted child did not start; see %s",
                  p.log);
    cpu0 = proc_cpu_ticks(p.pid);
    t0 = sl_test_now_ms();
    {
        long long dl = sl_test_deadline(2000);
        while (sl_test_tick(dl))
            ;
    }
    cpu1 = proc_cpu_ticks(p.pid);
    t1 = sl_test_now_ms();
    ck_assert(cpu0 >= 0 && cpu1 >= 0);
    /* Ticks are 10 ms: below a fifth of the time elapsed. */
    ck_assert_msg((cpu1 - cpu0) * 10 * 5 < t1 - t0, "the supervisor used %lld ms of CPU in %lld ms",
                  (cpu1 - cpu0) * 10, t1 - t0);
    ck_assert_int_eq(file_count(p.log, "Error from accept() call"), 0);
    ck_assert_msg(file_count(p.log, "event=http_accept_failed") <= 8,
                  "%d accept error lines", file_count(p.log, "event=http_accept_failed"));
    for (i = 0; i < 80; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    SL_TEST_ASSERT_EVENTUALLY(10000, healthz_is(&p, 200, "ok\n"));
    ck_assert_int_ge(file_count(p.log, "event=http_accept_resumed"), 1);
    pool_stop(&p);
}
END_TEST

/* A child that cannot start (here: no descriptor left for its event
 * base) logs why, in the pool's format, before the supervisor logs its
 * exit status. (Before, libevent wrote a bare "[err] ..." line and called
 * exit(1).) */
START_TEST(test_ops_child_start_failure_logged)
{
    const char *argv[] = { "prlimit", "--nofile=" CHILD_FAIL_NOFILE, sl_test_bin(), "run", "-c",
                           NULL, NULL };
    struct pool p;

    memset(&p, 0, sizeof(p));
    write_config(p.cfg, sizeof(p.cfg), "pool",
                 "{\"handler\": \"noop\", \"stream\": \"hl\", \"group\": \"g\"}", "", 1);
    argv[5] = p.cfg;
    snprintf(p.log, sizeof(p.log), "%s/pool.log", tmp);
    p.pid = sl_test_spawn(argv, p.log);
    ck_assert_int_gt(p.pid, 0);
    track(p.pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, file_count(p.log, "event=child_exited ") >= 1 ||
                                     !sl_test_pid_alive(p.pid));
    ck_assert_msg(sl_test_pid_alive(p.pid), "the pool exited; see %s", p.log);
    ck_assert_msg(file_count(p.log, "event=child_failed status=1 error=\"Too many open files\"") >= 1,
                  "no reason logged for the child's exit; see %s", p.log);
    ck_assert_int_eq(file_count(p.log, "[err]"), 0);
    pool_stop(&p);
}
END_TEST

/* ---------------------------------------------------------------------
 * The suite
 * ------------------------------------------------------------------ */

/* Adds a TCase with its own server and the per-test fixture. */
static TCase *server_case(Suite *s, const char *name, int timeout_s)
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, server_up, server_down);
    tcase_add_checked_fixture(tc, test_up, test_down);
    tcase_set_timeout(tc, (double)timeout_s * sl_test_slow_factor());
    suite_add_tcase(s, tc);
    return tc;
}

Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc;

    tc = server_case(s, "pending", 30);
    tcase_add_test(tc, test_ops_pending_json_exact);
    tcase_add_test(tc, test_ops_pending_idle_and_count_filters);
    tcase_add_test(tc, test_ops_pending_table);
    tcase_add_test(tc, test_ops_pending_all_groups);
    tcase_add_test(tc, test_ops_pending_errors);

    tc = server_case(s, "stats", 60);
    tcase_add_test(tc, test_ops_stats_known_state_exact);
    tcase_add_test(tc, test_ops_stats_paced_rate);
    tcase_add_test(tc, test_ops_stats_mu_survives_restart);
    tcase_add_test(tc, test_ops_stats_errors);

    tc = server_case(s, "workers", 40);
    tcase_add_test(tc, test_ops_workers_table_and_json);
    tcase_add_test(tc, test_ops_workers_odd_keys);
    tcase_add_test(tc, test_ops_admin_wrong_type_keys);
    tcase_add_test(tc, test_ops_tables_escape_control_chars);

    tc = server_case(s, "metrics", 60);
    tcase_add_test(tc, test_ops_metrics_checker_rejects_bad_text);
    tcase_add_test(tc, test_ops_metrics_counters_move);
    tcase_add_test(tc, test_ops_metrics_counters_survive_restarts);
    tcase_add_test(tc, test_ops_healthz_child_killed);
    tcase_add_test(tc, test_ops_healthz_child_stopped);

    tc = server_case(s, "http", 90);
    tcase_add_test(tc, test_ops_http_connection_cap);
    tcase_add_test(tc, test_ops_http_timeouts);
    tcase_add_test(tc, test_ops_http_methods);
    tcase_add_test(tc, test_ops_http_size_limits);
    tcase_add_test(tc, test_ops_http_child_closes_sockets);
    tcase_add_test(tc, test_ops_http_fd_exhaustion);
    tcase_add_test(tc, test_ops_child_start_failure_logged);

    /* Kills and restarts its server: a case of its own. */
    tc = tcase_create("redis_down");
    tcase_add_unchecked_fixture(tc, server_up, server_down);
    tcase_add_checked_fixture(tc, test_up, test_down);
    tcase_set_timeout(tc, 60.0 * sl_test_slow_factor());
    tcase_add_test(tc, test_ops_healthz_redis_down);
    suite_add_tcase(s, tc);

    tc = tcase_create("secrets");
    tcase_add_unchecked_fixture(tc, server_up, server_down);
    tcase_add_checked_fixture(tc, secrets_up, test_down);
    tcase_set_timeout(tc, 90.0 * sl_test_slow_factor());
    tcase_add_test(tc, test_ops_secrets_admin_auth_failed);
    tcase_add_test(tc, test_ops_secrets_bad_urls_redacted);
    tcase_add_test(tc, test_ops_secrets_password_not_in_cmdline);
    tcase_add_test(tc, test_ops_secrets_wrong_password_logged);
    tcase_add_test(tc, test_ops_secrets_wrong_url_password_logged);
    tcase_add_test(tc, test_ops_secrets_password_file_rotation);
    suite_add_tcase(s, tc);

    tc = server_case(s, "limits", 60);
    tcase_add_test(tc, test_ops_limits_metrics_address_checked);
    tcase_add_test(tc, test_ops_limits_config_size);
    tcase_add_test(tc, test_ops_limits_max_length_names);

    tc = server_case(s, "scripts", 40);
    tcase_add_test(tc, test_ops_scripts_shellcheck);
    tcase_add_test(tc, test_ops_scripts_enqueue_processed);
    tcase_add_test(tc, test_ops_scripts_enqueue_bulk);
    tcase_add_test(tc, test_ops_scripts_pending_sh);
    tcase_add_test(tc, test_ops_scripts_start_pool);

    tc = server_case(s, "deploy", 240);
    tcase_add_test(tc, test_ops_compose_config_valid);
    tcase_add_test(tc, test_ops_dockerfile_build_stage);
    tcase_add_test(tc, test_ops_install_out_of_tree);
    return s;
}
