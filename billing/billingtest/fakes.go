// Package billingtest provides fakes of the billing interfaces for other packages'
// tests: structs with one function field per method, so each test sets just the
// behaviour it needs (no mock framework).
package billingtest

import (
	"context"
	"errors"
	"time"

	"github.com/creditgate/creditgate/billing"
)

var (
	_ billing.Ledger   = (*Ledger)(nil)
	_ billing.KeyStore = (*Keys)(nil)
)

// Ledger implements billing.Ledger with one function field per method; a method
// whose field is nil fails with ErrNotSet.
type Ledger struct {
	CreateAccountFunc   func(ctx context.Context, id, tier string) (billing.Account, error)
	GetAccountFunc      func(ctx context.Context, id string) (billing.Account, error)
	ListAccountsFunc    func(ctx context.Context) ([]billing.Account, error)
	SetTierFunc         func(ctx context.Context, id, tier string) error
	SetAutoRechargeFunc func(ctx context.Context, id string, ar billing.AutoRecharge) error
	UpdateAccountFunc   func(ctx context.Context, id string, u billing.AccountUpdate) (billing.AccountUpdateResult, error)
	ReserveFunc         func(ctx context.Context, r billing.ReserveRequest) (billing.Reservation, error)
	SettleFunc          func(ctx context.Context, s billing.SettleRequest) (billing.Settlement, error)
	ReleaseFunc         func(ctx context.Context, account, holdID string, u billing.Usage) (billing.Settlement, error)
	TopUpFunc           func(ctx context.Context, p billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error)
	AdjustFunc          func(ctx context.Context, p billing.Policy, account string, r billing.AdjustRequest) (billing.AdjustResult, error)
	EventsFunc          func(ctx context.Context, account, after string, limit int) (billing.EventPage, error)
	EventsBeforeFunc    func(ctx context.Context, account, before string, limit int) (billing.EventPage, error)
	HoldOutcomeFunc     func(ctx context.Context, account, holdID string, since time.Time) (billing.HoldOutcome, error)
}

// ErrNotSet is returned by a method whose function field the test left nil.
var ErrNotSet = errors.New("fake: method not set by this test")

func (f *Ledger) CreateAccount(ctx context.Context, id, tier string) (billing.Account, error) {
	if f.CreateAccountFunc == nil {
		return billing.Account{}, ErrNotSet
	}
	return f.CreateAccountFunc(ctx, id, tier)
}

func (f *Ledger) GetAccount(ctx context.Context, id string) (billing.Account, error) {
	if f.GetAccountFunc == nil {
		return billing.Account{}, ErrNotSet
	}
	return f.GetAccountFunc(ctx, id)
}

func (f *Ledger) ListAccounts(ctx context.Context) ([]billing.Account, error) {
	if f.ListAccountsFunc == nil {
		return nil, ErrNotSet
	}
	return f.ListAccountsFunc(ctx)
}

func (f *Ledger) SetTier(ctx context.Context, id, tier string) error {
	if f.SetTierFunc == nil {
		return ErrNotSet
	}
	return f.SetTierFunc(ctx, id, tier)
}

func (f *Ledger) UpdateAccount(ctx context.Context, id string, u billing.AccountUpdate) (billing.AccountUpdateResult, error) {
	if f.UpdateAccountFunc == nil {
		return billing.AccountUpdateResult{}, ErrNotSet
	}
	return f.UpdateAccountFunc(ctx, id, u)
}

func (f *Ledger) SetAutoRecharge(ctx context.Context, id string, ar billing.AutoRecharge) error {
	if f.SetAutoRechargeFunc == nil {
		return ErrNotSet
	}
	return f.SetAutoRechargeFunc(ctx, id, ar)
}

func (f *Ledger) Reserve(ctx context.Context, r billing.ReserveRequest) (billing.Reservation, error) {
	if f.ReserveFunc == nil {
		return billing.Reservation{}, ErrNotSet
	}
	return f.ReserveFunc(ctx, r)
}

func (f *Ledger) Settle(ctx context.Context, s billing.SettleRequest) (billing.Settlement, error) {
	if f.SettleFunc == nil {
		return billing.Settlement{}, ErrNotSet
	}
	return f.SettleFunc(ctx, s)
}

