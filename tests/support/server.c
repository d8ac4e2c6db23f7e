/* server.c -- the Check-free part of the test support library.
 *
 * See server.h for the contract. The file goes from low level to high
 * level: time and polling, process primitives, files, the Redis server,
 * and the synchronous connection.
 */
#include "server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REDIS_START_TRIES   5     /* ports tried before start gives up */
#define REDIS_READY_MS  10000     /* wait for PING after exec, milliseconds */
#define REDIS_GRACE_MS   5000     /* SIGTERM to SIGKILL, milliseconds */
#define REDIS_PROBE_MS    200     /* connect/command timeout of one probe */
#define MAX_ARGS           64     /* words in one redis-server command line */

/* ------------------------------------------------------------------------
 * Time and polling
 * ------------------------------------------------------------------------ */

/* Reads SLUICE_TEST_SLOW on every call (tests may set it) and returns it
 * as a positive integer; anything unset, malformed or below 1 means 1, and
 * the factor is capped at 1000 so a typo cannot overflow a deadline. */
int sl_test_slow_factor(void)
{
    const char *s = getenv("SLUICE_TEST_SLOW");
    char *end;
    long v;

    if (s == NULL || *s == '\0')
        return 1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1)
        return 1;
    return v > 1000 ? 1000 : (int)v;
}

/* Returns the monotonic clock in milliseconds. The monotonic clock is used
 * so that a wall-clock step cannot shorten or stretch a deadline. */
long long sl_test_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Returns the absolute time, in sl_test_now_ms() units, that lies
 * timeout_ms times the slow factor from now. */
long long sl_test_deadline(int timeout_ms)
{
    return sl_test_now_ms() + (long long)timeout_ms * sl_test_slow_factor();
}

/* Sleeps for ms milliseconds, resuming after signals so that a stray
 * SIGCHLD cannot shorten the pause. This is only ever used between two
 * polls of a condition, never to wait for an effect. */
static void nap_ms(long long ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Returns 0 if the deadline has passed. Otherwise pauses for one poll
 * interval, cut short at the deadline so the caller gets a last look at
 * its condition right on time, and returns 1. */
int sl_test_tick(long long deadline)
{
    long long left = deadline - sl_test_now_ms();

    if (left <= 0)
        return 0;
    nap_ms(left < SL_TEST_POLL_MS ? left : SL_TEST_POLL_MS);
    return 1;
}

/* Polls cond(arg) until it holds (returns 1) or the scaled timeout passes
 * (returns 0). The condition is checked before the first pause and again
 * at the deadline, so a condition that is already true costs no wait. */
int sl_test_wait_for(int timeout_ms, int (*cond)(void *arg), void *arg)
{
    long long deadline = sl_test_deadline(timeout_ms);

    for (;;) {
        if (cond(arg))
            return 1;
        if (!sl_test_tick(deadline))
            return 0;
    }
}

/* ------------------------------------------------------------------------
 * Process primitives
 * ------------------------------------------------------------------------ */

/* Returns the state letter of pid from /proc/<pid>/stat ('R', 'S', 'T',
 * 'Z', ...), or 0 if it cannot be read. The command name in the file may
 * itself contain spaces and parentheses, so the state is found after the
 * last ')'. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    const char *rp;
    size_t n;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    rp = strrchr(buf, ')');
    if (rp == NULL || rp[1] != ' ' || rp[2] == '\0')
        return 0;
    return rp[2];
}

/* Counts the threads of pid other than its main thread, from the entries
 * of /proc/<pid>/task. When the main thread of a multi-threaded process
 * (redis-server has I/O threads) dies first, it shows as a zombie while
 * the others are still exiting and its sockets are still open. Returns 0
 * if the directory cannot be read. */
static int live_threads(pid_t pid)
{
    char path[64];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
    d = opendir(path);
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && strtol(e->d_name, NULL, 10) != pid)
            n++;
    closedir(d);
    return n;
}

/* Tells whether pid exists and has not yet died. A zombie has died: it is
 * only waiting for its parent, which may be another process (in Check's
 * fork mode the server belongs to the runner, not to the test), so a
 * signal probe alone would call it alive forever. A zombie main thread
 * whose other threads still run counts as alive, because the process
 * still holds its files and sockets. */
