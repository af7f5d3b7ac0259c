// Package pgarchive is creditgate's ledger of record in PostgreSQL: it keeps
// every account's ledger events, shipped from the Redis store in order per
// account, each event id once (the primary key; inserts are ON CONFLICT DO
// NOTHING), with a per-account head (the newest archived event, where shipping
// resumes) and a per-day usage rollup written in the same transaction as the
// events it counts. Archive implements billing.EventArchive for the read side;
// Shipper moves events from the store and then trims the store; Compare tells
// when the store lost events the archive holds. Everything lives in one schema
// (Options.Schema), created and upgraded by Migrate from embedded SQL files.
package pgarchive

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// DefaultSchema is the schema the archive lives in unless told otherwise.
const DefaultSchema = "creditgate"

// maxPage bounds one read (ArchivedEvents, ArchivedEventsBefore).
const maxPage = 10000

// Archive is the PostgreSQL ledger of record. It is safe for concurrent use.
type Archive struct {
	pool   *pgxpool.Pool
	schema string
}

var _ billing.EventArchive = (*Archive)(nil)

// Open connects to the PostgreSQL at url (a libpq URL or DSN) and serves the
// archive in schema ("" = DefaultSchema). It does not migrate: call Migrate
// (creditgate migrate, or at start with ledger.archive.migrate: auto).
func Open(ctx context.Context, url, schema string) (*Archive, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if err := ValidSchema(schema); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pgarchive: the PostgreSQL URL: %w", err)
	}
	// Every statement names its tables unqualified: they resolve in schema.
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgarchive: %w", err)
	}
	return &Archive{pool: pool, schema: schema}, nil
}

// Close closes the connection pool.
func (a *Archive) Close() { a.pool.Close() }

// Schema is the schema the archive lives in.
func (a *Archive) Schema() string { return a.schema }

// Pool is the connection pool (for Migrate and tests).
func (a *Archive) Pool() *pgxpool.Pool { return a.pool }

// Migrate applies the embedded migrations to the archive's schema (see Migrate).
func (a *Archive) Migrate(ctx context.Context) ([]int, error) { return Migrate(ctx, a.pool, a.schema) }

// ErrUnavailable wraps PostgreSQL failures (unreachable, timing out, refusing).
var ErrUnavailable = errors.New("ledger archive unavailable")

func wrapPG(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, billing.ErrInvalid) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// parseID splits a ledger event id "<ms>-<seq>" into its parts, which must
// fit PostgreSQL's bigint.
func parseID(id string) (int64, int64, error) {
	msPart, seqPart, ok := strings.Cut(id, "-")
	ms, err1 := strconv.ParseInt(msPart, 10, 64)
	seq, err2 := strconv.ParseInt(seqPart, 10, 64)
	if !ok || err1 != nil || err2 != nil || ms < 0 || seq < 0 {
		return 0, 0, fmt.Errorf("%w: %q is not a ledger event id (<ms>-<seq>)", billing.ErrInvalid, id)
	}
	return ms, seq, nil
}

// parseCursor is parseID for a read's cursor, which need not be an archived
// event's id: a sequence number beyond bigint (report.Scan starts a page at the
// first event of a millisecond with "<ms-1>-<2^64-1>") stands for one beyond
// every archived id of its millisecond: (ms, MaxInt64) for an `after` (the
// page starts at ms+1), (ms+1, 0) for a `before` (every id of ms precedes it).
func parseCursor(id string, before bool) (int64, int64, error) {
	msPart, seqPart, ok := strings.Cut(id, "-")
	seq, err := strconv.ParseUint(seqPart, 10, 64)
	if !ok || err != nil || seq <= math.MaxInt64 {
		return parseID(id)
	}
	ms, err := strconv.ParseInt(msPart, 10, 64)
	if err != nil || ms < 0 || ms == math.MaxInt64 {
		return parseID(id) // its error
	}
	if before {
		return ms + 1, 0, nil
	}
	return ms, math.MaxInt64, nil
}

func pageLimit(limit int) int {
	switch {
	case limit <= 0:
		return 100
	case limit > maxPage:
		return maxPage
	}
	return limit
}

// ArchivedEvents returns up to limit of account's archived events after after
// ("" from the first), oldest first (billing.EventArchive).
func (a *Archive) ArchivedEvents(ctx context.Context, account, after string, limit int) (billing.EventPage, error) {
	limit = pageLimit(limit)
	ms, seq := int64(-1), int64(-1)
	if after != "" {
		var err error
		if ms, seq, err = parseCursor(after, false); err != nil {
			return billing.EventPage{}, err
		}
	}
	rows, err := a.pool.Query(ctx, `SELECT event FROM ledger_events
		WHERE account_id = $1 AND (id_ms, id_seq) > ($2, $3)
		ORDER BY id_ms, id_seq LIMIT $4`, account, ms, seq, limit+1)
	return readPage(rows, err, limit)
}

