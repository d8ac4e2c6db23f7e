/* invariants.c -- the invariant checker of docs/payment-flow.md (see
 * invariants.h for what is checked).
 *
 * The checker reads everything first, into small string-keyed tables
 * (users, credits, payments, orders), then compares. Keys are found with
 * SCAN ... TYPE hash and read with pipelined HMGETs, one SCAN page at a
 * time; streams are read with XRANGE in pages of PAGE entries using
 * exclusive ranges, so a Redis of any size is read in bounded replies.
 * Amounts are parsed as 64-bit integers and summed with overflow checks,
 * never as doubles.
 *
 * Reading a running system. The reads are not one snapshot, so they are
 * ordered to be sound while workers keep writing, using what every
 * effect script guarantees: a balance changes only together with its
 * ledger XADD, payment and credit hashes are written once, together with
 * their ledger entry, an order exists before its payment and is paid or
 * failed only after it, and the ledger only grows. Hence:
 *   1. the ledger's last ID now, C0;
 *   2. orders, then payments (an order seen paid or failed has its
 *      payment seen), then credits;
 *   3. users, each SCAN page's HMGETs in one MULTI/EXEC together with the
 *      ledger's last ID at that instant, the cut of those balances;
 *   4. the whole ledger, which now holds every entry of every payment,
 *      credit and balance read before.
 * Each balance is compared with its ledger entries up to its own cut; a
 * ledger entry after C0 may name a user, credit or payment written after
 * its scan went by, so only entries up to C0 must find theirs; and the
 * global sum (balances = openings + credits - payments), which needs one
 * instant, is compared only in the quiet check. The per-object checks
 * (each balance against its ledger, each ledger entry against its
 * credit or payment and back) add up to the same conservation.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include "invariants.h"

#define PAGE 1000                 /* SCAN COUNT and XRANGE COUNT per page */
#define NSTR 4                    /* string slots of a table entry */

/* ---------------------------------------------------------------------
 * A string-keyed hash table (open addressing, linear probing)
 * ------------------------------------------------------------------ */

/* One record. The meaning of n[] and s[] depends on the table; see the
 * comments on struct chk. */
struct ent {
    char *key;                    /* owned; NULL marks an empty slot */
    long long n[4];               /* numbers (cents, counts) */
    char *s[NSTR];                /* owned strings, NULL when absent */
    unsigned flags;               /* ENT_* bits */
    unsigned long long cut_ms;    /* users: the ledger's last ID when the */
    unsigned long long cut_seq;   /*   balance was read (ms and sequence) */
};

#define ENT_EXISTS   0x1          /* the Redis hash exists and parsed */
#define ENT_NEGATIVE 0x2          /* already reported below 0 in the replay */
#define ENT_PAID_BY  0x4          /* order: some payment succeeded for it */
#define ENT_FAILED_BY 0x8         /* order: some payment was declined for it */

struct table {
    struct ent *slots;            /* cap slots (owned) */
    size_t cap;                   /* a power of two, or 0 before first use */
    size_t used;                  /* occupied slots */
};

/* Returns the FNV-1a hash of s. */
static size_t hash(const char *s)
{
    size_t h = (size_t)14695981039346656037ULL;

    while (*s != '\0')
        h = (h ^ (unsigned char)*s++) * (size_t)1099511628211ULL;
    return h;
}

/* Returns the slot where key is or would go in a table of cap slots. */
static struct ent *probe(struct ent *slots, size_t cap, const char *key)
{
    size_t i = hash(key) & (cap - 1);

