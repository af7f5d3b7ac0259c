package billing

import (
	"context"
	"time"

	"github.com/creditgate/creditgate/money"
)

// A Checkpoint is an account's running ledger state right after event EventID,
// written by the same script that trims the events up to it from the store
// (LedgerTrimmer.TrimLedger). An audit resumes from it instead of the first
// event (NewAudit) and still proves conservation: the checkpoint itself must
// conserve money, and replaying the events after it from its figures must give
// the stored state.
//
// It is exact (integer micro-USD, as the events carry them) and small: a fixed
// set of figures plus one entry per grant that a payment credited (it may be
// taken back when the payment is refunded) and that is still live. It records
// nothing about holds: a hold's record outlives its settlement by the store's
// hold-record retention, and HoldOutcome answers HoldTrimmed, not HoldUnknown,
// when the events that could tell were trimmed.
type Checkpoint struct {
	EventID string // the last event trimmed: the checkpoint is the state right after it
	// At is the latest time of the events trimmed (the callers' clocks, as
	// Event.At): no event after it in time was removed.
	At time.Time
	// Events counts the events trimmed in all.
	Events int64
	Credit money.Micros
	Debt   money.Micros
	Totals Totals
	// Paid is what the payments up to EventID added up to (see the audit's check
	// "tiers"); Tier is where the last tier_change up to it moved ("" for none).
	Paid money.Micros
	Tier string
	// Grants counts the grant events up to EventID (each credits one grant).
	Grants int64
	// PendingRepay is the debt the grant event EventID repaid when its
	// debt_repaid event is not trimmed yet (then PendingGrant names the grant).
	PendingRepay money.Micros
	PendingGrant string
	// Credited are the live grants a payment credited (PaymentRef set) before
	// EventID, for the take-backs after it to be checked against.
	Credited []CheckpointGrant
}

// CheckpointGrant is what a grant event before a checkpoint credited: its
// amount less the debt it repaid (Credit), and what take-backs and expiry took
// from it up to the checkpoint (Lost).
type CheckpointGrant struct {
	ID         string
	Credit     money.Micros
	Lost       money.Micros
	PaymentRef string
}

// Balance is credit − debt at the checkpoint.
func (c Checkpoint) Balance() money.Micros { return c.Credit - c.Debt }

// TrimResult is what one TrimLedger call removed.
type TrimResult struct {
	// Removed is how many events this call removed (0: nothing was due).
	Removed int64
	// CheckpointID is the event the account's checkpoint now stands at ("":
	// the ledger was never trimmed).
	CheckpointID string
	// TrimmedTotal counts the events trimmed from the account in all.
	TrimmedTotal int64
}

// LedgerTrimmer bounds a store's ledger: TrimLedger removes the account's
// events with id ≤ upTo (upTo "" or "+": no bound, for a store without an
// archive) that happened before before, oldest first, stopping at the first
// that did not, and keeps the account's newest event whatever its age (so the
// next event id follows it and a snapshot's LastEventID is always in the
// ledger). Each batch it removes and the checkpoint it writes at the new head
// are one atomic step, so a crash between batches leaves a consistent, shorter
// ledger. Trimming again removes nothing more.
type LedgerTrimmer interface {
	TrimLedger(ctx context.Context, account, upTo string, before time.Time) (TrimResult, error)
}
