/* check_flow_scripts.c -- the payment flow's Lua effect scripts against a
 * real redis-server.
 *
 * Each step calls a handler's `handle` directly (as the dispatcher would),
 * takes the script, keys and arguments it declared, and runs the script
 * body with a plain EVAL: the body is ordinary Lua over KEYS and ARGV, so
 * its return value ('created', {'retry', ...}, {'dead', ...}) can be
 * inspected directly. Follow-up events are read back from the streams and
 * fed to the next handler, so the whole user -> order -> payment -> order
 * chain runs without the pool. The last TCase runs the same bodies inside
 * the framework's wrapper (fence, ack, retry, dead letter).
 *
 * After each scenario the invariant checker of tests/support/invariants.c
 * must find nothing wrong.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <hiredis.h>
#include "sluice.h"
#include "internal.h"
#include "scripts.h"
#include "harness.h"
#include "invariants.h"

extern const struct sl_handler user_handler;
extern const struct sl_handler order_handler;
extern const struct sl_handler payment_handler;

static struct sl_test_redis srv;  /* one server per TCase (unchecked fixture) */
static redisContext *rc;          /* this test's connection (checked fixture) */
static char out[1024];            /* outcome of the last step(), see step() */
static char text[1024];           /* the last value read by hget()/field() */

/* ---------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------ */

/* Starts the TCase's redis-server (unchecked fixture, runner process). */
static void server_up(void)
{
    ck_assert_msg(sl_test_redis_start(&srv, NULL) == 0, "redis-server did not start");
}

/* Stops the server and removes its directory. */
static void server_down(void)
{
    sl_test_redis_cleanup(&srv);
}

/* Connects and empties the server, so every test starts from nothing. */
static void conn_up(void)
{
    rc = sl_test_connect(&srv);
    ck_assert_ptr_nonnull(rc);
    ck_assert_int_eq(sl_test_int(rc, "FLUSHALL"), 0);
}

/* Closes this test's connection. */
static void conn_down(void)
{
    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
}

/* ---------------------------------------------------------------------
 * Steps
 * ------------------------------------------------------------------ */

/* Turns JSON written with ' for " into a value (new: json_decref()). Real
 * JSON read back from a stream holds no ', so it passes unchanged. */
static json_t *load(const char *sq)
{
    char *s = strdup(sq);
    json_t *v;
    char *p;

    ck_assert_ptr_nonnull(s);
    for (p = s; *p != '\0'; p++)
        if (*p == '\'')
            *p = '"';
    v = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    free(s);
    ck_assert_msg(v != NULL, "bad test JSON: %s", sq);
    return v;
}

/* Describes a script's reply in `out`: a string or status reply as it is
 * ('created'), a {kind, text} array as "kind: text", an integer in
 * decimal, an error as "error: ...". */
static void describe(const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        snprintf(out, sizeof out, "%s", r->str);
        break;
    case REDIS_REPLY_INTEGER:
        snprintf(out, sizeof out, "%lld", r->integer);
        break;
    case REDIS_REPLY_ERROR:
        snprintf(out, sizeof out, "error: %s", r->str);
        break;
    case REDIS_REPLY_ARRAY:
        if (r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
            r->element[1]->type == REDIS_REPLY_STRING) {
            snprintf(out, sizeof out, "%s: %s", r->element[0]->str, r->element[1]->str);
            break;
        }
        snprintf(out, sizeof out, "array of %zu", r->elements);
        break;
    default:
        snprintf(out, sizeof out, "reply type %d", r->type);
    }
}

/* Handles one event of `type` with data sq through handler h, which must
 * accept it and declare an effect, then runs that effect with EVAL of
 * the script body and the declared keys and arguments. When `wrap` is not
 * NULL the body runs inside the framework's wrapper instead, with
 * wrap[0..9] as the framework's ARGV and wrap_keys[0..2] as its KEYS.
 * Returns the reply described (see describe()), in a static buffer. */
static const char *step_with(const struct sl_handler *h, const char *type, const char *sq,
                             const char *const *wrap_keys, const char *const *wrap)
{
    struct sl_ctx *ctx = sl__ctx_new(h);
    struct sl_msg msg;
    json_t *data = load(sq);
    const char *argv[64];
    size_t lens[64];
    char nk[16];
    char *src = NULL;
    redisReply *r;
    int i, n = 0, fw = wrap != NULL ? 3 : 0, fa = wrap != NULL ? 10 : 0;
    enum sl_disposition d;

    ck_assert_ptr_nonnull(ctx);
    memset(&msg, 0, sizeof msg);
    msg.id = "1-1";
    msg.stream = "test";
    msg.type = type;
    msg.data = data;
    d = sl_handler_call(h, ctx, &msg, NULL);
    json_decref(data);
    if (d != SL_ACK || ctx->script < 0) {
        snprintf(out, sizeof out, "handler %d: %s", (int)d, ctx->err);
        sl__ctx_free(ctx);
        return out;
    }
    ck_assert_int_le(ctx->nkeys + ctx->nargs + fw + fa + 3, 64);
    argv[n++] = "EVAL";
    if (wrap != NULL) {
        src = sl__script_effect_source(h->scripts[ctx->script]);
        ck_assert_ptr_nonnull(src);
        argv[n++] = src;
    } else {
        argv[n++] = h->scripts[ctx->script]->body;
    }
    snprintf(nk, sizeof nk, "%d", ctx->nkeys + fw);
    argv[n++] = nk;
    for (i = 0; i < fw; i++)
        argv[n++] = wrap_keys[i];
    for (i = 0; i < ctx->nkeys; i++)
        argv[n++] = sl__ctx_effect_arg(ctx, i, NULL);
    for (i = 0; i < fa; i++)
        argv[n++] = wrap[i];
    for (i = 0; i < ctx->nargs; i++)
        argv[n++] = sl__ctx_effect_arg(ctx, ctx->nkeys + i, NULL);
    for (i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    r = redisCommandArgv(rc, n, argv, lens);
    free(src);
    sl__ctx_free(ctx);
    ck_assert_msg(r != NULL, "EVAL: no reply: %s", rc->errstr);
    describe(r);
    freeReplyObject(r);
    return out;
}

/* Runs one event through its handler and its script body (plain EVAL). */
static const char *step(const struct sl_handler *h, const char *type, const char *sq)
{
    return step_with(h, type, sq, NULL, NULL);
}

/* Asserts that one step's outcome is exactly `want`. */
#define EXPECT(h, type, sq, want) ck_assert_str_eq(step((h), (type), (sq)), (want))

/* Returns field `f` of hash `key` ("(nil)" when absent), in a static
 * buffer valid until the next read. */
static const char *hget(const char *key, const char *f)
{
    char *s = sl_test_str(rc, "HGET %s %s", key, f);

    snprintf(text, sizeof text, "%s", s != NULL ? s : "(nil)");
    free(s);
    return text;
}

/* Returns the length of stream `key` (0 when it does not exist). */
static long long xlen(const char *key)
{
    return sl_test_int(rc, "XLEN %s", key);
}

/* Returns field `f` of the newest entry of stream `key` ("(nil)" when the
 * stream is empty or the entry has no such field), in a static buffer. */
static const char *field(const char *key, const char *f)
{
    redisReply *r = sl_test_cmd(rc, "XREVRANGE %s + - COUNT 1", key);
    size_t i;

    snprintf(text, sizeof text, "(nil)");
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        redisReply *fv = r->element[0]->element[1];

        for (i = 0; i + 1 < fv->elements; i += 2)
            if (strcmp(fv->element[i]->str, f) == 0) {
                snprintf(text, sizeof text, "%s", fv->element[i + 1]->str);
                break;
            }
    }
    freeReplyObject(r);
    return text;
}

