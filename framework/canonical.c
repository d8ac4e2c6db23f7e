/* canonical.c -- canonical JSON text: how "the same data" is compared
 * (idempotency fingerprints), whatever the key order and white space.
 */
#include <jansson.h>

#include "internal.h"

/* Returns the canonical text of a JSON value: keys sorted, no white
 * space, any value kind accepted. Equal values give equal texts whatever
 * their key order and spacing, which is how idempotency keys compare
 * "the same data". New: free() it; NULL for a NULL value or on
 * allocation failure. */
char *sl_json_canonical(const json_t *value)
{
    if (value == NULL)
        return NULL;
    return json_dumps(value, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
}
