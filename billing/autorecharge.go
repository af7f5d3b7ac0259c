package billing

import (
	"errors"
	"time"

	"github.com/creditgate/creditgate/money"
)

// Triggers say what a ledger change may set off besides moving money. They come
// from the configuration (a charger configured, a notice webhook configured, the
// low-balance level), so the proxy passes them with each settle and the sweeper
// with each sweep. The zero value sets off nothing.
type Triggers struct {
	// AutoRecharge: a charger is configured, so an account with auto-recharge
	// enabled may start a recharge when its balance is below its threshold.
	AutoRecharge bool
	// Notices: a notice webhook is configured, so crossings are queued as notices
	// in the account's outbox.
	Notices bool
	// LowBalance is the level below which balance.low fires (notify.low_balance).
	LowBalance money.Micros
}

// Notice types (the "type" of a notice webhook's body).
const (
	NoticeBalanceLow         = "balance.low"          // the balance went from ≥ LowBalance to below it
	NoticeBalanceExhausted   = "balance.exhausted"    // the balance went from > 0 to ≤ 0
	NoticeCreditsExpiring    = "credits.expiring"     // a grant with credit left expires within notify.expiring_within
	NoticeAutoRechargeFailed = "auto_recharge.failed" // the charger declined a recharge, or never answered
	// NoticeTierChanged (accounts.go): an account was promoted to a higher tier.
)

// Notice is one queued operator notice. Notices are queued atomically with the
// change that caused them (in the account's outbox) and delivered at least once by
// the notice worker; ID, unique per notice, lets a receiver drop duplicates.
type Notice struct {
	ID      string
	Type    string
	Account string
	At      time.Time
	// Balance is the account's balance when the notice was queued.
	Balance money.Micros
	// Threshold is the level that was crossed (balance.low).
	Threshold money.Micros
	// GrantID, Amount and ExpiresAt describe the expiring grant (credits.expiring:
	// Amount is its remaining credit) or the failed recharge (auto_recharge.failed:
	// GrantID is empty, RechargeID and Amount are set).
	GrantID    string
	Amount     money.Micros
	ExpiresAt  time.Time
	RechargeID string
	// Reason says why a recharge failed.
	Reason string
	// Tier and FromTier are a tier.changed notice's new and old tiers (Amount
	// is then the account's paid total).
	Tier     string
	FromTier string
	// Attempts counts deliveries tried so far, this one included.
	Attempts int
}

// RechargeState is an account's auto-recharge bookkeeping.
type RechargeState struct {
	// Pending is the id of the recharge in progress ("" when none).
	Pending string
	// Month is the calendar month (UTC, "2006-01") MonthTotal counts.
	Month string
	// MonthTotal is what auto-recharge credited in Month (manual top-ups excluded).
	MonthTotal money.Micros
	// Failures counts consecutive failed recharges; BackoffUntil is when the
	// next may start.
	Failures     int
	BackoffUntil time.Time
}

// Recharge is one auto-recharge, as the charger worker performs it.
type Recharge struct {
	ID      string
	Account string
	Amount  money.Micros
	// Month is the calendar month (UTC) the recharge counts in: the month it was
	// started. MonthTotal is what auto-recharge had credited in that month before it.
	Month      string
	MonthTotal money.Micros
	StartedAt  time.Time
	// Drives counts the times a worker claimed the recharge, this one included:
	// more than one means an earlier worker crashed or the charger did not answer.
	Drives int
}

// RechargeFailure records why a recharge failed and how long auto-recharge then waits.
type RechargeFailure struct {
	Reason string
	// Backoff is the wait after the first consecutive failure; it doubles with
	// each further one, up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Notice queues an auto_recharge.failed notice.
	Notice bool
}

// RechargeCredit is how a paid recharge is credited (CompleteRecharge).
type RechargeCredit struct {
	// CreditTTL is the grant's lifetime (billing.credit_ttl).
	CreditTTL time.Duration
	// PaymentRef, optional, is the payment provider's id of the charge (Stripe:
	// the PaymentIntent; "" from the webhook charger).
	PaymentRef string
	// Ladder is the promotion ladder checked after the payment (Policy.Ladder).
	Ladder Ladder
}

// SweepRequest asks the ledger to bring one account up to date: forfeit expired
// credit, queue the notices that are due, and start an auto-recharge that is due.
type SweepRequest struct {
	Triggers Triggers
	// ExpiringWithin queues credits.expiring (once per grant) for grants with
	// credit left that expire within this long; 0 queues none.
	ExpiringWithin time.Duration
	// Ladder is the promotion ladder (Policy.Ladder): an account whose days
	// since its first payment now meet a higher tier's rule is promoted.
	Ladder Ladder
}

// SweepResult is what a sweep found or did.
type SweepResult struct {
	// Expired is the credit forfeited by this sweep.
	Expired money.Micros
	// HoldsExpired is how many holds expired unsettled (each with its
	// hold_expired event) since a sweep last reported them, whichever operation
	// on the account ended them: summed over sweeps, every expired hold is counted
	// once, whichever proxy swept.
	HoldsExpired int
	// RechargeID is the account's pending recharge, new or left over ("" when none).
	RechargeID string
	// Notices are the ids of the notices waiting in the outbox.
	Notices []string
}

// Errors of the recharge and notice operations.
var (
	// ErrRechargeNotPending: the recharge was completed or failed already (or never existed).
	ErrRechargeNotPending = errors.New("recharge is not pending")
	// ErrRechargeBusy: another worker holds the recharge's lease.
	ErrRechargeBusy = errors.New("recharge is being performed by another worker")
)

// MonthOf is the calendar month (UTC) of t as the ledger records it: "2006-01".
func MonthOf(t time.Time) string { return t.UTC().Format("2006-01") }
