/* echo.c -- logs every entry (one logfmt line on stderr) and acks it.
 * Useful to watch a stream while developing. */
#include <stdio.h>
#include <stdlib.h>
#include "sluice.h"

/* Prints the entry's ID, type and canonical data, then acks. */
static enum sl_disposition echo_handle(struct sl_ctx *ctx, const struct sl_msg *msg,
                                       void *privdata)
{
    char *data = sl_json_canonical(msg->data);

    (void)ctx;
    (void)privdata;
    fprintf(stderr, "event=echo stream=%s id=%s type=%s deliveries=%lld data=%s\n",
            msg->stream, msg->id, msg->type, msg->deliveries, data ? data : "?");
    free(data);
    return SL_ACK;
}

const struct sl_handler echo_handler = {
    .abi_version = SL_ABI_VERSION,
    .name = "echo",
    .handle = echo_handle,
};
