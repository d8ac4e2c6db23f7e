/* check_message.c -- unit tests of the per-entry checks (message.c) and
 * of the handler context and validators (ctx.c).
 *
 * Each test builds a stream entry by hand, runs sl__msg_prepare() on it
 * and compares the exact error text, since those texts end up in dead
 * letters that people read and scripts match.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>

#include "internal.h"

/* ---------------------------------------------------------------------
 * Fixture: one context, one entry under construction
 * ------------------------------------------------------------------ */

#define MAXF 16

static struct sl_ctx *ctx;          /* context under test, fresh per test */
static struct sl_field fields[MAXF];/* the entry's fields */
static struct sl_msg msg;           /* the entry */
static struct sl_tunables tun;      /* limits used by sl__msg_prepare() */

/* Gives every test a fresh context, an empty entry with ID "1000-0" and
 * the built-in limits with no TTL. */
static void setup(void)
{
    ctx = sl__ctx_new(NULL);
    ck_assert_ptr_nonnull(ctx);
    memset(fields, 0, sizeof(fields));
    memset(&msg, 0, sizeof(msg));
    msg.id = "1000-0";
    msg.stream = "orders";
    msg.fields = fields;
    memset(&tun, 0, sizeof(tun));
    tun.max_fields = 1024;
    tun.max_payload_bytes = 1048576;
    tun.message_ttl_ms = 0;
}

/* Releases what setup() and the test left behind. */
static void teardown(void)
{
    json_decref(msg.data);
    msg.data = NULL;
    sl__ctx_free(ctx);
    ctx = NULL;
}

/* Appends a field whose value is `len` bytes at `value` (binary-safe). */
static void add_field_len(const char *name, const char *value, size_t len)
{
    ck_assert_uint_lt(msg.nfields, MAXF);
    fields[msg.nfields].name = name;
    fields[msg.nfields].name_len = strlen(name);
    fields[msg.nfields].value = value;
    fields[msg.nfields].value_len = len;
    msg.nfields++;
}

/* Appends a field whose value is a NUL-terminated string. */
static void add_field(const char *name, const char *value)
{
    add_field_len(name, value, strlen(value));
}

/* Builds the usual two-field entry: type, then data. */
static void entry(const char *type, const char *data)
{
    add_field("type", type);
    add_field("data", data);
}

/* Runs the checks with no type list and "now" far from the ID's time
 * being irrelevant (no TTL unless the test sets one). */
static int prepare(void)
{
    return sl__msg_prepare(ctx, &msg, &tun, 0, NULL, 2000);
}

/* Asserts that the entry fails with exactly `expected`. */
static void expect_fail(const char *expected)
{
    ck_assert_int_eq(prepare(), -1);
    ck_assert_ptr_null(msg.data);
    ck_assert_str_eq(ctx->err, expected);
}

/* Asserts that the entry fails with an error starting with `prefix`. */
static void expect_fail_prefix(const char *prefix)
{
    ck_assert_int_eq(prepare(), -1);
    ck_assert_ptr_null(msg.data);
    ck_assert_msg(strncmp(ctx->err, prefix, strlen(prefix)) == 0,
                  "error \"%s\" does not start with \"%s\"", ctx->err, prefix);
}

/* Asserts that the entry passes. */
static void expect_ok(void)
{
    ck_assert_msg(prepare() == 0, "unexpected error \"%s\"", ctx->err);
    ck_assert_str_eq(ctx->err, "");
}

/* ---------------------------------------------------------------------
 * core
 * ------------------------------------------------------------------ */

START_TEST(test_message_valid_entry)
{
    const char *data = "{\"order_id\":\"o-1\",\"amount_cents\":1999}";
    static const char *const types[] = { "order.created", "payment.succeeded", NULL };

    add_field("trace", "abc");
    entry("order.created", data);
    ck_assert_int_eq(sl__msg_prepare(ctx, &msg, &tun, 0, types, 2000), 0);
    ck_assert_str_eq(msg.type, "order.created");
    ck_assert_ptr_eq(msg.raw_data, fields[2].value);
    ck_assert_uint_eq(msg.raw_data_len, strlen(data));
    ck_assert(json_is_object(msg.data));
    ck_assert_int_eq(json_integer_value(json_object_get(msg.data, "amount_cents")), 1999);
    ck_assert_int_eq(ctx->dead_trim_fields, 0);
}
END_TEST

