/* check_workers.c -- unit tests of the user, order and payment handlers.
 *
 * Each test calls a handler's `handle` hook directly, with a message built
 * here and a context from sl__ctx_new(), the way the dispatcher would,
 * and checks what the hook decided: the disposition, the exact error text
 * (ctx->err) for every validation rule of docs/messages.md and docs/payment-flow.md, and for
 * valid events the declared script, keys and arguments. No Redis is
 * needed; what the scripts do in Redis is checked by
 * tests/integration/check_flow_scripts.c.
 *
 * JSON in this file is written with single quotes, which load() turns
 * into double quotes, so that test data stays readable.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <jansson.h>
#include "sluice.h"
#include "internal.h"
#include "registry.h"
#include "test_registry.h"

extern const struct sl_handler user_handler;
extern const struct sl_handler order_handler;
extern const struct sl_handler payment_handler;

/* Expected error texts, exactly as the framework's validators write them. */
#define MISS(k) "missing_field: " k
#define WT_S(k) "wrong_type: " k ": expected string"
#define WT_I(k) "wrong_type: " k ": expected integer"
#define INV_ID(k) "invalid_id: " k ": expected 1-64 characters of [A-Za-z0-9_.:-]"
#define INV_AMT(k) "invalid_amount: " k ": expected an integer from 1 to 1000000000000"
#define INV_BAL(k) "invalid_amount: " k ": expected an integer from 0 to 1000000000000"
#define INV_CUR(k) "invalid_currency: " k ": expected three upper-case letters"

/* A 64- and a 65-character identifier, the limits of docs/payment-flow.md. */
#define ID64 "a123456789b123456789c123456789d123456789e123456789f123456789g123"
#define ID65 ID64 "4"

/* The context of the current test: made by handle_json(), freed by the
 * checked teardown so that a failing assertion leaks nothing. */
static struct sl_ctx *cur;

/* Frees the current test's context; the checked fixture's teardown. */
static void teardown(void)
{
    sl__ctx_free(cur);
    cur = NULL;
}

/* Parses sq, JSON written with ' for ", and returns the value (new:
 * json_decref()). Fails the test when the text does not parse. */
static json_t *load(const char *sq)
{
    char *text = strdup(sq);
    json_t *v;
    json_error_t e;
    char *p;

    ck_assert_ptr_nonnull(text);
    for (p = text; *p != '\0'; p++)
        if (*p == '\'')
            *p = '"';
    v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    ck_assert_msg(v != NULL, "bad test JSON %s: %s", text, e.text);
    free(text);
    return v;
}

/* Calls h (sl_handler_call) for an entry of `type` whose data is the JSON sq (see
 * load), with a fresh context left in `cur`, and returns the
 * disposition. The message is built as the dispatcher builds it. */
static enum sl_disposition handle_json(const struct sl_handler *h, const char *type,
                                       const char *sq)
{
    struct sl_msg msg;
    json_t *data = load(sq);
    enum sl_disposition d;

    sl__ctx_free(cur);
    cur = sl__ctx_new(h);
    ck_assert_ptr_nonnull(cur);
    memset(&msg, 0, sizeof msg);
    msg.id = "1700000000000-0";
    msg.stream = "test";
    msg.type = type;
    msg.data = data;
    msg.raw_data = "";
    d = sl_handler_call(h, cur, &msg, NULL);
    json_decref(data);
    return d;
}

/* Returns the name of the script the current context declared, or "" when
 * it declared none. */
static const char *effect_name(void)
{
    if (cur->script < 0)
        return "";
    return cur->handler->scripts[cur->script]->name;
}

/* Returns key or argument i of the declared effect (keys first), failing
 * the test when there is none. Borrowed from `cur`. */
static const char *effect_arg(int i)
{
    const char *s = sl__ctx_effect_arg(cur, i, NULL);

    ck_assert_msg(s != NULL, "no effect argument %d", i);
    return s;
}

/* Asserts that the current context declared `script` with exactly the
 * keys and arguments given (NULL-terminated lists). */
