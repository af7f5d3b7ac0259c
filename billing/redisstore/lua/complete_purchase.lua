-- luacheck: std +prelude
--
-- complete_purchase.lua: the provider reports a purchase paid; credit it once.
--
-- KEYS   1-6 the account's (prelude.lua), 7 the purchase record (hash), 8 the
--        account's payments (hash: payment_ref -> take-back record, see
--        take_back.lua), 9 the notice outbox.
-- ARGV   1 now_ms, 2 purchase_id, 3 amount paid (micros, (0, money.MaxAmount]),
--        4 expires_ms, 5 payment_ref ("" = none), 6 customer_id ("" = keep),
--        7 payment_method_id ("" = keep), 8 the tier ladder (prelude.lua's
--        promote; "" = none).
-- Reply  {'OK' | 'REPLAY', grant_id, amount, remaining, granted_ms, expires_ms,
--         source, event_id, repaid, balance}
--      | {'NOACCOUNT'} | {'NOPURCHASE'} | {'REF_TAKEN', grant_id}.
--
-- Credits what was paid as a grant of source purchase whose id is the purchase
-- id (a topup event carrying payment_ref), paying debt first, outside the tier's
-- limits: they were checked when the purchase started, and the customer has paid.
-- A purchase recorded as failed or expired is still credited: the provider says
-- it was paid. Idempotent by the grant: a second report, whatever its event,
-- answers the first credit (REPLAY) and changes nothing. The payment's take-back
-- record starts at nothing taken; the account's payment profile (pp_provider,
-- pp_customer, pp_method) takes the ids the report carries. The purchase's
-- actor (who started it) goes on the topup event. The payment counts in
-- paid_total, and promotion is checked after it (count_paid, promote).

local now, pid, amount, expires = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local rec, payments, ref = KEYS[7], KEYS[8], ARGV[5]
if not load() then return {'NOACCOUNT'} end
local p = redis.call('HMGET', rec, 'fp', 'provider', 'actor')
if not p[1] then return {'NOPURCHASE'} end
local existing = redis.call('HGET', grants, pid)
if existing then return grant_reply('REPLAY', pid, existing) end
if ref ~= '' then
  local taken = redis.call('HGET', payments, ref)
  if taken then return {'REF_TAKEN', string.match(taken, '^(%S+)')} end
end
sweep(now)
-- writes
local extra = {}
if ref ~= '' then extra = {'payment_ref', ref} end
if (p[3] or '') ~= '' then extra[#extra + 1] = 'actor'; extra[#extra + 1] = p[3] end
credit_grant(now, pid, amount, expires, 'purchase', 'topup', extra)
count_paid(now, amount)
promote(now, ARGV[8], KEYS[9], {})
if ref ~= '' then redis.call('HSET', payments, ref, pid .. ' 0 0 0 0 -') end
redis.call('HSET', rec, 'status', 'paid', 'payment_ref', ref, 'paid', ARGV[3], 'settled', ARGV[1], 'reason', '')
local profile = {'pp_provider', p[2]}
if ARGV[6] ~= '' then profile[#profile + 1] = 'pp_customer'; profile[#profile + 1] = ARGV[6] end
if ARGV[7] ~= '' then profile[#profile + 1] = 'pp_method'; profile[#profile + 1] = ARGV[7] end
if #profile > 2 then redis.call('HSET', acct, unpack(profile)) end
return grant_reply('OK', pid, redis.call('HGET', grants, pid))
