-- luacheck: std +prelude
--
-- release.lua: frees a hold without charging and records a release event.
--
-- KEYS   1-6 the account's (prelude.lua), 7 the hold record.
-- ARGV   1 now_ms, 2 hold_id, 3 record_ttl_ms, 4… field/value pairs (request_id,
--        model…).
-- Reply  {'OK', event_id, balance}
--      | {'REPLAY', state, event_id, cost, from_credit, to_debt, balance}
--      | {'NOACCOUNT'}.
--
-- A hold that expired unsettled already has its hold_expired event, which says
-- it ended without a charge: releasing it books nothing more (REPLAY 'expired',
-- with that event), but its record says 'released' from then on, so that a
-- settle after the release books nothing either, as for any released hold. A
-- hold whose time ran out but that no sweep ended yet is released as usual
-- (this script's sweep leaves it alone).

local now, hid = tonumber(ARGV[1]), ARGV[2]
local rec = redis.call('HMGET', KEYS[7], 'state', 'event', 'cost', 'from_credit', 'to_debt', 'balance')
if rec[1] == 'settled' or rec[1] == 'released' then
  return {'REPLAY', rec[1], rec[2], rec[3], rec[4], rec[5], rec[6]}
end
if rec[1] == 'expired' then
  redis.call('HSET', KEYS[7], 'state', 'released', 'cost', '0', 'from_credit', '0', 'to_debt', '0')
  redis.call('PEXPIRE', KEYS[7], ARGV[3])
  return {'REPLAY', 'expired', rec[2], '0', '0', '0', rec[6]}
end
if not load() then return {'NOACCOUNT'} end
sweep(now, hid)
local held = tonumber(redis.call('HGET', holdamt, hid) or '0')
if redis.call('HDEL', holdamt, hid) == 1 then
  -- still live (a hold of 0 too: it must leave holds, or a sweep would expire it)
  redis.call('ZREM', holds, hid)
  S.reserved = S.reserved - held
  redis.call('HSET', acct, 'reserved', fmt(S.reserved))
  ku_unhold({hid}, {held}) -- and out of its key's reserved (prelude.lua)
end
local fields = {'type', 'release', 'amount', fmt(held), 'hold_id', hid}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = event(now, fields)
local bal = fmt(S.credit - S.debt)
redis.call('HSET', KEYS[7], 'state', 'released', 'event', id, 'cost', '0',
  'from_credit', '0', 'to_debt', '0', 'balance', bal)
redis.call('HDEL', KEYS[7], unpack(HOLD_INFO)) -- kept for hold_expired only
redis.call('PEXPIRE', KEYS[7], ARGV[3])
return {'OK', id, bal}
