-- luacheck: std +prelude
--
-- reserve.lua: admits a request by holding its estimated cost.
--
-- KEYS   1-6 the account's (prelude.lua), 7 the hold record.
-- ARGV   1 now_ms, 2 hold_id, 3 estimate, 4 minimum, 5 grace (micros, each in
--        [0, money.MaxAmount]), 6 hold_ttl_ms, 7 record_ttl_ms (both > 0),
--        8 key_id ('' = none), 9 key_limit (micros, [0, money.MaxAmount], 0 =
--        none), 10 key_reset ('never' | 'daily' | 'weekly' | 'monthly'),
--        11 day_start_ms, 12 week_start_ms, 13 month_start_ms (the calendar
--        periods, UTC, that contain now), 14 tier usage limits ("tier micros
--        …", micros in [1, money.MaxAmount]; '' = none), 15… field/value pairs
--        describing the request (request_id, key_id, model, endpoint), kept in
--        the hold record for its hold_expired event.
-- Reply  {'OK', held, available_after, expires_ms, limited_by} (limited_by: for a
--         hold below the estimate, the room that bounded it, 'insufficient' |
--         'key_limit' | 'spend_limit'; '' for a whole hold or a retried one)
--      | {'DENY', reason ('empty' | 'expired' | 'insufficient' | 'key_limit' |
--         'spend_limit'), available}
--      | {'DONE', state} (the hold id was already settled, released or expired)
--      | {'NOACCOUNT'}.
--
-- Admits iff available > 0 and estimate <= available + grace; when not, and
-- 0 < minimum < estimate, holds everything affordable (available + grace) if that
-- covers minimum. A retried reserve of a live hold returns it again.
--
-- The limits bound the hold the same way, without grace: the key's room is
-- key_limit - what the key spent in its period - the key's reserved (kuse, see
-- prelude.lua); the account's month room is its monthly cap (the lower non-zero
-- of spend_limit and its tier's usage limit) - the month's usage (mu, counted
-- from mu_start) - the account's reserved. The hold is the estimate if every
-- room covers it, else (partial holds allowed) the smallest room if that covers
-- minimum; else the first that cannot, in the order balance, key, month, denies.
-- A room of 0 or less denies even a free request. Every hold counts in the rooms
-- until it ends, so concurrent reserves cannot together pass a limit.
--
local RESERVE_FIELDS = {'tier', 'depleted', 'credit', 'debt', 'reserved', 'granted', 'h_next', 'g_next',
  'spend_limit', 'mu_start', 'mu'}
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
  return {'OK', rec[2], fmt(S.credit - S.debt - S.reserved), rec[3], ''}
end
local est, minimum, grace = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local avail = S.credit - S.debt - S.reserved
if avail <= 0 then
  local reason = 'empty'
  if S.credit == 0 and S.depleted == 'expired' then reason = 'expired' end
  return {'DENY', reason, fmt(avail)}
end
local cap = avail + grace
local need = est
if minimum > 0 and minimum < est then need = minimum end
local room, limited = cap, 'insufficient'
if need > cap then return {'DENY', 'insufficient', fmt(avail)} end
-- the key's limit
local kid, klimit = ARGV[8], tonumber(ARGV[9])
local k
if kid ~= '' and klimit > 0 then
  k = ku_get(redis.call('HGET', kuse, kid))
  ku_roll(k, tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]))
  local kroom = klimit - ku_spent(k, ARGV[10]) - k[1]
  if kroom <= 0 or need > kroom then return {'DENY', 'key_limit', fmt(avail)} end
  if kroom < room then room, limited = kroom, 'key_limit' end
end
-- the account's monthly cap
local mcap = tonumber(x[9] or '') or 0
for t, l in string.gmatch(ARGV[14], '(%S+) (%S+)') do
  if t == S.tier then
    local tl = tonumber(l)
    if mcap == 0 or tl < mcap then mcap = tl end
  end
end
if mcap > 0 then
  local mu = 0
  if (tonumber(x[10] or '') or 0) >= tonumber(ARGV[13]) then mu = tonumber(x[11] or '') or 0 end
  local mroom = mcap - mu - S.reserved
  if mroom <= 0 or need > mroom then return {'DENY', 'spend_limit', fmt(avail)} end
  if mroom < room then room, limited = mroom, 'spend_limit' end
end
local held = est
if est > room then held = room else limited = '' end
local exp = now + tonumber(ARGV[6])
local sheld, sexp = fmt(held), fmt(exp)
S.reserved = S.reserved + held
redis.call('ZADD', holds, exp, hid)
redis.call('HSET', holdamt, hid, sheld)
redis.call('HSET', KEYS[7], 'state', 'held', 'held', sheld, 'exp', sexp, unpack(ARGV, 15))
redis.call('PEXPIRE', KEYS[7], ARGV[7])
if k then
  k[1] = k[1] + held
  redis.call('HSET', kuse, kid, ku_str(k), 'h:' .. hid, kid)
end
local bounds = {}
if not hb or exp < hb then hb = exp end
local sh, sg = fmt(hb), fmt(S.granted) .. ' ' .. gb
if sh ~= h_next then bounds[#bounds + 1] = 'h_next'; bounds[#bounds + 1] = sh end
if sg ~= g_next then bounds[#bounds + 1] = 'g_next'; bounds[#bounds + 1] = sg end
save(unpack(bounds))
return {'OK', sheld, fmt(avail - held), sexp, limited}
