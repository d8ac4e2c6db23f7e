/* jsonpos.c -- positions in JSON text. jansson keeps no positions once a
 * document is parsed, so to name the line and column of a value (the
 * configuration's messages: "FILE:LINE:COL: KEY.PATH: ...") this small
 * scanner walks the already valid text along the value's key path.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

unsigned long sl__config_steps;

/* ---------------------------------------------------------------------
 * Positions: a scanner over valid JSON text
 * ------------------------------------------------------------------ */

/* A cursor in the text with jansson's idea of line and column: lines from
 * 1, columns in characters (UTF-8 lead bytes) from 1. */
struct scan {
    const char *p;                /* next byte */
    const char *end;              /* one past the last byte */
    int line;                     /* line of the next byte, from 1 */
    int col;                      /* characters already read on this line */
};

/* Returns the next byte, or -1 at the end of the text. */
static int sc_peek(const struct scan *s)
{
    return s->p < s->end ? (unsigned char)*s->p : -1;
}

/* Consumes one byte, keeping the line and column up to date. */
static void sc_adv(struct scan *s)
{
    unsigned char c;

    if (s->p >= s->end)
        return;
    sl__config_steps++;
    c = (unsigned char)*s->p++;
    if (c == '\n') {
        s->line++;
        s->col = 0;
    } else if ((c & 0xC0) != 0x80) {
        s->col++;
    }
}

/* Skips JSON white space. */
static void sc_ws(struct scan *s)
{
    int c;

    while ((c = sc_peek(s)) == ' ' || c == '\t' || c == '\n' || c == '\r')
        sc_adv(s);
}

/* Reads four hex digits of a \u escape. Returns the code unit or -1. */
static long sc_hex4(struct scan *s)
{
    long v = 0;
    int i, c;

    for (i = 0; i < 4; i++) {
        c = sc_peek(s);
        if (c >= '0' && c <= '9')
            v = v * 16 + (c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (c - 'A' + 10);
        else
            return -1;
        sc_adv(s);
    }
    return v;
}

/* Encodes code point cp as UTF-8 into buf and returns the byte count. */
static size_t utf8_put(unsigned char *buf, long cp)
{
    if (cp < 0x80) {
        buf[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = (unsigned char)(0xC0 | (cp >> 6));
        buf[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (unsigned char)(0xE0 | (cp >> 12));
        buf[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    buf[0] = (unsigned char)(0xF0 | (cp >> 18));
    buf[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Consumes the string at the cursor (which is on its opening quote) and
 * returns 1 when its decoded text equals `key`, else 0 (always 0 for a
 * NULL key). Escapes, surrogate pairs included, are decoded on the fly,
 * so a key written as "\u0062atch" is found as "batch", as jansson
 * would have it. */
static int sc_string(struct scan *s, const char *key)
{
    unsigned char buf[4];
    size_t k = 0, n, i;
    int eq = key != NULL, c;
    long cp, lo;

    sc_adv(s);                    /* the opening quote */
    while ((c = sc_peek(s)) != -1 && c != '"') {
        sc_adv(s);
        if (c != '\\') {
            buf[0] = (unsigned char)c;
            n = 1;
        } else {
            c = sc_peek(s);
            sc_adv(s);
            n = 1;
            switch (c) {
            case 'b': buf[0] = '\b'; break;
            case 'f': buf[0] = '\f'; break;
            case 'n': buf[0] = '\n'; break;
            case 'r': buf[0] = '\r'; break;
            case 't': buf[0] = '\t'; break;
            case 'u':
                cp = sc_hex4(s);
                if (cp >= 0xD800 && cp <= 0xDBFF && sc_peek(s) == '\\') {
                    sc_adv(s);
                    if (sc_peek(s) == 'u') {
                        sc_adv(s);
                        lo = sc_hex4(s);
                        if (lo >= 0xDC00 && lo <= 0xDFFF)
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                }
                n = utf8_put(buf, cp < 0 ? 0xFFFD : cp);
                break;
            default:
                buf[0] = (unsigned char)(c < 0 ? 0 : c);   /* \" \\ \/ */
                break;
            }
        }
        for (i = 0; eq && i < n; i++, k++)
            if ((unsigned char)key[k] != buf[i])
                eq = 0;
    }
    sc_adv(s);                    /* the closing quote */
    return eq && key[k] == '\0';
}

/* Consumes one JSON value of any kind at the cursor. Recursion is bounded
 * by jansson's own nesting limit, which the text already passed. */
static void sc_value(struct scan *s)
{
    int c = sc_peek(s), close;

    if (c == '"') {
        sc_string(s, NULL);
        return;
    }
    if (c == '{' || c == '[') {
        close = c == '{' ? '}' : ']';
        sc_adv(s);
        sc_ws(s);
        while ((c = sc_peek(s)) != -1 && c != close) {
            if (close == '}') {
                sc_string(s, NULL);
                sc_ws(s);
                if (sc_peek(s) == ':')
                    sc_adv(s);
                sc_ws(s);
            }
            sc_value(s);
            sc_ws(s);
            if (sc_peek(s) == ',')
                sc_adv(s);
            else if (sc_peek(s) != close)
                return;           /* not valid JSON: stop where we are */
            sc_ws(s);
        }
        sc_adv(s);
        return;
    }
    /* A number or a literal: up to the next delimiter. */
    while ((c = sc_peek(s)) != -1 && c != ',' && c != '}' && c != ']' &&
           c != ' ' && c != '\t' && c != '\n' && c != '\r')
        sc_adv(s);
}

/* Finds the line and column of the value at `path` (depth steps) in the
 * len bytes of valid JSON at text, or of its key name when `at_key` (for
 * unknown keys). When the path cannot be followed (which valid text and a
 * path taken from the parsed document rule out) it stops at the deepest
 * value it reached. */
void sl__json_locate(const char *text, size_t len, const struct sl_json_step *path, int depth,
                     int at_key, int *line, int *col)
{
    struct scan s = { text, text + len, 1, 0 };
    int d, c, kline, kcol, found;
    size_t i;

    sc_ws(&s);
    for (d = 0; d < depth; d++) {
        const struct sl_json_step *pp = &path[d];

        if (pp->key != NULL) {
            if (sc_peek(&s) != '{')
                break;
            sc_adv(&s);
            sc_ws(&s);
            found = 0;
            while ((c = sc_peek(&s)) == '"') {
                kline = s.line;
                kcol = s.col + 1;
                found = sc_string(&s, pp->key);
                sc_ws(&s);
                if (sc_peek(&s) == ':')
                    sc_adv(&s);
                sc_ws(&s);
                if (found) {
                    if (at_key && d == depth - 1) {
                        *line = kline;
                        *col = kcol;
                        return;
                    }
                    break;
                }
                sc_value(&s);
                sc_ws(&s);
                if (sc_peek(&s) == ',')
                    sc_adv(&s);
                sc_ws(&s);
            }
            if (!found)
                break;
        } else {
            if (sc_peek(&s) != '[')
                break;
            sc_adv(&s);
            sc_ws(&s);
            for (i = 0; i < pp->index && sc_peek(&s) != ']' && sc_peek(&s) != -1; i++) {
                sc_value(&s);
                sc_ws(&s);
                if (sc_peek(&s) == ',')
                    sc_adv(&s);
                sc_ws(&s);
            }
        }
    }
    *line = s.line;
    *col = s.col + 1;
}
