package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts of the ledger. Each runs atomically on the one Redis node that owns
// the account's hash tag, so every key a script touches is passed in KEYS and shares
// the tag `{acct:<id>}`.
//
// Conventions (see docs/ARCHITECTURE.md for the key layout):
//   - KEYS[1..6] are always acct, grants, live, holds, holdamt, ledger; KEYS[7] is the
//     script's own record key (a hold record or an Idempotency-Key record), if any.
//   - Amounts are integer micro-USD carried as decimal strings. Lua numbers are
//     doubles: exact up to 2^53 (≈ 9.0e15 micros, $9 billion). Every input amount is
//     capped by money.MaxAmount (1e15) and an account's lifetime totals must stay below
//     2^53; numbers are written with string.format('%d', x), never tostring (which
//     keeps only 14 significant digits).
//   - Reads and checks come first and writes last: Redis does not roll back a script
//     that fails halfway. The one exception is the sweep of expired holds and
//     grants, which runs first but is a complete transition on its own (the state
//     it changed is saved before the script goes on).
//   - The request path (reserve, settle) is kept to as few redis.call()s as it can:
//     one HMGET reads every account field a script needs, save() writes only the
//     fields that changed, in one HSET, and sweeps run only when something may have
//     expired (see reserve and settle).
//   - Each script is idempotent by its hold id or grant id, because go-redis resends a
//     script whose reply was lost. A replay returns the original result and changes
//     nothing.
//   - Times are Unix milliseconds passed in ARGV (the caller's clock, injectable in
//     tests). Event ids are stream ids assigned by Redis ('*'), so the ledger order is
//     the order of commits even when callers' clocks disagree.

// prelude is shared by the ledger scripts: account state load/save, grant records,
// ledger events, the sweep of expired holds and grants, credits, notices and
// auto-recharge.
const prelude = `
local acct, grants, live, holds, holdamt, ledger = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local function fmt(x) return string.format('%d', x) end
local S, S0 = {}, {}
local COUNTERS = {'credit', 'debt', 'reserved', 'granted', 'usage', 'consumed', 'repaid', 'expired', 'adjusted_out'}
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
  redis.call('HSET', grants, id, table.concat({fmt(g.amount), fmt(g.remaining), g.granted, g.expires,
    g.source, g.event, g.repaid, g.balance}, ' '))
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

-- sweep_holds drops expired holds from reserved; sweep_grants forfeits the
-- remaining credit of expired grants (one expire event each). At most 1000 of each
-- per call keeps a script's run time bounded; the rest go on the next call. Each
-- returns whether it changed S; the caller saves.
local function sweep_holds(now)
  local hs = redis.call('ZRANGEBYSCORE', holds, '-inf', now, 'LIMIT', 0, 1000)
  if #hs == 0 then return false end
  local amts = redis.call('HMGET', holdamt, unpack(hs))
  for i = 1, #hs do S.reserved = S.reserved - (tonumber(amts[i]) or 0) end
  redis.call('ZREM', holds, unpack(hs))
  redis.call('HDEL', holdamt, unpack(hs))
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
-- its own, so a script may run it before its own reads and checks.
local function sweep(now)
  local h = sweep_holds(now)
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

-- usd formats non-negative micros as dollars for notes: 12.500000.
local function usd(x) return string.format('%d.%06d', math.floor(x / 1000000), x % 1000000) end

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
`

// createAccount: KEYS[1] acct. ARGV: id, tier, now_ms, creation id (unique per
// call). Returns {'OK', created_at_ms} or {'EXISTS'}. The creation id is kept, so a
// resent script (its reply lost) finds its own account and answers OK again.
var createAccountScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  local v = redis.call('HMGET', KEYS[1], 'created_by', 'created_at')
  if v[1] == ARGV[4] then return {'OK', v[2]} end
  return {'EXISTS'}
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'tier', ARGV[2], 'created_at', ARGV[3], 'created_by', ARGV[4],
  'depleted', '', 'credit', '0', 'debt', '0', 'reserved', '0', 'granted', '0', 'usage', '0', 'consumed', '0',
  'repaid', '0', 'expired', '0')
return {'OK', ARGV[3]}
`)

// setFields: KEYS[1] acct. ARGV: field, value, ... Returns 1, or 0 when the account
// does not exist. Only for settings (tier, auto-recharge), never for counters.
var setFieldsScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`)

