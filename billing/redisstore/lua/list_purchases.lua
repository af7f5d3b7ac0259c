-- list_purchases.lua: the ids of an account's newest purchases.
--
-- KEYS   1 the account hash, 2 the account's purchases (zset: purchase id
--        scored by creation ms).
-- ARGV   1 limit (> 0).
-- Reply  {'OK', purchase_id…} newest first | {'NOACCOUNT'}.
--
-- One call, so that an unknown account is told apart from one without purchases;
-- the caller reads each record (one key each, by id).

if redis.call('HEXISTS', KEYS[1], 'tier') == 0 then return {'NOACCOUNT'} end
local ids = redis.call('ZREVRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)
table.insert(ids, 1, 'OK')
return ids
