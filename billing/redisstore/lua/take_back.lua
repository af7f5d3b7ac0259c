-- luacheck: std +prelude
--
-- take_back.lua: a payment was refunded or disputed; take back what is left of
-- its grant, never more.
--
-- KEYS   1-6 the account's (prelude.lua), 7 the account's payments (hash:
--        payment_ref -> "grant_id upto claimed taken short event_id"), 8 the
--        purchase record of the payment's grant (absent for a recharge).
-- ARGV   1 now_ms, 2 payment_ref, 3 upto (micros, (0, money.MaxAmount]: what the
--        provider has refunded or disputed of this payment in all), 4 reason
--        (one line).
-- Reply  {'OK', taken, total_taken, short, event_id ('' for none)}
--      | {'NOACCOUNT'} | {'UNKNOWN'}.
--
-- The record's upto is the highest cumulative amount reported; claimed is what
-- of it counts, at most the grant's amount (what was credited); taken is what was
-- taken back from the grant, short what was claimed but the grant no longer held
-- (spent or expired): never made into debt. A report whose upto is not above the
-- record's changes nothing (replays and out-of-order events), so each call takes
-- only what its upto adds. When it adds something, one adjustment event records
-- it: amount -taken (0 when the grant is empty), grant_id, payment_ref, the
-- reason as its note, counted in adjusted_out. The take-back ignores holds in
-- flight: the provider took the money back, so their settles may run into debt.

local now, ref, upto = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local payments, rec = KEYS[7], KEYS[8]
if not load() then return {'NOACCOUNT'} end
local raw = redis.call('HGET', payments, ref)
if not raw then return {'UNKNOWN'} end
local gid, seen, claimed, taken, short, ev = string.match(raw, '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
seen, claimed, taken, short = tonumber(seen), tonumber(claimed), tonumber(taken), tonumber(short)
if upto <= seen then return {'OK', '0', fmt(taken), '0', ''} end
sweep(now)
local g = grant_get(redis.call('HGET', grants, gid))
local add = math.min(upto, g.amount) - claimed
local take = math.min(math.max(add, 0), g.remaining)
local event_id = ''
-- writes
if add > 0 then
  if take > 0 then
    g.remaining = g.remaining - take
    grant_put(gid, g)
    if g.remaining == 0 then redis.call('ZREM', live, gid) end
    need('adjusted_out')
    S.credit = S.credit - take
    S.adjusted_out = S.adjusted_out + take
    if S.credit == 0 then S.depleted = 'adjustment' end
    save()
  end
  local note = ARGV[4]
  if add > take then note = note .. ' (' .. usd(add - take) .. ' of ' .. usd(add) .. ' was already spent)' end
  event_id = event(now, {'type', 'adjustment', 'amount', fmt(-take), 'grant_id', gid, 'payment_ref', ref, 'note', note})
  claimed, taken, short, ev = claimed + add, taken + take, short + add - take, event_id
end
redis.call('HSET', payments, ref, table.concat({gid, fmt(upto), fmt(claimed), fmt(taken), fmt(short), ev}, ' '))
if redis.call('EXISTS', rec) == 1 then
  redis.call('HSET', rec, 'status', 'refunded', 'taken_back', fmt(taken), 'reason', ARGV[4])
end
return {'OK', fmt(math.max(take, 0)), fmt(taken), fmt(math.max(add - take, 0)), event_id}
