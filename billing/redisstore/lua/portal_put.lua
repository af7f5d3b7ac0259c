-- portal_put.lua: stores a portal link or session record that ends by itself.
--
-- KEYS   1 the record (hash "portal:link:<sha256 hex>" or
--        "portal:session:<sha256 hex>": the token's hash, never the token).
-- ARGV   1 ttl_ms (> 0), then field/value pairs.
-- Reply  1.
--
-- The record and its TTL are written together, so no record lives for good.

redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