/* Copies the `data` of the newest entry of `stream` into buf (size n),
 * after checking that the entry's type is `type`. */
static void follow_up(const char *stream, const char *type, char *buf, size_t n)
{
    ck_assert_str_eq(field(stream, "type"), type);
    snprintf(buf, n, "%s", field(stream, "data"));
}

/* Asserts that the newest ledger entry is {user_id, delta_cents, ref}. */
static void assert_ledger_last(const char *user, const char *delta, const char *ref)
{
    ck_assert_str_eq(field("ledger", "user_id"), user);
    ck_assert_str_eq(field("ledger", "delta_cents"), delta);
    ck_assert_str_eq(field("ledger", "ref"), ref);
}

/* Asserts that the invariant checker finds no violation (quiet system),
 * printing its report otherwise. */
static void assert_invariants(void)
{
    char report[4096];
    int n = sl_test_invariants(rc, report, sizeof report);

    ck_assert_msg(n == 0, "%d invariant violations:\n%s", n, report);
}

/* Events used by several tests. */
#define ANN "{'user_id':'u-1','name':'Ann','email':'ann@example.com','balance_cents':5000}"
#define ORDER1 "{'order_id':'o-1','user_id':'u-1','amount_cents':1999,'currency':'USD'}"
#define CONFLICT(what, id) "dead: idempotency_conflict: " what " " id " was first seen with different data"

/* Creates a user and runs one order for it through the whole chain:
 * order.created, payment.requested, the result back to the order.
 * Returns the script outcome of the payment step, in `out`. */
static const char *run_order(const char *order_json)
{
    char data[512];
    const char *r;

    ck_assert_str_eq(step(&order_handler, "order.created", order_json), "created");
    follow_up("payments", "payment.requested", data, sizeof data);
    r = step(&payment_handler, "payment.requested", data);
    return r;
}

/* ---------------------------------------------------------------------
 * The flow
 * ------------------------------------------------------------------ */

/* user.created -> order.created -> payment.requested -> payment.succeeded:
 * every key, ledger entry and follow-up event is exactly as docs/payment-flow.md says. */
START_TEST(test_flow_happy_path)
{
    char data[512];

    EXPECT(&user_handler, "user.created", ANN, "created");
    ck_assert_str_eq(hget("user:u-1", "name"), "Ann");
    ck_assert_str_eq(hget("user:u-1", "email"), "ann@example.com");
    ck_assert_str_eq(hget("user:u-1", "balance_cents"), "5000");
    ck_assert_int_eq(xlen("ledger"), 1);
    assert_ledger_last("u-1", "5000", "open:u-1");

    EXPECT(&order_handler, "order.created", ORDER1, "created");
    ck_assert_str_eq(hget("order:o-1", "status"), "pending");
    ck_assert_str_eq(hget("order:o-1", "user_id"), "u-1");
    ck_assert_str_eq(hget("order:o-1", "amount_cents"), "1999");
    ck_assert_str_eq(hget("order:o-1", "currency"), "USD");
    ck_assert_int_eq(xlen("payments"), 1);
    follow_up("payments", "payment.requested", data, sizeof data);
    ck_assert_str_eq(data, "{\"amount_cents\":1999,\"currency\":\"USD\",\"order_id\":\"o-1\","
                           "\"payment_id\":\"o-1\",\"user_id\":\"u-1\"}");

    EXPECT(&payment_handler, "payment.requested", data, "succeeded");
    ck_assert_str_eq(hget("user:u-1", "balance_cents"), "3001");
    ck_assert_int_eq(xlen("ledger"), 2);
    assert_ledger_last("u-1", "-1999", "payment:o-1");
    ck_assert_str_eq(hget("payment:o-1", "order_id"), "o-1");
    ck_assert_str_eq(hget("payment:o-1", "user_id"), "u-1");
    ck_assert_str_eq(hget("payment:o-1", "amount_cents"), "1999");
    ck_assert_str_eq(hget("payment:o-1", "currency"), "USD");
    ck_assert_str_eq(hget("payment:o-1", "status"), "succeeded");
    ck_assert_int_eq(xlen("orders"), 1);
    follow_up("orders", "payment.succeeded", data, sizeof data);
    ck_assert_str_eq(data, "{\"order_id\":\"o-1\",\"payment_id\":\"o-1\"}");

    EXPECT(&order_handler, "payment.succeeded", data, "paid");
    ck_assert_str_eq(hget("order:o-1", "status"), "paid");
    assert_invariants();
}
END_TEST

