-- ratelimit.lua: counts one request against the rate limits (requests and
-- tokens per minute) of its account's tier and of its key, when every one of
-- them admits it (README "Rate limits", billing/ratelimit.go).
--
-- KEYS   1 acct (the account hash; its 'tier'), 2 the account's limiter state,
--        3 the key's limiter state (all three under the account's hash tag).
-- ARGV   1 now_ms, 2 tokens the request counts, 3 key_rpm, 4 key_tpm (0: no key
--        limit), 5… triples (tier name, rpm, tpm) of the tiers with a limit
--        (0: none of that type). Every number an integer in [0, 1e11].
-- Reply  {'OK', req_limit, req_remaining, req_reset_ms,
--               tok_limit, tok_remaining, tok_reset_ms}             admitted, counted
--      | {'LIMITED', type ('requests' | 'tokens'), scope ('account' | 'key'),
--               limit, used, requested, retry_ms (-1: never, requested > limit),
--               the six of OK}                                       refused, nothing counted
--      | {'NOACCOUNT'}.
--   The six are, per type, the binding limit (of the account's and the key's,
--   the one with less remaining; 0 0 0 when none applies): after the request
--   when admitted, before it when refused.
--
-- GCRA as a leaky bucket per limit. A limit of N per minute holds N × 60000
-- units; a request adds 60000 units per request (per token, for tokens), and
-- the bucket drains N units per ms, so it empties in at most a minute. Admitted
-- iff every bucket has room for the request's units. All integers: N ≤ 1e11
-- keeps N × 60000 ≤ 6e15, exact in a double (below 2^53).
--
-- State: the string "<requests level> <tokens level> <t_ms>", t the latest
-- clock seen (an instance whose clock lags drains nothing: levels only drain as
-- the latest clock moves), with a TTL of when both levels reach 0. The TTL only
-- saves memory: the levels are drained from t on read, so a state kept too
-- long (the embedded store never expires keys by itself) reads as it should.
-- A key limit at or above its tier's is not kept: the account's bucket, which
-- counts every key's requests, is the lower one.

local MINUTE = 60000
local function fmt(x) return string.format('%d', x) end
local now, tokens = tonumber(ARGV[1]), tonumber(ARGV[2])

local tier = redis.call('HGET', KEYS[1], 'tier')
if not tier then return {'NOACCOUNT'} end
local trpm, ttpm = 0, 0
for i = 5, #ARGV, 3 do
  if ARGV[i] == tier then
    trpm, ttpm = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    break
  end
end
local krpm, ktpm = tonumber(ARGV[3]), tonumber(ARGV[4])
if trpm > 0 and krpm >= trpm then krpm = 0 end
if ttpm > 0 and ktpm >= ttpm then ktpm = 0 end

-- bucket reads one state key for limits rpm and tpm (nil when both are 0), its
-- levels drained to now.
local function bucket(key, scope, rpm, tpm)
  if rpm == 0 and tpm == 0 then return nil end
  local lr, lt, t = 0, 0, now
  local s = redis.call('GET', key)
  if s then
    local a, b, c = string.match(s, '^(%d+) (%d+) (%d+)$')
    if not a then return redis.error_reply('ratelimit.lua: malformed state at ' .. key) end
    lr, lt, t = tonumber(a), tonumber(b), tonumber(c)
  end
  local dt = math.min(math.max(now - t, 0), MINUTE)
  if rpm > 0 then lr = math.max(lr - dt * rpm, 0) else lr = 0 end
  if tpm > 0 then lt = math.max(lt - dt * tpm, 0) else lt = 0 end
  return {key = key, scope = scope, rpm = rpm, tpm = tpm, lr = lr, lt = lt, t = math.max(t, now)}
end

local buckets = {}
for _, spec in ipairs({{KEYS[2], 'account', trpm, ttpm}, {KEYS[3], 'key', krpm, ktpm}}) do
  local b = bucket(unpack(spec))
  if b then
    if b.err then return b end
    buckets[#buckets + 1] = b
  end
end

-- window is a limit's {limit, remaining, reset_ms} at level.
local function window(limit, level)
  return {limit, math.floor((limit * MINUTE - level) / MINUTE), math.ceil(level / limit)}
end

-- windows are the six numbers of the reply: per type, the binding window.
local function windows(after)
  local out = {}
  for _, ty in ipairs({'r', 't'}) do
    local best = {0, 0, 0}
    for _, b in ipairs(buckets) do
      local limit, level = b[ty .. 'pm'], b['l' .. ty]
      if limit > 0 then
        if after then level = level + b['c' .. ty] * MINUTE end
        local w = window(limit, level)
        if best[1] == 0 or w[2] < best[2] or (w[2] == best[2] and w[3] > best[3]) then best = w end
      end
    end
    for _, v in ipairs(best) do out[#out + 1] = fmt(v) end
  end
  return out
end

-- Checks: every limit must have room; the refusal named is the one that lasts
-- longest (never, for a request larger than its limit).
local refused
for _, b in ipairs(buckets) do
  b.cr, b.ct = 1, tokens
  for _, c in ipairs({{'requests', b.rpm, b.lr, 1}, {'tokens', b.tpm, b.lt, tokens}}) do
    local ty, limit, level, cost = c[1], c[2], c[3], c[4]
    if limit > 0 then
      local retry
      if cost > limit then
        retry = -1
      elseif level + cost * MINUTE > limit * MINUTE then
        retry = math.ceil((level + cost * MINUTE - limit * MINUTE) / limit)
      end
      if retry and (not refused or refused.retry ~= -1 and (retry == -1 or retry > refused.retry)) then
        refused = {ty = ty, scope = b.scope, limit = limit, used = math.ceil(level / MINUTE), cost = cost,
          retry = retry}
      end
    end
  end
end

if refused then
  local reply = {'LIMITED', refused.ty, refused.scope, fmt(refused.limit), fmt(refused.used), fmt(refused.cost),
    fmt(refused.retry)}
  for _, v in ipairs(windows(false)) do reply[#reply + 1] = v end
  return reply
end

local reply = {'OK'}
for _, v in ipairs(windows(true)) do reply[#reply + 1] = v end
for _, b in ipairs(buckets) do
  local lr, lt, ttl = 0, 0, 1
  if b.rpm > 0 then
    lr = b.lr + MINUTE
    ttl = math.max(ttl, math.ceil(lr / b.rpm))
  end
  if b.tpm > 0 then
    lt = b.lt + tokens * MINUTE
    ttl = math.max(ttl, math.ceil(lt / b.tpm))
  end
  redis.call('SET', b.key, fmt(lr) .. ' ' .. fmt(lt) .. ' ' .. fmt(b.t), 'PX', fmt(ttl))
end
return reply