static void assert_effect(const char *script, const char *const *keys,
                          const char *const *args)
{
    int nk = 0, na = 0, i;

    while (keys[nk] != NULL)
        nk++;
    while (args[na] != NULL)
        na++;
    ck_assert_str_eq(cur->err, "");
    ck_assert_str_eq(effect_name(), script);
    ck_assert_int_eq(cur->nkeys, nk);
    ck_assert_int_eq(cur->nargs, na);
    for (i = 0; i < nk; i++)
        ck_assert_str_eq(effect_arg(i), keys[i]);
    for (i = 0; i < na; i++)
        ck_assert_str_eq(effect_arg(nk + i), args[i]);
}

/* ---------------------------------------------------------------------
 * Validation: one table, every rule of every event
 * ------------------------------------------------------------------ */

/* One invalid event and the error it must be dead-lettered with. */
struct bad_case {
    const struct sl_handler *h;   /* handler called */
    const char *type;             /* the entry's type */
    const char *json;             /* data, with ' for " */
    const char *err;              /* the exact ctx->err expected */
};

/* Valid bodies the cases below start from. */
#define UC_OK "'user_id':'u-1','name':'Ann','email':'ann@example.com'"
#define UK_OK "'credit_id':'c-1','user_id':'u-1'"
#define OC_OK "'order_id':'o-1','user_id':'u-1','amount_cents':1999"

