// Package billing is creditgate's prepaid ledger: accounts, credit grants that expire,
// holds (two-phase reservations), usage settlement, debt, top-ups and the append-only
// ledger of events that explains every micro-dollar.
//
// This package holds the domain types, the policy (grace, tiers, minimum purchase)
// and the Ledger interface the proxy and the admin API depend on. The Redis
// implementation, with its Lua scripts, lives in billing/redisstore; every rule that
// touches money is enforced there atomically, so any number of proxies may share it.
package billing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/creditgate/creditgate/money"
)

// EventType names a ledger event.
type EventType string

// The ledger event types. The effect of each on the balance (credit − debt):
//
//	topup, auto_recharge  +amount  a grant was credited (debt it repaid is a separate debt_repaid event)
//	usage                 −amount  a settled request; amount = cost
//	expire                −amount  an expired grant's remaining credit was forfeited
//	release                0       a hold was released unused; amount = the hold
//	hold_expired           0       a hold reached its TTL unsettled (its proxy crashed or lost Redis); amount = the hold
//	debt_repaid            0       amount of a new grant went to pay debt
//	adjustment            ±amount  an operator's correction (see Event.Amount sign), or a take-back:
//	                               −amount (maybe 0) with payment_ref and grant_id, credit a refunded or
//	                               disputed payment's grant still held (PurchaseStore.TakeBack)
//	auto_recharge_failed   0       the charger declined (or never answered) a recharge; amount = the recharge
//	auto_recharge_skipped  0       a recharge was not started: it would pass the monthly limit; amount = the recharge
//	tier_change            0       the account's tier changed (accounts.go)
//	account_update         0       other settings of the account changed (accounts.go)
//
// An event an admin call caused carries Actor, the admin token's name.
const (
	EventTopUp        EventType = "topup"
	EventAutoRecharge EventType = "auto_recharge"
	EventUsage        EventType = "usage"
	EventRelease      EventType = "release"
	EventExpire       EventType = "expire"
	EventDebtRepaid   EventType = "debt_repaid"
	EventAdjustment   EventType = "adjustment"

	EventAutoRechargeFailed  EventType = "auto_recharge_failed"
	EventAutoRechargeSkipped EventType = "auto_recharge_skipped"

	EventHoldExpired EventType = "hold_expired"
)

// How a hold ends. Every admitted request's hold ends in exactly one of:
//
//	usage                  settled: the request is charged
//	release                released: the upstream failed, nothing is charged
//	hold_expired           it reached its TTL unsettled and a sweep ended it
//	hold_expired, usage    the same, then a late settle: a request served is still
//	                       charged when its settlement comes (a stream longer than
//	                       the hold's TTL, a spool replay, a crash recovery)
//
// A release after hold_expired books nothing (the hold already ended uncharged);
// a settle or release after usage or release books nothing (idempotent by hold
// id). The audit holds the ledger to this (check "holds").

// Grant sources.
const (
	SourcePurchase     = "purchase"      // a top-up through the admin API, or a purchase paid through a payment provider
	SourceAutoRecharge = "auto_recharge" // paid by the auto-recharge charger
	SourcePromo        = "promo"         // a top-up with an explicit expires_at
	SourceAdjustment   = "adjustment"    // an operator's positive adjustment
)

// Token sources of a usage event.
const (
	TokenSourceUpstream = "upstream" // the upstream's reported usage
	TokenSourceLocal    = "local"    // creditgate's own tiktoken count
)

