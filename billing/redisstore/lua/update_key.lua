-- update_key.lua: replaces an API key's entry if it is still the one read.
--
-- KEYS   1 acct, 2 keys.
-- ARGV   1 key id, 2 the entry as read (see keys.go keyEntry), 3 the new entry.
-- Reply  {'OK'} | {'CHANGED'} (the entry is no longer ARGV[2]: read it again)
--      | {'NOKEY'} | {'NOACCOUNT'}.
--
-- The caller merges the change into the entry it read; this compare-and-set
-- makes the read-merge-write atomic (a concurrent update or a revocation in
-- between is seen, never overwritten). Keys move no money: nothing is booked.

if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOACCOUNT'} end
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur then return {'NOKEY'} end
if cur ~= ARGV[2] then return {'CHANGED'} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return {'OK'}
