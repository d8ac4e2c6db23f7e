/* prom.c -- a Prometheus text-format (0.0.4) checker for the /metrics
 * tests, and a sample reader. No Check: usable by any test program.
 *
 * Stricter than the format where sluice promises more: every family has
 * HELP and TYPE before its samples. The rules checked: lines end in \n;
 * HELP/TYPE name a valid metric name, at most once per family, before
 * its samples; TYPE is a known type; all lines of a family are
 * contiguous; metric and label names have the required syntax; label
 * values are quoted with only \\ \" \n escapes; values are Go floats
 * (or +Inf, -Inf, NaN); an optional timestamp is an integer; no series
 * appears twice; counters are >= 0; every histogram series has buckets
 * with increasing `le`, cumulative counts, a +Inf bucket equal to its
 * _count, and a _sum.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "prom.h"

#define PROM_MAXFAM 128
#define PROM_MAXSERIES 2048
#define PROM_MAXHIST 128

/* One metric family seen so far. */
struct prom_family {
    char name[128];               /* family name */
    char type[32];                /* "" until TYPE */
    int help;                     /* HELP seen */
    int samples;                  /* samples seen */
    int closed;                   /* another family began after this one */
};

/* One histogram series (labels without le). */
struct prom_hist {
    char key[1024];               /* family + canonical labels */
    double last_le;               /* highest le so far */
    double last_count;            /* cumulative count at last_le */
    int nbuckets;                 /* buckets seen */
    int inf;                      /* +Inf bucket seen */
    double inf_count;             /* its value */
    int has_count, has_sum;       /* _count and _sum seen */
    double count;                 /* _count value */
};

/* The checker's state for one text. */
struct prom {
    struct prom_family fam[PROM_MAXFAM];
    int nfam;
    int cur;                      /* index of the family being read, -1 none */
    char *series[PROM_MAXSERIES]; /* canonical series seen (owned) */
    int nseries;
    struct prom_hist hist[PROM_MAXHIST];
    int nhist;
};

/* Writes a printf-style reason into why (wl bytes; cut when longer) and
 * returns -1, for `return failf(...)`. */
static int failf(char *why, size_t wl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(char *why, size_t wl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, wl, fmt, ap);
    va_end(ap);
    return -1;
}

/* Returns 1 when s[0..n) is a valid metric name. */
static int prom_metric_name(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* Returns 1 when s[0..n) is a valid label name (no reserved __ prefix). */
static int prom_label_name(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || (n >= 2 && s[0] == '_' && s[1] == '_'))
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* Parses a sample value (Go float syntax, or +Inf/-Inf/Inf/NaN) from
 * s[0..n). Returns 0 and the value, or -1. */
static int prom_float(const char *s, size_t n, double *v)
{
    char buf[64], *end;
    size_t i;

    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!strcmp(buf, "+Inf") || !strcmp(buf, "Inf")) {
        *v = INFINITY;
        return 0;
    }
    if (!strcmp(buf, "-Inf")) {
        *v = -INFINITY;
        return 0;
    }
    if (!strcmp(buf, "NaN")) {
        *v = NAN;
        return 0;
    }
    for (i = 0; i < n; i++)
        if (!strchr("0123456789.eE+-", buf[i]))
            return -1;
    errno = 0;
    *v = strtod(buf, &end);
    return *end == '\0' && errno == 0 ? 0 : -1;
}

/* Returns the family index of name, adding it when new. */
static int prom_family(struct prom *pr, const char *name, size_t n)
{
    int i;

    for (i = 0; i < pr->nfam; i++)
        if (strlen(pr->fam[i].name) == n && !strncmp(pr->fam[i].name, name, n))
            return i;
    if (pr->nfam >= PROM_MAXFAM || n >= sizeof(pr->fam[0].name))
        return -1;
    memset(&pr->fam[pr->nfam], 0, sizeof(pr->fam[0]));
    memcpy(pr->fam[pr->nfam].name, name, n);
    return pr->nfam++;
}

/* Makes family f the current one: the one before it is closed, and a
 * closed family may not come back. Returns 0 or -1 with why. */
