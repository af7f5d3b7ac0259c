package purchasetest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

var _ billing.PurchaseStore = (*Memory)(nil)

// Memory is a billing.PurchaseStore for tests: purchases, payment profiles and
// payment references in memory, credits and take-backs through a real Ledger
// (billing/redisstore on a test Redis), so balances, grants and the audit are
// the ledger's own. It follows the interface's contract (limits checked as for
// a top-up, a grant per purchase whose id is the purchase id, idempotent by
// purchase id and by the cumulative refunded amount) with one simplification:
// a take-back is a negative adjustment, which takes credit from the account's
// earliest-expiring grants rather than from the purchase's own, so keep one
// purchase grant per account where that matters.
type Memory struct {
	// Ledger credits and takes back (required).
	Ledger billing.Ledger
	// Now stamps purchases (default time.Now).
	Now func() time.Time

	mu        sync.Mutex
	purchases map[string]*billing.Purchase // by account + "/" + id
	results   map[string]billing.TopUpResult
	profiles  map[string]billing.PaymentProfile
	payments  map[string]*payment // by payment reference
}

// payment is a credited payment, for take-backs.
type payment struct {
	account, purchaseID string
	credited            money.Micros
	highest             money.Micros // the highest Upto seen
	taken               money.Micros
}

func (m *Memory) now() time.Time {
	if m.Now == nil {
		return time.Now()
	}
	return m.Now()
}

func (m *Memory) init() {
	if m.purchases == nil {
		m.purchases = map[string]*billing.Purchase{}
		m.results = map[string]billing.TopUpResult{}
		m.profiles = map[string]billing.PaymentProfile{}
		m.payments = map[string]*payment{}
	}
}

func key(account, id string) string { return account + "/" + id }

