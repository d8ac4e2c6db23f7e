/* keyslot.c -- what a Redis Cluster client computes and parses without
 * talking to one: hash slots and tags, the seed list, the address of a
 * MOVED or ASK, and the ranges of a CLUSTER SLOTS reply. Shared by the
 * router (cluster.c), the pinned connections of conn.c, the heartbeat
 * names and the script checks; it calls none of them, so each may use it.
 * Declared in cluster.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include "internal.h"
#include "cluster.h"

/* ------------------------------------------------------------------------
 * Hash slots
 * ------------------------------------------------------------------------ */

/* CRC16-XMODEM (polynomial 0x1021, initial value 0) with a byte table
 * built on first use (the same table every time, so two threads racing
 * to build it write the same values). */
static unsigned crc16(const char *buf, size_t len)
{
    static unsigned short table[256];
    static int built;
    unsigned crc = 0;
    size_t i;

    if (!built) {
        unsigned v;
        int b;

        for (i = 0; i < 256; i++) {
            v = (unsigned)i << 8;
            for (b = 0; b < 8; b++)
                v = (v & 0x8000) ? ((v << 1) ^ 0x1021) & 0xffff : (v << 1) & 0xffff;
            table[i] = (unsigned short)v;
        }
        built = 1;
    }
    for (i = 0; i < len; i++)
        crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ (unsigned char)buf[i]) & 0xff];
    return crc;
}

/* Finds the hash tag of a key: the text between the first '{' and the
 * next '}', when not empty. Returns 1 with *off and *taglen set, or 0
 * when the key has none. */
int sl__cluster_tag(const char *key, size_t len, size_t *off, size_t *taglen)
{
    size_t s, e;

    for (s = 0; s < len && key[s] != '{'; s++)
        ;
    if (s < len) {
        for (e = s + 1; e < len && key[e] != '}'; e++)
            ;
        if (e < len && e != s + 1) {
            *off = s + 1;
            *taglen = e - s - 1;
            return 1;
        }
    }
    return 0;
}

/* Hashes the tag or the whole key, as Redis does. */
int sl__cluster_keyslot(const char *key, size_t len)
{
    size_t off, n;

    if (sl__cluster_tag(key, len, &off, &n))
        return (int)(crc16(key + off, n) & (SL_CLUSTER_SLOTS - 1));
    return (int)(crc16(key, len) & (SL_CLUSTER_SLOTS - 1));
}

/* The slot all keys share, -1 for none, -2 for a mixed set. */
int sl__cluster_keys_slot(int nkeys, const char *const *keys, const size_t *lens)
{
    int i, slot = -1;

    for (i = 0; i < nkeys; i++) {
        int s = sl__cluster_keyslot(keys[i], lens ? lens[i] : strlen(keys[i]));

        if (slot >= 0 && s != slot)
            return -2;
        slot = s;
    }
    return slot;
}

/* ------------------------------------------------------------------------
 * Seeds and the cluster's answers
 * ------------------------------------------------------------------------ */

/* Parses seed number i of "host:port,host:port" (brackets around an
 * IPv6 host dropped): 0 with host and port set, 1 when there is no seed
 * i, or -1 with the reason in err. */
int sl__cluster_seed(const char *seeds, int i, char *host, size_t hostlen, int *port,
                     char *err, size_t errlen)
{
    const char *p = seeds, *end, *colon, *h;
    char *pe;
    size_t n, hl;
    long v;

    for (; i > 0 && *p != '\0'; i--) {
        end = strchr(p, ',');
        p = end != NULL ? end + 1 : p + strlen(p);
    }
    if (*p == '\0')
        return 1;
    end = strchr(p, ',');
    if (end == NULL)
        end = p + strlen(p);
    n = (size_t)(end - p);
    for (colon = end; colon > p && colon[-1] != ':'; colon--)
        ;
    colon = colon > p ? colon - 1 : NULL;
    if (colon == NULL || colon == p) {
        snprintf(err, errlen, "cluster node \"%.*s\": expected host:port",
                 (int)(n > 80 ? 80 : n), p);
        return -1;
    }
    v = strtol(colon + 1, &pe, 10);
    if (pe != end || v <= 0 || v > 65535) {
        snprintf(err, errlen, "cluster node \"%.*s\": bad port", (int)(n > 80 ? 80 : n), p);
        return -1;
    }
    /* "[::1]:7000": the brackets are not part of the address. */
    h = p;
    hl = (size_t)(colon - p);
    if (*p == '[' && hl >= 2 && colon[-1] == ']') {
        h = p + 1;
        hl -= 2;
    }
    if (hl >= hostlen) {
        snprintf(err, errlen, "cluster node \"%.*s\": host too long", (int)(n > 80 ? 80 : n), p);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)v;
    return 0;
}

/* Parses "MOVED 3999 127.0.0.1:6381" / "ASK ..." (the word already
 * checked): the slot, and the host (borrowed from s, hostlen bytes; empty
 * means the node that answered) and port of the address. Returns 0 or -1. */
int sl__cluster_redirect(const char *s, int *slot, const char **host, size_t *hostlen, int *port)
{
    const char *sp = strchr(s, ' '), *addr, *colon;
    char *end;
    long v, pv;

    if (sp == NULL)
        return -1;
    v = strtol(sp + 1, &end, 10);
    if (end == sp + 1 || *end != ' ' || v < 0 || v >= SL_CLUSTER_SLOTS)
        return -1;
    addr = end + 1;
    colon = strrchr(addr, ':');
    if (colon == NULL)
        return -1;
    pv = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || pv <= 0 || pv > 65535)
        return -1;
    *slot = (int)v;
    *host = addr;
    *hostlen = (size_t)(colon - addr);
    *port = (int)pv;
    return 0;
}

/* An integer element (7.0.x sent some as strings: both are read). */
static int reply_int(const redisReply *r, long long *v)
{
    char *end;

    if (r->type == REDIS_REPLY_INTEGER) {
        *v = r->integer;
        return 0;
    }
    if (r->type == REDIS_REPLY_STRING && r->len > 0) {
        *v = strtoll(r->str, &end, 10);
        return *end == '\0' ? 0 : -1;
    }
    return -1;
}

/* Reads one range of a CLUSTER SLOTS reply: its first and last slot and
 * its master's host (borrowed from e; "" or "?" when the node does not
 * know its own address: the node asked) and port. Returns 0 or -1 when e
 * is not a range. */
int sl__cluster_slots_range(const redisReply *e, int *lo, int *hi, const char **host,
                            size_t *hostlen, int *port)
{
    const redisReply *m;
    long long l, h, pv;

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3
        || reply_int(e->element[0], &l) != 0 || reply_int(e->element[1], &h) != 0
        || l < 0 || h >= SL_CLUSTER_SLOTS || l > h)
        return -1;
    m = e->element[2];
    if (m->type != REDIS_REPLY_ARRAY || m->elements < 2
        || m->element[0]->type != REDIS_REPLY_STRING || reply_int(m->element[1], &pv) != 0
        || pv <= 0 || pv > 65535)
        return -1;
    *lo = (int)l;
    *hi = (int)h;
    *host = m->element[0]->str;
    *hostlen = m->element[0]->len;
    *port = (int)pv;
    return 0;
}