/* A credit adds to the balance once, with its own ledger entry; a repeat
 * changes nothing, a different credit under the same ID is a conflict,
 * and a credit for an unknown user is dead unknown_user. */
START_TEST(test_flow_credit)
{
    const char *c1 = "{'credit_id':'c-1','user_id':'u-1','amount_cents':250}";

    EXPECT(&user_handler, "user.created", ANN, "created");
    EXPECT(&user_handler, "user.credited", c1, "credited");
    ck_assert_str_eq(hget("user:u-1", "balance_cents"), "5250");
    ck_assert_str_eq(hget("credit:c-1", "user_id"), "u-1");
    ck_assert_str_eq(hget("credit:c-1", "amount_cents"), "250");
    ck_assert_int_eq(xlen("ledger"), 2);
    assert_ledger_last("u-1", "250", "credit:c-1");

    EXPECT(&user_handler, "user.credited", "{'amount_cents':250, 'user_id':'u-1', 'credit_id':'c-1'}",
           "duplicate");
    EXPECT(&user_handler, "user.credited", "{'credit_id':'c-1','user_id':'u-1','amount_cents':300}",
           CONFLICT("credit", "c-1"));
    ck_assert_str_eq(hget("user:u-1", "balance_cents"), "5250");
    ck_assert_int_eq(xlen("ledger"), 2);

    EXPECT(&user_handler, "user.credited", "{'credit_id':'c-2','user_id':'u-404','amount_cents':1}",
           "dead: unknown_user: u-404");
    ck_assert_int_eq(sl_test_int(rc, "EXISTS credit:c-2"), 0);
    assert_invariants();
}
END_TEST

/* A balance below the amount declines the payment insufficient_funds:
 * no debit, no ledger entry, payment:<id> declined, and the order fails
 * with the reason copied. */
START_TEST(test_flow_insufficient_funds)
{
    char data[512];

    EXPECT(&user_handler, "user.created",
           "{'user_id':'u-2','name':'Bo','email':'bo@example.com','balance_cents':100}", "created");
    ck_assert_str_eq(run_order("{'order_id':'o-2','user_id':'u-2','amount_cents':101,'currency':'EUR'}"),
                     "declined");
    ck_assert_str_eq(hget("user:u-2", "balance_cents"), "100");
    ck_assert_int_eq(xlen("ledger"), 1);
    ck_assert_str_eq(hget("payment:o-2", "status"), "declined");
    ck_assert_str_eq(hget("payment:o-2", "reason"), "insufficient_funds");
    ck_assert_str_eq(hget("payment:o-2", "amount_cents"), "101");
    follow_up("orders", "payment.declined", data, sizeof data);
    ck_assert_str_eq(data, "{\"order_id\":\"o-2\",\"payment_id\":\"o-2\",\"reason\":\"insufficient_funds\"}");
    EXPECT(&order_handler, "payment.declined", data, "failed");
    ck_assert_str_eq(hget("order:o-2", "status"), "failed");
    ck_assert_str_eq(hget("order:o-2", "reason"), "insufficient_funds");

    /* Exactly the balance is enough, and leaves 0. */
    ck_assert_str_eq(run_order("{'order_id':'o-3','user_id':'u-2','amount_cents':100,'currency':'EUR'}"),
                     "succeeded");
    ck_assert_str_eq(hget("user:u-2", "balance_cents"), "0");
    follow_up("orders", "payment.succeeded", data, sizeof data);
    EXPECT(&order_handler, "payment.succeeded", data, "paid");
    assert_invariants();
}
END_TEST

/* A payment for a user that does not exist is declined unknown_user. */
START_TEST(test_flow_unknown_user)
{
    char data[512];

    ck_assert_str_eq(run_order("{'order_id':'o-4','user_id':'ghost','amount_cents':5,'currency':'USD'}"),
                     "declined");
    ck_assert_str_eq(hget("payment:o-4", "reason"), "unknown_user");
    ck_assert_int_eq(sl_test_int(rc, "EXISTS user:ghost"), 0);
    ck_assert_int_eq(xlen("ledger"), 0);
    follow_up("orders", "payment.declined", data, sizeof data);
    ck_assert_str_eq(data, "{\"order_id\":\"o-4\",\"payment_id\":\"o-4\",\"reason\":\"unknown_user\"}");
    EXPECT(&order_handler, "payment.declined", data, "failed");
    ck_assert_str_eq(hget("order:o-4", "reason"), "unknown_user");
    assert_invariants();
}
END_TEST

/* Identical repeats of every event are acked with no effect: no second
 * follow-up, no second ledger entry, and a repeated user.created is
 * compared with the first event, not with today's balance. */
START_TEST(test_flow_duplicates_identical)
{
    char req[512], res[512];

    EXPECT(&user_handler, "user.created", ANN, "created");
    EXPECT(&user_handler, "user.created", ANN, "duplicate");
    ck_assert_int_eq(xlen("ledger"), 1);

    EXPECT(&order_handler, "order.created", ORDER1, "created");
    EXPECT(&order_handler, "order.created",
           "{'currency':'USD','amount_cents':1999,'user_id':'u-1','order_id':'o-1','x':1}", "duplicate");
    ck_assert_int_eq(xlen("payments"), 1);

    follow_up("payments", "payment.requested", req, sizeof req);
    EXPECT(&payment_handler, "payment.requested", req, "succeeded");
    EXPECT(&payment_handler, "payment.requested", req, "duplicate");
    ck_assert_int_eq(xlen("orders"), 1);
    ck_assert_int_eq(xlen("ledger"), 2);
    ck_assert_str_eq(hget("user:u-1", "balance_cents"), "3001");

    /* The balance moved, yet the first user.created is still "the same". */
    EXPECT(&user_handler, "user.created", ANN, "duplicate");
    ck_assert_str_eq(hget("user:u-1", "balance_cents"), "3001");

    follow_up("orders", "payment.succeeded", res, sizeof res);
    EXPECT(&order_handler, "payment.succeeded", res, "paid");
    EXPECT(&order_handler, "payment.succeeded", res, "duplicate");
    ck_assert_str_eq(hget("order:o-1", "status"), "paid");
    assert_invariants();
}
END_TEST