// state: ARGV now_ms. Sweeps, then returns {HGETALL acct, HGETALL grants,
// last ledger event id, empty for none}, or {'NOACCOUNT'}.
var stateScript = redis.NewScript(prelude + `
local now = ARGV[1]
if not load() then return {'NOACCOUNT'} end
sweep(now)
local last = redis.call('XREVRANGE', ledger, '+', '-', 'COUNT', 1)
local last_id = ''
if #last > 0 then last_id = last[1][1] end
return {redis.call('HGETALL', acct), redis.call('HGETALL', grants), last_id}
`)

// reserve: KEYS[7] the hold record. ARGV: now_ms, hold_id, estimate, minimum, grace,
// hold_ttl_ms, record_ttl_ms.
// Admits iff available > 0 and estimate <= available + grace; when not, and
// 0 < minimum < estimate <= ..., holds everything affordable (available + grace) if
// that covers minimum. Returns {'OK', held, available_after, expires_ms} |
// {'DENY', reason, available} | {'DONE', state} (the hold id was already settled or
// released) | {'NOACCOUNT'}. A retried reserve of a live hold returns it again.
//
// Two fields of the account let reserve skip the sweeps when nothing can have
// expired: h_next, a lower bound on the expiry (ms) of every hold in holds, and
// g_next, "<granted> <bound>": a lower bound on the expiry of every grant in live
// ('-': none), valid only while the account's granted total is still <granted>.
// Only reserve adds holds, and it lowers h_next to cover each; any new grant, from
// any script of any version, raises granted and so invalidates g_next; removals
// (sweeps, settles) keep a lower bound a lower bound. A missing or passed bound
// means: sweep, then read the earliest expiry left.
var reserveScript = redis.NewScript(prelude + `
local RESERVE_FIELDS = {'tier', 'depleted', 'credit', 'debt', 'reserved', 'granted', 'h_next', 'g_next'}
local now, hid = tonumber(ARGV[1]), ARGV[2]
local x = load(RESERVE_FIELDS, 4)
if not x then return {'NOACCOUNT'} end
local h_next, g_next = x[7], x[8]
local rec = redis.call('HMGET', KEYS[7], 'state', 'held', 'exp')
local changed = false
local hb = tonumber(h_next or '')
if not hb or hb <= now then
  changed = sweep_holds(now)
  hb = tonumber(redis.call('ZRANGE', holds, 0, 0, 'WITHSCORES')[2] or '')
end
local gs, gb = string.match(g_next or '', '^(%S+) (%S+)$')
if tonumber(gs or '') ~= S.granted or (gb ~= '-' and tonumber(gb) <= now) then
  if sweep_grants(now) then changed = true end
  local first = redis.call('ZRANGE', live, 0, 0, 'WITHSCORES')
  gb = '-'
  if first[2] then gb = fmt(tonumber(first[2])) end
end
if changed then save() end
if rec[1] then
  if rec[1] ~= 'held' then return {'DONE', rec[1]} end
  return {'OK', rec[2], fmt(S.credit - S.debt - S.reserved), rec[3]}
end
local est, minimum, grace = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local avail = S.credit - S.debt - S.reserved
if avail <= 0 then
  local reason = 'empty'
  if S.credit == 0 and S.depleted == 'expired' then reason = 'expired' end
  return {'DENY', reason, fmt(avail)}
end
local cap = avail + grace
local held
if est <= cap then
  held = est
elseif minimum > 0 and minimum < est and minimum <= cap then
  held = cap
else
  return {'DENY', 'insufficient', fmt(avail)}
end
local exp = now + tonumber(ARGV[6])
local sheld, sexp = fmt(held), fmt(exp)
S.reserved = S.reserved + held
redis.call('ZADD', holds, exp, hid)
redis.call('HSET', holdamt, hid, sheld)
redis.call('HSET', KEYS[7], 'state', 'held', 'held', sheld, 'exp', sexp)
redis.call('PEXPIRE', KEYS[7], ARGV[7])
local bounds = {}
if not hb or exp < hb then hb = exp end
local sh, sg = fmt(hb), fmt(S.granted) .. ' ' .. gb
if sh ~= h_next then bounds[#bounds + 1] = 'h_next'; bounds[#bounds + 1] = sh end
if sg ~= g_next then bounds[#bounds + 1] = 'g_next'; bounds[#bounds + 1] = sg end
save(unpack(bounds))
return {'OK', sheld, fmt(avail - held), sexp}
`)

