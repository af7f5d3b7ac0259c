package portal

import (
	"cmp"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// The JSON the page polls: GET api/summary (balances, grants, tier, purchases,
// auto-recharge: small, read every ~2 s while the page is visible) and GET
// api/usage (this month's usage and the recent requests: read when the ledger
// moved). Money is a decimal string of six places ("4.981190"); the page shows
// it rounded to cents with the exact figure on hover.

// historyLimit is how many purchases the history shows.
const historyLimit = 20

// grantLimit bounds the grants listed (live ones come first).
const grantLimit = 50

type summaryJSON struct {
	Account     string    `json:"account"`
	AsOf        time.Time `json:"as_of"`
	LastEventID string    `json:"last_event_id"`

	Balance   money.Micros `json:"balance"`
	Credit    money.Micros `json:"credit"`
	Debt      money.Micros `json:"debt"`
	Reserved  money.Micros `json:"reserved"`
	Available money.Micros `json:"available"`
	Grants    []grantJSON  `json:"grants"`

	Tier            tierJSON         `json:"tier"`
	MinPurchase     money.Micros     `json:"min_purchase"`
	AutoRechargeMin money.Micros     `json:"auto_recharge_min"`
	AutoRecharge    autoRechargeJSON `json:"auto_recharge"`

	Payments  paymentsJSON   `json:"payments"`
	Purchases []purchaseJSON `json:"purchases"`

	SessionExpiresAt time.Time `json:"session_expires_at"`
}

type grantJSON struct {
	ID        string       `json:"id"`
	Source    string       `json:"source"`
	Amount    money.Micros `json:"amount"`
	Remaining money.Micros `json:"remaining"`
	GrantedAt time.Time    `json:"granted_at"`
	ExpiresAt time.Time    `json:"expires_at"`
	Expired   bool         `json:"expired"`
}

type tierJSON struct {
	Name string `json:"name"`
	// MaxTopUp and MaxBalance are null when the tier sets no limit.
	MaxTopUp   *money.Micros `json:"max_topup"`
	MaxBalance *money.Micros `json:"max_balance"`
	// PaidTotal is what the account has paid (purchases, auto-recharges,
	// operators' top-ups), FirstPaidAt its first payment (null: none yet).
	PaidTotal   money.Micros `json:"paid_total"`
	FirstPaidAt *time.Time   `json:"first_paid_at"`
	// Pinned: the provider set the tier by hand; it does not move up by itself.
	Pinned bool `json:"pinned"`
	// Next is what the next tier needs; null at the top of the ladder, off it
	// (a tier the provider assigns), or when pinned.
	Next *nextTierJSON `json:"next"`
}

// nextTierJSON is the tier above the account's on the promotion ladder and how
// far the account is from it: paid so far against paid needed, days since the
// first payment against days needed.
type nextTierJSON struct {
	Name      string       `json:"name"`
	Paid      money.Micros `json:"paid"` // needed in total
	PaidSoFar money.Micros `json:"paid_so_far"`
	Days      int          `json:"days"` // since the first payment, needed
	DaysSoFar int          `json:"days_so_far"`
	PaidToGo  money.Micros `json:"paid_to_go"`
	DaysToGo  int          `json:"days_to_go"`
	Qualifies bool         `json:"qualifies"` // met: the next payment or the sweeper's next round promotes
}

type autoRechargeJSON struct {
	Enabled      bool         `json:"enabled"`
	Threshold    money.Micros `json:"threshold"`
	Amount       money.Micros `json:"amount"`
	MonthlyLimit money.Micros `json:"monthly_limit"`
	// MonthTotal is what auto-recharge credited this calendar month (UTC).
	MonthTotal   money.Micros `json:"month_total"`
	Pending      bool         `json:"pending"`
	Failures     int          `json:"failures"`
	BackoffUntil *time.Time   `json:"backoff_until"`
}

type paymentsJSON struct {
	Enabled  bool   `json:"enabled"`
	Provider string `json:"provider"`
	Demo     bool   `json:"demo"`
}

type purchaseJSON struct {
	ID         string       `json:"id"`
	Status     string       `json:"status"`
	Amount     money.Micros `json:"amount"`
	PaidAmount money.Micros `json:"paid_amount"`
	TakenBack  money.Micros `json:"taken_back"`
	CreatedAt  time.Time    `json:"created_at"`
	SettledAt  *time.Time   `json:"settled_at"`
	Reason     string       `json:"reason,omitempty"`
	// Receipt is this page's link to the provider's receipt ("" when none).
	Receipt string `json:"receipt"`
}

func (h *Handler) summary(w http.ResponseWriter, r *http.Request, s *session) {
	a, err := h.Ledger.GetAccount(r.Context(), s.Account)
	if err != nil {
		h.fail(w, "reading the account", s, err)
		return
	}
	now := h.now()
	p := h.policy()
	out := summaryJSON{
		Account: a.ID, AsOf: a.AsOf, LastEventID: a.LastEventID,
		Balance: a.Balance(), Credit: a.Credit, Debt: a.Debt, Reserved: a.Reserved, Available: a.Available(),
		Grants: []grantJSON{}, Tier: tierJSON{Name: a.Tier}, MinPurchase: p.MinPurchase, AutoRechargeMin: p.AutoRechargeMin,
		AutoRecharge: autoRechargeJSON{Enabled: a.AutoRecharge.Enabled, Threshold: a.AutoRecharge.Threshold, Amount: a.AutoRecharge.Amount,
			MonthlyLimit: a.AutoRecharge.MonthlyLimit, Pending: a.Recharge.Pending != "", Failures: a.Recharge.Failures},
		Payments:  paymentsJSON{Enabled: h.Purchases != nil, Provider: h.Provider, Demo: h.Provider == "demo"},
		Purchases: []purchaseJSON{}, SessionExpiresAt: s.ExpiresAt,
	}
	if out.AsOf.IsZero() {
		out.AsOf = now
	}
	if a.Recharge.Month == billing.MonthOf(now) {
		out.AutoRecharge.MonthTotal = a.Recharge.MonthTotal
	}
	if a.Recharge.BackoffUntil.After(now) {
		t := a.Recharge.BackoffUntil
		out.AutoRecharge.BackoffUntil = &t
	}
	out.Tier.PaidTotal, out.Tier.Pinned = a.PaidTotal, a.TierPinned
	if !a.FirstPaidAt.IsZero() {
		t := a.FirstPaidAt
		out.Tier.FirstPaidAt = &t
	}
	if next, ok := p.Ladder().Next(a.Tier); ok && !a.TierPinned {
		out.Tier.Next = nextTier(next, a, now)
	}
	if t, ok := p.TierFor(a.Tier); ok {
		if t.MaxTopUp > 0 {
			out.Tier.MaxTopUp = &t.MaxTopUp
		}
		if t.MaxBalance > 0 {
			out.Tier.MaxBalance = &t.MaxBalance
		}
	}
	for _, g := range a.Grants {
		if len(out.Grants) == grantLimit {
			break
		}
		out.Grants = append(out.Grants, grantJSON{ID: g.ID, Source: g.Source, Amount: g.Amount, Remaining: g.Remaining,
			GrantedAt: g.GrantedAt, ExpiresAt: g.ExpiresAt, Expired: !g.ExpiresAt.After(now)})
	}
	if h.History != nil {
		list, err := h.History.ListPurchases(r.Context(), s.Account, historyLimit)
		if err != nil {
			h.fail(w, "listing purchases", s, err)
			return
		}
		for _, pu := range list {
			out.Purchases = append(out.Purchases, h.purchaseFrom(pu))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// nextTier says how far a is from rung at now.
func nextTier(rung billing.Rung, a billing.Account, now time.Time) *nextTierJSON {
	n := &nextTierJSON{Name: rung.Tier, Paid: rung.Paid, PaidSoFar: a.PaidTotal, Days: rung.Days,
		Qualifies: rung.Met(a.PaidTotal, a.FirstPaidAt, now)}
	if !a.FirstPaidAt.IsZero() && now.After(a.FirstPaidAt) {
		n.DaysSoFar = int(now.Sub(a.FirstPaidAt) / (24 * time.Hour))
	}
	n.PaidToGo = max(0, rung.Paid-a.PaidTotal)
	n.DaysToGo = max(0, rung.Days-n.DaysSoFar)
	if a.FirstPaidAt.IsZero() {
		n.DaysToGo = rung.Days
	}
	return n
}

func (h *Handler) purchaseFrom(p billing.Purchase) purchaseJSON {
	out := purchaseJSON{ID: p.ID, Status: string(p.Status), Amount: p.Amount, PaidAmount: p.PaidAmount, TakenBack: p.TakenBack,
		CreatedAt: p.CreatedAt, Reason: p.Reason}
	if !p.SettledAt.IsZero() {
		t := p.SettledAt
		out.SettledAt = &t
	}
	if h.hasReceipt(p) {
		out.Receipt = Path + "receipts/" + p.ID
	}
	return out
}

// hasReceipt: the provider keeps receipts (the demo has none) and the purchase
// was paid.
func (h *Handler) hasReceipt(p billing.Purchase) bool {
	paid := p.Status == billing.PurchasePaid || p.Status == billing.PurchaseRefunded
	return h.Receipts != nil && p.Provider != "demo" && p.PaymentRef != "" && paid
}

// receipt sends the browser to the provider's receipt of one of the session's
// purchases: GET receipts/{purchase}. Another account's purchase id is a 404.
func (h *Handler) receipt(w http.ResponseWriter, r *http.Request, s *session) {
	if h.History == nil || h.Receipts == nil {
		h.renderMessage(w, http.StatusNotFound, "No receipt", "There is no receipt for this purchase.", true)
		return
	}
	p, err := h.History.GetPurchase(r.Context(), s.Account, r.PathValue("purchase"))
	if err != nil || p.Account != s.Account || !h.hasReceipt(p) {
		if err != nil && storeError(err) == errUnavailable {
			h.log().Error("portal: reading a purchase", zap.String("account", s.Account), zap.Error(err))
		}
		h.renderMessage(w, http.StatusNotFound, "No receipt", "There is no receipt for this purchase.", true)
		return
	}
	u, err := h.Receipts.ReceiptURL(r.Context(), p.PaymentRef)
	if err != nil || !safeReturnURL(u) {
		if err != nil {
			h.log().Error("portal: asking for a receipt", zap.String("account", s.Account), zap.String("purchase", p.ID), zap.Error(err))
		}
		h.renderMessage(w, http.StatusBadGateway, "Receipt unavailable", "The payment provider did not give a receipt just now. Try again later.", true)
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

type cardJSON struct {
	Display string `json:"display"` // "Visa •••• 4242"
	Brand   string `json:"brand"`
	Last4   string `json:"last4"`
	Expiry  string `json:"expiry"` // "MM/YYYY"
}

// paymentMethod is the card on file: GET api/payment-method → {"card": … | null}.
// The page asks at load and after a purchase, not on every poll: it may cost a
// call to the provider.
func (h *Handler) paymentMethod(w http.ResponseWriter, r *http.Request, s *session) {
	out := struct {
		Card *cardJSON `json:"card"`
	}{}
	if h.Cards != nil {
		c, err := h.Cards.PaymentMethod(r.Context(), s.Account)
		if err != nil {
			h.fail(w, "reading the card on file", s, err)
			return
		}
		if c != nil {
			out.Card = &cardJSON{Display: c.String(), Brand: c.Brand, Last4: c.Last4, Expiry: c.Expiry()}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// fail answers a store error, logging what is not the customer's doing.
func (h *Handler) fail(w http.ResponseWriter, what string, s *session, err error) {
	e := storeError(err)
	if e == errUnavailable {
		h.log().Error("portal: "+what, zap.String("account", s.Account), zap.Error(err))
	}
	writeError(w, e)
}

// sortRows orders usage rows by cost, largest first, then by name.
func sortRows(rows []usageRowJSON) {
	slices.SortFunc(rows, func(a, b usageRowJSON) int {
		if c := cmp.Compare(b.Cost, a.Cost); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
}
