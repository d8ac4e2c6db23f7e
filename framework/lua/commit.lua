#!lua
-- commit.lua -- the commit step of one entry without a handler effect:
-- ack, retry or dead-letter it, fenced by ownership (it acts only while
-- the entry is pending for this consumer: XACK alone has no ownership
-- check). A shebang script is refused whole under OOM instead of
-- aborting half-way.
-- KEYS: stream attempts dead
-- ARGV: group consumer id max_deliveries first_delay_ms cap_ms kind error trim least_delay_ms
--   kind: "ack", "retry" or "dead"; error: the reason; trim: "1" when a
--   dead letter keeps only type and data (too_large); least_delay_ms: a
--   retry waits at least this long (the handler's sl_ctx_retry_after).
-- Returns 0 when the entry was not ours any more (nothing done), 1 acked,
-- 2 left pending for a retry, 3 dead-lettered.
--@include lib
local p = owned(ID)
if not p then return 0 end
return decide(ARGV[7], ARGV[8], p)
