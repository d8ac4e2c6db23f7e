/* config.c -- the one writer of a test's `sluice run` configuration
 * (see config.h). Each suite keeps its own base "defaults" (short timings
 * chosen for what it tests) and passes a test's own keys as overrides;
 * the merge is jansson's, key by key, so an override replaces the base's
 * value wherever the key stands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "config.h"
#include "server.h"

/* Parses "{members}" into a new object; NULL members give an empty one,
 * and a leading comma is skipped (suites pass `, "key": value`). Returns
 * NULL when the text is not valid JSON. */
static json_t *members(const char *text)
{
    size_t n;

    while (text != NULL && (*text == ',' || *text == ' ' || *text == '\n' || *text == '\t'))
        text++;
    n = text != NULL ? strlen(text) : 0;
    char *buf = malloc(n + 3);
    json_t *o;

    if (buf == NULL)
        return NULL;
    buf[0] = '{';
    if (n > 0)
        memcpy(buf + 1, text, n);
    buf[n + 1] = '}';
    buf[n + 2] = '\0';
    o = json_loads(buf, 0, NULL);
    free(buf);
    return json_is_object(o) ? o : (json_decref(o), NULL);
}

/* Returns the members of o as compact JSON text without the braces (new:
 * free()), or NULL. */
static char *inner(const json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t n;

    if (s == NULL)
        return NULL;
    n = strlen(s);
    memmove(s, s + 1, n - 2);
    s[n - 2] = '\0';
    return s;
}

/* Writes the file (see config.h). */
int sl_test_config_write(const char *path, const struct sl_test_config *c)
{
    json_t *base = members(c->defaults), *over = members(c->overrides);
    json_t *url = json_string(c->url), *listen = NULL;
    char *defs = NULL, *urltext = NULL, *listentext = NULL;
    int rc = -1;

    if (base == NULL || over == NULL || url == NULL || json_object_update(base, over) != 0)
        goto out;
    listen = c->metrics_listen != NULL ? json_string(c->metrics_listen) : json_null();
    defs = inner(base);
    urltext = json_dumps(url, JSON_ENCODE_ANY);
    listentext = listen != NULL ? json_dumps(listen, JSON_ENCODE_ANY) : NULL;
    if (defs == NULL || urltext == NULL || listentext == NULL)
        goto out;
    rc = sl_test_write_file(path,
        "{\n"
        "  \"redis\": {\"url\": %s%s%s},\n"
        "  \"defaults\": {%s},\n"
        "  \"workers\": [%s],\n"
        "  \"metrics\": {\"listen\": %s}\n"
        "}\n",
        urltext, c->redis != NULL && *c->redis != '\0' ? ", " : "",
        c->redis != NULL ? c->redis : "", defs, c->workers != NULL ? c->workers : "",
        listentext);
out:
    free(defs);
    free(urltext);
    free(listentext);
    json_decref(listen);
    json_decref(url);
    json_decref(base);
    json_decref(over);
    return rc;
}
