-- portal_take.lua: reads and deletes a portal link record in one step, so that
-- of two redemptions of one link exactly one finds it.
--
-- KEYS   1 the link record (hash "portal:link:<sha256 hex>").
-- ARGV   none.
-- Reply  the record's field/value pairs (HGETALL), empty when there is none.

local v = redis.call('HGETALL', KEYS[1])
if #v > 0 then redis.call('DEL', KEYS[1]) end
return v
