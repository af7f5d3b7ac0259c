package recharge

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/payments"
	"github.com/creditgate/creditgate/payments/paymentstest"
)

// profiles is a fake Profiles.
type profiles struct {
	get func(ctx context.Context, account string) (billing.PaymentProfile, error)
}

func (p profiles) GetPaymentProfile(ctx context.Context, account string) (billing.PaymentProfile, error) {
	return p.get(ctx, account)
}

func savedCard(provider string) profiles {
	return profiles{get: func(context.Context, string) (billing.PaymentProfile, error) {
		return billing.PaymentProfile{Provider: provider, CustomerID: "cus_1", PaymentMethodID: "pm_1"}, nil
	}}
}

// observed records the worker's reports.
type observed struct {
	mu      sync.Mutex
	reports []Report
}

func (o *observed) RechargeDone(r Report) {
	o.mu.Lock()
	o.reports = append(o.reports, r)
	o.mu.Unlock()
}

func (o *observed) all() []Report {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Report(nil), o.reports...)
}

// TestProviderChargerOutcomes: every answer of the provider, and each way of not
// getting one, becomes the right recharge state, reason, notice and report.
func TestProviderChargerOutcomes(t *testing.T) {
	networkDown := errors.New("dial tcp: connection refused")
	tests := []struct {
		name     string
		profile  profiles
		charge   func(payments.Charge) (payments.ChargeResult, error)
		wantCall bool
		// want
		result      Result
		pending     bool   // the recharge is still pending afterwards
		reason      string // substring of the failure notice's reason ("" when none)
		credited    bool
		wantBalance string
	}{
		{name: "succeeded", profile: savedCard("fake"), wantCall: true,
			charge: func(c payments.Charge) (payments.ChargeResult, error) {
				return payments.ChargeResult{Status: payments.ChargeSucceeded, PaymentRef: "pi_" + c.ID}, nil
			}, result: Paid, credited: true, wantBalance: "14.00"},
		{name: "declined", profile: savedCard("fake"), wantCall: true,
			charge: func(payments.Charge) (payments.ChargeResult, error) {
				return payments.ChargeResult{Status: payments.ChargeDeclined, PaymentRef: "pi_x", DeclineCode: "insufficient_funds", Reason: "Your card has insufficient funds."}, nil
			}, result: Declined, reason: "Your card has insufficient funds. (insufficient_funds)", wantBalance: "4.00"},
		{name: "requires action", profile: savedCard("fake"), wantCall: true,
			charge: func(payments.Charge) (payments.ChargeResult, error) {
				return payments.ChargeResult{Status: payments.ChargeRequiresAction, DeclineCode: "authentication_required"}, nil
			}, result: RequiresAction, reason: "authenticate", wantBalance: "4.00"},
		{name: "processing", profile: savedCard("fake"), wantCall: true,
			charge: func(payments.Charge) (payments.ChargeResult, error) {
				return payments.ChargeResult{Status: payments.ChargeProcessing, PaymentRef: "pi_slow"}, nil
			}, result: Pending, pending: true, wantBalance: "4.00"},
		{name: "rejected by the provider", profile: savedCard("fake"), wantCall: true,
			charge: func(payments.Charge) (payments.ChargeResult, error) {
				return payments.ChargeResult{}, errors.Join(payments.ErrRejected, errors.New("stripe charge saved card: invalid_request_error/resource_missing (HTTP 400): No such PaymentMethod"))
			}, result: Refused, reason: "No such PaymentMethod", wantBalance: "4.00"},
		{name: "no answer", profile: savedCard("fake"), wantCall: true,
			charge: func(payments.Charge) (payments.ChargeResult, error) { return payments.ChargeResult{}, networkDown },
			result: NoAnswer, pending: true, wantBalance: "4.00"},
		{name: "no saved card", profile: profiles{get: func(context.Context, string) (billing.PaymentProfile, error) {
			return billing.PaymentProfile{Provider: "fake", CustomerID: "cus_1"}, nil
		}}, result: NoCard, reason: "no card on file", wantBalance: "4.00"},
		{name: "card saved with another provider", profile: savedCard("demo"), result: NoCard, reason: "no card on file", wantBalance: "4.00"},
		{name: "profile unreadable", profile: profiles{get: func(context.Context, string) (billing.PaymentProfile, error) {
			return billing.PaymentProfile{}, billing.ErrUnavailable
		}}, result: NoAnswer, pending: true, wantBalance: "4.00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []payments.Charge
			provider := &paymentstest.Provider{ChargeSavedFunc: func(_ context.Context, c payments.Charge) (payments.ChargeResult, error) {
				calls = append(calls, c)
				return tt.charge(c)
			}}
			obs := &observed{}
			e := newEnv(t, nil, func(o *Options) {
				o.Charger = &ProviderCharger{Provider: provider, Profiles: tt.profile}
				o.Observer = obs
			})
			e.account(t, "p", "6.00")
			s := e.spend(t, "p", "h1", usd("2.00"))
			e.worker.PerformRecharge(e.ctx, "p", s.RechargeID)

			if tt.wantCall {
				want := payments.Charge{ID: s.RechargeID, Account: "p", CustomerID: "cus_1", PaymentMethodID: "pm_1", Amount: usd("10.00")}
				if len(calls) != 1 || calls[0] != want {
					t.Fatalf("ChargeSaved calls %+v, want one %+v", calls, want)
				}
			} else if len(calls) != 0 {
				t.Fatalf("ChargeSaved called %+v", calls)
			}
			a := e.account_(t, "p")
			if (a.Recharge.Pending != "") != tt.pending || a.Balance() != usd(tt.wantBalance) {
				t.Fatalf("pending %q, balance %s; want pending %v, balance %s", a.Recharge.Pending, a.Balance(), tt.pending, tt.wantBalance)
			}
			notes := e.notices.deliveries()
			if tt.reason == "" {
				if len(notes) != 0 {
					t.Fatalf("notices %v, want none", notes)
				}
			} else if len(notes) != 1 || notes[0]["type"] != billing.NoticeAutoRechargeFailed || !strings.Contains(notes[0]["reason"].(string), tt.reason) {
				t.Fatalf("notices %v, want one auto_recharge.failed saying %q", notes, tt.reason)
			}
			if got := obs.all(); len(got) != 1 || got[0] != (Report{Charger: "fake", Result: tt.result, Amount: usd("10.00"), Credited: tt.credited}) {
				t.Fatalf("reports %+v, want one %s", got, tt.result)
			}
			e.audit(t, "p")
		})
	}
}