START_TEST(test_message_raw_skips_parsing)
{
    entry("blob", "not json at all");
    ck_assert_int_eq(sl__msg_prepare(ctx, &msg, &tun, 1, NULL, 2000), 0);
    ck_assert_ptr_null(msg.data);
    ck_assert_str_eq(msg.type, "blob");
    ck_assert_uint_eq(msg.raw_data_len, 15);
}
END_TEST

START_TEST(test_message_raw_still_checks_encoding)
{
    entry("blob", "ab\xff");
    ck_assert_int_eq(sl__msg_prepare(ctx, &msg, &tun, 1, NULL, 2000), -1);
    ck_assert_str_eq(ctx->err, "invalid_encoding: data is not valid UTF-8 at offset 2");
}
END_TEST

START_TEST(test_message_type_copied_nul_terminated)
{
    /* The field value is not NUL-terminated: the type must be copied. */
    static const char buf[] = "user.createdXXXX";

    add_field_len("type", buf, 12);
    add_field("data", "{}");
    expect_ok();
    ck_assert_str_eq(msg.type, "user.created");
}
END_TEST

START_TEST(test_message_ctx_reset_clears_state)
{
    entry("t", "[]");
    expect_fail_prefix("invalid_schema");
    sl__ctx_reset(ctx);
    ck_assert_str_eq(ctx->err, "");
    ck_assert_str_eq(ctx->type, "");
    ck_assert_int_eq(ctx->script, -1);
}
END_TEST

/* ---------------------------------------------------------------------
 * order: the first failing check of docs/semantics.md's table wins
 * ------------------------------------------------------------------ */

START_TEST(test_message_expired_first)
{
    /* Expired and without data: expired comes first. */
    tun.message_ttl_ms = 500;
    msg.id = "1000-5";
    add_field("type", "x");
    ck_assert_int_eq(sl__msg_prepare(ctx, &msg, &tun, 0, NULL, 1501), -1);
    ck_assert_str_eq(ctx->err, "expired: older than 500 ms");
}
END_TEST

START_TEST(test_message_expired_boundary)
{
    tun.message_ttl_ms = 500;
    msg.id = "1000-5";
    entry("x", "{}");
    ck_assert_int_eq(sl__msg_prepare(ctx, &msg, &tun, 0, NULL, 1500), 0);
    json_decref(msg.data);
    msg.data = NULL;
    /* A TTL of 0 means none, however old the entry. */
    tun.message_ttl_ms = 0;
    ck_assert_int_eq(sl__msg_prepare(ctx, &msg, &tun, 0, NULL, 999999999), 0);
}
END_TEST

START_TEST(test_message_expired_unparsable_id_skipped)
{
    tun.message_ttl_ms = 1;
    msg.id = "abc";
    entry("x", "{}");
    ck_assert_int_eq(sl__msg_prepare(ctx, &msg, &tun, 0, NULL, 999999999), 0);
}
END_TEST

START_TEST(test_message_missing_payload_before_too_large)
{
    int i;

    tun.max_fields = 2;
    for (i = 0; i < 4; i++)
        add_field("extra", "v");
    add_field("type", "x");
    expect_fail("missing_payload");
}
END_TEST

START_TEST(test_message_missing_payload_empty)
{
    entry("x", "");
    expect_fail("missing_payload");
}
END_TEST

START_TEST(test_message_too_large_fields_before_encoding)
{
    tun.max_fields = 3;
    add_field("type", "x");
    add_field("a", "1");
    add_field("data", "\xff not json");
    add_field("b", "2");
    add_field("c", "3");
    expect_fail("too_large: 5 fields, more than max_fields 3; dropped_fields: 3");
    ck_assert_int_eq(ctx->dead_trim_fields, 1);
    ck_assert_int_eq(ctx->dropped_fields, 3);
}
END_TEST

START_TEST(test_message_too_large_fields_without_type)
{
    tun.max_fields = 1;
    add_field("data", "{}");
    add_field("a", "1");
    expect_fail("too_large: 2 fields, more than max_fields 1; dropped_fields: 1");
    ck_assert_int_eq(ctx->dropped_fields, 1);
}
END_TEST

START_TEST(test_message_too_large_bytes_before_json)
{
    tun.max_payload_bytes = 10;
    entry("x", "{{{{{{{{{{{{{");
    expect_fail("too_large: data is 13 bytes, more than max_payload_bytes 10");
    ck_assert_int_eq(ctx->dead_trim_fields, 0);
}
END_TEST

START_TEST(test_message_too_large_exact_limit_ok)
{
    tun.max_payload_bytes = 8;
    entry("x", "{\"a\":12}");
    expect_ok();
}
END_TEST