    while (slots[i].key != NULL && strcmp(slots[i].key, key) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* Doubles the table (or makes its first 64 slots). Returns 0 or -1 when
 * memory ran out (the table is unchanged then). */
static int grow(struct table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64, i;
    struct ent *slots = calloc(cap, sizeof *slots);

    if (slots == NULL)
        return -1;
    for (i = 0; i < t->cap; i++)
        if (t->slots[i].key != NULL)
            *probe(slots, cap, t->slots[i].key) = t->slots[i];
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* Returns the record of key (borrowed from t), creating an empty one when
 * `create` is set, or NULL when there is none (or memory ran out). */
static struct ent *table_get(struct table *t, const char *key, int create)
{
    struct ent *e;

    if (t->cap == 0 && (!create || grow(t) < 0))
        return NULL;
    e = probe(t->slots, t->cap, key);
    if (e->key != NULL || !create)
        return e->key != NULL ? e : NULL;
    if ((t->used + 1) * 2 > t->cap) {
        if (grow(t) < 0)
            return NULL;
        e = probe(t->slots, t->cap, key);
    }
    e->key = strdup(key);
    if (e->key == NULL)
        return NULL;
    t->used++;
    return e;
}

/* Frees every record and the slots; leaves an empty table. */
static void table_free(struct table *t)
{
    size_t i;
    int j;

    for (i = 0; i < t->cap; i++) {
        free(t->slots[i].key);
        for (j = 0; j < NSTR; j++)
            free(t->slots[i].s[j]);
    }
    free(t->slots);
    memset(t, 0, sizeof *t);
}

/* ---------------------------------------------------------------------
 * The checker's state and report
 * ------------------------------------------------------------------ */

struct chk {
    redisContext *c;              /* borrowed connection */
    int quiet;                    /* also check what holds only when quiet */
    char *rep;                    /* the caller's report buffer */
    size_t len;                   /* its size in bytes */
    size_t pos;                   /* bytes written so far */
    int nviol;                    /* violations found */
    int failed;                   /* Redis could not be read, or no memory */
    struct table users;           /* user_id: n0 balance, n1 ledger sum up to the cut,
                                     n2 open entries, n3 running ledger sum */
    struct table credits;         /* credit_id: n0 amount, n1 ledger entries, n2 their sum; s0 user_id */
    struct table pays;            /* payment_id: n0 amount, n1 ledger debits, n2 their sum;
                                     s0 status, s1 order_id, s2 reason, s3 user_id */
    struct table orders;          /* order_id: n0 amount; s0 status, s1 reason, s2 user_id */
    long long open_sum;           /* cents opened, from ledger open: entries */
    long long credit_sum;         /* cents credited, from credit: hashes */
    long long paid_sum;           /* cents of succeeded payments, from payment: hashes */
    long long balance_sum;        /* cents in every balance now */
    unsigned long long c0_ms;     /* the ledger's last ID before any hash */
    unsigned long long c0_seq;    /*   was read (ms and sequence) */
    unsigned long long page_ms;   /* the cut of the user page being read */
    unsigned long long page_seq;
};

/* Appends one formatted line to the report (cut with "..." when full). */
static void vline(struct chk *k, const char *fmt, va_list ap)
{
    int n;

    if (k->len == 0 || k->pos >= k->len - 1)
        return;
    n = vsnprintf(k->rep + k->pos, k->len - k->pos, fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n + 1 >= k->len - k->pos) {
        k->pos = k->len - 1;
        if (k->len > 4)
            memcpy(k->rep + k->len - 4, "...", 4);
        return;
    }
    k->pos += (size_t)n;
    k->rep[k->pos++] = '\n';
    k->rep[k->pos] = '\0';
}

/* Records one violation of an invariant, described by fmt. */
static void violation(struct chk *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violation(struct chk *k, const char *fmt, ...)
{
    va_list ap;

    k->nviol++;
    va_start(ap, fmt);
    vline(k, fmt, ap);
    va_end(ap);
}

/* Records that the check itself could not go on (Redis error, memory). */
static void failure(struct chk *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void failure(struct chk *k, const char *fmt, ...)
{
    va_list ap;

    if (k->failed)
        return;
    k->failed = 1;
    va_start(ap, fmt);
    vline(k, fmt, ap);
    va_end(ap);
}

/* Parses s as a decimal 64-bit integer with an optional '-', no leading
 * zeros (except "0") and nothing else, which is how every amount and
 * balance of the flow is written. Returns 0 and stores it, or -1. */
static int parse_cents(const char *s, long long *out)
{
    const char *d = s;
    char *end;
    long long v;

    if (s == NULL)
        return -1;
    if (*d == '-')
        d++;
    if (*d < '0' || *d > '9' || (d[0] == '0' && d[1] != '\0') || (d != s && d[0] == '0'))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* Parses a stream ID "ms-seq" into two numbers. Returns 0 or -1. */
static int parse_id(const char *s, unsigned long long *ms, unsigned long long *seq)
{
    char *end;

    if (s == NULL)
        return -1;
    *ms = strtoull(s, &end, 10);
    if (*end != '-')
        return -1;
    *seq = strtoull(end + 1, &end, 10);
    return *end == '\0' ? 0 : -1;
}

/* Tells whether stream ID ms-seq comes after cut_ms-cut_seq. */
static int after(unsigned long long ms, unsigned long long seq,
                 unsigned long long cut_ms, unsigned long long cut_seq)
{
    return ms > cut_ms || (ms == cut_ms && seq > cut_seq);
}

/* Adds b to *a, recording a failure instead of overflowing. */
static void add(struct chk *k, long long *a, long long b, const char *what)
{
    if (__builtin_add_overflow(*a, b, a))
        failure(k, "the sum of %s overflows 64 bits", what);
}

/* Replaces *slot with a copy of s (or NULL). */
static void set_str(struct chk *k, char **slot, const char *s)
{
    free(*slot);
    *slot = NULL;
    if (s != NULL && (*slot = strdup(s)) == NULL)
        failure(k, "out of memory");
}

/* Returns the string of a reply element, or NULL for nil and non-strings. */
static const char *rstr(const redisReply *r)
{
    if (r == NULL || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS))
        return NULL;
    return r->str;
}

/* ---------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------ */

/* Called for each hash found by scan_hashes: `id` is the key without its
 * prefix, `v` the HMGET reply values in the order asked. */
typedef void (*hash_cb)(struct chk *k, const char *id, redisReply **v);

/* Parses the reply of XREVRANGE <stream> + - COUNT 1 into the ID of the
 * stream's last entry (0-0 when it has none). Returns 0 or -1. */
static int last_id(const redisReply *r, unsigned long long *ms, unsigned long long *seq)
{
    *ms = 0;
    *seq = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return -1;
    if (r->elements == 0)
        return 0;
    if (r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements < 1)
        return -1;
    return parse_id(rstr(r->element[0]->element[0]), ms, seq);
}

/* Reads the ledger's last ID into k->c0_ms/c0_seq. */
static void ledger_c0(struct chk *k)
{
    redisReply *r = redisCommand(k->c, "XREVRANGE ledger + - COUNT 1");

    if (r == NULL || r->type == REDIS_REPLY_ERROR || last_id(r, &k->c0_ms, &k->c0_seq) < 0)
        failure(k, "XREVRANGE ledger: %s", r == NULL ? k->c->errstr :
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    if (r != NULL)
        freeReplyObject(r);
}

/* Reads the replies of one page: the HMGET of each of the n keys, and,
 * when `cut` is set, wrapped in MULTI/EXEC with the ledger's last ID as
 * the page's last command. Calls cb for each key. Returns 0, or -1 after
 * recording a failure (the connection is then unusable). */
static int read_page(struct chk *k, const redisReply *keys, size_t plen, int nf,
                     int cut, hash_cb cb)
{
    redisReply **vals;
    redisReply *x = NULL;
    void *vp;
    size_t i, nq = keys->elements + (cut ? 2 : 0);
    int rc = 0;

    for (i = 0; i < nq + (cut ? 1 : 0); i++) {
        vp = NULL;
        if (redisGetReply(k->c, &vp) != REDIS_OK || vp == NULL) {
            failure(k, "HMGET: %s", k->c->errstr);
            if (x != NULL && x != vp)
                freeReplyObject(x);
            return -1;
        }
        if (!cut) {
            redisReply *v = vp;

            if (v->type == REDIS_REPLY_ARRAY && v->elements == (size_t)nf && !k->failed)
                cb(k, keys->element[i]->str + plen, v->element);
            else if (!k->failed)
                failure(k, "HMGET %s: %s", keys->element[i]->str,
                        v->type == REDIS_REPLY_ERROR ? v->str : "unexpected reply");
            freeReplyObject(v);
        } else if (i < nq) {
            /* +OK of MULTI, then +QUEUED for each command. */
            if (((redisReply *)vp)->type == REDIS_REPLY_ERROR && !k->failed)
                failure(k, "MULTI: %s", ((redisReply *)vp)->str);
            freeReplyObject(vp);
        } else {
            x = vp;
        }
    }
    if (!cut || k->failed) {
        if (x != NULL)
            freeReplyObject(x);
        return k->failed ? -1 : 0;
    }
    if (x->type != REDIS_REPLY_ARRAY || x->elements != keys->elements + 1 ||
        last_id(x->element[keys->elements], &k->page_ms, &k->page_seq) < 0) {
        failure(k, "EXEC: %s", x->type == REDIS_REPLY_ERROR ? x->str : "unexpected reply");
        freeReplyObject(x);
        return -1;
    }
    vals = x->element;
    for (i = 0; i < keys->elements && !k->failed; i++) {
        if (vals[i]->type == REDIS_REPLY_ARRAY && vals[i]->elements == (size_t)nf)
            cb(k, keys->element[i]->str + plen, vals[i]->element);
        else
            failure(k, "HMGET %s: unexpected reply", keys->element[i]->str);
    }
    if (k->failed)
        rc = -1;
    freeReplyObject(x);
    return rc;
}

/* Visits every hash whose key starts with prefix (SCAN MATCH prefix*,
 * TYPE hash), reading `nf` fields of each with HMGET, pipelined one SCAN
 * page at a time, and calls cb for each. `fields` is a space-free list of
 * field names. With `cut`, each page's HMGETs run in one MULTI/EXEC that
 * ends with the ledger's last ID, stored in k->page_ms/page_seq before
 * cb is called for that page. Sets k->failed on a Redis error. */
static void scan_hashes(struct chk *k, const char *prefix, const char *const *fields,
                        int nf, int cut, hash_cb cb)
{
    const char *multi[] = { "MULTI" };
    const char *exec[] = { "EXEC" };
    const char *tail[] = { "XREVRANGE", "ledger", "+", "-", "COUNT", "1" };
    char cursor[32] = "0", pattern[64];
    const char *argv[16];
    size_t plen = strlen(prefix), i;
    int j;

    snprintf(pattern, sizeof pattern, "%s*", prefix);
    do {
        redisReply *r = redisCommand(k->c, "SCAN %s MATCH %s COUNT %d TYPE hash",
                                     cursor, pattern, PAGE);
        redisReply *keys;

        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            failure(k, "SCAN %s: %s", pattern, r == NULL ? k->c->errstr :
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            if (r != NULL)
                freeReplyObject(r);
            return;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        keys = r->element[1];
        if (keys->elements == 0) {
            freeReplyObject(r);
            continue;
        }
        if (cut)
            redisAppendCommandArgv(k->c, 1, multi, NULL);
        for (i = 0; i < keys->elements; i++) {
            argv[0] = "HMGET";
            argv[1] = keys->element[i]->str;
            for (j = 0; j < nf; j++)
                argv[2 + j] = fields[j];
            redisAppendCommandArgv(k->c, 2 + nf, argv, NULL);
        }
        if (cut) {
            redisAppendCommandArgv(k->c, 6, tail, NULL);
            redisAppendCommandArgv(k->c, 1, exec, NULL);
        }
        read_page(k, keys, plen, nf, cut, cb);
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0 && !k->failed);
}

/* Records user:<id> {balance_cents}. A balance that is missing or not an
 * integer, or below 0, is a violation. */
static void on_user(struct chk *k, const char *id, redisReply **v)
{
    struct ent *e = table_get(&k->users, id, 1);
    long long bal;

    if (e == NULL) {
        failure(k, "out of memory");
        return;
    }
    if (parse_cents(rstr(v[0]), &bal) < 0) {
        violation(k, "user:%s: balance_cents \"%s\" is not an integer", id,
                  rstr(v[0]) ? rstr(v[0]) : "(nil)");
        return;
    }
    if (bal < 0)
        violation(k, "user:%s: balance_cents %lld is below 0", id, bal);
    e->n[0] = bal;
    e->cut_ms = k->page_ms;
    e->cut_seq = k->page_seq;
    e->flags |= ENT_EXISTS;
}

/* Records credit:<id> {user_id, amount_cents}. */
static void on_credit(struct chk *k, const char *id, redisReply **v)
{
    struct ent *e = table_get(&k->credits, id, 1);

    if (e == NULL) {
        failure(k, "out of memory");
        return;
    }
    set_str(k, &e->s[0], rstr(v[0]));
    if (parse_cents(rstr(v[1]), &e->n[0]) < 0 || e->n[0] <= 0) {
        violation(k, "credit:%s: amount_cents \"%s\" is not a positive integer", id,
                  rstr(v[1]) ? rstr(v[1]) : "(nil)");
        return;
    }
    e->flags |= ENT_EXISTS;
}

/* Records payment:<id> {order_id, user_id, amount_cents, status, reason}. */
static void on_payment(struct chk *k, const char *id, redisReply **v)
{
    struct ent *e = table_get(&k->pays, id, 1);

    if (e == NULL) {
        failure(k, "out of memory");
        return;
    }
    set_str(k, &e->s[1], rstr(v[0]));
    set_str(k, &e->s[3], rstr(v[1]));
    set_str(k, &e->s[0], rstr(v[3]));
    set_str(k, &e->s[2], rstr(v[4]));
    if (parse_cents(rstr(v[2]), &e->n[0]) < 0 || e->n[0] <= 0) {
        violation(k, "payment:%s: amount_cents \"%s\" is not a positive integer", id,
                  rstr(v[2]) ? rstr(v[2]) : "(nil)");
        return;
    }
    e->flags |= ENT_EXISTS;
}

/* Records order:<id> {user_id, amount_cents, status, reason}. */
static void on_order(struct chk *k, const char *id, redisReply **v)
{
    struct ent *e = table_get(&k->orders, id, 1);

    if (e == NULL) {
        failure(k, "out of memory");
        return;
    }
    set_str(k, &e->s[2], rstr(v[0]));
    set_str(k, &e->s[0], rstr(v[2]));
    set_str(k, &e->s[1], rstr(v[3]));
    if (parse_cents(rstr(v[1]), &e->n[0]) < 0)
        e->n[0] = -1;
    e->flags |= ENT_EXISTS;
}

/* Returns value of field `f` in a stream entry's flat field list. */
static const char *entry_field(const redisReply *fv, const char *f)
{
    size_t i;

    for (i = 0; i + 1 < fv->elements; i += 2)
        if (rstr(fv->element[i]) != NULL && strcmp(fv->element[i]->str, f) == 0)
            return rstr(fv->element[i + 1]);
    return NULL;
}

/* Called for each stream entry: its ID and its flat field list. */
typedef void (*entry_cb)(struct chk *k, const char *id, const redisReply *fv);

/* Visits every entry of `stream` in order, PAGE entries per XRANGE, the
 * next page starting after the last ID seen (exclusive range). A missing
 * stream has no entries. */
static void scan_stream(struct chk *k, const char *stream, entry_cb cb)
{
    char start[64] = "-";
    size_t i, n;

    do {
        redisReply *r = redisCommand(k->c, "XRANGE %s %s + COUNT %d", stream, start, PAGE);

        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            failure(k, "XRANGE %s: %s", stream, r == NULL ? k->c->errstr :
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            if (r != NULL)
                freeReplyObject(r);
            return;
        }
        n = r->elements;
        for (i = 0; i < n && !k->failed; i++) {
            redisReply *e = r->element[i];

            if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
                e->element[1]->type == REDIS_REPLY_ARRAY)
                cb(k, e->element[0]->str, e->element[1]);
        }
        if (n > 0)
            snprintf(start, sizeof start, "(%s", r->element[n - 1]->element[0]->str);
        freeReplyObject(r);
    } while (n == PAGE && !k->failed);
}

/* Replays one ledger entry {user_id, delta_cents, ref}: adds the delta to
 * the user's running sum (which must never go below 0) and, when the
 * entry is not after the cut of the user's balance, to the sum that must
 * equal that balance; then counts it against the opening, credit or
 * payment that its ref names. The user, credit or payment of an entry
 * after C0 may have been written after its scan went by: such an entry
 * is only counted when they were seen (see the top of this file). */
static void on_ledger(struct chk *k, const char *id, const redisReply *fv)
{
    const char *user = entry_field(fv, "user_id");
    const char *delta_s = entry_field(fv, "delta_cents");
    const char *ref = entry_field(fv, "ref");
    unsigned long long ms, seq;
    struct ent *u, *x;
    long long delta;
    int strict;

    if (user == NULL || ref == NULL || parse_cents(delta_s, &delta) < 0 ||
        parse_id(id, &ms, &seq) < 0) {
        violation(k, "ledger %s: malformed entry (user_id, delta_cents, ref)", id);
        return;
    }
    strict = !after(ms, seq, k->c0_ms, k->c0_seq);
    if (delta == 0)
        violation(k, "ledger %s: a zero balance change", id);
    u = table_get(&k->users, user, 0);
    if (u == NULL || !(u->flags & ENT_EXISTS)) {
        if (strict)
            violation(k, "ledger %s: user %s does not exist", id, user);
        return;
    }
    add(k, &u->n[3], delta, "ledger deltas");
    if (!after(ms, seq, u->cut_ms, u->cut_seq))
        add(k, &u->n[1], delta, "ledger deltas");
    if (u->n[3] < 0 && !(u->flags & ENT_NEGATIVE)) {
        u->flags |= ENT_NEGATIVE;
        violation(k, "ledger %s: the balance of user %s goes below 0 (%lld)", id, user, u->n[3]);
    }
    if (strncmp(ref, "open:", 5) == 0) {
        if (strcmp(ref + 5, user) != 0 || delta < 0)
            violation(k, "ledger %s: ref %s does not open user %s with a positive balance",
                      id, ref, user);
        if (++u->n[2] > 1)
            violation(k, "ledger %s: user %s opened more than once", id, user);
        add(k, &k->open_sum, delta, "opening balances");
    } else if (strncmp(ref, "credit:", 7) == 0) {
        x = table_get(&k->credits, ref + 7, 0);
        if (x == NULL || !(x->flags & ENT_EXISTS)) {
            if (strict)
                violation(k, "ledger %s: %s does not exist", id, ref);
            return;
        }
        if (x->s[0] == NULL || strcmp(x->s[0], user) != 0)
            violation(k, "ledger %s: %s belongs to user %s, not %s", id, ref,
                      x->s[0] ? x->s[0] : "(nil)", user);
        x->n[1]++;
        add(k, &x->n[2], delta, "credit entries");
    } else if (strncmp(ref, "payment:", 8) == 0) {
        x = table_get(&k->pays, ref + 8, 0);
        if (x == NULL || !(x->flags & ENT_EXISTS)) {
            if (strict)
                violation(k, "ledger %s: %s does not exist", id, ref);
            return;
        }
        if (x->s[3] == NULL || strcmp(x->s[3], user) != 0)
            violation(k, "ledger %s: %s belongs to user %s, not %s", id, ref,
                      x->s[3] ? x->s[3] : "(nil)", user);
        x->n[1]++;
        add(k, &x->n[2], delta, "payment entries");
    } else {
        violation(k, "ledger %s: unknown ref %s", id, ref);
    }
}

/* The source IDs seen in the dead-letter stream being scanned. */
static struct table *dead_seen;

/* Checks that no entry was dead-lettered twice (same source_id). */
static void on_dead(struct chk *k, const char *id, const redisReply *fv)
{
    const char *src = entry_field(fv, "source_id");
    struct ent *e;

    if (src == NULL) {
        violation(k, "dead letter %s has no source_id", id);
        return;
    }
    e = table_get(dead_seen, src, 1);
    if (e == NULL) {
        failure(k, "out of memory");
        return;
    }
    if (++e->n[0] == 2)
        violation(k, "entry %s was dead-lettered more than once (again as %s)", src, id);
}

/* ---------------------------------------------------------------------
 * Checking
 * ------------------------------------------------------------------ */

/* Compares every balance with its ledger replay, and money overall:
 * balances = openings + credits - succeeded payments. */
static void check_money(struct chk *k)
{
    size_t i;
    long long expect = 0;

    for (i = 0; i < k->users.cap; i++) {
        struct ent *u = &k->users.slots[i];

        if (u->key == NULL || !(u->flags & ENT_EXISTS))
            continue;
        if (u->n[1] != u->n[0])
            violation(k, "user:%s: balance_cents %lld, but the ledger replays to %lld",
                      u->key, u->n[0], u->n[1]);
        add(k, &k->balance_sum, u->n[0], "balances");
    }
    for (i = 0; i < k->credits.cap; i++) {
        struct ent *c = &k->credits.slots[i];

        if (c->key == NULL || !(c->flags & ENT_EXISTS))
            continue;
        if (c->n[1] != 1 || c->n[2] != c->n[0])
            violation(k, "credit:%s: %lld cents, but %lld ledger entries for %lld",
                      c->key, c->n[0], c->n[1], c->n[2]);
        add(k, &k->credit_sum, c->n[0], "credits");
    }
    for (i = 0; i < k->pays.cap; i++) {
        struct ent *p = &k->pays.slots[i];
        const char *st;

        if (p->key == NULL || !(p->flags & ENT_EXISTS))
            continue;
        st = p->s[0] ? p->s[0] : "(nil)";
        if (p->n[1] > 1)
            violation(k, "payment:%s applied %lld times", p->key, p->n[1]);
        if (strcmp(st, "succeeded") == 0) {
            if (p->n[1] != 1 || p->n[2] != -p->n[0])
                violation(k, "payment:%s succeeded for %lld, but %lld ledger debits for %lld",
                          p->key, p->n[0], p->n[1], p->n[2]);
            add(k, &k->paid_sum, p->n[0], "succeeded payments");
        } else if (strcmp(st, "declined") == 0) {
            if (p->n[1] != 0)
                violation(k, "payment:%s was declined, but has %lld ledger entries", p->key, p->n[1]);
            if (p->s[2] == NULL || p->s[2][0] == '\0')
                violation(k, "payment:%s was declined without a reason", p->key);
        } else {
            violation(k, "payment:%s has status %s", p->key, st);
        }
    }
    if (k->failed || !k->quiet)
        return;                    /* the sums need one instant: quiet only */
    add(k, &expect, k->open_sum, "money");
    add(k, &expect, k->credit_sum, "money");
    add(k, &expect, -k->paid_sum, "money");
    if (!k->failed && expect != k->balance_sum)
        violation(k, "money is not conserved: balances %lld != openings %lld + credits %lld"
                  " - succeeded payments %lld (= %lld)", k->balance_sum, k->open_sum,
                  k->credit_sum, k->paid_sum, expect);
}

/* Tells whether a and b are both NULL or equal strings. */
static int same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Compares every payment with its order, and every order's state with
 * the payments made for it. */
static void check_orders(struct chk *k)
{
    size_t i;

    for (i = 0; i < k->pays.cap; i++) {
        struct ent *p = &k->pays.slots[i], *o;
        const char *ps, *os;

        if (p->key == NULL || !(p->flags & ENT_EXISTS) || p->s[0] == NULL)
            continue;
        o = p->s[1] ? table_get(&k->orders, p->s[1], 0) : NULL;
        if (o == NULL) {
            if (k->quiet)
                violation(k, "payment:%s: its order %s does not exist", p->key,
                          p->s[1] ? p->s[1] : "(nil)");
            continue;
        }
        ps = p->s[0];
        os = o->s[0] ? o->s[0] : "(nil)";
        if (strcmp(ps, "succeeded") == 0)
            o->flags |= ENT_PAID_BY;
        else if (strcmp(ps, "declined") == 0)
            o->flags |= ENT_FAILED_BY;
        if (!same(p->s[3], o->s[2]) || p->n[0] != o->n[0])
            violation(k, "payment:%s: user %s / %lld cents, but order:%s has user %s / %lld cents",
                      p->key, p->s[3] ? p->s[3] : "(nil)", p->n[0], o->key,
                      o->s[2] ? o->s[2] : "(nil)", o->n[0]);
        if (strcmp(os, "pending") == 0) {
            if (k->quiet)
                violation(k, "payment:%s is %s, but order:%s is still pending", p->key, ps, o->key);
        } else if (strcmp(ps, "succeeded") == 0 && strcmp(os, "paid") != 0) {
            violation(k, "payment:%s succeeded, but order:%s is %s", p->key, o->key, os);
        } else if (strcmp(ps, "declined") == 0 &&
                   (strcmp(os, "failed") != 0 || !same(p->s[2], o->s[1]))) {
            violation(k, "payment:%s was declined (%s), but order:%s is %s (%s)", p->key,
                      p->s[2] ? p->s[2] : "", o->key, os, o->s[1] ? o->s[1] : "");
        }
    }
    for (i = 0; i < k->orders.cap; i++) {
        struct ent *o = &k->orders.slots[i];
        const char *os;

        if (o->key == NULL)
            continue;
        os = o->s[0] ? o->s[0] : "(nil)";
        if (strcmp(os, "paid") == 0) {
            if (!(o->flags & ENT_PAID_BY))
                violation(k, "order:%s is paid, but no payment for it succeeded", o->key);
        } else if (strcmp(os, "failed") == 0) {
            if (!(o->flags & ENT_FAILED_BY))
                violation(k, "order:%s failed, but no payment for it was declined", o->key);
        } else if (strcmp(os, "pending") == 0) {
            if (k->quiet)
                violation(k, "order:%s is still pending", o->key);
        } else {
            violation(k, "order:%s has status %s", o->key, os);
        }
    }
}

/* Returns the value after `name` in a flat key/value reply, or NULL. */
static const redisReply *kv(const redisReply *r, const char *name)
{
    size_t i;

    for (i = 0; i + 1 < r->elements; i += 2)
        if (rstr(r->element[i]) != NULL && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1];
    return NULL;
}

/* Checks, for a quiet system, that every group of `stream` has nothing
 * pending and has been delivered the stream's last entry. */
static void check_groups(struct chk *k, const char *stream)
{
    redisReply *s, *g;
    const redisReply *last;
    unsigned long long lms = 0, lseq = 0, ms, seq;
    size_t i;

    s = redisCommand(k->c, "XINFO STREAM %s", stream);
    if (s == NULL) {
        failure(k, "XINFO STREAM %s: %s", stream, k->c->errstr);
        return;
    }
    if (s->type != REDIS_REPLY_ARRAY) {         /* no such stream: nothing to read */
        freeReplyObject(s);
        return;
    }
    last = kv(s, "last-generated-id");
    if (parse_id(rstr(last), &lms, &lseq) < 0)
        failure(k, "XINFO STREAM %s: no last-generated-id", stream);
    freeReplyObject(s);
    g = redisCommand(k->c, "XINFO GROUPS %s", stream);
    if (g == NULL || g->type != REDIS_REPLY_ARRAY) {
        failure(k, "XINFO GROUPS %s: %s", stream, g == NULL ? k->c->errstr : "unexpected reply");
        if (g != NULL)
            freeReplyObject(g);
        return;
    }
    for (i = 0; i < g->elements && !k->failed; i++) {
        const redisReply *e = g->element[i];
        const redisReply *name = kv(e, "name"), *pend = kv(e, "pending");
        const char *gn = rstr(name) ? rstr(name) : "?";

        if (pend != NULL && pend->type == REDIS_REPLY_INTEGER && pend->integer != 0)
            violation(k, "stream %s group %s: %lld entries still pending", stream, gn,
                      pend->integer);
        if (parse_id(rstr(kv(e, "last-delivered-id")), &ms, &seq) < 0 ||
            ms < lms || (ms == lms && seq < lseq))
            violation(k, "stream %s group %s: has not read the stream to the end", stream, gn);
    }
    freeReplyObject(g);
}

/* Runs the whole check; see invariants.h. */
static int run(redisContext *c, int quiet, char *report, size_t len)
{
    static const char *const ufields[] = { "balance_cents" };
    static const char *const cfields[] = { "user_id", "amount_cents" };
    static const char *const pfields[] = { "order_id", "user_id", "amount_cents", "status", "reason" };
    static const char *const ofields[] = { "user_id", "amount_cents", "status", "reason" };
    static const char *const streams[] = { "users", "orders", "payments" };
    struct chk k;
    struct table seen;
    char dead[32];
    int i;

    memset(&k, 0, sizeof k);
    k.c = c;
    k.quiet = quiet;
    k.rep = report;
    k.len = len;
    if (len > 0)
        report[0] = '\0';
    /* The order of these reads matters; see the top of this file. */
    ledger_c0(&k);
    if (!k.failed)
        scan_hashes(&k, "order:", ofields, 4, 0, on_order);
    if (!k.failed)
        scan_hashes(&k, "payment:", pfields, 5, 0, on_payment);
    if (!k.failed)
        scan_hashes(&k, "credit:", cfields, 2, 0, on_credit);
    if (!k.failed)
        scan_hashes(&k, "user:", ufields, 1, 1, on_user);
    if (!k.failed)
        scan_stream(&k, "ledger", on_ledger);
    if (!k.failed)
        check_money(&k);
    if (!k.failed)
        check_orders(&k);
    for (i = 0; i < 3 && quiet && !k.failed; i++) {
        check_groups(&k, streams[i]);
        memset(&seen, 0, sizeof seen);
        dead_seen = &seen;
        snprintf(dead, sizeof dead, "%s:dead", streams[i]);
        scan_stream(&k, dead, on_dead);
        dead_seen = NULL;
        table_free(&seen);
    }
    table_free(&k.users);
    table_free(&k.credits);
    table_free(&k.pays);
    table_free(&k.orders);
    return k.failed ? -1 : k.nviol;
}

/* Checks every invariant, quiet ones included; see invariants.h. */
int sl_test_invariants(redisContext *c, char *report, size_t len)
{
    return run(c, 1, report, len);
}

/* Checks the invariants that hold at any time; see invariants.h. */
int sl_test_invariants_live(redisContext *c, char *report, size_t len)
{
    return run(c, 0, report, len);
}