static const struct bad_case bad_cases[] = {
    /* user.created: presence, in the table's order over every field */
    { &user_handler, "user.created", "{'name':'Ann','email':'a@b','balance_cents':1}", MISS("user_id") },
    { &user_handler, "user.created", "{'user_id':'u-1','email':'a@b','balance_cents':1}", MISS("name") },
    { &user_handler, "user.created", "{'user_id':'u-1','name':'Ann','balance_cents':1}", MISS("email") },
    { &user_handler, "user.created", "{" UC_OK "}", MISS("balance_cents") },
    { &user_handler, "user.created", "{}", MISS("user_id") },
    { &user_handler, "user.created", "{'user_id':'bad id','name':'Ann','email':'a@b'}", MISS("balance_cents") },
    { &user_handler, "user.created", "{'user_id':'u-1','name':'','email':'a@b','balance_cents':1}", MISS("name") },
    { &user_handler, "user.created", "{'user_id':'u-1','name':'Ann','email':'','balance_cents':1}", MISS("email") },
    /* user.created: types */
    { &user_handler, "user.created", "{'user_id':7,'name':'Ann','email':'a@b','balance_cents':1}", WT_S("user_id") },
    { &user_handler, "user.created", "{'user_id':null,'name':'Ann','email':'a@b','balance_cents':1}", WT_S("user_id") },
    { &user_handler, "user.created", "{'user_id':'u-1','name':1,'email':'a@b','balance_cents':1}", WT_S("name") },
    { &user_handler, "user.created", "{'user_id':'u-1','name':'Ann','email':['a'],'balance_cents':1}", WT_S("email") },
    { &user_handler, "user.created", "{" UC_OK ",'balance_cents':'100'}", WT_I("balance_cents") },
    { &user_handler, "user.created", "{" UC_OK ",'balance_cents':1e2}", WT_I("balance_cents") },
    { &user_handler, "user.created", "{" UC_OK ",'balance_cents':100.0}", WT_I("balance_cents") },
    { &user_handler, "user.created", "{" UC_OK ",'balance_cents':true}", WT_I("balance_cents") },
    { &user_handler, "user.created", "{" UC_OK ",'balance_cents':null}", WT_I("balance_cents") },
    { &user_handler, "user.created", "{'user_id':'bad id','name':'Ann','email':'a@b','balance_cents':'1'}", WT_I("balance_cents") },
    /* user.created: values */
    { &user_handler, "user.created", "{'user_id':'','name':'Ann','email':'a@b','balance_cents':1}", INV_ID("user_id") },
    { &user_handler, "user.created", "{'user_id':'" ID65 "','name':'Ann','email':'a@b','balance_cents':1}", INV_ID("user_id") },
    { &user_handler, "user.created", "{'user_id':'a b','name':'Ann','email':'a@b','balance_cents':1}", INV_ID("user_id") },
    { &user_handler, "user.created", "{'user_id':'a/b','name':'Ann','email':'a@b','balance_cents':1}", INV_ID("user_id") },
    { &user_handler, "user.created", "{'user_id':'\\u00e9','name':'Ann','email':'a@b','balance_cents':1}", INV_ID("user_id") },
    { &user_handler, "user.created", "{'user_id':'bad id','name':'Ann','email':'a@b','balance_cents':-1}", INV_ID("user_id") },
    { &user_handler, "user.created", "{" UC_OK ",'balance_cents':-1}", INV_BAL("balance_cents") },
    { &user_handler, "user.created", "{" UC_OK ",'balance_cents':1000000000001}", INV_BAL("balance_cents") },
    { &user_handler, "user.created", "{" UC_OK ",'balance_cents':9223372036854775807}", INV_BAL("balance_cents") },

    /* user.credited */
    { &user_handler, "user.credited", "{'user_id':'u-1','amount_cents':1}", MISS("credit_id") },
    { &user_handler, "user.credited", "{'credit_id':'c-1','amount_cents':1}", MISS("user_id") },
    { &user_handler, "user.credited", "{" UK_OK "}", MISS("amount_cents") },
    { &user_handler, "user.credited", "{'credit_id':'c 1','user_id':'u-1'}", MISS("amount_cents") },
    { &user_handler, "user.credited", "{'credit_id':1,'user_id':'u-1','amount_cents':1}", WT_S("credit_id") },
    { &user_handler, "user.credited", "{'credit_id':'c-1','user_id':{},'amount_cents':1}", WT_S("user_id") },
    { &user_handler, "user.credited", "{" UK_OK ",'amount_cents':'5'}", WT_I("amount_cents") },
    { &user_handler, "user.credited", "{" UK_OK ",'amount_cents':2.5}", WT_I("amount_cents") },
    { &user_handler, "user.credited", "{'credit_id':'','user_id':'u-1','amount_cents':1}", INV_ID("credit_id") },
    { &user_handler, "user.credited", "{'credit_id':'c-1','user_id':'u#1','amount_cents':1}", INV_ID("user_id") },
    { &user_handler, "user.credited", "{'credit_id':'c-1','user_id':'u#1','amount_cents':0}", INV_ID("user_id") },
    { &user_handler, "user.credited", "{" UK_OK ",'amount_cents':0}", INV_AMT("amount_cents") },
    { &user_handler, "user.credited", "{" UK_OK ",'amount_cents':-5}", INV_AMT("amount_cents") },
    { &user_handler, "user.credited", "{" UK_OK ",'amount_cents':1000000000001}", INV_AMT("amount_cents") },

    /* order.created */
    { &order_handler, "order.created", "{'user_id':'u-1','amount_cents':1,'currency':'USD'}", MISS("order_id") },
    { &order_handler, "order.created", "{'order_id':'o-1','amount_cents':1,'currency':'USD'}", MISS("user_id") },
    { &order_handler, "order.created", "{'order_id':'o-1','user_id':'u-1','currency':'USD'}", MISS("amount_cents") },
    { &order_handler, "order.created", "{" OC_OK "}", MISS("currency") },
    { &order_handler, "order.created", "{'order_id':'o 1','user_id':'u-1','amount_cents':0}", MISS("currency") },
    { &order_handler, "order.created", "{'order_id':1,'user_id':'u-1','amount_cents':1,'currency':'USD'}", WT_S("order_id") },
    { &order_handler, "order.created", "{'order_id':'o-1','user_id':true,'amount_cents':1,'currency':'USD'}", WT_S("user_id") },
    { &order_handler, "order.created", "{'order_id':'o-1','user_id':'u-1','amount_cents':'1','currency':'USD'}", WT_I("amount_cents") },
    { &order_handler, "order.created", "{" OC_OK ",'currency':840}", WT_S("currency") },
    { &order_handler, "order.created", "{'order_id':'o 1','user_id':'u-1','amount_cents':0,'currency':1}", WT_S("currency") },
    { &order_handler, "order.created", "{'order_id':'o 1','user_id':'u-1','amount_cents':0,'currency':'us'}", INV_ID("order_id") },
    { &order_handler, "order.created", "{'order_id':'o-1','user_id':'" ID65 "','amount_cents':1,'currency':'USD'}", INV_ID("user_id") },
    { &order_handler, "order.created", "{'order_id':'o-1','user_id':'u-1','amount_cents':0,'currency':'us'}", INV_AMT("amount_cents") },
    { &order_handler, "order.created", "{'order_id':'o-1','user_id':'u-1','amount_cents':1000000000001,'currency':'USD'}", INV_AMT("amount_cents") },
    { &order_handler, "order.created", "{" OC_OK ",'currency':'usd'}", INV_CUR("currency") },
    { &order_handler, "order.created", "{" OC_OK ",'currency':'USDT'}", INV_CUR("currency") },
    { &order_handler, "order.created", "{" OC_OK ",'currency':'US'}", INV_CUR("currency") },
    { &order_handler, "order.created", "{" OC_OK ",'currency':''}", INV_CUR("currency") },
    { &order_handler, "order.created", "{" OC_OK ",'currency':'U1D'}", INV_CUR("currency") },

    /* payment.succeeded */
    { &order_handler, "payment.succeeded", "{'order_id':'o-1'}", MISS("payment_id") },
    { &order_handler, "payment.succeeded", "{'payment_id':'p-1'}", MISS("order_id") },
    { &order_handler, "payment.succeeded", "{'payment_id':'p 1'}", MISS("order_id") },
    { &order_handler, "payment.succeeded", "{'payment_id':1,'order_id':'o-1'}", WT_S("payment_id") },
    { &order_handler, "payment.succeeded", "{'payment_id':'p-1','order_id':[]}", WT_S("order_id") },
    { &order_handler, "payment.succeeded", "{'payment_id':'p 1','order_id':2}", WT_S("order_id") },
    { &order_handler, "payment.succeeded", "{'payment_id':'','order_id':'o-1'}", INV_ID("payment_id") },
    { &order_handler, "payment.succeeded", "{'payment_id':'p-1','order_id':'" ID65 "'}", INV_ID("order_id") },

    { &order_handler, "payment.succeeded", "{'payment_id':'p-1','order_id':'o-1'}",
      "payment_mismatch: payment p-1 is not the payment of order o-1" },

    /* payment.declined */
    { &order_handler, "payment.declined", "{'order_id':'o-1','reason':'x'}", MISS("payment_id") },
    { &order_handler, "payment.declined", "{'payment_id':'p-1','reason':'x'}", MISS("order_id") },
    { &order_handler, "payment.declined", "{'payment_id':'p-1','order_id':'o-1'}", MISS("reason") },
    { &order_handler, "payment.declined", "{'payment_id':'p 1','order_id':'o-1'}", MISS("reason") },
    { &order_handler, "payment.declined", "{'payment_id':'p-1','order_id':'o-1','reason':''}", MISS("reason") },
    { &order_handler, "payment.declined", "{'payment_id':'p-1','order_id':'o-1','reason':3}", WT_S("reason") },
    { &order_handler, "payment.declined", "{'payment_id':'p 1','order_id':'o-1','reason':null}", WT_S("reason") },
    { &order_handler, "payment.declined", "{'payment_id':'p 1','order_id':'o-1','reason':''}", INV_ID("payment_id") },
    { &order_handler, "payment.declined", "{'payment_id':'p-1','order_id':'o/1','reason':'x'}", INV_ID("order_id") },
    { &order_handler, "payment.declined", "{'payment_id':'p-1','order_id':'o-1','reason':'x'}",
      "payment_mismatch: payment p-1 is not the payment of order o-1" },

    /* payment.requested */
    { &payment_handler, "payment.requested", "{'order_id':'o-1','user_id':'u-1','amount_cents':1,'currency':'USD'}", MISS("payment_id") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','user_id':'u-1','amount_cents':1,'currency':'USD'}", MISS("order_id") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':'o-1','amount_cents':1,'currency':'USD'}", MISS("user_id") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':'o-1','user_id':'u-1','currency':'USD'}", MISS("amount_cents") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':'o-1','user_id':'u-1','amount_cents':1}", MISS("currency") },
    { &payment_handler, "payment.requested", "{'payment_id':'p 1','order_id':'o-1','user_id':'u-1','amount_cents':-1}", MISS("currency") },
    { &payment_handler, "payment.requested", "{'payment_id':5,'order_id':'o-1','user_id':'u-1','amount_cents':1,'currency':'USD'}", WT_S("payment_id") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':5,'user_id':'u-1','amount_cents':1,'currency':'USD'}", WT_S("order_id") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':'o-1','user_id':5,'amount_cents':1,'currency':'USD'}", WT_S("user_id") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':'o-1','user_id':'u-1','amount_cents':1e3,'currency':'USD'}", WT_I("amount_cents") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':'o-1','user_id':'u-1','amount_cents':1,'currency':false}", WT_S("currency") },
    { &payment_handler, "payment.requested", "{'payment_id':'p 1','order_id':'o-1','user_id':'u-1','amount_cents':0,'currency':7}", WT_S("currency") },
    { &payment_handler, "payment.requested", "{'payment_id':'p 1','order_id':'o-1','user_id':'u-1','amount_cents':0,'currency':'x'}", INV_ID("payment_id") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':'o 1','user_id':'u-1','amount_cents':1,'currency':'USD'}", INV_ID("order_id") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':'o-1','user_id':'','amount_cents':1,'currency':'USD'}", INV_ID("user_id") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':'o-1','user_id':'u-1','amount_cents':0,'currency':'x'}", INV_AMT("amount_cents") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':'o-1','user_id':'u-1','amount_cents':1000000000001,'currency':'USD'}", INV_AMT("amount_cents") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':'o-1','user_id':'u-1','amount_cents':1,'currency':'EUR '}", INV_CUR("currency") },
    { &payment_handler, "payment.requested", "{'payment_id':'p-1','order_id':'o-1','user_id':'u-1','amount_cents':1,'currency':'eur'}", INV_CUR("currency") },
};

