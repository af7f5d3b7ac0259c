-- luacheck: std +prelude
--
-- sweep.lua: the periodic sweeper's visit to one account.
--
-- KEYS   1-6 the account's (prelude.lua), 7 the notice outbox, 8 the recharge
--        records, 9 the set of grants already announced as expiring.
-- ARGV   1 now_ms, 2 month ("2006-01", UTC), 3 auto_recharge ("1"/"0"),
--        4 low_balance (micros, "" = none), 5 notices ("1"/"0"),
--        6 expiring_within_ms ("0" = none), 7 candidate recharge id, 8 the tier
--        ladder (prelude.lua's promote; "" = none).
-- Reply  {'OK', expired, holds_expired, recharge_id ('' for none), outbox ids…}
--      | {'NOACCOUNT'}.
--
-- Ends expired holds (hold_expired events) and forfeits expired credit (expire
-- events), queues the balance notices crossed since the last check and a
-- credits.expiring notice once per grant (at most 100 per visit), and starts an
-- auto-recharge that is due (an account whose credit expired gets no settle to
-- start one). holds_expired counts the holds that expired since a sweep last
-- reported, whichever script's sweep ended them (hx_total − hx_reported), so a
-- metric fed from these replies counts each expired hold once across all proxies.
-- Promotion is checked too (promote): the days since the first payment pass
-- without a payment to check them.

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
promote(now, ARGV[8], KEYS[7], notices)
local rc = redis.call('HGET', acct, 'rc_id') or ''
if rc == '' and ARGV[3] == '1' then rc = maybe_recharge(KEYS[8], now, ARGV[2], ARGV[7]) or '' end
local hx = redis.call('HMGET', acct, 'hx_total', 'hx_reported')
local hx_total, hx_new = tonumber(hx[1] or '') or 0, 0
if hx_total > (tonumber(hx[2] or '') or 0) then
  hx_new = hx_total - (tonumber(hx[2] or '') or 0)
  redis.call('HSET', acct, 'hx_reported', fmt(hx_total))
end
local out = {'OK', fmt(S.expired - expired0), fmt(hx_new), rc}
for _, id in ipairs(redis.call('HKEYS', KEYS[7])) do out[#out + 1] = id end
return out
