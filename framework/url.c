/* url.c -- redis:// URLs and the Redis password: parsing, redaction
 * (every message that shows a URL shows it through sl__url_redact), the
 * password's sources in order, the text of an authentication failure, and
 * the "host:port" form of listen addresses. Nothing here does I/O but
 * reading a password file.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define URL_FORM        "redis://[[user]:password@]host:port[/db] (rediss:// for TLS)"

/* ---------------------------------------------------------------------
 * redis:// URLs
 * ------------------------------------------------------------------ */

/* Parses the decimal digits at *pp (at least one, at most `max` in
 * value) into *out and advances *pp past them. Returns 0 or -1. */
static int parse_uint(const char **pp, long long max, long long *out)
{
    const char *p = *pp;
    long long v = 0;

    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > max)
            return -1;
    }
    *pp = p;
    *out = v;
    return 0;
}

/* Appends the bytes [s, e) to buf at *n (size bytes in all), replacing
 * control bytes with '?', and keeps buf NUL-terminated. */
static void put_clean(char *buf, size_t size, size_t *n, const char *s, const char *e)
{
    for (; s < e && *n + 1 < size; s++)
        buf[(*n)++] = (unsigned char)*s < ' ' || *s == 0x7f ? '?' : *s;
    buf[*n] = '\0';
}

/* Writes url redacted into buf (see internal.h). The user information is
 * everything between "scheme://" (or the start, without a scheme) and the
 * LAST '@', since a password may itself hold '@', '/' or ':' (the parser
 * reads it the same way). "user:secret@" keeps the user; "secret@" and a
 * ":secret" with no '@' at all (a forgotten "@host") are hidden whole.
 * A URL that is only cut short when printed would otherwise show a
 * password in full, so the redaction comes first and the cut after. */
void sl__url_redact(const char *url, char *buf, size_t size)
{
    const char *auth, *at, *colon, *sep, *end;
    size_t n = 0;

    if (size == 0)
        return;
    buf[0] = '\0';
    if (url == NULL)
        return;
    end = url + strlen(url);
    sep = strstr(url, "://");
    auth = sep != NULL ? sep + 3 : url;
    put_clean(buf, size, &n, url, auth);
    at = strrchr(auth, '@');
    if (at != NULL) {
        colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon != NULL)
            put_clean(buf, size, &n, auth, colon + 1);
        put_clean(buf, size, &n, "***", "***" + 3);
        put_clean(buf, size, &n, at, end);
    } else if (*auth == ':') {
        put_clean(buf, size, &n, ":***", ":***" + 4);
    } else {
        put_clean(buf, size, &n, auth, end);
    }
}

/* Records "redis URL "<url redacted>": <why>" in err and returns -1. */
static int url_fail(const char *url, const char *why, char *err, size_t errlen)
{
    char shown[160];

    sl__url_redact(url != NULL ? url : "(null)", shown, sizeof(shown));
    sl__put_err(err, errlen, "redis URL \"%s\": %s", shown, why);
    return -1;
}

/* Returns the value of hex digit ch, or -1. */
static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes the percent-escapes of [s, e) (RFC 3986: "%40" is '@') into
 * buf (size bytes, NUL-terminated). Returns 0, -1 for a bad escape or a
 * NUL byte, or -2 when the value does not fit. */
