-- create_account.lua: creates an account with no credit.
--
-- KEYS   1 acct.
-- ARGV   1 account id, 2 tier, 3 now_ms, 4 creation id (unique per call).
-- Reply  {'OK', created_at_ms} | {'EXISTS'}.
--
-- The creation id is kept, so a resent script (its reply lost) finds its own
-- account and answers OK again.

if redis.call('EXISTS', KEYS[1]) == 1 then
  local v = redis.call('HMGET', KEYS[1], 'created_by', 'created_at')
  if v[1] == ARGV[4] then return {'OK', v[2]} end
  return {'EXISTS'}
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'tier', ARGV[2], 'created_at', ARGV[3], 'created_by', ARGV[4],
  'depleted', '', 'credit', '0', 'debt', '0', 'reserved', '0', 'granted', '0', 'usage', '0', 'consumed', '0',
  'repaid', '0', 'expired', '0')
return {'OK', ARGV[3]}
