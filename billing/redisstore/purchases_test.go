package redisstore

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// purchase starts a purchase of amount (stripe, no card kept).
func (e *env) purchase(t testing.TB, account, id, amount string) billing.Purchase {
	t.Helper()
	p, err := e.CreatePurchase(e.ctx, testPolicy, billing.NewPurchaseRequest{Account: account, ID: id, Amount: usd(amount), Provider: "stripe", Actor: "portal"})
	if err != nil {
		t.Fatalf("purchase %s: %v", id, err)
	}
	return p
}

// pay reports purchase id paid for amount by payment ref.
func (e *env) pay(t testing.TB, account, id, amount, ref string) billing.TopUpResult {
	t.Helper()
	r, err := e.CompletePurchase(e.ctx, testPolicy, account, id, billing.PaymentReport{EventID: "evt_" + id, Amount: usd(amount), PaymentRef: ref})
	if err != nil {
		t.Fatalf("complete %s: %v", id, err)
	}
	return r
}

func (e *env) takeBack(t testing.TB, ref, upto, reason string) billing.TakeBackResult {
	t.Helper()
	r, err := e.TakeBack(e.ctx, billing.TakeBackRequest{PaymentRef: ref, Upto: usd(upto), Reason: reason})
	if err != nil {
		t.Fatalf("take back %s up to %s: %v", ref, upto, err)
	}
	return r
}

// checkAudit fails unless account id passes the audit and the conservation check.
func checkAudit(t testing.TB, e *env, id string) billing.Account {
	t.Helper()
	a := checkConservation(t, e, id)
	if r := audit(t, e, id); !r.OK() {
		t.Fatalf("audit of %s: %+v", id, r.Problems)
	}
	return a
}

func TestCreatePurchase(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		e.account(t, "rich", "100.00", "100.00", "100.00", "100.00", "100.00", "100.00", "100.00", "100.00", "100.00", "50.00")
		if _, err := e.CreateAccount(e.ctx, "odd", "unconfigured"); err != nil {
			t.Fatal(err)
		}
		req := func(account, id, amount string) billing.NewPurchaseRequest {
			return billing.NewPurchaseRequest{Account: account, ID: id, Amount: usd(amount), Provider: "stripe", Actor: "portal"}
		}
		first, err := e.CreatePurchase(e.ctx, testPolicy, req("acme", "pur_1", "10.00"))
		if err != nil {
			t.Fatal(err)
		}
		if first.Status != billing.PurchasePending || first.Amount != usd("10.00") || first.Provider != "stripe" || first.Actor != "portal" ||
			first.ID != "pur_1" || first.Account != "acme" || !first.CreatedAt.Equal(e.clock.Now()) || first.PaidAmount != 0 {
			t.Fatalf("created %+v", first)
		}
		tests := []struct {
			name  string
			req   billing.NewPurchaseRequest
			want  error
			limit money.Micros // of a LimitError
		}{
			{name: "the same purchase again", req: req("acme", "pur_1", "10.00")},
			{name: "the same id, another amount", req: req("acme", "pur_1", "11.00"), want: billing.ErrIdempotencyConflict},
			{name: "the same id, card kept", req: func() billing.NewPurchaseRequest { q := req("acme", "pur_1", "10.00"); q.SaveCard = true; return q }(), want: billing.ErrIdempotencyConflict},
			{name: "below the minimum", req: req("acme", "pur_2", "4.99"), want: billing.ErrBelowMinimum, limit: usd("5.00")},
			{name: "above the tier's top-up", req: req("acme", "pur_3", "100.01"), want: billing.ErrAboveMaxTopUp, limit: usd("100.00")},
			{name: "above the tier's balance", req: req("rich", "pur_4", "60.00"), want: billing.ErrAboveMaxBalance, limit: usd("1000.00")},
			{name: "up to the tier's balance", req: req("rich", "pur_5", "50.00")},
			{name: "unknown account", req: req("nobody", "pur_6", "10.00"), want: billing.ErrAccountNotFound},
			{name: "unconfigured tier", req: req("odd", "pur_7", "10.00"), want: billing.ErrUnknownTier},
			{name: "zero amount", req: req("acme", "pur_8", "0"), want: billing.ErrInvalid},
			{name: "id with a space", req: req("acme", "pur 9", "10.00"), want: billing.ErrInvalid},
			{name: "id with a brace", req: req("acme", "pur_{9}", "10.00"), want: billing.ErrInvalid},
			{name: "no provider", req: func() billing.NewPurchaseRequest { q := req("acme", "pur_10", "10.00"); q.Provider = ""; return q }(), want: billing.ErrInvalid},
			{name: "actor with a newline", req: func() billing.NewPurchaseRequest { q := req("acme", "pur_11", "10.00"); q.Actor = "a\nb"; return q }(), want: billing.ErrInvalid},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p, err := e.CreatePurchase(e.ctx, testPolicy, tc.req)
				if tc.want == nil {
					if err != nil || p.Status != billing.PurchasePending || p.Amount != tc.req.Amount {
						t.Fatalf("%+v %v", p, err)
					}
					return
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("error %v, want %v", err, tc.want)
				}
				var le *billing.LimitError
				if tc.limit != 0 && (!errors.As(err, &le) || le.Limit != tc.limit) {
					t.Fatalf("error %v, want a limit of %s", err, tc.limit)
				}
			})
		}
		again, err := e.CreatePurchase(e.ctx, testPolicy, req("acme", "pur_1", "10.00"))
		if err != nil || !reflect.DeepEqual(again, first) {
			t.Fatalf("replayed create: %+v %v; want %+v", again, err, first)
		}
		// Nothing was credited by any of it.
		if a := checkAudit(t, e, "acme"); a.Credit != 0 || a.Totals.Granted != 0 {
			t.Fatalf("credit %s after purchases that nobody paid", a.Credit)
		}
	})
}