#define NBAD ((int)(sizeof bad_cases / sizeof bad_cases[0]))

/* Each invalid event is DEAD with exactly the expected error, and
 * declares no effect. Run once per row of bad_cases (a loop test, so a
 * failure names the row). */
START_TEST(test_workers_invalid_event_is_dead)
{
    const struct bad_case *c = &bad_cases[_i];
    enum sl_disposition d = handle_json(c->h, c->type, c->json);

    ck_assert_msg(d == SL_DEAD, "row %d (%s %s): disposition %d", _i, c->type, c->json, (int)d);
    ck_assert_msg(strcmp(cur->err, c->err) == 0, "row %d (%s %s): error \"%s\", expected \"%s\"",
                  _i, c->type, c->json, cur->err, c->err);
    ck_assert_int_eq(cur->script, -1);
}
END_TEST

/* A handler called with a type outside its list (which the framework
 * normally refuses first) dead-letters it as unknown_type, and a data
 * value that is not an object as invalid_schema. */
START_TEST(test_workers_guards)
{
    ck_assert_int_eq(handle_json(&user_handler, "order.created", "{}"), SL_DEAD);
    ck_assert_str_eq(cur->err, "unknown_type: order.created");
    ck_assert_int_eq(handle_json(&order_handler, "user.created", "{}"), SL_DEAD);
    ck_assert_str_eq(cur->err, "unknown_type: user.created");
    ck_assert_int_eq(handle_json(&payment_handler, "payment.succeeded", "{}"), SL_DEAD);
    ck_assert_str_eq(cur->err, "unknown_type: payment.succeeded");
    ck_assert_int_eq(handle_json(&payment_handler, "payment.requested", "[1]"), SL_DEAD);
    ck_assert_str_eq(cur->err, "invalid_schema: data is not an object");
}
END_TEST

