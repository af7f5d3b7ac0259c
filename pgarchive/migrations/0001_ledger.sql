-- The ledger of record: every ledger event of every account, shipped from
-- Redis in order per account, each event id once (the primary key).
CREATE TABLE ledger_events (
    account_id text        NOT NULL,
    id_ms      bigint      NOT NULL, -- the Redis stream id "<ms>-<seq>", split so it sorts
    id_seq     bigint      NOT NULL,
    event_id   text        NOT NULL,
    type       text        NOT NULL,
    at         timestamptz NOT NULL,
    key_id     text        NOT NULL DEFAULT '',
    model      text        NOT NULL DEFAULT '',
    endpoint   text        NOT NULL DEFAULT '',
    request_id text        NOT NULL DEFAULT '',
    hold_id    text        NOT NULL DEFAULT '',
    amount     bigint      NOT NULL DEFAULT 0, -- micro-USD
    cost       bigint      NOT NULL DEFAULT 0, -- micro-USD
    event      jsonb       NOT NULL,           -- the whole event (pgarchive's codec)
    shipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, id_ms, id_seq)
);
CREATE INDEX ledger_events_account_at ON ledger_events (account_id, at);

-- Each account's newest archived event: where its shipping resumes.
CREATE TABLE ledger_heads (
    account_id text        PRIMARY KEY,
    event_id   text        NOT NULL,
    id_ms      bigint      NOT NULL,
    id_seq     bigint      NOT NULL,
    events     bigint      NOT NULL, -- events archived in all
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Per-day usage (UTC days) of each account by key and model, kept in the
-- transaction that inserts the usage events (only the rows inserted count), so
-- a report over a year reads at most 365 rows per key and model.
CREATE TABLE usage_daily (
    account_id        text   NOT NULL,
    day               date   NOT NULL,
    key_id            text   NOT NULL,
    model             text   NOT NULL,
    requests          bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cost              bigint NOT NULL, -- micro-USD
    PRIMARY KEY (account_id, day, key_id, model)
);
