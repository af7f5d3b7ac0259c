-- claim_recharge.lua: takes the lease on a pending recharge, so one worker among
-- all proxies performs it; a worker that dies loses the lease when it runs out and
-- the sweeper's worker takes over with the same id.
--
-- KEYS   1 acct, 2 the recharge records.
-- ARGV   1 recharge_id, 2 now_ms, 3 lease_ms (> 0).
-- Reply  {'OK', record ("state amount month month_total started_ms"), drives}
--      | {'GONE'} (not pending: done, failed or unknown) | {'BUSY'} (leased).

local v = redis.call('HMGET', KEYS[1], 'rc_id', 'rc_lease', 'rc_drives')
if v[1] ~= ARGV[1] then return {'GONE'} end
local now = tonumber(ARGV[2])
if (tonumber(v[2] or '') or 0) > now then return {'BUSY'} end
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if not rec then return {'GONE'} end
local drives = (tonumber(v[3] or '') or 0) + 1
redis.call('HSET', KEYS[1], 'rc_lease', string.format('%d', now + tonumber(ARGV[3])),
  'rc_drives', string.format('%d', drives))
return {'OK', rec, string.format('%d', drives)}
