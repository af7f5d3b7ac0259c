-- claim_notices.lua: leases notices for delivery.
--
-- KEYS   1 the notice outbox.
-- ARGV   1 now_ms, 2 lease_ms (> 0), 3 max_attempts (> 0), 4… the notice ids to
--        claim (none: every notice in the outbox).
-- Reply  triples {'OK' | 'DROP', id, record, …} (empty: nothing to claim).
--
-- Leases each claimable notice (not leased by another worker) and counts the
-- attempt; a notice past max_attempts is removed instead ('DROP').

local now, lease, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then ids = redis.call('HKEYS', KEYS[1]) end
local out = {}
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    local t, at, bal, attempts, until_, rest = string.match(raw, '^(%S+) (%S+) (%S+) (%S+) (%S+) (.*)$')
    if t and tonumber(until_) <= now then
      local n = tonumber(attempts) + 1
      local rec = table.concat({t, at, bal, string.format('%d', n), string.format('%d', now + lease), rest}, ' ')
      if n > max then
        redis.call('HDEL', KEYS[1], id)
        out[#out + 1] = 'DROP'
      else
        redis.call('HSET', KEYS[1], id, rec)
        out[#out + 1] = 'OK'
      end
      out[#out + 1] = id
      out[#out + 1] = rec
    end
  end
end
return out
