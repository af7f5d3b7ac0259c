-- add_key.lua: adds an API key's entry to an existing account's key list.
--
-- KEYS   1 acct, 2 keys.
-- ARGV   1 key id, 2 entry (see keys.go keyEntry).
-- Reply  1, or 0 when the account does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
