package portal

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
)

var testPolicy = billing.Policy{Grace: money.MustParse("0.50"), MinPurchase: money.MustParse("5.00"),
	CreditTTL: 365 * 24 * time.Hour, HoldTTL: 15 * time.Minute, DefaultTier: "tier-1",
	Tiers:           map[string]billing.Tier{"tier-1": {MaxTopUp: money.MustParse("100.00"), MaxBalance: money.MustParse("1000.00")}},
	AutoRechargeMin: money.MustParse("5.00")}

// newRedisLedger is a ledger on the test's Redis under its own key prefix.
func newRedisLedger(t testing.TB, now func() time.Time) *redisstore.Store {
	t.Helper()
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// portalStoreFor is the PortalStore the tests use: the Redis store once it
// implements billing.PortalStore (billing/redisstore, being written), else
// memPortalStore, which keeps the interface's contract in memory. So the
// tests run unchanged against the real one the day it lands.
func portalStoreFor(store *redisstore.Store) billing.PortalStore {
	if ps, ok := any(store).(billing.PortalStore); ok {
		return ps
	}
	return newMemPortalStore(time.Now)
}

// memPortalStore is billing.PortalStore in memory: hashes only, links used once.
type memPortalStore struct {
	now      func() time.Time
	mu       sync.Mutex
	links    map[billing.KeyHash]billing.PortalLink
	sessions map[billing.KeyHash]billing.PortalSession
}

func newMemPortalStore(now func() time.Time) *memPortalStore {
	return &memPortalStore{now: now, links: map[billing.KeyHash]billing.PortalLink{}, sessions: map[billing.KeyHash]billing.PortalSession{}}
}

func (m *memPortalStore) CreatePortalLink(_ context.Context, token billing.KeyHash, l billing.PortalLink) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.links[token] = l
	return nil
}

func (m *memPortalStore) RedeemPortalLink(_ context.Context, token billing.KeyHash) (billing.PortalLink, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.links[token]
	delete(m.links, token)
	if !ok || !m.now().Before(l.ExpiresAt) {
		return billing.PortalLink{}, billing.ErrPortalLinkInvalid
	}
	return l, nil
}

func (m *memPortalStore) CreatePortalSession(_ context.Context, id billing.KeyHash, s billing.PortalSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[id] = s
	return nil
}

func (m *memPortalStore) GetPortalSession(_ context.Context, id billing.KeyHash) (billing.PortalSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok || !m.now().Before(s.ExpiresAt) {
		return billing.PortalSession{}, billing.ErrPortalSessionInvalid
	}
	return s, nil
}

func (m *memPortalStore) DeletePortalSession(_ context.Context, id billing.KeyHash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, id)
	return nil
}

// fakePurchases is the purchase service and its history, in memory: Start
// checks the amount as the service does (through the ledger's own rules, by a
// dry run of the limits), records a pending purchase and asks StartFunc for the
// checkout. Complete credits a purchase once, as the service's event path does.
type fakePurchases struct {
	// StartFunc starts the provider's checkout of a recorded purchase.
	StartFunc func(ctx context.Context, p billing.Purchase, r StartPurchase) (checkoutID, url string, err error)
	// CheckFunc checks the amount (min_purchase, tier): nil accepts it.
	CheckFunc func(ctx context.Context, r StartPurchase) error

	mu        sync.Mutex
	purchases map[string]*billing.Purchase // by id
	starts    []StartPurchase
}

func (f *fakePurchases) Start(ctx context.Context, r StartPurchase) (billing.Purchase, error) {
	if f.CheckFunc != nil {
		if err := f.CheckFunc(ctx, r); err != nil {
			return billing.Purchase{}, err
		}
	}
	f.mu.Lock()
	if f.purchases == nil {
		f.purchases = map[string]*billing.Purchase{}
	}
	f.starts = append(f.starts, r)
	p := &billing.Purchase{ID: r.ID, Account: r.Account, Amount: r.Amount, Status: billing.PurchasePending, SaveCard: r.SaveCard,
		CreatedAt: time.Now(), Actor: "portal"}
	f.purchases[r.ID] = p
	f.mu.Unlock()
	id, u, err := f.StartFunc(ctx, *p, r)
	if err != nil {
		return billing.Purchase{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p.CheckoutID, p.CheckoutURL = id, u
	return *p, nil
}

func (f *fakePurchases) Starts() []StartPurchase {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.starts)
}

// add records a purchase as it is (history seeding).
func (f *fakePurchases) add(p billing.Purchase) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.purchases == nil {
		f.purchases = map[string]*billing.Purchase{}
	}
	f.purchases[p.ID] = &p
}

// markPaid sets a purchase paid (after the caller credited it); false when it
// was already paid or is unknown.
func (f *fakePurchases) markPaid(id, provider, ref string, amount money.Micros) (billing.Purchase, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.purchases[id]
	if !ok || p.Status == billing.PurchasePaid {
		return billing.Purchase{}, false
	}
	p.Status, p.Provider, p.PaymentRef, p.PaidAmount, p.SettledAt = billing.PurchasePaid, provider, ref, amount, time.Now()
	return *p, true
}

func (f *fakePurchases) ListPurchases(_ context.Context, account string, limit int) ([]billing.Purchase, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []billing.Purchase
	for _, p := range f.purchases {
		if p.Account == account {
			out = append(out, *p)
		}
	}
	slices.SortFunc(out, func(a, b billing.Purchase) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (f *fakePurchases) GetPurchase(_ context.Context, account, id string) (billing.Purchase, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.purchases[id]
	if !ok || p.Account != account {
		return billing.Purchase{}, fmt.Errorf("%w: %s", billing.ErrPurchaseNotFound, id)
	}
	return *p, nil
}

// fakeCards answers PaymentMethods from a map, recording who asked.
type fakeCards struct {
	mu    sync.Mutex
	cards map[string]*payments.Card
	asked []string
}

func (f *fakeCards) PaymentMethod(_ context.Context, account string) (*payments.Card, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, account)
	return f.cards[account], nil
}

// fakeReceipts answers ReceiptURL with a URL naming the payment.
type fakeReceipts struct {
	ReceiptURLFunc func(ctx context.Context, paymentRef string) (string, error)
}

func (f *fakeReceipts) ReceiptURL(ctx context.Context, ref string) (string, error) {
	return f.ReceiptURLFunc(ctx, ref)
}