static int prom_enter(struct prom *pr, int f, char *why, size_t wl)
{
    if (pr->cur == f)
        return 0;
    if (pr->fam[f].closed) {
        failf(why, wl, "family %s is not contiguous", pr->fam[f].name);
        return -1;
    }
    if (pr->cur >= 0)
        pr->fam[pr->cur].closed = 1;
    pr->cur = f;
    return 0;
}

/* Returns the histogram series of key, adding it when new. */
static struct prom_hist *prom_hist(struct prom *pr, const char *key)
{
    int i;

    for (i = 0; i < pr->nhist; i++)
        if (!strcmp(pr->hist[i].key, key))
            return &pr->hist[i];
    if (pr->nhist >= PROM_MAXHIST)
        return NULL;
    memset(&pr->hist[pr->nhist], 0, sizeof(pr->hist[0]));
    snprintf(pr->hist[pr->nhist].key, sizeof(pr->hist[0].key), "%s", key);
    pr->hist[pr->nhist].last_le = -INFINITY;
    return &pr->hist[pr->nhist++];
}

/* One label of a sample. */
struct prom_label {
    char name[64];
    char value[256];
};

/* Compares labels by name, for the canonical form of a series. */
static int prom_label_cmp(const void *a, const void *b)
{
    return strcmp(((const struct prom_label *)a)->name, ((const struct prom_label *)b)->name);
}

