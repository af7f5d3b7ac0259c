-- batch_queue.lua: adds a batch to, or removes it from, the batches that are
-- open (holding money until they end), which the poller settles.
--
-- KEYS   1 the open batches (zset "batches:open": "<account> <batch id>" scored
--        by creation, ms; one key for every account, outside the hash tags).
-- ARGV   1 'add' | 'remove', 2 member ("<account> <batch id>"), 3 created_ms
--        (add only).
-- Reply  {'OK'}.

if ARGV[1] == 'add' then
  redis.call('ZADD', KEYS[1], 'NX', ARGV[3], ARGV[2])
else
  redis.call('ZREM', KEYS[1], ARGV[2])
end
return {'OK'}