/* ---------------------------------------------------------------------
 * Valid events: the declared effects
 * ------------------------------------------------------------------ */

/* user.created declares user_created over user:<id> (which keeps the
 * fingerprint) and the ledger, with the canonical fingerprint and the fields. */
START_TEST(test_workers_user_created_effect)
{
    static const char *const keys[] = { "user:u-1", "ledger", "sluice:fp:expiry", NULL };
    static const char *const args[] = {
        "{\"balance_cents\":5000,\"email\":\"ann@example.com\",\"name\":\"Ann\",\"user_id\":\"u-1\"}",
        "u-1", "Ann", "ann@example.com", "5000", "0", NULL };

    ck_assert_int_eq(handle_json(&user_handler, "user.created", "{" UC_OK ",'balance_cents':5000}"), SL_ACK);
    assert_effect("user_created", keys, args);
}
END_TEST

/* The limits are inclusive: an opening balance of 0 and of 10^12, an
 * identifier of 64 characters using every allowed kind of character. */
START_TEST(test_workers_user_created_limits)
{
    static const char *const keys0[] = { "user:u-1", "ledger", "sluice:fp:expiry", NULL };
    static const char *const args0[] = {
        "{\"balance_cents\":0,\"email\":\"ann@example.com\",\"name\":\"Ann\",\"user_id\":\"u-1\"}",
        "u-1", "Ann", "ann@example.com", "0", "0", NULL };
    static const char *const keys1[] = { "user:" ID64, "ledger", "sluice:fp:expiry", NULL };
    static const char *const args1[] = {
        "{\"balance_cents\":1000000000000,\"email\":\"e\",\"name\":\"n\",\"user_id\":\"" ID64 "\"}",
        ID64, "n", "e", "1000000000000", "0", NULL };

    ck_assert_int_eq(handle_json(&user_handler, "user.created", "{" UC_OK ",'balance_cents':0}"), SL_ACK);
    assert_effect("user_created", keys0, args0);
    ck_assert_int_eq(handle_json(&user_handler, "user.created",
                                 "{'user_id':'" ID64 "','name':'n','email':'e','balance_cents':1000000000000}"),
                     SL_ACK);
    assert_effect("user_created", keys1, args1);
    ck_assert_int_eq(handle_json(&user_handler, "user.created",
                                 "{'user_id':'Az09_.:-','name':'n','email':'e','balance_cents':1}"),
                     SL_ACK);
    ck_assert_str_eq(effect_arg(0), "user:Az09_.:-");
}
END_TEST