START_TEST(test_message_encoding_before_json)
{
    entry("x", "\xc3\x28 {");
    expect_fail("invalid_encoding: data is not valid UTF-8 at offset 0");
}
END_TEST

START_TEST(test_message_json_before_type)
{
    /* Bad JSON and no type: invalid_json wins. */
    add_field("data", "{\"a\":}");
    expect_fail("invalid_json: unexpected token near '}' at line 1 column 6");
}
END_TEST

START_TEST(test_message_schema_before_type)
{
    add_field("data", "[1,2]");
    expect_fail("invalid_schema: data must be a JSON object, got array");
}
END_TEST

/* ---------------------------------------------------------------------
 * encoding
 * ------------------------------------------------------------------ */

/* The encoding verdict of `data`, as the error text or "" when valid. */
static const char *encoding_of(const char *data, size_t len)
{
    sl__ctx_reset(ctx);
    json_decref(msg.data);
    msg.data = NULL;
    msg.nfields = 0;
    add_field("type", "x");
    add_field_len("data", data, len);
    sl__msg_prepare(ctx, &msg, &tun, 1, NULL, 2000);
    return ctx->err;
}

START_TEST(test_message_utf8_strict)
{
    static const struct {
        const char *s;
        const char *err;
    } cases[] = {
        { "\"\xc3\xa9\"", "" },                       /* e-acute */
        { "\"\xe2\x82\xac\"", "" },                   /* euro sign */
        { "\"\xf0\x9f\x98\x80\"", "" },               /* an emoji */
        { "\"\xf4\x8f\xbf\xbf\"", "" },               /* U+10FFFF */
        { "\"\xed\x9f\xbf\"", "" },                   /* U+D7FF */
        { "\"\xc0\xaf\"", "invalid_encoding: data is not valid UTF-8 at offset 1" },     /* overlong / */
        { "\"\xc1\xbf\"", "invalid_encoding: data is not valid UTF-8 at offset 1" },     /* overlong */
        { "\"\xe0\x80\xaf\"", "invalid_encoding: data is not valid UTF-8 at offset 1" }, /* overlong 3 */
        { "\"\xf0\x80\x80\xaf\"", "invalid_encoding: data is not valid UTF-8 at offset 1" }, /* overlong 4 */
        { "\"\xed\xa0\x80\"", "invalid_encoding: data is not valid UTF-8 at offset 1" }, /* U+D800 */
        { "\"\xed\xbf\xbf\"", "invalid_encoding: data is not valid UTF-8 at offset 1" }, /* U+DFFF */
        { "\"\xf4\x90\x80\x80\"", "invalid_encoding: data is not valid UTF-8 at offset 1" }, /* > U+10FFFF */
        { "\"\xf5\x80\x80\x80\"", "invalid_encoding: data is not valid UTF-8 at offset 1" },
        { "\"\x80\"", "invalid_encoding: data is not valid UTF-8 at offset 1" },         /* stray continuation */
        { "\"ab\xe2\x82\"", "invalid_encoding: data is not valid UTF-8 at offset 3" },   /* truncated */
        { "\"ab\xe2\x82", "invalid_encoding: data is not valid UTF-8 at offset 3" },     /* truncated at end */
        { "\"\xff\"", "invalid_encoding: data is not valid UTF-8 at offset 1" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(strcmp(encoding_of(cases[i].s, strlen(cases[i].s)), cases[i].err) == 0,
                      "case %zu: got \"%s\", want \"%s\"", i, ctx->err, cases[i].err);
}
END_TEST

START_TEST(test_message_nul_byte)
{
    static const char data[] = "{\"a\":\"x\0y\"}";

    add_field("type", "x");
    add_field_len("data", data, sizeof(data) - 1);
    expect_fail("invalid_encoding: data holds a NUL byte at offset 7");
}
END_TEST

START_TEST(test_message_escaped_nul)
{
    entry("x", "{\"a\":\"x\\u0000y\"}");
    expect_fail("invalid_encoding: data holds \\u0000 at offset 7");
}
END_TEST

START_TEST(test_message_escaped_backslash_then_u0000_ok)
{
    /* JSON text {"a":"\\u0000"}: an escaped backslash, then plain text. */
    entry("x", "{\"a\":\"\\\\u0000\"}");
    expect_ok();
    ck_assert_str_eq(json_string_value(json_object_get(msg.data, "a")), "\\u0000");
}
END_TEST

START_TEST(test_message_three_backslashes_then_u0000)
{
    /* JSON text {"a":"\\\u0000"}: an escaped backslash, then a real NUL escape. */
    entry("x", "{\"a\":\"\\\\\\u0000\"}");
    expect_fail("invalid_encoding: data holds \\u0000 at offset 8");
}
END_TEST

START_TEST(test_message_escaped_nul_in_key)
{
    entry("x", "{\"\\u0000\":1}");
    expect_fail_prefix("invalid_encoding: data holds \\u0000");
}
END_TEST

START_TEST(test_message_other_escapes_ok)
{
    entry("x", "{\"a\":\"\\u0001\\u00e9\\ud83d\\ude00\\n\"}");
    expect_ok();
}
END_TEST

/* ---------------------------------------------------------------------
 * json and schema
 * ------------------------------------------------------------------ */

START_TEST(test_message_invalid_json)
{
    entry("x", "{\"a\":1,}");
    expect_fail_prefix("invalid_json: ");
    ck_assert_ptr_nonnull(strstr(ctx->err, " at line 1 column "));
}
END_TEST

START_TEST(test_message_invalid_json_line_column)
{
    entry("x", "{\n  \"a\": 1,\n  \"b\": tru\n}");
    expect_fail("invalid_json: invalid token near 'tru' at line 3 column 10");
}
END_TEST

START_TEST(test_message_duplicate_keys)
{
    entry("x", "{\"a\":1,\"a\":2}");
    expect_fail("invalid_json: duplicate object key near '\"a\"' at line 1 column 10");
}
END_TEST

START_TEST(test_message_trailing_garbage)
{
    entry("x", "{} {}");
    expect_fail_prefix("invalid_json: end of file expected");
}
END_TEST

START_TEST(test_message_not_an_object)
{
    static const struct {
        const char *data;
        const char *kind;
    } cases[] = {
        { "[]", "array" }, { "\"s\"", "string" }, { "42", "integer" },
        { "4.5", "real" }, { "true", "true" }, { "false", "false" }, { " null ", "null" },
    };
    char want[128];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl__ctx_reset(ctx);
        msg.nfields = 0;
        entry("x", cases[i].data);
        snprintf(want, sizeof(want), "invalid_schema: data must be a JSON object, got %s",
                 cases[i].kind);
        expect_fail(want);
    }
}
END_TEST

/* ---------------------------------------------------------------------
 * type
 * ------------------------------------------------------------------ */

START_TEST(test_message_missing_type)
{
    add_field("data", "{}");
    expect_fail("unknown_type: missing type");
}
END_TEST

START_TEST(test_message_empty_type)
{
    entry("", "{}");
    expect_fail("unknown_type: missing type");
}
END_TEST

START_TEST(test_message_unknown_type)
{
    static const char *const types[] = { "user.created", "user.credited", NULL };

    entry("user.deleted", "{}");
    ck_assert_int_eq(sl__msg_prepare(ctx, &msg, &tun, 0, types, 2000), -1);
    ck_assert_str_eq(ctx->err, "unknown_type: user.deleted");
}
END_TEST

START_TEST(test_message_type_too_long)
{
    char type[SL_TYPELEN + 1];

    memset(type, 'a', sizeof(type) - 1);
    type[sizeof(type) - 1] = '\0';
    entry(type, "{}");
    expect_fail("unknown_type: type is 256 bytes, more than 255");
    /* 255 bytes still fit. */
    sl__ctx_reset(ctx);
    fields[0].value_len = SL_TYPELEN - 1;
    expect_ok();
    ck_assert_uint_eq(strlen(msg.type), SL_TYPELEN - 1);
}
END_TEST

START_TEST(test_message_type_bad_utf8)
{
    static const char t[] = "a\0b";

    add_field_len("type", t, 3);
    add_field("data", "{}");
    expect_fail("unknown_type: type is not valid UTF-8 text");
    sl__ctx_reset(ctx);
    msg.nfields = 0;
    entry("caf\xc3", "{}");
    expect_fail("unknown_type: type is not valid UTF-8 text");
}
END_TEST

/* ---------------------------------------------------------------------
 * validators
 * ------------------------------------------------------------------ */

/* Parses JSON text for a validator test; the test decrefs it. */
static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);

    ck_assert_msg(v != NULL, "bad test JSON: %s", e.text);
    return v;
}