/* Repeats with different data are dead idempotency_conflict and change
 * nothing; the first event stands. */
START_TEST(test_flow_duplicates_conflicting)
{
    char req[512];

    EXPECT(&user_handler, "user.created", ANN, "created");
    EXPECT(&user_handler, "user.created",
           "{'user_id':'u-1','name':'Ann','email':'ann@example.com','balance_cents':9000}",
           CONFLICT("user", "u-1"));
    ck_assert_str_eq(hget("user:u-1", "balance_cents"), "5000");
    ck_assert_int_eq(xlen("ledger"), 1);

    EXPECT(&order_handler, "order.created", ORDER1, "created");
    EXPECT(&order_handler, "order.created",
           "{'order_id':'o-1','user_id':'u-1','amount_cents':2000,'currency':'USD'}", CONFLICT("order", "o-1"));
    ck_assert_str_eq(hget("order:o-1", "amount_cents"), "1999");
    ck_assert_int_eq(xlen("payments"), 1);

    follow_up("payments", "payment.requested", req, sizeof req);
    EXPECT(&payment_handler, "payment.requested", req, "succeeded");
    EXPECT(&payment_handler, "payment.requested",
           "{'payment_id':'o-1','order_id':'o-1','user_id':'u-1','amount_cents':1,'currency':'USD'}",
           CONFLICT("payment", "o-1"));
    ck_assert_str_eq(hget("user:u-1", "balance_cents"), "3001");
    ck_assert_int_eq(xlen("orders"), 1);
    ck_assert_int_eq(xlen("ledger"), 2);
}
END_TEST

/* Writes payment:<pid> as the payment worker writes it (user u-1, USD),
 * for tests that feed the order worker results without running the
 * payment step; reason NULL: none. */
static void record(const char *pid, const char *oid, const char *amount, const char *status,
                   const char *reason)
{
    redisReply *r;

    r = sl_test_cmd(rc, "HSET payment:%s order_id %s user_id u-1 amount_cents %s currency USD "
                    "status %s", pid, oid, amount, status);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    if (reason != NULL)
        ck_assert_int_eq(sl_test_int(rc, "HSET payment:%s reason %s", pid, reason), 1);
}

/* Payment results: one that arrives before its order is RETRY and writes
 * nothing; one under a payment_id other than its order's ID is not the
 * order's payment (an order requests its payment under its own ID) and
 * is dead, even with a payment record that agrees; a result whose record
 * was changed behind sluice's back contradicts the order's final state
 * and is a conflict. */
START_TEST(test_flow_payment_results)
{
    record("o-9", "o-9", "10", "succeeded", NULL);
    EXPECT(&order_handler, "payment.succeeded", "{'payment_id':'o-9','order_id':'o-9'}",
           "retry: order_not_found: o-9");
    ck_assert_int_eq(sl_test_int(rc, "EXISTS order:o-9"), 0);

    EXPECT(&user_handler, "user.created", ANN, "created");
    EXPECT(&order_handler, "order.created",
           "{'order_id':'o-9','user_id':'u-1','amount_cents':10,'currency':'USD'}", "created");
    EXPECT(&order_handler, "payment.succeeded", "{'payment_id':'o-9','order_id':'o-9'}", "paid");
    record("p-2", "o-9", "10", "declined", "x");
    EXPECT(&order_handler, "payment.declined", "{'payment_id':'p-2','order_id':'o-9','reason':'x'}",
           "handler 2: payment_mismatch: payment p-2 is not the payment of order o-9");
    record("p-3", "o-9", "10", "succeeded", NULL);
    EXPECT(&order_handler, "payment.succeeded", "{'payment_id':'p-3','order_id':'o-9'}",
           "handler 2: payment_mismatch: payment p-3 is not the payment of order o-9");
    EXPECT(&order_handler, "payment.succeeded", "{'payment_id':'o-9','order_id':'o-9'}", "duplicate");
    record("o-9", "o-9", "10", "declined", "x");          /* changed behind sluice's back */
    EXPECT(&order_handler, "payment.declined", "{'payment_id':'o-9','order_id':'o-9','reason':'x'}",
           "dead: idempotency_conflict: payment result o-9 was first seen with different data");
    ck_assert_str_eq(hget("order:o-9", "status"), "paid");

    EXPECT(&order_handler, "order.created",
           "{'order_id':'o-8','user_id':'u-1','amount_cents':10,'currency':'USD'}", "created");
    record("o-8", "o-8", "10", "declined", "insufficient_funds");
    EXPECT(&order_handler, "payment.declined", "{'payment_id':'o-8','order_id':'o-8','reason':'insufficient_funds'}",
           "failed");
    record("p-5", "o-8", "10", "declined", "insufficient_funds");
    EXPECT(&order_handler, "payment.declined", "{'payment_id':'p-5','order_id':'o-8','reason':'insufficient_funds'}",
           "handler 2: payment_mismatch: payment p-5 is not the payment of order o-8");
    ck_assert_int_eq(sl_test_int(rc, "DEL payment:o-8"), 1);   /* changed behind sluice's back */
    record("o-8", "o-8", "10", "declined", "other");
    EXPECT(&order_handler, "payment.declined", "{'payment_id':'o-8','order_id':'o-8','reason':'other'}",
           "dead: idempotency_conflict: payment result o-8 was first seen with different data");
    ck_assert_int_eq(sl_test_int(rc, "DEL payment:o-8"), 1);
    record("o-8", "o-8", "10", "succeeded", NULL);
    EXPECT(&order_handler, "payment.succeeded", "{'payment_id':'o-8','order_id':'o-8'}",
           "dead: idempotency_conflict: payment result o-8 was first seen with different data");
    ck_assert_str_eq(hget("order:o-8", "status"), "failed");
}
END_TEST

