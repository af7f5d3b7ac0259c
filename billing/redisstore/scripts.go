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
//     that fails halfway. The one exception is sweep(), which runs first but is a
//     complete transition on its own (it saves the state it changed).
//   - Each script is idempotent by its hold id or grant id, because go-redis resends a
//     script whose reply was lost. A replay returns the original result and changes
//     nothing.
//   - Times are Unix milliseconds passed in ARGV (the caller's clock, injectable in
//     tests). Event ids are stream ids assigned by Redis ('*'), so the ledger order is
//     the order of commits even when callers' clocks disagree.

// prelude is shared by the ledger scripts: account state load/save, grant records,
// ledger events and the sweep of expired holds and grants.
const prelude = `
local acct, grants, live, holds, holdamt, ledger = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local function fmt(x) return string.format('%d', x) end
local S = {}
local FIELDS = {'credit', 'debt', 'reserved', 'granted', 'usage', 'consumed', 'repaid', 'expired'}

-- load reads the account's counters into S; false when the account does not exist.
local function load()
  local v = redis.call('HMGET', acct, 'tier', 'depleted', unpack(FIELDS))
  if not v[1] then return false end
  S.tier, S.depleted = v[1], v[2] or ''
  for i, f in ipairs(FIELDS) do S[f] = tonumber(v[i + 2]) or 0 end
  return true
end

local function save()
  local args = {'depleted', S.depleted}
  for _, f in ipairs(FIELDS) do args[#args + 1] = f; args[#args + 1] = fmt(S[f]) end
  redis.call('HSET', acct, unpack(args))
end

-- A grant record: "amount remaining granted_ms expires_ms source event_id repaid balance_after".
local function grant_get(s)
  local a, r, g, e, src, ev, rep, bal = string.match(s, '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  return {amount = tonumber(a), remaining = tonumber(r), granted = g, expires = e, source = src,
          event = ev, repaid = rep, balance = bal}
end
local function grant_put(id, g)
  redis.call('HSET', grants, id, table.concat({fmt(g.amount), fmt(g.remaining), g.granted, g.expires,
    g.source, g.event, g.repaid, g.balance}, ' '))
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

-- sweep drops expired holds from reserved and forfeits the remaining credit of
-- expired grants (one expire event each). At most 1000 of each per call keeps a
-- script's run time bounded; the rest go on the next call.
local function sweep(now)
  local changed = false
  local hs = redis.call('ZRANGEBYSCORE', holds, '-inf', now, 'LIMIT', 0, 1000)
  if #hs > 0 then
    local amts = redis.call('HMGET', holdamt, unpack(hs))
    for i = 1, #hs do S.reserved = S.reserved - (tonumber(amts[i]) or 0) end
    redis.call('ZREM', holds, unpack(hs))
    redis.call('HDEL', holdamt, unpack(hs))
    changed = true
  end
  local gs = redis.call('ZRANGEBYSCORE', live, '-inf', now, 'LIMIT', 0, 1000)
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
    changed = true
  end
  if changed then save() end
end
`

// createAccount: KEYS[1] acct. ARGV: id, tier, now_ms.
// Returns "OK" or "EXISTS".
var createAccountScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 'EXISTS' end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'tier', ARGV[2], 'created_at', ARGV[3], 'depleted', '',
  'credit', '0', 'debt', '0', 'reserved', '0', 'granted', '0', 'usage', '0', 'consumed', '0',
  'repaid', '0', 'expired', '0')
return 'OK'
`)

// setFields: KEYS[1] acct. ARGV: field, value, ... Returns 1, or 0 when the account
// does not exist. Only for settings (tier, auto-recharge), never for counters.
var setFieldsScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`)

// state: ARGV now_ms. Sweeps, then returns {HGETALL acct, HGETALL grants}, or
// {'NOACCOUNT'}.
var stateScript = redis.NewScript(prelude + `
local now = ARGV[1]
if not load() then return {'NOACCOUNT'} end
sweep(now)
return {redis.call('HGETALL', acct), redis.call('HGETALL', grants)}
`)

// reserve: KEYS[7] the hold record. ARGV: now_ms, hold_id, estimate, minimum, grace,
// hold_ttl_ms, record_ttl_ms.
// Admits iff available > 0 and estimate <= available + grace; when not, and
// 0 < minimum < estimate <= ..., holds everything affordable (available + grace) if
// that covers minimum. Returns {'OK', held, available_after, expires_ms} |
// {'DENY', reason, available} | {'DONE', state} (the hold id was already settled or
// released) | {'NOACCOUNT'}. A retried reserve of a live hold returns it again.
var reserveScript = redis.NewScript(prelude + `
local now, hid = tonumber(ARGV[1]), ARGV[2]
if not load() then return {'NOACCOUNT'} end
local rec = redis.call('HMGET', KEYS[7], 'state', 'held', 'exp')
sweep(now)
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
S.reserved = S.reserved + held
redis.call('ZADD', holds, exp, hid)
redis.call('HSET', holdamt, hid, fmt(held))
redis.call('HSET', KEYS[7], 'state', 'held', 'held', fmt(held), 'exp', fmt(exp))
redis.call('PEXPIRE', KEYS[7], ARGV[7])
redis.call('HSET', acct, 'reserved', fmt(S.reserved))
return {'OK', fmt(held), fmt(avail - held), fmt(exp)}
`)