int sl_test_pid_alive(pid_t pid)
{
    char st;

    if (pid <= 0)
        return 0;
    if (kill(pid, 0) == -1 && errno == ESRCH)
        return 0;
    st = proc_state(pid);
    if (st == 'Z')
        return live_threads(pid) > 0;
    if (st == 'X')
        return 0;
    if (st == 0)            /* vanished meanwhile, or no /proc: ask again */
        return kill(pid, 0) == 0 || errno == EPERM;
    return 1;
}

/* Returns 1 once pid has exited and 0 while it runs. When pid is our
 * child it is reaped here and its wait status stored in *status; when it
 * is not (ECHILD), its death is read from /proc and *status is set to -1,
 * a value for which no W* macro is true. status may be NULL. */
static int has_exited(pid_t pid, int *status)
{
    int st = 0;
    pid_t w;

    do
        w = waitpid(pid, &st, WNOHANG);
    while (w == -1 && errno == EINTR);
    if (w == pid) {
        if (status != NULL)
            *status = st;
        return 1;
    }
    if (w == 0)
        return 0;
    if (sl_test_pid_alive(pid))
        return 0;
    if (status != NULL)
        *status = -1;
    return 1;
}

/* Polls has_exited() to a scaled deadline; see harness.h. A PID of 0 or
 * below never names one process, so it is refused rather than passed to
 * waitpid(), where it would mean "any child". */
int sl_test_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    long long deadline = sl_test_deadline(timeout_ms);

    if (pid <= 0)
        return 0;
    for (;;) {
        if (has_exited(pid, status))
            return 1;
        if (!sl_test_tick(deadline))
            return 0;
    }
}

/* Sends sig to one process. kill() with 0 or a negative PID would signal
 * whole process groups, including the test runner, so those are ignored. */
void sl_test_kill(pid_t pid, int sig)
{
    if (pid > 0)
        kill(pid, sig);
}

/* Closes every descriptor from `from` up to the soft RLIMIT_NOFILE (at
 * most 65536), so that a spawned process does not keep the test's sockets
 * or listeners open. Valgrind keeps its own descriptors above the soft
 * limit, so they are not touched. */
static void close_from(int from)
{
    struct rlimit rl;
    long max = 1024;
    long fd;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        max = (long)rl.rlim_cur;
    if (max > 65536)
        max = 65536;
    for (fd = from; fd < max; fd++)
        close((int)fd);
}

/* Runs in a freshly forked child and never returns: points stdin at `in`
 * and stdout and stderr at `out`, closes everything else, undoes signal
 * settings the test runner may have made, and execs args. When `parent`
 * is positive the child asks for SIGKILL once that parent dies (and exits
 * at once if it already has), so a failing test cannot leave the process
 * under test running. When `pgid` is positive the child moves into that
 * process group (see struct sl_test_redis); a failure to do so is
 * ignored, leaving it in the caller's group. */
static void child_exec(char *const args[], int in, int out, pid_t parent,
                       pid_t pgid)
{
    static const int sigs[] = { SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT,
                                SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM };
    sigset_t none;
    size_t i;

    if (parent > 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
    }
    if (pgid > 0)
        setpgid(0, pgid);
    if (dup2(in, 0) == -1 || dup2(out, 1) == -1 || dup2(out, 2) == -1)
        _exit(127);
    close_from(3);
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp(args[0], args);
    dprintf(2, "sl_test_spawn: cannot exec %s: %s\n", args[0],
            strerror(errno));
    _exit(127);
}

/* Splits `s` in place on spaces, appending each word to args[*n] while
 * fewer than `max` slots are used. Returns 0, or -1 if a word did not fit.
 * The words point into s, which must outlive args. */
static int split_words(char *s, char **args, size_t *n, size_t max)
{
    char *save = NULL;
    char *w;

    for (w = strtok_r(s, " ", &save); w != NULL;
         w = strtok_r(NULL, " ", &save)) {
        if (*n >= max)
            return -1;
        args[(*n)++] = w;
    }
    return 0;
}

/* Forks and execs `pre` (may be NULL), then $SLUICE_WRAP's words, then
 * argv, with output appended to logpath; see harness.h. Everything the
 * child needs is built before fork(), so the child only calls
 * async-signal-safe functions (apart from close_from's getrlimit, which
 * is safe in practice). */