// TestProviderChargerLostAnswer: the charge went through but its answer was lost;
// the sweep after the lease charges again with the same id (the provider's
// idempotency makes it one charge), and the recharge is credited once.
func TestProviderChargerLostAnswer(t *testing.T) {
	var ids []string
	provider := &paymentstest.Provider{ChargeSavedFunc: func(_ context.Context, c payments.Charge) (payments.ChargeResult, error) {
		ids = append(ids, c.ID)
		if len(ids) == 1 {
			return payments.ChargeResult{}, errors.New("stripe charge saved card: read: connection reset by peer")
		}
		return payments.ChargeResult{Status: payments.ChargeSucceeded, PaymentRef: "pi_1"}, nil
	}}
	e := newEnv(t, nil, func(o *Options) {
		o.Charger = &ProviderCharger{Provider: provider, Profiles: savedCard(""), Now: o.Now}
	})
	e.account(t, "l", "6.00")
	s := e.spend(t, "l", "h1", usd("2.00"))
	e.worker.PerformRecharge(e.ctx, "l", s.RechargeID)
	if a := e.account_(t, "l"); a.Recharge.Pending != s.RechargeID {
		t.Fatalf("after the lost answer: %+v", a.Recharge)
	}
	e.clock.Advance(DefaultProviderTimeout + leaseMargin + time.Second)
	if _, err := e.worker.SweepOnce(e.ctx, false); err != nil {
		t.Fatal(err)
	}
	a := e.account_(t, "l")
	if n, total := grantsFrom(a, billing.SourceAutoRecharge); n != 1 || total != usd("10.00") || a.Recharge.Pending != "" {
		t.Fatalf("after the sweep: %d grants of %s, %+v", n, total, a.Recharge)
	}
	if len(ids) != 2 || ids[0] != s.RechargeID || ids[1] != s.RechargeID {
		t.Fatalf("charge ids %q: want the recharge id twice", ids)
	}
	e.audit(t, "l")
}