// Account is a snapshot of one account's state.
type Account struct {
	ID        string
	Tier      string
	CreatedAt time.Time
	// Credit is the sum of the remaining amounts of unexpired grants.
	Credit money.Micros
	// Debt is what settled usage took past zero credit; the next grant pays it first.
	Debt money.Micros
	// Reserved is the sum of live (unexpired, unsettled) holds.
	Reserved money.Micros
	// Grants are the account's grants, live ones first by expiry, then spent or
	// expired ones newest first. GetAccount fills it; ListAccounts does not.
	Grants       []Grant
	AutoRecharge AutoRecharge
	// Totals since creation, kept by the scripts for audit.
	Totals Totals
	// Depleted says why credit reached zero last: "" while credit remains,
	// "usage", "expired" or "adjustment" (a negative adjustment took the rest).
	Depleted string
	// Recharge is the auto-recharge state: pending recharge, month total, back-off.
	Recharge RechargeState
	// LastEventID is the id of the newest ledger event when the snapshot was taken
	// ("" for an empty ledger): the snapshot and the ledger up to it agree exactly,
	// which is what an audit replays. Filled by GetAccount.
	LastEventID string
	// AsOf is the time of the snapshot (the ledger's clock). Filled by GetAccount.
	AsOf time.Time
	// Checkpoint is the running state at the head of a trimmed ledger (nil: the
	// ledger starts at the account's first event). Filled by GetAccount, in the
	// same atomic read as the rest of the snapshot.
	Checkpoint *Checkpoint

	// Status is StatusActive or StatusSuspended (a suspended account's keys are
	// refused).
	Status string
	// TierPinned stops automatic promotion.
	TierPinned bool
	// Name, Email and ExternalID describe the account for its operator ("" = none).
	Name       string
	Email      string
	ExternalID string
	// SpendLimit is the monthly spend limit (zero: none).
	SpendLimit SpendLimit
	// PaidTotal is what the account has paid (purchases, auto-recharges and
	// operators' top-ups of source purchase), and FirstPaidAt when it first
	// paid (zero: never): what tier promotion looks at. Payments booked before
	// creditgate counted them are not in it.
	PaidTotal   money.Micros
	FirstPaidAt time.Time
}

// Balance is credit − debt.
func (a Account) Balance() money.Micros { return a.Credit - a.Debt }

// Available is balance − reserved: what new requests may still reserve (plus grace).
func (a Account) Available() money.Micros { return a.Credit - a.Debt - a.Reserved }

// Totals are an account's running sums since creation. Conservation holds exactly:
//
//	Granted = Consumed + DebtRepaid + Expired + AdjustedOut + Credit
//	Usage   = Consumed + DebtCreated          (DebtCreated = Debt + DebtRepaid)
//
// Positive adjustments are grants (in Granted); negative ones are AdjustedOut.
type Totals struct {
	Granted     money.Micros // Σ grant amounts (positive adjustments included)
	Usage       money.Micros // Σ settled costs
	Consumed    money.Micros // part of Usage paid from credit
	DebtRepaid  money.Micros // grant amounts that went to pay debt
	Expired     money.Micros // forfeited credit
	AdjustedOut money.Micros // credit taken back by negative adjustments
}

// Grant is one purchase of credit.
type Grant struct {
	ID        string
	Amount    money.Micros
	Remaining money.Micros
	GrantedAt time.Time
	ExpiresAt time.Time
	Source    string
}

// AutoRecharge are an account's auto-recharge settings.
type AutoRecharge struct {
	Enabled      bool
	Threshold    money.Micros // recharge when the balance drops below this
	Amount       money.Micros // how much to buy each time
	MonthlyLimit money.Micros // cap on auto-recharged credit per calendar month (UTC)
}

// Event is one entry of an account's append-only ledger.
type Event struct {
	ID           string // the ledger cursor; strictly increasing per account
	Type         EventType
	At           time.Time
	Amount       money.Micros // magnitude, ≥ 0 (for adjustment, signed)
	BalanceAfter money.Micros
	CreditAfter  money.Micros
	DebtAfter    money.Micros
	GrantID      string // topup, auto_recharge, expire, debt_repaid, positive adjustment
	Source       string // topup, auto_recharge, positive adjustment: the grant's source
	HoldID       string // usage, release, hold_expired
	// Usage details (type usage; RequestID/KeyID/Model/Endpoint also on release
	// and hold_expired).
	RequestID        string
	KeyID            string
	Model            string
	Endpoint         string
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	ReasoningTokens  int64
	// Audio parts of the prompt and completion tokens, and creditgate's local count
	// of both (usage events).
	AudioPromptTokens     int64
	AudioCompletionTokens int64
	LocalPromptTokens     int64
	LocalCompletionTokens int64
	TokenSource           string
	Cost                  money.Micros
	FromCredit            money.Micros // part of Cost paid from grants
	ToDebt                money.Micros // part of Cost that became debt
	// Excess and ExcessTokens (usage events) are what the upstream claimed beyond
	// what the request could cost (see Usage.Excess): a record for disputes with
	// the provider, not money moved.
	Excess       money.Micros
	ExcessTokens int64
	// Note is an adjustment's or take-back's reason, a top-up's note (the admin
	// API's note), or why a usage was billed as it was.
	Note string
	// PaymentRef names the payment behind a credit or a take-back: a top-up's
	// external_id, a purchase's or a provider-charged recharge's payment id
	// (Stripe: the PaymentIntent), and the same id on the adjustment that took a
	// refunded or disputed payment's credit back.
	PaymentRef string
	// Prices are the unit prices a usage event was charged at; nil on other
	// events and on usage events booked before prices were recorded.
	Prices *UnitPrices
	// Actor is the admin token's name, on events an admin call caused (top-ups,
	// adjustments, purchases started from the admin API, account updates).
	Actor string
	// TierFrom and TierTo are a tier_change's tiers (its Note is the reason,
	// TierChangePromotion or TierChangeManual).
	TierFrom string
	TierTo   string
	// Changes are the fields an account_update changed.
	Changes []FieldChange
}

