-- attach_checkout.lua: stores the provider's checkout session of a purchase.
--
-- KEYS   1 the purchase record (hash, under the account's hash tag).
-- ARGV   1 checkout_id, 2 checkout_url, 3 checkout_expires_ms.
-- Reply  {'OK', record (HGETALL)} | {'NOPURCHASE'} | {'CONFLICT', checkout_id}.
--
-- Once: the same checkout again answers the record (a resent call), another one
-- is a conflict. The purchase may already be paid (the provider's event can come
-- before the caller stores the session): the checkout is stored all the same.

local rec = KEYS[1]
local v = redis.call('HMGET', rec, 'fp', 'checkout_id')
if not v[1] then return {'NOPURCHASE'} end
if v[2] and v[2] ~= '' then
  if v[2] ~= ARGV[1] then return {'CONFLICT', v[2]} end
  return {'OK', redis.call('HGETALL', rec)}
end
redis.call('HSET', rec, 'checkout_id', ARGV[1], 'checkout_url', ARGV[2], 'checkout_expires', ARGV[3])
return {'OK', redis.call('HGETALL', rec)}