START_TEST(test_message_amount_wrong_type)
{
    json_t *d = parse("{\"r\":1e2,\"s\":\"100\",\"f\":100.0,\"n\":null,\"b\":true}");
    static const char *const keys[] = { "r", "s", "f", "n", "b" };
    char want[64];
    long long v = 7;
    size_t i;

    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(sl_get_amount(ctx, d, keys[i], 1, 1000000000000LL, &v), -1);
        snprintf(want, sizeof(want), "wrong_type: %s: expected integer", keys[i]);
        ck_assert_str_eq(ctx->err, want);
    }
    ck_assert_int_eq(v, 7);
    json_decref(d);
}
END_TEST

START_TEST(test_message_amount_range)
{
    json_t *d = parse("{\"zero\":0,\"one\":1,\"max\":1000000000000,\"over\":1000000000001,\"neg\":-5}");
    long long v = 0;

    ck_assert_int_eq(sl_get_amount(ctx, d, "one", 1, 1000000000000LL, &v), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(sl_get_amount(ctx, d, "max", 1, 1000000000000LL, &v), 0);
    ck_assert_int_eq(v, 1000000000000LL);
    ck_assert_int_eq(sl_get_amount(ctx, d, "zero", 1, 1000000000000LL, &v), -1);
    ck_assert_str_eq(ctx->err,
                     "invalid_amount: zero: expected an integer from 1 to 1000000000000");
    ck_assert_int_eq(sl_get_amount(ctx, d, "over", 1, 1000000000000LL, &v), -1);
    ck_assert_str_eq(ctx->err,
                     "invalid_amount: over: expected an integer from 1 to 1000000000000");
    ck_assert_int_eq(sl_get_amount(ctx, d, "neg", 0, 1000000000000LL, &v), -1);
    ck_assert_str_eq(ctx->err,
                     "invalid_amount: neg: expected an integer from 0 to 1000000000000");
    ck_assert_int_eq(sl_get_amount(ctx, d, "zero", 0, 10, &v), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(sl_get_amount(ctx, d, "absent", 1, 10, &v), -1);
    ck_assert_str_eq(ctx->err, "missing_field: absent");
    json_decref(d);
}
END_TEST

START_TEST(test_message_amount_via_prepare)
{
    /* An integer written as 1e2 in the entry itself. */
    long long v;

    entry("x", "{\"amount_cents\":1e2}");
    expect_ok();
    ck_assert_int_eq(sl_get_amount(ctx, msg.data, "amount_cents", 1, 1000000000000LL, &v), -1);
    ck_assert_str_eq(ctx->err, "wrong_type: amount_cents: expected integer");
}
END_TEST

START_TEST(test_message_get_id)
{
    json_t *d = parse("{\"ok\":\"Ab9_.:-z\",\"empty\":\"\",\"space\":\"a b\",\"num\":5,"
                      "\"nul\":null,\"accent\":\"caf\\u00e9\","
                      "\"l64\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
                      "\"l65\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}");
    static const char *const bad[] = { "empty", "space", "accent", "l65" };
    const char *s = NULL;
    char want[128];
    size_t i;

    ck_assert_int_eq(sl_get_id(ctx, d, "ok", &s), 0);
    ck_assert_str_eq(s, "Ab9_.:-z");
    ck_assert_int_eq(sl_get_id(ctx, d, "l64", &s), 0);
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(sl_get_id(ctx, d, bad[i], &s), -1);
        snprintf(want, sizeof(want),
                 "invalid_id: %s: expected 1-64 characters of [A-Za-z0-9_.:-]", bad[i]);
        ck_assert_str_eq(ctx->err, want);
    }
    ck_assert_int_eq(sl_get_id(ctx, d, "num", &s), -1);
    ck_assert_str_eq(ctx->err, "wrong_type: num: expected string");
    ck_assert_int_eq(sl_get_id(ctx, d, "nul", &s), -1);
    ck_assert_str_eq(ctx->err, "wrong_type: nul: expected string");
    ck_assert_int_eq(sl_get_id(ctx, d, "user_id", &s), -1);
    ck_assert_str_eq(ctx->err, "missing_field: user_id");
    json_decref(d);
}
END_TEST

START_TEST(test_message_get_currency)
{
    json_t *d = parse("{\"ok\":\"USD\",\"low\":\"usd\",\"short\":\"US\",\"long\":\"USDD\",\"num\":840}");
    static const char *const bad[] = { "low", "short", "long" };
    const char *s = NULL;
    char want[128];
    size_t i;

    ck_assert_int_eq(sl_get_currency(ctx, d, "ok", &s), 0);
    ck_assert_str_eq(s, "USD");
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(sl_get_currency(ctx, d, bad[i], &s), -1);
        snprintf(want, sizeof(want), "invalid_currency: %s: expected three upper-case letters",
                 bad[i]);
        ck_assert_str_eq(ctx->err, want);
    }
    ck_assert_int_eq(sl_get_currency(ctx, d, "num", &s), -1);
    ck_assert_str_eq(ctx->err, "wrong_type: num: expected string");
    ck_assert_int_eq(sl_get_currency(ctx, d, "currency", &s), -1);
    ck_assert_str_eq(ctx->err, "missing_field: currency");
    json_decref(d);
}
END_TEST

