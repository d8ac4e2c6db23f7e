/* scripts.c -- the Lua that makes sluice's steps atomic.
 *
 * Every step that changes an entry's fate (ack with effects, retry, dead
 * letter, claim, lease renewal) is one `#!lua` script, so that
 *   - it is fenced: it acts only while the entry is pending for the
 *     consumer that asks (XACK alone has no ownership check);
 *   - it is all-or-nothing under OOM: a shebang script is refused whole
 *     instead of aborting half-way;
 *   - a crash of either side never leaves half of it applied.
 *
 * Bookkeeping lives in one hash per stream and group (sl__attempts_key):
 * field = entry ID, value = "<failed attempts>:<not before, ms on Redis's
 * clock>:<last failure reason>". It is written when an attempt fails and
 * deleted in the same script that acks or dead-letters the entry.
 *
 * Calling convention of the commit and effect scripts:
 *   KEYS[1] stream  KEYS[2] attempts hash  KEYS[3] dead-letter stream
 *   ARGV[1] group   ARGV[2] consumer       ARGV[3] entry ID
 *   ARGV[4] max_deliveries  ARGV[5] first retry delay  ARGV[6] retry cap
 *   ARGV[7] "ack" | "retry" | "dead"       ARGV[8] error text
 *   ARGV[9] "1" when a dead letter keeps only type and data (too_large)
 * followed, for effect scripts, by the handler's own keys and arguments.
 * They return 0 when the entry was not ours any more (nothing done),
 * 1 acked, 2 left pending for a retry, 3 dead-lettered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* Functions shared by every script. Field names added to a dead letter
 * replace same-named original fields ("on a name clash the added field
 * wins"). unpack() has a limit of a few thousand values, so huge field
 * lists are sent in one XADD only up to that limit: an entry with more
 * fields than that has already been refused as too_large, which keeps
 * type and data only. */
static const char prelude[] =
"#!lua\n"
"local S, A, D = KEYS[1], KEYS[2], KEYS[3]\n"
"local G, ME, ID = ARGV[1], ARGV[2], ARGV[3]\n"
"local function now_ms()\n"
"  local t = redis.call('TIME')\n"
"  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"end\n"
"local function owned(id)\n"
"  local p = redis.call('XPENDING', S, G, id, id, 1, ME)\n"
"  if #p == 0 then return nil end\n"
"  return p[1]\n"
"end\n"
"local function finish(id)\n"
"  redis.call('XACK', S, G, id)\n"
"  redis.call('HDEL', A, id)\n"
"end\n"
"local added = {error=1, source_id=1, deliveries=1, consumer=1, failed_at=1}\n"
"local function dead(id, err, deliveries, trim)\n"
"  local e = redis.call('XRANGE', S, id, id)\n"
"  local args = {D, '*'}\n"
"  if #e > 0 then\n"
"    local f = e[1][2]\n"
"    if #f > 7000 then trim = '1' end\n"
"    for i = 1, #f, 2 do\n"
"      local k = f[i]\n"
"      if not added[k] and (trim ~= '1' or k == 'type' or k == 'data') then\n"
"        args[#args+1] = k; args[#args+1] = f[i+1]\n"
"      end\n"
"    end\n"
"  end\n"
"  local extra = {'error', err, 'source_id', id, 'deliveries', tostring(deliveries),\n"
"                 'consumer', ME, 'failed_at', tostring(now_ms())}\n"
"  for i = 1, #extra do args[#args+1] = extra[i] end\n"
"  redis.call('XADD', unpack(args))\n"
"  finish(id)\n"
"end\n"
"local function parse_att(v)\n"
"  if not v then return 0, 0, '' end\n"
"  local n, at, why = string.match(v, '^(%d+):(%d+):?(.*)$')\n"
"  if not n then return 0, 0, '' end\n"
"  return tonumber(n), tonumber(at), why\n"
"end\n"
"local function retry(id, why, deliveries, max, first, cap)\n"
"  local n = parse_att(redis.call('HGET', A, id)) + 1\n"
"  if n >= max then\n"
"    dead(id, 'max_deliveries_exceeded: ' .. why, deliveries, '0')\n"
"    return 3\n"
"  end\n"
"  local d = first\n"
"  for i = 2, n do\n"
"    if d >= cap then break end\n"
"    d = d * 2\n"
"  end\n"
"  if d > cap then d = cap end\n"
"  redis.call('HSET', A, id, n .. ':' .. string.format('%d', now_ms() + d) .. ':' .. why)\n"
"  return 2\n"
"end\n"
"local function decide(kind, err, p)\n"
"  local max, first, cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])\n"
"  if kind == 'retry' then return retry(ID, err, p[4], max, first, cap) end\n"
"  if kind == 'dead' then dead(ID, err, p[4], ARGV[9]); return 3 end\n"
"  finish(ID)\n"
"  return 1\n"
"end\n";

