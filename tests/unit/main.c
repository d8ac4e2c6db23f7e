/* main.c -- the unit test runner: every suite in one SRunner. No Redis
 * is needed here. */
#include <stdlib.h>
#include <check.h>

Suite *util_suite(void);
Suite *config_suite(void);
Suite *message_suite(void);
Suite *workers_suite(void);
Suite *cli_suite(void);
Suite *registry_suite(void);
Suite *producer_suite(void);
Suite *slots_suite(void);

int main(void)
{
    SRunner *sr = srunner_create(util_suite());
    int failed;

    srunner_add_suite(sr, config_suite());
    srunner_add_suite(sr, message_suite());
    srunner_add_suite(sr, workers_suite());
    srunner_add_suite(sr, cli_suite());
    srunner_add_suite(sr, registry_suite());
    srunner_add_suite(sr, producer_suite());
    srunner_add_suite(sr, slots_suite());
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