START_TEST(test_message_get_string)
{
    json_t *d = parse("{\"name\":\"Ada\",\"empty\":\"\",\"num\":1}");
    const char *s = NULL;

    ck_assert_int_eq(sl_get_string(ctx, d, "name", 0, &s), 0);
    ck_assert_str_eq(s, "Ada");
    ck_assert_int_eq(sl_get_string(ctx, d, "empty", 1, &s), 0);
    ck_assert_str_eq(s, "");
    ck_assert_int_eq(sl_get_string(ctx, d, "empty", 0, &s), -1);
    ck_assert_str_eq(ctx->err, "missing_field: empty");
    ck_assert_int_eq(sl_get_string(ctx, d, "num", 1, &s), -1);
    ck_assert_str_eq(ctx->err, "wrong_type: num: expected string");
    ck_assert_int_eq(sl_get_string(ctx, d, "reason", 1, &s), -1);
    ck_assert_str_eq(ctx->err, "missing_field: reason");
    json_decref(d);
}
END_TEST

START_TEST(test_message_canonical_json)
{
    json_t *a = parse("{\"b\":1,\"a\":{\"d\":2,\"c\":[1,2]},\"e\":\"\\u00e9\"}");
    json_t *b = parse(" {\n \"e\" : \"\xc3\xa9\", \"a\" : {\"c\":[1, 2], \"d\":2},\t\"b\":1 } ");
    json_t *c = parse("{\"b\":1,\"a\":{\"d\":2,\"c\":[2,1]},\"e\":\"\\u00e9\"}");
    json_t *s = json_string("x");
    char *ta = sl_json_canonical(a), *tb = sl_json_canonical(b), *tc = sl_json_canonical(c);
    char *ts = sl_json_canonical(s);

    ck_assert_ptr_nonnull(ta);
    ck_assert_str_eq(ta, tb);
    ck_assert_str_eq(ta, "{\"a\":{\"c\":[1,2],\"d\":2},\"b\":1,\"e\":\"\xc3\xa9\"}");
    ck_assert_str_ne(ta, tc);
    ck_assert_str_eq(ts, "\"x\"");
    ck_assert_ptr_null(sl_json_canonical(NULL));
    free(ta);
    free(tb);
    free(tc);
    free(ts);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(s);
}
END_TEST

