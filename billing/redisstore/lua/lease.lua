-- lease.lua: takes a lease that one process among many holds for a while (the
-- batch poller's round), by the callers' clocks.
--
-- KEYS   1 the lease (string "lease:<name>": the holder's end, ms).
-- ARGV   1 now_ms, 2 ttl_ms (> 0).
-- Reply  {'OK'} (taken until now + ttl) | {'TAKEN'}.
--
-- The end is the value, compared with the caller's now, rather than left to the
-- key's TTL alone: the embedded store (miniredis) never expires keys by itself.
-- The key also carries the TTL, so a real Redis forgets it.

local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local held_until = tonumber(redis.call('GET', KEYS[1]) or '')
if held_until and held_until > now then return {'TAKEN'} end
redis.call('SET', KEYS[1], string.format('%d', now + ttl), 'PX', ARGV[2])
return {'OK'}
