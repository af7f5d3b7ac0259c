package report

import (
	"context"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// A DailyUsageSource is a Ledger that also keeps its usage summed per UTC day,
// key and model (billing.DailyUsageArchive: the PostgreSQL archive's rollup,
// through billing.RollupArchivedLedger), so Usage over a long range reads a
// row per day instead of every event.
//
// The rollup counts exactly the events up to the head it returns. Usage reads
// day D from it only when D is complete for the snapshot: every event of the
// snapshot with `at` in D is counted and no event after the snapshot's
// LastEventID is. With B the smaller of the head and LastEventID, that holds
// when end(D) + ClockSkewAllowance is before B's commit time (its id's
// milliseconds), given the clock assumption the scan already makes (an event is
// committed at most ClockSkewAllowance after its `at`): an event e of D has
// ms(e) ≤ at(e) + skew < end(D) + skew < ms(B), so e is before the head
// (archived: the archive holds a prefix of the ledger) and before LastEventID;
// an event e after LastEventID has at(e) ≥ ms(e) − skew ≥ ms(LastEventID) −
// skew > end(D), so it is not in D.
type DailyUsageSource interface {
	Ledger
	// DailyUsage returns the usage of account summed by UTC day, key and model
	// for the days in [from, to) (both midnight UTC), and the id of the newest
	// event those sums count ("" when none): they count every event up to it
	// and none after.
	DailyUsage(ctx context.Context, account string, from, to time.Time) (rows []billing.DayUsage, head string, err error)
}

// usageWithRollup adds the usage of s in q to g: the whole complete days of q
// (see DailyUsageSource) from src's rollup, the rest of q before and after
// them by scan.
func usageWithRollup(ctx context.Context, src DailyUsageSource, s Snapshot, q Range, g *grouper, scan func(Range) error) error {
	last, ok := ParseEventID(s.LastEventID)
	if !ok || !q.To.After(q.From) {
		return scan(q) // an empty ledger, or ids with no commit time: nothing to gain
	}
	first := time.Unix(0, 0).UTC() // an unbounded From: the scan of what precedes 1970 stops at once
	if !q.From.IsZero() {
		first = ceilDay(q.From)
	}
	end := floorDay(q.To)
	if !first.Before(end) {
		return scan(q) // no whole day in q
	}
	rows, headID, err := src.DailyUsage(ctx, s.Account, first, end)
	if err != nil {
		return err
	}
	head, ok := ParseEventID(headID)
	if !ok {
		return scan(q) // nothing rolled up
	}
	bound := last
	if head.Compare(last) < 0 {
		bound = head
	}
	// The complete days are those ending before bound's commit time − skew.
	completeEnd := floorDay(time.UnixMilli(int64(bound.MS)).Add(-ClockSkewAllowance).Add(-time.Nanosecond))
	if completeEnd.Before(end) {
		end = completeEnd
	}
	if !first.Before(end) {
		return scan(q) // no complete whole day in q
	}
	if q.From.IsZero() || q.From.Before(first) {
		if err := scan(Range{From: q.From, To: first}); err != nil {
			return err
		}
	}
	for _, r := range rows {
		if r.Requests == 0 || r.Day.Before(first) || !r.Day.Before(end) {
			continue // an incomplete day (the scan below counts it), or no usage at all
		}
		g.add(r.Day.UTC().Format(time.DateOnly), r.Model, r.KeyID, Row{Requests: r.Requests,
			PromptTokens: r.PromptTokens, CachedTokens: r.CachedTokens, CompletionTokens: r.CompletionTokens,
			ReasoningTokens: r.ReasoningTokens, Cost: r.Cost})
	}
	if end.Before(q.To) {
		return scan(Range{From: end, To: q.To})
	}
	return nil
}

// floorDay is the midnight UTC at or before t; ceilDay the one at or after it.
func floorDay(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

func ceilDay(t time.Time) time.Time {
	d := floorDay(t)
	if d.Before(t) {
		d = d.Add(24 * time.Hour)
	}
	return d
}
