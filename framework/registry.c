/* registry.c -- the table of handlers main() hands to sl_main(): finding
 * one by name, checking every one before anything runs, and routing an
 * entry to the function of its type.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* Finds a handler by name in a NULL-terminated registry (see internal.h). */
const struct sl_handler *sl__registry_find(const struct sl_handler *const *reg,
                                           const char *name)
{
    for (; reg != NULL && *reg != NULL; reg++)
        if (strcmp((*reg)->name, name) == 0)
            return *reg;
    return NULL;
}

/* Checks that every handler of reg was built for this framework's ABI
 * and sets either its routes or its handle (see internal.h). */
int sl__registry_check(const struct sl_handler *const *reg, char *why, size_t size)
{
    const struct sl_route *r;

    for (; reg != NULL && *reg != NULL; reg++) {
        const struct sl_handler *h = *reg;

        if (h->abi_version != SL_ABI_VERSION) {
            snprintf(why, size, "handler %s was built for ABI %d, this is %d",
                     h->name, h->abi_version, SL_ABI_VERSION);
            return -1;
        }
        if ((h->routes == NULL) == (h->handle == NULL)) {
            snprintf(why, size, "handler %s: set either routes or handle", h->name);
            return -1;
        }
        if (h->routes != NULL && h->types != NULL) {
            snprintf(why, size, "handler %s: with routes, types must be NULL", h->name);
            return -1;
        }
        for (r = h->routes; r != NULL && r->type != NULL; r++)
            if (r->handle == NULL) {
                snprintf(why, size, "handler %s: route %s has no function", h->name, r->type);
                return -1;
            }
    }
    return 0;
}

/* Finds the function of h that decides entries of `type`: its route, or
 * `handle`. Returns NULL when h routes by type and has no route for it. */
static sl_handle_fn *handler_fn(const struct sl_handler *h, const char *type)
{
    const struct sl_route *r;

    if (h->routes == NULL)
        return h->handle;
    for (r = h->routes; r->type != NULL; r++)
        if (type != NULL && strcmp(r->type, type) == 0)
            return r->handle;
    return NULL;
}

/* Calls the function of h for msg (see sluice.h). */
enum sl_disposition sl_handler_call(const struct sl_handler *h, struct sl_ctx *ctx,
                                    const struct sl_msg *msg, void *privdata)
{
    sl_handle_fn *fn = handler_fn(h, msg->type);

    if (fn == NULL)
        return sl_ctx_fail(ctx, SL_DEAD, "unknown_type", "%s", msg->type ? msg->type : "");
    return fn(ctx, msg, privdata);
}

/* Returns the types h accepts as a NULL-terminated array (see
 * internal.h): its routes' types, or its `types`. */
const char **sl__handler_types_new(const struct sl_handler *h, int *any)
{
    const char **t;
    size_t n = 0, i;

    *any = 0;
    if (h->routes == NULL) {
        const char *const *src = h->types;

        if (src == NULL) {
            *any = 1;
            return NULL;
        }
        while (src[n] != NULL)
            n++;
        if ((t = calloc(n + 1, sizeof(*t))) == NULL)
            return NULL;
        for (i = 0; i < n; i++)
            t[i] = src[i];
        return t;
    }
    while (h->routes[n].type != NULL)
        n++;
    if ((t = calloc(n + 1, sizeof(*t))) == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        t[i] = h->routes[i].type;
    return t;
}