/* ---------------------------------------------------------------------
 * ctx: effects, errors, fields
 * ------------------------------------------------------------------ */

static const struct sl_script script_a = { "a", "return 1" };   /* listed first */
static const struct sl_script script_b = { "b", "return 2" };   /* listed second */
static const struct sl_script script_x = { "x", "return 3" };   /* not listed */
static const struct sl_script *const test_scripts[] = { &script_a, &script_b, NULL };
static const struct sl_handler test_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "test",
    .scripts = test_scripts,
};

START_TEST(test_message_ctx_effect)
{
    struct sl_ctx *c = sl__ctx_new(&test_handler);
    const char *keys[] = { "order:o-1", "" };
    const char *args[] = { "1999", "USD", "pending" };
    size_t len;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(sl_ctx_effect(c, &script_x, 0, NULL, 0, NULL), SL_EINVAL);
    ck_assert_int_eq(c->script, -1);
    ck_assert_int_eq(sl_ctx_effect(c, &script_b, 2, keys, 3, args), 0);
    ck_assert_int_eq(c->script, 1);
    ck_assert_int_eq(c->nkeys, 2);
    ck_assert_int_eq(c->nargs, 3);
    ck_assert_str_eq(sl__ctx_effect_arg(c, 0, &len), "order:o-1");
    ck_assert_uint_eq(len, 9);
    ck_assert_str_eq(sl__ctx_effect_arg(c, 1, &len), "");
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(sl__ctx_effect_arg(c, 2, &len), "1999");
    ck_assert_uint_eq(len, 4);
    ck_assert_str_eq(sl__ctx_effect_arg(c, 4, &len), "pending");
    ck_assert_uint_eq(len, 7);
    ck_assert_ptr_null(sl__ctx_effect_arg(c, 5, &len));
    ck_assert_ptr_null(sl__ctx_effect_arg(c, -1, &len));
    /* At most one effect per entry. */
    ck_assert_int_eq(sl_ctx_effect(c, &script_a, 0, NULL, 0, NULL), SL_EEXIST);
    ck_assert_int_eq(c->script, 1);
    sl__ctx_free(c);
}
END_TEST

