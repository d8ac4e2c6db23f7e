/* check_producer.c -- unit tests of the producer API (enqueue.c) that
 * need no Redis: sl_enqueue_check(), the argument checks of
 * sl_enqueue(), sl_producer_new()'s URL and connection errors, and
 * sl_strerror(). The checks must give the exact error a worker's dead
 * letter would carry, so each test compares the full text.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>

#include "sluice.h"

#define ORDER "{\"order_id\":\"o-1\",\"user_id\":\"u-1\",\"amount_cents\":1999,\"currency\":\"USD\"}"

static char err[512];               /* the error text of the call under test */

/* Runs sl_enqueue_check() on the NUL-terminated json with the default
 * limit; returns its result, with the message in err. */
static int check(const char *type, const char *json)
{
    strcpy(err, "(untouched)");
    return sl_enqueue_check(type, json, strlen(json), SL_PAYLOAD_MAX_DEFAULT,
                            err, sizeof(err));
}

/* A valid order passes; err is left alone. */
START_TEST(test_producer_check_valid)
{
    ck_assert_int_eq(check("order.created", ORDER), SL_OK);
    ck_assert_str_eq(err, "(untouched)");
    /* UTF-8 text, white space and key order are fine. */
    ck_assert_int_eq(check("user.created", " { \"name\" : \"Zo\xc3\xab \xe2\x82\xac\" } "), SL_OK);
}
END_TEST

/* A float amount is valid JSON: only the worker can refuse it, so the
 * local check lets it through (docs/producers.md says so). */
START_TEST(test_producer_check_float_is_not_local)
{
    ck_assert_int_eq(check("order.created",
        "{\"order_id\":\"o-2\",\"user_id\":\"u-1\",\"amount_cents\":19.99,\"currency\":\"USD\"}"),
        SL_OK);
}
END_TEST

/* Each refusal carries the dead-letter code and detail a worker gives. */
START_TEST(test_producer_check_refusals)
{
    ck_assert_int_eq(check("t", ""), SL_EINVAL);
    ck_assert_str_eq(err, "missing_payload");
    ck_assert_int_eq(check("t", "{\"a\":1,\"a\":2}"), SL_EINVAL);
    ck_assert_str_eq(err, "invalid_json: duplicate object key near '\"a\"' at line 1 column 10");
    ck_assert_int_eq(check("t", "{\"a\":"), SL_EINVAL);
    ck_assert_str_eq(err, "invalid_json: unexpected token near end of file at line 1 column 5");
    ck_assert_int_eq(check("t", "[1,2]"), SL_EINVAL);
    ck_assert_str_eq(err, "invalid_schema: data must be a JSON object, got array");
    ck_assert_int_eq(check("t", "1999"), SL_EINVAL);
    ck_assert_str_eq(err, "invalid_schema: data must be a JSON object, got integer");
    ck_assert_int_eq(check("t", "{\"name\":\"Zo\xeb\"}"), SL_EINVAL);
    ck_assert_str_eq(err, "invalid_encoding: data is not valid UTF-8 at offset 11");
    ck_assert_int_eq(check("t", "{\"name\":\"\\u0000\"}"), SL_EINVAL);
    ck_assert_str_eq(err, "invalid_encoding: data holds \\u0000 at offset 9");
    /* An embedded NUL byte: the length is what counts, not strlen. */
    ck_assert_int_eq(sl_enqueue_check("t", "{\"a\":\"\0\"}", 9, 0, err, sizeof(err)), SL_EINVAL);
    ck_assert_str_eq(err, "invalid_encoding: data holds a NUL byte at offset 6");
}
END_TEST

/* The type is checked after the payload, as a worker does. */
START_TEST(test_producer_check_type)
{
    char longtype[300];

    ck_assert_int_eq(check("", ORDER), SL_EINVAL);
    ck_assert_str_eq(err, "unknown_type: missing type");
    memset(longtype, 'x', 256);
    longtype[256] = '\0';
    ck_assert_int_eq(check(longtype, ORDER), SL_EINVAL);
    ck_assert_str_eq(err, "unknown_type: type is 256 bytes, more than 255");
    longtype[255] = '\0';
    ck_assert_int_eq(check(longtype, ORDER), SL_OK);
    ck_assert_int_eq(check("order.cr\xe9\x61ted", ORDER), SL_EINVAL);
    ck_assert_str_eq(err, "unknown_type: type is not valid UTF-8 text");
    /* The payload's own fault wins over the type's, as in a worker. */
    ck_assert_int_eq(check("", "[]"), SL_EINVAL);
    ck_assert_str_eq(err, "invalid_schema: data must be a JSON object, got array");
}
END_TEST

/* The size limit: the default is the workers' default (1 MiB), another
 * limit is honoured, 0 means none; the error is the worker's too_large. */