/* Checks one sample line. Returns 0 or -1 with why. */
static int prom_sample(struct prom *pr, const char *line, size_t len, char *why, size_t wl)
{
    struct prom_label lab[16];
    int nlab = 0, f, i, is_hist = 0;
    size_t n = 0, p;
    char key[1024], hkey[1024], base[128];
    const char *suffix = "";
    double v, le = 0;
    int has_le = 0;
    struct prom_hist *h;

    while (n < len && line[n] != '{' && line[n] != ' ')
        n++;
    if (!prom_metric_name(line, n)) {
        failf(why, wl, "bad metric name in \"%.*s\"", (int)len, line);
        return -1;
    }
    p = n;
    if (p < len && line[p] == '{') {
        p++;
        while (p < len && line[p] != '}') {
            size_t s = p, vs;
            char *o;
            if (nlab >= 16) {
                failf(why, wl, "too many labels");
                return -1;
            }
            while (p < len && line[p] != '=')
                p++;
            if (p >= len || !prom_label_name(line + s, p - s) || p - s >= sizeof(lab[0].name)) {
                failf(why, wl, "bad label name in \"%.*s\"", (int)len, line);
                return -1;
            }
            memcpy(lab[nlab].name, line + s, p - s);
            lab[nlab].name[p - s] = '\0';
            if (++p >= len || line[p] != '"') {
                failf(why, wl, "label value not quoted in \"%.*s\"", (int)len, line);
                return -1;
            }
            p++;
            o = lab[nlab].value;
            vs = 0;
            while (p < len && line[p] != '"') {
                char c = line[p];
                if (c == '\\') {
                    if (p + 1 >= len || !strchr("\\\"n", line[p + 1])) {
                        failf(why, wl, "bad escape in label value of \"%.*s\"", (int)len, line);
                        return -1;
                    }
                    c = line[p + 1] == 'n' ? '\n' : line[p + 1];
                    p++;
                }
                if (vs + 1 < sizeof(lab[0].value))
                    o[vs++] = c;
                p++;
            }
            o[vs] = '\0';
            if (p >= len) {
                failf(why, wl, "unterminated label value in \"%.*s\"", (int)len, line);
                return -1;
            }
            p++;
            for (i = 0; i < nlab; i++)
                if (!strcmp(lab[i].name, lab[nlab].name)) {
                    failf(why, wl, "label %s twice in \"%.*s\"", lab[i].name, (int)len, line);
                    return -1;
                }
            nlab++;
            if (p < len && line[p] == ',')
                p++;
            else if (p >= len || line[p] != '}') {
                failf(why, wl, "expected , or } in \"%.*s\"", (int)len, line);
                return -1;
            }
        }
        if (p >= len) {
            failf(why, wl, "unterminated label set in \"%.*s\"", (int)len, line);
            return -1;
        }
        p++;
    }
    if (p >= len || line[p] != ' ') {
        failf(why, wl, "expected a space before the value in \"%.*s\"", (int)len, line);
        return -1;
    }
    while (p < len && line[p] == ' ')
        p++;
    {
        size_t s = p;
        while (p < len && line[p] != ' ')
            p++;
        if (prom_float(line + s, p - s, &v) < 0) {
            failf(why, wl, "bad value in \"%.*s\"", (int)len, line);
            return -1;
        }
        while (p < len && line[p] == ' ')
            p++;
        if (p < len) {
            s = p;
            if (line[p] == '-')
                p++;
            while (p < len && line[p] >= '0' && line[p] <= '9')
                p++;
            if (p != len || p == s) {
                failf(why, wl, "bad timestamp in \"%.*s\"", (int)len, line);
                return -1;
            }
        }
    }

    /* The family: a histogram's _bucket/_sum/_count belong to it. */
    snprintf(base, sizeof(base), "%.*s", (int)n, line);
    f = -1;
    {
        static const char *const sfx[] = { "_bucket", "_sum", "_count" };
        for (i = 0; i < 3 && f < 0; i++) {
            size_t sl = strlen(sfx[i]);
            int k;
            if (n <= sl || strcmp(base + n - sl, sfx[i]) != 0)
                continue;
            for (k = 0; k < pr->nfam; k++)
                if (strlen(pr->fam[k].name) == n - sl && !strncmp(pr->fam[k].name, base, n - sl) &&
                    (!strcmp(pr->fam[k].type, "histogram") ||
                     (!strcmp(pr->fam[k].type, "summary") && i > 0))) {
                    f = k;
                    suffix = sfx[i];
                    is_hist = !strcmp(pr->fam[k].type, "histogram");
                }
        }
    }
    if (f < 0 && (f = prom_family(pr, base, n)) < 0) {
        failf(why, wl, "too many families");
        return -1;
    }
    if (prom_enter(pr, f, why, wl) < 0)
        return -1;
    if (!pr->fam[f].help || pr->fam[f].type[0] == '\0') {
        failf(why, wl, "family %s has no HELP or TYPE before its samples", pr->fam[f].name);
        return -1;
    }
    pr->fam[f].samples++;
    if (!strcmp(pr->fam[f].type, "counter") && (isnan(v) || v < 0)) {
        failf(why, wl, "counter %s is %g", base, v);
        return -1;
    }

    /* The canonical series: name and labels sorted by name. */
    qsort(lab, (size_t)nlab, sizeof(lab[0]), prom_label_cmp);
    snprintf(key, sizeof(key), "%s{", base);
    snprintf(hkey, sizeof(hkey), "%s{", pr->fam[f].name);
    for (i = 0; i < nlab; i++) {
        size_t kl = strlen(key), hl = strlen(hkey);
        if (snprintf(key + kl, sizeof(key) - kl, "%s=\"%s\",", lab[i].name, lab[i].value) >=
            (int)(sizeof(key) - kl)) {
            failf(why, wl, "series too long in %s", base);
            return -1;
        }
        if (is_hist && !strcmp(lab[i].name, "le")) {
            has_le = 1;
            if (prom_float(lab[i].value, strlen(lab[i].value), &le) < 0) {
                failf(why, wl, "bad le=\"%s\" in %s", lab[i].value, base);
                return -1;
            }
            continue;
        }
        if (snprintf(hkey + hl, sizeof(hkey) - hl, "%s=\"%s\",", lab[i].name, lab[i].value) >=
            (int)(sizeof(hkey) - hl)) {
            failf(why, wl, "series too long in %s", base);
            return -1;
        }
    }
    for (i = 0; i < pr->nseries; i++)
        if (!strcmp(pr->series[i], key)) {
            failf(why, wl, "series %s appears twice", key);
            return -1;
        }
    if (pr->nseries < PROM_MAXSERIES)
        pr->series[pr->nseries++] = strdup(key);

    if (!is_hist)
        return 0;
    if ((h = prom_hist(pr, hkey)) == NULL) {
        failf(why, wl, "too many histograms");
        return -1;
    }
    if (!strcmp(suffix, "_bucket")) {
        if (!has_le) {
            failf(why, wl, "bucket of %s without le", hkey);
            return -1;
        }
        if (h->inf || !(le > h->last_le)) {
            failf(why, wl, "buckets of %s not in increasing le order", hkey);
            return -1;
        }
        if (h->nbuckets > 0 && v < h->last_count) {
            failf(why, wl, "buckets of %s are not cumulative (le=%g: %g < %g)", hkey, le, v,
                     h->last_count);
            return -1;
        }
        h->last_le = le;
        h->last_count = v;
        h->nbuckets++;
        if (isinf(le)) {
            h->inf = 1;
            h->inf_count = v;
        }
    } else if (!strcmp(suffix, "_count")) {
        h->has_count = 1;
        h->count = v;
    } else {
        h->has_sum = 1;
    }
    return 0;
}

