/* errors.c -- the texts of the SL_* codes that public functions return. */
#include "internal.h"

/* Returns the text of code (see sluice.h). */
const char *sl_strerror(int code)
{
    switch (code) {
    case SL_OK:     return "success";
    case SL_ERR:    return "failure";
    case SL_ENOMEM: return "out of memory";
    case SL_EINVAL: return "invalid argument";
    case SL_EEXIST: return "an effect was already declared for this entry";
    case SL_EREDIS: return "redis error";
    default:        return "unknown error";
    }
}