// CreatePurchase records a pending purchase after the top-up limits.
func (m *Memory) CreatePurchase(ctx context.Context, p billing.Policy, r billing.NewPurchaseRequest) (billing.Purchase, error) {
	if r.ID == "" || r.Amount <= 0 {
		return billing.Purchase{}, fmt.Errorf("%w: purchase id %q, amount %s", billing.ErrInvalid, r.ID, r.Amount)
	}
	acct, err := m.Ledger.GetAccount(ctx, r.Account)
	if err != nil {
		return billing.Purchase{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	if old, found := m.purchases[key(r.Account, r.ID)]; found {
		if old.Amount != r.Amount || old.Provider != r.Provider || old.SaveCard != r.SaveCard {
			return billing.Purchase{}, fmt.Errorf("%w: purchase %s was started with other details", billing.ErrIdempotencyConflict, r.ID)
		}
		return *old, nil
	}
	tier, _ := p.TierFor(acct.Tier)
	switch {
	case r.Amount < p.MinPurchase:
		return billing.Purchase{}, &billing.LimitError{Err: billing.ErrBelowMinimum, Limit: p.MinPurchase, Amount: r.Amount}
	case tier.MaxTopUp > 0 && r.Amount > tier.MaxTopUp:
		return billing.Purchase{}, &billing.LimitError{Err: billing.ErrAboveMaxTopUp, Limit: tier.MaxTopUp, Amount: r.Amount}
	case tier.MaxBalance > 0 && acct.Credit+r.Amount > tier.MaxBalance:
		return billing.Purchase{}, &billing.LimitError{Err: billing.ErrAboveMaxBalance, Limit: tier.MaxBalance, Amount: acct.Credit + r.Amount}
	}
	pur := &billing.Purchase{ID: r.ID, Account: r.Account, Amount: r.Amount, Status: billing.PurchasePending, Provider: r.Provider,
		SaveCard: r.SaveCard, CreatedAt: m.now().UTC(), Actor: r.Actor}
	m.purchases[key(r.Account, r.ID)] = pur
	return *pur, nil
}

func (m *Memory) get(account, id string) (*billing.Purchase, error) {
	m.init()
	p, found := m.purchases[key(account, id)]
	if !found {
		return nil, fmt.Errorf("%w: %s of account %q", billing.ErrPurchaseNotFound, id, account)
	}
	return p, nil
}

// AttachCheckout stores a pending purchase's checkout.
func (m *Memory) AttachCheckout(_ context.Context, account, purchaseID, checkoutID, url string, expiresAt time.Time) (billing.Purchase, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.get(account, purchaseID)
	if err != nil {
		return billing.Purchase{}, err
	}
	if p.Status == billing.PurchasePending {
		p.CheckoutID, p.CheckoutURL, p.CheckoutExpiresAt = checkoutID, url, expiresAt.UTC()
	}
	return *p, nil
}

// CompletePurchase credits a purchase once, as a grant whose id is its id.
func (m *Memory) CompletePurchase(ctx context.Context, pol billing.Policy, account, purchaseID string, r billing.PaymentReport) (billing.TopUpResult, error) {
	m.mu.Lock()
	p, err := m.get(account, purchaseID)
	if err == nil {
		if res, done := m.results[key(account, purchaseID)]; done {
			m.mu.Unlock()
			res.Replayed = true
			return res, nil
		}
	}
	m.mu.Unlock()
	if err != nil {
		return billing.TopUpResult{}, err
	}
	res, err := m.Ledger.TopUp(ctx, pol, billing.TopUpRequest{Account: account, GrantID: purchaseID, Amount: r.Amount,
		Source: billing.SourcePurchase, SkipLimits: true})
	if err != nil {
		return billing.TopUpResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, done := m.results[key(account, purchaseID)]; done { // a concurrent completion won
		old.Replayed = true
		return old, nil
	}
	first := res
	first.Replayed = false
	m.results[key(account, purchaseID)] = first
	p.Status, p.PaidAmount, p.PaymentRef, p.SettledAt, p.Reason = billing.PurchasePaid, r.Amount, r.PaymentRef, m.now().UTC(), ""
	if r.PaymentRef != "" {
		m.payments[r.PaymentRef] = &payment{account: account, purchaseID: purchaseID, credited: r.Amount}
	}
	if r.PaymentMethodID != "" {
		pp := m.profiles[account]
		m.profiles[account] = billing.PaymentProfile{Provider: p.Provider, CustomerID: r.CustomerID, PaymentMethodID: r.PaymentMethodID, Email: pp.Email}
	}
	return res, nil
}

// EndPurchase marks a pending purchase failed or expired.
func (m *Memory) EndPurchase(_ context.Context, account, purchaseID string, status billing.PurchaseStatus, reason string) (billing.Purchase, error) {
	if status != billing.PurchaseFailed && status != billing.PurchaseExpired {
		return billing.Purchase{}, fmt.Errorf("%w: end status %q", billing.ErrInvalid, status)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.get(account, purchaseID)
	if err != nil {
		return billing.Purchase{}, err
	}
	if p.Status == billing.PurchasePending {
		p.Status, p.Reason, p.SettledAt = status, reason, m.now().UTC()
	}
	return *p, nil
}

// TakeBack takes back what is left of a payment's credit, up to r.Upto in all.
func (m *Memory) TakeBack(ctx context.Context, r billing.TakeBackRequest) (billing.TakeBackResult, error) {
	m.mu.Lock()
	m.init()
	pay, found := m.payments[r.PaymentRef]
	if !found {
		m.mu.Unlock()
		return billing.TakeBackResult{}, fmt.Errorf("%w: %s", billing.ErrPaymentNotFound, r.PaymentRef)
	}
	if r.Upto <= pay.highest {
		res := billing.TakeBackResult{Account: pay.account, Total: pay.taken}
		m.mu.Unlock()
		return res, nil
	}
	want := min(r.Upto, pay.credited) - min(pay.highest, pay.credited)
	account, grantID := pay.account, pay.purchaseID
	m.mu.Unlock()

	acct, err := m.Ledger.GetAccount(ctx, account)
	if err != nil {
		return billing.TakeBackResult{}, err
	}
	var left money.Micros
	for _, g := range acct.Grants {
		if g.ID == grantID {
			left = g.Remaining
		}
	}
	take := min(want, left, max(0, acct.Credit-acct.Reserved))
	res := billing.TakeBackResult{Account: account, Taken: take, Short: want - take}
	if take > 0 {
		adj, err := m.Ledger.Adjust(ctx, billing.Policy{}, account, billing.AdjustRequest{Amount: -take,
			Reason: r.Reason + " of " + r.PaymentRef, IdempotencyKey: fmt.Sprintf("takeback:%s:%d", r.PaymentRef, r.Upto)})
		if err != nil {
			return billing.TakeBackResult{}, err
		}
		res.EventID = adj.EventID
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Upto <= pay.highest { // a concurrent take-back got there first
		return billing.TakeBackResult{Account: account, Total: pay.taken}, nil
	}
	pay.highest = r.Upto
	pay.taken += take
	res.Total = pay.taken
	if p, err := m.get(account, grantID); err == nil {
		p.Status, p.TakenBack, p.Reason = billing.PurchaseRefunded, pay.taken, r.Reason
	}
	return res, nil
}

// GetPurchase returns one purchase.
func (m *Memory) GetPurchase(_ context.Context, account, purchaseID string) (billing.Purchase, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.get(account, purchaseID)
	if err != nil {
		return billing.Purchase{}, err
	}
	return *p, nil
}

// ListPurchases returns account's purchases, newest first.
func (m *Memory) ListPurchases(ctx context.Context, account string, limit int) ([]billing.Purchase, error) {
	if _, err := m.Ledger.GetAccount(ctx, account); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	var out []billing.Purchase
	for _, p := range m.purchases {
		if p.Account == account {
			out = append(out, *p)
		}
	}
	slices.SortFunc(out, func(a, b billing.Purchase) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// SetPaymentProfile replaces the account's payment profile.
func (m *Memory) SetPaymentProfile(ctx context.Context, account string, pp billing.PaymentProfile) error {
	if _, err := m.Ledger.GetAccount(ctx, account); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	m.profiles[account] = pp
	return nil
}

// GetPaymentProfile returns the account's payment profile (zero when none).
func (m *Memory) GetPaymentProfile(ctx context.Context, account string) (billing.PaymentProfile, error) {
	if _, err := m.Ledger.GetAccount(ctx, account); err != nil {
		return billing.PaymentProfile{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	return m.profiles[account], nil
}
