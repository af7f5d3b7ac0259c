-- luacheck: std +prelude
--
-- trim.lua: removes the oldest events of an account's ledger and moves its
-- checkpoint (the running state right after the last event removed) forward
-- over them, in one step.
--
-- KEYS   1-6 the account's (prelude.lua), 7 the checkpoint (hash, below).
-- ARGV   1 up_to (an event id, or '+': no bound), 2 before_ms, 3 batch (> 0:
--        the most events one call removes).
-- Reply  {'OK', removed, checkpoint_event_id ('' for none), trimmed_total, more}
--      | {'NOACCOUNT'}; more is '1' when the batch was full (call again).
--
-- It removes events oldest first while each has id <= up_to and at < before_ms
-- (its own time field, the caller's clock, as every time here), stopping at the
-- first that has not, and never removes the newest event (the stream's last id
-- stays in it, so the next id follows it and a snapshot's last event is always
-- there). A trim repeated removes nothing more.
--
-- The checkpoint hash: event, at (the latest time of the events trimmed, by their
-- own clocks: HoldOutcome compares it with the time it searches from), events (trimmed in all), credit, debt, granted,
-- usage, consumed, repaid, expired, adjusted_out, paid, grants (grant events
-- counted), tier (the last tier_change's tier_to, '' for none), pending_repay and
-- pending_grant (a grant event's repaid debt whose debt_repaid is not trimmed
-- yet), and "g:<grant id>" = "credit lost payment_ref" for each grant a payment
-- credited that is still live (billing.Checkpoint). The replay below is the
-- audit's (billing/audit.go), on the figures only: the events it removes are
-- not checked again, the checkpoint's conservation is (by every audit).

local upto, before, batch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cpk = KEYS[7]
if redis.call('HEXISTS', acct, 'tier') == 0 then return {'NOACCOUNT'} end
if upto == '' then upto = '+' end

-- reads: the checkpoint, the newest event, the candidates
local NUMS = {'events', 'credit', 'debt', 'granted', 'usage', 'consumed', 'repaid', 'expired', 'adjusted_out', 'paid',
  'grants', 'pending_repay'}
local C, G = {event = '', at = '', tier = '', pending_grant = ''}, {}
local raw = redis.call('HGETALL', cpk)
for i = 1, #raw, 2 do
  local k, v = raw[i], raw[i + 1]
  local gid = string.match(k, '^g:(.+)$')
  if gid then
    local credit, lost, ref = string.match(v, '^(%S+) (%S+) (.+)$')
    G[gid] = {tonumber(credit), tonumber(lost), ref}
  else
    C[k] = v
  end
end
for _, f in ipairs(NUMS) do C[f] = tonumber(C[f] or '') or 0 end
local function reply(removed, more)
  return {'OK', fmt(removed), C.event, fmt(C.events), more and '1' or '0'}
end
local newest = redis.call('XREVRANGE', ledger, '+', '-', 'COUNT', 1)
if #newest == 0 then return reply(0, false) end
local keep = newest[1][1]
local evs = redis.call('XRANGE', ledger, '-', upto, 'COUNT', batch)

-- replay the events to remove onto the checkpoint's figures
local function grant_event(f, a, paid)
  local repay = C.debt - (tonumber(f.debt_after) or 0)
  C.granted = C.granted + a
  C.grants = C.grants + 1
  C.repaid = C.repaid + repay
  if paid then C.paid = C.paid + a end
  C.pending_repay, C.pending_grant = repay, ''
  if repay > 0 then C.pending_grant = f.grant_id or '' end
  if f.payment_ref and f.grant_id and a - repay > 0 then G[f.grant_id] = {a - repay, 0, f.payment_ref} end
end
local ids, stopped = {}, false
for _, e in ipairs(evs) do
  local f = {}
  for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
  local at = tonumber(f.at or '')
  if e[1] == keep or not at or at >= before then stopped = true; break end
  local t, a = f.type, tonumber(f.amount or '') or 0
  if t == 'topup' or t == 'auto_recharge' then
    grant_event(f, a, t == 'auto_recharge' or f.source == 'purchase')
  elseif t == 'adjustment' and a > 0 then
    grant_event(f, a, false)
  elseif t == 'adjustment' then
    C.adjusted_out = C.adjusted_out - a
    if f.payment_ref and f.grant_id and G[f.grant_id] then G[f.grant_id][2] = G[f.grant_id][2] - a end
  elseif t == 'usage' then
    C.usage = C.usage + a
    C.consumed = C.consumed + (tonumber(f.from_credit or '') or 0)
  elseif t == 'expire' then
    C.expired = C.expired + a
    if f.grant_id and G[f.grant_id] then G[f.grant_id][2] = G[f.grant_id][2] + a end
  elseif t == 'debt_repaid' then
    C.pending_repay, C.pending_grant = 0, ''
  elseif t == 'tier_change' then
    C.tier = f.tier_to or ''
  end
  C.credit, C.debt = tonumber(f.credit_after or '') or 0, tonumber(f.debt_after or '') or 0
  C.event = e[1]
  if at > (tonumber(C.at) or 0) then C.at = f.at end
  ids[#ids + 1] = e[1]
end
if #ids == 0 then return reply(0, false) end
C.events = C.events + #ids
-- grants no longer live keep no entry: a take-back can take nothing from them
local drop, put = {}, {}
for gid, g in pairs(G) do
  if redis.call('ZSCORE', live, gid) then
    put[#put + 1] = 'g:' .. gid; put[#put + 1] = table.concat({fmt(g[1]), fmt(g[2]), g[3]}, ' ')
  else
    drop[#drop + 1] = 'g:' .. gid
  end
end

-- writes
redis.call('XDEL', ledger, unpack(ids))
local args = {'event', C.event, 'at', C.at, 'tier', C.tier, 'pending_grant', C.pending_grant}
for _, f in ipairs(NUMS) do args[#args + 1] = f; args[#args + 1] = fmt(C[f]) end
for _, v in ipairs(put) do args[#args + 1] = v end
redis.call('HSET', cpk, unpack(args))
if #drop > 0 then redis.call('HDEL', cpk, unpack(drop)) end
return reply(#ids, not stopped and #evs == batch)
