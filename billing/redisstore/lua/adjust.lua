-- luacheck: std +prelude
--
-- adjust.lua: an operator's correction of an account's credit, outside the
-- purchase limits.
--
-- KEYS   1-6 the account's (prelude.lua), 7 the Idempotency-Key record (shared
--        with top-ups: a key used for one cannot be reused for the other), 8 the
--        adjustment records (hash: adjustment id -> "fp event_id amount grant_id
--        repaid balance credit debt at_ms expires_ms", kept for good).
-- ARGV   1 now_ms, 2 adjustment_id, 3 amount (micros, signed, != 0, |amount| <=
--        money.MaxAmount), 4 expires_ms (positive amounts only), 5 reason,
--        6 fingerprint, 7 use_idem ("1"/"0"), 8 idem_ttl_ms, 9 actor ("" = none;
--        kept on the adjustment event).
-- Reply  {'OK', adjustment_id, amount, event_id, grant_id ('' for none), repaid,
--         balance, credit, debt, at_ms, expires_ms, replayed ("1"/"0")}
--      | {'NOACCOUNT'} | {'CONFLICT'} | {'PAST_EXPIRY'}
--      | {'INSUFFICIENT', available, credit, reserved}.
--
-- Positive: credits a grant of source adjustment whose id is the adjustment id,
-- paying debt first (one adjustment event, then debt_repaid). Negative: after the
-- sweep, takes -amount from live grants earliest expiry first, counted in
-- adjusted_out; refused when it exceeds credit - reserved (the holds in flight
-- were admitted against that credit). Idempotent by adjustment id: a replay
-- answers from the record and changes nothing; the same id with another
-- fingerprint is a conflict.

local now, aid, amount, expires = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local fp, adjs = ARGV[6], KEYS[8]
if not load() then return {'NOACCOUNT'} end
local function with_actor(fields)
  if ARGV[9] ~= '' then fields[#fields + 1] = 'actor'; fields[#fields + 1] = ARGV[9] end
  return fields
end
local function result(raw, replayed)
  local rfp, ev, amt, gid, rep, bal, cr, dt, at, exp = string.match(raw,
    '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  if rfp ~= fp then return {'CONFLICT'} end
  if gid == '-' then gid = '' end
  return {'OK', aid, amt, ev, gid, rep, bal, cr, dt, at, exp, replayed}
end
if ARGV[7] == '1' then
  local rec = redis.call('HGET', KEYS[7], 'fp')
  if rec and rec ~= fp then return {'CONFLICT'} end
end
local existing = redis.call('HGET', adjs, aid)
if existing then return result(existing, '1') end
sweep(now)
local gid, repaid = '-', 0
local ev
if amount > 0 then
  if expires <= now then return {'PAST_EXPIRY'} end
  gid = aid
  local g = credit_grant(now, gid, amount, expires, 'adjustment', 'adjustment', with_actor({'note', ARGV[5]}))
  ev, repaid = g.event, tonumber(g.repaid)
else
  local take = -amount
  if take > S.credit - S.reserved then
    return {'INSUFFICIENT', fmt(math.max(0, S.credit - S.reserved)), fmt(S.credit), fmt(S.reserved)}
  end
  local plan, left = plan_take(take)
  if left > 0 then
    -- credit says more than the live grants hold: never take what is not there
    return {'INSUFFICIENT', fmt(take - left), fmt(S.credit), fmt(S.reserved)}
  end
  -- writes
  take_planned(plan)
  need('adjusted_out')
  S.credit = S.credit - take
  S.adjusted_out = S.adjusted_out + take
  if S.credit == 0 then S.depleted = 'adjustment' end
  save()
  ev = event(now, with_actor({'type', 'adjustment', 'amount', fmt(amount), 'note', ARGV[5]}))
  expires = 0
end
local raw = table.concat({fp, ev, fmt(amount), gid, fmt(repaid), fmt(S.credit - S.debt), fmt(S.credit), fmt(S.debt),
  fmt(now), fmt(expires)}, ' ')
redis.call('HSET', adjs, aid, raw)
if ARGV[7] == '1' then
  redis.call('HSET', KEYS[7], 'fp', fp, 'adjustment', aid)
  redis.call('PEXPIRE', KEYS[7], ARGV[8])
end
return result(raw, '0')
