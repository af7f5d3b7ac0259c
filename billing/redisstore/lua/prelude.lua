-- prelude.lua: shared by the ledger scripts, joined before each of them at init
-- (a script whose first line is "-- luacheck: std +prelude"). Account state load
-- and save, grant records, ledger events, the sweep of expired holds and grants,
-- credits, notices and auto-recharge. Top-level names only: running it changes
-- nothing.
--
-- Conventions of the ledger scripts (docs/ARCHITECTURE.md has the key layout):
--   - Each runs atomically on the one Redis node that owns the account's hash tag,
--     so every key it touches shares the tag `{acct:<id>}` and is passed in KEYS,
--     but for one exception: the sweep of expired holds reads and marks the
--     records of the holds it ends, whose ids it only learns from the holds zset.
--     It names them as the Go side does (hold_key: KEYS[1] with its last
--     component replaced), so they share the tag and the slot.
--   - KEYS[1..6] are always acct, grants, live, holds, holdamt, ledger; KEYS[7..]
--     are the script's own (a hold record, an Idempotency-Key record…), if any.
--   - Amounts are integer micro-USD carried as decimal strings. Lua numbers are
--     doubles: exact up to 2^53 (≈ 9.0e15 micros, $9 billion). Every input amount
--     is at most money.MaxAmount (1e15: the Store's methods and config check it)
--     and an account's lifetime totals must stay below 2^53; numbers are written
--     with fmt (string.format('%d', x)), never tostring (which keeps only 14
--     significant digits). The Go side rejects a reply amount beyond ±2^53.
--   - Reads and checks come first and writes last: Redis does not roll back a
--     script that fails halfway. The one exception is the sweep of expired holds
--     and grants, which runs first but is a complete transition on its own (the
--     state it changed is saved before the script goes on).
--   - The request path (reserve, settle) is kept to as few redis.call()s as it
--     can: one HMGET reads every account field a script needs, save() writes only
--     the fields that changed, in one HSET, and sweeps run only when something may
--     have expired (see reserve.lua and settle.lua).
--   - Each script is idempotent by its hold id, grant id or adjustment id, because
--     go-redis resends a script whose reply was lost. A replay returns the
--     original result and changes nothing.
--   - Times are Unix milliseconds passed in ARGV (the caller's clock, injectable
--     in tests). Event ids are stream ids assigned by Redis ('*'), so the ledger
--     order is the order of commits even when callers' clocks disagree.
--   - Replies are arrays of strings, the first a status ('OK', 'NOACCOUNT'…); the
--     Go side decodes them strictly (a malformed reply is an error naming the
--     script), so a reply's shape changes with its Go decoder.

local acct, grants, live, holds, holdamt, ledger = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
-- string.format as an upvalue: fmt runs dozens of times per settle, and two
-- global lookups are about a third of its cost.
local format = string.format
local function fmt(x) return format('%d', x) end
local S, S0 = {}, {}
-- hx_total counts the holds that ever expired unsettled (each has its hold_expired
-- event); sweep.lua reports the ones not yet reported (hx_reported) for a metric.
local COUNTERS = {'credit', 'debt', 'reserved', 'granted', 'usage', 'consumed', 'repaid', 'expired', 'adjusted_out',
  'hx_total'}
local ALL = {'tier', 'depleted', 'credit', 'debt', 'reserved', 'granted', 'usage', 'consumed', 'repaid', 'expired'}

-- load reads the account in one HMGET of fields: 'tier' (to know the account
-- exists), 'depleted', then n counters, then any other fields (default: ALL, 8).
-- The depleted flag and the counters go into S, and are remembered in S0 so that
-- save writes only what changed; a counter the script did not read stays nil in S
-- until need() reads it. Returns the HMGET reply (other fields by position), or
-- false when the account does not exist.
local function load(fields, n)
  fields, n = fields or ALL, n or 8
  local v = redis.call('HMGET', acct, unpack(fields))
  if not v[1] then return false end
  S.tier, S.depleted = v[1], v[2] or ''
  S0.depleted = S.depleted
  for i = 3, n + 2 do
    local x = tonumber(v[i]) or 0
    S[fields[i]], S0[fields[i]] = x, x
  end
  return v
end

-- need reads a counter that load did not.
local function need(f)
  if S[f] == nil then
    local x = tonumber(redis.call('HGET', acct, f) or '') or 0
    S[f], S0[f] = x, x
  end
end

-- save writes the counters that changed since load (or the last save), with the
-- extra field/value pairs given, in one HSET; nothing when nothing changed.
local function save(...)
  local args = {...}
  if S.depleted ~= S0.depleted then
    args[#args + 1] = 'depleted'; args[#args + 1] = S.depleted
    S0.depleted = S.depleted
  end
  for _, f in ipairs(COUNTERS) do
    if S[f] ~= S0[f] then
      args[#args + 1] = f; args[#args + 1] = fmt(S[f])
      S0[f] = S[f]
    end
  end
  if #args > 0 then redis.call('HSET', acct, unpack(args)) end
end

-- A grant record: "amount remaining granted_ms expires_ms source event_id repaid balance_after".
local function grant_get(s)
  local a, r, g, e, src, ev, rep, bal = string.match(s, '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  return {amount = tonumber(a), remaining = tonumber(r), granted = g, expires = e, source = src,
          event = ev, repaid = rep, balance = bal}
end
-- grant_reply answers for a credited grant as its credit did: remaining is what
-- the grant held right after it (amount - repaid), whatever was spent since, so a
-- replay (a retried top-up or recharge) gives the first answer again.
local function grant_reply(status, id, raw)
  local g = grant_get(raw)
  return {status, id, fmt(g.amount), fmt(g.amount - (tonumber(g.repaid) or 0)), g.granted, g.expires, g.source, g.event,
    g.repaid, g.balance}
end
local function grant_put(id, g)
  redis.call('HSET', grants, id, format('%d %d %s %s %s %s %s %s', g.amount, g.remaining, g.granted, g.expires,
    g.source, g.event, g.repaid, g.balance))
end

-- plan_take plans taking up to left from the live grants, earliest expiry first
-- (reads only). batch is the first ids already read WITHSCORES, or nil. Returns
-- plan[i] = {grant id, amount, remaining after, rest of its record} and what the
-- grants could not cover.
local function plan_take(left, batch)
  local plan, start = {}, 0
  batch = batch or redis.call('ZRANGE', live, 0, 15, 'WITHSCORES')
  while left > 0 do
    local ids = {}
    for i = 1, #batch, 2 do ids[#ids + 1] = batch[i] end
    if #ids == 0 then break end
    local raws = redis.call('HMGET', grants, unpack(ids))
    for i, gid in ipairs(ids) do
      local amount, remaining, rest = string.match(raws[i], '^(%S+) (%S+)( .*)$')
      local r = tonumber(remaining)
      local take = math.min(r, left)
      left = left - take
      plan[#plan + 1] = {gid, amount, r - take, rest}
      if left == 0 then break end
    end
    if left == 0 then break end
    start = start + #ids
    batch = redis.call('ZRANGE', live, start, start + 15, 'WITHSCORES')
  end
  return plan, left
end

-- take_planned writes a plan_take plan: each grant's new remaining, and spent
-- grants out of live.
local function take_planned(plan)
  for _, p in ipairs(plan) do
    redis.call('HSET', grants, p[1], p[2] .. ' ' .. fmt(p[3]) .. p[4])
    if p[3] == 0 then redis.call('ZREM', live, p[1]) end
  end
end

-- event appends a ledger event with the balances as they are in S now.
local function event(now, fields)
  local args = {'at', now}
  for _, v in ipairs(fields) do args[#args + 1] = v end
  args[#args + 1] = 'balance_after'; args[#args + 1] = fmt(S.credit - S.debt)
  args[#args + 1] = 'credit_after'; args[#args + 1] = fmt(S.credit)
  args[#args + 1] = 'debt_after'; args[#args + 1] = fmt(S.debt)
  return redis.call('XADD', ledger, '*', unpack(args))
end

-- hold_key is the record of hold hid: "<prefix>{acct:<id>}:hold:<hid>", as
-- Store.holdKeys names it. acct ends in ":acct".
local function hold_key(hid) return string.sub(acct, 1, -5) .. 'hold:' .. hid end

-- Key usage: the hash kuse ("<prefix>{acct:<id>}:kuse", named from acct as
-- hold_key names a hold's record, so it shares the tag and the slot) keeps, per
-- key id, "reserved total day_start day week_start week month_start month": the
-- holds of the key that count against its limit, what it spent in all and in
-- the calendar periods (UTC, starts in ms) that the starts name. And per hold of
-- a key with a limit, field "h:<hold id>" -> the key id: reserve writes it with
-- the hold, and settle, release and the sweep of expired holds take the hold's
-- amount back out of that key's reserved when the hold ends.
local kuse = string.sub(acct, 1, -5) .. 'kuse'
-- ku_get and ku_str run on every settle of a key: one match and one format,
-- not eight of each (a Lua call costs about as much as the work it does).
local KU_PATTERN = '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)'
local function ku_get(raw)
  if not raw then return {0, 0, 0, 0, 0, 0, 0, 0} end
  local a, b, c, d, e, f, g, h = string.match(raw, KU_PATTERN)
  return {tonumber(a) or 0, tonumber(b) or 0, tonumber(c) or 0, tonumber(d) or 0, tonumber(e) or 0,
    tonumber(f) or 0, tonumber(g) or 0, tonumber(h) or 0}
end
local function ku_str(k)
  return format('%d %d %d %d %d %d %d %d', k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8])
end
-- ku_roll starts the periods of k that the starts day, week, month (ms) say
-- have begun: a start later than the kept one resets its amount; an earlier one
-- (a caller whose clock is behind) keeps the later period, so periods only move
-- forward.
local function ku_roll(k, day, week, month)
  local starts = {day, week, month}
  for i = 1, 3 do
    local j = 1 + 2 * i
    if starts[i] > k[j] then k[j] = starts[i]; k[j + 1] = 0 end
  end
end
-- ku_spent is what k spent in the period of a limit that resets reset.
local function ku_spent(k, reset)
  if reset == 'daily' then return k[4] end
  if reset == 'weekly' then return k[6] end
  if reset == 'monthly' then return k[8] end
  return k[2]
end
-- ku_unhold takes the amounts amts[i] of ended holds hs[i] out of their keys'
-- reserved (holds of keys without a limit have no "h:" field) and drops their
-- "h:" fields.
local function ku_unhold(hs, amts)
  local fs = {}
  for i, hid in ipairs(hs) do fs[i] = 'h:' .. hid end
  local kids = redis.call('HMGET', kuse, unpack(fs))
  local per, order, gone = {}, {}, {}
  for i, kid in ipairs(kids) do
    if kid then
      if not per[kid] then per[kid] = 0; order[#order + 1] = kid end
      per[kid] = per[kid] + (tonumber(amts[i]) or 0)
      gone[#gone + 1] = fs[i]
    end
  end
  if #gone == 0 then return end
  local raws = redis.call('HMGET', kuse, unpack(order))
  local args = {}
  for i, kid in ipairs(order) do
    local k = ku_get(raws[i])
    k[1] = math.max(0, k[1] - per[kid])
    args[#args + 1] = kid; args[#args + 1] = ku_str(k)
  end
  redis.call('HSET', kuse, unpack(args))
  redis.call('HDEL', kuse, unpack(gone))
end

-- The fields of a hold record that describe its request (reserve.lua writes them).
local HOLD_INFO = {'request_id', 'key_id', 'model', 'endpoint'}

-- sweep_holds ends the holds that expired unsettled: each leaves reserved and
-- gets one hold_expired event (its held amount and, from its record, the request
-- id, key id, model and endpoint; the balance does not change), and its record
-- says 'expired', which a late settle still charges (a usage event follows) and a
-- late release answers as done (nothing more is booked). A hold leaves the holds
-- zset when it ends, by settle, release or here, so each gets its event once.
-- keep, the calling script's own hold (or nil), is left for the script to end.
-- sweep_grants forfeits the remaining credit of expired grants (one expire event
-- each). At most 1000 of each per call keeps a script's run time bounded; the
-- rest go on the next call. Each returns whether it changed S; the caller saves.
local function sweep_holds(now, keep)
  local hs = redis.call('ZRANGEBYSCORE', holds, '-inf', now, 'LIMIT', 0, 1000)
  if #hs == 0 or (#hs == 1 and hs[1] == keep) then return false end
  local amts = redis.call('HMGET', holdamt, unpack(hs))
  local ended = {}
  for i, hid in ipairs(hs) do
    if hid ~= keep then
      local held = tonumber(amts[i]) or 0
      S.reserved = S.reserved - held
      local rk = hold_key(hid)
      local rec = redis.call('HMGET', rk, 'state', unpack(HOLD_INFO))
      local fields = {'type', 'hold_expired', 'amount', fmt(held), 'hold_id', hid}
      for j, f in ipairs(HOLD_INFO) do
        if rec[j + 1] then fields[#fields + 1] = f; fields[#fields + 1] = rec[j + 1] end
      end
      local id = event(now, fields)
      if rec[1] == 'held' then
        redis.call('HSET', rk, 'state', 'expired', 'event', id, 'balance', fmt(S.credit - S.debt))
      end
      ended[#ended + 1] = hid
    end
  end
  local eamts = {}
  for i, hid in ipairs(hs) do if hid ~= keep then eamts[#eamts + 1] = amts[i] end end
  ku_unhold(ended, eamts)
  redis.call('ZREM', holds, unpack(ended))
  redis.call('HDEL', holdamt, unpack(ended))
  need('hx_total')
  S.hx_total = S.hx_total + #ended
  return true
end

local function sweep_grants(now)
  local gs = redis.call('ZRANGEBYSCORE', live, '-inf', now, 'LIMIT', 0, 1000)
  if #gs > 0 then need('expired') end
  for _, gid in ipairs(gs) do
    local raw = redis.call('HGET', grants, gid)
    if raw then
      local g = grant_get(raw)
      if g.remaining > 0 then
        local lost = g.remaining
        g.remaining = 0
        grant_put(gid, g)
        S.credit = S.credit - lost
        S.expired = S.expired + lost
        if S.credit == 0 then S.depleted = 'expired' end
        event(now, {'type', 'expire', 'amount', fmt(lost), 'grant_id', gid})
      end
    end
    redis.call('ZREM', live, gid)
  end
  return #gs > 0
end

-- sweep runs both sweeps and saves what they changed: a complete transition on
-- its own, so a script may run it before its own reads and checks. keep: see
-- sweep_holds.
local function sweep(now, keep)
  local h = sweep_holds(now, keep)
  if sweep_grants(now) or h then save() end
end

-- credit_grant credits a new grant, paying debt first, and records it (one
-- topup/auto_recharge/adjustment event, with the field/value pairs of extra if
-- given, then a debt_repaid event when debt was repaid). The caller has loaded S
-- and checked everything. Returns the grant record.
local function credit_grant(now, gid, amount, expires, source, evtype, extra)
  local repaid = math.min(S.debt, amount)
  S.credit = S.credit + amount - repaid
  S.debt = S.debt - repaid
  S.granted = S.granted + amount
  S.repaid = S.repaid + repaid
  if S.credit > 0 then S.depleted = '' end
  save()
  -- the grant event shows the balance after the whole credit (debt repaid included)
  local fields = {'type', evtype, 'amount', fmt(amount), 'grant_id', gid, 'source', source}
  for _, v in ipairs(extra or {}) do fields[#fields + 1] = v end
  local id = event(now, fields)
  if repaid > 0 then
    event(now, {'type', 'debt_repaid', 'amount', fmt(repaid), 'grant_id', gid})
  end
  local g = {amount = amount, remaining = amount - repaid, granted = fmt(now), expires = fmt(expires),
    source = source, event = id, repaid = fmt(repaid), balance = fmt(S.credit - S.debt)}
  grant_put(gid, g)
  if g.remaining > 0 then redis.call('ZADD', live, expires, gid) end
  -- Re-arm the crossing detectors: n_hi is the highest balance since the last
  -- notice check, and a skipped recharge is recorded again only after the balance
  -- was back at the auto-recharge threshold.
  local bal = S.credit - S.debt
  local v = redis.call('HMGET', acct, 'n_hi', 'ar_threshold')
  local hi = tonumber(v[1] or '')
  if not hi or bal > hi then redis.call('HSET', acct, 'n_hi', fmt(bal)) end
  if bal >= (tonumber(v[2] or '') or 0) then redis.call('HSET', acct, 'rc_skip', '') end
  return g
end

-- usd formats micros as dollars for notes, as money.Micros.String does (six
-- decimals: 12.500000, -0.000001), exact for |x| < 2^53; codec_test.go checks
-- that the two agree. It stays in Lua because the note is stored in the event and
-- read back as it is (by every version, and the admin API).
local function usd(x)
  local sign = ''
  if x < 0 then sign, x = '-', -x end
  return string.format('%s%d.%06d', sign, math.floor(x / 1000000), x % 1000000)
end

-- notice_put queues a notice in the outbox hash: notice id -> "type at balance
-- attempts lease threshold ref amount expires reason" (ref: a grant or recharge id
-- or '-'; reason: free text, last). Ids are unique per account and never reused.
local function notice_put(outbox, now, ntype, threshold, ref, amount, expires, reason)
  local seq = redis.call('HINCRBY', acct, 'n_seq', 1)
  S.id = S.id or redis.call('HGET', acct, 'id') or ''
  local id = 'ntc_' .. S.id .. '_' .. seq
  redis.call('HSET', outbox, id, table.concat({ntype, fmt(now), fmt(S.credit - S.debt), '0', '0',
    fmt(threshold or 0), ref or '-', fmt(amount or 0), fmt(expires or 0), reason or ''}, ' '))
  return id
end

-- crossings queues balance.low (the balance went from >= low to below it) and
-- balance.exhausted (from > 0 to <= 0) in outbox, once per crossing. The "from" is
-- hi, the account's n_hi: the highest balance since the last check (top-ups raise
-- it), so a crossing caused where nobody checks (an expiry swept during a reserve)
-- is still seen once, by the next settle or sweep. before (the balance when the
-- script started) stands in for a missing n_hi. The caller sets n_hi to the
-- balance afterwards. outbox nil queues nothing.
local function crossings(outbox, now, hi, before, low, ids)
  local bal = S.credit - S.debt
  hi = tonumber(hi or '') or before
  if before > hi then hi = before end
  if outbox then
    if low and hi >= low and bal < low then ids[#ids + 1] = notice_put(outbox, now, 'balance.low', low) end
    if hi > 0 and bal <= 0 then ids[#ids + 1] = notice_put(outbox, now, 'balance.exhausted', 0) end
  end
end

-- balance_notices is crossings with its own read and write of n_hi.
local function balance_notices(outbox, now, before, low, ids)
  crossings(outbox, now, redis.call('HGET', acct, 'n_hi'), before, low, ids)
  redis.call('HSET', acct, 'n_hi', fmt(S.credit - S.debt))
end

-- maybe_recharge starts an auto-recharge when the balance is below the account's
-- threshold, auto-recharge is enabled, none is pending and any back-off has
-- passed. One pending recharge at a time is what makes a crossing start one
-- recharge however many settles see it. A recharge that would take the month's
-- auto-recharged total (calendar month, UTC) past the monthly limit is skipped and
-- recorded, once per crossing (rc_skip holds the month of the recorded skip until
-- a credit brings the balance back to the threshold). The recharge record in rcs
-- is "state amount month month_total started_ms". v holds the account's AR_FIELDS
-- when the caller already read them (load), else nil. Returns the id, or nil.
local AR_FIELDS = {'ar_enabled', 'ar_threshold', 'ar_amount', 'ar_monthly_limit', 'rc_id', 'rc_backoff',
  'ar_month', 'ar_month_total', 'rc_skip'}
local function maybe_recharge(rcs, now, month, rid, v)
  v = v or redis.call('HMGET', acct, unpack(AR_FIELDS))
  if v[1] ~= '1' then return nil end
  local threshold, amount, limit = tonumber(v[2] or '') or 0, tonumber(v[3] or '') or 0, tonumber(v[4] or '') or 0
  if amount <= 0 or S.credit - S.debt >= threshold then return nil end
  if (v[5] or '') ~= '' or now < (tonumber(v[6] or '') or 0) then return nil end
  if redis.call('HEXISTS', rcs, rid) == 1 then return nil end
  local total = 0
  if v[7] == month then total = tonumber(v[8] or '') or 0 end
  if total + amount > limit then
    if v[9] ~= month then
      event(now, {'type', 'auto_recharge_skipped', 'amount', fmt(amount), 'note',
        'monthly limit ' .. usd(limit) .. ' reached: ' .. usd(total) .. ' auto-recharged in ' .. month})
      redis.call('HSET', acct, 'rc_skip', month)
    end
    return nil
  end
  redis.call('HSET', rcs, rid, table.concat({'pending', fmt(amount), month, fmt(total), fmt(now)}, ' '))
  redis.call('HSET', acct, 'rc_id', rid, 'rc_lease', '0', 'rc_drives', '0')
  return rid
end

-- count_paid adds a payment of amount (a purchase, an auto-recharge, an
-- operator's top-up of source purchase) to the account's paid_total, and
-- records first_paid_at at the first one: what tier promotion looks at.
local function count_paid(now, amount)
  local v = redis.call('HMGET', acct, 'paid_total', 'first_paid_at')
  local args = {'paid_total', fmt((tonumber(v[1] or '') or 0) + amount)}
  if not v[2] then args[3] = 'first_paid_at'; args[4] = fmt(now) end
  redis.call('HSET', acct, unpack(args))
end

-- promote moves the account up the tier ladder when it qualifies, by the rule of
-- billing.Ladder.Promotion: ladder is "tier paid_micros days_ms ..." lowest
-- first (billing.Policy.Ladder; "" = no ladder). The account's tier must be on
-- it (a tier off it is an operator's own and never left automatically), and
-- tier_pinned unset; the new tier is the highest rung above the current one
-- whose rule is met: paid_total >= paid and (days = 0 or now - first_paid_at >=
-- days). It books one tier_change event (note "promotion") and, with an outbox,
-- one tier.changed notice (ref: the new tier, amount: the paid total, reason:
-- the old tier) whose id goes into ids. Never demotes. The caller has loaded S.
-- Returns the new tier, or nil.
local function promote(now, ladder, outbox, ids)
  if not ladder or ladder == '' then return nil end
  local v = redis.call('HMGET', acct, 'tier', 'tier_pinned', 'paid_total', 'first_paid_at')
  if v[2] == '1' then return nil end
  local paid, first = tonumber(v[3] or '') or 0, tonumber(v[4] or '')
  local rungs, cur, best = {}, nil, nil
  for t, p, d in string.gmatch(ladder, '(%S+) (%S+) (%S+)') do
    rungs[#rungs + 1] = {t, tonumber(p), tonumber(d)}
    if t == v[1] then cur = #rungs end
  end
  if not cur then return nil end
  for i = #rungs, cur + 1, -1 do
    local r = rungs[i]
    if paid >= r[2] and (r[3] == 0 or (first and now - first >= r[3])) then
      best = r[1]
      break
    end
  end
  if not best then return nil end
  redis.call('HSET', acct, 'tier', best)
  S.tier = best
  event(now, {'type', 'tier_change', 'tier_from', v[1], 'tier_to', best, 'note', 'promotion'})
  if outbox then ids[#ids + 1] = notice_put(outbox, now, 'tier.changed', 0, best, paid, 0, v[1]) end
  return best
end