START_TEST(test_producer_check_size)
{
    size_t n = SL_PAYLOAD_MAX_DEFAULT + 1, i;
    char *big = malloc(n + 1);

    ck_assert_ptr_nonnull(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    ck_assert_int_eq(check("t", big), SL_EINVAL);
    ck_assert_str_eq(err, "too_large: data is 1048577 bytes, more than max_payload_bytes 1048576");
    ck_assert_int_eq(sl_enqueue_check("t", big, n - 1, SL_PAYLOAD_MAX_DEFAULT, err, sizeof(err)),
                     SL_EINVAL);                  /* "{   " without its '}' */
    ck_assert_str_eq(err, "invalid_json: string or '}' expected near end of file at line 1 column 1048576");
    big[n - 2] = '}';
    ck_assert_int_eq(sl_enqueue_check("t", big, n - 1, SL_PAYLOAD_MAX_DEFAULT, err, sizeof(err)),
                     SL_OK);                      /* exactly 1 MiB */
    big[n - 2] = ' ';
    ck_assert_int_eq(sl_enqueue_check("t", big, n, 0, err, sizeof(err)), SL_OK); /* no limit */
    ck_assert_int_eq(sl_enqueue_check("t", "{\"a\":1}", 7, 6, err, sizeof(err)), SL_EINVAL);
    ck_assert_str_eq(err, "too_large: data is 7 bytes, more than max_payload_bytes 6");
    for (i = 0; i < 2; i++)                       /* err may be NULL */
        ck_assert_int_eq(sl_enqueue_check("t", "[]", 2, 0, NULL, 0), SL_EINVAL);
    free(big);
}
END_TEST

/* NULL arguments are refused, never dereferenced. */
START_TEST(test_producer_check_null)
{
    ck_assert_int_eq(sl_enqueue_check(NULL, "{}", 2, 0, err, sizeof(err)), SL_EINVAL);
    ck_assert_str_eq(err, "type is NULL");
    ck_assert_int_eq(sl_enqueue_check("t", NULL, 2, 0, err, sizeof(err)), SL_EINVAL);
    ck_assert_str_eq(err, "json is NULL");
    ck_assert_int_eq(sl_enqueue(NULL, "orders", "t", "{}", 2, NULL, 0), SL_EINVAL);
    ck_assert_str_eq(sl_producer_errstr(NULL), "no producer");
    sl_producer_free(NULL);
}
END_TEST

/* A bad URL and an unreachable server give NULL and a reason, and a
 * password never shows in it. Port 1 on the loopback refuses at once. */
START_TEST(test_producer_new_errors)
{
    struct sl_producer *p;

    unsetenv("SLUICE_REDIS_URL");
    p = sl_producer_new("redis://:s3cret@127.0.0.1:99999/0", err, sizeof(err));
    ck_assert_ptr_null(p);
    ck_assert_str_eq(err, "redis_url: redis URL \"redis://:***@127.0.0.1:99999/0\": "
                          "expected redis://[[user]:password@]host:port[/db] (rediss:// for TLS)");
    p = sl_producer_new("rediss://:s3cret@127.0.0.1:1", err, sizeof(err));
    ck_assert_ptr_null(p);
    ck_assert_msg(strncmp(err, "cannot reach redis at 127.0.0.1:1: ", 35) == 0, "%s", err);
    ck_assert_ptr_null(strstr(err, "s3cret"));
    p = sl_producer_new("redis://:s3cret@127.0.0.1:1/0", err, sizeof(err));
    ck_assert_ptr_null(p);
    ck_assert_msg(strncmp(err, "cannot reach redis at 127.0.0.1:1: ", 35) == 0, "%s", err);
    ck_assert_ptr_null(strstr(err, "s3cret"));
    /* NULL takes $SLUICE_REDIS_URL, and says so when it is wrong. */
    setenv("SLUICE_REDIS_URL", "http://127.0.0.1:1", 1);
    p = sl_producer_new(NULL, err, sizeof(err));
    unsetenv("SLUICE_REDIS_URL");
    ck_assert_ptr_null(p);
    ck_assert_msg(strncmp(err, "SLUICE_REDIS_URL: ", 18) == 0, "%s", err);
    ck_assert_ptr_null(sl_producer_new("redis://127.0.0.1:1", NULL, 0));
}
END_TEST

/* Every code has its own text. */
START_TEST(test_producer_strerror)
{
    ck_assert_str_eq(sl_strerror(SL_OK), "success");
    ck_assert_str_eq(sl_strerror(SL_EINVAL), "invalid argument");
    ck_assert_str_eq(sl_strerror(SL_ENOMEM), "out of memory");
    ck_assert_str_eq(sl_strerror(SL_EREDIS), "redis error");
    ck_assert_str_eq(sl_strerror(-99), "unknown error");
}
END_TEST

Suite *producer_suite(void)
{
    Suite *s = suite_create("producer");
    TCase *tc = tcase_create("check");

    tcase_add_test(tc, test_producer_check_valid);
    tcase_add_test(tc, test_producer_check_float_is_not_local);
    tcase_add_test(tc, test_producer_check_refusals);
    tcase_add_test(tc, test_producer_check_type);
    tcase_add_test(tc, test_producer_check_size);
    tcase_add_test(tc, test_producer_check_null);
    suite_add_tcase(s, tc);
    tc = tcase_create("api");
    tcase_add_test(tc, test_producer_new_errors);
    tcase_add_test(tc, test_producer_strerror);
    suite_add_tcase(s, tc);
    return s;
}
