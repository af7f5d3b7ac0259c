-- batch_open.lua: records a batch whose worst case is held on its account
-- until it ends (billing.Batch).
--
-- KEYS   1 the batch record (hash "{acct:<id>}:batch:<batch id>").
-- ARGV   1 record_ttl_ms (> 0), then field/value pairs (hold_id, key_id,
--        endpoint, model, prices, discount, requests, held, created_ms,
--        hold_expires_ms).
-- Reply  {'OK'} | {'EXISTS', hold_id}.
--
-- A batch id is recorded once: a second record of it (another hold) is
-- refused, so the batch settles one hold only.

local hold = redis.call('HGET', KEYS[1], 'hold_id')
if hold then return {'EXISTS', hold} end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {'OK'}
