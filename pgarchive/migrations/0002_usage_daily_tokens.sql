-- usage_daily also sums the prompt tokens served from the cache and the
-- completion tokens spent on reasoning (the usage report's cached_tokens and
-- reasoning_tokens), so a report read from the rollup equals one summed from
-- the events. Rows written before this migration are backfilled from the
-- archived events themselves (the jsonb codec leaves zero counts out), in this
-- migration's transaction: the rollup and the events never disagree.
ALTER TABLE usage_daily
    ADD COLUMN cached_tokens    bigint NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens bigint NOT NULL DEFAULT 0;

UPDATE usage_daily AS d
SET cached_tokens = s.cached, reasoning_tokens = s.reasoning
FROM (
    SELECT account_id, (at AT TIME ZONE 'UTC')::date AS day, key_id, model,
           sum(coalesce((event->>'cached_tokens')::bigint, 0))    AS cached,
           sum(coalesce((event->>'reasoning_tokens')::bigint, 0)) AS reasoning
    FROM ledger_events
    WHERE type = 'usage'
    GROUP BY 1, 2, 3, 4
) AS s
WHERE d.account_id = s.account_id AND d.day = s.day AND d.key_id = s.key_id AND d.model = s.model
  AND (s.cached <> 0 OR s.reasoning <> 0);
