-- luacheck: std +prelude
--
-- reserve.lua: admits a request by holding its estimated cost.
--
-- KEYS   1-6 the account's (prelude.lua), 7 the hold record.
-- ARGV   1 now_ms, 2 hold_id, 3 estimate, 4 minimum, 5 grace (micros, each in
--        [0, money.MaxAmount]), 6 hold_ttl_ms, 7 record_ttl_ms (both > 0), 8…
--        field/value pairs describing the request (request_id, key_id, model,
--        endpoint), kept in the hold record for its hold_expired event.
-- Reply  {'OK', held, available_after, expires_ms}
--      | {'DENY', reason ('empty' | 'expired' | 'insufficient'), available}
--      | {'DONE', state} (the hold id was already settled, released or expired)
--      | {'NOACCOUNT'}.
--
-- Admits iff available > 0 and estimate <= available + grace; when not, and
-- 0 < minimum < estimate, holds everything affordable (available + grace) if that
-- covers minimum. A retried reserve of a live hold returns it again.
--
-- Two fields of the account let reserve skip the sweeps when nothing can have
-- expired: h_next, a lower bound on the expiry (ms) of every hold in holds, and
-- g_next, "<granted> <bound>": a lower bound on the expiry of every grant in live
-- ('-': none), valid only while the account's granted total is still <granted>.
-- Only reserve adds holds, and it lowers h_next to cover each; any new grant, from
-- any script of any version, raises granted and so invalidates g_next; removals
-- (sweeps, settles) keep a lower bound a lower bound. A missing or passed bound
-- means: sweep, then read the earliest expiry left.

local RESERVE_FIELDS = {'tier', 'depleted', 'credit', 'debt', 'reserved', 'granted', 'h_next', 'g_next'}
local now, hid = tonumber(ARGV[1]), ARGV[2]
local x = load(RESERVE_FIELDS, 4)
if not x then return {'NOACCOUNT'} end
local h_next, g_next = x[7], x[8]
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
-- Read after the sweep, which may just have expired this very hold (a retry).
local rec = redis.call('HMGET', KEYS[7], 'state', 'held', 'exp')
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
redis.call('HSET', KEYS[7], 'state', 'held', 'held', sheld, 'exp', sexp, unpack(ARGV, 8))
redis.call('PEXPIRE', KEYS[7], ARGV[7])
local bounds = {}
if not hb or exp < hb then hb = exp end
local sh, sg = fmt(hb), fmt(S.granted) .. ' ' .. gb
if sh ~= h_next then bounds[#bounds + 1] = 'h_next'; bounds[#bounds + 1] = sh end
if sg ~= g_next then bounds[#bounds + 1] = 'g_next'; bounds[#bounds + 1] = sg end
save(unpack(bounds))
return {'OK', sheld, fmt(avail - held), sexp}
