package billing

import (
	"cmp"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/creditgate/creditgate/money"
)

// Account statuses (Account.Status). The account hash stores "suspended", or
// nothing for active: accounts created before statuses existed are active.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
)

// Event types of account changes. Neither moves money: balance_after, credit_after
// and debt_after repeat the balance as it was.
//
//	tier_change     0  the account's tier changed: TierFrom → TierTo, Reason
//	                   "promotion" (a qualify rule was met) or "manual" (PATCH)
//	account_update  0  fields other than the tier changed (Changes), by Actor
const (
	EventTierChange    EventType = "tier_change"
	EventAccountUpdate EventType = "account_update"
)

// Reasons of a tier_change event.
const (
	TierChangePromotion = "promotion"
	TierChangeManual    = "manual"
)

// NoticeTierChanged is queued when an account is promoted to a higher tier.
const NoticeTierChanged = "tier.changed"

// SpendLimit is an account's monthly spend limit (calendar month, UTC): usage
// past Monthly is refused; AlertAt (≤ Monthly) sends a notice once the month's
// usage reaches it. Zero means none.
type SpendLimit struct {
	Monthly money.Micros
	AlertAt money.Micros
}

// FieldChange is one field an account_update event changed: its name in the
// account hash, and its values before and after ("" = absent).
type FieldChange struct {
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// Bounds of an account's descriptive fields (bytes).
const (
	MaxAccountNameLen = 200
	MaxEmailLen       = 254 // RFC 5321's path limit
	MaxExternalIDLen  = MaxPaymentRefLen
)

// AccountUpdate is a change of an account's settings (Ledger.UpdateAccount); a nil
// field is left as it is. Every change is applied in one atomic step and
// recorded in the ledger with Actor.
type AccountUpdate struct {
	Tier       *string
	TierPinned *bool
	Status     *string // StatusActive or StatusSuspended
	// Name, Email and ExternalID: "" clears the field.
	Name       *string
	Email      *string
	ExternalID *string
	SpendLimit *SpendLimit // zero Monthly clears the limit
	// Actor names who made the change (the admin token's name); recorded on
	// the events.
	Actor string
}

// Empty reports whether u changes nothing.
func (u AccountUpdate) Empty() bool {
	return u.Tier == nil && u.TierPinned == nil && u.Status == nil && u.Name == nil && u.Email == nil &&
		u.ExternalID == nil && u.SpendLimit == nil
}

// FieldProblem is one invalid field of a request, named as the API names it.
type FieldProblem struct {
	Field   string
	Message string
}

// Validate checks every field of u against p and returns every problem at once
// (nil when u is valid), each naming its field.
func (u AccountUpdate) Validate(p Policy) []FieldProblem {
	var ps []FieldProblem
	add := func(field, format string, args ...any) {
		ps = append(ps, FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if u.Tier != nil {
		if _, ok := p.TierFor(*u.Tier); !ok {
			add("tier", "unknown tier %q; configured tiers: %s", *u.Tier, strings.Join(p.TierNames(), ", "))
		}
	}
	if u.Status != nil && *u.Status != StatusActive && *u.Status != StatusSuspended {
		add("status", "status %q is not %q or %q", *u.Status, StatusActive, StatusSuspended)
	}
	if u.Name != nil && *u.Name != "" {
		if err := validText("name", *u.Name, MaxAccountNameLen); err != nil {
			add("name", "%s", trimInvalid(err))
		}
	}
	if u.Email != nil && *u.Email != "" {
		if err := ValidEmail(*u.Email); err != nil {
			add("email", "%s", trimInvalid(err))
		}
	}
	if u.ExternalID != nil && *u.ExternalID != "" {
		if err := validText("external_id", *u.ExternalID, MaxExternalIDLen); err != nil {
			add("external_id", "%s", trimInvalid(err))
		}
	}
	if l := u.SpendLimit; l != nil {
		switch {
		case l.Monthly < 0 || l.Monthly > money.MaxAmount:
			add("spend_limit.monthly", "must be from 0 (no limit) to %s, got %s", money.Micros(money.MaxAmount), l.Monthly)
		case l.AlertAt < 0 || l.AlertAt > money.MaxAmount:
			add("spend_limit.alert_at", "must be from 0 (no alert) to %s, got %s", money.Micros(money.MaxAmount), l.AlertAt)
		case l.Monthly > 0 && l.AlertAt > l.Monthly:
			add("spend_limit.alert_at", "%s is above the monthly limit %s: the alert would never come before the limit", l.AlertAt, l.Monthly)
		case l.Monthly == 0 && l.AlertAt > 0:
			add("spend_limit.alert_at", "an alert needs a monthly limit (monthly is 0: no limit)")
		}
	}
	return ps
}

func trimInvalid(err error) string { return strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ") }

// ValidEmail checks an account's email: one bare address (no display name), at
// most MaxEmailLen bytes.
func ValidEmail(s string) error {
	if err := validText("email", s, MaxEmailLen); err != nil {
		return err
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return fmt.Errorf("%w: %q is not an email address such as billing@example.com", ErrInvalid, s)
	}
	return nil
}

// AccountUpdateResult is what an update changed.
type AccountUpdateResult struct {
	Account Account // the account after the update, without grants
	// EventIDs are the events the update booked (a tier_change, an
	// account_update, or both); none when nothing changed.
	EventIDs []string
	Changes  []FieldChange
}

// Qualify is the rule that promotes an account into a tier: at least Paid paid
// in total (purchases, auto-recharges and operators' top-ups of source
// purchase; not promotions or adjustments), and at least Days since the first
// payment.
type Qualify struct {
	Paid money.Micros
	Days int
}

// Rung is one tier of the promotion ladder.
type Rung struct {
	Tier string
	Qualify
}

// Ladder is the tiers that carry a qualify rule, lowest first (Policy.Ladder).
type Ladder []Rung

// Ladder orders the tiers that carry a qualify rule: by paid, then days, then
// name. A tier without one is off the ladder: nobody is promoted into it or out
// of it (an operator's own tier, such as "enterprise").
func (p Policy) Ladder() Ladder {
	var l Ladder
	for name, t := range p.Tiers {
		if t.Qualify != nil {
			l = append(l, Rung{Tier: name, Qualify: *t.Qualify})
		}
	}
	slices.SortFunc(l, func(a, b Rung) int {
		return cmp.Or(cmp.Compare(a.Paid, b.Paid), cmp.Compare(a.Days, b.Days), strings.Compare(a.Tier, b.Tier))
	})
	return l
}

// Rank is tier's position on the ladder (0 = lowest), or -1 when it is off it.
func (l Ladder) Rank(tier string) int {
	return slices.IndexFunc(l, func(r Rung) bool { return r.Tier == tier })
}

// Next is the rung above tier, and whether there is one (false off the ladder
// or at its top).
func (l Ladder) Next(tier string) (Rung, bool) {
	i := l.Rank(tier)
	if i < 0 || i+1 >= len(l) {
		return Rung{}, false
	}
	return l[i+1], true
}

// Promotion is the tier an account on tier, having paid paid in total since
// firstPaid (zero: never), qualifies for at now: the highest rung above its own
// whose rule it meets. ok is false when it stays where it is (pinned accounts
// are the caller's to skip). The Redis scripts apply the same rule (prelude.lua's
// promote); this is its statement in Go, for the portal and the tests.
func (l Ladder) Promotion(tier string, paid money.Micros, firstPaid, now time.Time) (string, bool) {
	cur := l.Rank(tier)
	if cur < 0 {
		return "", false
	}
	for i := len(l) - 1; i > cur; i-- {
		if l[i].Met(paid, firstPaid, now) {
			return l[i].Tier, true
		}
	}
	return "", false
}

// Met reports whether an account that paid paid in total since firstPaid (zero:
// never) meets q at now.
func (q Qualify) Met(paid money.Micros, firstPaid, now time.Time) bool {
	if paid < q.Paid {
		return false
	}
	if q.Days == 0 {
		return true
	}
	return !firstPaid.IsZero() && !now.Before(firstPaid.Add(time.Duration(q.Days)*24*time.Hour))
}

// TierNames lists the policy's tiers, sorted and quoted.
func (p Policy) TierNames() []string {
	names := make([]string, 0, len(p.Tiers))
	for name := range p.Tiers {
		names = append(names, fmt.Sprintf("%q", name))
	}
	slices.Sort(names)
	if len(names) == 0 {
		return []string{"none"}
	}
	return names
}
