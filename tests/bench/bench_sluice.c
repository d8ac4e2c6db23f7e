/* bench_sluice.c -- `sluice run` as the benchmark runs it.
 *
 * The config goes into a temp dir. "trim" is "none": several runs drain
 * the same pre-filled stream through different groups, and a trim after
 * one group has read everything would delete entries the next group has
 * not read yet (sluice's trim looks only at the groups that exist). The
 * supervisor's log (stderr) goes to sluice.log in the same dir; the
 * worker children's PIDs are read from its child_started lines.
 *
 * Startup is never measured: sl_bench_sluice_start() returns once every
 * child is blocked in XREADGROUP, and the caller then releases the
 * entries (see bench_main.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "bench.h"
#include "config.h"

/* Prints the supervisor's log to stderr (after a failure). */
static void dump_log(const struct sl_bench_sluice *s)
{
    char path[320], line[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/sluice.log", s->dir);
    if ((f = fopen(path, "r")) == NULL)
        return;
    fprintf(stderr, "---- %s ----\n", path);
    while (fgets(line, sizeof(line), f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

/* Collects child PIDs from the log's child_started lines. Returns how
 * many it found. */
static int scan_children(struct sl_bench_sluice *s)
{
    char path[320], line[1024];
    FILE *f;

    s->nchild = 0;
    snprintf(path, sizeof(path), "%s/sluice.log", s->dir);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL && s->nchild < 8) {
        const char *p = strstr(line, "event=child_started");
        if (p != NULL && (p = strstr(p, " child=")) != NULL)
            s->child[s->nchild++] = (pid_t)strtol(p + 7, NULL, 10);
    }
    fclose(f);
    return s->nchild;
}

/* Extra members of the next pools' worker object ("" for none). */
char sl_bench_worker_extra[256];

/* Writes sluice.json into the run's directory: COUNT `batch` (0: no
 * batch key, the default a user gets), trim none, and the given workers
 * array members. Returns 0 or -1. */
static int write_config(const struct sl_bench_sluice *s, const struct sl_bench_redis *r,
                        const char *workers, int batch)
{
    char path[320], defaults[64];
    struct sl_test_config c = { r->url, NULL, defaults, NULL, workers, NULL };

    snprintf(path, sizeof(path), "%s/sluice.json", s->dir);
    if (batch > 0)
        snprintf(defaults, sizeof(defaults), "\"batch\": %d, \"trim\": \"none\"", batch);
    else
        snprintf(defaults, sizeof(defaults), "\"trim\": \"none\"");
    return sl_test_config_write(path, &c);
}

/* Execs `bin run -c cfg`, behind the words of $BENCH_SLUICE_WRAP when
 * set (e.g. "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p"
 * to profile the workers). Returns only when exec failed. */
static void exec_wrapped(const char *bin, const char *cfg)
{
    char *wrap = getenv("BENCH_SLUICE_WRAP") ? strdup(getenv("BENCH_SLUICE_WRAP")) : NULL;
    char *argv[40], *tok, *save = NULL;
    int n = 0;

    if (wrap != NULL)
        for (tok = strtok_r(wrap, " ", &save); tok != NULL && n < 32;
             tok = strtok_r(NULL, " ", &save))
            argv[n++] = tok;
    argv[n++] = (char *)bin;
    argv[n++] = (char *)"run";
    argv[n++] = (char *)"-c";
    argv[n++] = (char *)cfg;
    argv[n] = NULL;
    execvp(argv[0], argv);
}

/* Starts the pool and waits until all its readers block. */
int sl_bench_sluice_start(struct sl_bench_sluice *s, const struct sl_bench_redis *r,
                          redisContext *c, const char *handler, const char *stream,
                          const char *group, int processes, int batch)
{
    char workers[512];

    snprintf(workers, sizeof(workers),
             "{ \"handler\": \"%s\", \"stream\": \"%s\", \"group\": \"%s\", \"processes\": %d%s%s }",
             handler, stream, group, processes, sl_bench_worker_extra[0] ? ", " : "",
             sl_bench_worker_extra);
    return sl_bench_sluice_start_workers(s, r, c, workers, processes, batch);
}

/* See bench.h. */
int sl_bench_sluice_start_workers(struct sl_bench_sluice *s, const struct sl_bench_redis *r,
                                  redisContext *c, const char *workers, int processes,
                                  int batch)
{
    const char *bin = getenv("SLUICE_BIN") ? getenv("SLUICE_BIN") : "build/sluice";
    char cfg[320], logp[320];
    int64_t deadline;
    pid_t parent = getpid();

    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/sluice-bench-run-XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        return -1;
    if (write_config(s, r, workers, batch) < 0)
        return -1;
    snprintf(cfg, sizeof(cfg), "%s/sluice.json", s->dir);
    snprintf(logp, sizeof(logp), "%s/sluice.log", s->dir);
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int in = open("/dev/null", O_RDONLY);
        /* A benchmark killed half-way must not leave a pool behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        if (fd < 0 || in < 0)
            _exit(126);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        exec_wrapped(bin, cfg);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    deadline = sl_bench_mono_us() + (getenv("BENCH_SLUICE_WRAP") ? 120 : 20) * 1000000LL;
    while (scan_children(s) < processes || sl_bench_blocked_readers(c) < processes) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            fprintf(stderr, "sluice-bench: sluice run exited early\n");
            dump_log(s);
            s->pid = 0;
            return -1;
        }
        if (sl_bench_mono_us() > deadline) {
            fprintf(stderr, "sluice-bench: sluice run did not become ready\n");
            dump_log(s);
            return -1;
        }
        sl_bench_pause_ms(5);
    }
    return 0;
}

/* Sums the children's /proc readings. */
int sl_bench_sluice_proc(const struct sl_bench_sluice *s, struct sl_bench_proc *sum)
{
    int i, rc = 0;

    sum->hwm_kb = 0;
    sum->cpu_us = 0;
    for (i = 0; i < s->nchild; i++) {
        struct sl_bench_proc p;
        if (sl_bench_proc_read(s->child[i], &p) < 0) {
            fprintf(stderr, "sluice-bench: worker %ld is gone (see %s/sluice.log)\n",
                    (long)s->child[i], s->dir);
            rc = -1;
            continue;
        }
        sum->cpu_us += p.cpu_us;
        if (p.hwm_kb > sum->hwm_kb)
            sum->hwm_kb = p.hwm_kb;
    }
    return rc;
}

/* Removes the files of the run's temp dir, then the dir. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[600];

    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' && (e->d_name[1] == '\0' ||
                                        (e->d_name[1] == '.' && e->d_name[2] == '\0')))
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Stops the pool gracefully, killing it after 15 s. */
int sl_bench_sluice_stop(struct sl_bench_sluice *s, int keep)
{
    int status = -1, i;

    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        for (i = 0; i < 1500; i++) {
            if (waitpid(s->pid, &status, WNOHANG) == s->pid)
                break;
            sl_bench_pause_ms(10);
        }
        if (i == 1500) {
            fprintf(stderr, "sluice-bench: sluice run ignored SIGTERM; killing it\n");
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            status = -1;
        }
        s->pid = 0;
    }
    if (status != 0)
        dump_log(s);
    if (!keep && s->dir[0] != '\0')
        remove_dir(s->dir);
    return status;
}
