-- luacheck: std +prelude
--
-- state.lua: an account's current state. Sweeps first, so the answer never counts
-- expired credit.
--
-- KEYS   1-6 the account's (prelude.lua), 7 the ledger's checkpoint (trim.lua).
-- ARGV   1 now_ms.
-- Reply  {HGETALL acct, HGETALL grants, last ledger event id ('' for none),
--         HGETALL checkpoint (empty: never trimmed)}
--      | {'NOACCOUNT'}.

local now = ARGV[1]
if not load() then return {'NOACCOUNT'} end
sweep(now)
local last = redis.call('XREVRANGE', ledger, '+', '-', 'COUNT', 1)
local last_id = ''
if #last > 0 then last_id = last[1][1] end
return {redis.call('HGETALL', acct), redis.call('HGETALL', grants), last_id, redis.call('HGETALL', KEYS[7])}