// settle: KEYS[7] the hold record, KEYS[8] the notice outbox, KEYS[9] the recharge
// records. ARGV: now_ms, hold_id, cost, record_ttl_ms, month ("2006-01", UTC),
// auto_recharge ("1"/"0"), low_balance (micros, "" = none), notices ("1"/"0"),
// then field/value pairs describing the usage (request_id, model, tokens…).
// Releases the hold (if still live), consumes cost from live grants earliest expiry
// first, and books the rest as debt. A hold that already expired is still charged:
// the request was served. Then, in the same transaction, queues the balance notices
// this settle crossed and starts an auto-recharge when one is due (id "rc_<hold
// id>"). Returns {'OK', event_id, from_credit, to_debt, balance, recharge_id,
// notice_ids} | {'REPLAY', state, event_id, cost, from_credit, to_debt, balance,
// recharge_id, notice_ids} | {'NOACCOUNT'}; notice_ids is space-separated.
var settleScript = redis.NewScript(prelude + `
local now, hid, cost = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local rec = redis.call('HMGET', KEYS[7], 'state', 'event', 'cost', 'from_credit', 'to_debt', 'balance', 'rc', 'notices', 'held', 'exp')
if rec[1] == 'settled' or rec[1] == 'released' then
  return {'REPLAY', rec[1], rec[2], rec[3], rec[4], rec[5], rec[6], rec[7] or '', rec[8] or ''}
end
-- One HMGET reads the counters, n_hi and, when auto-recharge may start, its settings.
local ar = ARGV[6] == '1'
local fields = {'tier', 'depleted', 'credit', 'debt', 'reserved', 'usage', 'consumed', 'n_hi'}
if ar then for _, f in ipairs(AR_FIELDS) do fields[#fields + 1] = f end end
local x = load(fields, 5)
if not x then return {'NOACCOUNT'} end
-- Expired credit is forfeited before anything is consumed: the grants in
-- consumption order come with their expiry, and only when the first has passed
-- does the grant sweep run. Expired holds are not swept here: a settle's result
-- does not depend on reserved, and the next reserve or read sweeps them.
local batch = redis.call('ZRANGE', live, 0, 0, 'WITHSCORES')
if #batch > 0 and tonumber(batch[2]) <= now then
  if sweep_grants(now) then save() end
  batch = redis.call('ZRANGE', live, 0, 0, 'WITHSCORES')
end
local before = S.credit - S.debt
-- The hold's amount is in its record (written by reserve); an old hold whose record
-- ran out before its settle is looked up in holdamt.
local held = tonumber(rec[9] or '')
if not held then held = tonumber(redis.call('HGET', holdamt, hid) or '0') end
local plan, left = plan_take(cost, batch)
local from_credit, to_debt = cost - left, left
-- writes
if redis.call('HDEL', holdamt, hid) == 1 then
  -- still live: it leaves reserved (a swept one already left it)
  redis.call('ZREM', holds, hid)
  S.reserved = S.reserved - held
end
take_planned(plan)
S.credit = S.credit - from_credit
S.debt = S.debt + to_debt
S.usage = S.usage + cost
S.consumed = S.consumed + from_credit
if cost > 0 and S.credit == 0 then S.depleted = 'usage' end
local sfc, std, bal = fmt(from_credit), fmt(to_debt), fmt(S.credit - S.debt)
local id = redis.call('XADD', ledger, '*', 'at', ARGV[1], 'type', 'usage', 'amount', ARGV[3], 'hold_id', hid,
  'cost', ARGV[3], 'from_credit', sfc, 'to_debt', std, 'balance_after', bal, 'credit_after', fmt(S.credit),
  'debt_after', fmt(S.debt), unpack(ARGV, 9))
-- what the settle sets off; n_hi (the balance, now checked) is saved with the counters
local notices, outbox = {}, nil
if ARGV[8] == '1' then outbox = KEYS[8] end
crossings(outbox, now, x[8], before, tonumber(ARGV[7]), notices)
save('n_hi', bal)
local rc = ''
if ar then
  local v = {}
  for i = 1, #AR_FIELDS do v[i] = x[i + 8] end
  rc = maybe_recharge(KEYS[9], now, ARGV[5], 'rc_' .. hid, v) or ''
end
local nlist = table.concat(notices, ' ')
local recf = {'state', 'settled', 'event', id, 'cost', ARGV[3], 'from_credit', sfc, 'to_debt', std, 'balance', bal}
if rc ~= '' then recf[#recf + 1] = 'rc'; recf[#recf + 1] = rc end
if nlist ~= '' then recf[#recf + 1] = 'notices'; recf[#recf + 1] = nlist end
redis.call('HSET', KEYS[7], unpack(recf))
-- The record must outlive the settle by the retention (ARGV[4]). Reserve gave it
-- the hold's TTL plus the retention, so it already does unless the hold expired
-- before its settle (or had no record).
if not (now <= (tonumber(rec[10] or '') or 0)) then redis.call('PEXPIRE', KEYS[7], ARGV[4]) end
return {'OK', id, sfc, std, bal, rc, nlist}
`)