static pid_t spawn_wrapped(const char *const pre[], const char *const argv[],
                           const char *logpath)
{
    const char *wrap = getenv("SLUICE_WRAP");
    char *wrapcopy = NULL;
    char **args = NULL;
    size_t n = 0, npre = 0, nargv = 0, max;
    int logfd = -1, nullfd = -1;
    pid_t parent = getpid();
    pid_t pid = -1;

    if (argv == NULL || argv[0] == NULL)
        return -1;
    while (pre != NULL && pre[npre] != NULL)
        npre++;
    while (argv[nargv] != NULL)
        nargv++;
    if (wrap != NULL && *wrap != '\0') {
        wrapcopy = strdup(wrap);
        if (wrapcopy == NULL)
            goto cleanup;
    }
    /* A string of k bytes holds at most k/2+1 words. */
    max = npre + (wrapcopy != NULL ? strlen(wrapcopy) / 2 + 1 : 0) + nargv;
    args = calloc(max + 1, sizeof *args);
    if (args == NULL)
        goto cleanup;
    for (size_t i = 0; i < npre; i++)
        args[n++] = (char *)pre[i];     /* execvp does not write to them */
    if (wrapcopy != NULL && split_words(wrapcopy, args, &n, max) != 0)
        goto cleanup;
    for (size_t i = 0; i < nargv; i++)
        args[n++] = (char *)argv[i];
    args[n] = NULL;

    logfd = open(logpath != NULL ? logpath : "/dev/null",
                 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd == -1 || nullfd == -1)
        goto cleanup;

    pid = fork();
    if (pid == 0)
        child_exec(args, nullfd, logfd, parent, 0);

cleanup:
    if (nullfd != -1)
        close(nullfd);
    if (logfd != -1)
        close(logfd);
    free(args);
    free(wrapcopy);
    return pid;
}

/* Forks and execs argv (prefixed with $SLUICE_WRAP's words); see
 * server.h. */
pid_t sl_test_spawn(const char *const argv[], const char *logpath)
{
    return spawn_wrapped(NULL, argv, logpath);
}

/* Descriptors valgrind keeps for itself at the top of the limit it starts
 * under (its N_RESERVED_FDS): the program it runs sees the limit less
 * these. Checked with valgrind 3.19: under `prlimit --nofile=21 valgrind`
 * a program reads a limit of 9 and opens exactly as many descriptors as
 * under `prlimit --nofile=9` alone. */
#define VALGRIND_RESERVED_FDS 12

/* Returns 1 when $SLUICE_WRAP runs valgrind (its first word names it);
 * see server.h. */
int sl_test_wrap_is_valgrind(void)
{
    const char *wrap = getenv("SLUICE_WRAP");
    const char *end, *base;
    size_t len;

    if (wrap == NULL)
        return 0;
    while (*wrap == ' ')
        wrap++;
    end = strchr(wrap, ' ');
    len = end != NULL ? (size_t)(end - wrap) : strlen(wrap);
    for (base = wrap + len; base > wrap && base[-1] != '/'; base--)
        ;
    return (size_t)(wrap + len - base) == 8 && strncmp(base, "valgrind", 8) == 0;
}

/* Starts argv like sl_test_spawn(), under `prlimit --nofile=nofile`; see
 * server.h. The wrapper goes inside prlimit, not around it: valgrind
 * refuses its program's change of RLIMIT_NOFILE (prlimit fails with
 * EPERM), and would watch prlimit instead of argv anyway. Valgrind's
 * reserve is added to the limit, so that argv sees the same limit and
 * can open the same descriptors as without a wrapper. */
pid_t sl_test_spawn_nofile(const char *const argv[], const char *logpath, int nofile)
{
    char lim[40];
    const char *pre[] = { "prlimit", lim, NULL };

    snprintf(lim, sizeof(lim), "--nofile=%d",
             nofile + (sl_test_wrap_is_valgrind() ? VALGRIND_RESERVED_FDS : 0));
    return spawn_wrapped(pre, argv, logpath);
}

/* Returns $SLUICE_BIN, or "build/sluice-test" (the binary with the test
 * registry) relative to the directory the tests run from (the repository
 * root under make). */
const char *sl_test_bin(void)
{
    const char *s = getenv("SLUICE_BIN");

    return s != NULL && *s != '\0' ? s : "build/sluice-test";
}

/* ------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------ */

/* Creates a private directory under /tmp (not $TMPDIR, so paths stay
 * short enough for struct fields and unix sockets). */
