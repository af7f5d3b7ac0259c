-- luacheck: std +prelude
--
-- settle.lua: charges a request's actual cost and releases its hold.
--
-- KEYS   1-6 the account's (prelude.lua), 7 the hold record, 8 the notice outbox,
--        9 the recharge records.
-- ARGV   1 now_ms, 2 hold_id, 3 cost (micros, [0, money.MaxAmount]),
--        4 record_ttl_ms, 5 month ("2006-01", UTC), 6 auto_recharge ("1"/"0"),
--        7 low_balance (micros, "" = none), 8 notices ("1"/"0"), 9 key_id ('' =
--        none), 10 day_start_ms, 11 week_start_ms, 12 month_start_ms (the
--        calendar periods, UTC, that contain now), 13… field/value
--        pairs describing the usage (request_id, model, tokens…, the unit
--        prices price_input, price_cached_input, price_output and, when they
--        differ from their parent class's, price_reasoning, price_audio_*).
-- Reply  {'OK', event_id, from_credit, to_debt, balance, recharge_id, notice_ids}
--      | {'REPLAY', state, event_id, cost, from_credit, to_debt, balance,
--         recharge_id, notice_ids}
--      | {'NOACCOUNT'}; notice_ids is space-separated, recharge_id '' for none.
--
-- Releases the hold (if still live), consumes cost from live grants earliest
-- expiry first, and books the rest as debt. A hold that already expired is still
-- charged: the request was served. If a sweep ended it first (its record says
-- 'expired', the ledger has its hold_expired event), the usage event follows
-- that one. Then, in the same transaction, queues the
-- balance notices this settle crossed and starts an auto-recharge when one is due
-- (id "rc_<hold id>").
--
-- The limits: the cost counts in the calendar periods of the settle (now), for
-- the key (the hold's key of "h:<hold id>" in kuse, else key_id: its total, day,
-- week and month, and out of its reserved the hold) and for the account (the
-- month's usage mu since mu_start). When mu reaches spend_alert (> 0), one
-- spend_limit.alert notice is queued per month (mu_alerted holds the month's
-- start), with notices on.
--
local now, hid, cost = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local rec = redis.call('HMGET', KEYS[7], 'state', 'event', 'cost', 'from_credit', 'to_debt', 'balance', 'rc', 'notices',
  'held', 'exp')
if rec[1] == 'settled' or rec[1] == 'released' then
  return {'REPLAY', rec[1], rec[2], rec[3], rec[4], rec[5], rec[6], rec[7] or '', rec[8] or ''}
end
-- One HMGET reads the counters, n_hi and, when auto-recharge may start, its settings.
local ar = ARGV[6] == '1'
local fields = {'tier', 'depleted', 'credit', 'debt', 'reserved', 'usage', 'consumed', 'n_hi'}
local LIMIT_FIELDS = {'spend_alert', 'mu_start', 'mu', 'mu_alerted'}
for _, f in ipairs(LIMIT_FIELDS) do fields[#fields + 1] = f end
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
  'debt_after', fmt(S.debt), unpack(ARGV, 13))
-- what the settle sets off; n_hi (the balance, now checked) is saved with the counters
local notices, outbox = {}, nil
if ARGV[8] == '1' then outbox = KEYS[8] end
crossings(outbox, now, x[8], before, tonumber(ARGV[7]), notices)
-- the limits
local day, week, month = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
-- One HMGET reads the hold's key (if it has a limit) and, in the usual case
-- that it is key_id, that key's record.
local kv = redis.call('HMGET', kuse, 'h:' .. hid, ARGV[9])
local kid, kraw = kv[1], kv[2]
local unhold = kid ~= false
if not unhold and ARGV[9] ~= '' then kid = ARGV[9] end
if kid and kid ~= ARGV[9] then kraw = redis.call('HGET', kuse, kid) end
if kid then
  local k = ku_get(kraw)
  ku_roll(k, day, week, month)
  for i = 2, 8, 2 do k[i] = k[i] + cost end
  if unhold then
    k[1] = math.max(0, k[1] - held)
    redis.call('HDEL', kuse, 'h:' .. hid)
  end
  redis.call('HSET', kuse, kid, ku_str(k))
end
local mstart, mu = tonumber(x[10] or '') or 0, tonumber(x[11] or '') or 0
if month > mstart then mstart, mu = month, 0 end
mu = mu + cost
local alert = tonumber(x[9] or '') or 0
local mfields = {'mu_start', fmt(mstart), 'mu', fmt(mu)}
if alert > 0 and mu >= alert and (tonumber(x[12] or '') or 0) < mstart and outbox then
  notices[#notices + 1] = notice_put(outbox, now, 'spend_limit.alert', alert, '-', mu, 0, '')
  mfields[5] = 'mu_alerted'; mfields[6] = fmt(mstart)
end
save('n_hi', bal, unpack(mfields))
local rc = ''
if ar then
  local v = {}
  for i = 1, #AR_FIELDS do v[i] = x[i + 8 + #LIMIT_FIELDS] end
  rc = maybe_recharge(KEYS[9], now, ARGV[5], 'rc_' .. hid, v) or ''
end
local nlist = table.concat(notices, ' ')
local recf = {'state', 'settled', 'event', id, 'cost', ARGV[3], 'from_credit', sfc, 'to_debt', std, 'balance', bal}
if rc ~= '' then recf[#recf + 1] = 'rc'; recf[#recf + 1] = rc end
if nlist ~= '' then recf[#recf + 1] = 'notices'; recf[#recf + 1] = nlist end
redis.call('HSET', KEYS[7], unpack(recf))
-- The request's description was kept for a hold_expired event; a settled hold
-- needs it no more, and the record lives on for the retention.
redis.call('HDEL', KEYS[7], unpack(HOLD_INFO))
-- The record must outlive the settle by the retention (ARGV[4]). Reserve gave it
-- the hold's TTL plus the retention, so it already does unless the hold expired
-- before its settle (or had no record).
if now > (tonumber(rec[10] or '') or 0) then redis.call('PEXPIRE', KEYS[7], ARGV[4]) end
return {'OK', id, sfc, std, bal, rc, nlist}