// release: KEYS[7] the hold record. ARGV: now_ms, hold_id, record_ttl_ms, then
// field/value pairs (request_id, model…). Frees the hold without charging and records
// a release event. Returns {'OK', event_id, balance} | {'REPLAY', …as settle} |
// {'NOACCOUNT'}.
var releaseScript = redis.NewScript(prelude + `
local now, hid = tonumber(ARGV[1]), ARGV[2]
local rec = redis.call('HMGET', KEYS[7], 'state', 'event', 'cost', 'from_credit', 'to_debt', 'balance')
if rec[1] == 'settled' or rec[1] == 'released' then
  return {'REPLAY', rec[1], rec[2], rec[3], rec[4], rec[5], rec[6]}
end
if not load() then return {'NOACCOUNT'} end
sweep(now)
local held = tonumber(redis.call('HGET', holdamt, hid) or '0')
if held > 0 then
  redis.call('HDEL', holdamt, hid)
  redis.call('ZREM', holds, hid)
  S.reserved = S.reserved - held
  redis.call('HSET', acct, 'reserved', fmt(S.reserved))
end
local fields = {'type', 'release', 'amount', fmt(held), 'hold_id', hid}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = event(now, fields)
local bal = fmt(S.credit - S.debt)
redis.call('HSET', KEYS[7], 'state', 'released', 'event', id, 'cost', '0',
  'from_credit', '0', 'to_debt', '0', 'balance', bal)
redis.call('PEXPIRE', KEYS[7], ARGV[3])
return {'OK', id, bal}
`)

// topUp: KEYS[7] the Idempotency-Key record. ARGV: now_ms, grant_id, amount,
// expires_ms, source, event_type, tier, min_purchase, max_topup, max_balance,
// skip_limits ("1"/"0"), fingerprint ("" = no Idempotency-Key), idem_ttl_ms,
// explicit_expiry ("1": the request set expires_at).
// Credits a grant, paying debt first. Returns
// {'OK', grant_id, amount, remaining, granted_ms, expires_ms, source, event_id,
// repaid, balance, replayed} or an error tuple: {'NOACCOUNT'}, {'CONFLICT'},
// {'TIER', actual_tier}, {'BELOW', min}, {'ABOVE_TOPUP', max},
// {'ABOVE_BALANCE', max, credit_after}, {'PAST_EXPIRY'}.
var topUpScript = redis.NewScript(prelude + `
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
credit_grant(now, gid, amount, expires, ARGV[5], ARGV[6])
if fp ~= '' then
  redis.call('HSET', KEYS[7], 'fp', fp, 'grant', gid)
  redis.call('PEXPIRE', KEYS[7], ARGV[13])
end
return result(gid, redis.call('HGET', grants, gid), '0')
`)

// adjust: KEYS[7] the Idempotency-Key record (shared with top-ups: a key used for
// one cannot be reused for the other), KEYS[8] the adjustment records (hash:
// adjustment id -> "fp event_id amount grant_id repaid balance credit debt at_ms
// expires_ms", kept for good). ARGV: now_ms, adjustment_id, amount (signed, != 0),
// expires_ms (positive only), reason, fingerprint, use_idem ("1"/"0"),
// idem_ttl_ms.
// An operator's correction, outside the purchase limits. Positive: credits a grant
// of source adjustment whose id is the adjustment id, paying debt first (one
// adjustment event, then debt_repaid). Negative: after the sweep, takes -amount
// from live grants earliest expiry first, counted in adjusted_out; refused when it
// exceeds credit - reserved (the holds in flight were admitted against that
// credit). Idempotent by adjustment id: a replay answers from the record and
// changes nothing; the same id with another fingerprint is a conflict. Returns
// {'OK', adjustment_id, amount, event_id, grant_id (empty for none), repaid,
// balance, credit, debt, at_ms, expires_ms, replayed} | {'NOACCOUNT'} |
// {'CONFLICT'} | {'PAST_EXPIRY'} | {'INSUFFICIENT', available, credit, reserved}.
var adjustScript = redis.NewScript(prelude + `
local now, aid, amount, expires = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local fp, adjs = ARGV[6], KEYS[8]
if not load() then return {'NOACCOUNT'} end
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
local gid, repaid, ev = '-', 0, nil
if amount > 0 then
  if expires <= now then return {'PAST_EXPIRY'} end
  gid = aid
  local g = credit_grant(now, gid, amount, expires, 'adjustment', 'adjustment', {'note', ARGV[5]})
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
  ev = event(now, {'type', 'adjustment', 'amount', fmt(amount), 'note', ARGV[5]})
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
`)