// ArchivedEventsBefore returns up to limit of account's archived events before
// before ("" from the newest), newest first (billing.EventArchive).
func (a *Archive) ArchivedEventsBefore(ctx context.Context, account, before string, limit int) (billing.EventPage, error) {
	limit = pageLimit(limit)
	ms, seq := int64(math.MaxInt64), int64(math.MaxInt64)
	if before != "" {
		var err error
		if ms, seq, err = parseCursor(before, true); err != nil {
			return billing.EventPage{}, err
		}
	}
	rows, err := a.pool.Query(ctx, `SELECT event FROM ledger_events
		WHERE account_id = $1 AND (id_ms, id_seq) < ($2, $3)
		ORDER BY id_ms DESC, id_seq DESC LIMIT $4`, account, ms, seq, limit+1)
	return readPage(rows, err, limit)
}

// readPage decodes up to limit events; a limit+1st means another page follows,
// from the last event returned.
func readPage(rows pgx.Rows, err error, limit int) (billing.EventPage, error) {
	if err != nil {
		return billing.EventPage{}, wrapPG(err)
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return billing.EventPage{}, wrapPG(err)
	}
	more := len(raws) > limit
	if more {
		raws = raws[:limit]
	}
	page := billing.EventPage{Events: make([]billing.Event, len(raws))}
	for i, raw := range raws {
		if page.Events[i], err = DecodeEvent(raw); err != nil {
			return billing.EventPage{}, err
		}
	}
	if more {
		page.Next = page.Events[len(page.Events)-1].ID
	}
	return page, nil
}

// ArchiveHead is the id of account's newest archived event ("" when none is).
func (a *Archive) ArchiveHead(ctx context.Context, account string) (string, error) {
	var head string
	err := a.pool.QueryRow(ctx, "SELECT event_id FROM ledger_heads WHERE account_id = $1", account).Scan(&head)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return head, wrapPG(err)
}

// Heads are every account's archive head, by account: one query for a
// shipper's whole round.
func (a *Archive) Heads(ctx context.Context) (map[string]string, error) {
	rows, err := a.pool.Query(ctx, "SELECT account_id, event_id FROM ledger_heads")
	if err != nil {
		return nil, wrapPG(err)
	}
	heads := map[string]string{}
	var acct, head string
	_, err = pgx.ForEachRow(rows, []any{&acct, &head}, func() error {
		heads[acct] = head
		return nil
	})
	return heads, wrapPG(err)
}

// Count is how many events of account the archive holds.
func (a *Archive) Count(ctx context.Context, account string) (int64, error) {
	var n int64
	err := a.pool.QueryRow(ctx, "SELECT count(*) FROM ledger_events WHERE account_id = $1", account).Scan(&n)
	return n, wrapPG(err)
}

// AppendResult is what one Append did.
type AppendResult struct {
	Inserted int64  // events newly archived (a re-shipped one is not)
	Head     string // the account's archive head after it
}

// Append archives evs, account's events in increasing id order, in one
// transaction (see appendTx). Events already archived are left as they are.
func (a *Archive) Append(ctx context.Context, account string, evs []billing.Event) (AppendResult, error) {
	var res AppendResult
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		var err error
		res, err = appendTx(ctx, tx, account, evs)
		return err
	})
	return res, wrapPG(err)
}

