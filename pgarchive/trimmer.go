package pgarchive

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
)

// TrimSource is the store a Trimmer trims.
type TrimSource interface {
	ListAccounts(ctx context.Context) ([]billing.Account, error)
	billing.LedgerTrimmer
}

// TrimmerOptions configure a Trimmer.
type TrimmerOptions struct {
	// Retention is how long events stay in the store (> 0).
	Retention time.Duration
	Now       func() time.Time
	Log       *zap.Logger
	// Observer hears failures (ShipFailed); Shipped and Lag are not called.
	Observer Observer
}

// A Trimmer bounds the store's ledgers without an archive: each round trims
// every account's events older than the retention, whatever was shipped
// (upTo "+"). The history trimmed is gone; each account's checkpoint keeps the
// audit proving conservation. A round is O(accounts), as a shipper's.
type Trimmer struct {
	src TrimSource
	o   TrimmerOptions
}

// NewTrimmer trims src.
func NewTrimmer(src TrimSource, o TrimmerOptions) *Trimmer {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return &Trimmer{src: src, o: o}
}

// Round trims every account once; it returns the events removed, and the
// first error (the round goes on past an account that fails).
func (t *Trimmer) Round(ctx context.Context) (int64, error) {
	accounts, err := t.src.ListAccounts(ctx)
	if err != nil {
		t.failed()
		return 0, fmt.Errorf("pgarchive: listing the accounts to trim: %w", err)
	}
	before := t.o.Now().Add(-t.o.Retention)
	var removed int64
	var first error
	for _, acct := range accounts {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if acct.LastEventID == "" {
			continue
		}
		r, err := t.src.TrimLedger(ctx, acct.ID, "+", before)
		if err != nil {
			t.failed()
			t.o.Log.Warn("ledger trim: an account failed; the next round retries", zap.String("account", acct.ID), zap.Error(err))
			if first == nil {
				first = err
			}
			continue
		}
		removed += r.Removed
	}
	return removed, first
}

func (t *Trimmer) failed() {
	if t.o.Observer != nil {
		t.o.Observer.ShipFailed()
	}
}

// Run trims a round every interval until ctx ends.
func (t *Trimmer) Run(ctx context.Context, interval time.Duration) {
	for {
		if _, err := t.Round(ctx); err != nil && ctx.Err() == nil {
			t.o.Log.Warn("ledger trim: a round failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