char *sl_test_tmpdir(void)
{
    char tmpl[] = "/tmp/sluice-test-XXXXXX";

    if (mkdtemp(tmpl) == NULL)
        return NULL;
    return strdup(tmpl);
}

/* Removes path recursively, using lstat() so a symlink is removed itself
 * instead of followed. "" and "/" are refused outright as a last guard
 * against an unset path. Keeps going after a failure and reports it at
 * the end. */
int sl_test_rmtree(const char *path)
{
    struct stat st;
    struct dirent *e;
    DIR *d;
    int rc = 0;

    if (path == NULL || path[0] == '\0' || strcmp(path, "/") == 0)
        return -1;
    if (lstat(path, &st) == -1)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) == 0 ? 0 : -1;
    d = opendir(path);
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char child[PATH_MAX];

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (snprintf(child, sizeof child, "%s/%s", path, e->d_name)
            >= (int)sizeof child) {
            rc = -1;
            continue;
        }
        if (sl_test_rmtree(child) != 0)
            rc = -1;
    }
    closedir(d);
    if (rmdir(path) == -1)
        rc = -1;
    return rc;
}

/* Writes the formatted text to "<path>.tmp.<pid>" and renames it over
 * path, so a process under test that re-reads the file (a config reload)
 * never sees it half written. Returns 0, or -1 with no file left behind. */
int sl_test_write_file(const char *path, const char *fmt, ...)
{
    char tmp[PATH_MAX];
    va_list ap;
    FILE *f;
    int bad;

    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid())
        >= (int)sizeof tmp)
        return -1;
    f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    va_start(ap, fmt);
    bad = vfprintf(f, fmt, ap) < 0;
    va_end(ap);
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) == -1) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Reads the whole file into a growing buffer (files under /proc report a
 * size of 0, so stat() cannot be trusted) and NUL-terminates it. Returns
 * the new string, or NULL if the file is missing or unreadable. */