/* The commit step without a handler effect: ack, retry or dead-letter. */
static const char commit_body[] =
"local p = owned(ID)\n"
"if not p then return 0 end\n"
"return decide(ARGV[7], ARGV[8], p)\n";

/* Wraps a handler's effect. The body becomes a function over its own
 * KEYS and ARGV (the framework's come first and are stripped), runs only
 * when the entry is still ours, and its result picks ack, retry or dead. */
static const char effect_head[] =
"local function effect(KEYS, ARGV)\n";
static const char effect_tail[] =
"\nend\n"
"local p = owned(ID)\n"
"if not p then return 0 end\n"
"local uk, ua = {}, {}\n"
"for i = 4, #KEYS do uk[#uk+1] = KEYS[i] end\n"
"for i = 10, #ARGV do ua[#ua+1] = ARGV[i] end\n"
"local r = effect(uk, ua)\n"
"if type(r) == 'table' and (r[1] == 'retry' or r[1] == 'dead') then\n"
"  return decide(r[1], tostring(r[2] or r[1]), p)\n"
"end\n"
"return decide('ack', '', p)\n";

/* Records a failed attempt the worker could not record itself (its
 * process crashed or overran handler_timeout_ms); run by the supervisor.
 * ARGV[7] is ignored, ARGV[8] the reason. */
static const char fail_body[] =
"local p = owned(ID)\n"
"if not p then return 0 end\n"
"return decide('retry', ARGV[8], p)\n";

/* Claims entries to (re)process. KEYS: stream, attempts hash.
 * ARGV: group, consumer, mode, min idle, start, count, max_payload_bytes.
 *   mode "own":   this consumer's entries that are fresh or due (after a
 *                 restart or reconnect: they may never have been seen);
 *   mode "retry": this consumer's entries whose retry is due;
 *   mode "any":   entries of any consumer idle >= min idle, fresh or due
 *                 (the reclaim of entries left by a dead or hung peer).
 * An entry waiting for its retry delay is never taken early, by anyone.
 * A due retry of one's own is re-taken with JUSTID: the failed attempt is
 * already counted where it belongs. Everything else counts as a delivery
 * on Redis's counter: an entry taken from a peer, and an own entry taken
 * back by a process after a restart or reconnect (as XREADGROUP ... 0
 * would), because that counter is the backstop of docs/semantics.md for an
 * entry whose process died where no supervisor saw it, and such an entry
 * only ever comes back this way. Entries whose data is gone are acked and
 * counted.
 * An entry whose (first) `data` is longer than max_payload_bytes is sent
 * with that value replaced by "" and its length in `left`: it can only be
 * dead-lettered as too_large, which copies it inside Redis, so its bytes
 * never need to reach the worker's memory.
 * Returns {next start or "", deleted count, {{id, deliveries, attempts,
 * last reason, fields, left}...}}. */
