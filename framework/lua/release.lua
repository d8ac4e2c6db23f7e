#!lua
-- release.lua -- deletes a heartbeat on a graceful stop, so the consumer
-- name is free at once for the next `sluice run`; but only the heartbeat
-- of the process that stops: one another process wrote meanwhile (other
-- pid or host) is left alone. Run by a worker that finished its entries
-- after SIGTERM/SIGINT, and by its supervisor once that child exited 0.
-- The name leaves the registry of live workers with its key, and also
-- when the key is gone already (expired): a process that takes the name
-- later writes its key before it adds the name again.
-- KEYS: heartbeat_key registry
-- ARGV: pid host consumer
-- Returns 1 when the key was deleted, 0 when it was absent or not ours.
local f = redis.call('HMGET', KEYS[1], 'pid', 'host')
if f[1] == ARGV[1] and f[2] == ARGV[2] then
  redis.call('ZREM', KEYS[2], ARGV[3])
  return redis.call('DEL', KEYS[1])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[3])
end
return 0