// UnitPrices are the prices a request was billed at, in micro-USD per 1M tokens
// per token class (metering.Price's classes: "0.15" USD per 1M tokens is
// 150000). Recorded on each usage event, they make a price change visible in the
// ledger from the first request it applied to.
type UnitPrices struct {
	Input       money.Micros
	CachedInput money.Micros
	AudioInput  money.Micros
	Output      money.Micros
	Reasoning   money.Micros
	AudioOutput money.Micros
}

// Tier limits what an account may buy and use, and says how an account earns it.
type Tier struct {
	MaxTopUp   money.Micros // largest single top-up; 0 = no limit
	MaxBalance money.Micros // largest credit after a top-up; 0 = no limit
	// RPM and TPM are the account's requests and tokens per minute; 0 = no limit.
	RPM int64
	TPM int64
	// MonthlyUsageLimit caps the usage of a calendar month (UTC); 0 = no limit.
	MonthlyUsageLimit money.Micros
	// Qualify, when set, puts the tier on the promotion ladder (Policy.Ladder):
	// an account below it is promoted into it once it meets the rule.
	Qualify *Qualify
}

// Policy is the part of the configuration the ledger applies. It may change at run
// time (hot reload); callers pass the current one with each call.
type Policy struct {
	Grace       money.Micros
	MinPurchase money.Micros
	CreditTTL   time.Duration
	HoldTTL     time.Duration
	DefaultTier string
	Tiers       map[string]Tier
	// AutoRechargeMin is the smallest auto-recharge amount an account may set.
	AutoRechargeMin money.Micros
}

// TierFor returns the named tier's limits, and whether the tier exists.
func (p Policy) TierFor(name string) (Tier, bool) {
	t, ok := p.Tiers[name]
	return t, ok
}

// ReserveRequest asks to admit a request by holding its estimated cost.
type ReserveRequest struct {
	Account string
	HoldID  string // unique per request; a retried call with the same id is answered the same
	// Estimate is the cost of the request as sent (prompt + the most output it allows).
	Estimate money.Micros
	// Minimum is the cost below which the request is not worth forwarding (the prompt
	// plus one output token). When Minimum < Estimate and the estimate is not
	// affordable, the ledger holds what is affordable (≥ Minimum) instead, and the
	// caller clamps the request's output to the held amount. Minimum == Estimate (or
	// 0) disables partial holds.
	Minimum money.Micros
	Grace   money.Micros
	TTL     time.Duration
	// RequestID, KeyID, Model and Endpoint describe the request, as its usage event
	// will. The hold keeps them so that, should it expire unsettled, its
	// hold_expired event says which request it was. Optional (empty: left out).
	RequestID string
	KeyID     string
	Model     string
	Endpoint  string
	// KeyLimit and KeyLimitReset are the key's (APIKey.Limit, LimitReset):
	// with KeyLimit > 0 the hold is at most what the key may still spend in its
	// period (limits.go). KeyID names the key.
	KeyLimit      money.Micros
	KeyLimitReset string
	// TierUsageLimits are the tiers' MonthlyUsageLimit by tier name (non-zero
	// ones): the account's tier's, with its SpendLimit.Monthly, caps the
	// calendar month's usage. nil: no tier limit.
	TierUsageLimits map[string]money.Micros
}

