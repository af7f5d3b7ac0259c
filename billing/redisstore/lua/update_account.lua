-- luacheck: std +prelude
--
-- update_account.lua: changes an account's settings and books each change.
--
-- KEYS   1-6 the account's (prelude.lua).
-- ARGV   1 now_ms, 2 actor ("" = none), then field, value pairs (at least
--        one) among tier, tier_pinned, status, name, email, external_id,
--        spend_limit, spend_alert; a value of "" removes the field (an active
--        status, an unpinned tier, no limit: absent is the default).
-- Reply  {'OK', tier_change event id, account_update event id, changes} (each
--        '' when there is none; changes is the account_update's JSON: an array
--        of [field, from, to])
--      | {'NOACCOUNT'}.
--
-- A field already at its value is no change; a call that changes nothing books
-- nothing, so a resent call (its reply lost) books nothing more. A new tier
-- books a tier_change event (note "manual", with the actor); the other fields
-- one account_update event listing them. Neither moves money. The reserve
-- script reads status, spend_limit and spend_alert from the account hash.

local now, actor = tonumber(ARGV[1]), ARGV[2]
if not load() then return {'NOACCOUNT'} end
local fields, values = {}, {}
for i = 3, #ARGV - 1, 2 do
  fields[#fields + 1] = ARGV[i]
  values[#values + 1] = ARGV[i + 1]
end
local cur = redis.call('HMGET', acct, unpack(fields))
local set, del, changes, tier_from, tier_to = {}, {}, {}, nil, nil
for i, f in ipairs(fields) do
  local old, new = cur[i] or '', values[i]
  if old ~= new then
    if f == 'tier' then
      tier_from, tier_to = old, new
    else
      changes[#changes + 1] = {f, old, new}
    end
    if new == '' then
      del[#del + 1] = f
    else
      set[#set + 1] = f; set[#set + 1] = new
    end
  end
end
-- writes
if #set > 0 then redis.call('HSET', acct, unpack(set)) end
if #del > 0 then redis.call('HDEL', acct, unpack(del)) end
local function with_actor(ev)
  if actor ~= '' then ev[#ev + 1] = 'actor'; ev[#ev + 1] = actor end
  return ev
end
local tier_ev, update_ev, json = '', '', ''
if tier_to then
  S.tier = tier_to
  tier_ev = event(now, with_actor({'type', 'tier_change', 'tier_from', tier_from, 'tier_to', tier_to,
    'note', 'manual'}))
end
if #changes > 0 then
  json = cjson.encode(changes)
  update_ev = event(now, with_actor({'type', 'account_update', 'changes', json}))
end
return {'OK', tier_ev, update_ev, json}
