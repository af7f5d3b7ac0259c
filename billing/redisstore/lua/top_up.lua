-- luacheck: std +prelude
--
-- top_up.lua: credits a grant under the tier's limits, paying debt first.
--
-- KEYS   1-6 the account's (prelude.lua), 7 the Idempotency-Key record, 8 the
--        notice outbox.
-- ARGV   1 now_ms, 2 grant_id, 3 amount (micros, (0, money.MaxAmount]),
--        4 expires_ms, 5 source, 6 event_type, 7 tier, 8 min_purchase,
--        9 max_topup, 10 max_balance (micros, [0, money.MaxAmount], 0 = no limit
--        for 9 and 10), 11 skip_limits ("1"/"0"), 12 fingerprint ("" = no
--        Idempotency-Key), 13 idem_ttl_ms, 14 explicit_expiry ("1": the request set
--        expires_at), 15 payment_ref, 16 note, 17 actor (each "" = none; kept on
--        the topup event), 18 the tier ladder (prelude.lua's promote; "" = none).
-- Reply  {'OK', grant_id, amount, remaining, granted_ms, expires_ms, source,
--         event_id, repaid, balance, replayed ("1"/"0")}
--      | {'NOACCOUNT'} | {'CONFLICT'} | {'TIER', actual_tier} | {'BELOW', min}
--      | {'ABOVE_TOPUP', max} | {'ABOVE_BALANCE', max, credit_after}
--      | {'PAST_EXPIRY'}.
--
-- A top-up of source purchase is a payment (an operator's own sale): it counts
-- in paid_total, and promotion is checked after it (prelude.lua's count_paid,
-- promote). Promotions (source promo) and adjustments do not count.

local now, gid, amount, expires = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local fp = ARGV[12]
if not load() then return {'NOACCOUNT'} end
local function result(id, raw, replayed)
  local out = grant_reply('OK', id, raw)
  out[#out + 1] = replayed
  return out
end
if fp ~= '' then
  local rec = redis.call('HMGET', KEYS[7], 'fp', 'grant')
  if rec[1] then
    if rec[1] ~= fp then return {'CONFLICT'} end
    local raw = redis.call('HGET', grants, rec[2])
    if raw then return result(rec[2], raw, '1') end
  end
end
local existing = redis.call('HGET', grants, gid)
if existing then
  -- A keyed top-up whose record has expired (idem_ttl) still names its grant
  -- (the grant id derives from the key): what the grant holds of the request,
  -- its amount and an explicit expiry (ARGV[14] = '1'), must match, or it is
  -- the key reused for another request.
  if fp ~= '' then
    local g = grant_get(existing)
    if g.amount ~= amount or (ARGV[14] == '1' and g.expires ~= ARGV[4]) then return {'CONFLICT'} end
  end
  return result(gid, existing, '1')
end
if S.tier ~= ARGV[7] then return {'TIER', S.tier} end
sweep(now)
if expires <= now then return {'PAST_EXPIRY'} end
local repaid = math.min(S.debt, amount)
local credit_after = S.credit + amount - repaid
if ARGV[11] ~= '1' then
  local minp, maxt, maxb = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
  if amount < minp then return {'BELOW', ARGV[8]} end
  if maxt > 0 and amount > maxt then return {'ABOVE_TOPUP', ARGV[9]} end
  if maxb > 0 and credit_after > maxb then return {'ABOVE_BALANCE', ARGV[10], fmt(credit_after)} end
end
-- writes
local extra = {}
if ARGV[15] ~= '' then extra[#extra + 1] = 'payment_ref'; extra[#extra + 1] = ARGV[15] end
if ARGV[16] ~= '' then extra[#extra + 1] = 'note'; extra[#extra + 1] = ARGV[16] end
if ARGV[17] ~= '' then extra[#extra + 1] = 'actor'; extra[#extra + 1] = ARGV[17] end
credit_grant(now, gid, amount, expires, ARGV[5], ARGV[6], extra)
if ARGV[5] == 'purchase' or ARGV[5] == 'auto_recharge' then
  count_paid(now, amount)
  promote(now, ARGV[18], KEYS[8], {})
end
if fp ~= '' then
  redis.call('HSET', KEYS[7], 'fp', fp, 'grant', gid)
  redis.call('PEXPIRE', KEYS[7], ARGV[13])
end
return result(gid, redis.call('HGET', grants, gid), '0')