char *sl_test_read_file(const char *path)
{
    size_t cap = 4096, len = 0, n;
    char *buf, *grown;
    FILE *f = fopen(path, "rb");

    if (f == NULL)
        return NULL;
    buf = malloc(cap);
    if (buf == NULL)
        goto fail;
    for (;;) {
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (len < cap - 1) {
            if (ferror(f))
                goto fail;
            break;
        }
        grown = realloc(buf, cap * 2);
        if (grown == NULL)
            goto fail;
        buf = grown;
        cap *= 2;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;

fail:
    free(buf);
    fclose(f);
    return NULL;
}

/* Returns 1 if the file's text contains needle. The text is read afresh
 * on each call, so it can serve as a sl_test_wait_for() condition on a
 * log that is still being written. */
int sl_test_file_contains(const char *path, const char *needle)
{
    char *text = sl_test_read_file(path);
    int found = text != NULL && strstr(text, needle) != NULL;

    free(text);
    return found;
}

/* Parses utime and stime (fields 14 and 15) from /proc/<pid>/stat and
 * converts clock ticks to milliseconds. Fields are counted after the last
 * ')' because the command name (field 2) may contain spaces. */
long long sl_test_cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long ut, st;
    const char *p;
    char *end;
    long hz = sysconf(_SC_CLK_TCK);
    size_t n;
    FILE *f;
    int field;

    if (pid <= 0 || hz <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    p++;
    /* p is now just before field 3; step over fields 3..13. */
    for (field = 3; field < 14; field++) {
        p = strchr(p + 1, ' ');
        if (p == NULL)
            return -1;
    }
    errno = 0;
    ut = strtoull(p, &end, 10);
    if (end == p || errno != 0)
        return -1;
    p = end;
    st = strtoull(p, &end, 10);
    if (end == p || errno != 0)
        return -1;
    return (long long)((ut + st) * 1000ULL / (unsigned long long)hz);
}

/* ------------------------------------------------------------------------
 * Redis server
 * ------------------------------------------------------------------------ */

/* Asks the kernel for a free loopback port by binding 127.0.0.1:0 and
 * reading the port back, then releases it for redis-server to take. Some
 * other process may grab it in between; sl_test_redis_start() notices that
 * (its child exits) and tries another port. Returns the port or -1. */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd, port = -1;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0
        && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Forks and execs redis-server for r's port, directory and extra
 * arguments, with stdin on /dev/null and stdout and stderr written to
 * <dir>/redis.stderr (the server logs to <dir>/redis.log, but reports a
 * bad option only on stderr). Later arguments override earlier ones, so
 * extra args such as "--appendonly yes" win over the defaults. The child
 * gets no parent-death signal and joins r->pgid: a forked test may
 * restart the server and exit, and the server must outlive that test.
 * Returns the PID or -1. */
static pid_t spawn_redis(const struct sl_test_redis *r)
{
    const char *prog = getenv("REDIS_SERVER");
    char port[16], logfile[300], pidfile[300], errfile[300];
    char extra[sizeof r->extra];
    char *args[MAX_ARGS + 1];
    size_t n = 0;
    int nullfd, errfd;
    pid_t pid;

    if (prog == NULL || *prog == '\0')
        prog = "redis-server";
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(logfile, sizeof logfile, "%s/redis.log", r->dir);
    snprintf(pidfile, sizeof pidfile, "%s/redis.pid", r->dir);
    snprintf(errfile, sizeof errfile, "%s/redis.stderr", r->dir);
    memcpy(extra, r->extra, sizeof extra);

    args[n++] = (char *)prog;
    args[n++] = (char *)"--port";
    args[n++] = port;
    args[n++] = (char *)"--bind";
    args[n++] = (char *)"127.0.0.1";
    args[n++] = (char *)"--save";
    args[n++] = (char *)"";
    args[n++] = (char *)"--appendonly";
    args[n++] = (char *)"no";
    args[n++] = (char *)"--dir";
    args[n++] = (char *)r->dir;
    args[n++] = (char *)"--daemonize";
    args[n++] = (char *)"no";
    args[n++] = (char *)"--logfile";
    args[n++] = logfile;
    args[n++] = (char *)"--pidfile";
    args[n++] = pidfile;
    if (split_words(extra, args, &n, MAX_ARGS) != 0)
        return -1;
    args[n] = NULL;

    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    errfd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid = -1;
    if (nullfd != -1 && errfd != -1) {
        pid = fork();
        if (pid == 0)
            child_exec(args, nullfd, errfd, 0, r->pgid);
    }
    if (errfd != -1)
        close(errfd);
    if (nullfd != -1)
        close(nullfd);
    return pid;
}

/* Returns 1 if the server on `port` answers PING with PONG (not LOADING)
 * and INFO says its process_id is `pid`. The PID check matters: if another
 * test run took the port first, PONG would come from its server while ours
 * is failing to bind. Each probe uses a fresh connection with short
 * timeouts, so a server that is not listening yet costs little. */
static int redis_ready(int port, pid_t pid)
{
    struct timeval tv = { 0, REDIS_PROBE_MS * 1000 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *reply = NULL;
    const char *p;
    int ok = 0;

    if (c == NULL || c->err || redisSetTimeout(c, tv) != REDIS_OK)
        goto cleanup;
    reply = redisCommand(c, "PING");
    if (reply == NULL || reply->type != REDIS_REPLY_STATUS
        || strcmp(reply->str, "PONG") != 0)
        goto cleanup;
    freeReplyObject(reply);
    reply = redisCommand(c, "INFO server");
    if (reply == NULL || reply->type != REDIS_REPLY_STRING)
        goto cleanup;
    p = strstr(reply->str, "process_id:");
    ok = p != NULL && strtol(p + strlen("process_id:"), NULL, 10) == pid;

cleanup:
    if (reply != NULL)
        freeReplyObject(reply);
    if (c != NULL)
        redisFree(c);
    return ok;
}

/* Waits for a just-spawned server. Returns 1 when it is ready, 0 if it
 * exited first (typically: port taken; it is reaped here), and -1 if the
 * scaled deadline passed with the server still silent. */
static int wait_ready(int port, pid_t pid, int timeout_ms)
{
    long long deadline = sl_test_deadline(timeout_ms);

    for (;;) {
        if (has_exited(pid, NULL))
            return 0;
        if (redis_ready(port, pid))
            return 1;
        if (!sl_test_tick(deadline))
            return -1;
    }
}

/* Stops one process: SIGTERM (followed by SIGCONT, so a server frozen by
 * sl_test_redis_sigstop() can act on it), then SIGKILL if it is still
 * there after grace_ms (scaled). Reaps it when it is our child. */
static void terminate(pid_t pid, int grace_ms)
{
    if (pid <= 0 || has_exited(pid, NULL))
        return;
    kill(pid, SIGTERM);
    kill(pid, SIGCONT);
    if (sl_test_wait_exit(pid, grace_ms, NULL))
        return;
    kill(pid, SIGKILL);
    sl_test_wait_exit(pid, grace_ms, NULL);
}

/* Reads <dir>/redis.pid and returns that PID if the process is alive and
 * its working directory is r->dir (redis-server chdir()s to --dir, and the
 * directory came from mkdtemp, so this identifies our server even after a
 * stale pidfile's PID was reused). Returns 0 otherwise. This is how one
 * test process finds a server that another one restarted. */
static pid_t pidfile_pid(const struct sl_test_redis *r)
{
    char path[300], link[64], cwd[PATH_MAX], want[PATH_MAX];
    char *text;
    long v;
    ssize_t n;

    if (r->dir[0] == '\0')
        return 0;
    snprintf(path, sizeof path, "%s/redis.pid", r->dir);
    text = sl_test_read_file(path);
    if (text == NULL)
        return 0;
    v = strtol(text, NULL, 10);
    free(text);
    if (v <= 0 || !sl_test_pid_alive((pid_t)v))
        return 0;
    snprintf(link, sizeof link, "/proc/%ld/cwd", v);
    n = readlink(link, cwd, sizeof cwd - 1);
    if (n <= 0 || realpath(r->dir, want) == NULL)
        return 0;
    cwd[n] = '\0';
    return strcmp(cwd, want) == 0 ? (pid_t)v : 0;
}

/* Returns the live server's PID: the one named by a verified pidfile, else
 * the one this process started. */
pid_t sl_test_redis_pid(const struct sl_test_redis *r)
{
    pid_t p = pidfile_pid(r);

    return p > 0 ? p : r->pid;
}

/* Copies the last 2 KiB of the server's log and of its stderr to our
 * stderr, so a failed start explains itself before the directory is
 * deleted. */
static void dump_log(const struct sl_test_redis *r)
{
    static const char *const names[] = { "redis.log", "redis.stderr" };
    char path[300];
    char *text;
    size_t i, len;

    fprintf(stderr, "sl_test_redis: redis-server on port %d failed\n",
            r->port);
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", r->dir, names[i]);
        text = sl_test_read_file(path);
        if (text == NULL || text[0] == '\0') {
            free(text);
            continue;
        }
        len = strlen(text);
        fprintf(stderr, "--- end of %s:\n%s\n", path,
                len > 2048 ? text + len - 2048 : text);
        free(text);
    }
}

/* Starts the server on a fresh port, up to REDIS_START_TRIES times. A
 * child that exits before answering most likely lost its port to another
 * process, so the next try picks a new one; a server that stays silent
 * until the deadline is killed and not retried, because something else is
 * wrong. On failure the log goes to stderr and the directory is removed.
 * The caller's process group is recorded so that every later restart,
 * from whichever test process, puts the server back in it. */
int sl_test_redis_start(struct sl_test_redis *r, const char *extra_args)
{
    int attempt;

    memset(r, 0, sizeof *r);
    if (extra_args == NULL)
        extra_args = "";
    if (strlen(extra_args) >= sizeof r->extra)
        return -1;
    strcpy(r->extra, extra_args);
    r->pgid = getpgrp();
    strcpy(r->dir, "/tmp/sluice-redis-XXXXXX");
    if (mkdtemp(r->dir) == NULL) {
        r->dir[0] = '\0';
        return -1;
    }
    for (attempt = 0; attempt < REDIS_START_TRIES; attempt++) {
        pid_t pid;
        int rc;

        r->port = free_port();
        if (r->port <= 0)
            break;
        pid = spawn_redis(r);
        if (pid < 0)
            break;
        rc = wait_ready(r->port, pid, REDIS_READY_MS);
        if (rc == 1) {
            r->pid = pid;
            snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", r->port);
            return 0;
        }
        if (rc < 0) {
            terminate(pid, REDIS_GRACE_MS);
            break;
        }
    }
    dump_log(r);
    sl_test_rmtree(r->dir);
    memset(r, 0, sizeof *r);
    return -1;
}

/* Stops whatever server runs for r: the process this one started (which
 * may already be a zombie we must reap) and, if different, the one the
 * pidfile names (started by another test process after a restart). */
void sl_test_redis_stop(struct sl_test_redis *r)
{
    pid_t live = pidfile_pid(r);

    if (live > 0 && live != r->pid)
        terminate(live, REDIS_GRACE_MS);
    terminate(r->pid, REDIS_GRACE_MS);
    r->pid = 0;
}

/* Kills the server with SIGKILL, the way a crash or an OOM kill would end
 * it, and waits until it is gone so that its port is free again. */
void sl_test_redis_kill(struct sl_test_redis *r)
{
    pid_t live = pidfile_pid(r);

    if (live > 0 && live != r->pid) {
        kill(live, SIGKILL);
        sl_test_wait_exit(live, REDIS_GRACE_MS, NULL);
    }
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        sl_test_wait_exit(r->pid, REDIS_GRACE_MS, NULL);
    }
    r->pid = 0;
}

