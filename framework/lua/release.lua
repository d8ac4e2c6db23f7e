#!lua
-- release.lua -- deletes a heartbeat on a graceful stop, so the consumer
-- name is free at once for the next `sluice run`; but only the heartbeat
-- of the process that stops: one another process wrote meanwhile (other
-- pid or host) is left alone. Run by a worker that finished its entries
-- after SIGTERM/SIGINT, and by its supervisor once that child exited 0.
-- KEYS: heartbeat_key
-- ARGV: pid host
-- Returns 1 when the key was deleted, 0 when it was absent or not ours.
local f = redis.call('HMGET', KEYS[1], 'pid', 'host')
if f[1] == ARGV[1] and f[2] == ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
