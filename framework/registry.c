/* registry.c -- the table of handlers main() hands to sl_main(): finding
 * one by name, and checking every one before anything runs.
 */
#include <stdio.h>
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
 * (see internal.h). */
int sl__registry_check(const struct sl_handler *const *reg, char *why, size_t size)
{
    for (; reg != NULL && *reg != NULL; reg++)
        if ((*reg)->abi_version != SL_ABI_VERSION) {
            snprintf(why, size, "handler %s was built for ABI %d, this is %d",
                     (*reg)->name, (*reg)->abi_version, SL_ABI_VERSION);
            return -1;
        }
    return 0;
}