// appendTx inserts evs (increasing ids) with ON CONFLICT DO NOTHING, adds the
// usage events it did insert to usage_daily, and moves the head forward to
// the last of evs (never back). One statement does all three, so the rollup
// counts exactly the rows inserted.
func appendTx(ctx context.Context, tx pgx.Tx, account string, evs []billing.Event) (AppendResult, error) {
	if len(evs) == 0 {
		var head string
		err := tx.QueryRow(ctx, "SELECT event_id FROM ledger_heads WHERE account_id = $1", account).Scan(&head)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
		return AppendResult{Head: head}, err
	}
	n := len(evs)
	var (
		ids                             = make([]string, n)
		ms, seq, amount, cost           = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		prompt, completion              = make([]int64, n), make([]int64, n)
		cached, reasoning               = make([]int64, n), make([]int64, n)
		types, keys, models, ends       = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		requests, holds                 = make([]string, n), make([]string, n)
		ats                             = make([]time.Time, n)
		bodies                          = make([]string, n)
		prevMS, prevSeq           int64 = -1, -1
	)
	for i, ev := range evs {
		m, s, err := parseID(ev.ID)
		if err != nil {
			return AppendResult{}, err
		}
		if m < prevMS || (m == prevMS && s <= prevSeq) {
			return AppendResult{}, fmt.Errorf("%w: event %s of account %q does not follow the one before it", billing.ErrInvalid, ev.ID, account)
		}
		prevMS, prevSeq = m, s
		body, err := EncodeEvent(ev)
		if err != nil {
			return AppendResult{}, err
		}
		ids[i], ms[i], seq[i] = ev.ID, m, s
		types[i], ats[i] = columnText(string(ev.Type)), ev.At
		keys[i], models[i], ends[i] = columnText(ev.KeyID), columnText(ev.Model), columnText(ev.Endpoint)
		requests[i], holds[i] = columnText(ev.RequestID), columnText(ev.HoldID)
		amount[i], cost[i] = int64(ev.Amount), int64(ev.Cost)
		prompt[i], completion[i] = ev.PromptTokens, ev.CompletionTokens
		cached[i], reasoning[i] = ev.CachedTokens, ev.ReasoningTokens
		bodies[i] = string(body)
	}
	var inserted int64
	err := tx.QueryRow(ctx, `
WITH ins AS (
	INSERT INTO ledger_events (account_id, id_ms, id_seq, event_id, type, at, key_id, model, endpoint, request_id, hold_id, amount, cost, event)
	SELECT $1, e.ms, e.seq, e.id, e.type, e.at, e.key_id, e.model, e.endpoint, e.request_id, e.hold_id, e.amount, e.cost, e.body::jsonb
	FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::text[])
		AS e(ms, seq, id, type, at, key_id, model, endpoint, request_id, hold_id, amount, cost, body)
	ON CONFLICT DO NOTHING
	RETURNING id_ms, id_seq, type, at, key_id, model, cost
), usage AS (
	SELECT u.type, u.at, u.key_id, u.model, u.cost, t.prompt, t.completion, t.cached, t.reasoning
	FROM ins u JOIN unnest($2::bigint[], $3::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[])
		AS t(ms, seq, prompt, completion, cached, reasoning)
		ON t.ms = u.id_ms AND t.seq = u.id_seq
	WHERE u.type = 'usage'
), rolled AS (
	INSERT INTO usage_daily AS d (account_id, day, key_id, model, requests, prompt_tokens, completion_tokens, cost, cached_tokens, reasoning_tokens)
	SELECT $1, (at AT TIME ZONE 'UTC')::date, key_id, model, count(*), sum(prompt), sum(completion), sum(cost), sum(cached), sum(reasoning)
	FROM usage GROUP BY 2, 3, 4
	ON CONFLICT (account_id, day, key_id, model) DO UPDATE SET
		requests = d.requests + excluded.requests,
		prompt_tokens = d.prompt_tokens + excluded.prompt_tokens,
		completion_tokens = d.completion_tokens + excluded.completion_tokens,
		cost = d.cost + excluded.cost,
		cached_tokens = d.cached_tokens + excluded.cached_tokens,
		reasoning_tokens = d.reasoning_tokens + excluded.reasoning_tokens
	RETURNING 1
)
SELECT (SELECT count(*) FROM ins) + 0 * (SELECT count(*) FROM rolled)`,
		account, ms, seq, ids, types, ats, keys, models, ends, requests, holds, amount, cost, bodies, prompt, completion, cached, reasoning).Scan(&inserted)
	if err != nil {
		return AppendResult{}, err
	}
	last := n - 1
	var head string
	err = tx.QueryRow(ctx, `
INSERT INTO ledger_heads AS h (account_id, event_id, id_ms, id_seq, events)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (account_id) DO UPDATE SET
	event_id = CASE WHEN (excluded.id_ms, excluded.id_seq) > (h.id_ms, h.id_seq) THEN excluded.event_id ELSE h.event_id END,
	id_ms = greatest(h.id_ms, excluded.id_ms),
	id_seq = CASE WHEN (excluded.id_ms, excluded.id_seq) > (h.id_ms, h.id_seq) THEN excluded.id_seq ELSE h.id_seq END,
	events = h.events + excluded.events,
	updated_at = now()
RETURNING event_id`, account, ids[last], ms[last], seq[last], inserted).Scan(&head)
	if err != nil {
		return AppendResult{}, err
	}
	return AppendResult{Inserted: inserted, Head: head}, nil
}

// UsageRow is one day's usage of one key and model (UTC days).
type UsageRow struct {
	Day              time.Time // midnight UTC
	KeyID            string
	Model            string
	Requests         int64
	PromptTokens     int64
	CachedTokens     int64
	CompletionTokens int64
	ReasoningTokens  int64
	Cost             money.Micros
}

// UsageByDay is account's usage per UTC day, key and model over the days from
// from to to (both included, by their UTC dates), oldest first: read from the
// rollup, so a year costs at most 366 rows per key and model whatever the
// number of requests.
func (a *Archive) UsageByDay(ctx context.Context, account string, from, to time.Time) ([]UsageRow, error) {
	rows, err := a.pool.Query(ctx, `SELECT day, key_id, model, requests, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, cost
		FROM usage_daily WHERE account_id = $1 AND day BETWEEN $2::date AND $3::date
		ORDER BY day, key_id, model`, account, from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly))
	if err != nil {
		return nil, wrapPG(err)
	}
	var out []UsageRow
	var r UsageRow
	var cost int64
	_, err = pgx.ForEachRow(rows, []any{&r.Day, &r.KeyID, &r.Model, &r.Requests, &r.PromptTokens, &r.CachedTokens, &r.CompletionTokens, &r.ReasoningTokens, &cost}, func() error {
		r.Day = time.Date(r.Day.Year(), r.Day.Month(), r.Day.Day(), 0, 0, 0, 0, time.UTC)
		r.Cost = money.Micros(cost)
		out = append(out, r)
		return nil
	})
	return out, wrapPG(err)
}
