/* hello.c -- the out-of-tree worker's handler: for a `hello` event with
 * data {"name": ID} it sets hello:<name> to "hello, <name>", as an effect
 * applied atomically with the entry's XACK. It uses only the installed
 * header: routes by type, the public field check, the context's error. */
#include <stdio.h>
#include <sluice.h>

static const struct sl_script hello_set = {
    .name = "hello_set",
    .body = "redis.call('SET', KEYS[1], ARGV[1])\nreturn 'ok'\n",
};

static const struct sl_script *const hello_scripts[] = { &hello_set, NULL };

/* The fields of a hello event. */
static const struct sl_rule hello_rules[] = { { "name", SL_KIND_ID } };

/* Validates the name (DEAD invalid_id and friends when it is bad) and
 * declares the SET; a declaration that fails is reported with its cause. */
static enum sl_disposition hello_greet(struct sl_ctx *ctx, const struct sl_msg *msg, void *priv)
{
    char key[80], greeting[80];
    struct sl_value v[1];
    const char *keys[] = { key }, *args[] = { greeting };
    int rc;

    (void)priv;
    if (sl_data_check(ctx, msg->data, hello_rules, 1, v) < 0)
        return SL_DEAD;
    snprintf(key, sizeof(key), "hello:%s", v[0].s);
    snprintf(greeting, sizeof(greeting), "hello, %s", v[0].s);
    if ((rc = sl_ctx_effect(ctx, &hello_set, 1, keys, 1, args)) != 0)
        return sl_ctx_fail(ctx, SL_RETRY, "effect", "%s (after: %s)", sl_strerror(rc),
                           sl_ctx_error(ctx));
    return SL_ACK;
}

/* The one type this worker takes. */
static const struct sl_route hello_routes[] = { { "hello", hello_greet }, { NULL, NULL } };

const struct sl_handler hello_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "hello",
    .scripts = hello_scripts,
    .routes = hello_routes,
};