/* Starts the server again on the same port and directory. The port cannot
 * change (clients hold the URL), so a failed try is repeated on it after a
 * short pause instead of moving on. redis_ready() only accepts PONG, so
 * this returns after the AOF or RDB has been loaded. */
int sl_test_redis_restart(struct sl_test_redis *r)
{
    int attempt;

    if (r->dir[0] == '\0' || r->port <= 0)
        return -1;
    sl_test_redis_stop(r);
    for (attempt = 0; attempt < REDIS_START_TRIES; attempt++) {
        pid_t pid = spawn_redis(r);
        int rc;

        if (pid < 0)
            break;
        rc = wait_ready(r->port, pid, REDIS_READY_MS);
        if (rc == 1) {
            r->pid = pid;
            return 0;
        }
        if (rc < 0) {
            terminate(pid, REDIS_GRACE_MS);
            break;
        }
        nap_ms(100);
    }
    dump_log(r);
    return -1;
}

/* Stops the server and deletes its directory. The directory is removed
 * only if it is one of ours, as a guard against a struct that was never
 * started or has been overwritten. */
void sl_test_redis_cleanup(struct sl_test_redis *r)
{
    sl_test_redis_stop(r);
    if (strncmp(r->dir, "/tmp/sluice-redis-", strlen("/tmp/sluice-redis-"))
        == 0)
        sl_test_rmtree(r->dir);
    memset(r, 0, sizeof *r);
}

