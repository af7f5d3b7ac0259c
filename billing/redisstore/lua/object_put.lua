-- object_put.lua: records that an account created a stored object at the
-- upstream (a file, a batch, a stored response or chat completion).
--
-- KEYS   1 the account's objects of that kind (zset "{acct:<id>}:objects:<kind>":
--        object id scored by its creation, ms).
-- ARGV   1 created_ms, 2 object id, 3 retention_ms ('0': kept until deleted).
-- Reply  {'OK'}.
--
-- Idempotent: an id recorded already keeps its first time (ZADD NX). With a
-- retention, the records that outlived it are dropped on the way, so the set
-- stays as large as the upstream keeps objects.

local at, keep = tonumber(ARGV[1]), tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], 'NX', at, ARGV[2])
if keep > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', at - keep))
end
return {'OK'}
