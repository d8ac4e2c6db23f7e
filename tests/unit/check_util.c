/* check_util.c -- backoff arithmetic, key names, logfmt quoting, text
 * escaped for terminals and JSON. */
#include <stdlib.h>
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

/* Escapes the len bytes at s and compares the result with want. */
static void assert_escape(const char *s, size_t len, const char *want)
{
    char *got = sl__escape_text(s, len);

    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, want);
    free(got);
}

/* Terminal text: controls, DEL, C1 controls (raw or as UTF-8) and every
 * byte outside a well-formed UTF-8 sequence become \xNN; printable ASCII,
 * backslashes and valid UTF-8 from U+00A0 up stay as they are. */
START_TEST(test_util_escape_text_for_terminals)
{
    assert_escape("plain \\ text", 12, "plain \\ text");
    assert_escape("\x1b[31mred\r\n\t\x07\x7f", 13, "\\x1b[31mred\\x0d\\x0a\\x09\\x07\\x7f");
    assert_escape("a\0b", 3, "a\\x00b");
    assert_escape("\xc2\x9b" "2J \x9b \xc2\x80", 9, "\\xc2\\x9b2J \\x9b \\xc2\\x80");
    assert_escape("\xc2\xa0\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 11,
                  "\xc2\xa0\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_escape("\xc0\xaf", 2, "\\xc0\\xaf");              /* overlong '/' */
    assert_escape("\xe0\x80\xaf", 3, "\\xe0\\x80\\xaf");     /* overlong, 3 bytes */
    assert_escape("\xed\xa0\x80", 3, "\\xed\\xa0\\x80");     /* a surrogate */
    assert_escape("\xf4\x90\x80\x80", 4, "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
    assert_escape("\xe2\x82", 2, "\\xe2\\x82");              /* cut short */
    assert_escape("\xe2\x82x", 3, "\\xe2\\x82x");
    assert_escape("\xff\xfe", 2, "\\xff\\xfe");
    assert_escape("", 0, "");
}
END_TEST

/* JSON text keeps UTF-8 exactly (NUL and controls included, for jansson
 * to escape) and escapes what is not UTF-8 instead of failing; a cell is
 * escaped, reused slot by slot, and freed. */
START_TEST(test_util_json_text_and_cells)
{
    struct sl_cells c = { { NULL } };
    json_t *v;

    v = sl__json_text("a\x1b\0b", 4);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(json_string_length(v), 4);
    ck_assert_int_eq(memcmp(json_string_value(v), "a\x1b\0b", 4), 0);
    json_decref(v);
    v = sl__json_text("\xff\x1b", 2);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(json_string_value(v), "\\xff\\x1b");
    json_decref(v);
    ck_assert_str_eq(sl__cell(&c, 0, "x\x1by", 3), "x\\x1by");
    ck_assert_str_eq(sl__cell(&c, 0, "z", 1), "z");
    ck_assert_str_eq(sl__cell(&c, SL_CELLS - 1, NULL, 5), "");
    sl__cells_free(&c);
    ck_assert_ptr_null(c.v[0]);
    sl__cells_free(&c);
}
END_TEST

/* The table sizes each column to its widest cell (header included, by
 * characters, not bytes), keeps the narrowest width it was given, aligns
 * left or right, and ends a short row early. */
START_TEST(test_util_table_columns_fit_longest_cell)
{
    static const struct sl_col cols[] = { { "NAME", -4 }, { "N", 3 }, { "NOTE", -2 } };
    const char *r1[] = { "a", "1", "x" };
    const char *r2[] = { "long-name", "12345", "y" };
    const char *r3[] = { "\xc3\xa9t\xc3\xa9", "7" };
    struct sl_table t;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(f);
    sl__table_init(&t, cols, 3);
    ck_assert_int_eq(sl__table_add(&t, 3, r1), 0);
    ck_assert_int_eq(sl__table_add(&t, 3, r2), 0);
    ck_assert_int_eq(sl__table_add(&t, 2, r3), 0);
    ck_assert_int_eq(sl__table_print(&t, f), 0);
    fclose(f);
    ck_assert_str_eq(buf, "NAME          N NOTE\n"
                          "a             1 x\n"
                          "long-name 12345 y\n"
                          "\xc3\xa9t\xc3\xa9           7\n");
    free(buf);
    sl__table_free(&t);
    ck_assert_uint_eq(t.nrows, 0);

    /* An indented table; a left-aligned last column gets no blanks. */
    {
        static const struct sl_col two[] = { { "ID", -4 }, { "WHO", -1 } };
        const char *row[] = { "1-1", "c" };
        f = open_memstream(&buf, &len);
        ck_assert_ptr_nonnull(f);
        sl__table_init(&t, two, 2);
        t.indent = "  ";
        ck_assert_int_eq(sl__table_add(&t, 2, row), 0);
        ck_assert_int_eq(sl__table_print(&t, f), 0);
        fclose(f);
        ck_assert_str_eq(buf, "  ID   WHO\n  1-1  c\n");
        free(buf);
        sl__table_free(&t);
    }
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
    tcase_add_test(tc, test_util_escape_text_for_terminals);
    tcase_add_test(tc, test_util_json_text_and_cells);
    tcase_add_test(tc, test_util_table_columns_fit_longest_cell);
    suite_add_tcase(s, tc);
    return s;
}