/* Unknown keys are ignored, and neither they nor the key order or white
 * space change the fingerprint: "same data" means the same JSON value. */
START_TEST(test_workers_fingerprint_is_canonical)
{
    char *a;

    ck_assert_int_eq(handle_json(&user_handler, "user.created", "{" UC_OK ",'balance_cents':5000}"), SL_ACK);
    a = strdup(effect_arg(2));
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(handle_json(&user_handler, "user.created",
                                 "{ 'balance_cents' : 5000, 'extra': {'x': [1, 2]},"
                                 "  'email':'ann@example.com', 'name':'Ann', 'user_id':'u-1' }"),
                     SL_ACK);
    ck_assert_str_eq(effect_arg(2), a);
    ck_assert_int_eq(cur->nargs, 6);
    free(a);
    /* A different value of a known field does change it. */
    ck_assert_int_eq(handle_json(&user_handler, "user.created", "{" UC_OK ",'balance_cents':5001}"), SL_ACK);
    ck_assert_str_ne(effect_arg(2),
                     "{\"balance_cents\":5000,\"email\":\"ann@example.com\",\"name\":\"Ann\",\"user_id\":\"u-1\"}");
}
END_TEST

/* user.credited declares user_credited over the user, the credit (which
 * keeps the fingerprint) and the ledger. */
START_TEST(test_workers_user_credited_effect)
{
    static const char *const keys[] = { "user:u-1", "credit:c-1", "ledger", "sluice:fp:expiry", NULL };
    static const char *const args[] = {
        "{\"amount_cents\":250,\"credit_id\":\"c-1\",\"user_id\":\"u-1\"}",
        "c-1", "u-1", "250", "0", NULL };

    ck_assert_int_eq(handle_json(&user_handler, "user.credited",
                                 "{'note':'ignored'," UK_OK ",'amount_cents':250}"), SL_ACK);
    assert_effect("user_credited", keys, args);
    ck_assert_int_eq(handle_json(&user_handler, "user.credited",
                                 "{" UK_OK ",'amount_cents':1000000000000}"), SL_ACK);
    ck_assert_str_eq(effect_arg(7), "1000000000000");
}
END_TEST

/* order.created declares order_created over the order (which keeps the
 * fingerprint) and the payments stream, with the payment.requested data built in
 * C: compact, sorted, payment_id = order_id, the amount an integer even
 * at 10^12 (cjson would print 1e+12). */