/* Checks a whole exposition. Returns 0, or -1 with the first problem in
 * why. */
int sl_test_prom_check(const char *text, char *why, size_t wl)
{
    static struct prom pr;
    const char *line = text;
    int rc = 0, i;

    memset(&pr, 0, sizeof(pr));
    pr.cur = -1;
    if (*text == '\0' || text[strlen(text) - 1] != '\n') {
        failf(why, wl, "the text does not end with a newline");
        return -1;
    }
    while (*line != '\0' && rc == 0) {
        const char *nl = strchr(line, '\n');
        size_t len = (size_t)(nl - line);

        if (len == 0) {
            /* empty lines are ignored */
        } else if (len > 7 && (!strncmp(line, "# HELP ", 7) || !strncmp(line, "# TYPE ", 7))) {
            int is_help = line[2] == 'H';
            const char *name = line + 7;
            size_t n = 0;
            int f;
            while (n < len - 7 && name[n] != ' ')
                n++;
            if (!prom_metric_name(name, n) || (f = prom_family(&pr, name, n)) < 0) {
                failf(why, wl, "bad name in \"%.*s\"", (int)len, line);
                rc = -1;
            } else if (prom_enter(&pr, f, why, wl) < 0) {
                rc = -1;
            } else if (pr.fam[f].samples > 0) {
                failf(why, wl, "%s after samples of %s", is_help ? "HELP" : "TYPE", pr.fam[f].name);
                rc = -1;
            } else if (is_help) {
                if (pr.fam[f].help++) {
                    failf(why, wl, "second HELP for %s", pr.fam[f].name);
                    rc = -1;
                }
            } else {
                char type[32];
                size_t tl = len - 7 - n - 1;
                if (n + 8 > len || tl == 0 || tl >= sizeof(type)) {
                    failf(why, wl, "bad TYPE line \"%.*s\"", (int)len, line);
                    rc = -1;
                } else {
                    memcpy(type, name + n + 1, tl);
                    type[tl] = '\0';
                    if (pr.fam[f].type[0] != '\0') {
                        failf(why, wl, "second TYPE for %s", pr.fam[f].name);
                        rc = -1;
                    } else if (strcmp(type, "counter") && strcmp(type, "gauge") &&
                               strcmp(type, "histogram") && strcmp(type, "summary") &&
                               strcmp(type, "untyped")) {
                        failf(why, wl, "unknown type \"%s\" for %s", type, pr.fam[f].name);
                        rc = -1;
                    } else {
                        snprintf(pr.fam[f].type, sizeof(pr.fam[f].type), "%s", type);
                    }
                }
            }
        } else if (line[0] == '#') {
            /* a comment */
        } else {
            rc = prom_sample(&pr, line, len, why, wl);
        }
        line = nl + 1;
    }
    for (i = 0; i < pr.nhist && rc == 0; i++) {
        const struct prom_hist *h = &pr.hist[i];
        if (!h->inf || !h->has_count || !h->has_sum) {
            failf(why, wl, "histogram %s lacks %s", h->key,
                     !h->inf ? "a +Inf bucket" : !h->has_count ? "_count" : "_sum");
            rc = -1;
        } else if (h->inf_count != h->count) {
            failf(why, wl, "histogram %s: +Inf bucket %g != _count %g", h->key, h->inf_count,
                     h->count);
            rc = -1;
        }
    }
    for (i = 0; i < pr.nseries; i++)
        free(pr.series[i]);
    return rc;
}

/* Returns the value of the sample `series` (name and label set exactly
 * as written, e.g. sluice_acked_total{worker="noop",...}) in an
 * exposition, or -1 when there is no such sample. */
double sl_test_prom_sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}
