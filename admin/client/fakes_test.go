package client

import (
	"context"
	"errors"

	"github.com/creditgate/creditgate/billing"
)

// The fakes below mirror admin's test fakes (test files cannot be shared
// across packages): structs with one function field per interface method.

// fakeLedger implements billing.Ledger with one function field per method; a
// method whose field is nil fails with errNotSet, which the server answers 500.
type fakeLedger struct {
	CreateAccountFunc   func(ctx context.Context, id, tier string) (billing.Account, error)
	GetAccountFunc      func(ctx context.Context, id string) (billing.Account, error)
	ListAccountsFunc    func(ctx context.Context) ([]billing.Account, error)
	SetTierFunc         func(ctx context.Context, id, tier string) error
	SetAutoRechargeFunc func(ctx context.Context, id string, ar billing.AutoRecharge) error
	ReserveFunc         func(ctx context.Context, r billing.ReserveRequest) (billing.Reservation, error)
	SettleFunc          func(ctx context.Context, s billing.SettleRequest) (billing.Settlement, error)
	ReleaseFunc         func(ctx context.Context, account, holdID string, u billing.Usage) (billing.Settlement, error)
	TopUpFunc           func(ctx context.Context, p billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error)
	EventsFunc          func(ctx context.Context, account, after string, limit int) (billing.EventPage, error)
}

var errNotSet = errors.New("fake: method not set by this test")

func (f *fakeLedger) CreateAccount(ctx context.Context, id, tier string) (billing.Account, error) {
	if f.CreateAccountFunc == nil {
		return billing.Account{}, errNotSet
	}
	return f.CreateAccountFunc(ctx, id, tier)
}

func (f *fakeLedger) GetAccount(ctx context.Context, id string) (billing.Account, error) {
	if f.GetAccountFunc == nil {
		return billing.Account{}, errNotSet
	}
	return f.GetAccountFunc(ctx, id)
}

func (f *fakeLedger) ListAccounts(ctx context.Context) ([]billing.Account, error) {
	if f.ListAccountsFunc == nil {
		return nil, errNotSet
	}
	return f.ListAccountsFunc(ctx)
}

func (f *fakeLedger) SetTier(ctx context.Context, id, tier string) error {
	if f.SetTierFunc == nil {
		return errNotSet
	}
	return f.SetTierFunc(ctx, id, tier)
}

func (f *fakeLedger) SetAutoRecharge(ctx context.Context, id string, ar billing.AutoRecharge) error {
	if f.SetAutoRechargeFunc == nil {
		return errNotSet
	}
	return f.SetAutoRechargeFunc(ctx, id, ar)
}

func (f *fakeLedger) Reserve(ctx context.Context, r billing.ReserveRequest) (billing.Reservation, error) {
	if f.ReserveFunc == nil {
		return billing.Reservation{}, errNotSet
	}
	return f.ReserveFunc(ctx, r)
}

func (f *fakeLedger) Settle(ctx context.Context, s billing.SettleRequest) (billing.Settlement, error) {
	if f.SettleFunc == nil {
		return billing.Settlement{}, errNotSet
	}
	return f.SettleFunc(ctx, s)
}

func (f *fakeLedger) Release(ctx context.Context, account, holdID string, u billing.Usage) (billing.Settlement, error) {
	if f.ReleaseFunc == nil {
		return billing.Settlement{}, errNotSet
	}
	return f.ReleaseFunc(ctx, account, holdID, u)
}

func (f *fakeLedger) TopUp(ctx context.Context, p billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
	if f.TopUpFunc == nil {
		return billing.TopUpResult{}, errNotSet
	}
	return f.TopUpFunc(ctx, p, r)
}

func (f *fakeLedger) Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error) {
	if f.EventsFunc == nil {
		return billing.EventPage{}, errNotSet
	}
	return f.EventsFunc(ctx, account, after, limit)
}

// fakeKeys implements billing.KeyStore the same way.
type fakeKeys struct {
	CreateKeyFunc func(ctx context.Context, account, name string) (billing.APIKey, string, error)
	ListKeysFunc  func(ctx context.Context, account string) ([]billing.APIKey, error)
	RevokeKeyFunc func(ctx context.Context, account, keyID string) error
	LookupKeyFunc func(ctx context.Context, h billing.KeyHash) (billing.APIKey, error)
}

func (f *fakeKeys) CreateKey(ctx context.Context, account, name string) (billing.APIKey, string, error) {
	if f.CreateKeyFunc == nil {
		return billing.APIKey{}, "", errNotSet
	}
	return f.CreateKeyFunc(ctx, account, name)
}

func (f *fakeKeys) ListKeys(ctx context.Context, account string) ([]billing.APIKey, error) {
	if f.ListKeysFunc == nil {
		return nil, errNotSet
	}
	return f.ListKeysFunc(ctx, account)
}

func (f *fakeKeys) RevokeKey(ctx context.Context, account, keyID string) error {
	if f.RevokeKeyFunc == nil {
		return errNotSet
	}
	return f.RevokeKeyFunc(ctx, account, keyID)
}

func (f *fakeKeys) LookupKey(ctx context.Context, h billing.KeyHash) (billing.APIKey, error) {
	if f.LookupKeyFunc == nil {
		return billing.APIKey{}, errNotSet
	}
	return f.LookupKeyFunc(ctx, h)
}