// Denial reasons, for the 429 and for metrics.
const (
	ReasonEmpty        = "empty"        // no available credit
	ReasonExpired      = "expired"      // credit ran out because grants expired
	ReasonInsufficient = "insufficient" // some credit, but not enough for the estimate
)

// Reservation is the answer to a ReserveRequest.
type Reservation struct {
	Admitted bool
	// Held is the amount reserved: Estimate, or less (≥ Minimum) for a partial hold.
	Held money.Micros
	// Reason is set when not admitted: ReasonEmpty, ReasonExpired,
	// ReasonInsufficient, ReasonKeyLimit or ReasonSpendLimit.
	Reason string
	// Available is available credit after the reservation (before it when denied).
	Available money.Micros
	ExpiresAt time.Time
	// LimitedBy says, for a partial hold (Held < Estimate), which room bounded
	// it: ReasonInsufficient (the balance plus grace), ReasonKeyLimit or
	// ReasonSpendLimit; "" for a whole hold, or a hold returned again to a retry.
	LimitedBy string
}

// Usage is what a settled request consumed, as recorded in its usage event.
type Usage struct {
	RequestID        string
	KeyID            string
	Model            string
	Endpoint         string
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	ReasoningTokens  int64
	// AudioPromptTokens and AudioCompletionTokens are the audio parts of the prompt
	// and completion tokens, when the upstream reports them.
	AudioPromptTokens     int64
	AudioCompletionTokens int64
	TokenSource           string
	// LocalPromptTokens and LocalCompletionTokens are creditgate's own count, kept
	// next to the upstream's for cross-checking.
	LocalPromptTokens     int64
	LocalCompletionTokens int64
	// Excess is what the upstream claimed beyond the billed cost: the cost of its
	// reported usage (or of the output it sent) less Cost, when that passed what the
	// request could cost (its prompt plus the output cap it was sent, at most the
	// hold). ExcessTokens are the claimed tokens beyond the billed ones. Neither is
	// charged; they are kept so the operator can dispute them with the provider.
	Excess       money.Micros
	ExcessTokens int64
	Note         string
	// Prices are the unit prices Cost was computed with, recorded on the usage
	// event; nil records none.
	Prices *UnitPrices
}

// SettleRequest charges the actual cost of a held request and releases its hold.
type SettleRequest struct {
	Account string
	HoldID  string
	Cost    money.Micros
	Usage   Usage
	// Triggers say what the settle may set off besides the debit (auto-recharge,
	// notices). The zero value sets off nothing.
	Triggers Triggers
}

// Settlement is the answer to a settle or release.
type Settlement struct {
	EventID      string
	Cost         money.Micros
	FromCredit   money.Micros
	ToDebt       money.Micros
	BalanceAfter money.Micros
	// Replayed is true when the hold had already been settled or released; the
	// result is then the original one and nothing changed.
	Replayed bool
	// RechargeID is set when this settle left the balance below the account's
	// auto-recharge threshold and started a recharge (a replayed settle returns the
	// same id). The charger worker performs it.
	RechargeID string
	// Notices are the ids of the notices this settle queued in the account's
	// outbox (balance.low, balance.exhausted), for the notice worker to deliver.
	Notices []string
}

// TopUpRequest credits a grant.
type TopUpRequest struct {
	Account string
	// GrantID makes the top-up idempotent: a retry with the same id returns the
	// same grant and credits nothing more.
	GrantID   string
	Amount    money.Micros
	ExpiresAt time.Time // zero: now + Policy.CreditTTL
	Source    string    // SourcePurchase, SourceAutoRecharge, SourcePromo
	// IdempotencyKey and Fingerprint (a hash of the request body) implement the
	// admin API's Idempotency-Key: same key and fingerprint replays, a different
	// fingerprint is ErrIdempotencyConflict. Optional.
	IdempotencyKey string
	Fingerprint    string
	// SkipLimits bypasses min purchase and tier limits (auto-recharge applies its own).
	SkipLimits bool
	// PaymentRef (the admin API's external_id) and Note, both optional, are kept
	// on the top-up event (payment_ref, note) so an operator's own payment can be
	// reconciled with the credit; see ValidPaymentRef and ValidNote. They are part
	// of the request's meaning: the admin API puts them in its Fingerprint.
	PaymentRef string
	Note       string
	// Actor is the admin token's name (kept on the event; "" = none).
	Actor string
}