func TestAttachCheckout(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		e.purchase(t, "acme", "pur_1", "10.00")
		exp := e.clock.Now().Add(24 * time.Hour)
		p, err := e.AttachCheckout(e.ctx, "acme", "pur_1", "cs_1", "https://checkout.example/cs_1", exp)
		if err != nil || p.CheckoutID != "cs_1" || p.CheckoutURL != "https://checkout.example/cs_1" || !p.CheckoutExpiresAt.Equal(exp) {
			t.Fatalf("attach: %+v %v", p, err)
		}
		tests := []struct {
			name               string
			account, id, cs, u string
			want               error
		}{
			{name: "the same checkout again", account: "acme", id: "pur_1", cs: "cs_1", u: "https://checkout.example/cs_1"},
			{name: "another checkout", account: "acme", id: "pur_1", cs: "cs_2", u: "https://checkout.example/cs_2", want: billing.ErrIdempotencyConflict},
			{name: "unknown purchase", account: "acme", id: "pur_2", cs: "cs_3", u: "https://x", want: billing.ErrPurchaseNotFound},
			{name: "another account's purchase", account: "beta", id: "pur_1", cs: "cs_1", u: "https://x", want: billing.ErrPurchaseNotFound},
			{name: "no checkout id", account: "acme", id: "pur_1", cs: "", u: "https://x", want: billing.ErrInvalid},
			{name: "url with a newline", account: "acme", id: "pur_1", cs: "cs_1", u: "https://x\n", want: billing.ErrInvalid},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p, err := e.AttachCheckout(e.ctx, tc.account, tc.id, tc.cs, tc.u, exp)
				if tc.want == nil {
					if err != nil || p.CheckoutID != tc.cs {
						t.Fatalf("%+v %v", p, err)
					}
					return
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("error %v, want %v", err, tc.want)
				}
			})
		}
	})
}