func (f *Ledger) Release(ctx context.Context, account, holdID string, u billing.Usage) (billing.Settlement, error) {
	if f.ReleaseFunc == nil {
		return billing.Settlement{}, ErrNotSet
	}
	return f.ReleaseFunc(ctx, account, holdID, u)
}

func (f *Ledger) TopUp(ctx context.Context, p billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
	if f.TopUpFunc == nil {
		return billing.TopUpResult{}, ErrNotSet
	}
	return f.TopUpFunc(ctx, p, r)
}

func (f *Ledger) Adjust(ctx context.Context, p billing.Policy, account string, r billing.AdjustRequest) (billing.AdjustResult, error) {
	if f.AdjustFunc == nil {
		return billing.AdjustResult{}, ErrNotSet
	}
	return f.AdjustFunc(ctx, p, account, r)
}

func (f *Ledger) Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error) {
	if f.EventsFunc == nil {
		return billing.EventPage{}, ErrNotSet
	}
	return f.EventsFunc(ctx, account, after, limit)
}

func (f *Ledger) EventsBefore(ctx context.Context, account, before string, limit int) (billing.EventPage, error) {
	if f.EventsBeforeFunc == nil {
		return billing.EventPage{}, ErrNotSet
	}
	return f.EventsBeforeFunc(ctx, account, before, limit)
}

func (f *Ledger) HoldOutcome(ctx context.Context, account, holdID string, since time.Time) (billing.HoldOutcome, error) {
	if f.HoldOutcomeFunc == nil {
		return billing.HoldOutcome{}, ErrNotSet
	}
	return f.HoldOutcomeFunc(ctx, account, holdID, since)
}

// Keys implements billing.KeyStore the same way.
type Keys struct {
	CreateKeyFunc func(ctx context.Context, account, name string) (billing.APIKey, string, error)
	// CreateKeyWithFunc answers CreateKeyWith; nil: CreateKeyFunc with the spec's name.
	CreateKeyWithFunc func(ctx context.Context, account string, spec billing.KeySpec) (billing.APIKey, string, error)
	ListKeysFunc      func(ctx context.Context, account string) ([]billing.APIKey, error)
	RevokeKeyFunc     func(ctx context.Context, account, keyID string) error
	LookupKeyFunc     func(ctx context.Context, h billing.KeyHash) (billing.APIKey, error)
	UpdateKeyFunc     func(ctx context.Context, account, keyID string, u billing.KeyUpdate) (billing.APIKey, error)
}

func (f *Keys) CreateKey(ctx context.Context, account, name string) (billing.APIKey, string, error) {
	if f.CreateKeyFunc == nil {
		return billing.APIKey{}, "", ErrNotSet
	}
	return f.CreateKeyFunc(ctx, account, name)
}

func (f *Keys) CreateKeyWith(ctx context.Context, account string, spec billing.KeySpec) (billing.APIKey, string, error) {
	if f.CreateKeyWithFunc == nil {
		return f.CreateKey(ctx, account, spec.Name)
	}
	return f.CreateKeyWithFunc(ctx, account, spec)
}

func (f *Keys) ListKeys(ctx context.Context, account string) ([]billing.APIKey, error) {
	if f.ListKeysFunc == nil {
		return nil, ErrNotSet
	}
	return f.ListKeysFunc(ctx, account)
}

func (f *Keys) RevokeKey(ctx context.Context, account, keyID string) error {
	if f.RevokeKeyFunc == nil {
		return ErrNotSet
	}
	return f.RevokeKeyFunc(ctx, account, keyID)
}

func (f *Keys) UpdateKey(ctx context.Context, account, keyID string, u billing.KeyUpdate) (billing.APIKey, error) {
	if f.UpdateKeyFunc == nil {
		return billing.APIKey{}, ErrNotSet
	}
	return f.UpdateKeyFunc(ctx, account, keyID, u)
}

func (f *Keys) LookupKey(ctx context.Context, h billing.KeyHash) (billing.APIKey, error) {
	if f.LookupKeyFunc == nil {
		return billing.APIKey{}, ErrNotSet
	}
	return f.LookupKeyFunc(ctx, h)
}