/* A result is applied only when payment:<payment_id> says the same
 * thing. The real payment of o-2 is declined; forged results (anyone can
 * XADD to orders), handled before and after the genuine decline, are
 * dead payment_mismatch and change nothing, and the genuine decline and
 * its repeat still work. */
START_TEST(test_flow_forged_payment_results)
{
    char genuine[512], data[512];

    EXPECT(&user_handler, "user.created", ANN, "created");
    EXPECT(&user_handler, "user.created",
           "{'user_id':'u-2','name':'Bo','email':'bo@example.com','balance_cents':100}", "created");
    ck_assert_str_eq(run_order("{'order_id':'o-2','user_id':'u-2','amount_cents':300,'currency':'EUR'}"),
                     "declined");
    follow_up("orders", "payment.declined", genuine, sizeof genuine);

    /* Before the genuine decline is handled: the order is still pending. */
    EXPECT(&order_handler, "payment.succeeded", "{'payment_id':'o-2','order_id':'o-2'}",
           "dead: payment_mismatch: payment o-2 is declined, not succeeded");
    EXPECT(&order_handler, "payment.succeeded", "{'payment_id':'forged-1','order_id':'o-2'}",
           "handler 2: payment_mismatch: payment forged-1 is not the payment of order o-2");
    EXPECT(&order_handler, "payment.declined",
           "{'payment_id':'o-2','order_id':'o-2','reason':'unknown_user'}",
           "dead: payment_mismatch: payment o-2 was declined (insufficient_funds), not (unknown_user)");
    ck_assert_str_eq(run_order(ORDER1), "succeeded");
    EXPECT(&order_handler, "payment.succeeded", "{'payment_id':'o-1','order_id':'o-2'}",
           "handler 2: payment_mismatch: payment o-1 is not the payment of order o-2");
    ck_assert_str_eq(hget("order:o-2", "status"), "pending");
    ck_assert_int_eq(sl_test_int(rc, "HEXISTS order:o-2 fp_result"), 0);
    ck_assert_int_eq(sl_test_int(rc, "HEXISTS order:o-1 fp_result"), 0);

    /* The genuine decline, its repeat, and a forged success afterwards. */
    EXPECT(&order_handler, "payment.declined", genuine, "failed");
    EXPECT(&order_handler, "payment.declined", genuine, "duplicate");
    EXPECT(&order_handler, "payment.succeeded", "{'payment_id':'o-2','order_id':'o-2'}",
           "dead: payment_mismatch: payment o-2 is declined, not succeeded");
    ck_assert_str_eq(hget("order:o-2", "status"), "failed");
    ck_assert_str_eq(hget("order:o-2", "reason"), "insufficient_funds");

    /* The genuine success of o-1 is unchanged. */
    follow_up("orders", "payment.succeeded", data, sizeof data);
    EXPECT(&order_handler, "payment.succeeded", data, "paid");
    EXPECT(&order_handler, "payment.succeeded", data, "duplicate");
    assert_invariants();

    /* A real payment under the order's own ID, but of another amount,
     * currency or user (from a forged payment.requested that the payment
     * worker honoured before the genuine one): its result does not pay
     * the order. */
    EXPECT(&order_handler, "order.created",
           "{'order_id':'o-3','user_id':'u-1','amount_cents':1999,'currency':'USD'}", "created");
    EXPECT(&payment_handler, "payment.requested",
           "{'payment_id':'o-3','order_id':'o-3','user_id':'u-1','amount_cents':1,'currency':'USD'}",
           "succeeded");
    follow_up("orders", "payment.succeeded", data, sizeof data);
    EXPECT(&order_handler, "payment.succeeded", data,
           "dead: payment_mismatch: payment o-3 is 1 USD from user u-1, order o-3 is 1999 USD from user u-1");
    EXPECT(&order_handler, "order.created",
           "{'order_id':'o-4','user_id':'u-1','amount_cents':1999,'currency':'USD'}", "created");
    EXPECT(&payment_handler, "payment.requested",
           "{'payment_id':'o-4','order_id':'o-4','user_id':'u-1','amount_cents':1999,'currency':'EUR'}",
           "succeeded");
    follow_up("orders", "payment.succeeded", data, sizeof data);
    EXPECT(&order_handler, "payment.succeeded", data,
           "dead: payment_mismatch: payment o-4 is 1999 EUR from user u-1, order o-4 is 1999 USD from user u-1");
    EXPECT(&user_handler, "user.credited", "{'credit_id':'c-2','user_id':'u-2','amount_cents':5000}",
           "credited");
    EXPECT(&order_handler, "order.created",
           "{'order_id':'o-5','user_id':'u-1','amount_cents':1999,'currency':'USD'}", "created");
    EXPECT(&payment_handler, "payment.requested",
           "{'payment_id':'o-5','order_id':'o-5','user_id':'u-2','amount_cents':1999,'currency':'USD'}",
           "succeeded");
    follow_up("orders", "payment.succeeded", data, sizeof data);
    EXPECT(&order_handler, "payment.succeeded", data,
           "dead: payment_mismatch: payment o-5 is 1999 USD from user u-2, order o-5 is 1999 USD from user u-1");
    ck_assert_str_eq(hget("order:o-3", "status"), "pending");
    ck_assert_str_eq(hget("order:o-4", "status"), "pending");
    ck_assert_str_eq(hget("order:o-5", "status"), "pending");
    ck_assert_int_eq(sl_test_int(rc, "HEXISTS order:o-3 fp_result"), 0);
    ck_assert_int_eq(sl_test_int(rc, "HEXISTS order:o-4 fp_result"), 0);
    ck_assert_int_eq(sl_test_int(rc, "HEXISTS order:o-5 fp_result"), 0);
}
END_TEST

