package admin

import (
	"encoding/json"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// The wire types below are the control plane's JSON. The server encodes them and
// admin/client decodes them, so a value survives the round trip byte for byte:
// money as six-decimal strings, times as RFC 3339 in UTC.

// SignedMicros is a money.Micros that may be negative on the wire ("-0.300000"):
// balances and available amounts go below zero by up to the grace, and
// adjustment events carry a sign. money.Micros itself parses only non-negative
// input, as every amount a caller sends must be.
type SignedMicros money.Micros

// MarshalText formats s with six decimals, like money.Micros.
func (s SignedMicros) MarshalText() ([]byte, error) { return money.Micros(s).MarshalText() }

// UnmarshalText parses an optionally negative decimal with at most six places
// (money.ParseFigure). Unlike money.Parse it accepts values beyond
// money.MaxAmount (up to money.MaxFigure): a derived figure such as available =
// credit − debt − reserved may exceed it, and a client must still be able to
// read the answer.
func (s *SignedMicros) UnmarshalText(b []byte) error {
	v, err := money.ParseFigure(string(b))
	if err != nil {
		return err
	}
	*s = SignedMicros(v)
	return nil
}

// String formats s with six decimals.
func (s SignedMicros) String() string { return money.Micros(s).String() }

// CreateAccountRequest is the body of POST /admin/v1/accounts.
type CreateAccountRequest struct {
	ID   string `json:"id"`
	Tier string `json:"tier,omitempty"` // "" = the policy's default tier
}

// CreateKeyRequest is the body of POST /admin/v1/accounts/{id}/keys.
type CreateKeyRequest struct {
	Name string `json:"name,omitempty"`
	// RPM and TPM are the key's own rate limits, requests and tokens per
	// minute (0 or absent: none; a limit at or above the tier's adds nothing).
	RPM int64 `json:"rpm,omitempty"`
	TPM int64 `json:"tpm,omitempty"`
	// Limit is what the key may spend per LimitReset period, USD as a decimal
	// string ("20.00"; the server also takes a bare JSON number); absent or
	// "0": no limit. LimitReset is daily, weekly, monthly (calendar periods in
	// UTC, weeks from Monday) or never (the default).
	Limit      string `json:"limit,omitempty"`
	LimitReset string `json:"limit_reset,omitempty"`
	// ExpiresAt ends the key (RFC 3339, in the future); absent: never.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Models is the key's model allowlist (aliases resolve first); absent or
	// empty: every model.
	Models   []string `json:"models,omitempty"`
	Disabled bool     `json:"disabled,omitempty"`
}

// UpdateKeyRequest is the body of PATCH /admin/v1/accounts/{id}/keys/{key_id}:
// the fields of CreateKeyRequest, each optional (nil: unchanged). On the wire
// "expires_at": null removes the expiry (ClearExpiresAt asks for it), "limit":
// "0" the limit, "models": [] the allowlist, "rpm"/"tpm": 0 the rate limit.
type UpdateKeyRequest struct {
	Name           *string    `json:"name,omitempty"`
	RPM            *int64     `json:"rpm,omitempty"`
	TPM            *int64     `json:"tpm,omitempty"`
	Limit          *string    `json:"limit,omitempty"`
	LimitReset     *string    `json:"limit_reset,omitempty"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	ClearExpiresAt bool       `json:"-"`
	Models         *[]string  `json:"models,omitempty"`
	Disabled       *bool      `json:"disabled,omitempty"`
}

// MarshalJSON writes "expires_at": null for ClearExpiresAt.
func (u UpdateKeyRequest) MarshalJSON() ([]byte, error) {
	type plain UpdateKeyRequest
	b, err := json.Marshal(plain(u))
	if err != nil || !u.ClearExpiresAt || u.ExpiresAt != nil {
		return b, err
	}
	if len(b) == 2 { // "{}"
		return []byte(`{"expires_at":null}`), nil
	}
	return append([]byte(`{"expires_at":null,`), b[1:]...), nil
}

// AddCreditsRequest is the body of POST /admin/v1/accounts/{id}/credits. Amount is
// a decimal string ("25.00"); the server also accepts a bare JSON number.
// ExternalID (the operator's own payment or invoice id, 1–255 bytes) and Note (at
// most 500 bytes), both optional and without control characters, are kept on the
// top-up event as payment_ref and note.
type AddCreditsRequest struct {
	Amount     string     `json:"amount"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	ExternalID string     `json:"external_id,omitempty"`
	Note       string     `json:"note,omitempty"`
}

// AdjustmentRequest is the body of POST /admin/v1/accounts/{id}/adjustments.
// Amount is a signed decimal string ("-1.50" takes credit back, "2.00" credits a
// grant); the server also accepts a bare JSON number. Reason is required.
// ExpiresAt applies only to a positive amount.
type AdjustmentRequest struct {
	Amount    string     `json:"amount"`
	Reason    string     `json:"reason"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// AutoRechargeRequest is the body of PUT /admin/v1/accounts/{id}/auto-recharge.
// The amounts are decimal strings; they may be omitted when Enabled is false.
type AutoRechargeRequest struct {
	Enabled      bool   `json:"enabled"`
	Threshold    string `json:"threshold,omitempty"`
	Amount       string `json:"amount,omitempty"`
	MonthlyLimit string `json:"monthly_limit,omitempty"`
}

// Account is one account in full (GET /admin/v1/accounts/{id}).
type Account struct {
	ID           string       `json:"id"`
	Tier         string       `json:"tier"`
	CreatedAt    time.Time    `json:"created_at"`
	Balance      SignedMicros `json:"balance"` // credit − debt
	Credit       money.Micros `json:"credit"`
	Debt         money.Micros `json:"debt"`
	Reserved     money.Micros `json:"reserved"`
	Available    SignedMicros `json:"available"` // balance − reserved
	Grace        money.Micros `json:"grace"`     // from the current policy
	Grants       []Grant      `json:"grants"`
	AutoRecharge AutoRecharge `json:"auto_recharge"`
	AccountSettings
}

// AccountSettings are what PATCH /admin/v1/accounts/{id} changes, and what
// promotion looks at, as GET account and list answers show them.
type AccountSettings struct {
	Status     string `json:"status"` // "active" or "suspended"
	TierPinned bool   `json:"tier_pinned"`
	Name       string `json:"name,omitempty"`
	Email      string `json:"email,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
	// SpendLimit is the monthly spend limit; absent when there is none.
	SpendLimit *SpendLimit `json:"spend_limit,omitempty"`
	// PaidTotal is what the account has paid (purchases, auto-recharges,
	// operators' top-ups); FirstPaidAt its first payment (absent: none).
	PaidTotal   money.Micros `json:"paid_total"`
	FirstPaidAt *time.Time   `json:"first_paid_at,omitempty"`
}

// SpendLimit is an account's monthly spend limit (calendar month, UTC):
// usage past Monthly is refused; a notice goes out once usage reaches AlertAt.
type SpendLimit struct {
	Monthly money.Micros `json:"monthly"`
	AlertAt money.Micros `json:"alert_at"`
}

// UpdateAccountRequest is the body of PATCH /admin/v1/accounts/{id}: every
// field is optional, and a field left out is left as it is. Amounts are
// decimal strings such as "100.00"; "" clears name, email and external_id; a
// spend_limit with monthly "0" removes the limit.
type UpdateAccountRequest struct {
	Tier       *string            `json:"tier,omitempty"`
	TierPinned *bool              `json:"tier_pinned,omitempty"`
	Status     *string            `json:"status,omitempty"` // "active" or "suspended"
	Name       *string            `json:"name,omitempty"`
	Email      *string            `json:"email,omitempty"`
	ExternalID *string            `json:"external_id,omitempty"`
	SpendLimit *SpendLimitRequest `json:"spend_limit,omitempty"`
}

// SpendLimitRequest sets the monthly spend limit: monthly is required ("0":
// none), alert_at optional (absent or "0": no alert; at most monthly).
type SpendLimitRequest struct {
	Monthly string `json:"monthly"`
	AlertAt string `json:"alert_at,omitempty"`
}

// AccountUpdate is the answer of PATCH /admin/v1/accounts/{id}: the account
// as it is now, and the ledger events the change booked (none when nothing
// changed).
type AccountUpdate struct {
	Account
	Events []string `json:"events"`
}

// AccountSummary is one entry of GET /admin/v1/accounts.
type AccountSummary struct {
	ID        string       `json:"id"`
	Tier      string       `json:"tier"`
	CreatedAt time.Time    `json:"created_at"`
	Balance   SignedMicros `json:"balance"`
	Credit    money.Micros `json:"credit"`
	Debt      money.Micros `json:"debt"`
	Reserved  money.Micros `json:"reserved"`
	Available SignedMicros `json:"available"`
	AccountSettings
	// NextExpiry (the earliest expiry of a grant with credit left) and
	// AutoRecharge (whether it is on) come with a search page only.
	NextExpiry   *time.Time `json:"next_expiry,omitempty"`
	AutoRecharge *bool      `json:"auto_recharge,omitempty"`
}

// AccountList is the answer of GET /admin/v1/accounts, sorted by id.
type AccountList struct {
	Object string           `json:"object"` // "list"
	Data   []AccountSummary `json:"data"`
}

// AccountPage is one page of an account search (GET /admin/v1/accounts?q=…):
// the matching accounts of the part of the index this request scanned, sorted
// by id within the page. Pages follow Redis's scan order, not the ids' order.
type AccountPage struct {
	Object string           `json:"object"` // "list"
	Data   []AccountSummary `json:"data"`
	// NextCursor continues the scan (pass it as cursor); "" when it is complete.
	NextCursor string `json:"next_cursor,omitempty"`
	HasMore    bool   `json:"has_more"`
	// Scanned is how many ids this request examined (at most 5000).
	Scanned int `json:"scanned"`
	// Total is the number of accounts in the index.
	Total int64 `json:"total_accounts"`
}

// Grant is one credit grant.
type Grant struct {
	ID        string       `json:"id"`
	Amount    money.Micros `json:"amount"`
	Remaining money.Micros `json:"remaining"`
	GrantedAt time.Time    `json:"granted_at"`
	ExpiresAt time.Time    `json:"expires_at"`
	Source    string       `json:"source"` // purchase, auto_recharge, promo or adjustment
}

// AutoRecharge are an account's auto-recharge settings.
type AutoRecharge struct {
	Enabled      bool         `json:"enabled"`
	Threshold    money.Micros `json:"threshold"`
	Amount       money.Micros `json:"amount"`
	MonthlyLimit money.Micros `json:"monthly_limit"`
}

// Key describes an app key without its secret.
type Key struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Hint      string    `json:"hint"` // "sk-cg-Ab3…x9Qz"
	// RPM and TPM are the key's rate limits (0: none).
	RPM int64 `json:"rpm"`
	TPM int64 `json:"tpm"`
	KeySettings
}

// KeySettings are a key's limits as the admin API answers them.
type KeySettings struct {
	Limit      *money.Micros `json:"limit"`       // null: no limit
	LimitReset string        `json:"limit_reset"` // daily, weekly, monthly or never
	ExpiresAt  *time.Time    `json:"expires_at"`  // null: never
	Models     []string      `json:"models"`      // null: every model
	Disabled   bool          `json:"disabled"`
}

// CreatedKey is the answer of POST /admin/v1/accounts/{id}/keys: the only time the
// secret Key is ever shown.
type CreatedKey struct {
	ID        string    `json:"id"`
	Key       string    `json:"key"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Hint      string    `json:"hint"`
	RPM       int64     `json:"rpm"`
	TPM       int64     `json:"tpm"`
	KeySettings
}

// KeyList is the answer of GET /admin/v1/accounts/{id}/keys.
type KeyList struct {
	Object string `json:"object"` // "list"
	Data   []Key  `json:"data"`
}

// CreditResult is the answer of POST /admin/v1/accounts/{id}/credits.
type CreditResult struct {
	Grant        Grant        `json:"grant"`
	DebtRepaid   money.Micros `json:"debt_repaid"`
	BalanceAfter SignedMicros `json:"balance_after"`
	EventID      string       `json:"event_id"`
	// Replayed is set by admin/client when the server answered 200: an earlier
	// request with the same Idempotency-Key already credited this grant.
	Replayed bool `json:"-"`
}

// AdjustmentResult is the answer of POST /admin/v1/accounts/{id}/adjustments:
// the adjustment event and, for a positive adjustment, the grant it credited.
type AdjustmentResult struct {
	ID           string       `json:"id"` // the adjustment id (a positive one's grant id too)
	Amount       SignedMicros `json:"amount"`
	Reason       string       `json:"reason"`
	Event        Event        `json:"event"`
	Grant        *Grant       `json:"grant,omitempty"`
	DebtRepaid   money.Micros `json:"debt_repaid"`
	BalanceAfter SignedMicros `json:"balance_after"`
	// Replayed is set by admin/client when the server answered 200: an earlier
	// request with the same Idempotency-Key already made this adjustment.
	Replayed bool `json:"-"`
}

// Event is one ledger event. ID, Type, At, Amount, BalanceAfter, CreditAfter and
// DebtAfter are always present; the other fields appear on the event types they
// describe (usage fields on usage events, grant_id on grant events, and so on).
type Event struct {
	ID           string       `json:"id"` // also the ledger cursor
	Type         string       `json:"type"`
	At           time.Time    `json:"at"`
	Amount       SignedMicros `json:"amount"` // negative only for adjustments
	BalanceAfter SignedMicros `json:"balance_after"`
	CreditAfter  money.Micros `json:"credit_after"`
	DebtAfter    money.Micros `json:"debt_after"`

	GrantID string `json:"grant_id,omitempty"`
	HoldID  string `json:"hold_id,omitempty"`
	// PaymentRef names the payment behind a credit or a take-back: a top-up's
	// external_id, a purchase's or recharge's payment id, and the refunded or
	// disputed payment on the adjustment that took its credit back.
	PaymentRef string `json:"payment_ref,omitempty"`

	RequestID        string `json:"request_id,omitempty"`
	KeyID            string `json:"key_id,omitempty"`
	Model            string `json:"model,omitempty"`
	Endpoint         string `json:"endpoint,omitempty"`
	PromptTokens     *int64 `json:"prompt_tokens,omitempty"`
	CompletionTokens *int64 `json:"completion_tokens,omitempty"`
	CachedTokens     *int64 `json:"cached_tokens,omitempty"`
	ReasoningTokens  *int64 `json:"reasoning_tokens,omitempty"`
	// Audio parts of the prompt/completion tokens (when reported) and the local
	// count kept next to the upstream's.
	AudioPromptTokens     int64         `json:"audio_prompt_tokens,omitempty"`
	AudioCompletionTokens int64         `json:"audio_completion_tokens,omitempty"`
	LocalPromptTokens     int64         `json:"local_prompt_tokens,omitempty"`
	LocalCompletionTokens int64         `json:"local_completion_tokens,omitempty"`
	TokenSource           string        `json:"token_source,omitempty"`
	Cost                  *money.Micros `json:"cost,omitempty"`
	FromCredit            *money.Micros `json:"from_credit,omitempty"`
	ToDebt                *money.Micros `json:"to_debt,omitempty"`
	// What the upstream claimed beyond the billed cost (usage events; not charged).
	Excess       money.Micros `json:"excess,omitempty"`
	ExcessTokens int64        `json:"excess_tokens,omitempty"`
	Note         string       `json:"note,omitempty"`
	// Prices are the unit prices a usage event was charged at (absent on events
	// booked before creditgate recorded them).
	Prices *UnitPrices `json:"prices,omitempty"`
	// Actor is the admin token's name on events an admin call caused.
	Actor string `json:"actor,omitempty"`
	// TierFrom and TierTo are a tier_change's tiers (its note: promotion or manual).
	TierFrom string `json:"tier_from,omitempty"`
	TierTo   string `json:"tier_to,omitempty"`
	// Changes are the fields an account_update changed, as the account hash
	// holds them ("" = absent: active, unpinned, no limit).
	Changes []FieldChange `json:"changes,omitempty"`
}

// FieldChange is one field an account_update changed.
type FieldChange struct {
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// UnitPrices are the prices a usage event was charged at, in USD per 1M tokens
// per token class, as pricing.models writes them.
type UnitPrices struct {
	Input       money.Micros `json:"input"`
	CachedInput money.Micros `json:"cached_input"`
	Output      money.Micros `json:"output"`
	Reasoning   money.Micros `json:"reasoning"`
	AudioInput  money.Micros `json:"audio_input"`
	AudioOutput money.Micros `json:"audio_output"`
}

// EventList is one page of GET /admin/v1/accounts/{id}/ledger, oldest first.
type EventList struct {
	Object  string  `json:"object"` // "list"
	Data    []Event `json:"data"`
	Next    string  `json:"next"`     // pass as ?after= for the next page; "" at the end
	HasMore bool    `json:"has_more"` // Next != ""
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes an error the way OpenAI's API does.
type ErrorDetail struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code"`
	Param   string `json:"param,omitempty"` // the request field at fault, when one is
	// Problems lists every field at fault when there are several (PATCH of an
	// account validates every field at once); Message and Param are the first's.
	Problems []FieldError `json:"problems,omitempty"`
}

// FieldError is one field at fault.
type FieldError struct {
	Param   string `json:"param"`
	Message string `json:"message"`
}

// Health is the body of /healthz and /readyz.
type Health struct {
	Status string `json:"status"`           // "ok", "ready" or "unavailable"
	Reason string `json:"reason,omitempty"` // why not ready
}

// Conversions from the billing domain. Times are normalised to UTC so the JSON
// says "Z" whatever location the store used.

func accountFrom(a billing.Account, grace money.Micros) Account {
	grants := make([]Grant, 0, len(a.Grants))
	for _, g := range a.Grants {
		grants = append(grants, grantFrom(g))
	}
	return Account{
		ID:              a.ID,
		Tier:            a.Tier,
		CreatedAt:       a.CreatedAt.UTC(),
		Balance:         SignedMicros(a.Balance()),
		Credit:          a.Credit,
		Debt:            a.Debt,
		Reserved:        a.Reserved,
		Available:       SignedMicros(a.Available()),
		Grace:           grace,
		Grants:          grants,
		AutoRecharge:    autoRechargeFrom(a.AutoRecharge),
		AccountSettings: settingsFrom(a),
	}
}

func settingsFrom(a billing.Account) AccountSettings {
	st := AccountSettings{
		Status: a.Status, TierPinned: a.TierPinned, Name: a.Name, Email: a.Email, ExternalID: a.ExternalID,
		PaidTotal: a.PaidTotal,
	}
	if st.Status == "" {
		st.Status = billing.StatusActive
	}
	if a.SpendLimit.Monthly > 0 {
		st.SpendLimit = &SpendLimit{Monthly: a.SpendLimit.Monthly, AlertAt: a.SpendLimit.AlertAt}
	}
	if !a.FirstPaidAt.IsZero() {
		t := a.FirstPaidAt.UTC()
		st.FirstPaidAt = &t
	}
	return st
}

func summaryFrom(a billing.Account) AccountSummary {
	return AccountSummary{
		ID:              a.ID,
		Tier:            a.Tier,
		CreatedAt:       a.CreatedAt.UTC(),
		Balance:         SignedMicros(a.Balance()),
		Credit:          a.Credit,
		Debt:            a.Debt,
		Reserved:        a.Reserved,
		Available:       SignedMicros(a.Available()),
		AccountSettings: settingsFrom(a),
	}
}

func grantFrom(g billing.Grant) Grant {
	return Grant{
		ID:        g.ID,
		Amount:    g.Amount,
		Remaining: g.Remaining,
		GrantedAt: g.GrantedAt.UTC(),
		ExpiresAt: g.ExpiresAt.UTC(),
		Source:    g.Source,
	}
}

func autoRechargeFrom(ar billing.AutoRecharge) AutoRecharge {
	return AutoRecharge{
		Enabled:      ar.Enabled,
		Threshold:    ar.Threshold,
		Amount:       ar.Amount,
		MonthlyLimit: ar.MonthlyLimit,
	}
}

func keyFrom(k billing.APIKey) Key {
	return Key{ID: k.ID, Name: k.Name, CreatedAt: k.CreatedAt.UTC(), Hint: k.Hint, RPM: k.RPM, TPM: k.TPM, KeySettings: keySettingsFrom(k)}
}

func keySettingsFrom(k billing.APIKey) KeySettings {
	out := KeySettings{LimitReset: k.LimitReset, Models: k.Models, Disabled: k.Disabled}
	if out.LimitReset == "" {
		out.LimitReset = billing.LimitNever
	}
	if k.Limit > 0 {
		l := k.Limit
		out.Limit = &l
	}
	if !k.ExpiresAt.IsZero() {
		e := k.ExpiresAt.UTC()
		out.ExpiresAt = &e
	}
	return out
}

func creditResultFrom(r billing.TopUpResult) CreditResult {
	return CreditResult{
		Grant:        grantFrom(r.Grant),
		DebtRepaid:   r.DebtRepaid,
		BalanceAfter: SignedMicros(r.BalanceAfter),
		EventID:      r.EventID,
	}
}

func adjustmentResultFrom(r billing.AdjustResult) AdjustmentResult {
	ev := billing.Event{
		ID: r.EventID, Type: billing.EventAdjustment, At: r.At, Amount: r.Amount,
		BalanceAfter: r.BalanceAfter, CreditAfter: r.CreditAfter, DebtAfter: r.DebtAfter, Note: r.Reason,
	}
	out := AdjustmentResult{
		ID: r.ID, Amount: SignedMicros(r.Amount), Reason: r.Reason, DebtRepaid: r.DebtRepaid,
		BalanceAfter: SignedMicros(r.BalanceAfter),
	}
	if r.Grant != nil {
		ev.GrantID = r.Grant.ID
		g := grantFrom(*r.Grant)
		out.Grant = &g
	}
	out.Event = eventFrom(ev)
	return out
}

func eventFrom(e billing.Event) Event {
	out := Event{
		ID:           e.ID,
		Type:         string(e.Type),
		At:           e.At.UTC(),
		Amount:       SignedMicros(e.Amount),
		BalanceAfter: SignedMicros(e.BalanceAfter),
		CreditAfter:  e.CreditAfter,
		DebtAfter:    e.DebtAfter,
		GrantID:      e.GrantID,
		HoldID:       e.HoldID,
		RequestID:    e.RequestID,
		KeyID:        e.KeyID,
		Model:        e.Model,
		Endpoint:     e.Endpoint,
		TokenSource:  e.TokenSource,
		Note:         e.Note,
		PaymentRef:   e.PaymentRef,
	}
	// Token counts and costs are meaningful even when zero, so they are present
	// exactly on usage events rather than omitted when zero.
	if e.Type == billing.EventUsage {
		out.PromptTokens = ptr(e.PromptTokens)
		out.CompletionTokens = ptr(e.CompletionTokens)
		out.CachedTokens = ptr(e.CachedTokens)
		out.ReasoningTokens = ptr(e.ReasoningTokens)
		out.AudioPromptTokens, out.AudioCompletionTokens = e.AudioPromptTokens, e.AudioCompletionTokens
		out.LocalPromptTokens, out.LocalCompletionTokens = e.LocalPromptTokens, e.LocalCompletionTokens
		out.Cost = ptr(e.Cost)
		out.FromCredit = ptr(e.FromCredit)
		out.ToDebt = ptr(e.ToDebt)
		if p := e.Prices; p != nil {
			out.Prices = &UnitPrices{Input: p.Input, CachedInput: p.CachedInput, Output: p.Output,
				Reasoning: p.Reasoning, AudioInput: p.AudioInput, AudioOutput: p.AudioOutput}
		}
		out.Excess, out.ExcessTokens = e.Excess, e.ExcessTokens
	}
	out.Actor, out.TierFrom, out.TierTo = e.Actor, e.TierFrom, e.TierTo
	for _, c := range e.Changes {
		out.Changes = append(out.Changes, FieldChange(c))
	}
	return out
}

func ptr[T any](v T) *T { return &v }
