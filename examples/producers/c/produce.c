/* produce.c -- a sluice producer in C, with the sl_enqueue() API of
 * libsluice (no hiredis in sight).
 *
 *     produce user [REDIS_URL]     adds user.created u-1
 *     produce orders [REDIS_URL]   adds order.created o-1 and the float
 *                                  pitfall, and shows what sl_enqueue()
 *                                  refuses before sending
 *
 * Two steps because streams are independent: an order sent together with
 * its user could reach the payment worker before the user worker has
 * created the user, and be declined as unknown_user. Send `user`, check
 * that user:u-1 exists (redis-cli EXISTS user:u-1), then send `orders`.
 *
 * REDIS_URL defaults to $SLUICE_REDIS_URL, else redis://127.0.0.1:6379/0;
 * a URL without a password uses $SLUICE_REDIS_PASSWORD. Prints one line
 * per entry and exits 0 when everything went as described, 1 otherwise.
 * Outcomes are read from Redis: see docs/producers.md.
 *
 * Build it against an installed libsluice:
 *     cc $(pkg-config --cflags sluice) -o produce produce.c $(pkg-config --libs sluice)
 * or in the source tree with `make build/producers/produce`.
 */
#include <stdio.h>
#include <string.h>
#include <sluice.h>

/* Enqueues one event and prints its ID, or why it was refused. Returns
 * the result of sl_enqueue(). */
static int send(struct sl_producer *p, const char *what, const char *stream,
                const char *type, const char *json)
{
    char id[SL_ENQUEUE_IDLEN];
    int rc = sl_enqueue(p, stream, type, json, strlen(json), id, sizeof(id));

    if (rc == SL_OK)
        printf("%s -> %s %s\n", what, stream, id);
    else
        printf("%s: refused, %s: %s\n", what, sl_strerror(rc), sl_producer_errstr(p));
    return rc;
}

int main(int argc, char **argv)
{
    const char *step = argc > 1 ? argv[1] : "";
    char err[512];
    struct sl_producer *p;
    int ok = 1;

    if (argc > 3 || (strcmp(step, "user") != 0 && strcmp(step, "orders") != 0)) {
        fprintf(stderr, "usage: produce user|orders [REDIS_URL]\n");
        return 2;
    }
    /* NULL: $SLUICE_REDIS_URL, else the default URL. */
    p = sl_producer_new(argc > 2 ? argv[2] : NULL, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "produce: %s\n", err);
        return 1;
    }

    if (strcmp(step, "user") == 0) {
        /* Amounts are integers (cents); text is UTF-8. */
        ok &= send(p, "user.created u-1", "users", "user.created",
                   "{\"user_id\":\"u-1\",\"name\":\"Zo\xc3\xab\","
                   "\"email\":\"zoe@example.com\",\"balance_cents\":5000}") == SL_OK;
    } else {
        ok &= send(p, "order.created o-1", "orders", "order.created",
                   "{\"order_id\":\"o-1\",\"user_id\":\"u-1\",\"amount_cents\":1999,"
                   "\"currency\":\"USD\"}") == SL_OK;

        /* Pitfall 1: a float amount is valid JSON, so sl_enqueue() sends
         * it (it does not know the order worker's schema); the worker
         * dead-letters it as wrong_type: amount_cents: expected integer. */
        ok &= send(p, "pitfall, float amount_cents 19.99", "orders", "order.created",
                   "{\"order_id\":\"o-2\",\"user_id\":\"u-1\",\"amount_cents\":19.99,"
                   "\"currency\":\"USD\"}") == SL_OK;

        /* Pitfall 2, flat fields without `data`, cannot be written with
         * sl_enqueue(): it always sends `type` and `data`. What it refuses
         * before sending, with the error the dead letter would carry: */
        ok &= send(p, "duplicate key", "orders", "order.created",
                   "{\"order_id\":\"o-4\",\"user_id\":\"u-1\",\"amount_cents\":1999,"
                   "\"amount_cents\":2999,\"currency\":\"USD\"}") == SL_EINVAL;
        ok &= send(p, "not an object", "orders", "order.created",
                   "[\"o-5\",\"u-1\",1999,\"USD\"]") == SL_EINVAL;
        ok &= send(p, "Latin-1 text", "users", "user.created",
                   "{\"user_id\":\"u-2\",\"name\":\"Zo\xeb\",\"email\":\"z@example.com\","
                   "\"balance_cents\":0}") == SL_EINVAL;
    }
    sl_producer_free(p);
    return ok ? 0 : 1;
}