// sweepAccount: KEYS[7] the notice outbox, KEYS[8] the recharge records, KEYS[9]
// the set of grants already announced as expiring. ARGV: now_ms, month,
// auto_recharge ("1"/"0"), low_balance ("" = none), notices ("1"/"0"),
// expiring_within_ms ("0" = none), candidate recharge id.
// The periodic sweeper's visit: forfeits expired credit (expire events), queues the
// balance notices crossed since the last check and a credits.expiring notice once
// per grant, and starts an auto-recharge that is due (an account whose credit
// expired gets no settle to start one). Returns {'OK', expired, recharge_id,
// outbox ids…} | {'NOACCOUNT'}.
var sweepScript = redis.NewScript(prelude + `
local now = tonumber(ARGV[1])
if not load() then return {'NOACCOUNT'} end
local before, expired0 = S.credit - S.debt, S.expired
sweep(now)
local notices, outbox = {}, nil
if ARGV[5] == '1' then outbox = KEYS[7] end
balance_notices(outbox, now, before, tonumber(ARGV[4]), notices)
-- forget announced grants that are spent or expired
for _, gid in ipairs(redis.call('SMEMBERS', KEYS[9])) do
  if not redis.call('ZSCORE', live, gid) then redis.call('SREM', KEYS[9], gid) end
end
local within = tonumber(ARGV[6]) or 0
if outbox and within > 0 then
  local gs = redis.call('ZRANGEBYSCORE', live, '(' .. fmt(now), fmt(now + within), 'LIMIT', 0, 100)
  for _, gid in ipairs(gs) do
    if redis.call('SISMEMBER', KEYS[9], gid) == 0 then
      local g = grant_get(redis.call('HGET', grants, gid))
      if g.remaining > 0 then
        notice_put(outbox, now, 'credits.expiring', 0, gid, g.remaining, tonumber(g.expires))
        redis.call('SADD', KEYS[9], gid)
      end
    end
  end
end
local rc = redis.call('HGET', acct, 'rc_id') or ''
if rc == '' and ARGV[3] == '1' then rc = maybe_recharge(KEYS[8], now, ARGV[2], ARGV[7]) or '' end
local out = {'OK', fmt(S.expired - expired0), rc}
for _, id in ipairs(redis.call('HKEYS', KEYS[7])) do out[#out + 1] = id end
return out
`)