// settle: KEYS[7] the hold record. ARGV: now_ms, hold_id, cost, record_ttl_ms, then
// field/value pairs describing the usage (request_id, model, tokens…).
// Releases the hold (if still live), consumes cost from live grants earliest expiry
// first, and books the rest as debt. A hold that already expired is still charged:
// the request was served. Returns {'OK', event_id, from_credit, to_debt, balance} |
// {'REPLAY', state, event_id, cost, from_credit, to_debt, balance} | {'NOACCOUNT'}.
var settleScript = redis.NewScript(prelude + `
local now, hid, cost = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local rec = redis.call('HMGET', KEYS[7], 'state', 'event', 'cost', 'from_credit', 'to_debt', 'balance')
if rec[1] == 'settled' or rec[1] == 'released' then
  return {'REPLAY', rec[1], rec[2], rec[3], rec[4], rec[5], rec[6]}
end
if not load() then return {'NOACCOUNT'} end
sweep(now)
local held = tonumber(redis.call('HGET', holdamt, hid) or '0')
-- plan the consumption (reads only)
local left, plan, start = cost, {}, 0
while left > 0 do
  local ids = redis.call('ZRANGE', live, start, start + 15)
  if #ids == 0 then break end
  local raws = redis.call('HMGET', grants, unpack(ids))
  for i, gid in ipairs(ids) do
    local g = grant_get(raws[i])
    local take = math.min(g.remaining, left)
    g.remaining = g.remaining - take
    left = left - take
    plan[#plan + 1] = {gid, g}
    if left == 0 then break end
  end
  start = start + 16
end
local from_credit, to_debt = cost - left, left
-- writes
if held > 0 then
  redis.call('HDEL', holdamt, hid)
  redis.call('ZREM', holds, hid)
  S.reserved = S.reserved - held
end
for _, p in ipairs(plan) do
  grant_put(p[1], p[2])
  if p[2].remaining == 0 then redis.call('ZREM', live, p[1]) end
end
S.credit = S.credit - from_credit
S.debt = S.debt + to_debt
S.usage = S.usage + cost
S.consumed = S.consumed + from_credit
if cost > 0 and S.credit == 0 then S.depleted = 'usage' end
save()
local fields = {'type', 'usage', 'amount', fmt(cost), 'hold_id', hid, 'cost', fmt(cost),
  'from_credit', fmt(from_credit), 'to_debt', fmt(to_debt)}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = event(now, fields)
local bal = fmt(S.credit - S.debt)
redis.call('HSET', KEYS[7], 'state', 'settled', 'event', id, 'cost', fmt(cost),
  'from_credit', fmt(from_credit), 'to_debt', fmt(to_debt), 'balance', bal)
redis.call('PEXPIRE', KEYS[7], ARGV[4])
return {'OK', id, fmt(from_credit), fmt(to_debt), bal}
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
// skip_limits ("1"/"0"), fingerprint ("" = no Idempotency-Key), idem_ttl_ms.
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
  local g = grant_get(raw)
  return {'OK', id, fmt(g.amount), fmt(g.remaining), g.granted, g.expires, g.source, g.event, g.repaid, g.balance, replayed}
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
if existing then return result(gid, existing, '1') end
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
S.credit = credit_after
S.debt = S.debt - repaid
S.granted = S.granted + amount
S.repaid = S.repaid + repaid
if S.credit > 0 then S.depleted = '' end
save()
-- the top-up event shows the balance after the whole top-up (debt repaid included)
local id = event(now, {'type', ARGV[6], 'amount', fmt(amount), 'grant_id', gid, 'source', ARGV[5]})
if repaid > 0 then
  event(now, {'type', 'debt_repaid', 'amount', fmt(repaid), 'grant_id', gid})
end
local g = {amount = amount, remaining = amount - repaid, granted = ARGV[1], expires = ARGV[4],
  source = ARGV[5], event = id, repaid = fmt(repaid), balance = fmt(S.credit - S.debt)}
grant_put(gid, g)
if g.remaining > 0 then redis.call('ZADD', live, expires, gid) end
if fp ~= '' then
  redis.call('HSET', KEYS[7], 'fp', fp, 'grant', gid)
  redis.call('PEXPIRE', KEYS[7], ARGV[13])
end
return result(gid, redis.call('HGET', grants, gid), '0')
`)
