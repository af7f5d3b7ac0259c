package billing

import (
	"context"
	"time"

	"github.com/creditgate/creditgate/money"
)

// DayUsage sums the usage events of one UTC day, key and model (a row of an
// archive's per-day rollup).
type DayUsage struct {
	Day              time.Time // midnight UTC
	KeyID            string    // "" for usage recorded without a key
	Model            string
	Requests         int64
	PromptTokens     int64
	CachedTokens     int64
	CompletionTokens int64
	ReasoningTokens  int64
	Cost             money.Micros
}

// A DailyUsageArchive is an EventArchive that keeps a per-day rollup of the
// usage events it holds, so a report over many days reads one row per day, key
// and model instead of every event.
type DailyUsageArchive interface {
	// DailyUsage returns account's archived usage events summed by UTC day,
	// key and model for the days in [from, to) (both midnight UTC), oldest
	// first, and head: the sums count exactly the archived events with ids up
	// to head, read in one snapshot with them ("" when nothing is archived).
	DailyUsage(ctx context.Context, account string, from, to time.Time) (rows []DayUsage, head string, err error)
}

// RollupArchivedLedger is an ArchivedLedger whose archive keeps a per-day
// usage rollup: NewArchivedLedger returns one only then, so that a reader's
// type assertion for DailyUsage is true exactly when the rollup is there.
type RollupArchivedLedger struct {
	*ArchivedLedger
	Daily DailyUsageArchive // the archive, as a rollup
}

// DailyUsage is the archive's (DailyUsageArchive).
func (l *RollupArchivedLedger) DailyUsage(ctx context.Context, account string, from, to time.Time) ([]DayUsage, string, error) {
	return l.Daily.DailyUsage(ctx, account, from, to)
}