// TestProviderChargerResendWindow: a recharge left without an answer for longer
// than ResendWindow is not sent again (the idempotency key may be gone) but
// failed; if the first charge did go through, the provider's event credits it.
func TestProviderChargerResendWindow(t *testing.T) {
	calls := 0
	provider := &paymentstest.Provider{ChargeSavedFunc: func(context.Context, payments.Charge) (payments.ChargeResult, error) {
		calls++
		return payments.ChargeResult{}, errors.New("timeout")
	}}
	e := newEnv(t, nil, func(o *Options) {
		o.Charger = &ProviderCharger{Provider: provider, Profiles: savedCard("fake"), Now: o.Now}
		o.GiveUpAfter = 48 * time.Hour // longer than the window: the charger decides
	})
	e.account(t, "w", "6.00")
	s := e.spend(t, "w", "h1", usd("2.00"))
	e.worker.PerformRecharge(e.ctx, "w", s.RechargeID)
	e.clock.Advance(ResendWindow + time.Minute)
	if _, err := e.worker.SweepOnce(e.ctx, false); err != nil {
		t.Fatal(err)
	}
	a := e.account_(t, "w")
	if calls != 1 || a.Recharge.Pending != "" || a.Recharge.Failures != 1 {
		t.Fatalf("%d charges, %+v; want 1 charge and the recharge failed", calls, a.Recharge)
	}
	if notes := e.notices.deliveries(); len(notes) != 1 || !strings.Contains(notes[0]["reason"].(string), "not sent again") {
		t.Fatalf("notices %v", notes)
	}
	// The first charge had gone through after all: its event credits it.
	res, err := e.worker.RechargePaid(e.ctx, "w", s.RechargeID, "pi_late")
	if err != nil || res.Replayed || res.Grant.Amount != usd("10.00") {
		t.Fatalf("RechargePaid after the failure: %+v %v", res, err)
	}
	e.audit(t, "w")
}

// TestRechargeEvents: a processing payment stays pending until the provider's
// event; RechargePaid credits once however often it comes; RechargeFailed of a
// recharge no longer pending changes nothing.
func TestRechargeEvents(t *testing.T) {
	provider := &paymentstest.Provider{ChargeSavedFunc: func(context.Context, payments.Charge) (payments.ChargeResult, error) {
		return payments.ChargeResult{Status: payments.ChargeProcessing, PaymentRef: "pi_p"}, nil
	}}
	obs := &observed{}
	e := newEnv(t, nil, func(o *Options) {
		o.Charger = &ProviderCharger{Provider: provider, Profiles: savedCard("fake")}
		o.Observer = obs
	})
	e.account(t, "ev", "6.00")
	s := e.spend(t, "ev", "h1", usd("2.00"))
	e.worker.PerformRecharge(e.ctx, "ev", s.RechargeID)
	for i := 0; i < 3; i++ {
		res, err := e.worker.RechargePaid(e.ctx, "ev", s.RechargeID, "pi_p")
		if err != nil || res.Replayed != (i > 0) {
			t.Fatalf("RechargePaid #%d: %+v %v", i+1, res, err)
		}
	}
	if err := e.worker.RechargeFailed(e.ctx, "ev", s.RechargeID, "too late"); !errors.Is(err, billing.ErrRechargeNotPending) {
		t.Fatalf("RechargeFailed after the credit: %v, want ErrRechargeNotPending", err)
	}
	a := e.account_(t, "ev")
	if n, total := grantsFrom(a, billing.SourceAutoRecharge); n != 1 || total != usd("10.00") || a.Recharge.Pending != "" || a.Recharge.Failures != 0 {
		t.Fatalf("%d grants of %s, %+v", n, total, a.Recharge)
	}
	want := []Report{{Charger: "fake", Result: Pending, Amount: usd("10.00")}, {Charger: "fake", Result: Paid, Amount: usd("10.00"), Credited: true}}
	if got := obs.all(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("reports %+v, want %+v", got, want)
	}
	if _, err := e.worker.RechargePaid(e.ctx, "ev", "rc_unknown", "pi_x"); !errors.Is(err, billing.ErrRechargeNotPending) {
		t.Fatalf("RechargePaid of an unknown recharge: %v", err)
	}

	// A second recharge fails by event, with its notice.
	e.clock.Advance(time.Minute)
	s2 := e.spend(t, "ev", "h2", usd("10.00"))
	if s2.RechargeID == "" {
		t.Fatal("no second recharge")
	}
	if err := e.worker.RechargeFailed(e.ctx, "ev", s2.RechargeID, "Your card has insufficient funds. (insufficient_funds)"); err != nil {
		t.Fatal(err)
	}
	if a := e.account_(t, "ev"); a.Recharge.Pending != "" || a.Recharge.Failures != 1 {
		t.Fatalf("after RechargeFailed: %+v", a.Recharge)
	}
	if notes := e.notices.deliveries(); len(notes) != 1 || notes[0]["recharge_id"] != s2.RechargeID {
		t.Fatalf("notices %v", notes)
	}
	e.audit(t, "ev")
}
