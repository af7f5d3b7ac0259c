-- batch_pending.lua: the open batches, oldest first.
--
-- KEYS   1 the open batches (see batch_queue.lua).
-- ARGV   1 limit (1 to 10000).
-- Reply  {'OK', member…} ("<account> <batch id>").

local out = {'OK'}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do out[#out + 1] = m end
return out
