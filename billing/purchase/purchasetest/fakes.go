// Package purchasetest provides test doubles of the customer-billing stores for
// other packages' tests: Store and Portal, structs with one function field per
// method of billing.PurchaseStore and billing.PortalStore (a method whose field
// is nil fails with ErrNotSet), and Memory, a working in-memory PurchaseStore
// that credits through a real billing.Ledger, for end-to-end tests until
// billing/redisstore implements PurchaseStore itself.
package purchasetest

import (
	"context"
	"errors"
	"time"

	"github.com/creditgate/creditgate/billing"
)

var (
	_ billing.PurchaseStore = (*Store)(nil)
	_ billing.PortalStore   = (*Portal)(nil)
)

// ErrNotSet is returned by a method whose function field the test left nil.
var ErrNotSet = errors.New("fake: method not set by this test")

// Store implements billing.PurchaseStore with one function field per method.
type Store struct {
	CreatePurchaseFunc    func(ctx context.Context, p billing.Policy, r billing.NewPurchaseRequest) (billing.Purchase, error)
	AttachCheckoutFunc    func(ctx context.Context, account, purchaseID, checkoutID, url string, expiresAt time.Time) (billing.Purchase, error)
	CompletePurchaseFunc  func(ctx context.Context, p billing.Policy, account, purchaseID string, r billing.PaymentReport) (billing.TopUpResult, error)
	EndPurchaseFunc       func(ctx context.Context, account, purchaseID string, status billing.PurchaseStatus, reason string) (billing.Purchase, error)
	TakeBackFunc          func(ctx context.Context, r billing.TakeBackRequest) (billing.TakeBackResult, error)
	GetPurchaseFunc       func(ctx context.Context, account, purchaseID string) (billing.Purchase, error)
	ListPurchasesFunc     func(ctx context.Context, account string, limit int) ([]billing.Purchase, error)
	SetPaymentProfileFunc func(ctx context.Context, account string, pp billing.PaymentProfile) error
	GetPaymentProfileFunc func(ctx context.Context, account string) (billing.PaymentProfile, error)
}

func (f *Store) CreatePurchase(ctx context.Context, p billing.Policy, r billing.NewPurchaseRequest) (billing.Purchase, error) {
	if f.CreatePurchaseFunc == nil {
		return billing.Purchase{}, ErrNotSet
	}
	return f.CreatePurchaseFunc(ctx, p, r)
}

func (f *Store) AttachCheckout(ctx context.Context, account, purchaseID, checkoutID, url string, expiresAt time.Time) (billing.Purchase, error) {
	if f.AttachCheckoutFunc == nil {
		return billing.Purchase{}, ErrNotSet
	}
	return f.AttachCheckoutFunc(ctx, account, purchaseID, checkoutID, url, expiresAt)
}

func (f *Store) CompletePurchase(ctx context.Context, p billing.Policy, account, purchaseID string, r billing.PaymentReport) (billing.TopUpResult, error) {
	if f.CompletePurchaseFunc == nil {
		return billing.TopUpResult{}, ErrNotSet
	}
	return f.CompletePurchaseFunc(ctx, p, account, purchaseID, r)
}

func (f *Store) EndPurchase(ctx context.Context, account, purchaseID string, status billing.PurchaseStatus, reason string) (billing.Purchase, error) {
	if f.EndPurchaseFunc == nil {
		return billing.Purchase{}, ErrNotSet
	}
	return f.EndPurchaseFunc(ctx, account, purchaseID, status, reason)
}

func (f *Store) TakeBack(ctx context.Context, r billing.TakeBackRequest) (billing.TakeBackResult, error) {
	if f.TakeBackFunc == nil {
		return billing.TakeBackResult{}, ErrNotSet
	}
	return f.TakeBackFunc(ctx, r)
}

func (f *Store) GetPurchase(ctx context.Context, account, purchaseID string) (billing.Purchase, error) {
	if f.GetPurchaseFunc == nil {
		return billing.Purchase{}, ErrNotSet
	}
	return f.GetPurchaseFunc(ctx, account, purchaseID)
}

func (f *Store) ListPurchases(ctx context.Context, account string, limit int) ([]billing.Purchase, error) {
	if f.ListPurchasesFunc == nil {
		return nil, ErrNotSet
	}
	return f.ListPurchasesFunc(ctx, account, limit)
}

func (f *Store) SetPaymentProfile(ctx context.Context, account string, pp billing.PaymentProfile) error {
	if f.SetPaymentProfileFunc == nil {
		return ErrNotSet
	}
	return f.SetPaymentProfileFunc(ctx, account, pp)
}

func (f *Store) GetPaymentProfile(ctx context.Context, account string) (billing.PaymentProfile, error) {
	if f.GetPaymentProfileFunc == nil {
		return billing.PaymentProfile{}, ErrNotSet
	}
	return f.GetPaymentProfileFunc(ctx, account)
}

// Portal implements billing.PortalStore with one function field per method.
type Portal struct {
	CreatePortalLinkFunc    func(ctx context.Context, token billing.KeyHash, l billing.PortalLink) error
	RedeemPortalLinkFunc    func(ctx context.Context, token billing.KeyHash) (billing.PortalLink, error)
	CreatePortalSessionFunc func(ctx context.Context, id billing.KeyHash, s billing.PortalSession) error
	GetPortalSessionFunc    func(ctx context.Context, id billing.KeyHash) (billing.PortalSession, error)
	DeletePortalSessionFunc func(ctx context.Context, id billing.KeyHash) error
}

func (f *Portal) CreatePortalLink(ctx context.Context, token billing.KeyHash, l billing.PortalLink) error {
	if f.CreatePortalLinkFunc == nil {
		return ErrNotSet
	}
	return f.CreatePortalLinkFunc(ctx, token, l)
}

func (f *Portal) RedeemPortalLink(ctx context.Context, token billing.KeyHash) (billing.PortalLink, error) {
	if f.RedeemPortalLinkFunc == nil {
		return billing.PortalLink{}, ErrNotSet
	}
	return f.RedeemPortalLinkFunc(ctx, token)
}

func (f *Portal) CreatePortalSession(ctx context.Context, id billing.KeyHash, s billing.PortalSession) error {
	if f.CreatePortalSessionFunc == nil {
		return ErrNotSet
	}
	return f.CreatePortalSessionFunc(ctx, id, s)
}

func (f *Portal) GetPortalSession(ctx context.Context, id billing.KeyHash) (billing.PortalSession, error) {
	if f.GetPortalSessionFunc == nil {
		return billing.PortalSession{}, ErrNotSet
	}
	return f.GetPortalSessionFunc(ctx, id)
}

func (f *Portal) DeletePortalSession(ctx context.Context, id billing.KeyHash) error {
	if f.DeletePortalSessionFunc == nil {
		return ErrNotSet
	}
	return f.DeletePortalSessionFunc(ctx, id)
}
