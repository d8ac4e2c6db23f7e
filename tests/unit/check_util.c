/* check_util.c -- backoff arithmetic, key names, logfmt quoting. */
#include <string.h>
#include <check.h>
#include "internal.h"

START_TEST(test_util_retry_delay_doubles_and_caps)
{
    ck_assert_int_eq(sl__retry_delay_ms(1000, 60000, 1), 1000);
    ck_assert_int_eq(sl__retry_delay_ms(1000, 60000, 2), 2000);
    ck_assert_int_eq(sl__retry_delay_ms(1000, 60000, 3), 4000);
    ck_assert_int_eq(sl__retry_delay_ms(1000, 60000, 6), 32000);
    ck_assert_int_eq(sl__retry_delay_ms(1000, 60000, 7), 60000);
    ck_assert_int_eq(sl__retry_delay_ms(1000, 60000, 1000000), 60000);
    ck_assert_int_eq(sl__retry_delay_ms(1000, 60000, 0), 1000);
    ck_assert_int_eq(sl__retry_delay_ms(7, 7, 5), 7);
}
END_TEST

START_TEST(test_util_backoff_is_jittered_within_bounds)
{
    int step, i;

    for (step = 0; step < 12; step++) {
        long long full = sl__retry_delay_ms(100, 5000, step + 1);
        for (i = 0; i < 200; i++) {
            long long d = sl__backoff_ms(100, 5000, step);
            ck_assert_int_ge(d, full / 2);
            ck_assert_int_le(d, full);
        }
    }
    ck_assert_int_le(sl__backoff_ms(100, 5000, 1 << 30), 5000);
}
END_TEST

START_TEST(test_util_attempts_key_keeps_names_apart)
{
    char a[128], b[128];

    sl__attempts_key(a, sizeof(a), "a:b", "c");
    sl__attempts_key(b, sizeof(b), "a", "b:c");
    ck_assert_str_eq(a, "sluice:attempts:3:a:b:c");
    ck_assert_str_eq(b, "sluice:attempts:1:a:b:c");
    ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_util_logq_quotes_only_when_needed)
{
    ck_assert_str_eq(sl__logq("plain"), "plain");
    ck_assert_str_eq(sl__logq("two words"), "\"two words\"");
    ck_assert_str_eq(sl__logq("a\"b"), "\"a\\\"b\"");
    ck_assert_str_eq(sl__logq(""), "\"\"");
    ck_assert_str_eq(sl__logq("k=v"), "\"k=v\"");
}
END_TEST

START_TEST(test_util_clocks_move_forward)
{
    uint64_t a = sl__now_ms(), w = sl__wall_ms();

    ck_assert_uint_ge(sl__now_ms(), a);
    ck_assert_uint_gt(w, 1600000000000ULL);
}
END_TEST

Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_util_retry_delay_doubles_and_caps);
    tcase_add_test(tc, test_util_backoff_is_jittered_within_bounds);
    tcase_add_test(tc, test_util_attempts_key_keeps_names_apart);
    tcase_add_test(tc, test_util_logq_quotes_only_when_needed);
    tcase_add_test(tc, test_util_clocks_move_forward);
    suite_add_tcase(s, tc);
    return s;
}
