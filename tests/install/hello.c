/* hello.c -- the out-of-tree worker's handler: for a `hello` event with
 * data {"name": ID} it sets hello:<name> to "hello, <name>", as an effect
 * applied atomically with the entry's XACK. */
#include <stdio.h>
#include <sluice.h>

static const struct sl_script hello_set = {
    .name = "hello_set",
    .body = "redis.call('SET', KEYS[1], ARGV[1])\nreturn 'ok'\n",
};

static const struct sl_script *const hello_scripts[] = { &hello_set, NULL };
static const char *const hello_types[] = { "hello", NULL };

/* Validates the name (DEAD invalid_id and friends when it is bad) and
 * declares the SET. */
static enum sl_disposition hello_handle(struct sl_ctx *ctx, const struct sl_msg *msg, void *priv)
{
    char key[80], greeting[80];
    const char *name, *keys[] = { key }, *args[] = { greeting };

    (void)priv;
    if (sl_get_id(ctx, msg->data, "name", &name) < 0)
        return SL_DEAD;
    snprintf(key, sizeof(key), "hello:%s", name);
    snprintf(greeting, sizeof(greeting), "hello, %s", name);
    if (sl_ctx_effect(ctx, &hello_set, 1, keys, 1, args) != 0)
        return sl_ctx_fail(ctx, SL_RETRY, "effect", "cannot declare");
    return SL_ACK;
}

const struct sl_handler hello_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "hello",
    .types = hello_types,
    .scripts = hello_scripts,
    .handle = hello_handle,
};