/* Money never goes negative: two payments that each fit but not together
 * give one success and one decline; a zero opening balance writes no
 * ledger entry; arithmetic past 2^53 stays exact (HINCRBY, text compare). */
START_TEST(test_flow_money_never_negative)
{
    EXPECT(&user_handler, "user.created",
           "{'user_id':'u-5','name':'Cy','email':'cy@example.com','balance_cents':1000}", "created");
    ck_assert_str_eq(run_order("{'order_id':'a','user_id':'u-5','amount_cents':600,'currency':'USD'}"),
                     "succeeded");
    ck_assert_str_eq(run_order("{'order_id':'b','user_id':'u-5','amount_cents':600,'currency':'USD'}"),
                     "declined");
    ck_assert_str_eq(hget("user:u-5", "balance_cents"), "400");
    ck_assert_str_eq(run_order("{'order_id':'c','user_id':'u-5','amount_cents':401,'currency':'USD'}"),
                     "declined");
    ck_assert_str_eq(run_order("{'order_id':'d','user_id':'u-5','amount_cents':400,'currency':'USD'}"),
                     "succeeded");
    ck_assert_str_eq(hget("user:u-5", "balance_cents"), "0");
    ck_assert_str_eq(run_order("{'order_id':'e','user_id':'u-5','amount_cents':1,'currency':'USD'}"),
                     "declined");

    EXPECT(&user_handler, "user.created",
           "{'user_id':'z','name':'Zed','email':'z@example.com','balance_cents':0}", "created");
    ck_assert_int_eq(sl_test_int(rc, "XLEN ledger"), 3);
    ck_assert_str_eq(hget("user:z", "balance_cents"), "0");

    /* 2^53 + 1 is not a double; a tonumber() anywhere would lose it. */
    ck_assert_int_eq(sl_test_int(rc, "HSET user:z balance_cents 9007199254740993"), 0);
    ck_assert_str_eq(run_order("{'order_id':'f','user_id':'z','amount_cents':1,'currency':'USD'}"),
                     "succeeded");
    ck_assert_str_eq(hget("user:z", "balance_cents"), "9007199254740992");
    ck_assert_int_eq(sl_test_int(rc, "HSET user:z balance_cents 999999999999"), 0);
    ck_assert_str_eq(run_order("{'order_id':'g','user_id':'z','amount_cents':1000000000000,'currency':'USD'}"),
                     "declined");
    ck_assert_str_eq(hget("user:z", "balance_cents"), "999999999999");
}
END_TEST

/* Keys of the wrong type, a corrupt balance and a user that sluice did
 * not create are refused before any write. */
START_TEST(test_flow_refuses_bad_state)
{
    ck_assert_int_eq(sl_test_int(rc, "SET ledger oops"), 0);
    EXPECT(&user_handler, "user.created", ANN,
           "retry: wrong_key_type: ledger is a string, expected a stream");
    ck_assert_int_eq(sl_test_int(rc, "EXISTS user:u-1"), 0);
    ck_assert_int_eq(sl_test_int(rc, "DEL ledger"), 1);

    ck_assert_int_eq(sl_test_int(rc, "HSET user:u-1 balance_cents -5"), 1);
    EXPECT(&user_handler, "user.created", ANN,
           "dead: idempotency_conflict: user u-1 exists but was not created by sluice");
    ck_assert_str_eq(run_order(ORDER1),
                     "retry: corrupt_balance: user:u-1 balance_cents is not a non-negative integer");
    ck_assert_int_eq(sl_test_int(rc, "EXISTS payment:o-1 ledger orders"), 0);
    EXPECT(&user_handler, "user.credited", "{'credit_id':'c-1','user_id':'u-1','amount_cents':5}",
           "retry: corrupt_balance: user:u-1 balance_cents is not a non-negative integer");
    ck_assert_int_eq(sl_test_int(rc, "EXISTS credit:c-1"), 0);
}
END_TEST

/* Sets `key` to a string (its value, if any, kept aside meanwhile) and
 * asserts that the event is refused with RETRY wrong_key_type naming
 * that key and the type it must have, and that nothing was written: no
 * key added, the balance of u-1 and the length of every other stream of
 * the flow unchanged. Then puts the key back as it was. */
static void refused_for_type(const struct sl_handler *h, const char *type, const char *sq,
                             const char *key, const char *want)
{
    static const char *const streams[] = { "ledger", "orders", "payments" };
    const char *user = strcmp(key, "user:u-1") == 0 ? "test:saved" : "user:u-1";
    char expect[256], bal[1024];
    long long keys, len[3];
    int i, saved = (int)sl_test_int(rc, "EXISTS %s", key);

    if (saved)
        freeReplyObject(sl_test_cmd(rc, "RENAME %s test:saved", key));
    freeReplyObject(sl_test_cmd(rc, "SET %s oops", key));
    keys = sl_test_int(rc, "DBSIZE");
    snprintf(bal, sizeof bal, "%s", hget(user, "balance_cents"));
    for (i = 0; i < 3; i++)
        len[i] = strcmp(streams[i], key) != 0 ? xlen(streams[i]) : -1;
    snprintf(expect, sizeof expect, "retry: wrong_key_type: %s is a string, expected a %s",
             key, want);
    EXPECT(h, type, sq, expect);
    ck_assert_int_eq(sl_test_int(rc, "DBSIZE"), keys);
    ck_assert_str_eq(hget(user, "balance_cents"), bal);
    for (i = 0; i < 3; i++)
        if (len[i] >= 0)
            ck_assert_int_eq(xlen(streams[i]), len[i]);
    ck_assert_int_eq(sl_test_int(rc, "DEL %s", key), 1);
    if (saved)
        freeReplyObject(sl_test_cmd(rc, "RENAME test:saved %s", key));
}

