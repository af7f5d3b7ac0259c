-- object_list.lua: one page of an account's stored objects of one kind, by
-- creation.
--
-- KEYS   1 the account's objects of that kind (see object_put.lua).
-- ARGV   1 now_ms, 2 after (an object id; '' from the first), 3 limit (1 to
--        1000), 4 newest ('1': newest first, '0': oldest first), 5 retention_ms
--        ('0': none).
-- Reply  {'OK', has_more ('1' | '0'), id…}; an after the set does not hold gives
--        {'OK', '0'}.
--
-- Records older than the retention are skipped (object_put.lua drops them).
-- Reads at most limit + 1 + the skipped records.

local now, after, limit, newest, keep = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1', tonumber(ARGV[5])
local rank_cmd, range_cmd = 'ZRANK', 'ZRANGE'
if newest then rank_cmd, range_cmd = 'ZREVRANK', 'ZREVRANGE' end
local start = 0
if after ~= '' then
  local r = redis.call(rank_cmd, KEYS[1], after)
  if not r then return {'OK', '0'} end
  start = r + 1
end
local out, oldest = {'OK', '0'}, nil
if keep > 0 then oldest = now - keep end
while #out - 2 <= limit do
  local batch = redis.call(range_cmd, KEYS[1], start, start + limit, 'WITHSCORES')
  if #batch == 0 then break end
  for i = 1, #batch, 2 do
    if not oldest or tonumber(batch[i + 1]) >= oldest then
      if #out - 2 == limit then
        out[2] = '1'
        return out
      end
      out[#out + 1] = batch[i]
    end
  end
  start = start + #batch / 2
end
return out