START_TEST(test_workers_order_created_effect)
{
    static const char *const keys[] = { "order:o-1", "payments", NULL };
    static const char *const args[] = {
        "{\"amount_cents\":1999,\"currency\":\"USD\",\"order_id\":\"o-1\",\"user_id\":\"u-1\"}",
        "o-1", "u-1", "1999", "USD",
        "{\"amount_cents\":1999,\"currency\":\"USD\",\"order_id\":\"o-1\",\"payment_id\":\"o-1\",\"user_id\":\"u-1\"}",
        NULL };

    ck_assert_int_eq(handle_json(&order_handler, "order.created", "{" OC_OK ",'currency':'USD'}"), SL_ACK);
    assert_effect("order_created", keys, args);
    ck_assert_int_eq(handle_json(&order_handler, "order.created",
                                 "{'order_id':'o-2','user_id':'u-1','amount_cents':1000000000000,'currency':'EUR'}"),
                     SL_ACK);
    ck_assert_str_eq(effect_arg(7),
                     "{\"amount_cents\":1000000000000,\"currency\":\"EUR\",\"order_id\":\"o-2\","
                     "\"payment_id\":\"o-2\",\"user_id\":\"u-1\"}");
}
END_TEST

/* payment.succeeded and payment.declined declare order_payment_result
 * over the order (which keeps the result's fingerprint) and the
 * payment's record, which the script checks the result against, with
 * the target status and the reason. No webhook URL is set here, so the
 * notification argument is empty (nothing goes to notifications). */
START_TEST(test_workers_payment_result_effect)
{
    static const char *const keys[] = { "order:o-1", "payment:o-1", "sluice:fp:expiry",
                                        "notifications", NULL };
    static const char *const ok_args[] = {
        "{\"order_id\":\"o-1\",\"payment_id\":\"o-1\",\"type\":\"payment.succeeded\"}",
        "o-1", "o-1", "paid", "", "0", "", NULL };
    static const char *const no_args[] = {
        "{\"order_id\":\"o-1\",\"payment_id\":\"o-1\",\"reason\":\"insufficient_funds\",\"type\":\"payment.declined\"}",
        "o-1", "o-1", "failed", "insufficient_funds", "0", "", NULL };

    ck_assert_int_eq(handle_json(&order_handler, "payment.succeeded",
                                 "{'payment_id':'o-1','order_id':'o-1','reason':7}"), SL_ACK);
    assert_effect("order_payment_result", keys, ok_args);
    ck_assert_int_eq(handle_json(&order_handler, "payment.declined",
                                 "{'payment_id':'o-1','order_id':'o-1','reason':'insufficient_funds'}"), SL_ACK);
    assert_effect("order_payment_result", keys, no_args);
}
END_TEST

/* payment.requested declares payment_requested over the payment (which
 * keeps the fingerprint), the user, the ledger and the orders stream, with the
 * data of its follow-up (payment.succeeded's; the script adds the reason
 * of a decline). */
START_TEST(test_workers_payment_requested_effect)
{
    static const char *const keys[] = {
        "payment:o-1", "user:u-1", "ledger", "orders", "sluice:fp:expiry", NULL };
    static const char *const args[] = {
        "{\"amount_cents\":1999,\"currency\":\"USD\",\"order_id\":\"o-1\",\"payment_id\":\"o-1\",\"user_id\":\"u-1\"}",
        "o-1", "o-1", "u-1", "1999", "USD",
        "{\"order_id\":\"o-1\",\"payment_id\":\"o-1\"}",
        "0", NULL };

    ck_assert_int_eq(handle_json(&payment_handler, "payment.requested",
                                 "{'payment_id':'o-1','order_id':'o-1','user_id':'u-1',"
                                 "'amount_cents':1999,'currency':'USD','trace':'x'}"), SL_ACK);
    assert_effect("payment_requested", keys, args);
}
END_TEST

/* ---------------------------------------------------------------------
 * The vtables and the script bodies
 * ------------------------------------------------------------------ */

/* Returns 1 when the routes of h hold exactly the given NULL-terminated
 * types, in that order, each with a function. */
static int same_routes(const struct sl_handler *h, const char *const *want)
{
    size_t i;

    for (i = 0; h->routes[i].type != NULL && want[i] != NULL; i++)
        if (strcmp(h->routes[i].type, want[i]) != 0 || h->routes[i].handle == NULL)
            return 0;
    return h->routes[i].type == NULL && want[i] == NULL;
}

/* Each vtable has the ABI version, its registry name, and routes by type
 * (each type listed once, with its function; no `types`, no `handle`);
 * the worker keeps no state, so init and destroy are NULL. */