START_TEST(test_message_ctx_effect_reuses_buffers)
{
    struct sl_ctx *c = sl__ctx_new(&test_handler);
    const char *keys[] = { "k1", "k2" };
    const char *args[] = { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
    char *buf;
    size_t *offs;
    int i;

    ck_assert_int_eq(sl_ctx_effect(c, &script_a, 2, keys, 1, args), 0);
    buf = c->buf;
    offs = c->offs;
    for (i = 0; i < 100; i++) {
        sl__ctx_reset(c);
        ck_assert_ptr_null(sl__ctx_effect_arg(c, 0, NULL));
        ck_assert_int_eq(sl_ctx_effect(c, &script_a, 2, keys, 1, args), 0);
        ck_assert_ptr_eq(c->buf, buf);
        ck_assert_ptr_eq(c->offs, offs);
    }
    ck_assert_str_eq(sl__ctx_effect_arg(c, 2, NULL), args[0]);
    sl__ctx_free(c);
}
END_TEST

START_TEST(test_message_ctx_effect_grows)
{
    struct sl_ctx *c = sl__ctx_new(&test_handler);
    const char *args[100];
    char big[5000];
    char num[100][12];
    int i;

    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (i = 0; i < 99; i++) {
        snprintf(num[i], sizeof(num[i]), "%d", i);
        args[i] = num[i];
    }
    args[99] = big;
    ck_assert_int_eq(sl_ctx_effect(c, &script_a, 0, NULL, 100, args), 0);
    for (i = 0; i < 99; i++)
        ck_assert_str_eq(sl__ctx_effect_arg(c, i, NULL), num[i]);
    ck_assert_str_eq(sl__ctx_effect_arg(c, 99, NULL), big);
    ck_assert_int_eq(sl_ctx_effect(c, &script_a, 0, NULL, 0, NULL), SL_EEXIST);
    sl__ctx_reset(c);
    ck_assert_int_eq(sl_ctx_effect(c, &script_a, 1, NULL, 0, NULL), SL_EINVAL);
    ck_assert_int_eq(sl_ctx_effect(c, &script_a, -1, NULL, 0, NULL), SL_EINVAL);
    ck_assert_int_eq(sl_ctx_effect(c, NULL, 0, NULL, 0, NULL), SL_EINVAL);
    sl__ctx_free(c);
}
END_TEST

START_TEST(test_message_ctx_effect_no_scripts)
{
    /* A handler without scripts can declare no effect. */
    ck_assert_int_eq(sl_ctx_effect(ctx, &script_a, 0, NULL, 0, NULL), SL_EINVAL);
}
END_TEST

START_TEST(test_message_ctx_fail)
{
    ck_assert_int_eq(sl_ctx_fail(ctx, SL_DEAD, "invalid_id", "%s: bad", "user_id"), SL_DEAD);
    ck_assert_str_eq(ctx->err, "invalid_id: user_id: bad");
    ck_assert_int_eq(sl_ctx_fail(ctx, SL_RETRY, "order_not_found", NULL), SL_RETRY);
    ck_assert_str_eq(ctx->err, "order_not_found");
    sl__ctx_seterr(ctx, "x", "%d", 5);
    ck_assert_str_eq(ctx->err, "x: 5");
}
END_TEST

START_TEST(test_message_ctx_fail_truncates)
{
    char detail[2 * SL_ERRLEN];
    size_t len, i;

    /* Two-byte characters: the cut must not split one. */
    for (i = 0; i + 2 < sizeof(detail); i += 2) {
        detail[i] = '\xc3';
        detail[i + 1] = '\xa9';
    }
    detail[i] = '\0';
    for (i = 0; i < 2; i++) {
        sl_ctx_fail(ctx, SL_DEAD, i == 0 ? "c" : "cd", "%s", detail);
        len = strlen(ctx->err);
        ck_assert_uint_le(len, SL_ERRLEN - 1);
        ck_assert_uint_ge(len, SL_ERRLEN - 2);
        ck_assert_int_eq((unsigned char)ctx->err[len - 1], 0xa9);
    }
}
END_TEST

START_TEST(test_message_field_lookup)
{
    static const char v[] = "a\0b";
    size_t len = 0;

    add_field("type", "x");
    add_field_len("blob", v, 3);
    add_field("type", "second");
    ck_assert_ptr_eq(sl_msg_field(&msg, "blob", &len), v);
    ck_assert_uint_eq(len, 3);
    ck_assert_ptr_eq(sl_msg_field(&msg, "type", &len), fields[0].value);
    ck_assert_uint_eq(len, 1);
    ck_assert_ptr_null(sl_msg_field(&msg, "typ", &len));
    ck_assert_ptr_null(sl_msg_field(&msg, "types", NULL));
}
END_TEST

/* ---------------------------------------------------------------------
 * Suite
 * ------------------------------------------------------------------ */

/* Returns the message suite: core, order, encoding, json, type,
 * validators and ctx cases. New: the runner frees it. */
Suite *message_suite(void)
{
    Suite *s = suite_create("message");
    TCase *tc;

    tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_message_valid_entry);
    tcase_add_test(tc, test_message_raw_skips_parsing);
    tcase_add_test(tc, test_message_raw_still_checks_encoding);
    tcase_add_test(tc, test_message_type_copied_nul_terminated);
    tcase_add_test(tc, test_message_ctx_reset_clears_state);
    suite_add_tcase(s, tc);

    tc = tcase_create("order");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_message_expired_first);
    tcase_add_test(tc, test_message_expired_boundary);
    tcase_add_test(tc, test_message_expired_unparsable_id_skipped);
    tcase_add_test(tc, test_message_missing_payload_before_too_large);
    tcase_add_test(tc, test_message_missing_payload_empty);
    tcase_add_test(tc, test_message_too_large_fields_before_encoding);
    tcase_add_test(tc, test_message_too_large_fields_without_type);
    tcase_add_test(tc, test_message_too_large_bytes_before_json);
    tcase_add_test(tc, test_message_too_large_exact_limit_ok);
    tcase_add_test(tc, test_message_encoding_before_json);
    tcase_add_test(tc, test_message_json_before_type);
    tcase_add_test(tc, test_message_schema_before_type);
    suite_add_tcase(s, tc);

    tc = tcase_create("encoding");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_message_utf8_strict);
    tcase_add_test(tc, test_message_nul_byte);
    tcase_add_test(tc, test_message_escaped_nul);
    tcase_add_test(tc, test_message_escaped_backslash_then_u0000_ok);
    tcase_add_test(tc, test_message_three_backslashes_then_u0000);
    tcase_add_test(tc, test_message_escaped_nul_in_key);
    tcase_add_test(tc, test_message_other_escapes_ok);
    suite_add_tcase(s, tc);

    tc = tcase_create("json");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_message_invalid_json);
    tcase_add_test(tc, test_message_invalid_json_line_column);
    tcase_add_test(tc, test_message_duplicate_keys);
    tcase_add_test(tc, test_message_trailing_garbage);
    tcase_add_test(tc, test_message_not_an_object);
    suite_add_tcase(s, tc);

    tc = tcase_create("type");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_message_missing_type);
    tcase_add_test(tc, test_message_empty_type);
    tcase_add_test(tc, test_message_unknown_type);
    tcase_add_test(tc, test_message_type_too_long);
    tcase_add_test(tc, test_message_type_bad_utf8);
    suite_add_tcase(s, tc);

    tc = tcase_create("validators");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_message_amount_wrong_type);
    tcase_add_test(tc, test_message_amount_range);
    tcase_add_test(tc, test_message_amount_via_prepare);
    tcase_add_test(tc, test_message_get_id);
    tcase_add_test(tc, test_message_get_currency);
    tcase_add_test(tc, test_message_get_string);
    tcase_add_test(tc, test_message_canonical_json);
    suite_add_tcase(s, tc);

    tc = tcase_create("ctx");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_message_ctx_effect);
    tcase_add_test(tc, test_message_ctx_effect_reuses_buffers);
    tcase_add_test(tc, test_message_ctx_effect_grows);
    tcase_add_test(tc, test_message_ctx_effect_no_scripts);
    tcase_add_test(tc, test_message_ctx_fail);
    tcase_add_test(tc, test_message_ctx_fail_truncates);
    tcase_add_test(tc, test_message_field_lookup);
    suite_add_tcase(s, tc);

    return s;
}
