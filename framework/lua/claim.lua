#!lua
-- claim.lua -- claims entries to (re)process.
-- KEYS: stream attempts
-- ARGV: group consumer mode min_idle start count max_payload_bytes
--   mode "own":   this consumer's entries that are fresh or due (after a
--                 restart or reconnect: they may never have been seen);
--   mode "retry": this consumer's entries whose retry is due;
--   mode "any":   entries of any consumer idle >= min idle, fresh or due
--                 (the reclaim of entries left by a dead or hung peer).
-- An entry waiting for its retry delay is never taken early, by anyone.
-- A due retry of one's own is re-taken with JUSTID: the failed attempt is
-- already counted where it belongs. Everything else counts as a delivery
-- on Redis's counter: an entry taken from a peer, and an own entry taken
-- back by a process after a restart or reconnect (as XREADGROUP ... 0
-- would), because that counter is the backstop of docs/semantics.md for
-- an entry whose process died where no supervisor saw it, and such an
-- entry only ever comes back this way. Entries whose data is gone are
-- acked and counted.
-- An entry whose (first) `data` is longer than max_payload_bytes is sent
-- with that value replaced by "" and its length in `left`: it can only be
-- dead-lettered as too_large, which copies it inside Redis, so its bytes
-- never need to reach the worker's memory.
-- Returns {next start or "", deleted count, {{id, deliveries, attempts,
-- last reason, fields, left}...}}.
--@include lib
local MODE, MINIDLE, START, COUNT = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local MAXP = tonumber(ARGV[7])
local now = now_ms()
local p
if MODE == 'any' then
  p = redis.call('XPENDING', S, G, 'IDLE', MINIDLE, START, '+', COUNT)
else
  p = redis.call('XPENDING', S, G, 'IDLE', MINIDLE, START, '+', COUNT, ME)
end
local nxt = ''
if #p == COUNT then nxt = '(' .. p[#p][1] end
local out, deleted = {}, 0
for i = 1, #p do
  local id, owner, cnt = p[i][1], p[i][2], p[i][4]
  local n, at, why = parse_att(redis.call('HGET', A, id))
  local take
  if MODE == 'retry' then take = n > 0 and now >= at else take = n == 0 or now >= at end
  if take then
    local e = redis.call('XRANGE', S, id, id)
    if #e == 0 then
      finish(id)
      deleted = deleted + 1
    else
      if owner ~= ME or MODE == 'own' then
        redis.call('XCLAIM', S, G, ME, MINIDLE, id)
        cnt = cnt + 1
      else
        redis.call('XCLAIM', S, G, ME, 0, id, 'JUSTID')
      end
      local f, left = e[1][2], 0
      for i = 1, #f, 2 do
        if f[i] == 'data' then
          if #f[i+1] > MAXP then left = #f[i+1]; f[i+1] = '' end
          break
        end
      end
      out[#out+1] = {id, cnt, n, why, f, left}
    end
  end
end
return {nxt, deleted, out}