/* Every key an effect script reads or writes is checked for its type
 * before the first write, whichever way the script checks it: each one
 * in turn of the wrong type is RETRY wrong_key_type with no write. */
START_TEST(test_flow_every_key_type_checked)
{
    const char *pay = "{'payment_id':'o-1','order_id':'o-1','user_id':'u-1',"
                      "'amount_cents':1999,'currency':'USD'}";
    const char *credit = "{'credit_id':'c-1','user_id':'u-1','amount_cents':5}";
    const char *paid = "{'payment_id':'o-1','order_id':'o-1'}";
    char report[4096];

    refused_for_type(&user_handler, "user.created", ANN, "user:u-1", "hash");
    refused_for_type(&user_handler, "user.created", ANN, "ledger", "stream");
    EXPECT(&user_handler, "user.created", ANN, "created");

    refused_for_type(&user_handler, "user.credited", credit, "credit:c-1", "hash");
    refused_for_type(&user_handler, "user.credited", credit, "ledger", "stream");

    refused_for_type(&order_handler, "order.created", ORDER1, "order:o-1", "hash");
    refused_for_type(&order_handler, "order.created", ORDER1, "payments", "stream");
    EXPECT(&order_handler, "order.created", ORDER1, "created");

    refused_for_type(&payment_handler, "payment.requested", pay, "payment:o-1", "hash");
    refused_for_type(&payment_handler, "payment.requested", pay, "ledger", "stream");
    refused_for_type(&payment_handler, "payment.requested", pay, "orders", "stream");
    EXPECT(&payment_handler, "payment.requested", pay, "succeeded");

    refused_for_type(&order_handler, "payment.succeeded", paid, "order:o-1", "hash");
    refused_for_type(&order_handler, "payment.succeeded", paid, "payment:o-1", "hash");
    EXPECT(&order_handler, "payment.succeeded", paid, "paid");
    assert_invariants();

    /* The user key: for a credit and for a new payment. */
    EXPECT(&order_handler, "order.created",
           "{'order_id':'o-2','user_id':'u-1','amount_cents':1,'currency':'USD'}", "created");
    refused_for_type(&user_handler, "user.credited", credit, "user:u-1", "hash");
    refused_for_type(&payment_handler, "payment.requested",
                     "{'payment_id':'o-2','order_id':'o-2','user_id':'u-1',"
                     "'amount_cents':1,'currency':'USD'}", "user:u-1", "hash");
    ck_assert_msg(sl_test_invariants_live(rc, report, sizeof report) == 0, "%s", report);
}
END_TEST

/* The stored form of a fingerprint does not change with the scripts:
 * a record written earlier, with fp = the first 8 bytes of the SHA-1 of
 * the canonical JSON (computed here apart from the scripts), is
 * recognised as the same request. */
START_TEST(test_flow_digest_is_stable)
{
    const char *pay = "{'payment_id':'o-1','order_id':'o-1','user_id':'u-1',"
                      "'amount_cents':1999,'currency':'USD'}";
    const char *canon = "{\"amount_cents\":1999,\"currency\":\"USD\",\"order_id\":\"o-1\","
                        "\"payment_id\":\"o-1\",\"user_id\":\"u-1\"}";
    unsigned char fp[8];
    redisReply *r;
    int i;

    EXPECT(&user_handler, "user.created", ANN, "created");
    r = sl_test_cmd(rc, "EVAL %s 0 %s", "return redis.sha1hex(ARGV[1])", canon);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_int_eq((int)r->len, 40);
    for (i = 0; i < 8; i++) {
        unsigned int byte;
        ck_assert_int_eq(sscanf(r->str + 2 * i, "%2x", &byte), 1);
        fp[i] = (unsigned char)byte;
    }
    freeReplyObject(r);
    r = sl_test_cmd(rc, "HSET payment:o-1 order_id o-1 user_id u-1 amount_cents 1999 "
                    "currency USD status succeeded fp %b", fp, (size_t)8);
    freeReplyObject(r);
    EXPECT(&payment_handler, "payment.requested", pay, "duplicate");
    ck_assert_str_eq(hget("user:u-1", "balance_cents"), "5000");
}
END_TEST

/* Returns 1 when the report holds needle. */
static int reports(const char *report, const char *needle)
{
    return strstr(report, needle) != NULL;
}

/* The invariant checker is not blind: each kind of damage done behind
 * the scripts' back is reported, and a pending order only in quiet mode. */
START_TEST(test_flow_invariants_detect_damage)
{
    char report[4096], data[512];
    redisReply *r;
    int n;

    EXPECT(&user_handler, "user.created", ANN, "created");
    ck_assert_str_eq(run_order(ORDER1), "succeeded");
    ck_assert_int_eq(sl_test_invariants_live(rc, report, sizeof report), 0);
    n = sl_test_invariants(rc, report, sizeof report);
    ck_assert_int_eq(n, 2);
    ck_assert(reports(report, "payment:o-1 is succeeded, but order:o-1 is still pending"));
    ck_assert(reports(report, "order:o-1 is still pending"));
    follow_up("orders", "payment.succeeded", data, sizeof data);
    EXPECT(&order_handler, "payment.succeeded", data, "paid");
    ck_assert_int_eq(sl_test_invariants(rc, report, sizeof report), 0);

    /* Money out of nowhere. */
    ck_assert_int_eq(sl_test_int(rc, "HINCRBY user:u-1 balance_cents 1"), 3002);
    n = sl_test_invariants(rc, report, sizeof report);
    ck_assert_int_eq(n, 2);
    ck_assert(reports(report, "user:u-1: balance_cents 3002, but the ledger replays to 3001"));
    ck_assert(reports(report, "money is not conserved"));
    ck_assert_int_eq(sl_test_int(rc, "HINCRBY user:u-1 balance_cents -1"), 3001);

    /* A payment applied twice, and a balance driven below 0. */
    r = sl_test_cmd(rc, "XADD ledger * user_id u-1 delta_cents -1999 ref payment:o-1");
    freeReplyObject(r);
    r = sl_test_cmd(rc, "XADD ledger * user_id u-1 delta_cents -1999 ref payment:o-1");
    freeReplyObject(r);
    ck_assert_int_eq(sl_test_int(rc, "HINCRBY user:u-1 balance_cents -3998"), -997);
    n = sl_test_invariants(rc, report, sizeof report);
    ck_assert_int_ge(n, 4);
    ck_assert(reports(report, "payment:o-1 applied 3 times"));
    ck_assert(reports(report, "user:u-1: balance_cents -997 is below 0"));
    ck_assert(reports(report, "the balance of user u-1 goes below 0 (-997)"));
    ck_assert(reports(report, "money is not conserved"));

    /* A report too small is cut, not overrun. */
    n = sl_test_invariants(rc, report, 16);
    ck_assert_int_ge(n, 4);
    ck_assert_uint_lt(strlen(report), 16);
}
END_TEST