START_TEST(test_workers_vtables)
{
    static const char *const ut[] = { "user.created", "user.credited", NULL };
    static const char *const ot[] = { "order.created", "payment.succeeded", "payment.declined", NULL };
    static const char *const pt[] = { "payment.requested", NULL };
    const struct sl_handler *hs[] = { &user_handler, &order_handler, &payment_handler };
    char why[256];
    size_t i;

    ck_assert_str_eq(user_handler.name, "user");
    ck_assert_str_eq(order_handler.name, "order");
    ck_assert_str_eq(payment_handler.name, "payment");
    ck_assert(same_routes(&user_handler, ut));
    ck_assert(same_routes(&order_handler, ot));
    ck_assert(same_routes(&payment_handler, pt));
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(hs[i]->abi_version, SL_ABI_VERSION);
        ck_assert_uint_eq(hs[i]->flags, 0);
        ck_assert_ptr_null(hs[i]->handle);
        ck_assert_ptr_null(hs[i]->types);
        ck_assert_ptr_nonnull(hs[i]->scripts);
        /* init keeps idempotency_retention_ms, destroy frees it. */
        ck_assert_ptr_nonnull(hs[i]->init);
        ck_assert_ptr_nonnull(hs[i]->destroy);
    }
    ck_assert_int_eq(sl__registry_check(sl_handlers, why, sizeof(why)), 0);
    ck_assert_int_eq(sl__registry_check(sl_test_handlers, why, sizeof(why)), 0);
}
END_TEST

/* The script bodies keep the conventions the framework relies on: no
 * shebang (the framework adds it), no XACK (the framework acks), no
 * cjson (follow-up data is built in C), no tonumber() (Lua numbers are
 * doubles; balances are compared as text), and no write before the
 * fingerprint and type checks. */
START_TEST(test_workers_script_conventions)
{
    const struct sl_handler *hs[] = { &user_handler, &order_handler, &payment_handler };
    static const char *const writes[] = { "'HSET'", "'SET'", "'XADD'", "'HINCRBY'", NULL };
    size_t i, j, w;

    for (i = 0; i < 3; i++) {
        for (j = 0; hs[i]->scripts[j] != NULL; j++) {
            const char *b = hs[i]->scripts[j]->body;
            /* The fingerprint check: the first place a script answers
             * 'duplicate'. Every write comes after it. */
            const char *check = strstr(b, "then return 'duplicate' end");

            ck_assert_msg(strncmp(b, "#!", 2) != 0, "%s has a shebang", hs[i]->scripts[j]->name);
            ck_assert_ptr_null(strstr(b, "XACK"));
            ck_assert_ptr_null(strstr(b, "cjson"));
            ck_assert_ptr_null(strstr(b, "tonumber"));
            ck_assert_ptr_nonnull(check);
            for (w = 0; writes[w] != NULL; w++) {
                const char *p = strstr(b, writes[w]);

                ck_assert_msg(p == NULL || p > check, "%s writes %s before its checks",
                              hs[i]->scripts[j]->name, writes[w]);
            }
        }
    }
}
END_TEST

/* Returns the suite of the built-in workers' handlers. */
Suite *workers_suite(void)
{
    Suite *s = suite_create("workers");
    TCase *tc;

    tc = tcase_create("validation");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_loop_test(tc, test_workers_invalid_event_is_dead, 0, NBAD);
    tcase_add_test(tc, test_workers_guards);
    suite_add_tcase(s, tc);

    tc = tcase_create("effects");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_workers_user_created_effect);
    tcase_add_test(tc, test_workers_user_created_limits);
    tcase_add_test(tc, test_workers_fingerprint_is_canonical);
    tcase_add_test(tc, test_workers_user_credited_effect);
    tcase_add_test(tc, test_workers_order_created_effect);
    tcase_add_test(tc, test_workers_payment_result_effect);
    tcase_add_test(tc, test_workers_payment_requested_effect);
    suite_add_tcase(s, tc);

    tc = tcase_create("vtables");
    tcase_add_test(tc, test_workers_vtables);
    tcase_add_test(tc, test_workers_script_conventions);
    suite_add_tcase(s, tc);
    return s;
}