// purchase → complete → one grant; the same report again, another event for the
// same purchase, and many at once credit nothing more.
func TestCompletePurchaseCreditsOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		e.purchase(t, "acme", "pur_1", "10.00")
		// debt of 2.00 first: the purchase pays it
		e.reserve(t, "acme", "h0", usd("0.40"), 0)
		e.settle(t, "acme", "h0", usd("2.00"))
		first := e.pay(t, "acme", "pur_1", "10.00", "pi_1")
		g := first.Grant
		if first.Replayed || g.ID != "pur_1" || g.Amount != usd("10.00") || g.Remaining != usd("8.00") || g.Source != billing.SourcePurchase ||
			first.DebtRepaid != usd("2.00") || first.BalanceAfter != usd("8.00") || !g.ExpiresAt.Equal(e.clock.Now().Add(testPolicy.CreditTTL)) {
			t.Fatalf("first completion %+v", first)
		}
		e.clock.Advance(time.Minute)
		e.reserve(t, "acme", "h1", usd("1.00"), 0)
		e.settle(t, "acme", "h1", usd("1.00"))
		for name, rep := range map[string]billing.PaymentReport{
			"the same report again":       {EventID: "evt_pur_1", Amount: usd("10.00"), PaymentRef: "pi_1"},
			"async_payment_succeeded":     {EventID: "evt_async", Amount: usd("10.00"), PaymentRef: "pi_1"},
			"a report naming the session": {EventID: "evt_other", Amount: usd("10.00"), PaymentRef: "cs_1"},
		} {
			again, err := e.CompletePurchase(e.ctx, testPolicy, "acme", "pur_1", rep)
			want := first
			want.Replayed = true
			if err != nil || !reflect.DeepEqual(again, want) {
				t.Fatalf("%s: %+v %v; want the first result, replayed: %+v", name, again, err, want)
			}
		}
		p, err := e.GetPurchase(e.ctx, "acme", "pur_1")
		if err != nil || p.Status != billing.PurchasePaid || p.PaymentRef != "pi_1" || p.PaidAmount != usd("10.00") || !p.SettledAt.Equal(e.clock.Now().Add(-time.Minute)) {
			t.Fatalf("paid purchase %+v %v", p, err)
		}
		a := checkAudit(t, e, "acme")
		if a.Totals.Granted != usd("10.00") || a.Credit != usd("7.00") || a.Debt != 0 {
			t.Fatalf("granted %s credit %s debt %s; want one grant of 10.00", a.Totals.Granted, a.Credit, a.Debt)
		}
		evs := e.events(t, "acme")
		if n := countEvents(evs, billing.EventTopUp); n != 1 {
			t.Fatalf("%d topup events, want 1", n)
		}
		for _, ev := range evs {
			if ev.Type == billing.EventTopUp && (ev.PaymentRef != "pi_1" || ev.GrantID != "pur_1" || ev.Source != billing.SourcePurchase) {
				t.Fatalf("topup event %+v; want payment_ref pi_1 on grant pur_1", ev)
			}
		}
	})
}

func TestCompletePurchaseErrors(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		e.account(t, "beta")
		e.purchase(t, "acme", "pur_1", "10.00")
		e.purchase(t, "acme", "pur_2", "10.00")
		e.pay(t, "acme", "pur_1", "10.00", "pi_1")
		tests := []struct {
			name        string
			account, id string
			rep         billing.PaymentReport
			want        error
		}{
			{"unknown purchase", "acme", "pur_9", billing.PaymentReport{Amount: usd("10.00")}, billing.ErrPurchaseNotFound},
			{"unknown account", "nobody", "pur_1", billing.PaymentReport{Amount: usd("10.00")}, billing.ErrAccountNotFound},
			{"another account's purchase", "beta", "pur_1", billing.PaymentReport{Amount: usd("10.00")}, billing.ErrPurchaseNotFound},
			{"nothing paid", "acme", "pur_2", billing.PaymentReport{Amount: 0}, billing.ErrInvalid},
			{"a payment that credited another purchase", "acme", "pur_2", billing.PaymentReport{Amount: usd("10.00"), PaymentRef: "pi_1"}, billing.ErrIdempotencyConflict},
			{"a payment ref with a newline", "acme", "pur_2", billing.PaymentReport{Amount: usd("10.00"), PaymentRef: "pi\n2"}, billing.ErrInvalid},
			{"a customer id with a space", "acme", "pur_2", billing.PaymentReport{Amount: usd("10.00"), CustomerID: "cus 1"}, billing.ErrInvalid},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := e.CompletePurchase(e.ctx, testPolicy, tc.account, tc.id, tc.rep); !errors.Is(err, tc.want) {
					t.Fatalf("error %v, want %v", err, tc.want)
				}
			})
		}
		if a := checkAudit(t, e, "acme"); a.Totals.Granted != usd("10.00") {
			t.Fatalf("granted %s; the refused completions credited something", a.Totals.Granted)
		}
		if p, err := e.GetPurchase(e.ctx, "acme", "pur_2"); err != nil || p.Status != billing.PurchasePending {
			t.Fatalf("pur_2 after refused completions: %+v %v", p, err)
		}
	})
}

