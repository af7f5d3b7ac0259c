-- luacheck: std +prelude
--
-- create_purchase.lua: records a pending purchase after checking it as a top-up
-- of its amount would be checked (top_up.lua): nothing is credited until the
-- provider reports it paid (complete_purchase.lua).
--
-- KEYS   1-6 the account's (prelude.lua), 7 the purchase record (hash), 8 the
--        account's purchases (zset: purchase id scored by creation ms).
-- ARGV   1 now_ms, 2 purchase_id, 3 amount (micros, (0, money.MaxAmount]),
--        4 provider, 5 save_card ("1"/"0"), 6 actor, 7 fingerprint (of amount,
--        provider, save_card and actor), 8 tier, 9 min_purchase, 10 max_topup,
--        11 max_balance (micros, [0, money.MaxAmount], 0 = no limit for 10 and 11).
-- Reply  {'OK', replayed ("1"/"0"), record (HGETALL of KEYS[7])}
--      | {'NOACCOUNT'} | {'CONFLICT'} | {'TIER', actual_tier} | {'BELOW', min}
--      | {'ABOVE_TOPUP', max} | {'ABOVE_BALANCE', max, credit_after}.
--
-- Idempotent by purchase id: the same id with the same fingerprint answers the
-- record as it is now (its limits were checked when it was created), another
-- fingerprint is a conflict. The record's fields: fp, amount, status, provider,
-- save_card, actor, created; later checkout_id, checkout_url, checkout_expires
-- (attach_checkout.lua), payment_ref, paid, settled, taken_back, reason.

local now, pid, amount = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local rec, index = KEYS[7], KEYS[8]
if not load() then return {'NOACCOUNT'} end
local fp = redis.call('HGET', rec, 'fp')
if fp then
  if fp ~= ARGV[7] then return {'CONFLICT'} end
  return {'OK', '1', redis.call('HGETALL', rec)}
end
if S.tier ~= ARGV[8] then return {'TIER', S.tier} end
sweep(now)
local minp, maxt, maxb = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local credit_after = S.credit + amount - math.min(S.debt, amount)
if amount < minp then return {'BELOW', ARGV[9]} end
if maxt > 0 and amount > maxt then return {'ABOVE_TOPUP', ARGV[10]} end
if maxb > 0 and credit_after > maxb then return {'ABOVE_BALANCE', ARGV[11], fmt(credit_after)} end
-- writes
redis.call('HSET', rec, 'fp', ARGV[7], 'amount', ARGV[3], 'status', 'pending', 'provider', ARGV[4],
  'save_card', ARGV[5], 'actor', ARGV[6], 'created', ARGV[1])
redis.call('ZADD', index, now, pid)
return {'OK', '0', redis.call('HGETALL', rec)}