// TopUpResult is the credited grant.
type TopUpResult struct {
	Grant        Grant
	DebtRepaid   money.Micros
	BalanceAfter money.Micros
	EventID      string
	Replayed     bool
}

// MaxAdjustReasonLen bounds an adjustment's reason (bytes).
const MaxAdjustReasonLen = 500

// AdjustRequest is an operator's correction of an account's credit (see
// Ledger.Adjust). It is not a purchase: no minimum purchase, tier maximum or
// maximum balance applies.
type AdjustRequest struct {
	// Amount is signed and non-zero, |Amount| ≤ money.MaxAmount. Positive credits a
	// grant of source "adjustment" (paying debt first); negative takes credit back
	// from live grants, earliest expiry first.
	Amount money.Micros
	// Reason is required: one line of at most MaxAdjustReasonLen bytes, without
	// control characters. It becomes the event's note.
	Reason string
	// ExpiresAt is the expiry of a positive adjustment's grant (zero: now +
	// Policy.CreditTTL); it must be in the future, and zero for a negative one.
	ExpiresAt time.Time
	// IdempotencyKey, optional, names the adjustment: the same key with the same
	// amount, reason and expiry replays the original result; with a different one
	// it is ErrIdempotencyConflict. Without it each call is a new adjustment (the
	// store's own retries of that call stay idempotent).
	IdempotencyKey string
	// Actor is the admin token's name (kept on the event; "" = none).
	Actor string
}

// AdjustResult is the recorded adjustment.
type AdjustResult struct {
	ID      string // the adjustment id (also the grant id of a positive one)
	EventID string // the adjustment event
	At      time.Time
	Amount  money.Micros // signed, as requested
	Reason  string
	// Grant is the credited grant of a positive adjustment, as credited (its
	// remaining is what was left after repaying debt); nil for a negative one.
	Grant        *Grant
	DebtRepaid   money.Micros
	BalanceAfter money.Micros
	CreditAfter  money.Micros
	DebtAfter    money.Micros
	// Replayed is true when the adjustment had already been recorded: the result
	// is the original one and nothing changed.
	Replayed bool
}

// ValidAdjustReason checks an adjustment's reason.
func ValidAdjustReason(reason string) error {
	switch {
	case strings.TrimSpace(reason) == "":
		return fmt.Errorf("%w: an adjustment needs a reason", ErrInvalid)
	case len(reason) > MaxAdjustReasonLen:
		return fmt.Errorf("%w: the reason is longer than %d bytes", ErrInvalid, MaxAdjustReasonLen)
	case !utf8.ValidString(reason):
		return fmt.Errorf("%w: the reason is not valid UTF-8", ErrInvalid)
	case strings.ContainsFunc(reason, unicode.IsControl):
		return fmt.Errorf("%w: the reason contains a control character", ErrInvalid)
	}
	return nil
}

// Bounds of a payment reference and of a top-up's note (bytes).
const (
	MaxPaymentRefLen = 255
	MaxNoteLen       = MaxAdjustReasonLen
)

// ValidPaymentRef checks a payment reference (a top-up's external_id, a
// provider's payment id): 1 to MaxPaymentRefLen bytes of valid UTF-8 without
// control characters.
func ValidPaymentRef(ref string) error {
	return validText("payment reference", ref, MaxPaymentRefLen)
}

// ValidNote checks a top-up's note: like an adjustment's reason, one line of at
// most MaxNoteLen bytes without control characters, but optional ("" is valid).
func ValidNote(note string) error {
	if note == "" {
		return nil
	}
	return validText("note", note, MaxNoteLen)
}