// What was paid is credited even past the tier's limits: they were checked when
// the purchase started, and the customer has paid.
func TestCompletePurchasePastTierLimits(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		if _, err := e.CreateAccount(e.ctx, "small", "small"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.CreatePurchase(e.ctx, testPolicy, billing.NewPurchaseRequest{Account: "small", ID: "pur_1", Amount: usd("50.00"), Provider: "demo"}); err != nil {
			t.Fatal(err)
		}
		// meanwhile the balance grew to the tier's maximum
		e.topUpSmall(t, "small", "50.00")
		r := e.pay(t, "small", "pur_1", "50.00", "demo_1")
		if r.Grant.Amount != usd("50.00") || r.BalanceAfter != usd("100.00") {
			t.Fatalf("completion %+v; want the 50.00 paid credited past max_balance 60.00", r)
		}
		checkAudit(t, e, "small")
	})
}

func (e *env) topUpSmall(t testing.TB, id, amount string) {
	t.Helper()
	if _, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: id, GrantID: billing.NewID("grant_"), Amount: usd(amount)}); err != nil {
		t.Fatal(err)
	}
}

// Provider events arrive in any order: an expiry after the payment leaves the
// purchase paid; a payment after an expiry is credited (it was paid).
func TestEndPurchaseAndOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		for _, id := range []string{"pur_paid", "pur_late", "pur_fail", "pur_exp"} {
			e.purchase(t, "acme", id, "10.00")
		}
		e.pay(t, "acme", "pur_paid", "10.00", "pi_paid")
		e.clock.Advance(time.Minute)
		tests := []struct {
			name   string
			id     string
			status billing.PurchaseStatus
			reason string
			want   billing.PurchaseStatus
			err    error
		}{
			{name: "expire after complete", id: "pur_paid", status: billing.PurchaseExpired, want: billing.PurchasePaid},
			{name: "expire before complete", id: "pur_late", status: billing.PurchaseExpired, reason: "checkout.session.expired", want: billing.PurchaseExpired},
			{name: "fail", id: "pur_fail", status: billing.PurchaseFailed, reason: "card declined\n(insufficient funds)", want: billing.PurchaseFailed},
			{name: "expire after failing keeps the failure", id: "pur_fail", status: billing.PurchaseExpired, want: billing.PurchaseFailed},
			{name: "expire", id: "pur_exp", status: billing.PurchaseExpired, want: billing.PurchaseExpired},
			{name: "expire again", id: "pur_exp", status: billing.PurchaseExpired, want: billing.PurchaseExpired},
			{name: "end as paid", id: "pur_exp", status: billing.PurchasePaid, err: billing.ErrInvalid},
			{name: "unknown", id: "pur_none", status: billing.PurchaseExpired, err: billing.ErrPurchaseNotFound},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p, err := e.EndPurchase(e.ctx, "acme", tc.id, tc.status, tc.reason)
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Fatalf("error %v, want %v", err, tc.err)
					}
					return
				}
				if err != nil || p.Status != tc.want {
					t.Fatalf("%+v %v; want status %s", p, err, tc.want)
				}
			})
		}
		if p, _ := e.GetPurchase(e.ctx, "acme", "pur_fail"); p.Reason != "card declined (insufficient funds)" || !p.SettledAt.Equal(e.clock.Now()) {
			t.Fatalf("failed purchase %+v; want its reason on one line and its time", p)
		}
		r := e.pay(t, "acme", "pur_late", "10.00", "pi_late")
		if r.Replayed || r.Grant.ID != "pur_late" {
			t.Fatalf("payment after expiry: %+v", r)
		}
		if p, _ := e.GetPurchase(e.ctx, "acme", "pur_late"); p.Status != billing.PurchasePaid || p.Reason != "" {
			t.Fatalf("late-paid purchase %+v", p)
		}
		if a := checkAudit(t, e, "acme"); a.Totals.Granted != usd("20.00") {
			t.Fatalf("granted %s, want the two paid purchases", a.Totals.Granted)
		}
	})
}

func TestConcurrentCompletionsCreditOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		e.purchase(t, "acme", "pur_1", "25.00")
		const n = 40
		results := make([]billing.TopUpResult, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = e.CompletePurchase(e.ctx, testPolicy, "acme", "pur_1",
					billing.PaymentReport{EventID: fmt.Sprintf("evt_%d", i), Amount: usd("25.00"), PaymentRef: "pi_1"})
			}()
		}
		wg.Wait()
		fresh := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if !results[i].Replayed {
				fresh++
			}
			if results[i].EventID != results[0].EventID || results[i].Grant != results[0].Grant {
				t.Fatalf("completion %d answered %+v, completion 0 %+v", i, results[i], results[0])
			}
		}
		if fresh != 1 {
			t.Fatalf("%d completions credited, want exactly 1", fresh)
		}
		a := checkAudit(t, e, "acme")
		if a.Totals.Granted != usd("25.00") || countEvents(e.events(t, "acme"), billing.EventTopUp) != 1 {
			t.Fatalf("granted %s; want one grant of 25.00", a.Totals.Granted)
		}
	})
}

func TestListAndGetPurchases(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		e.account(t, "empty")
		for i := range 5 {
			e.purchase(t, "acme", fmt.Sprintf("pur_%d", i), fmt.Sprintf("%d.00", 5+i))
			e.clock.Advance(time.Second)
		}
		e.pay(t, "acme", "pur_3", "8.00", "pi_3")
		tests := []struct {
			name    string
			account string
			limit   int
			want    []string
			err     error
		}{
			{"newest first", "acme", 0, []string{"pur_4", "pur_3", "pur_2", "pur_1", "pur_0"}, nil},
			{"limited", "acme", 2, []string{"pur_4", "pur_3"}, nil},
			{"none", "empty", 10, nil, nil},
			{"unknown account", "nobody", 10, nil, billing.ErrAccountNotFound},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ps, err := e.ListPurchases(e.ctx, tc.account, tc.limit)
				if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				var ids []string
				for _, p := range ps {
					ids = append(ids, p.ID)
				}
				if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
					t.Fatalf("ids %v, want %v", ids, tc.want)
				}
			})
		}
		ps, _ := e.ListPurchases(e.ctx, "acme", 0)
		if ps[1].Status != billing.PurchasePaid || ps[1].PaymentRef != "pi_3" || ps[0].Status != billing.PurchasePending {
			t.Fatalf("listed %+v", ps[:2])
		}
		got, err := e.GetPurchase(e.ctx, "acme", "pur_3")
		if err != nil || !reflect.DeepEqual(got, ps[1]) {
			t.Fatalf("get %+v %v; want the listed %+v", got, err, ps[1])
		}
		for _, tc := range []struct{ account, id string }{{"acme", "pur_9"}, {"empty", "pur_3"}, {"nobody", "pur_3"}, {"acme", "bad id"}} {
			if _, err := e.GetPurchase(e.ctx, tc.account, tc.id); !errors.Is(err, billing.ErrPurchaseNotFound) {
				t.Errorf("get %s/%s: %v, want ErrPurchaseNotFound", tc.account, tc.id, err)
			}
		}
		// A corrupt record is an error naming it, not a zero.
		if err := e.redis.Client.HSet(e.ctx, e.tagged("acme", purchaseKey("pur_2")), "amount", "ten").Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := e.GetPurchase(e.ctx, "acme", "pur_2"); err == nil || !strings.Contains(err.Error(), `purchase "pur_2"`) {
			t.Fatalf("corrupt purchase: %v", err)
		}
	})
}