static int percent_decode(const char *s, const char *e, char *buf, size_t size)
{
    size_t n = 0;
    int hi, lo;

    for (; s < e; s++) {
        char ch = *s;

        if (ch == '%') {
            if (e - s < 3)
                return -1;
            hi = hexval(s[1]);
            lo = hexval(s[2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            ch = (char)(hi * 16 + lo);
            s += 2;
        }
        if (n + 1 >= size)
            return -2;
        buf[n++] = ch;
    }
    buf[n] = '\0';
    return 0;
}

/* Parses redis[s]://[[user]:password@]host:port[/db] (see internal.h).
 * The scheme is case-insensitive (RFC 3986); rediss:// connects through
 * TLS. The port defaults to 6379 and the db to 0; an IPv6 host is
 * written in brackets. The user information runs to the LAST '@' (a
 * password may itself hold '@'); a user (Redis 6 ACL) comes before the
 * first ':', the password after it, both percent-decoded ("%40" for
 * '@', "%3A" for ':'). "user@" alone names the user and leaves the
 * password to SLUICE_REDIS_PASSWORD or redis.password_file. No error
 * text ever holds the password: every one shows the URL through
 * sl__url_redact(). */
int sl__url_parse(const char *url, struct sl_redis_url *out,
                  char *err, size_t errlen)
{
    static const char expected[] = "expected " URL_FORM;
    struct sl_redis_url u;
    const char *p, *at, *hs, *he, *colon;
    size_t n;
    long long v;

    memset(&u, 0, sizeof(u));
    u.port = 6379;
    if (url != NULL && strncasecmp(url, "rediss://", 9) == 0) {
        u.tls = 1;
        p = url + 9;
    } else if (url != NULL && strncasecmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else {
        return url_fail(url, expected, err, errlen);
    }

    at = strrchr(p, '@');
    if (at != NULL) {
        int rc;

        colon = memchr(p, ':', (size_t)(at - p));
        rc = percent_decode(p, colon != NULL ? colon : at, u.user, sizeof(u.user));
        if (rc != 0)
            return url_fail(url, rc == -2 ? "user name longer than 255 bytes" :
                            "bad user name: a NUL byte, or a '%' not followed by two hex "
                            "digits (write '%25' for '%')", err, errlen);
        rc = colon != NULL ? percent_decode(colon + 1, at, u.password, sizeof(u.password)) : 0;
        if (rc != 0)
            return url_fail(url, rc == -2 ? "password longer than 255 bytes" :
                            "bad password: a NUL byte, or a '%' not followed by two hex "
                            "digits (write '%25' for '%')", err, errlen);
        p = at + 1;
    }

    if (*p == '[') {
        hs = p + 1;
        he = strchr(hs, ']');
        if (he == NULL)
            return url_fail(url, expected, err, errlen);
        p = he + 1;
    } else {
        hs = p;
        while (*p != '\0' && *p != ':' && *p != '/')
            p++;
        he = p;
    }
    n = (size_t)(he - hs);
    if (n == 0 || n >= sizeof(u.host))
        return url_fail(url, expected, err, errlen);
    for (const char *q = hs; q < he; q++)
        if ((unsigned char)*q <= ' ' || *q == '?' || *q == '#' || *q == '/')
            return url_fail(url, expected, err, errlen);
    memcpy(u.host, hs, n);
    u.host[n] = '\0';

    if (*p == ':') {
        p++;
        if (parse_uint(&p, 65535, &v) != 0 || v == 0)
            return url_fail(url, expected, err, errlen);
        u.port = (int)v;
    }
    if (*p == '/') {
        p++;
        if (*p != '\0') {
            if (parse_uint(&p, INT_MAX, &v) != 0)
                return url_fail(url, expected, err, errlen);
            u.db = (int)v;
        }
    }
    if (*p != '\0')
        return url_fail(url, expected, err, errlen);
    if (out != NULL)
        *out = u;
    return 0;
}

/* Reads the password file into buf (size bytes), one final "\n" or
 * "\r\n" removed (editors and `echo` add one). Returns 0, or -1 with a
 * message naming the file (a password is never echoed). */
int sl__password_file_read(const char *path, char *buf, size_t size,
                              char *err, size_t errlen)
{
    char tmp[sizeof(((struct sl_redis_url *)0)->password) + 2];
    FILE *f = fopen(path, "rb");
    size_t n;
    int failed;

    if (f == NULL) {
        sl__put_err(err, errlen, "cannot read \"%s\": %s", path, strerror(errno));
        return -1;
    }
    errno = 0;
    n = fread(tmp, 1, sizeof(tmp), f);
    failed = ferror(f);
    if (failed)
        sl__put_err(err, errlen, "cannot read \"%s\": %s", path, strerror(errno ? errno : EIO));
    fclose(f);
    if (!failed && n > 0 && tmp[n - 1] == '\n')
        n--;
    if (!failed && n > 0 && tmp[n - 1] == '\r')
        n--;
    if (!failed && (n >= size || n >= sizeof(tmp) - 2)) {
        sl__put_err(err, errlen, "\"%s\": password longer than %zu bytes", path,
                (size < sizeof(tmp) - 2 ? size : sizeof(tmp) - 2) - 1);
        failed = 1;
    } else if (!failed && memchr(tmp, '\0', n) != NULL) {
        sl__put_err(err, errlen, "\"%s\": the password holds a NUL byte", path);
        failed = 1;
    }
    if (!failed) {
        memcpy(buf, tmp, n);
        buf[n] = '\0';
    }
    memset(tmp, 0, sizeof(tmp));
    return failed ? -1 : 0;
}

/* Finds the Redis password (see internal.h). The order: a password
 * written in the URL is the most specific choice, made for this one
 * connection (--redis beats SLUICE_REDIS_URL beats the file's redis.url);
 * then SLUICE_REDIS_PASSWORD; then redis.password_file, re-read here at
 * every (re)connect so that a rotated password is picked up without a
 * restart. */
int sl__redis_password(const struct sl_redis_url *u, const char *password_file,
                       char *buf, size_t size, char *err, size_t errlen)
{
    const char *env = getenv("SLUICE_REDIS_PASSWORD");

    if (size == 0)
        return -1;
    buf[0] = '\0';
    if (u->password[0] != '\0') {
        if (strlen(u->password) >= size)
            goto toolong;
        strcpy(buf, u->password);
        return 0;
    }
    if (env != NULL && *env != '\0') {
        if (strlen(env) >= size)
            goto toolong;
        strcpy(buf, env);
        return 0;
    }
    if (password_file != NULL)
        return sl__password_file_read(password_file, buf, size, err, errlen);
    return 0;

toolong:
    sl__put_err(err, errlen, "password longer than %zu bytes", size - 1);
    return -1;
}

/* Formats "authentication failed: <reply>" into buf for an error reply
 * to AUTH (or a NOAUTH reply to a first command), with every occurrence
 * of the password in the reply replaced by "***": Redis's own texts never
 * echo it, but a proxy or a future version might. */
void sl__auth_error(char *buf, size_t size, const char *reply, const char *password)
{
    size_t n = 0, pl = password != NULL ? strlen(password) : 0;
    const char *p = reply != NULL && *reply ? reply : "no reply";
    int w;

    if (size == 0)
        return;
    w = snprintf(buf, size, "authentication failed: ");
    n = w < 0 ? 0 : (size_t)w < size ? (size_t)w : size - 1;
    while (*p != '\0' && n + 1 < size) {
        if (pl > 0 && strncmp(p, password, pl) == 0) {
            put_clean(buf, size, &n, "***", "***" + 3);
            p += pl;
        } else {
            put_clean(buf, size, &n, p, p + 1);
            p++;
        }
    }
    buf[n] = '\0';
}

/* ---------------------------------------------------------------------
 * Listen addresses
 * ------------------------------------------------------------------ */

/* Tells whether s is "host:port": a non-empty host without white space
 * (an IPv6 address in brackets) and a decimal port from 0 to 65535 (0
 * lets the system pick a free port). Shared by metrics.listen and
 * --metrics, so a port that does not fit 16 bits is refused instead of
 * silently listening on another one. */
int sl__host_port_valid(const char *s)
{
    const char *colon, *p;
    long long port;

    if (s == NULL)
        return 0;
    colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return 0;
    for (p = s; p < colon; p++)
        if ((unsigned char)*p <= ' ')
            return 0;
    p = colon + 1;
    if (parse_uint(&p, 65535, &port) != 0 || *p != '\0')
        return 0;
    return 1;
}
