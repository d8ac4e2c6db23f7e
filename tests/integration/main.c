/* main.c -- the integration test runner: every suite in one SRunner.
 * Each suite starts its own redis-server(s) on free loopback ports and
 * drives the real build/sluice binary (SLUICE_BIN) where it needs one.
 *
 * The processes under test report sanitizer and valgrind findings into
 * one folder (ASAN_OPTIONS/UBSAN_OPTIONS log_path, and SLUICE_WRAP's
 * --log-file set by `make valgrind`); a finding there fails the run even
 * when the test that caused it passed, since a worker that died of it
 * was simply restarted by its supervisor. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <check.h>

Suite *harness_suite(void);
Suite *flow_scripts_suite(void);
Suite *worker_suite(void);
Suite *delivery_suite(void);
Suite *pool_suite(void);
Suite *flow_suite(void);
Suite *admin_suite(void);
Suite *metrics_suite(void);
Suite *http_suite(void);
Suite *secrets_suite(void);
Suite *limits_suite(void);
Suite *tools_suite(void);
Suite *deploy_files_suite(void);
Suite *faults_suite(void);
Suite *cli_suite(void);
Suite *scripts_suite(void);
Suite *producers_suite(void);
Suite *conn_suite(void);
Suite *dlq_suite(void);
Suite *web_suite(void);
Suite *slow_suite(void);
Suite *async_suite(void);
Suite *webhook_suite(void);
Suite *durability_suite(void);

/* Prints every non-empty report in dir; returns how many there were. */
static int reports(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char path[1024], line[512];
        struct stat st;
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) < 0 || st.st_size == 0 || (f = fopen(path, "r")) == NULL)
            continue;
        fprintf(stderr, "---- %s\n", path);
        while (fgets(line, sizeof(line), f) != NULL)
            fputs(line, stderr);
        fclose(f);
        n++;
    }
    closedir(d);
    return n;
}

int main(void)
{
    SRunner *sr = srunner_create(harness_suite());
    const char *dir = getenv("SLUICE_REPORT_DIR");
    char opts[1200];
    int failed, found = 0;

    if (dir != NULL && *dir) {
        mkdir(dir, 0755);
        snprintf(opts, sizeof(opts), "log_path=%s/asan:abort_on_error=0", dir);
        setenv("ASAN_OPTIONS", opts, 0);
        snprintf(opts, sizeof(opts), "log_path=%s/ubsan:print_stacktrace=1", dir);
        setenv("UBSAN_OPTIONS", opts, 0);
    }
    srunner_add_suite(sr, flow_scripts_suite());
    srunner_add_suite(sr, web_suite());
    srunner_add_suite(sr, worker_suite());
    srunner_add_suite(sr, delivery_suite());
    srunner_add_suite(sr, pool_suite());
    srunner_add_suite(sr, flow_suite());
    srunner_add_suite(sr, admin_suite());
    srunner_add_suite(sr, metrics_suite());
    srunner_add_suite(sr, durability_suite());
    srunner_add_suite(sr, http_suite());
    srunner_add_suite(sr, secrets_suite());
    srunner_add_suite(sr, limits_suite());
    srunner_add_suite(sr, tools_suite());
    srunner_add_suite(sr, deploy_files_suite());
    srunner_add_suite(sr, faults_suite());
    srunner_add_suite(sr, cli_suite());
    srunner_add_suite(sr, scripts_suite());
    srunner_add_suite(sr, conn_suite());
    srunner_add_suite(sr, producers_suite());
    srunner_add_suite(sr, dlq_suite());
    srunner_add_suite(sr, slow_suite());
    srunner_add_suite(sr, async_suite());
    srunner_add_suite(sr, webhook_suite());
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (dir != NULL && *dir && (found = reports(dir)) > 0)
        fprintf(stderr, "sluice tests: %d sanitizer/valgrind report(s) in %s\n", found, dir);
    return failed == 0 && found == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
