-- end_purchase.lua: a pending purchase failed or expired unpaid.
--
-- KEYS   1 the purchase record (hash, under the account's hash tag).
-- ARGV   1 now_ms, 2 status ('failed' or 'expired'), 3 reason (one line).
-- Reply  {'OK', changed ("1"/"0"), record (HGETALL)} | {'NOPURCHASE'}.
--
-- Only a pending purchase changes: a paid (or refunded) one stays as it is,
-- because the provider's events arrive in any order, and a purchase already
-- ended keeps its first ending, so a resent call changes nothing.

local rec = KEYS[1]
local status = redis.call('HGET', rec, 'status')
if not status then return {'NOPURCHASE'} end
if status ~= 'pending' then return {'OK', '0', redis.call('HGETALL', rec)} end
redis.call('HSET', rec, 'status', ARGV[2], 'reason', ARGV[3], 'settled', ARGV[1])
return {'OK', '1', redis.call('HGETALL', rec)}
