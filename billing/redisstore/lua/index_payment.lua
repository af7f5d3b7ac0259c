-- index_payment.lua: records which account and grant a payment credited, so a
-- refund or a dispute that names only the payment finds them (take_back.lua).
--
-- KEYS   1 the payment's index record (hash "payref:<sha256 of payment_ref>",
--        outside any account's hash tag: one key, any node).
-- ARGV   1 payment_ref, 2 account, 3 grant_id.
-- Reply  {'OK'} | {'TAKEN', account, grant_id}.
--
-- Written before the credit, so a credited payment is always indexed (an index
-- whose credit never happened finds no take-back record: "payment not found").
-- Once: the same payment, account and grant again is a resent call; another
-- account or grant is refused, because one payment credits one grant.

local v = redis.call('HMGET', KEYS[1], 'ref', 'account', 'grant')
if v[1] then
  if v[1] == ARGV[1] and v[2] == ARGV[2] and v[3] == ARGV[3] then return {'OK'} end
  return {'TAKEN', v[2] or '', v[3] or ''}
end
redis.call('HSET', KEYS[1], 'ref', ARGV[1], 'account', ARGV[2], 'grant', ARGV[3])
return {'OK'}
