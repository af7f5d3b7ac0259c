-- object_owns.lua: tells whether an account created a stored object.
--
-- KEYS   1 the account's objects of that kind (see object_put.lua).
-- ARGV   1 now_ms, 2 object id, 3 retention_ms ('0': none).
-- Reply  {'YES'} | {'NO'}.
--
-- A record older than the retention no longer counts (object_put.lua drops
-- those it sees; this one may just not have been seen yet).

local created = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[2]) or '')
local keep = tonumber(ARGV[3])
if not created or (keep > 0 and created < tonumber(ARGV[1]) - keep) then return {'NO'} end
return {'YES'}
