-- set_fields.lua: sets fields of an existing account. Only for settings (tier,
-- auto-recharge), never for counters.
--
-- KEYS   1 acct.
-- ARGV   field, value, ... (at least one pair).
-- Reply  1, or 0 when the account does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