static const char claim_body[] =
"local MODE, MINIDLE, START, COUNT = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])\n"
"local MAXP = tonumber(ARGV[7])\n"
"local now = now_ms()\n"
"local p\n"
"if MODE == 'any' then\n"
"  p = redis.call('XPENDING', S, G, 'IDLE', MINIDLE, START, '+', COUNT)\n"
"else\n"
"  p = redis.call('XPENDING', S, G, 'IDLE', MINIDLE, START, '+', COUNT, ME)\n"
"end\n"
"local nxt = ''\n"
"if #p == COUNT then nxt = '(' .. p[#p][1] end\n"
"local out, deleted = {}, 0\n"
"for i = 1, #p do\n"
"  local id, owner, cnt = p[i][1], p[i][2], p[i][4]\n"
"  local n, at, why = parse_att(redis.call('HGET', A, id))\n"
"  local take\n"
"  if MODE == 'retry' then take = n > 0 and now >= at else take = n == 0 or now >= at end\n"
"  if take then\n"
"    local e = redis.call('XRANGE', S, id, id)\n"
"    if #e == 0 then\n"
"      finish(id)\n"
"      deleted = deleted + 1\n"
"    else\n"
"      if owner ~= ME or MODE == 'own' then\n"
"        redis.call('XCLAIM', S, G, ME, MINIDLE, id)\n"
"        cnt = cnt + 1\n"
"      else\n"
"        redis.call('XCLAIM', S, G, ME, 0, id, 'JUSTID')\n"
"      end\n"
"      local f, left = e[1][2], 0\n"
"      for i = 1, #f, 2 do\n"
"        if f[i] == 'data' then\n"
"          if #f[i+1] > MAXP then left = #f[i+1]; f[i+1] = '' end\n"
"          break\n"
"        end\n"
"      end\n"
"      out[#out+1] = {id, cnt, n, why, f, left}\n"
"    end\n"
"  end\n"
"end\n"
"return {nxt, deleted, out}\n";

/* Renews the lease of the entries a worker holds: resets their idle time
 * without raising their delivery count, and only for entries still
 * pending for that consumer, so it can never steal one back from a peer
 * that reclaimed it. KEYS: stream. ARGV: group, consumer, first ID, last
 * ID, count. Returns how many were renewed. */
static const char renew_src[] =
"#!lua\n"
"local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[2])\n"
"local i = 1\n"
"while i <= #p do\n"
"  local args = {KEYS[1], ARGV[1], ARGV[2], 0}\n"
"  local j = i\n"
"  while j <= #p and j < i + 1000 do args[#args+1] = p[j][1]; j = j + 1 end\n"
"  args[#args+1] = 'JUSTID'\n"
"  redis.call('XCLAIM', unpack(args))\n"
"  i = j\n"
"end\n"
"return #p\n";

/* Moves one dead letter back to its source stream without the fields
 * sluice added, and removes it from the dead-letter stream, atomically.
 * KEYS: dead stream, source stream. ARGV: dead-letter ID. Returns the new
 * entry's ID, or false when there is no such dead letter. */
static const char replay_src[] =
"#!lua\n"
"local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])\n"
"if #e == 0 then return false end\n"
"local skip = {error=1, source_id=1, deliveries=1, consumer=1, failed_at=1}\n"
"local args = {KEYS[2], '*'}\n"
"local f = e[1][2]\n"
"for i = 1, #f, 2 do\n"
"  if not skip[f[i]] then args[#args+1] = f[i]; args[#args+1] = f[i+1] end\n"
"end\n"
"if #args == 2 then args[3] = 'type'; args[4] = '' end\n"
"local id = redis.call('XADD', unpack(args))\n"
"redis.call('XDEL', KEYS[1], ARGV[1])\n"
"return id\n";

/* Returns a new string: prelude + body. */
static char *join3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);

    if (s == NULL)
        return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

/* Returns the source of a framework script (new: free()), or NULL on
 * allocation failure or an unknown id. */
char *sl__script_source(int which)
{
    switch (which) {
    case SL_SCRIPT_COMMIT: return join3(prelude, commit_body, "");
    case SL_SCRIPT_FAIL:   return join3(prelude, fail_body, "");
    case SL_SCRIPT_CLAIM:  return join3(prelude, claim_body, "");
    case SL_SCRIPT_RENEW:  return join3(renew_src, "", "");
    case SL_SCRIPT_REPLAY: return join3(replay_src, "", "");
    default:               return NULL;
    }
}

/* Returns the source of an effect script: the handler's body wrapped in
 * the fence and the disposition logic (new: free()), or NULL. */
char *sl__script_effect_source(const struct sl_script *s)
{
    char *head = join3(prelude, effect_head, s->body);
    char *all;

    if (head == NULL)
        return NULL;
    all = join3(head, effect_tail, "");
    free(head);
    return all;
}
