package pgarchive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

var _ billing.DailyUsageArchive = (*Archive)(nil)

// DailyUsage returns account's usage per UTC day, key and model for the days
// in [from, to) (both midnight UTC), oldest first, from the rollup, with the
// archive head it counts up to (billing.DailyUsageArchive). Both are read in
// one repeatable-read transaction: Append moves the rollup and the head in one
// transaction, so the rows count exactly the archived events up to head.
func (a *Archive) DailyUsage(ctx context.Context, account string, from, to time.Time) ([]billing.DayUsage, string, error) {
	for _, t := range []time.Time{from, to} {
		if !t.Equal(t.UTC().Truncate(24 * time.Hour)) {
			return nil, "", fmt.Errorf("%w: DailyUsage wants whole UTC days, not %s", billing.ErrInvalid, t)
		}
	}
	var (
		out  []billing.DayUsage
		head string
	)
	err := pgx.BeginTxFunc(ctx, a.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, "SELECT event_id FROM ledger_heads WHERE account_id = $1", account).Scan(&head)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // nothing archived: the rollup is empty too
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT day, key_id, model, requests, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, cost
			FROM usage_daily WHERE account_id = $1 AND day >= $2::date AND day < $3::date
			ORDER BY day, key_id, model`, account, from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly))
		if err != nil {
			return err
		}
		var r billing.DayUsage
		var cost int64
		_, err = pgx.ForEachRow(rows, []any{&r.Day, &r.KeyID, &r.Model, &r.Requests, &r.PromptTokens, &r.CachedTokens, &r.CompletionTokens, &r.ReasoningTokens, &cost}, func() error {
			r.Day = time.Date(r.Day.Year(), r.Day.Month(), r.Day.Day(), 0, 0, 0, 0, time.UTC)
			r.Cost = money.Micros(cost)
			out = append(out, r)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, "", wrapPG(err)
	}
	return out, head, nil
}