func TestPaymentProfile(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		if pp, err := e.GetPaymentProfile(e.ctx, "acme"); err != nil || pp != (billing.PaymentProfile{}) {
			t.Fatalf("new account's profile %+v %v", pp, err)
		}
		// A completion without ids leaves it; one with ids keeps them.
		e.purchase(t, "acme", "pur_0", "10.00")
		e.pay(t, "acme", "pur_0", "10.00", "pi_0")
		if pp, _ := e.GetPaymentProfile(e.ctx, "acme"); pp.CustomerID != "" || pp.PaymentMethodID != "" {
			t.Fatalf("profile %+v after a completion without ids", pp)
		}
		e.purchase(t, "acme", "pur_1", "10.00")
		if _, err := e.CompletePurchase(e.ctx, testPolicy, "acme", "pur_1", billing.PaymentReport{Amount: usd("10.00"), PaymentRef: "pi_1", CustomerID: "cus_1", PaymentMethodID: "pm_1"}); err != nil {
			t.Fatal(err)
		}
		want := billing.PaymentProfile{Provider: "stripe", CustomerID: "cus_1", PaymentMethodID: "pm_1"}
		if pp, err := e.GetPaymentProfile(e.ctx, "acme"); err != nil || pp != want {
			t.Fatalf("profile %+v %v, want %+v", pp, err, want)
		}
		tests := []struct {
			name    string
			account string
			pp      billing.PaymentProfile
			err     error
		}{
			{"replace", "acme", billing.PaymentProfile{Provider: "stripe", CustomerID: "cus_2", PaymentMethodID: "pm_2", Email: "ops@acme.test"}, nil},
			{"clear the card", "acme", billing.PaymentProfile{Provider: "stripe", CustomerID: "cus_2"}, nil},
			{"unknown account", "nobody", billing.PaymentProfile{Provider: "stripe"}, billing.ErrAccountNotFound},
			{"customer with a space", "acme", billing.PaymentProfile{CustomerID: "cus 1"}, billing.ErrInvalid},
			{"email with a newline", "acme", billing.PaymentProfile{Email: "a@b\n"}, billing.ErrInvalid},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := e.SetPaymentProfile(e.ctx, tc.account, tc.pp)
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Fatalf("error %v, want %v", err, tc.err)
					}
					return
				}
				if got, gerr := e.GetPaymentProfile(e.ctx, tc.account); err != nil || gerr != nil || got != tc.pp {
					t.Fatalf("profile %+v %v %v, want %+v", got, err, gerr, tc.pp)
				}
			})
		}
		if _, err := e.GetPaymentProfile(e.ctx, "nobody"); !errors.Is(err, billing.ErrAccountNotFound) {
			t.Fatalf("unknown account's profile: %v", err)
		}
	})
}