// claimRecharge: KEYS[1] acct, KEYS[2] the recharge records. ARGV: recharge_id,
// now_ms, lease_ms. Takes the lease on a pending recharge, so one worker among all
// proxies performs it; a worker that dies loses the lease when it runs out and the
// sweeper's worker takes over with the same id. Returns {'OK', record, drives} |
// {'GONE'} (not pending: done, failed or unknown) | {'BUSY'} (leased).
var claimRechargeScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'rc_id', 'rc_lease', 'rc_drives')
if v[1] ~= ARGV[1] then return {'GONE'} end
local now = tonumber(ARGV[2])
if (tonumber(v[2] or '') or 0) > now then return {'BUSY'} end
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if not rec then return {'GONE'} end
local drives = (tonumber(v[3] or '') or 0) + 1
redis.call('HSET', KEYS[1], 'rc_lease', string.format('%d', now + tonumber(ARGV[3])), 'rc_drives', string.format('%d', drives))
return {'OK', rec, string.format('%d', drives)}
`)

// completeRecharge: KEYS[7] the recharge records. ARGV: now_ms, recharge_id,
// expires_ms. The charger answered 2xx (paid): credits the recharge as a grant of
// source auto_recharge whose id is the recharge id — so a second 2xx for the same
// recharge credits nothing — adds it to its month's auto-recharged total, and
// clears the pending recharge and any back-off. A recharge already recorded as
// failed is still credited: the charger says it was paid. Returns {'OK' | 'REPLAY',
// grant_id, amount, remaining, granted_ms, expires_ms, source, event_id, repaid,
// balance} | {'UNKNOWN'} | {'NOACCOUNT'}.
var completeRechargeScript = redis.NewScript(prelude + `
local now, gid = tonumber(ARGV[1]), ARGV[2]
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
local state, amount, month, total, started = string.match(raw, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
amount = tonumber(amount)
sweep(now)
credit_grant(now, gid, amount, tonumber(ARGV[3]), 'auto_recharge', 'auto_recharge')
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
`)

// failRecharge: KEYS[7] the notice outbox, KEYS[8] the recharge records. ARGV:
// now_ms, recharge_id, reason, backoff_ms, max_backoff_ms, notice ("1"/"0").
// Records the failure (an auto_recharge_failed event), clears the pending recharge
// and sets the back-off before the next may start: backoff × 2^(consecutive
// failures − 1), at most max_backoff. Queues auto_recharge.failed when asked.
// Returns {'OK', notice_id (empty for none), backoff_until_ms} | {'GONE'} | {'NOACCOUNT'}.
// The account's rc_failed holds "recharge_id notice_id backoff_until_ms" of the
// last failure recorded, so a resent script (its reply lost) answers as the first
// did and records nothing twice.
var failRechargeScript = redis.NewScript(prelude + `
local now, rid = tonumber(ARGV[1]), ARGV[2]
if not load() then return {'NOACCOUNT'} end
local v = redis.call('HMGET', acct, 'rc_id', 'rc_fails', 'rc_failed')
if v[1] ~= rid then
  local fid, fnid, funtil = string.match(v[3] or '', '^(%S+) (%S*) (%S+)$')
  if fid == rid then return {'OK', fnid, funtil} end
  return {'GONE'}
end
local raw = redis.call('HGET', KEYS[8], rid)
if not raw then return {'GONE'} end
local state, amount, month, total, started = string.match(raw, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
local fails = (tonumber(v[2] or '') or 0) + 1
local backoff = tonumber(ARGV[4])
for _ = 2, math.min(fails, 40) do backoff = backoff * 2 end
backoff = math.min(backoff, tonumber(ARGV[5]))
sweep(now)
event(now, {'type', 'auto_recharge_failed', 'amount', amount, 'grant_id', rid, 'note', ARGV[3]})
redis.call('HSET', KEYS[8], rid, table.concat({'failed', amount, month, total, started}, ' '))
redis.call('HSET', acct, 'rc_id', '', 'rc_lease', '0', 'rc_fails', fmt(fails), 'rc_backoff', fmt(now + backoff))
local nid = ''
if ARGV[6] == '1' then
  nid = notice_put(KEYS[7], now, 'auto_recharge.failed', 0, rid, tonumber(amount), 0, ARGV[3])
end
redis.call('HSET', acct, 'rc_failed', rid .. ' ' .. nid .. ' ' .. fmt(now + backoff))
return {'OK', nid, fmt(now + backoff)}
`)

// claimNotices: KEYS[1] the notice outbox. ARGV: now_ms, lease_ms, max_attempts,
// then the notice ids to claim (none: every notice in the outbox). Leases each
// claimable notice (not leased by another worker) and counts the attempt; a notice
// past max_attempts is removed instead. Returns triples {'OK' | 'DROP', id,
// record, …}.
var claimNoticesScript = redis.NewScript(`
local now, lease, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then ids = redis.call('HKEYS', KEYS[1]) end
local out = {}
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    local t, at, bal, attempts, until_, rest = string.match(raw, '^(%S+) (%S+) (%S+) (%S+) (%S+) (.*)$')
    if t and tonumber(until_) <= now then
      local n = tonumber(attempts) + 1
      local rec = table.concat({t, at, bal, string.format('%d', n), string.format('%d', now + lease), rest}, ' ')
      if n > max then
        redis.call('HDEL', KEYS[1], id)
        out[#out + 1] = 'DROP'
      else
        redis.call('HSET', KEYS[1], id, rec)
        out[#out + 1] = 'OK'
      end
      out[#out + 1] = id
      out[#out + 1] = rec
    end
  end
end
return out
`)
