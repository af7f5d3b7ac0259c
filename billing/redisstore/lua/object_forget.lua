-- object_forget.lua: forgets a stored object of an account (it was deleted at
-- the upstream, or the upstream no longer has it).
--
-- KEYS   1 the account's objects of that kind (see object_put.lua).
-- ARGV   1 object id.
-- Reply  {'OK', removed ('1' | '0')}.

return {'OK', string.format('%d', redis.call('ZREM', KEYS[1], ARGV[1]))}