// TestTakeBack: refunds and disputes take back what is left of the payment's
// grant, never more, cumulatively, whatever order or how often they come.
func TestTakeBack(t *testing.T) {
	type step struct {
		upto, reason        string
		taken, total, short string
		noEvent             bool
	}
	tests := []struct {
		name  string
		spend string // spent from the 10.00 purchase before the first take-back
		steps []step
		// credit and adjusted out after the steps
		credit, out string
	}{
		{name: "full refund of an unspent purchase", steps: []step{{upto: "10.00", reason: "refund", taken: "10.00", total: "10.00"}}, credit: "0", out: "10.00"},
		{name: "refund after part was spent takes only the rest", spend: "4.00",
			steps: []step{{upto: "10.00", reason: "refund", taken: "6.00", total: "6.00", short: "4.00"}}, credit: "0", out: "6.00"},
		{name: "partial then full refund, cumulative", spend: "1.00", steps: []step{
			{upto: "3.00", reason: "refund", taken: "3.00", total: "3.00"},
			{upto: "3.00", reason: "refund", total: "3.00", noEvent: true}, // the same event again
			{upto: "10.00", reason: "refund", taken: "6.00", total: "9.00", short: "1.00"},
		}, credit: "0", out: "9.00"},
		{name: "an older, smaller report after a larger one changes nothing", steps: []step{
			{upto: "6.00", reason: "refund", taken: "6.00", total: "6.00"},
			{upto: "2.00", reason: "refund", total: "6.00", noEvent: true},
		}, credit: "4.00", out: "6.00"},
		{name: "dispute after a refund", spend: "2.00", steps: []step{
			{upto: "5.00", reason: "refund", taken: "5.00", total: "5.00"},
			{upto: "10.00", reason: "dispute: fraudulent", taken: "3.00", total: "8.00", short: "2.00"},
		}, credit: "0", out: "8.00"},
		{name: "a report beyond what was paid takes no more than was credited", steps: []step{
			{upto: "10.00", reason: "refund", taken: "10.00", total: "10.00"},
			{upto: "12.00", reason: "dispute", total: "10.00", noEvent: true},
		}, credit: "0", out: "10.00"},
		{name: "refund of a purchase all spent records the claim and takes nothing", spend: "10.00", steps: []step{
			{upto: "10.00", reason: "refund", total: "0", short: "10.00"},
		}, credit: "0", out: "0"},
	}
	eachStore(t, func(t *testing.T, e *env) {
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				id := fmt.Sprintf("tb%d", i)
				ref := fmt.Sprintf("pi_%s", id)
				e.account(t, id)
				// another grant, expiring after the purchase's: spending takes from
				// the purchase's first, and a take-back never touches this one
				if _, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: id, GrantID: "promo", Amount: usd("20.00"), ExpiresAt: e.clock.Now().Add(2 * testPolicy.CreditTTL)}); err != nil {
					t.Fatal(err)
				}
				e.purchase(t, id, "pur_"+id, "10.00")
				if _, err := e.CompletePurchase(e.ctx, testPolicy, id, "pur_"+id, billing.PaymentReport{Amount: usd("10.00"), PaymentRef: ref}); err != nil {
					t.Fatal(err)
				}
				if tc.spend != "" {
					e.reserve(t, id, "h_"+id, usd(tc.spend), 0)
					e.settle(t, id, "h_"+id, usd(tc.spend))
				}
				before := len(e.events(t, id))
				for j, s := range tc.steps {
					r := e.takeBack(t, ref, s.upto, s.reason)
					short := s.short
					if short == "" {
						short = "0"
					}
					taken := s.taken
					if taken == "" {
						taken = "0"
					}
					if r.Account != id || r.Taken != usd(taken) || r.Total != usd(s.total) || r.Short != usd(short) || (r.EventID == "") != s.noEvent {
						t.Fatalf("step %d: %+v; want taken %s total %s short %s event=%v", j, r, taken, s.total, short, !s.noEvent)
					}
					if !s.noEvent {
						before++
						evs := e.events(t, id)
						ev := evs[len(evs)-1]
						if len(evs) != before || ev.ID != r.EventID || ev.Type != billing.EventAdjustment || ev.Amount != -usd(taken) ||
							ev.GrantID != "pur_"+id || ev.PaymentRef != ref || !strings.HasPrefix(ev.Note, s.reason) {
							t.Fatalf("step %d: event %+v (of %d); want an adjustment of -%s naming the grant and %s", j, ev, len(evs), taken, ref)
						}
						if r.Short > 0 && !strings.Contains(ev.Note, r.Short.String()+" of") {
							t.Fatalf("step %d: note %q does not say what was already spent", j, ev.Note)
						}
					} else if len(e.events(t, id)) != before {
						t.Fatalf("step %d: a take-back that adds nothing recorded an event", j)
					}
				}
				a := checkAudit(t, e, id)
				var g billing.Grant
				for _, x := range a.Grants {
					if x.ID == "pur_"+id {
						g = x
					}
				}
				if g.Remaining != usd(tc.credit) || a.Totals.AdjustedOut != usd(tc.out) || a.Credit != usd("20.00")+usd(tc.credit) {
					t.Fatalf("purchase grant %+v, adjusted out %s, credit %s; want remaining %s, out %s", g, a.Totals.AdjustedOut, a.Credit, tc.credit, tc.out)
				}
				p, _ := e.GetPurchase(e.ctx, id, "pur_"+id)
				if p.Status != billing.PurchaseRefunded || p.TakenBack != usd(tc.out) || p.Reason != tc.steps[len(tc.steps)-1].reason {
					t.Fatalf("purchase after take-backs %+v", p)
				}
			})
		}
	})
}

func TestTakeBackErrors(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		e.purchase(t, "acme", "pur_1", "10.00")
		e.pay(t, "acme", "pur_1", "10.00", "pi_1")
		// indexed, then the credit never happened (a crash between the two)
		if err := e.indexPayment(e.ctx, "pi_lost", "acme", "pur_lost"); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			req  billing.TakeBackRequest
			want error
		}{
			{"unknown payment", billing.TakeBackRequest{PaymentRef: "pi_unknown", Upto: usd("1.00"), Reason: "refund"}, billing.ErrPaymentNotFound},
			{"indexed but never credited", billing.TakeBackRequest{PaymentRef: "pi_lost", Upto: usd("1.00"), Reason: "refund"}, billing.ErrPaymentNotFound},
			{"no reason", billing.TakeBackRequest{PaymentRef: "pi_1", Upto: usd("1.00")}, billing.ErrInvalid},
			{"a reason on two lines", billing.TakeBackRequest{PaymentRef: "pi_1", Upto: usd("1.00"), Reason: "a\nb"}, billing.ErrInvalid},
			{"nothing taken back", billing.TakeBackRequest{PaymentRef: "pi_1", Upto: 0, Reason: "refund"}, billing.ErrInvalid},
			{"no payment", billing.TakeBackRequest{Upto: usd("1.00"), Reason: "refund"}, billing.ErrInvalid},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := e.TakeBack(e.ctx, tc.req); !errors.Is(err, tc.want) {
					t.Fatalf("error %v, want %v", err, tc.want)
				}
			})
		}
		if a := checkAudit(t, e, "acme"); a.Credit != usd("10.00") {
			t.Fatalf("credit %s after refused take-backs", a.Credit)
		}
		// The index refuses a second grant for one payment.
		if err := e.indexPayment(e.ctx, "pi_1", "acme", "pur_2"); !errors.Is(err, billing.ErrIdempotencyConflict) {
			t.Fatalf("indexing pi_1 for another grant: %v", err)
		}
	})
}