/* ---------------------------------------------------------------------
 * Inside the framework's wrapper
 * ------------------------------------------------------------------ */

/* Adds an entry to `stream`, makes it pending for consumer "c1" of group
 * "g", and stores its ID in id (size n). */
static void pend(const char *stream, const char *type, const char *data, char *id, size_t n)
{
    redisReply *r;

    r = sl_test_cmd(rc, "XGROUP CREATE %s g $ MKSTREAM", stream);
    freeReplyObject(r);
    r = sl_test_cmd(rc, "XADD %s * type %s data %s", stream, type, data);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    snprintf(id, n, "%s", r->str);
    freeReplyObject(r);
    r = sl_test_cmd(rc, "XREADGROUP GROUP g c1 COUNT 10 STREAMS %s >", stream);
    freeReplyObject(r);
}

/* Returns how many entries group "g" of `stream` has pending. */
static long long pending_count(const char *stream)
{
    redisReply *r = sl_test_cmd(rc, "XPENDING %s g", stream);
    long long n = -1;

    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* The bodies run inside the framework's fenced wrapper: an applied
 * effect acks (1), {'retry', ...} leaves the entry pending and writes
 * nothing (2), {'dead', ...} dead-letters it with the script's text (3),
 * and a consumer that no longer owns the entry changes nothing (0). */
START_TEST(test_flow_wrapped_by_framework)
{
    const char *keys[] = { "users", "sluice:attempts:test", "users:dead" };
    const char *ann = "{\"user_id\":\"u-1\",\"name\":\"Ann\",\"email\":\"a@b\",\"balance_cents\":7}";
    char id[64], id2[64];
    const char *args[10] = { "g", "c1", NULL, "5", "1000", "60000", "ack", "", "0", "0" };

    pend("users", "user.created", ann, id, sizeof id);
    args[2] = id;
    args[1] = "someone-else";
    ck_assert_str_eq(step_with(&user_handler, "user.created", ann, keys, args), "0");
    ck_assert_int_eq(sl_test_int(rc, "EXISTS user:u-1"), 0);
    args[1] = "c1";
    ck_assert_str_eq(step_with(&user_handler, "user.created", ann, keys, args), "1");
    ck_assert_str_eq(hget("user:u-1", "balance_cents"), "7");
    ck_assert_int_eq(sl_test_int(rc, "XLEN ledger"), 1);
    ck_assert_int_eq(pending_count("users"), 0);

    pend("users", "user.created", "{}", id2, sizeof id2);
    args[2] = id2;
    ck_assert_str_eq(step_with(&user_handler, "user.created",
                               "{'user_id':'u-1','name':'Other','email':'a@b','balance_cents':7}",
                               keys, args), "3");
    /* The dead letter's error is the script's text without "dead: ". */
    ck_assert_str_eq(field("users:dead", "error"), CONFLICT("user", "u-1") + strlen("dead: "));
    ck_assert_str_eq(field("users:dead", "source_id"), id2);

    keys[0] = "orders";
    keys[2] = "orders:dead";
    pend("orders", "payment.succeeded", "{}", id, sizeof id);
    args[2] = id;
    record("q", "q", "1", "succeeded", NULL);
    ck_assert_str_eq(step_with(&order_handler, "payment.succeeded",
                               "{'payment_id':'q','order_id':'q'}", keys, args), "2");
    ck_assert_int_eq(sl_test_int(rc, "EXISTS order:q"), 0);
    ck_assert_int_eq(sl_test_int(rc, "HLEN sluice:attempts:test"), 1);
    ck_assert_int_eq(pending_count("orders"), 1);
}
END_TEST

/* Returns the suite of the flow's Lua scripts against redis-server. */
Suite *flow_scripts_suite(void)
{
    Suite *s = suite_create("flow_scripts");
    TCase *tc = tcase_create("flow");

    tcase_add_unchecked_fixture(tc, server_up, server_down);
    tcase_add_checked_fixture(tc, conn_up, conn_down);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_flow_happy_path);
    tcase_add_test(tc, test_flow_credit);
    tcase_add_test(tc, test_flow_insufficient_funds);
    tcase_add_test(tc, test_flow_unknown_user);
    tcase_add_test(tc, test_flow_duplicates_identical);
    tcase_add_test(tc, test_flow_duplicates_conflicting);
    tcase_add_test(tc, test_flow_payment_results);
    tcase_add_test(tc, test_flow_forged_payment_results);
    tcase_add_test(tc, test_flow_money_never_negative);
    tcase_add_test(tc, test_flow_refuses_bad_state);
    tcase_add_test(tc, test_flow_every_key_type_checked);
    tcase_add_test(tc, test_flow_digest_is_stable);
    tcase_add_test(tc, test_flow_invariants_detect_damage);
    tcase_add_test(tc, test_flow_wrapped_by_framework);
    suite_add_tcase(s, tc);
    return s;
}
