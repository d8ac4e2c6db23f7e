/* check_registry.c -- routing an entry to its handler's function: a
 * handler that routes by type ({type, function}, each type once), a
 * handler written for ABI 1 (`.types` + `.handle`, unchanged since), the
 * registry's checks, the context's public error, and an effect that
 * cannot be declared reported with its real cause. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <jansson.h>
#include "sluice.h"
#include "internal.h"

extern const struct sl_handler user_handler;

/* ---------------------------------------------------------------------
 * A handler that routes by type
 * ------------------------------------------------------------------ */

/* Acks, recording which function ran. */
static enum sl_disposition on_a(struct sl_ctx *ctx, const struct sl_msg *msg, void *privdata)
{
    (void)msg;
    (void)privdata;
    return sl_ctx_fail(ctx, SL_ACK, "ran_a", NULL);
}

/* Retries, recording which function ran. */
static enum sl_disposition on_b(struct sl_ctx *ctx, const struct sl_msg *msg, void *privdata)
{
    (void)msg;
    (void)privdata;
    return sl_ctx_fail(ctx, SL_RETRY, "ran_b", "%s", (const char *)privdata);
}

static const struct sl_route routes[] = { { "t.a", on_a }, { "t.b", on_b }, { NULL, NULL } };

static const struct sl_handler routed = {
    .abi_version = SL_ABI_VERSION,
    .name = "routed",
    .routes = routes,
};

/* ---------------------------------------------------------------------
 * A handler written for ABI 1: the same source compiles and runs
 * ------------------------------------------------------------------ */

static const char *const old_types[] = { "o.x", NULL };

/* Dead-letters everything with its type in the error. */
static enum sl_disposition old_handle(struct sl_ctx *ctx, const struct sl_msg *msg, void *priv)
{
    (void)priv;
    return sl_ctx_fail(ctx, SL_DEAD, "old", "%s", msg->type);
}

static const struct sl_handler old_style = {
    .abi_version = SL_ABI_VERSION,
    .name = "old",
    .types = old_types,
    .handle = old_handle,
};

/* Runs h on an entry of `type` with a fresh context; returns the
 * disposition and copies the context's error (through the public
 * sl_ctx_error) into err. */
static enum sl_disposition call(const struct sl_handler *h, const char *type, void *priv,
                                char *err, size_t errlen)
{
    struct sl_ctx *ctx = sl__ctx_new(h);
    struct sl_msg msg;
    enum sl_disposition d;

    ck_assert_ptr_nonnull(ctx);
    memset(&msg, 0, sizeof(msg));
    msg.id = "1-1";
    msg.stream = "s";
    msg.type = type;
    d = sl_handler_call(h, ctx, &msg, priv);
    snprintf(err, errlen, "%s", sl_ctx_error(ctx));
    sl__ctx_free(ctx);
    return d;
}

/* Each type goes to its own function; a type without a route is DEAD
 * unknown_type, and no function runs. */
START_TEST(test_registry_routes_by_type)
{
    static char p[] = "p";
    char err[256];

    ck_assert_int_eq(call(&routed, "t.a", NULL, err, sizeof(err)), SL_ACK);
    ck_assert_str_eq(err, "ran_a");
    ck_assert_int_eq(call(&routed, "t.b", p, err, sizeof(err)), SL_RETRY);
    ck_assert_str_eq(err, "ran_b: p");
    ck_assert_int_eq(call(&routed, "t.c", NULL, err, sizeof(err)), SL_DEAD);
    ck_assert_str_eq(err, "unknown_type: t.c");
}
END_TEST

/* A handler of ABI 1 style gets every entry in `handle`, and the types
 * the framework accepts for it are its `types`; for a routed handler they
 * are its routes' types. */
START_TEST(test_registry_old_style_handler)
{
    const char **t;
    char err[256];
    int any = -1;

    ck_assert_int_eq(call(&old_style, "o.x", NULL, err, sizeof(err)), SL_DEAD);
    ck_assert_str_eq(err, "old: o.x");
    t = sl__handler_types_new(&old_style, &any);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(any, 0);
    ck_assert_str_eq(t[0], "o.x");
    ck_assert_ptr_null(t[1]);
    free(t);
    t = sl__handler_types_new(&routed, &any);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t[0], "t.a");
    ck_assert_str_eq(t[1], "t.b");
    ck_assert_ptr_null(t[2]);
    free(t);
}
END_TEST

/* The registry refuses a handler of another ABI, one with both routes
 * and handle or neither, one with routes and types, and a route without
 * a function; it takes both styles. */
START_TEST(test_registry_checks)
{
    static const struct sl_route no_fn[] = { { "x", NULL }, { NULL, NULL } };
    struct sl_handler both = routed, neither = routed, typed = routed, nofn = routed,
                      abi = old_style;
    const struct sl_handler *ok[] = { &routed, &old_style, NULL };
    const struct sl_handler *one[] = { NULL, NULL };
    char why[256];

    both.handle = old_handle;
    neither.routes = NULL;
    typed.types = old_types;
    nofn.routes = no_fn;
    abi.abi_version = 1;
    ck_assert_int_eq(sl__registry_check(ok, why, sizeof(why)), 0);
    one[0] = &both;
    ck_assert_int_eq(sl__registry_check(one, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "handler routed: set either routes or handle");
    one[0] = &neither;
    ck_assert_int_eq(sl__registry_check(one, why, sizeof(why)), -1);
    one[0] = &typed;
    ck_assert_int_eq(sl__registry_check(one, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "handler routed: with routes, types must be NULL");
    one[0] = &nofn;
    ck_assert_int_eq(sl__registry_check(one, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "handler routed: route x has no function");
    one[0] = &abi;
    ck_assert_int_eq(sl__registry_check(one, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "was built for ABI 1, this is") != NULL, "%s", why);
}
END_TEST

/* An effect the worker cannot declare is reported with its cause: a
 * second declaration on the same entry is DEAD effect_failed saying so
 * (it used to be reported as RETRY out_of_memory). */
START_TEST(test_registry_effect_failure_has_its_cause)
{
    struct sl_ctx *ctx = sl__ctx_new(&user_handler);
    json_t *data = json_pack("{s:s, s:s, s:s, s:I}", "user_id", "u-1", "name", "A",
                             "email", "a@x", "balance_cents", (json_int_t)5);
    struct sl_msg msg;

    ck_assert_ptr_nonnull(ctx);
    ck_assert_ptr_nonnull(data);
    memset(&msg, 0, sizeof(msg));
    msg.id = "1-1";
    msg.stream = "users";
    msg.type = "user.created";
    msg.data = data;
    ck_assert_int_eq(sl_handler_call(&user_handler, ctx, &msg, NULL), SL_ACK);
    ck_assert_str_eq(sl_ctx_error(ctx), "");
    ck_assert_int_eq(sl_handler_call(&user_handler, ctx, &msg, NULL), SL_DEAD);
    ck_assert_str_eq(sl_ctx_error(ctx), "effect_failed: declaring the user.created effect: "
                                        "an effect was already declared for this entry");
    ck_assert_str_eq(sl_strerror(SL_ENOMEM), "out of memory");
    json_decref(data);
    sl__ctx_free(ctx);
}
END_TEST

Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("routes");

    tcase_add_test(tc, test_registry_routes_by_type);
    tcase_add_test(tc, test_registry_old_style_handler);
    tcase_add_test(tc, test_registry_checks);
    tcase_add_test(tc, test_registry_effect_failure_has_its_cause);
    suite_add_tcase(s, tc);
    return s;
}
