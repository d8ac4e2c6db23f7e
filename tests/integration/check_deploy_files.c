/* check_deploy_files.c -- docker-compose.yml and the Dockerfile's build stage, and `make
 * install` with an out-of-tree worker built against the installed
 * library.
 *
 * Split out of the former check_ops.c; the shared helpers and fixtures
 * are ops.c's.
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
#include "ops.h"
#include "config.h"
#include "sut.h"



/* ---------------------------------------------------------------------
 * docker-compose.yml and Dockerfile
 * ------------------------------------------------------------------ */

/* `docker-compose config` accepts the file (Redis with appendonly yes,
 * the pool built from the Dockerfile and pointed at the redis service,
 * two replicas with host names and host ports of their own) and refuses a copy with a misspelt key, so the check can fail. */
START_TEST(test_deploy_files_compose_config_valid)
{
    const char *argv[] = { "docker-compose", "-f", "docker-compose.yml", "config", NULL };
    char copy[600];
    const char *bad[] = { "docker-compose", "-f", copy, "config", NULL };
    struct out o;
    char *text, *at, *svc, *end;

    if (!have("docker-compose")) {
        fprintf(stderr, "check_deploy_files: SKIP test_deploy_files_compose_config_valid: docker-compose not "
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

/* Returns 1 when .dockerignore's `ignore` (its text) keeps path `src` out
 * of the build context, so that a COPY of it fails under podman build.
 * Only the forms the file uses: a path or directory ("scripts/"), and
 * "!path" taking one back; the last line that matches decides, as in
 * Docker. Wildcard lines ("*.o") match no source that is COPYed. */
static int dockerignored(const char *ignore, const char *src)
{
    char copy[4096], path[256], *line, *save = NULL;
    size_t n;
    int out = 0;

    snprintf(path, sizeof(path), "%s", src);
    n = strlen(path);
    while (n > 0 && path[n - 1] == '/')
        path[--n] = '\0';
    snprintf(copy, sizeof(copy), "%s", ignore);
    for (line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        int neg = line[0] == '!';
        char pat[256];
        size_t m;

        if (line[0] == '#' || line[0] == '\0' || strchr(line, '*') != NULL)
            continue;
        snprintf(pat, sizeof(pat), "%s", line + neg);
        m = strlen(pat);
        while (m > 0 && pat[m - 1] == '/')
            pat[--m] = '\0';
        if (m > 0 && strncmp(path, pat, m) == 0 && (path[m] == '\0' || path[m] == '/'))
            out = !neg;
    }
    return out;
}

/* The Dockerfile builds on Debian 12, and what its build stage COPYs is
 * enough: the same files in an empty directory build and install with
 * the same make commands, and the binary runs. Each of those files is
 * also in the build context, not kept out by .dockerignore (the copy
 * here does not read it; podman build does). */
START_TEST(test_deploy_files_dockerfile_build_stage)
{
    char *text = sl_test_read_file("Dockerfile"), *line, *save = NULL, ctx[700], script[2048];
    char *ignore = sl_test_read_file(".dockerignore");
    const char *sh[] = { "/bin/sh", "-c", script, NULL };
    const char *env[] = { "-MAKEFLAGS", "-MAKELEVEL", "-MFLAGS", NULL };
    struct out o;
    size_t used = 0;
    int copies = 0;

    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(ignore);
    ck_assert_msg(strstr(text, "FROM debian:12") != NULL, "not Debian 12");
    snprintf(ctx, sizeof(ctx), "%s/ctx", tmp);
    used = (size_t)snprintf(script, sizeof(script), "set -e; mkdir -p '%s'; ", ctx);
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char src[256];
        if (strncmp(line, "COPY ", 5) != 0 || strstr(line, "--from") != NULL)
            continue;
        ck_assert_int_eq(sscanf(line + 5, "%255s", src), 1);
        ck_assert_msg(!dockerignored(ignore, src), "COPY %s: .dockerignore keeps it out of the build context", src);
        used += (size_t)snprintf(script + used, sizeof(script) - used,
                                 "mkdir -p \"$(dirname '%s/%s')\"; cp -R '%s' '%s/%s'; ", ctx, src,
                                 src, ctx, src);
        copies++;
    }
    free(text);
    free(ignore);
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
START_TEST(test_deploy_files_install_out_of_tree)
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

Suite *deploy_files_suite(void)
{
    Suite *s = suite_create("deploy_files");
    TCase *tc;

    tc = ops_server_case(s, "deploy", 240);
    tcase_add_test(tc, test_deploy_files_compose_config_valid);
    tcase_add_test(tc, test_deploy_files_dockerfile_build_stage);
    tcase_add_test(tc, test_deploy_files_install_out_of_tree);
    return s;
}
