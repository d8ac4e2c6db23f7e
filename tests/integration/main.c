/* main.c -- the integration test runner: every suite in one SRunner.
 * Each suite starts its own redis-server(s) on free loopback ports and
 * drives the real build/sluice binary (SLUICE_BIN) where it needs one. */
#include <stdlib.h>
#include <check.h>

Suite *harness_suite(void);
Suite *flow_scripts_suite(void);
Suite *worker_suite(void);
Suite *delivery_suite(void);
Suite *pool_suite(void);
Suite *flow_suite(void);
Suite *ops_suite(void);

int main(void)
{
    SRunner *sr = srunner_create(harness_suite());
    int failed;

    srunner_add_suite(sr, flow_scripts_suite());
    srunner_add_suite(sr, worker_suite());
    srunner_add_suite(sr, delivery_suite());
    srunner_add_suite(sr, pool_suite());
    srunner_add_suite(sr, flow_suite());
    srunner_add_suite(sr, ops_suite());
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