// Auto-recharges charged by a payment provider carry the payment's id: a dispute
// of one takes its grant's credit back like a purchase's.
func TestTakeBackOfARecharge(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme", "10.00")
		e.setAR(t, "acme", "5.00", "10.00", "100.00")
		s := e.spend(t, "acme", "h1", usd("6.00"), arOn)
		if s.RechargeID == "" {
			t.Fatal("no recharge started")
		}
		if _, err := e.ClaimRecharge(e.ctx, "acme", s.RechargeID, time.Minute); err != nil {
			t.Fatal(err)
		}
		r, err := e.CompleteRecharge(e.ctx, "acme", s.RechargeID, billing.RechargeCredit{CreditTTL: testPolicy.CreditTTL, PaymentRef: "pi_rc"})
		if err != nil || r.Grant.Source != billing.SourceAutoRecharge {
			t.Fatalf("complete %+v %v", r, err)
		}
		again, err := e.CompleteRecharge(e.ctx, "acme", s.RechargeID, billing.RechargeCredit{CreditTTL: testPolicy.CreditTTL, PaymentRef: "pi_rc"})
		if err != nil || !again.Replayed {
			t.Fatalf("completed again: %+v %v", again, err)
		}
		var ev billing.Event
		for _, x := range e.events(t, "acme") {
			if x.Type == billing.EventAutoRecharge {
				ev = x
			}
		}
		if ev.PaymentRef != "pi_rc" || ev.GrantID != s.RechargeID {
			t.Fatalf("auto_recharge event %+v, want payment_ref pi_rc", ev)
		}
		tb := e.takeBack(t, "pi_rc", "10.00", "dispute: fraudulent")
		if tb.Taken != usd("10.00") || tb.Account != "acme" {
			t.Fatalf("take-back %+v", tb)
		}
		a := checkAudit(t, e, "acme")
		if a.Credit != usd("4.00") || a.Totals.AdjustedOut != usd("10.00") {
			t.Fatalf("credit %s adjusted out %s after the dispute", a.Credit, a.Totals.AdjustedOut)
		}
		if _, err := e.CompleteRecharge(e.ctx, "acme", "rc_other", billing.RechargeCredit{CreditTTL: testPolicy.CreditTTL, PaymentRef: "pi\nrc"}); !errors.Is(err, billing.ErrInvalid) {
			t.Fatalf("a payment ref with a newline: %v", err)
		}
	})
}

func TestTopUpCarriesAReference(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		tests := []struct {
			name      string
			ref, note string
			err       error
		}{
			{"reference and note", "inv-2026-0042", "wire transfer, March", nil},
			{"reference only", "pi_3Nxyz", "", nil},
			{"neither", "", "", nil},
			{"a reference with a newline", "inv\n1", "", billing.ErrInvalid},
			{"a reference too long", strings.Repeat("x", billing.MaxPaymentRefLen+1), "", billing.ErrInvalid},
			{"a blank reference", "  ", "", billing.ErrInvalid},
			{"a note with a control character", "inv-1", "a\x07b", billing.ErrInvalid},
			{"a note too long", "inv-1", strings.Repeat("n", billing.MaxNoteLen+1), billing.ErrInvalid},
			{"a note not UTF-8", "inv-1", "\xff", billing.ErrInvalid},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: "acme", GrantID: fmt.Sprintf("g%d", i), Amount: usd("5.00"), PaymentRef: tc.ref, Note: tc.note})
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Fatalf("error %v, want %v", err, tc.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				evs := e.events(t, "acme")
				ev := evs[len(evs)-1]
				if ev.ID != r.EventID || ev.PaymentRef != tc.ref || ev.Note != tc.note {
					t.Fatalf("event %+v; want payment_ref %q note %q", ev, tc.ref, tc.note)
				}
			})
		}
		checkAudit(t, e, "acme")
	})
}
