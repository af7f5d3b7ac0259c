-- key_state.lua: reads what authenticating a key needs, in one step.
--
-- KEYS   1 acct, 2 keys.
-- ARGV   1 key id.
-- Reply  {'OK', entry, status} (status the account hash's: '' for active)
--      | {'NOKEY'} | {'NOACCOUNT'}.
--
-- The key's settings are read from its entry, the one record UpdateKey
-- changes, and the account's status with them, so a proxy's cached key
-- carries both (a suspension takes effect within the key-cache TTL).

local status = redis.call('HGET', KEYS[1], 'status')
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOACCOUNT'} end
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry then return {'NOKEY'} end
return {'OK', entry, status or ''}
