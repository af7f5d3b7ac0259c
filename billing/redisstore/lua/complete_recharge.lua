-- luacheck: std +prelude
--
-- complete_recharge.lua: the charger answered 2xx (paid).
--
-- KEYS   1-6 the account's (prelude.lua), 7 the recharge records, 8 the
--        account's payments (hash: payment_ref -> take-back record, see
--        take_back.lua), 9 the notice outbox.
-- ARGV   1 now_ms, 2 recharge_id, 3 expires_ms, 4 payment_ref (the payment
--        provider's id of the charge; "" = none, as from the webhook charger),
--        5 the tier ladder (prelude.lua's promote; "" = none).
-- Reply  {'OK' | 'REPLAY', grant_id, amount, remaining, granted_ms, expires_ms,
--         source, event_id, repaid, balance}
--      | {'UNKNOWN'} | {'NOACCOUNT'} | {'REF_TAKEN', grant_id}.
--
-- Credits the recharge as a grant of source auto_recharge whose id is the recharge
-- id (so a second 2xx for the same recharge credits nothing), adds it to its
-- month's auto-recharged total, and clears the pending recharge and any back-off.
-- A recharge already recorded as failed is still credited: the charger says it
-- was paid. A payment_ref goes on the auto_recharge event and starts the
-- payment's take-back record, so a refund or a dispute finds the grant. The
-- payment counts in paid_total, and promotion is checked after it (count_paid,
-- promote).

local now, gid, ref = tonumber(ARGV[1]), ARGV[2], ARGV[4]
if not load() then return {'NOACCOUNT'} end
local function result(status, raw) return grant_reply(status, gid, raw) end
local existing = redis.call('HGET', grants, gid)
if existing then
  if redis.call('HGET', acct, 'rc_id') == gid then
    redis.call('HSET', acct, 'rc_id', '', 'rc_lease', '0', 'rc_fails', '0', 'rc_backoff', '0')
  end
  return result('REPLAY', existing)
end
local raw = redis.call('HGET', KEYS[7], gid)
if not raw then return {'UNKNOWN'} end
local _, amount, month, total, started = string.match(raw, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
amount = tonumber(amount)
if ref ~= '' then
  local taken = redis.call('HGET', KEYS[8], ref)
  if taken then return {'REF_TAKEN', string.match(taken, '^(%S+)')} end
end
sweep(now)
local extra
if ref ~= '' then extra = {'payment_ref', ref} end
credit_grant(now, gid, amount, tonumber(ARGV[3]), 'auto_recharge', 'auto_recharge', extra)
count_paid(now, amount)
promote(now, ARGV[5], KEYS[9], {})
if ref ~= '' then redis.call('HSET', KEYS[8], ref, gid .. ' 0 0 0 0 -') end
local m = redis.call('HMGET', acct, 'ar_month', 'ar_month_total', 'rc_id')
if m[1] == month then
  redis.call('HSET', acct, 'ar_month_total', fmt((tonumber(m[2] or '') or 0) + amount))
elseif not m[1] or m[1] == '' or m[1] < month then
  redis.call('HSET', acct, 'ar_month', month, 'ar_month_total', fmt(amount))
end
redis.call('HSET', KEYS[7], gid, table.concat({'done', fmt(amount), month, total, started}, ' '))
if m[3] == gid then
  redis.call('HSET', acct, 'rc_id', '', 'rc_lease', '0', 'rc_fails', '0', 'rc_backoff', '0')
end
return result('OK', redis.call('HGET', grants, gid))