func validText(what, s string, maxLen int) error {
	switch {
	case strings.TrimSpace(s) == "":
		return fmt.Errorf("%w: the %s is empty", ErrInvalid, what)
	case len(s) > maxLen:
		return fmt.Errorf("%w: the %s is longer than %d bytes", ErrInvalid, what, maxLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: the %s is not valid UTF-8", ErrInvalid, what)
	case strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Errorf("%w: the %s contains a control character", ErrInvalid, what)
	}
	return nil
}

// InsufficientCreditError refuses a negative adjustment larger than the credit
// not held by in-flight requests. It wraps ErrInsufficientCredit.
type InsufficientCreditError struct {
	Amount    money.Micros // what was asked to take back (positive)
	Available money.Micros // credit − reserved, at least 0
	Credit    money.Micros
	Reserved  money.Micros
}

func (e *InsufficientCreditError) Error() string {
	return fmt.Sprintf("cannot take back %s: only %s of credit is available (credit %s − reserved %s held by in-flight requests)",
		e.Amount, e.Available, e.Credit, e.Reserved)
}

func (e *InsufficientCreditError) Unwrap() error { return ErrInsufficientCredit }

// EventPage is one page of an account's ledger.
type EventPage struct {
	Events []Event
	// Next is the cursor to pass as After for the following page; "" at the end.
	Next string
}

// Ledger is the prepaid ledger. Implementations must make every method atomic per
// account and safe for concurrent use by many processes.
type Ledger interface {
	CreateAccount(ctx context.Context, id, tier string) (Account, error)
	GetAccount(ctx context.Context, id string) (Account, error)
	ListAccounts(ctx context.Context) ([]Account, error)
	SetTier(ctx context.Context, id, tier string) error
	// UpdateAccount applies u atomically and books it in the ledger (a
	// tier_change for the tier, an account_update for the rest, each with
	// u.Actor). Fields already at their new value are no change; nothing
	// changed books nothing. It does not check u against the policy (the
	// caller runs u.Validate).
	UpdateAccount(ctx context.Context, id string, u AccountUpdate) (AccountUpdateResult, error)
	SetAutoRecharge(ctx context.Context, id string, ar AutoRecharge) error

	Reserve(ctx context.Context, r ReserveRequest) (Reservation, error)
	Settle(ctx context.Context, s SettleRequest) (Settlement, error)
	Release(ctx context.Context, account, holdID string, u Usage) (Settlement, error)

	TopUp(ctx context.Context, p Policy, r TopUpRequest) (TopUpResult, error)
	// Adjust records an operator's correction of account's credit (see
	// AdjustRequest); p gives the default grant lifetime.
	Adjust(ctx context.Context, p Policy, account string, r AdjustRequest) (AdjustResult, error)
	// Events returns up to limit of account's events with an id after after
	// ("" from the first), oldest first; Next is the last event's id when more
	// follow, "" at the newest. A cursor of either direction may be any event
	// id (ValidEventID), whether or not an event has it: report.Scan starts at
	// an id made of a time.
	Events(ctx context.Context, account, after string, limit int) (EventPage, error)
	// EventsBefore returns up to limit of account's events with an id before
	// before ("" from the newest), newest first; Next is the oldest event's id on
	// the page, to pass as before for the following (older) page, "" when no
	// older event is left. A cursor that is not an event id is ErrInvalid.
	EventsBefore(ctx context.Context, account, before string, limit int) (EventPage, error)
	// HoldOutcome tells how hold holdID of account ended, for a caller that must
	// not book it twice (a spool replaying a settlement): from the hold's record
	// while the store keeps it, else from the ledger's events since since (no
	// later than the hold's reservation, by the caller's clock; zero searches the
	// whole ledger). HoldUnknown means neither knows the hold: it was never
	// reserved here, or its record and events were lost together (Redis restored
	// from an older state), and settling it books it.
	HoldOutcome(ctx context.Context, account, holdID string, since time.Time) (HoldOutcome, error)
}

// HoldState is how far a hold got, as the ledger knows it.
type HoldState string

// Hold states (HoldOutcome.State).
const (
	HoldUnknown  HoldState = ""         // neither a record nor an event of the hold (since the time asked)
	HoldLive     HoldState = "held"     // reserved, and not settled, released or ended by a sweep yet
	HoldExpired  HoldState = "expired"  // a sweep ended it unsettled (hold_expired): a settle still charges it, a release books nothing
	HoldSettled  HoldState = "settled"  // charged (usage)
	HoldReleased HoldState = "released" // released (release), or released after it expired (nothing booked)
	// HoldTrimmed: neither a record nor an event of the hold is left, and the
	// ledger was trimmed past the time asked, so the events that would tell may
	// be gone. Whether it was booked cannot be told here: booking it might book
	// it twice, so a caller must not (the spool sets it aside for an operator).
	HoldTrimmed HoldState = "trimmed"
)

// HoldOutcome is what the ledger knows of one hold (Ledger.HoldOutcome).
type HoldOutcome struct {
	State HoldState
	// EventID is the event that ended the hold: its usage, release or
	// hold_expired ("" while it is live or unknown).
	EventID string
}

// Booked reports whether the hold was settled or released: a settle or a
// release of it must book nothing more.
func (o HoldOutcome) Booked() bool { return o.State == HoldSettled || o.State == HoldReleased }

// Errors of the ledger. Callers test with errors.Is; the wrapped message adds detail.
var (
	ErrAccountNotFound     = errors.New("account not found")
	ErrAccountExists       = errors.New("account already exists")
	ErrUnknownTier         = errors.New("unknown tier")
	ErrBelowMinimum        = errors.New("amount below the minimum purchase")
	ErrAboveMaxTopUp       = errors.New("amount above the tier's maximum top-up")
	ErrAboveMaxBalance     = errors.New("credit would exceed the tier's maximum balance")
	ErrIdempotencyConflict = errors.New("idempotency key reused with a different request")
	ErrInvalid             = errors.New("invalid argument")
	// ErrInsufficientCredit refuses a negative adjustment above credit − reserved
	// (see InsufficientCreditError).
	ErrInsufficientCredit = errors.New("insufficient credit")
	// ErrUnavailable wraps store failures (Redis unreachable or timing out). The
	// proxy answers 503 and forwards nothing.
	ErrUnavailable = errors.New("billing store unavailable")
	// ErrNotDurable says a change that brings money in (a top-up, an adjustment, a
	// recharge's credit) was made on the Redis master but fewer replicas than
	// required confirmed it in time, so a failover may or may not keep it. It
	// wraps ErrUnavailable: the caller answers 503 and the client retries with the
	// same idempotency key, which applies the change once, or confirms it.
	ErrNotDurable = fmt.Errorf("%w: the change is not confirmed by enough replicas", ErrUnavailable)
)

// LimitError reports a top-up limit with the numbers involved.
type LimitError struct {
	Err    error // ErrBelowMinimum, ErrAboveMaxTopUp or ErrAboveMaxBalance
	Limit  money.Micros
	Amount money.Micros
}

func (e *LimitError) Error() string {
	switch e.Err {
	case ErrBelowMinimum:
		return fmt.Sprintf("amount %s is below the minimum purchase of %s", e.Amount, e.Limit)
	case ErrAboveMaxTopUp:
		return fmt.Sprintf("amount %s is above this tier's maximum top-up of %s", e.Amount, e.Limit)
	case ErrAboveMaxBalance:
		return fmt.Sprintf("credit after this top-up would be %s, above this tier's maximum balance of %s", e.Amount, e.Limit)
	}
	return e.Err.Error()
}

func (e *LimitError) Unwrap() error { return e.Err }

// ValidAccountID checks an account id: 1–64 characters of [A-Za-z0-9._-], starting
// with a letter or digit. Ids end up inside Redis hash tags and key names, so braces,
// colons and spaces are never allowed.
func ValidAccountID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: account id is empty", ErrInvalid)
	}
	if len(id) > 64 {
		return fmt.Errorf("%w: account id %.20q… is longer than 64 characters", ErrInvalid, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("%w: account id %q must start with a letter or digit", ErrInvalid, id)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%w: account id %q may only contain letters, digits, '.', '_' and '-'", ErrInvalid, id)
		}
	}
	return nil
}

// PendingSettlement is a settle, or a release, that could not reach the store. The
// proxy spools it; a spool replays it later through Ledger.Settle or Ledger.Release,
// which are idempotent by hold id, so replaying one twice is harmless.
type PendingSettlement struct {
	Release bool          // a release (Settle.Cost is then 0)
	Settle  SettleRequest // Account, HoldID, Cost and Usage
	At      time.Time     // when the proxy gave up on the store
}