/* Sends sig to the live server and waits up to 2 s (scaled) until its
 * /proc state is stopped ('T') or not, as `want_stopped` says. Signals
 * are delivered asynchronously; waiting here means a test's very next
 * command sees the effect. Returns 0 or -1. */
static int signal_and_wait(struct sl_test_redis *r, int sig, int want_stopped)
{
    pid_t pid = sl_test_redis_pid(r);
    long long deadline = sl_test_deadline(2000);

    if (pid <= 0 || kill(pid, sig) == -1)
        return -1;
    for (;;) {
        char st = proc_state(pid);

        if (st == 0)
            return -1;
        if ((st == 'T' || st == 't') == want_stopped)
            return 0;
        if (!sl_test_tick(deadline))
            return -1;
    }
}

/* Freezes the server with SIGSTOP: connections are still accepted by the
 * kernel but no command is answered, like a server stuck in a long
 * command or a paused VM. */
int sl_test_redis_sigstop(struct sl_test_redis *r)
{
    return signal_and_wait(r, SIGSTOP, 1);
}

/* Lets a server frozen by sl_test_redis_sigstop() run again. */
int sl_test_redis_sigcont(struct sl_test_redis *r)
{
    return signal_and_wait(r, SIGCONT, 0);
}

/* ------------------------------------------------------------------------
 * Synchronous client
 * ------------------------------------------------------------------------ */

/* Connects to r with explicit timeouts. Returns a new context, or NULL
 * (after freeing the failed one) if the server cannot be reached. */
redisContext *sl_test_connect_timeout(const struct sl_test_redis *r,
                                      int connect_ms, int command_ms)
{
    struct timeval ct = { connect_ms / 1000, (connect_ms % 1000) * 1000 };
    struct timeval cmd = { command_ms / 1000, (command_ms % 1000) * 1000 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, ct);

    if (c == NULL)
        return NULL;
    if (c->err || redisSetTimeout(c, cmd) != REDIS_OK) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Connects with the default 1 s connect and 5 s command timeouts. */
redisContext *sl_test_connect(const struct sl_test_redis *r)
{
    return sl_test_connect_timeout(r, 1000, 5000);
}
