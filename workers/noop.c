/* noop.c -- acks every entry without looking at it. For tests and for
 * `make bench`, where it measures what the framework itself costs: it sets
 * SL_HANDLER_RAW so `data` is not even parsed (the size, encoding and type
 * checks still run). */
#include "sluice.h"

/* Acks the entry. */
static enum sl_disposition noop_handle(struct sl_ctx *ctx, const struct sl_msg *msg,
                                       void *privdata)
{
    (void)ctx;
    (void)msg;
    (void)privdata;
    return SL_ACK;
}

const struct sl_handler noop_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "noop",
    .flags = SL_HANDLER_RAW,
    .handle = noop_handle,
};
