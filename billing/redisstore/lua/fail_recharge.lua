-- luacheck: std +prelude
--
-- fail_recharge.lua: the pending recharge failed.
--
-- KEYS   1-6 the account's (prelude.lua), 7 the notice outbox, 8 the recharge
--        records.
-- ARGV   1 now_ms, 2 recharge_id, 3 reason (one line), 4 backoff_ms,
--        5 max_backoff_ms (0 <= backoff <= max_backoff), 6 notice ("1"/"0").
-- Reply  {'OK', notice_id ('' for none), backoff_until_ms} | {'GONE'}
--      | {'NOACCOUNT'}.
--
-- Records the failure (an auto_recharge_failed event), clears the pending
-- recharge and sets the back-off before the next may start: backoff × 2^(consecutive
-- failures − 1), at most max_backoff (the doubling stops after 40). Queues
-- auto_recharge.failed when asked. The account's rc_failed holds "recharge_id
-- notice_id backoff_until_ms" of the last failure recorded, so a resent script (its
-- reply lost) answers as the first did and records nothing twice.

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
local _, amount, month, total, started = string.match(raw, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
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
